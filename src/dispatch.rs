//! The dispatcher of an [`crate::OcrService`]: one queue of pages in front of several engines
//! (one per device). It runs on a thread of its own so that no engine thread ever does another
//! engine's bookkeeping.
//!
//! - A page goes to the live engine with the fewest pages outstanding, and only while that
//!   engine holds fewer than `per_engine_pages`: the rest wait here, so an engine that frees up
//!   takes the next page and an engine that fails strands few.
//! - An engine that fails (its step errors: out of memory, a lost device; or its thread dies
//!   and drops the pages it held) is marked dead, said in the log, and its pages go back to the
//!   front of the queue for the others. Only pages that have not streamed text yet are retried
//!   (a client would otherwise see text twice); the others finish with the engine's error, as
//!   do all pages once every engine is dead.
//! - A page's own error (bad input) is its result, never a retry.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use dsocr_engine::{EngineError, Event, OcrOptions, PreparedPage};

use crate::replica::{EventSink, Replica};

/// A page not yet handed to an engine (or handed back by a failed one).
pub(crate) struct Pending {
    pub tag: u64,
    pub page: PreparedPage,
    pub options: OcrOptions,
    pub stream: bool,
    pub sink: EventSink,
    /// Engines that failed while holding this page.
    pub attempts: usize,
}

/// A page an engine gave back: it failed with the engine, or the engine dropped it.
pub(crate) struct Returned {
    replica: usize,
    tag: u64,
    /// The page again, when it can be retried (kept only with more than one engine, and only
    /// until its first text was streamed).
    retry: Option<(PreparedPage, OcrOptions, bool, usize)>,
    sink: EventSink,
    /// The engine's error; `None` when the engine dropped the page without a word.
    error: Option<EngineError>,
}

pub(crate) enum Msg {
    Submit(Box<Pending>),
    Cancel(u64),
    /// A page finished (or its listener went away) on `replica`.
    Done {
        replica: usize,
        tag: u64,
    },
    Returned(Box<Returned>),
    /// Finish the pages held, then stop.
    Close,
}

/// Per-engine state shared with the service's handle (for its reports).
pub(crate) struct Health {
    /// Why each engine is out of service, if it is.
    pub dead: Mutex<Vec<Option<String>>>,
}

pub(crate) struct Dispatcher {
    pub replicas: Arc<[Arc<dyn Replica>]>,
    pub health: Arc<Health>,
    /// Pages submitted to the service and not yet finished (its `load().pages`).
    pub pages: Arc<AtomicUsize>,
    pub per_engine_pages: usize,
    pub tx: Sender<Msg>,
    outstanding: Vec<usize>,
    at: HashMap<u64, usize>,
    queue: VecDeque<Box<Pending>>,
    cancelled: HashSet<u64>,
}

impl Dispatcher {
    pub fn new(
        replicas: Arc<[Arc<dyn Replica>]>,
        health: Arc<Health>,
        pages: Arc<AtomicUsize>,
        per_engine_pages: usize,
        tx: Sender<Msg>,
    ) -> Self {
        let n = replicas.len();
        Dispatcher {
            replicas,
            health,
            pages,
            per_engine_pages: per_engine_pages.max(1),
            tx,
            outstanding: vec![0; n],
            at: HashMap::new(),
            queue: VecDeque::new(),
            cancelled: HashSet::new(),
        }
    }

    /// Take messages until closed and drained.
    pub fn run(mut self, inbox: &Receiver<Msg>) {
        let mut closing = false;
        while let Ok(msg) = inbox.recv() {
            match msg {
                Msg::Submit(p) => self.queue.push_back(p),
                Msg::Cancel(tag) => self.cancel(tag),
                Msg::Done { replica, tag } => {
                    self.outstanding[replica] -= 1;
                    self.at.remove(&tag);
                    self.cancelled.remove(&tag);
                }
                Msg::Returned(r) => self.returned(*r),
                Msg::Close => closing = true,
            }
            self.pump();
            if closing && self.queue.is_empty() && self.outstanding.iter().all(|&n| n == 0) {
                return;
            }
        }
    }

    fn cancel(&mut self, tag: u64) {
        if let Some(k) = self.queue.iter().position(|p| p.tag == tag) {
            self.queue.remove(k);
            self.pages.fetch_sub(1, Ordering::Relaxed);
        } else if let Some(&replica) = self.at.get(&tag) {
            // The engine drops the page's sink; it comes back as `Returned` and ends there.
            self.cancelled.insert(tag);
            self.replicas[replica].cancel(tag);
        }
    }

