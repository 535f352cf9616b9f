//! The one prepare → encode path every entry point uses (engine, bench, parity): a page's CPU
//! work ([`prepare_page`], safe to run on other threads, see [`prepare_ahead`]) and its vision
//! encoding into the decoder's prompt embeddings ([`encode_page`]).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::Instant;

use dsocr_core::burn::prelude::*;
use dsocr_core::burn::tensor::DType;
use dsocr_lm::DeepseekLm;
use dsocr_preprocess::{RgbImage, ViewBatch, build_prompt, normalize_pixel, prepare_image};
use dsocr_vision::DeepEncoder;
use rayon::prelude::*;

use crate::EngineError;
use crate::page::{OcrOptions, PreparedPage, Request};
use crate::tokenizer::OcrTokenizer;
use crate::vision_batch::{DEFAULT_VISION_BATCH_BYTES, encode_pages};

/// Preprocess one image for `options` (views, tile grid, prompt ids): CPU work only.
pub fn prepare_page(image: &RgbImage, options: &OcrOptions, tokenizer: &dyn OcrTokenizer) -> Result<PreparedPage, EngineError> {
    let t0 = Instant::now();
    options.generation.sampling.validate().map_err(EngineError::Input)?;
    let prepared = prepare_image(image, &options.mode)?;
    let prompt = build_prompt(tokenizer, &options.task.prompt(), &[prepared.image_token_count()])?;
    Ok(PreparedPage { image: prepared, prompt, image_size: (image.width as u32, image.height as u32), preprocess: t0.elapsed() })
}

/// Normalised pixels of a view batch (`[N, 3, S, S]`) as a device tensor in `dtype`: the one
/// place host views become encoder input.
///
/// On a GPU the 8-bit pixels cross the bus (a quarter of the f32 values' bytes: 10.5 MB for a
/// Gundam page) and a 256-entry table of [`normalize_pixel`] values, looked up on the device,
/// turns them into the same floats bit for bit (a table, not arithmetic: near 127/128 one ulp of
/// a faster division would change the bf16 value).
pub fn pixel_tensor(views: &ViewBatch, device: &Device, dtype: DType) -> Tensor<4> {
    if dsocr_kernels::runs_cube_kernels(device) {
        let count = views.data.len();
        let bytes = Tensor::<1, Int>::from_data(TensorData::new(views.data.clone(), [count]), (device, DType::U8));
        let table: Vec<f32> = (0..=255u8).map(normalize_pixel).collect();
        let table = Tensor::<1>::from_data(TensorData::new(table, [256]), (device, DType::F32)).cast(dtype);
        return table.select(0, bytes.cast(DType::I32)).reshape(views.shape());
    }
    Tensor::<4>::from_data(TensorData::new(views.normalized(), views.shape()), (device, DType::F32)).cast(dtype)
}

/// The decoder input `[T, H]` of one prepared page: its views through the vision encoder, placed
/// at the prompt's image positions ([`encode_pages`] with one page).
pub fn encode_page(encoder: &DeepEncoder, lm: &DeepseekLm, page: &PreparedPage) -> Result<Tensor<2>, EngineError> {
    encode_pages(encoder, lm, &[page], DEFAULT_VISION_BATCH_BYTES).pop().expect("one result per page")
}

/// Where a page's image comes from: a closure run on a preparation thread (decode a file,
/// render a PDF page), so that loading runs in parallel ahead of the engine too.
pub type PageSource = Box<dyn FnOnce() -> Result<RgbImage, EngineError> + Send>;

/// Prepare pages on a background thread, `ahead` at a time in parallel and at most `ahead` pages
/// before the consumer: the returned receiver yields one [`Request`] per `(source, options)` job,
/// in order, with `tag` = the job's index (a failed load or preparation is that request's error).
/// The thread ends when the jobs run out or the receiver is dropped.
pub fn prepare_ahead<I>(jobs: I, tokenizer: Arc<dyn OcrTokenizer>, ahead: usize, stream: bool) -> Receiver<Request>
where
    I: IntoIterator<Item = (PageSource, OcrOptions)> + Send + 'static,
    I::IntoIter: Send,
{
    let ahead = ahead.max(1);
    let (tx, rx) = sync_channel(ahead);
    std::thread::spawn(move || {
        let mut jobs = jobs.into_iter().enumerate().peekable();
        while jobs.peek().is_some() {
            let chunk: Vec<_> = jobs.by_ref().take(ahead).collect();
            let requests: Vec<Request> = chunk
                .into_par_iter()
                .map(|(tag, (source, options))| {
                    // A decoder or renderer that panics on one malformed file fails that page
                    // only: unwinding out of this thread would end the input for every page after.
                    let image = catch_unwind(AssertUnwindSafe(source)).unwrap_or_else(|panic| {
                        Err(EngineError::Input(format!(
                            "the page could not be read: its decoder failed ({}); the file may be damaged: check that other programs open it",
                            panic_message(&*panic)
                        )))
                    });
                    let page = image.and_then(|image| {
                        catch_unwind(AssertUnwindSafe(|| prepare_page(&image, &options, tokenizer.as_ref()))).unwrap_or_else(|panic| {
                            Err(EngineError::Input(format!(
                                "preparing the page failed inside dsocr ({}): please report it with the file",
                                panic_message(&*panic)
                            )))
                        })
                    });
                    Request { tag: tag as u64, page, options, stream }
                })
                .collect();
            for request in requests {
                if tx.send(request).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// What a caught panic said (its `&str` or `String` payload; "no message" for any other), for
/// errors that name the input whose decoder or renderer panicked.
pub fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("no message")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::OcrTokenizer;

    /// A tokenizer that is never asked for anything: every page here fails before its prompt.
    struct NoTokenizer;

    impl dsocr_preprocess::TextTokenizer for NoTokenizer {
        fn encode_text(&self, _text: &str) -> Result<Vec<u32>, dsocr_preprocess::PreprocessError> {
            unreachable!("no page gets as far as its prompt")
        }
    }

    impl OcrTokenizer for NoTokenizer {
        fn decode(&self, _ids: &[u32]) -> String {
            unreachable!("nothing is decoded")
        }
    }

    #[test]
    fn a_source_that_panics_fails_its_page_and_the_pages_after_it_still_come() {
        let jobs: Vec<(PageSource, OcrOptions)> = (0..5)
            .map(|i| {
                let source: PageSource = Box::new(move || {
                    if i == 1 {
                        panic!("malformed tile in page {i}");
                    }
                    Err(EngineError::Input(format!("page {i}: not an image")))
                });
                (source, OcrOptions::default())
            })
            .collect();
        let requests: Vec<Request> = prepare_ahead(jobs, Arc::new(NoTokenizer), 2, false).into_iter().collect();
        assert_eq!(requests.iter().map(|r| r.tag).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        let errors: Vec<String> = requests.iter().map(|r| r.page.as_ref().expect_err("every page fails here").to_string()).collect();
        assert!(errors[1].contains("malformed tile in page 1") && errors[1].contains("damaged"), "{}", errors[1]);
        assert_eq!(errors[4], "page 4: not an image");
    }
}
