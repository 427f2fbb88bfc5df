//! The HTTP service: routing, and the wrapper every waiting handler runs in.
//!
//! Routes come in three kinds, because they need different amounts of
//! machinery and the cheap ones are on the benchmarked path:
//!
//! | kind | routes | runs as |
//! |---|---|---|
//! | instant | `/healthz`, `/livez`, `/metrics`, `OPTIONS`, 404, 405 | a ready future: no timer, no allocation |
//! | work | `/api/items`, `/api/items/{id}`, `/api/slow`, `/debug/panic` | `guarded`: request timeout, deadline 503, panic → 500 |
//! | stream | `/api/stream`, `/api/download` | a body hyper polls, no handler; no request timeout. An event stream ends on the `closing` token; a download runs to its end, or to the forced close |
//! | long wait | `/api/items/poll` | `guarded` without the request timeout: its own `wait` bounds it, the drain answers it at once |
//! | upgrade | `/api/ws`, `/api/ws/echo` | answered `101` at once; the session is a task of its own, tracked by the registry in [`crate::long_lived::sockets`] |
//!
//! Every route that serves `GET` serves `HEAD` too, over both protocols:
//! the same handler runs, and `head.rs` takes the body away. `OPTIONS`
//! answers 204 with the path's `Allow` list, and `OPTIONS *` with the
//! server's.
//!
//! # Cancellation, the Rust way
//!
//! Go hands each handler `r.Context()`, cancelled when the client leaves or
//! the server gives up. In hyper the handler *is* a future: when the client
//! disconnects (or the connection task is aborted at the deadline), hyper
//! drops it, and everything it was awaiting stops at that `.await`. Nothing
//! to check, nothing to forget.
//!
//! That covers only work inside the future. Work the handler hands off — a
//! spawned task, a blocking call, a database driver — keeps running after
//! the drop. For that, the handler makes a request-scoped
//! [`CancellationToken`] and holds its [`DropGuard`]: dropping the handler
//! drops the guard, which cancels the token, which the detached work
//! watches. See `slow.rs` for the pattern and [`crate::store`] for the token
//! reaching the store.
//!
//! # Every waiting handler gets the same guarantees
//!
//! `guarded` wraps every "work" route: a panic becomes a `500` for that
//! request only, and the server keeps serving; past `--request-timeout`
//! the handler is dropped (so its work stops) and answered `503` (`408`
//! while the body is still arriving); when the shutdown deadline passes, a
//! handler that has not answered is dropped and answered `503` +
//! `Retry-After` + `Connection: close`, an answer a client can retry,
//! instead of a reset. The deadline is waited on like the drain, for one
//! relaxed load per poll (`shutdown::token_wait`). Instant routes skip all
//! of that.

mod access_log;
mod conn_body;
pub(crate) mod download;
mod event_stream;
mod head;
mod health;
pub(crate) mod idempotency_key;
pub(crate) mod items;
pub(crate) mod query;
pub(crate) mod respond;
mod slow;
mod stream;

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::Either;
use http_body_util::Either as BodyEither;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, Version};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::error;

use crate::app::App;
use crate::http1_state::{ConnState, ResponseDone};
use crate::long_lived::poll;
use crate::long_lived::websocket::{self, echo, hub};
use access_log::{AccessRecord, Logged};
pub use conn_body::{Answer, ConnBody};
pub use respond::Body;

/// The body hyper sends: the handler's, or (with `--access-log`) the
/// handler's counted into its access-log line.
pub type ServiceBody = BodyEither<Body, Logged>;

/// What `call` returns: ready at once for instant routes, boxed for the rest.
pub type ResponseFuture = Either<
    Ready<Result<Response<ServiceBody>, Infallible>>,
    Pin<Box<dyn Future<Output = Result<Response<ServiceBody>, Infallible>> + Send>>,
>;

/// lameduck's hyper service, one per connection. It borrows the app from
/// the connection task, which holds it: a connection's service costs no
/// reference count, which every connection would otherwise touch twice on
/// a cache line shared by all of them.
#[derive(Clone, Debug)]
pub struct Service<'a> {
    app: &'a Arc<App>,
    /// The peer, for the access log and for counting health checkers;
    /// `None` when neither is on, which is what keeps them free then.
    peer: Option<Box<SocketAddr>>,
    /// An HTTP/1 connection's activity, which each request moves (see
    /// `http1_state`); `None` for HTTP/2.
    conn: Option<Arc<ConnState>>,
}

