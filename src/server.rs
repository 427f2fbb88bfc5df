//! The server: the accept loop, and the shutdown as explicit phases.
//!
//! [`Server::run`] is the whole life of the server, top to bottom:
//!
//! 1. **Running** — [`Server::accept_until`] accepts, reaps finished
//!    connection tasks, and waits for the `shutdown` trigger.
//! 2. **Lame duck** — `/healthz` fails, hooks fire, and the accept loop
//!    keeps going for `drain_delay`.
//! 3. **Stop accepting** — the listener is dropped; connections are told to
//!    finish, streams and background workers are cancelled.
//! 4. **Drain** — wait (on events, not a poll loop) for every connection,
//!    HTTP/2 stream and worker, until `shutdown_timeout`.
//! 5. **Force** — on the deadline: answer what has not started with 503,
//!    wait `force_grace`, then abort the rest. On a second signal: abort at
//!    once.
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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info};

use crate::accept::AcceptBackoff;
use crate::connection::{self, ConnectionConfig};
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
            mut conns,
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
        let mut tally = Tally::default();

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
            drain(
                &mut conns,
                &mut worker_set,
                &streams,
                &app.writes,
                told,
                deadline,
                &mut force,
                &mut tally,
            )
            .await
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
                conns = conns.len(),
                "shutdown phase"
            );
            // Writes still in progress roll back instead of committing: a
            // forced exit must not leave a write half done.
            app.abandon_writes.cancel();
            if outcome == Outcome::ForcedByDeadline {
                let grace_end = Instant::now() + config.force_grace;
                // Let the writes finish rolling back first, so that the
                // 503 their clients get below is true: not stored.
                let forced = wait_for_writes(&app.writes, grace_end, &mut force).await;
                // Be polite where it costs nothing: handlers that have not
                // answered yet answer 503 + Retry-After now; give those
                // answers `force_grace` to be written. A second signal
                // skips the wait.
                app.past_deadline.cancel();
                if !forced {
                    wait_for_conns(&mut conns, grace_end, &mut force, &mut tally).await;
                }
            }
            // Close semantics: stop everything that is still running.
            app.closing.cancel();
            workers_cancel.cancel();
            force_streams.cancel();
            conns.abort_all();
            worker_set.abort_all();
            while let Some(res) = conns.join_next().await {
                tally.connection(res, &app);
            }
            while let Some(res) = worker_set.join_next().await {
                tally.worker(res);
            }
            streams.close();
            // Stream tasks race `force_streams`, so they end at their next
            // poll; the bound only guards against a task that never yields.
            let _ = tokio::time::timeout(Duration::from_secs(1), streams.wait()).await;
            // Write tasks check `abandon_writes` between statements, so they
            // end within one statement. If one does not (stuck waiting for
            // another process's lock), the process exits without its commit,
            // and SQLite discards the uncommitted transaction.
            app.writes.close();
            let _ = tokio::time::timeout(Duration::from_secs(1), app.writes.wait()).await;
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
            connections_drained: tally.conns_finished,
            connections_aborted: tally.conns_aborted,
            requests_during_drain: app.metrics.requests_total() - requests_at_drain,
            requests_refused_at_deadline: app.metrics.requests_with_status(503) - refused_before,
            streams_ended: app
                .metrics
                .streams_ended_by_shutdown
                .load(std::sync::atomic::Ordering::Relaxed),
            workers_stopped: tally.workers_stopped,
            workers_aborted: tally.workers_aborted,
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

/// The accept side of the server, alive until the listener is dropped.
struct Acceptor {
    /// Dropped at step 3; dropping it is what refuses new connections.
    listener: TcpListener,
    /// One permit per open connection (`max_connections`). A permit moves
    /// into its connection task and is released when the task ends, which
    /// is what wakes an accept loop waiting at the limit.
    limiter: Arc<Semaphore>,
    /// Back-off state for resource errors (EMFILE and friends).
    backoff: AcceptBackoff,
    /// One task per connection. Reaped as they finish, so it never grows;
    /// aborted all at once by a forced close.
    conns: JoinSet<()>,
    /// Tells every watched connection to finish. Each connection's
    /// [`Watcher`](hyper_util::server::graceful::Watcher) is taken *before*
    /// its task is spawned, so no connection can miss the signal.
    graceful: GracefulShutdown,
    /// Builders and service shared by all connection tasks.
    conn_config: Arc<ConnectionConfig>,
}

impl Acceptor {
    /// Accepts connections until `until` resolves, and returns its output.
    async fn accept_until<T>(&mut self, until: impl Future<Output = T>) -> T {
        let mut until = pin!(until);
        loop {
            tokio::select! {
                // The trigger first, so that a flood of connections cannot
                // delay the shutdown; then reaping, so finished tasks never
                // pile up; then new work.
                biased;
                out = &mut until => return out,
                Some(res) = self.conns.join_next() => { log_if_panicked(res); }
                accepted = accept(&self.listener, &self.limiter) => match accepted {
                    Ok((stream, permit)) => {
                        self.backoff.reset();
                        self.spawn_connection(stream, permit);
                    }
                    Err(e) => {
                        let wait = self.backoff.on_error(&e);
                        if !wait.is_zero() {
                            // Sleep, but stay responsive to the trigger.
                            tokio::select! {
                                out = &mut until => return out,
                                _ = tokio::time::sleep(wait) => {}
                            }
                        }
                    }
                },
            }
        }
    }

