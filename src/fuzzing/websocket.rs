//! Target `websocket_frames`: a valid WebSocket handshake, then arbitrary
//! frames, through the real connection code, hyper's upgrade and the real
//! session task, with the shutdown signal wherever the input puts it.
//!
//! # Input
//!
//! A [`Script`] (as for `http1_connection`: read sizes, `Pending`, the
//! shutdown step), then one setup byte, then the bytes the client sends
//! after its handshake. The setup byte's bits:
//!
//! | bits | choose |
//! |---|---|
//! | 0 | the route: 0 `GET /api/ws/echo`, 1 `GET /api/ws?after=N` |
//! | 1 | why the server stops, at the script's shutdown step: 0 a signal (sessions close with 1001), 1 an upgrade (1012) |
//! | 2 | 1: the on-shutdown hook has not run yet when the drain begins. Hooks are not awaited, and with the default `--drain-delay 0` (or after an upgrade, which has no lame duck) the drain begins at once, so the hub may not have been told |
//! | 3-4 | `N`, for the hub: the store holds items 1 to 3, so it replays 3 − N of them |
//!
//! The handshake is always valid (RFC 6455's example key), and the
//! fuzzer's bytes follow it on the same stream, read as the script says:
//! frames masked or not, fragmented, control frames, impossible lengths,
//! invalid UTF-8, Close frames with any code, or garbage.
//!
//! # One run, on the paused clock
//!
//! | when | what happens |
//! |---|---|
//! | 0 s | the client sends everything, as the script says, then goes quiet. At the script's shutdown step the harness does what `Server::run` does: the lame duck (`enter_lame_duck`, with the setup's cause), the hub's on-shutdown hook (new sessions get `503`) unless the setup says it is late, then the drain (`begin_drain`) |
//! | 0 s | the connection task ends at the `101` (the socket leaves hyper); the session runs as a task of `app.websockets`' tracker, which the run then waits for |
//! | 10 s, 15 s | an idle session pings; unanswered, it closes (1001, "ping timeout"). Shorter than the defaults (see [`websocket_config`]) |
//! | signal + 15 s | the forced close (`--shutdown-timeout`): `begin_force`, `abort_everything`; a session still waiting for the client's Close is dropped |
//! | 30 s | the client hangs up ([`LINGER`](super::LINGER)) |
//! | [`CONNECTION_BUDGET`] | a connection or session still running is a hang, and panics |
//!
//! # Invariants
//!
//! * No panic, in the harness or in any task of the run.
//! * The connection and the session end.
//! * The answer is `101` with `Upgrade: websocket`, `Connection: upgrade`
//!   and the right `Sec-WebSocket-Accept`; or, only if the shutdown signal
//!   came first, well-formed HTTP/1 responses, all `503`.
//! * After the `101`, only whole server frames ([`server_frames`]):
//!   unmasked, known opcodes, RSV bits clear, minimal lengths, control
//!   frames unfragmented and at most 125 bytes, fragments in order, text
//!   in UTF-8, at most one Close and nothing after it.
//! * A Close's body is empty or a code and a UTF-8 reason; the code is one
//!   a server sends (1000-1003, 1007-1009, 1011-1014), or the code of the
//!   client's own Close echoed back (RFC 6455 §5.5.1), which is how a
//!   client's 1010 or 3000-4999 may come back; never 1005, 1006 or 1015.
//! * If the signal came while the session was open and before the server
//!   had sent its Close, that Close comes, and says why: 1001 (going
//!   away) at a signal, 1012 (service restart) at an upgrade.
//! * Every Pong answers a Ping the client sent, with its payload, in order.
//! * The echo sends back the client's messages, as they were and in
//!   order (a prefix of them: it stops at a shutdown or an error). The hub
//!   sends item JSON only, in id order, above `after`.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Context;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ws_wire::{CLOSE, WsMessage, client_messages, server_frames};
use super::{CONNECTION_BUDGET, MockIo, Script, Wire, fuzz_config, read_responses, run_paused};
use crate::app::App;
use crate::config::Config;
use crate::conn::executor::StreamExecutor;
use crate::conn::{self, ConnectionConfig};
use crate::shutdown::stop::Stop;
use crate::store::{MemoryStore, NewItem, Store};
use crate::testing::http1::{Method, Response, ResponseReader};

/// The items in the store before the hub's client connects.
const ITEMS: u64 = 3;

