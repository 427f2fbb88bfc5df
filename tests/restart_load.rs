//! Restarts under load: the real binary upgraded by real SIGHUPs while
//! workers from `lameduck::testing::load` send requests over loopback.
//! (Clients racing a drain in-process are in `keepalive_race.rs`.)
//!
//! The upgrades are the library's (`lameduck::testing::binary`), which the
//! restart bench uses too, so the bench and the tests restart the server
//! the same way; the bench itself runs in `restart_bench_runs_in_quick_mode.rs`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use lameduck::testing::binary::{Lameduck, Upgraded};
use lameduck::testing::load::{self, Load, Plan, Record, Work};
use lameduck::testing::process::{self, Exit};
use tokio_util::sync::CancellationToken;

/// How long a start, an upgrade or a shutdown may take; lameduck's own
/// deadline is 15 s.
const STEP_LIMIT: Duration = Duration::from_secs(30);

/// The binary tests put real load on two shared cores: one at a time.
static ONE_LOAD_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Upgrades per binary test.
const UPGRADES: usize = 3;

/// Runs `plan`'s load against a `lameduck ARGS` started here, upgrades it
/// by SIGHUP [`UPGRADES`] times with load before, between and after, and
/// returns what the load saw, what each upgrade did, and the server (still
/// running, for checks afterwards).
fn upgrades_under_load(
    load: Load,
    work: Work,
    workers: usize,
    args: &[&str],
) -> (Record, Vec<Upgraded>, Lameduck) {
    let _one = ONE_LOAD_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    process::become_subreaper().expect("prctl(PR_SET_CHILD_SUBREAPER)");
    let bin = Path::new(env!("CARGO_BIN_EXE_lameduck"));
    let mut server = Lameduck::start(bin, args, STEP_LIMIT).expect("lameduck starts");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let plan = Plan {
        work,
        run_for: Duration::from_secs(60),
        ..Plan::new(server.addr(), load, workers)
    };
    let stop = CancellationToken::new();
    let running = rt.spawn({
        let stop = stop.clone();
        async move { load::run(&plan, stop).await }
    });
    let pause = Duration::from_millis(300);
    std::thread::sleep(pause);
    let mut upgrades = Vec::new();
    for _ in 0..UPGRADES {
        match server.upgrade(STEP_LIMIT) {
            Ok(done) => upgrades.push(done),
            Err(e) => {
                stop.cancel();
                panic!("upgrade {} failed: {e}", upgrades.len() + 1);
            }
        }
        std::thread::sleep(pause);
    }
    stop.cancel();
    let record = rt.block_on(running).expect("load ran");
    (record, upgrades, server)
}

/// Every upgrade replaced the process, every old process exited 0, and no
/// two generations shared a pid.
fn assert_clean_upgrades(upgrades: &[Upgraded], server: &Lameduck) {
    let mut pids: Vec<i32> = upgrades.iter().map(|u| u.old_pid).collect();
    pids.push(server.pid());
    for (i, u) in upgrades.iter().enumerate() {
        assert_ne!(u.old_pid, u.new_pid, "upgrade {i}: same pid");
        assert_eq!(u.old_exit, Exit::Code(0), "upgrade {i}: {u:?}");
    }
    let mut unique = pids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), UPGRADES + 1, "pids {pids:?}");
}

/// No request failed, and plenty succeeded.
fn assert_no_failures(record: &Record, what: &str) {
    let total = record.total();
    let failures: Vec<_> = record.failures().take(10).collect();
    assert_eq!(
        total.failed(),
        0,
        "{what}: {total:?}; first failures (time since start, class): {failures:?}"
    );
    assert!(total.ok > 50, "{what}: hardly any load: {total:?}");
}

fn sighup_upgrades_fail_no_request(load: Load) {
    let (record, upgrades, server) = upgrades_under_load(load, Work::List, 12, &[]);
    assert_no_failures(&record, load.name());
    assert_clean_upgrades(&upgrades, &server);
    let last = server.terminate(STEP_LIMIT);
    // `Unknown`: gone, but reaped elsewhere; only an exit code other than
    // 0 is a failed drain.
    assert!(
        matches!(last, Ok(Exit::Code(0) | Exit::Unknown)),
        "the last process drains and exits 0: {last:?}"
    );
}

/// Back-to-back keep-alive requests from 12 workers lose nothing across
/// three SIGHUP upgrades: the new process serves the same socket before
/// the old one stops, and the old one closes its connections without
/// racing the next request.
#[test]
fn keepalive_load_loses_no_request_across_sighup_upgrades() {
    sighup_upgrades_fail_no_request(Load::KeepAlive);
}

/// Keep-alive with think time, whose connections sit idle for 10 ms between
/// requests when the drain begins, loses nothing across three upgrades.
#[test]
fn think_time_load_loses_no_request_across_sighup_upgrades() {
    sighup_upgrades_fail_no_request(Load::Think);
}

/// A new connection per request loses nothing across three upgrades: no
/// connection is left unaccepted in a listener that closes.
#[test]
fn churn_load_loses_no_request_across_sighup_upgrades() {
    sighup_upgrades_fail_no_request(Load::Churn);
}

/// Items created by POSTs across three upgrades, in a SQLite file shared
/// by the generations: every one acknowledged with 201 is in the database
/// afterwards, under the id and name the 201 gave.
#[test]
fn every_acknowledged_create_survives_sighup_upgrades() {
    let dir = std::env::temp_dir().join(format!("lameduck-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("items.db");
    let db_arg = db.to_str().unwrap().to_owned();
    let (record, upgrades, server) =
        upgrades_under_load(Load::KeepAlive, Work::Create, 8, &["--db", &db_arg]);
    assert_no_failures(&record, "POST");
    assert_clean_upgrades(&upgrades, &server);
    let last = server.terminate(STEP_LIMIT);
    // `Unknown`: gone, but reaped elsewhere; only an exit code other than
    // 0 is a failed drain.
    assert!(
        matches!(last, Ok(Exit::Code(0) | Exit::Unknown)),
        "the last process drains and exits 0: {last:?}"
    );

    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: HashMap<u64, String> = conn
        .prepare("SELECT id, name FROM items")
        .unwrap()
        .query_map([], |row| Ok((row.get::<_, i64>(0)? as u64, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let missing: Vec<_> = record
        .acked
        .iter()
        .filter(|a| stored.get(&a.id) != Some(&a.name))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged items missing, e.g. {missing:?}",
        record
            .acked
            .iter()
            .filter(|a| stored.get(&a.id) != Some(&a.name))
            .count(),
        record.acked.len()
    );
    assert_eq!(record.acked.len() as u64, record.total().ok);
    drop(conn);
    let _ = std::fs::remove_dir_all(&dir);
}
