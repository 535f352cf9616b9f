//! The inputs of `dsocr ocr`, opened before the model is loaded: image files (decoded later, on
//! preparation threads), PDFs (opened, password checked, pages chosen) and standard input.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use dsocr::EngineError;
use dsocr::pdf::{CjkFont, PdfDocument, Renderer, parse_page_ranges};
use dsocr::preprocess::{LoadOptions, RgbImage, load_image_from_memory, probe_image};

/// Where a document's pages come from.
pub enum Source {
    /// An image file, read and decoded when its page is prepared.
    ImageFile(PathBuf),
    /// An image already in memory (standard input).
    ImageBytes(Arc<Vec<u8>>),
    /// A PDF, its pages rendered when they are prepared.
    Pdf(Arc<PdfDocument>),
}

/// One input: an image (one page) or a PDF (the chosen pages).
pub struct Document {
    /// The argument as given (or `-`).
    pub input: String,
    /// The output folder's name (the file stem).
    pub name: String,
    pub source: Source,
    /// 0-based page numbers (`[0]` for an image).
    pub pages: Vec<usize>,
    /// How its images are decoded (`--max-pixels`).
    pub load: LoadOptions,
}

impl Document {
    pub fn is_pdf(&self) -> bool {
        matches!(self.source, Source::Pdf(_))
    }

    /// A closure that loads page `k` (of [`Document::pages`]) at `dpi`, for a preparation thread.
    pub fn page_source(&self, k: usize, dpi: f32) -> Box<dyn FnOnce() -> Result<RgbImage, EngineError> + Send> {
        let shown = if self.input == "-" { "<stdin>".to_string() } else { self.input.clone() };
        let (page, load) = (self.pages[k], self.load);
        let bad = |e: String| EngineError::Input(e);
        match &self.source {
            Source::ImageFile(path) => {
                let path = path.clone();
                Box::new(move || {
                    let bytes = std::fs::read(&path).map_err(|e| bad(format!("cannot read {shown}: {e}")))?;
                    load_image_from_memory(&bytes, &shown, &load).map_err(|e| bad(e.to_string()))
                })
            }
            Source::ImageBytes(bytes) => {
                let bytes = bytes.clone();
                Box::new(move || load_image_from_memory(&bytes, &shown, &load).map_err(|e| bad(e.to_string())))
            }
            Source::Pdf(doc) => {
                let doc = doc.clone();
                Box::new(move || doc.render_page(page, dpi).map(RgbImage::from).map_err(|e| bad(format!("{shown} page {}: {e}", page + 1))))
            }
        }
    }
}

/// `--dpi` (of `dsocr ocr` and `dsocr serve`): a positive, finite resolution.
pub fn check_dpi(dpi: f32) -> anyhow::Result<()> {
    anyhow::ensure!(
        dpi.is_finite() && dpi > 0.0,
        "--dpi must be a positive number of dots per inch (got {dpi}); {} is the default",
        dsocr::pdf::DEFAULT_DPI
    );
    Ok(())
}

/// `--cjk-font` (of `dsocr ocr` and `dsocr serve`), read once at start: a wrong path or a file
/// that is no font fails before the model loads.
pub fn load_cjk_font(path: Option<&std::path::Path>) -> anyhow::Result<Option<CjkFont>> {
    path.map(|p| CjkFont::load(p).context("--cjk-font")).transpose()
}

fn is_pdf_bytes(b: &[u8]) -> bool {
    b.len() >= 5 && b[..1024.min(b.len())].windows(5).any(|w| w == b"%PDF-")
}

/// How `dsocr ocr`'s inputs are opened (its flags).
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Password of encrypted PDFs (`--password`).
    pub password: Option<String>,
    /// Which pages of each PDF (`--pages`; `None`: all).
    pub pages: Option<String>,
    /// How PDF pages are drawn (`--pdf-renderer`).
    pub renderer: Renderer,
    /// The font for CJK text a PDF does not embed (`--cjk-font`; `None`: an installed Noto CJK).
    pub cjk_font: Option<CjkFont>,
    /// How images are decoded (`--max-pixels`).
    pub load: LoadOptions,
}

/// Open every input; those that cannot be opened come back with their error.
pub fn open_inputs(files: &[String], options: &OpenOptions) -> (Vec<Document>, Vec<(String, anyhow::Error)>) {
    let mut docs = Vec::new();
    let mut failed = Vec::new();
    for input in files {
        match open(input, options) {
            Ok(doc) => docs.push(doc),
            Err(e) => failed.push((input.clone(), e)),
        }
    }
    (docs, failed)
}

fn open(input: &str, options: &OpenOptions) -> anyhow::Result<Document> {
    let load = options.load;
    let name = crate::names::stem(input);
    let (head, bytes) = if input == "-" {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b).context("reading standard input")?;
        anyhow::ensure!(!b.is_empty(), "standard input is empty; pipe an image or a PDF into `dsocr ocr -`");
        (b.clone(), Some(b))
    } else {
        let mut head = vec![0u8; 1024];
        let mut f = std::fs::File::open(input).with_context(|| format!("cannot open {input}"))?;
        let n = f.read(&mut head).with_context(|| format!("cannot read {input}"))?;
        head.truncate(n);
        anyhow::ensure!(n > 0, "{input} is empty");
        (head, None)
    };
    if is_pdf_bytes(&head) {
        let bytes = match bytes {
            Some(b) => b,
            None => std::fs::read(input).with_context(|| format!("cannot read {input}"))?,
        };
        let shown = if input == "-" { "<stdin>" } else { input };
        let mut doc = PdfDocument::from_bytes(bytes, shown, options.password.as_deref())?.with_renderer(options.renderer.clone())?;
        if let Some(font) = &options.cjk_font {
            doc = doc.with_cjk_font(font.clone());
        }
        let pages = parse_page_ranges(options.pages.as_deref().unwrap_or("all"), doc.page_count())?;
        anyhow::ensure!(!pages.is_empty(), "{input} has no pages");
        return Ok(Document { input: input.to_string(), name, source: Source::Pdf(Arc::new(doc)), pages, load });
    }
    if options.pages.is_some() {
        tracing::warn!("--pages applies to PDFs; ignored for image {input}");
    }
    let source = match bytes {
        Some(b) => Source::ImageBytes(Arc::new(b)),
        None => {
            // The header only: a file that is no image, or a broken one, fails now.
            probe_image(input, &load)?;
            Source::ImageFile(PathBuf::from(input))
        }
    };
    Ok(Document { input: input.to_string(), name, source, pages: vec![0], load })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdf_magic() {
        assert!(is_pdf_bytes(b"%PDF-1.7\n"));
        assert!(!is_pdf_bytes(b"\x89PNG\r\n"));
    }

    #[test]
    fn a_missing_file_fails_alone() {
        let (docs, failed) = open_inputs(&["/nonexistent/page.png".to_string()], &OpenOptions::default());
        assert!(docs.is_empty());
        assert!(format!("{:#}", failed[0].1).contains("cannot open /nonexistent/page.png"), "{:#}", failed[0].1);
    }
}
