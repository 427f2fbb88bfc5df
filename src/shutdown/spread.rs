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
//! idea for idle connections. An idle keep-alive connection that was
//! already dormant when the drain began (unused for longer than
//! `--keepalive-grace`) draws nothing and closes at once: nobody is
//! waiting on it, and a pooled client reconnects only when it next has a
//! request (`conn::keepalive_grace`). So a server whose connections are
//! merely pooled exits at once, however many there are. The window is
//! still sized by every connection open at the drain, dormant ones too:
//! the server keeps no count of them, so where many are dormant the live
//! ones are spread more thinly than their number needs, never past
//! `--drain-spread`.
//!
//! How many goodbyes go at once, and how fast the rest follow, is a token
//! bucket ([`Pace`]): the first `--drain-spread-burst` of the connections
//! open at the drain (a share of the draws) go at once, because that many
//! reconnects are absorbed at once anyway; the others follow at
//! `--drain-spread-rate` a second, in a window never longer than
//! `--drain-spread`. At the defaults (500 at once, then 1000 a second, at
//! most 10 s) a server with a few hundred connections exits at once as it
//! always did, two thousand take 1.5 s and ten thousand 9.5 s. The rate is
//! how fast the next process (or the other instances) can take the
//! reconnects without queueing them; `benches/README.md` has the storm
//! bench's measurements that chose both numbers.
//! A second signal (the forced close) skips what is left of it: every
//! wait on an instant also races the forced close.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// How fast the drain's goodbyes go: `burst` of them at once, the rest at
/// `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub burst: u64,
    pub per_second: u32,
}

/// The share of draws that go at once is kept in 32 bits of fraction.
const SHARE_ONE: u64 = 1 << 32;

/// The drain's goodbye window. One per server, in its `ShutdownState`.
#[derive(Debug, Default)]
pub struct Spread {
    /// When the drain began; unset before.
    start: OnceLock<Instant>,
    /// The window's length in nanoseconds (0: all at once).
    window: AtomicU64,
    /// The share of the goodbyes that go at the window's start (the
    /// burst), out of [`SHARE_ONE`].
    at_once: AtomicU64,
    /// Draws so far, for the next draw's key.
    draws: AtomicU64,
    /// The earliest and the latest instant drawn, in nanoseconds after
    /// `start`, for the report (`u64::MAX` and 0 while none is).
    first: AtomicU64,
    last: AtomicU64,
}

impl Spread {
    /// The drain begins now, with `open` connections to say goodbye to
    /// at `pace`, in at most `max`.
    pub(crate) fn begin(&self, max: Duration, open: u64, pace: Pace) {
        // Set once: a server's drain begins once.
        let _ = self.start.set(Instant::now());
        let after_burst = open.saturating_sub(pace.burst) as u128;
        let at_rate = 1_000_000_000 * after_burst / pace.per_second.max(1) as u128;
        let window = at_rate.min(max.as_nanos());
        let at_once = match open {
            0 => SHARE_ONE,
            open => (pace.burst.min(open) as u128 * SHARE_ONE as u128 / open as u128) as u64,
        };
        self.at_once.store(at_once, Relaxed);
        self.window.store(window as u64, Relaxed);
        self.first.store(u64::MAX, Relaxed);
    }

    /// When the drain began; `None` before.
    pub fn started(&self) -> Option<Instant> {
        self.start.get().copied()
    }

    /// The window, as it was set when the drain began.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.window.load(Relaxed))
    }

    /// An instant of its own for one goodbye: the window's start for the
    /// burst's share of the draws, uniform over the window for the rest.
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
        let (u, at_once) = (fraction(key, SHARE_ONE), self.at_once.load(Relaxed));
        let offset = match u.checked_sub(at_once) {
            // One of the burst.
            None => 0,
            Some(rest) => (rest as u128 * window as u128 / (SHARE_ONE - at_once) as u128) as u64,
        };
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

    fn begun(max_s: u64, open: u64, burst: u64, per_second: u32) -> Spread {
        let s = Spread::default();
        let pace = Pace { burst, per_second };
        s.begin(Duration::from_secs(max_s), open, pace);
        s
    }

    /// The window is the time the goodbyes after the burst take at the
    /// rate, up to the cap: a crowd gets the whole cap, a few connections
    /// a moment, no more than the burst none at all.
    #[test]
    fn the_window_is_the_goodbyes_after_the_burst_at_the_rate_up_to_the_cap() {
        let window = |max, open, burst, rate| begun(max, open, burst, rate).window();
        assert_eq!(window(10, 100_000, 500, 1000), Duration::from_secs(10));
        assert_eq!(window(10, 2_000, 500, 1000), Duration::from_millis(1500));
        assert_eq!(window(10, 10, 0, 1000), Duration::from_millis(10));
        assert_eq!(window(10, 500, 500, 1000), Duration::ZERO);
        assert_eq!(window(10, 0, 0, 1000), Duration::ZERO);
        assert_eq!(window(0, 10_000, 0, 1000), Duration::ZERO);
    }

    /// The burst's share of the draws goes at the window's start; the
    /// others are spread over it evenly.
    #[test]
    fn the_burst_goes_at_once_and_the_rest_evenly() {
        // 2000 open, 500 at once: a quarter of the draws at the start,
        // the rest over 1.5 s.
        let s = begun(10, 2_000, 500, 1000);
        let start = *s.start.get().unwrap();
        let offsets: Vec<Duration> = (0..20_000).map(|k| s.instant_for(k) - start).collect();
        let at_once = offsets.iter().filter(|o| o.is_zero()).count();
        assert!(
            (4_500..5_500).contains(&at_once),
            "{at_once} of 20000 at once"
        );
        let mut thirds = [0; 3];
        for o in offsets.iter().filter(|o| !o.is_zero()) {
            assert!(*o < Duration::from_millis(1500), "{o:?}");
            thirds[(o.as_millis() / 500) as usize] += 1;
        }
        assert!(
            thirds.iter().all(|&n| (4_500..5_500).contains(&n)),
            "{thirds:?}"
        );
    }
}
