//! `GET /api/stream`: server-sent events that end when the server closes.
//!
//! A stream can outlive any reasonable shutdown deadline, so waiting for it
//! is pointless and killing it looks like a crash to the client. Instead the
//! body selects on the server's `closing` token (the article's `closing`
//! channel) and, when it fires, sends a last `event: shutdown` with a
//! `retry:` hint and ends the body cleanly. A well-behaved client reconnects
//! — to another instance, since this one no longer accepts.
//!
//! There is no handler task: the body itself ([`EventStream`]) is the state
//! machine hyper polls. When the client disconnects, hyper drops the body
//! and the stream is gone; nothing else needs to notice.
//!
//! Each data event has an id a reconnecting client sends back as
//! `Last-Event-ID`, and the stream it reconnects to, here or on the next
//! process, continues after it: see `stream/event_id.rs`.

mod event_id;

use std::sync::Arc;
use std::time::Duration;

use http_body_util::Either;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::event_stream::EventStream;
use super::query::Query;
use super::respond::{self, Body};
use crate::app::App;

/// Starts an event stream: one `data:` event every `interval_ms` (default
/// 1000, 10–60000), its ids continuing after `Last-Event-ID` if the
/// request has one.
pub fn stream(app: &Arc<App>, req: &Request<Incoming>) -> Response<Body> {
    let interval = match Query::parse(req.uri().query())
        .and_then(|q| q.number("interval_ms", 10, 60_000, Some(1000)))
    {
        Ok(ms) => Duration::from_millis(ms.unwrap_or(1000)),
        Err(e) => return respond::json_error(StatusCode::BAD_REQUEST, e),
    };
    let first_id = match event_id::resume_after(req.headers()) {
        Ok(resumed) => resumed.unwrap_or_else(event_id::fresh_start),
        Err(e) => return respond::json_error(StatusCode::BAD_REQUEST, e),
    };
    let body = EventStream::new(app.clone(), interval, first_id);
    let mut res = Response::new(Either::Right(Box::new(Either::Left(body))));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}
