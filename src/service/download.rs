//! `GET /api/download?bytes=N&seed=S[&rate=R]`: a download that survives
//! its server's shutdown by being resumed on the next one.
//!
//! The body is `N` bytes, a pure function of `N` and `S` (the generator,
//! its version and why it is shaped so: `download/keystream.rs`), made a
//! frame at a time and, with `rate` bytes per second, paced
//! (`download/body.rs`). Every answer names it: `ETag:
//! "download-v1-N-S"`, `Accept-Ranges: bytes`, `Content-Length`,
//! `Content-Type: application/octet-stream`. `Range` and `If-Range` pick
//! the part to send (`download/range.rs`): 206 with `Content-Range` for
//! one range, 416 with `Content-Range: bytes */N` for a range past the
//! end, the whole body otherwise. `HEAD` answers like a `GET` without a
//! `Range`, its `Content-Length` the body's.
//!
//! | parameter | meaning | bounds |
//! |---|---|---|
//! | `bytes` | the body's length | 1 to [`MAX_BYTES`] (1 GiB), required |
//! | `seed` | which body | any `u64`, required |
//! | `rate` | at most this many bytes a second | 1 to [`MAX_RATE`] (1 GiB/s); unthrottled without it |
//!
//! Out of bounds, missing, or not a number: 400 and a JSON error, like
//! every other route's query. `rate` is not part of the body's identity:
//! the same `bytes` and `seed` at any rate are the same bytes, the same
//! `ETag`.
//!
//! # Its part in a shutdown
//!
//! A download is a "stream" route (see the table in `service`): no
//! handler runs, the body is the state hyper polls, and like an event
//! stream it is exempt from `--request-timeout`, since a large body on a
//! slow link rightly takes longer than any request should. A client that
//! stops reading is still cut: a write that makes no progress for
//! `--request-timeout` closes the connection (`conn::write_stall`). Over
//! HTTP/2 that holds for a client that stops reading the connection; one
//! that goes on reading it but stops granting the stream flow-control
//! window stalls no write, and its stream waits, like an event stream's
//! would, until the client leaves or the forced close.
//!
//! Unlike an event stream, a download is **not** ended by the drain. An
//! event stream never ends by itself, so at `closing` it says goodbye and
//! its client reconnects elsewhere, losing nothing. A download has an end,
//! and every byte sent before a cut must be sent again or resumed, so it
//! keeps streaming through the drain like any response still being
//! written: HTTP/1 closes the connection after it (a response that
//! *starts* in the drain says `Connection: close`, as every HTTP/1 answer
//! then does), HTTP/2 has sent GOAWAY and lets the stream finish. If it
//! finishes within `--shutdown-timeout`, the drain was clean (exit 0).
//!
//! If it does not, it is cut at the deadline like any work that will not
//! finish: there is no polite answer left to give (its 200 went out long
//! ago), so after `--force-grace` its connection is aborted — over HTTP/1
//! the connection task, over HTTP/2 the stream task too (the executor's
//! force token) — and the process exits 1. The client sees the body end
//! short of its `Content-Length`: an incomplete download, never one that
//! looks finished.
//!
//! The client then **resumes**, from the process that took over the
//! socket (after a SIGHUP upgrade) or from another instance: `Range:
//! bytes=K-` for the bytes it lacks, and `If-Range` with the `ETag` it
//! was given. It gets 206 and exactly the bytes it is missing, and the
//! two parts are the body. `curl -C -` does the first half by itself.
//!
//! # Why the `ETag` is strong, and why `If-Range` needs it
//!
//! A resume splices bytes from two answers, so both must come from the
//! same body, byte for byte. `If-Range` is how the client makes that the
//! condition: "send me the range if the body is still the one with this
//! tag; if not, send me all of it". Only a strong validator can promise
//! byte-for-byte equality — a weak one (`W/"…"`) promises only an
//! equivalent body, and a date only that nothing changed within that
//! second — so RFC 9110 §13.1.5 lets `If-Range` match a strong `ETag` only.
//! This one is strong because it names everything the bytes depend on:
//! `N`, `S` and the generator's version. Two processes of the same
//! version give the same tag for the same body; a process whose generator
//! differs gives another tag, its `If-Range` fails, and the client gets a
//! fresh 200 of the new body instead of a corrupt splice.

mod body;
pub(crate) mod keystream;
mod range;

use std::sync::Arc;

use http_body_util::Either;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

pub use body::DownloadBody;
use range::Selected;

use super::query::Query;
use super::respond::{self, Body};
use crate::app::App;

/// The longest body: 1 GiB. Enough to outlast any shutdown deadline at
/// any rate a test or a demo would pick, small enough that a download
/// nobody throttled ends within seconds on loopback.
pub const MAX_BYTES: u64 = 1 << 30;

/// The highest `rate`, in bytes per second: the whole longest body in one
/// second. Past it, leave `rate` out.
pub const MAX_RATE: u64 = MAX_BYTES;

