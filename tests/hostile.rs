//! Clients that are slow, greedy or never read, against the real server on
//! loopback. None of them may take the server down, starve other clients,
//! or hold a connection (or the drain) forever.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use lameduck::Outcome;
use lameduck::store::NewItem;
use support::http;
use support::{TestServer, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Slowloris: 200 connections each send a request head one byte every
/// 500 ms. Every one is closed at the header timeout (counted from the
/// accept), without an answer; meanwhile a normal client's `/healthz`
/// answers within 1 s every time it asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_at_the_header_timeout() {
    const CONNS: usize = 200;
    let header_timeout = Duration::from_secs(2);
    let server = TestServer::start(lameduck::Config {
        header_read_timeout: header_timeout,
        ..test_config()
    })
    .await;

    let start = Instant::now();
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..CONNS {
        let (mut rx, tx) = http::connect(server.addr).await.into_split();
        writers.push(Some(tx));
        let connected = Instant::now();
        // Each reader waits for the close and says when it came and what
        // (if anything) the server sent before it.
        readers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(30), rx.read_to_end(&mut got)).await;
            (connected.elapsed(), got)
        }));
    }
    let head = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: yes\r\n\r\n";

    // One task trickles a byte to every connection each 500 ms.
    let trickle = tokio::spawn(async move {
        for &byte in head.iter() {
            for tx in writers.iter_mut() {
                if let Some(w) = tx
                    && w.write_all(&[byte]).await.is_err()
                {
                    *tx = None; // closed by the server
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    // The normal client, asking every 100 ms until the slowloris is over.
    let mut checks = 0;
    while readers.iter().any(|r| !r.is_finished()) {
        let asked = Instant::now();
        let res = tokio::time::timeout(Duration::from_secs(1), http::get(server.addr, "/healthz"))
            .await
            .expect("/healthz answered within 1 s during the slowloris");
        assert_eq!(res.status, 200);
        checks += 1;
        assert!(asked.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "slowloris never ended"
        );
    }
    assert!(checks >= 10, "the normal client asked only {checks} times");
    trickle.abort();

    for reader in readers {
        let (open_for, got) = reader.await.unwrap();
        assert!(got.is_empty(), "no answer to an unfinished head: {got:?}");
        assert!(
            open_for >= header_timeout - Duration::from_millis(300),
            "closed too early: {open_for:?}"
        );
        assert!(
            open_for < header_timeout + Duration::from_secs(5),
            "closed long after the header timeout: {open_for:?}"
        );
    }
    server.shutdown();
    let report = server.report_within(Duration::from_secs(10)).await;
    assert_eq!(report.outcome, Outcome::Drained);
}

/// Slow body: a body trickled a byte every 200 ms is cut off at the request
/// timeout with 408 and `Connection: close` (the server answers rather than
/// just closing), and the handler does not run on.
#[tokio::test]
async fn a_body_trickled_byte_by_byte_gets_408_at_the_request_timeout() {
    let request_timeout = Duration::from_secs(1);
    let server = TestServer::start(lameduck::Config {
        request_timeout,
        ..test_config()
    })
    .await;
    let (mut rx, mut tx) = http::connect(server.addr).await.into_split();
    let start = Instant::now();
    tx.write_all(b"POST /api/items HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if tx.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), rx.read_to_end(&mut got))
        .await
        .expect("closed within 10 s")
        .ok();
    let elapsed = start.elapsed();
    trickle.abort();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(
        elapsed >= request_timeout - Duration::from_millis(100)
            && elapsed < request_timeout + Duration::from_secs(3),
        "cut off after {elapsed:?}"
    );
    assert_eq!(server.app.metrics.requests_in_flight.load(Relaxed), 0);
    assert_eq!(server.app.metrics.requests_with_status(408), 1);
}

/// Fills the store with `n` items with 200-character names, so that
/// `GET /api/items?limit=1000` is a response of about 250 KB.
async fn fill_store(server: &TestServer, n: usize) {
    for i in 0..n {
        let item = NewItem {
            name: format!("{i:0>200}"),
            ttl_secs: None,
        };
        server
            .app
            .store
            .create(item, CancellationToken::new())
            .await
            .unwrap();
    }
}

/// Opens a connection with a small receive buffer and pipelines `n`
/// requests for the large list, then never reads a byte.
async fn never_read(server: &TestServer, n: usize) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut conn = socket.connect(server.addr).await.unwrap();
    let req = b"GET /api/items?limit=1000 HTTP/1.1\r\nHost: test\r\n\r\n";
    for _ in 0..n {
        conn.write_all(req).await.unwrap();
    }
    conn
}

/// A client that requests large responses and never reads them: once the
/// socket buffers are full the server's writes stall, and the connection
/// is cut off a request timeout later instead of being held forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off_after_the_write_stalls() {
    let request_timeout = Duration::from_secs(1);
    let server = TestServer::start(lameduck::Config {
        request_timeout,
        ..test_config()
    })
    .await;
    fill_store(&server, 1000).await;
    let start = Instant::now();
    let accepted = |app: &lameduck::App| {
        app.metrics
            .connections_accepted
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = accepted(&server.app);
    let _conn = never_read(&server, 40).await; // ~10 MB asked for
    // Accepted first: on a loaded machine the connect completes in the
    // kernel's backlog before the accept loop takes it, and "no open
    // connection" would then be true at once.
    server
        .wait_until(
            Duration::from_secs(20),
            "the connection is accepted",
            |app| accepted(app) > before,
        )
        .await;
    server
        .wait_until(
            Duration::from_secs(20),
            "the stalled connection is cut off",
            |app| app.metrics.open_connections() == 0,
        )
        .await;
    let elapsed = start.elapsed();
    assert!(
        elapsed >= request_timeout,
        "closed after {elapsed:?}: before any write could stall that long"
    );
    // The server kept serving throughout.
    assert_eq!(http::get(server.addr, "/healthz").await.status, 200);
}

/// The same client during a shutdown: it cannot hold the drain. The
/// server drains (exit code 0) a request timeout after the write stalled,
/// well before the 10 s shutdown deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_hold_the_shutdown() {
    let request_timeout = Duration::from_secs(1);
    let server = TestServer::start(lameduck::Config {
        request_timeout,
        ..test_config()
    })
    .await;
    fill_store(&server, 1000).await;
    let _conn = never_read(&server, 40).await;
    server
        .wait_until(Duration::from_secs(5), "responses being written", |app| {
            app.metrics.requests_with_status(200) >= 1
        })
        .await;
    let start = Instant::now();
    server.shutdown();
    let report = server.report_within(Duration::from_secs(15)).await;
    assert_eq!(report.outcome, Outcome::Drained, "{report:?}");
    assert_eq!(report.exit_code(), 0);
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "drain took {:?}",
        start.elapsed()
    );
}

/// Connection flood: 200 idle connections against `max_connections = 20`.
/// The server stays up and never holds more than 20 (so its memory is
/// bounded by the limit, not by the flood); the rest wait in the kernel's
/// backlog. As soon as the flood leaves, a normal client is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_held_at_the_limit_and_the_server_recovers() {
    let server = TestServer::start(lameduck::Config {
        max_connections: 20,
        header_read_timeout: Duration::from_secs(30),
        ..test_config()
    })
    .await;
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(http::connect(server.addr).await);
    }
    server
        .wait_until(Duration::from_secs(5), "20 connections accepted", |app| {
            app.metrics.open_connections() == 20
        })
        .await;
    // Give the accept loop every chance to go over the limit; it must not.
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for _ in 0..20 {
        let open = server.app.metrics.open_connections();
        peak.fetch_max(open, Relaxed);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        peak.load(Relaxed),
        20,
        "never more than max_connections open"
    );
    assert_eq!(
        server.app.metrics.connections_accepted.load(Relaxed),
        20,
        "the rest wait in the backlog, unaccepted"
    );

    // The flood leaves.
    let left = Instant::now();
    drop(flood);
    let res = tokio::time::timeout(Duration::from_secs(10), http::get(server.addr, "/healthz"))
        .await
        .expect("served again once the flood left");
    assert_eq!(res.status, 200);
    assert!(left.elapsed() < Duration::from_secs(10));
    server.shutdown();
    let report = server.report_within(Duration::from_secs(10)).await;
    assert_eq!(report.outcome, Outcome::Drained);
}
