//! The engine: pages in, results out, many pages decoding together (docs/engine.md).
//!
//! Each step the [`Scheduler`] admits waiting pages into free pool rows; each admitted page is
//! encoded (SAM, CLIP, projector) and prefilled into its row, and its first token chosen; then
//! one decode step runs every running page at its own position; each page's next token is
//! chosen by its own sampler and repetition guard, and pages that reached EOS or their budget
//! are retired, freeing their rows for the next step's admissions.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use dsocr_core::burn::prelude::*;
use dsocr_lm::DeepseekLm;
use dsocr_vision::DeepEncoder;
use serde::Serialize;

use crate::page::{Event, OcrOptions, PreparedPage, Request};
use crate::pipeline::encode_page;
use crate::result::finish_page;
use crate::runner::Runner;
use crate::scheduler::{Scheduler, SeqId};
use crate::sequence::Sequence;
use crate::tokenizer::OcrTokenizer;
use crate::{EngineError, EngineOptions};

/// Pages in flight on the CPU when [`EngineOptions::max_seqs`] is not set.
const CPU_DEFAULT_SEQS: usize = 4;
/// Most pages in flight on a GPU when [`EngineOptions::max_seqs`] is not set.
const GPU_MAX_SEQS: usize = 256;

/// Counters over an engine's life.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EngineStats {
    /// Pool rows: the most pages that can be in flight.
    pub rows: usize,
    /// Slots per row.
    pub seq_capacity: usize,
    /// Decode steps run.
    pub steps: usize,
    /// Tokens generated (first tokens included).
    pub tokens: usize,
    /// Pages finished (failed ones included).
    pub pages: usize,
    /// Most pages decoding in one step.
    pub peak_in_flight: usize,
    /// Sum over steps of the pages decoding in them (mean batch = this / steps).
    pub batch_sum: usize,
    /// Seconds spent waiting for the next request with nothing to run (the GPU idle on the CPU).
    pub input_wait_s: f64,
    /// Seconds in vision encoding.
    pub vision_s: f64,
    /// Seconds in prefill (and first-token choice).
    pub prefill_s: f64,
    /// Seconds in decode steps (and token choice).
    pub decode_s: f64,
    /// Of `decode_s`: running the steps until their tokens were on the host (the GPU's time,
    /// graph captures included).
    pub step_s: f64,
    /// Decode-step graphs captured, and the seconds that took (warm-up runs included).
    pub graph_captures: usize,
    /// See `graph_captures`.
    pub capture_s: f64,
}

/// A waiting page.
struct Pending {
    tag: u64,
    page: PreparedPage,
    options: OcrOptions,
    stream: bool,
    arrived: Instant,
}

/// The continuous-batching engine over a loaded model (borrowed for its lifetime `'m`).
pub struct Engine<'m> {
    encoder: &'m DeepEncoder,
    lm: &'m DeepseekLm,
    tokenizer: &'m dyn OcrTokenizer,
    runner: Runner<'m>,
    scheduler: Scheduler,
    pending: HashMap<SeqId, Pending>,
    running: HashMap<SeqId, Sequence<'m>>,
    /// The decode batch the runner holds (ids in order); rewritten when it changes.
    batch: Vec<SeqId>,
    next_id: SeqId,
    stats: EngineStats,
}

