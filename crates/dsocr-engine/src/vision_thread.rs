//! Vision encoding beside the decode loop (docs/engine.md, "Vision beside decoding").
//!
//! On a GPU the engine hands the pages it will admit next to a vision thread, in jobs of
//! [`crate::EngineOptions::vision_lookahead`] pages. CubeCL gives every thread its own CUDA stream,
//! so the encoder's kernels (large GEMMs, attention over thousands of tokens) run while the engine
//! thread replays decode steps (many small kernels that leave most SMs idle), and a page's vision
//! no longer stalls the pages already decoding. The engine admits a page once its job is back.
//!
//! Three rules keep the two streams apart:
//! - The image rows come back through the host (≈2.5 MB a Gundam page in bf16, a fraction of a
//!   millisecond each way), not as device tensors: a tensor written on the vision stream and read
//!   on the decode stream makes CubeCL order the decode stream after everything the vision stream
//!   has queued by then, the next job included, so prefill and decode would wait for vision after
//!   all (measured: docs/perf.md, session 16).
//! - The reads are also how the thread learns that a job is done: a read waits on its own stream
//!   only. A device-wide `sync` would instead block Burn's device thread, through which the
//!   engine's decode steps also go.
//! - Decode steps are captured as CUDA graphs in CUDA's global capture mode, where an allocation or
//!   synchronisation issued by any other thread invalidates the capture. The runner takes the
//!   [`CaptureFence`] for writing to capture and the vision thread holds it for reading while a
//!   job runs; a step that finds the fence busy runs uncaptured, and the vision thread lets the
//!   capture go first before its next job.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dsocr_core::StreamCopy;
use dsocr_core::burn::prelude::*;
use dsocr_core::burn::tensor::DType;
use dsocr_vision::DeepEncoder;

use crate::EngineError;
use crate::page::PreparedPage;
use crate::scheduler::SeqId;
use crate::vision_batch::encode_images;

/// Jobs handed to the thread and not yet collected, at most: one running, one queued behind it
/// so the thread never waits for the engine between jobs.
pub(crate) const JOBS_IN_FLIGHT: usize = 2;

/// Orders decode-step captures against the vision thread's work (module docs).
#[derive(Debug, Default)]
pub(crate) struct CaptureFence {
    lock: RwLock<()>,
    /// A capture is waiting: the vision thread starts no new job until it ran.
    wanted: AtomicBool,
}

impl CaptureFence {
    /// The fence for a capture, when the vision thread is between jobs; otherwise `None`, and
    /// the vision thread pauses before its next job until a capture has had its turn (or
    /// [`CaptureFence::not_wanted`] says none is waiting any more).
    pub(crate) fn try_capture(&self) -> Option<RwLockWriteGuard<'_, ()>> {
        match self.lock.try_write() {
            Ok(guard) => {
                self.wanted.store(false, Ordering::Release);
                Some(guard)
            }
            Err(_) => {
                self.wanted.store(true, Ordering::Release);
                None
            }
        }
    }

    /// The runner needs no capture now (its batch moved to a captured bucket).
    pub(crate) fn not_wanted(&self) {
        self.wanted.store(false, Ordering::Release);
    }

    /// Held by the vision thread while a job runs.
    fn enter(&self) -> RwLockReadGuard<'_, ()> {
        while self.wanted.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_micros(200));
        }
        self.lock.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Pages to encode together.
pub(crate) struct Job {
    pub ids: Vec<SeqId>,
    pub pages: Vec<Arc<PreparedPage>>,
}

/// A job's outcome: each page's image rows `[N, H]` on the host (or why not), when the job
/// started and how long it took until its results were read back.
pub(crate) struct Done {
    pub ids: Vec<SeqId>,
    pub rows: Vec<Result<TensorData, EngineError>>,
    pub started: Instant,
    pub seconds: f64,
}

/// The vision thread: jobs in, [`Done`]s out, in order.
pub(crate) struct VisionThread {
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    handle: Option<JoinHandle<()>>,
    fence: Arc<CaptureFence>,
}

