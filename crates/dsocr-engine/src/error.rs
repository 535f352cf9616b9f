//! The engine's error type.

/// Errors of a page or of the engine, each naming the input or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Bad input (image, prompt, options) for one page.
    #[error("{0}")]
    Input(String),
    /// The device failed or cannot be used.
    #[error("{0}")]
    Device(String),
    /// Engine settings that cannot work (memory, capacity).
    #[error("{0}")]
    Settings(String),
    /// From preprocessing.
    #[error(transparent)]
    Preprocess(#[from] dsocr_preprocess::PreprocessError),
    /// From the language model.
    #[error(transparent)]
    Lm(#[from] dsocr_lm::LmError),
}
