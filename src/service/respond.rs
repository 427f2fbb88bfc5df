//! Building responses: every status the service can answer, in one place.

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde::Serialize;

use super::download::DownloadBody;
use super::event_stream::EventStream;
use crate::store::StoredResponse;

/// The response body: a whole buffer, or a body that outlives the
/// request timeout (an event stream, a download). An enum rather than a
/// `Box<dyn Body>` so that an ordinary response costs no extra
/// allocation; the long-lived bodies are boxed, so that the ordinary
/// response, moved from the handler through the service to hyper, stays
/// small (a whole buffer is 32 bytes, an event stream three times that).
pub type Body = Either<Full<Bytes>, Box<Either<EventStream, DownloadBody>>>;

/// A plain-text response.
pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut res = Response::new(Either::Left(Full::new(Bytes::from_static(body.as_bytes()))));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// A response with no body.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut res = Response::new(Either::Left(Full::new(Bytes::new())));
    *res.status_mut() = status;
    res
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut res = Response::new(Either::Left(Full::new(Bytes::from(bytes))));
            *res.status_mut() = status;
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "serialization failed\n"),
    }
}

/// A write's response as it was stored (`store::once`): its status, its
/// `Location`, its body (JSON when there is one). `replayed` marks the
/// answer to a retry with `Idempotent-Replayed: true`, as Stripe's API
/// does, so that a client can tell it did not write.
pub fn stored(stored: StoredResponse, replayed: bool) -> Response<Body> {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let has_body = !stored.body.is_empty();
    let mut res = Response::new(Either::Left(Full::new(Bytes::from(stored.body))));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    if has_body {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Some(loc) = stored.location.and_then(|l| HeaderValue::try_from(l).ok()) {
        headers.insert(header::LOCATION, loc);
    }
    if replayed {
        headers.insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    res
}

/// `{"error": "..."}` with `status`.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    #[derive(Serialize)]
    struct Error {
        error: String,
    }
    json(
        status,
        &Error {
            error: message.into(),
        },
    )
}

/// 404 for a path we do not serve.
pub fn not_found() -> Response<Body> {
    json_error(StatusCode::NOT_FOUND, "not found")
}

/// 405 naming the methods the path does take.
pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut res = json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// 204 naming the methods the path takes: the answer to `OPTIONS`.
pub fn options(allow: &'static str) -> Response<Body> {
    let mut res = empty(StatusCode::NO_CONTENT);
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// The answer to a method the path's handlers do not take: `OPTIONS` is
/// told which ones they do, anything else is refused with the same list.
pub fn unhandled_method(method: &Method, allow: &'static str) -> Response<Body> {
    if *method == Method::OPTIONS {
        options(allow)
    } else {
        method_not_allowed(allow)
    }
}

/// Marks a response as the last on its connection. Used where the request
/// body may be left unread (hyper could not reuse the connection anyway)
/// and where the server is going away.
pub fn closing(mut res: Response<Body>) -> Response<Body> {
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// 503 for a request that will not be served because the server is
/// closing: retry, elsewhere or in a second.
pub fn retry_elsewhere(message: &'static str) -> Response<Body> {
    let mut res = closing(json_error(StatusCode::SERVICE_UNAVAILABLE, message));
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}
