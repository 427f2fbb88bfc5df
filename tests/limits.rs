//! Timeouts and limits: each one fires, and fires for the right reason.

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use lameduck::Config;
use support::http::{self, get};
use support::{TestServer, test_config};

const STOP: Duration = Duration::from_secs(15);

/// `--header-read-timeout`: a client that starts a request head and does
/// not finish it is disconnected when the timeout passes, without a
/// response (there is no request to answer).
#[tokio::test]
async fn an_unfinished_request_head_is_cut_at_the_header_timeout() {
    let config = Config {
        header_read_timeout: Duration::from_millis(400),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let mut conn = http::connect(server.addr).await;
    let started = Instant::now();
    http::send(&mut conn, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    http::closed_within(&mut conn, Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(350),
        "closed too early: {took:?}"
    );
    server.shutdown();
    server.report_within(STOP).await;
}

/// The protocol sniff is bounded too: a client that connects and sends
/// nothing at all is disconnected at the header timeout (hyper-util's auto
/// builder would wait forever here).
#[tokio::test]
async fn a_silent_connection_is_cut_at_the_header_timeout() {
    let config = Config {
        header_read_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let mut conn = http::connect(server.addr).await;
    let started = Instant::now();
    assert!(
        http::closed_within(&mut conn, Duration::from_secs(5))
            .await
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    // A partial HTTP/2 preface is still undecided, and still bounded.
    let mut conn = http::connect(server.addr).await;
    http::send(&mut conn, b"PRI * HTTP/2.0\r\n").await;
    http::closed_within(&mut conn, Duration::from_secs(5)).await;
    server.shutdown();
    server.report_within(STOP).await;
}

/// `--idle-timeout`, kept apart from the header timeout: an idle keep-alive
/// connection survives well past the header timeout, and is closed once
/// the idle timeout passes. A next request started in time is served.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout_not_the_header_timeout() {
    let config = Config {
        header_read_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(1200),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/healthz").await;
    assert_eq!(http::read_response(&mut conn).await.unwrap().status, 200);

    // Idle for twice the header timeout: still open, and still serving.
    assert!(http::still_open_after(&mut conn, Duration::from_millis(500)).await);
    http::send_get(&mut conn, "/healthz").await;
    assert_eq!(http::read_response(&mut conn).await.unwrap().status, 200);

    let idle_from = Instant::now();
    http::closed_within(&mut conn, Duration::from_secs(5)).await;
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(1000),
        "closed after {idle:?}, before the idle timeout"
    );
    server.shutdown();
    server.report_within(STOP).await;
}

/// Once a keep-alive connection starts its next head, the header timeout
/// applies from that first byte: a slow head is not allowed the idle time.
#[tokio::test]
async fn a_second_head_started_but_not_finished_is_cut_at_the_header_timeout() {
    let config = Config {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(30),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/healthz").await;
    assert_eq!(http::read_response(&mut conn).await.unwrap().status, 200);
    http::send(&mut conn, b"GET /hea").await;
    let started = Instant::now();
    http::closed_within(&mut conn, Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(started.elapsed() >= Duration::from_millis(250));
    server.shutdown();
    server.report_within(STOP).await;
}

/// `--request-timeout`: a handler that runs longer is answered 503 and
/// dropped, and the work it handed off is cancelled.
#[tokio::test]
async fn a_handler_past_the_request_timeout_gets_503_and_its_work_stops() {
    let config = Config {
        request_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let started = Instant::now();
    let res = get(server.addr, "/api/slow?ms=10000").await;
    assert_eq!(res.status, 503);
    assert!(res.text().contains("timed out"), "{}", res.text());
    assert!(started.elapsed() < Duration::from_secs(5));
    server
        .wait_until(Duration::from_secs(5), "work cancelled", |app| {
            app.metrics.work_cancelled.load(Relaxed) == 1
        })
        .await;
    server.shutdown();
    server.report_within(STOP).await;
}

/// Event streams are exempt from the request timeout.
#[tokio::test]
async fn an_event_stream_outlives_the_request_timeout() {
    let config = Config {
        request_timeout: Duration::from_millis(200),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/api/stream?interval_ms=100").await;
    let (head, mut buf) = http::read_head(&mut conn).await;
    assert_eq!(head.status, 200);
    let started = Instant::now();
    let mut events = 0;
    while started.elapsed() < Duration::from_millis(600) {
        assert!(http::read_chunk(&mut conn, &mut buf).await.is_some());
        events += 1;
    }
    assert!(events >= 3, "only {events} events");
    server.shutdown();
    server.report_within(STOP).await;
}

/// A body trickled slower than the request timeout is answered 408 and
/// the connection closed; the handler does not wait forever.
#[tokio::test]
async fn a_body_not_received_in_time_gets_408() {
    let config = Config {
        request_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let mut conn = http::connect(server.addr).await;
    http::send(
        &mut conn,
        b"POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{\"na",
    )
    .await;
    let res = http::read_response(&mut conn).await.unwrap();
    assert_eq!(res.status, 408);
    assert!(res.closes());
    server.shutdown();
    server.report_within(STOP).await;
}

/// `--max-body`: a declared length over the limit gets 413 at once, before
/// the body is sent; a chunked body that grows past it gets 413 too.
#[tokio::test]
async fn a_body_over_the_limit_gets_413_without_being_read() {
    let config = Config {
        max_body: 1024,
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let mut conn = http::connect(server.addr).await;
    // Only the head: the server must answer without waiting for the body.
    http::send(
        &mut conn,
        b"POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
    )
    .await;
    let res = http::read_response(&mut conn).await.unwrap();
    assert_eq!(res.status, 413);
    assert!(res.closes());

    let mut conn = http::connect(server.addr).await;
    let chunk = format!("{:x}\r\n{}\r\n", 800, "a".repeat(800));
    http::send(
        &mut conn,
        b"POST /api/items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await;
    http::send(&mut conn, chunk.as_bytes()).await;
    http::send(&mut conn, chunk.as_bytes()).await;
    let res = http::read_response(&mut conn).await.unwrap();
    assert_eq!(res.status, 413);
    server.shutdown();
    server.report_within(STOP).await;
}

/// `--max-connections`: beyond the limit the server stops accepting (the
/// kernel queues the connection) instead of accepting and dropping; the
/// queued connection is served as soon as a slot frees up.
#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let config = Config {
        max_connections: 2,
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = http::connect(server.addr).await;
        http::send_get(&mut c, "/livez").await;
        assert_eq!(http::read_response(&mut c).await.unwrap().status, 200);
        held.push(c);
    }
    let mut third = http::connect(server.addr).await; // queued in the backlog
    http::send_get(&mut third, "/livez").await;
    assert!(
        http::still_open_after(&mut third, Duration::from_millis(300)).await,
        "answered beyond the limit"
    );
    assert_eq!(server.app.metrics.connections_accepted.load(Relaxed), 2);

    drop(held.pop()); // free a slot
    let res = tokio::time::timeout(Duration::from_secs(5), http::read_response(&mut third))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status, 200);
    server.shutdown();
    server.report_within(STOP).await;
}
