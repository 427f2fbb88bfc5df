//! What a shutdown did, in numbers: logged as one line and turned into the
//! exit code.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::task::JoinError;
use tokio::time::Instant;
use tracing::{error, info};

use crate::app::App;
use crate::connection::log_if_panicked;

/// How the shutdown ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything finished before the deadline.
    Drained,
    /// The shutdown timeout passed with work still running.
    ForcedByDeadline,
    /// A second signal came before the drain finished.
    ForcedBySignal,
}

impl Outcome {
    /// The name used in the log line.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Drained => "drained",
            Outcome::ForcedByDeadline => "forced_by_deadline",
            Outcome::ForcedBySignal => "forced_by_signal",
        }
    }
}

/// Why the server stopped: what the `shutdown` trigger of
/// [`crate::Server::run`] resolved to. A trigger that resolves to `()`
/// means [`Stop::Signal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM or SIGINT (or a test's token): the whole shutdown, with its
    /// lame-duck phase so that load balancers can catch up.
    Signal,
    /// A new process serves the same listening socket and has said it is
    /// ready: nothing needs to be steered away, so the lame-duck phase is
    /// skipped and the drain begins at once.
    Upgrade {
        /// The process that took over.
        new_pid: u32,
    },
}

impl From<()> for Stop {
    fn from((): ()) -> Self {
        Stop::Signal
    }
}

impl Stop {
    /// The name used in the log line.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Signal => "signal",
            Stop::Upgrade { .. } => "upgrade",
        }
    }
}

/// What ended the lame-duck phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LameDuckEnd {
    /// Every health checker had seen `/healthz` fail `--drain-checks`
    /// times (see [`crate::health_checkers`]).
    Checks,
    /// `--drain-delay` passed (at once if it is zero, as after an upgrade).
    Cap,
    /// A second signal: the close is forced.
    SecondSignal,
}

impl LameDuckEnd {
    /// The name used in the log lines.
    pub fn name(self) -> &'static str {
        match self {
            LameDuckEnd::Checks => "checks",
            LameDuckEnd::Cap => "cap",
            LameDuckEnd::SecondSignal => "second_signal",
        }
    }
}

/// The shutdown report. Returned by [`crate::Server::run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// What started it.
    pub cause: Stop,
    /// How it ended; decides the exit code.
    pub outcome: Outcome,
    /// Time from the first signal until the listener closed (the
    /// lame-duck delay, or less if the checks or a second signal cut it
    /// short).
    pub lame_duck: Duration,
    /// What ended the lame-duck phase.
    pub lame_duck_end: LameDuckEnd,
    /// Time from the listener closing until everything finished or the
    /// force began.
    pub drain: Duration,
    /// Time spent forcing (the deadline grace plus the aborts); zero if
    /// nothing was forced.
    pub force: Duration,
    /// Connections open when the listener closed.
    pub connections_at_drain: usize,
    /// Connections that finished on their own after the listener closed
    /// (during the drain, or in the deadline grace after their 503).
    pub connections_drained: usize,
    /// Connections aborted by the forced close.
    pub connections_aborted: usize,
    /// Responses produced after the listener closed.
    pub requests_during_drain: u64,
    /// Requests answered `503` at the deadline instead of being cut.
    pub requests_refused_at_deadline: u64,
    /// Event streams that ended with their `shutdown` event.
    pub streams_ended: u64,
    /// Background workers that stopped when cancelled.
    pub workers_stopped: usize,
    /// Background workers aborted by the forced close.
    pub workers_aborted: usize,
    /// On-shutdown hooks fired (not awaited).
    pub hooks_fired: usize,
}

impl ShutdownReport {
    /// True if anything had to be forced.
    pub fn forced(&self) -> bool {
        self.outcome != Outcome::Drained
    }

    /// The process exit code: 0 when everything drained, 1 when anything
    /// was forced. (2, for start-up errors, is the binary's.)
    pub fn exit_code(&self) -> i32 {
        if self.forced() { 1 } else { 0 }
    }

    /// Logs the report as one structured line.
    pub fn log(&self) {
        let new_pid = match self.cause {
            Stop::Upgrade { new_pid } => Some(new_pid),
            Stop::Signal => None,
        };
        info!(
            cause = self.cause.name(),
            new_pid,
            outcome = self.outcome.name(),
            lame_duck_ms = self.lame_duck.as_millis() as u64,
            lame_duck_end = self.lame_duck_end.name(),
            drain_ms = self.drain.as_millis() as u64,
            force_ms = self.force.as_millis() as u64,
            conns_at_drain = self.connections_at_drain,
            conns_drained = self.connections_drained,
            conns_aborted = self.connections_aborted,
            requests_during_drain = self.requests_during_drain,
            refused_at_deadline = self.requests_refused_at_deadline,
            streams_ended = self.streams_ended,
            workers_stopped = self.workers_stopped,
            workers_aborted = self.workers_aborted,
            hooks_fired = self.hooks_fired,
            "shutdown report"
        );
    }
}

