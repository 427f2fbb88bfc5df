//! A load generator for restarts: N workers send requests to one loopback
//! address while a server is restarted under them, and every request is
//! recorded with what became of it. The restart bench and the restart tests
//! both drive it.
//!
//! # Tour
//!
//! - [`Plan`]: where, how many workers, which [`Load`] and which [`Work`],
//!   and the bounds (a deadline, a timeout per step).
//! - [`run`]: starts the workers and returns their [`Record`] once the
//!   deadline passes or the stop token is cancelled.
//! - `client`: one worker's connection, the check made before reusing it,
//!   and one request on it.
//! - [`Verdict`]: what became of one request (ok, refused, reset, broken,
//!   non-2xx, timeout), decided in one place.
//! - [`Record`]: every request with the time it ended, the acknowledged
//!   creates, and the questions a caller asks afterwards: failures by
//!   class in a window or per time slice, and the longest gap between two
//!   successful responses.
//!
//! # The three loads
//!
//! | [`Load`] | what each worker does |
//! |---|---|
//! | `KeepAlive` | back-to-back requests on one kept-alive connection |
//! | `Think` | the same, with [`THINK_TIME`] between requests |
//! | `Churn` | a new connection per request, sent with `Connection: close` |
//!
//! On a kept-alive connection, a response with `Connection: close` ends it:
//! the worker reads until the server closes and opens a new connection for
//! its next request. That is not a failure; it is how a server tells a
//! client to go elsewhere without racing it.
//!
//! # What is not counted
//!
//! A kept-alive connection the server closed *before* the next request was
//! written is reopened, not counted: every real client checks a pooled
//! connection before reusing it (see `client`). What that check cannot see
//! is a close that crosses the request on the wire, and that is the race
//! the restart tests are about.
//!
//! Everything is bounded: [`run`] refuses anything but a loopback address,
//! every connect, write and response has [`Plan::step_timeout`], and the
//! workers stop at [`Plan::run_for`] or when the token is cancelled,
//! whichever comes first.

mod client;
mod record;
#[cfg(test)]
mod tests;
mod verdict;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use record::{Acked, Counts, Record};
pub use verdict::Verdict;

/// The pause between two requests of a [`Load::Think`] worker: a client
/// that does something with each answer before asking again, so its
/// connection sits idle for a moment between requests.
pub const THINK_TIME: Duration = Duration::from_millis(10);

/// How each worker uses its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Back-to-back requests on one kept-alive connection.
    KeepAlive,
    /// Keep-alive with [`THINK_TIME`] between requests.
    Think,
    /// A new connection per request (`Connection: close`).
    Churn,
}

impl Load {
    /// All three, in the order the bench reports them.
    pub const ALL: [Load; 3] = [Load::KeepAlive, Load::Think, Load::Churn];

    /// Its name in tables, JSON and test messages.
    pub fn name(self) -> &'static str {
        match self {
            Load::KeepAlive => "keepalive",
            Load::Think => "think",
            Load::Churn => "churn",
        }
    }
}

/// What each request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// `GET /api/items`: a read.
    List,
    /// `POST /api/items` with `{"name": "..."}`, a name unique to the run:
    /// a write. Every `201` is kept in [`Record::acked`], so a test can
    /// check afterwards that each acknowledged item exists.
    Create,
}

/// One run of load.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where to send it; must be a loopback address.
    pub addr: SocketAddr,
    pub load: Load,
    pub work: Work,
    /// Concurrent workers, each with at most one connection.
    pub workers: usize,
    /// The deadline: no request starts after this long.
    pub run_for: Duration,
    /// Bound on each connect, each request write and each response; past
    /// it the request is a [`Verdict::Timeout`].
    pub step_timeout: Duration,
    /// How long a worker waits after a failed request before its next one,
    /// as a client with retries would. Without it a worker facing a closed
    /// port would count thousands of refused connects a second, and the
    /// failure count would measure the client's loop, not the server.
    pub retry_pause: Duration,
    /// Requests answered [`Verdict::Ok`] so far, counted as they are
    /// answered and shared by every clone of the plan: the caller's view
    /// of the run while it runs (proof that the server answers *now*),
    /// where the [`Record`] only comes at the end.
    pub answered: Arc<AtomicU64>,
}

impl Plan {
    /// `workers` workers of `load` doing `GET /api/items` against `addr`
    /// for at most a minute, 5 s per step, 10 ms between a failure and the
    /// next try.
    pub fn new(addr: SocketAddr, load: Load, workers: usize) -> Plan {
        Plan {
            addr,
            load,
            work: Work::List,
            workers,
            run_for: Duration::from_secs(60),
            step_timeout: Duration::from_secs(5),
            retry_pause: Duration::from_millis(10),
            answered: Arc::default(),
        }
    }
}

/// Runs `plan` until its deadline or until `stop` is cancelled, and returns
/// what every worker saw. A request already under way when `stop` fires is
/// finished (within its step timeout) and recorded.
///
/// # Panics
///
/// If `plan.addr` is not a loopback address: this is a test tool.
pub async fn run(plan: &Plan, stop: CancellationToken) -> Record {
    assert!(
        plan.addr.ip().is_loopback(),
        "load goes to loopback addresses only, not {}",
        plan.addr
    );
    let started = Instant::now();
    let deadline = started + plan.run_for;
    let plan = Arc::new(plan.clone());
    let mut workers = JoinSet::new();
    for id in 0..plan.workers {
        let (plan, stop) = (plan.clone(), stop.clone());
        workers.spawn(worker::run(id, plan, started, deadline, stop));
    }
    let mut logs = Vec::with_capacity(plan.workers);
    while let Some(log) = workers.join_next().await {
        logs.push(log.expect("a load worker panicked"));
    }
    Record::new(started, Instant::now(), logs)
}
