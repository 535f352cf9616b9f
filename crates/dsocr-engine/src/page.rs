//! What goes into the engine and what comes out, per page.

use std::time::Duration;

use dsocr_preprocess::{Architecture, ModeSpec, PreparedImage, PromptIds};
use dsocr_render::Region;
use serde::Serialize;

use crate::EngineError;
use crate::repetition::RepetitionGuard;
use crate::sampler::GenerationConfig;
use crate::task::Task;

/// What to do with each page.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrOptions {
    /// The task (prompt); default: document to markdown with layout boxes.
    pub task: Task,
    /// Resolution mode; default: Gundam (1024 global view + 640 tiles, up to 9; on a DeepSeek-OCR 2
    /// checkpoint its dynamic mode, 768 crops, up to 6: [`OcrOptions::for_architecture`]).
    pub mode: ModeSpec,
    /// Generation settings; default: greedy, ≤ 8192 tokens, the vLLM recipe's repetition guard.
    pub generation: GenerationConfig,
}

impl Default for OcrOptions {
    fn default() -> Self {
        OcrOptions { task: Task::Markdown, mode: dsocr_preprocess::Mode::Gundam.spec(), generation: GenerationConfig::default() }
    }
}

impl OcrOptions {
    /// These options as a checkpoint of `arch` runs them: the mode converted
    /// ([`ModeSpec::for_architecture`]: the default Gundam mode becomes DeepSeek-OCR 2's dynamic
    /// mode, 1024 + up to six 768 crops) and the default repetition guard replaced by the
    /// architecture's official one (vLLM image script: 30/90 for DeepSeek-OCR, 20/90 for
    /// DeepSeek-OCR 2). Other settings are kept as given. Errors name a mode `arch` cannot run.
    pub fn for_architecture(&self, arch: Architecture) -> Result<OcrOptions, EngineError> {
        let mut options = self.clone();
        options.mode = self.mode.for_architecture(arch)?;
        let defaults = [RepetitionGuard::vllm_image(), RepetitionGuard::vllm_image_ocr2()];
        if defaults.contains(&options.generation.repetition) {
            options.generation.repetition = match arch {
                Architecture::DeepseekOcr => RepetitionGuard::vllm_image(),
                Architecture::DeepseekOcr2 => RepetitionGuard::vllm_image_ocr2(),
            };
        }
        Ok(options)
    }
}

/// A page after preprocessing (CPU work only): its views, prompt ids and size. Made by
/// [`crate::prepare_page`], usually on other threads ahead of the engine.
#[derive(Debug, Clone)]
pub struct PreparedPage {
    /// Views (global and tiles) as bytes.
    pub image: PreparedImage,
    /// Prompt ids and where the image rows go.
    pub prompt: PromptIds,
    /// The input image's size `(width, height)`.
    pub image_size: (u32, u32),
    /// Time spent preparing it.
    pub preprocess: Duration,
}

/// One page for the engine: `tag` is the caller's name for it (a page number, an index), echoed
/// in every [`Event`] about it.
#[derive(Debug)]
pub struct Request {
    /// Echoed in events.
    pub tag: u64,
    /// The prepared page, or why it could not be prepared (reported as this page's result).
    pub page: Result<PreparedPage, EngineError>,
    /// Options (the mode has already been applied by the preparation).
    pub options: OcrOptions,
    /// Send [`Event::Text`] as text is generated.
    pub stream: bool,
}

/// Time spent on one page.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Timings {
    /// Resize, tiles, normalisation, tokenisation (seconds, on a CPU thread).
    pub preprocess_s: f64,
    /// Waiting for a free row in the engine (seconds).
    pub queue_s: f64,
    /// The vision encoder (seconds): the page's share of the vision batch it was encoded in
    /// with the other pages admitted in the same step.
    pub vision_s: f64,
    /// Prefill until the first token (seconds).
    pub prefill_s: f64,
    /// From the first token to the last (seconds; other pages decode in the same steps).
    pub decode_s: f64,
    /// Tokens generated.
    pub tokens: usize,
}

impl Timings {
    /// Decode speed of this page alone in tokens per second.
    pub fn decode_tokens_per_s(&self) -> f64 {
        if self.decode_s > 0.0 { self.tokens.saturating_sub(1) as f64 / self.decode_s } else { 0.0 }
    }
}

/// The result for one page.
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
    /// Stage timings.
    pub timings: Timings,
}

/// What the engine reports, in the order things happen: for a page, `Started`, its `Text` (when
/// streamed), then `Finished`; a page that fails before it starts gets only `Finished`.
#[derive(Debug)]
pub enum Event {
    /// A page was admitted: its prompt is prefilled and it decodes from now on (it is in flight
    /// until its `Finished`).
    Started {
        /// The request's tag.
        tag: u64,
    },
    /// New text of a page whose request asked for streaming (complete UTF-8 characters).
    Text {
        /// The request's tag.
        tag: u64,
        /// The new text.
        text: String,
    },
    /// A page is done, or failed (the others go on).
    Finished {
        /// The request's tag.
        tag: u64,
        /// Its result.
        result: Box<Result<OcrResult, EngineError>>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsocr_preprocess::Mode;

    #[test]
    fn options_follow_the_checkpoint() {
        let ocr2 = Architecture::DeepseekOcr2;
        let v2 = OcrOptions::default().for_architecture(ocr2).unwrap();
        assert_eq!(v2.mode, Mode::Gundam.spec_for(ocr2).unwrap());
        assert_eq!(v2.generation.repetition, RepetitionGuard::vllm_image_ocr2());
        // Back again: DeepSeek-OCR's preset and guard (the tile limit stays at the lower 6).
        let v1 = v2.for_architecture(Architecture::DeepseekOcr).unwrap();
        assert_eq!((v1.mode.image_size, v1.mode.max_tiles, v1.generation.repetition), (640, 6, RepetitionGuard::vllm_image()));
        // A guard the caller chose is kept.
        let mut own = OcrOptions::default();
        own.generation.repetition = RepetitionGuard::NoRepeatNgram { n: 35 };
        assert_eq!(own.for_architecture(ocr2).unwrap().generation.repetition, RepetitionGuard::NoRepeatNgram { n: 35 });
        let tiny = OcrOptions { mode: Mode::Tiny.spec(), ..Default::default() };
        assert!(tiny.for_architecture(ocr2).unwrap_err().to_string().contains("tiny"));
    }
}
