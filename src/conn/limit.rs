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

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use tokio::sync::Notify;

use crate::metrics::Metrics;

/// The connection limit.
#[derive(Debug)]
pub struct ConnLimit {
    max: u64,
    /// Set while the accept loop waits for room.
    waiting: AtomicBool,
    /// Woken when a connection ends while the accept loop waits.
    room: Notify,
}

impl ConnLimit {
    /// At most `max` open connections.
    pub fn new(max: usize) -> Self {
        ConnLimit {
            max: max as u64,
            waiting: AtomicBool::new(false),
            room: Notify::new(),
        }
    }

    /// Resolves once fewer than `max` connections are open. Cancel-safe:
    /// it holds nothing.
    pub async fn room(&self, metrics: &Metrics) {
        while metrics.open_connections() >= self.max {
            let notified = self.room.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the flag is set and the count read again,
            // so a connection that ends in between is not missed (and
            // `Notify` keeps one wake-up for a waiter yet to come). The
            // flag's store and the count's loads are SeqCst, as are the
            // closing side's add and load: of "set the flag, read the
            // count" and "add to the count, read the flag", one sees the
            // other.
            notified.as_mut().enable();
            self.waiting.store(true, SeqCst);
            if metrics.open_connections() < self.max {
                break;
            }
            notified.await;
        }
        self.waiting.store(false, SeqCst);
    }

    /// A connection has ended (its closed count is already added): wakes
    /// the accept loop if it waits for room.
    pub fn released(&self) {
        if self.waiting.load(SeqCst) {
            self.room.notify_one();
        }
    }
}
