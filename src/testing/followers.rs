//! Clients that follow the items feed across restarts, as a real client
//! of each long-lived route would: a WebSocket hub client
//! ([`follow_hub`]) and a long-polling client ([`follow_polls`]). The
//! tests and the restart bench use them to count what a restart costs
//! such a client: items lost, items seen twice, and how each connection
//! ended.
//!
//! Both keep one piece of state, the last id they saw, and resume after
//! it: that is the whole of the contract the server offers them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use crate::testing::http1::{Method, ResponseReader};

/// The code a client reports when a connection ended without a Close
/// frame (RFC 6455 §7.1.5: "abnormal closure").
pub const ABNORMAL: u16 = 1006;

/// How long a client waits before it tries again after a refusal (`503`
/// during a switch, a failed connect).
const RETRY_AFTER: Duration = Duration::from_millis(50);

/// What one follower saw.
#[derive(Debug, Default, Clone)]
pub struct Followed {
    /// Every item id received, in the order received.
    pub ids: Vec<u64>,
    /// How each hub connection ended: its Close code, or [`ABNORMAL`].
    /// For a long poll, the count of answers that said `Connection:
    /// close` is in `moves` instead.
    pub closes: Vec<u16>,
    /// Long polls: answers that sent the client to a new connection.
    pub moves: usize,
    /// Handshakes or polls answered `503` (the server was stopping).
    pub refused: usize,
    /// Connects or requests that failed outright (refused, reset).
    pub failed: usize,
    /// Where each connection after the first began, as an index into
    /// `ids`: the seams a restart put into the stream.
    pub seams: Vec<usize>,
}

/// What one seam (a reconnect) cost a follower.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeamCost {
    /// Items created between the last one before the seam and the first
    /// one after it that the follower never received.
    pub lost: usize,
    /// Items received after the seam that it had already received.
    pub duplicated: usize,
}

impl Followed {
    /// Items received more than once, and items of `expected` never
    /// received, comparing in order.
    pub fn lost_and_duplicated(&self, expected: &[u64]) -> (usize, usize) {
        let mut seen = std::collections::HashMap::new();
        for id in &self.ids {
            *seen.entry(*id).or_insert(0usize) += 1;
        }
        let duplicated = seen.values().map(|n| n - 1).sum();
        let lost = expected.iter().filter(|id| !seen.contains_key(id)).count();
        (lost, duplicated)
    }
}

impl Followed {
    /// What each seam cost, in order: the items of `expected` (every id
    /// created, in order) missing between the two sides of the seam, and
    /// the items repeated after it.
    pub fn seam_costs(&self, expected: &[u64]) -> Vec<SeamCost> {
        let mut seams = self.seams.clone();
        seams.push(self.ids.len());
        let mut costs = Vec::new();
        for pair in seams.windows(2) {
            let (seam, next) = (pair[0], pair[1]);
            let before = self.ids[..seam].last().copied().unwrap_or(0);
            let after = &self.ids[seam..next];
            let duplicated = after.iter().filter(|id| **id <= before).count();
            let first_new = after.iter().find(|id| **id > before).copied();
            let lost = match first_new {
                Some(first) => expected
                    .iter()
                    .filter(|id| **id > before && **id < first)
                    .count(),
                None => 0,
            };
            costs.push(SeamCost { lost, duplicated });
        }
        costs
    }
}

