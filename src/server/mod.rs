//! The server, and its shutdown as explicit phases.
//!
//! [`Server::run`] is the whole life of the server, top to bottom:
//!
//! 1. **Running** — the accept loop (`accept_loop`) accepts,
//!    reaps finished connection tasks, and waits for the `shutdown` trigger.
//! 2. **Lame duck** — `/healthz` fails, hooks fire, and the accept loop
//!    keeps going for `drain_delay`.
//! 3. **Stop accepting** — the listener is dropped; connections are told to
//!    finish, streams and background workers are cancelled.
//! 4. **Drain** — wait (on events, not a poll loop) for every connection,
//!    HTTP/2 stream, write and worker, until `shutdown_timeout`
//!    (`drain`).
//! 5. **Force** — on the deadline: roll back unfinished writes, answer what
//!    has not started with 503, wait `force_grace`, then abort the rest. On
//!    a second signal: abort at once.
//! 6. **Close the store** — after the last write: a database connection
//!    a write still needs must not be closed under it.
//! 7. **Report** — one log line, and the [`ShutdownReport`] returned.
//!
//! The triggers are parameters, so tests drive `run` with tokens they
//! cancel themselves; only [`crate::process::signals`] knows about SIGTERM.

pub(crate) mod accept_errors;
pub(crate) mod accept_loop;
pub(crate) mod drain;
pub(crate) mod hooks;
pub(crate) mod report;
pub(crate) mod tally;
pub(crate) mod timeline;
pub(crate) mod when_woken;

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::app::App;
use crate::cleaner;
use crate::config::Config;
use crate::long_lived;
use crate::server::accept_loop::Acceptor;
use crate::server::hooks::{HookResult, ShutdownHooks};
use crate::server::report::{LameDuckEnd, Outcome, ShutdownReport};
use crate::server::timeline::Timeline;
use crate::shutdown::health_checkers::{DECISION_MARGIN, HealthCheckers};
use crate::shutdown::phase::Phase;
use crate::shutdown::spread::Pace;
use crate::shutdown::stop::Stop;
use crate::store::{MemoryStore, Store};

type Worker = Box<dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A configured server, ready to [`run`](Server::run).
pub struct Server {
    /// Shared with every connection and handler.
    app: Arc<App>,
    /// Fired once at the first signal; not awaited.
    hooks: ShutdownHooks,
    /// Started when `run` starts; each gets a token that is cancelled when
    /// the drain begins, and is awaited (then aborted, at the deadline).
    workers: Vec<(&'static str, Worker)>,
}

impl Server {
    /// A server over an in-memory store, with the background cleaner.
    pub fn new(config: Config) -> Self {
        Self::with_store(config, Arc::new(MemoryStore::new()))
    }

    /// A server over `store`, with the background cleaner.
    pub fn with_store(config: Config, store: Arc<dyn Store>) -> Self {
        let every = config.cleanup_interval;
        let app = Arc::new(App::new(config, store));
        let mut server = Server {
            app: app.clone(),
            hooks: ShutdownHooks::default(),
            workers: Vec::new(),
        };
        let cleaner = app.clone();
        server.add_worker("cleaner", move |cancel| {
            cleaner::run(cleaner, every, cancel)
        });
        let feed = app.clone();
        server.add_worker("feed", move |cancel| long_lived::feed::run(feed, cancel));
        // The article's `RegisterOnShutdown` for a WebSocket hub: told at
        // the first signal, it takes no new sessions. Those open go on
        // until the drain closes them.
        server.on_shutdown("websocket hub", move || {
            app.websockets.refuse_new();
            Ok(())
        });
        server
    }

    /// The shared state: metrics, phase, store.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Registers a callback for the first signal: Go's `RegisterOnShutdown`.
    /// See [`crate::server::hooks`] for why it is not awaited.
    pub fn on_shutdown(
        &mut self,
        name: &'static str,
        hook: impl FnOnce() -> HookResult + Send + 'static,
    ) {
        self.hooks.register(name, hook);
    }

    /// Adds a background worker, started by `run`. It must return soon
    /// after its token is cancelled.
    pub fn add_worker<F, Fut>(&mut self, name: &'static str, worker: F)
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.workers
            .push((name, Box::new(move |cancel| Box::pin(worker(cancel)))));
    }

