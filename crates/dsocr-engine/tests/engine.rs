//! The engine on the parity model (CPU, f32): continuous batching gives every page the tokens it
//! gets alone; pages of different lengths and budgets come and go; a failing page among good
//! ones; seeded sampling per page; streamed text; greedy tokens equal to the official code's.

use dsocr_core::DeviceSpec;
use dsocr_engine::{
    Engine, EngineError, EngineOptions, Event, GenerationConfig, InOrder, OcrOptions, RepetitionGuard, Request, Sampling, encode_page,
    encode_pages, prepare_page,
};
use dsocr_preprocess::{Architecture, RgbImage};
use dsocr_testdata::{Parity, parity, parity_all, parity_ocr2};

mod common;

use common::*;

fn load(fixtures: &Parity) -> Model {
    load_on(fixtures, &DeviceSpec::Cpu.device().unwrap())
}

/// Six pages of four sizes (prompts of 81 to 930-odd tokens) and budgets from 3 to 14 tokens,
/// at most three in flight: pages retire at different steps and waiting ones take their rows.
/// Each page's tokens equal its tokens run alone.
#[test]
fn batched_pages_equal_single_pages() {
    let Some(fixtures) = parity("batched_pages_equal_single_pages") else { return };
    let model = load(&fixtures);
    let cases = fixtures.cases();
    let budgets = [14, 3, 9, 6, 12, 5];
    let pages: Vec<(RgbImage, OcrOptions)> =
        budgets.iter().enumerate().map(|(i, &b)| page_of(&cases[i % cases.len()], greedy(b))).collect();
    let (together, finished, streamed) = run(&model, &pages, 3);
    assert_ne!(finished, (0..6).collect::<Vec<u64>>(), "short pages finish before long ones admitted earlier");
    for (i, page) in pages.iter().enumerate() {
        let (alone, _, _) = run(&model, std::slice::from_ref(page), 1);
        let (t, a) = (together[i].as_ref().unwrap(), alone[0].as_ref().unwrap());
        assert_eq!(t.tokens, a.tokens, "page {i} (budget {}, prompt {} tokens)", budgets[i], t.prompt_tokens);
        assert!(t.tokens.len() <= budgets[i]);
        assert_eq!(t.stopped_on_eos, a.stopped_on_eos);
        assert_eq!(streamed[i], t.raw, "page {i}: streamed text is the result's text");
    }
}

/// A KV pool of 22 blocks (1,408 slots) for pages of up to 1,400: six short pages start with their
/// prompts' two blocks each and take one more every 64 tokens; when none is free, the page
/// admitted last is preempted and later prefilled again with its prompt and the tokens it had
/// written. With budgets of 150-300 tokens they outgrow the pool and preempt each other; every
/// page still gets its tokens run alone, and its streamed text is its result's.
#[test]
fn pages_preempted_for_kv_blocks_match_single_pages() {
    let Some(fixtures) = parity("pages_preempted_for_kv_blocks_match_single_pages") else { return };
    let model = load(&fixtures);
    check_preempted_pages(&model, &fixtures);
    // A pool that cannot hold one page of the longest length is refused.
    let small = EngineOptions { max_seqs: Some(2), kv_blocks: Some(21), seq_capacity: Some(1400), ..Default::default() };
    let error = Engine::new(&model.encoder, &model.lm, model.tokenizer.as_ref(), &small).err().expect("21 blocks < 22");
    assert!(error.to_string().contains("at least 22"), "{error}");
}

/// Pages encoded on the vision thread, beside decoding (an option), get the tokens that
/// pages encoded on the engine's thread get: seven pages, jobs of two, at most three in flight.
#[test]
fn the_vision_thread_gives_the_same_tokens() {
    let Some(fixtures) = parity("the_vision_thread_gives_the_same_tokens") else { return };
    let model = load(&fixtures);
    let cases = fixtures.cases();
    let budgets = [14, 3, 9, 6, 12, 5, 2];
    let pages: Vec<(RgbImage, OcrOptions)> =
        budgets.iter().enumerate().map(|(i, &b)| page_of(&cases[i % cases.len()], greedy(b))).collect();
    let options = |thread| EngineOptions {
        max_seqs: Some(3),
        seq_capacity: Some(1400),
        vision_lookahead: 2,
        vision_thread: thread,
        ..Default::default()
    };
    let (here, _, _, _) = run_with(&model, &pages, options(false));
    let (beside, _, streamed, _) = run_with(&model, &pages, options(true));
    for (i, (h, b)) in here.iter().zip(&beside).enumerate() {
        let (h, b) = (h.as_ref().unwrap(), b.as_ref().unwrap());
        assert_eq!(b.tokens, h.tokens, "page {i}");
        assert_eq!(streamed[i], b.raw, "page {i}: streamed text is the result's text");
        assert!(b.timings.vision_s > 0.0, "page {i}: its share of a vision job is recorded");
    }
}

