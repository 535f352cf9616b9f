//! Image decoding as the official code does it: `Image.open` → `ImageOps.exif_transpose` →
//! `.convert("RGB")` (docs/model.md §3.1).

use std::io::{BufRead, Cursor, Seek};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use crate::{PreprocessError, RgbImage};

/// Images larger than this many pixels are refused unless [`LoadOptions::max_pixels`] is raised:
/// a decoding bomb would otherwise take all memory before the model ever sees it.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// How images are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Refuse images with more pixels than this (default [`DEFAULT_MAX_PIXELS`]).
    pub max_pixels: u64,
    /// Apply the EXIF orientation tag (default true, as the official image scripts).
    pub apply_exif_orientation: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { max_pixels: DEFAULT_MAX_PIXELS, apply_exif_orientation: true }
    }
}

/// Decode an image file (PNG, JPEG, TIFF, WebP, BMP) to RGB with EXIF orientation applied.
pub fn load_image(path: impl AsRef<Path>, options: &LoadOptions) -> Result<RgbImage, PreprocessError> {
    let path = path.as_ref();
    let source = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| PreprocessError::Io { source_name: source.clone(), error: e })?;
    decode(Cursor::new(bytes), &source, options)
}

/// Decode an image held in memory; `name` is used in error messages (e.g. `"<stdin>"`).
pub fn load_image_from_memory(bytes: &[u8], name: &str, options: &LoadOptions) -> Result<RgbImage, PreprocessError> {
    decode(Cursor::new(bytes), name, options)
}

/// Check an image file's header (format, size, pixel limit) without decoding its pixels: a
/// quick test that a file can be OCRed, before a model is loaded. Returns `(width, height)`.
pub fn probe_image(path: impl AsRef<Path>, options: &LoadOptions) -> Result<(u32, u32), PreprocessError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| PreprocessError::Io { source_name: name.clone(), error: e })?;
    let reader = ImageReader::new(std::io::BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| PreprocessError::Io { source_name: name.clone(), error: e })?;
    if reader.format().is_none() {
        return Err(PreprocessError::UnsupportedFormat { source_name: name });
    }
    let decoder = reader.into_decoder().map_err(|e| PreprocessError::BadImage { source_name: name.clone(), reason: e.to_string() })?;
    check_size(decoder.dimensions(), &name, options)
}

fn check_size((w, h): (u32, u32), name: &str, options: &LoadOptions) -> Result<(u32, u32), PreprocessError> {
    if w == 0 || h == 0 {
        return Err(PreprocessError::BadImage { source_name: name.to_string(), reason: format!("the image is empty ({w}×{h} pixels)") });
    }
    if u64::from(w) * u64::from(h) > options.max_pixels {
        return Err(PreprocessError::TooLarge { source_name: name.to_string(), width: w, height: h, max_pixels: options.max_pixels });
    }
    Ok((w, h))
}

fn decode<R: BufRead + Seek>(reader: R, name: &str, options: &LoadOptions) -> Result<RgbImage, PreprocessError> {
    let bad = |reason: String| PreprocessError::BadImage { source_name: name.to_string(), reason };
    let reader =
        ImageReader::new(reader).with_guessed_format().map_err(|e| PreprocessError::Io { source_name: name.to_string(), error: e })?;
    if reader.format().is_none() {
        return Err(PreprocessError::UnsupportedFormat { source_name: name.to_string() });
    }
    let mut decoder = reader.into_decoder().map_err(|e| bad(e.to_string()))?;
    let (w, h) = check_size(decoder.dimensions(), name, options)?;
    let pixels = u64::from(w) * u64::from(h);
    // The decoder's own allocation limit must admit what we allowed above (16-bit RGBA worst case).
    let mut limits = Limits::default();
    limits.max_alloc = Some(pixels.saturating_mul(8).max(512 << 20));
    decoder.set_limits(limits).map_err(|e| bad(e.to_string()))?;
    let orientation = if options.apply_exif_orientation { decoder.orientation().ok() } else { None };
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    if let Some(o) = orientation {
        image.apply_orientation(o);
    }
    let rgb = image.into_rgb8();
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    Ok(RgbImage { width, height, data: rgb.into_raw() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, codecs::png::PngEncoder};

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let data: Vec<u8> = (0..w * h * 4).map(|i| (i % 251) as u8).collect();
        PngEncoder::new(&mut out).write_image(&data, w, h, image::ExtendedColorType::Rgba8).unwrap();
        out
    }

    #[test]
    fn rgba_png_drops_alpha() {
        let img = load_image_from_memory(&png(3, 2), "t.png", &LoadOptions::default()).unwrap();
        assert_eq!((img.width, img.height), (3, 2));
        // first pixel RGBA = 0,1,2,3 → RGB 0,1,2; second = 4,5,6,7 → 4,5,6
        assert_eq!(&img.data[..6], &[0, 1, 2, 4, 5, 6]);
    }

    #[test]
    fn garbage_and_truncated_inputs_are_errors() {
        let e = load_image_from_memory(b"definitely not an image", "junk.bin", &LoadOptions::default()).unwrap_err();
        assert!(matches!(e, PreprocessError::UnsupportedFormat { .. }), "{e}");
        assert!(e.to_string().contains("junk.bin"));
        let mut p = png(64, 64);
        p.truncate(p.len() / 2);
        let e = load_image_from_memory(&p, "cut.png", &LoadOptions::default()).unwrap_err();
        assert!(matches!(e, PreprocessError::BadImage { .. }), "{e}");
        assert!(e.to_string().contains("cut.png"));
        let e = load_image(Path::new("/nonexistent/dir/page.png"), &LoadOptions::default()).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/dir/page.png"), "{e}");
    }

    #[test]
    fn pixel_limit_is_enforced_before_decoding() {
        let opts = LoadOptions { max_pixels: 100, ..LoadOptions::default() };
        let e = load_image_from_memory(&png(11, 10), "big.png", &opts).unwrap_err();
        assert!(matches!(e, PreprocessError::TooLarge { width: 11, height: 10, .. }), "{e}");
    }
}
