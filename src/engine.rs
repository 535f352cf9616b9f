//! The OCR engine: loading the model and running images through preprocessing, the vision
//! encoder, the language model and post-processing. The networks live in `dsocr-vision` and
//! `dsocr-lm`; this module only schedules them.

use std::time::Instant;

use dsocr_core::burn::prelude::*;
use dsocr_core::burn::tensor::DType;
use dsocr_core::{Checkpoint, DeviceSpec, FloatType, Weights};
use dsocr_lm::{DeepseekLm, GenerationConfig, LmConfig, Prompt, TextStream, generate};
use dsocr_preprocess::{ModeSpec, PreparedImage, RgbImage, ViewBatch, build_prompt, prepare_image};
use dsocr_render::{ImageLinks, Region, regions, strip_eos, to_markdown};
use dsocr_vision::{DeepEncoder, Tiling, VisionConfig};
use serde::Serialize;

use crate::source::{ModelFiles, ModelSource};
use crate::{OcrError, Task};

/// What to do with each image.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrOptions {
    /// The task (prompt); default: document to markdown with layout boxes.
    pub task: Task,
    /// Resolution mode; default: Gundam (1024 global view + 640 tiles, up to 9).
    pub mode: ModeSpec,
    /// Generation settings; default: greedy, ≤ 8192 tokens, no repeated 20-gram.
    pub generation: GenerationConfig,
}

impl Default for OcrOptions {
    fn default() -> Self {
        OcrOptions { task: Task::Markdown, mode: dsocr_preprocess::Mode::Gundam.spec(), generation: GenerationConfig::default() }
    }
}

/// Time spent per stage.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Timings {
    /// Resize, tiles, normalisation, tokenisation (seconds).
    pub preprocess_s: f64,
    /// SAM + CLIP + projector for all views (seconds).
    pub vision_s: f64,
    /// Prefill until the first token (seconds).
    pub prefill_s: f64,
    /// All decode steps (seconds).
    pub decode_s: f64,
    /// Tokens generated.
    pub tokens: usize,
}

impl Timings {
    /// Decode speed in tokens per second (per sequence).
    pub fn decode_tokens_per_s(&self) -> f64 {
        if self.decode_s > 0.0 { self.tokens.saturating_sub(1) as f64 / self.decode_s } else { 0.0 }
    }
}

/// Normalised pixels of a view batch (`[N, 3, S, S]`) as a device tensor in `dtype`: the one
/// place host views become encoder input (engine, bench and parity all go through it).
pub fn pixel_tensor(views: &ViewBatch, device: &Device, dtype: DType) -> Tensor<4> {
    Tensor::<4>::from_data(TensorData::new(views.normalized(), views.shape()), (device, DType::F32)).cast(dtype)
}

/// The result for one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OcrResult {
    /// The model's text, special tokens kept (`<|ref|>…`), EOS removed.
    pub raw: String,
    /// Markdown: figure blocks as `![](images/N.jpg)`, other layout tags removed.
    pub markdown: String,
    /// Layout regions in pixels of the input image.
    pub regions: Vec<Region>,
    /// Generated token ids (without the final EOS).
    pub tokens: Vec<u32>,
    /// Whether generation ended on EOS (false: the token budget ran out, often a repetition loop).
    pub stopped_on_eos: bool,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Input size `(width, height)`.
    pub image_size: (u32, u32),
    /// Stage timings (shared by all images of a batch).
    pub timings: Timings,
}

/// DeepSeek-OCR, loaded and ready.
pub struct DeepseekOcr {
    encoder: DeepEncoder,
    lm: DeepseekLm,
    tokenizer: tokenizers::Tokenizer,
    device: Device,
    float: FloatType,
    files: ModelFiles,
}

impl std::fmt::Debug for DeepseekOcr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeepseekOcr").field("files", &self.files).field("float", &self.float).finish()
    }
}

impl DeepseekOcr {
    /// Load from a directory or the Hugging Face hub (downloaded with a progress bar into the
    /// standard cache on first use) onto `device`, in `dtype` (default: bf16 on CUDA, f32 on CPU).
    pub fn load(source: &ModelSource, device: DeviceSpec, dtype: Option<FloatType>) -> Result<Self, OcrError> {
        let files = ModelFiles::resolve(source, true)?;
        Self::from_files(files, device, dtype)
    }

