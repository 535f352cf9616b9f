//! The OpenAI chat request as this server reads it, and how it maps onto dsocr's options: the
//! user's text selects the task, images and PDFs become pages, `max_tokens`, `temperature`,
//! `top_p`, `seed` and `stop` apply per page, and an optional `dsocr` object (which plain
//! clients never send) chooses the mode, the tile count and the output form.

use dsocr::engine::{GenerationConfig, OcrOptions, Sampling, Task};
use dsocr::preprocess::{Architecture, DEFAULT_MAX_TILES, Mode, ModeSpec};
use serde::Deserialize;

use crate::ApiError;

/// `POST /v1/chat/completions` body (fields this server does not use are ignored).
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// The model's id (see `GET /v1/models`).
    pub model: String,
    /// The conversation; the user messages' parts are read.
    pub messages: Vec<ChatMessage>,
    /// Stream server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// `include_usage`: a last chunk with the token counts.
    pub stream_options: Option<StreamOptions>,
    /// Most new tokens per page.
    pub max_tokens: Option<usize>,
    /// The newer name of `max_tokens`.
    pub max_completion_tokens: Option<usize>,
    /// 0 (or absent): greedy, as the official code; above 0: sampled.
    pub temperature: Option<f32>,
    /// Nucleus sampling threshold (with a temperature above 0).
    pub top_p: Option<f32>,
    /// Seed of the sampler.
    pub seed: Option<u64>,
    /// Completions per request (only 1).
    pub n: Option<usize>,
    /// Stop sequences: the text ends before the first one.
    pub stop: Option<Stop>,
    /// dsocr's own settings.
    pub dsocr: Option<DsocrSettings>,
}

/// `stream_options`.
#[derive(Debug, Deserialize, Default)]
pub struct StreamOptions {
    /// Send a last chunk with `usage`.
    #[serde(default)]
    pub include_usage: bool,
}

/// `stop`: one string or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// One message.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    /// `user`, `system`, `assistant`.
    pub role: String,
    /// Text, or parts.
    pub content: Option<MessageContent>,
}

/// A message's content.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Typed parts.
    Parts(Vec<ContentPart>),
}

/// A content part.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image as a URL (`data:` URIs).
    ImageUrl {
        /// The URL.
        image_url: ImageUrl,
    },
    /// A file (a PDF or an image) inline.
    File {
        /// The file.
        file: FilePart,
    },
}

/// `image_url`.
#[derive(Debug, Deserialize)]
pub struct ImageUrl {
    /// A `data:` URI.
    pub url: String,
}

/// `file`.
#[derive(Debug, Deserialize)]
pub struct FilePart {
    /// A `data:` URI or bare base64.
    pub file_data: Option<String>,
    /// Its name, for messages.
    pub filename: Option<String>,
    /// Uploaded-file ids are not supported.
    pub file_id: Option<String>,
}

/// The `dsocr` object.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DsocrSettings {
    /// `tiny`, `small`, `base`, `large` or `gundam` (default; also `dynamic`). A DeepSeek-OCR 2
    /// server takes `gundam`, `base` and `small` (its own presets).
    pub mode: Option<String>,
    /// A task name (`markdown`, `ocr`, `free`, `figure`, `describe`) instead of the prompt text.
    pub task: Option<String>,
    /// Most tiles (crops) in gundam mode (default 9; at most 6 on DeepSeek-OCR 2).
    pub max_crops: Option<usize>,
    /// `raw` (default: the model's text, layout tags kept) or `markdown` (tags removed).
    pub output: Option<String>,
}

/// An input file of the request: where it was (`param`), its name and its `data:` URI or base64.
#[derive(Debug)]
pub struct InputFile {
    /// The request field, e.g. `messages[0].content[1].image_url`.
    pub param: String,
    /// A name for messages.
    pub name: String,
    /// `data:` URI (or bare base64 for `file_data`).
    pub data: String,
}

/// What the request asks, checked.
#[derive(Debug)]
pub struct ChatJob {
    /// Per-page options.
    pub options: OcrOptions,
    /// The files, in order.
    pub files: Vec<InputFile>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Return markdown (layout tags removed) instead of the raw text.
    pub markdown: bool,
}

