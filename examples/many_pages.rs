//! Many callers, one engine: an [`OcrService`] holds the model and its engine on a thread of its
//! own; threads submit pages whenever they like and get each page's events on a channel. Pages of
//! all callers decode together (continuous batching), which is what `dsocr serve` is built on.
//!
//! ```sh
//! cargo run --release --example many_pages -- a.png b.png c.jpg [--model DIR_OR_REPO]
//! ```

use std::sync::mpsc;

use dsocr::common::DeviceSpec;
use dsocr::preprocess::Mode;
use dsocr::{DEFAULT_REPO, DeepseekOcr, EngineOptions, Event, ModelSource, OcrOptions, OcrService};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut files: Vec<String> = std::env::args().skip(1).collect();
    let model = match files.iter().position(|a| a == "--model") {
        Some(i) => {
            files.remove(i);
            files.remove(i)
        }
        None => DEFAULT_REPO.to_string(),
    };
    if files.is_empty() {
        eprintln!("usage: many_pages IMAGE… [--model DIR_OR_REPO]");
        std::process::exit(2);
    }
    let source = ModelSource::parse(&model)?;
    let options = OcrOptions::default();
    let engine = EngineOptions::for_pages(&Mode::Gundam.spec(), options.generation.max_new_tokens);
    let service = OcrService::start(move || DeepseekOcr::load(&source, DeviceSpec::auto(), None), engine)?;

    // One thread per file, as independent callers would be.
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|s| {
        for file in &files {
            let (service, options, done_tx) = (&service, options.clone(), done_tx.clone());
            s.spawn(move || {
                let page = dsocr::preprocess::load_image(file, &Default::default())
                    .map_err(dsocr::EngineError::from)
                    .and_then(|image| service.prepare(&image, &options));
                let (tx, rx) = mpsc::channel();
                service.submit(page, options, false, Box::new(move |event| tx.send(event).is_ok()));
                for event in rx {
                    if let Event::Finished { result, .. } = event {
                        let _ = done_tx.send((file.clone(), *result));
                    }
                }
            });
        }
    });
    drop(done_tx);
    for (file, result) in done_rx {
        match result {
            Ok(r) => println!("<!-- {file}: {} tokens -->\n{}", r.tokens.len(), r.markdown),
            Err(e) => eprintln!("{file}: {e}"),
        }
    }
    Ok(())
}
