//! The storm bench's figures: what one restart's reconnects look like, a
//! row of restarts, and the tables they print as.

use std::time::Duration;

use serde::Serialize;

use super::crowd::{Failures, Kind, Reconnect};
use super::netstat::ListenCounters;

/// The width of the window the peak is counted in.
pub const PEAK_WINDOW: Duration = Duration::from_millis(10);

/// The p99 of `latencies`, in milliseconds (0 if there are none).
fn p99(latencies: impl Iterator<Item = Duration>) -> f64 {
    let mut of: Vec<Duration> = latencies.collect();
    of.sort();
    match of.len() {
        0 => 0.0,
        n => ms(of[((n - 1) as f64 * 0.99).round() as usize]),
    }
}

/// One restart's reconnects, summed up.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Wave {
    pub reconnects: usize,
    /// From the goodbye to the new connection's first answer.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Reconnects of 1 s or more: each is a SYN the kernel dropped (or a
    /// connect that waited as long for another reason).
    pub over_1s: usize,
    /// From the first goodbye to the last reconnect's connect.
    pub span_ms: f64,
    /// The most reconnects begun in any [`PEAK_WINDOW`], and the mean per
    /// window over the span: their ratio is how bursty the wave was (1:
    /// perfectly even).
    pub peak_10ms: usize,
    pub mean_10ms: f64,
    pub peak_to_mean: f64,
    /// The p99 again, for each kind alone: keep-alive, event streams,
    /// WebSockets.
    pub p99_by_kind_ms: [f64; 3],
}

impl Wave {
    pub fn of(reconnects: &[Reconnect]) -> Wave {
        if reconnects.is_empty() {
            return Wave::default();
        }
        let mut latencies: Vec<Duration> = reconnects.iter().map(Reconnect::latency).collect();
        latencies.sort();
        let pick = |q: f64| ms(latencies[((latencies.len() - 1) as f64 * q).round() as usize]);
        let start = reconnects.iter().map(|r| r.goodbye).min().unwrap();
        let end = reconnects.iter().map(|r| r.connect).max().unwrap();
        let span = (end - start).max(PEAK_WINDOW);
        let windows = span.as_nanos().div_ceil(PEAK_WINDOW.as_nanos()) as usize;
        let mut counts = vec![0usize; windows + 1];
        for r in reconnects {
            let i = ((r.connect - start).as_nanos() / PEAK_WINDOW.as_nanos()) as usize;
            counts[i.min(windows)] += 1;
        }
        let peak = counts.iter().copied().max().unwrap_or(0);
        let mut p99_by_kind_ms = [0.0; 3];
        for kind in [Kind::KeepAlive, Kind::Stream, Kind::Socket] {
            p99_by_kind_ms[kind as usize] = p99(reconnects
                .iter()
                .filter(|r| r.kind == kind)
                .map(Reconnect::latency));
        }
        let mean = reconnects.len() as f64 / windows as f64;
        Wave {
            reconnects: reconnects.len(),
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
            max_ms: ms(*latencies.last().unwrap()),
            over_1s: latencies
                .iter()
                .filter(|&&l| l >= Duration::from_secs(1))
                .count(),
            span_ms: ms(span),
            peak_10ms: peak,
            mean_10ms: round(mean),
            peak_to_mean: round(peak as f64 / mean),
            p99_by_kind_ms,
        }
    }
}

/// One restart of a storm row.
#[derive(Debug, Clone, Serialize)]
pub struct StormRestart {
    pub syn: Option<ListenCounters>,
    pub wave: Wave,
    pub failures: Failures,
    /// How the process that went ended.
    pub old_exit: String,
    /// From the signal to its exit (and, for the pair, its successor
    /// listening).
    pub took_ms: f64,
}

/// One storm row.
#[derive(Debug, Clone, Serialize)]
pub struct StormRow {
    /// `storm_inplace_spread0s_c10000`, …
    pub name: String,
    pub clients: usize,
    pub spread: String,
    pub backlog: u32,
    /// Over every restart: SYN drops, the reconnects' figures (the peak
    /// ratio is the worst restart's), failures.
    pub listen_overflows: u64,
    pub listen_drops: u64,
    pub wave: Wave,
    pub failures: Failures,
    pub items_created: usize,
    /// The p99 again, split by when the reconnect began: within
    /// [`NEAR_ITEM`] after an item was created (while the hub sends it to
    /// every WebSocket client), and the others; and how many were near.
    pub p99_near_items_ms: f64,
    pub p99_apart_ms: f64,
    pub near_items: usize,
    pub restarts: Vec<StormRestart>,
    pub error: Option<String>,
}