/// Follows `ws://addr/api/ws?after=…` from item `after` on, reconnecting
/// after every close with the last id seen, until the server says it is
/// shutting down (Close 1001) or `stop` is cancelled (then the client
/// closes, 1000). `last` is kept at the last id seen, for whoever waits
/// for the client to catch up.
pub async fn follow_hub(
    addr: SocketAddr,
    mut after: u64,
    last: Arc<AtomicU64>,
    stop: CancellationToken,
) -> Followed {
    let mut out = Followed::default();
    loop {
        let url = format!("ws://{addr}/api/ws?after={after}");
        let connected = tokio::select! {
            _ = stop.cancelled() => return out,
            connected = tokio_tungstenite::connect_async(url) => connected,
        };
        let mut socket = match connected {
            Ok((socket, _)) => {
                if !out.closes.is_empty() {
                    out.seams.push(out.ids.len());
                }
                socket
            }
            Err(WsError::Http(res)) if res.status() == 503 => {
                out.refused += 1;
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
            Err(_) => {
                out.failed += 1;
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        let mut code = ABNORMAL;
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => {
                    let bye = CloseFrame { code: CloseCode::Normal, reason: "done".into() };
                    let _ = socket.send(Message::Close(Some(bye))).await;
                    // Until the server's answering Close ends the stream.
                    while let Some(Ok(_)) = socket.next().await {}
                    return out;
                }
                next = socket.next() => next,
            };
            match next {
                Some(Ok(Message::Text(text))) => {
                    if let Some(id) = item_id(text.as_bytes()) {
                        out.ids.push(id);
                        after = id;
                        last.store(id, Relaxed);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    code = frame.map_or(1005, |f| u16::from(f.code));
                }
                Some(Ok(_)) => {}
                // The end of the stream: after both Close frames, or a
                // connection that broke.
                None | Some(Err(_)) => break,
            }
        }
        out.closes.push(code);
        if code == 1001 {
            return out;
        }
    }
}

/// Follows `GET /api/items/poll?after=…&wait=…` from item `after` on,
/// one poll after another, each on the connection the last one left open
/// (a new one after `Connection: close`), until `stop` is cancelled or the
/// server's answers end (nothing listens any more).
pub async fn follow_polls(
    addr: SocketAddr,
    mut after: u64,
    wait: Duration,
    last: Arc<AtomicU64>,
    stop: CancellationToken,
) -> Followed {
    let mut out = Followed::default();
    let mut conn: Option<(TcpStream, ResponseReader)> = None;
    while !stop.is_cancelled() {
        let (stream, reader) = match conn.as_mut() {
            Some(open) => open,
            None => match TcpStream::connect(addr).await {
                Ok(stream) => {
                    if out.moves > 0 || out.failed > 0 {
                        out.seams.push(out.ids.len());
                    }
                    conn.insert((stream, ResponseReader::new()))
                }
                Err(_) => {
                    out.failed += 1;
                    if out.failed > 100 {
                        return out;
                    }
                    tokio::time::sleep(RETRY_AFTER).await;
                    continue;
                }
            },
        };
        let ms = wait.as_millis();
        let head =
            format!("GET /api/items/poll?after={after}&wait={ms}ms HTTP/1.1\r\nHost: poll\r\n\r\n");
        let answer = tokio::select! {
            _ = stop.cancelled() => return out,
            answer = async {
                stream.write_all(head.as_bytes()).await?;
                reader.read_response(stream, Method::Other).await
            } => answer,
        };
        let res = match answer {
            Ok(Some(res)) => res,
            // Closed or reset before an answer: a new connection.
            Ok(None) | Err(_) => {
                out.failed += 1;
                conn = None;
                continue;
            }
        };
        match res.status {
            200 => {
                for id in item_ids(&res.body) {
                    out.ids.push(id);
                    after = id;
                    last.store(id, Relaxed);
                }
            }
            204 => {}
            503 => {
                out.refused += 1;
                tokio::time::sleep(RETRY_AFTER).await;
            }
            other => panic!("a poll was answered {other}: {}", res.text()),
        }
        if res.closes() {
            out.moves += 1;
            conn = None;
        }
    }
    out
}

/// The `id` of one item's JSON.
fn item_id(json: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    value.get("id")?.as_u64()
}

/// The ids of a JSON array of items.
fn item_ids(json: &[u8]) -> Vec<u64> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(json).unwrap_or_default();
    items
        .iter()
        .filter_map(|item| item.get("id")?.as_u64())
        .collect()
}

/// What a resuming download saw.
#[derive(Debug, Default, Clone)]
pub struct Downloaded {
    /// The body's length.
    pub len: u64,
    /// Bytes received on each connection, in order: one entry per cut,
    /// and the last one's.
    pub segments: Vec<u64>,
    /// Where each resume began (its `Range: bytes=K-`).
    pub resumed_at: Vec<u64>,
    /// Received bytes that differed from the body's (`0`: every resume
    /// gave the same bytes the first connection would have).
    pub wrong_bytes: u64,
    /// Answers other than `200` to the first request and `206` to a
    /// resume (a refusal during a switch, an If-Range that did not match).
    pub unexpected: Vec<u16>,
    /// The whole body arrived.
    pub complete: bool,
}

/// Downloads `/api/download?bytes=LEN&seed=SEED&rate=RATE` to its end,
/// resuming after every cut with `Range: bytes=K-` and `If-Range` the
/// `ETag` of the first answer, and checks every byte against the body's
/// definition (`service::download::keystream`), until the body is whole
/// or `stop` is cancelled.
pub async fn follow_download(
    addr: SocketAddr,
    len: u64,
    seed: u64,
    rate: u64,
    stop: CancellationToken,
) -> Downloaded {
    let mut out = Downloaded {
        len,
        ..Downloaded::default()
    };
    let mut etag: Option<String> = None;
    let mut offset = 0u64;
    let mut expected = vec![0u8; 256 * 1024];
    while offset < len && !stop.is_cancelled() {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            tokio::time::sleep(RETRY_AFTER).await;
            continue;
        };
        let mut head = format!(
            "GET /api/download?bytes={len}&seed={seed}&rate={rate} HTTP/1.1\r\nHost: dl\r\nConnection: close\r\n"
        );
        if let (Some(tag), true) = (&etag, offset > 0) {
            head.push_str(&format!("Range: bytes={offset}-\r\nIf-Range: {tag}\r\n"));
            out.resumed_at.push(offset);
        }
        head.push_str("\r\n");
        if stream.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        let mut reader = ResponseReader::new();
        let res = loop {
            match reader.next_head(Method::Other) {
                Ok(Some(res)) => break Some(res),
                Ok(None) => {}
                Err(_) => break None,
            }
            match reader.fill_from(&mut stream).await {
                Ok(0) | Err(_) => break None,
                Ok(_) => {}
            }
        };
        let Some(res) = res else { continue };
        let wanted = if offset == 0 { 200 } else { 206 };
        if res.status != wanted {
            out.unexpected.push(res.status);
            if offset == 0 || res.status != 503 {
                // Not the bytes asked for: start over from the beginning
                // (a 200 to a resume means the body changed).
                offset = 0;
                etag = None;
            }
            tokio::time::sleep(RETRY_AFTER).await;
            continue;
        }
        if etag.is_none() {
            etag = res.header("etag").map(str::to_owned);
        }
        let mut got = 0u64;
        let mut chunk = reader.take_leftover();
        loop {
            let n = chunk.len().min((len - offset) as usize);
            if n > 0 {
                let expect = &mut expected[..n.min(256 * 1024)];
                let mut done = 0;
                while done < n {
                    let part = (n - done).min(expect.len());
                    crate::service::download::keystream::fill(
                        seed,
                        offset + done as u64,
                        &mut expect[..part],
                    );
                    out.wrong_bytes += chunk[done..done + part]
                        .iter()
                        .zip(&expect[..part])
                        .filter(|(a, b)| a != b)
                        .count() as u64;
                    done += part;
                }
                offset += n as u64;
                got += n as u64;
            }
            if offset >= len {
                break;
            }
            chunk.resize(256 * 1024, 0);
            let read = tokio::select! {
                _ = stop.cancelled() => break,
                read = tokio::io::AsyncReadExt::read(&mut stream, &mut chunk) => read,
            };
            match read {
                Ok(0) | Err(_) => break,
                Ok(n) => chunk.truncate(n),
            }
        }
        out.segments.push(got);
    }
    out.complete = offset >= len;
    out
}
