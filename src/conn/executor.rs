//! Where hyper's HTTP/2 stream tasks run, so a forced close can reach them.
//!
//! hyper's HTTP/1 connection runs the handler inside the connection future:
//! abort the connection task and the handler goes with it. HTTP/2 is
//! different: hyper spawns each stream (request) onto the executor it was
//! given, *outside* the connection future. Aborting the connection task
//! leaves those running. [`StreamExecutor`] spawns them into a
//! [`TaskTracker`] (so the drain can wait for them) and races each against
//! the shutdown's `abort_streams` token (so the forced close can stop
//! them). The race is polled at every wake-up of the stream, so it waits
//! on the token through a [`TokenWait`](crate::shutdown::token_wait),
//! for one relaxed load per poll instead of a turn of the token's lock,
//! which every stream of every connection shares.
//!
//! Each HTTP/2 connection gets its own copy with a [`StreamCount`], so
//! that the connection can tell when it is idle (see [`crate::conn::h2_idle`]).
//!
//! Each stream also runs under the write-stall limit: a stream whose
//! client keeps its window shut for that long is reset (see
//! [`crate::conn::h2_stall`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::conn::h2_idle::StreamCount;
use crate::conn::h2_stall::Watched;

/// hyper's executor for HTTP/2 streams: tracked and forcibly cancellable.
#[derive(Debug, Clone)]
pub struct StreamExecutor {
    tracker: TaskTracker,
    /// The server, whose forced close stops the streams
    /// (`ShutdownState::streams_aborted`).
    app: Arc<App>,
    /// The streams of one connection, if this copy belongs to one.
    count: Option<Arc<StreamCount>>,
    /// The write-stall limit (`--request-timeout`): how long a stream's
    /// response may wait for the client's window.
    stall_limit: Duration,
}

impl StreamExecutor {
    /// Streams spawned here are counted by `tracker`, stop at `app`'s
    /// forced close, and are reset once their response has waited for
    /// the client's window for `stall_limit`.
    pub fn new(tracker: TaskTracker, app: Arc<App>, stall_limit: Duration) -> Self {
        StreamExecutor {
            tracker,
            app,
            count: None,
            stall_limit,
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
        let app = self.app.clone();
        let open = self.count.clone().map(StreamCount::open);
        let fut = Watched::new(fut, self.stall_limit);
        // Reaped by the tracker: the drain waits for `tracker` to be empty.
        self.tracker.spawn(async move {
            // Counts the stream as open until this task ends, however.
            let _open = open;
            tokio::select! {
                // The forced close first: once it has come, a stream that
                // is always ready (a fast event stream) must still stop at
                // this poll.
                biased;
                // Dropping `fut` drops the handler and its stream state.
                _ = app.shutdown.streams_aborted() => {}
                _ = fut => {}
            }
        });
    }
}
