//! [`SqliteStore`]: items in a SQLite file, behind an async façade.
//!
//! # The lesson: dropping a future does not stop a blocking thread
//!
//! rusqlite is a blocking API, so every call runs on a thread of Tokio's
//! blocking pool and the async side awaits its `JoinHandle`. When a handler
//! is dropped (client gone, request timeout, shutdown deadline), that await
//! is dropped too — and *nothing else happens*: dropping a `JoinHandle`
//! detaches the thread, it does not stop it. A scan over a large table
//! would run to the end for nobody, holding a thread and a connection.
//!
//! Go's `db.QueryContext(ctx, ...)` hands the context to the driver, which
//! aborts the query when it is cancelled. Here the store does that by hand:
//! every read holds an `InterruptOnDrop` guard whose `Drop` calls
//! `sqlite3_interrupt` (rusqlite's [`InterruptHandle`]) on the connection
//! running the statement. The statement fails with `SQLITE_INTERRUPT` at
//! its next step, the thread returns the connection to the pool, and the
//! interruption is counted in [`StoreCounters::queries_interrupted`].
//!
//! # Writes are the opposite
//!
//! A write is not interrupted when its future is dropped: it runs to commit
//! or rollback on its thread. Its token means "roll back instead of
//! committing", checked between the steps of the transaction and just
//! before `COMMIT`. A transaction that does not commit leaves nothing
//! behind — not even when the process dies halfway, since SQLite ignores
//! uncommitted WAL frames on the next open.
//!
//! # Why `spawn_blocking` rather than a dedicated pool
//!
//! The concurrency is already bounded by the connections: a read first
//! takes one of [`READERS`] connections (an async semaphore, so waiting
//! for one costs no thread), a write takes the writer's async mutex. So at
//! most `READERS + 1` blocking threads are ever busy here, and Tokio's
//! pool reuses idle ones. A dedicated pool would add a queue and threads
//! of its own to start and stop, and buy only isolation from the other
//! `spawn_blocking` users (the shutdown hooks), which this server does not
//! need.
//!
//! # Prepared once
//!
//! Every statement is `prepare_cached`, and every connection is opened
//! with SQLite's query planner stability guarantee (`schema::configure`).
//! Without it, the bundled SQLite (built with `SQLITE_ENABLE_STAT4`)
//! lets a plan depend on a bound value, here the list's `LIMIT ?2`, and
//! marks the statement stale at every new bind: the cache kept the
//! statement, and each run parsed and planned it again. Measured with
//! `wrk -t1 -c50 -d8s` on `GET /api/items?limit=1` (release build, two
//! cores): the server spent 96 µs of CPU per request before, 60–63 µs
//! after, and answered 16,600 requests a second before, 23,200–23,900
//! after. `a_cached_list_is_not_prepared_again_when_its_values_change`
//! counts the re-preparations (`SQLITE_STMTSTATUS_REPREPARE`).
//!
//! # How fast the interrupt is
//!
//! The slow path that shows it is honest about being slow: `GET
//! /api/items?q=text` is a case-insensitive substring search, `LIKE
//! '%text%'`, which no index can serve. On 200,000 names of 200 characters
//! and a search text that almost matches everywhere, it takes about 2 s
//! (debug build, a 2-core machine). In
//! `a_client_leaving_mid_search_interrupts_the_statement_within_100ms` a
//! client sends that search and disconnects once the store reports the
//! read running; the statement was interrupted and the thread free again
//! 5–6 ms later (measured through the counter, polled every 5 ms; the
//! test's bound is 100 ms). The guard is disarmed under the same lock the
//! thread clears when done, so a late drop can never interrupt the *next*
//! query on that connection.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use rusqlite::{
    Connection, ErrorCode, InterruptHandle, OptionalExtension, Row, Transaction,
    TransactionBehavior, params,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::once::{self, Key, KeyRow, Once, StoredResponse, Write, Written};
use super::{
    Item, NewItem, Page, Store, StoreCounters, StoreError, StoreFuture, check_name, schema,
    unix_now, unless_cancelled,
};

/// Reader connections. Reads never wait for the writer in WAL mode, but
/// they wait for a free reader: four lets a slow search run beside the
/// ordinary lists and gets on a two-core machine. More would not make
/// reads faster there: in the storm bench (`benches/README.md`) reads
/// waited tens of milliseconds for one of the four, and with sixteen that
/// wait was gone and as much time was spent instead between the query's
/// end and a runtime worker taking up its answer: what queued was the
/// CPU, not the connections.
pub(crate) const READERS: usize = 4;

