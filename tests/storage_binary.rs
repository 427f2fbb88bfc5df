//! The real binary on a real database file, under load and signals: what a
//! client was told is what the file holds afterwards.
//!
//! Eight clients POST continuously, each item with a distinct fixed-length
//! name. After the process is gone the test opens the file itself and
//! checks two things: every item whose `201` reached a client is there
//! with its name, and every item there is complete (a well-formed name and
//! its `create` event, written in the same transaction).

mod support;

use std::time::Duration;

use support::binary::Binary;
use support::storage::{
    TempDb, WriteLog, Writers, assert_holds_what_was_acked, event_count, hand_over_under_writes,
    integrity_check, open_raw, stored_items,
};

/// Each client sends at most this many requests, so a test that goes
/// wrong still ends by itself.
const MAX_EACH: usize = 2_000;
const CLIENTS: usize = 8;

/// Checks the file against what the clients were told; returns how many
/// items it holds.
fn assert_file_matches(db: &TempDb, log: &WriteLog) -> usize {
    let conn = open_raw(&db.path);
    assert_eq!(integrity_check(&conn), "ok");
    assert_holds_what_was_acked(&stored_items(&conn), event_count(&conn), log)
}

/// SIGTERM in the middle of a stream of writes: the drain lets the writes
/// in flight finish, the process exits 0, and the file holds every item a
/// client was told about, each complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_write_survives_sigterm_and_the_exit_is_clean() {
    let db = TempDb::new("sigterm");
    let mut server = Binary::start(&["--db", db.arg()]);
    let writers = Writers::start(&[server.addr], CLIENTS, MAX_EACH, false);
    writers.wait_acked(200, Duration::from_secs(20)).await;

    server.signal(libc::SIGTERM);
    let code = tokio::task::block_in_place(|| server.exit_code_within(Duration::from_secs(20)));
    // The clients stop once the listener refuses them.
    let log = writers.join().await;
    let report = server.wait_for_log("shutdown report", Duration::from_secs(1));
    eprintln!(
        "acked {}, statuses {:?}, no answer {}; {report}",
        log.acked.len(),
        log.statuses,
        log.no_answer
    );
    assert_eq!(code, 0, "logs: {:#?}", server.logs());
    assert!(log.failures.is_empty(), "{:?}", log.failures);
    let stored = assert_file_matches(&db, &log);
    assert!(stored >= log.acked.len());
}

/// SIGKILL in the middle of a stream of writes: no drain at all, yet the
/// file passes `PRAGMA integrity_check` and holds every acknowledged item,
/// each complete. (A `201` is sent only after the commit; WAL recovery on
/// the next open keeps committed transactions and drops the rest.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_write_survives_sigkill_and_the_file_is_intact() {
    let db = TempDb::new("sigkill");
    let server = Binary::start(&["--db", db.arg()]);
    let writers = Writers::start(&[server.addr], CLIENTS, MAX_EACH, false);
    writers.wait_acked(200, Duration::from_secs(20)).await;

    server.signal(libc::SIGKILL);
    // Dropping the handle reaps the killed process.
    tokio::task::block_in_place(|| drop(server));
    let log = writers.join().await;
    eprintln!(
        "acked {}, statuses {:?}, no answer {}",
        log.acked.len(),
        log.statuses,
        log.no_answer
    );
    assert!(log.failures.is_empty(), "{:?}", log.failures);
    assert_file_matches(&db, &log);
}

/// Two instances on one file, the old one draining while the new one
/// starts (a rolling restart): both serve writes and read-backs while they
/// overlap, and no client ever sees an error — in particular no "database
/// is locked". The new instance migrates (a no-op) under the old one's
/// write load; each waits for the other's write lock (`busy_timeout`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_one_file_while_one_drains_and_one_starts() {
    let db = TempDb::new("two");
    let handover = hand_over_under_writes(db.arg()).await;
    handover.assert_clean();
    assert_file_matches(&db, &handover.log);
}
