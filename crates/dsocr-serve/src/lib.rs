//! # dsocr-serve
//!
//! DeepSeek-OCR as an HTTP service (docs/serve.md): the OpenAI chat API
//! (`POST /v1/chat/completions`, whole or streamed), `POST /v1/ocr` (multipart upload → pages
//! with markdown and layout boxes), `GET /v1/models`, `GET /health`, `GET /metrics` (Prometheus)
//! and an upload page at `GET /`. Every request feeds the one continuous-batching engine
//! ([`dsocr::OcrService`]), so concurrent clients share its batch; a client that disconnects
//! cancels its pages.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use dsocr_serve::{AppState, ServeOptions};
//! let state = Arc::new(AppState::new(ServeOptions::default()));
//! // Load the model on the engine's thread while /health answers 503.
//! let loading = state.clone();
//! std::thread::spawn(move || {
//!     loading.set_service(dsocr::OcrService::start(
//!         || dsocr::DeepseekOcr::load(&Default::default(), dsocr::common::DeviceSpec::auto(), None),
//!         Default::default(),
//!     ))
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! dsocr_serve::serve(listener, state, std::future::pending()).await
//! # }
//! ```

#![warn(missing_docs)]

mod body_limit;
mod chat;
mod error;
mod input;
mod jobs;
mod metrics;
mod ocr_api;
mod request;
mod stop;

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use dsocr::{OcrError, OcrService};
use serde_json::json;

pub use error::ApiError;
pub use input::{InputOptions, REQUEST_PIXELS_PER_PAGE_LIMIT};
use jobs::Admission;
pub use metrics::Metrics;
pub use stop::StopFilter;

/// The upload page (plain HTML, CSS and JavaScript; nothing fetched from elsewhere).
const INDEX_HTML: &str = include_str!("../assets/index.html");

/// Server settings (the flags of `dsocr serve`).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The model id clients name (`GET /v1/models`).
    pub model_name: String,
    /// Require `Authorization: Bearer KEY` on the API (not on `/health` and `/metrics`).
    pub api_key: Option<String>,
    /// Fetch `http(s)://` image URLs (off: only `data:` URIs and uploads are read).
    pub allow_remote_urls: bool,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Pixels (per page, and per request: [`InputOptions::max_request_pixels`]), pages, PDF
    /// resolution and fonts.
    pub input: InputOptions,
    /// Most new tokens per page (and the default when a request gives none).
    pub max_tokens: usize,
    /// Pages of the requests being served past which requests get 429 (and a request with
    /// more pages 413).
    pub max_queued_pages: usize,
    /// On shutdown, how long requests in flight may take to finish.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            model_name: "deepseek-ocr".into(),
            api_key: None,
            allow_remote_urls: false,
            max_body_bytes: 64 << 20,
            input: InputOptions { max_pixels: 50_000_000, max_pages: 200, pdf_dpi: dsocr::pdf::DEFAULT_DPI, cjk_font: None },
            max_tokens: 8192,
            max_queued_pages: 1024,
            drain_timeout: Duration::from_secs(60),
        }
    }
}

/// What the handlers share.
pub struct AppState {
    /// Settings.
    pub options: ServeOptions,
    /// Counters.
    pub metrics: Metrics,
    service: OnceLock<Arc<OcrService>>,
    load_error: Mutex<Option<String>>,
    /// Pages of the requests being served (admitted and not yet finished).
    queued: Arc<AtomicUsize>,
}

