//! The shutdown phases, as a small state machine shared by every handler.
//!
//! ```text
//! Running --signal--> LameDuck --drain_delay--> Draining --all done--> Stopped
//!                         \                        |
//!                          \--second signal--> Forcing (deadline or 2nd signal) --> Stopped
//! ```
//!
//! [`PhaseCell`] is the Rust form of the article's `shuttingDown atomic.Bool`:
//! `/healthz` reads it on every request, so it is a single relaxed atomic
//! load, never a lock. It is private to [`crate::shutdown`], which
//! owns the phase together with the shutdown's tokens.

use std::sync::atomic::{AtomicU8, Ordering};

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Accepting and serving; `/healthz` is 200.
    Running = 0,
    /// First signal seen: `/healthz` is 503, hooks have fired, but we still
    /// accept and serve for `drain_delay` so load balancers can catch up.
    LameDuck = 1,
    /// Listener closed; connections told to finish; waiting for them.
    Draining = 2,
    /// The deadline passed or a second signal came: closing by force.
    Forcing = 3,
    /// `run` has returned.
    Stopped = 4,
}

impl Phase {
    /// The name used in logs and in `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::LameDuck => "lame_duck",
            Phase::Draining => "draining",
            Phase::Forcing => "forcing",
            Phase::Stopped => "stopped",
        }
    }

    /// All phases, in order (for rendering metrics).
    pub const ALL: [Phase; 5] = [
        Phase::Running,
        Phase::LameDuck,
        Phase::Draining,
        Phase::Forcing,
        Phase::Stopped,
    ];
}

/// The current [`Phase`], readable from any thread.
#[derive(Debug, Default)]
pub(crate) struct PhaseCell(AtomicU8);

impl PhaseCell {
    /// The phase now.
    pub fn get(&self) -> Phase {
        match self.0.load(Ordering::Relaxed) {
            0 => Phase::Running,
            1 => Phase::LameDuck,
            2 => Phase::Draining,
            3 => Phase::Forcing,
            _ => Phase::Stopped,
        }
    }

    /// Moves the phase forward to `phase`, never back. Returns true if it
    /// moved.
    pub fn advance(&self, phase: Phase) -> bool {
        self.0.fetch_max(phase as u8, Ordering::Relaxed) < phase as u8
    }
}
