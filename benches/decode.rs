//! Decode steps (tokens/s) after the 913-token A4 Gundam prompt, at batch 1 and 4: embedding,
//! 12 layers with MoE, logits and a greedy pick read back to the host, as in generation.
//! Parity-size model by default; `DSOCR_BENCH_RELEASE=1` for release sizes.

mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dsocr::common::burn::prelude::*;
use dsocr::lm::DeepseekLm;

const PROMPT: usize = 913;
const STEPS: usize = 64;

fn bench_decode(c: &mut Criterion) {
    let Some(m) = common::bench_model("decode") else { return };
    let lm = DeepseekLm::load(&m.weights, &m.lm).expect("lm");
    let h = m.lm.hidden_size;
    let mut group = c.benchmark_group(format!("decode/{}", m.label));
    group.sample_size(10);
    for batch in [1usize, 4] {
        let prompts: Vec<Tensor<2>> = (0..batch)
            .map(|_| {
                Tensor::<2>::random([PROMPT, h], dsocr::common::burn::tensor::Distribution::Normal(0.0, 0.02), &m.device).cast(lm.dtype())
            })
            .collect();
        group.throughput(Throughput::Elements((batch * STEPS) as u64));
        group.bench_function(format!("batch{batch}_{STEPS}_steps"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut cache = lm.new_cache(batch, PROMPT + STEPS + 1);
                    let mut logits = lm.prefill(prompts.clone(), &mut cache);
                    common::sync(&m.device);
                    let t = Instant::now();
                    for _ in 0..STEPS {
                        let next = logits.argmax(1).reshape([batch]);
                        logits = lm.decode_step(next, &mut cache);
                        let _ids = logits.clone().argmax(1).into_data();
                    }
                    total += t.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
