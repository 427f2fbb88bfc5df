//! The stores, in-process: the contract every store keeps (run here on
//! the memory store and SQLite, and on PostgreSQL in `postgres.rs`), then
//! SQLite's own: cancellation reaching the database, writes that finish or
//! vanish whole, and the cleaner. Each test has its own database file in
//! the temp dir. The real binary under signals is in `storage_binary.rs`.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use lameduck::store::{MemoryStore, SqliteStore, Store};
use lameduck::{App, Config, Outcome, Server, cleaner};
use support::contract::{Opened, assert_every_call_is_cancelled, store_contract};
use support::http::{self, get, request};
use support::storage::{
    Answer, TempDb, WriteHold, event_count, hold_writes_open, integrity_check, open_raw, seed,
    stored_items, try_request,
};
use support::{TestServer, test_config};
use tokio_util::sync::CancellationToken;

/// A fresh memory store (`--db :memory:`).
async fn open_memory() -> Opened {
    Opened {
        store: Arc::new(MemoryStore::new()),
        keep: Box::new(()),
    }
}

/// A SQLite store on a fresh file, kept until the test ends.
async fn open_sqlite() -> Opened {
    let db = TempDb::new("contract");
    Opened {
        store: Arc::new(SqliteStore::open(&db.path).expect("open store")),
        keep: Box::new(db),
    }
}

store_contract!(memory_store, open_memory);
store_contract!(sqlite_store, open_sqlite);

/// A search text that nearly matches everywhere in the seeded names (all
/// `a`s): LIKE's substring match tries every position and gets 30
/// characters in before failing, so each row costs ~6,000 comparisons.
/// Over 200,000 rows that is seconds of honest work (about 2 s measured on
/// a debug build), with a table of only ~43 MB.
const SLOW_SEARCH: &str = "/api/items?q=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaab";
const SEEDED_ROWS: u64 = 200_000;

/// A file with the schema and `SEEDED_ROWS` items of 200 characters.
fn seeded_db(tag: &str) -> TempDb {
    let db = TempDb::new(tag);
    drop(SqliteStore::open(&db.path).expect("create schema"));
    seed(&open_raw(&db.path), SEEDED_ROWS, 200, None);
    db
}

/// A server over a SQLite store on `db`.
async fn start_on(db: &TempDb, config: Config) -> TestServer {
    let store = SqliteStore::open(&db.path).expect("open store");
    TestServer::start_server(Server::with_store(config, Arc::new(store))).await
}

/// A server over `store`, which the test keeps a handle on.
async fn start_with(store: &Arc<SqliteStore>, config: Config) -> TestServer {
    TestServer::start_server(Server::with_store(config, store.clone())).await
}

