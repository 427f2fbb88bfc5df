//! The item store, behind a small interface whose every method takes a
//! cancellation token.
//!
//! The token is the Rust spelling of the `ctx` in the article's
//! `store.List(r.Context())`. Inside an `async fn`, dropping the future is
//! enough to stop the work — but only the part that runs *inside* the
//! future. Work handed elsewhere (a blocking thread, a database driver, a
//! spawned task) keeps running after the drop unless something tells it to
//! stop. The token is that something: the handler cancels it when the
//! request goes away (see [`crate::service`]), and the store checks it.
//!
//! [`MemoryStore`] is the in-process implementation: a `Mutex<BTreeMap>`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// One stored item, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Assigned by the store, increasing.
    pub id: u64,
    /// 1–200 characters.
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
    /// Already validated by the handler.
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
    /// The token was cancelled before or during the call.
    Cancelled,
    /// The store cannot answer (it is broken or gone).
    Unavailable(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Cancelled => f.write_str("cancelled"),
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
    /// Creates one item.
    fn create(&self, item: NewItem, cancel: CancellationToken) -> StoreFuture<'_, Item>;
    /// One item by id; `Ok(None)` if there is none.
    fn get(&self, id: u64, cancel: CancellationToken) -> StoreFuture<'_, Option<Item>>;
    /// Deletes one item; `Ok(false)` if there was none.
    fn delete(&self, id: u64, cancel: CancellationToken) -> StoreFuture<'_, bool>;
    /// Removes items whose `expires_at` is at or before `now`; returns how
    /// many went.
    fn purge_expired(&self, now: u64, cancel: CancellationToken) -> StoreFuture<'_, usize>;
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Items in memory, lost on exit.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    next_id: u64,
    items: BTreeMap<u64, Item>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every update is one insert or remove), so a poisoned lock is
        // still consistent and we keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn list(&self, page: Page, cancel: CancellationToken) -> StoreFuture<'_, Vec<Item>> {
        Box::pin(async move {
            if cancel.is_cancelled() {
                return Err(StoreError::Cancelled);
            }
            let start = page.after.map_or(0, |a| a.saturating_add(1));
            let inner = self.lock();
            Ok(inner
                .items
                .range(start..)
                .take(page.limit)
                .map(|(_, v)| v.clone())
                .collect())
        })
    }

    fn create(&self, item: NewItem, cancel: CancellationToken) -> StoreFuture<'_, Item> {
        Box::pin(async move {
            if cancel.is_cancelled() {
                return Err(StoreError::Cancelled);
            }
            let now = unix_now();
            let mut inner = self.lock();
            inner.next_id += 1;
            let stored = Item {
                id: inner.next_id,
                name: item.name,
                created_at: now,
                expires_at: item.ttl_secs.map(|t| now.saturating_add(t)),
            };
            inner.items.insert(stored.id, stored.clone());
            Ok(stored)
        })
    }

    fn get(&self, id: u64, cancel: CancellationToken) -> StoreFuture<'_, Option<Item>> {
        Box::pin(async move {
            if cancel.is_cancelled() {
                return Err(StoreError::Cancelled);
            }
            Ok(self.lock().items.get(&id).cloned())
        })
    }

    fn delete(&self, id: u64, cancel: CancellationToken) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            if cancel.is_cancelled() {
                return Err(StoreError::Cancelled);
            }
            Ok(self.lock().items.remove(&id).is_some())
        })
    }

    fn purge_expired(&self, now: u64, cancel: CancellationToken) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            if cancel.is_cancelled() {
                return Err(StoreError::Cancelled);
            }
            let mut inner = self.lock();
            let before = inner.items.len();
            inner
                .items
                .retain(|_, item| item.expires_at.is_none_or(|e| e > now));
            Ok(before - inner.items.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The article's `TestHandlerContextCanceled`, at the store layer: a
    /// pre-cancelled token makes every call return `Cancelled` at once.
    #[tokio::test]
    async fn a_cancelled_token_stops_every_store_call() {
        let store = MemoryStore::new();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let page = Page {
            after: None,
            limit: 10,
        };
        let new = NewItem {
            name: "x".into(),
            ttl_secs: None,
        };
        assert_eq!(
            store.list(page, cancel.clone()).await,
            Err(StoreError::Cancelled)
        );
        assert_eq!(
            store.create(new, cancel.clone()).await,
            Err(StoreError::Cancelled)
        );
        assert_eq!(
            store.purge_expired(0, cancel).await,
            Err(StoreError::Cancelled)
        );
    }

    #[tokio::test]
    async fn pages_follow_the_after_cursor_and_expired_items_are_purged() {
        let store = MemoryStore::new();
        let live = CancellationToken::new();
        for (name, ttl) in [("a", None), ("b", Some(0)), ("c", None)] {
            let item = NewItem {
                name: name.into(),
                ttl_secs: ttl,
            };
            store.create(item, live.clone()).await.unwrap();
        }
        let page = Page {
            after: Some(1),
            limit: 1,
        };
        let names: Vec<_> = store
            .list(page, live.clone())
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(names, ["b"]);
        assert_eq!(store.purge_expired(unix_now(), live.clone()).await, Ok(1));
        let all = store
            .list(
                Page {
                    after: None,
                    limit: 10,
                },
                live,
            )
            .await
            .unwrap();
        assert_eq!(all.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 3]);
    }
}
