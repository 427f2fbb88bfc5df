//! What became of one request. The classes are told apart by how far the
//! request got and how the connection ended, so that each one points at a
//! different thing a server did during a restart.

use std::io;

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
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

impl Verdict {
    /// The failure classes, in the order tables show them.
    pub const FAILURES: [Verdict; 5] = [
        Verdict::Refused,
        Verdict::Reset,
        Verdict::Broken,
        Verdict::Non2xx,
        Verdict::Timeout,
    ];

    /// Its name in tables, JSON and test messages.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Refused => "refused",
            Verdict::Reset => "reset",
            Verdict::Broken => "broken",
            Verdict::Non2xx => "non_2xx",
            Verdict::Timeout => "timeout",
        }
    }

    /// A complete response's class.
    pub(super) fn of_status(status: u16) -> Verdict {
        if (200..300).contains(&status) {
            Verdict::Ok
        } else {
            Verdict::Non2xx
        }
    }

    /// A failed connect.
    pub(super) fn of_connect(e: &io::Error) -> Verdict {
        if e.kind() == io::ErrorKind::TimedOut {
            Verdict::Timeout
        } else {
            Verdict::Refused
        }
    }

    /// A failed write of the request. Nothing of the response can have
    /// arrived yet (the previous one was read to its end).
    pub(super) fn of_write(e: &io::Error) -> Verdict {
        match e.kind() {
            io::ErrorKind::TimedOut => Verdict::Timeout,
            // ECONNRESET, EPIPE (BrokenPipe), ECONNABORTED: the server's
            // side of the connection is gone.
            _ => Verdict::Reset,
        }
    }

    /// A failed read of the response; `got_bytes` says whether any byte of
    /// it had arrived.
    pub(super) fn of_read(e: &io::Error, got_bytes: bool) -> Verdict {
        match e.kind() {
            io::ErrorKind::TimedOut => Verdict::Timeout,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted if !got_bytes => {
                Verdict::Reset
            }
            _ => Verdict::Broken,
        }
    }
}
