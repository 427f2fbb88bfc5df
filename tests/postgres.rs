//! The PostgreSQL store, in-process, against a throwaway server of its
//! own per test: the contract every store keeps (`support/contract.rs`),
//! and the throwaway server itself. Every test here is ignored by a plain `cargo test`: run
//! them with `cargo test --test postgres -- --ignored` once PostgreSQL is
//! installed. The real binary on PostgreSQL is in `postgres_binary.rs`.

mod support;

use std::time::Duration;

use support::contract::{Opened, store_contract};
use support::postgres::PgServer;

/// A `PostgresStore` on a fresh server, opened as the binary opens
/// `--db postgres://…`; the server lives as long as the store.
async fn open_postgres() -> Opened {
    let pg = tokio::task::spawn_blocking(PgServer::start)
        .await
        .expect("start PostgreSQL");
    let store = lameduck::store::open(pg.url().as_str())
        .await
        .expect("open the PostgreSQL store");
    Opened {
        store,
        keep: Box::new(pg),
    }
}

store_contract!(
    postgres_store,
    open_postgres,
    #[ignore = "needs PostgreSQL: apt-get install postgresql"]
);

/// The harness itself: the throwaway server answers, a fresh database
/// can be made on it, and a restart keeps the data and the port.
#[test]
#[ignore = "needs PostgreSQL: apt-get install postgresql"]
fn the_throwaway_server_answers_and_keeps_its_data_across_a_restart() {
    let pg = PgServer::start();
    let url = pg.fresh_database("harness");
    assert!(url.ends_with("/harness"), "{url}");
    pg.psql(
        "harness",
        "CREATE TABLE t (x int); INSERT INTO t VALUES (7)",
    );
    pg.restart();
    assert_eq!(pg.psql("harness", "SELECT x FROM t").trim(), "7");
    pg.stop();
    assert!(
        std::net::TcpStream::connect_timeout(&pg.addr(), Duration::from_secs(1)).is_err(),
        "nothing listens once stopped"
    );
}
