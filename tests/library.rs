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

#[test]
fn a_deepseek_ocr_2_checkpoint_is_refused_by_name() {
    let dir = dsocr_testdata::shared_root().join("parity-ocr2/model");
    if !dir.join("config.json").is_file() {
        dsocr_testdata::skip("a_deepseek_ocr_2_checkpoint_is_refused_by_name", "no ../shared/parity-ocr2 fixtures");
        return;
    }
    let e = DeepseekOcr::load(&dsocr::ModelSource::Dir(dir), "cpu".parse().unwrap(), None).unwrap_err().to_string();
    assert!(e.contains("DeepseekOCR2ForCausalLM") && e.contains("not supported yet"), "{e}");
}
