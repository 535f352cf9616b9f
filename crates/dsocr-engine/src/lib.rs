//! # dsocr-engine
//!
//! The engine that runs DeepSeek-OCR over many pages at once, with continuous batching
//! (docs/engine.md): pages go in as [`Request`]s (prepared on CPU threads ahead of the GPU by
//! [`prepare_page`] / [`prepare_ahead`]); the [`Scheduler`] admits them once encoded (in batches,
//! ahead of their admission) while the KV pool has the blocks each one's length needs; each
//! admitted page is prefilled between decode steps; one decode
//! step runs every page in flight at its own position; each page's tokens are chosen by its own
//! sampler and repetition guard; finished pages come back as [`Event`]s with their [`OcrResult`],
//! as they complete (use [`InOrder`] for input order).
//!
//! The networks (`dsocr-vision`, `dsocr-lm`) know nothing of this: the runner owns the KV pool and
//! the captured decode steps, the scheduler decides what runs.
//!
//! ```
//! use dsocr_engine::{EngineOptions, Scheduler};
//! let options = EngineOptions::for_pages(&dsocr_preprocess::Mode::Gundam.spec(), 1024);
//! assert_eq!(options.seq_capacity, Some(1327 + 1024));
//! // Two pages at most, a pool of 40 blocks of 64 slots.
//! let mut scheduler = Scheduler::new(2, 40, 64, options.max_prefill_tokens);
//! scheduler.add(0, 913, 913 + 1024);
//! // Page 0 is admitted once encoded, with the 15 blocks of its prompt and first new token (it
//! // gets another block each time it fills one, up to the 31 that 913 + 1,024 slots need).
//! assert_eq!(scheduler.schedule(|_| false).admit, vec![]);
//! let admitted = scheduler.schedule(|_| true).admit;
//! assert_eq!((admitted[0].0, admitted[0].1.len(), scheduler.free_blocks()), (0, 15, 25));
//! ```

#![warn(missing_docs)]

mod choice;
mod engine;
mod error;
mod memory;
mod options;
mod ordered;
mod page;
mod pipeline;
mod repetition;
mod result;
mod runner;
mod sampler;
mod scheduler;
mod sequence;
mod stream;
mod task;
mod tokenizer;
mod vision_batch;
mod vision_thread;

pub use engine::{Engine, EngineStats};
pub use error::EngineError;
pub use memory::{MAX_ACTIVATION_RESERVE, MIN_ACTIVATION_RESERVE, MemoryPlan};
pub use options::{EngineOptions, longest_prompt};
pub use ordered::InOrder;
pub use page::{Event, OcrOptions, OcrResult, PreparedPage, Request, Timings};
pub use pipeline::{PageSource, encode_page, panic_message, pixel_tensor, prepare_ahead, prepare_page};
pub use repetition::{RepetitionGuard, RepetitionState};
pub use runner::bucket_size;
pub use sampler::{GenerationConfig, Sampling};
pub use scheduler::{Schedule, Scheduler, SeqId};
pub use stream::TextStream;
pub use task::Task;
pub use tokenizer::OcrTokenizer;
pub use vision_batch::{DEFAULT_VISION_BATCH_BYTES, encode_images, encode_pages, view_activation_bytes};
