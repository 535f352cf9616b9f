//! Several engines behind one `OcrService` (docs/scale.md, "Several GPUs"), on the small parity
//! model (CPU): results in input order from two CPU engines; engines that fail on purpose (an
//! error as a GPU out of memory gives, a thread that dies without a word) whose pages are retried
//! on the healthy engine and reported; every engine failed ends every page with an error, and
//! a page's own error is never retried.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use dsocr::common::DeviceSpec;
use dsocr::preprocess::{LoadOptions, Mode, RgbImage, load_image};
use dsocr::{
    DeepseekOcr, EngineError, EngineOptions, EngineStats, EngineThread, Event, EventSink, GenerationConfig, InOrder, ModelFiles,
    OcrOptions, OcrResult, OcrService, PreparedPage, Replica, ServiceLoad, ServiceOptions, Task,
};
use dsocr_testdata::{Parity, parity};

fn options() -> OcrOptions {
    OcrOptions { task: Task::FreeOcr, mode: Mode::Tiny.spec(), generation: GenerationConfig { max_new_tokens: 4, ..Default::default() } }
}

fn engine_options() -> EngineOptions {
    EngineOptions { max_seqs: Some(2), ..EngineOptions::for_pages(&Mode::Tiny.spec(), 4) }
}

fn images(p: &Parity) -> Vec<RgbImage> {
    p.cases().iter().map(|c| load_image(c.input_image(), &LoadOptions::default()).unwrap()).collect()
}

fn loader(p: &Parity) -> impl Fn(DeviceSpec) -> Result<DeepseekOcr, dsocr::OcrError> + Send + Sync + Clone + 'static {
    let dir = p.model_dir();
    move |device| DeepseekOcr::from_files(ModelFiles::from_dir(&dir)?, device, None)
}

/// Submit every image (some twice over), return the results in input order.
fn run_all(service: &OcrService, images: &[RgbImage], rounds: usize) -> Vec<Result<OcrResult, EngineError>> {
    let (tx, rx) = mpsc::channel();
    let mut tags = Vec::new();
    for _ in 0..rounds {
        for image in images {
            let tx = tx.clone();
            let page = service.prepare(image, &options());
            tags.push(service.submit(
                page,
                options(),
                false,
                Box::new(move |e| {
                    if let Event::Finished { tag, result } = e {
                        let _ = tx.send((tag, *result));
                    }
                    true
                }),
            ));
        }
    }
    drop(tx);
    let first = tags[0];
    let mut order = InOrder::new();
    let mut done = Vec::new();
    for (tag, result) in rx.iter().take(tags.len()) {
        done.extend(order.push(tag - first, result));
    }
    assert_eq!(done.iter().map(|(t, _)| *t).collect::<Vec<_>>(), (0..tags.len() as u64).collect::<Vec<_>>(), "every page, once");
    done.into_iter().map(|(_, r)| r).collect()
}

/// What the pages give on one engine alone.
fn reference(p: &Parity, images: &[RgbImage]) -> Vec<Vec<u32>> {
    let ocr = loader(p)(DeviceSpec::Cpu).unwrap();
    ocr.ocr_batch(images, &options()).unwrap().into_iter().map(|r| r.unwrap().tokens).collect()
}

fn assert_tokens(results: &[Result<OcrResult, EngineError>], expected: &[Vec<u32>]) {
    for (k, r) in results.iter().enumerate() {
        let r = r.as_ref().unwrap_or_else(|e| panic!("page {k}: {e}"));
        assert_eq!(r.tokens, expected[k % expected.len()], "page {k}");
    }
}

#[test]
fn two_cpu_engines_share_the_pages_in_input_order() {
    let Some(p) = parity("two_cpu_engines_share_the_pages_in_input_order") else { return };
    let images = images(&p);
    let expected = reference(&p, &images);
    let per_engine = ServiceOptions { per_engine_pages: 2 };
    let service = OcrService::start_on(&[DeviceSpec::Cpu, DeviceSpec::Cpu], loader(&p), engine_options(), per_engine).unwrap();
    assert!(service.description().starts_with("2 engines"), "{}", service.description());
    let results = run_all(&service, &images, 2);
    assert_eq!(results.len(), 2 * images.len());
    assert_tokens(&results, &expected);
    let engines = service.engines();
    assert_eq!(engines.len(), 2);
    assert!(engines.iter().all(|e| e.failure.is_none()), "{engines:?}");
    // Stats are published by the engine threads once idle: wait for them.
    let t0 = std::time::Instant::now();
    while service.engines().iter().map(|e| e.pages).sum::<usize>() < results.len() && t0.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let engines = service.engines();
    assert!(engines.iter().all(|e| e.pages > 0), "both engines took pages: {engines:?}");
    assert_eq!(service.stats().pages, results.len());
    assert_eq!(service.load().pages, 0);
}

/// How a fake engine fails.
#[derive(Clone, Copy)]
enum Fault {
    /// The engine stops with an error (as a GPU out of memory): `failure()` says so, then its pages
    /// finish with a device error.
    Errors,
    /// The engine's thread dies: it drops the pages it holds without a word.
    Dies,
    /// The engine is fine, every page it gets fails on its own (a page error, not the engine's).
    PageErrors,
    /// The engine streams some text of its page, then fails as `Errors` does.
    ErrorsAfterText,
}

struct Faulty {
    fault: Fault,
    failed: Mutex<Option<String>>,
    got: Mutex<usize>,
}

