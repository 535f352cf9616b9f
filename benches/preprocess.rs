//! Preprocessing of one A4 page at 150 DPI (1240×1754) in Gundam mode: tile-grid selection,
//! Pillow-exact bicubic resizes (global view + 2×3 tiles) and normalisation.
//!
//! Run: `cargo bench --bench preprocess`.

use criterion::{Criterion, criterion_group, criterion_main};
use dsocr::preprocess::{Mode, RgbImage, prepare_image};
use std::hint::black_box;

/// A synthetic page: white paper with dark "text lines" and a grey figure block, so the resize
/// works on realistic edges rather than a flat colour.
fn a4_page_150dpi() -> RgbImage {
    let (w, h) = (1240usize, 1754usize);
    let mut data = vec![255u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let text_line = (y / 12) % 3 != 2 && (100..1140).contains(&x) && ((x / 7 + y / 12) % 5 != 0);
            let figure = (900..1300).contains(&y) && (200..1040).contains(&x);
            let v = if figure {
                ((x ^ y) & 0xff) as u8
            } else if text_line && (y % 12) < 8 {
                20
            } else {
                255
            };
            data[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[v, v, v.saturating_add(10)]);
        }
    }
    RgbImage::new(w, h, data).expect("valid page")
}

fn bench_preprocess(c: &mut Criterion) {
    let page = a4_page_150dpi();
    let mode = Mode::Gundam.spec();
    let mut group = c.benchmark_group("preprocess");
    group.sample_size(20);
    group.bench_function("a4_150dpi_gundam_views", |b| b.iter(|| prepare_image(black_box(&page), &mode).unwrap()));
    let prepared = prepare_image(&page, &mode).unwrap();
    group.bench_function("a4_150dpi_gundam_normalise", |b| {
        b.iter(|| {
            let g = prepared.global.normalized();
            let t = prepared.tiles.as_ref().map(|t| t.normalized());
            (g, t)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_preprocess);
criterion_main!(benches);
