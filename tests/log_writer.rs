//! Logs never block serving: a server whose stderr is a pipe that nobody
//! reads (a stalled log collector) keeps answering with `--access-log`,
//! counts the lines it had to drop, and still exits at once on SIGTERM.
//!
//! These tests start the binary by hand rather than through the tests'
//! `Binary`, because that one reads stderr all the time, and here the point
//! is that nobody does.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use lameduck::testing::binary::Lameduck;
use support::binary::program;
use support::http;

/// The requests each test sends: more access lines than the pipe (64 KiB)
/// and the log queue (`QUEUED_LINES`) hold together.
const REQUESTS: usize = 10_000;

/// Keep-alive connections the requests are spread over.
const CONNECTIONS: usize = 4;

/// How long one request may take. A served request takes a millisecond;
/// one stuck behind a blocked log write would never be answered.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// The exit after SIGTERM, with nothing in flight: the drain ends at once,
/// then the log gets its `EXIT_LOG_WAIT` (0.5 s). Generous for a noisy
/// machine, and far below "never", which is what a blocked write gives.
const EXIT_LIMIT: Duration = Duration::from_secs(5);

/// A `lameduck` whose stderr is a pipe: read until `listening on`, then
/// left alone (the reader is returned, unread).
struct Unread {
    child: Child,
    /// Taken by a test that starts reading again.
    stderr: Option<BufReader<ChildStderr>>,
    addr: SocketAddr,
}

impl Unread {
    fn start() -> Unread {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut command: Command = Lameduck::command(program(), loopback, &["--access-log"]);
        command.stderr(Stdio::piped()).stdout(Stdio::null());
        let mut child = command.spawn().expect("start lameduck");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut line = String::new();
        let addr = loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).expect("read stderr") > 0,
                "lameduck exited before listening"
            );
            if let Some(at) = line.find("listening on ") {
                let rest = &line[at + "listening on ".len()..];
                let addr = rest.split_whitespace().next().expect("an address");
                break addr.trim_matches('"').parse().expect("a socket address");
            }
        };
        Unread {
            child,
            stderr: Some(stderr),
            addr,
        }
    }

    fn sigterm(&self) {
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill");
    }

    /// The exit code, waited for up to `within`; how long it took.
    fn exit_within(&mut self, within: Duration) -> (i32, Duration) {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status.code().expect("an exit code"), start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("lameduck did not exit within {within:?} of SIGTERM");
    }
}

impl Drop for Unread {
    fn drop(&mut self) {
        // Only if a step failed: the process is ours, ended by its PID.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends `REQUESTS` `GET /healthz` over `CONNECTIONS` keep-alive
/// connections; returns how many got a 200.
async fn answered(addr: SocketAddr) -> usize {
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        clients.spawn(async move {
            let mut conn = http::connect(addr).await;
            let mut ok = 0;
            for _ in 0..REQUESTS / CONNECTIONS {
                http::send_get(&mut conn, "/healthz").await;
                match tokio::time::timeout(REQUEST_LIMIT, http::read_response(&mut conn)).await {
                    Ok(Some(res)) if res.status == 200 => ok += 1,
                    Ok(other) => panic!("request not answered with 200: {other:?}"),
                    Err(_) => panic!("no answer within {REQUEST_LIMIT:?} after {ok} requests"),
                }
            }
            ok
        });
    }
    clients.join_all().await.into_iter().sum()
}

/// `lameduck_log_lines_dropped_total` from `/metrics`.
async fn dropped_in_metrics(addr: SocketAddr) -> u64 {
    let res = tokio::time::timeout(REQUEST_LIMIT, http::get(addr, "/metrics"))
        .await
        .expect("/metrics answered");
    assert_eq!(res.status, 200);
    let text = String::from_utf8(res.body).expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix("lameduck_log_lines_dropped_total "))
        .unwrap_or_else(|| panic!("no lameduck_log_lines_dropped_total in {text}"))
        .trim()
        .parse()
        .expect("a count")
}

/// A server whose stderr nobody reads, after `REQUESTS` requests, all
/// answered; and the lines it says it dropped (more than none).
async fn served_into_a_stalled_pipe() -> (Unread, u64) {
    let bin = Unread::start();
    assert_eq!(answered(bin.addr).await, REQUESTS);
    let dropped = dropped_in_metrics(bin.addr).await;
    assert!(
        dropped > 0,
        "{REQUESTS} access lines into a stalled pipe, none dropped"
    );
    (bin, dropped)
}

/// Nobody ever reads the pipe: every request is answered, the drops are
/// counted, and SIGTERM still exits 0 at once (the report is lost to the
/// stalled pipe, which the exit waits for only briefly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_nobody_reads_does_not_stop_serving_or_the_exit() {
    let (mut bin, dropped) = served_into_a_stalled_pipe().await;

    bin.sigterm();
    let (code, took) = bin.exit_within(EXIT_LIMIT);
    assert_eq!(code, 0, "a drain with nothing in flight");
    eprintln!("{dropped} lines dropped; exit {took:?} after SIGTERM");
}

/// The reader comes back after SIGTERM: the shutdown report, held aside
/// while the queue was full, arrives last, with the count of lines dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_survives_a_full_queue_and_counts_the_dropped_lines() {
    let (mut bin, dropped) = served_into_a_stalled_pipe().await;

    bin.sigterm();
    let mut stderr = bin.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).expect("read stderr");
        text
    });
    let (code, _) = bin.exit_within(EXIT_LIMIT);
    assert_eq!(code, 0);
    let text = reader.join().expect("reader");
    let report = text
        .lines()
        .find(|l| l.contains("shutdown report"))
        .unwrap_or_else(|| panic!("no shutdown report in {} lines", text.lines().count()));
    let reported: u64 = lameduck::testing::process::field(report, "log_lines_dropped")
        .expect("log_lines_dropped in the report")
        .parse()
        .expect("a count");
    assert!(
        reported >= dropped,
        "report {reported} < metrics {dropped}: {report}"
    );
    assert_eq!(
        text.lines().last().map(|l| l.contains("shutdown report")),
        Some(true),
        "the report is the last line"
    );
}
