//! `NAME_layouts.pdf`: the pages with their boxes drawn, one JPEG per page (official PDF script:
//! quality 95, via img2pdf), written with lopdf.

use std::path::Path;

use image::RgbImage;
use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, dictionary};
use rayon::prelude::*;

use crate::RenderError;

/// Encode `img` as JPEG at `quality`.
pub fn jpeg_bytes(img: &RgbImage, quality: u8) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .map_err(|e| RenderError::Encode(e.to_string()))?;
    Ok(out)
}

/// A page image encoded for the layouts PDF (JPEG, quality 95 as the official script).
#[derive(Debug, Clone)]
pub struct JpegPage {
    width: u32,
    height: u32,
    jpeg: Vec<u8>,
}

impl JpegPage {
    /// Encode `image`.
    pub fn encode(image: &RgbImage) -> Result<Self, RenderError> {
        Ok(JpegPage { width: image.width(), height: image.height(), jpeg: jpeg_bytes(image, 95)? })
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
                "Width" => i64::from(w),
                "Height" => i64::from(h),
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
