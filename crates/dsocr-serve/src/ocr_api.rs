//! `POST /v1/ocr`: a multipart upload (an image or a PDF, and optional `task`, `prompt`, `mode`,
//! `max_tokens`, `boxes_image` fields) answered with JSON per page: markdown, raw text, layout
//! regions in pixels, optionally the page image with the boxes drawn (docs/serve.md).

use std::sync::Arc;

use axum::extract::{Multipart, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use dsocr::engine::{GenerationConfig, OcrOptions, Task};
use dsocr::preprocess::RgbImage;
use dsocr::render::{draw_regions, jpeg_bytes};
use serde_json::{Value, json};

use crate::input::{blocking, check_request, decode, probe};
use crate::jobs::{JobEvent, PageJob, every_page_failed, input_error};
use crate::request::{check_mode, custom_task};
use crate::{ApiError, AppState};

const ENDPOINT: &str = "ocr";

/// The handler.
pub async fn ocr(State(state): State<Arc<AppState>>, multipart: Multipart) -> Response {
    let response = match run(&state, multipart).await {
        Ok(body) => axum::Json(body).into_response(),
        Err(e) => e.into_response(),
    };
    state.metrics.request(ENDPOINT, response.status().as_u16());
    response
}

/// The form's fields.
#[derive(Default)]
struct Form {
    file: Option<(String, Vec<u8>)>,
    task: Option<String>,
    prompt: Option<String>,
    mode: Option<String>,
    max_tokens: Option<String>,
    boxes_image: bool,
}

async fn read_form(mut multipart: Multipart, max_body_bytes: usize) -> Result<Form, ApiError> {
    let mut form = Form::default();
    let bad = |e: axum::extract::multipart::MultipartError| {
        // Past --max-body-mib (body_limit.rs refuses such bodies first; this is the extractor's own limit).
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::too_large(None, max_body_bytes);
        }
        ApiError::invalid(None, format!("the multipart body cannot be read: {e}"))
    };
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" => {
                let file_name = field.file_name().unwrap_or("upload").to_string();
                form.file = Some((file_name, field.bytes().await.map_err(bad)?.to_vec()));
            }
            "task" => form.task = Some(field.text().await.map_err(bad)?),
            "prompt" => form.prompt = Some(field.text().await.map_err(bad)?),
            "mode" => form.mode = Some(field.text().await.map_err(bad)?),
            "max_tokens" => form.max_tokens = Some(field.text().await.map_err(bad)?),
            "boxes_image" => form.boxes_image = matches!(field.text().await.map_err(bad)?.as_str(), "1" | "true" | "on" | "yes"),
            other => {
                return Err(ApiError::invalid(
                    Some(other),
                    format!("unknown form field {other:?}: use file, task, prompt, mode, max_tokens, boxes_image"),
                ));
            }
        }
    }
    Ok(form)
}

fn options(state: &AppState, form: &Form) -> Result<OcrOptions, ApiError> {
    let task = match form.task.as_deref().filter(|t| !t.is_empty()) {
        // As in the chat API: `<image>` is put first unless the prompt places it.
        Some(name) if name.eq_ignore_ascii_case("custom") => match form.prompt.as_deref().filter(|p| !p.trim().is_empty()) {
            Some(p) => custom_task(p, "prompt")?,
            None => return Err(ApiError::invalid(Some("prompt"), "task custom needs a prompt: send it as the form field `prompt`")),
        },
        Some(name) => Task::from_name(name, form.prompt.as_deref()).map_err(|e| {
            // A locate text the model cannot take is the prompt's fault, not the task's.
            let param = if name.eq_ignore_ascii_case("locate") && form.prompt.is_some() { "prompt" } else { "task" };
            ApiError::invalid(Some(param), e.to_string())
        })?,
        None => match form.prompt.as_deref().filter(|p| !p.trim().is_empty()) {
            Some(p) => crate::request::task_from_text(p, "prompt")?,
            None => Task::Markdown,
        },
    };
    let mode = crate::request::mode_spec(form.mode.as_deref().filter(|m| !m.is_empty()), None, "mode")?;
    let cap = state.options.max_tokens;
    let max_new_tokens = match form.max_tokens.as_deref().filter(|m| !m.is_empty()) {
        None => cap,
        Some(m) => match m.trim().parse::<usize>() {
            Ok(n) if (1..=cap).contains(&n) => n,
            _ => return Err(ApiError::invalid(Some("max_tokens"), format!("max_tokens must be a number from 1 to {cap}, got {m:?}"))),
        },
    };
    Ok(OcrOptions { task, mode, generation: GenerationConfig { max_new_tokens, ..GenerationConfig::default() } })
}

