//! The article's service: health, items, slow work, metrics, and a clear
//! answer to bad input.

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use lameduck::Config;
use support::http::{self, get, request};
use support::{TestServer, test_config};

const STOP: Duration = Duration::from_secs(15);

async fn stop(server: TestServer) {
    server.shutdown();
    server.report_within(STOP).await;
}

/// Items: create (201 with Location), list (paginated), get, delete.
#[tokio::test]
async fn items_can_be_created_listed_fetched_and_deleted() {
    let server = TestServer::start(test_config()).await;
    let created = request(
        server.addr,
        "POST",
        "/api/items",
        Some(r#"{"name":"first"}"#),
    )
    .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.header("location"), Some("/api/items/1"));
    let item: serde_json::Value = serde_json::from_slice(&created.body).unwrap();
    assert_eq!(
        (item["id"].as_u64(), item["name"].as_str()),
        (Some(1), Some("first"))
    );
    assert!(item["created_at"].as_u64().unwrap() > 1_600_000_000);
    request(
        server.addr,
        "POST",
        "/api/items",
        Some(r#"{"name":"second","ttl_secs":60}"#),
    )
    .await;

    let list = get(server.addr, "/api/items").await;
    assert_eq!(list.status, 200);
    let items: Vec<serde_json::Value> = serde_json::from_slice(&list.body).unwrap();
    assert_eq!(
        items
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["first", "second"]
    );
    let page: Vec<serde_json::Value> =
        serde_json::from_slice(&get(server.addr, "/api/items?after=1&limit=1").await.body).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], 2);

    assert_eq!(get(server.addr, "/api/items/2").await.status, 200);
    assert_eq!(
        request(server.addr, "DELETE", "/api/items/2", None)
            .await
            .status,
        204
    );
    assert_eq!(get(server.addr, "/api/items/2").await.status, 404);
    assert_eq!(
        request(server.addr, "DELETE", "/api/items/2", None)
            .await
            .status,
        404
    );
    stop(server).await;
}

/// Bad JSON, bad names (blank, too long, control characters) and bad
/// queries (out of range, malformed escapes) get 400/422 with a JSON error
/// body.
#[tokio::test]
async fn bad_input_gets_a_json_error() {
    let server = TestServer::start(test_config()).await;
    let cases = [
        ("POST", "/api/items", Some("{not json"), 400),
        ("POST", "/api/items", Some(r#"{"nom":"x"}"#), 400),
        ("POST", "/api/items", Some(r#"{"name":"   "}"#), 422),
        (
            "POST",
            "/api/items",
            Some(&*format!(r#"{{"name":"{}"}}"#, "é".repeat(201))),
            422,
        ),
        ("GET", "/api/slow?ms=abc", None, 400),
        ("GET", "/api/slow", None, 400),
        ("GET", "/api/slow?ms=60001", None, 400),
        ("GET", "/api/items?limit=0", None, 400),
        ("GET", "/api/stream?interval_ms=1", None, 400),
        ("POST", "/api/items", Some(r#"{"name":"\u0000nul"}"#), 422),
        ("POST", "/api/items", Some(r#"{"name":"a\u007f"}"#), 422),
        ("GET", "/api/items?q=%zz", None, 400),
        ("GET", "/api/items?limit=%4", None, 400),
        ("GET", "/api/slow?ms=%+4", None, 400),
    ];
    for (method, path, body, status) in cases {
        let res = request(server.addr, method, path, body).await;
        assert_eq!(res.status, status, "{method} {path} {body:?}");
        let err: serde_json::Value = serde_json::from_slice(&res.body).expect("JSON error body");
        assert!(err["error"].is_string(), "{err}");
    }
    // Invalid UTF-8 inside a JSON string.
    let mut conn = http::connect(server.addr).await;
    let body = b"{\"name\":\"\xff\xfe\"}";
    http::send(
        &mut conn,
        format!(
            "POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    http::send(&mut conn, body).await;
    assert_eq!(http::read_response(&mut conn).await.unwrap().status, 400);
    stop(server).await;
}

/// Unknown paths get 404; a known path with the wrong method gets 405 with
/// an `Allow` header naming the right ones.
#[tokio::test]
async fn unknown_paths_get_404_and_wrong_methods_get_405_with_allow() {
    let server = TestServer::start(test_config()).await;
    assert_eq!(get(server.addr, "/nope").await.status, 404);
    assert_eq!(get(server.addr, "/api/items/abc").await.status, 404);
    assert_eq!(
        get(server.addr, "/debug/panic").await.status,
        404,
        "debug routes are off by default"
    );
    for (method, path, allow) in [
        ("DELETE", "/healthz", "GET, HEAD, OPTIONS"),
        ("PUT", "/api/items", "GET, HEAD, POST, OPTIONS"),
        ("POST", "/api/items/1", "GET, HEAD, DELETE, OPTIONS"),
        ("POST", "/api/slow?ms=1", "GET, HEAD, OPTIONS"),
    ] {
        let res = request(server.addr, method, path, None).await;
        assert_eq!(
            (res.status, res.header("allow")),
            (405, Some(allow)),
            "{method} {path}"
        );
    }
    stop(server).await;
}

/// A handler that panics becomes a 500 for that request; the same
/// connection and the server keep serving.
#[tokio::test]
async fn a_panicking_handler_becomes_a_500_and_the_server_keeps_serving() {
    let server = TestServer::start(Config {
        debug_routes: true,
        ..test_config()
    })
    .await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/debug/panic").await;
    assert_eq!(http::read_response(&mut conn).await.unwrap().status, 500);
    http::send_get(&mut conn, "/healthz").await;
    assert_eq!(http::read_response(&mut conn).await.unwrap().status, 200);
    assert_eq!(get(server.addr, "/healthz").await.status, 200);
    assert_eq!(server.app.metrics.requests_in_flight.load(Relaxed), 0);
    stop(server).await;
}

/// When the client goes away mid-request, hyper drops the handler and the
/// work it handed to another task is cancelled through its token — the
/// Rust form of a handler honouring `r.Context()`.
#[tokio::test]
async fn a_client_leaving_cancels_the_work_it_started() {
    let server = TestServer::start(test_config()).await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/api/slow?ms=30000").await;
    server
        .wait_until(Duration::from_secs(5), "in flight", |app| {
            app.metrics.requests_in_flight.load(Relaxed) == 1
        })
        .await;
    drop(conn);
    server
        .wait_until(Duration::from_secs(5), "work cancelled", |app| {
            app.metrics.work_cancelled.load(Relaxed) == 1
                && app.metrics.requests_in_flight.load(Relaxed) == 0
        })
        .await;
    stop(server).await;
}

/// `/metrics` reports connections, requests by status and the phase in the
/// Prometheus text format.
#[tokio::test]
async fn metrics_report_requests_connections_and_phase() {
    let server = TestServer::start(test_config()).await;
    get(server.addr, "/healthz").await;
    get(server.addr, "/nope").await;
    let page = get(server.addr, "/metrics").await.text();
    for line in [
        "lameduck_requests_total{status=\"200\"} 1",
        "lameduck_requests_total{status=\"404\"} 1",
        "lameduck_open_connections 1",
        "lameduck_connections_accepted_total 3",
        "lameduck_shutdown_phase{phase=\"running\"} 1",
        "lameduck_shutdown_phase{phase=\"draining\"} 0",
        "lameduck_connections_aborted_total 0",
        "lameduck_requests_in_flight 0",
    ] {
        assert!(
            page.lines().any(|l| l == line),
            "missing `{line}` in:\n{page}"
        );
    }
    stop(server).await;
}
