//! One model and its engine on a thread of their own: one [`Replica`] of an [`crate::OcrService`]
//! (one per device). The device's work stays on that thread; other threads hand it pages over a
//! channel and receive each page's events through its sink. A sink that returns `false` (nobody
//! listens any more) cancels its page at once, and its KV row goes to the next page.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dsocr_engine::{
    Engine, EngineError, EngineOptions, EngineStats, Event, OcrOptions, OcrTokenizer, PreparedPage, Request, panic_message,
};

use crate::replica::{EventSink, Replica, ServiceLoad};
use crate::{DeepseekOcr, OcrError};

/// How often the engine thread refreshes the load and counters it shares while busy.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// A page to queue, with where its events go.
struct Submission {
    tag: u64,
    page: PreparedPage,
    options: OcrOptions,
    stream: bool,
    sink: EventSink,
}

enum Command {
    Submit(Box<Submission>),
    Cancel(u64),
}

/// Shared between the service's handle and its thread.
struct Shared {
    load: Mutex<ServiceLoad>,
    stats: Mutex<EngineStats>,
    submitted: AtomicUsize,
    failed: Mutex<Option<String>>,
}

/// A loaded model and its engine on their own thread. Dropping it stops the thread after the
/// pages in flight finish.
pub struct EngineThread {
    commands: Sender<Command>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    description: String,
}

impl std::fmt::Debug for EngineThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineThread").field("model", &self.description).finish()
    }
}

/// A started engine thread and what its pages are prepared with (the loaded checkpoint's
/// tokenizer and architecture).
pub type Loaded = (EngineThread, Arc<dyn OcrTokenizer>, dsocr_preprocess::Architecture);

