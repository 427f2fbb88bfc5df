//! `--max-connections`: at the limit, the accept loop stops accepting until
//! a connection ends, and the kernel's backlog holds (and in time refuses)
//! the rest. Backpressure, not accept-and-drop.
//!
//! The count is the one the metrics keep anyway: connections accepted
//! minus connections closed. A semaphore would keep a second count, and
//! every connection would pay for it twice on a line every core shares (a
//! permit taken, a permit given back under the semaphore's lock). Here an
//! ending connection adds to the closed count it adds to already, and
//! looks at one flag; only when the accept loop is waiting at the limit
//! does it wake it.
//!
//! The drain waits on the same count for the last connection to end
//! ([`ConnLimit::none_open`]): it is woken once, when the count reaches
//! zero, not once per connection that ends. Ten thousand idle connections
//! closing at a drain would otherwise wake it as many times as the
//! scheduler happened to run it between two of them.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use tokio::sync::Notify;

use crate::metrics::Metrics;

/// The connection limit.
#[derive(Debug)]
pub struct ConnLimit {
    max: u64,
    /// While someone waits: the open count below which it wants waking
    /// (`max` for the accept loop, 1 for the drain); 0 while no one does.
    wake_below: AtomicU64,
    /// Woken when a connection ends and the count is below `wake_below`.
    room: Notify,
}

impl ConnLimit {
    /// At most `max` open connections.
    pub fn new(max: usize) -> Self {
        ConnLimit {
            max: max as u64,
            wake_below: AtomicU64::new(0),
            room: Notify::new(),
        }
    }

    /// Resolves once fewer than `max` connections are open. Cancel-safe:
    /// it holds nothing.
    pub async fn room(&self, metrics: &Metrics) {
        self.below(self.max, metrics).await
    }

    /// Resolves once no connection is open: the drain's wait. Cancel-safe.
    pub async fn none_open(&self, metrics: &Metrics) {
        self.below(1, metrics).await
    }

    /// Resolves once fewer than `n` connections are open. One waiter at a
    /// time: the accept loop while it runs, the drain after it. Dropped
    /// while it waits (a `select!` that took another branch), it leaves
    /// its threshold set: at worst a connection that ends stores one
    /// wake-up, which the next waiter checks against the count and
    /// ignores.
    async fn below(&self, n: u64, metrics: &Metrics) {
        while metrics.open_connections() >= n {
            let notified = self.room.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the threshold is set and the count read
            // again, so a connection that ends in between is not missed
            // (and `Notify` keeps one wake-up for a waiter yet to come).
            // The threshold's store and the count's loads are SeqCst, as
            // are the closing side's add and loads: of "set the threshold,
            // read the count" and "add to the count, read the threshold",
            // one sees the other.
            notified.as_mut().enable();
            self.wake_below.store(n, SeqCst);
            if metrics.open_connections() < n {
                break;
            }
            notified.await;
        }
        self.wake_below.store(0, SeqCst);
    }

    /// A connection has ended (its closed count is already added): wakes
    /// the waiter, if there is one and the count is now below what it
    /// waits for.
    pub fn released(&self, metrics: &Metrics) {
        let below = self.wake_below.load(SeqCst);
        if below != 0 && metrics.open_connections() < below {
            self.room.notify_one();
        }
    }
}
