//! The item store, behind a small interface whose every method takes a
//! cancellation token.
//!
//! The token is the Rust spelling of the `ctx` in the article's
//! `store.List(r.Context())`. Inside an `async fn`, dropping the future is
//! enough to stop the work — but only the part that runs *inside* the
//! future. Work handed elsewhere (a blocking thread, a database driver, a
//! spawned task) keeps running after the drop unless something tells it to
//! stop. The token is that something: the handler cancels it when the
//! request goes away (see `service`), and the store checks it.
//!
//! Reads and writes read the token differently, on purpose:
//!
//! * a **read** stops as soon as its token is cancelled *or its future is
//!   dropped*: nobody is waiting for the answer, so finishing it only burns
//!   a thread. [`SqliteStore`] interrupts the running statement.
//! * a **write** ignores its future being dropped and runs to commit; its
//!   token means "roll back instead of committing". The handler gives it
//!   the server's `abandon_writes` token, cancelled only when the shutdown
//!   is forced, not the request's (see `service`'s items handler).
//!
//! Three implementations:
//!
//! * [`SqliteStore`] ([`sqlite`]): a file on disk, WAL mode, one writer and a
//!   few reader connections, all called on Tokio's blocking pool. What the
//!   binary runs with by default.
//! * [`PostgresStore`] ([`postgres`]): a Postgres database over a small
//!   pool of tokio-postgres connections, `--db postgres://…`. A dropped
//!   read sends the server a cancel request, the async twin of SQLite's
//!   interrupt.
//! * [`MemoryStore`] (`memory.rs`): a `Mutex<BTreeMap>`, lost on exit. What
//!   `--db :memory:` and [`crate::Server::new`] use, and most tests.
//!
//! The store is the last thing the shutdown closes ([`Store::close`]),
//! after the drain has waited for the last write.
//!
//! # Where the data lives
//!
//! | setting | meaning |
//! |---|---|
//! | `--db PATH` / `LAMEDUCK_DB` | the SQLite file; default `lameduck.db` in the working directory, created if missing |
//! | `--db :memory:` | the in-memory [`MemoryStore`]: nothing touches the disk, everything is gone at exit |
//! | `--db postgres://user@host:port/dbname` | the [`PostgresStore`]: a PostgreSQL database, over a small pool of `tokio-postgres` connections (no TLS: a URL asking for it is a start-up error) |
//! | `--cleanup-interval`, `--cleanup-batch` | how often the cleaner purges expired items (default `60s`), and at most how many per transaction (default `500`) |
//!
//! Next to the file, SQLite keeps `PATH-wal` (committed writes not yet
//! copied into the main file) and `PATH-shm` (the index that lets several
//! processes share the WAL). After a clean exit the last connection copies
//! the WAL back and removes both; after a crash they hold committed data,
//! so copy all three files together, or use SQLite's `.backup`.
//!
//! `:memory:` means the `MemoryStore`, not SQLite's own in-memory
//! database: that one belongs to one connection, and the SQLite store uses
//! five (one writer, four readers, so reads never queue behind writes).
//!
//! Two processes can use the same file at once: that is a rolling restart
//! or an upgrade, the old instance draining while the new one starts.
//! Readers never wait for the writer in WAL mode; writers take the write
//! lock with `BEGIN IMMEDIATE` and wait for the other process's writer up
//! to the 5 s `busy_timeout`; should that run out, the client gets `503` +
//! `Retry-After`. The `-shm` file is shared memory, so both processes must
//! be on one host. The schema is versioned with `PRAGMA user_version`;
//! missing migrations run at start-up in one `BEGIN IMMEDIATE`
//! transaction, so two instances starting together migrate once, and a
//! file from a newer version is refused (exit 2).
//!
//! Choose PostgreSQL when the instances run on several hosts and must
//! share one set of items, or when the database must outlive and be
//! backed up apart from any one of them. For shutdown, what changes with
//! it: the schema is migrated under `pg_advisory_xact_lock`; a database
//! that cannot be reached at start-up is retried for about 10 s, each
//! attempt logged, then the binary exits 2 with one line; a database that
//! goes away *after* start-up makes reads and writes `503` + `Retry-After`
//! until it is back, while `/livez` stays `200`.
//!
//! # Why writes are not cancelled by a client leaving
//!
//! A read belongs to its request: if the client leaves, nobody wants the
//! answer. A write does not. Whether an item exists must not depend on
//! when a client gave up: it may have timed out a millisecond before the
//! commit, and it may retry and look for the item. So `POST` and `DELETE`
//! run the store call as a task of their own (`ShutdownState::spawn_write`,
//! a `TaskTracker`); the handler only waits for its result, and dropping
//! the handler drops the wait, not the write. The drain waits for those
//! tasks as it waits for connections, within the same `shutdown_timeout`,
//! even when the client has already gone (`server::drain`). Each write is
//! one transaction (an item and its event in `item_events`), so a
//! half-written item, an item row without its event, never exists.
//!
//! # What survives what
//!
//! | event | in-flight reads | in-flight writes | acknowledged (`201`) writes | exit |
//! |---|---|---|---|---|
//! | SIGTERM, drain finishes in time | answered | finish and commit; their clients get their `201` (or, if they left, the item is stored anyway) | all stored | 0 |
//! | `shutdown_timeout` passes | interrupted; `503` + `Retry-After` | told to roll back, given up to `force_grace`; their clients get `503` (nothing stored) | all stored | 1 |
//! | second signal | interrupted; connections aborted | rolled back; connections aborted | all stored | 1 |
//! | SIGKILL, OOM kill | gone | gone: an uncommitted transaction is discarded when the database is next opened | all stored (SQLite: `PRAGMA integrity_check` is `ok`) | — |
//! | power loss, kernel crash | gone | gone | all stored (SQLite: `synchronous = FULL`, see `schema.rs`) | — |
//! | the connection to PostgreSQL breaks after `COMMIT` was sent | — | committed or not, nobody here can tell ([`StoreError::CommitUnknown`]); the client gets `503` + `Retry-After`, and a body saying that a retry with the same `Idempotency-Key` is safe | all stored | — |
//! | any of the above, then a retry with the same `Idempotency-Key` | — | — | the stored response again (same status, body, `Location`), nothing written twice; across restarts on SQLite and PostgreSQL, and across instances on one database | — |
//!
//! With `:memory:` every acknowledged item lasts until the process exits,
//! and nothing after. One window is unavoidable anywhere: a write that has
//! already started its `COMMIT` when the force comes, or when the process
//! dies, completes, and its client may never hear so. An item can exist
//! that its client was not told about; never the reverse, and never half
//! of one. A client that sends an `Idempotency-Key` can close that window
//! itself: the key and the response are stored in the write's own
//! transaction, so its retry finds the response exactly when the write
//! committed ([`once`]).
//!
//! # What `/metrics` shows of the store
//!
//! | metric | meaning |
//! |---|---|
//! | `lameduck_queries_interrupted_total` | reads stopped because their request went away (SQLite: `sqlite3_interrupt`; PostgreSQL: a cancel request) |
//! | `lameduck_writes_during_drain_total` | writes that committed after the drain began |
//! | `lameduck_cleaner_batches_total` | cleaner transactions committed |
//! | `lameduck_store_reads_running` | reads running now |
//! | `lameduck_store_writes_open` | write transactions open now |
//! | `lameduck_writes_rolled_back_total` | write transactions rolled back by a forced shutdown |
//!
//! # How the stores are tested
//!
//! The store contract (a pre-cancelled token returns `Cancelled` at once
//! from every method, `list` and `search` page by id, every acknowledged
//! write is visible to the next read) is one suite, `tests/support/contract.rs`,
//! run on the memory store and SQLite in `tests/storage.rs` and on
//! PostgreSQL in `tests/postgres.rs`. `tests/storage.rs` then checks
//! SQLite's own promises in-process (interrupted reads, writes that commit
//! or roll back whole, the cleaner's batches), and `tests/storage_binary.rs`
//! the real binary: 8 clients writing through SIGTERM (exit 0) and SIGKILL
//! (integrity `ok`) lose no acknowledged item, and two instances on one
//! file serve every write and read-back without an error.
//!
//! The PostgreSQL tests (`tests/postgres.rs`, `tests/postgres_binary.rs`)
//! start a throwaway server of their own for each test (`initdb` and
//! `pg_ctl` on a free loopback port; under root as the `postgres` user), so
//! they need PostgreSQL's server binaries, on `PATH` or in Debian's
//! `/usr/lib/postgresql/NN/bin`. A plain `cargo test` ignores them; run
//! them with `cargo test --test postgres --test postgres_binary -- --ignored`
//! after `apt-get install postgresql`. Asked for without PostgreSQL, they
//! fail and say so; they never skip.

