//! Serving one accepted connection, from the first byte to the close.
//!
//! 1. **Sniff** the protocol: read the first bytes and compare them with the
//!    HTTP/2 preface (`PRI * HTTP/2.0…`). hyper-util's auto builder does the
//!    same, but with no timer, so a client that connects and stays silent
//!    would hold a connection slot forever. Here the sniff shares the first
//!    head's deadline (`header_read_timeout` from the accept).
//! 2. **Serve** with hyper's HTTP/1 or HTTP/2 connection, replaying the
//!    sniffed bytes first. Both learn of the drain from the `closing`
//!    token: HTTP/1 through `keepalive_grace`, HTTP/2 through `h2_idle`,
//!    which also ends an idle HTTP/2 connection the same way (GOAWAY).
//!    hyper-util's graceful watcher is not used: it owns the connection
//!    it watches, so nothing else could tell that connection to finish.
//!
//! The task's locals are its shutdown contract: the connection-limit permit
//! and the open-connection count are released by `Drop`, so they are
//! released however the task ends — finished, errored, or aborted at the
//! deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinError;
use tracing::{debug, error};

use crate::app::App;
use crate::executor::StreamExecutor;
use crate::h2_idle::{self, StreamCount};
use crate::head_timer::{CountingIo, HeadClock, HeadTimer};
use crate::keepalive_grace::KeepAliveGrace;
use crate::service::Service;
use crate::write_stall::WriteStall;

/// The client preface every HTTP/2 connection starts with (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Which protocol the sniff found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Anything that does not start with the HTTP/2 preface.
    Http1,
    /// Prior-knowledge HTTP/2 over cleartext (h2c).
    Http2,
}

/// Everything a connection task needs, built once per server and shared.
#[derive(Debug)]
pub struct ConnectionConfig {
    app: Arc<App>,
    service: Service,
    /// Preconfigured HTTP/1 builder; each connection clones it and adds its
    /// own [`HeadTimer`].
    http1: http1::Builder,
    /// The executor HTTP/2 stream tasks are spawned on (see
    /// [`StreamExecutor`]); each HTTP/2 connection gets a counting copy.
    executor: StreamExecutor,
    /// `max_header_bytes`, for HTTP/2's header-list limit.
    max_header_list: u32,
    header_timeout: Duration,
    idle_timeout: Duration,
    keepalive_grace: Duration,
}

impl ConnectionConfig {
    /// Builders configured from `app.config`.
    pub fn new(app: Arc<App>, executor: StreamExecutor) -> Self {
        let config = &app.config;
        let mut h1 = http1::Builder::new();
        h1.max_buf_size(config.max_header_bytes.max(8192))
            // The value only switches the timer on: HeadTimer decides the
            // real deadline per wait (header vs idle).
            .header_read_timeout(config.header_read_timeout);
        ConnectionConfig {
            service: Service::new(app.clone()),
            header_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            keepalive_grace: config.keepalive_grace,
            max_header_list: config.max_header_bytes.min(u32::MAX as usize) as u32,
            http1: h1,
            executor,
            app,
        }
    }

    /// An HTTP/2 builder for one connection, whose streams are counted in
    /// `streams`. Built per connection because the executor is part of the
    /// builder's type and value; HTTP/2 connections are long-lived, so this
    /// is not on the churn path.
    fn http2(&self, streams: Arc<StreamCount>) -> http2::Builder<StreamExecutor> {
        let mut h2 = http2::Builder::new(self.executor.counting(streams));
        // A timer for HTTP/2 keep-alive pings and hyper's internal waits.
        h2.timer(TokioTimer::new())
            .max_header_list_size(self.max_header_list);
        h2
    }

    /// The shared application state.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }
}

