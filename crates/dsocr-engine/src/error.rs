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

impl EngineError {
    /// A page prepared for one checkpoint's architecture given to an engine running the other:
    /// its views and prompt would not fit the encoder (refused as that page's error, not a panic).
    pub fn wrong_architecture(prepared: dsocr_preprocess::Architecture, model: dsocr_preprocess::Architecture) -> Self {
        EngineError::Input(format!(
            "the page was prepared for {prepared} but the model is {model}: prepare it with options for this model (OcrOptions::for_architecture)"
        ))
    }
}
