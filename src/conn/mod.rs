//! Serving one accepted connection, from the first byte to the close.
//!
//! 1. **Sniff** the protocol: read the first bytes and compare them with the
//!    HTTP/2 preface (`PRI * HTTP/2.0…`). hyper-util's auto builder does the
//!    same, but with no timer, so a client that connects and stays silent
//!    would hold a connection slot forever. Here the sniff shares the first
//!    head's deadline (`header_read_timeout` from the accept).
//! 2. **Serve** with hyper's HTTP/1 or HTTP/2 connection, replaying the
//!    sniffed bytes first. Both learn of the drain from the `closing`
//!    token: HTTP/1 through `http1_deadlines` (which also runs its header
//!    and idle timeouts), HTTP/2 through `h2_idle`, which also ends an idle
//!    HTTP/2 connection the same way (GOAWAY).
//!    hyper-util's graceful watcher is not used: it owns the connection
//!    it watches, so nothing else could tell that connection to finish.
//!
//! The task's locals are its shutdown contract: the connection-limit slot
//! and the open-connection count are released by `Drop`, so they are
//! released however the task ends — finished, errored, or aborted at the
//! deadline.
//!
//! The accept loop sets `TCP_NODELAY` on every accepted socket.
//!
//! # What a hostile client can do
//!
//! What a client can do to a connection, what the server does about it,
//! and the test that proves it. The tests run over real loopback sockets
//! in `cargo test`; the fuzz targets (`fuzz/`) are replayed on their corpus
//! by `tests/fuzz_corpus.rs`.
//!
//! | hostile client | what the server does | proved by |
//! |---|---|---|
//! | **Slowloris**: 200 connections sending a head one byte per 500 ms | each is closed at the header timeout counted from the accept (`--header-read-timeout`), without an answer; `/healthz` keeps answering within 1 s | `slowloris_connections_are_closed_at_the_header_timeout` |
//! | **Slow body**: a body trickled a byte at a time | cut at `--request-timeout` with **408** and `Connection: close`; the handler stops | `a_body_trickled_byte_by_byte_gets_408_at_the_request_timeout` |
//! | **Never reads**: pipelines requests for a large response and reads nothing | a write that makes no progress for `--request-timeout` fails and the connection is closed (`write_stall`); it cannot hold the drain | `a_client_that_never_reads_is_cut_off_after_the_write_stalls`, `a_client_that_never_reads_does_not_hold_the_shutdown`, `a_download_whose_client_stops_reading_is_cut_after_the_write_stalls` |
//! | **Connection flood** past `--max-connections` | the accept loop stops at the limit (the kernel backlog holds the rest), so memory is bounded; served again as soon as the flood leaves | `a_connection_flood_is_held_at_the_limit_and_the_server_recovers` |
//! | **fd exhaustion** (`EMFILE`) | the accept loop backs off 10 ms → 1 s, logs `accept failed; backing off` at most once a second, and recovers when connections close | `out_of_file_descriptors_backs_off_without_spinning_and_recovers` |
//! | a head over `--max-header-bytes`, or more than 100 header fields | **431**, connection closed | `a_head_over_max_header_bytes_gets_431`, `more_than_100_header_fields_gets_431` |
//! | `Content-Length` **and** `Transfer-Encoding` | hyper reads the body as chunked (RFC 9112 §6.1) and closes the connection after the answer, so nothing smuggled behind the body is read | `content_length_with_transfer_encoding_gets_400_and_close` |
//! | two differing `Content-Length`s, an invalid chunk size, garbage | **400**, connection closed | `differing_duplicate_content_lengths_get_400_and_close`, `an_invalid_chunk_size_gets_400_and_close`, `garbage_instead_of_a_request_gets_400` |
//! | an idle HTTP/2 connection, even one that leaves the GOAWAY's PING unanswered | GOAWAY, then closed (`h2_idle`) | `an_idle_h2c_connection_gets_goaway_then_is_closed_at_the_idle_timeout`, `an_idle_h2c_connection_that_ignores_goaway_is_closed_a_second_later` |
//! | **all of the above during a drain** while five creates are mid-body at SIGTERM | the process drains and exits **0** well within `--shutdown-timeout`; all five creates get 201 | `every_hostile_client_at_once_cannot_stop_a_clean_drain` |
//! | arbitrary bytes, chunked any way, with the shutdown signal at any read | no panic, no hang, well-formed responses, and every response written after the signal carries `Connection: close` (HTTP/2: whole frames, GOAWAY) | the fuzz targets `http1_connection` and `h2_connection` |
//! | a valid WebSocket handshake, then arbitrary frames, chunked any way, with the shutdown signal at any read | no panic; the session ends (at the latest at the forced close); well-formed server frames, one Close with a code a server may send, 1001 (1012 after an upgrade) at the shutdown | the fuzz target `websocket_frames` |
//!
//! ## Floods
//!
//! The resource attacks of HTTP/2 (each with CVEs of its own) and of
//! HTTP/1, with lameduck's default limits. Each is proved in
//! `tests/floods.rs` over a real socket: the attacking connection is ended,
//! the server's memory grows by less than 32 MiB while it lasts (about
//! 1–4 MiB measured), and a fresh `/healthz` is answered within a second.
//! The HTTP/2 settings and why each is set are in `h2_limits`.
//!
//! | attack | the bound, and where it lives | flag | what one connection can make the server hold | proved by |
//! |---|---|---|---|---|
//! | **Rapid Reset** (CVE-2023-44487): streams opened and reset at once | 20 streams reset before they were taken (`h2_limits::MAX_PENDING_ACCEPT_RESET_STREAMS`), then GOAWAY `ENHANCE_YOUR_CALM` and the close (h2) | — | 20 pending streams | `rapid_reset_gets_goaway_enhance_your_calm_and_healthz_keeps_answering` |
//! | **CONTINUATION flood** (CVE-2024-27316 family): a header block that never ends | h2 counts CONTINUATION frames against what the header list can need (its size / 16 KiB, +25 %, at least 5), then GOAWAY `ENHANCE_YOUR_CALM` | `--max-header-bytes` | one header list (64 KiB) | `a_continuation_flood_gets_goaway_enhance_your_calm` |
//! | **HPACK bomb**: a small block that decodes to a huge list | the decoded list is bounded by `--max-header-bytes` (431 on the stream); far past it, GOAWAY `ENHANCE_YOUR_CALM` ("header_list_way_too_large"); the decoder's table is 4 KiB | `--max-header-bytes` | one header list | `an_hpack_bomb_is_refused_without_being_decoded` |
//! | **PING / SETTINGS flood** (CVE-2019-9512, -9515) | h2 holds one answer at a time and reads no further frame until it is written; a flooder that does not read its answers stops the socket, and the write-stall limit closes it (measured: 2.5 s and 3.1 s after the flood began, with `--request-timeout 2s`) | `--request-timeout` | one PING answer, one SETTINGS acknowledgement, the socket's buffers | `a_ping_flood_that_reads_nothing_is_closed_at_the_write_stall`, `a_settings_flood_that_reads_nothing_is_closed_at_the_write_stall` |
//! | **Empty DATA frames** (CVE-2019-9518) | 100 empty frames per connection, and a budget for frames under 256 bytes, then GOAWAY `ENHANCE_YOUR_CALM` (h2) | — | nothing | `an_empty_data_frame_flood_gets_goaway_enhance_your_calm` |
//! | **A window kept shut**: `SETTINGS_INITIAL_WINDOW_SIZE = 0`, or no `WINDOW_UPDATE`, with many streams open | a stream whose answer has waited for the window for the write-stall limit is reset (`CANCEL`): `h2_stall`; with no stream left the connection is idle, and `h2_idle` ends it with GOAWAY | `--request-timeout`, `--idle-timeout` | 100 streams × (64 KiB queued, `h2_limits::MAX_SEND_BUF`, + one body chunk, 64 KiB for a download), about 12.5 MiB, for at most `--request-timeout`; a stream whose *last* chunk h2 has queued is over as far as its task can tell, so its bytes wait for the idle timeout instead (or for as long as another stream keeps the connection busy) | `streams_whose_window_stays_shut_are_reset_at_the_write_stall_limit` |
//! | **Too many streams** | 100 open at once (`h2_limits::MAX_CONCURRENT_STREAMS`), advertised in SETTINGS; the rest get `REFUSED_STREAM`, safe to retry | — | 100 streams, each bounded as above | `streams_past_the_concurrency_limit_are_refused` |
//! | **Request bodies sent ahead** | the receive window, 1 MiB per stream and per connection (`h2_limits::WINDOW`); a body is read only up to `--max-body` (413) | `--max-body` | 1 MiB | `a_body_not_received_in_time_gets_408` (the body's deadline) |
//! | **HTTP/1 pipelining flood**, never read | hyper parses one head at a time from a read buffer of `--max-header-bytes` (at least 8 KiB) and answers in order; once the answers fill the socket the write-stall limit closes it | `--max-header-bytes`, `--request-timeout` | the read buffer and one answer | `a_pipelining_flood_that_reads_nothing_is_closed_at_the_write_stall` |
//! | **Chunk-extension bomb** | hyper reads at most 16 KiB of chunk extensions per body: **400**, closed | — | 16 KiB | `a_chunk_extension_bomb_gets_400_and_close` |
//! | **Trailer bomb** | hyper reads at most 16 KiB of trailers: **400**, closed | — | 16 KiB | `a_trailer_bomb_gets_400_and_close` |
//!
//! So with the defaults one HTTP/2 connection holds at most about 14 MiB
//! (12.5 MiB of answers, 1 MiB of request bodies, one header list), one
//! HTTP/1 connection its buffers and one answer; `--max-connections`
//! multiplies either.

