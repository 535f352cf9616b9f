//! OCR a PDF to markdown with the library API.
//!
//! ```sh
//! cargo run --release --example ocr_pdf -- paper.pdf                  # weights from the hub
//! cargo run --release --example ocr_pdf -- paper.pdf path/to/model    # a local model directory
//! DSOCR_DEVICE=cuda cargo run --release --features cuda --example ocr_pdf -- paper.pdf
//! ```

use dsocr::common::DeviceSpec;
use dsocr::pdf::{DEFAULT_DPI, PdfDocument};
use dsocr::render::PAGE_SPLIT;
use dsocr::{DEFAULT_REPO, DeepseekOcr, ModelSource, OcrOptions};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let Some(pdf) = args.next() else {
        eprintln!("usage: ocr_pdf FILE.pdf [MODEL_DIR_OR_REPO]");
        std::process::exit(2);
    };
    let model = args.next().unwrap_or_else(|| DEFAULT_REPO.to_string());
    let device: DeviceSpec = std::env::var("DSOCR_DEVICE").unwrap_or_else(|_| "cpu".into()).parse()?;

    let ocr = DeepseekOcr::load(&ModelSource::parse(&model)?, device, None)?;
    let doc = PdfDocument::open(&pdf)?;
    let options = OcrOptions::default();
    for page in 0..doc.page_count() {
        let image = doc.render_page(page, DEFAULT_DPI)?;
        let result = ocr.ocr(&image.into(), &options)?;
        eprintln!("page {}: {} regions, {} tokens", page + 1, result.regions.len(), result.tokens.len());
        print!("{}{PAGE_SPLIT}", result.markdown);
    }
    Ok(())
}