mod memory;
mod name;
pub mod once;
pub mod postgres;
mod schema;
pub mod sqlite;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use memory::MemoryStore;
pub use name::check_name;
pub use once::{Key, Once, StoredResponse, Write, Written};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
#[cfg(feature = "test-harness")]
pub use sqlite::StepHook;

/// One stored item, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Assigned by the store, increasing, never reused.
    pub id: u64,
    /// 1–200 characters, no control characters ([`check_name`]).
    pub name: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// When the cleaner may remove it (seconds since the epoch), if ever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// What a client asks to create.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// Checked by the handler; the store checks again ([`check_name`]).
    pub name: String,
    /// Lifetime in seconds; `None` keeps it forever.
    pub ttl_secs: Option<u64>,
}

/// A window of the item list: ids strictly greater than `after`, at most
/// `limit` of them, in id order.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Start after this id (`None`: from the beginning).
    pub after: Option<u64>,
    /// At most this many items.
    pub limit: usize,
}

/// `Err(Cancelled)` once `token` is cancelled: the check every store call
/// makes before it starts, and every write between its steps and before
/// `COMMIT`.
pub(crate) fn unless_cancelled(token: &CancellationToken) -> Result<(), StoreError> {
    if token.is_cancelled() {
        Err(StoreError::Cancelled)
    } else {
        Ok(())
    }
}

