//! `GET /api/stream`: server-sent events that end when the server closes.
//!
//! A stream can outlive any reasonable shutdown deadline, so waiting for it
//! is pointless and killing it looks like a crash to the client. Instead the
//! body selects on the server's `closing` token (the article's `closing`
//! channel) and, when it fires, sends a last `event: shutdown` with a
//! `retry:` hint and ends the body cleanly. A well-behaved client reconnects
//! — to another instance, since this one no longer accepts.
//!
//! There is no handler task: the body itself is the state machine hyper
//! polls. When the client disconnects, hyper drops the body and the stream
//! is gone; nothing else needs to notice.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Either;
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::query;
use super::respond::{self, Body};
use crate::App;

/// How long a client is told to wait before reconnecting after `shutdown`.
pub const RETRY_HINT_MS: u64 = 1000;

/// Starts an event stream: one `data:` event every `interval_ms` (default
/// 1000, 10–60000).
pub fn stream(app: &Arc<App>, req: &Request<Incoming>) -> Response<Body> {
    let interval = match query::number(req.uri().query(), "interval_ms", 10, 60_000, Some(1000)) {
        Ok(ms) => Duration::from_millis(ms.unwrap_or(1000)),
        Err(e) => return respond::json_error(StatusCode::BAD_REQUEST, e),
    };
    let mut res = Response::new(Either::Right(EventStream::new(app.clone(), interval)));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// The body of an event stream.
pub struct EventStream {
    app: Arc<App>,
    ticker: Interval,
    /// Resolves when the server starts draining. Boxed because the future
    /// is `!Unpin` and the body must be `Unpin` to be polled simply.
    closing: Pin<Box<WaitForCancellationFutureOwned>>,
    seq: u64,
    done: bool,
}

impl EventStream {
    fn new(app: Arc<App>, every: Duration) -> Self {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let closing = Box::pin(app.closing.clone().cancelled_owned());
        app.metrics.streams_open.fetch_add(1, Relaxed);
        EventStream {
            app,
            ticker,
            closing,
            seq: 0,
            done: false,
        }
    }
}

impl hyper::body::Body for EventStream {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        // Closing is checked before the ticker so that a tick that races
        // with shutdown cannot delay the final event.
        if self.closing.as_mut().poll(cx).is_ready() {
            self.done = true;
            self.app
                .metrics
                .streams_ended_by_shutdown
                .fetch_add(1, Relaxed);
            let last = format!("event: shutdown\nretry: {RETRY_HINT_MS}\ndata: server closing\n\n");
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(last)))));
        }
        match self.ticker.poll_tick(cx) {
            Poll::Ready(_) => {
                self.seq += 1;
                let event = format!("id: {0}\ndata: {{\"seq\":{0}}}\n\n", self.seq);
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.app.metrics.streams_open.fetch_sub(1, Relaxed);
    }
}
