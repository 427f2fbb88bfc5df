//! What became of one request. The classes are told apart by how far the
//! request got and how the connection ended, so that each one points at a
//! different thing a server did during a restart.

use std::io;

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A complete `2xx` response.
    Ok,
    /// The connection could not be opened: `ECONNREFUSED` (nothing listens
    /// on the port, as between a naive restart's exit and start), or any
    /// other connect error but a timeout.
    Refused,
    /// The server reset the connection before any byte of the response
    /// arrived: `ECONNRESET` or `EPIPE` while the request was written, or
    /// `ECONNRESET` while waiting for the answer. The kernel sends a reset
    /// when a socket is closed with the request unread in it: a connection
    /// left in the backlog of a closed listener, or a kept-alive one the
    /// server closed as the request arrived.
    Reset,
    /// The request was written, and the connection ended some other way
    /// before the response was complete: the server closed it cleanly (EOF)
    /// with no response or part of one, reset it after part of the
    /// response, or sent bytes that are not an HTTP/1 response.
    Broken,
    /// A complete response with a status outside `2xx`.
    Non2xx,
    /// A connect, the request's write or the response took longer than the
    /// plan's step timeout.
    Timeout,
}

impl Outcome {
    /// The failure classes, in the order tables show them.
    pub const FAILURES: [Outcome; 5] = [
        Outcome::Refused,
        Outcome::Reset,
        Outcome::Broken,
        Outcome::Non2xx,
        Outcome::Timeout,
    ];

    /// Its name in tables, JSON and test messages.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Reset => "reset",
            Outcome::Broken => "broken",
            Outcome::Non2xx => "non_2xx",
            Outcome::Timeout => "timeout",
        }
    }

    /// A complete response's class.
    pub(super) fn of_status(status: u16) -> Outcome {
        if (200..300).contains(&status) {
            Outcome::Ok
        } else {
            Outcome::Non2xx
        }
    }

    /// A failed connect.
    pub(super) fn of_connect(e: &io::Error) -> Outcome {
        if e.kind() == io::ErrorKind::TimedOut {
            Outcome::Timeout
        } else {
            Outcome::Refused
        }
    }

    /// A failed write of the request. Nothing of the response can have
    /// arrived yet (the previous one was read to its end).
    pub(super) fn of_write(e: &io::Error) -> Outcome {
        match e.kind() {
            io::ErrorKind::TimedOut => Outcome::Timeout,
            // ECONNRESET, EPIPE (BrokenPipe), ECONNABORTED: the server's
            // side of the connection is gone.
            _ => Outcome::Reset,
        }
    }

    /// A failed read of the response; `got_bytes` says whether any byte of
    /// it had arrived.
    pub(super) fn of_read(e: &io::Error, got_bytes: bool) -> Outcome {
        match e.kind() {
            io::ErrorKind::TimedOut => Outcome::Timeout,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted if !got_bytes => {
                Outcome::Reset
            }
            _ => Outcome::Broken,
        }
    }
}
