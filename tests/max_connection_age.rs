//! `--max-connection-age`: connections age out, each at its own jittered
//! age, while the server keeps running. In-process, over real sockets.

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lameduck::{Config, Phase};
use support::{TestServer, http, http2, test_config};
use tokio_tungstenite::tungstenite::Message;

const WITHIN: Duration = Duration::from_secs(10);

/// A server whose connections age out after 300 ms (±10 %), with a grace
/// of `grace` after it.
async fn aging(grace: Duration) -> TestServer {
    TestServer::start(Config {
        max_connection_age: Some(Duration::from_millis(300)),
        max_connection_age_grace: grace,
        ..test_config()
    })
    .await
}

/// A keep-alive connection answers as usual until its age, and its first
/// answer after it says `Connection: close`; the server goes on running.
#[tokio::test]
async fn a_keep_alive_connection_past_its_age_gets_connection_close() {
    let server = aging(Duration::from_secs(5)).await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/livez").await;
    let young = http::read_response(&mut conn).await.unwrap();
    assert_eq!(young.status, 200);
    assert!(!young.closes(), "before its age the connection is kept");
    tokio::time::sleep(Duration::from_millis(500)).await;
    http::send_get(&mut conn, "/livez").await;
    let old = http::read_response(&mut conn).await.unwrap();
    assert_eq!(old.status, 200);
    assert!(old.closes(), "past its age the answer is the last");
    http::closed_within(&mut conn, WITHIN).await;
    assert_eq!(server.app.shutdown.phase(), Phase::Running);
    server.shutdown();
    server.report_within(WITHIN).await;
}

/// A connection still busy a grace after its age is closed: a request
/// that would take 5 s is cut at about 300 ms + 300 ms.
#[tokio::test]
async fn a_connection_still_busy_after_its_grace_is_closed() {
    let server = aging(Duration::from_millis(300)).await;
    let mut conn = http::connect(server.addr).await;
    let started = Instant::now();
    http::send_get(&mut conn, "/api/slow?ms=5000").await;
    http::closed_within(&mut conn, WITHIN).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    server.shutdown();
    server.report_within(WITHIN).await;
}

/// An HTTP/2 connection gets GOAWAY at its age, and the client's
/// connection ends, while the server runs on.
#[tokio::test]
async fn an_h2c_connection_past_its_age_gets_goaway() {
    let server = aging(Duration::from_secs(5)).await;
    let (mut client, conn) = http2::connect(server.addr).await;
    let (pending, _) = client.send_request(http2::get("/livez"), true).unwrap();
    assert_eq!(pending.await.unwrap().status(), 200);
    let ended = tokio::time::timeout(WITHIN, conn).await;
    assert!(ended.is_ok(), "the connection ended after its GOAWAY");
    assert_eq!(server.app.shutdown.phase(), Phase::Running);
    server.shutdown();
    server.report_within(WITHIN).await;
}

/// An event stream past its age gets the last event and ends, and a
/// WebSocket gets Close 1001 "connection age": their clients reconnect,
/// through whatever balancer is in front.
#[tokio::test]
async fn streams_and_websockets_past_their_age_are_told_to_go() {
    let server = aging(Duration::from_secs(5)).await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/api/stream?interval_ms=60000").await;
    let (head, mut buf) = http::read_head(&mut conn).await;
    assert_eq!(head.status, 200);
    let last = tokio::time::timeout(WITHIN, async {
        while let Some(chunk) = http::read_chunk(&mut conn, &mut buf).await {
            if chunk.contains("event: shutdown") {
                return chunk;
            }
        }
        panic!("the stream ended without its last event");
    })
    .await
    .expect("the stream aged out");
    assert!(last.contains("retry: "), "{last}");

    let url = format!("ws://{}/api/ws", server.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("a handshake");
    let frame = tokio::time::timeout(WITHIN, async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(frame) = message {
                return frame;
            }
        }
        None
    })
    .await
    .expect("the socket aged out")
    .expect("a Close frame");
    assert_eq!(u16::from(frame.code), 1001);
    assert_eq!(frame.reason.as_str(), "connection age");
    while let Some(Ok(_)) = socket.next().await {}
    assert_eq!(server.app.shutdown.phase(), Phase::Running);
    server.shutdown();
    let report = server.report_within(WITHIN).await;
    assert_eq!(report.streams_ended, 0, "aged out, not ended by a shutdown");
}
