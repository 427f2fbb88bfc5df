//! The background cleaner: the article's `runCleaner`.
//!
//! A background task is the part of a service most often forgotten at
//! shutdown: the port closes, but a ticker loop keeps the process alive (or
//! is killed mid-write). This one selects on its cancellation token next to
//! its ticker, passes the same token into the store so a long purge stops
//! too, and returns when cancelled. The server cancels it when the drain
//! begins and waits for it inside the same deadline as the connections.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::App;
use crate::store::{StoreError, unix_now};

/// Runs until `cancel` fires, purging expired items every `every`.
pub async fn run(app: Arc<App>, every: Duration, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(every);
    // After a slow purge, do not fire a burst of catch-up ticks.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.tick().await; // The first tick is immediate; skip it.
    loop {
        tokio::select! {
            // Checked first so a cancelled cleaner never starts a new purge.
            biased;
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => clean_once(&app, &cancel).await,
        }
    }
}

async fn clean_once(app: &App, cancel: &CancellationToken) {
    match app.store.purge_expired(unix_now(), cancel.clone()).await {
        Ok(n) => {
            app.metrics
                .cleaner_runs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            app.metrics
                .items_purged
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            debug!(task = "cleaner", purged = n, "cleaner run done");
        }
        Err(StoreError::Cancelled) => debug!(task = "cleaner", "purge cancelled"),
        Err(e) => warn!(task = "cleaner", error = %e, "purge failed"),
    }
}
