//! [`Spread`]: the drain's goodbyes spread over a window, so that the
//! clients of a restarted server do not all reconnect in the same
//! millisecond (`--drain-spread`).
//!
//! When the drain begins, every connection is told to go: idle keep-alive
//! connections close, event streams send their last event, WebSockets get
//! their Close. All at once, their clients all reconnect at once, and
//! past what the listen backlog and the accept loop absorb the kernel
//! drops SYNs, each of which costs its client a 1 s retransmission
//! (RFC 6298). Spread over a window, the same reconnects arrive at a rate
//! the next process takes.
//!
//! Each goodbye draws its own instant, uniform over the window from the
//! drain's start ([`Spread::instant`]). A busy HTTP/1 connection draws
//! anew for each response, which makes the chance that a response carries
//! `Connection: close` ramp from 0 to 1 over the window (Envoy's
//! `--drain-strategy gradual`). HAProxy's `close-spread-time` is the same
//! idea for idle connections.
//!
//! The window is `--drain-spread`, shrunk in proportion when fewer than
//! [`FULL_SPREAD_AT`] connections are open at the drain: a quiet server has
//! no crowd to spread and still exits at once.
//! A second signal (the forced close) skips what is left of it: every
//! wait on an instant also races the forced close.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// From this many connections open at the drain on, the window is the
/// whole `--drain-spread`; below it, that share of it (ten connections:
/// a tenth).
pub const FULL_SPREAD_AT: u64 = 100;

/// The drain's goodbye window. One per server, in its `ShutdownState`.
#[derive(Debug, Default)]
pub struct Spread {
    /// When the drain began; unset before.
    start: OnceLock<Instant>,
    /// The window's length in nanoseconds (0: all at once).
    window: AtomicU64,
    /// Draws so far, for the next draw's key.
    draws: AtomicU64,
    /// The earliest and the latest instant drawn, in nanoseconds after
    /// `start`, for the report (`u64::MAX` and 0 while none is).
    first: AtomicU64,
    last: AtomicU64,
}

impl Spread {
    /// The drain begins now, with `open` connections and at most `max`
    /// of window.
    pub(crate) fn begin(&self, max: Duration, open: u64) {
        // Set once: a server's drain begins once.
        let _ = self.start.set(Instant::now());
        let share = open.min(FULL_SPREAD_AT) as u128;
        let window = max.as_nanos() * share / FULL_SPREAD_AT as u128;
        self.window.store(window as u64, Relaxed);
        self.first.store(u64::MAX, Relaxed);
    }

    /// The window, as it was set when the drain began.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.window.load(Relaxed))
    }

    /// An instant of its own for one goodbye, uniform over the window.
    /// Before the drain (no window yet), now.
    pub fn instant(&self) -> Instant {
        let key = self.draws.fetch_add(1, Relaxed);
        self.instant_for(key)
    }

    /// The instant of the goodbye named `key` (the same key, the same
    /// instant): for a connection that asks more than once.
    pub fn instant_for(&self, key: u64) -> Instant {
        let Some(&start) = self.start.get() else {
            return Instant::now();
        };
        let window = self.window.load(Relaxed);
        if window == 0 {
            return start;
        }
        let offset = fraction(key, window);
        self.first.fetch_min(offset, Relaxed);
        self.last.fetch_max(offset, Relaxed);
        start + Duration::from_nanos(offset)
    }

    /// A draw in `0..range`, for a jitter of its own (an event stream's
    /// `retry:`).
    pub fn draw(&self, range: u64) -> u64 {
        fraction(self.draws.fetch_add(1, Relaxed), range)
    }

    /// True if a goodbye drawn now is due: the chance that a busy
    /// connection's response is its last, ramping from 0 at the drain's
    /// start to 1 at the window's end.
    pub fn due_now(&self) -> bool {
        self.instant() <= Instant::now()
    }

    /// The earliest and the latest goodbye drawn, after the drain's
    /// start; `None` if none was.
    pub fn drawn(&self) -> Option<(Duration, Duration)> {
        let first = self.first.load(Relaxed);
        (first != u64::MAX).then(|| {
            (
                Duration::from_nanos(first),
                Duration::from_nanos(self.last.load(Relaxed)),
            )
        })
    }
}

/// The `key`-th point of the same sequence, in `0.0..1.0`: for jitter.
pub fn unit(key: u64) -> f64 {
    (fraction(key, 1 << 53) as f64) / (1u64 << 53) as f64
}

/// The `key`-th point of a well-mixed sequence, scaled to `0..window`:
/// splitmix64, whose outputs are evenly spread even for consecutive keys.
fn fraction(key: u64, window: u64) -> u64 {
    let mut z = key.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z as u128 * window as u128) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The draws cover the window evenly: a thousand of them fall in
    /// every tenth of it, and none outside it.
    #[test]
    fn the_draws_cover_the_window_evenly() {
        let window = 1_000_000;
        let mut tenths = [0; 10];
        for key in 0..10_000 {
            let f = fraction(key, window);
            assert!(f < window);
            tenths[(f * 10 / window) as usize] += 1;
        }
        assert!(
            tenths.iter().all(|&n| (800..1200).contains(&n)),
            "{tenths:?}"
        );
    }

    /// A crowd gets the whole window; a few connections a share of it.
    #[test]
    fn the_window_shrinks_with_the_connections_open() {
        let s = Spread::default();
        s.begin(Duration::from_secs(1), 100_000);
        assert_eq!(s.window(), Duration::from_secs(1));
        let s = Spread::default();
        s.begin(Duration::from_secs(1), 10);
        assert_eq!(s.window(), Duration::from_millis(100));
        let s = Spread::default();
        s.begin(Duration::from_secs(1), 0);
        assert_eq!(s.window(), Duration::ZERO);
    }
}
