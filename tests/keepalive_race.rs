//! The keep-alive race at the drain (RFC 9112 §9.5), and the lingering
//! close: no client that sends a request on a keep-alive connection as the
//! drain begins is left without an answer, and no answer is destroyed by
//! a reset.

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use lameduck::testing::http1::{Method, ResponseReader};
use lameduck::{Config, Outcome, Phase};
use support::http;
use support::{TestServer, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const STOP: Duration = Duration::from_secs(15);

/// One client that sends its next request the moment the last answer is
/// read, until an answer says `Connection: close`. `Ok`: how many complete
/// answers it got, the last one closing; `Err`: a request it wrote got no
/// complete answer.
async fn racing_client(addr: std::net::SocketAddr) -> Result<u64, String> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).unwrap();
    let mut reader = ResponseReader::new();
    for answered in 1u64.. {
        if let Err(e) = s
            .write_all(b"GET /api/items HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
        {
            return Err(format!("write of request {answered}: {e}"));
        }
        match reader.read_response(&mut s, Method::Other).await {
            Ok(Some(r)) if r.complete && r.status == 200 => {
                if r.closes() {
                    return Ok(answered);
                }
            }
            other => return Err(format!("request {answered}: {other:?}")),
        }
    }
    unreachable!()
}

/// Clients that send their next request in a tight loop while the drain
/// begins get a complete answer to every request they wrote, over repeated
/// trials: a connection used that recently is not closed under its next
/// request; its next answer carries `Connection: close` instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_racing_the_drain_get_every_answer() {
    const CLIENTS: usize = 32;
    const TRIALS: usize = 5;
    for trial in 1..=TRIALS {
        let server = TestServer::start(test_config()).await;
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| tokio::spawn(racing_client(server.addr)))
            .collect();
        // Drain while every client is mid-loop.
        let before = server.app.metrics.requests_total();
        server
            .wait_until(STOP, "clients under way", |app| {
                app.metrics.requests_total() >= before + 20 * CLIENTS as u64
            })
            .await;
        server.shutdown();
        for client in clients {
            let end = tokio::time::timeout(STOP, client)
                .await
                .expect("client ended")
                .expect("client did not panic");
            assert!(end.is_ok(), "trial {trial}: {end:?}");
        }
        let report = server.report_within(STOP).await;
        assert_eq!(report.exit_code(), 0, "trial {trial}: {report:?}");
    }
}

/// A connection used within the keep-alive grace stays open when the drain
/// begins, and its next request is answered, with `Connection: close`.
#[tokio::test]
async fn a_recently_used_connection_is_answered_with_connection_close_during_the_grace() {
    let server = TestServer::start(Config {
        keepalive_grace: Duration::from_secs(5),
        ..test_config()
    })
    .await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/livez").await;
    assert!(!http::read_response(&mut conn).await.unwrap().closes());

    server.shutdown();
    server.wait_for_phase(STOP, Phase::Draining).await;
    http::send_get(&mut conn, "/livez").await;
    let res = http::read_response(&mut conn).await.expect("an answer");
    assert_eq!(res.status, 200);
    assert!(res.closes(), "the last answer says so: {res:?}");
    http::closed_within(&mut conn, Duration::from_secs(3)).await;
    assert_eq!(server.report_within(STOP).await.outcome, Outcome::Drained);
}

/// A connection idle for longer than the grace is closed the moment the
/// drain begins, not a grace later.
#[tokio::test]
async fn a_connection_idle_longer_than_the_grace_closes_at_once() {
    let grace = Duration::from_secs(2);
    let server = TestServer::start(Config {
        keepalive_grace: grace,
        ..test_config()
    })
    .await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/livez").await;
    assert_eq!(http::read_response(&mut conn).await.unwrap().status, 200);
    tokio::time::sleep(grace + Duration::from_millis(300)).await;

    let started = std::time::Instant::now();
    server.shutdown();
    http::closed_within(&mut conn, grace / 2).await;
    let report = server.report_within(STOP).await;
    assert_eq!(report.outcome, Outcome::Drained);
    assert!(started.elapsed() < grace, "took {:?}", started.elapsed());
}

/// A connection used just now and then left idle is closed when its grace
/// ends, so the drain does not wait for the idle timeout.
#[tokio::test]
async fn a_recently_used_connection_left_idle_closes_when_its_grace_ends() {
    let server = TestServer::start(Config {
        keepalive_grace: Duration::from_millis(300),
        ..test_config()
    })
    .await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/livez").await;
    assert_eq!(http::read_response(&mut conn).await.unwrap().status, 200);
    server.shutdown();
    // The idle timeout is 60 s; the grace is what closes it.
    http::closed_within(&mut conn, Duration::from_secs(5)).await;
    assert_eq!(server.report_within(STOP).await.outcome, Outcome::Drained);
}

