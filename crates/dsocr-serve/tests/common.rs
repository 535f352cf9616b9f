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
}

/// The parity model on the CPU, or `None` when the fixtures are absent (reported as skipped).
pub fn model(test: &str) -> Option<std::path::PathBuf> {
    dsocr_testdata::parity(test).map(|p| p.model_dir())
}

pub fn load(dir: &std::path::Path) -> DeepseekOcr {
    DeepseekOcr::load(&ModelSource::Dir(dir.to_path_buf()), DeviceSpec::Cpu, None).expect("load the parity model")
}

/// Start a server; `loaded`: load the model before returning (else the test sets it).
pub async fn start(dir: &std::path::Path, options: ServeOptions, engine: EngineOptions, loaded: bool) -> Server {
    let state = Arc::new(AppState::new(options));
    if loaded {
        let dir = dir.to_path_buf();
        let service = tokio::task::spawn_blocking(move || OcrService::start(move || Ok(load(&dir)), engine)).await.unwrap();
        state.set_service(service);
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
