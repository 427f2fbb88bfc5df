//! [`EventStream`]: the body of `GET /api/stream`, a stream of server-sent
//! events that ends with a last `shutdown` event when the drain begins
//! (see `stream.rs` for the route, `stream/event_id.rs` for the ids).
//!
//! On the wire, a data event and the last one:
//!
//! ```text
//! id: 1234567890123456
//! data: {"id":"1234567890123456"}
//!
//! event: shutdown
//! retry: 1000
//! data: server closing
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Frame;
use tokio::time::{Interval, MissedTickBehavior};

use crate::app::App;

/// How long a client is told to wait before reconnecting after `shutdown`.
pub const RETRY_HINT_MS: u64 = 1000;

/// The body of an event stream.
pub struct EventStream {
    app: Arc<App>,
    ticker: Interval,
    /// Resolves when this stream's goodbye is due: the drain, at the
    /// stream's own instant in the spread window (`--drain-spread`).
    /// Boxed because the future is `!Unpin` and the body must be `Unpin`
    /// to be polled simply.
    /// Resolves to `true` at the drain's goodbye, `false` when the stream
    /// ages out (`--max-connection-age`): the same last event either way.
    closing: Pin<Box<dyn Future<Output = bool> + Send>>,
    /// The id of the next data event. Starts at most at 2^63 - 1
    /// (`MAX_ID` in `stream/event_id.rs`), so adding one per event cannot overflow: that
    /// would take 2^63 events, billions of years at the fastest interval.
    next_id: u64,
    done: bool,
}

impl EventStream {
    /// A stream whose first data event has id `first_id`.
    pub(super) fn new(app: Arc<App>, every: Duration, first_id: u64) -> Self {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let owner = app.clone();
        let key = app.shutdown.spread().draw(u64::MAX);
        let closing = Box::pin(async move {
            let age = owner.config.max_connection_age;
            tokio::select! {
                _ = owner.shutdown.goodbye() => true,
                _ = crate::conn::max_age::reached(age, key) => false,
            }
        });
        app.metrics.streams_open.fetch_add(1, Relaxed);
        EventStream {
            app,
            ticker,
            closing,
            next_id: first_id,
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
        if let Poll::Ready(by_drain) = self.closing.as_mut().poll(cx) {
            self.done = true;
            if by_drain {
                self.app
                    .metrics
                    .streams_ended_by_shutdown
                    .fetch_add(1, Relaxed);
            }
            // No `id:` line: the client's last event id stays that of the
            // last data event, which is where its next stream continues.
            let retry = retry_hint(&self.app);
            let last = format!("event: shutdown\nretry: {retry}\ndata: server closing\n\n");
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(last)))));
        }
        match self.ticker.poll_tick(cx) {
            Poll::Ready(_) => {
                let id = self.next_id;
                self.next_id += 1;
                // The id in `data` is a string: it is past 2^53, where a
                // JSON number loses digits in JavaScript.
                let event = format!("id: {id}\ndata: {{\"id\":\"{id}\"}}\n\n");
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// The `retry:` of the last event, in milliseconds: [`RETRY_HINT_MS`], or
/// with `--drain-spread` a jittered draw around it (half to one and a half
/// times), so that the clients told in the same instant do not all come
/// back in the same one either.
fn retry_hint(app: &App) -> u64 {
    let spread = app.shutdown.spread();
    if spread.window().is_zero() {
        return RETRY_HINT_MS;
    }
    RETRY_HINT_MS / 2 + spread.draw(RETRY_HINT_MS)
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.app.metrics.streams_open.fetch_sub(1, Relaxed);
    }
}
