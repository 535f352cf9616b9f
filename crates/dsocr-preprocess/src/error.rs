//! The crate's error type.

/// Everything that can go wrong between an image file and the encoder inputs. Every variant names
/// the input at fault and says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The file could not be read.
    #[error("cannot read image {source_name}: {error}")]
    Io {
        /// The file or stream name.
        source_name: String,
        /// The underlying I/O error.
        #[source]
        error: std::io::Error,
    },
    /// The bytes are not in a supported image format.
    #[error(
        "{source_name} is not a supported image (PNG, JPEG, TIFF, WebP or BMP); convert it to one of these, or give a PDF to the PDF reader"
    )]
    UnsupportedFormat {
        /// The file or stream name.
        source_name: String,
    },
    /// The image is corrupt, truncated or empty.
    #[error("cannot decode image {source_name}: {reason}")]
    BadImage {
        /// The file or stream name.
        source_name: String,
        /// What the decoder reported.
        reason: String,
    },
    /// The image has more pixels than allowed.
    #[error(
        "image {source_name} is {width}×{height} pixels, over the limit of {max_pixels} pixels; downscale it or raise the limit (`--max-pixels` of dsocr ocr and dsocr serve, `LoadOptions::max_pixels` in the library)"
    )]
    TooLarge {
        /// The file or stream name.
        source_name: String,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The limit in force.
        max_pixels: u64,
    },
    /// A mode with sizes the model cannot use.
    #[error("invalid mode: {0}")]
    InvalidMode(String),
    /// The prompt's `<image>` markers do not match the images given.
    #[error(
        "the prompt {prompt:?} has {markers} <image> marker(s) but {images} image(s) were given; put exactly one <image> in the prompt per image"
    )]
    PromptImageMismatch {
        /// The prompt after stripping.
        prompt: String,
        /// Number of `<image>` markers found.
        markers: usize,
        /// Number of images given.
        images: usize,
    },
    /// The tokenizer failed.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
}
