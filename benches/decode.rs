//! Decode steps (tokens/s) after the A4 Gundam prompt, at batch 1 and 4, through the engine as an
//! OCR request runs them: embedding, 12 layers with MoE, logits, the greedy pick read back to the
//! host, and on a GPU the step captured as a CUDA graph and replayed (the capture counts: it is
//! part of every run). Only the decode steps are timed (the engine's own decode time).
//! Parity-size model by default; `DSOCR_BENCH_RELEASE=1` for release sizes.

mod common;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dsocr::bench::run_workload;
use dsocr::{DeepseekOcr, EngineOptions};

const STEPS: usize = 64;

fn bench_decode(c: &mut Criterion) {
    let Some(m) = common::bench_model("decode") else { return };
    let ocr = DeepseekOcr::from_weights(&m.weights, &m.config, "config.json", m.tokenizer.clone()).expect("model");
    let page = dsocr::bench::a4_page();
    let mut group = c.benchmark_group(format!("decode/{}", m.label));
    group.sample_size(10);
    for batch in [1usize, 4] {
        // STEPS decode steps after the prefill's token; no repetition blocking (random weights).
        let budgets = vec![STEPS + 1; batch];
        let options =
            EngineOptions { max_seqs: Some(batch), ..EngineOptions::for_pages(&dsocr::preprocess::Mode::Gundam.spec(), STEPS + 1) };
        group.throughput(Throughput::Elements((batch * STEPS) as u64));
        group.bench_function(format!("batch{batch}_{STEPS}_steps"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let report = run_workload(&ocr, std::slice::from_ref(&page), &budgets, &options).expect("workload");
                    assert_eq!(report.tokens, batch * (STEPS + 1));
                    total += Duration::from_secs_f64(report.decode_s);
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
