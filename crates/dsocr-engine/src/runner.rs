//! The model runner: owns the KV pool and the decode steps, issued launch by launch or captured
//! once per batch-size bucket as a graph and replayed (one CUDA graph launch per step instead of
//! ≈ 130 kernel launches, each costing host time in Burn's fusion layer); docs/engine.md.
//!
//! A decode step reads its inputs from fixed device buffers per bucket: the input tokens, each
//! sequence's block table (padded to one width) and slot. When the batch changes (a page admitted
//! or retired) the host rewrites them in place; between changes the step itself writes the next
//! tokens (its argmax) and advances the slots. A batch of `n` sequences runs in the smallest
//! bucket of at least `n` rows, the spare rows' tables (and every table's entries past its own
//! blocks) naming a scratch block that no sequence owns.
//!
//! A capture runs the step four times (three warm-ups so every buffer and fused kernel exists,
//! then the recorded run). Those runs advance the slots and overwrite the input tokens; afterwards
//! all three buffers are restored from the host's copy of the batch (kept current step by step:
//! [`Runner::advance`]), and the slots the runs wrote (past each sequence's filled ones) are
//! rewritten by the real steps before any step attends to them.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use dsocr_core::burn::prelude::*;
use dsocr_core::burn::tensor::Graph;
use dsocr_lm::{DeepseekLm, KvPool, LmError, StepSlots};

use crate::vision_thread::CaptureFence;

/// What one step returns: the logits `[B, V]` (f32) and their argmax `[B]`, for the bucket's rows.
pub(crate) type StepOutput = (Tensor<2>, Tensor<1, Int>);

type StepFn<'m> = Box<dyn FnMut() -> StepOutput + 'm>;

/// Batch sizes that get their own buffers and graph: fine steps where batches are small, coarser
/// ones past them (a padded row costs one token's work, a new bucket a capture and its memory).
pub fn bucket_size(n: usize) -> usize {
    match n {
        0..=2 => n.max(1),
        3..=4 => 4,
        5..=8 => 8,
        9..=32 => n.div_ceil(8) * 8,
        33..=128 => n.div_ceil(16) * 16,
        _ => n.div_ceil(64) * 64,
    }
}

/// The tensors a step reads and writes in place.
struct StepState {
    tokens: Tensor<1, Int>,
    slots: StepSlots,
}

/// One batch size's buffers and captured step.
struct Bucket<'m> {
    state: Rc<RefCell<StepState>>,
    graph: Option<Graph<StepOutput, StepFn<'m>>>,
}

/// The batch the host last wrote, padded to its bucket (to restore after a capture).
#[derive(Default)]
struct HostBatch {
    tables: Vec<Vec<usize>>,
    starts: Vec<usize>,
    tokens: Vec<u32>,
}

/// Owns the KV pool and runs prefills and decode steps on it.
pub(crate) struct Runner<'m> {
    lm: &'m DeepseekLm,
    pool: Rc<RefCell<KvPool>>,
    /// Bucket size → buffers.
    buckets: std::collections::BTreeMap<usize, Bucket<'m>>,
    /// The bucket of the current batch.
    current: Option<usize>,
    host: HostBatch,
    graphs: bool,
    /// Blocks sequences may own (`0..blocks`); block `blocks` is the scratch block.
    blocks: usize,
    /// Entries of a block table: the blocks of the longest sequence.
    width: usize,
    /// Slots of the longest sequence (prompt and output).
    capacity: usize,
    prefill_chunk: usize,
    /// Orders captures against the vision thread, when there is one.
    fence: Option<Arc<CaptureFence>>,
    /// Graphs captured so far and the seconds their captures took (warm-up runs included).
    pub(crate) captures: usize,
    pub(crate) capture_s: f64,
}

