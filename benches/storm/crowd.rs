//! The crowd: thousands of long-lived clients of three kinds, each of
//! which reconnects at once when the server tells it to go, and notes
//! when it was told and when its new connection answered.
//!
//! | kind | what it does | its goodbye |
//! |---|---|---|
//! | keep-alive | `GET /api/items?limit=1` every second or so on one connection | `Connection: close` on a response, or the server's FIN while idle |
//! | event stream | `GET /api/stream`, resuming with `Last-Event-ID` | the `shutdown` event, or the end of the stream |
//! | WebSocket | follows the hub (`/api/ws?after=ID`) | the Close frame |
//!
//! Every client reconnects the moment it sees its goodbye, ignoring the
//! `retry:` hint and any backoff: the harshest crowd, the one a spread
//! must absorb. A reconnect ([`Reconnect`]) is timed from the goodbye to
//! the first answer on the new connection (the response, the stream's
//! head, the `101`), so a connect whose SYN was dropped shows as a second
//! or more.
//!
//! What can go wrong is counted by class, as in the restart bench: a
//! connect refused, a request reset or broken (written, and no answer), an
//! answer outside `2xx`, a step that timed out; and, for what the streams
//! and the hub carry, events and items lost or seen twice.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::lameduck::testing::http1::{Method, ResponseReader, next_chunk};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// How long one step (a connect, a request's answer, a handshake) may
/// take before it counts as timed out. Longer than two SYN
/// retransmissions (1 s, then 2 s more), so a dropped SYN shows as a slow
/// reconnect, not a failure.
const STEP: Duration = Duration::from_secs(10);

/// A keep-alive client's pace: one request every this long, give or take
/// a fifth, each client at its own phase.
const PACE: Duration = Duration::from_secs(1);

/// An event stream's pace: one event every this long. The crowd's steady
/// load (a request per keep-alive client per second, an event per stream
/// per pace, every item to every hub client) must leave the two cores room
/// for the restart it is there to measure.
const EVENT_EVERY: Duration = Duration::from_secs(5);

/// After a failed step, the wait before trying again: long enough not to
/// spin on a refused port, short enough to count in a reconnect's time.
const RETRY: Duration = Duration::from_millis(20);

/// The clients' start: this many connect per second, so that the start
/// itself is no storm.
const RAMP_PER_SEC: usize = 2_500;

/// How many clients of each kind.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Mix {
    pub keepalive: usize,
    pub streams: usize,
    pub sockets: usize,
}

impl Mix {
    /// `n` clients, a third of each kind (the keep-alive ones take the
    /// remainder).
    pub fn thirds(n: usize) -> Mix {
        let streams = n / 3;
        let sockets = n / 3;
        Mix {
            keepalive: n - streams - sockets,
            streams,
            sockets,
        }
    }

    pub fn total(&self) -> usize {
        self.keepalive + self.streams + self.sockets
    }
}

/// The three kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    KeepAlive,
    Stream,
    Socket,
}

/// One reconnect, timed.
#[derive(Debug, Clone, Copy)]
pub struct Reconnect {
    pub kind: Kind,
    /// When the client saw its goodbye.
    pub goodbye: Instant,
    /// When it began to connect again (at once, unless the first try
    /// failed; then the try that succeeded).
    pub connect: Instant,
    /// When the new connection's first answer arrived.
    pub answered: Instant,
}

impl Reconnect {
    /// From the goodbye to the new connection's first answer.
    pub fn latency(&self) -> Duration {
        self.answered - self.goodbye
    }
}

/// What went wrong, by class, over the whole crowd.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Failures {
    pub refused: u64,
    pub reset: u64,
    pub broken: u64,
    pub non_2xx: u64,
    pub timeout: u64,
    /// Events and items the streams and the hub clients did not get, and
    /// got twice.
    pub lost: u64,
    pub duplicated: u64,
    /// The failed requests again, by the kind of client that met them.
    pub keepalive: u64,
    pub streams: u64,
    pub sockets: u64,
}

