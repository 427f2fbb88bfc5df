//! The WebSocket hub and the long poll through restarts, with the real
//! binary, real signals and real clients over loopback
//! (`lameduck::testing::followers`): what a client of each sees when the
//! server it is connected to is upgraded or shut down.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use lameduck::testing::binary::Lameduck;
use lameduck::testing::followers::{self, Followed};
use lameduck::testing::process::{self, Exit};
use support::h2_raw::rss_kib;
use support::storage::TempDb;
use support::{http, websocket};
use tokio_util::sync::CancellationToken;

/// How long a start, an upgrade or a shutdown may take.
const STEP: Duration = Duration::from_secs(30);

/// The binary tests put real load on two shared cores: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lameduck"))
}

/// Creates items one after another until `stop`, and returns the ids of
/// those answered `201`, and how many creates got anything else.
async fn create_items(
    addr: std::net::SocketAddr,
    every: Duration,
    stop: CancellationToken,
) -> (Vec<u64>, usize) {
    let (mut created, mut failed) = (Vec::new(), 0);
    let mut n = 0;
    while !stop.is_cancelled() {
        n += 1;
        let body = format!("{{\"name\":\"item {n}\"}}");
        let res = http::request(addr, "POST", "/api/items", Some(&body)).await;
        match res.status {
            201 => {
                let item: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
                created.push(item["id"].as_u64().unwrap());
            }
            _ => failed += 1,
        }
        tokio::time::sleep(every).await;
    }
    (created, failed)
}

/// Waits until every follower's last id is `last`.
async fn caught_up(lasts: &[Arc<AtomicU64>], last: u64, within: Duration) {
    let start = Instant::now();
    while lasts.iter().any(|l| l.load(Relaxed) < last) {
        let behind = lasts.iter().filter(|l| l.load(Relaxed) < last).count();
        assert!(
            start.elapsed() < within,
            "{behind} followers never saw item {last}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `lameduck_websockets_open` gauge.
async fn websockets_open(addr: std::net::SocketAddr) -> u64 {
    let metrics = http::get(addr, "/metrics").await.text();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("lameduck_websockets_open "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the gauge is in /metrics")
}

/// `n` hub clients (`followers::follow_hub`) from item 0 on, once all
/// their sockets are open: each one's last id seen, and the clients.
fn hub_clients(
    rt: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    n: usize,
) -> (Vec<Arc<AtomicU64>>, Vec<tokio::task::JoinHandle<Followed>>) {
    // Never cancelled: each client ends at the shutdown's 1001.
    let stop = CancellationToken::new();
    let lasts: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::default()).collect();
    let clients = lasts
        .iter()
        .map(|last| rt.spawn(followers::follow_hub(addr, 0, last.clone(), stop.clone())))
        .collect();
    rt.block_on(async {
        support::eventually_async(STEP, &format!("{n} sockets open"), || async {
            websockets_open(addr).await == n as u64
        })
        .await
    });
    (lasts, clients)
}

/// 50 hub clients through 5 SIGHUP upgrades and then a SIGTERM, while
/// items are created: every client sees every item exactly once and in
/// order, however many times it reconnected; every close it sees is
/// 1012 (service restart) at an upgrade and 1001 (going away) at the
/// shutdown, never 1006 (a connection that broke without a Close); and
/// every old process exits 0, its drain having waited for the closing
/// handshakes.
#[test]
fn hub_clients_see_every_item_once_in_order_across_five_upgrades() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    process::become_subreaper().expect("prctl(PR_SET_CHILD_SUBREAPER)");
    // A file both generations share: the items outlive each process.
    let db = TempDb::new("hub");
    let mut server = Lameduck::start(bin(), &["--db", db.arg()], STEP).expect("lameduck starts");
    let addr = server.addr();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (lasts, clients) = hub_clients(&rt, addr, 50);
    let writing = CancellationToken::new();
    let writer = rt.spawn(create_items(
        addr,
        Duration::from_millis(10),
        writing.clone(),
    ));

    for n in 1..=5 {
        std::thread::sleep(Duration::from_millis(400));
        let upgraded = server
            .upgrade(STEP)
            .unwrap_or_else(|e| panic!("upgrade {n}: {e}"));
        assert_eq!(
            upgraded.old_exit,
            Exit::Code(0),
            "upgrade {n}: the old process exits 0"
        );
    }
    std::thread::sleep(Duration::from_millis(400));
    writing.cancel();
    let (created, failed_creates) = rt.block_on(writer).unwrap();
    assert_eq!(
        failed_creates, 0,
        "every create across the upgrades got 201"
    );
    let last = *created.last().expect("items were created");
    rt.block_on(caught_up(&lasts, last, STEP));
    assert_eq!(server.terminate(STEP).unwrap(), Exit::Code(0));

    let seen: Vec<Followed> = clients
        .into_iter()
        .map(|c| rt.block_on(c).expect("a client ran"))
        .collect();
    let mut one_ways = std::collections::BTreeMap::new();
    for (i, client) in seen.iter().enumerate() {
        assert_eq!(
            client.ids, created,
            "client {i} saw every item once, in order"
        );
        assert_eq!(
            client.closes,
            [1012, 1012, 1012, 1012, 1012, 1001],
            "client {i}: a restart close per upgrade, then the shutdown's"
        );
        assert_eq!(client.failed, 0, "client {i}: no connect failed");
        *one_ways.entry(client.refused).or_insert(0) += 1;
    }
    println!(
        "{} items, {} clients; handshakes refused with 503 per client: {one_ways:?}",
        created.len(),
        seen.len()
    );
}

/// 700 hub clients at once, while items are created: every client sees
/// every item exactly once and in order, however many share the fan-out
/// of each.
#[test]
fn seven_hundred_hub_clients_each_see_every_item_once_in_order() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let db = TempDb::new("waves");
    let server = Lameduck::start(bin(), &["--db", db.arg()], STEP).expect("lameduck starts");
    let addr = server.addr();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (lasts, clients) = hub_clients(&rt, addr, 700);
    let writing = CancellationToken::new();
    let writer = rt.spawn(create_items(
        addr,
        Duration::from_millis(20),
        writing.clone(),
    ));
    std::thread::sleep(Duration::from_millis(1000));
    writing.cancel();
    let (created, failed_creates) = rt.block_on(writer).unwrap();
    assert_eq!(failed_creates, 0, "every create got 201");
    let last = *created.last().expect("items were created");
    rt.block_on(caught_up(&lasts, last, STEP));
    assert_eq!(server.terminate(STEP).unwrap(), Exit::Code(0));
    for (i, client) in clients.into_iter().enumerate() {
        let client = rt.block_on(client).expect("a client ran");
        assert_eq!(
            client.ids, created,
            "client {i} saw every item once, in order"
        );
    }
}

/// An open hub socket costs the server a few KiB, not tungstenite's
/// default read buffer of 128 KiB: 500 sockets, and the server's resident
/// memory before and after (10–12 KB each measured, 141 KB with the
/// default buffer).
#[test]
fn an_open_hub_socket_costs_the_server_less_than_32_kib() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let server = Lameduck::start::<&str>(bin(), &[], STEP).expect("lameduck starts");
    let pid = server.pid() as u32;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let before = rss_kib(pid);
    let n = 500;
    let (_lasts, clients) = hub_clients(&rt, server.addr(), n);
    // Every session has read (and so filled its buffer) once it is open.
    std::thread::sleep(Duration::from_millis(500));
    let per_socket = (rss_kib(pid).saturating_sub(before) * 1024) as usize / n;
    assert_eq!(server.terminate(STEP).unwrap(), Exit::Code(0));
    for client in clients {
        rt.block_on(client).expect("a client ran");
    }
    println!("{per_socket} bytes of the server's memory per open hub socket");
    assert!(
        per_socket < 32 * 1024,
        "an open hub socket costs the server {per_socket} bytes"
    );
}

