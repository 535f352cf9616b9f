//! Vision encoder stages on one Gundam page: SAM (its relative-position bias materialised, and
//! folded into the dot product), the second stage (CLIP, or DeepSeek-OCR 2's Qwen2 encoder with
//! `DSOCR_BENCH_ARCH=ocr2`) and the projector for the 1024² global view and for six tiles (640², or
//! 768² crops for DeepSeek-OCR 2); and SAM over eight global views at once (a vision batch of the
//! engine). Parity-size model by default; `DSOCR_BENCH_RELEASE=1` for release sizes (see
//! `benches/common`).

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use dsocr::vision::{DeepEncoder, RelPosAttention, Stage2};

fn bench_vision(c: &mut Criterion) {
    let Some(m) = common::bench_model("vision") else { return };
    let encoder = DeepEncoder::load(&m.weights, &m.vision).expect("encoder");
    let mut folded = encoder.clone();
    folded.sam.rel_pos_attention = RelPosAttention::Folded;
    let dtype = m.weights.float().dtype();
    let mut group = c.benchmark_group(format!("vision/{}", m.label));
    group.sample_size(10);
    let (stage2, tile) = match encoder.stage2 {
        Stage2::Clip(_) => ("clip", 640),
        Stage2::Qwen2(_) => ("qwen2", 768),
    };
    for (name, n, size) in
        [("global_1024".to_string(), 1, 1024), (format!("tiles_6x{tile}"), 6, tile), ("globals_8x1024".to_string(), 8, 1024)]
    {
        let px = common::random_pixels(n, size, &m.device, dtype);
        let sam = encoder.sam.forward(px.clone());
        let second = encoder.encode_stage2(sam.clone());
        common::sync(&m.device);
        group.bench_function(format!("sam/{name}"), |b| {
            b.iter(|| {
                let out = encoder.sam.forward(px.clone());
                common::sync(&m.device);
                out
            })
        });
        group.bench_function(format!("sam_folded/{name}"), |b| {
            b.iter(|| {
                let out = folded.sam.forward(px.clone());
                common::sync(&m.device);
                out
            })
        });
        group.bench_function(format!("{stage2}/{name}"), |b| {
            b.iter(|| {
                let out = encoder.encode_stage2(sam.clone());
                common::sync(&m.device);
                out
            })
        });
        group.bench_function(format!("projector/{name}"), |b| {
            b.iter(|| {
                let out = encoder.project(&sam, &second);
                common::sync(&m.device);
                out
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_vision);
criterion_main!(benches);