impl Failures {
    /// Failed requests of every class (not the lost messages).
    pub fn requests(&self) -> u64 {
        self.refused + self.reset + self.broken + self.non_2xx + self.timeout
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Failures) -> Failures {
        Failures {
            refused: self.refused - earlier.refused,
            reset: self.reset - earlier.reset,
            broken: self.broken - earlier.broken,
            non_2xx: self.non_2xx - earlier.non_2xx,
            timeout: self.timeout - earlier.timeout,
            lost: self.lost - earlier.lost,
            duplicated: self.duplicated - earlier.duplicated,
            keepalive: self.keepalive - earlier.keepalive,
            streams: self.streams - earlier.streams,
            sockets: self.sockets - earlier.sockets,
        }
    }
}

/// The counters every client writes to.
#[derive(Default)]
struct Shared {
    /// Clients whose connection is open and has answered.
    connected: AtomicUsize,
    reconnects: Mutex<Vec<Reconnect>>,
    refused: AtomicU64,
    reset: AtomicU64,
    broken: AtomicU64,
    non_2xx: AtomicU64,
    timeout: AtomicU64,
    lost: AtomicU64,
    duplicated: AtomicU64,
    /// Failures by kind, in [`Kind`]'s order.
    by_kind: [AtomicU64; 3],
}

/// How a step failed.
enum Failed {
    Refused,
    Reset,
    Broken,
    Non2xx,
    Timeout,
}

