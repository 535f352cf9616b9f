//! Language-model parity with the official code on every recorded case of DeepSeek-OCR and
//! DeepSeek-OCR 2 (the same decoder; CPU, f32): decoder input
//! embeddings and last-position prefill logits (greedy tokens from the recorded rows, with the
//! official repetition rule, are checked in `dsocr-engine`'s tests); a
//! prompt prefilled in chunks equal to one prefilled whole; and a decode step of sequences at
//! their own positions in pool rows out of order equal to each sequence's own step.

use burn::prelude::*;
use dsocr_core::DeviceSpec;
use dsocr_lm::{DeepseekLm, KvPool, StepSlots};
use dsocr_testdata::{parity, parity_all};

mod common;

use common::{Prompt, argmax, assert_close, load_lm_on, pool_for, prompt_of, to_vec};

fn load_lm(model_dir: &std::path::Path) -> DeepseekLm {
    load_lm_on(model_dir, &DeviceSpec::Cpu.device().unwrap())
}

#[test]
fn decoder_matches_official_code_on_every_case() {
    for fixtures in parity_all("decoder_matches_official_code_on_every_case") {
        let lm = load_lm(&fixtures.model_dir());
        for case in fixtures.cases() {
            let prompt = prompt_of(&lm, &case);
            assert_close(&case.name, "inputs_embeds", to_vec(prompt.embeds.clone()), &case.f32("inputs_embeds").data);

            let (mut pool, blocks) = pool_for(&lm, prompt.ids.len() + 64);
            let logits = lm.prefill(prompt.embeds.clone(), &blocks, 0, &mut pool).unwrap();
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
    let n = KvPool::blocks_for(t + 8);
    let mut pool = lm.new_pool(2 * n);
    // The whole prompt in the even blocks, the chunked one in the odd blocks (in reverse order):
    // neither sequence's blocks are contiguous.
    let even: Vec<usize> = (0..n).map(|i| 2 * i).collect();
    let odd: Vec<usize> = (0..n).rev().map(|i| 2 * i + 1).collect();
    let whole = to_vec(lm.prefill(prompt.embeds.clone(), &even, 0, &mut pool).unwrap());
    let (a, b) = (t / 3, t / 3 + 100);
    lm.prefill(prompt.embeds.clone().narrow(0, 0, a), &odd, 0, &mut pool).unwrap();
    lm.prefill(prompt.embeds.clone().narrow(0, a, b - a), &odd, a, &mut pool).unwrap();
    let chunked = to_vec(lm.prefill(prompt.embeds.clone().narrow(0, b, t - b), &odd, b, &mut pool).unwrap());
    assert_close(&case.name, "chunked prefill logits", chunked, &whole);
    let short = &odd[..KvPool::blocks_for(t) - 1];
    assert!(lm.prefill(prompt.embeds.clone(), short, 0, &mut pool).is_err(), "a prefill past the blocks' slots is an error, not a panic");
    assert!(lm.prefill(prompt.embeds.clone(), &[2 * n; 40], 0, &mut pool).is_err(), "a block outside the pool is an error");
}

/// One decode step of three sequences of different lengths, their blocks interleaved in the pool
/// (and some unused), equals each sequence's own step: no padding, each at its own position.
#[test]
fn a_decode_step_runs_each_sequence_at_its_own_position() {
    let Some(fixtures) = parity("a_decode_step_runs_each_sequence_at_its_own_position") else { return };
    let lm = load_lm(&fixtures.model_dir());
    let prompts: Vec<Prompt> = fixtures.cases().iter().take(3).map(|c| prompt_of(&lm, c)).collect();
    let lens: Vec<usize> = prompts.iter().map(|p| p.ids.len()).collect();
    assert!(lens.iter().any(|&l| l != lens[0]), "need prompts of different lengths: {lens:?}");
    let width = KvPool::blocks_for(lens.iter().max().unwrap() + 4);
    // Sequence i owns blocks 3k + (2 - i): interleaved, and in the order opposite to the batch's.
    let tables: Vec<Vec<usize>> = (0..3).map(|i| (0..width).map(|k| 3 * k + 2 - i).collect()).collect();
    let mut pool = lm.new_pool(3 * width + 2);
    let mut first = Vec::new();
    for (p, table) in prompts.iter().zip(&tables) {
        first.push(argmax(lm.prefill(p.embeds.clone(), table, 0, &mut pool).unwrap())[0]);
    }
    let slots = StepSlots::new(&tables, &lens, &lm.device());
    let tokens = Tensor::<1, Int>::from_data(TensorData::new(first.iter().map(|&t| i64::from(t)).collect::<Vec<_>>(), [3]), &lm.device());
    let batched = lm.decode_step(tokens, &slots, &mut pool);
    for (i, p) in prompts.iter().enumerate() {
        let (mut alone, blocks) = pool_for(&lm, lens[i] + 4);
        lm.prefill(p.embeds.clone(), &blocks, 0, &mut alone).unwrap();
        let slots = StepSlots::new(&[blocks], &[lens[i]], &lm.device());
        let token = Tensor::<1, Int>::from_data(TensorData::new(vec![i64::from(first[i])], [1]), &lm.device());
        let one = to_vec(lm.decode_step(token, &slots, &mut alone));
        assert_close(
            &format!("sequence {i} (prompt {} tokens, blocks {:?})", lens[i], tables[i]),
            "decode logits",
            to_vec(batched.clone().narrow(0, i, 1)),
            &one,
        );
    }
}

/// The device pool (tensors, written by the RoPE kernel's Burn definition and read by the decode
/// attention's: what a GPU runs with `--no-kernels`, and the definitions the CUDA kernels are
/// checked against) gives the host pool's logits, for interleaved blocks, a chunked prefill and
/// a two-sequence decode step.
#[test]
fn the_device_pool_gives_the_host_pools_logits() {
    let Some(fixtures) = parity("the_device_pool_gives_the_host_pools_logits") else { return };
    let lm = load_lm(&fixtures.model_dir());
    let prompts: Vec<Prompt> = fixtures.cases().iter().take(2).map(|c| prompt_of(&lm, c)).collect();
    let lens: Vec<usize> = prompts.iter().map(|p| p.ids.len()).collect();
    let width = KvPool::blocks_for(lens.iter().max().unwrap() + 2);
    let tables: Vec<Vec<usize>> = (0..2).map(|i| (0..width).map(|k| 2 * k + 1 - i).collect()).collect();
    let c = lm.config();
    let mut device_pool = KvPool::new(c.num_hidden_layers, 2 * width, c.num_attention_heads, c.head_dim(), &lm.device(), lm.dtype());
    let mut host_pool = lm.new_pool(2 * width);
    let run = |pool: &mut KvPool| {
        let mut out = Vec::new();
        for (p, table) in prompts.iter().zip(&tables) {
            // Two chunks, the second attending to the first through the pool.
            let half = p.ids.len() / 2;
            lm.prefill(p.embeds.clone().narrow(0, 0, half), table, 0, pool).unwrap();
            out.push(to_vec(lm.prefill(p.embeds.clone().narrow(0, half, p.ids.len() - half), table, half, pool).unwrap()));
        }
        let slots = StepSlots::new(&tables, &lens, &lm.device());
        let tokens = Tensor::<1, Int>::from_data(TensorData::new(vec![7i64, 11], [2]), &lm.device());
        out.push(to_vec(lm.decode_step(tokens, &slots, pool)));
        out
    };
    let (device_logits, host_logits) = (run(&mut device_pool), run(&mut host_pool));
    for (i, (d, h)) in device_logits.iter().zip(&host_logits).enumerate() {
        assert_close("device pool", &format!("logits {i}"), d.clone(), h);
    }
}
