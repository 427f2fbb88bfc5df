//! The write-stall limit for HTTP/2 streams: a stream whose client keeps
//! its flow-control window shut is reset, not held for ever.
//!
//! On HTTP/1 a client that stops reading stops the socket, and
//! `write_stall` sees it. HTTP/2 has a second way to stop reading that
//! the socket never sees: flow control (RFC 9113 §5.2). A client that
//! advertises a window of 0 (`SETTINGS_INITIAL_WINDOW_SIZE = 0`), or never
//! sends `WINDOW_UPDATE`, lets the server send nothing on a stream while
//! the connection stays perfectly healthy. hyper waits for the window
//! before it asks the response body for more, so the response it already
//! holds (a whole JSON body, a download's next chunk, the handler's
//! state) stays in memory for as long as the client stays connected; the
//! stream also keeps the connection busy, so the idle timeout never
//! comes. With `--max-connections` connections of 100 streams each, that
//! is the memory an attacker chooses.
//!
//! So each stream's task ([`Watched`], wrapped around it by the
//! [`executor`](crate::conn::executor)) knows since when its body has been
//! *waiting for the client* ([`SendWait`]):
//!
//! * a body that just gave hyper a chunk is waiting: hyper sends it and
//!   asks for the next one only once the window has room;
//! * a body that answers `Pending` is not: the server is the one that has
//!   nothing to send yet (an event stream between events);
//! * a response whose body hyper has not asked for yet is waiting too: a
//!   window of 0 keeps even the first chunk back.
//!
//! A stream that has waited for the client for the write-stall limit (the
//! request timeout, as for HTTP/1) is dropped: hyper's stream is dropped
//! with it, and h2 resets it (`RST_STREAM` with `CANCEL`), which frees what
//! it held. The rest of the connection goes on; once no stream is left,
//! the idle timeout ends it with GOAWAY like any other.
//!
//! The body finds its stream's `SendWait` through a task-local value set
//! around each poll of the stream's task: hyper makes the body inside that
//! poll, and offers no other way from a stream's task to its response.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tracing::debug;

tokio::task_local! {
    /// The `SendWait` of the stream whose task is being polled.
    static STREAM: Arc<SendWait>;
}

/// Streams reset because their window stayed shut past the limit, in
/// this process (`lameduck_h2_streams_stalled_total`).
static STALLED: AtomicU64 = AtomicU64::new(0);

/// How many streams have been reset for a shut window.
pub fn streams_stalled() -> u64 {
    STALLED.load(Relaxed)
}

/// Since when one stream's response has been waiting for the client's
/// window, if it is.
#[derive(Debug)]
pub struct SendWait {
    base: Instant,
    /// Nanoseconds after `base`, plus one; 0 while not waiting.
    since: AtomicU64,
}

impl SendWait {
    fn new() -> Arc<Self> {
        Arc::new(SendWait {
            base: Instant::now(),
            since: AtomicU64::new(0),
        })
    }

    /// The stream whose task is running, if this is one: how a response
    /// body made in that task finds its stream.
    pub fn current() -> Option<Arc<SendWait>> {
        STREAM.try_with(Arc::clone).ok()
    }

    /// The body has given hyper a chunk (or has a response and no chunk
    /// asked for yet): from now on the client's window decides.
    pub fn waiting(&self) {
        let nanos = self.base.elapsed().as_nanos() as u64;
        self.since.store(nanos + 1, Relaxed);
    }

    /// The body has nothing to send yet: the server is the one waiting.
    pub fn not_waiting(&self) {
        self.since.store(0, Relaxed);
    }

    fn since(&self) -> Option<Instant> {
        match self.since.load(Relaxed) {
            0 => None,
            n => Some(self.base + Duration::from_nanos(n - 1)),
        }
    }
}

pin_project_lite::pin_project! {
    /// A stream's task, dropped once its response has waited for the
    /// client's window for `limit`.
    pub struct Watched<F> {
        #[pin]
        stream: F,
        wait: Arc<SendWait>,
        limit: Duration,
        // Made the first time the stream waits for the client. Lazy: set
        // for the first wait's end and, when it fires, moved to the
        // current wait's end if the stream has moved on since (a wait only
        // ever begins later), so a busy download moves it once per limit,
        // not once per chunk.
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<F> Watched<F> {
    /// `stream`, under the write-stall limit `limit`.
    pub fn new(stream: F, limit: Duration) -> Self {
        Watched {
            stream,
            wait: SendWait::new(),
            limit,
            timer: None,
        }
    }
}

impl<F: Future<Output = ()>> Future for Watched<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let wait = this.wait.clone();
        if STREAM
            .sync_scope(wait, || this.stream.as_mut().poll(cx))
            .is_ready()
        {
            return Poll::Ready(());
        }
        loop {
            let Some(since) = this.wait.since() else {
                // The server is the one waiting; a timer already set
                // looks again when it fires.
                return Poll::Pending;
            };
            let end = since + *this.limit;
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(end)));
            if timer.deadline() < end {
                if Instant::now() < timer.deadline() {
                    // Not fired yet: it looks again when it does.
                    ready!(timer.as_mut().poll(cx));
                }
                // Fired, for a wait the stream has since moved past.
                timer.as_mut().reset(end);
            }
            ready!(timer.as_mut().poll(cx));
            if this.wait.since() == Some(since) {
                // Dropping the stream's task makes h2 reset the stream.
                STALLED.fetch_add(1, Relaxed);
                debug!(limit = ?this.limit, "HTTP/2 stream reset: the client's window stayed shut");
                return Poll::Ready(());
            }
        }
    }
}