impl<'m> Engine<'m> {
    /// An engine over `encoder`, `lm` and `tokenizer`, its KV pool sized by `options` and, on a
    /// GPU, by the memory left after the weights.
    pub fn new(
        encoder: &'m DeepEncoder,
        lm: &'m DeepseekLm,
        tokenizer: &'m dyn OcrTokenizer,
        options: &EngineOptions,
    ) -> Result<Self, EngineError> {
        dsocr_kernels::configure(options.kernels);
        let context = lm.config().max_position_embeddings;
        let capacity = options.seq_capacity.unwrap_or(context).min(context);
        let device = lm.device();
        let row_bytes = lm.pool_row_bytes(capacity);
        let rows = match dsocr_kernels::device_memory_bytes(&device) {
            Some(total) => {
                let used = device.memory_pool_usage().map_or(0, |u| u.bytes_reserved);
                let budget = (total as f64 * f64::from(options.gpu_memory)) as u64;
                let free = budget.saturating_sub(used).saturating_sub(options.activation_reserve);
                let fit = (free / row_bytes) as usize;
                tracing::info!(
                    "KV pool: {:.1} GB of {:.1} GB budget after {:.1} GB in use and {:.1} GB for activations: {fit} rows of {capacity} slots ({:.0} MB each)",
                    free as f64 / 1e9,
                    budget as f64 / 1e9,
                    used as f64 / 1e9,
                    options.activation_reserve as f64 / 1e9,
                    row_bytes as f64 / 1e6
                );
                fit.min(options.max_seqs.unwrap_or(GPU_MAX_SEQS))
            }
            None => options.max_seqs.unwrap_or(CPU_DEFAULT_SEQS),
        };
        if rows == 0 {
            return Err(EngineError::Settings(format!(
                "no room for one sequence of {capacity} slots ({:.0} MB) within --gpu-memory {}: lower --max-new-tokens, or raise --gpu-memory",
                row_bytes as f64 / 1e6,
                options.gpu_memory
            )));
        }
        let graphs = options.decode_graphs && dsocr_kernels::kernels_enabled(&device);
        let runner = Runner::new(lm, rows, capacity, graphs, options.prefill_chunk);
        let stats = EngineStats { rows, seq_capacity: capacity, ..Default::default() };
        Ok(Engine {
            encoder,
            lm,
            tokenizer,
            runner,
            scheduler: Scheduler::new(rows, options.max_prefill_tokens),
            pending: HashMap::new(),
            running: HashMap::new(),
            batch: Vec::new(),
            next_id: 0,
            stats,
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> EngineStats {
        EngineStats { graph_captures: self.runner.captures, capture_s: self.runner.capture_s, ..self.stats }
    }

    /// Whether nothing is waiting or running.
    pub fn is_idle(&self) -> bool {
        self.scheduler.is_idle()
    }

    /// Queue a page. A request whose preparation failed finishes at once with that error.
    pub fn submit(&mut self, request: Request, on_event: &mut dyn FnMut(Event)) {
        let Request { tag, page, options, stream } = request;
        let page = page.and_then(|page| {
            let len = page.prompt.len();
            if len >= self.runner.capacity() {
                return Err(EngineError::Input(format!(
                    "the page's prompt has {len} tokens, more than the engine's {} slots per sequence: use a smaller mode or fewer tiles",
                    self.runner.capacity()
                )));
            }
            Ok(page)
        });
        match page {
            Ok(page) => {
                let id = self.next_id;
                self.next_id += 1;
                self.scheduler.add(id, page.prompt.len());
                self.pending.insert(id, Pending { tag, page, options, stream, arrived: Instant::now() });
            }
            Err(e) => {
                self.stats.pages += 1;
                on_event(Event::Finished { tag, result: Box::new(Err(e)) });
            }
        }
    }

    /// Run until `requests` is closed and every page has finished. Pages are taken from the
    /// channel as rows free up (a bounded channel keeps its producer just ahead of the engine).
    pub fn run(&mut self, requests: &Receiver<Request>, on_event: &mut dyn FnMut(Event)) -> Result<EngineStats, EngineError> {
        let mut open = true;
        loop {
            // Take what can be admitted soon, without waiting while pages are decoding.
            while open && self.scheduler.waiting() < self.scheduler.free_rows() + 1 {
                let next = if self.is_idle() {
                    let t = Instant::now();
                    let r = requests.recv().ok();
                    self.stats.input_wait_s += t.elapsed().as_secs_f64();
                    r
                } else {
                    match requests.try_recv() {
                        Ok(r) => Some(r),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => None,
                    }
                };
                match next {
                    Some(r) => self.submit(r, on_event),
                    None => open = false,
                }
            }
            if self.is_idle() {
                if open {
                    continue;
                }
                return Ok(self.stats());
            }
            self.step(on_event)?;
        }
    }

    /// One engine step: admit, encode and prefill what the scheduler allows, then one decode
    /// step for every running page.
    pub fn step(&mut self, on_event: &mut dyn FnMut(Event)) -> Result<(), EngineError> {
        let schedule = self.scheduler.schedule();
        for (id, row) in schedule.admit {
            let pending = self.pending.remove(&id).expect("admitted pages are pending");
            let tag = pending.tag;
            if let Err(e) = self.start(id, row, pending, on_event) {
                self.scheduler.finish(id);
                self.stats.pages += 1;
                on_event(Event::Finished { tag, result: Box::new(Err(e)) });
            }
        }
        let batch: Vec<SeqId> = schedule.decode.iter().map(|&(id, _)| id).filter(|id| self.running.contains_key(id)).collect();
        if batch.is_empty() {
            return Ok(());
        }
        self.decode(batch, on_event)
    }

    /// Encode and prefill an admitted page into `row`, and take its first token.
    fn start(&mut self, id: SeqId, row: usize, pending: Pending, on_event: &mut dyn FnMut(Event)) -> Result<(), EngineError> {
        let Pending { tag, page, options, stream, arrived } = pending;
        let queue = arrived.elapsed();
        let t0 = Instant::now();
        let embeds = encode_page(self.encoder, self.lm, &page)?;
        sync(&self.lm.device(), "the vision encoder")?;
        let vision = t0.elapsed();
        let t1 = Instant::now();
        let logits = self.runner.prefill(embeds, row)?;
        let budget = options.generation.max_new_tokens.min(self.runner.capacity() - page.prompt.len());
        let mut seq = Sequence::new(tag, row, &page, &options, budget, stream, self.lm.config().eos_token_id, self.tokenizer);
        seq.timings.queue_s = queue.as_secs_f64();
        seq.timings.vision_s = vision.as_secs_f64();
        let token = seq.choose(logits)?;
        seq.timings.prefill_s = t1.elapsed().as_secs_f64();
        self.stats.vision_s += seq.timings.vision_s;
        self.stats.prefill_s += seq.timings.prefill_s;
        self.stats.tokens += 1;
        let done = seq.accept(token, on_event);
        if done {
            self.retire(id, seq, on_event);
        } else {
            self.running.insert(id, seq);
        }
        Ok(())
    }

    /// One decode step of `batch`, then each page's next token.
    fn decode(&mut self, batch: Vec<SeqId>, on_event: &mut dyn FnMut(Event)) -> Result<(), EngineError> {
        let t0 = Instant::now();
        if batch != self.batch {
            let seqs: Vec<&Sequence<'_>> = batch.iter().map(|id| &self.running[id]).collect();
            let rows: Vec<usize> = seqs.iter().map(|s| s.row).collect();
            let starts: Vec<usize> = seqs.iter().map(|s| s.next_slot()).collect();
            let tokens: Vec<u32> = seqs.iter().map(|s| s.last_token()).collect();
            self.runner.set_batch(&rows, &starts, &tokens);
            self.batch = batch;
        }
        let t_step = Instant::now();
        let (logits, argmax) = self.runner.step();
        let n = self.batch.len();
        self.stats.steps += 1;
        self.stats.batch_sum += n;
        self.stats.peak_in_flight = self.stats.peak_in_flight.max(n);
        // The one read per step: the device's choices (and the logits rows of pages that choose
        // on the host: sampling, or a repetition ban in force).
        let device_choice = host_ids(argmax, n)?;
        self.stats.step_s += t_step.elapsed().as_secs_f64();
        let mut host_rows = Vec::new();
        for (i, id) in self.batch.iter().enumerate() {
            if self.running.get_mut(id).expect("batch pages are running").needs_logits() {
                host_rows.push(i);
            }
        }
        let mut host_logits = read_rows(logits, &host_rows)?;
        let mut chosen = device_choice.clone();
        for (k, &i) in host_rows.iter().enumerate() {
            let seq = self.running.get_mut(&self.batch[i]).expect("batch pages are running");
            chosen[i] = seq.pick(&mut host_logits[k]);
        }
        if chosen != device_choice {
            // The device fed its argmax back as the next input; these pages chose otherwise.
            self.runner.set_tokens(&chosen);
        }
        let mut finished = Vec::new();
        for (i, &token) in chosen.iter().enumerate() {
            let id = self.batch[i];
            let seq = self.running.get_mut(&id).expect("batch pages are running");
            if seq.accept(token, on_event) {
                finished.push(id);
            }
        }
        self.stats.tokens += n;
        self.stats.decode_s += t0.elapsed().as_secs_f64();
        for id in finished {
            let seq = self.running.remove(&id).expect("finished pages are running");
            self.retire(id, seq, on_event);
        }
        Ok(())
    }

    fn retire(&mut self, id: SeqId, seq: Sequence<'m>, on_event: &mut dyn FnMut(Event)) {
        self.scheduler.finish(id);
        self.stats.pages += 1;
        let tag = seq.tag;
        let result = finish_page(seq, self.tokenizer);
        on_event(Event::Finished { tag, result: Box::new(Ok(result)) });
    }
}

fn sync(device: &Device, during: &str) -> Result<(), EngineError> {
    device.sync().map_err(|e| EngineError::Device(format!("device error during {during}: {e:?}")))
}

/// The first `n` ids of an integer tensor.
fn host_ids(ids: Tensor<1, Int>, n: usize) -> Result<Vec<u32>, EngineError> {
    let all =
        ids.into_data().convert::<i64>().try_to_vec::<i64>().map_err(|e| EngineError::Device(format!("cannot read tokens back: {e:?}")))?;
    Ok(all.into_iter().take(n).map(|v| v as u32).collect())
}

/// Rows `rows` of logits `[B, V]` on the host.
fn read_rows(logits: Tensor<2>, rows: &[usize]) -> Result<Vec<Vec<f32>>, EngineError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let [_, v] = logits.dims();
    let device = logits.device();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(rows.iter().map(|&r| r as i64).collect::<Vec<i64>>(), [rows.len()]), &device);
    let host = logits
        .select(0, idx)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| EngineError::Device(format!("cannot read logits back: {e:?}")))?;
    Ok(host.chunks(v).map(<[f32]>::to_vec).collect())
}
