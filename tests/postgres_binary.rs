//! The real binary on PostgreSQL (`--db postgres://…`), each test with a
//! throwaway server of its own: cancellation reaching the database, what
//! a client was told against what the database holds after SIGTERM,
//! SIGKILL, a rolling restart and a database restart, and the start-up
//! errors. Ignored by a plain `cargo test`; run them with
//! `cargo test --test postgres_binary -- --ignored` once PostgreSQL is
//! installed.
//!
//! The database is read behind the server's back with `psql`, as an
//! operator would, and held to the same check as the SQLite file in
//! `storage_binary.rs`.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::binary::Binary;
use support::http::{self, get, request};
use support::postgres::{PgServer, free_port};
use support::storage::{
    WriteLog, Writers, assert_holds_what_was_acked, hand_over_under_writes, item_name,
};
use support::{eventually, eventually_async};

/// Each client sends at most this many requests, so a test that goes
/// wrong still ends by itself.
const MAX_EACH: usize = 2_000;
const CLIENTS: usize = 8;

/// A search text that nearly matches everywhere in the seeded names (all
/// `a`s), as in `storage.rs`: each row costs thousands of comparisons.
const SLOW_SEARCH: &str = "/api/items?q=aaaaaaaaaaaaaaaaaaaaaaaaaaaaab";
/// Rows enough for the search to run for seconds in one backend (about
/// 4 s for `ILIKE` on this project's 2-core test machine; ~280 MB).
const SEEDED_ROWS: u64 = 800_000;

/// Checks the `postgres` database against what the clients were told;
/// returns how many items it holds.
fn assert_db_matches(pg: &PgServer, log: &WriteLog) -> usize {
    assert_holds_what_was_acked(
        &pg.stored_items("postgres"),
        pg.event_count("postgres"),
        log,
    )
}

fn summary(log: &WriteLog) -> String {
    format!(
        "acked {}, read back {}, statuses {:?}, no answer {}",
        log.acked.len(),
        log.reads,
        log.statuses,
        log.no_answer
    )
}

/// Cancellation reaches PostgreSQL: a client that disconnects in the
/// middle of a seconds-long search gets its query cancelled in the
/// database within 200 ms — gone from `pg_stat_activity`, and the server's
/// log shows PostgreSQL cancelling it at our request — instead of
/// scanning on for nobody. (Dropping the future only stops the wait; a
/// guard in the store sends PostgreSQL's cancel request.) The wait is
/// measured with `psql` polls, each a few milliseconds, so it is an upper
/// bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: apt-get install postgresql"]
async fn a_client_leaving_mid_search_cancels_the_query_in_postgres_within_200ms() {
    let pg = PgServer::start();
    // One backend runs the whole scan, with no parallel workers to count.
    pg.psql(
        "postgres",
        "ALTER DATABASE postgres SET max_parallel_workers_per_gather = 0",
    );
    let server = Binary::start(&["--db", &pg.url()]);
    pg.seed("postgres", SEEDED_ROWS);
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, SLOW_SEARCH).await;
    let searching = || pg.active_queries("postgres", "FROM items");
    eventually(
        Duration::from_secs(10),
        "search running in PostgreSQL",
        || searching() == 1,
    )
    .await;

    drop(conn); // The client leaves.
    let left = Instant::now();
    eventually(
        Duration::from_secs(10),
        "query gone from PostgreSQL",
        || searching() == 0,
    )
    .await;
    let took = left.elapsed();
    eprintln!("disconnect -> query no longer active in PostgreSQL: {took:?}");
    assert!(took < Duration::from_millis(200), "took {took:?}");
    assert!(
        pg.log().contains("canceling statement due to user request"),
        "PostgreSQL cancelled it at our request: {}",
        pg.log()
    );
    // The connection went back to the pool and works.
    assert_eq!(get(server.addr, "/api/items?limit=1").await.status, 200);
}

