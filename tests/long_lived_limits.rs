//! The long-lived routes' own bounds, in-process over real sockets: what
//! holds an idle or silent WebSocket, how many may be open, and which
//! timeouts do not apply (the request timeout) or do (the poll's `wait`),
//! over HTTP/1.1 and h2c.

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use lameduck::Config;
use support::{TestServer, http, http2, test_config, websocket};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

const STOP: Duration = Duration::from_secs(10);

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A tungstenite client on the server's hub.
async fn hub_client(server: &TestServer) -> Client {
    let url = format!("ws://{}/api/ws", server.addr);
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("a handshake");
    socket
}

/// A peer that reads but never answers the server's pings is pinged once
/// after `--ws-ping-interval` of silence, then closed with 1001 "ping
/// timeout" once `--ws-ping-timeout` has passed, and the socket is gone.
#[tokio::test]
async fn a_websocket_that_never_answers_a_ping_is_closed_with_ping_timeout() {
    let server = TestServer::start(Config {
        ws_ping_interval: Duration::from_millis(200),
        ws_ping_timeout: Duration::from_millis(300),
        ..test_config()
    })
    .await;
    let (mut socket, head) = websocket::handshake(server.addr, "/api/ws").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Everything the server sends until it closes the connection.
    let mut wire = Vec::new();
    let read = tokio::time::timeout(STOP, socket.read_to_end(&mut wire)).await;
    assert!(read.is_ok(), "the server closed the silent socket");
    // A ping (0x89, empty), then a close (0x88) with 1001 and the reason.
    assert_eq!(&wire[..2], &[0x89, 0x00], "{wire:?}");
    let close = &wire[2..];
    assert_eq!(close[0], 0x88, "{wire:?}");
    let len = close[1] as usize;
    assert_eq!(u16::from_be_bytes([close[2], close[3]]), 1001);
    assert_eq!(&close[4..2 + len], b"ping timeout");
    support::eventually(STOP, "the session ended", || {
        server.app.websockets.open() == 0
    })
    .await;
    server.shutdown();
    server.report_within(STOP).await;
}

/// A peer that keeps talking is not pinged, however long it talks: every
/// message it sends moves the ping due `--ws-ping-interval` later. Once
/// it falls silent, the ping comes.
#[tokio::test]
async fn a_websocket_that_keeps_talking_is_pinged_only_once_it_falls_silent() {
    let interval = Duration::from_millis(200);
    let server = TestServer::start(Config {
        ws_ping_interval: interval,
        ws_ping_timeout: Duration::from_secs(5),
        ..test_config()
    })
    .await;
    let mut socket = hub_client(&server).await;
    // A message every quarter interval, for five intervals: the hub drops
    // them, and nothing at all may come back.
    let mut tick = tokio::time::interval(interval / 4);
    let talk_until = tokio::time::Instant::now() + interval * 5;
    let mut sent = 0;
    while tokio::time::Instant::now() < talk_until {
        tokio::select! {
            _ = tick.tick() => {
                socket.send(Message::text("still here")).await.expect("a send");
                sent += 1;
            }
            next = socket.next() => panic!("nothing while the peer talks, got {next:?}"),
        }
    }
    assert!(sent >= 15, "the peer talked ({sent} messages)");
    // Silent now: the ping comes within a few intervals.
    let silent = Instant::now();
    match tokio::time::timeout(STOP, socket.next()).await {
        Ok(Some(Ok(Message::Ping(_)))) => {}
        other => panic!("a ping once the peer is silent, got {other:?}"),
    }
    assert!(
        silent.elapsed() >= interval / 2,
        "the ping waited for the silence ({:?})",
        silent.elapsed()
    );
    server.shutdown();
    while let Ok(Some(_)) = tokio::time::timeout(STOP, socket.next()).await {}
    server.report_within(STOP).await;
}