async fn run(state: &Arc<AppState>, multipart: Multipart) -> Result<Value, ApiError> {
    let service = state.service()?;
    let form = read_form(multipart, state.options.max_body_bytes).await?;
    let options = options(state, &form)?;
    check_mode(&options, service.architecture(), "mode")?;
    let Some((name, bytes)) = form.file else {
        return Err(ApiError::invalid(Some("file"), "no file: send the image or PDF as the multipart field `file`"));
    };
    let limits = state.options.input.clone();
    let (probe_name, probe_limits) = (name.clone(), limits.clone());
    let file = blocking(&name, "file", move || probe(bytes, &probe_name, "file", &probe_limits)).await?;
    let pages = check_request(std::slice::from_ref(&file), &limits)?;
    let admission = state.admit(pages)?;
    let images: Vec<Result<Arc<RgbImage>, String>> =
        blocking(&name, "file", move || decode(file, &limits)).await?.into_iter().map(|page| page.map(Arc::new)).collect();
    let kept = form.boxes_image.then(|| images.clone());
    let mut job = PageJob::start(service, images, options, admission).await;
    let mut pages = Vec::new();
    let mut failures = Vec::new();
    let (mut prompt_tokens, mut completion_tokens) = (0, 0);
    while let Some(event) = job.next().await {
        let JobEvent::Done { page, result } = event else { continue };
        pages.push(match *result {
            Ok(r) => {
                prompt_tokens += r.prompt_tokens;
                completion_tokens += r.tokens.len();
                let boxes = match &kept {
                    // A page with a result was rendered.
                    Some(images) => images[page].as_ref().ok().map(|image| boxes_image(image, &r.regions)).transpose()?,
                    None => None,
                };
                json!({
                    "page": page + 1, "markdown": r.markdown, "raw": r.raw, "regions": r.regions,
                    "width": r.image_size.0, "height": r.image_size.1, "tokens": r.tokens.len(),
                    "stopped_on_eos": r.stopped_on_eos, "timings": r.timings, "boxes_image": boxes, "error": null,
                })
            }
            Err(e) => {
                failures.push((input_error(&e), format!("page {}: {e}", page + 1)));
                json!({ "page": page + 1, "error": e.to_string() })
            }
        });
    }
    if pages.len() < job.pages() {
        return Err(ApiError::internal(format!(
            "{} of {} page(s) never came back from the engine (it stopped: see the server's log); send the file again",
            job.pages() - pages.len(),
            job.pages()
        )));
    }
    if failures.len() == pages.len() {
        return Err(every_page_failed(&failures, None));
    }
    job.record(&state.metrics, prompt_tokens, completion_tokens);
    Ok(json!({
        "model": state.options.model_name, "file": name, "pages": pages,
        "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens },
    }))
}

/// The page with its regions drawn, as a JPEG `data:` URI.
fn boxes_image(page: &RgbImage, regions: &[dsocr::render::Region]) -> Result<String, ApiError> {
    let drawn = draw_regions(&page.clone().into(), regions);
    let jpeg = jpeg_bytes(&drawn, 85).map_err(|e| ApiError::internal(format!("cannot encode the boxes image: {e}")))?;
    Ok(format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(jpeg)))
}
