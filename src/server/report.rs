//! What a shutdown did, in numbers: logged as one line and turned into the
//! exit code.
//!
//! [`ShutdownReport`] holds the time in each phase (`lame_duck_ms`,
//! `drain_ms`, `force_ms`) and what ended the lame-duck phase
//! ([`LameDuckEnd`]: the checks, the cap, a second signal, or an upgrade,
//! which has no lame-duck phase), the connections drained versus aborted,
//! the requests completed during the drain, the requests answered `503` at
//! the deadline, the streams ended, the workers stopped or aborted, and
//! the hooks fired. [`ShutdownReport::log`] writes it as one structured
//! line (target `lameduck::server::report`), for example:
//!
//! ```text
//! INFO lameduck::server::report: shutdown report cause="signal" outcome="drained" lame_duck_ms=2003 lame_duck_end="cap" drain_ms=1711 force_ms=0 conns_at_drain=1 conns_drained=1 conns_aborted=0 requests_during_drain=1 refused_at_deadline=0 streams_ended=0 workers_stopped=2 workers_aborted=0 hooks_fired=1 websockets_at_drain=0 websockets_closed=0 websockets_aborted=0 spread_ms=0 log_lines_dropped=0
//! ```
//!
//! [`Outcome`] says whether anything had to be forced, and
//! [`ShutdownReport::exit_code`] turns it into the process's exit code:
//! 0 when everything drained, 1 when the deadline or a second signal
//! forced the close. `main` exits with it.

use std::time::Duration;

use tracing::info;

use crate::process::log_writer::REPORT_TARGET;
use crate::shutdown::stop::Stop;

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

/// What ended the lame-duck phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LameDuckEnd {
    /// Every health checker had seen `/healthz` fail `--drain-checks`
    /// times (see [`crate::shutdown::health_checkers`]).
    Checks,
    /// `--drain-delay` passed (at once if it is zero).
    Cap,
    /// A second signal: the close is forced.
    SecondSignal,
    /// There was no lame-duck phase: after an upgrade the new process
    /// serves the same socket, so nobody needs steering away.
    Upgrade,
}

impl LameDuckEnd {
    /// The name used in the log lines.
    pub fn name(self) -> &'static str {
        match self {
            LameDuckEnd::Checks => "checks",
            LameDuckEnd::Cap => "cap",
            LameDuckEnd::SecondSignal => "second_signal",
            LameDuckEnd::Upgrade => "upgrade",
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
    /// WebSockets open when the listener closed.
    pub websockets_at_drain: u64,
    /// WebSockets whose closing handshake finished after the listener
    /// closed.
    pub websockets_closed: u64,
    /// WebSockets the forced close cut before their closing handshake
    /// finished.
    pub websockets_aborted: u64,
    /// The goodbye window (`--drain-spread`, shrunk for a quiet server).
    pub spread: Duration,
    /// The earliest and the latest goodbye drawn in it, after the drain's
    /// start; `None` with no window, or no goodbye drawn.
    pub goodbyes: Option<(Duration, Duration)>,
    /// Log lines dropped since start because stderr could not keep up
    /// (see [`crate::process::log_writer`]). This line itself is never
    /// one of them.
    pub log_lines_dropped: u64,
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
        // Its own target: the log writer holds this line and writes it
        // last, after every queued one, instead of queueing it.
        info!(
            target: REPORT_TARGET,
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
            websockets_at_drain = self.websockets_at_drain,
            websockets_closed = self.websockets_closed,
            websockets_aborted = self.websockets_aborted,
            spread_ms = self.spread.as_millis() as u64,
            first_goodbye_ms = self.goodbyes.map(|(first, _)| first.as_millis() as u64),
            last_goodbye_ms = self.goodbyes.map(|(_, last)| last.as_millis() as u64),
            log_lines_dropped = self.log_lines_dropped,
            "shutdown report"
        );
    }
}
