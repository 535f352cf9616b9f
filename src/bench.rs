//! `dsocr bench`: one A4 page in Gundam mode (913-token prompt) stage by stage, then workloads
//! through the engine every entry point uses: one page (batch 1), a batch of equal pages, and a
//! mixed workload whose pages want different numbers of tokens (continuous batching); and the
//! vision encoder alone over many pages at once.

use std::time::Instant;

use dsocr_engine::{
    EngineOptions, Event, GenerationConfig, OcrOptions, OcrTokenizer, RepetitionGuard, Task, encode_pages, pixel_tensor, prepare_page,
};
use dsocr_preprocess::{PreprocessError, RgbImage, TextTokenizer};
use dsocr_vision::Tiling;
use serde::Serialize;

use crate::{DeepseekOcr, OcrError};

/// The official document prompt's text after `<image>`, as token ids (docs/model.md §5.2).
pub const DOCUMENT_PROMPT_TAIL: [u32; 9] = [201, 128_820, 21_842, 270, 4_940, 304, 2_121, 7_919, 16];

/// A stand-in tokenizer for model directories without `tokenizer.json` (synthetic weights): it
/// knows the document prompt's text (so the real prompt builder runs) and writes ids as `<id>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DocumentPromptTokenizer;

impl TextTokenizer for DocumentPromptTokenizer {
    fn encode_text(&self, text: &str) -> Result<Vec<u32>, PreprocessError> {
        let tail = Task::Markdown.prompt();
        if Some(text) == tail.strip_prefix("<image>") {
            return Ok(DOCUMENT_PROMPT_TAIL.to_vec());
        }
        Err(PreprocessError::Tokenizer(format!(
            "this model has no tokenizer.json, so only the document prompt can be encoded, not {text:?}"
        )))
    }
}

impl OcrTokenizer for DocumentPromptTokenizer {
    fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|id| format!("<{id}>")).collect()
    }
}

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

/// One page stage by stage, in seconds.
#[derive(Debug, Clone, Serialize, Default)]
pub struct StageTimings {
    /// Resize, tiles, normalisation and prompt ids, and the pixels' upload.
    pub preprocess_s: f64,
    /// Of which the pixels' upload (and their normalisation on a GPU).
    pub upload_s: f64,
    /// SAM over the global view and the tiles.
    pub sam_s: f64,
    /// The second stage over the same views: CLIP (DeepSeek-OCR) or the Qwen2 encoder
    /// (DeepSeek-OCR 2).
    pub stage2_s: f64,
    /// Fusion, projector and token layout.
    pub projector_s: f64,
    /// Decoder prefill until the first token is known on the host.
    pub prefill_s: f64,
    /// The sum: time to first token.
    pub ttft_s: f64,
    /// Prompt length.
    pub prompt_tokens: usize,
}

/// Run `image` (e.g. [`a4_page`]) stage by stage (each stage synchronised, so its time is its own).
pub fn stage_timings(ocr: &DeepseekOcr, image: &RgbImage) -> Result<StageTimings, OcrError> {
    let (device, dtype) = (ocr.device().clone(), ocr.float().dtype());
    let sync = || device.sync().map_err(|e| OcrError::Device(format!("device error: {e:?}")));
    let mut t = StageTimings::default();
    let t0 = Instant::now();
    let page = prepare_page(image, &ocr.options_for_model(&OcrOptions::default())?, ocr.tokenizer())?;
    let t_upload = Instant::now();
    let global = pixel_tensor(&page.image.global, &device, dtype);
    let tiles = page.image.tiles.as_ref().map(|v| pixel_tensor(v, &device, dtype));
    sync()?;
    t.preprocess_s = t0.elapsed().as_secs_f64();
    t.upload_s = t_upload.elapsed().as_secs_f64();
    t.prompt_tokens = page.prompt.len();
    let enc = ocr.encoder();
    let t1 = Instant::now();
    let (sam_g, sam_t) = (enc.sam.forward(global), tiles.map(|p| enc.sam.forward(p)));
    sync()?;
    t.sam_s = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let stage2_g = enc.encode_stage2(sam_g.clone());
    let stage2_t = sam_t.as_ref().map(|x| enc.encode_stage2(x.clone()));
    sync()?;
    t.stage2_s = t2.elapsed().as_secs_f64();
    let t3 = Instant::now();
    let grid = Tiling { cols: page.image.grid.cols, rows: page.image.grid.rows };
    let tiles = sam_t.zip(stage2_t).map(|(s, c)| (enc.project(&s, &c), grid));
    let rows = enc.arrange(enc.project(&sam_g, &stage2_g), tiles);
    let embeds = ocr.lm().embed_prompt(&page.prompt.input_ids, &page.prompt.images_seq_mask, Some(rows))?;
    sync()?;
    t.projector_s = t3.elapsed().as_secs_f64();
    let t4 = Instant::now();
    let (mut pool, blocks) = ocr.lm().new_single_pool(page.prompt.len() + 1);
    let logits = ocr.lm().prefill(embeds, &blocks, 0, &mut pool)?;
    let _first = logits.argmax(1).into_data();
    t.prefill_s = t4.elapsed().as_secs_f64();
    t.ttft_s = t.preprocess_s + t.sam_s + t.stage2_s + t.projector_s + t.prefill_s;
    Ok(t)
}

