//! The state every handler shares, and what each piece of it does at
//! shutdown.

use std::sync::Arc;

use crate::config::Config;
use crate::long_lived::feed::Feed;
use crate::long_lived::sockets::Sockets;
use crate::metrics::Metrics;
use crate::service::idempotency_key::KeysInFlight;
use crate::shutdown::ShutdownState;
use crate::shutdown::health_checkers::HealthCheckers;
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
    /// The phase and the tokens of the shutdown: what `/healthz` reports,
    /// what streams and workers end on, what waiting handlers answer 503
    /// on, and the writes the drain waits for. Only the server moves it
    /// forward; everyone else asks it questions.
    pub shutdown: ShutdownState,
    /// The health checkers seen, and their failed checks during the
    /// lame-duck phase: what ends that phase early (`--drain-checks`).
    pub checkers: HealthCheckers,
    /// The items created from now on, for the WebSocket hub and the long
    /// polls; its worker stops at the drain.
    pub feed: Feed,
    /// The upgraded connections (WebSockets), which have left hyper's
    /// connection tasks: the drain waits for them, the force aborts them.
    pub websockets: Sockets,
    /// The `Idempotency-Key`s whose write is under way in this process:
    /// a second request with one is answered 409. Each entry belongs to a
    /// write task and goes when it ends, so the drain, which waits for the
    /// write tasks, leaves it empty.
    pub keys_in_flight: Arc<KeysInFlight>,
}

impl App {
    /// Fresh state in the `Running` phase.
    pub fn new(config: Config, store: Arc<dyn Store>) -> Self {
        // The store counts what only it can see (interrupted queries);
        // `/metrics` shows those counters beside the server's.
        let mut metrics = Metrics::default();
        metrics.store = store.counters();
        let websockets = Sockets::default();
        metrics.websockets = websockets.counts().clone();
        App {
            store,
            metrics,
            shutdown: ShutdownState::default(),
            checkers: HealthCheckers::new(config.drain_checks, config.drain_delay),
            feed: Feed::default(),
            websockets,
            keys_in_flight: Arc::default(),
            config,
        }
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}
