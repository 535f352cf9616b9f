//! `dsocr bench` and `dsocr synth-weights`: release-size performance without the release file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use std::sync::Arc;

use dsocr::bench::{
    DocumentPromptTokenizer, StageTimings, VisionReport, WorkloadReport, mixed_budgets, run_workload, run_workload_warm, stage_timings,
    vision_throughput,
};
use dsocr::common::{Checkpoint, DeviceSpec, FloatType, Weights};
use dsocr::engine::OcrTokenizer;
use dsocr::preprocess::Architecture;
use dsocr::synthetic::{release_config_for, write_synthetic_checkpoint};
use dsocr::{DeepseekOcr, EngineOptions};

use crate::engine_args::EngineArgs;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

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
    /// The checkpoint to imitate: ocr (deepseek-ai/DeepSeek-OCR) or ocr2 (deepseek-ai/DeepSeek-OCR-2).
    #[arg(long, default_value = "ocr", value_parser = parse_arch)]
    arch: Architecture,
}

fn parse_arch(s: &str) -> Result<Architecture, String> {
    Architecture::parse(s).ok_or_else(|| format!("unknown architecture {s:?}: expected ocr or ocr2"))
}

pub fn synth(args: SynthArgs) -> anyhow::Result<i32> {
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {bytes_per_sec} [{elapsed}]").unwrap());
    let t0 = Instant::now();
    let (n, bytes) = write_synthetic_checkpoint(&args.out, &release_config_for(args.arch), args.seed, |done, total| {
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
    /// Without --model: the architecture of the random weights, ocr or ocr2.
    #[arg(long, default_value = "ocr", value_parser = parse_arch)]
    arch: Architecture,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", conflicts_with = "devices")]
    device: String,
    /// One engine per device (`all`, `0,1,3`, `cpu,cpu`): the mixed workload alone, through
    /// the dispatcher `dsocr ocr --devices` uses (needs --mixed; docs/scale.md).
    #[arg(long)]
    devices: Option<dsocr::DeviceList>,
    /// f32, bf16 or f16 (default: f32 on CPU, bf16 on CUDA).
    #[arg(long)]
    dtype: Option<String>,
    /// New tokens per page, EOS ignored (the batch-1 and batch workloads).
    #[arg(long, default_value_t = 256)]
    new_tokens: usize,
    /// Pages decoded together for the batch workload (1: skip it).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Pages in the mixed workload (0: skip it): each page's budget is drawn between
    /// --min-tokens and --max-tokens with --seed.
    #[arg(long, default_value_t = 0)]
    mixed: usize,
    /// Smallest budget of the mixed workload.
    #[arg(long, default_value_t = 64)]
    min_tokens: usize,
    /// Largest budget of the mixed workload.
    #[arg(long, default_value_t = 2048)]
    max_tokens: usize,
    /// Seed of the mixed workload's budgets.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run the mixed workload once (cold) instead of twice (the second measured).
    #[arg(long)]
    mixed_once: bool,
    /// Vision alone: encode this many pages together (comma-separated list, e.g. 1,8,64; each
    /// size run twice, the second measured).
    #[arg(long, value_delimiter = ',')]
    vision_pages: Vec<usize>,
    /// The page every workload runs (an image file; a PDF's first page): default a synthetic A4
    /// page at 144 DPI (1190×1684, 6 tiles in Gundam mode, a 913-token prompt).
    #[arg(long)]
    image: Option<PathBuf>,
    /// With a PDF as --image: the batch and mixed workloads run its pages in order (again from the
    /// first when there are more pages to run than it has), rendered as `dsocr ocr` renders them,
    /// so that `dsocr ocr FILE.pdf` and the bench run the same pages.
    #[arg(long, requires = "image")]
    all_pages: bool,
    /// Skip the stage-by-stage timings of one page.
    #[arg(long)]
    no_stages: bool,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    gpu: crate::gpu_args::GpuArgs,
    /// Also write the JSON report to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

/// The bench report.
#[derive(Debug, Clone, Serialize)]
struct BenchReport {
    device: String,
    dtype: String,
    model: String,
    /// The page the workloads ran (`--image`, or the synthetic A4 page) and its size.
    image: String,
    load_s: f64,
    /// Of the load: reading and laying out the weights on the host (summed over threads), and
    /// handing them to the device.
    load_host_s: f64,
    load_upload_s: f64,
    /// Stage by stage, first run (kernel compilation and autotuning included).
    stages_cold: StageTimings,
    /// Stage by stage, second run.
    stages_warm: Option<StageTimings>,
    /// One page, --new-tokens, batch 1 (warm).
    single: Option<WorkloadReport>,
    /// --batch equal pages of --new-tokens together.
    batch: Option<WorkloadReport>,
    /// --mixed pages of different budgets (continuous batching).
    mixed: Option<WorkloadReport>,
    mixed_budgets: Option<(usize, usize, u64)>,
    /// --vision-pages: the vision encoder alone over that many pages at once.
    vision: Vec<VisionReport>,
    gpu_cache_dir: Option<String>,
    /// GPU kernels compiled, loaded from the cache and autotuned by this process, as of the end
    /// of each part (cumulative; from CubeCL's records: docs/gpu.md).
    gpu_build: Vec<BuildPhase>,
}

/// [`dsocr::common::GpuBuildTime`] as of the end of one part of the bench.
#[derive(Debug, Clone, Serialize)]
struct BuildPhase {
    after: &'static str,
    #[serde(flatten)]
    time: dsocr::common::GpuBuildTime,
}

impl BenchReport {
    /// Note what the process has built so far, at the end of the part `after` (on a GPU).
    fn build_phase(&mut self, gpu: bool, after: &'static str) {
        if let Some(time) = gpu.then(dsocr::common::gpu_build_time).flatten() {
            tracing::info!("bench: after {after}: {time}");
            self.gpu_build.push(BuildPhase { after, time });
        }
    }
}

/// The first page of `path`: an image, or a PDF's first page rendered at the default DPI as `dsocr ocr`
/// renders pages.
fn load_page(path: &std::path::Path) -> anyhow::Result<dsocr::preprocess::RgbImage> {
    Ok(load_pages(path, false)?.swap_remove(0))
}

/// The pages of `path` (`all`: every page of a PDF; else the first), rendered as [`load_page`].
fn load_pages(path: &std::path::Path, all: bool) -> anyhow::Result<Vec<dsocr::preprocess::RgbImage>> {
    let input = path.display().to_string();
    let range = if all { None } else { Some("1") };
    let options = crate::inputs::OpenOptions { pages: range.map(str::to_string), ..Default::default() };
    let (docs, mut failed) = crate::inputs::open_inputs(std::slice::from_ref(&input), &options);
    if let Some((_, e)) = failed.pop() {
        return Err(e.context("--image"));
    }
    let doc = docs.into_iter().next().with_context(|| format!("--image {input}: nothing to read"))?;
    let pages: Vec<_> = (0..doc.pages.len())
        .map(|k| doc.page_source(k, dsocr::pdf::DEFAULT_DPI)().with_context(|| format!("--image {input}")))
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!pages.is_empty(), "--image {input}: no pages");
    Ok(pages)
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
    let gpu_cache_dir = args.gpu.apply().map(|d| d.display().to_string());
    let devices = args.devices.as_ref().map(dsocr::DeviceList::resolve);
    if let Some(devices) = devices.as_ref().filter(|d| d.len() > 1) {
        return bench_devices(&args, devices);
    }
    let spec: DeviceSpec = match devices {
        Some(d) => d[0],
        None => args.device.parse()?,
    };
    let gpu_cache_dir = gpu_cache_dir.filter(|_| matches!(spec, DeviceSpec::Cuda(_)));
    dsocr::kernels::configure(args.engine.kernels());
    let float: FloatType = match &args.dtype {
        Some(d) => d.parse()?,
        None => spec.default_dtype(),
    };
    let device = spec.device()?;
    anyhow::ensure!(args.new_tokens >= 2 && args.batch >= 1, "--new-tokens must be ≥ 2 and --batch ≥ 1");
    anyhow::ensure!(args.min_tokens >= 1 && args.min_tokens <= args.max_tokens, "--min-tokens must be between 1 and --max-tokens");
    let pages = match &args.image {
        Some(path) => load_pages(path, args.all_pages)?,
        None => vec![dsocr::bench::a4_page()],
    };
    let image = pages[0].clone();
    let t0 = Instant::now();
    let (weights, config, tokenizer, label): (_, _, Arc<dyn OcrTokenizer>, _) = match &args.model {
        Some(dir) => {
            let config: serde_json::Value = serde_json::from_slice(
                &std::fs::read(dir.join("config.json")).with_context(|| format!("reading {}/config.json", dir.display()))?,
            )?;
            let tok = dir.join("tokenizer.json");
            let tokenizer: Arc<dyn OcrTokenizer> = if tok.is_file() {
                Arc::new(tokenizers::Tokenizer::from_file(&tok).map_err(|e| anyhow::anyhow!("{}: {e}", tok.display()))?)
            } else {
                Arc::new(DocumentPromptTokenizer)
            };
            (Weights::new(Checkpoint::open_dir(dir)?, &device, float)?, config, tokenizer, dir.display().to_string())
        }
        None => (
            Weights::random(&device, float, 0)?,
            release_config_for(args.arch),
            Arc::new(DocumentPromptTokenizer),
            "random release-size weights".to_string(),
        ),
    };
    let ocr = DeepseekOcr::from_weights(&weights, &config, "config.json", tokenizer)?;
    let (load_host_s, load_upload_s) = weights.load_seconds();
    drop(weights);
    device.sync().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let load_s = t0.elapsed().as_secs_f64();
    eprintln!("stages, cold run (kernel compilation and autotuning included)…");
    let mut report = BenchReport {
        device: spec.to_string(),
        dtype: float.to_string(),
        model: label,
        image: match pages.len() {
            1 => format!(
                "{} ({}x{})",
                args.image.as_ref().map_or("synthetic A4 page".to_string(), |p| p.display().to_string()),
                image.width,
                image.height
            ),
            n => format!(
                "{} ({n} pages, in order; the first {}x{})",
                args.image.as_ref().expect("pages from --image").display(),
                image.width,
                image.height
            ),
        },
        load_s,
        load_host_s,
        load_upload_s,
        stages_cold: if args.no_stages { StageTimings::default() } else { stage_timings(&ocr, &image)? },
        stages_warm: None,
        single: None,
        batch: None,
        mixed: None,
        mixed_budgets: (args.mixed > 0).then_some((args.min_tokens, args.max_tokens, args.seed)),
        vision: Vec::new(),
        gpu_cache_dir,
        gpu_build: Vec::new(),
    };
    let gpu = dsocr::kernels::runs_cube_kernels(ocr.device());
    report.build_phase(gpu, if args.no_stages { "load" } else { "load and the stages' first run" });
    // Written after each part: a first run can take minutes, and a run cut short should still
    // leave its figures behind.
    write_report(&report, args.json_out.as_deref())?;
    if !args.no_stages {
        report.stages_warm = Some(stage_timings(&ocr, &image)?);
    }
    let mode = dsocr::preprocess::Mode::Gundam.spec_for(ocr.architecture())?;
    for &pages in &args.vision_pages {
        eprintln!("vision alone, {pages} pages together…");
        let bytes = args.engine.options(&mode, args.new_tokens).vision_batch_bytes.unwrap_or(dsocr::engine::DEFAULT_VISION_BATCH_BYTES);
        let r = vision_throughput(&ocr, &image, pages.max(1), bytes)?;
        eprintln!("vision: {} pages ({} views) in {:.3} s: {:.1} pages/s", r.pages, r.views, r.seconds, r.pages_per_s);
        report.vision.push(r);
        write_report(&report, args.json_out.as_deref())?;
    }
    // The engine as `dsocr ocr` sets it up for a run of `pages` pages (the vision thread included).
    let engine = |max_tokens: usize, max_seqs: Option<usize>, pages: usize| EngineOptions {
        max_seqs,
        vision_thread: args.engine.vision_thread_for(pages, gpu),
        ..args.engine.options(&mode, max_tokens)
    };
    eprintln!("one page, {} tokens…", args.new_tokens);
    report.single = Some(run_workload_warm(&ocr, std::slice::from_ref(&image), &[args.new_tokens], &engine(args.new_tokens, Some(1), 1))?);
    report.build_phase(gpu, "one page");
    write_report(&report, args.json_out.as_deref())?;
    if args.batch > 1 {
        eprintln!("{} pages together, {} tokens each…", args.batch, args.new_tokens);
        let budgets = vec![args.new_tokens; args.batch];
        report.batch = Some(run_workload_warm(&ocr, &pages, &budgets, &engine(args.new_tokens, Some(args.batch), args.batch))?);
        report.build_phase(gpu, "batch");
        write_report(&report, args.json_out.as_deref())?;
    }
    if args.mixed > 0 {
        let budgets = mixed_budgets(args.mixed, args.min_tokens, args.max_tokens, args.seed);
        eprintln!("{} pages of {}..={} tokens (seed {})…", args.mixed, args.min_tokens, args.max_tokens, args.seed);
        report.mixed = Some(if args.mixed_once {
            run_workload(&ocr, &pages, &budgets, &engine(args.max_tokens, args.engine.max_seqs, args.mixed))?
        } else {
            run_workload_warm(&ocr, &pages, &budgets, &engine(args.max_tokens, args.engine.max_seqs, args.mixed))?
        });
        report.build_phase(gpu, "mixed");
    }
    let json = write_report(&report, args.json_out.as_deref())?;
    println!("{json}");
    Ok(0)
}

#[derive(Args)]
pub struct KernelsCheckArgs {
    /// cuda or cuda:N (on the CPU there are no kernels to check).
    #[arg(long, default_value = "cuda")]
    device: String,
    #[command(flatten)]
    gpu: crate::gpu_args::GpuArgs,
}

/// `dsocr bench --devices` over several devices (bench_devices.rs).
fn bench_devices(args: &BenchArgs, devices: &[DeviceSpec]) -> anyhow::Result<i32> {
    anyhow::ensure!(args.mixed > 0, "--devices runs the mixed workload only: give --mixed N (and --device for the other workloads)");
    anyhow::ensure!(args.min_tokens >= 1 && args.min_tokens <= args.max_tokens, "--min-tokens must be between 1 and --max-tokens");
    dsocr::kernels::configure(args.engine.kernels());
    let dtype: Option<FloatType> = args.dtype.as_deref().map(str::parse).transpose()?;
    let image = match &args.image {
        Some(path) => load_page(path)?,
        None => dsocr::bench::a4_page(),
    };
    let (from, model) = match &args.model {
        Some(dir) => (crate::bench_devices::WeightsFrom::Dir(dir.clone()), dir.display().to_string()),
        None => (crate::bench_devices::WeightsFrom::Random(args.arch), "random release-size weights".to_string()),
    };
    let mode = dsocr::preprocess::Mode::Gundam.spec();
    let engine =
        EngineOptions { vision_thread: args.engine.vision_thread_on(args.mixed, devices), ..args.engine.options(&mode, args.max_tokens) };
    let budgets = mixed_budgets(args.mixed, args.min_tokens, args.max_tokens, args.seed);
    let report =
        crate::bench_devices::run(devices, from, model, dtype, engine, &image, (args.min_tokens, args.max_tokens, args.seed, budgets))?;
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(p) = &args.json_out {
        std::fs::write(p, &json).with_context(|| format!("writing {}", p.display()))?;
    }
    println!("{json}");
    Ok(0)
}

/// Compare each kernel with its reference; exit 1 if any differs.
pub fn kernels_check(args: KernelsCheckArgs) -> anyhow::Result<i32> {
    args.gpu.apply();
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