impl<'m> Runner<'m> {
    /// A runner with a pool of `blocks` blocks (and a scratch block) for sequences of up to
    /// `capacity` slots; `graphs`: capture decode steps (and pad batches to buckets); prompts are
    /// prefilled `prefill_chunk` tokens at a time. With a vision thread, captures go through its
    /// `fence` (crate::vision_thread).
    pub(crate) fn new(
        lm: &'m DeepseekLm,
        blocks: usize,
        capacity: usize,
        graphs: bool,
        prefill_chunk: usize,
        fence: Option<Arc<CaptureFence>>,
    ) -> Self {
        let pool = lm.new_pool(blocks + 1);
        Runner {
            lm,
            pool: Rc::new(RefCell::new(pool)),
            buckets: Default::default(),
            current: None,
            host: HostBatch::default(),
            graphs,
            blocks,
            width: KvPool::blocks_for(capacity),
            capacity,
            prefill_chunk: prefill_chunk.max(1),
            fence,
            captures: 0,
            capture_s: 0.0,
        }
    }

    /// Slots of the longest sequence.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Prefill `embeds` `[T, H]` into the blocks `blocks` from slot 0, in chunks; the last
    /// position's logits `[1, V]`.
    pub(crate) fn prefill(&mut self, embeds: Tensor<2>, blocks: &[usize]) -> Result<Tensor<2>, LmError> {
        assert!(blocks.iter().all(|&b| b < self.blocks), "blocks {blocks:?} outside the pool's {}", self.blocks);
        let t = embeds.dims()[0];
        let mut pool = self.pool.borrow_mut();
        let mut start = 0;
        loop {
            let len = self.prefill_chunk.min(t - start);
            let logits = self.lm.prefill(embeds.clone().narrow(0, start, len), blocks, start, &mut pool)?;
            start += len;
            if start >= t {
                return Ok(logits);
            }
        }
    }

    /// Make the next steps run the sequences with blocks `tables[i]` from slot `starts[i]` with
    /// input `tokens[i]`.
    pub(crate) fn set_batch(&mut self, tables: &[&[usize]], starts: &[usize], tokens: &[u32]) {
        let n = tables.len();
        let size = if self.graphs { bucket_size(n) } else { n };
        let pad = size - n;
        // Each table padded with the scratch block (a captured step's extra runs write past a
        // sequence's last slot: into the scratch block, or its own last block's unused slots);
        // spare rows decode a token-0 stand-in in the scratch block, from its first slot.
        let (scratch, width) = (self.blocks, self.width);
        let padded = |t: &[usize]| {
            assert!(t.len() <= width, "a block table of {} blocks, past the longest page's {width}", t.len());
            t.iter().copied().chain(std::iter::repeat(scratch)).take(width).collect::<Vec<usize>>()
        };
        self.host = HostBatch {
            tables: tables.iter().map(|t| padded(t)).chain(std::iter::repeat_n(vec![scratch; width], pad)).collect(),
            starts: starts.iter().copied().chain(std::iter::repeat_n(0, pad)).collect(),
            tokens: tokens.iter().copied().chain(std::iter::repeat_n(0, pad)).collect(),
        };
        let device = self.lm.device();
        let bucket = self.buckets.entry(size).or_insert_with(|| {
            let tokens = Tensor::<1, Int>::zeros([size], &device);
            let slots = StepSlots::new(&vec![vec![scratch; width]; size], &vec![0; size], &device);
            Bucket { state: Rc::new(RefCell::new(StepState { tokens, slots })), graph: None }
        });
        write_state(&mut bucket.state.borrow_mut(), &self.host, &device);
        self.current = Some(size);
    }

    /// After a step: its sequences chose `chosen` (one per sequence of the batch). The host's
    /// copy of the batch follows the device (every slot one further, the chosen tokens as the
    /// next inputs), and where a choice differs from the device's argmax (`differs`) the tokens
    /// are written to the device. The copy must be current at every step: a capture restores the
    /// buffers from it, and a capture the vision thread deferred comes after uncaptured steps
    /// (restoring the copy of the batch's first step would rewind every page's position).
    pub(crate) fn advance(&mut self, chosen: &[u32], differs: bool) {
        for start in &mut self.host.starts {
            *start += 1;
        }
        self.host.tokens[..chosen.len()].copy_from_slice(chosen);
        if differs {
            let bucket = &self.buckets[&self.current.expect("a batch is set")];
            let mut state = bucket.state.borrow_mut();
            overwrite_tokens(&mut state, &self.host.tokens, &self.lm.device());
        }
    }