/// A close after a response lingers: the server reads and discards what
/// the client sent that it will never use (here, a request body nobody
/// reads), so the socket closes with nothing unread. Closed with unread
/// bytes, the kernel would send a reset instead of a FIN and throw away
/// the part of the response still waiting in its send buffer — here most
/// of it, since the client reads slowly through a small receive buffer.
#[tokio::test]
async fn a_response_is_not_cut_by_a_reset_when_the_client_sent_more() {
    let server = TestServer::start(test_config()).await;
    // `/metrics` answers at once (a few KiB) and never reads the body: most
    // of it is still unread when the server closes.
    let body = vec![b'x'; 40_000];
    let mut sent = format!(
        "GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    sent.extend(body);
    whole_response_after_the_close(&server, &sent).await;
    server.shutdown();
    server.report_within(STOP).await;
}

/// How long a close lingers for a client that never sends its FIN
/// (`LINGER_TIME` in src/conn/lingering_close.rs).
const LINGER_TIME: Duration = Duration::from_secs(1);

/// Sends `sent` through a small receive window, reads only once the
/// server has closed the connection, and asserts that the one response
/// came whole: no reset cut it. It also asserts that the race was there to
/// lose: the server lingered (its close took `LINGER_TIME`, waiting for a
/// FIN this client never sends) and, when it closed, part of the response
/// could not yet have left it, being larger than the client's window.
async fn whole_response_after_the_close(server: &TestServer, sent: &[u8]) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small window: the response cannot all be sent before the close.
    socket.set_recv_buffer_size(1024).unwrap();
    let window = socket.recv_buffer_size().unwrap() as usize;
    let connected_at = std::time::Instant::now();
    let mut conn = socket.connect(server.addr).await.unwrap();
    conn.write_all(sent).await.unwrap();
    // The server's close of its socket is the event to wait for; no
    // notifier carries it but the connection counter, which the
    // connection task bumps as it ends, after the linger.
    server
        .wait_until(STOP, "the server closed the connection", |app| {
            app.metrics.connections_closed.0.load(Relaxed) == 1
        })
        .await;
    let lingered = connected_at.elapsed();
    assert!(
        lingered >= LINGER_TIME * 9 / 10,
        "the server closed after {lingered:?}: it did not linger"
    );
    let mut got = Vec::new();
    let read = tokio::time::timeout(STOP, conn.read_to_end(&mut got)).await;
    assert!(
        got.len() > window,
        "the response ({} bytes) fitted in the client's window ({window} bytes): no race",
        got.len()
    );
    let mut reader = ResponseReader::new();
    reader.feed(&got);
    reader.end();
    let res = reader
        .next(Method::Other)
        .expect("a well-formed response")
        .expect("a whole response head");
    assert_eq!(res.status, 200);
    assert!(
        res.complete,
        "the response was cut after {} bytes of body ({read:?})",
        res.body.len()
    );
    assert!(matches!(read, Ok(Ok(_))), "the read ended with {read:?}");
}

/// A client that asked to close (`Connection: close`, no body) sends
/// nothing more, so the server does not linger for its FIN: the
/// connection is gone as soon as the response is out, while the client
/// still holds its end open. (A linger would hold it for `LINGER_TIME`,
/// 1 s.)
#[tokio::test]
async fn a_client_that_asked_to_close_is_not_waited_for() {
    let server = TestServer::start(test_config()).await;
    let mut conn = http::connect(server.addr).await;
    http::send(
        &mut conn,
        b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let got = http::closed_within(&mut conn, Duration::from_secs(5)).await;
    assert!(got.starts_with(b"HTTP/1.1 200 "), "{got:?}");
    // `conn` stays open on our side: the server must not wait for it.
    let app = server.app.clone();
    let gone = tokio::time::timeout(Duration::from_millis(700), async {
        while app.metrics.open_connections() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the server lingered for the client's FIN");
    drop(conn);
    server.shutdown();
    server.report_within(STOP).await;
}

/// The same client, but it sent more after its `Connection: close`
/// request (which it must not, RFC 9112 §9.6): the bytes are already
/// there when the server closes, so it lingers after all, and the
/// response is not cut by a reset.
#[tokio::test]
async fn a_client_that_asked_to_close_but_sent_more_still_gets_its_whole_response() {
    let server = TestServer::start(test_config()).await;
    let mut sent = b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".to_vec();
    sent.extend(std::iter::repeat_n(b'x', 40_000));
    whole_response_after_the_close(&server, &sent).await;
    server.shutdown();
    server.report_within(STOP).await;
}