/// How long after an item's creation a reconnect counts as near it: the
/// feed reads the store at most 100 ms after a write, and the fan-out to
/// ten thousand clients takes about as long again.
pub const NEAR_ITEM: Duration = Duration::from_millis(300);

impl StormRow {
    /// The row's figures from all its reconnects, and the instants its
    /// items were created (`items`, in order).
    pub fn sum_up(&mut self, all: &[Reconnect], items: &[tokio::time::Instant]) {
        self.wave = Wave::of(all);
        let near = |r: &&Reconnect| {
            // The last item created before this reconnect began.
            let i = items.partition_point(|&at| at <= r.connect);
            i > 0 && r.connect - items[i - 1] < NEAR_ITEM
        };
        let (near, apart): (Vec<&Reconnect>, Vec<&Reconnect>) = all.iter().partition(near);
        self.near_items = near.len();
        self.p99_near_items_ms = p99(near.iter().map(|r| r.latency()));
        self.p99_apart_ms = p99(apart.iter().map(|r| r.latency()));
        // The ratio of the whole row would mix restarts seconds apart:
        // the worst single restart's is the one that matters.
        self.wave.peak_to_mean = self
            .restarts
            .iter()
            .map(|r| r.wave.peak_to_mean)
            .fold(0.0, f64::max);
        self.wave.peak_10ms = self
            .restarts
            .iter()
            .map(|r| r.wave.peak_10ms)
            .max()
            .unwrap_or(0);
        self.wave.span_ms = self
            .restarts
            .iter()
            .map(|r| r.wave.span_ms)
            .fold(0.0, f64::max);
        self.wave.mean_10ms = 0.0;
        let syn: Vec<ListenCounters> = self.restarts.iter().filter_map(|r| r.syn).collect();
        self.listen_overflows = syn.iter().map(|s| s.overflows).sum();
        self.listen_drops = syn.iter().map(|s| s.drops).sum();
    }
}

/// The backlog burst: `connects` clients connecting at once to a fresh
/// server.
#[derive(Debug, Clone, Serialize)]
pub struct BurstRow {
    pub name: String,
    pub backlog: u32,
    pub connects: usize,
    pub syn: Option<ListenCounters>,
    /// From the connect to the response, per client.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub over_1s: usize,
    /// From the first connect to the last.
    pub connect_span_ms: f64,
    pub failed: u64,
    pub error: Option<String>,
}

