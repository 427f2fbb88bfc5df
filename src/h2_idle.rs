//! Go's `IdleTimeout` for HTTP/2: noticing a connection with no open
//! stream.
//!
//! hyper has no idle timeout for HTTP/2, so without one a client could
//! open a connection, send nothing, and hold a connection slot for ever.
//! Each HTTP/2 connection counts its open streams in a [`StreamCount`]
//! (the [`crate::executor`] opens and closes them as hyper spawns stream
//! tasks), and the connection closes once the count has been zero for
//! `idle_timeout`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

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

    /// Resolves once the connection has had no open stream for `idle`.
    /// Cancel-safe (it only reads the counters).
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.last_change.load(Relaxed);
            tokio::time::sleep_until(self.base + Duration::from_nanos(last) + idle).await;
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
