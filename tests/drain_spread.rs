//! `--drain-spread`: the drain's goodbyes at instants spread over a
//! window, not all at once, so that the clients of a restarted server do
//! not all reconnect in the same millisecond. In-process, over real
//! sockets; what is counted is when each client was told to go.

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lameduck::{Config, Outcome, Phase};
use support::{TestServer, http, test_config};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

const STOP: Duration = Duration::from_secs(15);

/// A server whose goodbyes are spread over up to `spread`, none at once
/// and then 100 a second: the few hundred connections of a test fill a
/// window of a second.
async fn spreading(spread: Duration) -> TestServer {
    TestServer::start(Config {
        drain_spread: spread,
        drain_spread_rate: 100,
        drain_spread_burst: 0,
        keepalive_grace: Duration::from_millis(20),
        shutdown_timeout: Duration::from_secs(10),
        ..test_config()
    })
    .await
}

/// The first and the last of `instants`, apart.
fn span(instants: &[Instant]) -> Duration {
    let first = instants.iter().min().unwrap();
    let last = instants.iter().max().unwrap();
    *last - *first
}

/// `n` keep-alive connections to `server`, each answered once.
async fn idle_connections(server: &TestServer, n: usize) -> Vec<http::Conn> {
    let mut conns = Vec::new();
    for _ in 0..n {
        let mut conn = http::connect(server.addr).await;
        http::send_get(&mut conn, "/livez").await;
        assert_eq!(http::read_response(&mut conn).await.unwrap().status, 200);
        conns.push(conn);
    }
    conns
}

/// Tasks that each read `conns` to the end and say when.
fn closes_seen(conns: Vec<http::Conn>) -> Vec<tokio::task::JoinHandle<Instant>> {
    conns
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                let mut rest = Vec::new();
                let _ = conn.read_to_end(&mut rest).await;
                Instant::now()
            })
        })
        .collect()
}

/// Begins `server`'s drain, and waits for each of `conns` to be closed:
/// when the drain began, when each close was seen, and the report.
async fn drain_watching(
    server: TestServer,
    conns: Vec<http::Conn>,
) -> (Instant, Vec<Instant>, lameduck::ShutdownReport) {
    let closes = closes_seen(conns);
    let started = Instant::now();
    server.shutdown();
    let mut closed = Vec::new();
    for close in closes {
        closed.push(tokio::time::timeout(STOP, close).await.unwrap().unwrap());
    }
    (started, closed, server.report_within(STOP).await)
}

/// 500 idle keep-alive connections, all used within the keep-alive
/// grace (2 s) when the drain begins, with goodbyes at 100 a second: the
/// window is 5 s, and each connection closes at the later of its grace's
/// end and its own instant. The closes span at least half the window, the
/// report says so too, and the drain still ends inside the deadline.
#[tokio::test]
async fn live_idle_connections_close_at_instants_spread_over_the_window() {
    let server = TestServer::start(Config {
        drain_spread: Duration::from_secs(6),
        drain_spread_rate: 100,
        drain_spread_burst: 0,
        keepalive_grace: Duration::from_secs(2),
        shutdown_timeout: Duration::from_secs(10),
        ..test_config()
    })
    .await;
    let mut conns = idle_connections(&server, 500).await;
    // Used once more, all within a moment: live when the drain begins.
    let used = Instant::now();
    for conn in &mut conns {
        http::send_get(conn, "/livez").await;
        assert_eq!(http::read_response(conn).await.unwrap().status, 200);
    }
    assert!(
        used.elapsed() < Duration::from_millis(1500),
        "the second round of requests took {:?}",
        used.elapsed()
    );
    let (started, closed, report) = drain_watching(server, conns).await;
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.spread, Duration::from_secs(5));
    assert!(
        span(&closed) >= Duration::from_millis(2500),
        "closes spanned {:?}",
        span(&closed)
    );
    let (first, last) = report.goodbyes.expect("goodbyes were drawn");
    assert!(
        last - first >= Duration::from_millis(2500),
        "{first:?}..{last:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the drain took {:?}",
        started.elapsed()
    );
}

/// Connections dormant when the drain begins (idle for longer than the
/// grace) are nobody's next request: 500 of them close at once, although
/// the same crowd of live connections would be spread over 5 s, and no
/// goodbye is drawn for them.
#[tokio::test]
async fn dormant_idle_connections_close_at_once_whatever_the_spread() {
    let server = spreading(Duration::from_secs(5)).await;
    let conns = idle_connections(&server, 500).await;
    // Idle for longer than the keep-alive grace (20 ms).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (started, closed, report) = drain_watching(server, conns).await;
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.spread, Duration::from_secs(5));
    assert_eq!(report.goodbyes, None);
    let last = closed.iter().max().unwrap();
    assert!(
        *last - started < Duration::from_secs(1),
        "the last close came {:?} after the signal",
        *last - started
    );
}

