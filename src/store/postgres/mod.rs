//! [`PostgresStore`]: items in a Postgres database, `--db postgres://…`.
//!
//! The same [`Store`] as SQLite's, over a small pool of tokio-postgres
//! connections (deadpool-postgres). Each idea has its file:
//!
//! * `url.rs`: which `--db` values are Postgres, and the refusal of TLS;
//! * `connect.rs`: the pool's connector, and the bounded retry at
//!   start-up;
//! * `schema.rs`: the tables and their migration under an advisory lock;
//! * `cancel.rs`: the guard that cancels a read on the server;
//! * `errors.rs`: SQLSTATEs as [`StoreError`] kinds (a database that is
//!   down is a 503, never a 500).
//!
//! # The lesson: dropping a future does not stop the query
//!
//! tokio-postgres is async all the way down, so it is tempting to think a
//! read stops when its future is dropped. It does not. The query was sent
//! on the socket when the future was first polled; the backend process on
//! the server runs it to the end whether anyone is waiting or not,
//! holding its connection, its snapshot and any locks the whole time,
//! while the driver's connection task discards the rows as they arrive.
//! It is the lesson of `spawn_blocking` in the SQLite store again: the
//! work was handed elsewhere (a thread there, a server here), and only
//! telling it to stop stops it.
//!
//! Go's `db.QueryContext(ctx, …)` does this for you: when `ctx` ends, the
//! driver (lib/pq, pgx) sends Postgres a *cancel request*. Here every read
//! holds a `CancelOnDrop` guard (`cancel.rs`) that does the same when the
//! read's future is dropped (the client left, the request timed out, the
//! shutdown deadline came) or its token is cancelled, and keeps the
//! connection out of the pool until the backend is idle again. Each one
//! is counted in [`StoreCounters::queries_interrupted`]
//! (`lameduck_queries_interrupted_total`).
//!
//! # Writes are the opposite
//!
//! A write runs in one transaction, as a task of its own (the service
//! tracks it), so a client leaving does not stop it. Its token is the
//! server's `abandon_writes`, cancelled only when the shutdown is forced;
//! it is checked between the statements and just before `COMMIT`, and a
//! cancelled write rolls back.
//!
//! A transaction cannot be half applied even if the process dies in the
//! middle of it: Postgres aborts a backend's open transaction when the
//! backend's connection ends, whatever the reason (a `Terminate` message,
//! a closed socket, a killed process). What was written is in the WAL but
//! never marked committed, so no one ever sees it. The one doubt left is
//! the other way round: a connection that breaks *after* `COMMIT` was
//! sent and before its answer came leaves the client with a 503 for a
//! write that may have committed, as with any database over a network
//! ([`StoreError::CommitUnknown`]). The 503 says so, and says that a retry
//! with the same `Idempotency-Key` is safe: the key's row was in the same
//! transaction, so the retry finds the response if the write committed
//! and writes if it did not (`store::once`).
//!
//! # Outages
//!
//! The pool checks each connection as it hands it out, and one whose
//! session has ended (the server restarted, the network broke) is
//! discarded and replaced by a new one. A request that meets the outage
//! gets a 503 with `Retry-After` ([`StoreError::Unreachable`]); the ones
//! after it get a fresh connection once the server is back. `/livez`
//! never asks the store, so it stays 200 throughout: the process is fine,
//! and restarting it would not bring the database back.
//!
//! # Closing
//!
//! [`Store::close`] closes the pool after the drain, when the last write
//! has committed or rolled back: every session ends with a `Terminate`
//! message, so the server frees its backends at once and logs a clean
//! disconnection instead of an unexpected EOF.

mod cancel;
mod connect;
mod errors;
mod schema;
mod url;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::once::{self, Key, KeyRow, Once, StoredResponse, Write, Written};
use super::{
    Item, NewItem, Page, Store, StoreCounters, StoreError, StoreFuture, check_name, unix_now,
    unless_cancelled,
};
use cancel::CancelOnDrop;
use connect::TrackedConnect;

