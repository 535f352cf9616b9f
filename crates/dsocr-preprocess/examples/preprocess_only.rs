//! The preprocessor alone, without Burn or the model: an image becomes the views the vision
//! encoder reads (global view and tiles, normalised pixels) and the prompt's token layout, exactly
//! as the official code makes them (docs/model.md). A pipeline can run this on its own CPUs and
//! send the result wherever the model runs.
//!
//! ```sh
//! cargo run -p dsocr-preprocess --example preprocess_only -- page.png [tokenizer.json]
//! ```

use dsocr_preprocess::{LoadOptions, Mode, build_prompt, load_image, prepare_image};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: preprocess_only IMAGE [tokenizer.json]");
        std::process::exit(2);
    };
    let image = load_image(&path, &LoadOptions::default())?;
    let prepared = prepare_image(&image, &Mode::Gundam.spec())?;
    println!("{path}: {}×{} pixels", image.width, image.height);
    println!("tile grid {}×{}, global view {:?}", prepared.grid.cols, prepared.grid.rows, prepared.global.shape());
    if let Some(tiles) = &prepared.tiles {
        println!("tiles {:?}", tiles.shape());
    }
    let pixels: Vec<f32> = prepared.global.normalized();
    println!("global view: {} normalised values, first {:?}", pixels.len(), &pixels[..3]);
    println!("image tokens in the prompt: {}", prepared.image_token_count());
    if let Some(tokenizer) = args.next() {
        let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer)?;
        let prompt = build_prompt(&tokenizer, "<image>\n<|grounding|>Convert the document to markdown.", &[prepared.image_token_count()])?;
        let images = prompt.images_seq_mask.iter().filter(|&&m| m).count();
        println!("prompt: {} tokens, {images} of them image placeholders", prompt.len());
    }
    Ok(())
}
