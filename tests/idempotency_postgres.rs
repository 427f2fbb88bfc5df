//! `Idempotency-Key` on the real binary over PostgreSQL, each test with a
//! throwaway server of its own: a retry after the database connection
//! broke right after `COMMIT`, 20 requests with one key over two
//! instances, a restart of both the binary and the database between a
//! request and its retry, and the `409` across instances. Ignored by a
//! plain `cargo test`; run them with
//! `cargo test --test idempotency_postgres -- --ignored` once PostgreSQL
//! is installed (`.ci/run` does).

mod support;

use std::io::Write as _;
use std::time::{Duration, Instant};

use support::binary::Binary;
use support::eventually;
use support::idempotency::{
    assert_created, assert_replay_of, id_of, is_replay, item, post_keyed, race_one_key,
};
use support::pg_proxy::PgProxy;
use support::postgres::PgServer;

/// Rows in `idempotency_keys`.
fn keys_in(pg: &PgServer) -> i64 {
    pg.psql("postgres", "SELECT count(*) FROM idempotency_keys")
        .trim()
        .parse()
        .unwrap()
}

/// The items stored, and that each has its one `create` event.
fn items_in(pg: &PgServer) -> Vec<u64> {
    let items = pg.stored_items("postgres");
    assert!(items.iter().all(|i| i.create_events == 1), "{items:?}");
    items.iter().map(|i| i.id).collect()
}

/// The connection to PostgreSQL breaks after the create's `COMMIT` was
/// sent and done, before its answer came back: the client gets `503` with
/// `Retry-After`, and a body that says the write may be stored and that a
/// retry with the same key is safe. The retry returns the stored item
/// (`201`, its `Location` and body), and the table holds one row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: apt-get install postgresql"]
async fn a_retry_after_the_connection_broke_after_commit_returns_the_stored_item() {
    let pg = PgServer::start();
    let proxy = PgProxy::start(pg.addr()).await;
    let server = Binary::start(&["--db", &proxy.url("postgres")]);

    proxy.cut_after_next_commit();
    let lost = post_keyed(server.addr, "lost-answer", &item("once")).await;
    assert_eq!(proxy.cuts(), 1, "the connection was cut after a COMMIT");
    assert_eq!(lost.status, 503, "{}", lost.text());
    assert_eq!(lost.header("retry-after"), Some("1"));
    let said = lost.text();
    assert!(said.contains("may or may not be stored"), "{said}");
    assert!(
        said.contains("a retry with the same Idempotency-Key is safe"),
        "{said}"
    );
    let stored = items_in(&pg);
    assert_eq!(stored.len(), 1, "the write did commit");

    let retry = post_keyed(server.addr, "lost-answer", &item("once")).await;
    assert_eq!(retry.status, 201, "{}", retry.text());
    assert!(is_replay(&retry));
    assert_eq!(id_of(&retry), stored[0], "the stored item");
    let location = format!("/api/items/{}", stored[0]);
    assert_eq!(retry.header("location"), Some(location.as_str()));
    assert_eq!(items_in(&pg), stored, "one row, still");
    assert_eq!(keys_in(&pg), 1);
}

/// 20 requests with one key, sent together to two instances on one
/// database: exactly one writes, each of the others is its replay or a
/// `409`, and the table holds one row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: apt-get install postgresql"]
async fn twenty_concurrent_requests_with_one_key_over_two_instances_write_once() {
    let pg = PgServer::start();
    let a = Binary::start(&["--db", &pg.url()]);
    let b = Binary::start(&["--db", &pg.url()]);
    for round in 0..3 {
        let key = format!("race-{round}");
        let race = race_one_key(&[a.addr, b.addr], 20, &key, &item(&key)).await;
        race.assert_wrote_once();
    }
    assert_eq!(items_in(&pg).len(), 3, "one row per key");
    assert_eq!(keys_in(&pg), 3);
}

/// The binary stopped (SIGTERM) and PostgreSQL restarted between a
/// request and its retry: the new process answers the retry with the
/// stored response, and nothing is written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: apt-get install postgresql"]
async fn a_restart_between_the_request_and_its_retry_changes_nothing() {
    let pg = PgServer::start();
    let mut server = Binary::start(&["--db", &pg.url()]);
    let first = post_keyed(server.addr, "across", &item("kept")).await;
    assert_created(&first);
    server.signal(libc::SIGTERM);
    let code = tokio::task::block_in_place(|| server.exit_code_within(Duration::from_secs(20)));
    assert_eq!(code, 0);
    tokio::task::block_in_place(|| pg.restart());

    let server = Binary::start(&["--db", &pg.url()]);
    let retry = post_keyed(server.addr, "across", &item("kept")).await;
    assert_replay_of(&retry, &first);
    let other = post_keyed(server.addr, "across", &item("changed")).await;
    assert_eq!(other.status, 422, "{}", other.text());
    assert_eq!(items_in(&pg).len(), 1);
}

/// A key being written by one instance is `409` at once on the other:
/// the marker is PostgreSQL's advisory lock, held by the first request's
/// transaction. The first is held by a `psql` session that locks the
/// items table; once it lets go, the first request is `201`, and a retry
/// on the other instance is its replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: apt-get install postgresql"]
async fn a_key_being_written_by_another_instance_gets_409_at_once() {
    let pg = PgServer::start();
    let a = Binary::start(&["--db", &pg.url()]);
    let b = Binary::start(&["--db", &pg.url()]);
    let mut holder = pg.session("postgres");
    let mut stdin = holder.stdin.take().unwrap();
    writeln!(stdin, "BEGIN; LOCK TABLE items IN EXCLUSIVE MODE;").unwrap();
    stdin.flush().unwrap();
    let locked = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                  WHERE c.relname = 'items' AND l.mode = 'ExclusiveLock' AND l.granted";
    eventually(Duration::from_secs(10), "psql holds the lock", || {
        pg.psql("postgres", locked).trim() == "1"
    })
    .await;

    let addr = a.addr;
    let first = tokio::spawn(async move { post_keyed(addr, "held", &item("held")).await });
    eventually(Duration::from_secs(10), "the first insert waits", || {
        pg.active_queries("postgres", "INSERT INTO items") == 1
    })
    .await;
    let started = Instant::now();
    let other = post_keyed(b.addr, "held", &item("held")).await;
    assert_eq!(other.status, 409, "{}", other.text());
    assert_eq!(other.header("retry-after"), Some("1"));
    assert!(started.elapsed() < Duration::from_secs(2), "at once");

    writeln!(stdin, "COMMIT;").unwrap();
    drop(stdin);
    let first = first.await.unwrap();
    assert_created(&first);
    let _ = holder.wait();
    let retry = post_keyed(b.addr, "held", &item("held")).await;
    assert_replay_of(&retry, &first);
    assert_eq!(items_in(&pg).len(), 1);
}
