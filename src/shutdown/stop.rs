//! [`Stop`]: why the server stopped serving, the answer the `shutdown`
//! trigger of [`crate::Server::run`] gives.
//!
//! The server reads it to choose its phases (an upgrade has no lame-duck
//! phase), the upgrade produces it (`crate::upgrade`), and the report logs
//! it. It lives here, beside the phase, because all three ask it.

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
