//! `--format hocr,alto` and `--searchable`: the standard OCR formats and searchable PDFs beside the
//! markdown outputs (docs/formats.md).

use std::path::Path;

use anyhow::Context;
use clap::ValueEnum;
use dsocr::OcrResult;
use dsocr::render::{
    HocrPage, PageLayout, TextLayer, page_layout, searchable_pdf, searchable_pdf_from_images, to_alto_numbered, to_hocr_numbered,
};

use crate::inputs::{Document, Source};

/// Resolution an image is placed at in its searchable PDF: a page 1/300 inch per pixel, the usual
/// scanning resolution (image files rarely state theirs reliably).
pub const IMAGE_PDF_DPI: f32 = 300.0;

/// A format of text with positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// hOCR (XHTML microformat; Tesseract, OCRmyPDF): `NAME.hocr`.
    Hocr,
    /// ALTO XML v4: `NAME_alto.xml`.
    Alto,
}

impl OutputFormat {
    /// The file written for a document whose outputs are named `stem`.
    pub fn file_name(self, stem: &str) -> String {
        match self {
            OutputFormat::Hocr => format!("{stem}.hocr"),
            OutputFormat::Alto => format!("{stem}_alto.xml"),
        }
    }
}

/// The document in `format`: one page per result (a failed page is kept, without text, so page
/// numbers stay those of the input; its size is `fallback_sizes[k]`).
pub fn render(format: OutputFormat, doc: &Document, results: &[Option<&OcrResult>], fallback_sizes: &[(u32, u32)]) -> String {
    let all: Vec<usize> = (0..results.len()).collect();
    render_pages(format, doc, &all, results, fallback_sizes, false)
}

/// The pages `ks` (positions in `results`) in `format`; `input_numbers`: the pages carry their
/// numbers in the input (a file per page), else they are numbered in order.
fn render_pages(
    format: OutputFormat,
    doc: &Document,
    ks: &[usize],
    results: &[Option<&OcrResult>],
    fallback_sizes: &[(u32, u32)],
    input_numbers: bool,
) -> String {
    let layouts: Vec<PageLayout> = ks
        .iter()
        .map(|&k| match results[k] {
            Some(r) => page_layout(&r.raw, r.image_size.0, r.image_size.1),
            None => PageLayout { width: fallback_sizes[k].0.max(1), height: fallback_sizes[k].1.max(1), blocks: Vec::new() },
        })
        .collect();
    // The first page's 0-based number.
    let first = match ks.first() {
        Some(&k) if input_numbers => doc.pages[k],
        _ => 0,
    };
    match format {
        OutputFormat::Hocr => {
            let names: Vec<String> = ks
                .iter()
                .map(|&k| if doc.is_pdf() { format!("{}, page {}", doc.input, doc.pages[k] + 1) } else { doc.input.clone() })
                .collect();
            let pages: Vec<HocrPage<'_>> = layouts.iter().zip(&names).map(|(layout, image)| HocrPage { layout, image }).collect();
            to_hocr_numbered(&pages, first, &doc.name)
        }
        OutputFormat::Alto => to_alto_numbered(&layouts.iter().collect::<Vec<_>>(), first + 1, &doc.input),
    }
}

/// Write each of `formats` for `doc` into `dir` (the document's output folder, files named after
/// `stem`): one file for the document, or with `per_page` one per page, named after the page's
/// number in the input (`STEM_page0004.hocr`, `STEM_page0004_alto.xml`).
pub fn write(
    formats: &[OutputFormat],
    dir: &Path,
    stem: &str,
    doc: &Document,
    results: &[Option<&OcrResult>],
    fallback_sizes: &[(u32, u32)],
    per_page: bool,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let save = |name: String, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    for &format in formats {
        if per_page {
            for k in 0..results.len() {
                let page_stem = format!("{stem}_page{:04}", doc.pages[k] + 1);
                save(format.file_name(&page_stem), render_pages(format, doc, &[k], results, fallback_sizes, true))?;
            }
        } else {
            save(format.file_name(stem), render(format, doc, results, fallback_sizes))?;
        }
    }
    Ok(())
}

/// Write `NAME_searchable.pdf` into `dir`: for a PDF, the original file with a text layer on
/// every page that was read (the others, and pages whose OCR failed, as they were; an encrypted
/// input is written decrypted, and said so); for an image, the image on a page at
/// [`IMAGE_PDF_DPI`] with its layer. `image` is the page image of an image input; `dpi` the
/// render resolution of PDF pages.
pub fn write_searchable(
    dir: &Path,
    doc: &Document,
    results: &[Option<&OcrResult>],
    image: Option<&image::RgbImage>,
    dpi: f32,
    password: Option<&str>,
) -> anyhow::Result<()> {
    let layouts: Vec<Option<PageLayout>> = results.iter().map(|r| r.map(|r| page_layout(&r.raw, r.image_size.0, r.image_size.1))).collect();
    let bytes = match &doc.source {
        Source::Pdf(pdf) => {
            let mut layers = Vec::new();
            for (k, layout) in layouts.iter().enumerate() {
                if let Some(layout) = layout {
                    let index = doc.pages[k];
                    layers.push((index, TextLayer { layout, pixel_to_user: pdf.pixel_to_user(index, dpi)? }));
                }
            }
            let out = searchable_pdf(pdf.bytes(), password, &layers)?;
            if out.decrypted {
                eprintln!("note: {} is encrypted; its searchable copy is written without encryption", doc.input);
            }
            out.bytes
        }
        Source::ImageFile(_) | Source::ImageBytes(_) => {
            let (Some(image), Some(Some(layout))) = (image, layouts.first()) else {
                anyhow::bail!("{}: no OCR result to make a searchable PDF from", doc.input);
            };
            searchable_pdf_from_images(&[(image, layout)], IMAGE_PDF_DPI)?
        }
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{}_searchable.pdf", doc.name));
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
