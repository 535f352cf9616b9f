//! A server on loopback with the parity model (CPU), started and stopped by each test.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use dsocr::common::DeviceSpec;
use dsocr::{DeepseekOcr, EngineOptions, ModelSource, OcrService};
use dsocr_serve::{AppState, ServeOptions};

/// A running server.
pub struct Server {
    pub url: String,
    pub state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Stop it (graceful) and wait, at most 30 s.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), task).await.expect("server stops in time").unwrap().unwrap();
    }

    /// `POST /v1/ocr` with a multipart form.
    pub async fn post_ocr(&self, http: &reqwest::Client, form: reqwest::multipart::Form) -> reqwest::Result<reqwest::Response> {
        http.post(format!("{}/v1/ocr", self.url)).multipart(form).send().await
    }
}

/// The parity model on the CPU, or `None` when the fixtures are absent (reported as skipped).
pub fn model(test: &str) -> Option<std::path::PathBuf> {
    dsocr_testdata::parity(test).map(|p| p.model_dir())
}

/// The DeepSeek-OCR 2 parity model, or `None` when its fixtures are absent.
pub fn model_ocr2(test: &str) -> Option<std::path::PathBuf> {
    dsocr_testdata::parity_ocr2(test).map(|p| p.model_dir())
}

pub fn load(dir: &std::path::Path) -> DeepseekOcr {
    DeepseekOcr::load(&ModelSource::Dir(dir.to_path_buf()), DeviceSpec::Cpu, None).expect("load the parity model")
}

/// Start a server; `loaded`: load the model before returning (else the test sets it).
pub async fn start(dir: &std::path::Path, options: ServeOptions, engine: EngineOptions, loaded: bool) -> Server {
    let service = if loaded {
        let dir = dir.to_path_buf();
        Some(
            tokio::task::spawn_blocking(move || OcrService::start(move || Ok(load(&dir)), engine))
                .await
                .unwrap()
                .expect("the engine starts"),
        )
    } else {
        None
    };
    serve_on(options, service).await
}

/// Start a server on `service` (or with none yet: the test sets it).
pub async fn serve_on(options: ServeOptions, service: Option<OcrService>) -> Server {
    let state = Arc::new(AppState::new(options));
    if let Some(service) = service {
        state.set_service(Ok(service));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(dsocr_serve::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    Server { url, state, stop: Some(stop), task: Some(task) }
}

/// A small, fast setup: the parity model, tiny mode.
pub fn engine_options(max_seqs: usize) -> EngineOptions {
    EngineOptions { max_seqs: Some(max_seqs), ..EngineOptions::for_pages(&dsocr::preprocess::Mode::Gundam.spec(), 64) }
}

pub fn serve_options() -> ServeOptions {
    ServeOptions { max_tokens: 64, ..ServeOptions::default() }
}

/// The banner case's image as a data: URI, and its bytes.
pub fn banner() -> (String, Vec<u8>) {
    let path = dsocr_testdata::parity_root().join("cases/banner_tiny/input.png");
    let bytes = std::fs::read(&path).unwrap();
    (format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&bytes)), bytes)
}

/// A chat request body for `data_uri` with `text`, tiny mode, `max_tokens`.
pub fn chat_body(model: &str, text: &str, data_uri: &str, max_tokens: usize, stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": model, "stream": stream, "max_tokens": max_tokens,
        "messages": [{ "role": "user", "content": [{ "type": "text", "text": text }, { "type": "image_url", "image_url": { "url": data_uri } }] }],
        "dsocr": { "mode": "tiny" },
    })
}

/// The content of an SSE response's chunks, and whether it ended with [DONE]; also the chunks.
pub fn sse_content(body: &str) -> (String, bool, Vec<serde_json::Value>) {
    let mut content = String::new();
    let mut done = false;
    let mut chunks = Vec::new();
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) else { continue };
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(data).expect("chunk is JSON");
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            content += c;
        }
        chunks.push(v);
    }
    (content, done, chunks)
}

/// `bytes` as a `data:` URI of type `mime`.
pub fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A PNG of `width`×`height` pixels of one colour (a few hundred bytes, however large).
pub fn solid_png(width: u32, height: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255])).write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A PDF of `pages` blank pages of `width`×`height` points (a few hundred bytes, however large).
pub fn blank_pdf(pages: usize, width: f32, height: f32) -> Vec<u8> {
    blank_pdf_of_sizes(&vec![(width, height); pages])
}

/// A PDF of blank pages, one of each `(width, height)` in points.
pub fn blank_pdf_of_sizes(sizes: &[(f32, f32)]) -> Vec<u8> {
    let pages = sizes.len();
    let kids: Vec<String> = (0..pages).map(|k| format!("{} 0 R", k + 3)).collect();
    let mut objects =
        vec!["<< /Type /Catalog /Pages 2 0 R >>".to_string(), format!("<< /Type /Pages /Kids [{}] /Count {pages} >>", kids.join(" "))];
    objects.extend(
        sizes.iter().map(|(width, height)| format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] /Resources << >> >>")),
    );
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (k, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{object}\nendobj\n", k + 1).as_bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes());
    out
}

/// A chat request body (tiny mode) with `text` and each of `images` (data: URIs) as a part.
pub fn chat_with_images(text: &str, images: &[String], max_tokens: usize, stream: bool) -> serde_json::Value {
    let mut content = vec![serde_json::json!({ "type": "text", "text": text })];
    content.extend(images.iter().map(|uri| serde_json::json!({ "type": "image_url", "image_url": { "url": uri } })));
    serde_json::json!({
        "model": "deepseek-ocr", "stream": stream, "max_tokens": max_tokens,
        "messages": [{ "role": "user", "content": content }],
        "dsocr": { "mode": "tiny" },
    })
}

/// Wait (at most 60 s, then fail saying `what`) until `done`.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !done() {
        assert!(t0.elapsed() < Duration::from_secs(60), "waited too long for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
