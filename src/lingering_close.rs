//! Lingering close (RFC 9112 §9.6): a closed connection must not destroy
//! the response it just carried.
//!
//! When a process closes a socket while bytes it never read sit in the
//! socket's receive buffer, the kernel answers with a reset (RST) instead
//! of a FIN. A reset that reaches the client before it has read the
//! response makes its kernel throw that response away: the client sees
//! "connection reset" for a request that was in fact answered. The unread
//! bytes are usually the client's next request, sent on a keep-alive
//! connection just as the server decided to close it (the race drawn in
//! the README's "Restarts" section), or the rest of a body the server did
//! not read.
//!
//! So closing after a response is done in two steps, like nginx's
//! `lingering_close`:
//!
//! 1. half-close: `shutdown(SHUT_WR)` sends the FIN after the response, so
//!    the client reads the whole response and then an end of stream;
//! 2. linger: read and discard whatever the client still sends, until its
//!    own FIN, or until [`LINGER_TIME`] or [`LINGER_BYTES`], whichever is
//!    first. Only then is the socket closed, with nothing unread, so no
//!    reset.
//!
//! hyper half-closes through `poll_shutdown` once it is done with an
//! HTTP/1 connection after a response; [`Lingering`] does step 2 inside
//! that same call. A well-behaved client closes as soon as it has read the
//! response, so the wait is about one round trip. Closes without a
//! response (a header timeout, a connection idle for longer than the
//! keep-alive grace at the drain) skip the linger.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::head_timer::HeadClock;

/// The longest a close waits for the client's FIN. Long enough for a
/// client on the other side of the world to read a response and close;
/// short enough that a client that never closes holds a drain for no
/// more than this.
pub const LINGER_TIME: Duration = Duration::from_secs(1);

/// The most bytes a close reads and discards: a client uploading a large
/// body nobody will read is not waited for.
pub const LINGER_BYTES: usize = 64 * 1024;

/// The connection's IO, closing with a linger.
#[derive(Debug)]
pub struct Lingering<T> {
    inner: T,
    /// Says whether this close should linger (see [`HeadClock::lingers`]).
    clock: Arc<HeadClock>,
    /// Where the close is; see [`Close`].
    close: Close,
}

#[derive(Debug)]
enum Close {
    /// Not closing.
    Open,
    /// The FIN is sent; reading until the client's, or a bound. The timer
    /// is boxed and made only here, so an open connection carries none.
    Lingering {
        until: Pin<Box<Sleep>>,
        discarded: usize,
    },
    /// Done.
    Closed,
}

impl<T> Lingering<T> {
    /// Wraps `inner`; `clock` says whether a close lingers.
    pub fn new(inner: T, clock: Arc<HeadClock>) -> Self {
        Lingering {
            inner,
            clock,
            close: Close::Open,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Lingering<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<T> {
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
        loop {
            match &mut this.close {
                Close::Open => {
                    // Step 1: the FIN, after everything written so far.
                    ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                    if !this.clock.lingers() {
                        this.close = Close::Closed;
                        continue;
                    }
                    this.close = Close::Lingering {
                        until: Box::pin(tokio::time::sleep(LINGER_TIME)),
                        discarded: 0,
                    };
                }
                Close::Lingering { until, discarded } => {
                    // Step 2: drain the receive buffer until the client's
                    // FIN, so the socket closes with nothing unread.
                    let mut scrap = [0u8; 2048];
                    let mut buf = ReadBuf::new(&mut scrap);
                    match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                            *discarded += buf.filled().len();
                            if *discarded < LINGER_BYTES {
                                continue;
                            }
                        }
                        // The client's FIN, or an error: nothing more
                        // will come.
                        Poll::Ready(_) => {}
                        Poll::Pending => {
                            ready!(until.as_mut().poll(cx));
                        }
                    }
                    this.close = Close::Closed;
                }
                Close::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}
