//! The WebSocket routes as a client from outside the project sees them:
//! Python's `websockets` (`support::python_ws`) against the real binary.
//!
//! The tests are `#[ignore]`d, because a fresh machine has no Python
//! `websockets`; `.ci/run` makes a venv with it at `target/py-venv` and
//! runs them with `cargo test --test websocket_clients -- --ignored`. Run
//! them by hand the same way, after making the venv (see
//! `NEEDS_PYTHON_WS`), or with `LAMEDUCK_TEST_PYTHON` naming a Python that
//! has it. Without it they fail, saying so.

mod support;

use support::binary::Binary;
use support::python_ws::{self, Close, Message, Plan};

/// A text and a binary message sent to `/api/ws/echo` come back as they
/// were sent, in order, and a close with 1000 is answered with 1000: the
/// handshake, masking, framing and close handshake all work with a client
/// that shares no code with the server.
#[test]
#[ignore = "needs python websockets: python3 -m venv target/py-venv && target/py-venv/bin/pip install websockets==17.4"]
fn a_python_client_gets_text_and_binary_echoed_and_a_normal_close() {
    let server = Binary::start(&[]);
    let url = format!("ws://{}/api/ws/echo", server.addr);
    let sent = [
        Message::Text("héllo, lame duck".to_string()),
        Message::Binary(vec![0, 159, 255, 10]),
    ];
    let plan = sent.iter().cloned().fold(Plan::new(url), Plan::send);
    let seen = python_ws::run(&plan.receive(sent.len()));
    assert!(seen.opened, "the handshake failed: {seen:?}");
    assert_eq!(seen.messages, sent, "{seen:?}");
    assert!(!seen.timed_out, "{seen:?}");
    assert_eq!(
        seen.close,
        Some(Close {
            code: 1000,
            reason: String::new()
        }),
        "{seen:?}"
    );
}
