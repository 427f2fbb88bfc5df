//! [`CancelOnDrop`]: the guard that stops a read on the server when its
//! future is dropped.
//!
//! Dropping a tokio-postgres query future only stops *waiting*: the query
//! was already sent, the backend runs it to the end, and the driver's
//! connection task throws the answer away when it arrives. So the guard
//! does what Go's `database/sql` drivers do when a context ends: it opens
//! a second, short connection to the server and sends a *cancel request*
//! naming the backend (`client.cancel_token().cancel_query(NoTls)`). The
//! backend stops the query at its next check, with `57014 query_canceled`.
//!
//! A `Drop` cannot await, so the cancel runs as a task of its own, and
//! that task keeps the connection out of the pool until the backend is
//! idle again. Putting it back at once would be a bug: the cancel request
//! travels on its own socket and is not ordered with anything sent on the
//! connection, so it could arrive after the next reader's query had
//! started, and stop that one instead. (SQLite's store guards against the
//! same thing by disarming its interrupt handle before it returns the
//! connection.)
//!
//! | step | Go (`database/sql`, pgx) | lameduck (`tokio-postgres`) |
//! |---|---|---|
//! | the client leaves | `r.Context()` is cancelled | hyper drops the handler's future |
//! | the store call ends | `QueryContext(ctx, …)` returns `context.Canceled` | the `list`/`search` future is dropped, with a `CancelOnDrop` guard it owns |
//! | the database is told | the driver sends a cancel request | the guard's `Drop` spawns a task that sends one |
//! | the backend | stops with `57014 query_canceled` | the same |
//! | the connection | returned to the pool | returned only once the backend is idle again |
//!
//! `a_client_leaving_mid_search_cancels_the_query_in_postgres_within_200ms`
//! seeds 800,000 rows with `generate_series`, sends a search that would
//! scan them for seconds, disconnects once `pg_stat_activity` shows it
//! active, and requires it gone from `pg_stat_activity` within 200 ms, with
//! PostgreSQL's own log saying `canceling statement due to user request`.
//! It was gone 50 ms after the disconnect (debug build, 2-core machine;
//! measured by polling with `psql`, so an upper bound).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use deadpool_postgres::Object;
use tokio_postgres::NoTls;
use tokio_util::task::TaskTracker;

use super::errors::is_query_canceled;
use crate::store::StoreCounters;

/// How long the cancel task waits for the backend to be idle after the
/// cancel request. A backend checks for cancellation between rows and
/// inside every long loop, so this is milliseconds; past the bound the
/// connection is closed instead of returned, and the backend notices the
/// closed socket when it next writes to it.
const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// A read in progress: its pooled connection, and the `reads_running`
/// gauge it holds. Dropped while armed (the read's future was dropped, or
/// its token cancelled), it cancels the query on the server; disarmed,
/// it only returns the connection.
pub(super) struct CancelOnDrop {
    /// `None` once disarmed or dropped.
    conn: Option<Object>,
    /// Counted down when the connection is back in the pool, not when the
    /// future is dropped: "zero" means no backend is busy for a reader.
    running: ReadRunning,
    /// Where the cancel tasks go, so that `close()` can wait for them.
    cancels: TaskTracker,
}

impl CancelOnDrop {
    /// Arms the guard over a connection about to run a read.
    pub(super) fn arm(conn: Object, counters: Arc<StoreCounters>, cancels: TaskTracker) -> Self {
        CancelOnDrop {
            conn: Some(conn),
            running: ReadRunning::enter(counters),
            cancels,
        }
    }

    /// The connection, to run the read on.
    pub(super) fn conn(&self) -> &Object {
        self.conn
            .as_ref()
            .expect("present until disarmed or dropped")
    }

    /// The read finished (with rows or an error from the server): there
    /// is nothing to cancel, and the connection goes back to the pool.
    pub(super) fn disarm(mut self) {
        // Dropping the `Object` returns it to the pool; the pool discards
        // it there if its session has closed.
        drop(self.conn.take());
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let running = std::mem::replace(&mut self.running, ReadRunning::none());
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                self.cancels.spawn_on(cancel_and_settle(conn, running), &rt);
            }
            // No runtime (it is shutting down): nothing can send a cancel.
            // Take the connection out of the pool so no one else gets it;
            // its socket closes when the runtime's tasks are dropped.
            Err(_) => drop(Object::take(conn)),
        }
    }
}

/// Sends the cancel request, then waits until the backend is idle before
/// the connection goes back to the pool. A connection in doubt is closed
/// instead.
async fn cancel_and_settle(conn: Object, running: ReadRunning) {
    if let Err(e) = conn.cancel_token().cancel_query(NoTls).await {
        tracing::warn!(error = %e, "cannot send a cancel request; closing the connection");
        drop(Object::take(conn));
        return;
    }
    // The cancelled query's answer and this one's come back in order on
    // the connection: once this one arrives, the backend is idle. If the
    // cancel arrived after the query had ended on its own, it stops this
    // one instead (57014), which is as good: the backend has used it up.
    let settled = tokio::time::timeout(SETTLE_WAIT, async {
        match conn.simple_query("SELECT 1").await {
            Ok(_) => true,
            Err(e) => is_query_canceled(&e),
        }
    })
    .await;
    if settled == Ok(true) {
        running.counters().queries_interrupted.fetch_add(1, Relaxed);
        drop(conn);
    } else {
        tracing::warn!("backend not idle after a cancel request; closing the connection");
        drop(Object::take(conn));
    }
    // `running` falls here, after the connection is back or gone.
}

/// The `reads_running` gauge: up while a reader holds a connection.
pub(super) struct ReadRunning(Option<Arc<StoreCounters>>);

impl ReadRunning {
    fn enter(counters: Arc<StoreCounters>) -> Self {
        counters.reads_running.fetch_add(1, Relaxed);
        ReadRunning(Some(counters))
    }

    /// A gauge already handed on: dropping it counts nothing.
    fn none() -> Self {
        ReadRunning(None)
    }

    fn counters(&self) -> &StoreCounters {
        self.0.as_ref().expect("an entered gauge")
    }
}

impl Drop for ReadRunning {
    fn drop(&mut self) {
        if let Some(counters) = self.0.take() {
            counters.reads_running.fetch_sub(1, Relaxed);
        }
    }
}