/// Why a store call failed. The handler maps each kind to a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The token was cancelled before or during the call. For a write, the
    /// transaction was rolled back: nothing of it is stored.
    Cancelled,
    /// The store cannot take the call now but may soon: another writer
    /// (another process on the same file) held the database for longer
    /// than the busy timeout, a deadlock or a serialization failure, too
    /// many connections, or the disk is full. Worth retrying.
    Busy,
    /// The database server cannot be reached, or is restarting: the
    /// connection was refused or broke, the server is shutting down or
    /// still starting, no connection could be had in time. Worth retrying
    /// once the pool has reconnected; the process itself is fine (only the
    /// Postgres store returns it). A write that meets it did not commit:
    /// the break came before `COMMIT` was sent.
    Unreachable(String),
    /// The connection broke after a write's `COMMIT` was sent and before
    /// its answer came: the write may or may not be stored, and nothing
    /// on this side can tell (only the Postgres store returns it). A retry
    /// with the same `Idempotency-Key` is safe: it finds the stored
    /// response if the write committed, and writes if it did not.
    CommitUnknown(String),
    /// The store cannot hold what it was given (a name [`check_name`]
    /// refuses, a constraint of the database). Nothing was stored; the
    /// same call will fail the same way, so it is the caller's input that
    /// must change.
    Rejected(String),
    /// The store cannot answer (it is broken or gone).
    Unavailable(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Cancelled => f.write_str("cancelled"),
            StoreError::Busy => f.write_str("database busy"),
            StoreError::Unreachable(why) => write!(f, "database unreachable: {why}"),
            StoreError::CommitUnknown(why) => {
                write!(f, "connection lost after COMMIT was sent: {why}")
            }
            StoreError::Rejected(why) => write!(f, "rejected: {why}"),
            StoreError::Unavailable(why) => write!(f, "store unavailable: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A boxed store future. Boxed because trait objects cannot return
/// `impl Future`; the store is not on the connection hot path.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The store interface. Every method takes the token that says "stop".
pub trait Store: Send + Sync + 'static {
    /// Lists a page of items.
    fn list(&self, page: Page, cancel: CancellationToken) -> StoreFuture<'_, Vec<Item>>;
    /// A page of the items whose name contains `text` (ASCII
    /// case-insensitive). Deliberately unindexed: a full scan, the slow
    /// path that shows a query being interrupted.
    fn search(
        &self,
        text: String,
        page: Page,
        cancel: CancellationToken,
    ) -> StoreFuture<'_, Vec<Item>>;
    /// Creates one item: one transaction.
    fn create(&self, item: NewItem, cancel: CancellationToken) -> StoreFuture<'_, Item>;
    /// The highest id of any item stored now (`Ok(None)`: none is). Ids
    /// are never reused, so every item created from now on has a higher
    /// one: where the live feed of new items starts (`long_lived::feed`).
    fn newest_id(&self, cancel: CancellationToken) -> StoreFuture<'_, Option<u64>>;
    /// One item by id; `Ok(None)` if there is none.
    fn get(&self, id: u64, cancel: CancellationToken) -> StoreFuture<'_, Option<Item>>;
    /// Deletes one item: one transaction; `Ok(false)` if there was none.
    fn delete(&self, id: u64, cancel: CancellationToken) -> StoreFuture<'_, bool>;
    /// Does `write` once for `key`: in one transaction, looks the key up,
    /// and either answers from its row ([`Once::Replayed`],
    /// [`Once::Mismatch`]) or does the write and stores the key, the
    /// request's fingerprint and the rendered response beside it
    /// ([`Once::Done`]). [`Once::InProgress`] if another request holds the
    /// key now (Postgres: another instance; see [`once`]). The token means
    /// what it means for any write: roll back instead of committing.
    fn write_once(
        &self,
        write: Write,
        key: Key,
        cancel: CancellationToken,
    ) -> StoreFuture<'_, Once>;
    /// Removes at most `limit` keys that expired at or before `now_ms`
    /// (milliseconds since the epoch), in one transaction; returns how
    /// many went. The cleaner calls it after the items' purge.
    fn purge_expired_keys(
        &self,
        now_ms: u64,
        limit: usize,
        cancel: CancellationToken,
    ) -> StoreFuture<'_, usize>;
    /// Removes at most `limit` items whose `expires_at` is at or before
    /// `now`, in one transaction; returns how many went. The cleaner calls
    /// it in a loop, checking its token between batches.
    fn purge_expired(
        &self,
        now: u64,
        limit: usize,
        cancel: CancellationToken,
    ) -> StoreFuture<'_, usize>;
    /// The store's counters, shared with [`crate::metrics::Metrics`].
    fn counters(&self) -> Arc<StoreCounters>;
    /// Lets go of the database, once nothing will call the store again:
    /// the server calls it at the end of its shutdown, after the drain
    /// has waited for every write (or the force has abandoned them). Why
    /// after and not before: a write the drain is waiting for needs its
    /// connection to commit. Nothing for the SQLite and memory stores
    /// (their files and maps are released when the store is dropped); the
    /// Postgres store ends its sessions politely, so the server frees
    /// their backends at once.
    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// What the store counts, for `/metrics` and for tests that must observe
/// the database without sleeping.
#[derive(Debug, Default)]
pub struct StoreCounters {
    /// Reads stopped because their reader went away (client left,
    /// request timeout, shutdown deadline): SQLite statements stopped by
    /// `sqlite3_interrupt`; Postgres queries sent a cancel request, counted
    /// once the backend is idle again.
    pub queries_interrupted: AtomicU64,
    /// Reads running now (gauge): on a blocking thread (SQLite), or
    /// holding a pooled connection (Postgres, until the backend is idle
    /// after a cancel). Back to zero means the threads and backends are
    /// free again.
    pub reads_running: AtomicU64,
    /// Write transactions open now (gauge).
    pub writes_open: AtomicU64,
    /// Write transactions rolled back because their token was cancelled
    /// (a forced shutdown) before they committed.
    pub writes_rolled_back: AtomicU64,
}

/// Opens the store the binary runs with, from the `--db` value:
///
/// * `postgres://…` or `postgresql://…`: a [`PostgresStore`]
///   ([`PostgresStore::connect`]: retried while the database is
///   unreachable, for `STARTUP_CONNECT_WAIT`, 10 s);
/// * `:memory:`: a [`MemoryStore`] (the old throwaway behaviour: nothing
///   touches the disk, everything is gone at exit);
/// * any other value: a path, a [`SqliteStore`] on that file, created if
///   missing.
///
/// Async because the Postgres store's connections are tasks on the
/// runtime; call it inside one. A SQLite file is opened on the blocking
/// pool, as every other SQLite call is.
///
/// Why not SQLite's own `:memory:`: an in-memory SQLite database belongs to
/// one connection, and the store uses several (one writer, a few readers)
/// so that reads never queue behind writes. Sharing one would need the
/// shared-cache mode, whose locking differs from WAL's; the `MemoryStore`
/// says "throwaway" more plainly.
pub async fn open(db: impl AsRef<Path>) -> Result<Arc<dyn Store>, StoreError> {
    let db = db.as_ref();
    if let Some(url) = db.to_str().filter(|s| postgres::is_postgres_url(s)) {
        return Ok(Arc::new(PostgresStore::connect(url).await?));
    }
    if db.as_os_str() == ":memory:" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    let path = db.to_owned();
    match tokio::task::spawn_blocking(move || SqliteStore::open(&path)).await {
        Ok(store) => Ok(Arc::new(store?)),
        Err(_) => Err(StoreError::Unavailable(
            "opening the database panicked".into(),
        )),
    }
}

/// How the `--db` value is shown in logs: a Postgres URL without its
/// password, a path as it is.
pub fn describe(db: &Path) -> String {
    match db.to_str() {
        Some(url) if postgres::is_postgres_url(url) => postgres::redacted(url),
        _ => db.display().to_string(),
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch, now: the idempotency keys' clock.
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
