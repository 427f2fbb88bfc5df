//! What to do when `accept(2)` fails.
//!
//! Two kinds of failure look alike but need opposite answers:
//!
//! * **Per-connection** errors (`ECONNABORTED`, `ECONNRESET`, `EPROTO`, …):
//!   one client gave up during the handshake. The listener is fine; accept
//!   the next one at once.
//! * **Resource** errors (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`): the
//!   process or the kernel is out of something. The pending connection is
//!   still queued, so retrying at once fails again at once — a hot spin that
//!   burns a core and floods the log. Back off (10 ms doubling to 1 s) and
//!   log at most once a second, counting what was suppressed.
//!
//! No accept error ends the server: only the shutdown trigger does.

use std::io;
use std::time::{Duration, Instant};

use tracing::warn;

/// How an accept error should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptErrorKind {
    /// One connection failed; accept the next immediately.
    Connection,
    /// Out of file descriptors or memory; back off before retrying.
    Resource,
    /// Anything else: treated like a resource error, since we cannot know
    /// that retrying at once would not spin.
    Unexpected,
}

/// Sorts an accept error into an [`AcceptErrorKind`].
pub fn classify(err: &io::Error) -> AcceptErrorKind {
    use io::ErrorKind::*;
    match err.kind() {
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock => {
            return AcceptErrorKind::Connection;
        }
        OutOfMemory => return AcceptErrorKind::Resource,
        _ => {}
    }
    match err.raw_os_error() {
        Some(
            libc_errno::EMFILE | libc_errno::ENFILE | libc_errno::ENOBUFS | libc_errno::ENOMEM,
        ) => AcceptErrorKind::Resource,
        Some(
            libc_errno::EPROTO
            | libc_errno::EPERM
            | libc_errno::ENETDOWN
            | libc_errno::ENOPROTOOPT
            | libc_errno::EHOSTDOWN
            | libc_errno::ENONET
            | libc_errno::EHOSTUNREACH
            | libc_errno::EOPNOTSUPP
            | libc_errno::ENETUNREACH
            | libc_errno::ETIMEDOUT,
        ) => AcceptErrorKind::Connection,
        _ => AcceptErrorKind::Unexpected,
    }
}

/// Linux errno values, spelled out so the classification reads without a
/// `libc` dependency for eleven constants.
mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const ENOMEM: i32 = 12;
    pub const ENFILE: i32 = 23;
    pub const EMFILE: i32 = 24;
    pub const ENONET: i32 = 64;
    pub const EPROTO: i32 = 71;
    pub const ENOPROTOOPT: i32 = 92;
    pub const EOPNOTSUPP: i32 = 95;
    pub const ENETDOWN: i32 = 100;
    pub const ENETUNREACH: i32 = 101;
    pub const ENOBUFS: i32 = 105;
    pub const ETIMEDOUT: i32 = 110;
    pub const EHOSTDOWN: i32 = 112;
    pub const EHOSTUNREACH: i32 = 113;
}

const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(1);

/// Back-off and log rate limit for resource errors. Reset by the first
/// successful accept.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    next: Option<Duration>,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl AcceptBackoff {
    /// A successful accept: the next resource error starts again at 10 ms.
    pub fn reset(&mut self) {
        self.next = None;
    }

    /// Records `err` and returns how long to wait before accepting again
    /// (zero for per-connection errors).
    pub fn on_error(&mut self, err: &io::Error) -> Duration {
        let kind = classify(err);
        if kind == AcceptErrorKind::Connection {
            tracing::debug!(error = %err, "accept: connection failed during handshake");
            return Duration::ZERO;
        }
        let wait = self.next.unwrap_or(FIRST_BACKOFF);
        self.next = Some((wait * 2).min(MAX_BACKOFF));

        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
        {
            warn!(
                error = %err,
                kind = ?kind,
                backoff_ms = wait.as_millis() as u64,
                suppressed = self.suppressed,
                "accept failed; backing off"
            );
            self.last_log = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_descriptors_is_a_resource_error_and_aborts_are_not() {
        let emfile = io::Error::from_raw_os_error(libc_errno::EMFILE);
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        let eproto = io::Error::from_raw_os_error(libc_errno::EPROTO);
        assert_eq!(classify(&emfile), AcceptErrorKind::Resource);
        assert_eq!(classify(&aborted), AcceptErrorKind::Connection);
        assert_eq!(classify(&eproto), AcceptErrorKind::Connection);
    }

    #[test]
    fn backoff_doubles_to_one_second_and_resets_after_success() {
        let emfile = io::Error::from_raw_os_error(libc_errno::EMFILE);
        let mut b = AcceptBackoff::default();
        let waits: Vec<_> = (0..9).map(|_| b.on_error(&emfile).as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.on_error(&emfile), FIRST_BACKOFF);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(b.on_error(&reset), Duration::ZERO);
    }
}
