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
//! Two implementations:
//!
//! * [`SqliteStore`] ([`sqlite`]): a file on disk, WAL mode, one writer and a
//!   few reader connections, all called on Tokio's blocking pool. What the
//!   binary runs with.
//! * [`MemoryStore`] (`memory.rs`): a `Mutex<BTreeMap>`, lost on exit. What
//!   `--db :memory:` and [`crate::Server::new`] use, and most tests.

mod memory;
mod name;
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
pub use name::{MAX_NAME_CHARS, check_name};
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

/// Why a store call failed. The handler maps each kind to a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The token was cancelled before or during the call. For a write, the
    /// transaction was rolled back: nothing of it is stored.
    Cancelled,
    /// The store cannot take the call now but may soon: another writer
    /// (another process on the same file) held the database for longer
    /// than the busy timeout, or the disk is full. Worth retrying.
    Busy,
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
    /// One item by id; `Ok(None)` if there is none.
    fn get(&self, id: u64, cancel: CancellationToken) -> StoreFuture<'_, Option<Item>>;
    /// Deletes one item: one transaction; `Ok(false)` if there was none.
    fn delete(&self, id: u64, cancel: CancellationToken) -> StoreFuture<'_, bool>;
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
}

/// What the store counts, for `/metrics` and for tests that must observe
/// the database without sleeping.
#[derive(Debug, Default)]
pub struct StoreCounters {
    /// Statements stopped by `sqlite3_interrupt` because their reader went
    /// away (client left, request timeout, shutdown deadline).
    pub queries_interrupted: AtomicU64,
    /// Reads running on a blocking thread now (gauge). Back to zero means
    /// the threads are free again.
    pub reads_running: AtomicU64,
    /// Write transactions open now (gauge).
    pub writes_open: AtomicU64,
    /// Write transactions rolled back because their token was cancelled
    /// (a forced shutdown) before they committed.
    pub writes_rolled_back: AtomicU64,
}

/// Opens the store the binary runs with: `:memory:` is a [`MemoryStore`]
/// (the old throwaway behaviour: nothing touches the disk, everything is
/// gone at exit); any other path is a [`SqliteStore`] on that file, created
/// if missing.
///
/// Why not SQLite's own `:memory:`: an in-memory SQLite database belongs to
/// one connection, and the store uses several (one writer, a few readers)
/// so that reads never queue behind writes. Sharing one would need the
/// shared-cache mode, whose locking differs from WAL's; the `MemoryStore`
/// says "throwaway" more plainly.
pub fn open(path: &Path) -> Result<Arc<dyn Store>, StoreError> {
    if path.as_os_str() == ":memory:" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    Ok(Arc::new(SqliteStore::open(path)?))
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
