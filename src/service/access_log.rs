//! `--access-log`: one line per request, written when the request is over.
//!
//! The line (target `access`, at `info`) carries the method, the path, the
//! status, the duration, the response bytes, the peer and the protocol, as
//! structured fields, so `--log-format json` makes it one JSON object:
//!
//! ```text
//! INFO access: request method=GET path=/api/items status=200 duration_us=412 bytes=97 peer=127.0.0.1:50412 protocol=HTTP/1.1 complete=true
//! ```
//!
//! "Over" means the response body is finished with: sent to the end, or
//! dropped because the client left. So the line is written when the last
//! byte has been handed to the connection, and the duration includes
//! writing the body (an event stream's line comes when the stream ends).
//! `complete=false` says the body did not reach its end. A request whose
//! handler never answered (the client left first) is logged with no
//! status when its handler is dropped.
//!
//! When the flag is off, none of this exists: the service holds no peer
//! and `call` takes the branch that wraps nothing, so the request path
//! pays one branch.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::{Method, Request, StatusCode, Version};
use tracing::info;

use super::respond::Body;

/// One request, from its arrival until its line is written. Whichever
/// holds it last writes the line when it drops it: the handler's future if
/// no response came, the response body otherwise.
#[derive(Debug)]
pub struct AccessRecord {
    method: Method,
    path: String,
    protocol: Version,
    peer: SocketAddr,
    start: Instant,
    status: Option<u16>,
    bytes: u64,
    complete: bool,
}

impl AccessRecord {
    /// Starts the record of `req`, from `peer`.
    pub fn begin(req: &Request<Incoming>, peer: SocketAddr) -> Box<AccessRecord> {
        Box::new(AccessRecord {
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            protocol: req.version(),
            peer,
            start: Instant::now(),
            status: None,
            bytes: 0,
            complete: false,
        })
    }

    /// The response is here, with `status`: its body carries the record
    /// from now on.
    pub fn attach(mut self: Box<Self>, status: StatusCode, body: Body) -> Logged {
        self.status = Some(status.as_u16());
        // A body that is empty from the start is never polled.
        self.complete = body.is_end_stream();
        Logged { body, record: self }
    }
}

impl Drop for AccessRecord {
    fn drop(&mut self) {
        info!(
            target: "access",
            method = %self.method,
            path = %self.path,
            status = self.status,
            duration_us = self.start.elapsed().as_micros() as u64,
            bytes = self.bytes,
            peer = %self.peer,
            protocol = ?self.protocol,
            complete = self.complete,
            "request"
        );
    }
}

/// A response body that counts its bytes into its [`AccessRecord`]; the
/// line is written when hyper drops it.
pub struct Logged {
    body: Body,
    record: Box<AccessRecord>,
}

impl hyper::body::Body for Logged {
    type Data = Bytes;
    type Error = <Body as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.record.bytes += data.len() as u64;
                }
                // A whole buffer ends with its one frame; hyper need not
                // poll again to learn it.
                this.record.complete = this.body.is_end_stream();
            }
            Poll::Ready(None) => this.record.complete = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl std::fmt::Debug for Logged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logged")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}