pub use url::{is_postgres_url, redacted};

/// Connections in the pool, shared by reads and writes. Postgres starts a
/// process per connection and allows 100 by default; eight lets a slow
/// search run beside ordinary reads and a few writes, and leaves room for
/// two instances at once (a rolling restart) and for many more besides.
pub(crate) const POOL_SIZE: usize = 8;

/// How long a request waits for a free connection when all
/// [`POOL_SIZE`] are busy, before it gets a 503. The same five seconds as
/// SQLite's busy timeout: long enough for a burst, well inside the
/// request timeout.
pub(crate) const POOL_WAIT: Duration = Duration::from_secs(5);

/// How long opening a new connection may take before the request gets a
/// 503. On loopback or a private network a healthy server answers in
/// milliseconds; a server that does not answer at all (a host that is
/// down drops packets instead of refusing) would otherwise hold the
/// request until the kernel gives up, minutes later.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long [`Store::close`] waits for cancel tasks to settle and for
/// sessions to say goodbye. Each is one message on an open socket, so a
/// moment is plenty; the bound only keeps a dead network from holding the
/// exit.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Items in a Postgres database. See the module docs.
pub struct PostgresStore {
    /// The connections. Dropping a pooled connection returns it;
    /// `close()` closes them all.
    pool: Pool,
    counters: Arc<StoreCounters>,
    /// Cancel requests in flight for dropped reads, each holding its
    /// connection until the backend is idle. `close()` waits for them.
    cancels: TaskTracker,
    /// One task per open connection, reading and writing its socket. A
    /// task ends when its connection is dropped (after sending
    /// `Terminate`) or lost. `close()` waits for them.
    sessions: TaskTracker,
    /// Called when a create is half done (see
    /// [`PostgresStore::with_step_hook`]). Only in the test harness.
    #[cfg(feature = "test-harness")]
    step_hook: Option<super::StepHook>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://` or
    /// `postgresql://`, no TLS), retrying for `STARTUP_CONNECT_WAIT` (10 s)
    /// while it is unreachable or starting, and migrates the schema to
    /// the newest schema version (once, even with several instances starting
    /// together). Must be called inside a Tokio runtime: the pool's
    /// connections are tasks on it.
    ///
    /// Errors are one line and never show the password: a URL that asks
    /// for TLS, a database still unreachable after the wait, a wrong
    /// password, a schema newer than this build.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let config = url::parse(url).map_err(StoreError::Unavailable)?;
        let sessions = TaskTracker::new();
        let manager = Manager::from_connect(
            config,
            TrackedConnect {
                sessions: sessions.clone(),
            },
            // `Fast`: a connection is checked by whether its session task
            // is still running, without a round trip. A server restart
            // ends every session, so this catches it; a connection that
            // broke without anyone noticing fails its next query with a
            // 503 and is discarded then.
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build the pool: {e}")))?;
        let mut first = connect::first_connection(&pool).await?;
        schema::migrate(&mut first)
            .await
            .map_err(StoreError::Unavailable)?;
        drop(first);
        Ok(PostgresStore {
            pool,
            counters: Arc::default(),
            cancels: TaskTracker::new(),
            sessions,
            #[cfg(feature = "test-harness")]
            step_hook: None,
        })
    }

    /// **Test harness only.** Calls `hook` in every create after its
    /// first statement (the item inserted, its event not yet) with the
    /// transaction open, on a blocking-pool thread so the hook may block.
    /// The same hook as [`super::SqliteStore::with_step_hook`].
    #[cfg(feature = "test-harness")]
    pub fn with_step_hook(mut self, hook: super::StepHook) -> Self {
        self.step_hook = Some(hook);
        self
    }

