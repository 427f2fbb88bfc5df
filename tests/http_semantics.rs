//! HTTP as real clients see it: `HEAD` wherever `GET` is served, over
//! HTTP/1.1 and HTTP/2; `OPTIONS` on a path and on `*`; `/metrics` as
//! Prometheus reads it.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use support::http::{self, request};
use support::http2;
use support::{TestServer, test_config};

const STOP: Duration = Duration::from_secs(15);
const WITHIN: Duration = Duration::from_secs(5);

async fn stop(server: TestServer) {
    server.shutdown();
    server.report_within(STOP).await;
}

/// Every route that serves `GET`, once an item exists.
const GET_ROUTES: [&str; 8] = [
    "/healthz",
    "/livez",
    "/metrics",
    "/api/items",
    "/api/items/1",
    "/api/slow?ms=1",
    "/api/stream?interval_ms=10",
    "/api/download?bytes=100000&seed=1",
];

/// A server with one item, so that `/api/items/1` is served.
async fn server_with_an_item() -> TestServer {
    let server = TestServer::start(test_config()).await;
    let created = request(server.addr, "POST", "/api/items", Some(r#"{"name":"x"}"#)).await;
    assert_eq!(created.status, 201);
    server
}

/// The headers a `HEAD` answer must share with the `GET` answer to the
/// same path: all of them, except the ones that are not about the
/// resource. `date` is the moment of the answer. `/metrics` counts the
/// requests themselves, so its length may move by a digit between two
/// answers. Over HTTP/1.1 a `GET` event stream is chunked, and hyper
/// never announces chunking on a `HEAD` answer, which has no body to
/// chunk (RFC 9112 §6.1 allows either).
fn comparable(path: &str, headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut kept: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| match n.as_str() {
            "date" | "transfer-encoding" => false,
            "content-length" => path != "/metrics",
            _ => true,
        })
        .collect();
    kept.sort();
    kept
}

fn h2_headers(res: &::http::Response<h2::RecvStream>) -> Vec<(String, String)> {
    res.headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect()
}

/// `method path` over HTTP/1.1 on a fresh connection, `Connection:
/// close`: the head of the answer, and every byte the server sent after
/// it, until it closed or, for an event stream that never ends on its
/// own, until the head was there.
async fn http1_exchange(addr: SocketAddr, method: &str, path: &str) -> (http::Response, Vec<u8>) {
    let mut conn = http::connect(addr).await;
    http::send(
        &mut conn,
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    let (res, mut after) = http::read_head(&mut conn).await;
    if method == "HEAD" {
        after.extend(http::closed_within(&mut conn, WITHIN).await);
    }
    (res, after)
}

/// Over HTTP/1.1, `HEAD` on every `GET` route answers with `GET`'s status
/// and headers, `Content-Length` included where `GET` has one, and not a
/// byte of body: the connection carries nothing after the head. A `HEAD`
/// of the event stream leaves no stream open.
#[tokio::test]
async fn head_over_http1_answers_like_get_without_a_body() {
    let server = server_with_an_item().await;
    for path in GET_ROUTES {
        let (get, _) = http1_exchange(server.addr, "GET", path).await;
        let (head, after) = http1_exchange(server.addr, "HEAD", path).await;
        assert_eq!(head.status, get.status, "HEAD {path}");
        assert_eq!(head.status, 200, "HEAD {path}");
        assert_eq!(
            comparable(path, &head.headers),
            comparable(path, &get.headers),
            "HEAD {path}"
        );
        assert_eq!(
            head.header("content-length").is_some(),
            get.header("content-length").is_some(),
            "HEAD {path}"
        );
        assert!(after.is_empty(), "HEAD {path} sent a body: {after:?}");
    }
    let length = |res: &http::Response| res.header("content-length").map(str::to_owned);
    let get = http::get(server.addr, "/api/items/1").await;
    let (head, _) = http1_exchange(server.addr, "HEAD", "/api/items/1").await;
    assert_eq!(length(&head), Some(get.body.len().to_string()));
    // Only the GET streams above are left, and they end with their
    // connections.
    server
        .wait_until(WITHIN, "no event stream open", |app| {
            app.metrics.streams_open.load(Relaxed) == 0
        })
        .await;
    stop(server).await;
}

/// Over h2c, `HEAD` on every `GET` route answers with `GET`'s status and
/// headers (`Content-Length` included where `GET` has one) and a stream
/// that ends with no DATA frame carrying a byte. This is what hyper alone
/// got wrong: it sent the body, and clients reset the stream. A `HEAD` of
/// the event stream ends after its headers and leaves no stream open.
#[tokio::test]
async fn head_over_h2c_answers_like_get_without_a_data_byte() {
    let server = server_with_an_item().await;
    let (mut client, _conn) = http2::connect(server.addr).await;
    for path in GET_ROUTES {
        let (pending, _) = client.send_request(http2::get(path), true).unwrap();
        let get = pending.await.unwrap();
        let get_headers = h2_headers(&get);
        let get_status = get.status();
        drop(get); // The event stream would never end; its headers are enough.

        let (pending, _) = client
            .send_request(http2::request("HEAD", path), true)
            .unwrap();
        let head = pending.await.expect("HEAD answered");
        assert_eq!(head.status(), get_status, "HEAD {path}");
        assert_eq!(head.status(), 200, "HEAD {path}");
        let head_headers = h2_headers(&head);
        assert_eq!(
            comparable(path, &head_headers),
            comparable(path, &get_headers),
            "HEAD {path}"
        );
        let has_length = |h: &[(String, String)]| h.iter().any(|(n, _)| n == "content-length");
        assert_eq!(
            has_length(&head_headers),
            has_length(&get_headers),
            "HEAD {path}"
        );
        let frames = tokio::time::timeout(WITHIN, http2::data_frames(head))
            .await
            .unwrap_or_else(|_| panic!("HEAD {path}: the stream did not end"));
        assert!(
            frames.iter().all(|f| f.is_empty()),
            "HEAD {path} sent DATA: {frames:?}"
        );
    }
    let (pending, _) = client
        .send_request(http2::get("/api/items/1"), true)
        .unwrap();
    let body = http2::body_text(pending.await.unwrap()).await;
    let (pending, _) = client
        .send_request(http2::request("HEAD", "/api/items/1"), true)
        .unwrap();
    let head = pending.await.unwrap();
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        body.len().to_string()
    );
    server
        .wait_until(WITHIN, "no event stream open", |app| {
            app.metrics.streams_open.load(Relaxed) == 0
        })
        .await;
    stop(server).await;
}

/// `HEAD /api/items` is served (RFC 9110 §9.1: a server that serves `GET`
/// serves `HEAD`); it used to be refused with 405.
#[tokio::test]
async fn head_of_the_item_list_is_served() {
    let server = server_with_an_item().await;
    let res = request(server.addr, "HEAD", "/api/items", None).await;
    assert_eq!(res.status, 200);
    assert!(res.body.is_empty());
    stop(server).await;
}

/// `OPTIONS` on a path answers 204 with the methods that path takes, over
/// both protocols; an unknown path is still 404.
#[tokio::test]
async fn options_on_a_path_lists_its_methods() {
    let server = server_with_an_item().await;
    let (mut client, _conn) = http2::connect(server.addr).await;
    for (path, allow) in [
        ("/healthz", "GET, HEAD, OPTIONS"),
        ("/metrics", "GET, HEAD, OPTIONS"),
        ("/api/items", "GET, HEAD, POST, OPTIONS"),
        ("/api/items/1", "GET, HEAD, DELETE, OPTIONS"),
        ("/api/slow", "GET, HEAD, OPTIONS"),
        ("/api/stream", "GET, HEAD, OPTIONS"),
        ("/api/download", "GET, HEAD, OPTIONS"),
    ] {
        let res = request(server.addr, "OPTIONS", path, None).await;
        assert_eq!(
            (res.status, res.header("allow")),
            (204, Some(allow)),
            "OPTIONS {path}"
        );
        assert!(res.body.is_empty());

        let (pending, _) = client
            .send_request(http2::request("OPTIONS", path), true)
            .unwrap();
        let res = pending.await.unwrap();
        assert_eq!(res.status(), 204, "h2 OPTIONS {path}");
        assert_eq!(res.headers()["allow"], allow, "h2 OPTIONS {path}");
        assert!(http2::data_frames(res).await.iter().all(|f| f.is_empty()));
    }
    assert_eq!(
        request(server.addr, "OPTIONS", "/nope", None).await.status,
        404
    );
    stop(server).await;
}

/// `OPTIONS *` asks about the server itself (RFC 9110 §9.3.7): 204 with
/// every method the server takes on some path, and no body (it used to
/// be a 404 with a JSON body).
#[tokio::test]
async fn options_star_lists_the_servers_methods() {
    let server = TestServer::start(test_config()).await;
    let res = request(server.addr, "OPTIONS", "*", None).await;
    assert_eq!(res.status, 204);
    assert_eq!(
        res.header("allow"),
        Some("GET, HEAD, POST, DELETE, OPTIONS")
    );
    assert!(res.body.is_empty());
    stop(server).await;
}

/// `/metrics` says it is Prometheus text, version 0.0.4, in UTF-8, and a
/// strict parser of that format reads every line of it.
#[tokio::test]
async fn metrics_parse_as_prometheus_text() {
    let server = TestServer::start(test_config()).await;
    http::get(server.addr, "/healthz").await;
    let res = http::get(server.addr, "/metrics").await;
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let page = res.text();
    let parsed = openmetrics_parser::prometheus::parse_prometheus(&page)
        .unwrap_or_else(|e| panic!("not Prometheus text ({e:?}):\n{page}"));
    let requests = parsed
        .families
        .get("lameduck_requests_total")
        .expect("lameduck_requests_total is there");
    assert_eq!(
        requests.family_type,
        openmetrics_parser::PrometheusType::Counter
    );
    let samples = page
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    let parsed_samples: usize = parsed
        .families
        .values()
        .map(|f| f.iter_samples().count())
        .sum();
    assert_eq!(parsed_samples, samples, "every sample line was read");
    stop(server).await;
}
