//! [`MemoryStore`]: items in a `Mutex<BTreeMap>`, lost on exit.
//!
//! Every call finishes inside its own `poll`, under a lock held for
//! microseconds, so there is nothing to interrupt: the token is checked once,
//! at the start. That is what `--db :memory:` and most tests run on.
//!
//! An idempotency key's row lives under the same lock as the items, so a
//! write and its key's row are stored together or not at all, as in the
//! databases' transactions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::once::{self, Key, KeyRow, Once, Write, Written};
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
    /// Idempotency keys, with the response stored for each.
    keys: HashMap<String, KeyRow>,
}

impl MemoryInner {
    /// Stores a new item (its name already checked).
    fn create(&mut self, item: NewItem) -> Item {
        let now = unix_now();
        self.next_id += 1;
        let stored = Item {
            id: self.next_id,
            name: item.name,
            created_at: now,
            expires_at: item.ttl_secs.map(|t| now.saturating_add(t)),
        };
        self.items.insert(stored.id, stored.clone());
        stored
    }
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
            Ok(self.lock().create(item))
        })
    }

    fn write_once(
        &self,
        write: Write,
        key: Key,
        cancel: CancellationToken,
    ) -> StoreFuture<'_, Once> {
        Box::pin(async move {
            unless_cancelled(&cancel)?;
            if let Write::Create(item) = &write {
                check_name(&item.name).map_err(StoreError::Rejected)?;
            }
            // One lock for the look-up, the write and the key's row: no
            // other request can come between them, so none is ever "in
            // progress" here (the service's set of keys in flight is what
            // answers 409 within a process).
            let mut inner = self.lock();
            if let Some(answer) = once::judge(&key, inner.keys.get(&key.key).cloned()) {
                return Ok(answer);
            }
            let written = match write {
                Write::Create(item) => Written::Created(inner.create(item)),
                Write::Delete(id) => Written::Deleted(inner.items.remove(&id).is_some()),
            };
            let response = (key.render)(&written);
            let row = KeyRow {
                fingerprint: key.fingerprint.to_vec(),
                response: response.clone(),
                expires_ms: key.expires_ms(),
            };
            inner.keys.insert(key.key, row);
            Ok(Once::Done(written, response))
        })
    }

    fn purge_expired_keys(
        &self,
        now_ms: u64,
        limit: usize,
        cancel: CancellationToken,
    ) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            unless_cancelled(&cancel)?;
            let mut inner = self.lock();
            let expired: Vec<String> = inner
                .keys
                .iter()
                .filter(|(_, row)| row.expires_ms <= now_ms)
                .map(|(key, _)| key.clone())
                .take(limit)
                .collect();
            for key in &expired {
                inner.keys.remove(key);
            }
            Ok(expired.len())
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
