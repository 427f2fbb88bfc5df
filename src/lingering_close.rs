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
//! HTTP/1 connection after a response; the connection's IO
//! (`head_timer::CountingIo`) hands that call to [`Linger::poll_close`],
//! which does both steps. A well-behaved client closes as soon as it has read the
//! response, so the wait is about one round trip. Closes without a
//! response (a header timeout, a connection idle for longer than the
//! keep-alive grace at the drain) skip the linger.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The longest a close waits for the client's FIN. Long enough for a
/// client on the other side of the world to read a response and close;
/// short enough that a client that never closes holds a drain for no
/// more than this.
pub const LINGER_TIME: Duration = Duration::from_secs(1);

/// The most bytes a close reads and discards: a client uploading a large
/// body nobody will read is not waited for.
pub const LINGER_BYTES: usize = 64 * 1024;

/// Where a connection's close is. An open connection carries only the
/// `Open` tag: the timer is boxed and made when the linger starts.
#[derive(Debug, Default)]
pub enum Linger {
    /// Not closing.
    #[default]
    Open,
    /// The FIN is sent; reading until the client's, or a bound.
    Lingering {
        until: Pin<Box<Sleep>>,
        discarded: usize,
    },
    /// Done.
    Closed,
}

impl Linger {
    /// `poll_shutdown` for `io`: the FIN, then (if `linger`) the read
    /// until the client's FIN or a bound. Resolves once the socket may be
    /// closed without a reset.
    pub fn poll_close<T: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        linger: bool,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match self {
                Linger::Open => {
                    // Step 1: the FIN, after everything written so far.
                    ready!(Pin::new(&mut *io).poll_shutdown(cx))?;
                    *self = if linger {
                        Linger::Lingering {
                            until: Box::pin(tokio::time::sleep(LINGER_TIME)),
                            discarded: 0,
                        }
                    } else {
                        Linger::Closed
                    };
                }
                Linger::Lingering { until, discarded } => {
                    // Step 2: drain the receive buffer until the client's
                    // FIN, so the socket closes with nothing unread.
                    let mut scrap = [0u8; 2048];
                    let mut buf = ReadBuf::new(&mut scrap);
                    match Pin::new(&mut *io).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                            *discarded += buf.filled().len();
                            if *discarded < LINGER_BYTES {
                                continue;
                            }
                        }
                        // The client's FIN, or an error: nothing more
                        // will come.
                        Poll::Ready(_) => {}
                        Poll::Pending => ready!(until.as_mut().poll(cx)),
                    }
                    *self = Linger::Closed;
                }
                Linger::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}
