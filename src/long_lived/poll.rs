//! `GET /api/items/poll?after=ID&wait=DURATION[&limit=N]`: a long poll.
//!
//! Answers `200` with the items above ID (a JSON array, in id order) as
//! soon as there are any, created by any process on the store; or `204`
//! when `wait` (default and cap `--poll-max-wait`) runs out first. The
//! client then asks again with the last id it got.
//!
//! At the drain a waiting poll does not wait on: it answers at once, with
//! the items there are or `204`, and (HTTP/1) `Connection: close`, so that
//! the client's next poll goes to a new connection, to the process that
//! serves now. Nothing is lost in the move: the next poll asks "after the
//! last id I got", and the successor reads the same store.
//!
//! It is exempt from `--request-timeout` (a poll may rightly wait longer
//! than a request may take); its own `wait` bounds it, and the shutdown
//! deadline answers it `503` like any waiting handler.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::app::App;
use crate::long_lived::feed::Entry;
use crate::service::query::Query;
use crate::service::request_token;
use crate::service::respond::{self, Body};
use crate::store::Page;

/// What a poll asks for, checked before it waits.
#[derive(Debug, Clone, Copy)]
pub struct Poll {
    after: u64,
    wait: Duration,
    limit: usize,
}

/// Reads the query: `after` (default 0), `wait` (a duration such as
/// `500ms` or `30s`; default and cap `max_wait`), `limit` (1–1000,
/// default 100).
/// The refusal is boxed: a response is large, and the poll is small.
pub fn parse(req: &Request<Incoming>, max_wait: Duration) -> Result<Poll, Box<Response<Body>>> {
    let bad = |e: String| Box::new(respond::json_error(StatusCode::BAD_REQUEST, e));
    let query = Query::parse(req.uri().query()).map_err(bad)?;
    let after = query.number("after", 0, u64::MAX, Some(0)).map_err(bad)?;
    let limit = query.number("limit", 1, 1000, Some(100)).map_err(bad)?;
    let wait = match query.text("wait") {
        None => max_wait,
        Some(text) => humantime::parse_duration(text)
            .map_err(|_| {
                bad("query parameter `wait` must be a duration such as 500ms or 30s".into())
            })?
            .min(max_wait),
    };
    Ok(Poll {
        after: after.unwrap_or(0),
        wait,
        limit: limit.unwrap_or(100) as usize,
    })
}

/// Waits for items above `poll.after`, the poll's `wait`, or the drain,
/// whichever comes first.
pub async fn poll(app: Arc<App>, poll: Poll) -> Response<Body> {
    // Dropping the handler (the client left, the deadline) cancels a
    // store read it started.
    let (token, _cancel_on_drop) = request_token();
    let waited = tokio::select! {
        // The drain first: a poll that arrives while the server is
        // draining does not wait at all.
        biased;
        _ = app.shutdown.closing() => None,
        entries = app.feed.after(&*app.store, poll.after, poll.limit, &token) => Some(entries),
        _ = tokio::time::sleep(poll.wait) => Some(Ok(Vec::new())),
    };
    let entries = match waited {
        Some(entries) => entries,
        // The drain: one read, no wait, so the answer says what there is.
        None => {
            let page = Page {
                after: Some(poll.after),
                limit: poll.limit,
            };
            app.store
                .list(page, token.clone())
                .await
                .map(|items| items.iter().map(Entry::new).collect())
        }
    };
    match entries {
        Ok(entries) if entries.is_empty() => respond::empty(StatusCode::NO_CONTENT),
        Ok(entries) => json_array(&entries),
        Err(e) => crate::service::items::store_error(e),
    }
}

/// `[item,item,…]`, from JSON already made.
fn json_array(entries: &[Entry]) -> Response<Body> {
    let len = entries.iter().map(|e| e.json.len() + 1).sum::<usize>() + 1;
    let mut body = BytesMut::with_capacity(len);
    body.put_u8(b'[');
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            body.put_u8(b',');
        }
        body.put_slice(entry.json.as_bytes());
    }
    body.put_u8(b']');
    let mut res = Response::new(Either::Left(Full::new(body.freeze())));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
