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
//! "Idle" and "since when" come from the head timer's bookkeeping
//! ([`HeadClock::idle_since`]): hyper is waiting for a head, and no byte of
//! it has arrived. Every close after a response lingers
//! (`lingering_close`), so a late request is read and discarded rather
//! than turned into a reset that destroys the response before it.
//!
//! HTTP/2 needs none of this: its GOAWAY names the last stream the server
//! will process, so the client knows which requests ran.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::HttpService;

use crate::head_timer::HeadClock;

/// Serves `conn` until it ends. Once `drain` resolves, closes it as the
/// module docs say: at once if idle for longer than `grace`, otherwise
/// when it has been idle for `grace`, or by hyper after a response marked
/// `Connection: close`.
pub async fn serve<I, S, B>(
    conn: http1::Connection<I, S>,
    drain: impl Future<Output = ()>,
    clock: &HeadClock,
    grace: Duration,
) -> hyper::Result<()>
where
    S: HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conn = pin!(conn);
    // Running: hyper alone. The drain future is only a wait on a token.
    tokio::select! {
        res = conn.as_mut() => return res,
        () = drain => {}
    }
    // Draining: after each poll of hyper, look at the connection again.
    // Its state only changes inside such a poll (a head arrives, a
    // response is written), so nothing is missed between two looks.
    let mut grace_end: Option<Pin<Box<tokio::time::Sleep>>> = None;
    poll_fn(|cx| {
        loop {
            if let Poll::Ready(res) = conn.as_mut().poll(cx) {
                return Poll::Ready(res);
            }
            let Some(since) = clock.idle_since() else {
                // Busy: its response will carry `Connection: close`.
                grace_end = None;
                return Poll::Pending;
            };
            let deadline = since + grace;
            if Instant::now() >= deadline {
                // Idle for the whole grace: its client is not sending. No
                // response is waiting to be read, so no linger either.
                clock.skip_linger();
                conn.as_mut().graceful_shutdown();
                grace_end = None;
                continue; // hyper closes an idle connection at once.
            }
            let timer = grace_end
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
            if timer.deadline() != deadline.into() {
                timer.as_mut().reset(deadline.into());
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    })
    .await
}
