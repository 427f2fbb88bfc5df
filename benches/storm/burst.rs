//! The burst: how many simultaneous connects a fresh server absorbs at a
//! given backlog.
//!
//! `n` clients are released together (a barrier), each connects, sends
//! `GET /api/items?limit=1` and reads the answer. A connect the accept
//! loop has not taken yet waits in the listen queue; past the backlog
//! (capped by `net.core.somaxconn`) the kernel drops the handshake, and
//! that client's connect takes a retransmission: 1 s or more. This is the
//! first second of a new process after a restart with no spread, with
//! nothing else to do.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ::lameduck::testing::binary::Lameduck;
use ::lameduck::testing::http1::{Method, ResponseReader};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::Barrier;
use tokio::time::Instant;

use super::netstat::ListenCounters;
use super::report::{self, BurstRow};

/// A client's whole exchange may take this long: three SYN
/// retransmissions (1 + 2 + 4 s) and some.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(10);

const REQUEST: &[u8] =
    b"GET /api/items?limit=1 HTTP/1.1\r\nHost: burst\r\nConnection: close\r\n\r\n";

/// One burst of `n` against a fresh `bin --backlog backlog`.
pub fn row(rt: &Runtime, bin: &Path, backlog: u32, n: usize) -> BurstRow {
    let mut row = BurstRow {
        name: format!("burst_backlog{backlog}_n{n}"),
        backlog,
        connects: n,
        syn: None,
        p50_ms: 0.0,
        p99_ms: 0.0,
        max_ms: 0.0,
        over_1s: 0,
        connect_span_ms: 0.0,
        failed: 0,
        error: None,
    };
    let args = [
        "--backlog".to_string(),
        backlog.to_string(),
        "--max-connections".to_string(),
        (2 * n).to_string(),
    ];
    let server = match Lameduck::start(bin, &args, Duration::from_secs(30)) {
        Ok(server) => server,
        Err(e) => {
            row.error = Some(format!("start: {e}"));
            return row;
        }
    };
    let addr = server.addr();
    let before = ListenCounters::now();
    let results: Vec<Option<(Instant, Duration)>> = rt.block_on(async {
        let barrier = Arc::new(Barrier::new(n));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let began = Instant::now();
                    let exchange = async {
                        let mut stream = TcpStream::connect(addr).await.ok()?;
                        stream.write_all(REQUEST).await.ok()?;
                        let mut reader = ResponseReader::new();
                        let res = reader
                            .read_summary(&mut stream, Method::Other)
                            .await
                            .ok()??;
                        (res.status == 200).then_some(())
                    };
                    match tokio::time::timeout(EXCHANGE_LIMIT, exchange).await {
                        Ok(Some(())) => Some((began, began.elapsed())),
                        _ => None,
                    }
                })
            })
            .collect();
        let mut results = Vec::with_capacity(n);
        for task in tasks {
            results.push(task.await.ok().flatten());
        }
        results
    });
    row.syn = ListenCounters::now()
        .zip(before)
        .map(|(after, before)| after.since(&before));
    let mut times: Vec<Duration> = results.iter().flatten().map(|(_, t)| *t).collect();
    row.failed = (n - times.len()) as u64;
    times.sort();
    if !times.is_empty() {
        let pick = |q: f64| report::ms(times[((times.len() - 1) as f64 * q).round() as usize]);
        row.p50_ms = pick(0.5);
        row.p99_ms = pick(0.99);
        row.max_ms = report::ms(*times.last().unwrap());
        row.over_1s = times
            .iter()
            .filter(|&&t| t >= Duration::from_secs(1))
            .count();
        let starts: Vec<Instant> = results.iter().flatten().map(|(s, _)| *s).collect();
        let (first, last) = (starts.iter().min().unwrap(), starts.iter().max().unwrap());
        row.connect_span_ms = report::ms(*last - *first);
    }
    if let Err(e) = server.terminate(Duration::from_secs(30)) {
        row.error = Some(format!("stop: {e}"));
    }
    row
}
