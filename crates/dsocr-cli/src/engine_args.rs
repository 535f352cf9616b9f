//! The engine's command-line flags, shared by `dsocr ocr` and `dsocr bench`.

use clap::{Args, ValueEnum};
use dsocr::EngineOptions;
use dsocr::common::DeviceSpec;
use dsocr::kernels::KernelSettings;
use dsocr::preprocess::ModeSpec;

#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// Most pages in flight at once (default: as GPU memory allows, up to 256; 4 on the CPU).
    #[arg(long, value_parser = at_least_one)]
    pub max_seqs: Option<usize>,
    /// Blocks of the KV pool (64 tokens each; pages take them as they write; default: as GPU
    /// memory allows, at most `--max-seqs` pages of the longest length). Fewer blocks: less
    /// memory, more pages waiting or preempted (docs/engine.md, "KV pool").
    #[arg(long, value_parser = at_least_one)]
    pub kv_blocks: Option<usize>,
    /// Share of GPU memory to use for weights, KV cache and activations.
    #[arg(long, default_value_t = 0.90, value_parser = share)]
    pub gpu_memory: f32,
    /// Estimated peak GB of one batch of views through the vision encoder (pages admitted together
    /// are encoded together; docs/engine.md, "Vision batches"). Default: 3/8 of the memory kept
    /// for activations on a GPU (6 on an H200, less on smaller cards), 6 on the CPU.
    #[arg(long, value_parser = positive_gb)]
    pub vision_batch_gb: Option<f64>,
    /// Most pages encoded together when pages are admitted: the admitted ones and the next
    /// waiting ones, encoded ahead of their turn (1: each admitted page alone).
    #[arg(long, default_value_t = EngineOptions::default().vision_lookahead)]
    pub vision_lookahead: usize,
    /// Encode pages on a thread (and GPU stream) of their own, beside decoding: `auto` does for
    /// runs of at least 32 pages on a GPU (not for `dsocr serve`, whose pages come one request at
    /// a time; never on a card with less than 16 GiB left after the weights); `--vision-thread` alone is `on`, a value goes after `=` (`--vision-thread=off`;
    /// docs/engine.md, "Vision beside decoding").
    #[arg(long, value_enum, default_value = "auto", num_args = 0..=1, require_equals = true, default_missing_value = "on")]
    pub vision_thread: VisionThread,
    /// Prompt tokens admitted (encoded and prefilled) per engine step, over all pages admitted in it.
    #[arg(long, default_value_t = EngineOptions::default().max_prefill_tokens)]
    pub max_prefill_tokens: usize,
    /// Issue decode steps launch by launch instead of replaying captured CUDA graphs.
    #[arg(long)]
    pub no_graphs: bool,
    /// Burn's generic kernels instead of dsocr's (on a GPU, and the vision encoders' attention on
    /// the CPU; to compare: slower).
    #[arg(long)]
    pub no_kernels: bool,
    /// Tokens from which MoE experts run grouped by expert (to compare the two kernel families).
    #[arg(long, default_value_t = KernelSettings::default().grouped_from)]
    pub grouped_from: usize,
    /// Most activation rows a linear runs on dsocr's tensor-core tile kernel, the encoders'
    /// included (default: all it takes; 256: larger products, the encoders' and the prefill's,
    /// on Burn's autotuned matmul; 0: Burn's matmul past 8 rows; to compare).
    #[arg(long, default_value_t = KernelSettings::default().tile_rows)]
    pub tile_rows: usize,
    /// Tokens from which MoE experts run on the tensor-core tile kernel (decode batches, prefill);
    /// a number larger than any batch turns it off (to compare).
    #[arg(long, default_value_t = KernelSettings::default().tile_experts_from)]
    pub tile_experts_from: usize,
    /// SAM's relative-position terms on dsocr's kernel instead of Burn's autotuned matmul (a
    /// faster first run; off until verified on a GPU: docs/perf.md, session 26).
    #[arg(long)]
    pub rel_pos_kernel: bool,
}

/// Whether pages are encoded on a vision thread of their own (`--vision-thread`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VisionThread {
    /// For runs of at least [`VISION_THREAD_FROM_PAGES`] pages on a GPU.
    Auto,
    On,
    Off,
}

/// Pages from which `auto` starts the vision thread. It costs a copy of the encoder's weights
/// (≈0.9 GB) made at start, and slows each prefill that runs beside it; on long runs it gains
/// 2-3 % (the H200: a 100-page PDF 512 → 524 pages/min, 256 mixed pages 7,741 → 8,000 tok/s;
/// docs/perf.md, session 18).
pub const VISION_THREAD_FROM_PAGES: usize = 32;

impl EngineArgs {
    /// Whether a run of `pages` pages spread over the engines of `devices` uses the vision thread
    /// (each engine gets its share; `auto` only when every engine is on a GPU).
    pub fn vision_thread_on(&self, pages: usize, devices: &[DeviceSpec]) -> bool {
        let gpu = !devices.is_empty() && devices.iter().all(|d| matches!(d, DeviceSpec::Cuda(_)));
        self.vision_thread_for(pages.div_ceil(devices.len().max(1)), gpu)
    }

