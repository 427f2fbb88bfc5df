//! Where hyper's HTTP/2 stream tasks run, so a forced close can reach them.
//!
//! hyper's HTTP/1 connection runs the handler inside the connection future:
//! abort the connection task and the handler goes with it. HTTP/2 is
//! different: hyper spawns each stream (request) onto the executor it was
//! given, *outside* the connection future. Aborting the connection task
//! leaves those running. [`StreamExecutor`] spawns them into a
//! [`TaskTracker`] (so the drain can wait for them) and races each against
//! the `force` token (so the forced close can stop them).
//!
//! Each HTTP/2 connection gets its own copy with a [`StreamCount`], which
//! is how the connection knows it is idle: hyper has no idle timeout for
//! HTTP/2, so without it a client could open a connection, send nothing,
//! and hold a connection slot for ever.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// hyper's executor for HTTP/2 streams: tracked and forcibly cancellable.
#[derive(Debug, Clone)]
pub struct StreamExecutor {
    tracker: TaskTracker,
    force: CancellationToken,
    /// The streams of one connection, if this copy belongs to one.
    count: Option<Arc<StreamCount>>,
}

impl StreamExecutor {
    /// Streams spawned here are counted by `tracker` and stop when `force`
    /// is cancelled.
    pub fn new(tracker: TaskTracker, force: CancellationToken) -> Self {
        StreamExecutor {
            tracker,
            force,
            count: None,
        }
    }

    /// A copy for one connection, counting its streams in `count`.
    pub fn counting(&self, count: Arc<StreamCount>) -> Self {
        StreamExecutor {
            count: Some(count),
            ..self.clone()
        }
    }
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        let force = self.force.clone();
        let open = self.count.clone().map(StreamCount::open);
        // Reaped by the tracker: the drain waits for `tracker` to be empty.
        self.tracker.spawn(async move {
            // Counts the stream as open until this task ends, however.
            let _open = open;
            tokio::select! {
                biased;
                // Dropping `fut` drops the handler and its stream state.
                _ = force.cancelled() => {}
                _ = fut => {}
            }
        });
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

    fn open(self: Arc<Self>) -> OpenStream {
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
struct OpenStream(Arc<StreamCount>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
        self.0.touch();
    }
}
