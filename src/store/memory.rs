//! [`MemoryStore`]: items in a `Mutex<BTreeMap>`, lost on exit.
//!
//! Every call finishes inside its own `poll`, under a lock held for
//! microseconds, so there is nothing to interrupt: the token is checked once,
//! at the start. That is what `--db :memory:` and most tests run on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::{
    Item, NewItem, Page, Store, StoreCounters, StoreError, StoreFuture, check_name, unix_now,
    unless_cancelled,
};

/// Items in memory, lost on exit.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
    counters: Arc<StoreCounters>,
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

    fn page_where(&self, page: Page, keep: impl Fn(&Item) -> bool) -> Vec<Item> {
        let start = page.after.map_or(0, |a| a.saturating_add(1));
        self.lock()
            .items
            .range(start..)
            .map(|(_, v)| v)
            .filter(|v| keep(v))
            .take(page.limit)
            .cloned()
            .collect()
    }
}

impl Store for MemoryStore {
    fn list(&self, page: Page, cancel: CancellationToken) -> StoreFuture<'_, Vec<Item>> {
        Box::pin(async move {
            unless_cancelled(&cancel)?;
            Ok(self.page_where(page, |_| true))
        })
    }

    fn newest_id(&self, cancel: CancellationToken) -> StoreFuture<'_, Option<u64>> {
        Box::pin(async move {
            unless_cancelled(&cancel)?;
            Ok(self.lock().items.keys().next_back().copied())
        })
    }

    fn search(
        &self,
        text: String,
        page: Page,
        cancel: CancellationToken,
    ) -> StoreFuture<'_, Vec<Item>> {
        Box::pin(async move {
            unless_cancelled(&cancel)?;
            // The same matching as SQLite's LIKE: ASCII case-insensitive.
            let needle = text.to_ascii_lowercase();
            Ok(self.page_where(page, |item| {
                item.name.to_ascii_lowercase().contains(&needle)
            }))
        })
    }

    fn create(&self, item: NewItem, cancel: CancellationToken) -> StoreFuture<'_, Item> {
        Box::pin(async move {
            unless_cancelled(&cancel)?;
            // The same rule as the SQLite store, so that a name one store
            // holds the other holds too.
            check_name(&item.name).map_err(StoreError::Rejected)?;
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
            unless_cancelled(&cancel)?;
            Ok(self.lock().items.get(&id).cloned())
        })
    }

    fn delete(&self, id: u64, cancel: CancellationToken) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            unless_cancelled(&cancel)?;
            Ok(self.lock().items.remove(&id).is_some())
        })
    }

    fn purge_expired(
        &self,
        now: u64,
        limit: usize,
        cancel: CancellationToken,
    ) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            unless_cancelled(&cancel)?;
            let mut inner = self.lock();
            let expired: Vec<u64> = inner
                .items
                .values()
                .filter(|item| item.expires_at.is_some_and(|e| e <= now))
                .map(|item| item.id)
                .take(limit)
                .collect();
            for id in &expired {
                inner.items.remove(id);
            }
            Ok(expired.len())
        })
    }

    fn counters(&self) -> Arc<StoreCounters> {
        self.counters.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cursor pages by id, search filters without breaking the cursor,
    /// and a purge removes at most `limit` expired items.
    #[tokio::test]
    async fn pages_follow_the_after_cursor_and_expired_items_are_purged() {
        let store = MemoryStore::new();
        let live = CancellationToken::new();
        for (name, ttl) in [("a", None), ("b", Some(0)), ("c", None), ("Bb", Some(0))] {
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
        let names = |items: Vec<Item>| items.into_iter().map(|i| i.name).collect::<Vec<_>>();
        assert_eq!(names(store.list(page, live.clone()).await.unwrap()), ["b"]);
        let found = store.search("b".into(), page, live.clone()).await;
        assert_eq!(names(found.unwrap()), ["b"]);
        assert_eq!(
            store.purge_expired(unix_now(), 1, live.clone()).await,
            Ok(1)
        );
        assert_eq!(
            store.purge_expired(unix_now(), 5, live.clone()).await,
            Ok(1)
        );
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