    /// Whether a run of `pages` pages uses the vision thread, on a GPU when `gpu`.
    pub fn vision_thread_for(&self, pages: usize, gpu: bool) -> bool {
        match self.vision_thread {
            VisionThread::On => true,
            VisionThread::Off => false,
            VisionThread::Auto => gpu && pages >= VISION_THREAD_FROM_PAGES,
        }
    }

    /// The kernel choice these flags make.
    pub fn kernels(&self) -> KernelSettings {
        KernelSettings {
            enabled: !self.no_kernels,
            grouped_from: self.grouped_from,
            tile_rows: self.tile_rows,
            tile_experts_from: self.tile_experts_from,
            rel_pos_kernel: self.rel_pos_kernel,
        }
    }

    /// Engine options for pages in `mode` of up to `max_new_tokens` new tokens; the vision thread
    /// only when asked for (`on`): a run that knows its pages decides `auto` with
    /// [`EngineArgs::vision_thread_for`].
    pub fn options(&self, mode: &ModeSpec, max_new_tokens: usize) -> EngineOptions {
        EngineOptions {
            max_seqs: self.max_seqs,
            kv_blocks: self.kv_blocks,
            gpu_memory: self.gpu_memory,
            decode_graphs: !self.no_graphs,
            vision_batch_bytes: self.vision_batch_gb.map(|gb| (gb * (1u64 << 30) as f64) as u64),
            max_prefill_tokens: self.max_prefill_tokens.max(1),
            vision_lookahead: self.vision_lookahead.max(1),
            vision_thread: self.vision_thread == VisionThread::On,
            kernels: self.kernels(),
            ..EngineOptions::for_pages(mode, max_new_tokens)
        }
    }
}

/// A count of at least 1.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}: give a whole number of at least 1")),
    }
}

/// A positive number of gigabytes.
fn positive_gb(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        Ok(_) => Err("must be a positive number of GB, e.g. 2.5".into()),
        Err(e) => Err(format!("{e}: give a number of GB such as 2.5")),
    }
}

/// A share in (0, 1].
fn share(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(x) if x > 0.0 && x <= 1.0 => Ok(x),
        Ok(_) => Err("must be a share above 0 and at most 1, e.g. 0.9".into()),
        Err(e) => Err(format!("{e}: give a share such as 0.9")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        engine: EngineArgs,
        /// As `dsocr ocr`'s inputs.
        inputs: Vec<String>,
    }

    fn flags(args: &[&str]) -> Flags {
        Flags::try_parse_from(std::iter::once("dsocr").chain(args.iter().copied())).unwrap()
    }

    fn engine(args: &[&str]) -> EngineArgs {
        flags(args).engine
    }

    #[test]
    fn the_vision_thread_runs_for_long_gpu_runs_unless_told() {
        let auto = engine(&[]);
        assert_eq!(auto.vision_thread, VisionThread::Auto);
        assert!(auto.vision_thread_for(VISION_THREAD_FROM_PAGES, true));
        assert!(!auto.vision_thread_for(VISION_THREAD_FROM_PAGES - 1, true), "a short run keeps one stream");
        assert!(!auto.vision_thread_for(1000, false), "the CPU's cores are shared anyway");
        // Spread over engines: each engine's share counts, and every engine must be on a GPU.
        assert!(auto.vision_thread_on(64, &[DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]));
        assert!(!auto.vision_thread_on(62, &[DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]));
        assert!(!auto.vision_thread_on(1000, &[DeviceSpec::Cuda(0), DeviceSpec::Cpu]));
        // `options` alone (serve, warmup: pages unknown) starts it only when asked.
        assert!(!auto.options(&dsocr::preprocess::Mode::Gundam.spec(), 64).vision_thread);
        let on = engine(&["--vision-thread"]);
        assert!(on.vision_thread_for(1, false) && on.options(&dsocr::preprocess::Mode::Gundam.spec(), 64).vision_thread);
        assert!(!engine(&["--vision-thread=off"]).vision_thread_for(1000, true));
        assert!(Flags::try_parse_from(["dsocr", "--vision-thread=sometimes"]).is_err());
        // A bare flag takes no value from the next word: that is an input.
        let bare = flags(&["--vision-thread", "doc.pdf"]);
        assert_eq!((bare.engine.vision_thread, bare.inputs), (VisionThread::On, vec!["doc.pdf".to_string()]));
    }

    #[test]
    fn the_vision_batch_follows_the_gpu_unless_given() {
        let gundam = dsocr::preprocess::Mode::Gundam.spec();
        assert_eq!(engine(&[]).options(&gundam, 64).vision_batch_bytes, None, "the engine's memory plan decides");
        assert_eq!(engine(&["--kv-blocks", "900"]).options(&gundam, 64).kv_blocks, Some(900));
        assert!(Flags::try_parse_from(["dsocr", "--kv-blocks", "0"]).is_err());
        assert_eq!(engine(&["--vision-batch-gb", "1.5"]).options(&gundam, 64).vision_batch_bytes, Some(3 << 29));
        for bad in ["0", "inf", "lots"] {
            assert!(Flags::try_parse_from(["dsocr", "--vision-batch-gb", bad]).is_err(), "{bad}");
        }
    }
}
