//! A server under test, as the bench sees it: something that listens on
//! one loopback address and can be restarted, then stopped.

use std::net::SocketAddr;

use super::process::Exit;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What one restart did, as far as the bench can tell.
#[derive(Debug, Clone, Copy)]
pub struct Restarted {
    /// The process that served before, and the one after, if known.
    pub old_pid: Option<i32>,
    pub new_pid: Option<i32>,
    /// How the old process ended, if the bench could wait for it.
    pub old_exit: Option<Exit>,
}

/// A server under test.
pub trait Target {
    /// Where it listens.
    fn addr(&self) -> SocketAddr;

    /// Restarts it once, and returns when the old instance is gone (or, if
    /// that cannot be seen, after the target's settle time) and the new one
    /// serves. An error means the server is not known to serve any more.
    fn restart(&mut self) -> Result<Restarted, BoxError>;

    /// Stops it for good and waits for it to go.
    fn stop(&mut self) -> Result<(), BoxError>;
}
