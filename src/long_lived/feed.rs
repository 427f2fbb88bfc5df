//! [`Feed`]: the items created from now on, for those that wait for them
//! (the WebSocket hub, the long poll).
//!
//! An item can be created by any process on the same store: during an
//! upgrade the old process and the new one share the database, and behind
//! a balancer so do all the instances. So the feed does not listen to this
//! process's writes; it reads the store. One worker per process (`run`)
//! reads the items above the last id it has seen, whenever a local write
//! pokes it and otherwise every `FEED_POLL` while someone is waiting, and
//! publishes them as a [`Tail`]: the last `TAIL_LEN` items, already turned
//! into JSON. A thousand open sockets then cost one query per new batch,
//! not a thousand.
//!
//! A waiter asks for the items above the id it has seen
//! ([`Feed::after`]). If the tail covers that id, the answer comes from
//! memory; if the id is older (a client reconnecting after a restart,
//! with the last id it saw), it comes from the store, a page at a time,
//! until the waiter has caught up with the tail. Either way the items come
//! in id order, each once: a client that always asks for "after the last
//! id I saw" misses nothing and sees nothing twice, across any number of
//! restarts.
//!
//! Why ids are enough: the store gives every item a larger id than any
//! before it, and commits them in that order (SQLite's single writer, the
//! memory store's lock, and for PostgreSQL an advisory lock that creates
//! take in turn, since a sequence alone would let two transactions commit
//! out of id order), so once the feed has seen id N, no item below N can
//! appear later.
//!
//! At the drain the worker stops with the others: the sockets are being
//! closed, and the long polls answer at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::app::App;
use crate::store::{Item, Page, Store, StoreError};

/// How often the worker reads the store for items other processes wrote,
/// while anyone waits. A local write does not wait for it (it pokes).
pub const FEED_POLL: Duration = Duration::from_millis(100);

/// How many items the tail keeps: a waiter further behind than this reads
/// the store instead.
const TAIL_LEN: usize = 4096;

/// How many items one read of the store brings, for the worker and for a
/// waiter catching up.
const PAGE: usize = 256;

/// One item of the feed: its id, and its JSON as the API returns it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: u64,
    /// Text, as the hub sends it: the JSON is made once here, and its
    /// UTF-8 known from `String`, not checked again for every socket.
    pub json: Utf8Bytes,
}

impl Entry {
    pub(crate) fn new(item: &Item) -> Self {
        Entry {
            id: item.id,
            // Serializing an `Item` (numbers and a string) cannot fail.
            json: Utf8Bytes::from(serde_json::to_string(item).unwrap_or_default()),
        }
    }
}

/// The items the worker has read: every item with an id above `from`
/// that the store held when it was read, in id order.
#[derive(Debug)]
pub struct Tail {
    from: u64,
    entries: VecDeque<Entry>,
}

impl Tail {
    /// The entries above `after`, at most `limit`; `None` if the tail does
    /// not reach back that far.
    fn after(&self, after: u64, limit: usize) -> Option<Vec<Entry>> {
        if after < self.from {
            return None;
        }
        let start = self.entries.partition_point(|e| e.id <= after);
        Some(self.entries.range(start..).take(limit).cloned().collect())
    }
}

/// The live feed. One per server, in its `App`.
#[derive(Debug)]
pub struct Feed {
    /// The latest tail. Its receivers are the waiters; while there are
    /// none, the worker does not read the store.
    tail: watch::Sender<Arc<Tail>>,
    /// A write in this process created an item: read now.
    poke: Notify,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            // Covers nothing until the worker has read where the store
            // is: every waiter reads the store meanwhile.
            tail: watch::Sender::new(Arc::new(Tail {
                from: u64::MAX,
                entries: VecDeque::new(),
            })),
            poke: Notify::new(),
        }
    }
}

impl Feed {
    /// A write in this process has committed an item: the worker reads the
    /// store now rather than at its next tick.
    pub fn item_created(&self) {
        self.poke.notify_one();
    }

    /// The items above `after`, at most `limit`, in id order: at once if
    /// there are any, otherwise as soon as one is created (by any process
    /// on the store). Cancel-safe: dropping it loses nothing, since it
    /// consumes nothing; the caller asks again with the same `after`.
    pub async fn after(
        &self,
        store: &dyn Store,
        after: u64,
        limit: usize,
        cancel: &CancellationToken,
    ) -> Result<Vec<Entry>, StoreError> {
        let limit = limit.clamp(1, PAGE);
        let mut tail = self.tail.subscribe();
        loop {
            let now = tail.borrow_and_update().clone();
            let entries = match now.after(after, limit) {
                Some(entries) => entries,
                // Further behind than the tail: a page from the store.
                None => {
                    let page = Page {
                        after: Some(after),
                        limit,
                    };
                    let items = store.list(page, cancel.child_token()).await?;
                    items.iter().map(Entry::new).collect()
                }
            };
            if !entries.is_empty() {
                return Ok(entries);
            }
            // Nothing yet: wait for the worker's next read. The sender
            // lives in the `App`, as long as any waiter.
            if tail.changed().await.is_err() {
                return Ok(Vec::new());
            }
        }
    }
}

/// The feed's worker: reads new items into the tail until `cancel` (the
/// drain) fires.
pub async fn run(app: Arc<App>, cancel: CancellationToken) {
    let feed = &app.feed;
    // Where the store is now: everything above it is new.
    let mut to = loop {
        match app.store.newest_id(cancel.child_token()).await {
            Ok(newest) => break newest.unwrap_or(0),
            Err(StoreError::Cancelled) => return,
            Err(e) => warn!(error = %e, "feed: cannot read the newest item; retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(FEED_POLL * 10) => {}
        }
    };
    let mut entries: VecDeque<Entry> = VecDeque::new();
    let mut from = to;
    feed.tail.send_replace(Arc::new(Tail {
        from,
        entries: entries.clone(),
    }));
    loop {
        tokio::select! {
            // Cancellation first: a stopping feed starts no read.
            biased;
            _ = cancel.cancelled() => return,
            _ = feed.poke.notified() => {}
            _ = tokio::time::sleep(FEED_POLL) => {
                // Nobody waiting: nothing to read for.
                if feed.tail.receiver_count() == 0 {
                    continue;
                }
            }
        }
        // Page after page, until the store has no more.
        loop {
            let page = Page {
                after: Some(to),
                limit: PAGE,
            };
            let items = match app.store.list(page, cancel.child_token()).await {
                Ok(items) => items,
                Err(StoreError::Cancelled) => return,
                Err(e) => {
                    warn!(error = %e, "feed: cannot read new items; retrying");
                    break;
                }
            };
            let Some(last) = items.last() else { break };
            to = last.id;
            entries.extend(items.iter().map(Entry::new));
            while entries.len() > TAIL_LEN {
                // The tail now starts after the item it let go.
                from = entries.pop_front().map_or(from, |e| e.id);
            }
            let full = items.len() == PAGE;
            feed.tail.send_replace(Arc::new(Tail {
                from,
                entries: entries.clone(),
            }));
            if !full {
                break;
            }
        }
    }
}
