//! The WebSocket routes as a client from outside the project sees them:
//! Python's `websockets` (`support::python_ws`) against the real binary,
//! on the echo route (text and binary, the closing handshake) and on the
//! hub (the replay after an id, Close 1001 at SIGTERM, and Close 1012 at
//! an upgrade with the resume on the new process).
//!
//! The tests are `#[ignore]`d, because a fresh machine has no Python
//! `websockets`; `.ci/run` makes a venv with it at `target/py-venv` and
//! runs them with `cargo test --test websocket_clients -- --ignored`. Run
//! them by hand the same way, after making the venv (see
//! `NEEDS_PYTHON_WS`), or with `LAMEDUCK_TEST_PYTHON` naming a Python that
//! has it. Without it they fail, saying so.

mod support;

use std::time::Duration;

use support::binary::Binary;
use support::http;
use support::python_ws::{self, Close, Message, Plan};

/// How long the binary may take to exit once its sockets have closed.
const EXIT: Duration = Duration::from_secs(20);

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

/// A client that connects to the hub with `?after=ID` is sent, in id
/// order, the items created after ID, each as the JSON that `GET
/// /api/items/{id}` answers, and not the items up to ID.
#[test]
#[ignore = "needs python websockets: python3 -m venv target/py-venv && target/py-venv/bin/pip install websockets==17.4"]
fn a_python_client_on_the_hub_is_replayed_the_items_after_the_id_it_names() {
    let server = Binary::start(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ids: Vec<u64> = ["first", "second", "third"]
        .iter()
        .map(|name| {
            let body = format!(r#"{{"name":"{name}"}}"#);
            let created = rt.block_on(http::request(
                server.addr,
                "POST",
                "/api/items",
                Some(&body),
            ));
            assert_eq!(created.status, 201, "{created:?}");
            let item: serde_json::Value = serde_json::from_slice(&created.body).unwrap();
            item["id"].as_u64().expect("an id")
        })
        .collect();
    let url = format!("ws://{}/api/ws?after={}", server.addr, ids[0]);
    let seen = python_ws::run(&Plan::new(url).receive(2));
    assert!(seen.opened && !seen.timed_out, "{seen:?}");
    let got: Vec<(u64, String)> = seen
        .messages
        .iter()
        .map(|m| match m {
            Message::Text(text) => {
                let item: serde_json::Value = serde_json::from_str(text).unwrap();
                (
                    item["id"].as_u64().unwrap(),
                    item["name"].as_str().unwrap().to_string(),
                )
            }
            Message::Binary(_) => panic!("the hub sends text: {seen:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            (ids[1], "second".to_string()),
            (ids[2], "third".to_string())
        ]
    );
    assert_eq!(seen.close.as_ref().map(|c| c.code), Some(1000), "{seen:?}");
}

/// SIGTERM while a client listens on the hub: the client is sent Close
/// 1001 (going away) with a reason, and once it has answered, the binary
/// exits 0. A drain that did not wait for the socket would exit before
/// the frame went out, and the client would see the connection drop
/// with no Close at all.
#[test]
#[ignore = "needs python websockets: python3 -m venv target/py-venv && target/py-venv/bin/pip install websockets==17.4"]
fn a_python_client_on_the_hub_is_told_1001_at_sigterm_and_the_binary_exits_0() {
    let mut server = Binary::start(&["--access-log"]);
    let url = format!("ws://{}/api/ws", server.addr);
    let client = std::thread::spawn(move || python_ws::run(&Plan::new(url).until_closed()));
    // The access log's line for the handshake comes once the 101 is
    // written, when the session is already one the drain waits for.
    server.wait_for_log("path=/api/ws status=101", EXIT);
    server.signal(libc::SIGTERM);
    let seen = client.join().expect("the client thread");
    assert!(seen.opened && !seen.timed_out, "{seen:?}");
    assert!(seen.messages.is_empty(), "{seen:?}");
    assert_eq!(
        seen.close,
        Some(Close {
            code: 1001,
            reason: "server shutting down".to_string()
        }),
        "{seen:?}"
    );
    assert_eq!(server.exit_code_within(EXIT), 0);
}

/// SIGHUP while a client listens on the hub: the old process sends Close
/// 1012 (service restart) and exits 0 once the client has answered, and a
/// client that reconnects with the last id it saw is sent, by the new
/// process, exactly the items created since: the restart cost it one
/// handshake and nothing else.
#[test]
#[ignore = "needs python websockets: python3 -m venv target/py-venv && target/py-venv/bin/pip install websockets==17.4"]
fn a_python_client_on_the_hub_is_told_1012_at_an_upgrade_and_resumes_on_the_new_process() {
    support::binary::become_subreaper();
    let db = support::storage::TempDb::new("python-hub");
    let mut server = Binary::start(&["--access-log", "--db", db.arg()]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The listening socket outlives the process: the new one serves it.
    let addr = server.addr;
    let create = |name: &str| {
        let body = format!(r#"{{"name":"{name}"}}"#);
        let created = rt.block_on(http::request(addr, "POST", "/api/items", Some(&body)));
        assert_eq!(created.status, 201, "{created:?}");
        let item: serde_json::Value = serde_json::from_slice(&created.body).unwrap();
        item["id"].as_u64().expect("an id")
    };
    let before = create("before");
    let url = format!("ws://{}/api/ws", server.addr);
    let client = std::thread::spawn(move || python_ws::run(&Plan::new(url).until_closed()));
    server.wait_for_log("path=/api/ws status=101", EXIT);

    server.signal(libc::SIGHUP);
    let report = server.wait_for_nth_log("shutdown report cause=\"upgrade\"", 1, EXIT);
    let new = support::binary::Successor {
        pid: support::binary::field(&report, "new_pid").parse().unwrap(),
    };
    let seen = client.join().expect("the client thread");
    assert!(seen.opened && !seen.timed_out, "{seen:?}");
    let ids: Vec<u64> = seen.messages.iter().map(item_id).collect();
    assert_eq!(ids, [before], "{seen:?}");
    assert_eq!(
        seen.close,
        Some(Close {
            code: 1012,
            reason: "server restarting".to_string()
        }),
        "{seen:?}"
    );
    assert_eq!(server.exit_code_within(EXIT), 0, "the old process drained");

    let after = create("after");
    let url = format!("ws://{addr}/api/ws?after={before}");
    let resumed = python_ws::run(&Plan::new(url).receive(1));
    let ids: Vec<u64> = resumed.messages.iter().map(item_id).collect();
    assert_eq!(
        ids,
        [after],
        "from the new process, only what it missed: {resumed:?}"
    );
    new.signal(libc::SIGTERM);
    assert_eq!(new.exit_code_within(EXIT), 0);
}

/// The id in a hub message.
fn item_id(message: &Message) -> u64 {
    match message {
        Message::Text(text) => {
            let item: serde_json::Value = serde_json::from_str(text).unwrap();
            item["id"].as_u64().expect("an id")
        }
        Message::Binary(_) => panic!("the hub sends text"),
    }
}
