//! `dsocr bench --devices LIST --mixed N`: the mixed workload through one engine per device (an
//! `OcrService`, as `dsocr ocr --devices` and `dsocr serve --devices` run), to measure how
//! throughput grows with GPUs. The stage timings and the batch-1 and batch workloads measure one
//! engine and are left out: run them with `--device`.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use dsocr::bench::{DocumentPromptTokenizer, WorkloadReport};
use dsocr::common::{DeviceSpec, FloatType, Weights};
use dsocr::preprocess::{Architecture, RgbImage};
use dsocr::{
    DeepseekOcr, EngineOptions, EngineStatus, Event, GenerationConfig, ModelFiles, OcrError, OcrOptions, OcrService, RepetitionGuard,
    ServiceOptions,
};
use serde::Serialize;

/// The report of a run over several devices.
#[derive(Debug, Serialize)]
pub struct DevicesReport {
    pub devices: Vec<String>,
    pub model: String,
    /// The workload run a second time (the first compiled, tuned and captured on every engine).
    pub mixed: WorkloadReport,
    pub mixed_budgets: (usize, usize, u64),
    /// Every engine, and why one was out of service.
    pub engines: Vec<EngineStatus>,
}

/// Where the engines' weights come from: a checkpoint directory, or random release-size weights
/// of an architecture.
pub enum WeightsFrom {
    Dir(std::path::PathBuf),
    Random(Architecture),
}

/// Load one engine's model on `device`.
pub fn loader(from: WeightsFrom, dtype: Option<FloatType>) -> impl Fn(DeviceSpec) -> Result<DeepseekOcr, OcrError> + Send + Sync + 'static {
    move |spec| match &from {
        WeightsFrom::Dir(dir) => DeepseekOcr::from_files(ModelFiles::from_dir(dir)?, spec, dtype),
        WeightsFrom::Random(arch) => {
            let device = spec.device()?;
            let weights = Weights::random(&device, dtype.unwrap_or(spec.default_dtype()), 0)?;
            let config = dsocr::synthetic::release_config_for(*arch);
            DeepseekOcr::from_weights(&weights, &config, "config.json", Arc::new(DocumentPromptTokenizer))
        }
    }
}

/// `image` once per entry of `budgets` (EOS ignored) through `service`, twice; the second run is
/// reported, with the first's wall time.
pub fn mixed_on_service(service: &OcrService, image: &RgbImage, budgets: &[usize]) -> anyhow::Result<WorkloadReport> {
    let cold = once(service, image, budgets)?;
    let mut warm = once(service, image, budgets)?;
    warm.cold_wall_s = Some(cold.wall_s);
    let stats = service.stats();
    (warm.max_seqs, warm.kv_blocks) = (stats.max_seqs, stats.kv_blocks);
    Ok(warm)
}

fn once(service: &OcrService, image: &RgbImage, budgets: &[usize]) -> anyhow::Result<WorkloadReport> {
    let t0 = Instant::now();
    let (tx, rx) = mpsc::channel();
    // Pages are prepared on this thread while the engines run the first ones.
    for &max_new_tokens in budgets {
        let generation = GenerationConfig { max_new_tokens, repetition: RepetitionGuard::None, ignore_eos: true, ..Default::default() };
        let options = OcrOptions { generation, ..Default::default() };
        let tx = tx.clone();
        service.submit(
            service.prepare(image, &options),
            options,
            false,
            Box::new(move |e| {
                if let Event::Finished { result, .. } = e {
                    let _ = tx.send(*result);
                }
                true
            }),
        );
    }
    drop(tx);
    let mut latencies = Vec::new();
    let mut ttfts = Vec::new();
    let mut tokens = 0;
    for result in rx.iter().take(budgets.len()) {
        let r = result?;
        let t = r.timings;
        tokens += r.tokens.len();
        ttfts.push(t.queue_s + t.vision_s + t.prefill_s);
        latencies.push(t.queue_s + t.vision_s + t.prefill_s + t.decode_s);
    }
    anyhow::ensure!(latencies.len() == budgets.len(), "the service finished {} of {} pages", latencies.len(), budgets.len());
    let wall_s = t0.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    Ok(WorkloadReport {
        pages: budgets.len(),
        tokens,
        wall_s,
        tokens_per_s: tokens as f64 / wall_s.max(1e-9),
        pages_per_min: budgets.len() as f64 * 60.0 / wall_s.max(1e-9),
        latency_p50_s: pct(0.5),
        latency_p95_s: pct(0.95),
        mean_ttft_s: ttfts.iter().sum::<f64>() / ttfts.len().max(1) as f64,
        ..Default::default()
    })
}

/// Start the engines and run the workload.
pub fn run(
    devices: &[DeviceSpec],
    from: WeightsFrom,
    model: String,
    dtype: Option<FloatType>,
    engine: EngineOptions,
    image: &RgbImage,
    budgets: (usize, usize, u64, Vec<usize>),
) -> anyhow::Result<DevicesReport> {
    let (min, max, seed, budgets) = budgets;
    let service = OcrService::start_on(devices, loader(from, dtype), engine, ServiceOptions::default())?;
    eprintln!("{} pages of {min}..={max} tokens (seed {seed}) on {}…", budgets.len(), service.description());
    let mixed = mixed_on_service(&service, image, &budgets)?;
    Ok(DevicesReport {
        devices: devices.iter().map(ToString::to_string).collect(),
        model,
        mixed,
        mixed_budgets: (min, max, seed),
        engines: service.engines(),
    })
}
