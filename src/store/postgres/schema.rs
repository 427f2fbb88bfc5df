//! The Postgres schema: the same tables as SQLite's (`store/schema.rs`),
//! versioned, migrated at start-up.
//!
//! # Versions
//!
//! `lameduck_schema` holds one row: the number of [`MIGRATIONS`] applied.
//! At start-up the missing ones run in one transaction, so a migration is
//! applied whole or not at all: Postgres's DDL is transactional, unlike
//! MySQL's. A database from a newer version is refused rather than
//! misread.
//!
//! # Two instances starting together
//!
//! Both would find version 0 and both would `CREATE TABLE items`; the
//! second would fail (or, with `IF NOT EXISTS`, race on the catalog). So
//! the migration transaction first takes `pg_advisory_xact_lock`: a lock
//! on a number of our choosing ([`LOCK_KEY`]), held until the transaction
//! ends. The second instance waits there, then reads the version the
//! first one committed and has nothing to do. SQLite gets the same from
//! `BEGIN IMMEDIATE`, which takes the file's write lock.

use tokio_postgres::Client;

use super::errors::message;

/// The advisory lock migrations run under: the bytes of `"lameduck"` read
/// as a big-endian integer, so that it does not collide with another
/// application's lock on the same database by accident, and so that
/// whoever finds it in `pg_locks` can tell whose it is.
pub(crate) const LOCK_KEY: i64 = i64::from_be_bytes(*b"lameduck");

/// Each entry takes the schema from version `i` to `i + 1`. Append only:
/// never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: items, and the log of what happened to them, as in SQLite. An
    // item and its `create` event are written in one transaction, so an
    // item without its event would be a half-done write. Identity columns
    // never hand out an id twice (a rolled-back insert leaves a gap), so
    // an `?after=` cursor or a stale link never names a different item.
    // `char_length` counts characters, as SQLite's `length` does.
    "CREATE TABLE items (
        id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name       TEXT   NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
        created_at BIGINT NOT NULL,
        expires_at BIGINT
    );
    CREATE INDEX items_expiry ON items (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE item_events (
        seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        item_id BIGINT NOT NULL,
        op      TEXT   NOT NULL CHECK (op IN ('create', 'delete', 'expire')),
        at      BIGINT NOT NULL
    );
    CREATE INDEX item_events_item ON item_events (item_id);",
    // 2: idempotency keys (`store::once`), as in SQLite: each written in
    // the same transaction as its write, with the response that write got.
    "CREATE TABLE idempotency_keys (
        key         TEXT     PRIMARY KEY CHECK (char_length(key) BETWEEN 1 AND 255),
        fingerprint BYTEA    NOT NULL,
        status      SMALLINT NOT NULL,
        location    TEXT,
        body        BYTEA    NOT NULL,
        created_ms  BIGINT   NOT NULL,
        expires_ms  BIGINT   NOT NULL
    );
    CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_ms);",
];

/// The schema version this build writes.
pub(crate) const VERSION: i32 = MIGRATIONS.len() as i32;

/// Brings the schema up to [`VERSION`] in one transaction, under the
/// advisory lock; returns the version found.
pub async fn migrate(client: &mut Client) -> Result<i32, String> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| format!("cannot begin the migration: {e}"))?;
    // Released by COMMIT or ROLLBACK, or when the session ends: a process
    // that dies mid-migration cannot leave it held.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| format!("cannot lock the database to migrate it: {}", message(&e)))?;
    // `IF NOT EXISTS` on a table that exists says so in a NOTICE, which
    // the driver would log on every start-up: not news.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await
        .map_err(|e| message(&e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS lameduck_schema (
            version INTEGER NOT NULL,
            one_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one_row)
        )",
    )
    .await
    .map_err(|e| format!("cannot create lameduck_schema: {}", message(&e)))?;
    let found: i32 = tx
        .query_opt("SELECT version FROM lameduck_schema", &[])
        .await
        .map_err(|e| message(&e))?
        .map_or(0, |row| row.get(0));
    if found > VERSION {
        return Err(format!(
            "the database has schema version {found}; this build knows up to {VERSION}"
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| format!("migration {} failed: {}", i + 1, message(&e)))?;
    }
    tx.execute(
        "INSERT INTO lameduck_schema (version) VALUES ($1)
         ON CONFLICT (one_row) DO UPDATE SET version = EXCLUDED.version",
        &[&VERSION],
    )
    .await
    .map_err(|e| message(&e))?;
    tx.commit().await.map_err(|e| message(&e))?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock key reads as the name it was made from.
    #[test]
    fn the_advisory_lock_key_spells_lameduck() {
        assert_eq!(&LOCK_KEY.to_be_bytes(), b"lameduck");
    }
}
