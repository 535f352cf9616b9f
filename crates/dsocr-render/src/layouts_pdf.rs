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
pub fn jpeg_bytes(img: &RgbImage, quality: u8) -> Result<Vec<u8>, RenderError> {
    let img = fit_for_jpeg(img);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img.as_ref())
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
