//! HTTP/2 (prior-knowledge h2c): graceful GOAWAY, and a forced close that
//! reaches stream tasks hyper spawns outside the connection.

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use lameduck::{Outcome, Phase};
use support::{TestServer, test_config};

const STOP: Duration = Duration::from_secs(15);

type Client = h2::client::SendRequest<Bytes>;

async fn h2_connect(
    addr: std::net::SocketAddr,
) -> (Client, tokio::task::JoinHandle<Result<(), h2::Error>>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    (client, tokio::spawn(conn))
}

fn get(path: &str) -> http::Request<()> {
    http::Request::get(format!("http://test{path}"))
        .body(())
        .unwrap()
}

async fn body_text(res: http::Response<h2::RecvStream>) -> String {
    let mut body = res.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    String::from_utf8(out).unwrap()
}

/// An HTTP/2 stream in flight when the drain begins completes with 200; the
/// connection gets GOAWAY, so a new stream on it is refused, and the
/// connection then ends cleanly.
#[tokio::test]
async fn an_in_flight_h2c_stream_completes_and_its_connection_gets_goaway() {
    let server = TestServer::start(test_config()).await;
    let (mut client, conn) = h2_connect(server.addr).await;
    let (pending, _) = client.send_request(get("/api/slow?ms=500"), true).unwrap();
    server
        .wait_until(Duration::from_secs(5), "stream in flight", |app| {
            app.metrics.requests_in_flight.load(Relaxed) == 1
        })
        .await;

    server.shutdown();
    server
        .wait_until(STOP, "draining", |app| {
            app.shutdown.phase() == Phase::Draining
        })
        .await;
    let res = pending.await.expect("the in-flight stream is answered");
    assert_eq!(res.status(), 200);
    assert_eq!(body_text(res).await, "done\n");

    // After GOAWAY the client may not open new streams on this connection.
    let refused = match client.ready().await {
        Err(e) => e,
        Ok(mut ready) => match ready.send_request(get("/healthz"), true) {
            Err(e) => e,
            Ok((res, _)) => res
                .await
                .expect_err("a stream opened after GOAWAY must fail"),
        },
    };
    assert!(
        refused.is_go_away() && refused.is_remote(),
        "expected the server's GOAWAY: {refused:?}"
    );
    assert_eq!(refused.reason(), Some(h2::Reason::NO_ERROR));
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("connection ends")
        .unwrap()
        .expect("ends cleanly");

    let report = server.report_within(STOP).await;
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.requests_during_drain, 1);
}

/// hyper runs each HTTP/2 stream in its own task. At a forced close those
/// tasks are stopped too (the stream executor's force token), so the
/// detached work of a stuck stream is cancelled and `run` returns.
#[tokio::test]
async fn a_forced_close_stops_h2_stream_tasks() {
    let server = TestServer::start(test_config()).await;
    let (mut client, _conn) = h2_connect(server.addr).await;
    let (pending, _) = client
        .send_request(get("/api/slow?ms=60000"), true)
        .unwrap();
    server
        .wait_until(Duration::from_secs(5), "stream in flight", |app| {
            app.metrics.requests_in_flight.load(Relaxed) == 1
        })
        .await;
    let app = server.app.clone();

    server.shutdown();
    server.force();
    let report = server.report_within(STOP).await;
    assert_eq!(report.outcome, Outcome::ForcedBySignal);
    assert_eq!(report.connections_aborted, 1);
    assert!(pending.await.is_err(), "the stream was cut, not answered");
    support::eventually(Duration::from_secs(5), "stream handler dropped", || {
        app.metrics.requests_in_flight.load(Relaxed) == 0
            && app.metrics.work_cancelled.load(Relaxed) == 1
    })
    .await;
}

/// The health check answers over h2c too.
#[tokio::test]
async fn healthz_answers_over_h2c() {
    let server = TestServer::start(test_config()).await;
    let (mut client, _conn) = h2_connect(server.addr).await;
    let (pending, _) = client.send_request(get("/healthz"), true).unwrap();
    let res = pending.await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(body_text(res).await, "ok\n");
    server.shutdown();
    server.report_within(STOP).await;
}

/// `--idle-timeout` for HTTP/2 (hyper has none): once no stream has been
/// open for the idle timeout, the connection is closed.
#[tokio::test]
async fn an_idle_h2c_connection_is_closed_at_the_idle_timeout() {
    let config = lameduck::Config {
        idle_timeout: Duration::from_millis(600),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let (mut client, conn) = h2_connect(server.addr).await;
    let (pending, _) = client.send_request(get("/healthz"), true).unwrap();
    assert_eq!(body_text(pending.await.unwrap()).await, "ok\n");
    let idle_from = std::time::Instant::now();

    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("idle connection closed")
        .ok();
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(500),
        "closed after {idle:?}, before the idle timeout"
    );
    server
        .wait_until(Duration::from_secs(5), "connection gone", |app| {
            app.metrics.open_connections() == 0
        })
        .await;
    server.shutdown();
    server.report_within(STOP).await;
}

/// A connection with a stream open is not idle, however long the stream
/// lasts.
#[tokio::test]
async fn an_h2c_connection_with_an_open_stream_is_not_idle() {
    let config = lameduck::Config {
        idle_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let (mut client, _conn) = h2_connect(server.addr).await;
    let (pending, _) = client
        .send_request(get("/api/stream?interval_ms=100"), true)
        .unwrap();
    let mut body = pending.await.unwrap().into_body();
    let started = std::time::Instant::now();
    let mut events = 0;
    while started.elapsed() < Duration::from_millis(1200) {
        let chunk = body.data().await.expect("stream still open").unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        events += 1;
    }
    assert!(events >= 8, "only {events} events");
    server.shutdown();
    server.report_within(STOP).await;
}
