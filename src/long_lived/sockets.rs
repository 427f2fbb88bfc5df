//! [`Sockets`]: the upgraded connections, tracked by hand because hyper
//! no longer can.
//!
//! A WebSocket begins as an HTTP/1.1 request. hyper answers it `101
//! Switching Protocols` and hands the socket over (`hyper::upgrade::on`);
//! from that moment its connection future is *done*: the connection task
//! ends, the accept loop reaps it, and the drain, which waits for
//! connection tasks, would not wait for the socket at all. Go's
//! `Shutdown` says the same of hijacked connections ("does not attempt to
//! close nor wait for"), and so would hyper-util's graceful watcher.
//!
//! So every session runs as a task of this tracker, spawned by the
//! handshake before its `101` goes out. The drain waits for the tracker
//! as it waits for connections and writes; the forced close aborts what is
//! left (each session races the `abort_streams` token and counts itself).
//! And the hub learns of the shutdown as the article says a hijacked
//! connection's owner must, through an on-shutdown hook
//! ([`Sockets::refuse_new`], registered by the server): from then on a new
//! upgrade is answered `503` + `Retry-After`, while the sockets already
//! open keep working until the drain tells them to close.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};

use tokio_util::task::TaskTracker;

/// The registry of upgraded connections. One per server, in its `App`.
#[derive(Debug, Default)]
pub struct Sockets {
    /// Every session's task; the drain waits for it to be empty.
    tracker: TaskTracker,
    /// Set by the on-shutdown hook: new upgrades are refused.
    refusing: AtomicBool,
    /// Shared with every session task, which counts itself when it ends.
    counts: Arc<WebSocketCounts>,
}

/// What `/metrics` and the report show of the sessions. Shared with
/// [`crate::Metrics`], as the store's counters are.
#[derive(Debug, Default)]
pub struct WebSocketCounts {
    /// Sessions running now: the gauge, and the limit.
    open: AtomicU64,
    /// Sessions that ended with a completed closing handshake.
    closed: AtomicU64,
    /// Sessions the forced close cut before their closing handshake ended.
    aborted: AtomicU64,
}

impl WebSocketCounts {
    /// Sessions running now.
    pub fn open(&self) -> u64 {
        self.open.load(Relaxed)
    }

    /// Sessions that ended with a completed closing handshake.
    pub fn closed(&self) -> u64 {
        self.closed.load(Relaxed)
    }

    /// Sessions cut by the forced close.
    pub fn aborted(&self) -> u64 {
        self.aborted.load(Relaxed)
    }
}

/// How a session ended, as it counts itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Both Close frames were exchanged (whoever sent the first).
    Closed,
    /// The forced close (deadline, second signal) cut it first.
    Aborted,
    /// The peer vanished, broke the protocol, or stopped answering pings.
    Broken,
}

impl Sockets {
    /// The on-shutdown hook: from now on, new upgrades get `503`.
    pub fn refuse_new(&self) {
        self.refusing.store(true, Relaxed);
    }

    /// True once the hook has fired.
    pub fn is_refusing(&self) -> bool {
        self.refusing.load(Relaxed)
    }

    /// Runs `session` as a tracked task, counted open until it ends.
    pub fn spawn(&self, session: impl Future<Output = Ending> + Send + 'static) {
        // Counted here, not in the task: the limit must see the socket
        // before its `101` goes out.
        let open = OpenSession::new(&self.counts);
        self.tracker.spawn(async move {
            let ending = session.await;
            open.ended(ending);
        });
    }

    /// The counts, for `/metrics` and the report.
    pub fn counts(&self) -> &Arc<WebSocketCounts> {
        &self.counts
    }

    /// Sessions running now.
    pub fn open(&self) -> u64 {
        self.counts.open()
    }

    /// Sessions that ended with a completed closing handshake.
    pub fn closed(&self) -> u64 {
        self.counts.closed()
    }

    /// Sessions cut by the forced close.
    pub fn aborted(&self) -> u64 {
        self.counts.aborted()
    }

    /// The tracker, for the drain to wait on.
    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }
}

/// One open session. Dropping it uncounts the session, however its task
/// ends: finished, or dropped unfinished when the runtime shuts down.
struct OpenSession(Arc<WebSocketCounts>);

impl OpenSession {
    fn new(counts: &Arc<WebSocketCounts>) -> Self {
        counts.open.fetch_add(1, Relaxed);
        OpenSession(counts.clone())
    }

    fn ended(self, ending: Ending) {
        match ending {
            Ending::Closed => self.0.closed.fetch_add(1, Relaxed),
            Ending::Aborted => self.0.aborted.fetch_add(1, Relaxed),
            Ending::Broken => 0,
        };
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}