/// The rebalancing row: two instances behind HAProxy in `mode tcp`.
#[derive(Debug, Clone, Serialize)]
pub struct RebalanceRow {
    pub name: String,
    pub clients: usize,
    pub max_connection_age: String,
    pub grace: String,
    /// Connections on each server just before the restart.
    pub before: (u64, u64),
    /// Seconds from the SIGTERM until the restarted instance was `UP`.
    pub up_after_s: Option<f64>,
    /// Seconds from the SIGTERM until the busier server had at most 1.2x
    /// the other's connections, and kept it until the end; `None`: not
    /// within the observation.
    pub rebalanced_after_s: Option<f64>,
    pub observed_s: f64,
    /// Connections on each server at the end of the observation.
    pub after: (u64, u64),
    pub failures: Failures,
    /// `(seconds after the SIGTERM, restarted, other)`, every second.
    pub samples: Vec<(f64, u64, u64)>,
    pub error: Option<String>,
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Figures {
    pub machine: String,
    pub date: String,
    pub quick: bool,
    pub somaxconn: Option<u32>,
    pub nofile: u64,
    pub bursts: Vec<BurstRow>,
    pub storms: Vec<StormRow>,
    pub rebalances: Vec<RebalanceRow>,
}

impl Figures {
    pub fn table(&self) -> String {
        let mut out = format!(
            "storm: {} on {}{}; somaxconn {}, RLIMIT_NOFILE {}\n",
            self.date,
            self.machine,
            if self.quick {
                " (quick: not a measurement)"
            } else {
                ""
            },
            self.somaxconn.map_or("?".into(), |n| n.to_string()),
            self.nofile,
        );
        if !self.bursts.is_empty() {
            out.push_str("\nburst: N connects at once to a fresh server\n");
            out.push_str(&format!(
                "{:<28} {:>7} {:>6} {:>6} {:>8} {:>8} {:>8} {:>5} {:>8} {:>6}\n",
                "row",
                "backlog",
                "ovfl",
                "drops",
                "p50 ms",
                "p99 ms",
                "max ms",
                ">1s",
                "span ms",
                "failed"
            ));
            for b in &self.bursts {
                let (o, d) = syn_cells(b.syn);
                out.push_str(&format!(
                    "{:<28} {:>7} {:>6} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>5} {:>8.1} {:>6}{}\n",
                    b.name,
                    b.backlog,
                    o,
                    d,
                    b.p50_ms,
                    b.p99_ms,
                    b.max_ms,
                    b.over_1s,
                    b.connect_span_ms,
                    b.failed,
                    error_cell(&b.error)
                ));
            }
        }
        if !self.storms.is_empty() {
            out.push_str("\nstorm: every restart of each row, summed (peak/mean and span: the worst restart)\n");
            out.push_str(&format!(
                "{:<36} {:>6} {:>6} {:>7} {:>7} {:>8} {:>11} {:>8} {:>5} {:>7} {:>6} {:>9} {:>6} {:>5} {:>4}\n",
                "row",
                "ovfl",
                "drops",
                "reconn",
                "p50 ms",
                "p99 ms",
                "near/apart",
                "max ms",
                ">1s",
                "span",
                "peak",
                "peak/mean",
                "failed",
                "lost",
                "dup"
            ));
            for s in &self.storms {
                out.push_str(&format!(
                    "{:<36} {:>6} {:>6} {:>7} {:>7.1} {:>8.1} {:>11} {:>8.1} {:>5} {:>7.0} {:>6} {:>9.1} {:>6} {:>5} {:>4}{}\n",
                    s.name,
                    s.listen_overflows,
                    s.listen_drops,
                    s.wave.reconnects,
                    s.wave.p50_ms,
                    s.wave.p99_ms,
                    format!("{:.0}/{:.0}", s.p99_near_items_ms, s.p99_apart_ms),
                    s.wave.max_ms,
                    s.wave.over_1s,
                    s.wave.span_ms,
                    s.wave.peak_10ms,
                    s.wave.peak_to_mean,
                    s.failures.requests(),
                    s.failures.lost,
                    s.failures.duplicated,
                    error_cell(&s.error)
                ));
            }
        }
        if !self.rebalances.is_empty() {
            out.push_str("\nrebalance: two instances behind HAProxy (mode tcp), one restarted\n");
            out.push_str(&format!(
                "{:<34} {:>11} {:>8} {:>14} {:>10} {:>11} {:>6}\n",
                "row", "before", "up (s)", "≤1.2x at (s)", "observed", "after", "failed"
            ));
            for r in &self.rebalances {
                out.push_str(&format!(
                    "{:<34} {:>11} {:>8} {:>14} {:>10.1} {:>11} {:>6}{}\n",
                    r.name,
                    format!("{}/{}", r.before.0, r.before.1),
                    r.up_after_s.map_or("-".into(), |s| format!("{s:.1}")),
                    r.rebalanced_after_s
                        .map_or("never".into(), |s| format!("{s:.1}")),
                    r.observed_s,
                    format!("{}/{}", r.after.0, r.after.1),
                    r.failures.requests(),
                    error_cell(&r.error)
                ));
            }
        }
        out
    }

    pub fn write_json(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)?)
    }
}

fn syn_cells(syn: Option<ListenCounters>) -> (String, String) {
    match syn {
        Some(s) => (s.overflows.to_string(), s.drops.to_string()),
        None => ("-".into(), "-".into()),
    }
}

fn error_cell(error: &Option<String>) -> String {
    error
        .as_ref()
        .map_or(String::new(), |e| format!("  ERROR: {e}"))
}

pub fn ms(d: Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0)
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
