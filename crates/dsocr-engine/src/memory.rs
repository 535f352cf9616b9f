//! How a GPU's memory budget is split between activations and the KV pool, and how many blocks
//! the pool gets on a GPU or the CPU (docs/engine.md, "KV pool", sizing).
//!
//! The budget is `gpu_memory` × the device's memory. What is in use when the engine starts (the
//! weights, and the vision thread's copy of the encoder) comes off first; of the rest, the
//! activations (a vision batch, a prefill chunk, decode steps and their captured graphs) keep a
//! reserve and the KV pool takes what is left. A fixed reserve sized for an H200 (16 GiB) would
//! leave nothing for pages on a 16 or 24 GB card, where the 6.7 GB of weights already take half
//! the memory; so the reserve is half of what the weights leave, between 2 and 16 GiB, and the
//! vision batch 3/8 of it (6 GiB on an H200, as measured there: docs/perf.md).

use dsocr_core::burn::prelude::*;
use dsocr_kernels::KV_BLOCK;

use crate::vision_batch::DEFAULT_VISION_BATCH_BYTES;
use crate::{EngineError, EngineOptions};

/// The largest activation reserve a derived plan keeps (what the H200's figures were measured
/// with).
pub const MAX_ACTIVATION_RESERVE: u64 = 16 << 30;
/// The smallest: a vision batch of a few views, one prefill chunk of 2,048 tokens and the decode
/// steps of a few dozen pages.
pub const MIN_ACTIVATION_RESERVE: u64 = 2 << 30;

/// The vision batch's share of a derived reserve, in eighths.
const VISION_EIGHTHS: u64 = 3;

/// Bytes for activations and for one batch of views through the vision encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Bytes of the budget kept free of the KV pool.
    pub activation_reserve: u64,
    /// Estimated peak bytes of one vision batch (part of the reserve).
    pub vision_batch_bytes: u64,
}

impl MemoryPlan {
    /// The plan for a GPU with `free` bytes of its budget left after what is in use (the weights):
    /// `options`' own reserve and vision batch where they are set, else half of `free` between
    /// [`MIN_ACTIVATION_RESERVE`] and [`MAX_ACTIVATION_RESERVE`], with 3/8 of it for the vision
    /// batch. A vision batch set larger than its share adds the difference to a derived reserve.
    pub fn for_gpu(free: u64, options: &EngineOptions) -> Self {
        let base = (free / 2).clamp(MIN_ACTIVATION_RESERVE, MAX_ACTIVATION_RESERVE);
        match (options.activation_reserve, options.vision_batch_bytes) {
            (Some(reserve), vision) => {
                MemoryPlan { activation_reserve: reserve, vision_batch_bytes: vision.unwrap_or(reserve / 8 * VISION_EIGHTHS) }
            }
            (None, vision) => {
                let share = base / 8 * VISION_EIGHTHS;
                let vision = vision.unwrap_or(share);
                MemoryPlan { activation_reserve: base + vision.saturating_sub(share), vision_batch_bytes: vision }
            }
        }
    }

    /// The plan on the CPU: no reserve (the pool is sized by `max_seqs`), the vision batch as set
    /// or 6 GiB.
    pub fn for_cpu(options: &EngineOptions) -> Self {
        MemoryPlan { activation_reserve: 0, vision_batch_bytes: options.vision_batch_bytes.unwrap_or(DEFAULT_VISION_BATCH_BYTES) }
    }
}

/// Bytes the device's memory pool holds now (the weights, and anything not yet freed).
pub(crate) fn memory_in_use(device: &Device) -> u64 {
    device.memory_pool_usage().map_or(0, |u| u.bytes_reserved)
}

/// The KV pool's shape: blocks of `block_bytes`, `width` of them for a page of the longest
/// length (`capacity` slots), at most `max_seqs` pages at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolShape {
    pub block_bytes: u64,
    pub width: usize,
    pub capacity: usize,
    pub max_seqs: usize,
}

