//! Helpers shared by the decoder's parity tests (on burn-ndarray, and on CubeCL's CPU runtime
//! with the `cube-cpu` feature).
#![allow(dead_code)] // each test binary uses its own subset

use burn::prelude::*;
use burn::tensor::DType;
use dsocr_core::{Checkpoint, FloatType, Weights};
use dsocr_lm::{DeepseekLm, KvPool, LmConfig};
use dsocr_testdata::{Case, tolerance_check};

/// The parity model's decoder on `device`, in f32.
pub fn load_lm_on(model_dir: &std::path::Path, device: &Device) -> DeepseekLm {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(model_dir.join("config.json")).unwrap()).unwrap();
    let config = LmConfig::from_json(&json, "config.json").unwrap();
    let weights = Weights::new(Checkpoint::open_dir(model_dir).unwrap(), device, FloatType::F32).unwrap();
    let lm = DeepseekLm::load(&weights, &config).unwrap();
    weights.check_all_used(&["model.layers.", "model.embed_tokens", "model.norm", "lm_head"]).unwrap();
    lm
}

/// A prompt: its ids and the decoder input `[T, H]`.
#[derive(Clone)]
pub struct Prompt {
    pub ids: Vec<u32>,
    pub embeds: Tensor<2>,
}

/// The prompt of a case with the recorded image rows placed (so only the LM is measured).
pub fn prompt_of(lm: &DeepseekLm, case: &Case) -> Prompt {
    let ids: Vec<u32> = case.i64("input_ids").data.iter().map(|&v| v as u32).collect();
    let mask: Vec<bool> = case.u8("images_seq_mask").data.iter().map(|&v| v != 0).collect();
    let rows = case.f32("vision_embeds");
    let rows = Tensor::<2>::from_data(TensorData::new(rows.data, [rows.shape[0], rows.shape[1]]), (&lm.device(), DType::F32));
    let embeds = lm.embed_prompt(&ids, &mask, Some(rows)).unwrap();
    Prompt { ids, embeds }
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.cast(DType::F32).try_into_vec_as::<f32>().unwrap()
}

pub fn assert_close(case: &str, what: &str, got: Vec<f32>, expected: &[f32]) {
    let (err, allowed) = tolerance_check(&got, expected);
    eprintln!("{case}: {what} max abs err {err:.3e} (allowed {allowed:.3e})");
    assert!(err <= allowed, "{case}: {what} max abs error {err:e} > {allowed:e}");
}

pub fn argmax(logits: Tensor<2>) -> Vec<u32> {
    logits.argmax(1).into_data().convert::<i64>().try_to_vec::<i64>().unwrap().into_iter().map(|v| v as u32).collect()
}

/// A pool for one sequence of `slots` slots, and its blocks.
pub fn pool_for(lm: &DeepseekLm, slots: usize) -> (KvPool, Vec<usize>) {
    let n = KvPool::blocks_for(slots);
    (lm.new_pool(n), (0..n).collect())
}
