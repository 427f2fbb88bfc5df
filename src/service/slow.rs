//! `GET /api/slow?ms=N`: simulated work that stops the moment its request
//! is cancelled.
//!
//! The work runs in a spawned task — standing in for any work a handler
//! hands off (a blocking call, a driver, a queue). Dropping the handler does
//! not drop that task, so it gets a request-scoped token, and the handler's
//! drop guard cancels the token when the client leaves, the request times
//! out, or the shutdown deadline comes.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;

use super::query::Query;
use super::request_token;
use super::respond::{self, Body};
use crate::app::App;

/// Longest simulated work accepted.
pub const MAX_MS: u64 = 60_000;

/// Sleeps `ms` on a spawned task, then answers 200 `done`.
pub async fn slow(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let ms = match Query::parse(req.uri().query()).and_then(|q| q.number("ms", 0, MAX_MS, None)) {
        Ok(Some(ms)) => ms,
        Ok(None) => {
            return respond::json_error(
                StatusCode::BAD_REQUEST,
                "query parameter `ms` is required",
            );
        }
        Err(e) => return respond::json_error(StatusCode::BAD_REQUEST, e),
    };
    // `_cancel_on_drop` lives as long as this handler. If hyper drops the
    // handler, the guard cancels `token` and the spawned work stops.
    let (token, _cancel_on_drop) = request_token();
    let work = tokio::spawn(simulated_work(
        app.clone(),
        Duration::from_millis(ms),
        token,
    ));
    match work.await {
        Ok(true) => respond::text(StatusCode::OK, "done\n"),
        // Cancelled: nobody is waiting for this answer any more.
        Ok(false) => respond::json_error(StatusCode::SERVICE_UNAVAILABLE, "cancelled"),
        // The task panicked or was aborted: neither happens to
        // `simulated_work`, and no input can make it; a 500 says the
        // server, not the request, is at fault.
        Err(_) => respond::json_error(StatusCode::INTERNAL_SERVER_ERROR, "work failed"),
    }
}

/// The detached work. Returns `false` if it was cancelled before finishing.
async fn simulated_work(app: Arc<App>, total: Duration, cancel: CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(total) => true,
        _ = cancel.cancelled() => {
            app.metrics.work_cancelled.fetch_add(1, Relaxed);
            false
        }
    }
}
