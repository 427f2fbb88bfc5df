//! `HEAD`: the answer `GET` would get, without its body.
//!
//! RFC 9110 §9.3.2: a `HEAD` answer has the status and the headers of the
//! `GET` answer, and no body. hyper leaves out the body of an HTTP/1 `HEAD`
//! answer itself, but over HTTP/2 it would send the body as DATA frames,
//! which clients reject (curl: "stream 1 was not closed cleanly:
//! PROTOCOL_ERROR"; Go: "received DATA on a HEAD request"). So the service
//! routes `HEAD` like `GET` and then takes the body away here, the same way
//! for both protocols.
//!
//! What the body told hyper stays: a whole buffer knows its size, and it
//! becomes the `Content-Length` that `GET` would have sent. An event stream
//! has no length; its answer ends after the headers, and dropping the
//! stream here ends it before it is ever polled (its `Drop` takes it off
//! `streams_open` again).

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Body as _;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::respond::Body;

/// `res`, the answer to the same request as a `GET`, with its body
/// replaced by an empty one.
pub fn without_body(res: Response<Body>) -> Response<Body> {
    let (mut parts, body) = res.into_parts();
    if let Some(len) = body.size_hint().exact()
        && may_have_length(parts.status)
    {
        parts
            .headers
            .entry(header::CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(len));
    }
    // The GET body goes here, unsent: for an event stream this is its end.
    drop(body);
    // An empty `Full` is at its end from the start, so hyper sends the
    // headers alone: over HTTP/2 one HEADERS frame with END_STREAM, no
    // DATA frame at all.
    Response::from_parts(parts, Either::Left(Full::new(Bytes::new())))
}

/// RFC 9110 §8.6: no `Content-Length` on 1xx, 204 or 304.
fn may_have_length(status: StatusCode) -> bool {
    !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
}
