//! OCR a PDF to markdown with the library API: all pages go through the engine together
//! (continuous batching), and are printed in page order as they complete.
//!
//! ```sh
//! cargo run --release --example ocr_pdf -- paper.pdf                  # weights from the hub
//! cargo run --release --example ocr_pdf -- paper.pdf path/to/model    # a local model directory
//! cargo run --release --features cuda --example ocr_pdf -- paper.pdf  # on the GPU when there is one
//! ```

use dsocr::common::DeviceSpec;
use dsocr::pdf::{DEFAULT_DPI, PdfDocument};
use dsocr::render::PAGE_SPLIT;
use dsocr::{DEFAULT_REPO, DeepseekOcr, EngineError, EngineOptions, Event, InOrder, ModelSource, OcrOptions};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let Some(pdf) = args.next() else {
        eprintln!("usage: ocr_pdf FILE.pdf [MODEL_DIR_OR_REPO]");
        std::process::exit(2);
    };
    let model = args.next().unwrap_or_else(|| DEFAULT_REPO.to_string());

    let doc = PdfDocument::open(&pdf)?;
    let ocr = DeepseekOcr::load(&ModelSource::parse(&model)?, DeviceSpec::auto(), None)?;
    let options = OcrOptions::default();
    let engine = EngineOptions::for_pages(&options.mode, options.generation.max_new_tokens);
    // Pages are rendered on a preparation thread just ahead of the engine.
    let pages =
        (0..doc.page_count()).map(move |p| doc.render_page(p, DEFAULT_DPI).map(Into::into).map_err(|e| EngineError::Input(e.to_string())));
    let mut order = InOrder::new();
    ocr.ocr_many(pages, &options, &engine, |event| {
        if let Event::Finished { tag, result } = event {
            for (page, result) in order.push(tag, *result) {
                match result {
                    Ok(r) => {
                        eprintln!("page {}: {} regions, {} tokens", page + 1, r.regions.len(), r.tokens.len());
                        print!("{}{PAGE_SPLIT}", r.markdown);
                    }
                    Err(e) => eprintln!("page {}: {e}", page + 1),
                }
            }
        }
    })?;
    Ok(())
}