impl VisionThread {
    /// A thread encoding with a copy of `encoder` made on the thread (its weights on the thread's
    /// own stream: [`StreamCopy`]) on `device` in `dtype`, in view batches of at most `max_bytes`
    /// ([`encode_images`]). The copy takes as much device memory as the encoder's weights (≈0.8 GB
    /// for DeepSeek-OCR in bf16); this returns once it is made.
    pub(crate) fn spawn(encoder: DeepEncoder, device: Device, dtype: DType, max_bytes: u64) -> Result<Self, EngineError> {
        let (jobs, job_rx) = channel::<Job>();
        let (done_tx, done) = channel::<Done>();
        let (ready_tx, ready) = channel::<()>();
        let fence = Arc::new(CaptureFence::default());
        let thread_fence = fence.clone();
        let handle = std::thread::Builder::new()
            .name("dsocr-vision".into())
            .spawn(move || {
                // The thread's own copy of the weights, on its own stream (dsocr_core::StreamCopy
                // says why); the one it was given is dropped, the engine keeps its own.
                let encoder = {
                    let _guard = thread_fence.enter();
                    encoder.stream_copy()
                };
                let _ = ready_tx.send(());
                for job in job_rx {
                    let guard = thread_fence.enter();
                    let started = Instant::now();
                    let pages: Vec<&PreparedPage> = job.pages.iter().map(|p| &**p).collect();
                    let rows = encode_images(&encoder, &device, dtype, &pages, max_bytes)
                        .into_iter()
                        .map(|rows| {
                            rows?.try_into_data().map_err(|e| EngineError::Device(format!("device error during the vision encoder: {e:?}")))
                        })
                        .collect();
                    drop(guard);
                    let done = Done { ids: job.ids, rows, started, seconds: started.elapsed().as_secs_f64() };
                    if done_tx.send(done).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| EngineError::Device(format!("cannot start the vision thread: {e}")))?;
        // Back once the copy is made, so that the memory the engine sizes its KV pool from
        // counts it.
        ready.recv().map_err(|_| stopped())?;
        Ok(VisionThread { jobs: Some(jobs), done, handle: Some(handle), fence })
    }

    /// The fence the runner takes to capture decode steps.
    pub(crate) fn fence(&self) -> Arc<CaptureFence> {
        self.fence.clone()
    }

    /// Queue a job.
    pub(crate) fn send(&self, job: Job) -> Result<(), EngineError> {
        self.jobs.as_ref().expect("open until dropped").send(job).map_err(|_| stopped())
    }

    /// The next finished job: waiting for it when `block`, else only if one is back.
    pub(crate) fn recv(&self, block: bool) -> Result<Option<Done>, EngineError> {
        if block {
            return self.done.recv().map(Some).map_err(|_| stopped());
        }
        match self.done.try_recv() {
            Ok(done) => Ok(Some(done)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(stopped()),
        }
    }
}

impl Drop for VisionThread {
    fn drop(&mut self) {
        // No capture will come (the engine is going): a queued job must not wait for one.
        self.fence.not_wanted();
        self.jobs = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn stopped() -> EngineError {
    EngineError::Device("the vision thread stopped (a panic while encoding; see the log above)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's side of a wait for the vision thread: a capture wished for while a job ran
    /// is withdrawn before the engine blocks, and the thread's next job starts.
    #[test]
    fn a_withdrawn_capture_lets_the_next_job_start() {
        let fence = Arc::new(CaptureFence::default());
        let job = fence.enter();
        assert!(fence.try_capture().is_none(), "a job holds the fence");
        drop(job);
        fence.not_wanted();
        let thread_fence = fence.clone();
        let next = std::thread::spawn(move || {
            let _job = thread_fence.enter();
        });
        next.join().expect("the next job started");
        assert!(fence.try_capture().is_some(), "between jobs a capture takes the fence");
    }
}
