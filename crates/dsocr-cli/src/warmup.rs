//! `dsocr warmup`: compile and tune the GPU kernels ahead of time (for a container image, or
//! before a batch job), so the first real page does not pay for it (docs/gpu.md, "Cold start").
//!
//! It runs a synthetic A4 page through the same engine `dsocr ocr` uses: once alone, then
//! `--pages` pages whose token budgets differ by two, so the batch shrinks through every decode
//! batch size on its way down. What is compiled and tuned lands in the GPU cache directory; the
//! decode steps' CUDA graphs are per process and are captured again by each run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use dsocr::bench::{a4_page, run_workload};
use dsocr::common::{DeviceSpec, FloatType, GpuBuildTime, gpu_build_time};
use dsocr::{DeepseekOcr, ModelSource};
use indicatif::ProgressBar;

use crate::engine_args::EngineArgs;
use crate::gpu_args::GpuArgs;
use crate::progress::{BUILD_POLL, building_message};

#[derive(Args)]
pub struct WarmupArgs {
    /// Model directory or Hugging Face repo id.
    #[arg(long, default_value = dsocr::DEFAULT_REPO)]
    model: String,
    /// cuda or cuda:N (auto: the GPU when there is one; warming up needs the GPU and driver the
    /// cache is for).
    #[arg(long, default_value = "auto")]
    device: String,
    /// f32, bf16 or f16 (default: bf16 on CUDA).
    #[arg(long)]
    dtype: Option<String>,
    /// Largest batch of pages to prepare for (the engine's batch sizes up to it are compiled;
    /// this also caps the pages in flight, whatever --max-seqs says).
    #[arg(long, default_value_t = 64)]
    pages: usize,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    gpu: GpuArgs,
}

/// Tells the warmup's poller thread to stop, when dropped.
struct StopPoller<'a> {
    done: &'a AtomicBool,
    poller: Option<std::thread::Thread>,
}

impl Drop for StopPoller<'_> {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        if let Some(poller) = &self.poller {
            poller.unpark();
        }
    }
}

/// The token budgets of `pages` pages that leave one at a time, two decode steps apart.
fn staggered_budgets(pages: usize) -> Vec<usize> {
    (1..=pages).map(|k| 2 + 2 * k).collect()
}

pub fn run(args: WarmupArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(!args.gpu.no_gpu_disk_cache, "--no-gpu-disk-cache: a warmup would keep nothing; drop the flag");
    let cache = args.gpu.apply();
    let device: DeviceSpec = args.device.parse()?;
    if device == DeviceSpec::Cpu {
        // A container build without a GPU would otherwise ship a cold image without a word.
        anyhow::ensure!(
            args.device == "cpu",
            "no usable CUDA GPU here (or this build has no CUDA support): run `dsocr warmup` on the GPU model and driver the cache is for"
        );
        eprintln!("warmup: the CPU backend compiles nothing at run time; nothing to do");
        return Ok(0);
    }
    dsocr::kernels::configure(args.engine.kernels());
    let dtype: Option<FloatType> = args.dtype.as_deref().map(str::parse).transpose()?;
    let t0 = Instant::now();
    let source = ModelSource::parse(&args.model)?;
    let ocr = DeepseekOcr::load(&source, device, dtype).with_context(|| format!("loading the model from {}", args.model))?;
    eprintln!("warmup: model loaded in {:.1} s", t0.elapsed().as_secs_f64());
    if let Some(dir) = &cache {
        eprintln!("warmup: compiled kernels and autotune decisions go to {}", dir.display());
    }
    let page = a4_page();
    let pages = args.pages.max(1);
    let parts = [("one page".to_string(), vec![8]), (format!("a batch shrinking from {pages} pages to one"), staggered_budgets(pages))];
    let mode = dsocr::preprocess::Mode::Gundam.spec_for(ocr.architecture())?;
    for (what, budgets) in parts {
        let max = budgets.iter().copied().max().unwrap_or(8);
        let engine = dsocr::EngineOptions { max_seqs: Some(budgets.len()), ..args.engine.options(&mode, max) };
        eprintln!("warmup: {what}: compiling and tuning what it needs (a minute or more the first time on a GPU, seconds once cached)…");
        let t = Instant::now();
        let before = gpu_build_time().unwrap_or_default();
        // What is being built, said as it goes (CubeCL's records, read every two seconds) where
        // the spinner is drawn (a terminal).
        let spinner = ProgressBar::new_spinner();
        spinner.enable_steady_tick(Duration::from_millis(200));
        let done = AtomicBool::new(false);
        let report = std::thread::scope(|s| {
            let poller = (!spinner.is_hidden()).then(|| {
                s.spawn(|| {
                    while !done.load(Ordering::Acquire) {
                        if let Some(built) = gpu_build_time().map(|b| b.since(&before)).filter(GpuBuildTime::built_anything) {
                            spinner.set_message(format!("{what}: {}", building_message(&built, t.elapsed())));
                        }
                        std::thread::park_timeout(BUILD_POLL);
                    }
                })
            });
            // Stops the poller however the workload ends (a CUDA error panics; the scope would
            // otherwise wait for the poller for ever).
            let _stop = StopPoller { done: &done, poller: poller.as_ref().map(|p| p.thread().clone()) };
            run_workload(&ocr, std::slice::from_ref(&page), &budgets, &engine)
        });
        spinner.finish_and_clear();
        let report = report?;
        let built = gpu_build_time().map(|b| format!("; {}", b.since(&before))).unwrap_or_default();
        eprintln!(
            "warmup: {what}: {:.1} s ({} decode graphs captured in {:.1} s{built})",
            t.elapsed().as_secs_f64(),
            report.graph_captures,
            report.capture_s
        );
    }
    eprintln!("warmup: done in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_leave_one_page_at_a_time() {
        let b = staggered_budgets(5);
        assert_eq!(b, vec![4, 6, 8, 10, 12]);
        assert!(b.windows(2).all(|w| w[1] - w[0] == 2));
    }
}
