//! Helpers shared by the engine's tests (on burn-ndarray, and on CubeCL's CPU runtime with the
//! `cube-cpu` feature).
#![allow(dead_code)] // each test binary uses its own subset

use std::sync::Arc;

use dsocr_core::burn::tensor::Device;
use dsocr_core::{Checkpoint, FloatType, Weights};
use dsocr_engine::{
    Engine, EngineError, EngineOptions, EngineStats, Event, GenerationConfig, OcrOptions, OcrResult, OcrTokenizer, RepetitionGuard,
    Request, Task, prepare_page,
};
use dsocr_lm::{DeepseekLm, LmConfig};
use dsocr_preprocess::{Architecture, LoadOptions, ModeSpec, RgbImage, load_image};
use dsocr_testdata::{Case, Parity};
use dsocr_vision::{DeepEncoder, VisionConfig};

pub struct Model {
    pub encoder: DeepEncoder,
    pub lm: DeepseekLm,
    pub tokenizer: Arc<dyn OcrTokenizer>,
}

/// The parity model (encoder, decoder, tokenizer) on `device`, in f32.
pub fn load_on(fixtures: &Parity, device: &Device) -> Model {
    let dir = fixtures.model_dir();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let weights = Weights::new(Checkpoint::open_dir(&dir).unwrap(), device, FloatType::F32).unwrap();
    let encoder = DeepEncoder::load(&weights, &VisionConfig::from_json(&json, "config.json").unwrap()).unwrap();
    let lm = DeepseekLm::load(&weights, &LmConfig::from_json(&json, "config.json").unwrap()).unwrap();
    let tokenizer = Arc::new(tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap());
    Model { encoder, lm, tokenizer }
}

/// A case's image and options (its mode and prompt), with `generation`.
pub fn page_of(case: &Case, generation: GenerationConfig) -> (RgbImage, OcrOptions) {
    page_for(Architecture::DeepseekOcr, case, generation)
}

/// [`page_of`] for a case of `arch`'s fixtures.
pub fn page_for(arch: Architecture, case: &Case, generation: GenerationConfig) -> (RgbImage, OcrOptions) {
    let (base, image, crop) = case.mode();
    let mode = ModeSpec::custom_for(arch, base, image, crop).unwrap();
    let task = Task::Custom(case.json["prompt"].as_str().unwrap().to_string());
    (load_image(case.input_image(), &LoadOptions::default()).unwrap(), OcrOptions { task, mode, generation })
}

/// Run `pages` through one engine with at most `max_seqs` in flight; results by tag, and the
/// order in which tags finished, and the text streamed per tag.
pub fn run(model: &Model, pages: &[(RgbImage, OcrOptions)], max_seqs: usize) -> (Results, Vec<u64>, Vec<String>) {
    let (results, finished, streamed, _) =
        run_with(model, pages, EngineOptions { max_seqs: Some(max_seqs), seq_capacity: Some(1400), ..Default::default() });
    (results, finished, streamed)
}

/// Each page's result, by tag.
pub type Results = Vec<Result<OcrResult, EngineError>>;

/// [`run`] with `options`, and the engine's counters.
pub fn run_with(model: &Model, pages: &[(RgbImage, OcrOptions)], options: EngineOptions) -> (Results, Vec<u64>, Vec<String>, EngineStats) {
    let max_seqs = options.max_seqs.expect("a test sets max_seqs");
    let mut engine = Engine::new(&model.encoder, &model.lm, model.tokenizer.as_ref(), &options).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for (tag, (image, opts)) in pages.iter().enumerate() {
        let page = prepare_page(image, opts, model.tokenizer.as_ref());
        tx.send(Request { tag: tag as u64, page, options: opts.clone(), stream: true }).unwrap();
    }
    drop(tx);
    let mut results: Vec<Option<Result<OcrResult, EngineError>>> = (0..pages.len()).map(|_| None).collect();
    let mut finished = Vec::new();
    let mut streamed = vec![String::new(); pages.len()];
    // Each page: Started, then its text, then Finished; never more than max_seqs in flight.
    let mut in_flight = std::collections::HashSet::new();
    let stats = engine
        .run(&rx, &mut |e| match e {
            Event::Started { tag } => {
                assert!(in_flight.insert(tag) && results[tag as usize].is_none(), "page {tag} started twice or after it finished");
                assert!(in_flight.len() <= max_seqs);
            }
            Event::Text { tag, text } => {
                assert!(in_flight.contains(&tag), "text of page {tag} before it started");
                streamed[tag as usize].push_str(&text);
            }
            Event::Finished { tag, result } => {
                assert!(in_flight.remove(&tag) || result.is_err(), "page {tag} finished well without starting");
                finished.push(tag);
                results[tag as usize] = Some(*result);
            }
        })
        .unwrap();
    assert!(in_flight.is_empty());
    assert!(stats.peak_in_flight <= max_seqs, "{stats:?}");
    assert_eq!(stats.pages, pages.len());
    if pages.len() <= options.vision_lookahead && stats.preemptions == 0 {
        // Every page was queued before the run: the first admission encodes them all ahead (a
        // preempted page is encoded again).
        assert_eq!(stats.vision_batches, 1, "{stats:?}");
    }
    (results.into_iter().map(|r| r.expect("every page finishes")).collect(), finished, streamed, stats)
}

