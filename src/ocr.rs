//! The loaded model and the entry points on it: one page, one page streamed, many pages. Every
//! one runs the engine (`dsocr-engine`): continuous batching of pages over a KV pool.

use std::sync::Arc;
use std::time::Instant;

use dsocr_core::burn::prelude::*;
use dsocr_core::{Checkpoint, DeviceSpec, FloatType, Weights};
use dsocr_engine::{Engine, EngineOptions, EngineStats, Event, InOrder, OcrOptions, OcrResult, OcrTokenizer, Request, prepare_page};
use dsocr_lm::{DeepseekLm, LmConfig};
use dsocr_preprocess::{Architecture, RgbImage};
use dsocr_vision::{DeepEncoder, VisionConfig};

use crate::OcrError;
use crate::source::{ModelFiles, ModelHeader, ModelSource};

/// Pages prepared ahead of the engine by [`DeepseekOcr::ocr_many`]'s preparation thread.
const PREPARED_AHEAD: usize = 8;

/// DeepSeek-OCR or DeepSeek-OCR 2 (whichever the checkpoint's `config.json` names), loaded and
/// ready.
pub struct DeepseekOcr {
    encoder: DeepEncoder,
    lm: DeepseekLm,
    tokenizer: Arc<dyn OcrTokenizer>,
    device: Device,
    float: FloatType,
    files: Option<ModelFiles>,
}

impl std::fmt::Debug for DeepseekOcr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeepseekOcr")
            .field("architecture", &self.architecture())
            .field("files", &self.files)
            .field("float", &self.float)
            .finish()
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
        Self::from_header(&ModelHeader::read(files)?, device_spec, dtype)
    }

    /// Load the weights of a model whose small files were read already ([`ModelHeader`]: pages
    /// can be prepared with its tokenizer and architecture while this loads).
    pub fn from_header(header: &ModelHeader, device_spec: DeviceSpec, dtype: Option<FloatType>) -> Result<Self, OcrError> {
        let float = dtype.unwrap_or(device_spec.default_dtype());
        let device = device_spec.device()?;
        let files = &header.files;
        check_weights_fit(&files.weights, float, dsocr_core::device_memory_bytes(&device), device_spec)?;
        let t0 = Instant::now();
        let weights = Weights::new(Checkpoint::open_files(&files.weights)?, &device, float)?;
        let mut ocr = Self::from_weights(&weights, &header.config, &header.config_name, header.tokenizer.clone())?;
        weights.check_all_used(&[])?;
        let (prepare_s, upload_s) = weights.load_seconds();
        tracing::info!(
            "model loaded on {device_spec} in {float} in {:.1} s (host reading and layout {prepare_s:.1} s over all threads, handing to the device {upload_s:.1} s)",
            t0.elapsed().as_secs_f64()
        );
        ocr.files = Some(files.clone());
        Ok(ocr)
    }

    /// Build from loaded weights, the `config.json` value (named `config_name` in errors) and a
    /// tokenizer (benchmarks: random weights; tests: the parity model).
    pub fn from_weights(
        weights: &Weights,
        config: &serde_json::Value,
        config_name: &str,
        tokenizer: Arc<dyn OcrTokenizer>,
    ) -> Result<Self, OcrError> {
        // The architecture comes from the file (`architectures`); an unknown one is refused by name
        // before its tensors fail to match in a less telling way.
        let encoder = DeepEncoder::load(weights, &VisionConfig::from_json(config, config_name)?)?;
        let lm = DeepseekLm::load(weights, &LmConfig::from_json(config, config_name)?)?;
        let device = lm.device();
        Ok(DeepseekOcr { encoder, lm, tokenizer, device, float: weights.float(), files: None })
    }

    /// Which checkpoint this is.
    pub fn architecture(&self) -> Architecture {
        self.encoder.architecture()
    }

    /// `options` as this model runs them ([`OcrOptions::for_architecture`]): DeepSeek-OCR's
    /// presets become DeepSeek-OCR 2's on that checkpoint. Every entry point of this type applies
    /// it; call it before [`dsocr_engine::prepare_page`] when driving an [`Engine`] yourself.
    pub fn options_for_model(&self, options: &OcrOptions) -> Result<OcrOptions, OcrError> {
        Ok(options.for_architecture(self.architecture())?)
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
    pub fn tokenizer(&self) -> &dyn OcrTokenizer {
        self.tokenizer.as_ref()
    }

    /// The tokenizer, shared (for preparation threads).
    pub fn shared_tokenizer(&self) -> Arc<dyn OcrTokenizer> {
        self.tokenizer.clone()
    }

    /// The model files in use (`None` when built from weights in memory).
    pub fn files(&self) -> Option<&ModelFiles> {
        self.files.as_ref()
    }

    /// The compute float type.
    pub fn float(&self) -> FloatType {
        self.float
    }

    /// The Burn device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// An engine on this model (see [`Engine`]: submit pages, step, collect events).
    pub fn engine(&self, options: &EngineOptions) -> Result<Engine<'_>, OcrError> {
        Ok(Engine::new(&self.encoder, &self.lm, self.tokenizer.as_ref(), options)?)
    }

    /// OCR one image.
    pub fn ocr(&self, image: &RgbImage, options: &OcrOptions) -> Result<OcrResult, OcrError> {
        self.ocr_stream(image, options, |_| {})
    }

    /// OCR one image, calling `on_text` with each piece of text as soon as it is complete.
    pub fn ocr_stream(&self, image: &RgbImage, options: &OcrOptions, mut on_text: impl FnMut(&str)) -> Result<OcrResult, OcrError> {
        let options = &self.options_for_model(options)?;
        let page = prepare_page(image, options, self.tokenizer.as_ref());
        let engine_options =
            EngineOptions { max_seqs: Some(1), ..EngineOptions::for_pages(&options.mode, options.generation.max_new_tokens) };
        let mut engine = self.engine(&engine_options)?;
        let mut result = None;
        let mut on_event = |event: Event| match event {
            Event::Started { .. } => {}
            Event::Text { text, .. } => on_text(&text),
            Event::Finished { result: r, .. } => result = Some(*r),
        };
        engine.submit(Request { tag: 0, page, options: options.clone(), stream: true }, &mut on_event);
        while !engine.is_idle() {
            engine.step(&mut on_event)?;
        }
        Ok(result.expect("the engine finishes every page it takes")?)
    }

    /// OCR many images together (continuous batching); results in input order, one per image (a
    /// page that fails has its error; the others are unaffected).
    pub fn ocr_batch(&self, images: &[RgbImage], options: &OcrOptions) -> Result<Vec<Result<OcrResult, OcrError>>, OcrError> {
        let options = &self.options_for_model(options)?;
        let owned: Vec<Result<RgbImage, dsocr_engine::EngineError>> = images.iter().cloned().map(Ok).collect();
        let engine_options = EngineOptions::for_pages(&options.mode, options.generation.max_new_tokens);
        let mut order = InOrder::new();
        let mut out = Vec::with_capacity(images.len());
        self.ocr_many(owned, options, &engine_options, |event| {
            if let Event::Finished { tag, result } = event {
                out.extend(order.push(tag, result.map_err(OcrError::from)).into_iter().map(|(_, r)| r));
            }
        })?;
        Ok(out)
    }

    /// The submit API for many pages: `images` are prepared on a background thread just ahead
    /// of the engine, and `on_event` gets each page's streamed text (none here) and result as it
    /// completes, tagged with the image's index (use [`InOrder`] for input order). Returns the
    /// engine's counters.
    pub fn ocr_many<I>(
        &self,
        images: I,
        options: &OcrOptions,
        engine: &EngineOptions,
        mut on_event: impl FnMut(Event),
    ) -> Result<EngineStats, OcrError>
    where
        I: IntoIterator<Item = Result<RgbImage, dsocr_engine::EngineError>> + Send + 'static,
        I::IntoIter: Send,
    {
        let options = self.options_for_model(options)?;
        let jobs = images.into_iter().map(move |image| {
            let source: dsocr_engine::PageSource = Box::new(move || image);
            (source, options.clone())
        });
        let requests = dsocr_engine::prepare_ahead(jobs, self.tokenizer.clone(), PREPARED_AHEAD, false);
        let mut engine = self.engine(engine)?;
        Ok(engine.run(&requests, &mut on_event)?)
    }
}