impl<'a> Service<'a> {
    /// The service for an HTTP/1 connection from `peer`, in `state`.
    pub fn http1(app: &'a Arc<App>, peer: Option<Box<SocketAddr>>, state: &Arc<ConnState>) -> Self {
        Service {
            app,
            peer,
            conn: Some(state.clone()),
        }
    }

    /// The service for an HTTP/2 connection from `peer`.
    pub fn http2(app: &'a Arc<App>, peer: Option<Box<SocketAddr>>) -> Self {
        Service {
            app,
            peer,
            conn: None,
        }
    }
}

/// `peer`, boxed, if the access log or the health-checker count needs to
/// know it; otherwise `None`, which keeps them free.
pub fn keep_peer(app: &App, peer: Option<SocketAddr>) -> Option<Box<SocketAddr>> {
    let wanted = app.config.access_log || app.checkers.enabled();
    peer.filter(|_| wanted).map(Box::new)
}

impl hyper::service::Service<Request<Incoming>> for Service<'_> {
    type Response = Response<ConnBody>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        // HTTP/1: the connection is busy until the response's body is
        // dropped, written.
        let done = self.conn.as_ref().map(|state| {
            state.request_started(conn_body::client_closes(&req));
            ResponseDone(state.clone())
        });
        // `--max-connection-age`: a connection past its age answers with
        // `Connection: close` (one branch when the flag is off).
        let aged = self.app.config.max_connection_age.is_some()
            && self
                .conn
                .as_ref()
                .is_some_and(|state| state.aged_out(self.app.config.max_connection_age));
        Answer::new(self.respond(req), done, aged)
    }
}

impl Service<'_> {
    /// The answer to `req`: routed, and with `--access-log` logged.
    fn respond(&self, req: Request<Incoming>) -> ResponseFuture {
        let logged = self.peer.as_deref().filter(|_| self.app.config.access_log);
        let Some(&peer) = logged else {
            return self.route(req);
        };
        let record = AccessRecord::begin(&req, peer);
        let routed = self.route(req);
        // Boxed once more: only with the access log on.
        Either::Right(Box::pin(async move {
            let (parts, body) = routed.await?.into_parts();
            let body = match body {
                BodyEither::Left(body) => BodyEither::Right(record.attach(parts.status, body)),
                logged => logged,
            };
            Ok(Response::from_parts(parts, body))
        }))
    }
}

