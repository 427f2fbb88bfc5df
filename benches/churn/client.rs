//! The load client: raw `TcpStream`s and just enough HTTP/1.1 framing.
//!
//! A client library would add its own pooling and parsing cost to every
//! figure; this one writes a fixed request and reads the answer with
//! lameduck's own response reader, one per worker, whose buffer is reused
//! for every request: to the end of the framed response (keep-alive) or to
//! EOF (churn). Every socket operation has a timeout, so a misbehaving
//! server fails the run instead of hanging.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use lameduck::testing::http1::{Method, ResponseReader, Summary};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// One request per connection: the server answers and closes.
const GET_CLOSE: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
/// A request on a connection that stays open.
const GET_KEEP: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// No single connect, write or read may take longer than this.
const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// A run stops early once this many requests have failed.
const MAX_ERRORS: u64 = 100;

/// When a load run stops.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// At this moment (requests in flight finish).
    Deadline(Instant),
    /// After this many requests in all.
    Count(u64),
}

/// What one load run did.
#[derive(Debug, Default)]
pub struct LoadRun {
    /// Requests answered with 200.
    pub ok: u64,
    /// Requests that failed (connect error, timeout, non-200, early EOF).
    pub errors: u64,
    /// From the first connect to the last answer.
    pub wall: Duration,
    /// Per-request latency in µs (empty unless asked for).
    pub latencies_us: Vec<u32>,
}

/// How the load uses connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// connect → `GET /healthz` with `Connection: close` → read to EOF →
    /// close, again and again.
    Churn,
    /// One connection per worker, requests one after another on it.
    KeepAlive,
}

/// Runs `concurrency` workers against `addr` until `until`.
pub async fn load(
    addr: SocketAddr,
    mode: Mode,
    concurrency: usize,
    until: Until,
    record_latency: bool,
) -> LoadRun {
    let tickets = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (tickets, errors) = (tickets.clone(), errors.clone());
            tokio::spawn(worker(addr, mode, until, tickets, errors, record_latency))
        })
        .collect();
    let mut run = LoadRun::default();
    for w in workers {
        let (ok, lat) = w.await.expect("client worker panicked");
        run.ok += ok;
        run.latencies_us.extend(lat);
    }
    run.wall = start.elapsed();
    run.errors = errors.load(Relaxed);
    run
}

async fn worker(
    addr: SocketAddr,
    mode: Mode,
    until: Until,
    tickets: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    record_latency: bool,
) -> (u64, Vec<u32>) {
    let mut latencies = Vec::new();
    let mut ok = 0;
    let mut reader = ResponseReader::new();
    let mut conn: Option<TcpStream> = None;
    loop {
        let go_on = match until {
            Until::Deadline(at) => Instant::now() < at,
            Until::Count(n) => tickets.fetch_add(1, Relaxed) < n,
        };
        if !go_on || errors.load(Relaxed) >= MAX_ERRORS {
            break;
        }
        let t = Instant::now();
        let res = match mode {
            Mode::Churn => one_shot(addr, &mut reader).await,
            Mode::KeepAlive => keep_alive_request(addr, &mut conn, &mut reader).await,
        };
        match res {
            Ok(200) => {
                ok += 1;
                if record_latency {
                    latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
            }
            _ => {
                errors.fetch_add(1, Relaxed);
                conn = None;
            }
        }
    }
    (ok, latencies)
}

/// A fresh connection, one request, read to EOF. Returns the status.
async fn one_shot(addr: SocketAddr, reader: &mut ResponseReader) -> io::Result<u16> {
    let mut s = timed(TcpStream::connect(addr)).await?;
    s.set_nodelay(true)?;
    timed(s.write_all(GET_CLOSE)).await?;
    reader.reset();
    while timed(reader.fill_from(&mut s)).await? > 0 {}
    status(
        reader
            .next_summary(Method::Other)
            .map_err(io::Error::other)?,
    )
}

/// One request on the worker's keep-alive connection (opened if needed).
async fn keep_alive_request(
    addr: SocketAddr,
    conn: &mut Option<TcpStream>,
    reader: &mut ResponseReader,
) -> io::Result<u16> {
    if conn.is_none() {
        let s = timed(TcpStream::connect(addr)).await?;
        s.set_nodelay(true)?;
        *conn = Some(s);
        reader.reset();
    }
    let s = conn.as_mut().expect("just opened");
    timed(s.write_all(GET_KEEP)).await?;
    read_response(s, reader).await
}

/// Reads one response to its end; returns its status.
pub async fn read_response(s: &mut TcpStream, reader: &mut ResponseReader) -> io::Result<u16> {
    status(timed(reader.read_summary(s, Method::Other)).await?)
}

/// Opens `n` connections, sends one keep-alive request on each, reads the
/// answer, and hands the sockets back as std sockets deregistered from the
/// client runtime, so that holding them costs the client nothing but a
/// descriptor (and adds nothing to the RSS the bench measures). `out`
/// should already have capacity for `n`.
pub async fn open_idle(
    addr: SocketAddr,
    n: usize,
    concurrency: usize,
    out: &mut Vec<std::net::TcpStream>,
) -> io::Result<()> {
    let tickets = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let tickets = tickets.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut reader = ResponseReader::new();
                while tickets.fetch_add(1, Relaxed) < n as u64 {
                    let mut s = timed(TcpStream::connect(addr)).await?;
                    timed(s.write_all(GET_KEEP)).await?;
                    reader.reset();
                    let code = read_response(&mut s, &mut reader).await?;
                    if code != 200 {
                        return Err(io::Error::other(format!("status {code}")));
                    }
                    mine.push(s.into_std()?);
                }
                Ok::<_, io::Error>(mine)
            })
        })
        .collect();
    for w in workers {
        out.extend(w.await.expect("client worker panicked")?);
    }
    Ok(())
}

/// How many of `conns` the server has closed (a read returns EOF within
/// `wait`). Blocking; run it off the runtime.
pub fn count_closed(conns: &[std::net::TcpStream], wait: Duration) -> usize {
    use std::io::Read;
    let deadline = Instant::now() + wait;
    conns
        .iter()
        .filter(|c| {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut byte = [0u8; 1];
            c.set_nonblocking(false).is_ok()
                && c.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                    .is_ok()
                && matches!((&mut &**c).read(&mut byte), Ok(0))
        })
        .count()
}

async fn timed<T>(fut: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    timeout(OP_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// The status of a whole HTTP/1.1 response; anything else is an error.
fn status(response: Option<Summary>) -> io::Result<u16> {
    match response {
        Some(r) if r.complete && r.minor_version == 1 => Ok(r.status),
        Some(r) if r.complete => Err(io::Error::other("no HTTP/1.1 status line")),
        _ => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}
