//! How a GPU's memory budget is split between activations and the KV pool (docs/engine.md, "KV
//! pool", sizing).
//!
//! The budget is `gpu_memory` × the device's memory. What is in use when the engine starts (the
//! weights, and the vision thread's copy of the encoder) comes off first; of the rest, the
//! activations (a vision batch, a prefill chunk, decode steps and their captured graphs) keep a
//! reserve and the KV pool takes what is left. A fixed reserve sized for an H200 (16 GiB) would
//! leave nothing for pages on a 16 or 24 GB card, where the 6.7 GB of weights already take half
//! the memory; so the reserve is half of what the weights leave, between 2 and 16 GiB, and the
//! vision batch 3/8 of it (6 GiB on an H200, as measured there: docs/perf.md).

use crate::EngineOptions;
use crate::vision_batch::DEFAULT_VISION_BATCH_BYTES;

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
