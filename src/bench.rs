//! `dsocr bench`: one A4 page in Gundam mode (913-token prompt) through every stage, a forced
//! number of new tokens, optionally a batch of pages; timings of a first (cold: kernel compilation
//! and autotuning included) and a second (warm) run.

use std::time::Instant;

use dsocr_core::burn::prelude::*;
use dsocr_core::burn::tensor::DType;
use dsocr_lm::{DeepseekLm, GenerationConfig, Prompt, RepetitionGuard, generate};
use dsocr_preprocess::{Mode, RgbImage, build_prompt, prepare_image};
use dsocr_vision::{DeepEncoder, Tiling};
use serde::Serialize;

use crate::OcrError;
use crate::engine::pixel_tensor;

/// The official document prompt's text after `<image>`, as token ids (MODEL_SPEC §5.2), used when
/// the model directory has no tokenizer (synthetic weights).
pub const DOCUMENT_PROMPT_TAIL: [u32; 9] = [201, 128_820, 21_842, 270, 4_940, 304, 2_121, 7_919, 16];

/// A synthetic A4 page at 144 DPI (1190×1684, the official PDF resolution).
pub fn a4_page() -> RgbImage {
    synthetic_page(1190, 1684)
}

/// A synthetic page of `w × h` pixels: white paper, dark "text lines" and a patterned figure, so
/// that resizing and encoding work on realistic edges rather than a flat colour.
pub fn synthetic_page(w: usize, h: usize) -> RgbImage {
    let mut data = vec![255u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let text_line = (y / 12) % 3 != 2 && (w / 12..w - w / 12).contains(&x) && ((x / 7 + y / 12) % 5 != 0);
            let figure = (h / 2..h * 3 / 4).contains(&y) && (w / 6..w * 5 / 6).contains(&x);
            let v = if figure {
                ((x ^ y) & 0xff) as u8
            } else if text_line && (y % 12) < 8 {
                20
            } else {
                255
            };
            data[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[v, v, v.saturating_add(10)]);
        }
    }
    RgbImage::new(w, h, data).expect("valid page")
}

/// Timings of one run, in seconds.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RunTimings {
    /// Resize, tiles, normalisation and prompt ids.
    pub preprocess_s: f64,
    /// SAM over the global view and the tiles.
    pub sam_s: f64,
    /// CLIP over the same views.
    pub clip_s: f64,
    /// Fusion, projector and token layout.
    pub projector_s: f64,
    /// Decoder prefill until the first token is known on the host.
    pub prefill_s: f64,
    /// Preprocess + vision + prefill: time to first token.
    pub ttft_s: f64,
    /// Decode of the forced new tokens after the first, batch 1.
    pub decode_s: f64,
    /// Decode tokens per second at batch 1.
    pub decode_tokens_per_s: f64,
    /// Mean decode step at batch 1 over the first quarter of the steps, in milliseconds (with
    /// the last quarter's, shows whether steps slow down as the sequence grows).
    pub decode_step_ms_first_quarter: f64,
    /// Mean decode step at batch 1 over the last quarter of the steps, in milliseconds.
    pub decode_step_ms_last_quarter: f64,
    /// Whole page at batch 1 (time to first token + decode).
    pub page_s: f64,
    /// With `batch > 1`: decode tokens per second per sequence.
    pub batch_decode_tokens_per_s_per_seq: Option<f64>,
    /// With `batch > 1`: decode tokens per second over the batch.
    pub batch_decode_tokens_per_s_aggregate: Option<f64>,
}

/// The bench report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Device and float type.
    pub device: String,
    /// Float type.
    pub dtype: String,
    /// Model directory or "random".
    pub model: String,
    /// Seconds to load the weights.
    pub load_s: f64,
    /// Prompt length.
    pub prompt_tokens: usize,
    /// Forced new tokens per sequence.
    pub new_tokens: usize,
    /// Pages decoded together in the batch measurement.
    pub batch: usize,
    /// First run: includes kernel compilation and autotuning.
    pub cold: RunTimings,
    /// Second run in the same process (`None` until it has finished).
    pub warm: Option<RunTimings>,
    /// Largest device memory reserved by the allocator, sampled after each stage (bytes).
    pub peak_reserved_bytes: Option<u64>,
    /// Where autotune results and compiled kernels are persisted (GPU builds).
    pub gpu_cache_dir: Option<String>,
}

/// What to run.
pub struct BenchSetup<'a> {
    /// The encoder.
    pub encoder: &'a DeepEncoder,
    /// The decoder.
    pub lm: &'a DeepseekLm,
    /// A tokenizer, when the model has one.
    pub tokenizer: Option<&'a tokenizers::Tokenizer>,
    /// Device.
    pub device: &'a Device,
    /// Compute type.
    pub dtype: DType,
    /// Forced new tokens.
    pub new_tokens: usize,
    /// Batch size of the batched measurement (1: none).
    pub batch: usize,
}

fn sync(device: &Device) -> Result<(), OcrError> {
    device.sync().map_err(|e| OcrError::Device(format!("device error: {e:?}")))
}