pub(crate) mod executor;
pub(crate) mod h2_idle;
pub(crate) mod h2_limits;
pub(crate) mod h2_stall;
pub(crate) mod http1_deadlines;
pub(crate) mod io;
pub(crate) mod keepalive_grace;
pub(crate) mod limit;
pub(crate) mod lingering_close;
pub(crate) mod max_age;
pub(crate) mod write_stall;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

use bytes::Bytes;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tracing::debug;

use crate::app::App;
use crate::conn::executor::StreamExecutor;
use crate::conn::h2_idle::StreamCount;
use crate::conn::http1_deadlines::{Http1Deadlines, Timeouts};
use crate::conn::io::ConnIo;
use crate::conn::limit::ConnLimit;
use crate::conn::write_stall::WriteStall;
use crate::http1_state::ConnState;
use crate::service::{self, Service};
use crate::shutdown::ShutdownState;

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
    /// `--max-connections`; a connection that ends tells it.
    limit: ConnLimit,
    /// Preconfigured HTTP/1 builder. It has no timer: the header and idle
    /// timeouts are `http1_deadlines`'.
    http1: http1::Builder,
    /// The executor HTTP/2 stream tasks are spawned on (see
    /// [`StreamExecutor`]); each HTTP/2 connection gets a counting copy.
    executor: StreamExecutor,
    /// `max_header_bytes`, for HTTP/2's header-list limit.
    max_header_list: u32,
    /// HTTP/1's deadlines; HTTP/2 uses the idle timeout too (`h2_idle`).
    timeouts: Timeouts,
}

