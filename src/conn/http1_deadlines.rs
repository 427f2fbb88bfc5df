//! One lazy timer per HTTP/1 connection: Go's `ReadHeaderTimeout` and
//! `IdleTimeout`, and the keep-alive grace at the drain.
//!
//! Go has two request-head timeouts: `ReadHeaderTimeout` (finish the head
//! once you start it) and `IdleTimeout` (start the next request within
//! this long). Here:
//!
//! * the **first head** must be complete within `header_read_timeout` of
//!   the accept (the protocol sniff counts against it too);
//! * a **later head** may wait `idle_timeout` for its first byte, and then
//!   has `header_read_timeout` from that byte to finish;
//! * **in the drain**, an idle connection closes when its keep-alive grace
//!   ends (`keepalive_grace`).
//!
//! When a deadline passes, the connection is closed without a response:
//! the client has not sent a complete request.
//!
//! # Why not hyper's header timer
//!
//! hyper has one `header_read_timeout`, and for it asks a timer for a new
//! sleep on every request: a clock read, a boxed sleep, and a wake-up to
//! poll it, per keep-alive request. That was the whole gap between
//! lameduck's keep-alive throughput and bare hyper's.
//!
//! So hyper gets no timer at all, and the deadline is a value instead, as
//! in Go's netpoller and nginx's event timers: each step of a request
//! writes the connection's activity with one store (`http1_state`), and this
//! future, after hyper has done all it can, turns the activity into a
//! deadline. One tokio timer serves every deadline of the connection, and
//! it is lazy: it is moved only when a deadline comes *earlier* than the
//! one it is set for. On a busy keep-alive connection the deadline only
//! ever moves later, so the timer, set for the first idle deadline, stays
//! where it is; when it fires, early, it is set once for the deadline of
//! that moment. A keep-alive request costs one read of the coarse clock
//! (`http1_state`) and leaves the timer wheel alone.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::HttpService;
use tokio::time::Sleep;

use crate::conn::keepalive_grace;
use crate::http1_state::{Activity, ConnState};
use crate::shutdown::ShutdownState;
use crate::shutdown::token_wait::TokenWait;

/// The three durations, from the server's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
    pub keepalive_grace: Duration,
    /// `--max-connection-age` and its grace: a connection still open a
    /// grace after its age is closed (`conn::max_age`).
    pub max_age: Option<Duration>,
    pub max_age_grace: Duration,
}

/// What a deadline ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    /// The header or idle timeout: the connection closes.
    Connection,
    /// The keep-alive grace in the drain: hyper is told to close, which
    /// it does at once for an idle connection.
    Grace,
}

pin_project_lite::pin_project! {
    /// An HTTP/1 connection served until it ends or a deadline passes.
    /// A hand-written future rather than an `async fn`, so that a
    /// connection task holds hyper's connection once, not twice: this
    /// state is kept for every idle connection.
    pub struct Http1Deadlines<'a, C> {
        #[pin]
        conn: C,
        // Resolves when the drain begins (a relaxed load per poll until
        // then); polled until it fires, then never again.
        #[pin]
        drain: TokenWait<'a>,
        state: &'a ConnState,
        // Its spread (`--drain-spread`: an idle connection closes at its
        // own instant, not with all the others) and its deadline (past
        // it, a close waits for acknowledgements only: `lingering_close`).
        shutdown: &'a ShutdownState,
        timeouts: &'a Timeouts,
        // The one timer; made when the connection first has a deadline
        // it has not met at once (a connection closed after its first
        // answer never makes it).
        timer: Option<Pin<Box<Sleep>>>,
        draining: bool,
        // hyper has been told to close. Told once: if it cannot close at
        // once (a head it had begun to read), it closes after answering.
        told: bool,
    }
}

impl<'a, C> Http1Deadlines<'a, C> {
    /// Serves `conn`, whose activity `state` tracks, until it ends or the
    /// drain (of `shutdown`) closes it.
    pub fn new(
        conn: C,
        shutdown: &'a ShutdownState,
        state: &'a ConnState,
        timeouts: &'a Timeouts,
    ) -> Self {
        Http1Deadlines {
            conn,
            drain: shutdown.closing(),
            state,
            shutdown,
            timeouts,
            timer: None,
            draining: false,
            told: false,
        }
    }
}

