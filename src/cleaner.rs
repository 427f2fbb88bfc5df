//! The background cleaner: the article's `runCleaner`.
//!
//! A background task is the part of a service most often forgotten at
//! shutdown: the port closes, but a ticker loop keeps the process alive (or
//! is killed mid-write). This one selects on its cancellation token next to
//! its ticker, and returns when cancelled. The server cancels it when the
//! drain begins and waits for it inside the same deadline as the
//! connections.
//!
//! A purge can be large (a million items expiring at once). It is done in
//! batches of at most `cleanup_batch` items, each its own transaction, and
//! the token is checked between batches, so a cancelled cleaner stops after
//! at most the batch it is in — shutdown never waits on a long purge, and
//! every committed batch stays done. The token also goes into the store,
//! where a batch that sees it before committing rolls back.
//!
//! Each run then purges the expired idempotency keys (`store::once`) the
//! same way, in batches of the same size: a key outlives its
//! `--idempotency-ttl` only until the next run. An expired key the cleaner
//! has not reached yet is already ignored by the writes, so the cleaner
//! only bounds the table's size, never what a client is answered.
//!
//! [`crate::Server::add_worker`] is how it is started: the server spawns
//! each worker with the shutdown's `closing` token, which the drain
//! cancels, waits for it with the connections, and aborts, at the forced
//! close, one that has not returned. The report counts both
//! (`workers_stopped`, `workers_aborted`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::app::App;
use crate::store::{StoreError, StoreFuture, unix_now, unix_now_ms};

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

/// One purge: the expired items, then the expired idempotency keys.
async fn clean_once(app: &App, cancel: &CancellationToken) {
    let batch = app.config.cleanup_batch.max(1);
    // One "now" for each whole purge, so it ends even if more keep expiring.
    let now = unix_now();
    let items = &app.metrics.items_purged;
    let Some(items) = purge(app, cancel, "items", batch, items, |cancel| {
        app.store.purge_expired(now, batch, cancel)
    })
    .await
    else {
        return;
    };
    let now_ms = unix_now_ms();
    let keys = &app.metrics.keys_purged;
    let Some(keys) = purge(app, cancel, "idempotency keys", batch, keys, |cancel| {
        app.store.purge_expired_keys(now_ms, batch, cancel)
    })
    .await
    else {
        return;
    };
    app.metrics.cleaner_runs.fetch_add(1, Relaxed);
    debug!(task = "cleaner", items, keys, "cleaner run done");
}

/// Batches of `purge_batch` until one comes back short (`Some(total)`),
/// or the token fires or the store fails (`None`: the run stops there).
/// Each committed batch is added to `purged_total` as it commits: it
/// stays done even if the run stops after it.
async fn purge<'a, F>(
    app: &App,
    cancel: &CancellationToken,
    what: &'static str,
    batch: usize,
    purged_total: &AtomicU64,
    purge_batch: F,
) -> Option<usize>
where
    F: Fn(CancellationToken) -> StoreFuture<'a, usize>,
{
    let mut purged = 0;
    loop {
        // Between batches: the point where a cancelled cleaner stops.
        if cancel.is_cancelled() {
            debug!(
                task = "cleaner",
                what, purged, "purge stopped by cancellation"
            );
            return None;
        }
        match purge_batch(cancel.clone()).await {
            Ok(n) => {
                app.metrics.cleaner_batches.fetch_add(1, Relaxed);
                purged_total.fetch_add(n as u64, Relaxed);
                purged += n;
                if n < batch {
                    return Some(purged);
                }
            }
            Err(StoreError::Cancelled) => {
                debug!(task = "cleaner", what, purged, "purge cancelled");
                return None;
            }
            Err(e) => {
                warn!(task = "cleaner", what, error = %e, purged, "purge failed");
                return None;
            }
        }
    }
}
