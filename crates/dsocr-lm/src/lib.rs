//! # dsocr-lm
//!
//! The language model of DeepSeek-OCR on Burn: a DeepSeek-V2-style decoder with plain multi-head
//! attention, rotate-half RoPE, a dense first layer and mixture-of-experts layers after it
//! ([`DeepseekLm`], sized by [`LmConfig`]), a preallocated in-place [`KvCache`], and generation
//! ([`generate`]) with greedy or seeded sampling, both official repetition blockers
//! ([`RepetitionGuard`]), EOS handling, a per-token callback and UTF-8-safe text streaming
//! ([`TextStream`]).
//!
//! Several prompts run as one batch (left-padded to a common length, each with its own
//! positions and padding mask); MoE routing stays on the device. Every per-step value of a
//! decode step (cache slot, positions, next tokens) lives on the device too, so on a GPU the step
//! is captured once per request as a CUDA graph and replayed
//! ([`DeepseekLm::decode_step_on_device`], [`DeepseekLm::set_decode_graph`]).

mod attention;
mod config;
mod decode_loop;
mod generate;
mod kv_cache;
mod mlp;
mod model;
mod repetition;
mod rope;
mod stream;

pub use config::LmConfig;
pub use generate::{Generated, GenerationConfig, GenerationStats, Prompt, Sampling, generate};
pub use kv_cache::KvCache;
pub use model::{DeepseekLm, LmError};
pub use repetition::{RepetitionGuard, RepetitionState};
pub use stream::TextStream;
