//! The output files of a PDF page (`dsocr ocr --out`): the page with its boxes drawn and
//! JPEG-encoded for the layouts PDF, its figure crops, its markdown — and a 16-page document
//! written whole (per-page work on every core, then the layouts PDF and JSON). An A4 page at
//! 144 DPI (1190×1684, the CLI's default render) with a typical grounding answer: a title, text
//! blocks, a table and two figures.
//!
//! Run: `cargo bench -p dsocr-render --bench outputs`.

use criterion::{Criterion, criterion_group, criterion_main};
use dsocr_render::{PageOutputs, PageText, jpeg_bytes, write_document_outputs};
use image::{Rgb, RgbImage};
use std::hint::black_box;

/// A page: lines of text strokes, a grey figure, white margins (as `dsocr bench`'s page).
fn synthetic_page(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let text_line = (y / 12) % 3 != 2 && (w / 12..w - w / 12).contains(&x) && (x / 7 + y / 12) % 5 != 0;
        let figure = (h / 2..h * 3 / 4).contains(&y) && (w / 6..w * 5 / 6).contains(&x);
        if figure {
            Rgb([(x % 200) as u8 + 30, (y % 180) as u8 + 40, 120])
        } else if text_line {
            Rgb([25, 25, 25])
        } else {
            Rgb([255, 255, 255])
        }
    })
}

/// A grounding answer with 11 regions on the 0-999 grid, two of them figures (cropped).
fn answer() -> String {
    let mut raw = String::from("<|ref|>title<|/ref|><|det|>[[80, 40, 920, 80]]<|/det|>\n# A study of pages\n\n");
    for k in 0..6 {
        let y = 100 + k * 60;
        raw += &format!("<|ref|>text<|/ref|><|det|>[[80, {y}, 920, {}]]<|/det|>\nParagraph {k} of the page, a few lines long.\n\n", y + 50);
    }
    raw += "<|ref|>image<|/ref|><|det|>[[160, 480, 840, 740]]<|/det|>\n\n";
    raw += "<|ref|>image_caption<|/ref|><|det|>[[160, 745, 840, 770]]<|/det|>\nFigure 1: a figure.\n\n";
    raw += "<|ref|>table<|/ref|><|det|>[[80, 790, 920, 900]]<|/det|>\n<table><tr><td>a</td><td>b</td></tr><tr><td>1</td><td>2</td></tr></table>\n\n";
    raw += "<|ref|>image<|/ref|><|det|>[[80, 910, 400, 980]]<|/det|>\n\n";
    raw
}

fn bench_outputs(c: &mut Criterion) {
    let page = PageText { image: synthetic_page(1190, 1684), raw: answer(), stopped_on_eos: true };
    let mut group = c.benchmark_group("outputs");
    group.sample_size(20);
    group.bench_function("a4_144dpi_jpeg_q95", |b| b.iter(|| jpeg_bytes(black_box(&page.image), 95).unwrap()));
    group.bench_function("a4_144dpi_page_outputs", |b| b.iter(|| PageOutputs::make(0, black_box(&page)).unwrap()));
    let pages: Vec<PageText> = (0..16).map(|_| page.clone()).collect();
    let dir = std::env::temp_dir().join(format!("dsocr-bench-outputs-{}", std::process::id()));
    group.sample_size(10);
    group.bench_function("a4_144dpi_document_16_pages", |b| {
        b.iter(|| write_document_outputs(&dir, "doc", black_box(&pages), false, false, 144.0, serde_json::Value::Null).unwrap())
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_outputs);
criterion_main!(benches);