impl AppState {
    /// A server with no model yet (`/health` answers 503 until [`AppState::set_service`]).
    pub fn new(options: ServeOptions) -> Self {
        AppState {
            options,
            metrics: Metrics::default(),
            service: OnceLock::new(),
            load_error: Mutex::new(None),
            queued: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The model is loaded (or failed to load: the server then answers 503 with the reason).
    pub fn set_service(&self, service: Result<OcrService, OcrError>) {
        match service {
            Ok(s) => {
                let _ = self.service.set(Arc::new(s));
                tracing::info!("model loaded: ready");
            }
            Err(e) => {
                tracing::error!("the model failed to load: {e}");
                *self.load_error.lock().expect("load error") = Some(e.to_string());
            }
        }
    }

    /// The engine, or 503 while it is loading or after it failed.
    pub fn service(&self) -> Result<Arc<OcrService>, ApiError> {
        if let Some(s) = self.service.get() {
            if let Some(why) = s.failure() {
                return Err(ApiError::unavailable(why));
            }
            return Ok(s.clone());
        }
        match self.load_error.lock().expect("load error").as_ref() {
            Some(why) => Err(ApiError::unavailable(format!("the model failed to load: {why}"))),
            None => Err(ApiError::unavailable("the model is still loading: retry in a few seconds")),
        }
    }

    /// Take `pages` more pages into the queue, or refuse them: 429 while the queue is too full
    /// for them, 413 when they could never fit. Checked and reserved at once, so concurrent
    /// requests cannot pass the limit together; the pages are given back as they finish.
    pub(crate) fn admit(&self, pages: usize) -> Result<Admission, ApiError> {
        let limit = self.options.max_queued_pages;
        if pages > limit {
            return Err(ApiError::invalid(
                None,
                format!(
                    "the request has {pages} pages and this server queues at most {limit} (--max-queued-pages), so it can never be taken: send at most {limit} pages per request, or raise `dsocr serve --max-queued-pages`"
                ),
            )
            .status(StatusCode::PAYLOAD_TOO_LARGE)
            .code("too_many_pages"));
        }
        Admission::reserve(&self.queued, pages, limit).map_err(|queued| ApiError::queue_full(queued, limit))
    }
}

/// The routes.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/ocr", post(ocr_api::ocr))
        .route("/v1/models", get(models))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .merge(api)
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .fallback(|| async {
            ApiError::invalid(None, "no such endpoint: see /v1/chat/completions, /v1/ocr, /v1/models, /health, /metrics")
                .status(StatusCode::NOT_FOUND)
        })
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), body_limit::refuse_oversize))
        .layer(middleware::map_response(body_limit::close_refused_bodies))
        .with_state(state)
}

/// Serve on `listener` until `shutdown` resolves; then stop accepting and give the requests in
/// flight up to [`ServeOptions::drain_timeout`] to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let drain = state.options.drain_timeout;
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing the requests in flight");
        let _ = stopping_tx.send(());
    });
    let server = tokio::spawn(async move { server.await });
    tokio::pin!(server);
    tokio::select! {
        done = &mut server => return done.map_err(std::io::Error::other)?,
        _ = stopping_rx => {}
    }
    match tokio::time::timeout(drain, &mut server).await {
        Ok(done) => done.map_err(std::io::Error::other)?,
        Err(_) => {
            tracing::warn!("requests still in flight after {} s: stopping anyway", drain.as_secs());
            server.abort();
            Ok(())
        }
    }
}

/// The metrics label of a request to an endpoint that takes work: `chat` or `ocr`; `None` for
/// every other path (their requests are not counted).
fn endpoint_of(request: &Request) -> Option<&'static str> {
    match request.uri().path() {
        "/v1/chat/completions" => Some("chat"),
        "/v1/ocr" => Some("ocr"),
        _ => None,
    }
}

/// The API key check.
async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.options.api_key {
        let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            if let Some(endpoint) = endpoint_of(&request) {
                state.metrics.request(endpoint, 401);
            }
            // Read the body before answering: a request answered with its body unread closes
            // the connection, which a client that pools connections sees as a broken next request.
            let _ = axum::body::to_bytes(request.into_body(), state.options.max_body_bytes).await;
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    match state.service() {
        Ok(service) => {
            let load = service.load();
            axum::Json(json!({ "status": "ok", "model": state.options.model_name, "pages": load.pages, "in_flight": load.in_flight }))
                .into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "status": "unavailable", "reason": e.message }))).into_response(),
    }
}

async fn models(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{ "id": state.options.model_name, "object": "model", "created": 0, "owned_by": "deepseek-ai" }],
    }))
    .into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let service = state.service.get().cloned();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(service.as_deref())).into_response()
}

/// Run a server until Ctrl-C or SIGTERM (blocking): bind `addr`, answer `/health` with 503 while
/// `load` starts the engine on its own thread, then serve. What `dsocr serve` calls.
pub fn run_blocking<L>(addr: &str, options: ServeOptions, load: L) -> std::io::Result<()>
where
    L: FnOnce() -> Result<OcrService, OcrError> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e} (choose another --port or --host)")))?;
        tracing::info!("listening on http://{}", listener.local_addr()?);
        let state = Arc::new(AppState::new(options));
        let loading = state.clone();
        std::thread::spawn(move || loading.set_service(load()));
        serve(listener, state, shutdown_signal()).await
    })
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
