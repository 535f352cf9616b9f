//! Decoder prefill of the A4 Gundam prompt (913 tokens) into a fresh KV pool row, to the logits of the
//! last position. Parity-size model by default; `DSOCR_BENCH_RELEASE=1` for release sizes.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dsocr::common::burn::prelude::*;
use dsocr::lm::DeepseekLm;

const PROMPT: usize = 913;

fn bench_prefill(c: &mut Criterion) {
    let Some(m) = common::bench_model("prefill") else { return };
    let lm = DeepseekLm::load(&m.weights, &m.lm).expect("lm");
    let h = m.lm.hidden_size;
    let embeds = Tensor::<2>::random([PROMPT, h], dsocr::common::burn::tensor::Distribution::Normal(0.0, 0.02), &m.device).cast(lm.dtype());
    let mut group = c.benchmark_group(format!("prefill/{}", m.label));
    group.sample_size(10);
    group.throughput(Throughput::Elements(PROMPT as u64));
    group.bench_function("a4_gundam_913_tokens", |b| {
        b.iter(|| {
            let (mut pool, blocks) = lm.new_single_pool(PROMPT + 1);
            let logits = lm.prefill(embeds.clone(), &blocks, 0, &mut pool).expect("prefill");
            common::sync(&m.device);
            logits
        })
    });
    group.finish();
}

criterion_group!(benches, bench_prefill);
criterion_main!(benches);
