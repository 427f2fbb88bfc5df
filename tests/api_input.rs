//! What a client can send the API, and what it gets back: names the store
//! cannot hold are a 422, query strings are decoded one way for every
//! parameter, event ids resume where the client left off, and no input
//! at all is answered with a 500.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lameduck::Server;
use lameduck::store::SqliteStore;
use support::http::{self, Conn, get, request};
use support::storage::TempDb;
use support::{TestServer, test_config};

const STOP: Duration = Duration::from_secs(15);

async fn stop(server: TestServer) {
    server.shutdown();
    server.report_within(STOP).await;
}

/// A server over a SQLite store on `db`: the store whose CHECK first
/// turned a NUL in a name into a 500.
async fn start_sqlite(db: &TempDb) -> TestServer {
    let store = SqliteStore::open(&db.path).expect("open store");
    TestServer::start_server(Server::with_store(test_config(), Arc::new(store))).await
}

/// `POST /api/items` with `{"name": <name>}`, the name JSON-encoded.
async fn create(addr: SocketAddr, name: &str) -> http::Response {
    let body = serde_json::json!({ "name": name }).to_string();
    request(addr, "POST", "/api/items", Some(&body)).await
}

fn json(res: &http::Response) -> serde_json::Value {
    serde_json::from_slice(&res.body).expect("a JSON body")
}

/// NUL, another C0 control, DEL and a C1 control in a name are each a
/// 422 with a JSON error, on the SQLite store and the in-memory one
/// alike, and nothing is stored; names in any script, emoji included,
/// are still created.
#[tokio::test]
async fn control_characters_in_a_name_get_422_and_other_unicode_is_stored() {
    let db = TempDb::new("names");
    for server in [
        start_sqlite(&db).await,
        TestServer::start(test_config()).await,
    ] {
        for name in ["\u{0}nul", "a\u{1}b", "del\u{7f}", "nel\u{85}x", "tab\tx"] {
            let res = create(server.addr, name).await;
            assert_eq!(res.status, 422, "{name:?}");
            assert!(json(&res)["error"].is_string(), "{name:?}");
        }
        for name in ["plain", "é", "日本語", "🦀 crab", "a\u{a0}b"] {
            let res = create(server.addr, name).await;
            assert_eq!(res.status, 201, "{name:?}");
            assert_eq!(json(&res)["name"], name);
        }
        let listed = json(&get(server.addr, "/api/items").await);
        assert_eq!(listed.as_array().map(Vec::len), Some(5), "{listed}");
        stop(server).await;
    }
}

/// A percent-encoded number means the number: `limit=%31` lists exactly
/// what `limit=1` lists, and `after=%31` is `after=1`.
#[tokio::test]
async fn percent_encoded_numbers_read_like_plain_ones() {
    let server = TestServer::start(test_config()).await;
    for name in ["one", "two", "three"] {
        assert_eq!(create(server.addr, name).await.status, 201);
    }
    let encoded = get(server.addr, "/api/items?limit=%31").await;
    let plain = get(server.addr, "/api/items?limit=1").await;
    assert_eq!((encoded.status, plain.status), (200, 200));
    assert_eq!(json(&encoded), json(&plain));
    assert_eq!(json(&plain).as_array().map(Vec::len), Some(1));
    let encoded = get(server.addr, "/api/items?after=%31&l%69mit=%32").await;
    let plain = get(server.addr, "/api/items?after=1&limit=2").await;
    assert_eq!(json(&encoded), json(&plain));
    assert_eq!(json(&plain)[0]["name"], "two");
    stop(server).await;
}

/// A `%` that does not start two hex digits is a 400 with a JSON error,
/// in any parameter of any route that reads its query, and so are bytes
/// that do not decode to UTF-8.
#[tokio::test]
async fn malformed_escapes_get_400() {
    let server = TestServer::start(test_config()).await;
    for path in [
        "/api/items?q=%zz",
        "/api/items?q=%4",
        "/api/items?q=%+4",
        "/api/items?q=ab%",
        "/api/items?limit=%4",
        "/api/items?after=%+1",
        "/api/items?other=%zz&limit=1",
        "/api/items?q=%FF",
        "/api/slow?ms=%zz",
        "/api/stream?interval_ms=%+4",
    ] {
        let res = get(server.addr, path).await;
        assert_eq!(res.status, 400, "{path}");
        assert!(json(&res)["error"].is_string(), "{path}");
    }
    stop(server).await;
}