/// One page of items, in id order: `GET /api/items`.
const LIST: &str = "SELECT id, name, created_at, expires_at FROM items
                    WHERE id > ?1 ORDER BY id LIMIT ?2";

/// Items in a SQLite file. See the module docs.
pub struct SqliteStore {
    /// The one connection that writes. SQLite allows one writer at a time
    /// per file anyway; an async mutex makes writers queue without holding
    /// a thread each.
    writer: Arc<tokio::sync::Mutex<Connection>>,
    /// Connections for reads, each set `query_only`.
    readers: Arc<ReaderPool>,
    counters: Arc<StoreCounters>,
    /// Called when a create is half done (see [`SqliteStore::with_step_hook`]).
    /// Only in the test harness: the shipped store has no hook to call.
    #[cfg(feature = "test-harness")]
    step_hook: Option<StepHook>,
}

/// A test's hook into a write transaction: called on the blocking-pool
/// thread running the write, at the point where a create is half done,
/// with the write's token. Whatever it does (wait, count), the
/// transaction stays open meanwhile.
#[cfg(feature = "test-harness")]
pub type StepHook = Arc<dyn Fn(&CancellationToken) + Send + Sync>;

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`: WAL mode, the
    /// schema migrated to the current version, [`READERS`] + 1 connections.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let startup = |e: rusqlite::Error| {
            StoreError::Unavailable(format!("cannot open {}: {e}", path.display()))
        };
        let mut writer = Connection::open(path).map_err(startup)?;
        schema::configure(&writer).map_err(startup)?;
        let setup = |e: String| StoreError::Unavailable(format!("{}: {e}", path.display()));
        schema::enable_wal(&writer).map_err(setup)?;
        schema::migrate(&mut writer).map_err(setup)?;
        let mut idle = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let conn = Connection::open(path).map_err(startup)?;
            schema::configure(&conn).map_err(startup)?;
            // A reader that tried to write would be a bug; make it an error.
            conn.pragma_update(None, "query_only", true)
                .map_err(startup)?;
            idle.push(conn);
        }
        Ok(SqliteStore {
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            readers: Arc::new(ReaderPool {
                idle: Mutex::new(idle),
                permits: Arc::new(Semaphore::new(READERS)),
            }),
            counters: Arc::default(),
            #[cfg(feature = "test-harness")]
            step_hook: None,
        })
    }

    /// **Test harness only.** Calls `hook` in every create after its first
    /// statement — the item row inserted, its event not yet — with the
    /// transaction open. A test that blocks there holds a write half done,
    /// which is the only way to catch one: a real create is over in
    /// microseconds.
    #[cfg(feature = "test-harness")]
    pub fn with_step_hook(mut self, hook: StepHook) -> Self {
        self.step_hook = Some(hook);
        self
    }

    /// Runs `query` on a reader connection, on the blocking pool. Stops,
    /// interrupting the statement, when `cancel` fires or this future is
    /// dropped.
    async fn read<T, F>(&self, cancel: CancellationToken, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        unless_cancelled(&cancel)?;
        let permit = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(StoreError::Cancelled),
            permit = self.readers.permits.clone().acquire_owned() => permit
                .map_err(|_| StoreError::Unavailable("reader pool closed".into()))?,
        };
        let conn = PooledReader::take(&self.readers, permit)?;
        let interrupt = Arc::new(Mutex::new(Some(conn.get_interrupt_handle())));
        // From here until the thread is done, dropping this future (or the
        // token firing) interrupts the statement.
        let on_drop = InterruptOnDrop(Some(interrupt.clone()));
        let counters = self.counters.clone();
        let task = tokio::task::spawn_blocking(move || {
            // Declared first so it is dropped last: the gauge falls only
            // once the connection is back in the pool.
            let _running = Gauge::enter(&counters.reads_running);
            let res = query(&conn);
            // Disarm the guard before the connection goes back to the
            // pool, so a late drop cannot interrupt the next reader's
            // statement. (Under the same lock the guard interrupts with.)
            lock(&interrupt).take();
            if res.as_ref().err().and_then(|e| e.sqlite_error_code())
                == Some(ErrorCode::OperationInterrupted)
            {
                counters.queries_interrupted.fetch_add(1, Relaxed);
            }
            drop(conn);
            res
        });
        let res = tokio::select! {
            biased;
            res = task => res,
            // Returning drops `on_drop`, which interrupts the statement.
            _ = cancel.cancelled() => return Err(StoreError::Cancelled),
        };
        on_drop.disarm();
        match res {
            Ok(res) => res.map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable("read panicked".into())),
        }
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction on the writer, on
    /// the blocking pool, and commits unless `cancel` fired first. Not
    /// stopped by dropping this future: see the module docs.
    async fn write<T, F>(&self, cancel: CancellationToken, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &Steps) -> Result<T, StoreError> + Send + 'static,
    {
        unless_cancelled(&cancel)?;
        let mut conn = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(StoreError::Cancelled),
            conn = self.writer.clone().lock_owned() => conn,
        };
        let counters = self.counters.clone();
        let steps = Steps {
            cancel,
            #[cfg(feature = "test-harness")]
            hook: self.step_hook.clone(),
        };
        let task = tokio::task::spawn_blocking(move || {
            // Falls after the transaction is dropped: committed or rolled
            // back, never in between.
            let _open = Gauge::enter(&counters.writes_open);
            // IMMEDIATE takes the write lock now, so `busy_timeout` applies
            // to waiting for another process. A deferred transaction that
            // later needs to write can fail with "database is locked" at
            // once, whatever the timeout.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let done = work(&tx, &steps).and_then(|out| steps.check().map(|()| out));
            match done {
                Ok(out) => {
                    tx.commit()?;
                    Ok(out)
                }
                Err(e) => {
                    // Dropping an uncommitted transaction rolls it back.
                    drop(tx);
                    if e == StoreError::Cancelled {
                        counters.writes_rolled_back.fetch_add(1, Relaxed);
                    }
                    Err(e)
                }
            }
        });
        task.await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("write panicked".into())))
    }
}

impl Store for SqliteStore {
    fn list(&self, page: Page, cancel: CancellationToken) -> StoreFuture<'_, Vec<Item>> {
        Box::pin(self.read(cancel, move |conn| {
            let mut stmt = conn.prepare_cached(LIST)?;
            let rows = stmt.query_map(params![after(page), page.limit as i64], item_from_row)?;
            rows.collect()
        }))
    }

    fn newest_id(&self, cancel: CancellationToken) -> StoreFuture<'_, Option<u64>> {
        Box::pin(self.read(cancel, |conn| {
            let newest: Option<i64> =
                conn.query_row("SELECT max(id) FROM items", [], |row| row.get(0))?;
            Ok(newest.map(|id| id as u64))
        }))
    }

    fn search(
        &self,
        text: String,
        page: Page,
        cancel: CancellationToken,
    ) -> StoreFuture<'_, Vec<Item>> {
        let pattern = format!("%{}%", escape_like(&text));
        Box::pin(self.read(cancel, move |conn| {
            // `LIKE '%…%'` cannot use an index: a full scan in id order,
            // on purpose. This is the slow query that shows cancellation
            // reaching SQLite.
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, created_at, expires_at FROM items
                 WHERE id > ?1 AND name LIKE ?2 ESCAPE '\\' ORDER BY id LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![after(page), pattern, page.limit as i64],
                item_from_row,
            )?;
            rows.collect()
        }))
    }

    fn create(&self, item: NewItem, cancel: CancellationToken) -> StoreFuture<'_, Item> {
        // Refused before the writer is taken: the schema's CHECK would
        // refuse most of these too, but not all (it counts characters only
        // up to a NUL), and a refusal here costs no transaction.
        if let Err(why) = check_name(&item.name) {
            return Box::pin(std::future::ready(Err(StoreError::Rejected(why))));
        }
        Box::pin(self.write(cancel, move |tx, steps| insert_item(tx, steps, item)))
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
        // One transaction on the one writer: the look-up, the write and the
        // key's row. A second request with the key, in this process or in
        // another on the same file, waits for the write lock and then
        // finds the row, so no key is ever seen half written.
        Box::pin(self.write(cancel, move |tx, steps| {
            let found = tx
                .prepare_cached(
                    "SELECT fingerprint, status, location, body, expires_ms
                     FROM idempotency_keys WHERE key = ?1",
                )?
                .query_row([&key.key], key_row_from_row)
                .optional()?;
            if let Some(answer) = once::judge(&key, found) {
                return Ok(answer);
            }
            let written = match write {
                Write::Create(item) => Written::Created(insert_item(tx, steps, item)?),
                Write::Delete(id) => Written::Deleted(delete_item(tx, steps, id)?),
            };
            let response = (key.render)(&written);
            steps.check()?;
            // Over an expired row, if there is one.
            tx.prepare_cached(
                "INSERT INTO idempotency_keys
                     (key, fingerprint, status, location, body, created_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (key) DO UPDATE SET
                     fingerprint = excluded.fingerprint, status = excluded.status,
                     location = excluded.location, body = excluded.body,
                     created_ms = excluded.created_ms, expires_ms = excluded.expires_ms",
            )?
            .execute(params![
                key.key,
                &key.fingerprint[..],
                response.status,
                response.location,
                response.body,
                to_sql(key.now_ms),
                to_sql(key.expires_ms()),
            ])?;
            Ok(Once::Done(written, response))
        }))
    }

    fn purge_expired_keys(
        &self,
        now_ms: u64,
        limit: usize,
        cancel: CancellationToken,
    ) -> StoreFuture<'_, usize> {
        Box::pin(self.write(cancel, move |tx, _steps| {
            // The index on `expires_ms` finds the batch; LIMIT keeps the
            // write lock short, as for items.
            let n = tx.execute(
                "DELETE FROM idempotency_keys WHERE key IN (
                     SELECT key FROM idempotency_keys WHERE expires_ms <= ?1
                     ORDER BY expires_ms LIMIT ?2)",
                params![to_sql(now_ms), limit as i64],
            )?;
            Ok(n)
        }))
    }

    fn get(&self, id: u64, cancel: CancellationToken) -> StoreFuture<'_, Option<Item>> {
        Box::pin(self.read(cancel, move |conn| {
            let Ok(id) = i64::try_from(id) else {
                return Ok(None);
            };
            conn.prepare_cached("SELECT id, name, created_at, expires_at FROM items WHERE id = ?1")?
                .query_row([id], item_from_row)
                .optional()
        }))
    }

    fn delete(&self, id: u64, cancel: CancellationToken) -> StoreFuture<'_, bool> {
        Box::pin(self.write(cancel, move |tx, steps| delete_item(tx, steps, id)))
    }

    fn purge_expired(
        &self,
        now: u64,
        limit: usize,
        cancel: CancellationToken,
    ) -> StoreFuture<'_, usize> {
        Box::pin(self.write(cancel, move |tx, steps| {
            // The partial index on `expires_at` finds the batch without a
            // scan; LIMIT keeps the transaction (and the write lock) short.
            let ids: Vec<i64> = tx
                .prepare_cached(
                    "SELECT id FROM items WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2",
                )?
                .query_map(params![to_sql(now), limit as i64], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut delete = tx.prepare_cached("DELETE FROM items WHERE id = ?1")?;
            let mut log = tx.prepare_cached(
                "INSERT INTO item_events (item_id, op, at) VALUES (?1, 'expire', ?2)",
            )?;
            for id in &ids {
                steps.check()?;
                delete.execute([id])?;
                log.execute(params![id, to_sql(now)])?;
            }
            Ok(ids.len())
        }))
    }

    fn counters(&self) -> Arc<StoreCounters> {
        self.counters.clone()
    }
}

/// A create's two statements, in the caller's transaction: the item, then
/// its event.
fn insert_item(tx: &Transaction<'_>, steps: &Steps, item: NewItem) -> Result<Item, StoreError> {
    let now = unix_now();
    let expires_at = item.ttl_secs.map(|t| now.saturating_add(t));
    tx.execute(
        "INSERT INTO items (name, created_at, expires_at) VALUES (?1, ?2, ?3)",
        params![item.name, to_sql(now), expires_at.map(to_sql)],
    )?;
    let id = tx.last_insert_rowid();
    // Half done: the item exists (inside this transaction), its event does
    // not. A forced shutdown here must leave no trace.
    steps.half_done();
    steps.check()?;
    tx.execute(
        "INSERT INTO item_events (item_id, op, at) VALUES (?1, 'create', ?2)",
        params![id, to_sql(now)],
    )?;
    Ok(Item {
        id: id as u64,
        name: item.name,
        created_at: now,
        expires_at,
    })
}

/// A delete's two statements, in the caller's transaction; `false` if
/// there was no such item (and then no event).
fn delete_item(tx: &Transaction<'_>, steps: &Steps, id: u64) -> Result<bool, StoreError> {
    let Ok(id) = i64::try_from(id) else {
        return Ok(false);
    };
    if tx.execute("DELETE FROM items WHERE id = ?1", [id])? == 0 {
        return Ok(false);
    }
    steps.check()?;
    tx.execute(
        "INSERT INTO item_events (item_id, op, at) VALUES (?1, 'delete', ?2)",
        params![id, to_sql(unix_now())],
    )?;
    Ok(true)
}

fn key_row_from_row(row: &Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        fingerprint: row.get(0)?,
        response: StoredResponse {
            status: row.get(1)?,
            location: row.get(2)?,
            body: row.get(3)?,
        },
        expires_ms: row.get::<_, i64>(4)?.max(0) as u64,
    })
}

/// Between-steps checks of a write transaction.
struct Steps {
    cancel: CancellationToken,
    #[cfg(feature = "test-harness")]
    hook: Option<StepHook>,
}

impl Steps {
    /// `Err(Cancelled)` once the write should roll back instead of
    /// committing.
    fn check(&self) -> Result<(), StoreError> {
        unless_cancelled(&self.cancel)
    }

    /// A create is half done: the test hook's moment (see
    /// `SqliteStore::with_step_hook`). Nothing at all in the shipped
    /// build.
    fn half_done(&self) {
        #[cfg(feature = "test-harness")]
        if let Some(hook) = &self.hook {
            hook(&self.cancel);
        }
    }
}

/// The idle reader connections, and one permit per connection.
struct ReaderPool {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

/// A reader connection on loan. Dropping it — after the query, or while
/// unwinding from a panic in one — puts the connection back and then
/// releases the permit, so the pool never shrinks.
struct PooledReader {
    conn: Option<Connection>,
    pool: Arc<ReaderPool>,
    _permit: OwnedSemaphorePermit,
}

impl PooledReader {
    fn take(pool: &Arc<ReaderPool>, permit: OwnedSemaphorePermit) -> Result<Self, StoreError> {
        // Holding a permit guarantees an idle connection.
        let conn = lock(&pool.idle)
            .pop()
            .ok_or_else(|| StoreError::Unavailable("no idle reader".into()))?;
        Ok(PooledReader {
            conn: Some(conn),
            pool: pool.clone(),
            _permit: permit,
        })
    }
}

impl std::ops::Deref for PooledReader {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl Drop for PooledReader {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            lock(&self.pool.idle).push(conn);
        }
    }
}

/// Interrupts the statement of a read whose future is dropped before the
/// read finished. Holds the same slot the reading thread clears when done:
/// an empty slot means there is nothing left to interrupt.
struct InterruptOnDrop(Option<Arc<Mutex<Option<InterruptHandle>>>>);

impl InterruptOnDrop {
    /// The read finished normally: nothing to interrupt.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take()
            && let Some(handle) = lock(&slot).as_ref()
        {
            // `sqlite3_interrupt`: safe from any thread; the statement
            // fails with SQLITE_INTERRUPT at its next VM step.
            handle.interrupt();
        }
    }
}

/// Increments a gauge now and decrements it on drop.
struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    fn enter(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Relaxed);
        Gauge(gauge)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::OperationInterrupted) => StoreError::Cancelled,
            // Still locked by another process after `busy_timeout`; or the
            // disk is full, which enough creates could bring about: both
            // pass, and the client should come back rather than be told
            // the server failed.
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::DiskFull) => {
                StoreError::Busy
            }
            // A CHECK or NOT NULL the values broke: the input, not the
            // store, is at fault. `check_name` should have caught it first;
            // this keeps a rule it misses a 422 rather than a 500.
            Some(ErrorCode::ConstraintViolation) => StoreError::Rejected(e.to_string()),
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

/// Locks a std mutex, ignoring poison: every critical section here is a
/// push, a pop or a take, which a panic cannot leave half done.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn item_from_row(row: &Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        id: row.get::<_, i64>(0)? as u64,
        name: row.get(1)?,
        created_at: row.get::<_, i64>(2)? as u64,
        expires_at: row.get::<_, Option<i64>>(3)?.map(|e| e as u64),
    })
}

/// The cursor as SQLite's signed id; ids start at 1.
fn after(page: Page) -> i64 {
    page.after
        .map_or(0, |a| i64::try_from(a).unwrap_or(i64::MAX))
}

/// Seconds as SQLite's signed integer, saturating far in the future.
fn to_sql(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Escapes `%`, `_` and the escape character itself, so that a search is
/// for the text as typed. Postgres's `LIKE … ESCAPE '\'` reads it the
/// same way.
pub(super) fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    /// A cached statement run with new values each time is prepared once.
    /// Without the planner's stability guarantee (`schema::configure`),
    /// every bind marks the list stale (its plan looked at the `LIMIT`),
    /// and every run parses and plans it again: 50 times in 50 runs.
    #[test]
    fn a_cached_list_is_not_prepared_again_when_its_values_change() {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::configure(&conn).unwrap();
        schema::migrate(&mut conn).unwrap();
        for limit in 1..=50_i64 {
            let mut stmt = conn.prepare_cached(LIST).unwrap();
            let rows: Vec<Item> = stmt
                .query_map(params![limit, limit], item_from_row)
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(rows.is_empty());
        }
        let stmt = conn.prepare_cached(LIST).unwrap();
        let again = stmt.get_status(StatementStatus::RePrepare);
        assert_eq!(
            again, 0,
            "the list was prepared again {again} times in 50 runs"
        );
    }
}