    /// Load from resolved files.
    pub fn from_files(files: ModelFiles, device_spec: DeviceSpec, dtype: Option<FloatType>) -> Result<Self, OcrError> {
        let float = dtype.unwrap_or(device_spec.default_dtype());
        let device = device_spec.device()?;
        let cfg_name = files.config.display().to_string();
        let bytes = std::fs::read(&files.config).map_err(|e| OcrError::Model(format!("cannot read {cfg_name}: {e}")))?;
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| OcrError::Model(format!("{cfg_name} is not valid JSON: {e}")))?;
        let vision_cfg = VisionConfig::from_json(&json, &cfg_name)?;
        let lm_cfg = LmConfig::from_json(&json, &cfg_name)?;
        let tokenizer = tokenizers::Tokenizer::from_file(&files.tokenizer)
            .map_err(|e| OcrError::Model(format!("cannot load tokenizer {}: {e}", files.tokenizer.display())))?;
        let t0 = Instant::now();
        let weights = Weights::new(Checkpoint::open_files(&files.weights)?, &device, float)?;
        let encoder = DeepEncoder::load(&weights, &vision_cfg)?;
        let lm = DeepseekLm::load(&weights, &lm_cfg)?;
        weights.check_all_used(&[])?;
        tracing::info!("model loaded on {device_spec} in {float} in {:.1} s", t0.elapsed().as_secs_f64());
        Ok(DeepseekOcr { encoder, lm, tokenizer, device, float, files })
    }

    /// The vision encoder.
    pub fn encoder(&self) -> &DeepEncoder {
        &self.encoder
    }

    /// The language model.
    pub fn lm(&self) -> &DeepseekLm {
        &self.lm
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &tokenizers::Tokenizer {
        &self.tokenizer
    }

    /// The model files in use.
    pub fn files(&self) -> &ModelFiles {
        &self.files
    }

    /// The compute float type.
    pub fn float(&self) -> FloatType {
        self.float
    }

    /// The Burn device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// OCR one image.
    pub fn ocr(&self, image: &RgbImage, options: &OcrOptions) -> Result<OcrResult, OcrError> {
        Ok(self.run(std::slice::from_ref(image), options, |_, _| {})?.remove(0))
    }

    /// OCR one image, calling `on_text` with each piece of text as soon as it is complete.
    pub fn ocr_stream(&self, image: &RgbImage, options: &OcrOptions, mut on_text: impl FnMut(&str)) -> Result<OcrResult, OcrError> {
        let mut stream = TextStream::new(|ids: &[u32]| self.tokenizer.decode(ids, false).unwrap_or_default());
        let result = self.run(std::slice::from_ref(image), options, |_, t| {
            if let Some(piece) = stream.push(t) {
                on_text(&piece);
            }
        })?;
        if let Some(rest) = stream.finish() {
            on_text(&rest);
        }
        Ok(result.into_iter().next().expect("one result"))
    }

    /// OCR several images as one batch (prefill and decode together).
    pub fn ocr_batch(&self, images: &[RgbImage], options: &OcrOptions) -> Result<Vec<OcrResult>, OcrError> {
        self.run(images, options, |_, _| {})
    }

    fn pixels(&self, views: &ViewBatch) -> Tensor<4> {
        pixel_tensor(views, &self.device, self.float.dtype())
    }

    /// Vision rows `[N, H]` for a prepared image.
    pub fn encode_image(&self, prepared: &PreparedImage) -> Tensor<2> {
        let tiles = prepared.tiles.as_ref().map(|t| (self.pixels(t), Tiling { cols: prepared.grid.cols, rows: prepared.grid.rows }));
        self.encoder.encode_image(self.pixels(&prepared.global), tiles)
    }

    fn run(&self, images: &[RgbImage], options: &OcrOptions, on_token: impl FnMut(usize, u32)) -> Result<Vec<OcrResult>, OcrError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let prompt_text = options.task.prompt();
        let t0 = Instant::now();
        let mut prepared = Vec::with_capacity(images.len());
        let mut ids = Vec::with_capacity(images.len());
        for image in images {
            let p = prepare_image(image, &options.mode)?;
            ids.push(build_prompt(&self.tokenizer, &prompt_text, &[p.image_token_count()])?);
            prepared.push(p);
        }
        let preprocess = t0.elapsed();

        let t1 = Instant::now();
        let mut prompts = Vec::with_capacity(images.len());
        for (p, ids) in prepared.iter().zip(&ids) {
            let rows = self.encode_image(p);
            let embeds = self.lm.embed_prompt(&ids.input_ids, &ids.images_seq_mask, Some(rows))?;
            prompts.push(Prompt { ids: ids.input_ids.clone(), embeds });
        }
        self.device.sync().map_err(|e| OcrError::Device(format!("device error during the vision encoder: {e:?}")))?;
        let vision = t1.elapsed();

        let (generated, stats) = generate(&self.lm, prompts, &options.generation, on_token)?;
        let timings = Timings {
            preprocess_s: preprocess.as_secs_f64(),
            vision_s: vision.as_secs_f64(),
            prefill_s: stats.prefill.as_secs_f64(),
            decode_s: stats.decode.as_secs_f64(),
            tokens: generated.iter().map(|g| g.tokens.len()).max().unwrap_or(0),
        };
        Ok(generated
            .into_iter()
            .zip(images.iter().zip(&ids))
            .map(|(g, (image, ids))| {
                let raw = self.tokenizer.decode(&g.tokens, false).unwrap_or_default();
                let (w, h) = (image.width as u32, image.height as u32);
                let text = strip_eos(&raw);
                OcrResult {
                    markdown: to_markdown(text, ImageLinks::Image),
                    regions: regions(text, w, h),
                    raw,
                    tokens: g.tokens,
                    stopped_on_eos: g.stopped_on_eos,
                    prompt_tokens: ids.len(),
                    image_size: (w, h),
                    timings,
                }
            })
            .collect())
    }
}
