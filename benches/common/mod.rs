//! Shared set-up of the model benchmarks.
//!
//! By default the benches use the small parity checkpoint (`../shared/parity/model` or
//! `$DSOCR_PARITY_DIR/model`): CI-sized, real release layout. With `DSOCR_BENCH_RELEASE=1` they
//! build release-size models from seeded random weights instead (no 6.7 GB file needed).
//! `DSOCR_BENCH_DEVICE` (`cpu`, `cuda:0`) and `DSOCR_BENCH_DTYPE` (`f32`, `bf16`, `f16`) pick the
//! device and float type (defaults: `cpu`, the device's default type). `DSOCR_BENCH_ARCH=ocr2`
//! benches DeepSeek-OCR 2 (`../shared/parity-ocr2/model` or `$DSOCR_PARITY_OCR2_DIR/model`, or its
//! release sizes).

#![allow(dead_code)] // each bench uses a part

use dsocr::common::burn::prelude::*;
use dsocr::common::{Checkpoint, DeviceSpec, FloatType, Weights};
use dsocr::lm::LmConfig;
use dsocr::vision::VisionConfig;

/// What a bench runs on.
pub struct BenchModel {
    pub weights: Weights,
    /// The `config.json` value.
    pub config: serde_json::Value,
    /// The model's tokenizer, or the document-prompt stand-in for random weights.
    pub tokenizer: std::sync::Arc<dyn dsocr::engine::OcrTokenizer>,
    pub vision: VisionConfig,
    pub lm: LmConfig,
    pub device: Device,
    /// "parity-tiny" or "release-random" (with "-ocr2" for DeepSeek-OCR 2), for the bench names.
    pub label: &'static str,
}

/// The architecture `DSOCR_BENCH_ARCH` names (`ocr`, the default, or `ocr2`).
pub fn bench_arch() -> dsocr::preprocess::Architecture {
    let name = std::env::var("DSOCR_BENCH_ARCH").unwrap_or_else(|_| "ocr".into());
    dsocr::preprocess::Architecture::parse(&name).expect("DSOCR_BENCH_ARCH is ocr or ocr2")
}

pub fn bench_model(bench: &str) -> Option<BenchModel> {
    let spec: DeviceSpec = std::env::var("DSOCR_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into()).parse().expect("DSOCR_BENCH_DEVICE");
    let device = spec.device().expect("bench device");
    let float: FloatType = match std::env::var("DSOCR_BENCH_DTYPE") {
        Ok(s) => s.parse().expect("DSOCR_BENCH_DTYPE"),
        Err(_) => spec.default_dtype(),
    };
    let arch = bench_arch();
    let ocr2 = arch == dsocr::preprocess::Architecture::DeepseekOcr2;
    if std::env::var_os("DSOCR_BENCH_RELEASE").is_some() {
        let weights = Weights::random(&device, float, 0).expect("random weights");
        return Some(BenchModel {
            weights,
            config: dsocr::synthetic::release_config_for(arch),
            tokenizer: std::sync::Arc::new(dsocr::bench::DocumentPromptTokenizer),
            vision: VisionConfig::release(arch),
            lm: LmConfig::default(),
            device,
            label: if ocr2 { "release-random-ocr2" } else { "release-random" },
        });
    }
    let (variable, fixtures) = if ocr2 { ("DSOCR_PARITY_OCR2_DIR", "parity-ocr2") } else { ("DSOCR_PARITY_DIR", "parity") };
    let root = std::env::var_os(variable)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared").join(fixtures));
    let dir = root.join("model");
    let Ok(bytes) = std::fs::read(dir.join("config.json")) else {
        eprintln!("SKIPPED bench {bench}: no parity model at {} (set DSOCR_PARITY_DIR, or DSOCR_BENCH_RELEASE=1)", dir.display());
        return None;
    };
    let json: serde_json::Value = serde_json::from_slice(&bytes).expect("config.json");
    let weights = Weights::new(Checkpoint::open_dir(&dir).expect("checkpoint"), &device, float).expect("weights");
    let tokenizer: std::sync::Arc<dyn dsocr::engine::OcrTokenizer> = match tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")) {
        Ok(t) => std::sync::Arc::new(t),
        Err(_) => std::sync::Arc::new(dsocr::bench::DocumentPromptTokenizer),
    };
    Some(BenchModel {
        weights,
        config: json.clone(),
        tokenizer,
        vision: VisionConfig::from_json(&json, "config.json").expect("vision config"),
        lm: LmConfig::from_json(&json, "config.json").expect("lm config"),
        device,
        label: if ocr2 { "parity-tiny-ocr2" } else { "parity-tiny" },
    })
}

/// Normalised random pixels `[n, 3, size, size]`.
pub fn random_pixels(n: usize, size: usize, device: &Device, dtype: dsocr::common::burn::tensor::DType) -> Tensor<4> {
    Tensor::<4>::random([n, 3, size, size], dsocr::common::burn::tensor::Distribution::Uniform(-1.0, 1.0), device).cast(dtype)
}

/// Wait for queued device work (timings on a GPU must include it).
pub fn sync(device: &Device) {
    device.sync().expect("device sync");
}
