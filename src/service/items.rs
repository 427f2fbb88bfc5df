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
//!
//! # Writes a retry cannot repeat
//!
//! Both writes (`POST /api/items`, `DELETE /api/items/{id}`) take an
//! `Idempotency-Key` header. With one, the write and its response are
//! stored together, and a retry with the key gets that response again
//! (`Idempotent-Replayed: true`) instead of writing again; the same key
//! for a different request is `422`, and one whose first request is still
//! being written is `409`. The header is read in `idempotency_key.rs`, the
//! rule applied in [`crate::store::once`]. Without the header nothing
//! changes.

use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use tokio::time::Instant;

use std::sync::atomic::Ordering::Relaxed;

use super::idempotency_key;
use super::query::Query;
use super::request_token;
use super::respond::{self, Body};
use crate::app::App;
use crate::store::{
    Key, NewItem, Once, Page, StoreError, StoredResponse, Write, Written, check_name, unix_now_ms,
};

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
/// With an `Idempotency-Key`, done once for that key (see [`keyed`]).
pub async fn create(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let key = match idempotency_key::from_headers(req.headers()) {
        Ok(key) => key,
        Err(res) => return *res,
    };
    let path = req.uri().path().to_owned();
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
    if let Some(key) = key {
        let fingerprint = idempotency_key::fingerprint(&Method::POST, &path, &bytes);
        return keyed(&app, Write::Create(item), key, fingerprint).await;
    }
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
        Ok(item) => respond::stored(render(&Written::Created(item)), false),
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

/// `DELETE /api/items/{id}`: 204, or 404 if there was no such item. With
/// an `Idempotency-Key`, the first answer is the one every retry gets
/// (a retry of a delete that worked is `204` again, not `404`).
pub async fn delete(app: Arc<App>, req: Request<Incoming>, id: u64) -> Response<Body> {
    let key = match idempotency_key::from_headers(req.headers()) {
        Ok(key) => key,
        Err(res) => return *res,
    };
    if let Some(key) = key {
        // A DELETE's body means nothing here; it is not read, and not
        // part of the fingerprint.
        let fingerprint = idempotency_key::fingerprint(&Method::DELETE, req.uri().path(), b"");
        return keyed(&app, Write::Delete(id), key, fingerprint).await;
    }
    let deleted = tracked_write(&app, move |app, abandon| async move {
        app.store.delete(id, abandon).await
    });
    match deleted.await {
        Ok(deleted) => respond::stored(render(&Written::Deleted(deleted)), false),
        Err(e) => store_error(e),
    }
}

/// A write with an `Idempotency-Key`: `409` if the key is being written in
/// this process already; otherwise the store does the write once for the
/// key ([`crate::store::once`]), in a tracked write task that holds the
/// key's claim until it ends.
async fn keyed(app: &Arc<App>, write: Write, key: String, fingerprint: [u8; 32]) -> Response<Body> {
    let Some(claim) = app.keys_in_flight.claim(&key) else {
        return key_in_progress(app);
    };
    let key = Key {
        key,
        fingerprint,
        now_ms: unix_now_ms(),
        ttl_ms: u64::try_from(app.config.idempotency_ttl.as_millis()).unwrap_or(u64::MAX),
        render,
    };
    let done = tracked_write(app, move |app, abandon| async move {
        // Dropped when the write ends, whoever is still waiting for it.
        let _claim = claim;
        let done = app.store.write_once(write, key, abandon).await;
        if let Ok(Once::Done(Written::Created(_), _)) = &done {
            app.feed.item_created();
        }
        done
    });
    match done.await {
        Ok(Once::Done(_, response)) => respond::stored(response, false),
        Ok(Once::Replayed(response)) => {
            app.metrics.idempotent_replays.fetch_add(1, Relaxed);
            respond::stored(response, true)
        }
        Ok(Once::Mismatch) => {
            app.metrics.idempotency_mismatches.fetch_add(1, Relaxed);
            respond::json_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "this Idempotency-Key was used for a different request (method, path or body); \
                 use a new key for a new request",
            )
        }
        Ok(Once::InProgress) => key_in_progress(app),
        Err(e) => store_error(e),
    }
}

/// `409` + `Retry-After`: another request with the key is being written.
fn key_in_progress(app: &App) -> Response<Body> {
    app.metrics.idempotency_conflicts.fetch_add(1, Relaxed);
    let mut res = respond::json_error(
        StatusCode::CONFLICT,
        "a request with this Idempotency-Key is being processed; retry it once that one has been answered",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

/// The response for what a write did: the one sent, and the one stored
/// with a key and replayed, so that the two cannot differ.
fn render(written: &Written) -> StoredResponse {
    let (status, location, body) = match written {
        Written::Created(item) => (
            StatusCode::CREATED,
            Some(format!("/api/items/{}", item.id)),
            serde_json::to_vec(item).unwrap_or_default(),
        ),
        Written::Deleted(true) => (StatusCode::NO_CONTENT, None, Vec::new()),
        Written::Deleted(false) => (
            StatusCode::NOT_FOUND,
            None,
            br#"{"error":"no such item"}"#.to_vec(),
        ),
    };
    StoredResponse {
        status: status.as_u16(),
        location,
        body,
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
        // The database connection broke with the write's COMMIT sent: it
        // may be stored or not. The client is told so, and told the way
        // out: a retry with the same key finds the stored response or
        // writes, never both (`store::once`).
        StoreError::CommitUnknown(why) => {
            tracing::warn!(error = %why, "write outcome unknown; answering 503");
            respond::retry_elsewhere(
                "the database connection broke after COMMIT was sent: the write may or may not \
                 be stored; a retry with the same Idempotency-Key is safe (it returns the stored \
                 response if the write was stored, and writes if it was not); a retry without \
                 one may write twice",
            )
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
