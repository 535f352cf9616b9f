//! A request body sent without a Content-Length that runs past `--max-body-mib` gets the API's
//! 413 (OpenAI-shaped, naming the limit), as a body that declares its length does.

use std::sync::Arc;

use axum::body::Body;
use dsocr_serve::{AppState, ServeOptions, router};
use serde_json::Value;
use tower::ServiceExt;

/// 2 MB in chunks of 512 KiB, with no length declared (as `Transfer-Encoding: chunked` sends).
fn chunked_body() -> Body {
    let chunks = (0..4).map(|_| Ok::<_, std::io::Error>(vec![b' '; 512 << 10]));
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
