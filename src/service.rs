//! The model and its engines on threads of their own, fed from any number of threads: what a
//! server (`dsocr serve`), `dsocr ocr` on several GPUs, or an application with many concurrent
//! callers needs (docs/engine.md, "Service"; docs/scale.md, "Several GPUs").
//!
//! Callers prepare their pages themselves (CPU work: [`OcrService::prepare`], on their own
//! threads), then [`OcrService::submit`] each one with a sink that receives its [`Event`]s. A
//! service runs one engine per device ([`OcrService::start_on`]), each with its own weights, KV
//! pool and decode graphs; pages wait in one queue and go to the least-loaded engine, and the
//! pages of an engine that fails go to the others (`dispatch.rs`). With one device all callers
//! share one engine's batch. A sink that returns `false` (its receiver is gone: the client
//! disconnected) cancels its page at once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use dsocr_engine::{EngineError, EngineOptions, EngineStats, Event, OcrOptions, OcrTokenizer, PreparedPage, prepare_page};
use dsocr_preprocess::{Architecture, RgbImage};

use crate::common::DeviceSpec;
use crate::dispatch::{Dispatcher, Health, Msg, Pending};
use crate::engine_thread::EngineThread;
use crate::replica::{EventSink, Replica, ServiceLoad};
use crate::{DeepseekOcr, OcrError};

/// How the service spreads pages over its engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceOptions {
    /// Most pages handed to one engine at a time (waiting in it or in flight); the others wait
    /// in the service's queue for whichever engine frees up first. Larger than an engine's rows
    /// (at most 256) so that each keeps a full batch and pages ready to admit.
    pub per_engine_pages: usize,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions { per_engine_pages: 512 }
    }
}

/// One engine of a service, as [`OcrService::engines`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EngineStatus {
    /// The model and device, in words (or the device, for one that never started).
    pub description: String,
    /// Why it is out of service, if it is.
    pub failure: Option<String>,
    /// Pages it finished (failed ones included).
    pub pages: usize,
}

/// A loaded model and its engines on their own threads. Dropping it stops the threads after the
/// pages in flight finish.
pub struct OcrService {
    commands: Sender<Msg>,
    replicas: Arc<[Arc<dyn Replica>]>,
    health: Arc<Health>,
    pages: Arc<AtomicUsize>,
    /// Devices whose engine never started, and why.
    not_started: Vec<EngineStatus>,
    tokenizer: Arc<dyn OcrTokenizer>,
    /// The loaded checkpoint's architecture: options are converted to it.
    arch: Architecture,
    next_tag: AtomicU64,
    thread: Option<JoinHandle<()>>,
    description: String,
}

impl std::fmt::Debug for OcrService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcrService").field("model", &self.description).finish()
    }
}

impl OcrService {
    /// One engine: start its thread, load the model on it with `load` (the device's work stays
    /// on that one thread) and make its engine with `options`. Returns once the model is loaded,
    /// or with the error that stopped it.
    pub fn start<L>(load: L, options: EngineOptions) -> Result<Self, OcrError>
    where
        L: FnOnce() -> Result<DeepseekOcr, OcrError> + Send + 'static,
    {
        let (thread, tokenizer, arch) = EngineThread::start(load, options)?;
        OcrService::from_replicas(vec![Arc::new(thread)], tokenizer, arch, ServiceOptions::default())
    }

    /// One engine per device in `devices` (a device may repeat: several CPU engines), each
    /// loaded by `load` on its own thread, all at once. An engine that cannot start is said in
    /// the log and in [`OcrService::engines`], and the others serve; the error names every device
    /// when none starts.
    pub fn start_on<L>(devices: &[DeviceSpec], load: L, options: EngineOptions, service: ServiceOptions) -> Result<Self, OcrError>
    where
        L: Fn(DeviceSpec) -> Result<DeepseekOcr, OcrError> + Send + Sync + 'static,
    {
        if devices.is_empty() {
            return Err(OcrError::Device("no device to start an engine on; name at least one (--devices cpu)".into()));
        }
        let load = Arc::new(load);
        let starting: Vec<_> = devices
            .iter()
            .map(|&device| {
                let (load, options) = (load.clone(), options.clone());
                std::thread::spawn(move || EngineThread::start(move || load(device), options))
            })
            .collect();
        let mut started = Vec::new();
        let mut not_started = Vec::new();
        for (device, thread) in devices.iter().zip(starting) {
            match thread.join().map_err(|p| OcrError::Device(dsocr_engine::panic_message(&*p).to_string())).and_then(|r| r) {
                Ok(loaded) => started.push(loaded),
                Err(e) => {
                    tracing::warn!("{device}: the engine did not start: {e}");
                    not_started.push(EngineStatus { description: device.to_string(), failure: Some(e.to_string()), pages: 0 });
                }
            }
        }
        let Some((_, tokenizer, arch)) = started.first() else {
            let each: Vec<String> =
                not_started.iter().map(|s| format!("{}: {}", s.description, s.failure.as_deref().unwrap_or_default())).collect();
            return Err(OcrError::Device(format!("no engine started ({})", each.join("; "))));
        };
        let (tokenizer, arch) = (tokenizer.clone(), *arch);
        let replicas: Vec<Arc<dyn Replica>> = started.into_iter().map(|(t, _, _)| Arc::new(t) as Arc<dyn Replica>).collect();
        let mut service = OcrService::from_replicas(replicas, tokenizer, arch, service)?;
        service.not_started = not_started;
        Ok(service)
    }

