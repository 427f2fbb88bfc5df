//! One worker's connection and one request on it.
//!
//! # The check before reuse
//!
//! A kept-alive connection may have been closed by the server while the
//! worker was not looking: between two requests, or during a think time.
//! Writing a request on it would fail, and that failure is the client's
//! doing, not the server's: every pooled HTTP client looks first. Go's
//! `Transport` has a goroutine reading every idle connection and drops the
//! connection when that read ends; hyper-util's pool asks `is_closed()`,
//! which is the same read done by hyper's connection task.
//!
//! Here the look is one `recv(MSG_PEEK)` on the non-blocking socket, made
//! as a system call right before the write (not Tokio's cached readiness,
//! which is only as fresh as the reactor's last poll):
//!
//! | peek says | meaning | what the worker does |
//! |---|---|---|
//! | `EWOULDBLOCK` | open, nothing to read | writes the request on it |
//! | 0 bytes | the server's FIN has arrived | opens a new connection |
//! | some bytes | the server sent something unasked (a `408`) | opens a new connection |
//! | an error | the server reset it | opens a new connection |
//!
//! A close still on its way when the peek is made is not seen: then the
//! request is written and fails as [`Verdict::Reset`] or
//! [`Verdict::Broken`], and counts. That window is what a server's
//! keep-alive handling has to close.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::SockRef;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::Verdict;
use crate::testing::http1::{Method, Response, ResponseReader};

/// A worker's connection, if it has one, and its response reader.
pub(super) struct Client {
    addr: SocketAddr,
    step_timeout: Duration,
    conn: Option<TcpStream>,
    /// Kept across connections so its buffer is allocated once.
    reader: ResponseReader,
}

/// One request's result.
pub(super) struct Exchange {
    pub verdict: Verdict,
    /// The response, when a complete one arrived.
    pub response: Option<Response>,
}

impl Client {
    pub fn new(addr: SocketAddr, step_timeout: Duration) -> Client {
        Client {
            addr,
            step_timeout,
            conn: None,
            reader: ResponseReader::new(),
        }
    }

    /// Sends `request` (whole, head and body) and reads the answer. Reuses
    /// the connection if the server has not closed it (see the module
    /// docs), opens one otherwise. After anything but a complete response
    /// that keeps the connection alive, the connection is gone.
    pub async fn request(&mut self, request: &[u8]) -> Exchange {
        if self.conn.as_ref().is_some_and(closed_by_server) {
            self.conn = None;
        }
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => match self.connect().await {
                Ok(conn) => conn,
                Err(e) => return failed(Verdict::of_connect(&e)),
            },
        };
        let mut conn = conn;
        if let Err(e) = step(self.step_timeout, conn.write_all(request)).await {
            return failed(Verdict::of_write(&e));
        }
        let response = loop {
            match step(
                self.step_timeout,
                self.reader.read_response(&mut conn, Method::Other),
            )
            .await
            {
                Ok(Some(r)) if r.is_interim() => continue,
                Ok(Some(r)) if r.complete => break r,
                // EOF with no response, or with part of one.
                Ok(_) => return failed(Verdict::Broken),
                Err(e) => {
                    let got_bytes = !self.reader.leftover().is_empty();
                    return failed(Verdict::of_read(&e, got_bytes));
                }
            }
        };
        if response.closes() {
            // Let the server close first, as it said it would: the
            // TIME_WAIT then stays on its side, not in the client's ports.
            self.read_to_end(&mut conn).await;
        } else {
            self.conn = Some(conn);
        }
        Exchange {
            verdict: Verdict::of_status(response.status),
            response: Some(response),
        }
    }

    /// Drops the connection, if any: the next request opens a new one.
    pub fn close(&mut self) {
        self.conn = None;
    }

    async fn connect(&mut self) -> io::Result<TcpStream> {
        let conn = step(self.step_timeout, TcpStream::connect(self.addr)).await?;
        // Small requests should not wait for Nagle.
        conn.set_nodelay(true)?;
        self.reader.reset();
        Ok(conn)
    }

    /// Reads until the server closes, within one step timeout; whatever
    /// comes is dropped.
    async fn read_to_end(&mut self, conn: &mut TcpStream) {
        let reader = &mut self.reader;
        let _ = timeout(self.step_timeout, async {
            while matches!(reader.fill_from(conn).await, Ok(n) if n > 0) {
                let rest = reader.leftover().len();
                reader.consume(rest);
            }
        })
        .await;
    }
}

/// `fut`, or a `TimedOut` error after `limit`.
async fn step<T>(limit: Duration, fut: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    timeout(limit, fut)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

fn failed(verdict: Verdict) -> Exchange {
    Exchange {
        verdict,
        response: None,
    }
}

/// True if the server has closed `conn` (or it is not fit to reuse): the
/// table in the module docs.
fn closed_by_server(conn: &TcpStream) -> bool {
    let mut byte = [MaybeUninit::uninit()];
    // Tokio keeps the socket non-blocking, so this returns at once.
    match SockRef::from(conn).peek(&mut byte) {
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        Ok(_) => true,
    }
}
