//! Preprocessing of one A4 page at 150 DPI (1240×1754) in Gundam mode: tile-grid selection,
//! Pillow-exact bicubic resizes (global view + 2×3 tiles) and normalisation.
//!
//! Run: `cargo bench --features tooling --bench preprocess`.

use criterion::{Criterion, criterion_group, criterion_main};
use dsocr::bench::synthetic_page;
use dsocr::preprocess::{Mode, prepare_image};
use std::hint::black_box;

fn bench_preprocess(c: &mut Criterion) {
    let page = synthetic_page(1240, 1754); // A4 at 150 DPI
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
