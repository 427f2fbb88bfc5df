//! `Idempotency-Key` on the real binary, on the memory store and on a
//! SQLite file: the rules (replay, `422`, a keyed `DELETE`), 20 requests
//! with one key at once, a restart between a request and its retry, the
//! `409` for a key being written, the expiry and the cleaner, and the
//! header's syntax. The same over PostgreSQL, with a connection cut after
//! `COMMIT` and two instances, is in `idempotency_postgres.rs`.

mod support;

use std::time::{Duration, Instant};

use support::binary::Binary;
use support::eventually_async;
use support::http::request_with;
use support::idempotency::{
    assert_created, assert_replay_of, id_of, is_replay, item, items_listed, metric, post_keyed,
    race_one_key, the_key_rules_hold,
};
use support::storage::{TempDb, open_raw};

/// Rows in the SQLite file's `idempotency_keys`, read behind the server's
/// back.
fn keys_in_file(db: &TempDb) -> i64 {
    open_raw(&db.path)
        .query_row("SELECT count(*) FROM idempotency_keys", [], |r| r.get(0))
        .expect("count keys")
}

/// Items in the SQLite file.
fn items_in_file(db: &TempDb) -> i64 {
    open_raw(&db.path)
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .expect("count items")
}

/// On the memory store: a retry with the key and the same body gets the
/// first response (status, `Location`, body) without writing, marked
/// `Idempotent-Replayed: true`; another body is `422` and writes nothing;
/// a bare key is the quoted one; a keyed `DELETE` retried is `204` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_memory_a_retry_replays_the_stored_response_and_another_body_is_422() {
    let server = Binary::start(&["--db", ":memory:"]);
    the_key_rules_hold(server.addr).await;
    assert!(metric(server.addr, "lameduck_idempotent_replays_total").await >= 3);
    assert_eq!(
        metric(server.addr, "lameduck_idempotency_mismatches_total").await,
        1
    );
}

/// The same rules on a SQLite file, where the key's row is in the file
/// beside the item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_retry_replays_the_stored_response_and_another_body_is_422() {
    let db = TempDb::new("idem-rules");
    let server = Binary::start(&["--db", db.arg()]);
    the_key_rules_hold(server.addr).await;
    assert_eq!(keys_in_file(&db), 3, "two creates and a delete");
}

/// 20 requests with one key, sent together: exactly one writes (`201`),
/// each of the others is its replay or a `409` with `Retry-After`, and
/// the store holds one item. On memory and on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_requests_with_one_key_write_once() {
    let db = TempDb::new("idem-race");
    for arg in [":memory:", db.arg()] {
        let server = Binary::start(&["--db", arg]);
        let race = race_one_key(&[server.addr], 20, "race", &item("raced")).await;
        race.assert_wrote_once();
        assert_eq!(items_listed(server.addr).await, 1, "{arg}: one item");
    }
    assert_eq!(items_in_file(&db), 1);
    assert_eq!(keys_in_file(&db), 1);
}

/// A SIGTERM and a new process on the same file between a request and its
/// retry change nothing: the retry gets the stored response, and the file
/// holds one item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_restart_between_the_request_and_its_retry_changes_nothing() {
    let db = TempDb::new("idem-restart");
    let mut server = Binary::start(&["--db", db.arg()]);
    let first = post_keyed(server.addr, "across", &item("kept")).await;
    assert_created(&first);
    server.signal(libc::SIGTERM);
    let code = tokio::task::block_in_place(|| server.exit_code_within(Duration::from_secs(20)));
    assert_eq!(code, 0);

    let server = Binary::start(&["--db", db.arg()]);
    let retry = post_keyed(server.addr, "across", &item("kept")).await;
    assert_replay_of(&retry, &first);
    assert_eq!(items_in_file(&db), 1);
}

