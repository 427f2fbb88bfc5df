//! `/api/items`: the article's `items` handler, completed with a create.
//!
//! Go: `items, err := store.List(r.Context())`. Here: `store.list(page,
//! token)`, where the token is cancelled by the handler's drop guard —
//! when the client leaves, the request times out, or the deadline comes.
//!
//! # Reads and writes end differently
//!
//! A **read** belongs to its request. If the client leaves, nobody wants
//! the answer: the handler is dropped, its token cancelled, and the store
//! interrupts the query.
//!
//! A **write** does not belong to its request. Once it has started, the
//! client leaving (or its request timing out) must not decide whether the
//! item exists: the client may have given up a millisecond before the
//! commit, or it may retry and expect to find it. So the write runs as a
//! task of its own, tracked by the shutdown state, the handler only waits
//! for its result, and dropping the handler drops that wait, not the
//! write. The drain waits for the tracked writes within the shutdown
//! deadline. The only thing that stops a write is a forced shutdown, and
//! then it rolls back: the item is either wholly there or not at all.

use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use tokio::time::Instant;

use std::sync::atomic::Ordering::Relaxed;

use super::query::Query;
use super::request_token;
use super::respond::{self, Body};
use crate::app::App;
use crate::store::{NewItem, Page, StoreError, check_name};

/// Longest accepted search text (`?q=`), in characters.
pub const MAX_SEARCH_CHARS: usize = 200;

/// `GET /api/items?limit=&after=`: a page of items, 200 JSON array.
///
/// With `&q=text`, only items whose name contains `text` (ASCII
/// case-insensitive): an unindexed scan of the whole table, the slow query
/// that shows a client leaving interrupting the database.
pub async fn list(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let query = match Query::parse(req.uri().query()) {
        Ok(query) => query,
        Err(e) => return respond::json_error(StatusCode::BAD_REQUEST, e),
    };
    let search = match query.text("q") {
        None => None,
        // No control characters: no name can hold one (`check_name`), and
        // SQLite's LIKE would read a NUL as the end of the pattern.
        Some(text)
            if (1..=MAX_SEARCH_CHARS).contains(&text.chars().count())
                && !text.chars().any(char::is_control) =>
        {
            Some(text.to_owned())
        }
        Some(_) => {
            let msg = format!(
                "query parameter `q` must be 1 to {MAX_SEARCH_CHARS} characters, no control characters"
            );
            return respond::json_error(StatusCode::BAD_REQUEST, msg);
        }
    };
    let page = match (
        query.number("limit", 1, 1000, Some(100)),
        query.number("after", 0, u64::MAX, None),
    ) {
        (Ok(limit), Ok(after)) => Page {
            after,
            limit: limit.unwrap_or(100) as usize,
        },
        (Err(e), _) | (_, Err(e)) => return respond::json_error(StatusCode::BAD_REQUEST, e),
    };
    // Dropping this handler drops `_cancel_on_drop`, which cancels `token`:
    // the store sees the cancellation even if it handed work elsewhere.
    let (token, _cancel_on_drop) = request_token();
    let items = match search {
        None => app.store.list(page, token).await,
        Some(text) => app.store.search(text, page, token).await,
    };
    match items {
        Ok(items) => respond::json(StatusCode::OK, &items),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateItem {
    name: String,
    #[serde(default)]
    ttl_secs: Option<u64>,
}

/// `POST /api/items` with `{"name": "...", "ttl_secs": n}`: 201 and the item.
pub async fn create(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let deadline = Instant::now() + app.config.request_timeout;
    let bytes = match read_body(req, app.config.max_body, deadline).await {
        Ok(bytes) => bytes,
        Err(res) => return res,
    };
    let new = match serde_json::from_slice::<CreateItem>(&bytes) {
        Ok(new) => new,
        Err(e) => {
            return respond::json_error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}"));
        }
    };
    // The store's own rule, checked here first so that a bad name never
    // reaches a write task (the store would refuse it as well).
    if let Err(msg) = check_name(&new.name) {
        return respond::json_error(StatusCode::UNPROCESSABLE_ENTITY, msg);
    }
    if new.ttl_secs.is_some_and(|t| t > MAX_TTL_SECS) {
        let msg = format!("`ttl_secs` must be at most {MAX_TTL_SECS} (100 years)");
        return respond::json_error(StatusCode::UNPROCESSABLE_ENTITY, msg);
    }
    let item = NewItem {
        name: new.name,
        ttl_secs: new.ttl_secs,
    };
    let created = tracked_write(&app, |app, abandon| async move {
        let created = app.store.create(item, abandon).await;
        // Inside the write task, so that the hub and the long polls hear
        // of the item even if its own client has left.
        if created.is_ok() {
            app.feed.item_created();
        }
        created
    });
    match created.await {
        Ok(item) => {
            let mut res = respond::json(StatusCode::CREATED, &item);
            if let Ok(loc) = HeaderValue::try_from(format!("/api/items/{}", item.id)) {
                res.headers_mut().insert(header::LOCATION, loc);
            }
            res
        }
        Err(e) => store_error(e),
    }
}

/// `GET /api/items/{id}`: 200 and the item, or 404.
pub async fn get(app: Arc<App>, id: u64) -> Response<Body> {
    let (token, _cancel_on_drop) = request_token();
    match app.store.get(id, token).await {
        Ok(Some(item)) => respond::json(StatusCode::OK, &item),
        Ok(None) => respond::json_error(StatusCode::NOT_FOUND, "no such item"),
        Err(e) => store_error(e),
    }
}

/// `DELETE /api/items/{id}`: 204, or 404 if there was no such item.
pub async fn delete(app: Arc<App>, id: u64) -> Response<Body> {
    let deleted = tracked_write(&app, move |app, abandon| async move {
        app.store.delete(id, abandon).await
    });
    match deleted.await {
        Ok(true) => respond::empty(StatusCode::NO_CONTENT),
        Ok(false) => respond::json_error(StatusCode::NOT_FOUND, "no such item"),
        Err(e) => store_error(e),
    }
}

/// Longest accepted `ttl_secs`: 100 years. Far enough for "keep it a long
/// time", small enough that `now + ttl` fits the database's integers.
pub const MAX_TTL_SECS: u64 = 100 * 365 * 24 * 3600;

/// Starts a write as a task of its own ([`ShutdownState::spawn_write`])
/// and returns the wait for its result. Dropping the returned future (the
/// client left, the request timed out) does not stop the write; see the
/// module docs.
///
/// The write gets the shutdown's abandon token, never a request token:
/// only a forced shutdown makes it roll back.
///
/// [`ShutdownState::spawn_write`]: crate::shutdown::ShutdownState::spawn_write
fn tracked_write<T, F, Fut>(
    app: &Arc<App>,
    write: F,
) -> impl std::future::Future<Output = Result<T, StoreError>> + use<T, F, Fut>
where
    T: Send + 'static,
    F: FnOnce(Arc<App>, tokio_util::sync::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let task = app.shutdown.spawn_write(|abandon| {
        let work = write(app.clone(), abandon);
        let app = app.clone();
        async move {
            let res = work.await;
            // Counted after the commit: the drain began before this write
            // finished, and waited for it.
            if res.is_ok() && app.shutdown.is_draining() {
                app.metrics.writes_during_drain.fetch_add(1, Relaxed);
            }
            res
        }
    });
    async move {
        task.await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("write task failed".into())))
    }
}