/// What one workload measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct WorkloadReport {
    /// Pages run.
    pub pages: usize,
    /// Most pages in flight allowed (`max_seqs`).
    pub max_seqs: usize,
    /// Blocks of the KV pool (64 slots each).
    pub kv_blocks: usize,
    /// Tokens generated over all pages.
    pub tokens: usize,
    /// Wall time of the whole run, preparation on CPU threads included (seconds).
    pub wall_s: f64,
    /// All tokens over the wall time.
    pub tokens_per_s: f64,
    /// Tokens of decode steps over the time in decode steps (vision and prefill excluded).
    pub decode_tokens_per_s: f64,
    /// Pages finished per minute of wall time.
    pub pages_per_min: f64,
    /// Median page latency: from joining the engine's queue to its last token (seconds).
    pub latency_p50_s: f64,
    /// 95th percentile of the same.
    pub latency_p95_s: f64,
    /// Mean time to first token per page (queue + vision + prefill, seconds).
    pub mean_ttft_s: f64,
    /// Mean pages per decode step.
    pub mean_batch: f64,
    /// Most pages in one decode step.
    pub peak_in_flight: usize,
    /// Decode steps.
    pub steps: usize,
    /// Seconds the engine waited for a prepared page with nothing to run.
    pub input_wait_s: f64,
    /// Of `decode_s`: the steps until their tokens were on the host (GPU time, captures included).
    pub step_s: f64,
    /// Decode-step graphs captured and the seconds that took.
    pub graph_captures: usize,
    /// See `graph_captures`.
    pub capture_s: f64,
    /// Wall time of the same workload run first in this process (kernel compilation, autotuning
    /// and graph captures included), when it was run twice.
    pub cold_wall_s: Option<f64>,
    /// Seconds in vision encoding, prefill and decode steps.
    pub vision_s: f64,
    /// See `vision_s`.
    pub prefill_s: f64,
    /// See `vision_s`.
    pub decode_s: f64,
    /// Seconds the engine had nothing to run but waited for the vision thread (on a GPU vision
    /// runs beside decoding, so `vision_s` overlaps the others).
    pub vision_wait_s: f64,
    /// Largest device memory reserved by the allocator, sampled as pages finish (bytes).
    pub peak_reserved_bytes: Option<u64>,
}