    /// Runs one query for a read. Stops, cancelling the query on the
    /// server, when `cancel` fires or this future is dropped.
    async fn read(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        cancel: CancellationToken,
    ) -> Result<Vec<Row>, StoreError> {
        unless_cancelled(&cancel)?;
        let conn = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(StoreError::Cancelled),
            conn = self.pool.get() => conn?,
        };
        // From here until `disarm`, dropping this future (or the token
        // firing) cancels the query on the server.
        let guard = CancelOnDrop::arm(conn, self.counters.clone(), self.cancels.clone());
        let query = async {
            let stmt = guard.conn().prepare_cached(sql).await?;
            guard.conn().query(&stmt, params).await
        };
        let rows = tokio::select! {
            biased;
            rows = query => rows,
            // Returning drops `guard` armed: the cancel request goes out.
            _ = cancel.cancelled() => return Err(StoreError::Cancelled),
        };
        guard.disarm();
        Ok(rows?)
    }

    /// Takes a connection for a write, unless `cancel` fires first.
    async fn writer(&self, cancel: &CancellationToken) -> Result<(Object, Steps), StoreError> {
        unless_cancelled(cancel)?;
        let conn = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(StoreError::Cancelled),
            conn = self.pool.get() => conn?,
        };
        // Counted down when `Steps` is dropped (see there).
        self.counters.writes_open.fetch_add(1, Relaxed);
        Ok((
            conn,
            Steps {
                cancel: cancel.clone(),
                counters: self.counters.clone(),
                #[cfg(feature = "test-harness")]
                hook: self.step_hook.clone(),
            },
        ))
    }
}

/// The advisory lock creates take in turn (see `create`): any fixed key
/// no other lock of the schema uses.
const CREATE_ORDER_LOCK: i64 = 0x6c61_6d65_6475_636b; // "lameduck"

