//! The queue limit, with a stand-in engine (no model) whose page preparation the test holds at a
//! gate: a request's pages are reserved in the queue at admission (two requests cannot pass the
//! limit together), before any of its files is decoded, and a request that could never fit gets
//! 413 rather than 429.

mod common;

use std::sync::{Arc, Condvar, Mutex};

use common::*;
use dsocr::engine::{EngineError, Event, OcrTokenizer};
use dsocr::preprocess::{Architecture, PreprocessError, TextTokenizer};
use dsocr::testing::{ByteTokenizer, HeldPages};
use dsocr::{OcrService, ServiceOptions};
use dsocr_serve::ServeOptions;
use reqwest::StatusCode;
use serde_json::Value;

/// Holds every page's preparation (its prompt's tokenization) until opened.
#[derive(Default)]
struct Gate {
    /// Open, and how many preparations wait.
    state: Mutex<(bool, usize)>,
    changed: Condvar,
}

impl Gate {
    fn pass(&self) {
        let mut state = self.state.lock().unwrap();
        state.1 += 1;
        while !state.0 {
            state = self.changed.wait(state).unwrap();
        }
        state.1 -= 1;
    }
    fn open(&self) {
        self.state.lock().unwrap().0 = true;
        self.changed.notify_all();
    }
    fn waiting(&self) -> usize {
        self.state.lock().unwrap().1
    }
}

/// One id per byte, behind the gate.
struct GatedTokenizer(Arc<Gate>);

impl TextTokenizer for GatedTokenizer {
    fn encode_text(&self, text: &str) -> Result<Vec<u32>, PreprocessError> {
        self.0.pass();
        ByteTokenizer.encode_text(text)
    }
}

impl OcrTokenizer for GatedTokenizer {
    fn decode(&self, ids: &[u32]) -> String {
        ByteTokenizer.decode(ids)
    }
}

/// On the way out (a failed assertion included): open the gate and drop the kept pages, so that
/// the server and its service can stop.
struct LetGo(Arc<HeldPages>, Arc<Gate>);

impl Drop for LetGo {
    fn drop(&mut self) {
        self.1.open();
        self.0.release();
    }
}

/// A 64×64 PNG of noise, and the same cut off in the middle of its pixel data: its header (and
/// so its size) reads, its pixels do not.
fn noise_and_truncated_png() -> (Vec<u8>, Vec<u8>) {
    let noise = image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * 7 + y * 13) as u8, (x * y) as u8, (x ^ y) as u8 * 3]));
    let mut out = std::io::Cursor::new(Vec::new());
    noise.write_to(&mut out, image::ImageFormat::Png).unwrap();
    let png = out.into_inner();
    let cut = png[..png.len() * 2 / 3].to_vec();
    (png, cut)
}

fn error_of(v: &Value) -> (&str, Option<&str>, Option<&str>) {
    (v["error"]["message"].as_str().expect("an OpenAI-shaped error body"), v["error"]["param"].as_str(), v["error"]["code"].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_are_reserved_at_admission_before_decoding_and_a_request_that_can_never_fit_gets_413() {
    let keeper = Arc::new(HeldPages::default());
    let gate = Arc::new(Gate::default());
    let tokenizer = Arc::new(GatedTokenizer(gate.clone()));
    let service = OcrService::from_replicas(vec![keeper.clone()], tokenizer, Architecture::DeepseekOcr, ServiceOptions::default()).unwrap();
    let server = serve_on(ServeOptions { max_queued_pages: 1, max_tokens: 8, ..ServeOptions::default() }, Some(service)).await;
    let _let_go = LetGo(keeper.clone(), gate.clone());
    let http = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", server.url);
    let (png, truncated) = noise_and_truncated_png();
    let (page, broken) = (data_uri("image/png", &png), data_uri("image/png", &truncated));

    // Two pages can never fit a queue of one: 413 and the limit, not a 429 to retry forever.
    let r = http.post(&url).json(&chat_with_images("describe", &[page.clone(), page.clone()], 4, false)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    let (message, _, code) = error_of(&v);
    assert!(message.contains("--max-queued-pages") && message.contains("at most 1"), "{message}");
    assert_eq!(code, Some("too_many_pages"));

    // Request A is admitted; its page is held in preparation, not yet in the engine.
    let a = tokio::spawn(http.post(&url).json(&chat_with_images("describe", std::slice::from_ref(&page), 4, false)).send());
    wait_until("A's page reaches preparation", || gate.waiting() == 1).await;
    // Request B meanwhile finds the queue full: A's page was reserved when A was admitted.
    let b = tokio::spawn(http.post(&url).json(&chat_with_images("describe", std::slice::from_ref(&page), 4, false)).send());
    wait_until("B is answered", || {
        assert!(gate.waiting() < 2, "B was admitted past the queue limit while A's page was being prepared");
        b.is_finished()
    })
    .await;
    let b = b.await.unwrap().unwrap();
    assert_eq!(b.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(b.headers()["retry-after"], "1");

    // A's page in the engine. A file that cannot be decoded is refused for the full queue first:
    // the queue is checked from the page count, before any file is decoded.
    gate.open();
    wait_until("A's page reaches the engine", || keeper.count() == 1).await;
    let r = http.post(&url).json(&chat_with_images("describe", std::slice::from_ref(&broken), 4, false)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);

    // A's page finishes (with an input error: the keeper runs nothing): A's one page failed for
    // its input, so A gets 400; its place in the queue is given back.
    let (tag, mut sink) = keeper.take_any().unwrap();
    sink(Event::Finished { tag, result: Box::new(Err(EngineError::Input("the keeper runs nothing".into()))) });
    let a = a.await.unwrap().unwrap();
    assert_eq!(a.status(), StatusCode::BAD_REQUEST);
    assert!(error_of(&a.json().await.unwrap()).0.contains("the keeper runs nothing"));
    // Now the broken file is admitted and decoded: 400 about that file.
    let r = http.post(&url).json(&chat_with_images("describe", std::slice::from_ref(&broken), 4, false)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    let (message, param, code) = error_of(&v);
    assert_eq!((param, code), (Some("messages[0].content[1].image_url"), Some("invalid_image")), "{message}");
    assert_eq!(keeper.count(), 0, "no page of a refused request reached the engine");
    server.stop().await;
}
