//! The HTTP service: routing, and the wrapper every waiting handler runs in.
//!
//! Routes come in three kinds, because they need different amounts of
//! machinery and the cheap ones are on the benchmarked path:
//!
//! | kind | routes | runs as |
//! |---|---|---|
//! | instant | `/healthz`, `/livez`, `/metrics`, 404, 405 | a ready future: no timer, no allocation |
//! | work | `/api/items`, `/api/items/{id}`, `/api/slow`, `/debug/panic` | `guarded`: request timeout, deadline 503, panic → 500 |
//! | stream | `/api/stream` | a body that ends on the `closing` token; no request timeout |
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

mod event_stream;
mod health;
mod items;
mod query;
mod respond;
mod slow;
mod stream;

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, Version};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::error;

use crate::app::App;
pub use respond::Body;

/// What `call` returns: ready at once for instant routes, boxed for the rest.
pub type ResponseFuture = Either<
    Ready<Result<Response<Body>, Infallible>>,
    Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>,
>;

/// lameduck's hyper service. Cheap to clone: one `Arc`.
#[derive(Clone, Debug)]
pub struct Service {
    app: Arc<App>,
}

impl Service {
    /// A service over `app`.
    pub fn new(app: Arc<App>) -> Self {
        Service { app }
    }
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let app = &self.app;
        let http1 = req.version() < Version::HTTP_2;
        let instant = |res: Response<Body>| {
            app.metrics.record_status(res.status().as_u16());
            Either::Left(ready(Ok(last_if_draining(app, http1, res))))
        };
        let get = matches!(*req.method(), Method::GET | Method::HEAD);
        match req.uri().path() {
            "/healthz" if get => instant(health::healthz(app)),
            "/livez" if get => instant(health::livez()),
            "/metrics" if get => instant(health::metrics(app)),
            "/healthz" | "/livez" | "/metrics" => instant(respond::method_not_allowed("GET, HEAD")),

            "/api/items" => match *req.method() {
                Method::GET => work(app, http1, items::list(app.clone(), req)),
                Method::POST => work(app, http1, items::create(app.clone(), req)),
                _ => instant(respond::method_not_allowed("GET, POST")),
            },
            path if path.starts_with("/api/items/") => {
                match (req.method().clone(), items::parse_id(path)) {
                    (_, None) => instant(respond::not_found()),
                    (Method::GET | Method::HEAD, Some(id)) => {
                        work(app, http1, items::get(app.clone(), id))
                    }
                    (Method::DELETE, Some(id)) => work(app, http1, items::delete(app.clone(), id)),
                    _ => instant(respond::method_not_allowed("GET, HEAD, DELETE")),
                }
            }
            "/api/slow" if get => work(app, http1, slow::slow(app.clone(), req)),
            "/api/slow" => instant(respond::method_not_allowed("GET, HEAD")),
            "/api/stream" if get => instant(stream::stream(app, &req)),
            "/api/stream" => instant(respond::method_not_allowed("GET, HEAD")),

            "/debug/panic" if app.config.debug_routes => work(app, http1, async {
                panic!("/debug/panic was asked to panic");
            }),
            _ => instant(respond::not_found()),
        }
    }
}

/// Runs a handler that may wait, inside the guarantees every such handler
/// gets.
fn work(
    app: &Arc<App>,
    http1: bool,
    handler: impl Future<Output = Response<Body>> + Send + 'static,
) -> ResponseFuture {
    let deadline = Instant::now() + app.config.request_timeout;
    let app = app.clone();
    Either::Right(Box::pin(async move {
        let res = guarded(app.clone(), deadline, handler).await;
        Ok(last_if_draining(&app, http1, res))
    }))
}

/// Once the drain has begun, every HTTP/1 response says it is the last on
/// its connection: the client reads its answer and takes its next request
/// elsewhere. This is how a keep-alive connection that was busy, or used
/// within the keep-alive grace, is closed without racing the client (see
/// `keepalive_grace`). HTTP/2 has GOAWAY instead, and must not carry the
/// header at all.
fn last_if_draining(app: &App, http1: bool, res: Response<Body>) -> Response<Body> {
    if http1 && app.shutdown.is_draining() {
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
    deadline: Instant,
    handler: impl Future<Output = Response<Body>>,
) -> Response<Body> {
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
        _ = tokio::time::sleep_until(deadline + TIMEOUT_MARGIN) => {
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