impl Store for PostgresStore {
    fn list(&self, page: Page, cancel: CancellationToken) -> StoreFuture<'_, Vec<Item>> {
        Box::pin(async move {
            let rows = self
                .read(
                    "SELECT id, name, created_at, expires_at FROM items
                     WHERE id > $1 ORDER BY id LIMIT $2",
                    &[&after(page), &sql_limit(page.limit)],
                    cancel,
                )
                .await?;
            Ok(rows.iter().map(item_from_row).collect())
        })
    }

    fn newest_id(&self, cancel: CancellationToken) -> StoreFuture<'_, Option<u64>> {
        Box::pin(async move {
            let rows = self.read("SELECT max(id) FROM items", &[], cancel).await?;
            let newest: Option<i64> = rows.first().and_then(|row| row.get(0));
            Ok(newest.map(|id| id as u64))
        })
    }

    fn search(
        &self,
        text: String,
        page: Page,
        cancel: CancellationToken,
    ) -> StoreFuture<'_, Vec<Item>> {
        // ASCII case-insensitive, exactly like SQLite's LIKE: `translate`
        // folds A-Z only, where `ILIKE` or `lower()` would also fold
        // other letters by the database's locale.
        let pattern = format!(
            "%{}%",
            super::sqlite::escape_like(&text.to_ascii_lowercase())
        );
        Box::pin(async move {
            // Unindexed on purpose: a full scan in id order, the slow
            // query that shows a cancel request reaching the server.
            let rows = self
                .read(
                    "SELECT id, name, created_at, expires_at FROM items
                     WHERE id > $1
                       AND translate(name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
                                           'abcdefghijklmnopqrstuvwxyz') LIKE $2 ESCAPE '\\'
                     ORDER BY id LIMIT $3",
                    &[&after(page), &pattern, &sql_limit(page.limit)],
                    cancel,
                )
                .await?;
            Ok(rows.iter().map(item_from_row).collect())
        })
    }

    fn create(&self, item: NewItem, cancel: CancellationToken) -> StoreFuture<'_, Item> {
        // Refused before a connection is taken, as in SQLite: the CHECK
        // would catch the length, but not control characters.
        if let Err(why) = check_name(&item.name) {
            return Box::pin(std::future::ready(Err(StoreError::Rejected(why))));
        }
        Box::pin(async move {
            let (mut conn, steps) = self.writer(&cancel).await?;
            let tx = conn.transaction().await?;
            let done = insert_item(&tx, &steps, item).await;
            steps.finish(tx, done).await
        })
    }

    fn write_once(
        &self,
        write: Write,
        key: Key,
        cancel: CancellationToken,
    ) -> StoreFuture<'_, Once> {
        if let Write::Create(item) = &write
            && let Err(why) = check_name(&item.name)
        {
            return Box::pin(std::future::ready(Err(StoreError::Rejected(why))));
        }
        Box::pin(async move {
            let (mut conn, steps) = self.writer(&cancel).await?;
            let tx = conn.transaction().await?;
            let done = async {
                // The in-progress marker, across instances: a lock on the
                // key held by this transaction. `try`: a second request
                // with the key is told 409 at once rather than queued.
                // Released by COMMIT or ROLLBACK, or by the end of the
                // session if this process dies or its connection breaks,
                // so no marker can outlive its request and block the key.
                let free: bool = tx
                    .query_one(
                        "SELECT pg_try_advisory_xact_lock($1)",
                        &[&key_lock(&key.key)],
                    )
                    .await?
                    .get(0);
                if !free {
                    return Ok(Once::InProgress);
                }
                let found = tx
                    .query_opt(
                        "SELECT fingerprint, status, location, body, expires_ms
                         FROM idempotency_keys WHERE key = $1",
                        &[&key.key],
                    )
                    .await?
                    .map(|row| key_row_from_row(&row));
                if let Some(answer) = once::judge(&key, found) {
                    return Ok(answer);
                }
                let written = match write {
                    Write::Create(item) => Written::Created(insert_item(&tx, &steps, item).await?),
                    Write::Delete(id) => Written::Deleted(delete_item(&tx, &steps, id).await?),
                };
                let response = (key.render)(&written);
                steps.check()?;
                // Over an expired row, if there is one. (The cleaner may be
                // deleting it: the insert then waits for its commit and
                // inserts.)
                tx.execute(
                    "INSERT INTO idempotency_keys
                         (key, fingerprint, status, location, body, created_ms, expires_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (key) DO UPDATE SET
                         fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status,
                         location = EXCLUDED.location, body = EXCLUDED.body,
                         created_ms = EXCLUDED.created_ms, expires_ms = EXCLUDED.expires_ms",
                    &[
                        &key.key,
                        &&key.fingerprint[..],
                        &i16::try_from(response.status).unwrap_or(i16::MAX),
                        &response.location,
                        &response.body,
                        &to_sql(key.now_ms),
                        &to_sql(key.expires_ms()),
                    ],
                )
                .await?;
                Ok(Once::Done(written, response))
            }
            .await;
            steps.finish(tx, done).await
        })
    }

    fn purge_expired_keys(
        &self,
        now_ms: u64,
        limit: usize,
        cancel: CancellationToken,
    ) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let (mut conn, steps) = self.writer(&cancel).await?;
            let tx = conn.transaction().await?;
            // `SKIP LOCKED`, as for items: two instances' cleaners take
            // different rows, and neither waits on a write replacing one.
            let done = tx
                .execute(
                    "DELETE FROM idempotency_keys WHERE key IN (
                         SELECT key FROM idempotency_keys WHERE expires_ms <= $1
                         ORDER BY expires_ms LIMIT $2 FOR UPDATE SKIP LOCKED)",
                    &[&to_sql(now_ms), &sql_limit(limit)],
                )
                .await
                .map(|n| n as usize)
                .map_err(StoreError::from);
            steps.finish(tx, done).await
        })
    }

    fn get(&self, id: u64, cancel: CancellationToken) -> StoreFuture<'_, Option<Item>> {
        Box::pin(async move {
            let Ok(id) = i64::try_from(id) else {
                return Ok(None);
            };
            let rows = self
                .read(
                    "SELECT id, name, created_at, expires_at FROM items WHERE id = $1",
                    &[&id],
                    cancel,
                )
                .await?;
            Ok(rows.first().map(item_from_row))
        })
    }

    fn delete(&self, id: u64, cancel: CancellationToken) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let (mut conn, steps) = self.writer(&cancel).await?;
            let tx = conn.transaction().await?;
            let done = delete_item(&tx, &steps, id).await;
            steps.finish(tx, done).await
        })
    }

    fn purge_expired(
        &self,
        now: u64,
        limit: usize,
        cancel: CancellationToken,
    ) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let (mut conn, steps) = self.writer(&cancel).await?;
            let tx = conn.transaction().await?;
            let done = async {
                // One statement picks and deletes the batch. `SKIP LOCKED`
                // lets two instances' cleaners run at once without waiting
                // for each other or both logging the same item: each
                // takes the rows the other has not locked. (SQLite needs
                // none of this: it has one writer at a time.)
                let rows = tx
                    .query(
                        "DELETE FROM items WHERE id IN (
                            SELECT id FROM items WHERE expires_at <= $1
                            ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
                         ) RETURNING id",
                        &[&to_sql(now), &sql_limit(limit)],
                    )
                    .await?;
                let ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
                steps.check()?;
                tx.execute(
                    "INSERT INTO item_events (item_id, op, at)
                     SELECT id, 'expire', $2 FROM unnest($1::BIGINT[]) AS id",
                    &[&ids, &to_sql(now)],
                )
                .await?;
                Ok(ids.len())
            }
            .await;
            steps.finish(tx, done).await
        })
    }

    fn counters(&self) -> Arc<StoreCounters> {
        self.counters.clone()
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            // No new checkouts; idle connections are dropped now, busy
            // ones when they come back.
            self.pool.close();
            // A dropped read's connection comes back only once its query
            // has stopped on the server.
            self.cancels.close();
            let _ = tokio::time::timeout(CLOSE_WAIT, self.cancels.wait()).await;
            // Each session, its client dropped, sends `Terminate` and
            // ends.
            self.sessions.close();
            let _ = tokio::time::timeout(CLOSE_WAIT, self.sessions.wait()).await;
            Ok(())
        })
    }
}