/// What a download request asks for, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Params {
    bytes: u64,
    seed: u64,
    rate: Option<u64>,
}

impl Params {
    /// Reads `bytes`, `seed` and `rate` from the query string. The error
    /// is the message a 400 carries.
    fn parse(raw: Option<&str>) -> Result<Params, String> {
        let query = Query::parse(raw)?;
        let required = |key: &str, value: Option<u64>| {
            value.ok_or_else(|| format!("query parameter `{key}` is required"))
        };
        let bytes = required("bytes", query.number("bytes", 1, MAX_BYTES, None)?)?;
        let seed = required("seed", query.number("seed", 0, u64::MAX, None)?)?;
        let rate = query.number("rate", 1, MAX_RATE, None)?;
        Ok(Params { bytes, seed, rate })
    }
}

/// The `ETag` of the body of `bytes` bytes with `seed`: strong, and
/// naming all the body depends on (see the module docs).
fn etag(bytes: u64, seed: u64) -> String {
    format!("\"download-v{}-{bytes}-{seed}\"", keystream::VERSION)
}

/// Answers a download request (`GET` or `HEAD`).
pub fn download(app: &Arc<App>, req: &Request<Incoming>) -> Response<Body> {
    let Params { bytes, seed, rate } = match Params::parse(req.uri().query()) {
        Ok(params) => params,
        Err(e) => return respond::json_error(StatusCode::BAD_REQUEST, e),
    };
    let etag = etag(bytes, seed);
    // RFC 9110 §14.2: only `GET` has ranges.
    let ranged = (req.method() == Method::GET).then(|| req.headers());
    let (status, first, last) = match range::select(ranged, bytes, &etag) {
        Selected::Whole => (StatusCode::OK, 0, bytes - 1),
        Selected::Part { first, last } => (StatusCode::PARTIAL_CONTENT, first, last),
        Selected::Unsatisfiable => {
            let msg = format!("range not satisfiable: the body is {bytes} bytes");
            let mut res = respond::json_error(StatusCode::RANGE_NOT_SATISFIABLE, msg);
            let headers = res.headers_mut();
            headers.insert(
                header::CONTENT_RANGE,
                ascii_value(format!("bytes */{bytes}")),
            );
            name_the_body(headers, etag);
            return res;
        }
    };
    let body = DownloadBody::new(app.clone(), seed, first, last, rate);
    let mut res = Response::new(Either::Right(Box::new(Either::Right(body))));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(last + 1 - first));
    if status == StatusCode::PARTIAL_CONTENT {
        let range = format!("bytes {first}-{last}/{bytes}");
        headers.insert(header::CONTENT_RANGE, ascii_value(range));
    }
    name_the_body(headers, etag);
    res
}

/// The headers every download answer carries: ranges are served, and
/// which body this is.
fn name_the_body(headers: &mut hyper::HeaderMap, etag: String) {
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::ETAG, ascii_value(etag));
}

/// A header value of digits, letters, `"`, `-`, `/`, `*` and spaces: the
/// ones above, made of numbers this module formatted, which is always a
/// valid value.
fn ascii_value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).expect("digits and ASCII punctuation make a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameters: bounds, required ones, the optional rate; each
    /// error names the parameter.
    #[test]
    fn parameters_are_bounded_and_the_errors_name_them() {
        fn ok(query: &str) -> Params {
            Params::parse(Some(query)).unwrap()
        }
        fn err(query: &str) -> String {
            Params::parse(Some(query)).unwrap_err()
        }
        assert_eq!(
            ok("bytes=10&seed=0"),
            Params {
                bytes: 10,
                seed: 0,
                rate: None
            }
        );
        assert_eq!(
            ok("bytes=1073741824&seed=18446744073709551615&rate=1").rate,
            Some(1)
        );
        assert!(err("seed=1").contains("`bytes` is required"));
        assert!(err("bytes=1").contains("`seed` is required"));
        for bad in [
            "bytes=0&seed=1",
            "bytes=1073741825&seed=1",
            "bytes=-1&seed=1",
            "bytes=1k&seed=1",
        ] {
            assert!(err(bad).contains("`bytes`"), "{bad}");
        }
        assert!(err("bytes=1&seed=18446744073709551616").contains("`seed`"));
        for bad in ["rate=0", "rate=1073741825", "rate=fast", "rate="] {
            assert!(
                err(&format!("bytes=1&seed=1&{bad}")).contains("`rate`"),
                "{bad}"
            );
        }
        assert!(Params::parse(None).is_err());
    }

    /// The `ETag` is strong and names the length, the seed and the
    /// generator's version.
    #[test]
    fn the_etag_is_strong_and_names_length_seed_and_version() {
        assert_eq!(etag(100, 7), "\"download-v1-100-7\"");
        assert_ne!(etag(100, 7), etag(101, 7));
        assert_ne!(etag(100, 7), etag(100, 8));
    }
}
