//! HTTP/2 (prior-knowledge h2c): graceful GOAWAY, and a forced close that
//! reaches stream tasks hyper spawns outside the connection.

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use lameduck::{Outcome, Phase};
use support::http2::{body_text, connect as h2_connect, get};
use support::{TestServer, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const STOP: Duration = Duration::from_secs(15);

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
    server.wait_for_phase(STOP, Phase::Draining).await;
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
/// open for the idle timeout, the connection ends the way HTTP/2 ends a
/// connection: GOAWAY with `NO_ERROR` and the last stream it took (here
/// stream 1), then the close. Read frame by frame, as a client that
/// answers the GOAWAY's PING (every real client does). It used to be
/// closed with no GOAWAY at all.
#[tokio::test]
async fn an_idle_h2c_connection_gets_goaway_then_is_closed_at_the_idle_timeout() {
    let config = lameduck::Config {
        idle_timeout: Duration::from_millis(600),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&h2c_start_with_get_livez()).await.unwrap();

    let mut answered_at = None;
    let mut goaways = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = read_frame(&mut tcp).await {
            match frame.kind {
                HEADERS | DATA if frame.stream == 1 && frame.flags & END_STREAM != 0 => {
                    answered_at = Some(std::time::Instant::now());
                }
                GOAWAY => goaways.push((std::time::Instant::now(), GoAway::of(&frame))),
                _ => answer_control_frame(&mut tcp, &frame, true).await,
            }
        }
    })
    .await;
    closed.expect("idle connection closed");

    let answered_at = answered_at.expect("stream 1 answered");
    let (first_at, _) = goaways.first().expect("a GOAWAY before the close");
    let idle = first_at.duration_since(answered_at);
    assert!(
        idle >= Duration::from_millis(500),
        "GOAWAY after {idle:?}, before the idle timeout"
    );
    assert!(
        goaways.iter().all(|(_, g)| g.error == 0),
        "NO_ERROR: {goaways:?}"
    );
    let (_, last) = goaways.last().unwrap();
    assert_eq!(last.last_stream, 1, "the last GOAWAY names the last stream");
    server
        .wait_until(Duration::from_secs(5), "connection gone", |app| {
            app.metrics.open_connections() == 0
        })
        .await;
    server.shutdown();
    server.report_within(STOP).await;
}

/// A client that never answers the GOAWAY's PING cannot keep an idle
/// connection: a second after the GOAWAY (`GOAWAY_GRACE`, Go's
/// `goAwayTimeout`) it is closed anyway.
#[tokio::test]
async fn an_idle_h2c_connection_that_ignores_goaway_is_closed_a_second_later() {
    let config = lameduck::Config {
        idle_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&h2c_start_with_get_livez()).await.unwrap();

    let mut goaway_at = None;
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = read_frame(&mut tcp).await {
            match frame.kind {
                GOAWAY => {
                    assert_eq!(GoAway::of(&frame).error, 0, "NO_ERROR");
                    goaway_at.get_or_insert_with(std::time::Instant::now);
                }
                _ => answer_control_frame(&mut tcp, &frame, false).await,
            }
        }
    })
    .await
    .expect("closed although the PING went unanswered");
    let waited = goaway_at.expect("a GOAWAY before the close").elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed {waited:?} after the GOAWAY"
    );
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

// ── A few raw frames, for tests that must see the wire itself ───────────

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// One frame as it came off the wire (RFC 9113 §4.1).
#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// A GOAWAY's content (RFC 9113 §6.8).
#[derive(Debug)]
struct GoAway {
    last_stream: u32,
    error: u32,
}

impl GoAway {
    fn of(frame: &Frame) -> GoAway {
        let word = |i: usize| u32::from_be_bytes(frame.payload[i..i + 4].try_into().unwrap());
        GoAway {
            last_stream: word(0) & 0x7fff_ffff,
            error: word(4),
        }
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

/// The client preface, empty SETTINGS, and `GET /livez` on stream 1. The
/// header block is HPACK by hand: `:method GET` and `:scheme http` from
/// the static table, `:path` and `:authority` as literals.
fn h2c_start_with_get_livez() -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, 6];
    block.extend(b"/livez");
    block.extend([0x01, 4]);
    block.extend(b"test");
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frame(HEADERS, END_STREAM | END_HEADERS, 1, &block));
    out
}

/// The next frame, or `None` once the server has closed (EOF or reset).
async fn read_frame(tcp: &mut TcpStream) -> Option<Frame> {
    let mut head = [0u8; 9];
    tcp.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0; len];
    tcp.read_exact(&mut payload).await.ok()?;
    Some(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff,
        payload,
    })
}

/// What a client does with the server's control frames: acknowledge its
/// SETTINGS, and answer its PINGs if `pong`. Writes may fail once the
/// server has closed; the read that follows sees the close.
async fn answer_control_frame(tcp: &mut TcpStream, frame: &Frame, pong: bool) {
    let answer = match frame.kind {
        SETTINGS if frame.flags & ACK == 0 => self::frame(SETTINGS, ACK, 0, &[]),
        PING if frame.flags & ACK == 0 && pong => self::frame(PING, ACK, 0, &frame.payload),
        _ => return,
    };
    let _ = tcp.write_all(&answer).await;
}
