//! Steps 4 and 5 of the shutdown: waiting for what is still running, and
//! forcing what will not finish.
//!
//! `InFlight` holds every kind of task the shutdown has to account for.
//! Each kind ends differently, which is why they are kept apart:
//!
//! | field | what it is | how the drain ends it | how the force ends it |
//! |---|---|---|---|
//! | `conns` | one task per connection | the `closing` token: `Connection: close`, GOAWAY | `abort_all` |
//! | `workers` | background workers (the cleaner) | their token | `abort_all` |
//! | `streams` | HTTP/2 stream tasks, outside their connection | finish with it | the executor's `force` token |
//! | `writes` | store writes, outside their request | commit | `abandon_writes`: roll back |
//! | `websockets` | WebSocket sessions, outside any connection task (`long_lived::sockets`) | the `closing` token: a Close frame, then the client's | `abort_streams`: dropped |

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::app::App;
use crate::conn::ConnectionConfig;
use crate::server::report::Outcome;
use crate::server::tally::{Tally, log_if_panicked};
use crate::shutdown::phase::Phase;

/// How long the forced close waits for HTTP/2 stream tasks and for write
/// tasks to notice their cancelled tokens. Both end at their next poll or
/// between two statements, so this is only a bound against a task that
/// never yields (or a write stuck behind another process's lock); it is
/// not part of `force_grace`, which is the time given to polite answers.
const ABORT_WAIT: Duration = Duration::from_secs(1);

/// Everything still running once the listener is closed.
pub(crate) struct InFlight {
    /// Connection tasks, from the accept loop.
    pub conns: JoinSet<()>,
    /// Background workers; each returns its name when it stops.
    pub workers: JoinSet<&'static str>,
    /// HTTP/2 stream tasks (see [`crate::conn::executor`]).
    pub streams: TaskTracker,
    /// Store writes running as tasks of their own
    /// (`ShutdownState::spawn_write`).
    pub writes: TaskTracker,
    /// WebSocket sessions: upgraded connections, which left their
    /// connection task at the `101`.
    pub websockets: TaskTracker,
    /// The connection tasks' shared part: its limit counts them open,
    /// and wakes the drain once none is.
    pub conn_config: Arc<ConnectionConfig>,
    /// How tasks ended, for the report.
    pub tally: Tally,
}

/// The second trigger, pinned once and polled by several steps.
pub(crate) type Force<'a, F> = Pin<&'a mut F>;

impl InFlight {
    /// What step 3 hands over, with nothing counted yet.
    pub fn new(
        conns: JoinSet<()>,
        workers: JoinSet<&'static str>,
        streams: TaskTracker,
        writes: TaskTracker,
        websockets: TaskTracker,
        conn_config: Arc<ConnectionConfig>,
    ) -> Self {
        InFlight {
            conns,
            workers,
            streams,
            writes,
            websockets,
            conn_config,
            tally: Tally::default(),
        }
    }

    /// Step 4: waits until every connection, worker, HTTP/2 stream and
    /// write is done, the deadline passes, or `force` fires. Every
    /// connection has already been told to finish (`begin_drain`). Returns
    /// how it ended.
    pub async fn drain(
        &mut self,
        deadline: Instant,
        force: &mut Force<'_, impl Future<Output = ()>>,
    ) -> Outcome {
        // One timer for the whole drain, not one per loop turn.
        let mut deadline = pin!(tokio::time::sleep_until(deadline));
        // No new stream or write can start once every connection is gone,
        // so closing the trackers now lets `wait()` resolve when the last
        // one ends. (A write outlives its connection if the client left;
        // the drain waits for it like for a connection.)
        self.streams.close();
        self.writes.close();
        self.websockets.close();
        loop {
            let InFlight {
                conns,
                workers,
                streams,
                writes,
                websockets,
                conn_config,
                tally,
            } = self;
            if conns.is_empty()
                && workers.is_empty()
                && streams.is_empty()
                && writes.is_empty()
                && websockets.is_empty()
            {
                return Outcome::Drained;
            }
            tokio::select! {
                // The second signal, then the deadline, before any work:
                // a burst of finishing connections must not delay a forced
                // close that is already due.
                biased;
                _ = force.as_mut() => return Outcome::ForcedBySignal,
                _ = &mut deadline => return Outcome::ForcedByDeadline,
                // Woken once, when the last connection task has given its
                // slot back, rather than by each task that ends: at a
                // drain, thousands of idle connections end at once. Each
                // has then ended or is returning (its slot is the last
                // thing it drops), so collecting them takes one turn.
                _ = conn_config.limit().none_open(&conn_config.app().metrics), if !conns.is_empty() => {
                    while let Some(res) = conns.join_next().await {
                        tally.conns_finished += usize::from(log_if_panicked(res));
                    }
                }
                Some(res) = workers.join_next() => tally.worker(res),
                // Only once no connection can start a new one, and only
                // while some are left: a finished `wait()` is ready forever.
                _ = streams.wait(), if conns.is_empty() && !streams.is_empty() => {}
                _ = writes.wait(), if conns.is_empty() && !writes.is_empty() => {}
                // A handshake still in its connection task may yet add a
                // session, so the same condition.
                _ = websockets.wait(), if conns.is_empty() && !websockets.is_empty() => {}
            }
        }
    }