impl Service<'_> {
    /// Routes `req` to its handler.
    fn route(&self, req: Request<Incoming>) -> ResponseFuture {
        let app = self.app;
        let reply = Reply {
            http1: req.version() < Version::HTTP_2,
            head: req.method() == Method::HEAD,
        };
        let instant = |res: Response<Body>| {
            app.metrics.record_status(res.status().as_u16());
            Either::Left(ready(Ok(reply.finish(app, res).map(BodyEither::Left))))
        };
        // `HEAD` is routed like `GET` everywhere (RFC 9110 §9.1: a server
        // that serves GET must serve HEAD); `Reply::finish` takes the body
        // away afterwards.
        let get = matches!(*req.method(), Method::GET | Method::HEAD);
        let method = req.method();
        match req.uri().path() {
            "/healthz" if get => instant(health::healthz(app, self.peer.as_deref())),
            "/livez" if get => instant(health::livez()),
            "/metrics" if get => instant(health::metrics(app)),
            "/healthz" | "/livez" | "/metrics" => {
                instant(respond::unhandled_method(method, allow::READ))
            }

            "/api/items" => match *method {
                Method::GET | Method::HEAD => work(app, reply, items::list(app.clone(), req)),
                Method::POST => work(app, reply, items::create(app.clone(), req)),
                _ => instant(respond::unhandled_method(method, allow::ITEMS)),
            },
            // Before `/api/items/{id}`, which it would otherwise be.
            "/api/items/poll" if get => match poll::parse(&req, app.config.poll_max_wait) {
                Ok(poll) => long_wait(app, reply, poll::poll(app.clone(), poll)),
                Err(refusal) => instant(*refusal),
            },
            "/api/items/poll" => instant(respond::unhandled_method(method, allow::READ)),
            path if path.starts_with("/api/items/") => match items::parse_id(path) {
                None => instant(respond::not_found()),
                Some(id) => match *method {
                    Method::GET | Method::HEAD => work(app, reply, items::get(app.clone(), id)),
                    Method::DELETE => work(app, reply, items::delete(app.clone(), req, id)),
                    _ => instant(respond::unhandled_method(method, allow::ITEM)),
                },
            },
            "/api/slow" if get => work(app, reply, slow::slow(app.clone(), req)),
            "/api/slow" => instant(respond::unhandled_method(method, allow::READ)),
            "/api/stream" if get => instant(stream::stream(app, &req)),
            "/api/stream" => instant(respond::unhandled_method(method, allow::READ)),
            "/api/download" if get => instant(download::download(app, &req)),
            "/api/download" => instant(respond::unhandled_method(method, allow::READ)),
            // A handshake is answered at once (`101`); the session runs
            // as a task of its own, tracked by `app.websockets`.
            "/api/ws" if *method == Method::GET => match hub_after(&req) {
                Ok(after) => instant(websocket::accept(
                    app,
                    req,
                    hub::config(),
                    move |app, socket| hub::run(app, socket, after),
                )),
                Err(refusal) => instant(*refusal),
            },
            "/api/ws/echo" if *method == Method::GET => {
                instant(websocket::accept(app, req, echo::config(), echo::run))
            }
            "/api/ws" | "/api/ws/echo" => {
                instant(respond::unhandled_method(method, allow::WEBSOCKET))
            }

            "/debug/panic" if app.config.debug_routes => work(app, reply, async {
                panic!("/debug/panic was asked to panic");
            }),
            // `OPTIONS *` asks about the server rather than a path
            // (RFC 9110 §9.3.7).
            "*" if *method == Method::OPTIONS => instant(respond::options(allow::SERVER)),
            _ => instant(respond::not_found()),
        }
    }
}

/// The `Allow` lists: what `OPTIONS` answers and what a 405 names.
mod allow {
    /// The read-only paths: health, metrics, slow work, the event stream,
    /// the download.
    pub const READ: &str = "GET, HEAD, OPTIONS";
    /// `/api/items`.
    pub const ITEMS: &str = "GET, HEAD, POST, OPTIONS";
    /// `/api/items/{id}`.
    pub const ITEM: &str = "GET, HEAD, DELETE, OPTIONS";
    /// The WebSocket routes: a handshake is a `GET`, never a `HEAD`.
    pub const WEBSOCKET: &str = "GET, OPTIONS";
    /// `OPTIONS *`: every method some path takes.
    pub const SERVER: &str = "GET, HEAD, POST, DELETE, OPTIONS";
}

/// How the answer to one request goes out, decided from the request before
/// it is routed. Two booleans, copied into the handler's future: a plain
/// `GET` pays a branch for each, nothing more.
#[derive(Clone, Copy, Debug)]
struct Reply {
    /// HTTP/1.x: a response in the drain says it is the last.
    http1: bool,
    /// A `HEAD` request: the `GET` answer goes out without its body.
    head: bool,
}

impl Reply {
    fn finish(self, app: &App, res: Response<Body>) -> Response<Body> {
        let res = if self.head {
            head::without_body(res)
        } else {
            res
        };
        last_if_draining(app, self.http1, res)
    }
}

/// Runs a handler that may wait, inside the guarantees every such handler
/// gets.
fn work(
    app: &Arc<App>,
    reply: Reply,
    handler: impl Future<Output = Response<Body>> + Send + 'static,
) -> ResponseFuture {
    let deadline = Instant::now() + app.config.request_timeout;
    let app = app.clone();
    Either::Right(Box::pin(async move {
        let res = guarded(app.clone(), Some(deadline), handler).await;
        Ok(reply.finish(&app, res).map(BodyEither::Left))
    }))
}

/// [`work`] without the request timeout, for a handler whose wait is its
/// purpose and has a bound of its own (the long poll's `wait`). The
/// shutdown deadline and the panic guard still apply.
fn long_wait(
    app: &Arc<App>,
    reply: Reply,
    handler: impl Future<Output = Response<Body>> + Send + 'static,
) -> ResponseFuture {
    let app = app.clone();
    Either::Right(Box::pin(async move {
        let res = guarded(app.clone(), None, handler).await;
        Ok(reply.finish(&app, res).map(BodyEither::Left))
    }))
}

