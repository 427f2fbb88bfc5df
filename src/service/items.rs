//! `/api/items`: the article's `items` handler, completed with a create.
//!
//! Go: `items, err := store.List(r.Context())`. Here: `store.list(page,
//! token)`, where the token is cancelled by the handler's drop guard —
//! when the client leaves, the request times out, or the deadline comes.

use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use tokio::time::Instant;

use super::query;
use super::request_token;
use super::respond::{self, Body};
use crate::App;
use crate::store::{NewItem, Page, StoreError};

/// Longest accepted item name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// `GET /api/items?limit=&after=`: a page of items, 200 JSON array.
pub async fn list(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let q = req.uri().query();
    let page = match (
        query::number(q, "limit", 1, 1000, Some(100)),
        query::number(q, "after", 0, u64::MAX, None),
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
    match app.store.list(page, token).await {
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
    let chars = new.name.chars().count();
    if new.name.trim().is_empty() || chars > MAX_NAME_CHARS {
        let msg = format!("`name` must be 1 to {MAX_NAME_CHARS} characters, not blank");
        return respond::json_error(StatusCode::UNPROCESSABLE_ENTITY, msg);
    }
    let (token, _cancel_on_drop) = request_token();
    let item = NewItem {
        name: new.name,
        ttl_secs: new.ttl_secs,
    };
    match app.store.create(item, token).await {
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
    let (token, _cancel_on_drop) = request_token();
    match app.store.delete(id, token).await {
        Ok(true) => respond::empty(StatusCode::NO_CONTENT),
        Ok(false) => respond::json_error(StatusCode::NOT_FOUND, "no such item"),
        Err(e) => store_error(e),
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

fn store_error(e: StoreError) -> Response<Body> {
    match e {
        // Only reachable if the client is gone; the answer goes nowhere,
        // but it must still be a well-formed one.
        StoreError::Cancelled => {
            respond::json_error(StatusCode::SERVICE_UNAVAILABLE, "request cancelled")
        }
        StoreError::Unavailable(_) => {
            respond::json_error(StatusCode::INTERNAL_SERVER_ERROR, "query failed")
        }
    }
}
