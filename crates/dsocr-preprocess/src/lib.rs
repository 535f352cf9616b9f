//! # dsocr-preprocess
//!
//! Everything between an image file and the numbers DeepSeek-OCR's encoders eat, exactly as the
//! official code computes it, with no dependency on Burn, so any pipeline can embed it:
//!
//! 1. [`load_image`]: decode PNG/JPEG/TIFF/WebP/BMP, apply the EXIF orientation, convert to RGB.
//! 2. [`prepare_image`]: pick the tile grid ([`select_grid`]), build the letterboxed (or squashed)
//!    global view and the 640×640 tiles (768×768 crops for DeepSeek-OCR 2, [`Architecture`]) with a byte-exact port of Pillow's bicubic resize
//!    ([`resize_bicubic`]). Views come out as [`ViewBatch`]es of `u8` (`[N, 3, S, S]`) and as
//!    normalised `f32` values that are exactly representable in bf16 ([`ViewBatch::normalized`]).
//! 3. [`build_prompt`]: expand `<image>` into the right number of placeholder tokens
//!    ([`image_token_count`]), add BOS, and mark the image positions.
//!
//! ```no_run
//! use dsocr_preprocess::{LoadOptions, Mode, build_prompt, load_image, prepare_image};
//! # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let image = load_image("page.png", &LoadOptions::default())?;
//! let views = prepare_image(&image, &Mode::Gundam.spec())?;
//! let tokenizer = tokenizers::Tokenizer::from_file("tokenizer.json")?;
//! let prompt = build_prompt(&tokenizer, "<image>\n<|grounding|>Convert the document to markdown.", &[views.image_token_count()])?;
//! assert_eq!(prompt.image_positions(), views.image_token_count());
//! # Ok(()) }
//! ```
//!
//! Reference: `docs/model.md` §3 (pre-processing) and §5 (prompt ids), `docs/model-ocr2.md` §3-4; the parity tests compare
//! against recordings of the official Hugging Face code.

#![warn(missing_docs)]

mod arch;
mod error;
mod load;
mod mode;
mod resize;
mod tiling;
mod tokens;
mod views;

pub use arch::Architecture;
pub use error::PreprocessError;
pub use load::{DEFAULT_MAX_PIXELS, LoadOptions, load_image, load_image_from_memory, probe_image};
pub use mode::{DEFAULT_MAX_TILES, DOWNSAMPLE_RATIO, MIN_TILES, Mode, ModeSpec, PATCH_SIZE, TILE_SIZE, VLLM_MAX_TILES};
pub use resize::{keys_cubic, resize_bicubic};
pub use tiling::{TileGrid, candidate_grids, closest_grid, select_grid};
pub use tokens::{
    BOS_TOKEN_ID, EOS_TOKEN_ID, IMAGE_PLACEHOLDER, IMAGE_TOKEN_ID, PromptIds, TextTokenizer, build_prompt, image_token_count,
    tokens_per_side,
};
pub use views::{PAD_GREY, PreparedImage, ViewBatch, letterbox, normalize_pixel, prepare_image};

/// An 8-bit RGB image, row-major, 3 bytes per pixel (`[y][x][rgb]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width · height · 3` bytes.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// Wrap raw RGB bytes; `None` if the buffer length does not match the size or a side is 0.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Option<Self> {
        (width > 0 && height > 0 && data.len() == width * height * 3).then_some(RgbImage { width, height, data })
    }
}

impl From<image::RgbImage> for RgbImage {
    fn from(img: image::RgbImage) -> Self {
        let (w, h) = img.dimensions();
        RgbImage { width: w as usize, height: h as usize, data: img.into_raw() }
    }
}

impl From<RgbImage> for image::RgbImage {
    fn from(img: RgbImage) -> Self {
        image::RgbImage::from_raw(img.width as u32, img.height as u32, img.data).expect("RgbImage buffer matches its size")
    }
}
