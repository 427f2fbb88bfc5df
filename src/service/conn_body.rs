//! The answer hyper gets for an HTTP/1 request tells the connection when
//! it is written.
//!
//! A keep-alive connection is idle from the moment its last response is
//! written until the next request's first byte (`http1_state`). hyper
//! says neither, but it drops a response's body as soon as the body is
//! done: so the body carries a [`ResponseDone`], whose drop makes the
//! connection idle. One `Arc` clone per request.
//!
//! An HTTP/2 stream's body carries its stream's [`SendWait`] instead,
//! and tells it whether the response now waits for the client's window
//! (a chunk was just handed over) or for the server (the body is
//! `Pending`): see `conn::h2_stall`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::{Response, header};

use super::{ResponseFuture, ServiceBody};
use crate::conn::h2_stall::SendWait;
use crate::http1_state::ResponseDone;

pin_project_lite::pin_project! {
    /// What the service's `call` returns: the routed answer, and the
    /// marker its body will carry.
    pub struct Answer {
        #[pin]
        routed: ResponseFuture,
        done: Option<ResponseDone>,
        // The connection is past its `--max-connection-age`: this answer
        // is its last.
        aged: bool,
    }
}

impl Answer {
    /// `routed`, whose body will carry `done` (if any); `aged`: the
    /// answer says `Connection: close`.
    pub fn new(routed: ResponseFuture, done: Option<ResponseDone>, aged: bool) -> Self {
        Answer { routed, done, aged }
    }
}

impl Future for Answer {
    type Output = Result<Response<ConnBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.routed.poll(cx))?;
        if *this.aged && res.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
            res.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        let marker = match this.done.take() {
            Some(done) => Marker::Written(done),
            // An HTTP/2 stream (or the fuzz harness's HTTP/1): until hyper
            // asks for the first chunk, the client's window decides.
            None => match SendWait::current() {
                Some(wait) => {
                    wait.waiting();
                    Marker::Window(wait)
                }
                None => Marker::None,
            },
        };
        Poll::Ready(Ok(res.map(|body| ConnBody { body, marker })))
    }
}

pin_project_lite::pin_project! {
    /// The body hyper sends: the service's, and the marker that is
    /// dropped with it.
    pub struct ConnBody {
        #[pin]
        body: ServiceBody,
        marker: Marker,
    }
}

/// What the body tells as it is sent.
enum Marker {
    /// HTTP/1: dropped with the body, the connection turns idle.
    Written(#[allow(dead_code)] ResponseDone),
    /// HTTP/2: whether the stream waits for the client's window.
    Window(Arc<SendWait>),
    None,
}

impl Body for ConnBody {
    type Data = Bytes;
    type Error = <ServiceBody as Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let frame = this.body.poll_frame(cx);
        if let Marker::Window(wait) = this.marker {
            match &frame {
                // hyper sends this chunk, and asks for the next one once
                // the window has room.
                Poll::Ready(Some(Ok(_))) => wait.waiting(),
                // Nothing to send yet, or the end.
                _ => wait.not_waiting(),
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Whether the client says this request is its last on the connection,
/// and sent no body: `Connection: close`, or HTTP/1.0 without
/// `keep-alive`. Then nothing more can come from it, and the close after
/// the response need not linger (`lingering_close`).
pub fn client_closes<B: Body>(req: &hyper::Request<B>) -> bool {
    // Byte by byte, with no check that the value is text first: a value
    // that is not is no `close` or `keep-alive` either, and the common
    // case (no `Connection` header, or one short value) is one lookup.
    let says = |token: &[u8]| {
        req.headers()
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| has_token(v.as_bytes(), token))
    };
    let closes = if req.version() <= hyper::Version::HTTP_10 {
        !says(b"keep-alive")
    } else {
        says(b"close")
    };
    closes && req.body().is_end_stream()
}

/// Whether the comma-separated list `value` holds `token` (any case,
/// spaces around it allowed).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    // The usual value is the token alone: one comparison.
    value.eq_ignore_ascii_case(token)
        || value
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use http_body_util::Empty;
    use hyper::{Request, Version};

    use super::*;

    fn closes(version: Version, connection: &[&str]) -> bool {
        let mut req = Request::builder().version(version);
        for value in connection {
            req = req.header(header::CONNECTION, *value);
        }
        client_closes(&req.body(Empty::<Bytes>::new()).unwrap())
    }

    #[test]
    fn the_connection_header_is_read_as_a_list_of_tokens_in_any_case() {
        let v11 = Version::HTTP_11;
        assert!(!closes(v11, &[]));
        assert!(closes(v11, &["close"]));
        assert!(closes(v11, &["Close"]));
        assert!(closes(v11, &["keep-alive, close"]));
        assert!(closes(v11, &["te", " CLOSE "]));
        assert!(!closes(v11, &["closed"]));
        assert!(!closes(v11, &["keep-alive"]));
        let v10 = Version::HTTP_10;
        assert!(closes(v10, &[]));
        assert!(!closes(v10, &["Keep-Alive"]));
        assert!(closes(v10, &["upgrade"]));
    }
}
