//! The model and its engine on a thread of their own, fed from any number of threads: what a
//! server (`dsocr serve`) or an application with many concurrent callers needs (docs/engine.md,
//! "Service").
//!
//! Callers prepare their pages themselves (CPU work: [`OcrService::prepare`], on their own
//! threads), then [`OcrService::submit`] each one with a sink that receives its [`Event`]s. All
//! pages share the one engine, so concurrent callers share its batch. A sink that returns `false`
//! (its receiver is gone: the client disconnected) cancels its page at once, and its KV row goes
//! to the next page.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dsocr_engine::{Engine, EngineError, EngineOptions, EngineStats, Event, OcrOptions, OcrTokenizer, PreparedPage, Request, prepare_page};
use dsocr_preprocess::RgbImage;

use crate::{DeepseekOcr, OcrError};

/// How often the engine thread refreshes the load and counters it shares while busy.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// Where a page's events go. Returns `false` when nobody listens any more: the page is cancelled.
pub type EventSink = Box<dyn FnMut(Event) -> bool + Send>;

/// A page to queue, with where its events go.
struct Submission {
    tag: u64,
    page: Result<PreparedPage, EngineError>,
    options: OcrOptions,
    stream: bool,
    sink: EventSink,
}

enum Command {
    Submit(Box<Submission>),
    Cancel(u64),
}

/// What the service is doing now.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ServiceLoad {
    /// Pages submitted and not yet finished (queued in the service, waiting in the engine, or
    /// in flight).
    pub pages: usize,
    /// Pages decoding in the engine's last step.
    pub in_flight: usize,
    /// Pages the engine holds that wait for a row.
    pub waiting: usize,
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
pub struct OcrService {
    commands: Sender<Command>,
    tokenizer: Arc<dyn OcrTokenizer>,
    /// The loaded checkpoint's architecture: options are converted to it.
    arch: dsocr_preprocess::Architecture,
    next_tag: AtomicU64,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    description: String,
}

impl std::fmt::Debug for OcrService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcrService").field("model", &self.description).finish()
    }
}

impl OcrService {
    /// Start the thread, load the model on it with `load` (the device's work stays on that one
    /// thread) and make its engine with `options`. Returns once the model is loaded, or with the
    /// error that stopped it.
    pub fn start<L>(load: L, options: EngineOptions) -> Result<Self, OcrError>
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
                Ok(OcrService { commands, tokenizer, arch, next_tag: AtomicU64::new(0), shared, thread: Some(thread), description })
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let panic = thread.join().err().map(|p| panic_text(&p)).unwrap_or_default();
                Err(OcrError::Device(format!("the engine thread stopped while loading the model: {panic}")))
            }
        }
    }

    /// The tokenizer (to prepare pages).
    pub fn tokenizer(&self) -> Arc<dyn OcrTokenizer> {
        self.tokenizer.clone()
    }

    /// Preprocess an image for `options`, converted to the loaded checkpoint
    /// ([`OcrOptions::for_architecture`]) (CPU work: call it on the caller's thread or a blocking
    /// pool, not on an async executor).
    pub fn prepare(&self, image: &RgbImage, options: &OcrOptions) -> Result<PreparedPage, EngineError> {
        prepare_page(image, &options.for_architecture(self.arch)?, self.tokenizer.as_ref())
    }

    /// Queue a page (or the error its preparation gave, which comes straight back as its result).
    /// `stream`: send [`Event::Text`] as text is generated. Returns the page's tag, which its
    /// events carry and [`OcrService::cancel`] takes.
    pub fn submit(&self, page: Result<PreparedPage, EngineError>, options: OcrOptions, stream: bool, mut sink: EventSink) -> u64 {
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        // The generation defaults of the loaded checkpoint; a mode it cannot run already failed in
        // `prepare`, so such a page is an error whatever the options say.
        let options = options.for_architecture(self.arch).unwrap_or(options);
        if let Some(why) = self.failure() {
            sink(Event::Finished { tag, result: Box::new(Err(EngineError::Device(why))) });
            return tag;
        }
        self.shared.submitted.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::SendError(Command::Submit(mut s))) =
            self.commands.send(Command::Submit(Box::new(Submission { tag, page, options, stream, sink })))
        {
            self.shared.submitted.fetch_sub(1, Ordering::Relaxed);
            (s.sink)(Event::Finished { tag, result: Box::new(Err(EngineError::Device("the engine has stopped".into()))) });
        }
        tag
    }

    /// Drop a page (waiting or running); its sink gets nothing more.
    pub fn cancel(&self, tag: u64) {
        let _ = self.commands.send(Command::Cancel(tag));
    }

    /// Pages in the service now.
    pub fn load(&self) -> ServiceLoad {
        let mut load = *self.shared.load.lock().expect("load lock");
        load.pages = self.shared.submitted.load(Ordering::Relaxed);
        load
    }

    /// The engine's counters.
    pub fn stats(&self) -> EngineStats {
        *self.shared.stats.lock().expect("stats lock")
    }

    /// Why the engine stopped, if it did (a device error): the service then refuses new pages.
    pub fn failure(&self) -> Option<String> {
        self.shared.failed.lock().expect("failure lock").clone()
    }

    /// The model and device, in words.
    pub fn description(&self) -> &str {
        &self.description
    }
}

impl Drop for OcrService {
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
                    engine.submit(Request { tag, page, options, stream }, &mut route);
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
            Event::Text { tag, .. } => (*tag, false),
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

fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string())).unwrap_or_default()
}
