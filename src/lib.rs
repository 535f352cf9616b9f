//! # dsocr
//!
//! DeepSeek-OCR inference in Rust on [Burn](https://burn.dev): the CPU backend (ndarray) by
//! default and NVIDIA GPUs through CubeCL's CUDA backend with the `cuda` feature.
//!
//! This crate is the facade: it re-exports the layer crates so one `cargo add dsocr` gives the
//! whole pipeline.
//!
//! | module | crate | what it holds |
//! |---|---|---|
//! | [`preprocess`] | `dsocr-preprocess` | images → tiles, pixels, prompt token layout (no Burn) |
//! | [`common`] | `dsocr-core` | devices, checkpoint loading and validation, basic layers |
//! | [`vision`] | `dsocr-vision` | SAM-ViT-B, CLIP-L, projector |
//! | [`lm`] | `dsocr-lm` | the MoE decoder, KV cache, generation |

pub use dsocr_core as common;
pub use dsocr_lm as lm;
pub use dsocr_preprocess as preprocess;
pub use dsocr_vision as vision;
