//! The connection's IO as hyper sees it.
//!
//! [`ConnIo`] sits between hyper and the socket (itself wrapped in
//! `write_stall`), and does three small things:
//!
//! * it replays the bytes the protocol sniff already read (`prefix`)
//!   before reading the socket, and frees them once replayed;
//! * it tells the connection's state ([`ConnState`]) that bytes came: on
//!   an idle keep-alive connection, that is where the next head begins,
//!   and with it the header timeout (see `http1_deadlines`);
//! * its close lingers when a response could otherwise be destroyed (see
//!   `lingering_close`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::lingering_close::{Close, Linger};
use crate::http1_state::ConnState;

/// The connection's IO as hyper sees it: first the bytes the protocol sniff
/// already read (`prefix`), then the socket, in the connection's `state`
/// (an HTTP/2 connection's only ever says whether the shutdown deadline
/// has passed: it has no HTTP/1 phases).
#[derive(Debug)]
pub struct ConnIo<T> {
    inner: T,
    prefix: Bytes,
    state: Arc<ConnState>,
    close: Linger,
}

impl<T> ConnIo<T> {
    /// Wraps `inner`; `prefix` is replayed before anything is read from it.
    pub fn new(inner: T, prefix: Bytes, state: Arc<ConnState>) -> Self {
        ConnIo {
            inner,
            prefix,
            state,
            close: Linger::Open,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ConnIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if self.prefix.is_empty() {
                // Free the buffer: an idle connection should not keep
                // its first request's bytes.
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.bytes_arrived();
        }
        res
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ConnIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let state = &this.state;
        let how = if !state.lingers() {
            Close::Now
        } else if state.client_closes() {
            Close::UnlessUnread
        } else if state.past_deadline() {
            Close::OnceAcked
        } else {
            Close::Linger
        };
        let acked = || state.all_acked();
        this.close.poll_close(&mut this.inner, how, acked, cx)
    }
}