    /// Run one decode step of the current batch (padded to its bucket).
    pub(crate) fn step(&mut self) -> StepOutput {
        let size = self.current.expect("a batch is set before a step");
        if self.graphs && self.buckets[&size].graph.is_none() {
            match self.fence.clone() {
                None => self.capture(size),
                // The vision thread is between jobs; otherwise this step runs uncaptured and a
                // later one captures (the thread waits for it before its next job).
                Some(fence) => {
                    if let Some(_held) = fence.try_capture() {
                        self.capture(size);
                    }
                }
            }
        } else if let Some(fence) = &self.fence {
            fence.not_wanted();
        }
        let bucket = self.buckets.get_mut(&size).expect("bucket exists");
        match bucket.graph.as_mut() {
            // SAFETY: the recorded launches read and write the weights (borrowed from `lm` for
            // 'm, which outlives the graph), the pool and the bucket's buffers (owned by `pool`
            // and `state`, which the graph's closure keeps alive and nothing replaces: every
            // update is in place) and intermediates the graph itself keeps; everything runs on
            // this thread's one stream.
            Some(graph) => unsafe { graph.replay() }.clone(),
            None => {
                let mut state = bucket.state.borrow_mut();
                let StepState { tokens, slots } = &mut *state;
                self.lm.decode_step_on_device(tokens, slots, &mut self.pool.borrow_mut())
            }
        }
    }

    /// Capture bucket `size`'s step, then undo what the capture's runs did to its buffers.
    fn capture(&mut self, size: usize) {
        let t0 = std::time::Instant::now();
        let (lm, pool) = (self.lm, self.pool.clone());
        let bucket = self.buckets.get_mut(&size).expect("bucket exists");
        let state = bucket.state.clone();
        let step: StepFn<'m> = Box::new(move || {
            let mut state = state.borrow_mut();
            let StepState { tokens, slots } = &mut *state;
            lm.decode_step_on_device(tokens, slots, &mut pool.borrow_mut())
        });
        let graph = dsocr_core::burn::tensor::capture(&lm.device(), step);
        let hardware = graph.is_hardware();
        bucket.graph = Some(graph);
        write_state(&mut bucket.state.borrow_mut(), &self.host, &lm.device());
        self.captures += 1;
        self.capture_s += t0.elapsed().as_secs_f64();
        tracing::info!(size, hardware, seconds = t0.elapsed().as_secs_f64(), "decode step captured");
    }
}

/// Write a whole batch into a bucket's buffers, in place.
fn write_state(state: &mut StepState, host: &HostBatch, device: &Device) {
    state.slots.overwrite(&host.tables, &host.starts);
    overwrite_tokens(state, &host.tokens, device);
}

fn overwrite_tokens(state: &mut StepState, tokens: &[u32], device: &Device) {
    let src =
        Tensor::<1, Int>::from_data(TensorData::new(tokens.iter().map(|&t| i64::from(t)).collect::<Vec<i64>>(), [tokens.len()]), device);
    // The stand-in handle (the tables) is replaced at once; the write lands in the tokens' own buffer.
    let dst = std::mem::replace(&mut state.tokens, state.slots.stand_in());
    state.tokens = dsocr_kernels::overwrite_ints(dst, src);
}

#[cfg(test)]
mod tests {
    use super::bucket_size;

    #[test]
    fn buckets_cover_every_batch_with_little_padding() {
        assert_eq!((1..=4).map(bucket_size).collect::<Vec<_>>(), vec![1, 2, 4, 4]);
        assert_eq!(bucket_size(9), 16);
        assert_eq!(bucket_size(33), 48);
        assert_eq!(bucket_size(200), 256);
        for n in 1..=1024 {
            let b = bucket_size(n);
            assert!(b >= n && b - n < 64.max(n / 4), "{n} → {b}");
        }
        let distinct: std::collections::BTreeSet<usize> = (1..=256).map(bucket_size).collect();
        assert!(distinct.len() <= 18, "{} buckets up to 256", distinct.len());
    }
}