    fn spawn_connection(&mut self, stream: tokio::net::TcpStream, permit: OwnedSemaphorePermit) {
        // Small responses should not wait for Nagle's algorithm to
        // coalesce them with data that will never come.
        let _ = stream.set_nodelay(true);
        let app = self.conn_config.app();
        app.metrics
            .connections_accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let watcher = self.graceful.watcher();
        let cfg = self.conn_config.clone();
        self.conns.spawn(connection::serve(
            stream,
            std::time::Instant::now(),
            cfg,
            watcher,
            Some(permit),
        ));
    }
}

/// Waits for a connection slot, then for a connection. Cancel-safe: if
/// dropped while waiting, the permit returns to the semaphore and no
/// connection is lost (`accept` is cancel-safe).
async fn accept(
    listener: &TcpListener,
    limiter: &Arc<Semaphore>,
) -> std::io::Result<(tokio::net::TcpStream, OwnedSemaphorePermit)> {
    let permit = match limiter.clone().try_acquire_owned() {
        Ok(permit) => permit,
        // At the limit: stop accepting until a connection ends. The kernel
        // backlog holds (and eventually refuses) the rest.
        Err(_) => limiter
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed"),
    };
    let (stream, _peer) = listener.accept().await?;
    Ok((stream, permit))
}

/// Step 4: waits until every connection, worker, HTTP/2 stream task and
/// write is done, the deadline passes, or `force` fires. Returns how it
/// ended.
// One argument over clippy's limit: each is a different thing the drain
// waits on, and bundling them in a struct would hide that.
#[allow(clippy::too_many_arguments)]
async fn drain(
    conns: &mut JoinSet<()>,
    workers: &mut JoinSet<&'static str>,
    streams: &TaskTracker,
    writes: &TaskTracker,
    told: impl Future<Output = ()>,
    deadline: Instant,
    force: &mut Pin<&mut impl Future<Output = ()>>,
    tally: &mut Tally,
) -> Outcome {
    let mut told = pin!(told);
    let mut told_done = false;
    // No new stream can start once every connection is gone, so closing
    // the tracker now lets `wait()` resolve when the last one ends.
    streams.close();
    // The same for writes: a write outlives its connection if the client
    // left, and the drain waits for it like for a connection.
    writes.close();
    loop {
        if conns.is_empty() && workers.is_empty() && streams.is_empty() && writes.is_empty() {
            return Outcome::Drained;
        }
        tokio::select! {
            biased;
            _ = force.as_mut() => return Outcome::ForcedBySignal,
            _ = tokio::time::sleep_until(deadline) => return Outcome::ForcedByDeadline,
            // Polling this is what sends the graceful signal; it completes
            // when the last watched connection is gone.
            _ = &mut told, if !told_done => told_done = true,
            Some(res) = conns.join_next() => tally.conns_finished += usize::from(log_if_panicked(res)),
            Some(res) = workers.join_next() => tally.worker(res),
            // Only once no connection can start a new stream, and only while
            // some are left: a finished `wait()` is ready forever.
            _ = streams.wait(), if conns.is_empty() && !streams.is_empty() => {}
            _ = writes.wait(), if conns.is_empty() && !writes.is_empty() => {}
        }
    }
}

/// Step 5 (deadline): waits for writes to finish (roll back, since
/// `abandon_writes` is cancelled), until `until` or a second signal.
/// Returns true if it was the second signal (`force` is then done and must
/// not be polled again).
async fn wait_for_writes(
    writes: &TaskTracker,
    until: Instant,
    force: &mut Pin<&mut impl Future<Output = ()>>,
) -> bool {
    writes.close();
    tokio::select! {
        biased;
        _ = force.as_mut() => true,
        _ = tokio::time::sleep_until(until) => false,
        _ = writes.wait() => false,
    }
}

/// Step 5 (deadline): lets connections that are finishing finish, until
/// `until` or a second signal.
async fn wait_for_conns(
    conns: &mut JoinSet<()>,
    until: Instant,
    force: &mut Pin<&mut impl Future<Output = ()>>,
    tally: &mut Tally,
) {
    loop {
        tokio::select! {
            biased;
            _ = force.as_mut() => return,
            _ = tokio::time::sleep_until(until) => return,
            res = conns.join_next() => match res {
                Some(res) => tally.conns_finished += usize::from(log_if_panicked(res)),
                None => return,
            },
        }
    }
}

/// Counts how tasks ended, for the report.
#[derive(Debug, Default)]
struct Tally {
    conns_finished: usize,
    conns_aborted: usize,
    workers_stopped: usize,
    workers_aborted: usize,
}

impl Tally {
    fn connection(&mut self, res: Result<(), JoinError>, app: &App) {
        match res {
            Err(e) if e.is_cancelled() => {
                self.conns_aborted += 1;
                app.metrics
                    .connections_aborted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            res => self.conns_finished += usize::from(log_if_panicked(res)),
        }
    }

    fn worker(&mut self, res: Result<&'static str, JoinError>) {
        match res {
            Ok(name) => {
                info!(worker = name, "background worker stopped");
                self.workers_stopped += 1;
            }
            Err(e) if e.is_cancelled() => self.workers_aborted += 1,
            Err(e) => error!(error = %e, "background worker panicked"),
        }
    }
}

/// Logs a connection task that panicked. Returns true if it ended normally.
fn log_if_panicked(res: Result<(), JoinError>) -> bool {
    match res {
        Ok(()) => true,
        Err(e) if e.is_panic() => {
            error!(error = %e, "connection task panicked");
            false
        }
        Err(_) => false,
    }
}
