//! Which rasteriser draws the pages (docs/pdf-renderers.md): hayro, pure Rust and the default, or
//! PDFium (the `pdfium` feature), bound at run time from a `libpdfium` shared library.

use std::path::PathBuf;

/// A page rasteriser.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Renderer {
    /// hayro: pure Rust, nothing to install, the same pixels on every machine.
    #[default]
    Hayro,
    /// PDFium (Chromium's PDF engine), loaded at run time from `library` (a `libpdfium.so`,
    /// `.dylib` or `.dll`), or from the system's library path when `None`. The first library bound
    /// serves the whole process. Needs the `pdfium` feature.
    Pdfium {
        /// The shared library's path.
        library: Option<PathBuf>,
    },
}

impl Renderer {
    /// `hayro` or `pdfium` (with the library path, if any).
    pub fn parse(name: &str, library: Option<PathBuf>) -> Result<Self, String> {
        match name.to_ascii_lowercase().as_str() {
            "hayro" => Ok(Renderer::Hayro),
            "pdfium" => Ok(Renderer::Pdfium { library }),
            other => Err(format!("unknown PDF renderer {other:?}: expected hayro or pdfium")),
        }
    }
}

#[cfg(feature = "pdfium")]
pub(crate) mod pdfium {
    //! PDFium through `pdfium-render`: one library per process (PDFium is not reentrant; the
    //! crate's `thread_safe` feature serialises calls, `sync` lets the handle be shared), a
    //! document loaded per rendered page.

    use std::path::Path;
    use std::sync::OnceLock;

    use image::RgbImage;
    use pdfium_render::prelude::*;

    use crate::PdfError;

    static PDFIUM: OnceLock<Pdfium> = OnceLock::new();

    /// The process's PDFium, bound from `library` (or the system's) on first use.
    pub(crate) fn bind(library: Option<&Path>) -> Result<&'static Pdfium, PdfError> {
        if let Some(p) = PDFIUM.get() {
            return Ok(p);
        }
        let bindings = match library {
            Some(path) => Pdfium::bind_to_library(path),
            None => Pdfium::bind_to_system_library(),
        }
        .map_err(|e| {
            let from = library.map_or("the system library path".to_string(), |p| p.display().to_string());
            PdfError::Render(format!(
                "cannot load PDFium from {from}: {e}; install libpdfium (the PyPI wheel `pypdfium2` ships one, \
                 in site-packages/pypdfium2_raw/) and name it with --pdfium-library or DSOCR_PDFIUM_LIBRARY, or use the default renderer (hayro)"
            ))
        })?;
        Ok(PDFIUM.get_or_init(|| Pdfium::new(bindings)))
    }

    /// Page `index` of the PDF `bytes` drawn on white at exactly `size` pixels.
    pub(crate) fn render(
        pdfium: &Pdfium,
        bytes: &[u8],
        password: Option<&str>,
        index: usize,
        (w, h): (u32, u32),
        path: &Path,
    ) -> Result<RgbImage, PdfError> {
        let fail = |what: &str, e: PdfiumError| PdfError::Render(format!("PDFium could not {what} {}: {e}", path.display()));
        let doc = pdfium.load_pdf_from_byte_slice(bytes, password).map_err(|e| fail("open", e))?;
        let number = u16::try_from(index)
            .map_err(|_| PdfError::Render(format!("PDFium reads at most 65,536 pages; page {} of {}", index + 1, path.display())))?;
        let page = doc.pages().get(number).map_err(|e| fail(&format!("read page {} of", index + 1), e))?;
        let config = PdfRenderConfig::new().set_target_width(w as i32).set_target_height(h as i32).set_clear_color(PdfColor::WHITE);
        let bitmap = page.render_with_config(&config).map_err(|e| fail(&format!("render page {} of", index + 1), e))?;
        let image = bitmap.as_image().to_rgb8();
        // PDFium keeps the page's aspect; the size asked is the page's at the DPI, so they agree.
        Ok(if image.dimensions() == (w, h) { image } else { image::imageops::resize(&image, w, h, image::imageops::FilterType::Triangle) })
    }
}
