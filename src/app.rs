//! The state every handler shares, and what each piece of it does at
//! shutdown.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Config;
use crate::metrics::Metrics;
use crate::phase::PhaseCell;
use crate::store::Store;

/// Shared application state. One `Arc<App>` per server; each connection's
/// service holds a clone.
pub struct App {
    /// Limits and timeouts the handlers enforce (body size, request timeout).
    pub config: Config,
    /// Where items live. Every call gets a cancellation token.
    pub store: Arc<dyn Store>,
    /// Counters for `/metrics` and for the shutdown report.
    pub metrics: Metrics,
    /// The article's `shuttingDown` atomic: `/healthz` answers 503 as soon
    /// as this leaves `Running`.
    pub phase: PhaseCell,
    /// The article's `closing` channel. Cancelled when the drain begins:
    /// long-lived handlers (the event stream) select on it and end on their
    /// own, so they do not hold the drain until the deadline.
    pub closing: CancellationToken,
    /// Cancelled when the shutdown deadline passes. Every handler that can
    /// wait selects on it and, if its response has not started, answers
    /// `503` + `Retry-After` at once, so the client gets an answer it can
    /// retry rather than a bare reset when the connections are aborted.
    pub past_deadline: CancellationToken,
    /// Writes in progress (`POST`/`DELETE` on items), each a task of its
    /// own rather than part of its request: a client that leaves mid-write
    /// drops its handler, not the write. The drain waits for these like it
    /// waits for connections, within the same deadline.
    pub writes: TaskTracker,
    /// Cancelled when the shutdown is forced (deadline or second signal),
    /// and only then. A write still in progress rolls back instead of
    /// committing, so a forced exit never leaves a half-done write.
    pub abandon_writes: CancellationToken,
}

impl App {
    /// Fresh state in the `Running` phase.
    pub fn new(config: Config, store: Arc<dyn Store>) -> Self {
        // The store counts what only it can see (interrupted queries);
        // `/metrics` shows those counters beside the server's.
        let mut metrics = Metrics::default();
        metrics.store = store.counters();
        App {
            config,
            store,
            metrics,
            phase: Default::default(),
            closing: CancellationToken::new(),
            past_deadline: CancellationToken::new(),
            writes: TaskTracker::new(),
            abandon_writes: CancellationToken::new(),
        }
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("phase", &self.phase.get())
            .field("closing", &self.closing.is_cancelled())
            .field("past_deadline", &self.past_deadline.is_cancelled())
            .finish_non_exhaustive()
    }
}
