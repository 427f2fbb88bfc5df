//! [`Timeline`]: the shutdown's clock and counters, read at each step of
//! `Server::run` and turned into the [`ShutdownReport`] at the end.
//!
//! It only watches: it never moves the phase. Keeping it apart keeps the
//! server's `run` down to its phases, and the report down to what it says.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::Instant;

use crate::app::App;
use crate::process::log_writer;
use crate::server::report::{LameDuckEnd, Outcome, ShutdownReport};
use crate::server::tally::Tally;
use crate::shutdown::stop::Stop;

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
    /// WebSockets open when the listener closed.
    websockets_at_drain: u64,
    /// WebSockets closed cleanly before the drain: the report counts the
    /// drain's.
    websockets_closed_before_drain: u64,
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
            websockets_at_drain: 0,
            websockets_closed_before_drain: 0,
        }
    }

    /// Step 2: the first signal. Only notes the time: the phase itself is
    /// moved by the server.
    pub fn lame_duck_begins(&mut self) {
        self.lame_duck_start = Instant::now();
    }

    /// Step 2, right after: `n` hooks were fired.
    pub fn hooks_fired(&mut self, n: usize) {
        self.hooks_fired = n;
    }

    /// The hooks fired at step 2.
    pub fn hooks(&self) -> usize {
        self.hooks_fired
    }

    /// Step 3: the lame-duck phase ended (`ended` says how) and the
    /// listener closed with `conns` connections open.
    pub fn drain_begins(&mut self, conns: usize, ended: LameDuckEnd) {
        self.drain_start = Instant::now();
        self.lame_duck_end = ended;
        self.connections_at_drain = conns;
        self.requests_before_drain = self.app.metrics.requests_total();
        self.websockets_at_drain = self.app.websockets.open();
        self.websockets_closed_before_drain = self.app.websockets.closed();
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

    /// Step 7: the report.
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
            websockets_at_drain: self.websockets_at_drain,
            websockets_closed: self.app.websockets.closed() - self.websockets_closed_before_drain,
            websockets_aborted: self.app.websockets.aborted(),
            spread: self.app.shutdown.spread().window(),
            goodbyes: self.app.shutdown.spread().drawn(),
            log_lines_dropped: log_writer::dropped_lines(),
        }
    }
}
