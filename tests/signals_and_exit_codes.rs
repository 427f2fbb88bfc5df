//! The real binary with real signals: the signal path, the log lines and
//! the exit codes.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::binary::Binary;
use support::http;

const EXIT: Duration = Duration::from_secs(20);

/// SIGTERM with a request in flight: the request completes, the report is
/// logged, and the exit code is 0.
#[tokio::test]
async fn sigterm_drains_in_flight_work_and_exits_0() {
    let mut bin = Binary::start(&[]);
    let mut conn = http::connect(bin.addr).await;
    http::send_get(&mut conn, "/api/slow?ms=700").await;
    // The handler counts itself in flight before it awaits the work.
    wait_for_in_flight(bin.addr).await;

    bin.signal(libc::SIGTERM);
    let res = http::read_response(&mut conn)
        .await
        .expect("answered, not reset");
    assert_eq!((res.status, res.closes()), (200, true));
    assert_eq!(bin.exit_code_within(EXIT), 0);
    let report = bin.wait_for_log("shutdown report", EXIT);
    assert!(report.contains("outcome=\"drained\""), "{report}");
    // The slow request was answered during the drain. (How many
    // connections the drain counts can include the last `/metrics`
    // connection, if its task had not quite ended when the signal came.)
    assert!(report.contains("requests_during_drain=1"), "{report}");
    assert!(report.contains("conns_aborted=0"), "{report}");
    assert!(bin.logs().iter().any(|l| l.contains("signal=\"SIGTERM\"")));
}

/// SIGINT (Ctrl-C) starts the same graceful shutdown.
#[tokio::test]
async fn sigint_also_shuts_down_gracefully() {
    let mut bin = Binary::start(&[]);
    assert_eq!(http::get(bin.addr, "/healthz").await.status, 200);
    bin.signal(libc::SIGINT);
    assert_eq!(bin.exit_code_within(EXIT), 0);
    assert!(bin.logs().iter().any(|l| l.contains("signal=\"SIGINT\"")));
}

/// During `--drain-delay` the binary fails its health check but serves.
#[tokio::test]
async fn the_health_check_fails_during_the_drain_delay() {
    let mut bin = Binary::start(&["--drain-delay", "3s"]);
    bin.signal(libc::SIGTERM);
    bin.wait_for_log("phase=\"lame_duck\"", EXIT);
    let health = http::get(bin.addr, "/healthz").await;
    assert_eq!(
        (health.status, health.text().as_str()),
        (503, "shutting down\n")
    );
    assert_eq!(http::get(bin.addr, "/api/items").await.status, 200);
    assert_eq!(bin.exit_code_within(EXIT), 0);
}

/// A second signal during the drain forces the close at once: exit code 1,
/// long before the 15 s deadline.
#[tokio::test]
async fn a_second_signal_exits_promptly_with_code_1() {
    let mut bin = Binary::start(&[]);
    let mut conn = http::connect(bin.addr).await;
    http::send_get(&mut conn, "/api/slow?ms=60000").await;
    wait_for_in_flight(bin.addr).await;

    bin.signal(libc::SIGTERM);
    bin.wait_for_log("phase=\"draining\"", EXIT);
    let second = Instant::now();
    bin.signal(libc::SIGTERM);
    assert_eq!(bin.exit_code_within(EXIT), 1);
    assert!(
        second.elapsed() < Duration::from_secs(3),
        "took {:?}",
        second.elapsed()
    );
    assert!(
        bin.wait_for_log("shutdown report", EXIT)
            .contains("outcome=\"forced_by_signal\"")
    );
}

/// The deadline: a stuck request is answered 503 and the exit code is 1.
#[tokio::test]
async fn the_deadline_forces_the_close_with_code_1() {
    let mut bin = Binary::start(&["--shutdown-timeout", "500ms"]);
    let mut conn = http::connect(bin.addr).await;
    http::send_get(&mut conn, "/api/slow?ms=60000").await;
    wait_for_in_flight(bin.addr).await;

    let signalled = Instant::now();
    bin.signal(libc::SIGTERM);
    let res = http::read_response(&mut conn)
        .await
        .expect("a 503, not a reset");
    assert_eq!(res.status, 503);
    assert_eq!(bin.exit_code_within(EXIT), 1);
    assert!(signalled.elapsed() < Duration::from_secs(10));
    assert!(
        bin.wait_for_log("shutdown report", EXIT)
            .contains("outcome=\"forced_by_deadline\"")
    );
}

/// The deadline is the deadline: a client that reads its 503 and keeps
/// its socket open does not hold the exit for its FIN (which would be the
/// lingering close's second) or for `--force-grace`. Once the peer has
/// acknowledged the 503, the connection closes and the process exits.
#[tokio::test]
async fn the_exit_follows_the_acknowledged_503_not_the_force_grace() {
    let mut bin = Binary::start(&["--shutdown-timeout", "1s", "--force-grace", "5s"]);
    let mut conn = http::connect(bin.addr).await;
    http::send_get(&mut conn, "/api/slow?ms=60000").await;
    wait_for_in_flight(bin.addr).await;

    bin.signal(libc::SIGTERM);
    let res = http::read_response(&mut conn)
        .await
        .expect("a 503, not a reset");
    let answered = Instant::now();
    assert_eq!((res.status, res.closes()), (503, true));
    // `conn` stays open, unread and unclosed, until the end of the test.
    exits_1_soon_after(&mut bin, answered);
    drop(conn);
}

