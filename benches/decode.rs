//! Decode steps (tokens/s) after the 913-token A4 Gundam prompt, at batch 1 and 4, through
//! `generate` as an OCR request runs them: embedding, 12 layers with MoE, logits, the greedy
//! pick read back to the host, and on a GPU the step captured as a CUDA graph and replayed
//! (the capture counts: it is part of every request). Only the decode steps are timed.
//! Parity-size model by default; `DSOCR_BENCH_RELEASE=1` for release sizes.

mod common;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dsocr::common::burn::prelude::*;
use dsocr::lm::{DeepseekLm, GenerationConfig, Prompt, RepetitionGuard, generate};

const PROMPT: usize = 913;
const STEPS: usize = 64;

fn bench_decode(c: &mut Criterion) {
    let Some(m) = common::bench_model("decode") else { return };
    let lm = DeepseekLm::load(&m.weights, &m.lm).expect("lm");
    let h = m.lm.hidden_size;
    let mut group = c.benchmark_group(format!("decode/{}", m.label));
    group.sample_size(10);
    for batch in [1usize, 4] {
        let prompts: Vec<Prompt> = (0..batch)
            .map(|_| {
                let embeds = Tensor::<2>::random([PROMPT, h], dsocr::common::burn::tensor::Distribution::Normal(0.0, 0.02), &m.device)
                    .cast(lm.dtype());
                Prompt { ids: vec![0; PROMPT], embeds }
            })
            .collect();
        // STEPS decode steps after the prefill's token; no repetition blocking (random weights).
        let config =
            GenerationConfig { max_new_tokens: STEPS + 1, repetition: RepetitionGuard::None, ignore_eos: true, ..Default::default() };
        group.throughput(Throughput::Elements((batch * STEPS) as u64));
        group.bench_function(format!("batch{batch}_{STEPS}_steps"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (_, stats) = generate(&lm, prompts.clone(), &config, |_, _| {}).expect("generation");
                    assert_eq!(stats.decode_steps, STEPS);
                    total += stats.decode;
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
