//! The crate's error type.

use std::path::PathBuf;

/// Errors from device selection and checkpoint loading. Each names the file, tensor or setting at
/// fault and what to do.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        error: std::io::Error,
    },
    /// A checkpoint file is not valid safetensors.
    #[error("{path} is not a valid safetensors file ({reason}); the download may be incomplete: delete it and fetch the model again")]
    BadCheckpoint {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// No safetensors file in the model directory.
    #[error(
        "no *.safetensors file in {dir}; point --model at a DeepSeek-OCR model directory (config.json, tokenizer.json, model*.safetensors)"
    )]
    NoCheckpoint {
        /// The directory searched.
        dir: PathBuf,
    },
    /// The model needs a tensor the checkpoint lacks.
    #[error("tensor {name} is missing from the checkpoint; the file does not match this model (expected the DeepSeek-OCR release layout)")]
    MissingTensor {
        /// Full tensor name.
        name: String,
    },
    /// A tensor has another shape than the configuration implies.
    #[error("tensor {name} has shape {found:?} but the configuration implies {expected:?}; config.json and the checkpoint disagree")]
    ShapeMismatch {
        /// Full tensor name.
        name: String,
        /// Shape implied by config.json.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor has an element type the loader cannot use.
    #[error("tensor {name} has element type {dtype}; only BF16, F16 and F32 checkpoints are supported")]
    UnsupportedDtype {
        /// Full tensor name.
        name: String,
        /// The element type in the file.
        dtype: String,
    },
    /// The checkpoint holds tensors the model does not use.
    #[error("the checkpoint has {count} tensor(s) this model does not use, e.g. {examples:?}; config.json does not match the weights")]
    UnexpectedTensors {
        /// How many.
        count: usize,
        /// Up to five of their names.
        examples: Vec<String>,
    },
    /// `config.json` is missing, unreadable or inconsistent.
    #[error("invalid model configuration ({path}): {reason}")]
    Config {
        /// The configuration file (or a description of the source).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The requested device cannot be used.
    #[error("{0}")]
    Device(String),
}

/// Result alias for this crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
