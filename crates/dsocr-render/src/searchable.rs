//! Searchable PDFs (docs/formats.md, "Searchable PDF"): the pages as they were, with an invisible
//! text layer (render mode 3) that puts each region's lines where [`crate::page_layout`] placed
//! them, so that search, copy and screen readers find the OCR text.
//!
//! The layer is written in the pixel space of the page image the model read: a `cm` maps pixels
//! to the page's user space (for a PDF page, the inverse of the renderer's transform, which takes
//! the crop box and rotation into account), and each line is one `Tj` whose text matrix makes it
//! exactly as wide and high as its box, upright on the rendered page. Text is shown in a Type0
//! font (Identity-H, two-byte codes = Unicode BMP code points) over the glyphless TrueType font
//! of [`crate::glyphless`], with a ToUnicode map, so extraction returns the characters, CJK
//! included; characters outside the BMP are written as U+FFFD.

use image::RgbImage;
use lopdf::{Dictionary, Document, IncrementalDocument, Object, ObjectId, Stream, dictionary};

use crate::RenderError;
use crate::glyphless::{ADVANCE, FONT_NAME, UNITS_PER_EM, glyphless_ttf};
use crate::layout::PageLayout;

/// The resource name of the layer's font on every page.
const FONT_RESOURCE: &[u8] = b"FDsocrOcr";

/// The text layer of one page: its layout in pixels of the image the model read, and the affine
/// map `[a, b, c, d, e, f]` from those pixels to the page's user space.
#[derive(Debug, Clone, Copy)]
pub struct TextLayer<'a> {
    /// Regions, lines and words in pixels.
    pub layout: &'a PageLayout,
    /// Pixels → user space (PDF matrix order).
    pub pixel_to_user: [f64; 6],
}

fn encode_err(e: impl std::fmt::Display) -> RenderError {
    RenderError::Encode(e.to_string())
}

/// The content stream of a layer: text only, never painted.
fn layer_content(layer: &TextLayer<'_>) -> Vec<u8> {
    let [a, b, c, d, e, f] = layer.pixel_to_user;
    let mut s = format!("q {a:.6} {b:.6} {c:.6} {d:.6} {e:.4} {f:.4} cm BT 3 Tr /{} 1 Tf\n", String::from_utf8_lossy(FONT_RESOURCE));
    let em_per_char = f64::from(ADVANCE) / f64::from(UNITS_PER_EM);
    for line in layer.layout.blocks.iter().flat_map(|b| &b.lines) {
        let text = line.text();
        let codes: Vec<u16> =
            text.chars().map(|ch| u16::try_from(u32::from(ch)).ok().filter(|u| !(0xD800..0xE000).contains(u)).unwrap_or(0xFFFD)).collect();
        if codes.is_empty() {
            continue;
        }
        let [x1, y1, x2, y2] = line.bbox.map(f64::from);
        let height = y2 - y1;
        // Glyph heights of an em; the width is stretched so the line spans its box.
        let sx = (x2 - x1) / (codes.len() as f64 * em_per_char);
        let baseline = y2 - 0.2 * height;
        s.push_str(&format!("{sx:.4} 0 0 {:.4} {x1:.2} {baseline:.2} Tm <", -height));
        for code in codes {
            s.push_str(&format!("{code:04X}"));
        }
        s.push_str("> Tj\n");
    }
    s.push_str("ET Q\n");
    s.into_bytes()
}

/// The ToUnicode CMap: code = code point, for the whole BMP but the surrogates.
fn to_unicode_cmap() -> Vec<u8> {
    let ranges: Vec<u16> = (0u16..=0xFF).filter(|hi| !(0xD8..0xE0).contains(hi)).collect();
    let mut s = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    for chunk in ranges.chunks(100) {
        s.push_str(&format!("{} beginbfrange\n", chunk.len()));
        for hi in chunk {
            s.push_str(&format!("<{hi:02X}00> <{hi:02X}FF> <{hi:02X}00>\n"));
        }
        s.push_str("endbfrange\n");
    }
    s.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    s.into_bytes()
}

