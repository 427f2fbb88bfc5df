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
//! * **dormant, idle for longer than the grace** (`--keepalive-grace`)
//!   when the drain begins: closed at once, outside the drain's spread
//!   (`shutdown::spread`). Its client is not in the middle of anything,
//!   and a pooled client opens a new connection only when it next has a
//!   request, at a time of its own; a thousand such connections do not
//!   delay the exit.
//! * **live, used within the grace**, or **busy** with a request: kept
//!   open. The next response on it carries `Connection: close` (the
//!   service adds it to every HTTP/1 response once the drain has begun,
//!   at the connection's instant in the spread), so the client learns,
//!   with a response in hand, to open its next request elsewhere. If it
//!   stays idle until its grace ends and its instant has come, it is
//!   closed then.
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
//! # Why 2 s
//!
//! A grace shorter than the clients' pause between requests only moves
//! the race to the end of the grace. The first measurement came from the
//! restart bench (`benches/restart.rs`) with SIGHUP upgrades, 10 upgrades
//! per load, 32 workers, and `LAMEDUCK_KEEPALIVE_GRACE` set per run.
//! Failed requests per upgrade:
//!
//! | `--keepalive-grace` | back-to-back keep-alive | 10 ms think time | churn |
//! |---|---:|---:|---:|
//! | 0 (close idle connections at once) | 6.4 | 0.2 | 0.0 |
//! | 10ms | 0.0 | 2.6 | 0.0 |
//! | 50ms | 0.0 | 0.0 | 0.0 |
//! | 250ms | 0.0 | 0.0 | 0.0 |
//!
//! (10 ms against a 10 ms think time is worse than none.) That chose
//! 250 ms, for clients that pause up to a fifth of a second. Clients that
//! pause for a second, a dashboard or a poller, still raced it, and
//! through a balancer the race widens: HAProxy's hop stands between the
//! server's FIN and the client seeing it, so the client's own check of
//! its socket before reuse comes too late. The storm bench's rebalancing
//! rows (`cargo bench --bench storm -- --only rebalance`: 2,000 clients
//! sending every 0.8–1.2 s through HAProxy `mode tcp`, one of two
//! instances restarted), broken keep-alive requests per row, without and
//! with `--max-connection-age 10s`:
//!
//! | `--keepalive-grace` | age off | age 10s |
//! |---|---:|---:|
//! | 250ms | 6, 6 | 10, 11 |
//! | 1s | 3 | 12 |
//! | **2s** | **0, 0** | **0, 0** |
//!
//! At 2 s every such client gets its goodbye on a response, none on a
//! FIN. The grace is also the line between live and dormant, and the most
//! a drain waits for a connection that was used and then fell silent: a
//! server whose pool was used a second before the signal exits 2 s
//! later; one whose connections are all dormant exits at once.

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