/// RFC 6455's example key (§1.3), and the accept value it gives.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// What a checked run produced, for tests that prove the harness sees
/// what a client would.
#[derive(Debug)]
pub struct WsExchange {
    /// The handshake's answer: `101`, or `503` if the shutdown came first.
    pub status: u16,
    /// The server's messages after its `101`, fragments joined.
    pub messages: Vec<WsMessage>,
    /// Where the shutdown signal came, in the server's output, if it did.
    pub shutdown_at: Option<usize>,
}

/// Target `websocket_frames`: see the module docs. Panics if an invariant
/// breaks.
pub fn websocket_frames(input: &[u8]) {
    websocket_exchange(input);
}

/// [`websocket_frames`], returning what it checked.
pub fn websocket_exchange(input: &[u8]) -> WsExchange {
    let (script, rest) = Script::decode(input);
    let (setup, sent) = match rest.split_first() {
        Some((&b, sent)) => (Setup::from_byte(b), sent),
        None => (Setup::from_byte(0), rest),
    };
    let mut client = setup.route.handshake();
    client.extend_from_slice(sent);
    let run = serve_upgraded(&client, script, setup);
    check(&run, setup, sent)
}

/// What the setup byte chooses (see the module docs).
#[derive(Debug, Clone, Copy)]
struct Setup {
    route: Route,
    cause: Stop,
    /// The hub's on-shutdown hook has not run when the drain begins.
    hook_late: bool,
}

impl Setup {
    fn from_byte(b: u8) -> Self {
        let route = if b & 1 == 0 {
            Route::Echo
        } else {
            Route::Hub {
                after: u64::from(b >> 3) % (ITEMS + 1),
            }
        };
        let cause = if b & 2 == 0 {
            Stop::Signal
        } else {
            Stop::Upgrade { new_pid: 0 }
        };
        Setup {
            route,
            cause,
            hook_late: b & 4 != 0,
        }
    }

    /// The code a session open at the shutdown must close with.
    fn shutdown_code(self) -> u16 {
        match self.cause {
            Stop::Signal => 1001,
            Stop::Upgrade { .. } => 1012,
        }
    }
}

/// Which session the client asks for.
#[derive(Debug, Clone, Copy)]
enum Route {
    Echo,
    Hub { after: u64 },
}

impl Route {
    fn handshake(self) -> Vec<u8> {
        let target = match self {
            Route::Echo => "/api/ws/echo".to_owned(),
            Route::Hub { after } => format!("/api/ws?after={after}"),
        };
        format!(
            "GET {target} HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .into_bytes()
    }
}

/// The fuzz settings, with the pings brought forward: at the defaults
/// (30 s) the first ping would be due just as the client hangs up
/// ([`LINGER`](super::LINGER)), and the fuzzer would never see a ping or
/// a ping timeout.
fn websocket_config() -> Config {
    Config {
        ws_ping_interval: Duration::from_secs(10),
        ws_ping_timeout: Duration::from_secs(5),
        ..fuzz_config()
    }
}

/// One run's output, and what the harness saw at the signal.
struct Run {
    wire: Wire,
    /// True if a session was open when the signal was sent.
    session_open_at_signal: bool,
}

/// Serves one connection whose client sends `client` as `script` says,
/// then waits for the session it upgraded to. Panics if the connection or
/// the session does not end within [`CONNECTION_BUDGET`] each.
fn serve_upgraded(client: &[u8], script: Script, setup: Setup) -> Run {
    let wire = Arc::new(Mutex::new(Wire::default()));
    let shared = wire.clone();
    let session_open_at_signal = run_paused(async move {
        let store = Arc::new(MemoryStore::new());
        for n in 1..=ITEMS {
            let item = NewItem {
                name: format!("item {n}"),
                ttl_secs: None,
            };
            store
                .create(item, CancellationToken::new())
                .await
                .expect("the memory store takes an item");
        }
        let app = Arc::new(App::new(websocket_config(), store));
        let executor =
            StreamExecutor::new(TaskTracker::new(), app.clone(), app.config.request_timeout);
        let cfg = Arc::new(ConnectionConfig::new(app.clone(), executor));
        let io = MockIo::new(client, script, shared.clone());
        let conn = conn::serve(io, Instant::now(), None, cfg);
        let sessions = app.websockets.tracker().clone();
        let served = async {
            if tokio::time::timeout(CONNECTION_BUDGET, conn).await.is_err() {
                panic!("the connection did not end within {CONNECTION_BUDGET:?}");
            }
            // The handshake spawned the session before its `101` went out,
            // so the tracker holds it by now (if it was not refused).
            sessions.close();
            if tokio::time::timeout(CONNECTION_BUDGET, sessions.wait())
                .await
                .is_err()
            {
                panic!("the WebSocket session outlived its connection by {CONNECTION_BUDGET:?}");
            }
        };
        let mut run = std::pin::pin!(async {
            tokio::select! {
                () = served => {}
                () = forced_close(&app) => unreachable!("the forced close never returns"),
            }
        });
        let mut signal = Signal {
            app: &app,
            wire: &shared,
            setup,
            session_open: false,
        };
        std::future::poll_fn(|cx| {
            signal.send_if_asked(cx);
            run.as_mut().poll(cx)
        })
        .await;
        signal.session_open
    });
    let wire = std::mem::take(&mut *wire.lock().unwrap());
    Run {
        wire,
        session_open_at_signal,
    }
}

/// The harness's side of the script's shutdown step.
struct Signal<'a> {
    app: &'a App,
    wire: &'a Mutex<Wire>,
    setup: Setup,
    session_open: bool,
}