/// Serves one connection to the end. `peer` is the client's address, when
/// there is one (for the access log). `permit` is the connection-limit
/// slot this connection occupies; it is released when this returns or is
/// aborted.
pub async fn serve<T>(
    io: T,
    accepted_at: Instant,
    peer: Option<SocketAddr>,
    cfg: Arc<ConnectionConfig>,
    permit: Option<OwnedSemaphorePermit>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Released on drop, however this task ends.
    let _slot = permit;
    let _open = OpenConnection(&cfg.app);

    // This connection's copy of the service: with `--access-log`, it
    // knows the peer.
    let service = cfg.service.for_connection(peer);
    let clock = HeadClock::new(accepted_at, cfg.header_timeout, cfg.idle_timeout);
    let mut io = io;
    let (protocol, prefix) =
        match tokio::time::timeout_at(clock.first_head_deadline().into(), sniff(&mut io)).await {
            Ok(Ok(Some(found))) => found,
            Ok(Ok(None)) => return, // Closed before sending anything.
            Ok(Err(e)) => return debug!(error = %e, "read failed before the first request"),
            Err(_) => return debug!("no request within the header timeout; closing"),
        };
    // A peer that stops reading is cut off after a stalled write: see
    // `write_stall`.
    let io = WriteStall::new(io, cfg.app.config.request_timeout);
    // Counts bytes for the head timer, and lingers on close so that no
    // reset destroys a response: see `lingering_close`.
    let io = TokioIo::new(CountingIo::new(io, prefix, clock.clone()));

    let result = match protocol {
        Protocol::Http1 => {
            // At the drain, hyper's graceful shutdown would close an idle
            // keep-alive connection at once, racing the client's next
            // request; `keepalive_grace` decides when instead.
            let mut h1 = cfg.http1.clone();
            h1.timer(HeadTimer(clock.clone()));
            if cfg.app.shutdown.is_draining() {
                // The drain has already begun: serve the request we
                // already hold in `prefix`, and close (Go does the same
                // for connections still in StateNew).
                h1.keep_alive(false).serve_connection(io, service).await
            } else {
                let conn = h1.serve_connection(io, service);
                let drain = cfg.app.shutdown.closing();
                KeepAliveGrace::new(conn, drain, &clock, cfg.keepalive_grace).await
            }
        }
        Protocol::Http2 => {
            let streams = StreamCount::new();
            let h2 = cfg.http2(streams.clone());
            let conn = h2.serve_connection(io, service);
            // The drain and the idle timeout both end the connection with
            // GOAWAY: see `h2_idle`. Boxed: an HTTP/2 connection's state
            // is much larger than an HTTP/1 one's, and held inline it
            // would make every connection task that size, HTTP/1 or not.
            let drain = cfg.app.shutdown.closing();
            Box::pin(h2_idle::serve(conn, drain, &streams, cfg.idle_timeout)).await
        }
    };
    if let Err(e) = result {
        // Clients vanish, send garbage and time out all the time; none of it
        // is the server's problem, so it is not a warning.
        debug!(error = %e, ?protocol, "connection ended with an error");
    }
}

/// Reads until the first bytes decide the protocol. Returns the protocol
/// and the bytes read (to be replayed to hyper), or `None` if the peer
/// closed first.
pub async fn sniff<T: AsyncRead + Unpin>(io: &mut T) -> std::io::Result<Option<(Protocol, Bytes)>> {
    // One read usually brings the whole first request head; 512 bytes keeps
    // the connection task small while covering typical heads.
    let mut buf = [0u8; 512];
    let mut filled = 0;
    loop {
        let n = io.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(None);
        }
        filled += n;
        let seen = &buf[..filled];
        let common = seen.len().min(H2_PREFACE.len());
        let protocol = if seen[..common] != H2_PREFACE[..common] {
            Protocol::Http1
        } else if filled >= H2_PREFACE.len() {
            Protocol::Http2
        } else {
            continue; // A prefix of the preface: need more bytes to decide.
        };
        return Ok(Some((protocol, Bytes::copy_from_slice(seen))));
    }
}

/// Counts the connection as closed when dropped.
struct OpenConnection<'a>(&'a App);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.metrics.connections_closed.fetch_add(1, Relaxed);
    }
}

/// Logs a connection task that panicked. Returns true if it ended normally.
pub(crate) fn log_if_panicked(res: Result<(), JoinError>) -> bool {
    match res {
        Ok(()) => true,
        Err(e) if e.is_panic() => {
            error!(error = %e, "connection task panicked");
            false
        }
        Err(_) => false,
    }
}
