//! `NAME_layouts.pdf`: the pages with their boxes drawn, one JPEG per page (official PDF script:
//! quality 95, via img2pdf), written with lopdf.

use std::path::Path;

use image::RgbImage;
use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, dictionary};
use rayon::prelude::*;

use crate::RenderError;

/// Most pixels a side of a JPEG (its header holds 16-bit sizes).
pub const JPEG_MAX_SIDE: u32 = 65_535;

/// `img`, scaled down (aspect kept) where a side is longer than a JPEG can hold: an input as
/// long as 70,000 pixels is readable (the preprocessor's limit is on the pixel count) and its
/// boxes image must still be written.
fn fit_for_jpeg(img: &RgbImage) -> std::borrow::Cow<'_, RgbImage> {
    let (w, h) = img.dimensions();
    if w <= JPEG_MAX_SIDE && h <= JPEG_MAX_SIDE {
        return std::borrow::Cow::Borrowed(img);
    }
    let scale = f64::from(JPEG_MAX_SIDE) / f64::from(w.max(h));
    let side = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, JPEG_MAX_SIDE);
    std::borrow::Cow::Owned(image::imageops::resize(img, side(w), side(h), image::imageops::FilterType::Triangle))
}

/// Encode `img` as JPEG at `quality` (scaled down first if a side is over [`JPEG_MAX_SIDE`]).
///
/// With `jpeg-encoder` (AVX2 colour conversion and DCT where the CPU has them), not `image`'s
/// encoder: an A4 page at 144 DPI took 25 ms instead of 66 ms on the development VM, and these
/// encodes (a boxes image per page, every figure crop) were most of the time `dsocr ocr` spent
/// writing a PDF's outputs after its last page (docs/perf.md, session 23). Like `image`'s at this
/// quality, and like the official script's Pillow at 95, no chroma subsampling at quality ≥ 90.
pub fn jpeg_bytes(img: &RgbImage, quality: u8) -> Result<Vec<u8>, RenderError> {
    let img = fit_for_jpeg(img);
    let (w, h) = img.dimensions();
    // fit_for_jpeg keeps both sides within JPEG_MAX_SIDE = u16::MAX.
    let side = |v: u32| u16::try_from(v).map_err(|_| RenderError::Encode(format!("a side of {v} pixels is over what a JPEG holds")));
    let (w, h) = (side(w)?, side(h)?);
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, quality)
        .encode(img.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| RenderError::Encode(e.to_string()))?;
    Ok(out)
}

/// A page image encoded for the layouts PDF (JPEG, quality 95 as the official script).
#[derive(Debug, Clone)]
pub struct JpegPage {
    /// The page image's size (the PDF page is this size at the document's DPI).
    width: u32,
    height: u32,
    /// The JPEG's own size: the page's, unless a side was over [`JPEG_MAX_SIDE`].
    jpeg_size: (u32, u32),
    jpeg: Vec<u8>,
}

impl JpegPage {
    /// Encode `image`.
    pub fn encode(image: &RgbImage) -> Result<Self, RenderError> {
        let fitted = fit_for_jpeg(image);
        Ok(JpegPage { width: image.width(), height: image.height(), jpeg_size: fitted.dimensions(), jpeg: jpeg_bytes(&fitted, 95)? })
    }
}

/// Write `pages` as a PDF, each page sized as the image at `dpi` (so a page rendered at 144 DPI
/// keeps its original paper size). The pages are encoded on every core.
pub fn write_layouts_pdf(path: &Path, pages: &[RgbImage], dpi: f32) -> Result<(), RenderError> {
    let pages: Vec<JpegPage> = pages.par_iter().map(JpegPage::encode).collect::<Result<_, _>>()?;
    write_jpeg_pages_pdf(path, &pages.iter().collect::<Vec<_>>(), dpi)
}

/// [`write_layouts_pdf`] of pages already encoded.
pub fn write_jpeg_pages_pdf(path: &Path, pages: &[&JpegPage], dpi: f32) -> Result<(), RenderError> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let mut kids = Vec::with_capacity(pages.len());
    for page in pages {
        let (w, h) = (page.width, page.height);
        let mut image = Stream::new(
            dictionary! {
                "Type" => "XObject",
                "Subtype" => "Image",
                "Width" => i64::from(page.jpeg_size.0),
                "Height" => i64::from(page.jpeg_size.1),
                "ColorSpace" => "DeviceRGB",
                "BitsPerComponent" => 8,
                "Filter" => "DCTDecode",
            },
            page.jpeg.clone(),
        );
        image.allows_compression = false; // already JPEG
        let image_id = doc.add_object(image);
        let scale = 72.0 / dpi.max(1.0);
        let (pw, ph) = (w as f32 * scale, h as f32 * scale);
        let ops = vec![
            Operation::new("q", vec![]),
            Operation::new("cm", vec![pw.into(), 0.into(), 0.into(), ph.into(), 0.into(), 0.into()]),
            Operation::new("Do", vec![Object::Name(b"Im0".to_vec())]),
            Operation::new("Q", vec![]),
        ];
        let content = Content { operations: ops }.encode().map_err(|e| RenderError::Encode(e.to_string()))?;
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "MediaBox" => vec![0.into(), 0.into(), pw.into(), ph.into()],
            "Contents" => content_id,
            "Resources" => dictionary! { "XObject" => dictionary! { "Im0" => image_id } },
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(pages_id, Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }));
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    doc.save(path).map_err(|e| RenderError::Io { path: path.to_path_buf(), error: std::io::Error::other(e.to_string()) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page-like image: text strokes, a colour figure and gradients (edges and flat areas both).
    fn page(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            if (y / 9) % 3 != 2 && (x / 5 + y / 9) % 4 != 0 && x > 10 {
                image::Rgb([20, 20, 20])
            } else if (h / 2..h * 3 / 4).contains(&y) {
                image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 180])
            } else {
                image::Rgb([250, 250, 245])
            }
        })
    }

    #[test]
    fn a_quality_95_jpeg_decodes_to_the_image() {
        let img = page(301, 217);
        let bytes = jpeg_bytes(&img, 95).unwrap();
        let back = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), img.dimensions());
        let diffs: Vec<u32> = img.as_raw().iter().zip(back.as_raw()).map(|(&a, &b)| u32::from(a.abs_diff(b))).collect();
        let mean = diffs.iter().sum::<u32>() as f64 / diffs.len() as f64;
        // Quality 95 without chroma subsampling: ≈ 1 level on average; a lost colour plane or a
        // subsampled one would be far off on the figure's gradients and the strokes' edges.
        assert!(mean < 2.0, "mean |error| {mean}");
        let median = {
            let mut d = diffs.clone();
            d.sort_unstable();
            d[d.len() / 2]
        };
        assert!(median <= 2, "median |error| {median}");
    }

    #[test]
    fn an_empty_image_is_an_encode_error_not_a_panic() {
        assert!(matches!(jpeg_bytes(&RgbImage::new(0, 5), 95), Err(RenderError::Encode(_))));
    }
}
