//! Closing HTTP/1 keep-alive connections at the drain without racing the
//! client's next request.
//!
//! A keep-alive connection between two requests looks idle to the server,
//! but its client may be sending the next request at this very moment.
//! Close it then, and the request meets a closed socket: the client gets a
//! reset or an end of stream with no response, and cannot know whether
//! the request ran (RFC 9112 §9.5). Closing every idle connection the
//! moment the drain begins, as hyper's graceful shutdown does, loses
//! exactly those requests on every restart under load.
//!
//! So when the drain begins, each HTTP/1 connection is closed by how
//! recently it was used, like nginx's `keepalive_min_timeout`:
//!
//! * **idle for longer than the grace** (`--keepalive-grace`): closed at
//!   once. Its client is not in the middle of anything; a thousand such
//!   connections do not delay the exit.
//! * **used within the grace**, or **busy** with a request: kept open. The
//!   next response on it carries `Connection: close` (the service adds it
//!   to every HTTP/1 response once the drain has begun), so the client
//!   learns, with a response in hand, to open its next request elsewhere.
//!   If it stays idle until its grace ends, it is closed then.
//!
//! [`KeepAliveGrace`] does this around hyper's connection. "Idle" and
//! "since when" come from the head timer's bookkeeping
//! ([`HeadClock::idle_since`]): hyper is waiting for a head, and no byte of
//! it has arrived. Every close after a response lingers
//! (`lingering_close`), so a late request is read and discarded rather
//! than turned into a reset that destroys the response before it.
//!
//! HTTP/2 needs none of this: its GOAWAY names the last stream the server
//! will process, so the client knows which requests ran.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::HttpService;
use tokio::time::Sleep;

use crate::head_timer::HeadClock;

pin_project_lite::pin_project! {
    /// An HTTP/1 connection served until it ends, closed as the module
    /// docs say once `drain` resolves. A hand-written future rather than an
    /// `async fn`, so that a connection task holds hyper's connection
    /// once, not twice: this state is kept for every idle connection.
    pub struct KeepAliveGrace<'a, C, D> {
        #[pin]
        conn: C,
        // Resolves when the drain begins: a wait on a token.
        #[pin]
        drain: D,
        clock: &'a HeadClock,
        grace: Duration,
        draining: bool,
        // hyper has been told to close. Told once: if it cannot close at
        // once (a head it had begun to read), it closes after answering.
        told: bool,
        // When an idle connection's grace ends; made only in the drain.
        grace_end: Option<Pin<Box<Sleep>>>,
    }
}

impl<'a, C, D> KeepAliveGrace<'a, C, D> {
    /// Serves `conn`, whose idle state `clock` tracks, until it ends.
    pub fn new(conn: C, drain: D, clock: &'a HeadClock, grace: Duration) -> Self {
        KeepAliveGrace {
            conn,
            drain,
            clock,
            grace,
            draining: false,
            told: false,
            grace_end: None,
        }
    }
}

impl<I, S, B, D> Future for KeepAliveGrace<'_, http1::Connection<I, S>, D>
where
    S: HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    D: Future<Output = ()>,
{
    type Output = hyper::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Poll::Ready(res) = this.conn.as_mut().poll(cx) {
                return Poll::Ready(res);
            }
            // Running: hyper alone. Polled until it fires, then never
            // again.
            if !*this.draining {
                if this.drain.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                *this.draining = true;
            }
            if *this.told {
                return Poll::Pending;
            }
            // Draining: after each poll of hyper, look at the connection
            // again. Its state only changes inside such a poll (a head
            // arrives, a response is written), so nothing is missed
            // between two looks.
            let Some(since) = this.clock.idle_since() else {
                // Busy: its response will carry `Connection: close`.
                return Poll::Pending;
            };
            // The grace ends `grace` after the connection went idle, which
            // may be in the past already: then the timer fires at once.
            // The timer alone decides, so the clock that decides is the
            // runtime's (the fuzz harness runs on a paused one).
            let deadline = (since + *this.grace).into();
            let timer = this
                .grace_end
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Idle for the whole grace: its client is not sending. No
            // response is waiting to be read, so no linger either.
            this.clock.skip_linger();
            this.conn.as_mut().graceful_shutdown();
            *this.told = true;
            // hyper closes an idle connection at once: poll it again.
        }
    }
}
