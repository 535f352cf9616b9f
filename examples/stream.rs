//! Print a page's text as the model writes it (streaming), then its layout regions.
//!
//! ```sh
//! cargo run --release --example stream -- page.png [MODEL_DIR_OR_REPO]
//! ```

use std::io::Write;

use dsocr::common::DeviceSpec;
use dsocr::{DEFAULT_REPO, DeepseekOcr, ModelSource, OcrOptions};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: stream IMAGE [MODEL_DIR_OR_REPO]");
        std::process::exit(2);
    };
    let model = args.next().unwrap_or_else(|| DEFAULT_REPO.to_string());
    let page = dsocr::preprocess::load_image(&path, &Default::default())?;
    let ocr = DeepseekOcr::load(&ModelSource::parse(&model)?, DeviceSpec::auto(), None)?;
    let result = ocr.ocr_stream(&page, &OcrOptions::default(), |text| {
        print!("{text}");
        let _ = std::io::stdout().flush();
    })?;
    println!();
    for region in &result.regions {
        eprintln!("{:>10} at {:?}", region.label, region.bbox);
    }
    eprintln!("{} tokens, {:.1} tok/s", result.tokens.len(), result.timings.decode_tokens_per_s());
    Ok(())
}