impl ConnectionConfig {
    /// Builders configured from `app.config`.
    pub fn new(app: Arc<App>, executor: StreamExecutor) -> Self {
        let config = &app.config;
        let mut h1 = http1::Builder::new();
        h1.max_buf_size(config.max_header_bytes.max(8192))
            // hyper's own header timer is off (it is on only with a
            // timer, which this builder never gets): `http1_deadlines`
            // runs the header and idle timeouts, more cheaply.
            .header_read_timeout(None);
        ConnectionConfig {
            timeouts: Timeouts {
                header: config.header_read_timeout,
                idle: config.idle_timeout,
                keepalive_grace: config.keepalive_grace,
                max_age: config.max_connection_age,
                max_age_grace: config.max_connection_age_grace,
            },
            max_header_list: config.max_header_bytes.min(u32::MAX as usize) as u32,
            http1: h1,
            executor,
            limit: ConnLimit::new(config.max_connections),
            app,
        }
    }

    /// An HTTP/2 builder for one connection, whose streams are counted in
    /// `streams`. Built per connection because the executor is part of the
    /// builder's type and value; HTTP/2 connections are long-lived, so this
    /// is not on the churn path.
    fn http2(&self, streams: Arc<StreamCount>) -> http2::Builder<StreamExecutor> {
        // The limits on what one client can make the server hold: see
        // `h2_limits`.
        h2_limits::builder(self.executor.counting(streams), self.max_header_list)
    }