/// `q` is decoded as before: `+` and `%20` are both a space, `%2B` is a
/// plus.
#[tokio::test]
async fn search_text_decodes_plus_and_percent_20_as_a_space() {
    let server = TestServer::start(test_config()).await;
    for name in ["big red box", "big+red", "small"] {
        assert_eq!(create(server.addr, name).await.status, 201);
    }
    let names = |res: http::Response| -> Vec<String> {
        let list = json(&res);
        let items = list.as_array().expect("a list").iter();
        items
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let found = get(server.addr, "/api/items?q=big+red%20box").await;
    assert_eq!(names(found), ["big red box"]);
    let found = get(server.addr, "/api/items?q=big%2Bred").await;
    assert_eq!(names(found), ["big+red"]);
    stop(server).await;
}

/// Opens `/api/stream?interval_ms=10` with `extra` header lines; returns
/// the connection and the body bytes already read.
async fn open_stream(addr: SocketAddr, extra: &str) -> (Conn, Vec<u8>) {
    let mut conn = http::connect(addr).await;
    let head = format!("GET /api/stream?interval_ms=10 HTTP/1.1\r\nHost: test\r\n{extra}\r\n");
    http::send(&mut conn, head.as_bytes()).await;
    let (res, buf) = http::read_head(&mut conn).await;
    assert_eq!(res.status, 200);
    (conn, buf)
}

/// The id of a data event, checked against the id its data names.
fn id_of(event: &str) -> u64 {
    let id = event
        .strip_prefix("id: ")
        .and_then(|rest| rest.split_once('\n'))
        .map(|(id, _)| id)
        .unwrap_or_else(|| panic!("a data event: {event:?}"));
    assert!(
        event.contains(&format!("data: {{\"id\":\"{id}\"}}")),
        "{event:?}"
    );
    id.parse().expect("a decimal id")
}

/// The ids of the next `n` events.
async fn next_ids(conn: &mut Conn, buf: &mut Vec<u8>, n: usize) -> Vec<u64> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let event = http::read_chunk(conn, buf).await.expect("an event");
        ids.push(id_of(&event));
    }
    ids
}

/// `Last-Event-ID: 41` resumes the stream after event 41: its events are
/// 42, 43, 44, …
#[tokio::test]
async fn last_event_id_41_resumes_at_42() {
    let server = TestServer::start(test_config()).await;
    let (mut conn, mut buf) = open_stream(server.addr, "Last-Event-ID: 41\r\n").await;
    assert_eq!(next_ids(&mut conn, &mut buf, 3).await, [42, 43, 44]);
    drop(conn);
    stop(server).await;
}

/// Two streams opened without `Last-Event-ID` count up from starts far
/// apart, so neither ever shows an id the other has shown.
#[tokio::test]
async fn two_fresh_streams_never_share_an_id() {
    let server = TestServer::start(test_config()).await;
    let (mut a, mut buf_a) = open_stream(server.addr, "").await;
    let (mut b, mut buf_b) = open_stream(server.addr, "").await;
    let (ids_a, ids_b) = tokio::join!(
        next_ids(&mut a, &mut buf_a, 20),
        next_ids(&mut b, &mut buf_b, 20)
    );
    for ids in [&ids_a, &ids_b] {
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    }
    assert!(
        ids_a.iter().all(|id| !ids_b.contains(id)),
        "{ids_a:?} and {ids_b:?}"
    );
    let distance = ids_a[0].abs_diff(ids_b[0]);
    assert!(distance >= 1 << 23, "starts only {distance} apart");
    drop((a, b));
    stop(server).await;
}

/// A stream that ends with the `shutdown` event, resumed with the last id
/// it showed on a new server (as after an upgrade), continues at the next
/// id: no event missed, none repeated. The `shutdown` event itself has no
/// id, so it does not move the client's last id.
#[tokio::test]
async fn a_stream_resumed_after_shutdown_on_a_new_server_continues_at_the_next_id() {
    let old = TestServer::start(test_config()).await;
    let (mut conn, mut buf) = open_stream(old.addr, "").await;
    let mut last = *next_ids(&mut conn, &mut buf, 3).await.last().unwrap();
    old.shutdown();
    let mut ended_with_shutdown = false;
    while let Some(event) = http::read_chunk(&mut conn, &mut buf).await {
        if event.starts_with("event: shutdown") {
            assert!(!event.contains("id:"), "{event:?}");
            ended_with_shutdown = true;
        } else {
            let id = id_of(&event);
            assert_eq!(id, last + 1, "events before the shutdown are consecutive");
            last = id;
        }
    }
    assert!(ended_with_shutdown);
    old.report_within(STOP).await;

    let new = TestServer::start(test_config()).await;
    let (mut conn, mut buf) = open_stream(new.addr, &format!("Last-Event-ID: {last}\r\n")).await;
    assert_eq!(next_ids(&mut conn, &mut buf, 2).await, [last + 1, last + 2]);
    drop(conn);
    stop(new).await;
}

