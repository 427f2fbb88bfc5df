//! Target `api_requests`: sequences of API calls with hostile names and
//! query strings, checked against a model of what the store must hold.
//!
//! The input is decoded with [`arbitrary`] into up to [`MAX_CALLS`]
//! [`Call`]s. Each call is one HTTP/1.1 request on its own in-memory
//! connection, served by the real `conn::serve` and service over a
//! [`MemoryStore`]. The model is a map of the items the server has
//! acknowledged (201) and not yet deleted (204); the checks are:
//!
//! * every status is in [`DOCUMENTED`], and in the narrower set the call
//!   allows (a well-formed create is exactly 201 or exactly 422);
//! * every `application/json` body parses;
//! * after every acknowledged create, and at the end, a full list holds
//!   exactly the model's items, names byte for byte.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arbitrary::{Arbitrary, Unstructured};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::task::TaskTracker;

use super::{fuzz_config, read_responses, run_paused};
use crate::app::App;
use crate::conn::executor::StreamExecutor;
use crate::conn::{self, ConnectionConfig};
use crate::store::MemoryStore;
use crate::testing::http1::Response;

/// Every status the item API documents.
pub const DOCUMENTED: &[u16] = &[200, 201, 204, 400, 404, 405, 408, 413, 422, 431, 503];

/// At most this many calls per input, to keep one run short.
pub const MAX_CALLS: usize = 32;

/// The longest valid item name, in characters (`store::check_name`).
const MAX_NAME_CHARS: usize = 200;
/// The documented limit on `ttl_secs` (100 years), restated like the one above.
const MAX_TTL_SECS: u64 = 100 * 365 * 24 * 3600;

/// An id: one the server handed out earlier, or any number at all.
#[derive(Debug, Arbitrary)]
pub enum IdRef {
    /// The n-th acknowledged create (modulo their count), even if deleted.
    Created(u8),
    /// A raw id.
    Raw(u64),
}

/// One API call.
#[derive(Debug, Arbitrary)]
pub enum Call {
    /// `POST /api/items` with a well-formed JSON body.
    Create {
        /// Any string: empty, blank, 10 000 characters, control characters.
        name: String,
        /// Lifetime; any `u64` (the store saturates).
        ttl_secs: Option<u64>,
    },
    /// `POST /api/items` with any body bytes (bad JSON, bad UTF-8).
    CreateRaw(Vec<u8>),
    /// `GET /api/items?<query>`; the query's bytes outside printable ASCII
    /// are percent-encoded, the rest (`%`, `&`, `#`, …) sent as they are.
    List(Vec<u8>),
    /// `GET /api/items/{id}`.
    Get(IdRef),
    /// `GET /api/items/<anything>`.
    GetPath(Vec<u8>),
    /// `DELETE /api/items/{id}`.
    Delete(IdRef),
}

/// Runs the calls `input` decodes to. Panics if an invariant breaks.
pub fn api_requests(input: &[u8]) {
    let mut u = Unstructured::new(input);
    let mut calls = Vec::new();
    while calls.len() < MAX_CALLS && !u.is_empty() {
        match Call::arbitrary(&mut u) {
            Ok(call) => calls.push(call),
            Err(_) => break,
        }
    }
    run_paused(async move {
        let app = Arc::new(App::new(fuzz_config(), Arc::new(MemoryStore::new())));
        let executor =
            StreamExecutor::new(TaskTracker::new(), app.clone(), app.config.request_timeout);
        let api = Api {
            cfg: Arc::new(ConnectionConfig::new(app, executor)),
        };
        let mut model = Model::default();
        for call in &calls {
            model.check(&api, call).await;
        }
        model.check_list_matches(&api).await;
    });
}

/// Sends requests to the real service, one connection each.
struct Api {
    cfg: Arc<ConnectionConfig>,
}

impl Api {
    /// One request, `Connection: close`; returns the one response.
    async fn call(&self, method: &str, target: &str, body: &[u8]) -> Response {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let conn = tokio::spawn(conn::serve(server, Instant::now(), None, self.cfg.clone()));
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let (mut rx, mut tx) = tokio::io::split(client);
        let send = async {
            // The server may answer (413) and close before reading it all.
            let _ = tx.write_all(head.as_bytes()).await;
            let _ = tx.write_all(body).await;
        };
        let mut out = Vec::new();
        let (_, read) = tokio::join!(send, rx.read_to_end(&mut out));
        read.expect("reading from an in-memory pipe");
        conn.await.expect("the connection task ended normally");
        let mut responses = read_responses(&out).unwrap_or_else(|e| {
            panic!("{method} {target}: bad response: {e}: {out:?}");
        });
        assert_eq!(responses.len(), 1, "{method} {target}: one response each");
        let res = responses.remove(0);
        assert!(
            DOCUMENTED.contains(&res.status),
            "{method} {target}: undocumented status {}",
            res.status
        );
        let json = res
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"));
        if let (true, Err(e)) = (json, serde_json::from_slice::<Value>(&res.body)) {
            panic!("{method} {target}: JSON body does not parse: {e}");
        }
        res
    }
}

