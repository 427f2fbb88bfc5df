//! The server, and its shutdown as explicit phases.
//!
//! [`Server::run`] is the whole life of the server, top to bottom:
//!
//! 1. **Running** — the accept loop ([`crate::accept_loop`]) accepts,
//!    reaps finished connection tasks, and waits for the `shutdown` trigger.
//! 2. **Lame duck** — `/healthz` fails, hooks fire, and the accept loop
//!    keeps going for `drain_delay`.
//! 3. **Stop accepting** — the listener is dropped; connections are told to
//!    finish, streams and background workers are cancelled.
//! 4. **Drain** — wait (on events, not a poll loop) for every connection,
//!    HTTP/2 stream, write and worker, until `shutdown_timeout`
//!    ([`crate::drain`]).
//! 5. **Force** — on the deadline: roll back unfinished writes, answer what
//!    has not started with 503, wait `force_grace`, then abort the rest. On
//!    a second signal: abort at once.
//! 6. **Report** — one log line, and the [`ShutdownReport`] returned.
//!
//! The triggers are parameters, so tests drive `run` with tokens they
//! cancel themselves; only [`crate::signals`] knows about SIGTERM.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::accept::AcceptBackoff;
use crate::accept_loop::Acceptor;
use crate::connection::ConnectionConfig;
use crate::drain::{Running, Tally};
use crate::executor::StreamExecutor;
use crate::hooks::{HookResult, ShutdownHooks};
use crate::phase::Phase;
use crate::report::{Outcome, ShutdownReport};
use crate::store::{MemoryStore, Store};
use crate::{App, Config, cleaner};

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
        server.spawn_worker("cleaner", move |cancel| cleaner::run(app, every, cancel));
        server
    }

    /// The shared state: metrics, phase, store.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Registers a callback for the first signal: Go's `RegisterOnShutdown`.
    /// See [`crate::hooks`] for why it is not awaited.
    pub fn on_shutdown(
        &mut self,
        name: &'static str,
        hook: impl FnOnce() -> HookResult + Send + 'static,
    ) {
        self.hooks.register(name, hook);
    }

    /// Adds a background worker, started by `run`. It must return soon
    /// after its token is cancelled.
    pub fn spawn_worker<F, Fut>(&mut self, name: &'static str, worker: F)
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.workers
            .push((name, Box::new(move |cancel| Box::pin(worker(cancel)))));
    }

    /// Serves `listener` until `shutdown` resolves, then drains; `force`
    /// (at any time after `shutdown`) cuts the drain short.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        force: impl Future<Output = ()>,
    ) -> ShutdownReport {
        let Server {
            app,
            hooks,
            workers,
        } = self;
        let config = &app.config;

        // Cancelled when the drain begins; every worker watches it.
        let workers_cancel = CancellationToken::new();
        let mut worker_set = JoinSet::new();
        for (name, worker) in workers {
            let fut = worker(workers_cancel.clone());
            worker_set.spawn(async move {
                fut.await;
                name
            });
        }

        // Cancelled only by a forced close: stops HTTP/2 stream tasks,
        // which live outside their connection task.
        let force_streams = CancellationToken::new();
        let streams = TaskTracker::new();
        let executor = StreamExecutor::new(streams.clone(), force_streams.clone());

        let mut acceptor = Acceptor {
            listener,
            limiter: Arc::new(Semaphore::new(config.max_connections)),
            backoff: AcceptBackoff::default(),
            conns: JoinSet::new(),
            graceful: GracefulShutdown::new(),
            conn_config: Arc::new(ConnectionConfig::new(app.clone(), executor)),
        };
        let mut force = pin!(force);
        let addr = acceptor
            .listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        info!(phase = Phase::Running.name(), addr = %addr, max_conns = config.max_connections, "shutdown phase");

        // ── 1. Running ───────────────────────────────────────────────────
        acceptor.accept_until(shutdown).await;

        // ── 2. Lame duck ─────────────────────────────────────────────────
        let lame_duck_start = Instant::now();
        app.phase.set(Phase::LameDuck);
        let hooks_fired = hooks.fire();
        info!(
            phase = Phase::LameDuck.name(),
            conns = acceptor.conns.len(),
            drain_delay_ms = config.drain_delay.as_millis() as u64,
            hooks = hooks_fired,
            "shutdown phase"
        );
        let cut_short = acceptor
            .accept_until(async {
                tokio::select! {
                    _ = tokio::time::sleep(config.drain_delay) => false,
                    _ = &mut force => true,
                }
            })
            .await;

        // ── 3. Stop accepting ────────────────────────────────────────────
        let Acceptor {
            listener,
            conns,
            graceful,
            ..
        } = acceptor;
        // Dropping the listener closes the socket: new connections are
        // refused, and ones queued in the backlog are reset, rather than
        // waiting for an accept that will never come.
        drop(listener);
        let drain_start = Instant::now();
        let lame_duck = drain_start - lame_duck_start;
        let connections_at_drain = conns.len();
        let requests_at_drain = app.metrics.requests_total();
        let mut running = Running {
            conns,
            workers: worker_set,
            streams,
            writes: app.writes.clone(),
            tally: Tally::default(),
        };

        let outcome = if cut_short {
            Outcome::ForcedBySignal
        } else {
            app.phase.set(Phase::Draining);
            // Event streams send their last event and end.
            app.closing.cancel();
            // Background workers stop at their next check.
            workers_cancel.cancel();
            // Every watched connection: idle HTTP/1 closes now, in-flight
            // HTTP/1 answers with `Connection: close`, HTTP/2 gets GOAWAY.
            let told = graceful.shutdown();
            info!(
                phase = Phase::Draining.name(),
                conns = connections_at_drain,
                timeout_ms = config.shutdown_timeout.as_millis() as u64,
                "shutdown phase"
            );

            // ── 4. Drain ─────────────────────────────────────────────────
            let deadline = drain_start + config.shutdown_timeout;
            running.drain(told, deadline, &mut force).await
        };
        let drain = drain_start.elapsed();

        // ── 5. Force ─────────────────────────────────────────────────────
        let force_start = Instant::now();
        let refused_before = app.metrics.requests_with_status(503);
        if outcome != Outcome::Drained {
            app.phase.set(Phase::Forcing);
            info!(
                phase = Phase::Forcing.name(),
                reason = outcome.name(),
                conns = running.conns.len(),
                "shutdown phase"
            );
            // Writes still in progress roll back instead of committing: a
            // forced exit must not leave a write half done.
            app.abandon_writes.cancel();
            if outcome == Outcome::ForcedByDeadline {
                let grace_end = Instant::now() + config.force_grace;
                // Let the writes finish rolling back first, so that the
                // 503 their clients get below is true: not stored.
                let forced = running.wait_for_writes(grace_end, &mut force).await;
                // Be polite where it costs nothing: handlers that have not
                // answered yet answer 503 + Retry-After now; give those
                // answers `force_grace` to be written. A second signal
                // skips the wait.
                app.past_deadline.cancel();
                if !forced {
                    running.wait_for_conns(grace_end, &mut force).await;
                }
            }
            // Close semantics: stop everything that is still running.
            app.closing.cancel();
            workers_cancel.cancel();
            force_streams.cancel();
            running.abort_all(&app).await;
        }
        let force = if outcome == Outcome::Drained {
            Duration::ZERO
        } else {
            force_start.elapsed()
        };

        // ── 6. Report ────────────────────────────────────────────────────
        app.phase.set(Phase::Stopped);
        let report = ShutdownReport {
            outcome,
            lame_duck,
            drain,
            force,
            connections_at_drain,
            connections_drained: running.tally.conns_finished,
            connections_aborted: running.tally.conns_aborted,
            requests_during_drain: app.metrics.requests_total() - requests_at_drain,
            requests_refused_at_deadline: app.metrics.requests_with_status(503) - refused_before,
            streams_ended: app
                .metrics
                .streams_ended_by_shutdown
                .load(std::sync::atomic::Ordering::Relaxed),
            workers_stopped: running.tally.workers_stopped,
            workers_aborted: running.tally.workers_aborted,
            hooks_fired,
        };
        report.log();
        report
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