/// Run one page per entry of `budgets` (that many new tokens each, EOS ignored) through the
/// engine, the pages prepared on CPU threads ahead of it as in `dsocr ocr`: page `i` is
/// `images[i % images.len()]` (one image for every page, or a document's pages in order).
///
/// # Panics
/// When `images` is empty.
pub fn run_workload(ocr: &DeepseekOcr, images: &[RgbImage], budgets: &[usize], engine: &EngineOptions) -> Result<WorkloadReport, OcrError> {
    assert!(!images.is_empty(), "a workload needs at least one page image");
    let jobs: Vec<_> = budgets
        .iter()
        .enumerate()
        .map(|(i, &max_new_tokens)| {
            let generation = GenerationConfig { max_new_tokens, repetition: RepetitionGuard::None, ignore_eos: true, ..Default::default() };
            let page = images[i % images.len()].clone();
            let source: dsocr_engine::PageSource = Box::new(move || Ok(page));
            ocr.options_for_model(&OcrOptions { generation, ..Default::default() }).map(|options| (source, options))
        })
        .collect::<Result<_, _>>()?;
    let device = ocr.device().clone();
    let mut peak: Option<u64> = None;
    let mut latencies = Vec::with_capacity(budgets.len());
    let mut ttfts = Vec::with_capacity(budgets.len());
    let mut failure = None;
    let t0 = Instant::now();
    let requests = dsocr_engine::prepare_ahead(jobs, ocr.shared_tokenizer(), 8, false);
    let mut eng = ocr.engine(engine)?;
    let stats = eng.run(&requests, &mut |event| {
        if let Event::Finished { result, .. } = event {
            match *result {
                Ok(r) => {
                    let t = r.timings;
                    ttfts.push(t.queue_s + t.vision_s + t.prefill_s);
                    latencies.push(t.queue_s + t.vision_s + t.prefill_s + t.decode_s);
                }
                Err(e) => failure = Some(e),
            }
            if let Some(u) = device.memory_pool_usage() {
                peak = Some(peak.unwrap_or(0).max(u.bytes_reserved));
            }
        }
    })?;
    let wall_s = t0.elapsed().as_secs_f64();
    if let Some(e) = failure {
        return Err(e.into());
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    let decode_tokens = stats.batch_sum;
    Ok(WorkloadReport {
        pages: budgets.len(),
        max_seqs: stats.max_seqs,
        kv_blocks: stats.kv_blocks,
        tokens: stats.tokens,
        wall_s,
        tokens_per_s: stats.tokens as f64 / wall_s.max(1e-9),
        decode_tokens_per_s: decode_tokens as f64 / stats.decode_s.max(1e-9),
        pages_per_min: budgets.len() as f64 * 60.0 / wall_s.max(1e-9),
        latency_p50_s: pct(0.5),
        latency_p95_s: pct(0.95),
        mean_ttft_s: ttfts.iter().sum::<f64>() / ttfts.len().max(1) as f64,
        mean_batch: stats.batch_sum as f64 / stats.steps.max(1) as f64,
        peak_in_flight: stats.peak_in_flight,
        steps: stats.steps,
        input_wait_s: stats.input_wait_s,
        vision_s: stats.vision_s,
        prefill_s: stats.prefill_s,
        decode_s: stats.decode_s,
        vision_wait_s: stats.vision_wait_s,
        step_s: stats.step_s,
        graph_captures: stats.graph_captures,
        capture_s: stats.capture_s,
        cold_wall_s: None,
        peak_reserved_bytes: peak,
    })
}

/// [`run_workload`] twice in one process: the first run compiles and autotunes every kernel its
/// shapes need and captures its graphs; the second is the measurement (with the first's wall time).
pub fn run_workload_warm(
    ocr: &DeepseekOcr,
    images: &[RgbImage],
    budgets: &[usize],
    engine: &EngineOptions,
) -> Result<WorkloadReport, OcrError> {
    let cold = run_workload(ocr, images, budgets, engine)?;
    tracing::info!("bench: cold run of {} pages: {:.2} s", budgets.len(), cold.wall_s);
    let mut warm = run_workload(ocr, images, budgets, engine)?;
    warm.cold_wall_s = Some(cold.wall_s);
    Ok(warm)
}

/// The vision encoder alone over `pages` copies of a page encoded together, as the engine
/// encodes the pages it admits in one step.
#[derive(Debug, Clone, Serialize, Default)]
pub struct VisionReport {
    /// Pages encoded together.
    pub pages: usize,
    /// Views over all pages (a global view and its tiles each).
    pub views: usize,
    /// Estimated peak bytes of one vision batch (`EngineOptions::vision_batch_bytes`).
    pub batch_bytes: u64,
    /// Seconds for all pages, warm (a first run compiled and tuned the kernels).
    pub seconds: f64,
    /// Pages per second through SAM, CLIP, the projector and the prompt embedding.
    pub pages_per_s: f64,
    /// The first (cold) run's seconds.
    pub cold_seconds: f64,
}

/// Encode `pages` copies of `image` together, twice; the second run is the measurement.
pub fn vision_throughput(ocr: &DeepseekOcr, image: &RgbImage, pages: usize, batch_bytes: u64) -> Result<VisionReport, OcrError> {
    let device = ocr.device().clone();
    let page = prepare_page(image, &ocr.options_for_model(&OcrOptions::default())?, ocr.tokenizer())?;
    let batch: Vec<&dsocr_engine::PreparedPage> = vec![&page; pages];
    let views = pages * (1 + page.image.tiles.as_ref().map_or(0, |t| t.count));
    let run = || -> Result<f64, OcrError> {
        let t0 = Instant::now();
        for embeds in encode_pages(ocr.encoder(), ocr.lm(), &batch, batch_bytes) {
            embeds?;
        }
        device.sync().map_err(|e| OcrError::Device(format!("device error: {e:?}")))?;
        Ok(t0.elapsed().as_secs_f64())
    };
    let cold_seconds = run()?;
    let seconds = run()?;
    Ok(VisionReport { pages, views, batch_bytes, seconds, pages_per_s: pages as f64 / seconds, cold_seconds })
}

/// `n` token budgets drawn uniformly from `min..=max` with a fixed `seed` (a mixed workload).
pub fn mixed_budgets(n: usize, min: usize, max: usize, seed: u64) -> Vec<usize> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            // SplitMix64.
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            min + (z % (max - min + 1) as u64) as usize
        })
        .collect()
}