/// What the store must hold: id → name, for acknowledged, undeleted items.
#[derive(Debug, Default)]
struct Model {
    items: BTreeMap<u64, String>,
    /// Every id ever acknowledged, in order (for [`IdRef::Created`]).
    acknowledged: Vec<u64>,
}

impl Model {
    fn id(&self, id: &IdRef) -> u64 {
        match *id {
            IdRef::Created(n) if !self.acknowledged.is_empty() => {
                self.acknowledged[n as usize % self.acknowledged.len()]
            }
            IdRef::Created(n) => u64::from(n),
            IdRef::Raw(id) => id,
        }
    }

    async fn check(&mut self, api: &Api, call: &Call) {
        match call {
            Call::Create { name, ttl_secs } => {
                let body = serde_json::json!({ "name": name, "ttl_secs": ttl_secs });
                let res = api
                    .call("POST", "/api/items", body.to_string().as_bytes())
                    .await;
                let chars = name.chars().count();
                // Control characters (C0, DEL, C1) are refused: the SQLite
                // store could not hold a NUL, and neither store takes any.
                let valid = !name.trim().is_empty()
                    && !name.chars().any(|c| c.is_control())
                    && chars <= MAX_NAME_CHARS
                    && ttl_secs.is_none_or(|t| t <= MAX_TTL_SECS);
                let want = if valid { 201 } else { 422 };
                assert_eq!(res.status, want, "create {name:?}");
                if valid {
                    self.acknowledge(&res, Some(name));
                    self.check_list_matches(api).await;
                }
            }
            Call::CreateRaw(body) => {
                let res = api.call("POST", "/api/items", body).await;
                assert!(
                    [201, 400, 413, 422].contains(&res.status),
                    "create with raw body: {}",
                    res.status
                );
                if res.status == 201 {
                    self.acknowledge(&res, None);
                    self.check_list_matches(api).await;
                }
            }
            Call::List(query) => {
                let target = format!("/api/items?{}", uri_text(query));
                let res = api.call("GET", &target, b"").await;
                assert!([200, 400].contains(&res.status), "{target}: {}", res.status);
                if res.status == 200 {
                    let page = items_of(&res);
                    assert!(
                        page.windows(2).all(|w| w[0].0 < w[1].0),
                        "{target}: ids not ascending"
                    );
                    for (id, name) in page {
                        assert_eq!(self.items.get(&id), Some(&name), "{target}: item {id}");
                    }
                }
            }
            Call::Get(id) => {
                let id = self.id(id);
                let res = api.call("GET", &format!("/api/items/{id}"), b"").await;
                match self.items.get(&id) {
                    Some(name) => {
                        assert_eq!(res.status, 200, "get {id}");
                        assert_eq!(item_of(&res), (id, name.clone()), "get {id}");
                    }
                    None => assert_eq!(res.status, 404, "get {id} (not stored)"),
                }
            }
            Call::GetPath(suffix) => {
                let target = format!("/api/items/{}", uri_text(suffix));
                let res = api.call("GET", &target, b"").await;
                assert!(
                    [200, 400, 404].contains(&res.status),
                    "{target}: {}",
                    res.status
                );
            }
            Call::Delete(id) => {
                let id = self.id(id);
                let res = api.call("DELETE", &format!("/api/items/{id}"), b"").await;
                let want = if self.items.remove(&id).is_some() {
                    204
                } else {
                    404
                };
                assert_eq!(res.status, want, "delete {id}");
            }
        }
    }

    /// Records a 201: its item goes into the model.
    fn acknowledge(&mut self, res: &Response, sent: Option<&String>) {
        let (id, name) = item_of(res);
        if let Some(sent) = sent {
            assert_eq!(&name, sent, "the stored name is the name sent");
        }
        assert_eq!(
            res.header("location"),
            Some(format!("/api/items/{id}").as_str())
        );
        assert!(
            self.items.insert(id, name).is_none(),
            "id {id} handed out twice"
        );
        self.acknowledged.push(id);
    }

    /// A full list holds exactly the model's items.
    async fn check_list_matches(&self, api: &Api) {
        let res = api.call("GET", "/api/items?limit=1000", b"").await;
        assert_eq!(res.status, 200, "full list");
        let listed: BTreeMap<u64, String> = items_of(&res).into_iter().collect();
        assert_eq!(listed, self.items, "the list is what was acknowledged");
    }
}

/// `(id, name)` of the item in a response body.
fn item_of(res: &Response) -> (u64, String) {
    let v: Value = serde_json::from_slice(&res.body).expect("an item");
    item_fields(&v)
}

/// `(id, name)` of each item in a list response.
fn items_of(res: &Response) -> Vec<(u64, String)> {
    let v: Value = serde_json::from_slice(&res.body).expect("a list");
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(item_fields)
        .collect()
}

fn item_fields(v: &Value) -> (u64, String) {
    let id = v["id"].as_u64().expect("a numeric id");
    let name = v["name"].as_str().expect("a string name").to_owned();
    (id, name)
}

/// `bytes` as request-target text: printable ASCII as is (so `%`, `&`,
/// `#`, `?` reach the parser raw), everything else percent-encoded.
fn uri_text(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x21..=0x7e).contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}