    /// Step 5: forces what did not drain. `outcome` says why: at the
    /// deadline the unanswered get a polite `503` first; after a second
    /// signal everything stops at once (Go's `Close`).
    pub async fn force(
        &mut self,
        app: &App,
        outcome: Outcome,
        force: &mut Force<'_, impl Future<Output = ()>>,
    ) {
        app.shutdown.begin_force();
        info!(
            phase = Phase::Forcing.name(),
            reason = outcome.name(),
            conns = self.conns.len(),
            "shutdown phase"
        );
        if outcome == Outcome::ForcedByDeadline {
            let grace_end = Instant::now() + app.config.force_grace;
            // Let the writes finish rolling back first, so that the 503
            // their clients get below is true: not stored.
            let forced = self.wait_for_writes(grace_end, force).await;
            // Be polite where it costs nothing: handlers that have not
            // answered yet answer 503 + Retry-After now; give those
            // answers `force_grace` to be written. A second signal skips
            // the wait.
            app.shutdown.refuse_unanswered();
            if !forced {
                self.wait_for_conns(grace_end, force).await;
            }
        }
        // Close semantics: stop everything that is still running.
        app.shutdown.abort_everything();
        self.abort_all(app).await;
    }

    /// Step 5, at the deadline: waits for writes to finish rolling back
    /// (their token is already cancelled), until `until` or a second
    /// signal. Returns true if it was the second signal (`force` is then
    /// done and must not be polled again).
    async fn wait_for_writes(
        &self,
        until: Instant,
        force: &mut Force<'_, impl Future<Output = ()>>,
    ) -> bool {
        self.writes.close();
        tokio::select! {
            // The second signal first: its answer (`true`) tells the caller
            // that `force` is spent, which it must know even if the writes
            // happened to end at the same moment.
            biased;
            _ = force.as_mut() => true,
            _ = tokio::time::sleep_until(until) => false,
            _ = self.writes.wait() => false,
        }
    }

    /// Step 5, at the deadline: lets connections that are writing their
    /// 503 finish, until `until` or a second signal.
    async fn wait_for_conns(
        &mut self,
        until: Instant,
        force: &mut Force<'_, impl Future<Output = ()>>,
    ) {
        let mut until = pin!(tokio::time::sleep_until(until));
        loop {
            tokio::select! {
                // The second signal and the end of the grace first: a
                // stream of 503s being written must not stretch the grace.
                biased;
                _ = force.as_mut() => return,
                _ = &mut until => return,
                res = self.conns.join_next() => match res {
                    Some(res) => self.tally.conns_finished += usize::from(log_if_panicked(res)),
                    None => return,
                },
            }
        }
    }

    /// Step 5, Close semantics: aborts every connection and worker, and
    /// waits (briefly) for stream and write tasks, whose force tokens the
    /// caller has cancelled, to notice.
    async fn abort_all(&mut self, app: &App) {
        self.conns.abort_all();
        self.workers.abort_all();
        while let Some(res) = self.conns.join_next().await {
            self.tally.connection(res, app);
        }
        while let Some(res) = self.workers.join_next().await {
            self.tally.worker(res);
        }
        // Stream tasks race their force token, so they end at their next
        // poll; the bound only guards against a task that never yields.
        self.streams.close();
        let _ = tokio::time::timeout(ABORT_WAIT, self.streams.wait()).await;
        // Write tasks check `abandon_writes` between statements, so they
        // end within one statement. If one does not (stuck waiting for
        // another process's lock), the process exits without its commit,
        // and SQLite discards the uncommitted transaction.
        self.writes.close();
        let _ = tokio::time::timeout(ABORT_WAIT, self.writes.wait()).await;
        // WebSocket sessions race `abort_streams` in every wait, so they
        // end at their next poll, counted as aborted.
        self.websockets.close();
        let _ = tokio::time::timeout(ABORT_WAIT, self.websockets.wait()).await;
    }
}