/// Pages of every recorded mode (global views of different sides, tiled and not) encoded together,
/// in one view a batch and in batches of many views, give each page the embeddings it gets alone.
#[test]
fn vision_batches_equal_pages_encoded_alone() {
    let Some(fixtures) = parity("vision_batches_equal_pages_encoded_alone") else { return };
    let model = load(&fixtures);
    let cases = fixtures.cases();
    let pages: Vec<_> = cases
        .iter()
        .map(|case| {
            let (image, options) = page_of(case, greedy(1));
            prepare_page(&image, &options, model.tokenizer.as_ref()).unwrap()
        })
        .collect();
    let sides: std::collections::BTreeSet<usize> = pages.iter().map(|p| p.image.global.size).collect();
    assert!(sides.len() > 1 && pages.iter().any(|p| p.image.tiles.is_some()), "the cases mix view sizes and tiling");
    let refs: Vec<_> = pages.iter().collect();
    let alone: Vec<Vec<f32>> =
        pages.iter().map(|p| encode_page(&model.encoder, &model.lm, p).unwrap().into_data().try_to_vec::<f32>().unwrap()).collect();
    for max_bytes in [1, u64::MAX] {
        let together = encode_pages(&model.encoder, &model.lm, &refs, max_bytes);
        assert_eq!(together.len(), pages.len());
        for (i, (alone, t)) in alone.iter().zip(together).enumerate() {
            let t = t.unwrap().into_data().try_to_vec::<f32>().unwrap();
            assert_eq!(t.len(), alone.len(), "page {i}");
            let worst = t.iter().zip(alone).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4, "page {i}, batches of {max_bytes} bytes: largest difference {worst}");
        }
    }
}

/// A page whose preparation failed, and one whose prompt is longer than a row, finish with their
/// errors; the pages around them are unaffected.
#[test]
fn a_failing_page_among_good_ones() {
    let Some(fixtures) = parity("a_failing_page_among_good_ones") else { return };
    let model = load(&fixtures);
    let cases = fixtures.cases();
    let (image, opts) = page_of(&cases[0], greedy(4));
    let options = EngineOptions { max_seqs: Some(2), seq_capacity: Some(200), ..Default::default() };
    let mut engine = Engine::new(&model.encoder, &model.lm, model.tokenizer.as_ref(), &options).unwrap();
    let gundam = cases.iter().find(|c| c.name.contains("gundam")).unwrap();
    let (big, big_opts) = page_of(gundam, greedy(4));
    let requests = vec![
        Request { tag: 0, page: prepare_page(&image, &opts, model.tokenizer.as_ref()), options: opts.clone(), stream: false },
        Request { tag: 1, page: Err(EngineError::Input("broken.png: cannot decode".into())), options: opts.clone(), stream: false },
        Request { tag: 2, page: prepare_page(&big, &big_opts, model.tokenizer.as_ref()), options: big_opts, stream: false },
        Request { tag: 3, page: prepare_page(&image, &opts, model.tokenizer.as_ref()), options: opts, stream: false },
    ];
    let (tx, rx) = std::sync::mpsc::channel();
    for r in requests {
        tx.send(r).unwrap();
    }
    drop(tx);
    let mut order = InOrder::new();
    let mut results = Vec::new();
    let mut started = Vec::new();
    engine
        .run(&rx, &mut |e| match e {
            Event::Started { tag } => started.push(tag),
            Event::Finished { tag, result } => results.extend(order.push(tag, *result)),
            Event::Text { .. } => {}
        })
        .unwrap();
    assert_eq!(results.iter().map(|(t, _)| *t).collect::<Vec<_>>(), vec![0, 1, 2, 3], "in input order");
    started.sort_unstable();
    assert_eq!(started, vec![0, 3], "the failed pages never started");
    assert!(results[0].1.is_ok() && results[3].1.is_ok());
    assert!(results[1].1.as_ref().unwrap_err().to_string().contains("broken.png"));
    let too_long = results[2].1.as_ref().unwrap_err().to_string();
    assert!(too_long.contains("slots per sequence"), "{too_long}");
    assert_eq!(results[0].1.as_ref().unwrap().tokens, results[3].1.as_ref().unwrap().tokens);
}

