//! [`EventStream`]: the body of `GET /api/stream`, a stream of server-sent
//! events that ends with a last `shutdown` event when the drain begins
//! (see `stream.rs` for the route).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Frame;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::app::App;

/// How long a client is told to wait before reconnecting after `shutdown`.
pub const RETRY_HINT_MS: u64 = 1000;

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
    pub(super) fn new(app: Arc<App>, every: Duration) -> Self {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let closing = Box::pin(app.shutdown.closing_token().cancelled_owned());
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
