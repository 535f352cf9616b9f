//! A request body sent without a Content-Length that runs past `--max-body-mib` gets the API's
//! 413 (OpenAI-shaped, naming the limit), as a body that declares its length does, and only once
//! the client has sent all of it (answering mid-upload breaks the client's write); one within
//! the limit reaches the handler whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use dsocr_serve::{AppState, ServeOptions, router};
use serde_json::Value;
use tower::ServiceExt;

/// 2 MB in chunks of 512 KiB, with no length declared (as `Transfer-Encoding: chunked` sends).
fn chunked_body() -> Body {
    counted_chunks(4, Arc::default())
}

/// `n` chunks of 512 KiB of spaces, no length declared; `sent` counts those the server took.
fn counted_chunks(n: usize, sent: Arc<AtomicUsize>) -> Body {
    let chunks = (0..n).map(move |_| {
        sent.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(vec![b' '; 512 << 10])
    });
    Body::from_stream(futures_util::stream::iter(chunks))
}

async fn error_of(response: axum::response::Response) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    serde_json::from_slice(&bytes).expect("an OpenAI-shaped error body")
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_gets_the_apis_413() {
    let state = Arc::new(AppState::new(ServeOptions { max_body_bytes: 1 << 20, ..ServeOptions::default() }));
    let request =
        axum::http::Request::post("/v1/chat/completions").header("content-type", "application/json").body(chunked_body()).unwrap();
    let response = router(state).oneshot(request).await.unwrap();
    assert_eq!(response.status(), axum::http::StatusCode::PAYLOAD_TOO_LARGE);
    let v = error_of(response).await;
    assert_eq!(v["error"]["code"], "request_too_large", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("--max-body-mib") && message.contains("1048576"), "{message}");
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_is_read_to_its_end_before_the_413() {
    let state = Arc::new(AppState::new(ServeOptions { max_body_bytes: 1 << 20, ..ServeOptions::default() }));
    for path in ["/v1/chat/completions", "/v1/ocr"] {
        let sent = Arc::new(AtomicUsize::new(0));
        let request = axum::http::Request::post(path)
            .header("content-type", "multipart/form-data; boundary=x")
            .body(counted_chunks(8, sent.clone()))
            .unwrap();
        let response = router(state.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), axum::http::StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(response.headers()["connection"], "close", "{path}");
        // All 4 MB were taken from the client, not the first 1 MB only.
        assert_eq!(sent.load(Ordering::SeqCst), 8, "{path}: the body was not read to its end before the answer");
    }
}

#[tokio::test]
async fn a_chunked_body_within_the_limit_reaches_the_handler_whole() {
    let state = Arc::new(AppState::new(ServeOptions { max_body_bytes: 4 << 20, ..ServeOptions::default() }));
    // 2 MB of spaces then a brace: JSON that ends early, so the handler's error quotes the
    // column it stopped at, which is past everything the client sent.
    let chunks = (0..4).map(|_| Ok::<_, std::io::Error>(vec![b' '; 512 << 10])).chain(std::iter::once(Ok(b"{".to_vec())));
    let request = axum::http::Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let response = router(state).oneshot(request).await.unwrap();
    assert_eq!(response.status(), axum::http::StatusCode::BAD_REQUEST);
    let v = error_of(response).await;
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("column {}", (2 << 20) + 1)), "{message}");
}