impl Signal<'_> {
    /// Sends the signal if the script's step asked for it, between two
    /// polls of the run: before the connection's next poll while it is
    /// served, or, after the `101`, once the session's read has taken the
    /// step (it wakes this task through [`Wire::harness`], and reads
    /// nothing more until woken here). Either way the server learns of it
    /// on its next poll, before it reads on, and everything written from
    /// `shutdown_at` on was written knowing it.
    fn send_if_asked(&mut self, cx: &Context<'_>) {
        let mut wire = self.wire.lock().unwrap();
        wire.harness = Some(cx.waker().clone());
        if !wire.shutdown_requested || wire.shutdown_at.is_some() {
            return;
        }
        wire.shutdown_at = Some(wire.output.len());
        let reader = wire.reader.take();
        drop(wire);
        self.session_open = self.app.websockets.open() > 0;
        // What `Server::run` does, without the waits between: the lame
        // duck, the hooks (the hub's refuses new sessions), then the
        // drain. A late hook is taken at its latest: not within this run.
        self.app.shutdown.enter_lame_duck(self.setup.cause);
        if !self.setup.hook_late {
            self.app.websockets.refuse_new();
        }
        self.app.shutdown.begin_drain(
            std::time::Duration::ZERO,
            0,
            crate::shutdown::spread::Pace {
                burst: 0,
                per_second: 1,
            },
        );
        // The client may send on.
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

/// The drain's deadline, as the server keeps it: `--shutdown-timeout`
/// after the drain began, everything still running is stopped. Never
/// returns; the run ends when the session does.
async fn forced_close(app: &App) {
    app.shutdown.closing().await;
    tokio::time::sleep(app.config.shutdown_timeout).await;
    app.shutdown.begin_force();
    app.shutdown.abort_everything();
    std::future::pending::<()>().await
}

/// The invariants (see the module docs) on one run's output.
fn check(run: &Run, setup: Setup, sent: &[u8]) -> WsExchange {
    let out = &run.wire.output;
    let shutdown_at = run.wire.shutdown_at;
    let mut reader = ResponseReader::new();
    reader.feed(out);
    reader.end();
    let head = reader
        .next_head(Method::Other)
        .unwrap_or_else(|e| {
            panic!(
                "the handshake's answer is not HTTP/1: {e}\n{:?}",
                lossy(out)
            )
        })
        .unwrap_or_else(|| panic!("no answer to the handshake"));
    if head.status != 101 {
        check_refusal(out, shutdown_at);
        return WsExchange {
            status: head.status,
            messages: Vec::new(),
            shutdown_at,
        };
    }
    check_switch(&head);
    let frames_at = out.len() - reader.leftover().len();
    let (frames, messages) = server_frames(reader.leftover(), frames_at).unwrap_or_else(|e| {
        panic!(
            "the server's frames break RFC 6455: {e}\n{:?}",
            lossy(&out[frames_at..])
        )
    });
    let client = client_messages(sent);
    check_close_code(&messages, &client);
    let close_at = frames.iter().find(|f| f.opcode == CLOSE).map(|f| f.offset);
    if let Some(at) = shutdown_at
        && run.session_open_at_signal
        && close_at.is_none_or(|close| close >= at)
    {
        let code = close_code(&messages);
        assert_eq!(
            code,
            Some(setup.shutdown_code()),
            "the shutdown ({:?}) came at {at} while the session was open, but its Close says {code:?}",
            setup.cause
        );
    }
    check_pongs(&messages, &client);
    match setup.route {
        Route::Echo => check_echo(&messages, &client),
        Route::Hub { after } => check_hub(&messages, after),
    }
    WsExchange {
        status: 101,
        messages,
        shutdown_at,
    }
}

/// A valid handshake is refused only once the signal has come, and then
/// with well-formed `503`s.
fn check_refusal(out: &[u8], shutdown_at: Option<usize>) {
    let responses = read_responses(out).unwrap_or_else(|e| {
        panic!(
            "the refusal is not a sequence of HTTP/1 responses: {e}\n{:?}",
            lossy(out)
        )
    });
    assert!(
        shutdown_at.is_some(),
        "a valid handshake was refused with no shutdown: {responses:?}"
    );
    assert!(
        responses.iter().all(|r| r.status == 503),
        "a handshake during the shutdown got {responses:?}"
    );
}

/// The `101` says what it switches to, and proves it read the key
/// (RFC 6455 §4.2.2).
fn check_switch(head: &Response) {
    let has = |name: &str, token: &str| {
        head.headers
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    assert!(has("upgrade", "websocket"), "101 without Upgrade: {head:?}");
    assert!(
        has("connection", "upgrade") && !has("connection", "close"),
        "101 with the wrong Connection: {head:?}"
    );
    assert_eq!(
        head.header("sec-websocket-accept"),
        Some(ACCEPT),
        "101 with the wrong accept value"
    );
}

/// The server's Close code, if it sent a Close with a body.
fn close_code(messages: &[WsMessage]) -> Option<u16> {
    messages.iter().find_map(|m| match m {
        WsMessage::Close(Some((code, _))) => Some(*code),
        _ => None,
    })
}

/// A code a server may send: its own, or (for client-only and
/// application codes) the client's, echoed.
fn check_close_code(messages: &[WsMessage], client: &[WsMessage]) {
    let Some(code) = close_code(messages) else {
        return;
    };
    let echoed = close_code(client) == Some(code);
    let allowed = match code {
        1000..=1003 | 1007..=1009 | 1011..=1014 => true,
        1010 | 3000..=4999 => echoed,
        _ => false,
    };
    assert!(
        allowed,
        "the server's Close says {code} (the client's said {:?})",
        close_code(client)
    );
}

/// Every Pong answers one of the client's Pings, in order (a Ping
/// answered before the next came is answered; a later one may replace
/// it).
fn check_pongs(messages: &[WsMessage], client: &[WsMessage]) {
    let mut pings = client.iter().filter_map(|m| match m {
        WsMessage::Ping(p) => Some(p),
        _ => None,
    });
    for m in messages {
        if let WsMessage::Pong(pong) = m {
            assert!(
                pings.any(|ping| ping == pong),
                "a Pong of {pong:?} answers no Ping the client sent (after the last one answered)"
            );
        }
    }
}

fn is_data(m: &&WsMessage) -> bool {
    matches!(m, WsMessage::Text(_) | WsMessage::Binary(_))
}

/// The echo sends back a prefix of the client's messages, unchanged.
fn check_echo(messages: &[WsMessage], client: &[WsMessage]) {
    let echoed: Vec<_> = messages.iter().filter(is_data).collect();
    let sent: Vec<_> = client.iter().filter(is_data).collect();
    assert!(
        echoed.len() <= sent.len() && echoed[..] == sent[..echoed.len()],
        "the echo sent {echoed:?}, not a prefix of the client's {sent:?}"
    );
}

/// The hub sends items as text, each once, in id order, above `after`.
fn check_hub(messages: &[WsMessage], after: u64) {
    let mut last = after;
    for m in messages.iter().filter(is_data) {
        let WsMessage::Text(json) = m else {
            panic!("the hub sent a binary message: {m:?}");
        };
        let id = serde_json::from_slice::<Value>(json)
            .ok()
            .and_then(|item| item["id"].as_u64())
            .unwrap_or_else(|| panic!("the hub sent {:?}, not an item", lossy(json)));
        assert!(
            id > last && id <= ITEMS,
            "the hub sent item {id} after item {last} (items 1 to {ITEMS})"
        );
        last = id;
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