impl EngineThread {
    /// Start the thread, load the model on it with `load` and make its engine with `options`.
    /// Returns once the model is loaded, or with the error that stopped it.
    pub fn start<L>(load: L, options: EngineOptions) -> Result<Loaded, OcrError>
    where
        L: FnOnce() -> Result<DeepseekOcr, OcrError> + Send + 'static,
    {
        let (commands, inbox) = mpsc::channel::<Command>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(Arc<dyn OcrTokenizer>, dsocr_preprocess::Architecture, String), OcrError>>();
        let shared =
            Arc::new(Shared { load: Mutex::default(), stats: Mutex::default(), submitted: AtomicUsize::new(0), failed: Mutex::new(None) });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("dsocr-engine".into())
            .spawn(move || {
                let ocr = match load() {
                    Ok(ocr) => ocr,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let engine = match ocr.engine(&options) {
                    Ok(engine) => engine,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let model = ocr.files().map_or("weights in memory".to_string(), |f| f.config.display().to_string());
                let description = format!("{} ({model}) on {:?} in {}", ocr.architecture(), ocr.device(), ocr.float());
                if ready_tx.send(Ok((ocr.shared_tokenizer(), ocr.architecture(), description))).is_err() {
                    return;
                }
                serve(engine, &inbox, &thread_shared);
            })
            .map_err(|e| OcrError::Device(format!("cannot start the engine thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok((tokenizer, arch, description))) => {
                Ok((EngineThread { commands, shared, thread: Some(thread), description }, tokenizer, arch))
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let panic = thread.join().err().map(|p| panic_message(&*p).to_string()).unwrap_or_default();
                Err(OcrError::Device(format!("the engine thread stopped while loading the model: {panic}")))
            }
        }
    }
}

impl Replica for EngineThread {
    fn submit(&self, tag: u64, page: PreparedPage, options: OcrOptions, stream: bool, mut sink: EventSink) {
        if let Some(why) = self.failure() {
            sink(Event::Finished { tag, result: Box::new(Err(EngineError::Device(why))) });
            return;
        }
        self.shared.submitted.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::SendError(Command::Submit(mut s))) =
            self.commands.send(Command::Submit(Box::new(Submission { tag, page, options, stream, sink })))
        {
            self.shared.submitted.fetch_sub(1, Ordering::Relaxed);
            (s.sink)(Event::Finished { tag, result: Box::new(Err(EngineError::Device("the engine has stopped".into()))) });
        }
    }

    fn cancel(&self, tag: u64) {
        let _ = self.commands.send(Command::Cancel(tag));
    }

    fn load(&self) -> ServiceLoad {
        let mut load = *self.shared.load.lock().expect("load lock");
        load.pages = self.shared.submitted.load(Ordering::Relaxed);
        load
    }

    fn stats(&self) -> EngineStats {
        *self.shared.stats.lock().expect("stats lock")
    }

    fn failure(&self) -> Option<String> {
        let failed = self.shared.failed.lock().expect("failure lock").clone();
        // A thread that ended while its handle lives has panicked (it ends normally only once
        // the handle is dropped).
        failed.or_else(|| {
            self.thread
                .as_ref()
                .is_some_and(JoinHandle::is_finished)
                .then(|| "the engine thread has stopped (it panicked: see the log)".to_string())
        })
    }

    fn description(&self) -> &str {
        &self.description
    }
}

impl Drop for EngineThread {
    fn drop(&mut self) {
        // Closing the channel ends the thread once its pages are done.
        let (closed, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.commands, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The engine thread: take commands, step, route events to their sinks.
fn serve(mut engine: Engine<'_>, inbox: &Receiver<Command>, shared: &Shared) {
    let mut sinks: HashMap<u64, EventSink> = HashMap::new();
    let mut gone: Vec<u64> = Vec::new();
    let mut open = true;
    let mut last_publish = Instant::now();
    loop {
        // Wait for work only when there is none; otherwise take what has arrived and step.
        loop {
            let command = if engine.is_idle() && open {
                match inbox.recv_timeout(Duration::from_millis(200)) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        open = false;
                        None
                    }
                }
            } else if open {
                match inbox.try_recv() {
                    Ok(c) => Some(c),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        None
                    }
                }
            } else {
                None
            };
            let Some(command) = command else { break };
            match command {
                Command::Submit(submission) => {
                    let Submission { tag, page, options, stream, sink } = *submission;
                    sinks.insert(tag, sink);
                    let mut route = router(&mut sinks, &mut gone, shared);
                    engine.submit(Request { tag, page: Ok(page), options, stream }, &mut route);
                }
                Command::Cancel(tag) => {
                    if sinks.remove(&tag).is_some() {
                        engine.cancel(tag);
                        shared.submitted.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
        }
        for tag in gone.drain(..) {
            engine.cancel(tag);
        }
        if engine.is_idle() {
            publish(&engine, shared);
            if !open {
                return;
            }
            continue;
        }
        let result = engine.step(&mut router(&mut sinks, &mut gone, shared));
        if last_publish.elapsed() >= PUBLISH_EVERY {
            publish(&engine, shared);
            last_publish = Instant::now();
        }
        if let Err(e) = result {
            // A device error: every page still here fails with it, and the service refuses more.
            let why = format!("the engine stopped: {e}");
            tracing::error!("{why}");
            *shared.failed.lock().expect("failure lock") = Some(why.clone());
            for (tag, mut sink) in sinks.drain() {
                sink(Event::Finished { tag, result: Box::new(Err(EngineError::Device(why.clone()))) });
            }
            shared.submitted.store(0, Ordering::Relaxed);
            return;
        }
    }
}

/// Routes events to their sinks; a sink that returns `false` is dropped and its tag noted in
/// `gone` (cancelled after the step).
fn router<'a>(sinks: &'a mut HashMap<u64, EventSink>, gone: &'a mut Vec<u64>, shared: &'a Shared) -> impl FnMut(Event) + 'a {
    move |event: Event| {
        let (tag, last) = match &event {
            Event::Started { tag } | Event::Text { tag, .. } => (*tag, false),
            Event::Finished { tag, .. } => (*tag, true),
        };
        let Some(sink) = sinks.get_mut(&tag) else { return };
        let listening = sink(event);
        if last || !listening {
            sinks.remove(&tag);
            shared.submitted.fetch_sub(1, Ordering::Relaxed);
            if !last {
                gone.push(tag);
            }
        }
    }
}

fn publish(engine: &Engine<'_>, shared: &Shared) {
    let (waiting, in_flight) = engine.load();
    {
        let mut load = shared.load.lock().expect("load lock");
        load.waiting = waiting;
        load.in_flight = in_flight;
    }
    *shared.stats.lock().expect("stats lock") = engine.stats();
}
