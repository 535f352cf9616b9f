//! The engine's command-line flags, shared by `dsocr ocr` and `dsocr bench`.

use clap::Args;
use dsocr::EngineOptions;
use dsocr::kernels::KernelSettings;
use dsocr::preprocess::ModeSpec;

#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// Most pages in flight at once (default: as GPU memory allows, up to 256; 4 on the CPU).
    #[arg(long)]
    pub max_seqs: Option<usize>,
    /// Share of GPU memory to use for weights, KV cache and activations.
    #[arg(long, default_value_t = 0.90)]
    pub gpu_memory: f32,
    /// Issue decode steps launch by launch instead of replaying captured CUDA graphs.
    #[arg(long)]
    pub no_graphs: bool,
    /// Burn's generic GPU kernels instead of dsocr's (to compare; slower).
    #[arg(long)]
    pub no_kernels: bool,
    /// Tokens from which MoE experts run grouped by expert (to compare the two kernel families).
    #[arg(long, default_value_t = KernelSettings::default().grouped_from)]
    pub grouped_from: usize,
}

impl EngineArgs {
    /// The kernel choice these flags make.
    pub fn kernels(&self) -> KernelSettings {
        KernelSettings { enabled: !self.no_kernels, grouped_from: self.grouped_from }
    }

    /// Engine options for pages in `mode` of up to `max_new_tokens` new tokens.
    pub fn options(&self, mode: &ModeSpec, max_new_tokens: usize) -> EngineOptions {
        EngineOptions {
            max_seqs: self.max_seqs,
            gpu_memory: self.gpu_memory,
            decode_graphs: !self.no_graphs,
            kernels: self.kernels(),
            ..EngineOptions::for_pages(mode, max_new_tokens)
        }
    }
}
