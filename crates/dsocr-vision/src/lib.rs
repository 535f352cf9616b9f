//! # dsocr-vision
//!
//! The vision encoders of DeepSeek-OCR and DeepSeek-OCR 2 as Burn modules: SAM-ViT-B
//! ([`SamEncoder`]), then CLIP-L consuming SAM's features ([`ClipEncoder`], DeepSeek-OCR) or a Qwen2
//! encoder reading SAM's tokens with learned queries ([`Qwen2Encoder`], DeepSeek-OCR 2), the linear
//! projector and the token layout ([`DeepEncoder`]). Sizes and the architecture come from
//! `config.json` ([`VisionConfig`], [`architecture_of`]); weights are loaded by their release names
//! through [`dsocr_core::Weights`], which checks every name and shape.
//!
//! The code runs on whatever device the weights were loaded to (CPU in f32, CUDA in bf16/f16/f32).
//!
//! ```no_run
//! use dsocr_core::{Checkpoint, DeviceSpec, FloatType, Weights};
//! use dsocr_vision::{DeepEncoder, VisionConfig};
//! # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let device = DeviceSpec::Cpu.device()?;
//! let config: serde_json::Value = serde_json::from_slice(&std::fs::read("model/config.json")?)?;
//! let vision = VisionConfig::from_json(&config, "model/config.json")?;
//! let weights = Weights::new(Checkpoint::open_dir("model")?, &device, FloatType::F32)?;
//! let encoder = DeepEncoder::load(&weights, &vision)?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod clip;
mod config;
mod encoder;
mod interp;
mod qwen2;
mod sam;

pub use clip::ClipEncoder;
pub use config::{ClipConfig, Qwen2EncoderConfig, SamConfig, Stage2Config, VisionConfig, architecture_of};
pub use encoder::{DeepEncoder, Stage2, Tiling, ViewFeatures};
pub use interp::{bicubic_aa_matrix, linear_matrix, resize_grid_bicubic_aa, resize_rows_linear};
pub use qwen2::Qwen2Encoder;
pub use sam::{RelPosAttention, SamEncoder};
