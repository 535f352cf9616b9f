//! `POST /v1/chat/completions`: the OpenAI chat API over the engine, whole or streamed as
//! server-sent events ending with `data: [DONE]` (docs/serve.md).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use dsocr::engine::OcrResult;
use dsocr::preprocess::RgbImage;
use dsocr::render::PAGE_SPLIT;
use futures_util::Stream;
use serde_json::{Value, json};

use crate::input::{Probed, blocking, check_request, decode, fetch_remote, is_remote, parse_data_uri, probe};
use crate::jobs::{JobEvent, PageJob, every_page_failed, input_error};
use crate::request::{ChatJob, ChatRequest, InputFile, check_mode};
use crate::stop::StopFilter;
use crate::{ApiError, AppState};

const ENDPOINT: &str = "chat";

/// The handler.
pub async fn completions(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    let started = match body {
        Ok(body) => start(&state, &body).await,
        // Past --max-body-mib (body_limit.rs refuses such bodies first; this is the extractor's
        // own limit behind it), or a body that broke off.
        Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::too_large(None, state.options.max_body_bytes)),
        Err(e) => Err(ApiError::invalid(None, format!("the request body cannot be read: {}", e.body_text()))),
    };
    match started {
        Ok(Started { job, chat, stream, include_usage }) => {
            let reply = Reply::new(&state, chat, job.tokenizer());
            if stream {
                state.metrics.request(ENDPOINT, 200);
                Sse::new(sse_stream(state.clone(), job, reply, include_usage)).keep_alive(KeepAlive::default()).into_response()
            } else {
                let response = whole(&state, job, reply).await;
                state.metrics.request(ENDPOINT, response.status().as_u16());
                response
            }
        }
        Err(e) => {
            state.metrics.request(ENDPOINT, e.status.as_u16());
            e.into_response()
        }
    }
}

struct Started {
    job: PageJob,
    chat: ChatJob,
    stream: bool,
    include_usage: bool,
}

/// Parse and check the request, measure its files against the limits, take its pages into the
/// queue, then decode the files and submit their pages.
async fn start(state: &Arc<AppState>, body: &[u8]) -> Result<Started, ApiError> {
    let request: ChatRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(None, format!("the request body is not a valid chat completion request: {e}")))?;
    let service = state.service()?;
    let chat = request.job(&state.options.model_name, state.options.max_tokens)?;
    check_mode(&chat.options, service.architecture(), "dsocr.mode")?;
    let files = probe_files(state, &chat.files).await?;
    let pages = check_request(&files, &state.options.input)?;
    let admission = state.admit(pages)?;
    let images = decode_files(state, files).await?;
    let job = PageJob::start(service, images, chat.options.clone(), admission).await;
    Ok(Started { job, chat, stream: request.stream, include_usage: request.stream_options.is_some_and(|o| o.include_usage) })
}

/// Every file read and probed (pages counted and measured, nothing decoded), in order.
async fn probe_files(state: &Arc<AppState>, files: &[InputFile]) -> Result<Vec<Probed>, ApiError> {
    let mut probed = Vec::new();
    for file in files {
        let bytes = if is_remote(&file.data) && state.options.allow_remote_urls {
            let (url, param, max) = (file.data.clone(), file.param.clone(), state.options.max_body_bytes);
            blocking(&file.name, &file.param, move || fetch_remote(&url, max, &param)).await?
        } else if file.data.starts_with("data:") || file.data.contains("://") {
            parse_data_uri(&file.data, &file.param)?.1
        } else {
            crate::input::decode_base64(&file.data)
                .map_err(|e| ApiError::invalid(Some(&file.param), format!("file_data is neither a data: URI nor base64: {e}")))?
        };
        let (name, param, limits) = (file.name.clone(), file.param.clone(), state.options.input.clone());
        probed.push(blocking(&file.name, &file.param, move || probe(bytes, &name, &param, &limits)).await?);
    }
    Ok(probed)
}

/// Every file's pages, decoded on blocking threads, in order (a PDF page that cannot be rendered
/// is an error for that page alone).
async fn decode_files(state: &Arc<AppState>, files: Vec<Probed>) -> Result<Vec<Result<Arc<RgbImage>, String>>, ApiError> {
    let mut pages = Vec::new();
    for file in files {
        let (name, param, limits) = (file.name().to_string(), file.param().to_string(), state.options.input.clone());
        pages.extend(blocking(&name, &param, move || decode(file, &limits)).await?.into_iter().map(|page| page.map(Arc::new)));
    }
    Ok(pages)
}

/// What the response says, built up as pages finish.
struct Reply {
    id: String,
    created: u64,
    model: String,
    markdown: bool,
    filter: StopFilter,
    prompt_tokens: usize,
    completion_tokens: usize,
    /// Every page ended on EOS (else: `length`).
    all_eos: bool,
    /// Failed pages: whether the input was at fault, and the message.
    failures: Vec<(bool, String)>,
    tokenizer: Arc<dyn dsocr::engine::OcrTokenizer>,
}

impl Reply {
    fn new(state: &AppState, chat: ChatJob, tokenizer: Arc<dyn dsocr::engine::OcrTokenizer>) -> Self {
        let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Reply {
            id: format!("chatcmpl-{:032x}", rand::random::<u128>()),
            created,
            model: state.options.model_name.clone(),
            markdown: chat.markdown,
            filter: StopFilter::new(chat.stop),
            prompt_tokens: 0,
            completion_tokens: 0,
            all_eos: true,
            failures: Vec::new(),
            tokenizer,
        }
    }

