//! Language-model parity with the official code on every recorded case of DeepSeek-OCR and
//! DeepSeek-OCR 2 (the same decoder; CPU, f32): decoder input
//! embeddings and last-position prefill logits (greedy tokens from the recorded rows, with the
//! official repetition rule, are checked in `dsocr-engine`'s tests); a
//! prompt prefilled in chunks equal to one prefilled whole; and a decode step of sequences at
//! their own positions in pool rows out of order equal to each sequence's own step.

use burn::prelude::*;
use burn::tensor::DType;
use dsocr_core::{Checkpoint, DeviceSpec, FloatType, Weights};
use dsocr_lm::{DeepseekLm, LmConfig, StepSlots};
use dsocr_testdata::{Case, parity, parity_all, tolerance_check};

fn load_lm(model_dir: &std::path::Path) -> DeepseekLm {
    let device = DeviceSpec::Cpu.device().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(model_dir.join("config.json")).unwrap()).unwrap();
    let config = LmConfig::from_json(&json, "config.json").unwrap();
    let weights = Weights::new(Checkpoint::open_dir(model_dir).unwrap(), &device, FloatType::F32).unwrap();
    let lm = DeepseekLm::load(&weights, &config).unwrap();
    weights.check_all_used(&["model.layers.", "model.embed_tokens", "model.norm", "lm_head"]).unwrap();
    lm
}

/// A prompt: its ids and the decoder input `[T, H]`.
#[derive(Clone)]
struct Prompt {
    ids: Vec<u32>,
    embeds: Tensor<2>,
}

/// The prompt of a case with the recorded image rows placed (so only the LM is measured).
fn prompt_of(lm: &DeepseekLm, case: &Case) -> Prompt {
    let ids: Vec<u32> = case.i64("input_ids").data.iter().map(|&v| v as u32).collect();
    let mask: Vec<bool> = case.u8("images_seq_mask").data.iter().map(|&v| v != 0).collect();
    let rows = case.f32("vision_embeds");
    let rows = Tensor::<2>::from_data(TensorData::new(rows.data, [rows.shape[0], rows.shape[1]]), (&lm.device(), DType::F32));
    let embeds = lm.embed_prompt(&ids, &mask, Some(rows)).unwrap();
    Prompt { ids, embeds }
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.cast(DType::F32).try_into_vec_as::<f32>().unwrap()
}

fn assert_close(case: &str, what: &str, got: Vec<f32>, expected: &[f32]) {
    let (err, allowed) = tolerance_check(&got, expected);
    eprintln!("{case}: {what} max abs err {err:.3e} (allowed {allowed:.3e})");
    assert!(err <= allowed, "{case}: {what} max abs error {err:e} > {allowed:e}");
}

fn argmax(logits: Tensor<2>) -> Vec<u32> {
    logits.argmax(1).into_data().convert::<i64>().try_to_vec::<i64>().unwrap().into_iter().map(|v| v as u32).collect()
}

#[test]
fn decoder_matches_official_code_on_every_case() {
    for fixtures in parity_all("decoder_matches_official_code_on_every_case") {
        let lm = load_lm(&fixtures.model_dir());
        for case in fixtures.cases() {
            let prompt = prompt_of(&lm, &case);
            assert_close(&case.name, "inputs_embeds", to_vec(prompt.embeds.clone()), &case.f32("inputs_embeds").data);

            let mut pool = lm.new_pool(1, prompt.ids.len() + 64);
            let logits = lm.prefill(prompt.embeds.clone(), 0, 0, &mut pool).unwrap();
            assert_close(&case.name, "prefill_logits_last", to_vec(logits), &case.f32("prefill_logits_last").data);
        }
    }
}

/// A long prompt prefilled in chunks (each chunk attending to the earlier ones in the pool)
/// gives the logits of the whole prompt prefilled at once, and the same next tokens.
#[test]
fn chunked_prefill_equals_whole_prefill() {
    let Some(fixtures) = parity("chunked_prefill_equals_whole_prefill") else { return };
    let lm = load_lm(&fixtures.model_dir());
    let case = fixtures.cases().into_iter().max_by_key(|c| c.i64("input_ids").data.len()).unwrap();
    let prompt = prompt_of(&lm, &case);
    let t = prompt.ids.len();
    let mut pool = lm.new_pool(2, t + 8);
    let whole = to_vec(lm.prefill(prompt.embeds.clone(), 0, 0, &mut pool).unwrap());
    let (a, b) = (t / 3, t / 3 + 100);
    lm.prefill(prompt.embeds.clone().narrow(0, 0, a), 1, 0, &mut pool).unwrap();
    lm.prefill(prompt.embeds.clone().narrow(0, a, b - a), 1, a, &mut pool).unwrap();
    let chunked = to_vec(lm.prefill(prompt.embeds.clone().narrow(0, b, t - b), 1, b, &mut pool).unwrap());
    assert_close(&case.name, "chunked prefill logits", chunked, &whole);
    assert!(lm.prefill(prompt.embeds.clone(), 1, 9, &mut pool).is_err(), "a prefill past the row's slots is an error, not a panic");
}

/// One decode step of three sequences of different lengths, in pool rows out of order (row 1
/// unused), equals each sequence's own step: no padding, each at its own position.
#[test]
fn a_decode_step_runs_each_sequence_at_its_own_position() {
    let Some(fixtures) = parity("a_decode_step_runs_each_sequence_at_its_own_position") else { return };
    let lm = load_lm(&fixtures.model_dir());
    let prompts: Vec<Prompt> = fixtures.cases().iter().take(3).map(|c| prompt_of(&lm, c)).collect();
    let lens: Vec<usize> = prompts.iter().map(|p| p.ids.len()).collect();
    assert!(lens.iter().any(|&l| l != lens[0]), "need prompts of different lengths: {lens:?}");
    let capacity = lens.iter().max().unwrap() + 4;
    let rows = [3, 0, 2];
    let mut pool = lm.new_pool(4, capacity);
    let mut first = Vec::new();
    for (p, &row) in prompts.iter().zip(&rows) {
        first.push(argmax(lm.prefill(p.embeds.clone(), row, 0, &mut pool).unwrap())[0]);
    }
    let slots = StepSlots::new(&rows, &lens, &lm.device());
    let tokens = Tensor::<1, Int>::from_data(TensorData::new(first.iter().map(|&t| i64::from(t)).collect::<Vec<_>>(), [3]), &lm.device());
    let batched = lm.decode_step(tokens, &slots, &mut pool);
    for (i, p) in prompts.iter().enumerate() {
        let mut alone = lm.new_pool(1, capacity);
        lm.prefill(p.embeds.clone(), 0, 0, &mut alone).unwrap();
        let slots = StepSlots::new(&[0], &[lens[i]], &lm.device());
        let token = Tensor::<1, Int>::from_data(TensorData::new(vec![i64::from(first[i])], [1]), &lm.device());
        let one = to_vec(lm.decode_step(token, &slots, &mut alone));
        assert_close(
            &format!("sequence {i} (prompt {} tokens, row {})", lens[i], rows[i]),
            "decode logits",
            to_vec(batched.clone().narrow(0, i, 1)),
            &one,
        );
    }
}