impl Faulty {
    fn new(fault: Fault) -> Arc<Self> {
        Arc::new(Faulty { fault, failed: Mutex::new(None), got: Mutex::new(0) })
    }
}

impl Replica for Faulty {
    fn submit(&self, tag: u64, _page: PreparedPage, _options: OcrOptions, _stream: bool, mut sink: EventSink) {
        *self.got.lock().unwrap() += 1;
        match self.fault {
            Fault::Errors => {
                let why = "cuda:7: out of memory (injected)".to_string();
                *self.failed.lock().unwrap() = Some(why.clone());
                sink(Event::Finished { tag, result: Box::new(Err(EngineError::Device(why))) });
            }
            Fault::Dies => drop(sink),
            Fault::ErrorsAfterText => {
                sink(Event::Text { tag, text: "half a page".into() });
                let why = "cuda:7: device lost (injected)".to_string();
                *self.failed.lock().unwrap() = Some(why.clone());
                sink(Event::Finished { tag, result: Box::new(Err(EngineError::Device(why))) });
            }
            Fault::PageErrors => {
                sink(Event::Finished { tag, result: Box::new(Err(EngineError::Device("this page is too large (injected)".into()))) });
            }
        }
    }
    fn cancel(&self, _tag: u64) {}
    fn load(&self) -> ServiceLoad {
        ServiceLoad::default()
    }
    fn stats(&self) -> EngineStats {
        EngineStats::default()
    }
    fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap().clone()
    }
    fn description(&self) -> &str {
        "a faulty engine"
    }
}

#[test]
fn a_failing_engine_has_its_pages_retried_on_the_others() {
    let Some(p) = parity("a_failing_engine_has_its_pages_retried_on_the_others") else { return };
    let images = images(&p);
    let expected = reference(&p, &images);
    let (thread, tokenizer, arch) = EngineThread::start(
        {
            let load = loader(&p);
            move || load(DeviceSpec::Cpu)
        },
        engine_options(),
    )
    .unwrap();
    let real: Arc<dyn Replica> = Arc::new(thread);

    for fault in [Fault::Errors, Fault::Dies] {
        let faulty = Faulty::new(fault);
        // The faulty engine comes first: ties go to it, so it gets the first page.
        let replicas: Vec<Arc<dyn Replica>> = vec![faulty.clone(), real.clone()];
        let service = OcrService::from_replicas(replicas, tokenizer.clone(), arch, ServiceOptions { per_engine_pages: 1 }).unwrap();
        let results = run_all(&service, &images, 1);
        assert_tokens(&results, &expected);
        assert_eq!(*faulty.got.lock().unwrap(), 1, "a failed engine gets no more pages");
        let engines = service.engines();
        let why = engines[0].failure.as_deref().expect("the faulty engine is reported");
        match fault {
            Fault::Errors => assert!(why.contains("out of memory (injected)"), "{why}"),
            _ => assert!(why.contains("stopped without finishing"), "{why}"),
        }
        assert!(engines[1].failure.is_none());
        assert!(service.failure().is_none(), "one engine failing is not the service failing");
    }

    // A page that streamed text before its engine failed is not started again elsewhere (its
    // reader would see the text twice): it ends with the engine's error; the others are retried.
    let faulty = Faulty::new(Fault::ErrorsAfterText);
    let replicas: Vec<Arc<dyn Replica>> = vec![faulty.clone(), real.clone()];
    let service = OcrService::from_replicas(replicas, tokenizer.clone(), arch, ServiceOptions { per_engine_pages: 1 }).unwrap();
    let results = run_all(&service, &images, 1);
    assert!(results[0].as_ref().unwrap_err().to_string().contains("device lost (injected)"));
    assert_tokens(&results[1..], &expected[1..]);
    assert!(service.engines()[0].failure.is_some());

    // A page's own error comes back as its result: the engine stays in service, nothing is retried.
    let faulty = Faulty::new(Fault::PageErrors);
    let service = OcrService::from_replicas(vec![faulty.clone()], tokenizer.clone(), arch, ServiceOptions::default()).unwrap();
    let results = run_all(&service, &images[..2], 1);
    assert!(results.iter().all(|r| r.as_ref().unwrap_err().to_string().contains("too large")));
    assert_eq!(*faulty.got.lock().unwrap(), 2);
    assert!(service.engines()[0].failure.is_none());
}

#[test]
fn every_engine_failed_ends_every_page_with_an_error() {
    let Some(p) = parity("every_engine_failed_ends_every_page_with_an_error") else { return };
    let images = images(&p);
    let ocr = loader(&p)(DeviceSpec::Cpu).unwrap();
    let replicas: Vec<Arc<dyn Replica>> = vec![Faulty::new(Fault::Errors), Faulty::new(Fault::Dies)];
    let service = OcrService::from_replicas(replicas, ocr.shared_tokenizer(), ocr.architecture(), ServiceOptions::default()).unwrap();
    let results = run_all(&service, &images, 1);
    for r in &results {
        let e = r.as_ref().unwrap_err().to_string();
        assert!(e.contains("every engine has failed") || e.contains("out of memory"), "{e}");
    }
    assert!(service.failure().is_some());
    // A page submitted now is refused at once.
    let (tx, rx) = mpsc::channel();
    service.submit(
        service.prepare(&images[0], &options()),
        options(),
        false,
        Box::new(move |e| {
            let _ = tx.send(matches!(e, Event::Finished { result, .. } if result.is_err()));
            true
        }),
    );
    assert!(rx.recv().unwrap());
}
