//! The engine on CubeCL's CPU runtime (`--features cube-cpu`): the GPU's code path in f32 — the
//! paged KV pool as device tensors, block tables and positions on the device, dsocr's kernels —
//! run without a GPU (docs/gpu.md, "Kernels without a GPU"): greedy tokens equal the official
//! code's, and pages batched and preempted for KV blocks get the tokens they get alone.
#![cfg(feature = "cube-cpu")]

use dsocr_core::burn::tensor::Device;
use dsocr_engine::{EngineOptions, GenerationConfig};
use dsocr_preprocess::RgbImage;
use dsocr_testdata::{Case, parity};

mod common;

use common::*;

fn cube() -> Device {
    let device = Device::cpu();
    assert!(dsocr_kernels::runs_cube_kernels(&device), "the CubeCL CPU device must take the GPU's code path");
    device
}

/// The recorded safe steps of each case's greedy tokens, end to end (preprocessing, encoder,
/// decoder) on the CubeCL CPU device.
#[test]
fn greedy_tokens_on_the_cubecl_cpu_runtime_match_the_official_code() {
    let Some(fixtures) = parity("greedy_tokens_on_the_cubecl_cpu_runtime_match_the_official_code") else { return };
    check_greedy_tokens(&load_on(&fixtures, &cube()), &fixtures);
}

/// Six short pages in a pool of 22 blocks (as the CPU test `pages_preempted_for_kv_blocks_match_single_pages`):
/// they start together, outgrow the pool and preempt each other; each page's tokens equal its
/// tokens alone, all on the CubeCL CPU device.
#[test]
fn pages_preempted_on_the_cubecl_cpu_runtime_match_single_pages() {
    let Some(fixtures) = parity("pages_preempted_on_the_cubecl_cpu_runtime_match_single_pages") else { return };
    let model = load_on(&fixtures, &cube());
    let cases = fixtures.cases();
    let budgets = [300, 200, 250, 150, 280, 220];
    let generation = |b| GenerationConfig { ignore_eos: true, ..greedy(b) };
    let prompt_len = |case: &Case| {
        let (image, options) = page_of(case, greedy(1));
        dsocr_engine::prepare_page(&image, &options, model.tokenizer.as_ref()).unwrap().prompt.len()
    };
    let short = cases.iter().min_by_key(|c| prompt_len(c)).unwrap();
    let pages: Vec<(RgbImage, dsocr_engine::OcrOptions)> = budgets.iter().map(|&b| page_of(short, generation(b))).collect();
    let options = EngineOptions { max_seqs: Some(6), kv_blocks: Some(22), seq_capacity: Some(1400), ..Default::default() };
    let (together, _, streamed, stats) = run_with(&model, &pages, options);
    assert!(stats.preemptions >= 1 && stats.peak_in_flight == 6, "all six start, then the pool runs out of blocks: {stats:?}");
    for (i, page) in pages.iter().enumerate() {
        let (alone, _, _) = run(&model, std::slice::from_ref(page), 1);
        let (t, a) = (together[i].as_ref().unwrap(), alone[0].as_ref().unwrap());
        assert_eq!(t.tokens.len(), budgets[i], "page {i} ran to its budget");
        assert_eq!(t.tokens, a.tokens, "page {i} (budget {}, prompt {} tokens)", budgets[i], t.prompt_tokens);
        assert_eq!(streamed[i], t.raw, "page {i}: streamed text is the result's text");
    }
}
