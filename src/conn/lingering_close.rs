//! Lingering close (RFC 9112 §9.6): a closed connection must not destroy
//! the response it just carried.
//!
//! When a process closes a socket while bytes it never read sit in the
//! socket's receive buffer, the kernel answers with a reset (RST) instead
//! of a FIN. A reset that reaches the client before it has read the
//! response makes its kernel throw that response away: the client sees
//! "connection reset" for a request that was in fact answered. The unread
//! bytes are usually the client's next request, sent on a keep-alive
//! connection just as the server decided to close it (the race explained
//! in `keepalive_grace`), or the rest of a body the server did
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
//! (`conn::io::ConnIo`) hands that call to [`Linger::poll_close`], which
//! does both steps. A well-behaved client closes as soon as it has read
//! the response, so the wait is about one round trip.
//!
//! Not every close needs it ([`Close`]):
//!
//! * a close without a response (a connection idle for longer than the
//!   keep-alive grace at the drain) has nothing to protect: no linger;
//! * a client that asked to close (`Connection: close`, or HTTP/1.0
//!   without keep-alive) and sent no body sends nothing more (RFC 9112
//!   §9.6), so only bytes already here could cause a reset: one read
//!   after the FIN looks, and only if it finds some does the close
//!   linger. This is every connection of a `Connection: close` client,
//!   which would otherwise wait a round trip, a timer and a wake-up more
//!   per connection than it needs (like nginx, which lingers only when
//!   "the client may be sending more data");
//! * past the shutdown deadline ([`Close::OnceAcked`]) the exit is waiting,
//!   and the service manager's kill timer with it: the close waits only
//!   until the peer has acknowledged every byte sent (`SIOCOUTQ` is 0)
//!   with nothing unread, then closes without waiting for the client's FIN. A peer that stopped
//!   reading never acknowledges; `--force-grace`'s abort bounds it, not
//!   [`LINGER_TIME`].
//!
//! Before the deadline the linger stays as it is, for keep-alive clients:
//! an acknowledgement says the response reached the client's kernel, not
//! its reader, and a request the client sends after our close would meet
//! a reset that can destroy that unread response. There is time for the
//! FIN then; past the deadline there is not, and the 503 it carries says
//! `Connection: close`, so a well-behaved client sends nothing more.

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
pub const LINGER_BYTES: u32 = 64 * 1024;

/// How a connection closes after hyper is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The FIN, then the close: no response is on its way.
    Now,
    /// The FIN; then linger only if the client's bytes are already here.
    UnlessUnread,
    /// The FIN, then the linger.
    Linger,
    /// Past the deadline: the FIN, then wait only for the peer's
    /// acknowledgement of everything sent.
    OnceAcked,
}

/// How often a close past the deadline asks the kernel whether the peer
/// has acknowledged everything: an acknowledgement wakes no one, so it is
/// polled. A loopback peer acknowledges within this; a distant one within
/// a round trip, a few polls.
pub const ACK_POLL: Duration = Duration::from_millis(5);

/// Where a connection's close is. An open connection carries only the
/// `Open` tag: the timer is boxed, and made only if the client has not
/// closed its side yet when the linger starts (on a churned connection it
/// usually has).
#[derive(Debug, Default)]
pub enum Linger {
    /// Not closing.
    #[default]
    Open,
    /// The FIN is sent; reading until the client's, or a bound. `until`
    /// is that bound's timer, or for [`Close::OnceAcked`] the next
    /// `ACK_POLL`.
    ///
    /// `how` is the one chosen at the FIN: a connection the drain later
    /// calls idle (`Close::Now`) does not change a close already under way.
    Lingering {
        until: Option<Pin<Box<Sleep>>>,
        discarded: u32,
        how: Close,
    },
    /// Done.
    Closed,
}

impl Linger {
    /// `poll_shutdown` for `io`: the FIN, then, as `how` says, the read
    /// until the client's FIN or a bound. Resolves once the socket may be
    /// closed without a reset.
    ///
    /// `acked` tells whether the peer has acknowledged everything sent
    /// (for [`Close::OnceAcked`]).
    pub fn poll_close<T: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        how: Close,
        acked: impl Fn() -> bool,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match self {
                Linger::Open => {
                    // Step 1: the FIN, after everything written so far.
                    ready!(Pin::new(&mut *io).poll_shutdown(cx))?;
                    *self = if how == Close::Now {
                        Linger::Closed
                    } else {
                        Linger::Lingering {
                            until: None,
                            discarded: 0,
                            how,
                        }
                    };
                }
                Linger::Lingering {
                    until,
                    discarded,
                    how,
                } => {
                    let how = *how;
                    // Step 2: drain the receive buffer until the client's
                    // FIN, so the socket closes with nothing unread.
                    let mut scrap = [0u8; 2048];
                    let mut buf = ReadBuf::new(&mut scrap);
                    match Pin::new(&mut *io).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                            *discarded += buf.filled().len() as u32;
                            if *discarded < LINGER_BYTES {
                                continue;
                            }
                        }
                        // The client's FIN, or an error: nothing more
                        // will come.
                        Poll::Ready(_) => {}
                        // Nothing unread, from a client that sends
                        // nothing more: close now.
                        Poll::Pending if how == Close::UnlessUnread && *discarded == 0 => {}
                        // Past the deadline, nothing unread: close once
                        // the peer has everything, asking again each
                        // `ACK_POLL`.
                        Poll::Pending if how == Close::OnceAcked => {
                            if !acked() {
                                let until = until
                                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(ACK_POLL)));
                                ready!(until.as_mut().poll(cx));
                                let next = tokio::time::Instant::now() + ACK_POLL;
                                until.as_mut().reset(next);
                                continue;
                            }
                        }
                        Poll::Pending => {
                            let until = until
                                .get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER_TIME)));
                            ready!(until.as_mut().poll(cx));
                        }
                    }
                    *self = Linger::Closed;
                }
                Linger::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}
