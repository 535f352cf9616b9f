//! The library's entry points on the small parity model (CPU): one page, one page streamed, and
//! many pages through the submit API, whose results come back as they complete and, through
//! `InOrder`, in input order; a failing page among them has its own error.

use dsocr::common::DeviceSpec;
use dsocr::preprocess::{LoadOptions, Mode, load_image};
use dsocr::{DeepseekOcr, EngineError, EngineOptions, Event, GenerationConfig, InOrder, ModelFiles, OcrOptions, Task};
use dsocr_testdata::parity;

fn options(max_new_tokens: usize) -> OcrOptions {
    OcrOptions { task: Task::FreeOcr, mode: Mode::Tiny.spec(), generation: GenerationConfig { max_new_tokens, ..Default::default() } }
}

#[test]
fn one_page_streamed_and_many_pages_in_order() {
    let Some(p) = parity("one_page_streamed_and_many_pages_in_order") else { return };
    let ocr = DeepseekOcr::from_files(ModelFiles::from_dir(&p.model_dir()).unwrap(), DeviceSpec::Cpu, None).unwrap();
    let images: Vec<_> = p.cases().iter().map(|c| load_image(c.input_image(), &LoadOptions::default()).unwrap()).collect();

    let mut streamed = String::new();
    let one = ocr.ocr_stream(&images[0], &options(6), |t| streamed.push_str(t)).unwrap();
    assert_eq!(streamed, one.raw);
    assert!(!one.tokens.is_empty() && one.tokens.len() <= 6);

    // Page 2 cannot be loaded: its error comes back in its place.
    let mut inputs: Vec<Result<_, EngineError>> = images.iter().cloned().map(Ok).collect();
    inputs.insert(2, Err(EngineError::Input("page 2: cannot decode".into())));
    let n = inputs.len();
    let mut completion = Vec::new();
    let mut order = InOrder::new();
    let mut in_order = Vec::new();
    let engine = EngineOptions { max_seqs: Some(2), ..EngineOptions::for_pages(&Mode::Tiny.spec(), 6) };
    let stats = ocr
        .ocr_many(inputs, &options(6), &engine, |e| {
            if let Event::Finished { tag, result } = e {
                completion.push(tag);
                in_order.extend(order.push(tag, *result));
            }
        })
        .unwrap();
    assert_eq!(stats.pages, n);
    assert_eq!(completion.len(), n);
    assert_eq!(in_order.iter().map(|(t, _)| *t).collect::<Vec<_>>(), (0..n as u64).collect::<Vec<_>>());
    assert!(in_order[2].1.as_ref().unwrap_err().to_string().contains("page 2"));
    assert_eq!(in_order[0].1.as_ref().unwrap().tokens, one.tokens, "the same page alone and among others");

    let batch = ocr.ocr_batch(&images, &options(6)).unwrap();
    assert_eq!(batch.len(), images.len());
    assert_eq!(batch[0].as_ref().unwrap().tokens, one.tokens);
}

/// A DeepSeek-OCR 2 checkpoint loads through the same `ModelSource` (its `config.json` says what it
/// is) and runs the library's default options as its own official ones: the document prompt on an
/// A4 page takes the recorded 1,131 tokens, and `ocr` gives the greedy tokens of the recording.
#[test]
fn a_deepseek_ocr_2_checkpoint_runs_with_the_same_calls() {
    let Some(p) = dsocr_testdata::parity_ocr2("a_deepseek_ocr_2_checkpoint_runs_with_the_same_calls") else { return };
    let ocr = DeepseekOcr::load(&dsocr::ModelSource::Dir(p.model_dir()), DeviceSpec::Cpu, None).unwrap();
    assert_eq!(ocr.architecture(), dsocr::Architecture::DeepseekOcr2);
    let case = p.cases().into_iter().find(|c| c.name == "doc_dynamic").unwrap();
    let image = load_image(case.input_image(), &LoadOptions::default()).unwrap();
    let safe = case.json["safe_steps"].as_u64().unwrap() as usize;
    let generation = GenerationConfig {
        max_new_tokens: safe,
        repetition: dsocr::RepetitionGuard::NoRepeatNgram { n: case.json["no_repeat_ngram_size"].as_u64().unwrap() as usize },
        ..Default::default()
    };
    let result = ocr.ocr(&image, &OcrOptions { task: Task::Markdown, generation, ..Default::default() }).unwrap();
    assert_eq!(result.prompt_tokens as u64, case.json["prompt_tokens"].as_u64().unwrap());
    let expected: Vec<u32> = case.i64("generated_ids").data.iter().take(safe).map(|&v| v as u32).collect();
    assert_eq!(result.tokens, expected);
    // Tiny has no DeepSeek-OCR 2 counterpart: refused by name.
    let e = ocr.ocr(&image, &options(2)).unwrap_err().to_string();
    assert!(e.contains("DeepSeek-OCR 2 has no tiny mode"), "{e}");
}

/// A model's config and tokenizer are read before its weights (`ModelHeader`): a DeepSeek-OCR 2
/// checkpoint is known as one, and a page prepared with the header alone gets the recorded
/// prompt (the official code's 1,131 tokens for the document task on doc_dynamic's A4 page);
/// the model then loaded from the header is that checkpoint; a `config.json` that is not JSON
/// is refused naming the file.
#[test]
fn pages_prepared_from_the_header_are_the_loaded_models_own() {
    let Some(p) = dsocr_testdata::parity_ocr2("pages_prepared_from_the_header_are_the_loaded_models_own") else { return };
    let header = dsocr::ModelHeader::read(ModelFiles::from_dir(&p.model_dir()).unwrap()).unwrap();
    assert_eq!(header.architecture(), dsocr::Architecture::DeepseekOcr2);
    let case = p.cases().into_iter().find(|c| c.name == "doc_dynamic").unwrap();
    let image = load_image(case.input_image(), &LoadOptions::default()).unwrap();
    let defaults = OcrOptions { generation: GenerationConfig { max_new_tokens: 3, ..Default::default() }, ..Default::default() };
    let opts = header.options_for_model(&defaults).unwrap();
    let page = dsocr::engine::prepare_page(&image, &opts, header.tokenizer().as_ref()).unwrap();
    assert_eq!(page.prompt.input_ids.len() as u64, case.json["prompt_tokens"].as_u64().unwrap());

    let ocr = DeepseekOcr::from_header(&header, DeviceSpec::Cpu, None).unwrap();
    assert_eq!(ocr.architecture(), dsocr::Architecture::DeepseekOcr2);
    assert_eq!(ocr.ocr(&image, &opts).unwrap().prompt_tokens, page.prompt.input_ids.len());
    // Tiny has no DeepSeek-OCR 2 counterpart: known before any weight is read.
    let tiny = OcrOptions { mode: Mode::Tiny.spec(), ..defaults };
    assert!(header.options_for_model(&tiny).unwrap_err().to_string().contains("DeepSeek-OCR 2 has no tiny mode"));

    let dir = std::env::temp_dir().join(format!("dsocr-header-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["tokenizer.json", "model.safetensors"] {
        std::os::unix::fs::symlink(p.model_dir().join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    let e = dsocr::ModelHeader::read(ModelFiles::from_dir(&dir).unwrap()).unwrap_err().to_string();
    assert!(e.contains("config.json is not valid JSON"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
