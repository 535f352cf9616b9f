//! `dsocr bench` and `dsocr synth-weights`: release-size performance without the release file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use dsocr::bench::{BenchReport, BenchSetup, run_once};
use dsocr::common::{Checkpoint, DeviceSpec, FloatType, Weights};
use dsocr::lm::{DeepseekLm, LmConfig};
use dsocr::synthetic::{release_config, write_synthetic_checkpoint};
use dsocr::vision::{DeepEncoder, VisionConfig};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct SynthArgs {
    /// Directory to write model.safetensors (6.7 GB, bf16) and config.json into.
    #[arg(long)]
    out: PathBuf,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A tokenizer.json to copy beside the weights (optional).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

pub fn synth(args: SynthArgs) -> anyhow::Result<i32> {
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {bytes_per_sec} [{elapsed}]").unwrap());
    let t0 = Instant::now();
    let (n, bytes) = write_synthetic_checkpoint(&args.out, &release_config(), args.seed, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    if let Some(tok) = &args.tokenizer {
        std::fs::copy(tok, args.out.join("tokenizer.json")).with_context(|| format!("copying {}", tok.display()))?;
    }
    eprintln!("wrote {n} tensors ({bytes} bytes) to {} in {:.1} s", args.out.display(), t0.elapsed().as_secs_f64());
    Ok(0)
}

#[derive(Args)]
pub struct BenchArgs {
    /// Model directory (release format); without it, random release-size weights in memory.
    #[arg(long)]
    model: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32, bf16 or f16 (default: f32 on CPU, bf16 on CUDA).
    #[arg(long)]
    dtype: Option<String>,
    /// New tokens per sequence, EOS ignored.
    #[arg(long, default_value_t = 256)]
    new_tokens: usize,
    /// Pages decoded together for the aggregate figure (1: skip).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Also write the JSON report to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

/// Serialise the report and, when asked, write it to `path`.
fn write_report(report: &BenchReport, path: Option<&std::path::Path>) -> anyhow::Result<String> {
    let json = serde_json::to_string_pretty(report)?;
    if let Some(p) = path {
        std::fs::write(p, &json).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(json)
}

pub fn bench(args: BenchArgs) -> anyhow::Result<i32> {
    let spec: DeviceSpec = args.device.parse()?;
    let float: FloatType = match &args.dtype {
        Some(d) => d.parse()?,
        None => spec.default_dtype(),
    };
    let device = spec.device()?;
    anyhow::ensure!(args.new_tokens >= 2 && args.batch >= 1, "--new-tokens must be ≥ 2 and --batch ≥ 1");
    let t0 = Instant::now();
    let (weights, config, tokenizer, label) = match &args.model {
        Some(dir) => {
            let config: serde_json::Value = serde_json::from_slice(
                &std::fs::read(dir.join("config.json")).with_context(|| format!("reading {}/config.json", dir.display()))?,
            )?;
            let tok = dir.join("tokenizer.json");
            let tokenizer =
                tok.is_file().then(|| tokenizers::Tokenizer::from_file(&tok)).transpose().map_err(|e| anyhow::anyhow!("{e}"))?;
            (Weights::new(Checkpoint::open_dir(dir)?, &device, float)?, config, tokenizer, dir.display().to_string())
        }
        None => (Weights::random(&device, float, 0)?, release_config(), None, "random release-size weights".to_string()),
    };
    let encoder = DeepEncoder::load(&weights, &VisionConfig::from_json(&config, "config.json")?)?;
    let lm = DeepseekLm::load(&weights, &LmConfig::from_json(&config, "config.json")?)?;
    device.sync().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let load_s = t0.elapsed().as_secs_f64();
    let setup = BenchSetup {
        encoder: &encoder,
        lm: &lm,
        tokenizer: tokenizer.as_ref(),
        device: &device,
        dtype: float.dtype(),
        new_tokens: args.new_tokens,
        batch: args.batch,
    };
    let mut peak = None;
    eprintln!("cold run (kernel compilation and autotuning included)…");
    let cold = run_once(&setup, &mut peak)?;
    #[cfg(feature = "cuda")]
    let gpu_cache_dir = matches!(spec, DeviceSpec::Cuda(_)).then(|| dsocr::common::gpu_cache_dir().display().to_string());
    #[cfg(not(feature = "cuda"))]
    let gpu_cache_dir = None;
    let mut report = BenchReport {
        device: spec.to_string(),
        dtype: float.to_string(),
        model: label,
        load_s,
        prompt_tokens: 913,
        new_tokens: args.new_tokens,
        batch: args.batch,
        cold,
        warm: None,
        peak_reserved_bytes: peak,
        gpu_cache_dir,
    };
    // The cold figures are written at once: on a first run they can take minutes, and a run cut
    // short should still leave them behind.
    write_report(&report, args.json_out.as_deref())?;
    eprintln!("warm run…");
    report.warm = Some(run_once(&setup, &mut peak)?);
    report.peak_reserved_bytes = peak;
    let json = write_report(&report, args.json_out.as_deref())?;
    println!("{json}");
    Ok(0)
}

#[derive(Args)]
pub struct KernelsCheckArgs {
    /// cuda or cuda:N (on the CPU there are no kernels to check).
    #[arg(long, default_value = "cuda")]
    device: String,
}

/// Compare each kernel with its reference; exit 1 if any differs.
pub fn kernels_check(args: KernelsCheckArgs) -> anyhow::Result<i32> {
    let spec: DeviceSpec = args.device.parse()?;
    let device = spec.device()?;
    if !dsocr::kernels::runs_cube_kernels(&device) {
        anyhow::bail!("{spec} runs no dsocr kernels (they need a CUDA device and a `--features cuda` build)");
    }
    let mut failed = 0;
    for c in dsocr::kernels::check_kernels(&device) {
        let verdict = if c.passed() { "ok" } else { "FAIL" };
        failed += usize::from(!c.passed());
        println!("{verdict:4} {} {}: max |err| {:.3e} (tolerance {:.0e})", c.kernel, c.case, c.max_abs_err, c.tolerance);
    }
    println!("{}", if failed == 0 { "all kernels match their references".to_string() } else { format!("{failed} case(s) FAILED") });
    Ok(i32::from(failed > 0))
}