/// Event streams and WebSockets get their goodbye at spread instants too:
/// 60 of each at a 1 s spread, the shutdown events and the Close frames
/// each spanning at least half the window; every stream's `retry:` is
/// jittered around a second.
#[tokio::test]
async fn streams_and_websockets_say_goodbye_at_spread_instants() {
    let server = spreading(Duration::from_secs(1)).await;
    let mut streams = Vec::new();
    for _ in 0..60 {
        let mut conn = http::connect(server.addr).await;
        http::send_get(&mut conn, "/api/stream?interval_ms=60000").await;
        streams.push(tokio::spawn(async move {
            let (head, mut buf) = http::read_head(&mut conn).await;
            assert_eq!(head.status, 200);
            let mut retry = None;
            while let Some(chunk) = http::read_chunk(&mut conn, &mut buf).await {
                if chunk.contains("event: shutdown") {
                    retry = chunk
                        .lines()
                        .find_map(|l| l.strip_prefix("retry: "))
                        .and_then(|v| v.parse::<u64>().ok());
                    return (Instant::now(), retry);
                }
            }
            (Instant::now(), retry)
        }));
    }
    let mut sockets = Vec::new();
    for _ in 0..60 {
        let url = format!("ws://{}/api/ws", server.addr);
        let (mut socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("a handshake");
        sockets.push(tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Close(frame) = message {
                    let code = frame.map(|f| u16::from(f.code));
                    // Answered as the stream goes on, until it ends.
                    let at = Instant::now();
                    while let Some(Ok(_)) = socket.next().await {}
                    return (at, code);
                }
            }
            (Instant::now(), None)
        }));
    }
    support::eventually(STOP, "120 long-lived connections open", || {
        server
            .app
            .metrics
            .streams_open
            .load(std::sync::atomic::Ordering::Relaxed)
            == 60
            && server.app.websockets.open() == 60
    })
    .await;
    server.shutdown();
    let mut events = Vec::new();
    for stream in streams {
        let (at, retry) = tokio::time::timeout(STOP, stream).await.unwrap().unwrap();
        let retry = retry.expect("the last event has a retry");
        assert!((500..1500).contains(&retry), "retry: {retry}");
        events.push(at);
    }
    let mut closes = Vec::new();
    for socket in sockets {
        let (at, code) = tokio::time::timeout(STOP, socket).await.unwrap().unwrap();
        assert_eq!(code, Some(1001));
        closes.push(at);
    }
    assert!(
        span(&events) >= Duration::from_millis(500),
        "events spanned {:?}",
        span(&events)
    );
    assert!(
        span(&closes) >= Duration::from_millis(500),
        "closes spanned {:?}",
        span(&closes)
    );
    let report = server.report_within(STOP).await;
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.websockets_closed, 60);
}

/// A second signal skips what is left of the window: with a 5 s spread,
/// the forced close ends the shutdown at once instead.
#[tokio::test]
async fn a_second_signal_skips_the_spread() {
    let server = spreading(Duration::from_secs(5)).await;
    let mut conns = Vec::new();
    for _ in 0..150 {
        let mut conn = http::connect(server.addr).await;
        http::send_get(&mut conn, "/api/stream?interval_ms=60000").await;
        conns.push(conn);
    }
    support::eventually(STOP, "150 streams open", || {
        server
            .app
            .metrics
            .streams_open
            .load(std::sync::atomic::Ordering::Relaxed)
            == 150
    })
    .await;
    server.shutdown();
    server.wait_for_phase(STOP, Phase::Draining).await;
    let forced = Instant::now();
    server.force();
    let report = server.report_within(STOP).await;
    assert_eq!(report.outcome, Outcome::ForcedBySignal);
    assert!(
        forced.elapsed() < Duration::from_secs(3),
        "{:?}",
        forced.elapsed()
    );
    drop(conns);
}

/// A quiet server has no crowd to spread: with one connection open at
/// 100 goodbyes a second, the window is 10 ms however long
/// `--drain-spread` is, and the exit comes at once.
#[tokio::test]
async fn a_quiet_server_gets_a_window_in_proportion_and_exits_at_once() {
    let server = spreading(Duration::from_secs(5)).await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/livez").await;
    assert_eq!(http::read_response(&mut conn).await.unwrap().status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    server.shutdown();
    let report = server.report_within(STOP).await;
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.spread, Duration::from_millis(10));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
