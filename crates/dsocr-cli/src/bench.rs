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
    eprintln!("warm run…");
    let warm = run_once(&setup, &mut peak)?;
    let report = BenchReport {
        device: spec.to_string(),
        dtype: float.to_string(),
        model: label,
        load_s,
        prompt_tokens: 913,
        new_tokens: args.new_tokens,
        batch: args.batch,
        cold,
        warm,
        peak_reserved_bytes: peak,
    };
    let json = serde_json::to_string_pretty(&report)?;
    println!("{json}");
    if let Some(p) = &args.json_out {
        std::fs::write(p, &json).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(0)
}
