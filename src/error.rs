//! The facade's error type.

/// Errors of the OCR pipeline, each naming the input or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    /// The model files are missing, damaged or inconsistent.
    #[error("{0}")]
    Model(String),
    /// Bad input (image, prompt, options).
    #[error("{0}")]
    Input(String),
    /// The device failed or cannot be used.
    #[error("{0}")]
    Device(String),
    /// From the engine (one page, or the engine's settings).
    #[error(transparent)]
    Engine(#[from] dsocr_engine::EngineError),
    /// From preprocessing.
    #[error(transparent)]
    Preprocess(#[from] dsocr_preprocess::PreprocessError),
    /// From loading.
    #[error(transparent)]
    Load(#[from] dsocr_core::CoreError),
    /// From the language model.
    #[error(transparent)]
    Lm(#[from] dsocr_lm::LmError),
    /// From PDF reading.
    #[error(transparent)]
    Pdf(#[from] dsocr_pdf::PdfError),
    /// From writing outputs.
    #[error(transparent)]
    Render(#[from] dsocr_render::RenderError),
}