/// The hub's `?after=ID`: the last item id the client saw (default 0).
fn hub_after(req: &Request<Incoming>) -> Result<u64, Box<Response<Body>>> {
    query::Query::parse(req.uri().query())
        .and_then(|q| q.number("after", 0, u64::MAX, Some(0)))
        .map(|after| after.unwrap_or(0))
        .map_err(|e| Box::new(respond::json_error(StatusCode::BAD_REQUEST, e)))
}

/// Once the drain has begun, every HTTP/1 response says it is the last on
/// its connection: the client reads its answer and takes its next request
/// elsewhere. This is how a keep-alive connection that was busy, or used
/// within the keep-alive grace, is closed without racing the client (see
/// `keepalive_grace`). HTTP/2 has GOAWAY instead, and must not carry the
/// header at all.
///
/// A `101` is left alone: its `Connection: upgrade` is what makes it a
/// WebSocket handshake (RFC 6455 §4.1), and a session accepted just as
/// the drain began is told to close by the drain itself, with a Close
/// frame.
fn last_if_draining(app: &App, http1: bool, res: Response<Body>) -> Response<Body> {
    // With `--drain-spread`, each response draws: the chance that it is
    // the connection's last ramps from 0 to 1 over the window.
    if http1
        && app.shutdown.is_draining()
        && res.status() != StatusCode::SWITCHING_PROTOCOLS
        && app.shutdown.spread().due_now()
    {
        respond::closing(res)
    } else {
        res
    }
}

/// The guarantees:
///
/// * **Panics** become a 500 for this request only; the connection and the
///   server carry on.
/// * **Request timeout**: past `deadline` the handler is dropped (so its
///   work stops) and the client gets 503. Handlers that read a body use the
///   same deadline and answer 408 themselves if the body was what they were
///   waiting for; this timer is set a few milliseconds later so that their
///   more precise answer wins.
/// * **Shutdown deadline**: when the deadline passes, a handler that has
///   not answered yet is dropped and the client gets 503 + `Retry-After` +
///   `Connection: close`, instead of a reset when the connection is aborted.
/// * **In-flight gauge**: counted while the handler runs, however it ends.
async fn guarded(
    app: Arc<App>,
    deadline: Option<Instant>,
    handler: impl Future<Output = Response<Body>>,
) -> Response<Body> {
    let timeout = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline + TIMEOUT_MARGIN).await,
            None => std::future::pending().await,
        }
    };
    let _in_flight = InFlight::enter(&app);
    let res = tokio::select! {
        // The handler first: an answer that is ready wins over a timeout
        // or the deadline that fires in the same poll, so a request that
        // was served is never reported as refused.
        biased;
        res = AssertUnwindSafe(handler).catch_unwind() => res.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("non-string panic");
            error!(panic = what, "handler panicked; answering 500");
            respond::json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }),
        _ = timeout => {
            respond::json_error(StatusCode::SERVICE_UNAVAILABLE, "request timed out")
        }
        _ = app.shutdown.past_deadline() => respond::retry_elsewhere("server shut down before answering"),
    };
    app.metrics.record_status(res.status().as_u16());
    res
}

/// How much later than a handler's own deadline the generic timeout fires.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(20);

/// Counts a running handler in `requests_in_flight`; dropping it (the
/// handler finished, or was dropped by hyper) uncounts it.
struct InFlight<'a>(&'a App);

impl<'a> InFlight<'a> {
    fn enter(app: &'a App) -> Self {
        app.metrics.requests_in_flight.fetch_add(1, Relaxed);
        InFlight(app)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.metrics.requests_in_flight.fetch_sub(1, Relaxed);
    }
}

/// A request-scoped token — the handler's `r.Context()` for work that runs
/// outside its future — and the guard that cancels it when the handler is
/// dropped. Keep the guard alive for as long as the handler runs.
pub fn request_token() -> (CancellationToken, DropGuard) {
    let token = CancellationToken::new();
    let guard = token.clone().drop_guard();
    (token, guard)
}
