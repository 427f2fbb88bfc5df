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
//! [`close_at`] is the rule; the connection's timer (`http1_deadlines`)
//! applies it, with the same timer that runs its header and idle
//! timeouts. "Idle" and "since when" come from the connection's state
//! (`http1_state`): its last response is written, and no byte of the next
//! request has arrived. A close after a response lingers
//! (`lingering_close`), so a late request is read and discarded rather
//! than turned into a reset that destroys the response before it.
//!
//! "No byte has arrived" is what the server has *seen*. Under load a
//! request can sit in the socket's receive buffer while the runtime has
//! not yet delivered the wake-up that would let hyper read it, and the
//! connection still looks idle. So before closing an idle connection the
//! timer asks the kernel (`FIONREAD`, `ConnState::bytes_waiting`); if
//! bytes are waiting, the connection stays open, its request is answered
//! with `Connection: close`, and it closes after that answer
//! (`tests/keepalive_race_under_load.rs`, where a contended worker made
//! 25 to 31 of 40 such requests meet a FIN before the check, and none
//! after). A request that arrives after the check and before the FIN is
//! the race's last sliver, a few microseconds wide.
//!
//! HTTP/2 needs none of this: its GOAWAY names the last stream the server
//! will process, so the client knows which requests ran.
//!
//! # Why 250 ms
//!
//! The default comes from the restart bench (`benches/restart.rs`) with
//! SIGHUP upgrades, 10 upgrades per load, 32 workers, and
//! `LAMEDUCK_KEEPALIVE_GRACE` set per run. Failed requests per upgrade:
//!
//! | `--keepalive-grace` | back-to-back keep-alive | 10 ms think time | churn |
//! |---|---:|---:|---:|
//! | 0 (close idle connections at once) | 6.4 | 0.2 | 0.0 |
//! | 10ms | 0.0 | 2.6 | 0.0 |
//! | 50ms | 0.0 | 0.0 | 0.0 |
//! | 250ms | 0.0 | 0.0 | 0.0 |
//!
//! A grace shorter than the clients' pause between requests only moves
//! the race to the end of the grace (10 ms against a 10 ms think time is
//! worse than none). 250 ms covers clients that pause for up to about a
//! fifth of a second, and it is also the most a drain waits for
//! connections that are only pooled, not used: a drain of 10,000
//! connections all used within the last 250 ms takes 250 ms.

use std::time::{Duration, Instant};

use crate::http1_state::Activity;
use crate::shutdown::spread::Spread;

/// In the drain: when to close a connection that is in `activity` since
/// `since`, if it is idle. `None` while it is busy or reading a head: its
/// response will carry `Connection: close`.
///
/// A connection already dormant when the drain began (idle for longer
/// than the grace) closes at once; a live one at the later of its grace's
/// end and its own instant in the spread (`key` names it there).
pub fn close_at(
    activity: Activity,
    since: Instant,
    grace: Duration,
    spread: &Spread,
    key: u64,
) -> Option<Instant> {
    if activity != Activity::Idle {
        return None;
    }
    let end = since + grace;
    Some(match spread.started() {
        Some(start) if end <= start => end,
        _ => end.max(spread.instant_for(key)),
    })
}