    /// Serves `listener` until `shutdown` resolves, then drains; `force`
    /// (at any time after `shutdown`) cuts the drain short. What `shutdown`
    /// resolves to says why ([`Stop`]; `()` is a signal): after an upgrade
    /// there is no lame-duck phase.
    pub async fn run<S: Into<Stop>>(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = S>,
        force: impl Future<Output = ()>,
    ) -> ShutdownReport {
        let Server {
            app,
            hooks,
            workers,
        } = self;
        let config = &app.config;
        let mut force = pin!(force);
        let workers = start_workers(&app, workers);
        let mut acceptor = Acceptor::new(listener, app.clone());
        let mut timeline = Timeline::new(app.clone());

        // ── 1. Running ───────────────────────────────────────────────────
        info!(phase = Phase::Running.name(), addr = %acceptor.local_addr(), max_conns = config.max_connections, "shutdown phase");
        let cause: Stop = acceptor.accept_until(shutdown).await.into();

        // ── 2. Lame duck ─────────────────────────────────────────────────
        // The checkers to wait for are fixed before `/healthz` fails, so no
        // failed check goes uncounted.
        let checkers = app.checkers.begin_lame_duck();
        // The phase flips first: from here `/healthz` answers 503, and a
        // hook that asks the server where it is sees the lame duck.
        app.shutdown.enter_lame_duck(cause);
        timeline.lame_duck_begins();
        // Then the hooks are told, and not awaited (see `hooks`).
        timeline.hooks_fired(hooks.fire());
        let ended = match cause {
            Stop::Signal => {
                info!(
                    phase = Phase::LameDuck.name(),
                    cause = cause.name(),
                    conns = acceptor.connections(),
                    drain_delay_ms = config.drain_delay.as_millis() as u64,
                    drain_checks = config.drain_checks,
                    checkers,
                    hooks = timeline.hooks(),
                    "shutdown phase"
                );
                acceptor
                    .accept_until(lame_duck_over(
                        config.drain_delay,
                        &app.checkers,
                        &mut force,
                    ))
                    .await
            }
            // After an upgrade the new process already serves the same
            // socket, so there is nobody to steer away: no lame-duck
            // phase, and no line that would say there was one.
            Stop::Upgrade { .. } => LameDuckEnd::Upgrade,
        };
        let cut_short = ended == LameDuckEnd::SecondSignal;

        // ── 3. Stop accepting ────────────────────────────────────────────
        // The listener is closed: new connections are refused.
        let mut in_flight = acceptor.stop(workers);
        timeline.drain_begins(in_flight.conns.len(), ended);

        // ── 4. Drain ─────────────────────────────────────────────────────
        let outcome = if cut_short {
            Outcome::ForcedBySignal
        } else {
            // The crowd to spread: connections, and the WebSockets that
            // have left them.
            let open = in_flight.conns.len() as u64 + app.websockets.open();
            // The CLI keeps the window inside the deadline; a `Config`
            // built by hand may not, and gets half of the deadline.
            let spread = match config.drain_spread < config.shutdown_timeout {
                true => config.drain_spread,
                false => config.shutdown_timeout / 2,
            };
            let pace = Pace {
                burst: config.drain_spread_burst,
                per_second: config.drain_spread_rate,
            };
            app.shutdown.begin_drain(spread, open, pace);
            info!(
                phase = Phase::Draining.name(),
                spread_ms = app.shutdown.spread().window().as_millis() as u64,
                lame_duck_end = ended.name(),
                lame_duck_ms = timeline.lame_duck().as_millis() as u64,
                conns = in_flight.conns.len(),
                timeout_ms = config.shutdown_timeout.as_millis() as u64,
                "shutdown phase"
            );
            let deadline = timeline.drain_started_at() + config.shutdown_timeout;
            in_flight.drain(deadline, &mut force).await
        };

        // ── 5. Force ─────────────────────────────────────────────────────
        timeline.drain_ends();
        if outcome != Outcome::Drained {
            in_flight.force(&app, outcome, &mut force).await;
        }

        // ── 6. Close the store ───────────────────────────────────────────
        // Only now: the drain has waited for every tracked write (or the
        // force has abandoned them, and they have rolled back). Closing
        // earlier would take the connection from under a write that was
        // about to commit. For Postgres this ends every session with a
        // `Terminate`, so the server frees their backends at once.
        if let Err(e) = app.store.close().await {
            tracing::warn!(error = %e, "store did not close cleanly");
        }

        // ── 7. Report ────────────────────────────────────────────────────
        app.shutdown.stopped();
        let report = timeline.report(cause, outcome, &in_flight.tally);
        report.log();
        report
    }
}

/// Starts the background workers. Each gets the shutdown's worker token,
/// cancelled when the drain begins, and returns its name when it stops.
fn start_workers(app: &App, workers: Vec<(&'static str, Worker)>) -> JoinSet<&'static str> {
    let mut set = JoinSet::new();
    for (name, worker) in workers {
        let fut = worker(app.shutdown.closing_token());
        set.spawn(async move {
            fut.await;
            name
        });
    }
    set
}

/// The end of the lame-duck phase, and what ended it: every health checker
/// has seen `/healthz` fail often enough (plus a margin for the balancer to
/// act), the cap (`drain_delay`) has passed, or a second signal came.
async fn lame_duck_over(
    cap: Duration,
    checkers: &HealthCheckers,
    force: impl Future<Output = ()>,
) -> LameDuckEnd {
    let checks_seen = async {
        checkers.all_failed().await;
        tokio::time::sleep(DECISION_MARGIN).await;
    };
    tokio::select! {
        // The second signal first, then the cap: a zero cap (the default,
        // and every upgrade) ends the phase at once.
        biased;
        _ = force => LameDuckEnd::SecondSignal,
        _ = tokio::time::sleep(cap) => LameDuckEnd::Cap,
        _ = checks_seen => LameDuckEnd::Checks,
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let workers: Vec<_> = self.workers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Server")
            .field("app", &self.app)
            .field("hooks", &self.hooks)
            .field("workers", &workers)
            .finish()
    }
}
