//! The decoder on CubeCL's CPU runtime (`--features cube-cpu`): the GPU's code path in f32 — the
//! KV pool as device tensors in blocks, RoPE writing into them, decode attention reading each
//! sequence's block table and newest slot, the router, the per-pair and grouped expert kernels,
//! the fused residual + RMSNorm — run without a GPU (docs/gpu.md, "Kernels without a GPU").
//! Checked against the official code's recorded logits and against the same steps on
//! burn-ndarray (host KV, the CPU's own path).
#![cfg(feature = "cube-cpu")]

use burn::prelude::*;
use dsocr_core::DeviceSpec;
use dsocr_lm::{DeepseekLm, KvPool, StepSlots};
use dsocr_testdata::parity;

mod common;

use common::{Prompt, argmax, assert_close, load_lm_on, prompt_of, to_vec};

/// Three prompts prefilled into interleaved blocks of one pool, then `steps` greedy decode steps
/// of all three at once: the prefill logits and every step's logits.
fn run(lm: &DeepseekLm, prompts: &[Prompt], steps: usize) -> Vec<Vec<f32>> {
    let lens: Vec<usize> = prompts.iter().map(|p| p.ids.len()).collect();
    let n = prompts.len();
    let width = KvPool::blocks_for(lens.iter().max().unwrap() + steps + 1);
    // Sequence i owns blocks n·k + (n − 1 − i): interleaved, in the order opposite to the batch's.
    let tables: Vec<Vec<usize>> = (0..n).map(|i| (0..width).map(|k| n * k + n - 1 - i).collect()).collect();
    let mut pool = lm.new_pool(n * width + 1);
    let mut out = Vec::new();
    let mut next = Vec::new();
    for (p, table) in prompts.iter().zip(&tables) {
        let logits = lm.prefill(p.embeds.clone(), table, 0, &mut pool).unwrap();
        next.push(argmax(logits.clone())[0]);
        out.push(to_vec(logits));
    }
    for step in 0..steps {
        let filled: Vec<usize> = lens.iter().map(|l| l + step).collect();
        let slots = StepSlots::new(&tables, &filled, &lm.device());
        let tokens =
            Tensor::<1, Int>::from_data(TensorData::new(next.iter().map(|&t| i64::from(t)).collect::<Vec<_>>(), [n]), &lm.device());
        let logits = lm.decode_step(tokens, &slots, &mut pool);
        next = argmax(logits.clone());
        out.push(to_vec(logits));
    }
    out
}

/// The recorded prefill logits of the first cases, and eight batched decode steps equal to the
/// same steps on burn-ndarray (host KV, the CPU's reference path).
#[test]
fn the_decoder_on_the_cubecl_cpu_runtime_matches_the_recordings_and_the_cpu_path() {
    let Some(fixtures) = parity("the_decoder_on_the_cubecl_cpu_runtime_matches_the_recordings_and_the_cpu_path") else { return };
    let cube = burn::tensor::Device::cpu();
    assert!(dsocr_kernels::runs_cube_kernels(&cube), "the CubeCL CPU device must take the GPU's code path");
    let on_cube = load_lm_on(&fixtures.model_dir(), &cube);
    let on_ndarray = load_lm_on(&fixtures.model_dir(), &DeviceSpec::Cpu.device().unwrap());
    let cases: Vec<_> = fixtures.cases().into_iter().take(3).collect();
    for case in &cases {
        let prompt = prompt_of(&on_cube, case);
        let (blocks, mut pool) =
            ((0..KvPool::blocks_for(prompt.ids.len())).collect::<Vec<_>>(), on_cube.new_pool(KvPool::blocks_for(prompt.ids.len())));
        let logits = on_cube.prefill(prompt.embeds, &blocks, 0, &mut pool).unwrap();
        assert_close(&case.name, "prefill_logits_last (CubeCL CPU)", to_vec(logits), &case.f32("prefill_logits_last").data);
    }
    let steps = 8;
    let cube_logits = run(&on_cube, &cases.iter().map(|c| prompt_of(&on_cube, c)).collect::<Vec<_>>(), steps);
    let host_logits = run(&on_ndarray, &cases.iter().map(|c| prompt_of(&on_ndarray, c)).collect::<Vec<_>>(), steps);
    for (i, (c, h)) in cube_logits.iter().zip(&host_logits).enumerate() {
        let what = if i < cases.len() { format!("prefill {i}") } else { format!("decode step {} (3 sequences)", i - cases.len()) };
        assert_close("CubeCL CPU vs burn-ndarray", &what, c.clone(), h);
    }
}