/// The shutdown's clock and counters, read at each step of `Server::run`
/// and turned into the [`ShutdownReport`] at the end. Keeping it here
/// keeps the server's `run` down to its phases.
pub(crate) struct Timeline {
    app: Arc<App>,
    /// The first signal.
    lame_duck_start: Instant,
    /// The listener closed: the shutdown deadline counts from here.
    drain_start: Instant,
    /// Everything drained, or the force began.
    drain_end: Instant,
    hooks_fired: usize,
    /// What ended the lame-duck phase.
    lame_duck_end: LameDuckEnd,
    connections_at_drain: usize,
    /// Responses produced before the drain: the report counts those after.
    requests_before_drain: u64,
    /// 503s before the force: the report counts the deadline's.
    refused_before_force: u64,
}

impl Timeline {
    /// Nothing has happened yet.
    pub fn new(app: Arc<App>) -> Self {
        let now = Instant::now();
        Timeline {
            app,
            lame_duck_start: now,
            drain_start: now,
            drain_end: now,
            hooks_fired: 0,
            lame_duck_end: LameDuckEnd::Cap,
            connections_at_drain: 0,
            requests_before_drain: 0,
            refused_before_force: 0,
        }
    }

    /// Step 2: the first signal; `hooks_fired` hooks were fired.
    pub fn lame_duck_begins(&mut self, hooks_fired: usize) {
        self.app.shutdown.enter_lame_duck();
        self.lame_duck_start = Instant::now();
        self.hooks_fired = hooks_fired;
    }

    /// The hooks fired at step 2.
    pub fn hooks_fired(&self) -> usize {
        self.hooks_fired
    }

    /// Step 3: the lame-duck phase ended (`ended` says how) and the
    /// listener closed with `conns` connections open.
    pub fn drain_begins(&mut self, conns: usize, ended: LameDuckEnd) {
        self.drain_start = Instant::now();
        self.lame_duck_end = ended;
        self.connections_at_drain = conns;
        self.requests_before_drain = self.app.metrics.requests_total();
    }

    /// How long the lame-duck phase lasted.
    pub fn lame_duck(&self) -> Duration {
        self.drain_start - self.lame_duck_start
    }

    /// When the listener closed: the shutdown deadline counts from here.
    pub fn drain_started_at(&self) -> Instant {
        self.drain_start
    }

    /// Step 4 is over, whether it drained or not.
    pub fn drain_ends(&mut self) {
        self.drain_end = Instant::now();
        self.refused_before_force = self.app.metrics.requests_with_status(503);
    }

    /// Step 6: the report.
    pub fn report(&self, cause: Stop, outcome: Outcome, tally: &Tally) -> ShutdownReport {
        let metrics = &self.app.metrics;
        ShutdownReport {
            cause,
            outcome,
            lame_duck: self.lame_duck(),
            lame_duck_end: self.lame_duck_end,
            drain: self.drain_end - self.drain_start,
            force: if outcome == Outcome::Drained {
                Duration::ZERO
            } else {
                self.drain_end.elapsed()
            },
            connections_at_drain: self.connections_at_drain,
            connections_drained: tally.conns_finished,
            connections_aborted: tally.conns_aborted,
            requests_during_drain: metrics.requests_total() - self.requests_before_drain,
            requests_refused_at_deadline: metrics.requests_with_status(503)
                - self.refused_before_force,
            streams_ended: metrics.streams_ended_by_shutdown.load(Relaxed),
            workers_stopped: tally.workers_stopped,
            workers_aborted: tally.workers_aborted,
            hooks_fired: self.hooks_fired,
        }
    }
}

/// Counts how tasks ended, for the report.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub conns_finished: usize,
    pub conns_aborted: usize,
    pub workers_stopped: usize,
    pub workers_aborted: usize,
}

impl Tally {
    pub(crate) fn connection(&mut self, res: Result<(), JoinError>, app: &App) {
        match res {
            Err(e) if e.is_cancelled() => {
                self.conns_aborted += 1;
                app.metrics.connections_aborted.fetch_add(1, Relaxed);
            }
            res => self.conns_finished += usize::from(log_if_panicked(res)),
        }
    }

    pub(crate) fn worker(&mut self, res: Result<&'static str, JoinError>) {
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
