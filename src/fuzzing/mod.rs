//! Fuzz entry points: the real connection code and the real service, driven
//! by arbitrary bytes, with the invariants checked after every run.
//!
//! Each function here is one fuzz target (`fuzz/fuzz_targets/*.rs` is a
//! one-line call) and is also replayed over the committed corpus by the
//! ordinary `cargo test` (`tests/fuzz_corpus.rs`), so every crash once
//! found and fixed stays fixed without a nightly toolchain.
//!
//! | target | drives | invariants |
//! |---|---|---|
//! | [`http1_connection`] | `conn::serve` over a [`MockIo`] | no panic; the connection ends; the output is a sequence of HTTP/1 responses; after the shutdown signal every response says `Connection: close` |
//! | [`h2_connection`] | the same, with the HTTP/2 preface sent first | no panic; the connection and its streams end; the output is whole frames starting with SETTINGS; after the shutdown signal a GOAWAY is sent |
//! | [`websocket_frames`] | a WebSocket handshake (echo or hub), then arbitrary frames, through the upgrade into the session task | no panic; the connection and the session end; `101`, or `503` only after the signal; whole server frames by RFC 6455's rules; at most one Close, with a code a server may send; Close 1001 after the signal; the echo sends back what it got |
//! | [`api_requests`] | create/list/get/delete calls from [`arbitrary`] input | every status is documented, every JSON body parses, every acknowledged create is in the next list |
//!
//! # No hang, no waiting
//!
//! Each run gets its own single-threaded tokio runtime on a *paused*
//! clock: when every task is waiting, the clock jumps to the next timer. A
//! header timeout of 5 s or a request timeout of 10 s fires at once and
//! always in the same order, so a run is fast and repeatable. A connection
//! that has not ended after [`CONNECTION_BUDGET`] of that clock is a hang
//! and panics, as does one that keeps polling its IO (see [`MockIo`]).

mod api;
mod h2_wire;
mod mock_io;
mod websocket;
mod ws_wire;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::config::Config;
use crate::conn::executor::StreamExecutor;
use crate::conn::{self, ConnectionConfig};
use crate::store::MemoryStore;
use crate::testing::http1::{Framing, Method, Response, ResponseReader};

pub use api::api_requests;
pub use h2_wire::{WireFrame, parse_frames};
pub use mock_io::{LINGER, MockIo, Script, Step, Wire};
pub use websocket::{WsExchange, websocket_exchange, websocket_frames};
pub use ws_wire::WsMessage;

/// How long (on the paused clock) a connection may take to end before the
/// run counts as a hang. The slowest legitimate end is [`LINGER`] plus a
/// timeout or two; this is far beyond it.
pub const CONNECTION_BUDGET: Duration = Duration::from_secs(600);

/// The HTTP/2 client preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Target `http1_connection`: `input` is a [`Script`] and the bytes a
/// client sends. Panics if an invariant breaks.
pub fn http1_connection(input: &[u8]) {
    http1_exchange(input);
}

/// [`http1_connection`], returning the responses it checked (for tests
/// that prove the harness sees what a client would).
pub fn http1_exchange(input: &[u8]) -> Vec<Response> {
    let (script, client) = Script::decode(input);
    if client.starts_with(H2_PREFACE) {
        // The sniff rightly switches to HTTP/2; the HTTP/2 checks apply.
        check_h2(&serve_scripted(client, script));
        return Vec::new();
    }
    let wire = serve_scripted(client, script);
    let responses = read_responses(&wire.output).unwrap_or_else(|e| {
        panic!(
            "output is not a sequence of HTTP/1 responses: {e}\n{:?}",
            String::from_utf8_lossy(&wire.output)
        )
    });
    if let Some(at) = wire.shutdown_at {
        for res in responses
            .iter()
            .filter(|r| r.offset >= at && r.status >= 200)
        {
            assert!(
                res.closes(),
                "response at {} written after the shutdown signal lacks Connection: close: {res:?}",
                res.offset
            );
        }
    }
    responses
}

/// Splits a connection's whole output into responses (1xx included).
/// Fails, saying where and why, if any byte does not belong to a
/// well-formed response (HTTP/1.1, or HTTP/1.0 for an HTTP/1.0 request).
///
/// The requests are not known here, so a response to `HEAD`, which
/// announces a body it does not send, is recognised by what follows it
/// ([`Method::Unknown`]). Only the last response may be cut short, and only
/// a chunked one: an event stream still running when the client hung up.
fn read_responses(output: &[u8]) -> Result<Vec<Response>, String> {
    let mut reader = ResponseReader::new();
    reader.feed(output);
    reader.end();
    let mut found = Vec::new();
    while let Some(res) = reader.next(Method::Unknown).map_err(|e| e.to_string())? {
        if !res.complete && res.framing != Framing::Chunked {
            return Err(format!("body of the response at {} cut short", res.offset));
        }
        found.push(res);
    }
    Ok(found)
}

