//! Go's `IdleTimeout` for HTTP/2, and how an HTTP/2 connection ends: with
//! GOAWAY, whether the drain or the idle timeout ends it.
//!
//! hyper has no idle timeout for HTTP/2, so without one a client could
//! open a connection, send nothing, and hold a connection slot for ever.
//! Each HTTP/2 connection counts its open streams in a [`StreamCount`]
//! (the [`crate::conn::executor`] opens and closes them as hyper spawns stream
//! tasks), and the connection is told to finish once the count has been
//! zero for `idle_timeout`.
//!
//! "Told to finish" is the same for the idle timeout and the drain
//! ([`serve`]): hyper's `graceful_shutdown` sends GOAWAY (`NO_ERROR`),
//! first with the highest stream id and, a round trip later (a PING and
//! its answer), with the last stream it took. A request the client sent
//! before it saw the GOAWAY is either served or, above that last id,
//! refused in a way that tells the client it never ran and can be retried
//! on a new connection (RFC 9113 §6.8). Closing the socket instead, as a
//! timeout often does, leaves a client that was just sending a request
//! unable to tell whether it ran.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::rt::bounds::Http2ServerConnExec;
use hyper::server::conn::http2;
use hyper::service::HttpService;
use tokio::time::Instant;
use tracing::debug;

use crate::server::when_woken::WhenWoken;

/// How long a connection told to finish may go on with no open stream
/// before it is closed without waiting any longer. A client that answers
/// the GOAWAY's PING lets hyper close at once; this bounds one that does
/// not (it could otherwise keep its slot, which is what the idle timeout
/// is for). Go's HTTP/2 server waits the same second (`goAwayTimeout`).
const GOAWAY_GRACE: Duration = Duration::from_secs(1);

/// Serves an HTTP/2 connection to its end. It is told to finish (GOAWAY,
/// see the module docs) when `drain` resolves, or once no stream has been
/// open on it for `idle`; it then serves the streams it took and closes.
pub async fn serve<I, S, E, B>(
    conn: http2::Connection<I, S, E>,
    drain: impl Future<Output = ()>,
    streams: &StreamCount,
    idle: Duration,
) -> hyper::Result<()>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: Http2ServerConnExec<S::Future, B>,
{
    let mut conn = pin!(conn);
    // The connection wakes this task at every frame; the drain and the
    // idle timer almost never. Each is polled only when it woke the task
    // (see `when_woken`), not at every frame.
    let drain = WhenWoken::new(drain);
    let quiet = WhenWoken::new(streams.idle_for(idle, Instant::now()));
    tokio::select! {
        // The drain first, so a connection that is still starting when
        // the drain begins is told at its first poll (hyper then sends
        // GOAWAY right after the handshake).
        biased;
        () = drain => debug!("drain: HTTP/2 connection told to finish"),
        res = conn.as_mut() => return res,
        () = quiet => debug!("idle HTTP/2 connection told to finish"),
    }
    conn.as_mut().graceful_shutdown();
    let told_at = Instant::now();
    tokio::select! {
        res = conn => res,
        // Dropping hyper's connection closes the socket. No stream is
        // open, so nothing is cut short.
        () = streams.idle_for(GOAWAY_GRACE, told_at) => {
            debug!("HTTP/2 connection did not close after GOAWAY; closed");
            Ok(())
        }
    }
}

/// How many streams one HTTP/2 connection has open, and when that last
/// changed: enough to tell an idle connection from a busy one.
#[derive(Debug)]
pub struct StreamCount {
    base: Instant,
    open: AtomicUsize,
    /// Nanoseconds after `base` of the last stream opening or closing.
    last_change: AtomicU64,
}

impl StreamCount {
    /// No streams yet; "last change" is now.
    pub fn new() -> Arc<Self> {
        Arc::new(StreamCount {
            base: Instant::now(),
            open: AtomicUsize::new(0),
            last_change: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        self.last_change
            .store(self.base.elapsed().as_nanos() as u64, Relaxed);
    }

    pub(crate) fn open(self: Arc<Self>) -> OpenStream {
        self.open.fetch_add(1, Relaxed);
        self.touch();
        OpenStream(self)
    }

    /// Resolves once the connection has had no open stream for `idle`,
    /// counting from `from` at the earliest. Cancel-safe (it only reads
    /// the counters).
    pub async fn idle_for(&self, idle: Duration, from: Instant) {
        loop {
            let last = self.last_change.load(Relaxed);
            let quiet_since = (self.base + Duration::from_nanos(last)).max(from);
            tokio::time::sleep_until(quiet_since + idle).await;
            if self.last_change.load(Relaxed) != last {
                continue; // A stream opened or closed since: a new deadline.
            }
            if self.open.load(Relaxed) == 0 {
                return;
            }
            // Busy the whole time (a long stream): look again later.
            tokio::time::sleep(idle).await;
        }
    }
}

/// One open stream; dropping it counts the stream closed.
pub(crate) struct OpenStream(Arc<StreamCount>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
        self.0.touch();
    }
}