impl ChatRequest {
    /// Check the request against the served model and the server's token cap.
    pub fn job(&self, model: &str, max_tokens_cap: usize) -> Result<ChatJob, ApiError> {
        if self.model != model {
            return Err(ApiError::invalid(
                Some("model"),
                format!("the model {:?} does not exist here; this server serves {model:?}", self.model),
            )
            .code("model_not_found")
            .status(axum::http::StatusCode::NOT_FOUND));
        }
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::invalid(Some("n"), "only n = 1 is supported"));
        }
        let settings = self.dsocr.as_ref();
        let mut texts = Vec::new();
        let mut files = Vec::new();
        for (m, message) in self.messages.iter().enumerate() {
            if message.role != "user" {
                continue;
            }
            match &message.content {
                None => {}
                Some(MessageContent::Text(t)) => texts.push(t.clone()),
                Some(MessageContent::Parts(parts)) => {
                    for (p, part) in parts.iter().enumerate() {
                        let param = format!("messages[{m}].content[{p}]");
                        match part {
                            ContentPart::Text { text } => texts.push(text.clone()),
                            ContentPart::ImageUrl { image_url } => files.push(InputFile {
                                param: format!("{param}.image_url"),
                                name: format!("image {}", files.len() + 1),
                                data: image_url.url.clone(),
                            }),
                            ContentPart::File { file } => {
                                if file.file_id.is_some() && file.file_data.is_none() {
                                    return Err(ApiError::invalid(
                                        Some(&format!("{param}.file.file_id")),
                                        "uploaded-file ids are not supported: send the file inline as file_data",
                                    ));
                                }
                                let Some(data) = file.file_data.clone() else {
                                    return Err(ApiError::invalid(Some(&format!("{param}.file")), "a file part needs file_data"));
                                };
                                files.push(InputFile {
                                    param: format!("{param}.file.file_data"),
                                    name: file.filename.clone().unwrap_or_else(|| format!("file {}", files.len() + 1)),
                                    data,
                                });
                            }
                        }
                    }
                }
            }
        }
        if files.is_empty() {
            return Err(ApiError::invalid(
                Some("messages"),
                "no image in the user messages: add an image_url part (a data: URI) or a file part (an image or a PDF)",
            ));
        }
        let text = texts.join("\n");
        let task = match settings.and_then(|s| s.task.as_deref()) {
            Some(name) => Task::from_name(name, None).map_err(|e| ApiError::invalid(Some("dsocr.task"), e.to_string()))?,
            None => task_from_text(&text, "messages")?,
        };
        let mode = mode_spec(settings.and_then(|s| s.mode.as_deref()), settings.and_then(|s| s.max_crops), "dsocr.mode")?;
        let markdown = match settings.and_then(|s| s.output.as_deref()) {
            None | Some("raw") => false,
            Some("markdown") => true,
            Some(other) => return Err(ApiError::invalid(Some("dsocr.output"), format!("output must be raw or markdown, not {other:?}"))),
        };
        let max_new_tokens = match self.max_completion_tokens.or(self.max_tokens) {
            None => max_tokens_cap,
            Some(0) => return Err(ApiError::invalid(Some("max_tokens"), "max_tokens must be at least 1")),
            Some(n) if n > max_tokens_cap => {
                return Err(ApiError::invalid(
                    Some("max_tokens"),
                    format!("max_tokens {n} is over this server's limit of {max_tokens_cap} per page (--max-tokens)"),
                ));
            }
            Some(n) => n,
        };
        let sampling = match self.temperature {
            None | Some(0.0) => Sampling::Greedy,
            Some(t) if t.is_finite() && t > 0.0 && t <= 2.0 => Sampling::Sample {
                temperature: t,
                top_p: self.top_p.unwrap_or(1.0),
                top_k: 0,
                seed: self.seed.unwrap_or_else(rand::random),
            },
            Some(t) => return Err(ApiError::invalid(Some("temperature"), format!("temperature must be between 0 and 2, got {t}"))),
        };
        sampling.validate().map_err(|e| ApiError::invalid(Some("top_p"), e))?;
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if stop.len() > 4 || stop.iter().any(String::is_empty) {
            return Err(ApiError::invalid(Some("stop"), "stop takes up to 4 non-empty strings"));
        }
        let generation = GenerationConfig { max_new_tokens, sampling, ..GenerationConfig::default() };
        Ok(ChatJob { options: OcrOptions { task, mode, generation }, files, stop, markdown })
    }
}

/// The task the user's text asks for: nothing (or a bare `<image>`) is the default document
/// task; a task name or an official prompt selects that task; any other text is a custom prompt
/// (with `<image>` put first unless it is there).
pub fn task_from_text(text: &str, param: &str) -> Result<Task, ApiError> {
    let t = text.trim();
    let bare = t.replace("<image>", "");
    let bare = bare.trim();
    if bare.is_empty() {
        return Ok(Task::Markdown);
    }
    if let Ok(task) = Task::from_name(bare, None) {
        return Ok(task);
    }
    for task in [Task::Markdown, Task::Ocr, Task::FreeOcr, Task::Figure, Task::Describe] {
        if task.prompt().trim_start_matches("<image>\n") == bare {
            return Ok(task);
        }
    }
    custom_task(t, param)
}