    /// The content a job event adds (through the stop filter). Streamed text is the raw text;
    /// with `markdown` output, whole pages are sent as they finish instead.
    fn content(&mut self, event: JobEvent) -> String {
        match event {
            JobEvent::Text { text, .. } if !self.markdown => self.filter.push(&text),
            JobEvent::Text { .. } => String::new(),
            JobEvent::Done { page, result } => {
                let mut out = String::new();
                match *result {
                    Ok(r) => {
                        self.count(&r);
                        if self.markdown {
                            out += &self.filter.push(&r.markdown);
                        }
                    }
                    Err(e) => {
                        let note = format!("<!-- dsocr: page {} failed: {e} -->", page + 1);
                        self.failures.push((input_error(&e), format!("page {}: {e}", page + 1)));
                        out += &self.filter.push(&note);
                    }
                }
                out
            }
        }
    }

    fn count(&mut self, r: &OcrResult) {
        self.prompt_tokens += r.prompt_tokens;
        self.completion_tokens += r.tokens.len();
        self.all_eos &= r.stopped_on_eos;
    }

    /// The separator before page `page` (> 0).
    fn separator(&mut self) -> String {
        self.filter.push(PAGE_SPLIT)
    }

    /// Tokens of text that was cut by a stop sequence before its page finished.
    fn count_cut(&mut self, text: &str) {
        self.completion_tokens += self.tokenizer.encode_text(text).map_or(0, |ids| ids.len());
    }

    fn finish_reason(&self) -> &'static str {
        if self.filter.stopped() || self.all_eos { "stop" } else { "length" }
    }

    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    }
}

/// Run the job to the end and answer in one body.
async fn whole(state: &Arc<AppState>, mut job: PageJob, mut reply: Reply) -> Response {
    let mut content = String::new();
    let mut page_text = String::new();
    let pages = job.pages();
    while let Some(event) = job.next().await {
        let done = matches!(event, JobEvent::Done { .. });
        let last = matches!(event, JobEvent::Done { page, .. } if page + 1 == pages);
        let piece = reply.content(event);
        page_text += &piece;
        content += &piece;
        if reply.filter.stopped() {
            reply.count_cut(&page_text);
            job.cancel_all();
            break;
        }
        if done {
            page_text.clear();
            if !last {
                content += &reply.separator();
            }
        }
    }
    content += &reply.filter.finish();
    if reply.failures.len() == pages {
        return every_page_failed(&reply.failures, Some("messages")).into_response();
    }
    job.record(&state.metrics, reply.prompt_tokens, reply.completion_tokens);
    axum::Json(json!({
        "id": reply.id, "object": "chat.completion", "created": reply.created, "model": reply.model,
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": reply.finish_reason() }],
        "usage": reply.usage(),
    }))
    .into_response()
}

/// The streamed answer: a role chunk, content chunks as text comes, a finish chunk, optionally a
/// usage chunk, then `[DONE]`. Dropped (the client went away), the job cancels its pages.
fn sse_stream(state: Arc<AppState>, job: PageJob, reply: Reply, include_usage: bool) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    enum Phase {
        Start,
        Pages,
        Usage,
        Done,
        End,
    }
    struct S {
        state: Arc<AppState>,
        job: PageJob,
        reply: Reply,
        phase: Phase,
        include_usage: bool,
        page_text: String,
    }
    let s = S { state, job, reply, phase: Phase::Start, include_usage, page_text: String::new() };
    futures_util::stream::unfold(s, |mut s| async move {
        let data = |v: Value| Ok(SseEvent::default().data(v.to_string()));
        loop {
            match s.phase {
                Phase::Start => {
                    s.phase = Phase::Pages;
                    let chunk = s.reply.chunk(json!({ "role": "assistant", "content": "" }), None);
                    return Some((data(chunk), s));
                }
                Phase::Pages => {
                    let pages = s.job.pages();
                    let event = if s.reply.filter.stopped() { None } else { s.job.next().await };
                    let Some(event) = event else {
                        let rest = s.reply.filter.finish();
                        s.phase = if s.include_usage { Phase::Usage } else { Phase::Done };
                        s.job.record(&s.state.metrics, s.reply.prompt_tokens, s.reply.completion_tokens);
                        let delta = if rest.is_empty() { json!({}) } else { json!({ "content": rest }) };
                        let chunk = s.reply.chunk(delta, Some(s.reply.finish_reason()));
                        return Some((data(chunk), s));
                    };
                    let done = matches!(event, JobEvent::Done { .. });
                    let last = matches!(event, JobEvent::Done { page, .. } if page + 1 == pages);
                    let mut piece = s.reply.content(event);
                    s.page_text += &piece;
                    if s.reply.filter.stopped() {
                        let cut = std::mem::take(&mut s.page_text);
                        s.reply.count_cut(&cut);
                        s.job.cancel_all();
                    } else if done {
                        s.page_text.clear();
                        if !last {
                            piece += &s.reply.separator();
                        }
                    }
                    if !piece.is_empty() {
                        let chunk = s.reply.chunk(json!({ "content": piece }), None);
                        return Some((data(chunk), s));
                    }
                }
                Phase::Usage => {
                    s.phase = Phase::Done;
                    let mut chunk = s.reply.chunk(json!({}), None);
                    chunk["choices"] = json!([]);
                    chunk["usage"] = s.reply.usage();
                    return Some((data(chunk), s));
                }
                Phase::Done => {
                    s.phase = Phase::End;
                    return Some((Ok(SseEvent::default().data("[DONE]")), s));
                }
                Phase::End => return None,
            }
        }
    })
}