/// A WebSocket outlives `--request-timeout`: the hub socket still
/// receives an item created well after the request timeout, and a client
/// that answers pings (tungstenite does) is never closed for silence.
#[tokio::test]
async fn a_websocket_outlives_the_request_timeout() {
    let server = TestServer::start(Config {
        request_timeout: Duration::from_millis(200),
        ws_ping_interval: Duration::from_millis(100),
        ws_ping_timeout: Duration::from_millis(500),
        ..test_config()
    })
    .await;
    let mut socket = hub_client(&server).await;
    // Read (and so answer pings) for five request timeouts: pings come,
    // nothing else does, and the socket stays open.
    let quiet_until = tokio::time::Instant::now() + Duration::from_secs(1);
    let mut pings = 0;
    while let Ok(next) = tokio::time::timeout_at(quiet_until, socket.next()).await {
        match next {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("only pings while no item is created, got {other:?}"),
        }
    }
    assert!(pings >= 1, "an idle socket is pinged");
    let created = http::request(
        server.addr,
        "POST",
        "/api/items",
        Some(r#"{"name":"late"}"#),
    )
    .await;
    assert_eq!(created.status, 201);
    let text = loop {
        match tokio::time::timeout(STOP, socket.next())
            .await
            .expect("the item came")
        {
            Some(Ok(Message::Ping(_))) => continue,
            Some(Ok(Message::Text(text))) => break text,
            other => panic!("expected the item, got {other:?}"),
        }
    };
    assert!(text.contains("\"late\""), "{text}");
    server.shutdown();
    // Reading is what answers the server's Close.
    while let Ok(Some(_)) = tokio::time::timeout(STOP, socket.next()).await {}
    let report = server.report_within(STOP).await;
    assert_eq!(report.websockets_at_drain, 1);
    assert_eq!(report.websockets_closed, 1);
}

/// As many WebSockets as `--max-connections` may be open; the next
/// handshake is answered `503` + `Retry-After`, because an upgraded
/// socket has left the connection count but not the server.
#[tokio::test]
async fn websockets_past_max_connections_get_503() {
    let server = TestServer::start(Config {
        max_connections: 2,
        ..test_config()
    })
    .await;
    let (_a, head_a) = websocket::handshake(server.addr, "/api/ws/echo").await;
    let (_b, head_b) = websocket::handshake(server.addr, "/api/ws/echo").await;
    assert!(head_a.starts_with("HTTP/1.1 101") && head_b.starts_with("HTTP/1.1 101"));
    support::eventually(STOP, "two sessions", || server.app.websockets.open() == 2).await;
    let (_c, head_c) = websocket::handshake(server.addr, "/api/ws/echo").await;
    assert!(head_c.starts_with("HTTP/1.1 503"), "{head_c}");
    assert!(
        head_c.to_ascii_lowercase().contains("retry-after: 1"),
        "{head_c}"
    );
    server.shutdown();
    server.force();
    server.report_within(STOP).await;
}

/// What is not a handshake is answered with a clear status: a plain `GET`
/// gets 426 naming the version served, a bad key 400, a bad `after` 400,
/// another method 405 with `Allow`.
#[tokio::test]
async fn requests_that_are_not_handshakes_get_426_400_or_405() {
    let server = TestServer::start(test_config()).await;
    let plain = http::get(server.addr, "/api/ws").await;
    assert_eq!(plain.status, 426);
    assert_eq!(plain.header("sec-websocket-version"), Some("13"));
    let mut conn = http::connect(server.addr).await;
    let bad_key =
        websocket::handshake_request("/api/ws").replace("dGhlIHNhbXBsZSBub25jZQ==", "short");
    http::send(&mut conn, bad_key.as_bytes()).await;
    assert_eq!(http::read_response(&mut conn).await.unwrap().status, 400);
    let (_, head) = websocket::handshake(server.addr, "/api/ws?after=-1").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let post = http::request(server.addr, "POST", "/api/ws/echo", Some("")).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, OPTIONS"));
    server.shutdown();
    server.report_within(STOP).await;
}

/// A long poll outlives `--request-timeout` (its own `wait` bounds it and
/// ends it with 204), answers 200 with the items as soon as one is
/// created, and is cut to `--poll-max-wait`.
#[tokio::test]
async fn a_long_poll_waits_past_the_request_timeout_up_to_its_wait() {
    let server = TestServer::start(Config {
        request_timeout: Duration::from_millis(100),
        poll_max_wait: Duration::from_millis(600),
        ..test_config()
    })
    .await;
    let started = Instant::now();
    let empty = http::get(server.addr, "/api/items/poll?after=0&wait=400ms").await;
    assert_eq!(empty.status, 204, "{}", empty.text());
    assert!(started.elapsed() >= Duration::from_millis(400));

    let capped = Instant::now();
    let cut = http::get(server.addr, "/api/items/poll?after=0&wait=1h").await;
    assert_eq!(cut.status, 204);
    assert!(
        capped.elapsed() < Duration::from_secs(5),
        "cut to --poll-max-wait"
    );

    let addr = server.addr;
    let waiting =
        tokio::spawn(async move { http::get(addr, "/api/items/poll?after=0&wait=5s").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let created = http::request(addr, "POST", "/api/items", Some(r#"{"name":"polled"}"#)).await;
    assert_eq!(created.status, 201);
    let got = tokio::time::timeout(STOP, waiting).await.unwrap().unwrap();
    assert_eq!(got.status, 200);
    let items: Vec<serde_json::Value> = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], "polled");

    let bad = http::get(addr, "/api/items/poll?wait=soon").await;
    assert_eq!(bad.status, 400);
    server.shutdown();
    server.report_within(STOP).await;
}

/// Over h2c the long poll is the same: 200 with the items above `after`,
/// and at the drain a waiting poll answers 204 at once (GOAWAY does the
/// rest).
#[tokio::test]
async fn over_h2c_a_long_poll_answers_items_and_ends_at_the_drain() {
    let server = TestServer::start(test_config()).await;
    for name in ["one", "two"] {
        let body = format!(r#"{{"name":"{name}"}}"#);
        assert_eq!(
            http::request(server.addr, "POST", "/api/items", Some(&body))
                .await
                .status,
            201
        );
    }
    let (mut client, _conn) = http2::connect(server.addr).await;
    let (pending, _) = client
        .send_request(http2::get("/api/items/poll?after=1"), true)
        .unwrap();
    let res = pending.await.unwrap();
    assert_eq!(res.status(), 200);
    let items: Vec<serde_json::Value> = serde_json::from_str(&http2::body_text(res).await).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], "two");

    let (pending, _) = client
        .send_request(http2::get("/api/items/poll?after=2&wait=30s"), true)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    server.shutdown();
    let res = tokio::time::timeout(STOP, pending).await.unwrap().unwrap();
    assert_eq!(res.status(), 204);
    assert!(started.elapsed() < Duration::from_secs(5));
    server.report_within(STOP).await;
}