fn post_body(name: &str) -> String {
    format!(r#"{{"name":"{name}"}}"#)
}

/// The contract's pre-cancelled token, seen from inside SQLite: no call
/// reaches the database. The store holds every write open for 10 s
/// (the test hook), so a create that got as far as a transaction would
/// take 10 s and show up in `writes_held`.
#[tokio::test]
async fn a_cancelled_token_returns_cancelled_without_touching_the_database() {
    let db = TempDb::new("precancel");
    let (store, hold) = held_store(&db, Duration::from_secs(10));
    let started = Instant::now();
    assert_every_call_is_cancelled(&store).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let counters = store.counters();
    assert_eq!(hold.writes_held(), 0, "no write reached a transaction");
    assert_eq!(counters.writes_rolled_back.load(Relaxed), 0);
    assert_eq!(counters.queries_interrupted.load(Relaxed), 0);
    assert!(stored_items(&open_raw(&db.path)).is_empty());
}

/// A store on `db` whose writes are held open (the test hook) for `hold`,
/// and the count of writes held so far.
fn held_store(db: &TempDb, hold: Duration) -> (SqliteStore, WriteHold) {
    hold_writes_open(SqliteStore::open(&db.path).unwrap(), hold)
}

/// The API over SQLite: create, paginate with `limit`/`after`, get,
/// delete (204 then 404), bad input refused with 400/422 — and everything
/// is still there after the server stops and a new one opens the file.
#[tokio::test]
async fn items_are_paginated_validated_and_still_there_after_a_restart() {
    let db = TempDb::new("api");
    let server = start_on(&db, test_config()).await;
    let addr = server.addr;
    for i in 1..=5 {
        let res = request(
            addr,
            "POST",
            "/api/items",
            Some(&post_body(&format!("item {i}"))),
        )
        .await;
        assert_eq!(res.status, 201, "{}", res.text());
        assert_eq!(
            res.header("location"),
            Some(format!("/api/items/{i}").as_str())
        );
    }
    assert_eq!(ids_at(addr, "/api/items?limit=2").await, [1, 2]);
    assert_eq!(ids_at(addr, "/api/items?limit=2&after=2").await, [3, 4]);
    let found = ids_at(addr, "/api/items?q=EM%204").await;
    assert_eq!(found, [4], "search is case-insensitive");
    assert_eq!(get(addr, "/api/items/3").await.status, 200);
    assert_eq!(
        request(addr, "DELETE", "/api/items/3", None).await.status,
        204
    );
    assert_eq!(
        request(addr, "DELETE", "/api/items/3", None).await.status,
        404
    );
    assert_eq!(get(addr, "/api/items/3").await.status, 404);

    let too_long = "n".repeat(201);
    for (body, status) in [
        (post_body(""), 422),
        (post_body("   "), 422),
        (post_body(&too_long), 422),
        (r#"{"name":"x","ttl_secs":999999999999}"#.to_string(), 422),
        (r#"{"name":"#.to_string(), 400),
        (r#"{"name":"x","extra":1}"#.to_string(), 400),
    ] {
        let res = request(addr, "POST", "/api/items", Some(&body)).await;
        assert_eq!(res.status, status, "{body}: {}", res.text());
        assert!(
            res.text().contains("\"error\""),
            "JSON error: {}",
            res.text()
        );
    }
    for path in [
        "/api/items?limit=1001",
        "/api/items?limit=0",
        "/api/items?q=",
    ] {
        assert_eq!(get(addr, path).await.status, 400, "{path}");
    }
    server.shutdown();
    server.report_within(Duration::from_secs(10)).await;

    let again = start_on(&db, test_config()).await;
    assert_eq!(ids_at(again.addr, "/api/items").await, [1, 2, 4, 5]);
    again.shutdown();
    again.report_within(Duration::from_secs(10)).await;
    let conn = open_raw(&db.path);
    assert!(stored_items(&conn).iter().all(|i| i.create_events == 1));
    assert_eq!(event_count(&conn), 6, "five creates and one delete");
}

/// The ids in a `GET path` list answer, which must be 200.
async fn ids_at(addr: std::net::SocketAddr, path: &str) -> Vec<u64> {
    let res = get(addr, path).await;
    assert_eq!(res.status, 200, "{path}: {}", res.text());
    let items: Vec<serde_json::Value> = serde_json::from_slice(&res.body).unwrap();
    items.iter().map(|i| i["id"].as_u64().unwrap()).collect()
}

/// Cancellation reaches SQLite: a client that disconnects in the middle of
/// a seconds-long search gets its statement interrupted (counted by the
/// store when SQLite reports `SQLITE_INTERRUPT`) within 100 ms, and the
/// blocking thread is free again (no read running).
#[tokio::test]
async fn a_client_leaving_mid_search_interrupts_the_statement_within_100ms() {
    let db = seeded_db("leave");
    let server = start_on(&db, test_config()).await;
    let store = server.app.metrics.store.clone();
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, SLOW_SEARCH).await;
    server
        .wait_until(Duration::from_secs(5), "search running", |_| {
            store.reads_running.load(Relaxed) == 1
        })
        .await;

    drop(conn); // The client leaves.
    let left = Instant::now();
    server
        .wait_until(Duration::from_secs(5), "statement interrupted", |_| {
            store.queries_interrupted.load(Relaxed) == 1 && store.reads_running.load(Relaxed) == 0
        })
        .await;
    let took = left.elapsed();
    eprintln!("disconnect -> statement interrupted and thread free: {took:?}");
    assert!(took < Duration::from_millis(100), "took {took:?}");

    // The reader connection went back to the pool and works.
    assert_eq!(get(server.addr, "/api/items?limit=1").await.status, 200);
    server.shutdown();
    let report = server.report_within(Duration::from_secs(10)).await;
    assert_eq!(report.outcome, Outcome::Drained);
}

/// The hard deadline reaches SQLite too: a search still running when the
/// shutdown deadline passes is answered 503 and its statement interrupted,
/// instead of holding a thread until it finishes.
#[tokio::test]
async fn the_shutdown_deadline_interrupts_a_running_search() {
    let db = seeded_db("deadline-read");
    let config = Config {
        shutdown_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let server = start_on(&db, config).await;
    let store = server.app.metrics.store.clone();
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, SLOW_SEARCH).await;
    server
        .wait_until(Duration::from_secs(5), "search running", |_| {
            store.reads_running.load(Relaxed) == 1
        })
        .await;

    server.shutdown();
    let res = http::read_response(&mut conn).await.expect("an answer");
    assert_eq!(res.status, 503);
    let report = server.report_within(Duration::from_secs(10)).await;
    assert_eq!(report.outcome, Outcome::ForcedByDeadline);
    // Counted on the blocking thread, which may finish just after `run`.
    let deadline = Instant::now() + Duration::from_secs(2);
    while store.queries_interrupted.load(Relaxed) == 0 {
        assert!(Instant::now() < deadline, "search was not interrupted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A write whose client leaves mid-transaction is not cancelled: it runs
/// to commit as a tracked task, and the drain waits for it even though its
/// connection is gone. The store holds the transaction open (test hook)
/// for up to 1 s so that the client can leave and the drain begin while it
/// is half done.
#[tokio::test]
async fn a_write_whose_client_left_commits_and_the_drain_waits_for_it() {
    let db = TempDb::new("left-write");
    let (store, hold) = held_store(&db, Duration::from_secs(1));
    let store = Arc::new(store);
    let server = start_with(&store, test_config()).await;
    let mut conn = http::connect(server.addr).await;
    let body = post_body("outlives its client");
    let head = format!(
        "POST /api/items HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http::send(&mut conn, head.as_bytes()).await;
    server
        .wait_until(Duration::from_secs(5), "write held open", |_| {
            hold.writes_held() == 1
        })
        .await;

    drop(conn); // The client leaves mid-write.
    server.shutdown();
    let app = server.app.clone();
    let report = server.report_within(Duration::from_secs(10)).await;
    assert_eq!(report.outcome, Outcome::Drained);

    let items = stored_items(&open_raw(&db.path));
    assert_eq!(items.len(), 1, "the write committed before the exit");
    assert_eq!(items[0].name, "outlives its client");
    assert_eq!(items[0].create_events, 1, "complete: item and its event");
    assert_eq!(store.counters().writes_rolled_back.load(Relaxed), 0);
    assert_eq!(app.metrics.writes_during_drain.load(Relaxed), 1);
}

/// A write still half done when the shutdown deadline passes rolls back:
/// the client gets 503, and the file has neither the item nor its event.
/// The test hook would hold the transaction for 30 s; the forced shutdown
/// is what ends it.
#[tokio::test]
async fn a_write_forced_past_the_deadline_rolls_back_and_leaves_no_trace() {
    let db = TempDb::new("deadline-write");
    let (store, hold) = held_store(&db, Duration::from_secs(30));
    let store = Arc::new(store);
    let config = Config {
        shutdown_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let server = start_with(&store, config).await;
    let (addr, body) = (server.addr, post_body("never half written"));
    let post = tokio::spawn(async move { try_request(addr, "POST", "/api/items", &body).await });
    server
        .wait_until(Duration::from_secs(5), "write held open", |_| {
            hold.writes_held() == 1
        })
        .await;
    server.shutdown();
    let report = server.report_within(Duration::from_secs(10)).await;
    assert_eq!(report.outcome, Outcome::ForcedByDeadline);
    match post.await.unwrap() {
        Answer::Status(status, body) => assert_eq!(status, 503, "{body}"),
        other => panic!("expected a 503, got {other:?}"),
    }
    assert_eq!(store.counters().writes_rolled_back.load(Relaxed), 1);
    assert_eq!(store.counters().writes_open.load(Relaxed), 0);

    let conn = open_raw(&db.path);
    assert_eq!(integrity_check(&conn), "ok");
    assert!(stored_items(&conn).is_empty(), "no item");
    assert_eq!(event_count(&conn), 0, "no event either");
}

/// The same with a second signal instead of the deadline: the forced close
/// rolls the open transaction back.
#[tokio::test]
async fn a_second_signal_mid_write_rolls_back() {
    let db = TempDb::new("signal-write");
    let (store, hold) = held_store(&db, Duration::from_secs(30));
    let store = Arc::new(store);
    let server = start_with(&store, test_config()).await;
    let (addr, body) = (server.addr, post_body("never half written"));
    let post = tokio::spawn(async move { try_request(addr, "POST", "/api/items", &body).await });
    server
        .wait_until(Duration::from_secs(5), "write held open", |_| {
            hold.writes_held() == 1
        })
        .await;
    server.shutdown();
    server
        .wait_until(Duration::from_secs(5), "draining", |app| {
            app.shutdown.is_draining()
        })
        .await;
    server.force();
    let report = server.report_within(Duration::from_secs(10)).await;
    assert_eq!(report.outcome, Outcome::ForcedBySignal);
    assert_eq!(store.counters().writes_rolled_back.load(Relaxed), 1);
    // The connection was aborted: no answer, or a 503. Never a 201.
    let answer = post.await.unwrap();
    assert!(
        matches!(answer, Answer::Cut | Answer::Status(503, _)),
        "{answer:?}"
    );
    let conn = open_raw(&db.path);
    assert!(stored_items(&conn).is_empty());
    assert_eq!(event_count(&conn), 0);
}

/// The cleaner deletes expired items, in batches of `cleanup_batch`, and
/// leaves the others.
#[tokio::test]
async fn the_cleaner_removes_expired_items_and_keeps_the_rest() {
    let db = TempDb::new("cleaner");
    let config = Config {
        cleanup_interval: Duration::from_millis(100),
        cleanup_batch: 2,
        ..test_config()
    };
    let server = start_on(&db, config).await;
    let mut expired = Vec::new();
    for i in 0..7 {
        let body = if i < 5 {
            format!(r#"{{"name":"short-lived {i}","ttl_secs":0}}"#)
        } else {
            post_body(&format!("kept {i}"))
        };
        let res = request(server.addr, "POST", "/api/items", Some(&body)).await;
        assert_eq!(res.status, 201);
        if i < 5 {
            expired.push(support::storage::id_of(&res.text()).unwrap());
        }
    }
    server
        .wait_until(Duration::from_secs(10), "5 items purged", |app| {
            app.metrics.items_purged.load(Relaxed) == 5
        })
        .await;
    assert_eq!(ids_at(server.addr, "/api/items").await, [6, 7]);
    for id in expired {
        assert_eq!(
            get(server.addr, &format!("/api/items/{id}")).await.status,
            404
        );
    }
    assert!(
        server.app.metrics.cleaner_batches.load(Relaxed) >= 3,
        "5 items, 2 per batch"
    );
    server.shutdown();
    server.report_within(Duration::from_secs(10)).await;
    let conn = open_raw(&db.path);
    let expire_events: i64 = conn
        .query_row(
            "SELECT count(*) FROM item_events WHERE op = 'expire'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(expire_events, 5);
}

/// A cancelled cleaner stops within one batch: at most one batch commits
/// after the cancellation, and the purge is left unfinished rather than
/// holding the shutdown. (20,000 expired items in batches of 20.)
#[tokio::test]
async fn a_cancelled_cleaner_stops_within_one_batch() {
    let db = TempDb::new("cleaner-cancel");
    let store = Arc::new(SqliteStore::open(&db.path).unwrap());
    const SEEDED: u64 = 20_000;
    seed(&open_raw(&db.path), SEEDED, 50, Some(1));
    let config = Config {
        cleanup_batch: 20,
        ..test_config()
    };
    let app = Arc::new(App::new(config, store));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(cleaner::run(
        app.clone(),
        Duration::from_millis(10),
        cancel.clone(),
    ));
    let started = Instant::now();
    while app.metrics.cleaner_batches.load(Relaxed) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "cleaner did not start"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    cancel.cancel();
    let at_cancel = app.metrics.cleaner_batches.load(Relaxed);
    let cancelled = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("cleaner stopped")
        .unwrap();
    let after = app.metrics.cleaner_batches.load(Relaxed);
    eprintln!(
        "cleaner: {at_cancel} batches at cancel, {after} at exit, stopped in {:?}",
        cancelled.elapsed()
    );
    assert!(after - at_cancel <= 1, "{at_cancel} -> {after}");

    let left = stored_items(&open_raw(&db.path)).len() as u64;
    let purged = app.metrics.items_purged.load(Relaxed);
    assert!(left > 0, "the purge was cut short, not finished");
    assert_eq!(left + purged, SEEDED, "every committed batch stayed done");
}
