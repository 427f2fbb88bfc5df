//! WebSockets (RFC 6455): the handshake here, the sessions in `hub.rs`
//! and `echo.rs`, and what every session does at a shutdown in
//! `session.rs`.
//!
//! The handshake is an ordinary request until its answer: the route
//! checks it (`GET`, `Upgrade: websocket`, `Connection: upgrade`,
//! version 13, a 16-byte key), asks the registry whether new sessions are
//! still taken, spawns the session as a tracked task
//! ([`Sockets`](crate::long_lived::sockets::Sockets)), and answers `101`.
//! hyper writes the `101` and then hands the socket to the waiting task
//! (`hyper::upgrade::on`), which wraps it in tungstenite's protocol.
//!
//! | request | answer |
//! |---|---|
//! | a valid handshake, server running | `101 Switching Protocols` |
//! | from the first signal on (the hook has told the hub), and from the drain on in any case | `503` + `Retry-After` |
//! | as many sockets open as `--max-connections` | `503` + `Retry-After` |
//! | a `GET` that is not a WebSocket handshake, or asks another version | `426 Upgrade Required` + `Sec-WebSocket-Version: 13` |
//! | a handshake without a valid `Sec-WebSocket-Key`, a bad `after` | `400` |
//! | over HTTP/2 | `426` (see below) |
//!
//! The socket underneath is the connection's own IO, still inside its
//! write-stall limit (`conn::write_stall`): a peer that stops reading is
//! cut off after `--request-timeout` without progress, as any other. The
//! request timeout itself does not apply: a WebSocket may rightly last
//! longer than any request. An idle one is pinged, and closed when it
//! stops answering (`--ws-ping-interval`, `--ws-ping-timeout`).
//!
//! WebSockets over HTTP/2 (RFC 8441's extended `CONNECT`) are not served:
//! browsers fall back to HTTP/1.1 when a server does not offer them, and
//! serving them would put a second, per-stream upgrade path into the
//! HTTP/2 connection, whose drain (GOAWAY, then the streams) would have to
//! learn to wait for sockets that are not streams.

pub(crate) mod echo;
pub(crate) mod hub;
pub(crate) mod session;

use std::future::Future;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::debug;

use crate::app::App;
use crate::long_lived::sockets::Ending;
use crate::service::respond::{self, Body};

/// A server-side WebSocket over an upgraded connection.
pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// Checks the handshake in `req`; if it is one, starts `session` on the
/// upgraded socket, as a tracked task, and answers `101`. `config` bounds
/// what the peer may send.
pub fn accept<F, Fut>(
    app: &Arc<App>,
    mut req: Request<Incoming>,
    config: WebSocketConfig,
    session: F,
) -> Response<Body>
where
    F: FnOnce(Arc<App>, Socket) -> Fut + Send + 'static,
    Fut: Future<Output = Ending> + Send + 'static,
{
    let key = match handshake_key(&req) {
        Ok(key) => key,
        Err(refusal) => return *refusal,
    };
    let sockets = &app.websockets;
    // The hook fired: the server is stopping, and a new session would
    // only be told to close. The client retries elsewhere, or here after
    // a restart. The drain refuses too, hook or not: hooks are not
    // awaited, and the drain may begin before this one has run (at
    // once after an upgrade, or with `--drain-delay 0`), when a `101`
    // would also be given `Connection: close` (`last_if_draining`), which
    // a client must fail the handshake for (RFC 6455 §4.1).
    if sockets.is_refusing() || app.shutdown.is_draining() {
        return respond::retry_elsewhere("server is shutting down; reconnect in a moment");
    }
    // An upgraded socket has left the connection limit (its connection
    // task is over), so the sockets have a limit of their own, the same.
    if sockets.open() >= app.config.max_connections as u64 {
        return respond::retry_elsewhere("too many WebSockets open");
    }
    let upgrade = hyper::upgrade::on(&mut req);
    let owner = app.clone();
    sockets.spawn(async move {
        // Resolves once hyper has written the 101 and let go of the
        // socket; fails if the connection ended first.
        let io = match upgrade.await {
            Ok(io) => io,
            Err(e) => {
                debug!(error = %e, "websocket upgrade did not complete");
                return Ending::Broken;
            }
        };
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, Some(config)).await;
        session(owner, socket).await
    });
    let mut res = respond::empty(StatusCode::SWITCHING_PROTOCOLS);
    let headers = res.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    res
}

/// The handshake's key, or the answer to a request that is not a valid
/// handshake (RFC 6455 §4.2.1).
/// (The refusal is boxed: a response is large, a key small.)
fn handshake_key(req: &Request<Incoming>) -> Result<String, Box<Response<Body>>> {
    let headers = req.headers();
    if req.version() != Version::HTTP_11 {
        return Err(Box::new(upgrade_required(
            "WebSockets are served over HTTP/1.1 only",
        )));
    }
    if !has_token(headers, header::UPGRADE, "websocket")
        || !has_token(headers, header::CONNECTION, "upgrade")
    {
        return Err(Box::new(upgrade_required(
            "this is a WebSocket endpoint: send Upgrade: websocket",
        )));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(Box::new(upgrade_required(
            "only WebSocket version 13 is served",
        )));
    }
    match headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(HeaderValue::to_str)
    {
        Some(Ok(key)) if is_nonce(key) => Ok(key.to_owned()),
        _ => Err(Box::new(respond::json_error(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key must be 16 bytes in base64",
        ))),
    }
}

/// `426 Upgrade Required`, naming the version served (RFC 6455 §4.4).
fn upgrade_required(message: &'static str) -> Response<Body> {
    let mut res = respond::json_error(StatusCode::UPGRADE_REQUIRED, message);
    let headers = res.headers_mut();
    headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    res
}

/// True if the comma-separated header `name` has `token` (ASCII
/// case-insensitive), in any of its fields.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A 16-byte value in base64: 22 characters of the alphabet and `==`.
fn is_nonce(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24
        && b[22..] == *b"=="
        && b[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}