/// SIGTERM in the middle of 8 clients' writes: the drain lets the writes
/// in flight commit, the process exits 0, and the database holds every
/// item a client was told about, each complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: apt-get install postgresql"]
async fn every_acknowledged_write_survives_sigterm_and_the_exit_is_clean() {
    let pg = PgServer::start();
    let mut server = Binary::start(&["--db", &pg.url()]);
    let writers = Writers::start(&[server.addr], CLIENTS, MAX_EACH, false);
    writers.wait_acked(200, Duration::from_secs(20)).await;

    server.signal(libc::SIGTERM);
    let code = tokio::task::block_in_place(|| server.exit_code_within(Duration::from_secs(20)));
    // The clients stop once the listener refuses them.
    let log = writers.join().await;
    eprintln!("{}", summary(&log));
    assert_eq!(code, 0, "logs: {:#?}", server.logs());
    assert!(log.failures.is_empty(), "{:?}", log.failures);
    let stored = assert_db_matches(&pg, &log);
    assert!(stored >= log.acked.len());
}

/// SIGKILL in the middle of 8 clients' writes: no drain at all, yet the
/// database holds every acknowledged item, each complete. (A `201` is sent
/// only after `COMMIT` returns; PostgreSQL rolls back the transactions
/// whose connection vanished.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: apt-get install postgresql"]
async fn every_acknowledged_write_survives_sigkill() {
    let pg = PgServer::start();
    let server = Binary::start(&["--db", &pg.url()]);
    let writers = Writers::start(&[server.addr], CLIENTS, MAX_EACH, false);
    writers.wait_acked(200, Duration::from_secs(20)).await;

    server.signal(libc::SIGKILL);
    // Dropping the handle reaps the killed process.
    tokio::task::block_in_place(|| drop(server));
    let log = writers.join().await;
    eprintln!("{}", summary(&log));
    assert!(log.failures.is_empty(), "{:?}", log.failures);
    assert_db_matches(&pg, &log);
}

/// Two instances on one database, the old one draining while the new one
/// starts (a rolling restart): both serve writes and read-backs while they
/// overlap, and no client sees an error. The new instance migrates (a
/// no-op, under the advisory lock) beside the old one's write load.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: apt-get install postgresql"]
async fn two_instances_share_one_database_while_one_drains_and_one_starts() {
    let pg = PgServer::start();
    let handover = hand_over_under_writes(&pg.url()).await;
    handover.assert_clean();
    assert_db_matches(&pg, &handover.log);
}

