//! The HTTP/2 settings that bound what one client can make the server
//! hold, each set here rather than left to a default that may change.
//!
//! HTTP/2 lets a client ask for a lot with very little: one TCP packet
//! can open a hundred streams, reset them, or ask for a hundred answers it
//! will never read. hyper and h2 bound each of these, but some only when
//! configured, and their defaults are chosen for throughput. These are
//! lameduck's, with the attack each one answers (the table of attacks,
//! bounds and tests is in [`crate::conn`]'s module docs):
//!
//! | setting | value | what it bounds |
//! |---|---|---|
//! | [`MAX_CONCURRENT_STREAMS`] | 100 | streams open at once on one connection, so every per-stream bound below is multiplied by at most 100 |
//! | [`MAX_SEND_BUF`] | 64 KiB | response bytes queued per stream beyond the client's window (hyper's default is 400 KiB) |
//! | [`MAX_PENDING_ACCEPT_RESET_STREAMS`] | 20 | Rapid Reset (CVE-2023-44487): streams the client opens and resets before the server has taken them; past it, GOAWAY `ENHANCE_YOUR_CALM` |
//! | [`MAX_LOCAL_ERROR_RESET_STREAMS`] | 1024 | streams the server had to reset for the client's errors; past it, GOAWAY `ENHANCE_YOUR_CALM` |
//! | [`WINDOW`] | 1 MiB | request-body bytes a client may send ahead of the handler, per stream and per connection |
//! | header list | `--max-header-bytes` | HPACK bombs and CONTINUATION floods: the decoded header list, and so the CONTINUATION frames h2 accepts for it |
//!
//! What h2 bounds by itself, with no setting: one pending PING answer and
//! one pending SETTINGS acknowledgement at a time (it reads no further
//! frames until they are written, so a flood that does not read its
//! answers stops at the write-stall limit); DATA frames that carry little
//! or nothing (GOAWAY `ENHANCE_YOUR_CALM`, "too_many_data_frames").
//!
//! Keep-alive PINGs stay off: a silent peer is ended by the idle timeout
//! (`h2_idle`), and one that stops reading by the write-stall limit
//! (`write_stall` for the socket, `h2_stall` for a stream's window).

use std::time::Duration;

use hyper::server::conn::http2;
use hyper_util::rt::TokioTimer;

use crate::conn::executor::StreamExecutor;

/// Streams one connection may have open at once: RFC 9113 §6.5.2's
/// recommended minimum, and what browsers use. hyper's default is 200.
pub const MAX_CONCURRENT_STREAMS: u32 = 100;

/// Response bytes h2 queues per stream beyond what the window lets it
/// send. One download frame (64 KiB) fits; a stream whose window stays
/// shut holds no more than this and one body chunk until `h2_stall`
/// resets it.
pub const MAX_SEND_BUF: usize = 64 * 1024;

/// Streams opened and reset by the client before hyper took them, at
/// once; Rapid Reset's bound (hyper's and h2's value, set explicitly).
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// Streams h2 reset for the client's protocol errors over the
/// connection's life (hyper's value, set explicitly).
pub const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// The receive window, per stream and per connection: what a client may
/// send of its request bodies before the handler reads them (hyper's
/// value, set explicitly).
pub const WINDOW: u32 = 1024 * 1024;

/// An HTTP/2 builder with these limits, over `executor`; the header list
/// is bounded at `max_header_list` bytes.
pub fn builder(executor: StreamExecutor, max_header_list: u32) -> http2::Builder<StreamExecutor> {
    let mut h2 = http2::Builder::new(executor);
    // A timer for hyper's internal waits (keep-alive PINGs stay off: see
    // the module docs).
    h2.timer(TokioTimer::new())
        .max_header_list_size(max_header_list)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_send_buf_size(MAX_SEND_BUF)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESET_STREAMS)
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .keep_alive_interval(None::<Duration>);
    h2
}
