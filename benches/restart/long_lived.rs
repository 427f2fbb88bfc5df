//! The long-lived load: what a restart costs the clients that stay
//! connected, as opposed to the requests the other rows count.
//!
//! One row, `http1_sighup_longlived_…`: lameduck on a SQLite file (the
//! items must outlive each process), upgraded by SIGHUP `restarts` times,
//! while
//!
//! - `hubs` WebSocket clients follow `/api/ws`, each reconnecting after a
//!   close with the last id it saw (`lameduck::testing::followers`);
//! - `pollers` clients long-poll `/api/items/poll` the same way;
//! - one client downloads a throttled body (`/api/download?rate=`), which
//!   each old process streams until its deadline and then cuts, and which
//!   the client resumes from the new one with `Range` + `If-Range`,
//!   checking every byte;
//! - a writer creates an item every 20 ms.
//!
//! Per restart it reports the items lost and seen twice at that restart's
//! seam (summed over the followers), the close codes the hub clients saw,
//! and where the download resumed. The goal: 0 lost, 0 duplicated, every
//! close 1012, every byte right.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use ::lameduck::testing::followers::{self, Downloaded, Followed};
use ::lameduck::testing::http1::{Method, ResponseReader};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use super::Options;
use super::lameduck::{Lameduck, Restart};
use super::target::Target;

/// The old process's deadline in this row: the download it streams holds
/// it open until then.
const SHUTDOWN_TIMEOUT: &str = "2s";

/// The download's pace, in bytes per second.
const RATE: u64 = 4_000_000;

/// How long the followers may take to catch up once the writer stops.
const CATCH_UP: Duration = Duration::from_secs(30);

/// The long-lived row.
#[derive(Debug, Serialize)]
pub struct LongLivedRow {
    /// `http1_sighup_longlived_h{hubs}_p{pollers}_d1`.
    pub name: String,
    pub restarts: usize,
    pub hubs: usize,
    pub pollers: usize,
    /// Items created (answered `201`), and creates answered otherwise.
    pub items: usize,
    pub failed_creates: usize,
    /// Over every follower and the whole row.
    pub lost: usize,
    pub duplicated: usize,
    /// The hub clients' close codes, and how many of each.
    pub closes: BTreeMap<u16, usize>,
    /// Handshakes and polls answered `503` during a switch.
    pub refused: usize,
    /// The download: its length, whether it all arrived, and how many of
    /// its bytes were wrong.
    pub download_bytes: u64,
    pub download_complete: bool,
    pub download_wrong_bytes: u64,
    pub per_restart: Vec<LongLivedRestart>,
    pub error: Option<String>,
}

/// One restart's seam.
#[derive(Debug, Default, Serialize)]
pub struct LongLivedRestart {
    pub lost: usize,
    pub duplicated: usize,
    pub closes: BTreeMap<u16, usize>,
    /// Where the download resumed after this restart's cut, and how many
    /// bytes it had received on the connection that was cut.
    pub download_resumed_at: Option<u64>,
    pub download_bytes_before_cut: Option<u64>,
    /// How the old process ended: `Code(1)` when the download it was
    /// streaming met its deadline.
    pub old_exit: Option<String>,
}