/// A new WebSocket during the lame-duck phase is refused with `503` and
/// `Retry-After` (the on-shutdown hook has told the hub), while the
/// socket already open keeps receiving items until the drain closes it
/// with 1001.
#[test]
fn a_new_websocket_in_the_lame_duck_gets_503_while_open_ones_keep_working() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let server = Lameduck::start(bin(), &["--drain-delay", "3s", "--drain-checks", "0"], STEP)
        .expect("lameduck starts");
    let addr = server.addr();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let last = Arc::new(AtomicU64::new(0));
    let client = rt.spawn(followers::follow_hub(
        addr,
        0,
        last.clone(),
        CancellationToken::new(),
    ));
    rt.block_on(support::eventually_async(
        STEP,
        "the socket is open",
        || async { websockets_open(addr).await == 1 },
    ));
    server.signal(libc::SIGTERM).unwrap();
    server
        .log()
        .wait_for_nth("phase=\"lame_duck\"", 1, STEP)
        .expect("the lame duck begins");
    // Hooks are told, not awaited: the refusal holds once the hub's hook
    // has run, which it says.
    server
        .log()
        .wait_for_nth("hook=\"websocket hub\"", 1, STEP)
        .expect("the hub's hook runs");

    let (_, refused) = rt.block_on(websocket::handshake(addr, "/api/ws"));
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 1"),
        "{refused}"
    );

    // The open socket still works: an item created now reaches it.
    let res = rt.block_on(http::request(
        addr,
        "POST",
        "/api/items",
        Some("{\"name\":\"late\"}"),
    ));
    assert_eq!(res.status, 201);
    let id = serde_json::from_slice::<serde_json::Value>(&res.body).unwrap()["id"]
        .as_u64()
        .unwrap();
    rt.block_on(caught_up(std::slice::from_ref(&last), id, STEP));

    assert_eq!(server.wait_exit(STEP), Some(Exit::Code(0)));
    let seen = rt.block_on(client).unwrap();
    assert_eq!(seen.ids, [id]);
    assert_eq!(seen.closes, [1001]);
}

