//! The engine on CubeCL's CPU runtime (`--features cube-cpu`): the GPU's code path in f32 — the
//! paged KV pool as device tensors, block tables and positions on the device, dsocr's kernels —
//! run without a GPU (docs/gpu.md, "Kernels without a GPU"): greedy tokens equal the official
//! code's, and pages batched and preempted for KV blocks get the tokens they get alone.
#![cfg(feature = "cube-cpu")]

use dsocr_core::burn::tensor::Device;
use dsocr_testdata::parity;

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
    check_preempted_pages(&load_on(&fixtures, &cube()), &fixtures);
}
