//! `/healthz`, `/livez`, `/metrics`: the endpoints a platform polls.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::respond::{self, Body};
use crate::app::App;

/// Readiness: 200 `ok` while running, 503 `shutting down` from the first
/// signal on, so load balancers stop routing here while we still serve.
/// With `--drain-checks`, each probe is counted for `peer` (see
/// [`crate::shutdown::health_checkers`]).
pub fn healthz(app: &App, peer: Option<&SocketAddr>) -> Response<Body> {
    let failing = app.shutdown.is_shutting_down();
    if let Some(peer) = peer {
        app.checkers.probed(peer.ip(), failing);
    }
    if failing {
        respond::text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        respond::text(StatusCode::OK, "ok\n")
    }
}

/// Liveness: 200 as long as the process serves at all. It does not flip
/// during the drain — restarting a draining process would cut the drain.
pub fn livez() -> Response<Body> {
    respond::text(StatusCode::OK, "alive\n")
}

/// Prometheus text.
pub fn metrics(app: &App) -> Response<Body> {
    let page = app.metrics.render(app.shutdown.phase());
    let mut res = Response::new(Either::Left(Full::new(Bytes::from(page))));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}
