//! The SQLite file: the settings every connection gets, and the schema,
//! versioned so that later changes can migrate an existing file.
//!
//! # Settings, and what survives what
//!
//! * `journal_mode = WAL`: a commit appends to `lameduck.db-wal` and a reader
//!   never waits for the writer (it reads the last committed state). The
//!   mode is stored in the file, so every process opening it later,
//!   including a second instance starting while this one drains, gets it.
//! * `synchronous = FULL`: each commit `fsync`s the WAL before it returns,
//!   so the `201` a client receives is sent only after the item is on the
//!   disk. It survives a process crash (`SIGKILL`, a panic, the OOM killer)
//!   *and* a power loss or kernel crash. `NORMAL` would skip that fsync:
//!   still safe from corruption and from process crashes (the WAL is in
//!   the OS page cache, which outlives the process), but the last commits
//!   before a power loss could vanish after they were acknowledged. One
//!   fsync per write is the price of "201 means stored".
//! * `busy_timeout`: another process holding the write lock makes a writer
//!   wait (SQLite retries with back-off) instead of failing at once with
//!   "database is locked". This is what lets two instances share the file.
//!
//! # Versions
//!
//! `PRAGMA user_version` holds the number of [`MIGRATIONS`] applied. At
//! start-up the missing ones run in one `BEGIN IMMEDIATE` transaction, so
//! two instances starting together migrate once: the second waits for the
//! first, then finds nothing to do. A file from a newer version is refused
//! rather than misread.

use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, TransactionBehavior};

/// How long a statement waits for another connection's lock before
/// failing with `SQLITE_BUSY`. A write transaction here lasts
/// milliseconds; five seconds covers a burst of them from another process
/// with a wide margin, and stays well inside the request timeout.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Each entry takes the schema from version `i` to `i + 1`. Append only:
/// never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: items, and the log of what happened to them. An item and its
    // `create` event are written in one transaction, so an item without its
    // event would be a half-done write: the tests look for exactly that.
    // AUTOINCREMENT keeps ids from being reused after a delete, so an
    // `?after=` cursor or a stale link never names a different item.
    "CREATE TABLE items (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        name       TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        created_at INTEGER NOT NULL,
        expires_at INTEGER
    );
    CREATE INDEX items_expiry ON items (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE item_events (
        seq     INTEGER PRIMARY KEY,
        item_id INTEGER NOT NULL,
        op      TEXT    NOT NULL CHECK (op IN ('create', 'delete', 'expire')),
        at      INTEGER NOT NULL
    );
    CREATE INDEX item_events_item ON item_events (item_id);",
    // 2: idempotency keys (`store::once`), each written in the same
    // transaction as its write, with the response that write got. Times in
    // milliseconds, so that a short `--idempotency-ttl` is not rounded to
    // the second; the index is the cleaner's.
    "CREATE TABLE idempotency_keys (
        key         TEXT    PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
        fingerprint BLOB    NOT NULL,
        status      INTEGER NOT NULL,
        location    TEXT,
        body        BLOB    NOT NULL,
        created_ms  INTEGER NOT NULL,
        expires_ms  INTEGER NOT NULL
    );
    CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_ms);",
];

/// The schema version this build writes.
pub(crate) const VERSION: u32 = MIGRATIONS.len() as u32;

/// Settings that belong to a connection, not to the file.
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The query planner's stability guarantee: one plan per statement,
    // whatever values are bound. Without it, a statement whose plan
    // looked at a bound value (the `LIMIT ?` of every list does) is
    // marked stale by the next bind and parsed and planned again at its
    // next step, so `prepare_cached` saved nothing: 70 % of a list's
    // time in SQLite went to preparing it again. None of these queries
    // has a better plan for some values than for others (no `ANALYZE`
    // statistics, no prefix `LIKE`).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.pragma_update(None, "synchronous", "FULL")
}

/// Puts the file in WAL mode (a no-op if it already is).
pub fn enable_wal(conn: &Connection) -> Result<(), String> {
    // `journal_mode` answers with the mode now in force, so it is a query.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|e| format!("cannot set WAL mode: {e}"))?;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(format!("journal_mode stayed {mode}; WAL is required"))
    }
}

/// Brings the schema up to [`VERSION`]; returns the version found.
pub fn migrate(conn: &mut Connection) -> Result<u32, String> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| format!("cannot lock the database to migrate it: {e}"))?;
    let found: u32 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| e.to_string())?;
    if found > VERSION {
        return Err(format!(
            "the database has schema version {found}; this build knows up to {VERSION}"
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)
            .map_err(|e| format!("migration {} failed: {e}", i + 1))?;
    }
    tx.pragma_update(None, "user_version", VERSION)
        .map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migrating twice is a no-op the second time, and a file from the
    /// future is refused.
    #[test]
    fn migrations_run_once_and_newer_files_are_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn), Ok(0));
        assert_eq!(migrate(&mut conn), Ok(VERSION));
        conn.pragma_update(None, "user_version", VERSION + 1)
            .unwrap();
        assert!(migrate(&mut conn).unwrap_err().contains("schema version"));
    }
}
