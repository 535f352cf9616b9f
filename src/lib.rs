//! # dsocr
//!
//! DeepSeek-OCR and DeepSeek-OCR 2 inference in Rust on [Burn](https://burn.dev): the CPU backend
//! (burn-ndarray, f32) by default, NVIDIA GPUs through CubeCL's CUDA backend with the `cuda`
//! feature. The checkpoint's `config.json` says which model it is
//! ([`DeepseekOcr::architecture`]); `ModelSource::parse("deepseek-ai/DeepSeek-OCR-2")` loads the
//! second, and the same options run on both ([`DeepseekOcr::options_for_model`]).
//!
//! ```no_run
//! use dsocr::{DeepseekOcr, ModelSource, OcrOptions};
//! use dsocr::common::DeviceSpec;
//! # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // Downloads deepseek-ai/DeepSeek-OCR into the Hugging Face cache on first use.
//! let ocr = DeepseekOcr::load(&ModelSource::default(), DeviceSpec::auto(), None)?;
//! let page = dsocr::preprocess::load_image("page.png", &Default::default())?;
//! let result = ocr.ocr(&page, &OcrOptions::default())?;
//! println!("{}", result.markdown);
//! for region in &result.regions {
//!     println!("{} at {:?}", region.label, region.bbox);
//! }
//! # Ok(()) }
//! ```
//!
//! The layers, each usable alone:
//!
//! | module | crate | what it holds |
//! |---|---|---|
//! | [`preprocess`] | `dsocr-preprocess` | images → tiles, pixels, prompt token layout (no Burn) |
//! | [`common`] | `dsocr-core` | devices, checkpoint loading and validation, basic layers |
//! | [`vision`] | `dsocr-vision` | SAM-ViT-B, CLIP-L or the Qwen2 encoder, projector |
//! | [`lm`] | `dsocr-lm` | the MoE decoder and its KV pool |
//! | [`engine`] | `dsocr-engine` | continuous batching: scheduler, runner, sampling, streaming |
//! | [`pdf`] | `dsocr-pdf` | PDF pages → images |
//! | [`render`] | `dsocr-render` | boxes, crops, markdown, output files |

#![warn(missing_docs)]

#[cfg(feature = "tooling")]
pub mod bench;
mod devices;
mod dispatch;
mod engine_thread;
mod error;
mod ocr;
#[cfg(feature = "tooling")]
pub mod parity;
mod replica;
mod service;
mod source;
#[cfg(feature = "tooling")]
pub mod synthetic;
pub mod testing;

pub use devices::{DeviceList, DeviceListError};
pub use dsocr_engine::{
    Engine, EngineError, EngineOptions, EngineStats, Event, GenerationConfig, InOrder, OcrOptions, OcrResult, PreparedPage,
    RepetitionGuard, Request, Sampling, Task, Timings,
};
pub use dsocr_preprocess::Architecture;
pub use engine_thread::{EngineThread, Loaded};
pub use error::OcrError;
pub use ocr::DeepseekOcr;
pub use replica::{EventSink, Replica, ServiceLoad};
pub use service::{EngineStatus, OcrService, ServiceOptions};
pub use source::{DEFAULT_REPO, ModelFiles, ModelHeader, ModelSource};

pub use dsocr_core as common;
pub use dsocr_engine as engine;
pub use dsocr_kernels as kernels;
pub use dsocr_lm as lm;
pub use dsocr_pdf as pdf;
pub use dsocr_preprocess as preprocess;
pub use dsocr_render as render;
pub use dsocr_vision as vision;