/// A KV cache larger than the machine's memory is refused up front, naming the flag.
#[test]
#[cfg(target_os = "linux")] // where the host's memory is known (/proc/meminfo)
fn more_pages_in_flight_than_the_host_memory_holds_are_refused_with_the_flag_named() {
    let Some(fixtures) = parity("more_pages_than_host_memory") else { return };
    let model = load(&fixtures);
    for max_seqs in [usize::MAX / 2, 1 << 40] {
        let options = EngineOptions { max_seqs: Some(max_seqs), seq_capacity: Some(1400), ..Default::default() };
        match Engine::new(&model.encoder, &model.lm, model.tokenizer.as_ref(), &options) {
            Err(EngineError::Settings(message)) => {
                assert!(message.contains("--max-seqs") && message.contains("host memory"), "{message}")
            }
            Err(other) => panic!("another error: {other}"),
            Ok(_) => panic!("{max_seqs} pages in flight accepted"),
        }
    }
}

/// Seeded sampling is per page: a page samples the same tokens alone and in a batch with others.
#[test]
fn seeded_sampling_is_per_page() {
    let Some(fixtures) = parity("seeded_sampling_is_per_page") else { return };
    let model = load(&fixtures);
    let cases = fixtures.cases();
    let sampled = |seed| GenerationConfig {
        max_new_tokens: 8,
        sampling: Sampling::Sample { temperature: 0.8, top_p: 0.9, top_k: 20, seed },
        repetition: RepetitionGuard::None,
        ignore_eos: true,
    };
    let pages = vec![page_of(&cases[0], sampled(1)), page_of(&cases[1], greedy(8)), page_of(&cases[0], sampled(2))];
    let (together, _, _) = run(&model, &pages, 3);
    for (i, page) in pages.iter().enumerate() {
        let (alone, _, _) = run(&model, std::slice::from_ref(page), 1);
        assert_eq!(together[i].as_ref().unwrap().tokens, alone[0].as_ref().unwrap().tokens, "page {i}");
    }
    assert_eq!(together[0].as_ref().unwrap().tokens.len(), 8, "EOS ignored");
}

/// The engine's greedy tokens from each case's image equal the official code's for the recorded
/// safe steps (end to end: our preprocessing, encoder and decoder), for both checkpoints.
#[test]
fn greedy_tokens_match_the_official_code() {
    for fixtures in parity_all("greedy_tokens_match_the_official_code") {
        greedy_tokens_of(&fixtures);
    }
}

fn greedy_tokens_of(fixtures: &Parity) {
    check_greedy_tokens(&load(fixtures), fixtures);
}