/// Add the layer's font objects to `doc`; returns the Type0 font's id.
fn add_font(doc: &mut Document) -> ObjectId {
    let ttf = glyphless_ttf();
    let ttf_len = ttf.len() as i64;
    let mut program = Stream::new(dictionary! { "Length1" => ttf_len }, ttf);
    let _ = program.compress();
    let program_id = doc.add_object(program);
    let descriptor_id = doc.add_object(dictionary! {
        "Type" => "FontDescriptor",
        "FontName" => Object::Name(FONT_NAME.as_bytes().to_vec()),
        "Flags" => 4,
        "FontBBox" => vec![0.into(), 0.into(), i64::from(ADVANCE).into(), i64::from(UNITS_PER_EM).into()],
        "ItalicAngle" => 0,
        "Ascent" => 800,
        "Descent" => -200,
        "CapHeight" => 800,
        "StemV" => 80,
        "FontFile2" => program_id,
    });
    // Every code draws glyph 1.
    let map: Vec<u8> = std::iter::repeat_n([0u8, 1], 65536).flatten().collect();
    let mut cid_to_gid = Stream::new(dictionary! {}, map);
    let _ = cid_to_gid.compress();
    let cid_to_gid_id = doc.add_object(cid_to_gid);
    let cid_font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "CIDFontType2",
        "BaseFont" => Object::Name(FONT_NAME.as_bytes().to_vec()),
        "CIDSystemInfo" => dictionary! { "Registry" => Object::string_literal("Adobe"), "Ordering" => Object::string_literal("Identity"), "Supplement" => 0 },
        "FontDescriptor" => descriptor_id,
        "DW" => i64::from(ADVANCE),
        "CIDToGIDMap" => cid_to_gid_id,
    });
    let mut cmap = Stream::new(dictionary! {}, to_unicode_cmap());
    let _ = cmap.compress();
    let cmap_id = doc.add_object(cmap);
    doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type0",
        "BaseFont" => Object::Name(FONT_NAME.as_bytes().to_vec()),
        "Encoding" => "Identity-H",
        "DescendantFonts" => vec![cid_font_id.into()],
        "ToUnicode" => cmap_id,
    })
}

/// The dictionary `obj` is or refers to in `src`, copied.
fn dict_of(src: &Document, obj: &Object) -> Result<Dictionary, RenderError> {
    match obj {
        Object::Reference(id) => Ok(src.get_dictionary(*id).map_err(encode_err)?.clone()),
        Object::Dictionary(d) => Ok(d.clone()),
        _ => Ok(Dictionary::new()),
    }
}

/// Put `layer` on page `page_id`: the page (read from `src`) is written into `target` with its own
/// copy of its resources (its own, or those it inherits) plus the layer's font, and its content
/// wrapped in `q … Q` (so a graphics state it leaves changed cannot move the layer) followed by
/// the layer. Other pages sharing those resources are not touched.
fn add_layer(
    src: &Document,
    target: &mut Document,
    page_id: ObjectId,
    font_id: ObjectId,
    layer: &TextLayer<'_>,
) -> Result<(), RenderError> {
    let mut page = src.get_dictionary(page_id).map_err(encode_err)?.clone();
    let mut resources = Dictionary::new();
    let mut node = Some(page_id);
    while let Some(id) = node {
        let dict = src.get_dictionary(id).map_err(encode_err)?;
        if let Ok(r) = dict.get(b"Resources") {
            resources = dict_of(src, r)?;
            break;
        }
        node = dict.get(b"Parent").and_then(Object::as_reference).ok();
    }
    let mut fonts = resources.get(b"Font").map_or_else(|_| Ok(Dictionary::new()), |f| dict_of(src, f))?;
    fonts.set(FONT_RESOURCE, font_id);
    resources.set("Font", fonts);
    page.set("Resources", resources);

    let open = target.add_object(Stream::new(dictionary! {}, b"q\n".to_vec()));
    let mut body = Stream::new(dictionary! {}, [b"Q\n".as_slice(), &layer_content(layer)].concat());
    let _ = body.compress();
    let body = target.add_object(body);
    let mut contents: Vec<Object> = vec![open.into()];
    match page.get(b"Contents") {
        Ok(Object::Array(parts)) => contents.extend(parts.iter().cloned()),
        Ok(other) => contents.push(other.clone()),
        Err(_) => {}
    }
    contents.push(body.into());
    page.set("Contents", contents);
    target.set_object(page_id, page);
    Ok(())
}

/// A searchable copy of a PDF.
#[derive(Debug, Clone)]
pub struct SearchablePdf {
    /// The file.
    pub bytes: Vec<u8>,
    /// The input was encrypted; this copy is not (it is rewritten whole). Otherwise the input's
    /// bytes are kept unchanged and the layers appended as an incremental update.
    pub decrypted: bool,
}

