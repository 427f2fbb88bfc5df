//! `--drain-checks`: leaving the lame-duck phase once the load balancers
//! have seen this server fail, rather than after a blind sleep.
//!
//! The article's recipe behind a balancer is: fail the health check, sleep
//! a few seconds, then shut down. The sleep is a guess: too short and the
//! balancer still sends requests to a closed port; too long and every
//! deploy waits for nothing. But the balancer says when it has seen the
//! server fail: its health checks arrive here. A balancer marks a server
//! down after `fall` failed checks in a row (HAProxy's `fall`, Kubernetes'
//! `failureThreshold`, a cloud balancer's unhealthy threshold), so once
//! every balancer has been answered `503` that many times, it has stopped
//! sending new requests.
//!
//! # Who is a checker
//!
//! A checker is a peer **IP address** that probed `/healthz` within
//! [`CHECKER_WINDOW`] before the first signal. The window covers the
//! common check intervals (HAProxy's default 2 s, Kubernetes' 10 s) with
//! a missed check or two to spare. The address, not the address and port:
//! a checker opens a new connection per check, from a new port each time.
//!
//! Several balancers on several hosts are several checkers, and the phase
//! waits for all of them. Several check processes on *one* host (HAProxy
//! with several processes, two balancers side by side) share an address:
//! their checks add up, so `--drain-checks` should then be their `fall`
//! times their number. A client that polls `/healthz` without being a
//! balancer also counts as one; the cap (`--drain-delay`) bounds what it
//! can cost.
//!
//! # Leaving the phase
//!
//! Once every checker has been answered `503` `N` times, the phase waits
//! [`DECISION_MARGIN`] more, for the balancer to act on what it just
//! learned, and ends. `--drain-delay` stays the cap, and it is the whole
//! wait when `N` is 0 or no checker was seen.
//!
//! # What it costs
//!
//! Nothing unless it can matter: with `--drain-delay 0s` (the default) or
//! `--drain-checks 0`, no peer is recorded and `/healthz` pays one branch.
//! Otherwise each `/healthz` takes a lock for a map lookup; the benchmarks
//! hit `/healthz` tens of thousands of times a second, balancers a few
//! times a second.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How recently before the first signal a peer must have probed `/healthz`
/// to count as a checker.
pub(crate) const CHECKER_WINDOW: Duration = Duration::from_secs(30);

/// How long the lame-duck phase goes on after the last checker's last
/// needed `503`: the balancer marks the server down when it reads that
/// answer, and then has to stop picking it for new requests, across its
/// threads (HAProxy applies the state change at once; a cloud balancer
/// may take longer, and there the cap is the answer). Requests it picked
/// just before are already on their way and are served in the drain.
pub const DECISION_MARGIN: Duration = Duration::from_millis(200);

/// The most peers remembered at once. Beyond it new peers are not
/// recorded: a flood of probes from many addresses cannot grow the map,
/// and the cap still bounds the phase.
const MAX_PEERS: usize = 1024;

/// The health checkers seen, and their failed checks once the lame-duck
/// phase has begun.
#[derive(Debug)]
pub struct HealthCheckers {
    /// `--drain-checks`; 0 when counting cannot matter (see the module
    /// docs), which switches all of this off.
    needed: u32,
    state: Mutex<State>,
    /// Woken when the last checker has had its `needed` failures.
    all_failed: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Running phase: when each peer last probed.
    seen: HashMap<IpAddr, Instant>,
    /// Lame-duck phase: the checkers, and the `503`s each has had.
    failing: Option<HashMap<IpAddr, u32>>,
}

impl HealthCheckers {
    /// Counts `needed` failed checks per checker when a lame-duck phase of
    /// up to `cap` is to be cut short; does nothing if either is zero.
    pub fn new(needed: u32, cap: Duration) -> Self {
        HealthCheckers {
            needed: if cap.is_zero() { 0 } else { needed },
            state: Mutex::default(),
            all_failed: Notify::new(),
        }
    }

    /// Whether probes are counted at all: if not, the service need not
    /// even know who its peers are.
    pub fn enabled(&self) -> bool {
        self.needed > 0
    }

    /// `peer` probed `/healthz`; `failed` says it was answered `503`.
    pub fn probed(&self, peer: IpAddr, failed: bool) {
        if !self.enabled() {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let State { seen, failing } = &mut *state;
        match (failing, failed) {
            (None, false) if seen.len() < MAX_PEERS || seen.contains_key(&peer) => {
                seen.insert(peer, Instant::now());
            }
            (Some(failing), true) => {
                if let Some(count) = failing.get_mut(&peer) {
                    *count += 1;
                    if failing.values().all(|&n| n >= self.needed) {
                        self.all_failed.notify_waiters();
                    }
                }
            }
            // A `503` before the phase began, or a `200` after: neither
            // says anything about a balancer's decision.
            _ => {}
        }
    }

    /// The lame-duck phase begins: the peers that probed within
    /// [`CHECKER_WINDOW`] are the checkers to wait for. Returns how many.
    /// Called before `/healthz` starts failing, so that no failed check is
    /// missed.
    pub fn begin_lame_duck(&self) -> usize {
        if !self.enabled() {
            return 0;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let failing: HashMap<IpAddr, u32> = state
            .seen
            .iter()
            .filter(|(_, at)| now.duration_since(**at) <= CHECKER_WINDOW)
            .map(|(peer, _)| (*peer, 0))
            .collect();
        let n = failing.len();
        state.failing = Some(failing);
        n
    }

    /// Resolves once every checker has been answered `503` `needed` times.
    /// Never resolves if there is no checker (or counting is off): then
    /// the cap decides.
    pub async fn all_failed(&self) {
        loop {
            // Registered before the check, so a notification between the
            // two is not lost.
            let notified = self.all_failed.notified();
            {
                let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(failing) = &state.failing
                    && !failing.is_empty()
                    && failing.values().all(|&n| n >= self.needed)
                {
                    return;
                }
            }
            notified.await;
        }
    }
}