    /// The shared application state.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// The connection limit.
    pub fn limit(&self) -> &ConnLimit {
        &self.limit
    }
}

/// Serves one connection to the end. `peer` is the client's address, when
/// there is one (for the access log). Its connection-limit slot is given
/// back when this returns or is aborted.
// The server serves sockets (`serve_tcp`); any other IO is the fuzz
// harness's.
#[cfg_attr(not(feature = "test-harness"), allow(dead_code))]
pub fn serve<T>(
    io: T,
    accepted_at: Instant,
    peer: Option<SocketAddr>,
    cfg: Arc<ConnectionConfig>,
) -> impl Future<Output = ()> + Send + 'static
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // An HTTP/1 connection's phase, told by the IO, the service and the
    // response body; `http1_deadlines` reads it. It also keeps the accept
    // time, so the task need not.
    let state = ConnState::new(accepted_at);
    let peer = service::keep_peer(&cfg.app, peer);
    serve_task(io, state, peer, cfg)
}

/// [`serve`] for an accepted TCP socket, whose state can also ask the
/// kernel whether a request is waiting before an idle close
/// (`ConnState::bytes_waiting`).
pub fn serve_tcp(
    stream: tokio::net::TcpStream,
    accepted_at: Instant,
    peer: Option<SocketAddr>,
    cfg: Arc<ConnectionConfig>,
) -> impl Future<Output = ()> + Send + 'static {
    use std::os::fd::AsRawFd;
    let state = ConnState::of_socket(accepted_at, stream.as_raw_fd());
    let peer = service::keep_peer(&cfg.app, peer);
    serve_task(stream, state, peer, cfg)
}

