//! Step 2 of an upgrade: the new process says it is ready.
//!
//! A pipe. The old process keeps the read end; the new one gets the write
//! end as fd 4, named in `LAMEDUCK_READY_FD`. Once it can serve — its store
//! is open, its signal handlers are in place, the inherited socket is a
//! Tokio listener — the new process writes one byte and closes the pipe,
//! right before it enters its accept loop. tableflip does the same.
//!
//! | the old process reads | it means |
//! |---|---|
//! | one byte | ready: the old process may drain |
//! | end of file, no byte | the new process closed the pipe without saying ready: it exited, crashed, or exec'd something that closed fd 4 |
//! | nothing yet | still starting; `--upgrade-timeout` bounds the wait |
//!
//! Why a pipe and not, say, polling `/healthz` through the socket: the
//! socket is shared, so a health check could be answered by the *old*
//! process; and a pipe's end of file tells a crash at once, with no
//! timeout to wait out.

use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

/// The variable that names the ready pipe's descriptor in the new process.
pub(crate) const READY_FD_VAR: &str = "LAMEDUCK_READY_FD";

/// The ready pipe's descriptor in the new process: the one after the
/// listening socket.
pub(crate) const READY_FD: RawFd = 4;

/// The old process's end: waits for the byte.
#[derive(Debug)]
pub(crate) struct ReadyWait(pipe::Receiver);

impl ReadyWait {
    /// Must be called inside a Tokio runtime.
    pub fn new(read_end: OwnedFd) -> io::Result<ReadyWait> {
        pipe::Receiver::from_owned_fd(read_end).map(ReadyWait)
    }

    /// `true` once the new process said ready; `false` if it closed the
    /// pipe without saying it. Cancel safe: a byte that arrives while the
    /// future is dropped stays in the pipe.
    pub async fn said_ready(&mut self) -> io::Result<bool> {
        let mut byte = [0u8; 1];
        Ok(self.0.read(&mut byte).await? == 1)
    }
}

/// The new process's end: says ready once.
#[derive(Debug)]
pub struct ReadySignal(std::fs::File);

impl ReadySignal {
    /// The ready pipe, if this process was started by an upgrade. Call once,
    /// at start-up: it takes ownership of the descriptor.
    pub fn from_env() -> Option<io::Result<ReadySignal>> {
        let fd: RawFd = std::env::var(READY_FD_VAR).ok()?.parse().ok()?;
        Some(Self::take(fd))
    }

    fn take(fd: RawFd) -> io::Result<ReadySignal> {
        // SAFETY: fstat on a number; it fails cleanly if nothing is open.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut stat) } < 0 || stat.st_mode & libc::S_IFMT != libc::S_IFIFO
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{READY_FD_VAR}={fd} is not an open pipe"),
            ));
        }
        // Close-on-exec: a process *we* start later must not hold it, or
        // our parent would not see end of file if we died.
        // SAFETY: fcntl on the descriptor just checked.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the variable says the old process opened `fd` for us,
        // and nothing else in this process owns it: this runs once, at
        // start-up.
        Ok(ReadySignal(unsafe { std::fs::File::from_raw_fd(fd) }))
    }

    /// Tells the old process we are ready, and closes the pipe.
    pub fn ready(mut self) -> io::Result<()> {
        self.0.write_all(b"R")
        // `self` dropped here: the pipe is closed.
    }
}