/// The write's token, its `writes_open` gauge, and its ending.
struct Steps {
    cancel: CancellationToken,
    /// Holds one count of `writes_open`, given back on drop.
    counters: Arc<StoreCounters>,
    #[cfg(feature = "test-harness")]
    hook: Option<super::StepHook>,
}

impl Steps {
    /// `Err(Cancelled)` once the write should roll back instead of
    /// committing.
    fn check(&self) -> Result<(), StoreError> {
        unless_cancelled(&self.cancel)
    }

    /// Commits if the work succeeded and the token is still quiet;
    /// otherwise rolls back. The token is checked last, just before
    /// `COMMIT`: a forced shutdown that came during the last statement
    /// still wins.
    async fn finish<T>(
        &self,
        tx: deadpool_postgres::Transaction<'_>,
        done: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match done.and_then(|out| self.check().map(|()| out)) {
            Ok(out) => match tx.commit().await {
                Ok(()) => Ok(out),
                // The connection broke with COMMIT sent, or about to be:
                // the server may have committed, and its answer is lost.
                // (Broken before it was sent, the write did not commit;
                // from here the two cannot be told apart, so both are
                // "unknown", which is true of either.) A refusal the
                // server did answer (a serialization failure at COMMIT)
                // is a rollback, and keeps its kind.
                Err(e) => Err(match StoreError::from(e) {
                    StoreError::Unreachable(why) => StoreError::CommitUnknown(why),
                    other => other,
                }),
            },
            Err(e) => {
                // If the connection is gone the rollback fails, and that
                // is fine: the server has already aborted the transaction.
                let _ = tx.rollback().await;
                if e == StoreError::Cancelled {
                    self.counters.writes_rolled_back.fetch_add(1, Relaxed);
                }
                Err(e)
            }
        }
    }

    /// A create is half done: the test hook's moment, run on the blocking
    /// pool so that a hook that waits does not hold a runtime thread.
    /// Nothing at all in the shipped build.
    async fn half_done(&self) {
        #[cfg(feature = "test-harness")]
        if let Some(hook) = self.hook.clone() {
            let cancel = self.cancel.clone();
            let _ = tokio::task::spawn_blocking(move || hook(&cancel)).await;
        }
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        // After `finish`: the transaction is committed or rolled back.
        // (Or the runtime is dropping the write mid-way at exit, and the
        // server aborts the transaction when the socket closes.)
        self.counters.writes_open.fetch_sub(1, Relaxed);
    }
}

