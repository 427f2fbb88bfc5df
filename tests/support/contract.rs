//! What every store promises, whatever holds the items: one suite, run
//! against the memory store and SQLite (`tests/storage.rs`) and PostgreSQL
//! (`tests/postgres.rs`) by [`store_contract!`].
//!
//! * a token cancelled beforehand makes every method return `Cancelled`
//!   at once, and nothing is stored;
//! * `list` and `search` page by id: `limit` items after `after`, in order;
//! * every write the store acknowledged is visible to the next read, even
//!   when many run at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lameduck::store::{Item, NewItem, Page, Store, StoreError};
use tokio_util::sync::CancellationToken;

/// A store to run the contract on, and whatever must live as long as it
/// (its temp file, its database server).
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub keep: Box<dyn std::any::Any + Send>,
}

/// Three tests, one per promise, in a module named `$name`, each opening a
/// fresh store with `$open` (an `async fn() -> Opened` in scope where the
/// macro is used). Extra attributes (an `#[ignore]`) go on every test.
// Each test binary compiles `support`; only the storage ones use this.
#[allow(unused_macros)]
macro_rules! store_contract {
    ($name:ident, $open:ident $(, #[$attr:meta])*) => {
        mod $name {
            use super::*;

            /// The article's `TestHandlerContextCanceled`, at the store:
            /// with a token cancelled beforehand, every method returns
            /// `Cancelled` at once, and nothing is stored.
            #[tokio::test]
            $(#[$attr])*
            async fn a_cancelled_token_returns_cancelled_at_once_from_every_method() {
                let opened = $open().await;
                crate::support::contract::every_call_is_cancelled_at_once(&opened.store).await;
            }

            /// `list` and `search` page by id: at most `limit` items, ids
            /// strictly after `after`, in increasing order, and an empty
            /// page past the end.
            #[tokio::test]
            $(#[$attr])*
            async fn list_and_search_page_by_id() {
                let opened = $open().await;
                crate::support::contract::pages_follow_ids(&opened.store).await;
            }

            /// Every acknowledged write is visible: 8 writers creating at
            /// once, then each item read back by id and found in the full
            /// list; a delete is seen by the next read.
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            $(#[$attr])*
            async fn every_acknowledged_write_is_visible_to_the_next_read() {
                let opened = $open().await;
                crate::support::contract::acknowledged_writes_are_visible(&opened.store).await;
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use store_contract;

fn token() -> CancellationToken {
    CancellationToken::new()
}

fn new_item(name: &str) -> NewItem {
    NewItem {
        name: name.into(),
        ttl_secs: None,
    }
}

/// Calls every method with a token cancelled beforehand; each must return
/// `Cancelled`, all of them within a second (none waits for a database),
/// and the store must still be empty.
pub async fn every_call_is_cancelled_at_once(store: &Arc<dyn Store>) {
    let started = Instant::now();
    assert_every_call_is_cancelled(store.as_ref()).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(everything(store).await.is_empty(), "nothing was stored");
}

/// Calls every store method with a token cancelled beforehand and asserts
/// each returns `Cancelled`.
pub async fn assert_every_call_is_cancelled(store: &dyn Store) {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let page = Page {
        after: None,
        limit: 10,
    };
    let c = || cancel.clone();
    assert_eq!(store.list(page, c()).await, Err(StoreError::Cancelled));
    assert_eq!(
        store.search("x".into(), page, c()).await,
        Err(StoreError::Cancelled)
    );
    assert_eq!(store.get(1, c()).await, Err(StoreError::Cancelled));
    assert_eq!(
        store.create(new_item("x"), c()).await,
        Err(StoreError::Cancelled)
    );
    assert_eq!(store.delete(1, c()).await, Err(StoreError::Cancelled));
    assert_eq!(
        store.purge_expired(u64::MAX, 10, c()).await,
        Err(StoreError::Cancelled)
    );
}

/// Five items (three with "odd" in the name), paged through with `list`
/// and `search`.
pub async fn pages_follow_ids(store: &Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 1..=5 {
        let kind = if i % 2 == 1 { "ODD" } else { "even" };
        let item = store
            .create(new_item(&format!("item {i} {kind}")), token())
            .await
            .expect("create");
        ids.push(item.id);
    }
    assert!(ids.is_sorted(), "ids increase: {ids:?}");
    let page = |after, limit| Page { after, limit };
    let list = |p| async move { ids_of(store.list(p, token()).await.expect("list")) };
    assert_eq!(list(page(None, 2)).await, ids[0..2]);
    assert_eq!(list(page(Some(ids[1]), 2)).await, ids[2..4]);
    assert_eq!(list(page(Some(ids[3]), 2)).await, ids[4..5]);
    assert!(list(page(Some(ids[4]), 2)).await.is_empty());
    assert_eq!(list(page(None, 1000)).await, ids);

    let search = |p| async move {
        ids_of(
            store
                .search("odd".into(), p, token())
                .await
                .expect("search"),
        )
    };
    let odd = [ids[0], ids[2], ids[4]];
    assert_eq!(search(page(None, 2)).await, odd[0..2], "case-insensitive");
    assert_eq!(search(page(Some(odd[1]), 2)).await, odd[2..3]);
    assert!(search(page(Some(odd[2]), 2)).await.is_empty());
}

/// Eight tasks creating 25 items each at once; every `Ok` is then read
/// back, and the full list holds exactly those.
pub async fn acknowledged_writes_are_visible(store: &Arc<dyn Store>) {
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut made = Vec::new();
                for n in 0..25 {
                    let name = format!("writer {w} item {n}");
                    let item = store.create(new_item(&name), token()).await;
                    let item = item.expect("create");
                    assert_eq!(item.name, name);
                    made.push(item);
                }
                made
            })
        })
        .collect();
    let mut made = Vec::new();
    for w in writers {
        made.extend(w.await.expect("writer task"));
    }
    for item in &made {
        let got = store.get(item.id, token()).await.expect("get");
        assert_eq!(got.as_ref(), Some(item), "read back by id");
    }
    let mut want = made.clone();
    want.sort_by_key(|i| i.id);
    assert_eq!(everything(store).await, want, "the list holds every write");

    let gone = made[0].id;
    assert_eq!(store.delete(gone, token()).await, Ok(true));
    assert_eq!(store.get(gone, token()).await, Ok(None));
    assert_eq!(store.delete(gone, token()).await, Ok(false));
    assert_eq!(everything(store).await.len(), made.len() - 1);
}

/// Every item, paging through `list` 100 at a time.
pub async fn everything(store: &Arc<dyn Store>) -> Vec<Item> {
    let mut all: Vec<Item> = Vec::new();
    loop {
        let page = Page {
            after: all.last().map(|i| i.id),
            limit: 100,
        };
        let items = store.list(page, token()).await.expect("list");
        if items.is_empty() {
            return all;
        }
        all.extend(items);
    }
}

fn ids_of(items: Vec<Item>) -> Vec<u64> {
    items.into_iter().map(|i| i.id).collect()
}