/// The id in `/api/items/{id}`: a decimal `u64`, nothing after it.
pub fn parse_id(path: &str) -> Option<u64> {
    let rest = path.strip_prefix("/api/items/")?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// Reads the whole body, refusing more than `max` bytes and giving up at
/// `deadline`. Each failure is already the response to send:
///
/// * a declared `Content-Length` over `max`: 413 before reading a byte;
/// * more than `max` bytes actually sent (chunked): 413 as soon as the
///   limit is crossed;
/// * still reading at `deadline`: 408 (a slow or stalled upload);
/// * the body broke off: 400.
///
/// Each closes the connection: the rest of the body is unread, so hyper
/// could not reuse it anyway, and saying so lets the client know.
async fn read_body(
    req: Request<Incoming>,
    max: usize,
    deadline: Instant,
) -> Result<bytes::Bytes, Response<Body>> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        respond::closing(respond::json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {max} bytes"),
        ))
    };
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(req.into_body(), max).collect();
    match tokio::time::timeout_at(deadline, collect).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(respond::closing(respond::json_error(
            StatusCode::BAD_REQUEST,
            "request body broken off",
        ))),
        Err(_) => Err(respond::closing(respond::json_error(
            StatusCode::REQUEST_TIMEOUT,
            "request body not received in time",
        ))),
    }
}

/// The answer for a store error. Only `Unavailable` is a 500: the store
/// is broken (a disk error, a corrupt file, a panic in a query), which no
/// request can cause or retry its way out of. A database server that is
/// down or restarting is a 503 with `Retry-After`: the request was fine,
/// and the same one will succeed once the pool has reconnected.
pub(crate) fn store_error(e: StoreError) -> Response<Body> {
    match e {
        // A read: only reachable if the client is gone; the answer goes
        // nowhere, but it must still be a well-formed one. A write: the
        // shutdown was forced and the transaction rolled back.
        StoreError::Cancelled => respond::retry_elsewhere("cancelled; nothing was stored"),
        // Another process held the database past the busy timeout, or the
        // disk is full.
        StoreError::Busy => respond::retry_elsewhere("database busy, try again"),
        // The database server is unreachable or restarting (Postgres).
        // Logged, since an operator should know; not an error of ours.
        StoreError::Unreachable(why) => {
            tracing::warn!(error = %why, "database unreachable; answering 503");
            respond::retry_elsewhere("database unreachable, try again")
        }
        // The input broke a rule the handler did not check: still the
        // client's input, so still a 4xx.
        StoreError::Rejected(why) => respond::json_error(StatusCode::UNPROCESSABLE_ENTITY, why),
        StoreError::Unavailable(why) => {
            tracing::error!(error = %why, "store failed; answering 500");
            respond::json_error(StatusCode::INTERNAL_SERVER_ERROR, "query failed")
        }
    }
}