/// `pdf` (its bytes; `password` for an encrypted one) with a text layer on each page of `layers`
/// (`(page index from 0, layer)`; other pages are kept as they are, e.g. those whose OCR failed).
pub fn searchable_pdf(pdf: &[u8], password: Option<&str>, layers: &[(usize, TextLayer<'_>)]) -> Result<SearchablePdf, RenderError> {
    // An encrypted file is decrypted as it is read (lopdf needs the password then, to read its
    // object streams).
    let src = Document::load_mem_with_options(pdf, lopdf::LoadOptions::with_password(password.unwrap_or("")))
        .map_err(|e| RenderError::Encode(format!("cannot read the input PDF for its searchable copy: {e}")))?;
    let decrypted = src.was_encrypted();
    let pages: Vec<ObjectId> = src.get_pages().into_values().collect();
    if let Some((index, _)) = layers.iter().find(|(index, _)| *index >= pages.len()) {
        return Err(RenderError::Encode(format!(
            "the PDF writer found {} page(s) in the input, not page {}: cannot add its text layer (if the file is damaged, `qpdf in.pdf repaired.pdf` may help)",
            pages.len(),
            index + 1
        )));
    }
    let mut bytes = Vec::new();
    if decrypted {
        // Written whole, without the encryption.
        let mut target = src.clone();
        target.trailer.remove(b"Encrypt");
        target.encryption_state = None;
        let font_id = add_font(&mut target);
        for (index, layer) in layers {
            add_layer(&src, &mut target, pages[*index], font_id, layer)?;
        }
        target.save_to(&mut bytes).map_err(encode_err)?;
    } else {
        let mut update = IncrementalDocument::create_from(pdf.to_vec(), src.clone());
        let font_id = add_font(&mut update.new_document);
        for (index, layer) in layers {
            add_layer(&src, &mut update.new_document, pages[*index], font_id, layer)?;
        }
        update.save_to(&mut bytes).map_err(encode_err)?;
    }
    Ok(SearchablePdf { bytes, decrypted })
}

/// A PDF of `pages` (images with their layouts), each image at its own resolution filling a page
/// sized for `dpi`, losslessly compressed, with its text layer.
pub fn searchable_pdf_from_images(pages: &[(&RgbImage, &PageLayout)], dpi: f32) -> Result<Vec<u8>, RenderError> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = add_font(&mut doc);
    let mut kids = Vec::with_capacity(pages.len());
    for (image, layout) in pages {
        let (w, h) = image.dimensions();
        let mut pixels = Stream::new(
            dictionary! {
                "Type" => "XObject", "Subtype" => "Image", "Width" => i64::from(w), "Height" => i64::from(h),
                "ColorSpace" => "DeviceRGB", "BitsPerComponent" => 8,
            },
            image.as_raw().clone(),
        );
        let _ = pixels.compress();
        let image_id = doc.add_object(pixels);
        let scale = 72.0 / f64::from(dpi.max(1.0));
        let (pw, ph) = (f64::from(w) * scale, f64::from(h) * scale);
        let draw = format!("q {pw:.4} 0 0 {ph:.4} 0 0 cm /Im0 Do Q\n").into_bytes();
        let layer = TextLayer { layout, pixel_to_user: [scale, 0.0, 0.0, -scale, 0.0, ph] };
        let mut content = Stream::new(dictionary! {}, [draw, layer_content(&layer)].concat());
        let _ = content.compress();
        let content_id = doc.add_object(content);
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "MediaBox" => vec![0.into(), 0.into(), (pw as f32).into(), (ph as f32).into()],
            "Contents" => content_id,
            "Resources" => dictionary! {
                "XObject" => dictionary! { "Im0" => image_id },
                "Font" => dictionary! { FONT_RESOURCE => font_id },
            },
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(pages_id, Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }));
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(encode_err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::page_layout;

    #[test]
    fn a_line_spans_its_box_upright_in_pixel_space() {
        let layout = page_layout("<|ref|>text<|/ref|><|det|>[[100, 100, 300, 200]]<|/det|>\nab 中😀", 999, 999);
        let content =
            String::from_utf8(layer_content(&TextLayer { layout: &layout, pixel_to_user: [1.0, 0.0, 0.0, -1.0, 0.0, 999.0] })).unwrap();
        // 5 characters of half an em across 200 pixels: x scale 80; height 100, flipped upright.
        assert!(content.contains("80.0000 0 0 -100.0000 100.00 180.00 Tm <0061006200204E2DFFFD> Tj"), "{content}");
        assert!(content.contains("3 Tr"));
    }

    #[test]
    fn image_pages_become_a_valid_pdf() {
        let image = RgbImage::from_pixel(200, 100, image::Rgb([255, 255, 255]));
        let layout = page_layout("<|ref|>title<|/ref|><|det|>[[0, 0, 999, 999]]<|/det|>\nHello", 200, 100);
        let pdf = searchable_pdf_from_images(&[(&image, &layout)], 144.0).unwrap();
        let doc = Document::load_mem(&pdf).unwrap();
        assert_eq!(doc.get_pages().len(), 1);
        // Round trip through the text layer writer on a PDF input.
        let again =
            searchable_pdf(&pdf, None, &[(0, TextLayer { layout: &layout, pixel_to_user: [0.5, 0.0, 0.0, -0.5, 0.0, 50.0] })]).unwrap();
        assert!(!again.decrypted);
        assert_eq!(Document::load_mem(&again.bytes).unwrap().get_pages().len(), 1);
    }
}
