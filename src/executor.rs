//! Where hyper's HTTP/2 stream tasks run, so a forced close can reach them.
//!
//! hyper's HTTP/1 connection runs the handler inside the connection future:
//! abort the connection task and the handler goes with it. HTTP/2 is
//! different: hyper spawns each stream (request) onto the executor it was
//! given, *outside* the connection future. Aborting the connection task
//! leaves those running. [`StreamExecutor`] spawns them into a
//! [`TaskTracker`] (so the drain can wait for them) and races each against
//! the `force` token (so the forced close can stop them).

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// hyper's executor for HTTP/2 streams: tracked and forcibly cancellable.
#[derive(Debug, Clone)]
pub struct StreamExecutor {
    tracker: TaskTracker,
    force: CancellationToken,
}

impl StreamExecutor {
    /// Streams spawned here are counted by `tracker` and stop when `force`
    /// is cancelled.
    pub fn new(tracker: TaskTracker, force: CancellationToken) -> Self {
        StreamExecutor { tracker, force }
    }
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        let force = self.force.clone();
        // Reaped by the tracker: the drain waits for `tracker` to be empty.
        self.tracker.spawn(async move {
            tokio::select! {
                biased;
                // Dropping `fut` drops the handler and its stream state.
                _ = force.cancelled() => {}
                _ = fut => {}
            }
        });
    }
}