/// Runs the row.
pub fn row(rt: &Runtime, opts: &Options) -> LongLivedRow {
    let (hubs, pollers) = if opts.quick { (4, 2) } else { (50, 10) };
    let mut row = LongLivedRow {
        name: format!("http1_sighup_longlived_h{hubs}_p{pollers}_d1"),
        restarts: 0,
        hubs,
        pollers,
        items: 0,
        failed_creates: 0,
        lost: 0,
        duplicated: 0,
        closes: BTreeMap::new(),
        refused: 0,
        download_bytes: 0,
        download_complete: false,
        download_wrong_bytes: 0,
        per_restart: Vec::new(),
        error: None,
    };
    let db = std::env::temp_dir().join(format!(
        "lameduck-bench-longlived-{}.db",
        std::process::id()
    ));
    let db_arg = db.to_string_lossy().into_owned();
    let args = [
        "--db",
        db_arg.as_str(),
        "--shutdown-timeout",
        SHUTDOWN_TIMEOUT,
        "--force-grace",
        "200ms",
    ];
    let mut server = match Lameduck::start(&opts.bin, &args, Restart::Sighup) {
        Ok(server) => server,
        Err(e) => {
            row.error = Some(format!("start: {e}"));
            return row;
        }
    };
    let addr = server.addr();
    let stop = CancellationToken::new();
    let hub_lasts: Vec<Arc<AtomicU64>> = (0..hubs).map(|_| Arc::default()).collect();
    let poll_lasts: Vec<Arc<AtomicU64>> = (0..pollers).map(|_| Arc::default()).collect();
    let hub_tasks: Vec<_> = hub_lasts
        .iter()
        .map(|last| rt.spawn(followers::follow_hub(addr, 0, last.clone(), stop.clone())))
        .collect();
    let poll_tasks: Vec<_> = poll_lasts
        .iter()
        .map(|last| {
            let wait = Duration::from_secs(5);
            rt.spawn(followers::follow_polls(
                addr,
                0,
                wait,
                last.clone(),
                stop.clone(),
            ))
        })
        .collect();
    // Long enough to span every restart (each takes the old process's
    // deadline, 2 s, and the pause after it).
    let span = (opts.between + Duration::from_millis(2500)) * opts.restarts as u32;
    let len = (RATE as f64 * span.as_secs_f64()) as u64;
    let download = rt.spawn(followers::follow_download(addr, len, 7, RATE, stop.clone()));
    let writing = CancellationToken::new();
    let writer = rt.spawn(create_items(addr, writing.clone()));

    std::thread::sleep(opts.warmup);
    let mut exits = Vec::new();
    for _ in 0..opts.restarts {
        match server.restart() {
            Ok(done) => exits.push(done.old_exit.map(|e| format!("{e:?}"))),
            Err(e) => {
                row.error = Some(e.to_string());
                break;
            }
        }
        std::thread::sleep(opts.between);
    }
    row.restarts = exits.len();

    // The download ends by itself (bounded: its pace, plus margin).
    let downloaded: Downloaded = rt.block_on(async {
        let limit = span + Duration::from_secs(30);
        match tokio::time::timeout(limit, download).await {
            Ok(done) => done.unwrap_or_default(),
            Err(_) => Downloaded::default(),
        }
    });
    writing.cancel();
    let (created, failed_creates) = rt.block_on(writer).unwrap_or_default();
    if let Some(&last) = created.last() {
        let all: Vec<_> = hub_lasts.iter().chain(&poll_lasts).cloned().collect();
        if !rt.block_on(caught_up(&all, last)) {
            row.error
                .get_or_insert("the followers did not catch up".into());
        }
    }
    stop.cancel();
    let hubs_seen: Vec<Followed> = hub_tasks
        .into_iter()
        .map(|t| rt.block_on(t).unwrap_or_default())
        .collect();
    let polls_seen: Vec<Followed> = poll_tasks
        .into_iter()
        .map(|t| rt.block_on(t).unwrap_or_default())
        .collect();
    if let Err(e) = server.stop() {
        row.error.get_or_insert(format!("stop: {e}"));
    }
    drop(server);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{db_arg}{suffix}"));
    }

    row.items = created.len();
    row.failed_creates = failed_creates;
    row.per_restart = exits
        .into_iter()
        .map(|old_exit| LongLivedRestart {
            old_exit,
            ..LongLivedRestart::default()
        })
        .collect();
    for seen in hubs_seen.iter().chain(&polls_seen) {
        let (lost, duplicated) = seen.lost_and_duplicated(&created);
        row.lost += lost;
        row.duplicated += duplicated;
        row.refused += seen.refused;
        for (r, cost) in seen.seam_costs(&created).into_iter().enumerate() {
            if let Some(at) = row.per_restart.get_mut(r) {
                at.lost += cost.lost;
                at.duplicated += cost.duplicated;
            }
        }
    }
    for seen in &hubs_seen {
        for (r, code) in seen.closes.iter().enumerate() {
            *row.closes.entry(*code).or_default() += 1;
            if let Some(at) = row.per_restart.get_mut(r) {
                *at.closes.entry(*code).or_default() += 1;
            }
        }
    }
    for (r, at) in downloaded.resumed_at.iter().enumerate() {
        if let Some(restart) = row.per_restart.get_mut(r) {
            restart.download_resumed_at = Some(*at);
            restart.download_bytes_before_cut = downloaded.segments.get(r).copied();
        }
    }
    row.download_bytes = downloaded.len;
    row.download_complete = downloaded.complete;
    row.download_wrong_bytes = downloaded.wrong_bytes;
    row
}

/// Creates an item every 20 ms until `stop`: the ids answered `201`, and
/// how many creates were answered otherwise.
async fn create_items(addr: SocketAddr, stop: CancellationToken) -> (Vec<u64>, usize) {
    let (mut created, mut failed) = (Vec::new(), 0);
    while !stop.is_cancelled() {
        match create_item(addr).await {
            Some(id) => created.push(id),
            None => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (created, failed)
}

/// One `POST /api/items` on a new connection; the new item's id.
async fn create_item(addr: SocketAddr) -> Option<u64> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let body = r#"{"name":"long-lived bench"}"#;
    let head = format!(
        "POST /api/items HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    let mut reader = ResponseReader::new();
    let res = reader
        .read_response(&mut stream, Method::Other)
        .await
        .ok()??;
    if res.status != 201 {
        return None;
    }
    let item: serde_json::Value = serde_json::from_slice(&res.body).ok()?;
    item["id"].as_u64()
}

/// Waits (bounded) until every follower has seen `last`.
async fn caught_up(lasts: &[Arc<AtomicU64>], last: u64) -> bool {
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    while lasts.iter().any(|l| l.load(Relaxed) < last) {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}
