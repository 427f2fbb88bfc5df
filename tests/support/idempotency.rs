//! Requests with an `Idempotency-Key`, and the checks every store's tests
//! make of their answers: what a first request, a replay, a `409` and a
//! `422` look like on the wire.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Barrier;

use super::http::{Response, get, request_with};

/// `POST /api/items` with `body` and `Idempotency-Key: "key"` (quoted, as
/// the draft writes it).
pub async fn post_keyed(addr: SocketAddr, key: &str, body: &str) -> Response {
    let quoted = format!("\"{key}\"");
    request_with(
        addr,
        "POST",
        "/api/items",
        &[("Idempotency-Key", &quoted)],
        Some(body),
    )
    .await
}

/// The body of a create for `name`.
pub fn item(name: &str) -> String {
    format!(r#"{{"name":"{name}"}}"#)
}

/// True if `res` is the answer to a retry, not a write.
pub fn is_replay(res: &Response) -> bool {
    res.header("idempotent-replayed") == Some("true")
}

/// Asserts `first` is a write's `201` with its `Location`, and returns
/// the item's id.
pub fn assert_created(first: &Response) -> u64 {
    assert_eq!(first.status, 201, "{}", first.text());
    assert!(!is_replay(first), "a first request is not a replay");
    let id = id_of(first);
    assert_eq!(
        first.header("location"),
        Some(format!("/api/items/{id}").as_str())
    );
    id
}

/// Asserts `retry` is `first` again, status, `Location` and body byte for
/// byte, marked as a replay.
pub fn assert_replay_of(retry: &Response, first: &Response) {
    assert!(
        is_replay(retry),
        "a replay: {} {}",
        retry.status,
        retry.text()
    );
    assert_eq!(retry.status, first.status);
    assert_eq!(retry.header("location"), first.header("location"));
    assert_eq!(retry.body, first.body, "the stored body, byte for byte");
}

/// The `id` in a created item's JSON.
pub fn id_of(res: &Response) -> u64 {
    let value: serde_json::Value = serde_json::from_slice(&res.body).expect("JSON body");
    value["id"].as_u64().expect("an id")
}

/// The value of the unlabelled series `name` in `/metrics`.
pub async fn metric(addr: SocketAddr, name: &str) -> u64 {
    let text = get(addr, "/metrics").await.text();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .trim()
        .parse()
        .expect("a number")
}

/// How many items `GET /api/items` lists.
pub async fn items_listed(addr: SocketAddr) -> usize {
    let res = get(addr, "/api/items?limit=1000").await;
    assert_eq!(res.status, 200);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&res.body).unwrap();
    list.len()
}

/// What `n` requests with one key, sent together, were answered.
#[derive(Debug, Default)]
pub struct Race {
    /// Bodies of the `201`s that wrote (not replays).
    pub written: Vec<Vec<u8>>,
    /// Bodies of the replays.
    pub replayed: Vec<Vec<u8>>,
    /// `409`s, each with `Retry-After`.
    pub in_progress: usize,
    /// Anything else: status and body.
    pub other: Vec<(u16, String)>,
}

impl Race {
    /// Asserts the race wrote once: one `201` that wrote, every other
    /// answer its replay (the same bytes) or a `409`.
    pub fn assert_wrote_once(&self) {
        assert!(
            self.other.is_empty(),
            "unexpected answers: {:?}",
            self.other
        );
        assert_eq!(self.written.len(), 1, "one write: {self:?}");
        assert!(
            self.replayed.iter().all(|b| *b == self.written[0]),
            "every replay is the write's response"
        );
    }
}

/// Sends `n` `POST`s with `key` and the same body together (released at
/// once by a barrier), spread over `addrs` in turn, each on a connection
/// of its own.
pub async fn race_one_key(addrs: &[SocketAddr], n: usize, key: &str, body: &str) -> Race {
    let barrier = Arc::new(Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let addr = addrs[i % addrs.len()];
        let barrier = barrier.clone();
        let (key, body) = (key.to_owned(), body.to_owned());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            post_keyed(addr, &key, &body).await
        }));
    }
    let mut race = Race::default();
    for task in tasks {
        let res = task.await.expect("client task");
        match res.status {
            201 if is_replay(&res) => race.replayed.push(res.body),
            201 => race.written.push(res.body),
            409 => {
                assert_eq!(res.header("retry-after"), Some("1"), "409 says when");
                race.in_progress += 1;
            }
            status => race.other.push((status, res.text())),
        }
    }
    eprintln!(
        "{n} requests with one key: {} written, {} replayed, {} in progress (409)",
        race.written.len(),
        race.replayed.len(),
        race.in_progress
    );
    race
}

/// The checks every store passes over the real binary at `addr`: a first
/// request writes, its retry is replayed without writing, the same key
/// with another body is `422` and writes nothing, another key writes, and
/// a keyed `DELETE` is `204` again when retried (not `404`).
pub async fn the_key_rules_hold(addr: SocketAddr) {
    let before = items_listed(addr).await;
    let first = post_keyed(addr, "rules-1", &item("first")).await;
    let id = assert_created(&first);
    let retry = post_keyed(addr, "rules-1", &item("first")).await;
    assert_replay_of(&retry, &first);
    assert_eq!(
        items_listed(addr).await,
        before + 1,
        "the retry wrote nothing"
    );

    let other = post_keyed(addr, "rules-1", &item("second")).await;
    assert_eq!(other.status, 422, "{}", other.text());
    assert!(
        other.text().contains("different request"),
        "{}",
        other.text()
    );
    assert_eq!(
        items_listed(addr).await,
        before + 1,
        "the 422 wrote nothing"
    );

    // The same key bare, as Stripe's clients send it, is the same key.
    let bare = request_with(
        addr,
        "POST",
        "/api/items",
        &[("Idempotency-Key", "rules-1")],
        Some(&item("first")),
    )
    .await;
    assert_replay_of(&bare, &first);

    let another = post_keyed(addr, "rules-2", &item("first")).await;
    assert_ne!(assert_created(&another), id, "a new key is a new write");

    let path = format!("/api/items/{id}");
    let key = [("Idempotency-Key", "\"rules-delete\"")];
    let deleted = request_with(addr, "DELETE", &path, &key, None).await;
    assert_eq!(deleted.status, 204);
    let again = request_with(addr, "DELETE", &path, &key, None).await;
    assert_eq!(
        again.status, 204,
        "the retry gets the first answer, not 404"
    );
    assert!(is_replay(&again));
    let unkeyed = request_with(addr, "DELETE", &path, &[], None).await;
    assert_eq!(unkeyed.status, 404, "and the item is gone");
}