/// PostgreSQL stopped and started again under 8 clients' writes: while it
/// is down, writes and reads are `503` with `Retry-After` (the store cannot
/// answer, the server is fine) and `/livez` stays `200`, so no supervisor
/// restarts a healthy process; once it is back the same process serves
/// writes again by itself; no client ever gets a `500`, and nothing
/// acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: apt-get install postgresql"]
async fn a_database_restart_under_load_is_503_then_recovery_with_nothing_lost() {
    let pg = PgServer::start();
    let mut server = Binary::start(&["--db", &pg.url()]);
    let addr = server.addr;
    let writers = Writers::start(&[addr], CLIENTS, MAX_EACH, true);
    writers.wait_acked(100, Duration::from_secs(20)).await;

    tokio::task::block_in_place(|| pg.stop());
    let body = format!(r#"{{"name":"{}"}}"#, item_name(99, 0));
    for (method, path, body) in [
        ("POST", "/api/items", Some(body.as_str())),
        ("GET", "/api/items?limit=1", None),
        ("GET", "/api/items/1", None),
    ] {
        let res = request(addr, method, path, body).await;
        assert_eq!(res.status, 503, "{method} {path}: {}", res.text());
        assert!(
            res.header("retry-after").is_some(),
            "{method} {path}: no Retry-After"
        );
    }
    assert_eq!(
        get(addr, "/livez").await.status,
        200,
        "alive, database or not"
    );

    tokio::task::block_in_place(|| pg.start_again());
    let probes = std::sync::atomic::AtomicUsize::new(1);
    eventually_async(Duration::from_secs(30), "writes succeed again", || async {
        let n = probes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = format!(r#"{{"name":"{}"}}"#, item_name(99, n));
        request(addr, "POST", "/api/items", Some(&body))
            .await
            .status
            == 201
    })
    .await;
    let so_far = writers.acked();
    writers
        .wait_acked(so_far + 100, Duration::from_secs(30))
        .await;
    assert_eq!(get(addr, "/livez").await.status, 200);
    writers.stop();
    let log = writers.join().await;
    server.signal(libc::SIGTERM);
    let code = tokio::task::block_in_place(|| server.exit_code_within(Duration::from_secs(20)));

    eprintln!("{}", summary(&log));
    assert_eq!(code, 0, "logs: {:#?}", server.logs());
    assert!(
        log.failures.iter().all(|(status, _)| *status == 503),
        "only 503s while the database was down: {:?}",
        log.failures
    );
    assert_db_matches(&pg, &log);
}

/// Runs the binary with `args` until it exits (at most `within`); returns
/// its exit code, its stderr, and how long it ran. For start-up errors,
/// which come before it listens.
fn run_to_exit(args: &[&str], within: Duration) -> (i32, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lameduck"))
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lameduck");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lameduck {args:?} still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let text = reader.join().expect("stderr reader");
    (status.code().expect("exited by a signal"), text, took)
}

/// A database nobody answers for is a start-up error: the binary retries
/// for a bounded time (a database starting beside it gets a chance),
/// logging each attempt, then exits 2 with one line saying why, instead
/// of listening with a store that cannot work.
#[test]
#[ignore = "needs PostgreSQL: apt-get install postgresql"]
fn an_unreachable_database_is_exit_2_with_one_line_after_the_retries() {
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", free_port());
    let (code, stderr, took) = run_to_exit(&["--db", &url], Duration::from_secs(120));
    eprintln!("gave up after {took:?}: {stderr}");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        took < Duration::from_secs(60),
        "the retry is bounded: {took:?}"
    );
    let (errors, retries): (Vec<&str>, Vec<&str>) =
        stderr.lines().partition(|l| l.starts_with("lameduck: "));
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert_eq!(stderr.lines().last(), Some(errors[0]), "{stderr}");
    assert!(
        retries.iter().all(|l| l.contains("not reachable yet")),
        "the other lines are the retries' log: {stderr}"
    );
}

/// A URL that asks for TLS (`sslmode=require`) is refused at start-up
/// with exit 2 and one line, even with a database there to answer: the
/// store has no TLS, and connecting in the clear when TLS was asked for
/// would be worse than not starting.
#[test]
#[ignore = "needs PostgreSQL: apt-get install postgresql"]
fn a_url_asking_for_tls_is_exit_2_with_one_line() {
    let pg = PgServer::start();
    let url = format!("{}?sslmode=require", pg.url());
    let (code, stderr, _) = run_to_exit(&["--db", &url], Duration::from_secs(60));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("lameduck: "), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("tls") || stderr.to_lowercase().contains("ssl"),
        "the line names TLS: {stderr}"
    );
}

/// A database migrated by a newer build (a higher schema version than this
/// build knows) is refused at start-up, exit 2 with one line, and left as
/// it was: an older binary must not write to a newer schema.
#[test]
#[ignore = "needs PostgreSQL: apt-get install postgresql"]
fn a_database_from_a_newer_version_is_refused_with_exit_2() {
    let pg = PgServer::start();
    let url = pg.fresh_database("newer");
    pg.psql(
        "newer",
        "CREATE TABLE lameduck_schema (version INTEGER NOT NULL, \
         one_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one_row)); \
         INSERT INTO lameduck_schema (version) VALUES (99)",
    );
    let (code, stderr, _) = run_to_exit(&["--db", &url], Duration::from_secs(60));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("schema version 99"), "{stderr}");
    let version = pg.psql("newer", "SELECT version FROM lameduck_schema");
    assert!(version.contains("99"), "left as it was: {version}");
}
