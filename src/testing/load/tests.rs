//! The record's arithmetic, and the client against tiny servers that close
//! at chosen moments.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::record::{Event, WorkerLog};
use super::{Load, Plan, Record, Verdict};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A record of one worker whose requests ended at `events` (ms, verdict),
/// over a run of `length_ms`.
fn record(events: &[(u64, Verdict)], length_ms: u64) -> Record {
    let started = Instant::now();
    let log = WorkerLog {
        events: events
            .iter()
            .map(|&(at, verdict)| Event {
                at: ms(at),
                verdict,
            })
            .collect(),
        acked: Vec::new(),
    };
    Record::new(started, started + ms(length_ms), vec![log])
}

/// The longest gap is measured whole between neighbouring successes, even
/// where it reaches outside the window; failures in between do not split
/// it.
#[test]
fn gap_spans_failures_and_reaches_outside_the_window() {
    let r = record(
        &[
            (10, Verdict::Ok),
            (20, Verdict::Ok),
            (25, Verdict::Refused),
            (60, Verdict::Ok),
            (62, Verdict::Ok),
        ],
        70,
    );
    let total = r.total();
    assert_eq!((total.ok, total.refused, total.failed()), (4, 1, 1));
    assert_eq!(total.longest_gap, ms(40));
    let w = r.window(r.started + ms(30), r.started + ms(35));
    assert_eq!((w.ok, w.failed()), (0, 0));
    assert_eq!(w.longest_gap, ms(40));
    // After the gap: only the small ones and the tail to the end.
    let w = r.window(r.started + ms(61), r.started + ms(70));
    assert_eq!(w.longest_gap, ms(8));
}

/// A server that never answers again shows as a gap to the end of the
/// run; the start of the run is not a gap.
#[test]
fn gap_runs_to_the_end_but_not_from_the_start() {
    let r = record(&[(30, Verdict::Ok), (31, Verdict::Ok)], 100);
    assert_eq!(r.total().longest_gap, ms(69));
    let slices = r.slices(ms(50));
    assert_eq!(slices.len(), 2);
    assert_eq!((slices[0].ok, slices[1].ok), (2, 0));
}

/// A kept-alive connection the server closed while the client was not
/// looking is reopened before the next request, and that request
/// succeeds: the close is seen by the check before reuse, not counted.
#[tokio::test]
async fn a_connection_closed_between_requests_is_reopened_not_counted() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = Client::new(addr, Duration::from_secs(5));
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let (first, _) = tokio::join!(client.request(request), answer_once_and_close(&listener));
    assert_eq!(first.verdict, Verdict::Ok);
    // The server has closed (its task returned after the close); on
    // loopback the FIN is in the client's socket by now.
    let (second, _) = tokio::join!(client.request(request), answer_once_and_close(&listener));
    assert_eq!(second.verdict, Verdict::Ok);
}

/// Accepts one connection, answers one request keep-alive, then closes it.
async fn answer_once_and_close(listener: &TcpListener) {
    let (mut s, _) = listener.accept().await.unwrap();
    let mut buf = [0u8; 1024];
    let _ = s.read(&mut buf).await.unwrap();
    s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]")
        .await
        .unwrap();
}

/// A server that closes as the request arrives, with nothing answered,
/// breaks that request: written, then no response.
#[tokio::test]
async fn a_close_that_crosses_the_request_is_a_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await.unwrap();
        // Read, then close without answering: a clean FIN after the
        // request.
        s.shutdown().await.unwrap();
        drop(s);
    });
    let mut client = Client::new(addr, Duration::from_secs(5));
    let exchange = client.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        matches!(exchange.verdict, Verdict::Broken | Verdict::Reset),
        "{:?}",
        exchange.verdict
    );
    server.await.unwrap();
}

/// Nothing listening: every request is refused, and the run stops by
/// itself at its deadline with the pause between tries respected.
#[tokio::test]
async fn a_closed_port_is_refused_until_the_deadline() {
    // Bind then drop: a loopback port with nothing on it.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut plan = Plan::new(addr, Load::KeepAlive, 2);
    plan.run_for = ms(200);
    plan.retry_pause = ms(20);
    let record = super::run(&plan, CancellationToken::new()).await;
    let total = record.total();
    assert_eq!(total.ok, 0);
    assert_eq!(total.failed(), total.refused);
    // Two workers, one try per 20 ms for 200 ms: about 20, never hundreds.
    assert!((2..=30).contains(&total.refused), "{total:?}");
}