impl Shared {
    fn count(&self, kind: Kind, failed: Failed) {
        self.by_kind[kind as usize].fetch_add(1, Relaxed);
        let counter = match failed {
            Failed::Refused => &self.refused,
            Failed::Reset => &self.reset,
            Failed::Broken => &self.broken,
            Failed::Non2xx => &self.non_2xx,
            Failed::Timeout => &self.timeout,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// A connection answered: the client is connected, and if it was told
    /// to go before (`goodbye`), that reconnect is done.
    fn answered(&self, kind: Kind, goodbye: &mut Option<Instant>, connect: Instant) {
        self.connected.fetch_add(1, Relaxed);
        if let Some(goodbye) = goodbye.take() {
            let answered = Instant::now();
            self.reconnects.lock().unwrap().push(Reconnect {
                kind,
                goodbye,
                connect,
                answered,
            });
        }
    }

    /// The connection that had answered has ended.
    fn left(&self) {
        self.connected.fetch_sub(1, Relaxed);
    }
}

/// A running crowd. Stop it with [`Crowd::stop`].
pub struct Crowd {
    shared: Arc<Shared>,
    stop: CancellationToken,
    sockets: Vec<JoinHandle<Hub>>,
    others: Vec<JoinHandle<()>>,
    pub mix: Mix,
}

/// What one hub client saw, for the lost-item count at the end.
#[derive(Debug, Default, Clone, Copy)]
pub struct Hub {
    /// The id it started after.
    pub first_after: u64,
    /// Items it got whose id was above the last it had.
    pub new: u64,
}

impl Crowd {
    /// Starts `mix` clients against `addr` on `rt`, ramping up at
    /// [`RAMP_PER_SEC`]; the hub clients start after item `after`.
    pub fn start(rt: &Runtime, addr: SocketAddr, mix: Mix, after: u64) -> Crowd {
        let shared = Arc::new(Shared::default());
        let stop = CancellationToken::new();
        let mut crowd = Crowd {
            shared,
            stop,
            sockets: Vec::new(),
            others: Vec::new(),
            mix,
        };
        // Interleaved, so that every kind is spread over the ramp.
        let order = interleave(mix);
        let started = std::time::Instant::now();
        for (i, kind) in order.into_iter().enumerate() {
            let (shared, stop) = (crowd.shared.clone(), crowd.stop.clone());
            match kind {
                Kind::KeepAlive => {
                    let phase = PACE.mul_f64(unit(i as u64));
                    crowd
                        .others
                        .push(rt.spawn(keepalive(addr, shared, stop, phase, i as u64)));
                }
                Kind::Stream => crowd.others.push(rt.spawn(stream(addr, shared, stop))),
                Kind::Socket => crowd
                    .sockets
                    .push(rt.spawn(socket(addr, shared, stop, after))),
            }
            // The ramp: client i starts at i / RAMP_PER_SEC seconds.
            let due = Duration::from_secs_f64((i + 1) as f64 / RAMP_PER_SEC as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        crowd
    }

    /// Clients connected now.
    pub fn connected(&self) -> usize {
        self.shared.connected.load(Relaxed)
    }

    /// Waits up to `within` until all clients are connected; false if
    /// some still are not.
    pub fn wait_connected(&self, within: Duration) -> bool {
        let all = self.mix.total();
        let deadline = std::time::Instant::now() + within;
        while self.connected() < all {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// The failures so far.
    pub fn failures(&self) -> Failures {
        let s = &self.shared;
        Failures {
            refused: s.refused.load(Relaxed),
            reset: s.reset.load(Relaxed),
            broken: s.broken.load(Relaxed),
            non_2xx: s.non_2xx.load(Relaxed),
            timeout: s.timeout.load(Relaxed),
            lost: s.lost.load(Relaxed),
            duplicated: s.duplicated.load(Relaxed),
            keepalive: s.by_kind[Kind::KeepAlive as usize].load(Relaxed),
            streams: s.by_kind[Kind::Stream as usize].load(Relaxed),
            sockets: s.by_kind[Kind::Socket as usize].load(Relaxed),
        }
    }

    /// The reconnects whose goodbye came at or after `since`.
    pub fn reconnects_since(&self, since: Instant) -> Vec<Reconnect> {
        let all = self.shared.reconnects.lock().unwrap();
        all.iter().filter(|r| r.goodbye >= since).copied().collect()
    }

    /// Stops every client (bounded) and returns what the hub clients saw.
    pub fn stop(self, rt: &Runtime) -> Vec<Hub> {
        self.stop.cancel();
        rt.block_on(async {
            for task in self.others {
                let _ = timeout(STEP, task).await;
            }
            let mut hubs = Vec::new();
            for task in self.sockets {
                if let Ok(Ok(hub)) = timeout(STEP, task).await {
                    hubs.push(hub);
                }
            }
            hubs
        })
    }
}

/// The kinds in a round-robin order: one of each, then the next.
fn interleave(mix: Mix) -> Vec<Kind> {
    let mut left = [
        (Kind::KeepAlive, mix.keepalive),
        (Kind::Stream, mix.streams),
        (Kind::Socket, mix.sockets),
    ];
    let mut order = Vec::with_capacity(mix.total());
    while order.len() < mix.total() {
        for (kind, n) in left.iter_mut() {
            if *n > 0 {
                *n -= 1;
                order.push(*kind);
            }
        }
    }
    order
}

/// The `key`-th point of a well-mixed sequence, in `0.0..1.0`
/// (splitmix64): phases and jitter without a random-number crate.
pub fn unit(key: u64) -> f64 {
    let mut z = key.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Connects, counting a failure by class. `None` also when stopped.
async fn connect(
    addr: SocketAddr,
    kind: Kind,
    shared: &Shared,
    stop: &CancellationToken,
) -> Option<TcpStream> {
    loop {
        let tried = tokio::select! {
            _ = stop.cancelled() => return None,
            tried = timeout(STEP, TcpStream::connect(addr)) => tried,
        };
        match tried {
            Ok(Ok(stream)) => {
                // One small request, one small answer: no Nagle delay.
                let _ = stream.set_nodelay(true);
                return Some(stream);
            }
            Ok(Err(_)) => shared.count(kind, Failed::Refused),
            Err(_) => shared.count(kind, Failed::Timeout),
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The class of an IO error met while a request was under way.
fn io_failure(e: &std::io::Error) -> Failed {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionReset | BrokenPipe | ConnectionAborted => Failed::Reset,
        _ => Failed::Broken,
    }
}

const ITEMS_REQUEST: &[u8] = b"GET /api/items?limit=1 HTTP/1.1\r\nHost: storm\r\n\r\n";

/// A keep-alive client: one request now, then one every [`PACE`] or so.
async fn keepalive(
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    phase: Duration,
    key: u64,
) {
    tokio::select! {
        _ = stop.cancelled() => return,
        _ = tokio::time::sleep(phase) => {}
    }
    let mut goodbye = None;
    let mut draws = key.wrapping_mul(1 << 20);
    loop {
        let connect_at = Instant::now();
        let Some(mut conn) = connect(addr, Kind::KeepAlive, &shared, &stop).await else {
            return;
        };
        let mut reader = ResponseReader::new();
        let mut answered = false;
        // One request after another on this connection, until its
        // goodbye or a failure.
        loop {
            let outcome = async {
                conn.write_all(ITEMS_REQUEST).await?;
                reader.read_summary(&mut conn, Method::Other).await
            };
            match timeout(STEP, outcome).await {
                Ok(Ok(Some(res))) => {
                    if !answered {
                        answered = true;
                        shared.answered(Kind::KeepAlive, &mut goodbye, connect_at);
                    }
                    if !(200..300).contains(&res.status) {
                        shared.count(Kind::KeepAlive, Failed::Non2xx);
                    }
                    if res.closes {
                        goodbye = Some(Instant::now());
                        break;
                    }
                }
                // Written, and the server closed with no answer.
                Ok(Ok(None)) => {
                    shared.count(Kind::KeepAlive, Failed::Broken);
                    goodbye.get_or_insert_with(Instant::now);
                    break;
                }
                Ok(Err(e)) => {
                    shared.count(Kind::KeepAlive, io_failure(&e));
                    goodbye.get_or_insert_with(Instant::now);
                    break;
                }
                Err(_) => {
                    shared.count(Kind::KeepAlive, Failed::Timeout);
                    break;
                }
            }
            // Idle until the next request, watching for the server's FIN.
            draws += 1;
            let pause = PACE.mul_f64(0.8 + 0.4 * unit(draws));
            let mut byte = [0u8; 64];
            // Biased: a FIN already here is seen before the timer sends
            // a request into a closed connection.
            let closed = tokio::select! {
                biased;
                read = conn.read(&mut byte) => matches!(read, Ok(0) | Err(_)),
                _ = stop.cancelled() => {
                    shared.left();
                    return;
                }
                _ = tokio::time::sleep(pause) => false,
            };
            // Like curl before it reuses a connection, ask the socket
            // itself: a FIN that came in just now may not have reached the
            // runtime's readiness yet.
            if closed || peer_closed(&conn) {
                goodbye = Some(Instant::now());
                break;
            }
        }
        if answered {
            shared.left();
        }
    }
}

/// True if the server has closed `conn`: a non-blocking peek, made now,
/// finds the end of the stream (or an error) instead of nothing yet.
fn peer_closed(conn: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: a read of at most one byte into a buffer we own; MSG_PEEK
    // leaves it in the socket, MSG_DONTWAIT never blocks.
    let n = unsafe {
        libc::recv(
            conn.as_raw_fd(),
            byte.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n == 0 || (n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock)
}

/// An event-stream client, resuming after the last id it saw.
async fn stream(addr: SocketAddr, shared: Arc<Shared>, stop: CancellationToken) {
    let mut goodbye = None;
    let mut last: u64 = 0;
    loop {
        let connect_at = Instant::now();
        let Some(mut conn) = connect(addr, Kind::Stream, &shared, &stop).await else {
            return;
        };
        let resume = match last {
            0 => String::new(),
            id => format!("Last-Event-ID: {id}\r\n"),
        };
        let request = format!(
            "GET /api/stream?interval_ms={} HTTP/1.1\r\nHost: storm\r\n{resume}\r\n",
            EVENT_EVERY.as_millis()
        );
        let mut reader = ResponseReader::new();
        let head = async {
            conn.write_all(request.as_bytes()).await?;
            loop {
                match reader.next_head(Method::Other) {
                    Ok(Some(head)) => return Ok(Some(head)),
                    Ok(None) if reader.is_ended() => return Ok(None),
                    Ok(None) => {}
                    Err(e) => return Err(std::io::Error::other(e.to_string())),
                }
                reader.fill_from(&mut conn).await?;
            }
        };
        let head = match timeout(STEP, head).await {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) => {
                shared.count(Kind::Stream, Failed::Broken);
                tokio::time::sleep(RETRY).await;
                continue;
            }
            Ok(Err(e)) => {
                shared.count(Kind::Stream, io_failure(&e));
                tokio::time::sleep(RETRY).await;
                continue;
            }
            Err(_) => {
                shared.count(Kind::Stream, Failed::Timeout);
                continue;
            }
        };
        if head.status != 200 {
            shared.count(Kind::Stream, Failed::Non2xx);
            tokio::time::sleep(RETRY).await;
            continue;
        }
        shared.answered(Kind::Stream, &mut goodbye, connect_at);
        // The body, chunk by chunk, event by event, until the last event
        // or the end of the stream.
        let mut body = reader.take_leftover();
        let mut text = String::new();
        let mut buf = vec![0u8; 4096];
        let told = 'read: loop {
            while let Ok(Some(chunk)) = next_chunk(&body) {
                if chunk.is_last() {
                    break 'read true;
                }
                text.push_str(&String::from_utf8_lossy(&body[chunk.data.clone()]));
                body.drain(..chunk.len);
                while let Some(end) = text.find("\n\n") {
                    let event: String = text.drain(..end + 2).collect();
                    if event.contains("event: shutdown") {
                        break 'read true;
                    }
                    if let Some(id) = event_id(&event) {
                        if last != 0 && id <= last {
                            shared.duplicated.fetch_add(1, Relaxed);
                        } else {
                            if last != 0 && id > last + 1 {
                                shared.lost.fetch_add(id - last - 1, Relaxed);
                            }
                            last = id;
                        }
                    }
                }
            }
            let read = tokio::select! {
                _ = stop.cancelled() => {
                    shared.left();
                    return;
                }
                read = conn.read(&mut buf) => read,
            };
            match read {
                Ok(0) | Err(_) => break false,
                Ok(n) => body.extend_from_slice(&buf[..n]),
            }
        };
        // Told to go, or cut: either way, straight back.
        let _ = told;
        goodbye = Some(Instant::now());
        shared.left();
    }
}

/// The `id:` field of one event.
fn event_id(event: &str) -> Option<u64> {
    event
        .lines()
        .find_map(|line| line.strip_prefix("id: "))?
        .trim()
        .parse()
        .ok()
}

/// A hub client: follows the items after `after`, and after each close
/// resumes after the last one it got.
async fn socket(addr: SocketAddr, shared: Arc<Shared>, stop: CancellationToken, after: u64) -> Hub {
    let mut hub = Hub {
        first_after: after,
        new: 0,
    };
    let mut last = after;
    let mut goodbye = None;
    'connect: loop {
        let connect_at = Instant::now();
        let Some(conn) = connect(addr, Kind::Socket, &shared, &stop).await else {
            return hub;
        };
        let url = format!("ws://{addr}/api/ws?after={last}");
        let mut ws = match timeout(STEP, tokio_tungstenite::client_async(url, conn)).await {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(WsError::Http(_))) => {
                shared.count(Kind::Socket, Failed::Non2xx);
                tokio::time::sleep(RETRY).await;
                continue;
            }
            Ok(Err(WsError::Io(e))) => {
                shared.count(Kind::Socket, io_failure(&e));
                tokio::time::sleep(RETRY).await;
                continue;
            }
            Ok(Err(_)) => {
                shared.count(Kind::Socket, Failed::Broken);
                tokio::time::sleep(RETRY).await;
                continue;
            }
            Err(_) => {
                shared.count(Kind::Socket, Failed::Timeout);
                continue;
            }
        };
        shared.answered(Kind::Socket, &mut goodbye, connect_at);
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => {
                    let _ = ws.send(Message::Close(None)).await;
                    shared.left();
                    return hub;
                }
                next = ws.next() => next,
            };
            match next {
                Some(Ok(Message::Text(text))) => {
                    let Some(id) = item_id(text.as_bytes()) else {
                        continue;
                    };
                    if id <= last {
                        shared.duplicated.fetch_add(1, Relaxed);
                    } else {
                        hub.new += 1;
                        last = id;
                    }
                }
                // The goodbye. tungstenite has queued the answering Close;
                // a task of its own sends it and waits for the end of the
                // stream, while this client goes straight back.
                Some(Ok(Message::Close(_))) => {
                    goodbye = Some(Instant::now());
                    tokio::spawn(async move {
                        let _ = timeout(STEP, ws.next()).await;
                    });
                    shared.left();
                    continue 'connect;
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => {
                    goodbye = Some(Instant::now());
                    break;
                }
            }
        }
        shared.left();
    }
}

/// The `id` of an item's JSON.
fn item_id(json: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    value.get("id")?.as_u64()
}

/// Items lost by the hub clients: for each, the items created after the
/// one it started after, less those it got. `created` is every item the
/// writer made, in order.
pub fn hub_lost(hubs: &[Hub], created: &[u64]) -> u64 {
    hubs.iter()
        .map(|hub| {
            let expected = created.iter().filter(|&&id| id > hub.first_after).count() as u64;
            expected.saturating_sub(hub.new)
        })
        .sum()
}