/// Refuse to load weights larger than the device's memory (`memory`; `None`: not reported):
/// uploading them would fail with an out-of-memory panic part way. The checkpoint is bf16, so
/// `float` scales its file size.
fn check_weights_fit(paths: &[std::path::PathBuf], float: FloatType, memory: Option<u64>, device: DeviceSpec) -> Result<(), OcrError> {
    let Some(memory) = memory else { return Ok(()) };
    let file_bytes: u64 = paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let needed = file_bytes / 2 * float.dtype().size() as u64;
    if needed < memory {
        return Ok(());
    }
    Err(OcrError::Device(format!(
        "the weights take {:.1} GB in {float} and {device} has {:.1} GB of memory: run on the CPU (--device cpu){}",
        needed as f64 / 1e9,
        memory as f64 / 1e9,
        if float.dtype().size() > 2 { ", or in bf16 (--dtype bf16)" } else { "" }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_larger_than_the_device_are_refused_before_loading() {
        let path = std::env::temp_dir().join(format!("dsocr-weights-fit-{}.safetensors", std::process::id()));
        std::fs::write(&path, vec![0u8; 1000]).unwrap();
        let paths = [path.clone()];
        assert!(check_weights_fit(&paths, FloatType::Bf16, None, DeviceSpec::Cuda(0)).is_ok(), "memory not reported");
        assert!(check_weights_fit(&paths, FloatType::Bf16, Some(1500), DeviceSpec::Cuda(0)).is_ok());
        // In f32 the same file takes twice its size.
        let message = check_weights_fit(&paths, FloatType::F32, Some(1500), DeviceSpec::Cuda(1)).unwrap_err().to_string();
        assert!(message.contains("cuda:1") && message.contains("--device cpu") && message.contains("--dtype bf16"), "{message}");
        let message = check_weights_fit(&paths, FloatType::Bf16, Some(900), DeviceSpec::Cuda(0)).unwrap_err().to_string();
        assert!(!message.contains("--dtype"), "{message}");
        std::fs::remove_file(&path).unwrap();
    }
}
