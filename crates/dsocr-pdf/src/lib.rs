//! # dsocr-pdf
//!
//! PDF pages to RGB images for DeepSeek-OCR, with the pure-Rust [hayro] renderer: nothing to
//! install, the same output on every machine; or with PDFium ([`Renderer::Pdfium`], the `pdfium`
//! feature), bound at run time from a `libpdfium` library (docs/pdf-renderers.md).
//!
//! - [`PdfDocument::open`]: open a file (encrypted files with an empty user password open as is;
//!   others need [`PdfDocument::open_with_password`]), page count and metadata;
//! - [`PdfDocument::render_page`] / [`PdfDocument::render_pages`]: render at a DPI (144 by default,
//!   as the official PDF script), pixel sizes rounded (not truncated), several pages in parallel;
//! - [`parse_page_ranges`]: `"1-3,7"` → page indexes, with range errors naming the page count;
//! - non-embedded CJK fonts are drawn with a system Noto CJK font when one is installed (e.g.
//!   Debian's `fonts-noto-cjk`), with a warning when a page needed one that is missing.
//!
//! ```
//! assert_eq!(dsocr_pdf::parse_page_ranges("1-3,7", 10).unwrap(), vec![0, 1, 2, 6]);
//! let e = dsocr_pdf::parse_page_ranges("12", 10).unwrap_err().to_string();
//! assert!(e.contains("10"), "{e}");
//! ```

#![warn(missing_docs)]

mod fonts;
mod pages;
mod renderer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_interpret::util::TransformExt;
use hayro::hayro_syntax::{LoadPdfError, Pdf};
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::vello_cpu::{Pixmap, RasterizerSettings, RenderContext, Resources, TargetInit};
use hayro::{RenderCache, RenderSettings, kurbo::Affine, render_into};
use image::RgbImage;

pub use fonts::{CjkFont, FontReport};
pub use pages::parse_page_ranges;
pub use renderer::Renderer;

/// The official PDF script's resolution.
pub const DEFAULT_DPI: f32 = 144.0;
/// Longest side of a rendered page in pixels (the renderer's limit).
pub const MAX_SIDE: u32 = 65_535;
/// Most pixels of a rendered page (as for image files: `dsocr_preprocess::DEFAULT_MAX_PIXELS`):
/// 300 MB of RGB. The model sees a page at 1024 pixels a side, so more only costs memory; a
/// poster-sized page (an A0 drawing at 144 DPI is 32 MP) stays well inside.
pub const MAX_PIXELS: u64 = 100_000_000;

/// Errors reading or rendering a PDF. Each names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        error: std::io::Error,
    },
    /// Not a PDF, or too damaged to read.
    #[error("{path} is not a readable PDF (the file is damaged or not a PDF)")]
    Invalid {
        /// The file.
        path: PathBuf,
    },
    /// The file needs a password.
    #[error("{path} is encrypted with a user password; give it with --password")]
    PasswordRequired {
        /// The file.
        path: PathBuf,
    },
    /// The password given is wrong.
    #[error("the password given for {path} is wrong")]
    WrongPassword {
        /// The file.
        path: PathBuf,
    },
    /// The encryption is not supported.
    #[error("{path} uses an encryption this reader does not support ({reason})")]
    UnsupportedEncryption {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        reason: String,
    },
    /// A page number outside the document.
    #[error("{0}")]
    PageRange(String),
    /// Rendering settings that cannot be met.
    #[error("{0}")]
    Render(String),
    /// A font file given for text the PDF does not embed is not a font.
    #[error("{0}")]
    Font(String),
}

/// Title, author and page count.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PdfInfo {
    /// Number of pages.
    pub pages: usize,
    /// Document title, if set.
    pub title: Option<String>,
    /// Document author, if set.
    pub author: Option<String>,
}

/// An open PDF.
pub struct PdfDocument {
    pdf: Pdf,
    /// The file as read (encrypted if it is), for writers that keep the original pages.
    bytes: Arc<Vec<u8>>,
    /// The password it was opened with (PDFium opens the file again).
    #[cfg_attr(not(feature = "pdfium"), allow(dead_code))]
    password: Option<String>,
    renderer: Renderer,
    path: PathBuf,
    fonts: Arc<fonts::FontResolver>,
}

impl std::fmt::Debug for PdfDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdfDocument").field("path", &self.path).field("pages", &self.page_count()).finish()
    }
}