/// [`serve`]'s task. Its arguments stay in the task for as long as it
/// runs, so they are the small forms: the accept time inside `state`, the
/// peer boxed (or `None`).
async fn serve_task<T>(
    io: T,
    state: Arc<ConnState>,
    peer: Option<Box<SocketAddr>>,
    cfg: Arc<ConnectionConfig>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Released on drop, however this task ends.
    let _open = OpenConnection(&cfg);
    let first_head_by = state.accepted_at() + cfg.timeouts.header;
    let Some((protocol, prefix, io)) = sniff_within(io, first_head_by).await else {
        return;
    };
    let result = match protocol {
        Protocol::Http1 => {
            let conn = http1(io, prefix, peer, &state, &cfg);
            // The header and idle timeouts, and at the drain the
            // keep-alive grace: hyper's graceful shutdown would close an
            // idle connection at once, racing the client's next request.
            Http1Deadlines::new(conn, &cfg.app.shutdown, &state, &cfg.timeouts).await
        }
        Protocol::Http2 => {
            let service = Service::http2(&cfg.app, peer);
            // The state only tells the close whether the deadline has
            // passed (an HTTP/2 connection has no HTTP/1 phases).
            let io = TokioIo::new(ConnIo::new(stall_limited(io, &cfg), prefix, state.clone()));
            let streams = StreamCount::new();
            let h2 = cfg.http2(streams.clone());
            let conn = h2.serve_connection(io, service);
            // The drain and the idle timeout both end the connection with
            // GOAWAY: see `h2_idle`. Boxed: an HTTP/2 connection's state
            // is much larger than an HTTP/1 one's, and held inline it
            // would make every connection task that size, HTTP/1 or not.
            // GOAWAY at its own instant in the drain's spread window, or
            // at its age (`--max-connection-age`); closed a grace after
            // its age if its streams have not ended by then.
            let aged = state.ages_out_at(cfg.timeouts.max_age);
            let drain = async {
                let age = async {
                    match aged {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = cfg.app.shutdown.goodbye() => {}
                    _ = age => {}
                }
            };
            let (grace, idle) = (cfg.timeouts.max_age_grace, cfg.timeouts.idle);
            let streams = &streams;
            let served = Box::pin(async move {
                let served = h2_idle::serve(conn, drain, streams, idle);
                match aged {
                    Some(at) => tokio::time::timeout_at((at + grace).into(), served)
                        .await
                        .unwrap_or(Ok(())),
                    None => served.await,
                }
            });
            marking_the_deadline(served, &cfg.app.shutdown, &state).await
        }
    };
    if let Err(e) = result {
        // Clients vanish, send garbage and time out all the time; none of it
        // is the server's problem, so it is not a warning.
        debug!(error = %e, ?protocol, "connection ended with an error");
    }
}

/// `served`, with `state` marked once the shutdown deadline passes, so
/// that the connection's close then waits only for the peer's
/// acknowledgement of the last frames (its 503s and GOAWAY), not for its
/// FIN (`lingering_close`). HTTP/1 marks its state in `http1_deadlines`,
/// as it answers.
async fn marking_the_deadline<F: Future>(
    served: F,
    shutdown: &ShutdownState,
    state: &ConnState,
) -> F::Output {
    let mut served = std::pin::pin!(served);
    tokio::select! {
        // The deadline first: the stream that answers 503 at the deadline
        // wakes the connection, which may then close at once; the mark
        // must be there before the close chooses how to end.
        biased;
        _ = shutdown.past_deadline() => state.deadline_passed(),
        out = &mut served => return out,
    }
    served.await
}

/// The sniff, bounded by the first head's deadline (`by`). `None` if the
/// connection ended first (closed, failed, or silent until `by`).
async fn sniff_within<T: AsyncRead + Unpin>(
    mut io: T,
    by: Instant,
) -> Option<(Protocol, Bytes, T)> {
    match tokio::time::timeout_at(by.into(), sniff(&mut io)).await {
        Ok(Ok(Some((protocol, prefix)))) => Some((protocol, prefix, io)),
        Ok(Ok(None)) => None, // Closed before sending anything.
        Ok(Err(e)) => {
            debug!(error = %e, "read failed before the first request");
            None
        }
        Err(_) => {
            debug!("no request within the header timeout; closing");
            None
        }
    }
}

/// A peer that stops reading is cut off after a stalled write: see
/// `write_stall`.
fn stall_limited<T>(io: T, cfg: &ConnectionConfig) -> WriteStall<T> {
    WriteStall::new(io, cfg.app.config.request_timeout)
}

/// hyper's HTTP/1 connection over `io`, `prefix` replayed first, in
/// `state`. Built by a plain function, so that nothing used to build it
/// stays in the connection task while it is served.
fn http1<'a, T>(
    io: T,
    prefix: Bytes,
    peer: Option<Box<SocketAddr>>,
    state: &Arc<ConnState>,
    cfg: &'a ConnectionConfig,
) -> http1::UpgradeableConnection<TokioIo<ConnIo<WriteStall<T>>>, Service<'a>>
where
    // `Send + 'static`: an upgraded socket leaves this task for its
    // session's.
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // With `--access-log`, the service knows the peer.
    let service = Service::http1(&cfg.app, peer, state);
    // Tells the state when a head begins, and lingers on close so that no
    // reset destroys a response: see `lingering_close`.
    let io = TokioIo::new(ConnIo::new(stall_limited(io, cfg), prefix, state.clone()));
    if cfg.app.shutdown.is_draining() {
        // The drain has already begun: serve the request we already hold
        // in `prefix`, and close (Go does the same for connections still
        // in StateNew).
        cfg.http1
            .clone()
            .keep_alive(false)
            .serve_connection(io, service)
            .with_upgrades()
    } else {
        // With upgrades: a WebSocket handshake's `101` hands the socket
        // to its session (see `long_lived::sockets`), and this connection
        // task ends.
        cfg.http1.serve_connection(io, service).with_upgrades()
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

/// Counts the connection as closed when dropped, which gives its slot
/// under the connection limit back.
struct OpenConnection<'a>(&'a ConnectionConfig);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        // SeqCst: a waiter (the accept loop at the limit, the drain) sets
        // its threshold and then reads this count; this adds and then
        // reads the threshold. One of the two sees the other (see
        // `conn::limit`).
        let cfg = self.0;
        cfg.app.metrics.connections_closed.fetch_add(1, SeqCst);
        cfg.limit.released(&cfg.app.metrics);
    }
}