impl PoolShape {
    /// The pool's blocks: on a GPU (`gpu`: the device's memory and the budget) what the budget
    /// leaves after what is in use and `plan`'s activation reserve; on the CPU `max_seqs` pages
    /// of the longest length, checked against the host's memory; `--kv-blocks` caps either. Too
    /// little room for one page is an error naming the option to change.
    pub(crate) fn blocks(
        &self,
        device: &Device,
        gpu: Option<(u64, u64)>,
        plan: &MemoryPlan,
        options: &EngineOptions,
    ) -> Result<usize, EngineError> {
        let PoolShape { block_bytes, width, capacity, max_seqs } = *self;
        // More blocks than `max_seqs` sequences of the longest length can use would sit idle.
        let blocks = match gpu {
            Some((total, budget)) => {
                device.memory_cleanup();
                let used = memory_in_use(device);
                let free = budget.saturating_sub(used).saturating_sub(plan.activation_reserve);
                // One block is the scratch block (see the runner).
                let fit = ((free / block_bytes) as usize).saturating_sub(1).min(max_seqs.saturating_mul(width));
                tracing::info!(
                    "KV pool: {:.1} GB of {:.1} GB budget after {:.1} GB in use and {:.1} GB for activations ({:.1} GB vision batches): {fit} blocks of {KV_BLOCK} slots ({:.1} MB each), {} pages of the longest length ({capacity} slots) or more shorter ones, at most {max_seqs} at once",
                    free as f64 / 1e9,
                    budget as f64 / 1e9,
                    used as f64 / 1e9,
                    plan.activation_reserve as f64 / 1e9,
                    plan.vision_batch_bytes as f64 / 1e9,
                    block_bytes as f64 / 1e6,
                    fit / width,
                );
                if fit < width {
                    let vision_batch = if options.vision_batch_bytes.is_some() { ", leave --vision-batch-gb at its default" } else { "" };
                    return Err(EngineError::Settings(format!(
                        "no room on the GPU for one page: {:.1} GB × --gpu-memory {} = {:.1} GB, of which {:.1} GB is in use (the weights) and {:.1} GB is kept for activations, leaving {:.2} GB where a page of {capacity} slots needs {:.2} GB: lower --max-new-tokens{vision_batch}, raise --gpu-memory, or run on the CPU (--device cpu)",
                        total as f64 / 1e9,
                        options.gpu_memory,
                        budget as f64 / 1e9,
                        used as f64 / 1e9,
                        plan.activation_reserve as f64 / 1e9,
                        free as f64 / 1e9,
                        (width as u64 * block_bytes) as f64 / 1e9,
                    )));
                }
                fit
            }
            None => max_seqs.saturating_mul(width),
        };
        let blocks = match options.kv_blocks {
            Some(set) if set < width => {
                return Err(EngineError::Settings(format!(
                    "--kv-blocks {set} cannot hold one page of {capacity} slots ({width} blocks of {KV_BLOCK}): set at least {width}, or lower --max-new-tokens"
                )));
            }
            Some(set) => set.min(blocks),
            None => blocks,
        };
        if gpu.is_none() {
            // The host KV pool is one allocation (zeroed pages, committed as blocks fill): one
            // larger than the machine's RAM and swap cannot succeed and would abort.
            let needed = (blocks as u64).checked_add(1).and_then(|b| b.checked_mul(block_bytes));
            let memory = dsocr_core::host_memory_bytes();
            if needed.is_none_or(|n| memory.is_some_and(|m| n > m)) {
                return Err(EngineError::Settings(format!(
                    "--max-seqs {max_seqs}: a KV cache of {blocks} blocks ({max_seqs} pages of {capacity} slots) needs {:.1} GB of host memory{}: lower --max-seqs, --kv-blocks or --max-new-tokens",
                    needed.map_or(f64::INFINITY, |n| n as f64 / 1e9),
                    memory.map_or(String::new(), |m| format!(", more than this machine's {:.1} GB of RAM and swap", m as f64 / 1e9))
                )));
            }
        }
        Ok(blocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    /// Free bytes of a GPU of `total` bytes at the default 0.90 after 6.75 GB of weights (the
    /// release checkpoint in bf16; the plan is made before the vision thread copies the encoder,
    /// which the engine starts only where ≥ 16 GiB are left).
    fn free(total: u64) -> u64 {
        (total as f64 * 0.9) as u64 - 6_750_000_000
    }

    #[test]
    fn an_h200_keeps_the_measured_reserve_and_vision_batch() {
        let plan = MemoryPlan::for_gpu(free(150_754_000_000), &EngineOptions::default());
        assert_eq!(plan, MemoryPlan { activation_reserve: 16 * GIB, vision_batch_bytes: 6 * GIB });
    }

    #[test]
    fn small_cards_keep_half_of_what_the_weights_leave_for_pages() {
        // An RTX 5080 / 4080 (16 GB), an RTX 4090 (24 GB), an RTX 5090 (32 GB).
        for total in [17_094_000_000u64, 25_393_000_000, 34_190_000_000] {
            let free = free(total);
            let plan = MemoryPlan::for_gpu(free, &EngineOptions::default());
            assert!(plan.activation_reserve >= MIN_ACTIVATION_RESERVE && plan.activation_reserve < MAX_ACTIVATION_RESERVE);
            assert!(free - plan.activation_reserve >= free / 2, "{total}: {plan:?}");
            assert_eq!(plan.vision_batch_bytes, plan.activation_reserve / 8 * 3);
            // Room for pages of 2,351 slots (144 MB: Gundam, 1,024 new tokens).
            assert!((free - plan.activation_reserve) / 144_445_440 >= 20, "{total}: {plan:?}");
        }
        // 10 GB (an RTX 3080): the floor, leaving ≈ 0.75 GB for ≈ 5 pages.
        let free = free(10_737_000_000);
        let plan = MemoryPlan::for_gpu(free, &EngineOptions::default());
        assert_eq!(plan.activation_reserve, MIN_ACTIVATION_RESERVE);
        assert_eq!((free - plan.activation_reserve) / 144_445_440, 5);
    }

    #[test]
    fn set_values_are_kept() {
        let options = EngineOptions { vision_batch_bytes: Some(10 * GIB), ..Default::default() };
        // A vision batch above its 6 GiB share adds the difference to the reserve.
        assert_eq!(MemoryPlan::for_gpu(100 * GIB, &options), MemoryPlan { activation_reserve: 20 * GIB, vision_batch_bytes: 10 * GIB });
        let options = EngineOptions { activation_reserve: Some(4 * GIB), ..Default::default() };
        assert_eq!(MemoryPlan::for_gpu(100 * GIB, &options), MemoryPlan { activation_reserve: 4 * GIB, vision_batch_bytes: 3 * GIB / 2 });
        assert_eq!(MemoryPlan::for_cpu(&EngineOptions::default()).vision_batch_bytes, DEFAULT_VISION_BATCH_BYTES);
    }
}
