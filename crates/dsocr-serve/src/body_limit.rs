//! `--max-body-mib`: request bodies over the limit get the API's 413 after the rest of the body
//! has been read and discarded (for at most [`LINGER`]), whether or not they declare a length.
//!
//! Answering while the client is still writing makes the client's write fail (a broken pipe)
//! and most HTTP clients then report that instead of the answer: what nginx avoids with its
//! "lingering close". A body that declares its length (`Content-Length`) is judged by it before
//! anything is read; one sent without (`Transfer-Encoding: chunked`) is read here, counted, and
//! handed on whole when it is within the limit (the handlers read whole bodies anyway).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;

use crate::{ApiError, AppState, endpoint_of};

/// How long a refused body is read and discarded before the 413 is sent.
pub(crate) const LINGER: Duration = Duration::from_secs(5);

/// The middleware: refuse bodies over the limit (declared or counted), draining them first.
pub(crate) async fn refuse_oversize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let limit = state.options.max_body_bytes;
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let endpoint = endpoint_of(&request);
    let count = |status: u16| {
        if let Some(endpoint) = endpoint {
            state.metrics.request(endpoint, status);
        }
    };
    match declared {
        Some(n) if n > limit as u64 => {
            tracing::info!(declared = n, limit, "refusing a request body over --max-body-mib");
            drain(request.into_body().into_data_stream()).await;
            count(413);
            ApiError::too_large(Some(n), limit).into_response()
        }
        // Within the limit as declared: the extractors' limit (DefaultBodyLimit) holds it to that.
        Some(_) => next.run(request).await,
        None if !has_body(&request) => next.run(request).await,
        None => {
            let (parts, body) = request.into_parts();
            let mut stream = body.into_data_stream();
            let mut read = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        count(400);
                        return ApiError::invalid(None, format!("the request body cannot be read: {e}")).into_response();
                    }
                };
                if read.len() + chunk.len() > limit {
                    tracing::info!(read = read.len() + chunk.len(), limit, "refusing a request body without a length over --max-body-mib");
                    drain(stream).await;
                    count(413);
                    return ApiError::too_large(None, limit).into_response();
                }
                read.extend_from_slice(&chunk);
            }
            next.run(Request::from_parts(parts, Body::from(read))).await
        }
    }
}

/// A request without a declared length may still carry a body (chunked); GET and HEAD without
/// `Transfer-Encoding` carry none and pass untouched.
fn has_body(request: &Request) -> bool {
    request.headers().contains_key(header::TRANSFER_ENCODING)
        || !matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD)
}

/// Read and discard what is left of a body, for at most [`LINGER`].
async fn drain(mut body: BodyDataStream) {
    let discard = async { while let Some(Ok(_)) = body.next().await {} };
    let _ = tokio::time::timeout(LINGER, discard).await;
}

/// A body refused for its size may be left partly unread (past [`LINGER`]), so the connection
/// cannot carry another request: say so (`Connection: close`), or a client that pools
/// connections sends its next request into a closed one.
pub(crate) async fn close_refused_bodies(mut response: Response) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response.headers_mut().insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    response
}