/// A request whose key is being written by another request of the same
/// process is answered `409` with `Retry-After` at once, and writes
/// nothing; once the first is answered, a retry is its replay. The first
/// is held by the test holding the file's write lock (a `BEGIN IMMEDIATE`
/// of its own), which the server waits for within its busy timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_key_is_being_written_gets_409_at_once() {
    let db = TempDb::new("idem-409");
    let server = Binary::start(&["--db", db.arg()]);
    let addr = server.addr;
    let lock = open_raw(&db.path);
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();

    let first = tokio::spawn(async move { post_keyed(addr, "held", &item("held")).await });
    eventually_async(Duration::from_secs(10), "the first write waits", || async {
        metric(addr, "lameduck_store_writes_open").await == 1
    })
    .await;
    let started = Instant::now();
    let second = post_keyed(addr, "held", &item("held")).await;
    assert_eq!(second.status, 409, "{}", second.text());
    assert_eq!(second.header("retry-after"), Some("1"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "at once, not after the wait"
    );

    lock.execute_batch("ROLLBACK").unwrap();
    let first = first.await.unwrap();
    assert_created(&first);
    let retry = post_keyed(addr, "held", &item("held")).await;
    assert_replay_of(&retry, &first);
    assert_eq!(items_in_file(&db), 1);
    assert_eq!(
        metric(addr, "lameduck_idempotency_conflicts_total").await,
        1
    );
}

/// With `--idempotency-ttl 2s`, retries within the TTL are replays, and
/// the first request after it is a new write; the cleaner then removes the
/// expired key from the file. Retried every 100 ms, so the count says when
/// the key stopped being honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_a_new_write_and_the_cleaner_removes_it() {
    let db = TempDb::new("idem-ttl");
    let ttl = Duration::from_secs(2);
    let server = Binary::start(&[
        "--db",
        db.arg(),
        "--idempotency-ttl",
        "2s",
        "--cleanup-interval",
        "200ms",
    ]);
    // Before the request: the key's time starts inside it.
    let sent = Instant::now();
    let first = post_keyed(server.addr, "brief", &item("brief")).await;
    let id = assert_created(&first);
    let mut replays = 0;
    let second = loop {
        assert!(
            sent.elapsed() < Duration::from_secs(20),
            "the key never expired"
        );
        let res = post_keyed(server.addr, "brief", &item("brief")).await;
        if !is_replay(&res) {
            break res;
        }
        replays += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let honoured = sent.elapsed();
    eprintln!("{replays} replays, then a new write after {honoured:?}");
    assert!(honoured >= ttl, "honoured for the whole TTL: {honoured:?}");
    assert!(replays >= 5, "{replays}");
    assert!(id_of(&second) > id, "a new item");
    assert_eq!(items_in_file(&db), 2);

    // The second write's key expires in turn, and the cleaner takes it.
    eventually_async(
        Duration::from_secs(15),
        "the cleaner removes the keys",
        || async { keys_in_file(&db) == 0 },
    )
    .await;
    assert!(metric(server.addr, "lameduck_idempotency_keys_purged_total").await >= 1);
}

/// A malformed key is `400` with the reason, on both write routes, and
/// writes nothing: empty, over 255 characters, unclosed, with parameters,
/// a bare value with a space, non-ASCII, or two fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_key_is_400_and_writes_nothing() {
    let server = Binary::start(&["--db", ":memory:"]);
    let long = format!("\"{}\"", "k".repeat(256));
    let body = item("never");
    for value in [
        "\"\"",
        long.as_str(),
        "\"open",
        "\"k\";p=1",
        "a b",
        "\"caf\u{e9}\"",
    ] {
        let res = request_with(
            server.addr,
            "POST",
            "/api/items",
            &[("Idempotency-Key", value)],
            Some(&body),
        )
        .await;
        assert_eq!(res.status, 400, "{value:?}: {}", res.text());
        assert!(res.text().contains("Idempotency-Key"), "{}", res.text());
        let res = request_with(
            server.addr,
            "DELETE",
            "/api/items/1",
            &[("Idempotency-Key", value)],
            None,
        )
        .await;
        assert_eq!(res.status, 400, "DELETE {value:?}");
    }
    let two = [("Idempotency-Key", "\"a\""), ("Idempotency-Key", "\"b\"")];
    let res = request_with(server.addr, "POST", "/api/items", &two, Some(&body)).await;
    assert_eq!(res.status, 400);
    assert!(res.text().contains("more than one"), "{}", res.text());
    assert_eq!(items_listed(server.addr).await, 0);
}