    fn returned(&mut self, r: Returned) {
        let Returned { replica, tag, retry, mut sink, error } = r;
        self.outstanding[replica] -= 1;
        self.at.remove(&tag);
        if self.cancelled.remove(&tag) {
            self.pages.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let engine_failed = match &error {
            None => Some("its engine thread stopped without finishing its pages".to_string()),
            Some(_) => self.replicas[replica].failure(),
        };
        if let Some(why) = &engine_failed {
            self.mark_dead(replica, why);
        }
        match (engine_failed, retry) {
            (Some(_), Some((page, options, stream, attempts))) => {
                tracing::warn!("page {tag}: retrying on another engine after {} failed", self.replicas[replica].description());
                self.queue.push_front(Box::new(Pending { tag, page, options, stream, sink, attempts: attempts + 1 }));
            }
            (why, _) => {
                let error = error.unwrap_or_else(|| {
                    EngineError::Device(format!("{}: {}", self.replicas[replica].description(), why.unwrap_or_default()))
                });
                self.pages.fetch_sub(1, Ordering::Relaxed);
                sink(Event::Finished { tag, result: Box::new(Err(error)) });
            }
        }
    }

    fn mark_dead(&self, replica: usize, why: &str) {
        let mut dead = self.health.dead.lock().expect("health lock");
        if dead[replica].is_none() {
            tracing::warn!(
                "engine {replica} ({}) is out of service: {why}; its pages go to the other engines",
                self.replicas[replica].description()
            );
            dead[replica] = Some(why.to_string());
        }
    }

    /// The live engine with room and the fewest pages outstanding; `Err(())` when none is live.
    fn pick(&self) -> Result<Option<usize>, ()> {
        let mut best: Option<usize> = None;
        let mut live = false;
        for (i, replica) in self.replicas.iter().enumerate() {
            if self.health.dead.lock().expect("health lock")[i].is_some() {
                continue;
            }
            if let Some(why) = replica.failure() {
                self.mark_dead(i, &why);
                continue;
            }
            live = true;
            if self.outstanding[i] < self.per_engine_pages && best.is_none_or(|b| self.outstanding[i] < self.outstanding[b]) {
                best = Some(i);
            }
        }
        if live { Ok(best) } else { Err(()) }
    }

    /// Hand queued pages to engines while any has room.
    fn pump(&mut self) {
        while !self.queue.is_empty() {
            let replica = match self.pick() {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(()) => {
                    let why = self.every_engine_failed();
                    for mut p in self.queue.drain(..) {
                        self.pages.fetch_sub(1, Ordering::Relaxed);
                        (p.sink)(Event::Finished { tag: p.tag, result: Box::new(Err(EngineError::Device(why.clone()))) });
                    }
                    return;
                }
            };
            let p = self.queue.pop_front().expect("a queued page");
            let Pending { tag, page, options, stream, sink, attempts } = *p;
            self.outstanding[replica] += 1;
            self.at.insert(tag, replica);
            // A copy to retry with exists only where another engine could take it.
            let retry = (self.replicas.len() > 1).then(|| (page.clone(), options.clone(), stream, attempts));
            let mut tracked =
                Tracked { replica, tag, retry, sink: Some(sink), done: false, tx: self.tx.clone(), pages: self.pages.clone() };
            self.replicas[replica].submit(tag, page, options, stream, Box::new(move |event| tracked.deliver(event)));
        }
    }

    fn every_engine_failed(&self) -> String {
        let dead = self.health.dead.lock().expect("health lock");
        let each: Vec<String> = self
            .replicas
            .iter()
            .zip(dead.iter())
            .map(|(r, why)| format!("{}: {}", r.description(), why.as_deref().unwrap_or("failed")))
            .collect();
        format!("every engine has failed ({}); restart the service, on other devices or with a smaller --max-seqs", each.join("; "))
    }
}

/// The sink an engine gets: forwards a page's events to the caller's sink, and sends the page
/// back to the dispatcher when the engine fails with it (or drops it).
struct Tracked {
    replica: usize,
    tag: u64,
    retry: Option<(PreparedPage, OcrOptions, bool, usize)>,
    sink: Option<EventSink>,
    done: bool,
    tx: Sender<Msg>,
    pages: Arc<AtomicUsize>,
}

impl Tracked {
    fn deliver(&mut self, event: Event) -> bool {
        let Some(sink) = self.sink.as_mut() else { return false };
        match event {
            // The page may still start over elsewhere if its engine fails before any text.
            Event::Started { .. } => {
                let listening = sink(event);
                if !listening {
                    self.finish();
                }
                listening
            }
            Event::Text { .. } => {
                // Text has reached the caller: the page can no longer start over elsewhere.
                self.retry = None;
                let listening = sink(event);
                if !listening {
                    self.finish();
                }
                listening
            }
            Event::Finished { tag, result } => {
                if let Err(EngineError::Device(_)) = result.as_ref() {
                    // Maybe the engine failed rather than the page: the dispatcher asks the engine.
                    let Err(error) = *result else { unreachable!() };
                    self.done = true;
                    let returned = Returned {
                        replica: self.replica,
                        tag,
                        retry: self.retry.take(),
                        sink: self.sink.take().expect("sink"),
                        error: Some(error),
                    };
                    let _ = self.tx.send(Msg::Returned(Box::new(returned)));
                    return true;
                }
                // Counted as finished before the caller hears of it: a caller that reads the
                // service's load as soon as it has its result sees its page gone.
                let mut sink = self.sink.take().expect("sink");
                self.finish();
                sink(Event::Finished { tag, result });
                true
            }
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.sink = None;
        self.pages.fetch_sub(1, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Done { replica: self.replica, tag: self.tag });
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // The engine let go of the page without finishing it: cancelled, or the engine died.
        if let Some(sink) = self.sink.take() {
            let returned = Returned { replica: self.replica, tag: self.tag, retry: self.retry.take(), sink, error: None };
            let _ = self.tx.send(Msg::Returned(Box::new(returned)));
        }
    }
}