/// Run the page once and measure every stage.
pub fn run_once(s: &BenchSetup<'_>, peak: &mut Option<u64>) -> Result<RunTimings, OcrError> {
    let mut sample = || {
        if let Some(u) = s.device.memory_pool_usage() {
            *peak = Some(peak.unwrap_or(0).max(u.bytes_reserved));
        }
    };
    let mut t = RunTimings::default();
    let page = a4_page();
    let t0 = Instant::now();
    let prepared = prepare_image(&page, &Mode::Gundam.spec())?;
    let n_image = prepared.image_token_count();
    let ids = match s.tokenizer {
        Some(tok) => build_prompt(tok, "<image>\n<|grounding|>Convert the document to markdown.", &[n_image])?,
        None => {
            let mut ids = dsocr_preprocess::PromptIds { input_ids: vec![0], images_seq_mask: vec![false] };
            ids.input_ids.extend(std::iter::repeat_n(dsocr_preprocess::IMAGE_TOKEN_ID, n_image));
            ids.images_seq_mask.extend(std::iter::repeat_n(true, n_image));
            ids.input_ids.extend(DOCUMENT_PROMPT_TAIL);
            ids.images_seq_mask.extend([false; 9]);
            ids
        }
    };
    let global_px = pixel_tensor(&prepared.global, s.device, s.dtype);
    let tiles_px = prepared.tiles.as_ref().map(|v| pixel_tensor(v, s.device, s.dtype));
    sync(s.device)?;
    t.preprocess_s = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let sam_g = s.encoder.sam.forward(global_px);
    let sam_t = tiles_px.map(|p| s.encoder.sam.forward(p));
    sync(s.device)?;
    t.sam_s = t1.elapsed().as_secs_f64();
    tracing::info!("bench: sam {:.3} s", t.sam_s);
    sample();
    let t2 = Instant::now();
    let clip_g = s.encoder.clip.forward(sam_g.clone());
    let clip_t = sam_t.as_ref().map(|x| s.encoder.clip.forward(x.clone()));
    sync(s.device)?;
    t.clip_s = t2.elapsed().as_secs_f64();
    tracing::info!("bench: clip {:.3} s", t.clip_s);
    sample();
    let t3 = Instant::now();
    let proj_g = s.encoder.project(&sam_g, &clip_g);
    let tiles =
        sam_t.zip(clip_t).map(|(sm, cl)| (s.encoder.project(&sm, &cl), Tiling { cols: prepared.grid.cols, rows: prepared.grid.rows }));
    let rows = s.encoder.arrange(proj_g, tiles);
    let embeds = s.lm.embed_prompt(&ids.input_ids, &ids.images_seq_mask, Some(rows))?;
    sync(s.device)?;
    t.projector_s = t3.elapsed().as_secs_f64();

    let config =
        GenerationConfig { max_new_tokens: s.new_tokens, repetition: RepetitionGuard::None, ignore_eos: true, ..Default::default() };
    let prompt = Prompt { ids: ids.input_ids.clone(), embeds };
    // When each token reached the host: step times come from their differences.
    let mut arrivals = Vec::with_capacity(s.new_tokens);
    let (out, stats) = generate(s.lm, vec![prompt.clone()], &config, |_, _| arrivals.push(Instant::now()))?;
    sample();
    let steps: Vec<f64> = arrivals.windows(2).map(|w| (w[1] - w[0]).as_secs_f64() * 1e3).collect();
    let quarter = (steps.len() / 4).max(1);
    let mean = |xs: &[f64]| if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 };
    t.decode_step_ms_first_quarter = mean(&steps[..quarter.min(steps.len())]);
    t.decode_step_ms_last_quarter = mean(&steps[steps.len().saturating_sub(quarter)..]);
    t.prefill_s = stats.prefill.as_secs_f64();
    t.ttft_s = t.preprocess_s + t.sam_s + t.clip_s + t.projector_s + t.prefill_s;
    t.decode_s = stats.decode.as_secs_f64();
    t.decode_tokens_per_s = if t.decode_s > 0.0 { stats.decode_steps as f64 / t.decode_s } else { 0.0 };
    t.page_s = t.ttft_s + t.decode_s;
    tracing::info!(
        "bench: prefill {:.3} s, decode {:.3} s ({:.1} tok/s; steps {:.2} ms first quarter, {:.2} ms last)",
        t.prefill_s,
        t.decode_s,
        t.decode_tokens_per_s,
        t.decode_step_ms_first_quarter,
        t.decode_step_ms_last_quarter
    );
    debug_assert_eq!(out[0].tokens.len(), s.new_tokens);

    if s.batch > 1 {
        let prompts = vec![prompt; s.batch];
        let (_, stats) = generate(s.lm, prompts, &config, |_, _| {})?;
        sample();
        let per_seq = stats.decode_steps as f64 / stats.decode.as_secs_f64().max(1e-9);
        t.batch_decode_tokens_per_s_per_seq = Some(per_seq);
        t.batch_decode_tokens_per_s_aggregate = Some(per_seq * s.batch as f64);
    }
    Ok(t)
}