/// A client that never answers the server's Close holds its socket until
/// the shutdown deadline, and no longer: the forced close aborts it, the
/// report counts it (`websockets_aborted=1`), and the exit code is 1.
#[test]
fn a_websocket_that_never_answers_the_close_is_aborted_at_the_deadline() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let server = Lameduck::start(
        bin(),
        &["--shutdown-timeout", "1s", "--force-grace", "100ms"],
        STEP,
    )
    .expect("lameduck starts");
    let addr = server.addr();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A handshake by hand, and then nothing: the client reads no frame
    // and sends none.
    let (silent, answer) = rt.block_on(websocket::handshake(addr, "/api/ws/echo"));
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    rt.block_on(support::eventually_async(
        STEP,
        "the socket is open",
        || async { websockets_open(addr).await == 1 },
    ));

    let started = Instant::now();
    assert_eq!(
        server.terminate(STEP).unwrap(),
        Exit::Code(1),
        "forced: exit 1"
    );
    let waited = started.elapsed();
    let report = server
        .log()
        .find_after(0, |l| l.contains("shutdown report").then(|| l.to_owned()))
        .expect("a report");
    assert!(
        report.contains("outcome=\"forced_by_deadline\""),
        "{report}"
    );
    assert!(report.contains("websockets_at_drain=1"), "{report}");
    assert!(report.contains("websockets_aborted=1"), "{report}");
    assert!(report.contains("websockets_closed=0"), "{report}");
    assert!(
        waited >= Duration::from_secs(1),
        "held until the deadline: {waited:?}"
    );
    drop(silent);
}

/// Long polls waiting when SIGTERM comes all answer as soon as the drain
/// begins (within 100 ms of the drain's start, measured from the moment
/// the test sees the draining phase logged), with `204` and
/// `Connection: close`, so their clients poll the successor.
#[test]
fn long_polls_answer_at_once_when_the_drain_begins() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let server =
        Lameduck::start(bin(), &["--poll-max-wait", "60s"], STEP).expect("lameduck starts");
    let addr = server.addr();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let polls: Vec<_> = (0..20)
        .map(|_| {
            rt.spawn(async move {
                let mut conn = http::connect(addr).await;
                http::send_get(&mut conn, "/api/items/poll?after=0&wait=60s").await;
                let res = http::read_response(&mut conn).await;
                (res, Instant::now())
            })
        })
        .collect();
    // Every poll is waiting: each is a request in flight.
    rt.block_on(support::eventually_async(
        STEP,
        "20 polls waiting",
        || async {
            let metrics = http::get(addr, "/metrics").await.text();
            metrics
                .lines()
                .any(|l| l == "lameduck_requests_in_flight 20")
        },
    ));
    server.signal(libc::SIGTERM).unwrap();
    server
        .log()
        .wait_for_nth("phase=\"draining\"", 1, STEP)
        .expect("the drain begins");
    let drain_seen = Instant::now();
    for poll in polls {
        let (res, at) = rt.block_on(poll).unwrap();
        let res = res.expect("an answer");
        assert_eq!(res.status, 204);
        assert!(
            res.closes(),
            "Connection: close: the next poll goes elsewhere"
        );
        let late = at.saturating_duration_since(drain_seen);
        assert!(
            late < Duration::from_millis(100),
            "answered {late:?} after the drain began"
        );
    }
    assert_eq!(server.wait_exit(STEP), Some(Exit::Code(0)));
}

/// A long-polling client through three upgrades while items are created:
/// it misses no item and sees none twice, each poll asking for the items
/// after the last id it got, on the process that serves at the moment.
#[test]
fn a_long_polling_client_misses_no_item_across_upgrades() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    process::become_subreaper().expect("prctl(PR_SET_CHILD_SUBREAPER)");
    let db = TempDb::new("poll");
    let mut server = Lameduck::start(bin(), &["--db", db.arg()], STEP).expect("lameduck starts");
    let addr = server.addr();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stop = CancellationToken::new();
    let lasts: Vec<Arc<AtomicU64>> = (0..5).map(|_| Arc::default()).collect();
    let pollers: Vec<_> = lasts
        .iter()
        .map(|last| {
            rt.spawn(followers::follow_polls(
                addr,
                0,
                Duration::from_secs(5),
                last.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let writing = CancellationToken::new();
    let writer = rt.spawn(create_items(
        addr,
        Duration::from_millis(10),
        writing.clone(),
    ));
    for n in 1..=3 {
        std::thread::sleep(Duration::from_millis(400));
        let upgraded = server
            .upgrade(STEP)
            .unwrap_or_else(|e| panic!("upgrade {n}: {e}"));
        assert_eq!(upgraded.old_exit, Exit::Code(0));
    }
    std::thread::sleep(Duration::from_millis(400));
    writing.cancel();
    let (created, failed) = rt.block_on(writer).unwrap();
    assert_eq!(failed, 0);
    rt.block_on(caught_up(&lasts, *created.last().unwrap(), STEP));
    stop.cancel();
    for (i, poller) in pollers.into_iter().enumerate() {
        let seen = rt.block_on(poller).unwrap();
        assert_eq!(
            seen.ids, created,
            "poller {i} got every item once, in order"
        );
        assert!(seen.moves >= 3, "poller {i} moved at each drain: {seen:?}");
    }
    assert_eq!(server.terminate(STEP).unwrap(), Exit::Code(0));
}
