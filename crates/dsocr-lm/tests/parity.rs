//! Language-model parity with the official code on every recorded case (CPU, f32): decoder input
//! embeddings, last-position prefill logits, and greedy tokens for the recorded `safe_steps`; and
//! batched generation equal to single-sequence generation.

use burn::prelude::*;
use burn::tensor::DType;
use dsocr_core::{Checkpoint, DeviceSpec, FloatType, Weights};
use dsocr_lm::{DeepseekLm, GenerationConfig, LmConfig, Prompt, RepetitionGuard, generate};
use dsocr_testdata::{Case, parity, tolerance_check};

fn load_lm(model_dir: &std::path::Path) -> DeepseekLm {
    let device = DeviceSpec::Cpu.device().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(model_dir.join("config.json")).unwrap()).unwrap();
    let config = LmConfig::from_json(&json, "config.json").unwrap();
    let weights = Weights::new(Checkpoint::open_dir(model_dir).unwrap(), &device, FloatType::F32).unwrap();
    let lm = DeepseekLm::load(&weights, &config).unwrap();
    weights.check_all_used(&["model.layers.", "model.embed_tokens", "model.norm", "lm_head"]).unwrap();
    lm
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

#[test]
fn decoder_matches_official_code_on_every_case() {
    let Some(fixtures) = parity("decoder_matches_official_code_on_every_case") else { return };
    let lm = load_lm(&fixtures.model_dir());
    for case in fixtures.cases() {
        let prompt = prompt_of(&lm, &case);
        assert_close(&case.name, "inputs_embeds", to_vec(prompt.embeds.clone()), &case.f32("inputs_embeds").data);

        let mut cache = lm.new_cache(1, prompt.ids.len() + 1);
        let logits = lm.prefill(vec![prompt.embeds.clone()], &mut cache);
        assert_close(&case.name, "prefill_logits_last", to_vec(logits), &case.f32("prefill_logits_last").data);

        let n = case.json["no_repeat_ngram_size"].as_u64().unwrap() as usize;
        let max_new = case.json["max_new_tokens"].as_u64().unwrap() as usize;
        let safe = case.json["safe_steps"].as_u64().unwrap() as usize;
        let config = GenerationConfig { max_new_tokens: max_new, repetition: RepetitionGuard::NoRepeatNgram { n }, ..Default::default() };
        let mut streamed = Vec::new();
        let (out, _) = generate(&lm, vec![prompt], &config, |_, t| streamed.push(t)).unwrap();
        let expected: Vec<u32> = case.i64("generated_ids").data.iter().map(|&v| v as u32).collect();
        let mut ours = out[0].tokens.clone();
        if out[0].stopped_on_eos {
            ours.push(1);
        }
        let k = safe.min(expected.len());
        assert!(ours.len() >= k, "{}: generated {} tokens, need {k}", case.name, ours.len());
        assert_eq!(&ours[..k], &expected[..k], "{}: greedy tokens (first {k} = safe_steps)", case.name);
        assert_eq!(streamed, out[0].tokens, "{}: streamed tokens", case.name);
        eprintln!("{}: {k} of {} tokens compared, all equal", case.name, expected.len());
    }
}

#[test]
fn batched_generation_equals_single_sequence_generation() {
    let Some(fixtures) = parity("batched_generation_equals_single_sequence_generation") else { return };
    let lm = load_lm(&fixtures.model_dir());
    let cases = fixtures.cases();
    // Prompts of different lengths (e.g. 83, 283 and 913 tokens).
    let prompts: Vec<Prompt> = cases.iter().map(|c| prompt_of(&lm, c)).collect();
    let lens: Vec<usize> = prompts.iter().map(|p| p.ids.len()).collect();
    assert!(lens.iter().any(|&l| l != lens[0]), "need prompts of different lengths: {lens:?}");
    let config = GenerationConfig { max_new_tokens: 12, repetition: RepetitionGuard::NoRepeatNgram { n: 20 }, ..Default::default() };

    let single: Vec<Vec<u32>> =
        prompts.iter().map(|p| generate(&lm, vec![p.clone()], &config, |_, _| {}).unwrap().0[0].tokens.clone()).collect();
    let (batched, _) = generate(&lm, prompts.clone(), &config, |_, _| {}).unwrap();
    for (i, b) in batched.iter().enumerate() {
        assert_eq!(b.tokens, single[i], "sequence {i} (prompt length {})", lens[i]);
    }

    // The batched prefill logits match the single ones too.
    let mut cache = lm.new_cache(prompts.len(), lens.iter().max().unwrap() + 1);
    let batched_logits = lm.prefill(prompts.iter().map(|p| p.embeds.clone()).collect(), &mut cache);
    for (i, p) in prompts.iter().enumerate() {
        let mut c = lm.new_cache(1, p.ids.len() + 1);
        let one = to_vec(lm.prefill(vec![p.embeds.clone()], &mut c));
        let row = to_vec(batched_logits.clone().narrow(0, i, 1));
        assert_close(&format!("batch row {i}"), "prefill logits", row, &one);
    }
}

/// A captured decode step gives the same tokens as steps issued one by one: greedy and seeded
/// sampling (whose choices the host writes back into the step's input), on a padded batch. On
/// the CPU a "capture" re-runs the step, so this checks the loop's bookkeeping (the state the
/// capture's warm-up runs advance is restored); the GPU run of `dsocr parity` checks the replay.
#[test]
fn captured_decode_steps_equal_uncaptured_ones() {
    let Some(fixtures) = parity("captured_decode_steps_equal_uncaptured_ones") else { return };
    let mut lm = load_lm(&fixtures.model_dir());
    let prompts: Vec<Prompt> = fixtures.cases().iter().take(2).map(|c| prompt_of(&lm, c)).collect();
    let sampled = dsocr_lm::Sampling::Sample { temperature: 0.8, top_p: 0.9, top_k: 20, seed: 3 };
    for sampling in [dsocr_lm::Sampling::Greedy, sampled] {
        let config = GenerationConfig { max_new_tokens: 24, sampling, ignore_eos: true, ..Default::default() };
        let mut runs = Vec::new();
        for graph in [false, true] {
            lm.set_decode_graph(graph);
            let (out, stats) = generate(&lm, prompts.clone(), &config, |_, _| {}).unwrap();
            assert_eq!(stats.decode_steps, 23, "all steps run");
            runs.push(out.into_iter().map(|g| g.tokens).collect::<Vec<_>>());
        }
        assert_eq!(runs[0][0].len(), 24);
        assert_eq!(runs[0], runs[1], "{:?}: captured vs uncaptured", config.sampling);
    }
}
