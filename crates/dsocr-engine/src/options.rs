//! How the engine is sized and paced (docs/engine.md, "Options").

use dsocr_preprocess::{ModeSpec, candidate_grids, image_token_count};

/// Engine settings. [`EngineOptions::default`] suits a GPU serving documents; the CLI maps its
/// flags onto these fields.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    /// Most pages in flight at once. `None`: as many as the memory budget allows on a GPU (up to
    /// 256), 4 on the CPU.
    pub max_seqs: Option<usize>,
    /// Share of the GPU's memory the process may use (weights, KV pool, activations), as vLLM's
    /// `gpu_memory_utilization`. Default 0.90.
    pub gpu_memory: f32,
    /// Bytes of a GPU's budget kept free of the KV pool for activations: vision encoding and
    /// prefill of one chunk, decode steps and their captured graphs (one per batch-size bucket).
    /// `None` (default): half of what the weights leave, between 2 and 16 GiB
    /// ([`crate::MemoryPlan`]).
    pub activation_reserve: Option<u64>,
    /// Blocks of the KV pool (64 slots each; a page holds those its prompt and token budget need,
    /// from admission to retirement). `None` (default): as GPU memory allows (at most `max_seqs`
    /// pages of the longest length), `max_seqs` pages of the longest length on the CPU. A set
    /// value is capped the same way and must hold one page of the longest length.
    pub kv_blocks: Option<usize>,
    /// Slots of the longest page: the longest prompt plus its output. Default: the model's context (8,192);
    /// [`EngineOptions::for_pages`] sizes it for a mode and a token budget.
    pub seq_capacity: Option<usize>,
    /// Prompt tokens prefilled per step, over all pages admitted in it (at least one page is).
    /// Default 4,096.
    pub max_prefill_tokens: usize,
    /// Longest prefill run at once; longer prompts are prefilled in chunks. Default 2,048.
    pub prefill_chunk: usize,
    /// Estimated peak bytes of one batch of views through the vision encoder: the pages admitted
    /// in a step are encoded together in batches of this size (docs/engine.md, "Vision
    /// batches"). `None` (default): 3/8 of the activation reserve on a GPU (6 GiB on an H200),
    /// 6 GiB on the CPU; at least one view runs at a time whatever the value.
    pub vision_batch_bytes: Option<u64>,
    /// Most pages encoded together when pages are admitted: the admitted pages and, up to this
    /// many in all, the next waiting ones (their embeddings kept until their turn, ≈2.5 MB a
    /// Gundam page), so that vision runs in large batches even when pages are admitted one at a
    /// time. Default 16; 1 encodes each admitted page alone.
    pub vision_lookahead: usize,
    /// Encode pages on a thread of their own, beside decoding (on a GPU, on a CUDA stream of
    /// their own: docs/engine.md, "Vision beside decoding"). Not started on a GPU with less than
    /// 16 GiB of its budget left after the weights: its copy of the encoder is worth more there as
    /// KV cache. Default off: on the H200 it made the
    /// mixed workload 46 % slower (docs/perf.md, session 16); encoding runs between decode steps.
    pub vision_thread: bool,
    /// Capture decode steps as CUDA graphs where dsocr's kernels run. Default on.
    pub decode_graphs: bool,
    /// Which GPU kernels run (process-wide: applied when the engine is made). Default: dsocr's.
    pub kernels: dsocr_kernels::KernelSettings,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_seqs: None,
            gpu_memory: 0.90,
            activation_reserve: None,
            kv_blocks: None,
            seq_capacity: None,
            max_prefill_tokens: 4096,
            prefill_chunk: 2048,
            vision_batch_bytes: None,
            vision_lookahead: 16,
            vision_thread: false,
            decode_graphs: true,
            kernels: dsocr_kernels::KernelSettings::default(),
        }
    }
}

/// Prompt tokens besides the image's: the longest official prompt text with its BOS and a margin
/// for custom prompts.
const PROMPT_TEXT_TOKENS: usize = 64;

impl EngineOptions {
    /// Defaults with rows sized for pages in `mode` with up to `max_new_tokens` new tokens each.
    pub fn for_pages(mode: &ModeSpec, max_new_tokens: usize) -> Self {
        EngineOptions { seq_capacity: Some(longest_prompt(mode) + max_new_tokens), ..Default::default() }
    }
}

/// The most prompt tokens a page in `mode` can take (the largest tile grid, plus text).
pub fn longest_prompt(mode: &ModeSpec) -> usize {
    let tiled = if mode.crop { candidate_grids(mode.min_tiles, mode.max_tiles) } else { Vec::new() };
    let untiled = dsocr_preprocess::TileGrid { cols: 1, rows: 1 };
    let image = tiled.into_iter().chain([untiled]).map(|g| image_token_count(mode, g)).max().unwrap_or(0);
    image + PROMPT_TEXT_TOKENS
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsocr_preprocess::Mode;

    #[test]
    fn rows_fit_the_longest_prompt_of_the_mode() {
        // Gundam: 273 global tokens + at most 9 tiles of 10×10 tokens, a newline per token row:
        // the tallest grid (1 × 9) has the most rows, 90 × 11 = 990.
        assert_eq!(longest_prompt(&Mode::Gundam.spec()), 273 + 990 + PROMPT_TEXT_TOKENS);
        assert_eq!(longest_prompt(&Mode::Tiny.spec()), 73 + PROMPT_TEXT_TOKENS);
        assert_eq!(EngineOptions::for_pages(&Mode::Tiny.spec(), 100).seq_capacity, Some(73 + 64 + 100));
    }
}