/// A custom prompt, by the engine's rule ([`Task::from_name`]: `<image>` put first unless the
/// text has it once; more than once is refused): else 400 about `param`, before any page is read.
pub fn custom_task(text: &str, param: &str) -> Result<Task, ApiError> {
    Task::from_name("custom", Some(text.trim())).map_err(|e| ApiError::invalid(Some(param), e.to_string()))
}

/// Options the loaded model cannot run (a mode of the other architecture, e.g. `large` on
/// DeepSeek-OCR 2) are refused before any work: 400 about `param`.
pub fn check_mode(options: &OcrOptions, arch: Architecture, param: &str) -> Result<(), ApiError> {
    options.for_architecture(arch).map(drop).map_err(|e| ApiError::invalid(Some(param), e.to_string()))
}

/// The mode named `name` (default gundam) with at most `max_crops` tiles; `param` names the field
/// in errors.
pub fn mode_spec(name: Option<&str>, max_crops: Option<usize>, param: &str) -> Result<ModeSpec, ApiError> {
    let mode = match name {
        Some(m) => m.parse::<Mode>().map_err(|e| ApiError::invalid(Some(param), e.to_string()))?.spec(),
        None => Mode::Gundam.spec(),
    };
    match max_crops {
        // The engine's rows are sized for the default tile limit (9): more tiles would not fit.
        Some(crops) if crops > DEFAULT_MAX_TILES => {
            Err(ApiError::invalid(Some("dsocr.max_crops"), format!("max_crops must be at most {DEFAULT_MAX_TILES}")))
        }
        Some(crops) if mode.crop => mode.with_max_tiles(crops).map_err(|e| ApiError::invalid(Some("dsocr.max_crops"), e.to_string())),
        _ => Ok(mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> ChatRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_text_selects_the_task() {
        assert_eq!(task_from_text("", "messages").unwrap(), Task::Markdown);
        assert_eq!(task_from_text("<image>", "messages").unwrap(), Task::Markdown);
        assert_eq!(task_from_text("Free OCR.", "messages").unwrap(), Task::FreeOcr);
        assert_eq!(task_from_text("<image>\n<|grounding|>OCR this image.", "messages").unwrap(), Task::Ocr);
        assert_eq!(task_from_text("describe", "messages").unwrap(), Task::Describe);
        assert_eq!(task_from_text("What is the title?", "messages").unwrap(), Task::Custom("<image>\nWhat is the title?".into()));
        // The engine's rule for custom prompts (Task::from_name), refused as 400 about the field.
        assert_eq!(
            task_from_text("  Compare <image> with the text.\n", "messages").unwrap(),
            Task::Custom("Compare <image> with the text.".into())
        );
        let e = task_from_text("<image> and <image>", "messages").unwrap_err();
        assert_eq!((e.status.as_u16(), e.param.as_deref()), (400, Some("messages")));
        assert!(e.message.contains("<image> 2 times"), "{}", e.message);
    }

    #[test]
    fn a_request_maps_onto_options_and_bad_fields_are_named() {
        let img = serde_json::json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}});
        let ok = request(serde_json::json!({
            "model": "m", "max_tokens": 100, "temperature": 0, "stop": "END",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Free OCR."}, img]}],
            "dsocr": {"mode": "small"}
        }))
        .job("m", 4096)
        .unwrap();
        assert_eq!(ok.options.task, Task::FreeOcr);
        assert_eq!(ok.options.generation.max_new_tokens, 100);
        assert_eq!(ok.options.mode, Mode::Small.spec());
        assert_eq!(ok.stop, vec!["END".to_string()]);
        assert_eq!(ok.files[0].param, "messages[0].content[1].image_url");

        let messages = serde_json::json!([{"role": "user", "content": [img]}]);
        let e = request(serde_json::json!({"model": "other", "messages": messages})).job("m", 4096).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (404, Some("model_not_found")));
        let e = request(serde_json::json!({"model": "m", "messages": messages, "max_tokens": 5000})).job("m", 4096).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = request(serde_json::json!({"model": "m", "messages": messages, "temperature": 7})).job("m", 4096).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"));
        let e = request(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})).job("m", 4096).unwrap_err();
        assert!(e.message.contains("no image"));
        let sampled =
            request(serde_json::json!({"model": "m", "messages": messages, "temperature": 0.5, "seed": 3})).job("m", 4096).unwrap();
        assert!(matches!(sampled.options.generation.sampling, Sampling::Sample { seed: 3, .. }));
    }
}