/// Target `h2_connection`: like [`http1_connection`], but the client
/// speaks prior-knowledge HTTP/2: the preface is sent before `input`'s
/// bytes, so the fuzzer spends its effort on frames.
pub fn h2_connection(input: &[u8]) {
    h2_exchange(input);
}

/// [`h2_connection`], returning the frames it checked.
pub fn h2_exchange(input: &[u8]) -> Vec<WireFrame> {
    let (script, frames) = Script::decode(input);
    let mut client = H2_PREFACE.to_vec();
    client.extend_from_slice(frames);
    check_h2(&serve_scripted(&client, script))
}

/// The HTTP/2 invariants on one connection's output.
fn check_h2(wire: &Wire) -> Vec<WireFrame> {
    let frames = parse_frames(&wire.output)
        .unwrap_or_else(|e| panic!("output is not a sequence of HTTP/2 frames: {e}"));
    if let Some(at) = wire.shutdown_at {
        assert!(
            frames.iter().any(|f| f.kind == h2_wire::GOAWAY),
            "no GOAWAY although the shutdown signal was sent (at byte {at})"
        );
    }
    frames
}

/// The settings a fuzz run uses: the defaults, so the fuzzer meets the
/// limits a deployed server has (timeouts cost nothing on the paused
/// clock). `/debug/*` stays off: a deliberate panic would look like a
/// crash to the fuzzer, whose panic hook aborts before the server's
/// `catch_unwind` can turn it into a 500.
pub fn fuzz_config() -> Config {
    Config {
        addr: "127.0.0.1:0".parse().expect("a literal address"),
        ..Config::default()
    }
}

/// Runs `fut` to the end on a fresh single-threaded runtime whose clock is
/// paused (see the module docs).
fn run_paused<F: Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
        .block_on(fut)
}

/// Serves one connection whose client sends `client` as `script` says, and
/// returns what the server wrote. Panics if the connection or one of its
/// HTTP/2 streams does not end within [`CONNECTION_BUDGET`].
fn serve_scripted(client: &[u8], script: Script) -> Wire {
    let wire = Arc::new(Mutex::new(Wire::default()));
    let shared = wire.clone();
    run_paused(async move {
        let app = Arc::new(App::new(fuzz_config(), Arc::new(MemoryStore::new())));
        // HTTP/2 streams run outside the connection task (see
        // `executor`); tracked so the run can wait for them too.
        let streams = TaskTracker::new();
        let executor =
            StreamExecutor::new(streams.clone(), app.clone(), app.config.request_timeout);
        let cfg = Arc::new(ConnectionConfig::new(app.clone(), executor));
        // The script's shutdown step asks for the signal; it is sent here,
        // between two polls of the connection, so that the connection
        // learns of it on its very next poll (the `closing` token) and
        // everything written from then on was written knowing it. It does,
        // for this one connection what the server's drain does for all of
        // them, through the same call (`ShutdownState::begin_drain`).
        let io = MockIo::new(client, script, shared.clone());
        let mut conn = std::pin::pin!(conn::serve(io, Instant::now(), None, cfg));
        let conn = std::future::poll_fn(|cx| {
            let mut wire = shared.lock().unwrap();
            if wire.shutdown_requested && wire.shutdown_at.is_none() {
                wire.shutdown_at = Some(wire.output.len());
                app.shutdown.enter_lame_duck(crate::Stop::Signal);
                app.shutdown.begin_drain(
                    std::time::Duration::ZERO,
                    0,
                    crate::shutdown::spread::Pace {
                        burst: 0,
                        per_second: 1,
                    },
                );
            }
            drop(wire);
            conn.as_mut().poll(cx)
        });
        if tokio::time::timeout(CONNECTION_BUDGET, conn).await.is_err() {
            panic!("the connection did not end within {CONNECTION_BUDGET:?}");
        }
        streams.close();
        if tokio::time::timeout(CONNECTION_BUDGET, streams.wait())
            .await
            .is_err()
        {
            panic!("an HTTP/2 stream outlived its connection by {CONNECTION_BUDGET:?}");
        }
    });
    std::mem::take(&mut *wire.lock().unwrap())
}