/// A create's statements, in the caller's transaction: the turn, the
/// item, its event.
async fn insert_item(
    tx: &deadpool_postgres::Transaction<'_>,
    steps: &Steps,
    item: NewItem,
) -> Result<Item, StoreError> {
    let now = unix_now();
    let expires_at = item.ttl_secs.map(|t| now.saturating_add(t));
    // Creates take turns: the id comes from a sequence, and two
    // transactions could otherwise commit out of id order, so that a
    // reader which has seen id N could later find an item below N. The
    // live feed (`long_lived::feed`) reads "after the last id seen" and
    // would miss it. The lock is held to the commit, as SQLite's single
    // writer is.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATE_ORDER_LOCK])
        .await?;
    let row = tx
        .query_one(
            "INSERT INTO items (name, created_at, expires_at)
             VALUES ($1, $2, $3) RETURNING id",
            &[&item.name, &to_sql(now), &expires_at.map(to_sql)],
        )
        .await?;
    let id: i64 = row.get(0);
    // Half done: the item exists inside this transaction, its event does
    // not. A forced shutdown here leaves no trace.
    steps.half_done().await;
    steps.check()?;
    tx.execute(
        "INSERT INTO item_events (item_id, op, at) VALUES ($1, 'create', $2)",
        &[&id, &to_sql(now)],
    )
    .await?;
    Ok(Item {
        id: id as u64,
        name: item.name,
        created_at: now,
        expires_at,
    })
}

/// A delete's statements, in the caller's transaction; `false` if there
/// was no such item (and then no event).
async fn delete_item(
    tx: &deadpool_postgres::Transaction<'_>,
    steps: &Steps,
    id: u64,
) -> Result<bool, StoreError> {
    let Ok(id) = i64::try_from(id) else {
        return Ok(false);
    };
    // A second instance deleting the same item waits here for the row
    // lock, then finds it gone: a 404, not a second event.
    if tx
        .execute("DELETE FROM items WHERE id = $1", &[&id])
        .await?
        == 0
    {
        return Ok(false);
    }
    steps.check()?;
    tx.execute(
        "INSERT INTO item_events (item_id, op, at) VALUES ($1, 'delete', $2)",
        &[&id, &to_sql(unix_now())],
    )
    .await?;
    Ok(true)
}

/// The advisory lock that marks `key` as being written: the first eight
/// bytes of a SHA-256 of it, after a prefix of our own. Two keys sharing a
/// lock would only make one of them wait its turn (a `409` while the
/// other is written), and a 64-bit hash makes even that a curiosity.
fn key_lock(key: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"lameduck idempotency key\0")
        .chain_update(key.as_bytes())
        .finalize();
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

fn key_row_from_row(row: &Row) -> KeyRow {
    KeyRow {
        fingerprint: row.get(0),
        response: StoredResponse {
            status: row.get::<_, i16>(1).max(0) as u16,
            location: row.get(2),
            body: row.get(3),
        },
        expires_ms: row.get::<_, i64>(4).max(0) as u64,
    }
}

fn item_from_row(row: &Row) -> Item {
    Item {
        id: row.get::<_, i64>(0) as u64,
        name: row.get(1),
        created_at: row.get::<_, i64>(2) as u64,
        expires_at: row.get::<_, Option<i64>>(3).map(|e| e as u64),
    }
}

/// The cursor as Postgres's signed id; ids start at 1.
fn after(page: Page) -> i64 {
    page.after
        .map_or(0, |a| i64::try_from(a).unwrap_or(i64::MAX))
}

/// A page size or batch size as Postgres's `BIGINT`.
fn sql_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Seconds as Postgres's `BIGINT`, saturating far in the future.
fn to_sql(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}