impl<I, S, B> Future for Http1Deadlines<'_, http1::UpgradeableConnection<I, S>>
where
    S: HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = hyper::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            // Past the deadline (only asked in the drain), the answer
            // hyper writes next is the last, and its close should not
            // wait for the client's FIN: tell the state before hyper
            // closes.
            if *this.draining && this.shutdown.is_past_deadline() {
                this.state.deadline_passed();
            }
            if let Poll::Ready(res) = this.conn.as_mut().poll(cx) {
                return Poll::Ready(res);
            }
            if !*this.draining {
                *this.draining = this.drain.as_mut().poll(cx).is_ready();
            }
            // hyper has done all it can: the activity is settled until the
            // next wake-up, so this is the moment to look at it.
            let (activity, since) = this.state.now();
            let t: &Timeouts = this.timeouts;
            // Past its age and its grace (`--max-connection-age`), a
            // connection is closed whatever it is doing; an idle one as at
            // the drain, unless it has been told already (its request is
            // waiting in the kernel, and its answer will close it).
            let aged_by = this
                .state
                .ages_out_at(t.max_age)
                .map(|at| at + t.max_age_grace)
                .filter(|_| !(activity == Activity::Idle && *this.told));
            let mut due = match (activity, aged_by) {
                (Activity::Busy, None) => return Poll::Pending,
                (Activity::Busy, Some(at)) => (at, Ends::Connection),
                (Activity::Head, _) => (since + t.header, Ends::Connection),
                (Activity::Idle, _) => (since + t.idle, Ends::Connection),
            };
            if let Some(at) = aged_by
                && at < due.0
            {
                let ends = if activity == Activity::Idle {
                    Ends::Grace
                } else {
                    Ends::Connection
                };
                due = (at, ends);
            }
            if *this.draining
                && !*this.told
                // Dormant at the drain's start: at once; live: at its own
                // instant in the spread window (the state's address names
                // the connection: the same instant each time it asks), and
                // never before its grace.
                && let Some(end) = keepalive_grace::close_at(
                    activity,
                    since,
                    t.keepalive_grace,
                    this.shutdown.spread(),
                    *this.state as *const ConnState as u64,
                )
                && end < due.0
            {
                due = (end, Ends::Grace);
            }
            if due.1 == Ends::Grace && due.0 <= Instant::now() {
                // Idle for the whole grace already (most connections, at
                // a drain): no timer needed to say so. (On the fuzz
                // harness's paused runtime clock this shortcut is only
                // taken less often; the timer below decides otherwise.)
                close_idle(this.state, this.conn.as_mut(), this.told);
                continue;
            }
            let (at, ends) = (tokio::time::Instant::from_std(due.0), due.1);
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            // Only ever earlier: a later deadline waits for the timer to
            // fire early (see the module docs).
            if timer.deadline() > at {
                timer.as_mut().reset(at);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if timer.deadline() < at {
                // Fired for an earlier deadline that has since moved:
                // set it for this one, and wait.
                timer.as_mut().reset(at);
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            // The timer alone says a deadline passed, so the clock that
            // decides is the runtime's (the fuzz harness pauses it).
            match ends {
                Ends::Connection => {
                    // Dropping hyper's connection closes the socket. No
                    // response is owed: no complete request came.
                    return Poll::Ready(Ok(()));
                }
                Ends::Grace => close_idle(this.state, this.conn.as_mut(), this.told),
            }
        }
    }
}

/// The keep-alive grace of an idle connection is over: its client is not
/// sending. No response is waiting to be read, so no linger either.
///
/// Unless the kernel says otherwise: a request the client sent before
/// the close may be in the socket's receive buffer, unseen because the
/// runtime has not yet delivered its wake-up (under load that comes
/// late). Closing then would meet that request with a FIN and no answer.
/// So the connection is only marked as told, and left open: hyper reads
/// the request when its wake-up comes, answers it with `Connection:
/// close` (the drain's `last_if_draining`), and closes after it.
fn close_idle<I, S, B>(
    state: &ConnState,
    conn: Pin<&mut http1::UpgradeableConnection<I, S>>,
    told: &mut bool,
) where
    S: HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    *told = true;
    if state.bytes_waiting() {
        return;
    }
    state.skip_linger();
    conn.graceful_shutdown();
}
