//! Replays the fuzz corpora through the same library functions the fuzz
//! targets call, on the stable toolchain: every seed in
//! `fuzz/corpus/<target>/` and every crash once found and fixed, kept in
//! `fuzz/regressions/<target>/`. A fixed crash that comes back fails here.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// Runs `target` over every file of its corpus and regression directories;
/// fails naming each file whose run panicked.
fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(root.join(dir).join(target)).ok())
        .flatten()
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file() && !path.ends_with(".gitkeep"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus for {target}");
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            // A running fuzzer may remove a file it has reduced; skip it.
            let Ok(input) = std::fs::read(path) else {
                return false;
            };
            panicked_in(|| run(&input))
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} {target} inputs broke an invariant: {failed:#?}",
        failed.len(),
        files.len()
    );
}

thread_local! {
    /// Panics seen on this thread, caught or not.
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` and says whether anything panicked on this thread meanwhile:
/// `f` itself, or a task it spawned on its runtime (the harness runs each
/// input on a current-thread runtime, so its tasks run here). Tokio keeps
/// a spawned task's panic to itself; the fuzzer's panic hook aborts on
/// it. Counting every panic through a hook makes the replay as strict as
/// the fuzzer.
fn panicked_in(f: impl FnOnce()) -> bool {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|n| n.set(n.get() + 1));
            previous(info);
        }));
    });
    let before = PANICS.with(Cell::get);
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
    unwound || PANICS.with(Cell::get) != before
}

/// Every HTTP/1.1 seed (GET, POST, chunked, pipelined, trickled, with the
/// shutdown signal) and regression: no panic, the connection ends, the
/// output is a sequence of responses, `Connection: close` after the signal.
#[test]
fn http1_connection_corpus_keeps_its_invariants() {
    replay("http1_connection", lameduck::fuzzing::http1_connection);
}

/// Every prior-knowledge HTTP/2 seed and regression: no panic, the
/// connection and its streams end, whole frames, GOAWAY after the signal.
#[test]
fn h2_connection_corpus_keeps_its_invariants() {
    replay("h2_connection", lameduck::fuzzing::h2_connection);
}

/// Every API-call sequence seed and regression: documented statuses, JSON
/// that parses, acknowledged creates visible to the next list.
#[test]
fn api_requests_corpus_keeps_its_invariants() {
    replay("api_requests", lameduck::fuzzing::api_requests);
}

/// Every WebSocket seed (text, fragments, pings, Close codes, invalid
/// UTF-8, an impossible length, the hub, the signal mid-message) and
/// regression: no panic, the connection and the session end, `101` (or
/// `503` after the signal), well-formed server frames, a server's Close
/// code, 1001 after the signal, the echo faithful.
#[test]
fn websocket_frames_corpus_keeps_its_invariants() {
    replay("websocket_frames", lameduck::fuzzing::websocket_frames);
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
        .join(name);
    std::fs::read(path).expect("seed file")
}

/// The harness is not vacuous: the pipelined seed, delivered in one read,
/// gets its six answers in order, like a real client would.
#[test]
fn pipelined_seed_gets_every_answer_in_order() {
    let responses = lameduck::fuzzing::http1_exchange(&seed("http1_connection", "seed_pipelined"));
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [201, 200, 200, 204, 200, 200]);
    assert!(responses.last().unwrap().closes());
}

/// The same requests trickled a few bytes per read, with the shutdown
/// signal while the first request's body is arriving: that request is
/// still answered (201), with `Connection: close`, and nothing after it.
#[test]
fn shutdown_mid_body_still_answers_with_connection_close() {
    let input = seed("http1_connection", "seed_trickled_shutdown_mid_body");
    let responses = lameduck::fuzzing::http1_exchange(&input);
    let seen: Vec<(u16, bool)> = responses.iter().map(|r| (r.status, r.closes())).collect();
    assert_eq!(seen, [(201, true)]);
}

/// HTTP/2: the server answers the seed's requests with HEADERS frames, and
/// the shutdown signal produces a GOAWAY.
#[test]
fn h2_seeds_get_headers_and_goaway() {
    let frames = lameduck::fuzzing::h2_exchange(&seed("h2_connection", "seed_post_item"));
    // Concurrent streams may be answered in either order.
    let mut answered: Vec<u32> = frames
        .iter()
        .filter(|f| f.kind == 1)
        .map(|f| f.stream)
        .collect();
    answered.sort();
    assert_eq!(answered, [3, 5]);
    let frames =
        lameduck::fuzzing::h2_exchange(&seed("h2_connection", "seed_streams_then_shutdown"));
    assert!(frames.iter().any(|f| f.kind == 7));
}

fn ws_seed(name: &str) -> lameduck::fuzzing::WsExchange {
    lameduck::fuzzing::websocket_exchange(&seed("websocket_frames", name))
}

/// The WebSocket harness is not vacuous: the echo sends a message back as
/// it came (a fragmented one joined), a client's Close 1000 comes back as
/// 1000, and invalid UTF-8 gets 1007, as RFC 6455 says.
#[test]
fn websocket_seeds_get_their_echo_and_close_codes() {
    use lameduck::fuzzing::WsMessage::{Binary, Close, Text};
    let close = |ex: &lameduck::fuzzing::WsExchange| {
        ex.messages.iter().find_map(|m| match m {
            Close(Some((code, _))) => Some(*code),
            _ => None,
        })
    };
    let ex = ws_seed("seed_close_1000");
    assert_eq!(ex.status, 101);
    assert_eq!(ex.messages[0], Text(b"hello".to_vec()));
    assert_eq!(close(&ex), Some(1000));
    let ex = ws_seed("seed_fragmented");
    assert!(ex.messages.contains(&Text(b"hello".to_vec())));
    assert!(ex.messages.contains(&Binary(vec![0, 1, 2])));
    assert_eq!(close(&ws_seed("seed_invalid_utf8")), Some(1007));
    assert_eq!(close(&ws_seed("seed_oversized_length")), Some(1009));
    assert_eq!(close(&ws_seed("seed_unmasked")), Some(1002));
}

/// The shutdown, as a WebSocket client sees it: a session open at the
/// signal gets Close 1001 (1012 at an upgrade), a handshake after it gets
/// 503, and a quiet client is pinged and then closed for not answering.
#[test]
fn websocket_seeds_see_the_shutdown_and_the_pings() {
    use lameduck::fuzzing::WsMessage::{Close, Ping};
    let ex = ws_seed("seed_shutdown_mid_message");
    assert!(ex.shutdown_at.is_some());
    assert!(matches!(ex.messages.last(), Some(Close(Some((1001, _))))));
    let ex = ws_seed("seed_upgrade_shutdown_mid_message");
    assert!(matches!(ex.messages.last(), Some(Close(Some((1012, _))))));
    assert_eq!(ws_seed("seed_shutdown_before_handshake").status, 503);
    let ex = ws_seed("seed_text");
    assert!(matches!(ex.messages[1], Ping(_)), "{:?}", ex.messages);
    assert!(matches!(&ex.messages[2], Close(Some((1001, reason))) if reason == b"ping timeout"));
}

/// The hub replays the items above `after`, in id order, as JSON text.
#[test]
fn websocket_hub_seed_replays_the_items_after_its_id() {
    let ex = ws_seed("seed_hub_after_1");
    let ids: Vec<u64> = ex
        .messages
        .iter()
        .filter_map(|m| match m {
            lameduck::fuzzing::WsMessage::Text(json) => {
                let item: serde_json::Value = serde_json::from_slice(json).ok()?;
                item["id"].as_u64()
            }
            _ => None,
        })
        .collect();
    assert_eq!(ids, [2, 3]);
}