impl PdfDocument {
    /// Open a PDF file (an empty user password is tried, as every viewer does).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, PdfError> {
        Self::open_with_password(path, None)
    }

    /// Open a PDF file with an optional user password.
    pub fn open_with_password(path: impl AsRef<Path>, password: Option<&str>) -> Result<Self, PdfError> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|error| PdfError::Io { path: path.clone(), error })?;
        Self::from_bytes(bytes, path, password)
    }

    /// Open a PDF held in memory; `name` is used in messages.
    pub fn from_bytes(bytes: Vec<u8>, name: impl Into<PathBuf>, password: Option<&str>) -> Result<Self, PdfError> {
        let path = name.into();
        use hayro::hayro_syntax::DecryptionError as D;
        let bytes = Arc::new(bytes);
        let pdf = Pdf::new_with_password(bytes.clone(), password.unwrap_or("")).map_err(|e| match e {
            LoadPdfError::Invalid => PdfError::Invalid { path: path.clone() },
            LoadPdfError::Decryption(D::PasswordProtected) if password.is_none() => PdfError::PasswordRequired { path: path.clone() },
            LoadPdfError::Decryption(D::PasswordProtected) => PdfError::WrongPassword { path: path.clone() },
            LoadPdfError::Decryption(other) => PdfError::UnsupportedEncryption { path: path.clone(), reason: format!("{other:?}") },
        })?;
        Ok(PdfDocument {
            pdf,
            bytes,
            password: password.map(str::to_string),
            renderer: Renderer::Hayro,
            path,
            fonts: Arc::new(fonts::FontResolver::new(fonts::CjkChoice::System)),
        })
    }

    /// Draw pages with `renderer` from now on. PDFium is bound here, so a missing library is
    /// reported before any page is rendered; without the `pdfium` feature it is refused.
    pub fn with_renderer(mut self, renderer: Renderer) -> Result<Self, PdfError> {
        if let Renderer::Pdfium { library } = &renderer {
            #[cfg(feature = "pdfium")]
            renderer::pdfium::bind(library.as_deref())?;
            #[cfg(not(feature = "pdfium"))]
            {
                let _ = library;
                return Err(PdfError::Render(
                    "this build has no PDFium support: build dsocr with the `pdfium` feature, or use the default renderer (hayro)".into(),
                ));
            }
        }
        self.renderer = renderer;
        Ok(self)
    }

    /// Draw CJK text that the PDF does not embed with `font` (by default: an installed Noto CJK
    /// collection, if any). Used by the built-in renderer; PDFium finds system fonts itself.
    pub fn with_cjk_font(mut self, font: CjkFont) -> Self {
        self.fonts = Arc::new(fonts::FontResolver::new(fonts::CjkChoice::Given(font)));
        self
    }

    /// The renderer in use.
    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    /// Number of pages.
    pub fn page_count(&self) -> usize {
        self.pdf.pages().len()
    }

    /// Page count, title and author.
    pub fn info(&self) -> PdfInfo {
        let meta = self.pdf.metadata();
        let text = |b: &Option<Box<[u8]>>| b.as_ref().map(|b| decode_pdf_text(b)).filter(|s| !s.is_empty());
        PdfInfo { pages: self.page_count(), title: text(&meta.title), author: text(&meta.author) }
    }

    /// Page size in pixels at `dpi` (rounded), rotation applied.
    pub fn page_pixels(&self, index: usize, dpi: f32) -> Result<(u32, u32), PdfError> {
        let page = self.pdf.pages().get(index).ok_or_else(|| self.out_of_range(index))?;
        let (w, h) = page.render_dimensions();
        let scale = dpi / 72.0;
        Ok(((w * scale).round().max(1.0) as u32, (h * scale).round().max(1.0) as u32))
    }

    /// The file's bytes as read (still encrypted when the file is).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The affine map `[a, b, c, d, e, f]` (PDF matrix order) from pixels of page `index`
    /// rendered at `dpi` ([`PdfDocument::render_page`]) to the page's user space: the inverse of
    /// the render transform, crop box and rotation included. A text layer drawn through it lands
    /// on what the model saw.
    pub fn pixel_to_user(&self, index: usize, dpi: f32) -> Result<[f64; 6], PdfError> {
        let page = self.pdf.pages().get(index).ok_or_else(|| self.out_of_range(index))?;
        let transform = Affine::scale(f64::from(dpi) / 72.0) * page.initial_transform(true).to_kurbo();
        Ok(transform.inverse().as_coeffs())
    }

    fn out_of_range(&self, index: usize) -> PdfError {
        PdfError::PageRange(format!("page {} does not exist: {} has {} page(s)", index + 1, self.path.display(), self.page_count()))
    }

    /// Render page `index` (0-based) at `dpi` on white.
    pub fn render_page(&self, index: usize, dpi: f32) -> Result<RgbImage, PdfError> {
        if !(dpi.is_finite() && dpi > 0.0) {
            return Err(PdfError::Render(format!("DPI must be positive, got {dpi}")));
        }
        let (w, h) = self.page_pixels(index, dpi)?;
        if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
            return Err(PdfError::Render(format!(
                "page {} at {dpi} DPI would be {w}×{h} pixels (at most {MAX_SIDE} a side and {} million in all); use a lower --dpi",
                index + 1,
                MAX_PIXELS / 1_000_000
            )));
        }
        #[cfg(feature = "pdfium")]
        if let Renderer::Pdfium { library } = &self.renderer {
            let pdfium = renderer::pdfium::bind(library.as_deref())?;
            return renderer::pdfium::render(pdfium, &self.bytes, self.password.as_deref(), index, (w, h), &self.path);
        }
        let page = &self.pdf.pages()[index];
        let scale = f64::from(dpi) / 72.0;
        let settings = InterpreterSettings { font_resolver: self.fonts.resolver_fn(index + 1), ..InterpreterSettings::default() };
        let cache = RenderCache::new();
        let mut ctx = RenderContext::new(w as u16, h as u16);
        let transform = Affine::scale(scale) * page.initial_transform(true).to_kurbo();
        render_into(page, &cache, &settings, &RenderSettings::default(), &mut ctx, transform);
        ctx.flush();
        let mut pixmap = Pixmap::new(w as u16, h as u16);
        let raster = RasterizerSettings { target_init: TargetInit::Clear(WHITE), ..Default::default() };
        ctx.render_with(&mut pixmap, &mut Resources::default(), raster);
        // Opaque white background: premultiplied RGBA equals straight RGBA; drop alpha.
        let rgba = pixmap.data_as_u8_slice();
        let rgb: Vec<u8> = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        Ok(RgbImage::from_raw(w, h, rgb).expect("buffer matches size"))
    }

    /// Render several pages, in parallel over the available cores, in the order given. Each page
    /// succeeds or fails on its own: a page whose rendering panics (a renderer bug on a malformed
    /// page) is an error for that page, not for the others.
    pub fn render_pages(&self, indexes: &[usize], dpi: f32) -> Vec<Result<RgbImage, PdfError>> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(indexes.len()).max(1);
        let mut results: Vec<Option<Result<RgbImage, PdfError>>> = (0..indexes.len()).map(|_| None).collect();
        std::thread::scope(|s| {
            for (t, chunk) in results.chunks_mut(indexes.len().div_ceil(threads).max(1)).enumerate() {
                let start = t * indexes.len().div_ceil(threads).max(1);
                s.spawn(move || {
                    for (i, slot) in chunk.iter_mut().enumerate() {
                        let index = indexes[start + i];
                        let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.render_page(index, dpi)));
                        *slot = Some(rendered.unwrap_or_else(|panic| {
                            let what = panic
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_else(|| "no message".into());
                            let advice = match self.renderer {
                                Renderer::Hayro => "the page may be damaged; another renderer (PDFium) may read it",
                                Renderer::Pdfium { .. } => "the page may be damaged",
                            };
                            Err(PdfError::Render(format!(
                                "page {} of {} could not be rendered: the renderer failed ({what}); {advice}",
                                index + 1,
                                self.path.display()
                            )))
                        }));
                    }
                });
            }
        });
        results.into_iter().map(|r| r.expect("every page rendered")).collect()
    }

    /// Pages that needed a font that is not installed (see [`FontReport`]).
    pub fn font_report(&self) -> FontReport {
        self.fonts.report()
    }
}

/// PDF text strings: UTF-16BE with a BOM, else PDFDocEncoding (Latin-1 is close enough for
/// titles).
fn decode_pdf_text(b: &[u8]) -> String {
    if b.starts_with(&[0xFE, 0xFF]) {
        let units: Vec<u16> = b[2..].chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        String::from_utf16_lossy(&units)
    } else {
        b.iter().map(|&c| c as char).collect()
    }
}