/// The same over HTTP/2: a stuck stream's client answers the GOAWAY's
/// PING, reads its 503 and keeps its socket open. The close waits only for the
/// acknowledgement of those last frames, so the exit follows the 503, as
/// on HTTP/1.
#[tokio::test]
async fn the_exit_follows_the_acknowledged_503_over_http2_too() {
    use support::h2_raw::{self, RawH2};
    let mut bin = Binary::start(&["--shutdown-timeout", "1s", "--force-grace", "5s"]);
    let mut conn = RawH2::connect(bin.addr, &[]).await;
    let mut ask = h2_raw::frame(h2_raw::SETTINGS, h2_raw::ACK, 0, &[]);
    ask.extend(h2_raw::get(1, "/api/slow?ms=60000"));
    conn.send(&ask).await;
    wait_for_in_flight(bin.addr).await;

    bin.signal(libc::SIGTERM);
    // Stream 1's answer, to its last frame.
    let mut status_seen = false;
    loop {
        let f = conn
            .next_frame(EXIT)
            .await
            .expect("the 503, not the end of the connection");
        if f.kind == h2_raw::PING && f.flags & h2_raw::ACK == 0 {
            // The GOAWAY's PING: a client answers it (hyper closes a
            // round trip after it, once it knows the last stream).
            conn.send(&h2_raw::frame(h2_raw::PING, h2_raw::ACK, 0, &f.payload))
                .await;
        }
        if f.stream != 1 {
            continue;
        }
        status_seen |= f.kind == h2_raw::HEADERS;
        if f.flags & h2_raw::END_STREAM != 0 {
            break;
        }
    }
    let answered = Instant::now();
    assert!(status_seen);
    let metrics_503 = bin.wait_for_log("shutdown report", EXIT);
    assert!(
        metrics_503.contains("refused_at_deadline=1"),
        "{metrics_503}"
    );
    // `conn` stays open, unread and unclosed, until the end of the test.
    exits_1_soon_after(&mut bin, answered);
    drop(conn);
}

/// A peer that stopped reading never acknowledges its 503: then
/// `--force-grace` is the bound, and the exit comes at the deadline plus
/// the grace (not a lingering close's second after the 503, not never).
/// The client's receive window is shut by a first answer it never reads,
/// so the 503 after it stays in the server's send queue.
#[tokio::test]
async fn a_peer_that_stopped_reading_holds_the_exit_for_the_force_grace_only() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut bin = Binary::start(&["--shutdown-timeout", "1s", "--force-grace", "3s"]);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // The kernel's smallest receive buffer: a few KiB fill it.
    socket.set_recv_buffer_size(1024).unwrap();
    let mut stuck = socket.connect(bin.addr).await.unwrap();
    stuck
        .write_all(
            b"GET /api/download?bytes=60000&seed=1 HTTP/1.1\r\nHost: t\r\n\r\n\
              GET /api/slow?ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await
        .unwrap();
    wait_for_in_flight(bin.addr).await;

    let signalled = Instant::now();
    bin.signal(libc::SIGTERM);
    assert_eq!(bin.exit_code_within(EXIT), 1);
    let took = signalled.elapsed();
    // The deadline (1 s) plus the grace (3 s), with room below for the
    // timers' rounding; far above a second after the deadline.
    assert!(
        took >= Duration::from_millis(3_800),
        "exit {took:?} after SIGTERM, before the grace ended"
    );
    let report = bin.wait_for_log("shutdown report", EXIT);
    assert!(report.contains("conns_aborted=1"), "{report}");
    // The abort closed the socket with nothing unread, so no reset: the
    // kernel still delivers what was queued. The peer reads again and
    // gets both answers, the 503 last.
    let mut got = Vec::new();
    tokio::time::timeout(EXIT, stuck.read_to_end(&mut got))
        .await
        .expect("the queued answers arrive")
        .expect("no reset");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{}", &text[..80]);
    assert!(
        text.contains("HTTP/1.1 503 Service Unavailable"),
        "{} bytes, no 503",
        got.len()
    );
}

/// Start-up errors exit 2 with one line on stderr: a bad flag, and an
/// address already in use.
#[test]
fn startup_errors_exit_2_with_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_lameduck"))
        .args(["--shutdown-timeout", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("lameduck: invalid value 'soon' for '--shutdown-timeout"),
        "{stderr}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_lameduck"))
        .args(["--addr", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("lameduck: cannot listen on") && last.contains("in use"),
        "{stderr}"
    );
}

/// Flags can come from `LAMEDUCK_*` environment variables, and `--help`
/// names the Go setting each one stands for.
#[tokio::test]
async fn flags_come_from_the_environment_and_help_names_the_go_settings() {
    let help = Command::new(env!("CARGO_BIN_EXE_lameduck"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for go in [
        "ReadHeaderTimeout",
        "IdleTimeout",
        "WriteTimeout",
        "Server.Shutdown",
        "LAMEDUCK_DRAIN_DELAY",
    ] {
        assert!(help.contains(go), "--help does not mention {go}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_lameduck"))
        .env("LAMEDUCK_IDLE_TIMEOUT", "forever")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad env value is a bad flag");
}

/// The exit, with code 1 (the deadline forced it), comes within 0.3 s of
/// `answered`, when the client read its 503.
fn exits_1_soon_after(bin: &mut Binary, answered: Instant) {
    assert_eq!(bin.exit_code_within(EXIT), 1);
    let after = answered.elapsed();
    assert!(
        after < Duration::from_millis(300),
        "exit {after:?} after the 503; logs: {:#?}",
        bin.logs()
    );
}

async fn wait_for_in_flight(addr: std::net::SocketAddr) {
    support::eventually_async(
        Duration::from_secs(10),
        "a request in flight",
        || async move {
            http::get(addr, "/metrics")
                .await
                .text()
                .lines()
                .any(|l| l == "lameduck_requests_in_flight 1")
        },
    )
    .await;
}