    /// A service over engines made elsewhere (all running the same checkpoint: `tokenizer` and
    /// `arch` prepare pages for every one of them).
    pub fn from_replicas(
        replicas: Vec<Arc<dyn Replica>>,
        tokenizer: Arc<dyn OcrTokenizer>,
        arch: Architecture,
        options: ServiceOptions,
    ) -> Result<Self, OcrError> {
        if replicas.is_empty() {
            return Err(OcrError::Device("a service needs at least one engine".into()));
        }
        let description = match replicas.as_slice() {
            [one] => one.description().to_string(),
            many => format!("{} engines: {}", many.len(), many.iter().map(|r| r.description()).collect::<Vec<_>>().join("; ")),
        };
        let replicas: Arc<[Arc<dyn Replica>]> = replicas.into();
        let health = Arc::new(Health { dead: Mutex::new(vec![None; replicas.len()]) });
        let pages = Arc::new(AtomicUsize::new(0));
        let (commands, inbox) = mpsc::channel();
        let dispatcher = Dispatcher::new(replicas.clone(), health.clone(), pages.clone(), options.per_engine_pages, commands.clone());
        let thread = std::thread::Builder::new()
            .name("dsocr-dispatch".into())
            .spawn(move || dispatcher.run(&inbox))
            .map_err(|e| OcrError::Device(format!("cannot start the dispatcher thread: {e}")))?;
        Ok(OcrService {
            commands,
            replicas,
            health,
            pages,
            not_started: Vec::new(),
            tokenizer,
            arch,
            next_tag: AtomicU64::new(0),
            thread: Some(thread),
            description,
        })
    }

    /// The checkpoint's architecture (options are converted to it: [`OcrOptions::for_architecture`]).
    pub fn architecture(&self) -> Architecture {
        self.arch
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
        let page = match (page, self.failure()) {
            (Err(e), _) => {
                sink(Event::Finished { tag, result: Box::new(Err(e)) });
                return tag;
            }
            (Ok(_), Some(why)) => {
                sink(Event::Finished { tag, result: Box::new(Err(EngineError::Device(why))) });
                return tag;
            }
            (Ok(page), None) => page,
        };
        self.pages.fetch_add(1, Ordering::Relaxed);
        let pending = Pending { tag, page, options, stream, sink, attempts: 0 };
        if let Err(mpsc::SendError(Msg::Submit(mut p))) = self.commands.send(Msg::Submit(Box::new(pending))) {
            self.pages.fetch_sub(1, Ordering::Relaxed);
            (p.sink)(Event::Finished { tag, result: Box::new(Err(EngineError::Device("the service has stopped".into()))) });
        }
        tag
    }

    /// Drop a page (queued, waiting or running); its sink gets nothing more.
    pub fn cancel(&self, tag: u64) {
        let _ = self.commands.send(Msg::Cancel(tag));
    }

    /// Pages in the service now.
    pub fn load(&self) -> ServiceLoad {
        let mut load = ServiceLoad { pages: self.pages.load(Ordering::Relaxed), ..ServiceLoad::default() };
        for replica in self.replicas.iter() {
            let l = replica.load();
            load.in_flight += l.in_flight;
            load.waiting += l.waiting;
        }
        load
    }

    /// The engines' counters, summed (max_seqs and kv_blocks: all engines'; seq_capacity: the largest).
    pub fn stats(&self) -> EngineStats {
        let mut all = EngineStats::default();
        for s in self.replicas.iter().map(|r| r.stats()) {
            all.max_seqs += s.max_seqs;
            all.kv_blocks += s.kv_blocks;
            all.seq_capacity = all.seq_capacity.max(s.seq_capacity);
            all.steps += s.steps;
            all.tokens += s.tokens;
            all.pages += s.pages;
            all.cancelled += s.cancelled;
            all.peak_in_flight += s.peak_in_flight;
            all.batch_sum += s.batch_sum;
            all.input_wait_s += s.input_wait_s;
            all.vision_s += s.vision_s;
            all.vision_batches += s.vision_batches;
            all.vision_wait_s += s.vision_wait_s;
            all.banned_choices += s.banned_choices;
            all.host_choices += s.host_choices;
            all.prefill_s += s.prefill_s;
            all.decode_s += s.decode_s;
            all.step_s += s.step_s;
            all.graph_captures += s.graph_captures;
            all.capture_s += s.capture_s;
            all.memory_bytes = match (all.memory_bytes, s.memory_bytes) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
        }
        all
    }

    /// Why the service stopped, if it did: every engine failed (it then refuses new pages).
    /// One engine failing is not a failure of the service: see [`OcrService::engines`].
    pub fn failure(&self) -> Option<String> {
        let dead = self.health.dead.lock().expect("health lock");
        let whys: Option<Vec<String>> = self.replicas.iter().enumerate().map(|(i, r)| dead[i].clone().or_else(|| r.failure())).collect();
        whys.map(|w| if w.len() == 1 { w[0].clone() } else { format!("every engine has failed: {}", w.join("; ")) })
    }

    /// Every engine, those that never started included, and why each out of service is.
    pub fn engines(&self) -> Vec<EngineStatus> {
        let dead = self.health.dead.lock().expect("health lock").clone();
        let mut all: Vec<EngineStatus> = self
            .replicas
            .iter()
            .zip(dead)
            .map(|(r, why)| EngineStatus {
                description: r.description().to_string(),
                failure: why.or_else(|| r.failure()),
                pages: r.stats().pages,
            })
            .collect();
        all.extend(self.not_started.iter().cloned());
        all
    }

    /// The model and devices, in words.
    pub fn description(&self) -> &str {
        &self.description
    }
}

impl Drop for OcrService {
    fn drop(&mut self) {
        // The dispatcher hands out what is queued, waits for the pages held, then stops; the
        // engines stop when their last handle (here) goes.
        let _ = self.commands.send(Msg::Close);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
