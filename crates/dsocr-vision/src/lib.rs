//! # dsocr-vision
//!
//! The DeepEncoder of DeepSeek-OCR as Burn modules: SAM-ViT-B ([`SamEncoder`]), CLIP-L consuming
//! SAM's features ([`ClipEncoder`]), the linear projector and the 2-D token layout
//! ([`DeepEncoder`]). Sizes come from `config.json` ([`VisionConfig`]); weights are loaded by their
//! release names through [`dsocr_core::Weights`], which checks every name and shape.
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
mod sam;

pub use clip::ClipEncoder;
pub use config::{ClipConfig, SamConfig, VisionConfig};
pub use encoder::{DeepEncoder, Tiling, ViewFeatures};
pub use interp::{bicubic_aa_matrix, linear_matrix, resize_grid_bicubic_aa, resize_rows_linear};
pub use sam::{RelPosAttention, SamEncoder};
