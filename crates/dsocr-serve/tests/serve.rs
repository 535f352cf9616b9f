//! The server on loopback with the parity model on the CPU: every endpoint, streaming, bad
//! input, the API key, cancellation, the queue limit, the pixel limit of a request, prompts and
//! modes that cannot run, and many concurrent clients.

mod common;

use std::time::Duration;

use common::*;
use dsocr::engine::{GenerationConfig, OcrOptions, Task};
use dsocr::preprocess::{LoadOptions, Mode, load_image_from_memory};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// What the library gives for the banner image with the describe task in tiny mode.
fn reference(dir: &std::path::Path, max_tokens: usize) -> String {
    let ocr = load(dir);
    let (_, bytes) = banner();
    let image = load_image_from_memory(&bytes, "banner", &LoadOptions::default()).unwrap();
    let options = OcrOptions {
        task: Task::Describe,
        mode: Mode::Tiny.spec(),
        generation: GenerationConfig { max_new_tokens: max_tokens, ..GenerationConfig::default() },
    };
    ocr.ocr(&image, &options).unwrap().raw
}

fn error_of(v: &Value) -> (&str, Option<&str>) {
    (v["error"]["message"].as_str().expect("an OpenAI-shaped error body"), v["error"]["param"].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_whole_and_streamed_equal_the_library_and_health_waits_for_the_model() {
    let Some(dir) = model("chat_whole_and_streamed") else { return };
    let server = start(&dir, serve_options(), engine_options(4), false).await;
    let http = reqwest::Client::new();
    let health = http.get(format!("{}/health", server.url)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE, "503 until the model is loaded");
    let (uri, _) = banner();
    let early = http
        .post(format!("{}/v1/chat/completions", server.url))
        .json(&chat_body("deepseek-ocr", "describe", &uri, 6, false))
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(early.headers().contains_key("retry-after"));

    let d = dir.clone();
    let service = tokio::task::spawn_blocking(move || dsocr::OcrService::start(move || Ok(load(&d)), engine_options(4))).await.unwrap();
    server.state.set_service(service);
    assert_eq!(http.get(format!("{}/health", server.url)).send().await.unwrap().status(), StatusCode::OK);
    let models: Value = http.get(format!("{}/v1/models", server.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "deepseek-ocr");

    let expected = tokio::task::spawn_blocking({
        let d = dir.clone();
        move || reference(&d, 6)
    })
    .await
    .unwrap();
    let whole: Value = http
        .post(format!("{}/v1/chat/completions", server.url))
        .json(&chat_body("deepseek-ocr", "Describe this image in detail.", &uri, 6, false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["message"]["content"].as_str().unwrap(), expected, "the server's text is the library's");
    assert_eq!(whole["choices"][0]["finish_reason"], "length", "6 tokens of random weights end on the budget");
    assert_eq!(whole["usage"]["completion_tokens"], 6);
    assert_eq!(whole["usage"]["prompt_tokens"], 81, "the banner in tiny mode: 73 image tokens + the prompt");

    let mut body = chat_body("deepseek-ocr", "describe", &uri, 6, true);
    body["stream_options"] = json!({ "include_usage": true });
    let streamed = http.post(format!("{}/v1/chat/completions", server.url)).json(&body).send().await.unwrap();
    assert_eq!(streamed.headers()["content-type"], "text/event-stream");
    let (content, done, chunks) = sse_content(&streamed.text().await.unwrap());
    assert_eq!(content, expected, "streamed text equals the whole");
    assert!(done, "the stream ends with [DONE]");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "length"));
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 6, "a usage chunk last");

    // A stop sequence taken from the middle of the text ends it there.
    let cut = expected.char_indices().nth(expected.chars().count() / 2).map(|(i, _)| i).unwrap();
    let stop: String = expected[cut..].chars().take(2).collect();
    let mut body = chat_body("deepseek-ocr", "describe", &uri, 6, false);
    body["stop"] = json!([stop]);
    let stopped: Value = http.post(format!("{}/v1/chat/completions", server.url)).json(&body).send().await.unwrap().json().await.unwrap();
    let text = stopped["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(text, &expected[..expected.find(&stop).unwrap()]);
    assert_eq!(stopped["choices"][0]["finish_reason"], "stop");

    let metrics = http.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("dsocr_requests_total{endpoint=\"chat\",status=\"200\"} 3"), "{metrics}");
    assert!(metrics.contains("dsocr_requests_total{endpoint=\"chat\",status=\"503\"} 1"), "{metrics}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_a_4xx_that_says_what_was_wrong() {
    let Some(dir) = model("bad_input") else { return };
    let options = dsocr_serve::ServeOptions { api_key: Some("sesame".into()), max_body_bytes: 4 << 20, ..serve_options() };
    let server = start(&dir, options, engine_options(2), true).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", server.url);
    let (uri, _) = banner();
    let post = |body: Value, key: Option<&'static str>| {
        let mut r = http.post(&url).json(&body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    let key = Some("sesame");

    let r = post(chat_body("deepseek-ocr", "describe", &uri, 4, false), None).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no key");
    let r = post(chat_body("deepseek-ocr", "describe", &uri, 4, false), Some("wrong")).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "wrong key");
    assert!(error_of(&r.json().await.unwrap()).0.contains("API key"));
    assert_eq!(http.get(format!("{}/health", server.url)).send().await.unwrap().status(), StatusCode::OK, "health needs no key");

    let r = http.post(&url).bearer_auth("sesame").header("content-type", "application/json").body("{not json").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(error_of(&r.json().await.unwrap()).0.contains("not a valid chat completion request"));

    let r = post(chat_body("gpt-4o", "describe", &uri, 4, false), key).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");

    let junk = "data:image/png;base64,aGVsbG8gd29ybGQ=";
    let r = post(chat_body("deepseek-ocr", "describe", junk, 4, false), key).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(error_of(&v).1, Some("messages[0].content[1].image_url"));

    let r = post(chat_body("deepseek-ocr", "describe", "https://example.com/page.png", 4, false), key).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(error_of(&r.json().await.unwrap()).0.contains("remote URLs"));

    let pdf = |name: &str| {
        let bytes = std::fs::read(dsocr_testdata::shared_root().join("pdfs").join(name)).unwrap();
        format!("data:application/pdf;base64,{}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes))
    };
    let mut body = chat_body("deepseek-ocr", "describe", &uri, 4, false);
    body["messages"][0]["content"][1] =
        json!({ "type": "file", "file": { "filename": "secret.pdf", "file_data": pdf("enc-aes256-userpw.pdf") } });
    let r = post(body, key).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(error_of(&r.json().await.unwrap()).0.contains("encrypted"), "an encrypted PDF is named as such");

    let corrupt = format!(
        "data:application/pdf;base64,{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"%PDF-1.7\nnothing else")
    );
    let r = post(chat_body("deepseek-ocr", "describe", &corrupt, 4, false), key).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "invalid_pdf");

    let r = post(chat_body("deepseek-ocr", "describe", &uri, 100_000, false), key).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&r.json().await.unwrap()).1, Some("max_tokens"));

    let huge = format!("data:image/png;base64,{}", "A".repeat(5 << 20));
    let r = post(chat_body("deepseek-ocr", "describe", &huge, 4, false), key).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "bodies over --max-body-mib are refused");
    assert_eq!(r.headers()["connection"], "close", "the refused body's connection is not reused");
    let v: Value = r.json().await.unwrap();
    assert!(error_of(&v).0.contains("--max-body-mib"), "the 413 says which limit and how to raise it: {v}");

    // The server still serves after all that.
    let r = post(chat_body("deepseek-ocr", "describe", &uri, 3, false), key).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ocr_upload_returns_every_page_with_regions_and_the_boxes_image() {
    let Some(dir) = model("ocr_upload") else { return };
    let server = start(&dir, serve_options(), engine_options(4), true).await;
    let http = reqwest::Client::new();
    let pdf = std::fs::read(dsocr_testdata::shared_root().join("pdfs/synthetic-table-cjk-nonembedded.pdf")).unwrap();
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(pdf).file_name("table.pdf"))
        .text("task", "ocr")
        .text("mode", "tiny")
        .text("max_tokens", "4")
        .text("boxes_image", "true");
    let r = server.post_ocr(&http, form).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let pages = v["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2, "both pages of the PDF");
    for (k, p) in pages.iter().enumerate() {
        assert_eq!(p["page"], k + 1);
        assert_eq!(p["tokens"], 4);
        assert!(p["raw"].is_string() && p["markdown"].is_string() && p["regions"].is_array());
        assert!(p["width"].as_u64().unwrap() > 100);
        assert!(p["boxes_image"].as_str().unwrap().starts_with("data:image/jpeg;base64,"));
    }
    assert_eq!(v["usage"]["completion_tokens"], 8);

    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(b"GIF89a nope".to_vec()).file_name("x.gif"));
    let r = server.post_ocr(&http, form).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let form = reqwest::multipart::Form::new().text("mode", "tiny");
    let r = server.post_ocr(&http, form).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "no file");

    let page = http.get(&server.url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<title>dsocr</title>") && page.contains("/v1/chat/completions"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pdf_page_that_cannot_be_rendered_fails_alone_and_the_others_are_answered() {
    let Some(dir) = model("unrenderable_page") else { return };
    // Pages up to 300 MP pass the server's limit, but the renderer draws at most 100 MP a page:
    // page 2 (12,000 points square at 72 DPI: 144 MP) cannot be rendered, page 1 can.
    let mut options = serve_options();
    options.input.max_pixels = 300_000_000;
    options.input.pdf_dpi = 72.0;
    let server = start(&dir, options, engine_options(4), true).await;
    let http = reqwest::Client::new();
    let pdf = blank_pdf_of_sizes(&[(300.0, 300.0), (12_000.0, 12_000.0)]);
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(pdf.clone()).file_name("mixed.pdf"))
        .text("task", "ocr")
        .text("mode", "tiny")
        .text("max_tokens", "4");
    let r = server.post_ocr(&http, form).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "one page fails, not the request");
    let v: Value = r.json().await.unwrap();
    let pages = v["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!((pages[0]["page"].as_u64(), pages[0]["tokens"].as_u64()), (Some(1), Some(4)));
    let error = pages[1]["error"].as_str().expect("page 2 has an error");
    assert!(error.contains("mixed.pdf") && error.contains("page 2") && error.contains("pixels"), "{error}");

    let uri = data_uri("application/pdf", &pdf);
    let r = http
        .post(format!("{}/v1/chat/completions", server.url))
        .json(&chat_body("deepseek-ocr", "ocr", &uri, 4, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("<!-- dsocr: page 2 failed"), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_goes_away_cancels_its_page_and_a_full_queue_answers_429() {
    let Some(dir) = model("cancel_and_queue") else { return };
    let options = dsocr_serve::ServeOptions { max_queued_pages: 1, ..serve_options() };
    let server = start(&dir, options, engine_options(1), true).await;
    let http = reqwest::Client::new();
    let (uri, _) = banner();
    let url = format!("{}/v1/chat/completions", server.url);

    // A long streamed request: read its first content, then drop it.
    let r = http.post(&url).json(&chat_body("deepseek-ocr", "describe", &uri, 64, true)).send().await.unwrap();
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"content\":\"") || seen.matches("data:").count() < 3 {
        seen += &String::from_utf8_lossy(&body.next().await.unwrap().unwrap());
    }
    // While it runs, the queue (one page) is full.
    let busy = http.post(&url).json(&chat_body("deepseek-ocr", "describe", &uri, 4, false)).send().await.unwrap();
    assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(busy.headers()["retry-after"], "1");
    drop(body);

    let service = server.state.service().unwrap();
    let t0 = std::time::Instant::now();
    while service.load().pages > 0 || service.stats().cancelled == 0 {
        assert!(t0.elapsed() < Duration::from_secs(60), "the page was not cancelled: {:?}", service.load());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(service.stats().tokens < 64, "the cancelled page stopped before its budget");
    let after = http.post(&url).json(&chat_body("deepseek-ocr", "describe", &uri, 4, false)).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::OK, "its row went to the next request");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn thirty_two_clients_four_requests_each_all_complete_and_equal_alone() {
    let Some(dir) = model("load_test") else { return };
    let server = start(&dir, serve_options(), engine_options(16), true).await;
    let http = reqwest::Client::new();
    let (uri, _) = banner();
    let url = format!("{}/v1/chat/completions", server.url);
    let alone: Value =
        http.post(&url).json(&chat_body("deepseek-ocr", "describe", &uri, 3, false)).send().await.unwrap().json().await.unwrap();
    let expected = alone["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    let mut clients = Vec::new();
    for c in 0..32 {
        let (http, url, uri, expected) = (http.clone(), url.clone(), uri.clone(), expected.clone());
        clients.push(tokio::spawn(async move {
            for k in 0..4 {
                let stream = (c + k) % 2 == 0;
                let r = http.post(&url).json(&chat_body("deepseek-ocr", "describe", &uri, 3, stream)).send().await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                let text = if stream {
                    let (content, done, _) = sse_content(&r.text().await.unwrap());
                    assert!(done);
                    content
                } else {
                    let v: Value = r.json().await.unwrap();
                    v["choices"][0]["message"]["content"].as_str().unwrap().to_string()
                };
                assert_eq!(text, expected, "client {c} request {k}");
            }
        }));
    }
    for c in clients {
        tokio::time::timeout(Duration::from_secs(600), c).await.expect("the load test ends in time").unwrap();
    }
    let metrics = http.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("dsocr_requests_total{endpoint=\"chat\",status=\"200\"} 129"), "{metrics}");
    assert!(metrics.contains("dsocr_completion_tokens_total 387"), "129 requests × 3 tokens: {metrics}");
    assert!(metrics.contains("dsocr_pages_in_service 0"));
    assert!(server.state.service().unwrap().stats().peak_in_flight > 1, "clients shared the batch");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remote_urls_are_fetched_only_when_allowed() {
    let Some(dir) = model("remote_urls") else { return };
    // A file server on loopback holding the banner.
    let (_, png) = banner();
    let files = axum::Router::new().route("/banner.png", axum::routing::get(move || async move { png.clone() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let remote = format!("http://{}/banner.png", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, files).await });

    let options = dsocr_serve::ServeOptions { allow_remote_urls: true, ..serve_options() };
    let server = start(&dir, options, engine_options(2), true).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", server.url);
    let (uri, _) = banner();
    let inline: Value =
        http.post(&url).json(&chat_body("deepseek-ocr", "describe", &uri, 3, false)).send().await.unwrap().json().await.unwrap();
    let fetched = http.post(&url).json(&chat_body("deepseek-ocr", "describe", &remote, 3, false)).send().await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    let fetched: Value = fetched.json().await.unwrap();
    assert_eq!(
        fetched["choices"][0]["message"]["content"], inline["choices"][0]["message"]["content"],
        "the fetched image is the same page"
    );
    let missing =
        http.post(&url).json(&chat_body("deepseek-ocr", "describe", &remote.replace("banner", "nothing"), 3, false)).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert!(error_of(&missing.json().await.unwrap()).0.contains("cannot fetch"));
    server.stop().await;

    let server = start(&dir, serve_options(), engine_options(2), true).await;
    let refused = http
        .post(format!("{}/v1/chat/completions", server.url))
        .json(&chat_body("deepseek-ocr", "describe", &remote, 3, false))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(error_of(&refused.json().await.unwrap()).0.contains("--allow-remote-urls"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pixels_of_all_a_requests_pages_together_are_limited_before_any_is_decoded() {
    let Some(dir) = model("request_pixels") else { return };
    let mut options = serve_options();
    options.input.max_pixels = 1_000_000;
    assert_eq!(options.input.max_request_pixels(), 10_000_000);
    let server = start(&dir, options, engine_options(2), true).await;
    let http = reqwest::Client::new();
    let upload = |pdf: Vec<u8>| {
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(pdf).file_name("blank.pdf"))
            .text("mode", "tiny")
            .text("max_tokens", "2");
        server.post_ocr(&http, form)
    };

    // Eleven blank pages of 1000×1000 pixels at 144 DPI, each within the page limit: a few
    // hundred bytes that would be 11 MP (33 MB) once rendered.
    let r = upload(blank_pdf(11, 500.0, 500.0)).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "request_too_large");
    let message = error_of(&v).0;
    assert!(
        message.contains("11000000 pixels") && message.contains("--max-pixels"),
        "the 413 says which limit and how to raise it: {message}"
    );

    // The same through the chat API: eleven PNGs of one colour.
    let png = data_uri("image/png", &solid_png(1000, 1000));
    let r = http
        .post(format!("{}/v1/chat/completions", server.url))
        .json(&chat_with_images("describe", &vec![png; 11], 2, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "request_too_large");

    // Within the limit, such pages are read.
    let r = upload(blank_pdf(2, 500.0, 500.0)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["pages"].as_array().unwrap().len(), 2);
    assert_eq!(v["pages"][1]["width"], 1000);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_custom_prompt_gets_its_image_and_prompts_that_cannot_run_get_400() {
    let Some(dir) = model("custom_prompts") else { return };
    let server = start(&dir, serve_options(), engine_options(2), true).await;
    let http = reqwest::Client::new();
    let (uri, png) = banner();
    let task_ocr = |task: &'static str, prompt: String| {
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(png.clone()).file_name("banner.png"))
            .text("task", task)
            .text("prompt", prompt)
            .text("mode", "tiny")
            .text("max_tokens", "2");
        server.post_ocr(&http, form)
    };
    let ocr = |prompt: String| task_ocr("custom", prompt);

    // No <image>: put first, as the chat API does with the user's text.
    let r = ocr("What is the title?".into()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["pages"][0]["error"], Value::Null, "{v}");
    assert_eq!(v["pages"][0]["tokens"], 2);

    // Two <image>s for one page: 400 about the prompt, before any page is read.
    let r = ocr("<image> and <image>: which is older?".into()).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(error_of(&v).1, Some("prompt"));
    assert!(error_of(&v).0.contains("<image> 2 times"), "{v}");
    // The text to locate comes after the page's own <image>: one in it is the prompt's fault.
    let r = task_ocr("locate", "<image> Total".into()).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(error_of(&v).1, Some("prompt"), "{v}");
    let r = http
        .post(format!("{}/v1/chat/completions", server.url))
        .json(&chat_body("deepseek-ocr", "<image> and <image>", &uri, 2, true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a stream is not started for a prompt that cannot run");
    assert_eq!(error_of(&r.json().await.unwrap()).1, Some("messages"));

    // A prompt longer than the engine's rows fails every page in the engine: 400, not 200.
    let r = ocr("word ".repeat(3000)).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert!(error_of(&v).0.contains("page 1:"), "{v}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mode_the_loaded_model_cannot_run_gets_400_before_any_work() {
    let Some(dir) = model_ocr2("ocr2_modes") else { return };
    let server = start(&dir, serve_options(), engine_options(2), true).await;
    let http = reqwest::Client::new();
    let (uri, png) = banner();
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(png).file_name("banner.png"))
        .text("mode", "large")
        .text("max_tokens", "2");
    let r = server.post_ocr(&http, form).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(error_of(&v).1, Some("mode"));
    assert!(error_of(&v).0.contains("gundam"), "the error says which modes run: {v}");

    // Streamed: a 400, not a 200 stream of failed pages (chat_body asks for tiny mode).
    let r = http
        .post(format!("{}/v1/chat/completions", server.url))
        .json(&chat_body("deepseek-ocr", "describe", &uri, 2, true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&r.json().await.unwrap()).1, Some("dsocr.mode"));
    server.stop().await;
}