pub fn greedy(max_new_tokens: usize) -> GenerationConfig {
    GenerationConfig { max_new_tokens, repetition: RepetitionGuard::NoRepeatNgram { n: 20 }, ..Default::default() }
}

/// The engine's greedy tokens from each case's image (alone) equal the official code's for the
/// recorded safe steps.
pub fn check_greedy_tokens(model: &Model, fixtures: &Parity) {
    let arch = model.encoder.architecture();
    for case in fixtures.cases() {
        let n = case.json["no_repeat_ngram_size"].as_u64().unwrap() as usize;
        let max_new = case.json["max_new_tokens"].as_u64().unwrap() as usize;
        let safe = case.json["safe_steps"].as_u64().unwrap() as usize;
        let generation =
            GenerationConfig { max_new_tokens: max_new, repetition: RepetitionGuard::NoRepeatNgram { n }, ..Default::default() };
        let (results, _, _) = run(model, &[page_for(arch, &case, generation)], 1);
        let r = results[0].as_ref().unwrap();
        let mut ours = r.tokens.clone();
        if r.stopped_on_eos {
            ours.push(model.lm.config().eos_token_id);
        }
        let expected: Vec<u32> = case.i64("generated_ids").data.iter().map(|&v| v as u32).collect();
        let k = safe.min(expected.len());
        assert!(ours.len() >= k, "{}: {} tokens, need {k}", case.name, ours.len());
        assert_eq!(&ours[..k], &expected[..k], "{}: first {k} greedy tokens", case.name);
    }
}

/// Six short pages in a pool of 22 blocks (1,408 slots) for pages of up to 1,400: they start
/// together with their prompts' two blocks each, take one more every 64 tokens, outgrow the pool
/// and preempt each other; every page still gets its tokens run alone, and its streamed text is
/// its result's.
pub fn check_preempted_pages(model: &Model, fixtures: &Parity) {
    let cases = fixtures.cases();
    let budgets = [300, 200, 250, 150, 280, 220];
    let generation = |b| GenerationConfig { ignore_eos: true, ..greedy(b) };
    // The case with the shortest prompt (81-odd tokens: 2 blocks), so that six pages start
    // together and then outgrow the pool.
    let prompt_len = |case: &Case| {
        let (image, options) = page_of(case, greedy(1));
        prepare_page(&image, &options, model.tokenizer.as_ref()).unwrap().prompt.len()
    };
    let short = cases.iter().min_by_key(|c| prompt_len(c)).unwrap();
    let pages: Vec<(RgbImage, OcrOptions)> = budgets.iter().map(|&b| page_of(short, generation(b))).collect();
    let options = EngineOptions { max_seqs: Some(6), kv_blocks: Some(22), seq_capacity: Some(1400), ..Default::default() };
    let (together, _, streamed, stats) = run_with(model, &pages, options);
    assert!(stats.preemptions >= 1 && stats.peak_in_flight == 6, "all six start, then the pool runs out of blocks: {stats:?}");
    for (i, page) in pages.iter().enumerate() {
        let (alone, _, _) = run(model, std::slice::from_ref(page), 1);
        let (t, a) = (together[i].as_ref().unwrap(), alone[0].as_ref().unwrap());
        assert_eq!(t.tokens.len(), budgets[i], "page {i} ran to its budget");
        assert_eq!(t.tokens, a.tokens, "page {i} (budget {}, prompt {} tokens)", budgets[i], t.prompt_tokens);
        assert_eq!(streamed[i], t.raw, "page {i}: streamed text is the result's text");
    }
}