/// DeepSeek-OCR 2's pages of every recorded geometry batched together (and with their views in one
/// vision batch) give each page the tokens it gets alone; a page prepared for the other
/// checkpoint is refused by name, and the default options become DeepSeek-OCR 2's.
#[test]
fn ocr2_pages_batch_like_single_pages() {
    let Some(fixtures) = parity_ocr2("ocr2_pages_batch_like_single_pages") else { return };
    let model = load(&fixtures);
    let arch = model.encoder.architecture();
    assert_eq!(arch, Architecture::DeepseekOcr2);
    let pages: Vec<_> = fixtures.cases().iter().map(|c| page_for(arch, c, greedy(6))).collect();
    let (together, _, _) = run(&model, &pages, 3);
    for (i, page) in pages.iter().enumerate() {
        let (alone, _, _) = run(&model, std::slice::from_ref(page), 1);
        assert_eq!(together[i].as_ref().unwrap().tokens, alone[0].as_ref().unwrap().tokens, "page {i}");
    }
    // DeepSeek-OCR's default options, prepared as they are, do not fit this checkpoint.
    let (image, _) = &pages[0];
    let v1 = OcrOptions { generation: greedy(2), ..Default::default() };
    let options = EngineOptions { max_seqs: Some(1), seq_capacity: Some(1400), ..Default::default() };
    let mut engine = Engine::new(&model.encoder, &model.lm, model.tokenizer.as_ref(), &options).unwrap();
    let page = prepare_page(image, &v1, model.tokenizer.as_ref());
    let mut refused = None;
    engine.submit(Request { tag: 0, page, options: v1.clone(), stream: false }, &mut |e| {
        if let Event::Finished { result, .. } = e {
            refused = result.err().map(|e| e.to_string());
        }
    });
    let e = refused.expect("the page is refused at once");
    assert!(e.contains("prepared for DeepSeek-OCR but the model is DeepSeek-OCR 2"), "{e}");
    assert!(engine.is_idle());
    let converted = v1.for_architecture(arch).unwrap();
    assert_eq!((converted.mode.image_size, converted.mode.max_tiles), (768, 6));
    let (results, _, _) = run(&model, &[(image.clone(), converted)], 1);
    assert_eq!(results[0].as_ref().unwrap().tokens.len(), 2);
}

/// The decoder alone, from the official code's recorded image rows: prefill into a pool row,
/// then decode steps with the official repetition rule (`RepetitionState`), give the official
/// greedy tokens for the recorded safe steps.
#[test]
fn greedy_tokens_from_the_recorded_rows_match_the_official_code() {
    use dsocr_core::burn::prelude::*;
    let Some(fixtures) = parity("greedy_tokens_from_the_recorded_rows_match_the_official_code") else { return };
    let model = load(&fixtures);
    let lm = &model.lm;
    let eos = lm.config().eos_token_id;
    for case in fixtures.cases() {
        let ids: Vec<u32> = case.i64("input_ids").data.iter().map(|&v| v as u32).collect();
        let mask: Vec<bool> = case.u8("images_seq_mask").data.iter().map(|&v| v != 0).collect();
        let rows = case.f32("vision_embeds");
        let rows = Tensor::<2>::from_data(TensorData::new(rows.data, [rows.shape[0], rows.shape[1]]), &lm.device());
        let embeds = lm.embed_prompt(&ids, &mask, Some(rows)).unwrap();
        let n = case.json["no_repeat_ngram_size"].as_u64().unwrap() as usize;
        let safe = case.json["safe_steps"].as_u64().unwrap() as usize;
        let expected: Vec<u32> = case.i64("generated_ids").data.iter().map(|&v| v as u32).collect();
        let k = safe.min(expected.len());
        let mut guard = dsocr_engine::RepetitionState::new(&RepetitionGuard::NoRepeatNgram { n }, &ids);
        let (mut pool, blocks) = lm.new_single_pool(ids.len() + k + 1);
        let choose = |logits: Tensor<2>, guard: &dsocr_engine::RepetitionState| {
            let mut row = logits.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
            for t in guard.banned() {
                row[t as usize] = f32::NEG_INFINITY;
            }
            (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best }) as u32
        };
        let mut ours = vec![choose(lm.prefill(embeds, &blocks, 0, &mut pool).unwrap(), &guard)];
        while ours.len() < k && *ours.last().unwrap() != eos {
            let last = *ours.last().unwrap();
            guard.push(last);
            let slots = dsocr_lm::StepSlots::new(std::slice::from_ref(&blocks), &[ids.len() + ours.len() - 1], &lm.device());
            let token = Tensor::<1, Int>::from_data(TensorData::new(vec![i64::from(last)], [1]), &lm.device());
            ours.push(choose(lm.decode_step(token, &slots, &mut pool), &guard));
        }
        let m = k.min(ours.len());
        assert_eq!(&ours[..m], &expected[..m], "{}: greedy tokens from the recorded rows (first {k} = safe_steps)", case.name);
        assert!(m == k || ours.last() == Some(&eos), "{}: {} tokens, need {k}", case.name, ours.len());
    }
}