/// A request as raw bytes, one per connection; the status of its answer,
/// read from the head alone (an event stream's body never ends).
async fn status_of(addr: SocketAddr, method: &str, path: &str, extra: &str, body: &[u8]) -> u16 {
    let mut conn = http::connect(addr).await;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    http::send(&mut conn, head.as_bytes()).await;
    http::send(&mut conn, body).await;
    http::read_head(&mut conn).await.0.status
}

/// Hostile names, bodies, query strings, ids and `Last-Event-ID`s, sent to
/// every route on both stores: none is answered with a 500, nor any other
/// 5xx, and the server is still healthy after all of it.
#[tokio::test]
async fn hostile_input_to_every_route_never_gets_a_500() {
    let long = "é".repeat(201);
    let percents = "%25".repeat(200);
    let bodies: Vec<Vec<u8>> = [
        r#"{"name":"\u0000"}"#,
        r#"{"name":"\u0000nul"}"#,
        r#"{"name":"x\u0000"}"#,
        r#"{"name":"\u001f\u007f\u0080\u009f"}"#,
        r#"{"name":"\ud800"}"#,
        r#"{"name":"\u2028\u2029\ufeff"}"#,
        r#"{"name":"%_\\"}"#,
        r#"{"name":""}"#,
        r#"{"name":null}"#,
        r#"{"name":7}"#,
        r#"{"name":["a"]}"#,
        r#"{"name":"a","ttl_secs":-1}"#,
        r#"{"name":"a","ttl_secs":1.5}"#,
        r#"{"name":"a","ttl_secs":18446744073709551615}"#,
        r#"{"name":"a","ttl_secs":3153600000}"#,
        r#"{"name":"a","extra":1}"#,
        r#"{"name":"a"} trailing"#,
        "[]",
        "null",
        "",
        "{",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([
        format!(r#"{{"name":"{long}"}}"#).into_bytes(),
        b"{\"name\":\"\xff\xfe\"}".to_vec(),
        b"\x00\x01\x02".to_vec(),
    ])
    .collect();
    let queries = [
        "q=%00",
        "q=%01",
        "q=a%00b",
        "q=",
        "q",
        "q=%25%5F%5C",
        &format!("q={percents}"),
        &format!("q={long}"),
        "q=%zz",
        "q=%",
        "q=%FF",
        "q=%C3",
        "%zz",
        "&&&",
        "=",
        "==&=",
        "limit=99999999999999999999999",
        "limit=0",
        "limit=%2D1",
        "after=18446744073709551615",
        "after=9223372036854775807",
        "after=9223372036854775808",
        "after=%2B1",
        "after=1&after=2&limit=1&limit=1000",
    ];
    let ids = [
        "0",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "99999999999999999999999",
        "-1",
        "%31",
        "1%00",
        "%zz",
    ];
    let last_event_ids = [
        "Last-Event-ID: 9223372036854775806\r\n",
        "Last-Event-ID: 9223372036854775807\r\n",
        "Last-Event-ID: 18446744073709551615\r\n",
        "Last-Event-ID: -1\r\n",
        "Last-Event-ID: abc\r\n",
        "Last-Event-ID: \r\n",
        "Last-Event-ID: 1\r\nLast-Event-ID: 2\r\n",
        "Last-Event-ID: é\r\n",
    ];

    let db = TempDb::new("hostile-input");
    for server in [
        start_sqlite(&db).await,
        TestServer::start(test_config()).await,
    ] {
        let addr = server.addr;
        let mut answers = Vec::new();
        for body in &bodies {
            let extra = "Content-Type: application/json\r\n";
            let status = status_of(addr, "POST", "/api/items", extra, body).await;
            answers.push((
                status,
                format!("POST /api/items {:?}", String::from_utf8_lossy(body)),
            ));
        }
        for query in queries {
            for route in [
                "/api/items",
                "/api/slow",
                "/api/stream",
                "/healthz",
                "/metrics",
            ] {
                let path = format!("{route}?{query}");
                answers.push((status_of(addr, "GET", &path, "", b"").await, path));
            }
        }
        for id in ids {
            let path = format!("/api/items/{id}");
            for method in ["GET", "DELETE"] {
                let status = status_of(addr, method, &path, "", b"").await;
                answers.push((status, format!("{method} {path}")));
            }
        }
        for extra in last_event_ids {
            let status = status_of(addr, "GET", "/api/stream", extra, b"").await;
            answers.push((status, format!("GET /api/stream {extra:?}")));
        }
        let failed: Vec<_> = answers
            .iter()
            .filter(|(status, _)| *status >= 500)
            .collect();
        assert!(failed.is_empty(), "5xx answers: {failed:#?}");
        assert_eq!(get(addr, "/healthz").await.status, 200);
        stop(server).await;
    }
}
