//! # dsocr-lm
//!
//! The language model of DeepSeek-OCR on Burn: a DeepSeek-V2-style decoder with plain multi-head
//! attention, rotate-half RoPE, a dense first layer and mixture-of-experts layers after it
//! ([`DeepseekLm`], sized by [`LmConfig`]), and the preallocated key/value pool it reads and
//! writes in place ([`KvPool`]): one row per sequence in flight, each with its own length.
//!
//! This crate is the network only. A prompt is prefilled into a pool row
//! ([`DeepseekLm::prefill`], in chunks if long); a decode step runs one token for each of any set
//! of sequences at their own positions ([`DeepseekLm::decode_step_on_device`], whose inputs and
//! outputs all stay on the device so a GPU can capture and replay it). Which sequences run, when,
//! in which rows, and how tokens are chosen is the engine's business (`dsocr-engine`).
//!
//! ```
//! use dsocr_lm::{DeepseekLm, LmConfig};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = LmConfig::default();
//! assert_eq!((config.num_hidden_layers, config.n_routed_experts, config.num_experts_per_tok), (12, 64, 6));
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod attention;
mod config;
mod host_kv;
mod kv_pool;
mod mlp;
mod model;
mod projection;
mod rope;

pub use config::LmConfig;
pub use kv_pool::{KvPool, StepSlots};
pub use model::{DeepseekLm, LmError};
