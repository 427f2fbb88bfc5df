//! The figures one run produces, the table printed from them, the JSON
//! written from them, and the targets they are checked against.

use std::fmt::Write;
use std::path::Path;

use serde::Serialize;

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Figures {
    pub machine: String,
    pub date: String,
    pub quick: bool,
    /// A B A B … rounds per load figure.
    pub rounds: usize,
    /// Seconds per load run.
    pub run_secs: f64,
    /// `http1_churn_c*` and `http1_keepalive_c64`.
    pub load: Vec<LoadFigure>,
    /// `None` when a phase was skipped (`--only`).
    pub drain_idle: Option<DrainFigure>,
    pub mem_idle: Option<MemIdleFigure>,
    pub mem_churn: Option<MemChurnFigure>,
}

/// A throughput figure, A beside B.
#[derive(Debug, Serialize)]
pub struct LoadFigure {
    pub name: String,
    /// `conn/s` (churn) or `req/s` (keep-alive).
    pub unit: &'static str,
    pub a: Side,
    pub b: Side,
    /// Median rate of A over median rate of B: 1.0 is parity.
    pub ratio: f64,
    /// A over B in each round (A and B ran back to back): the spread of
    /// these says how much of a gap is the machine's noise.
    pub round_ratios: Vec<f64>,
}

impl LoadFigure {
    /// `a`'s and `b`'s runs, paired by round.
    pub fn new(name: String, unit: &'static str, a: Side, b: Side) -> Self {
        let round_ratios = a.runs.iter().zip(&b.runs).map(|(a, b)| a / b).collect();
        LoadFigure {
            name,
            unit,
            ratio: a.rate / b.rate,
            round_ratios,
            a,
            b,
        }
    }
}

/// `min–max` of `runs`, to `decimals` places.
fn spread(runs: &[f64], decimals: usize) -> String {
    let min = runs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if runs.is_empty() {
        return "-".to_owned();
    }
    format!("{min:.decimals$}–{max:.decimals$}")
}

/// Half the range of `runs` over their median, in percent: `±x %`, how far
/// the rounds strayed.
pub fn plus_minus_pct(runs: &[f64]) -> f64 {
    if runs.is_empty() {
        return 0.0;
    }
    let min = runs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sorted = runs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    50.0 * (max - min) / median
}

/// One server's medians over its runs of one figure.
#[derive(Debug, Default, Serialize)]
pub struct Side {
    /// Completed requests (= connections, for churn) per second.
    pub rate: f64,
    /// Median over runs of each run's latency percentile, µs. A churn
    /// request's latency runs from `connect` to EOF.
    pub p50_us: f64,
    pub p99_us: f64,
    /// CPU used by the server runtime's threads, in cores (CPU seconds
    /// per wall second).
    pub server_cpu: f64,
    /// The same for the client runtime: if it nears the core count, the
    /// client, not the server, is the limit.
    pub client_cpu: f64,
    /// The server's CPU time per unit (request or connection), µs: the
    /// median over runs of each run's server CPU over its count.
    pub cpu_us_per_unit: f64,
    /// Each run's server CPU µs per unit, in order.
    pub cpu_runs: Vec<f64>,
    /// Failed requests over all runs (should be 0).
    pub errors: u64,
    /// The rate of each run, in order.
    pub runs: Vec<f64>,
}

/// Time from the drain trigger until `run` returns, with idle keep-alive
/// connections open (server A only).
#[derive(Debug, Serialize)]
pub struct DrainFigure {
    pub name: String,
    pub conns: usize,
    /// Median over runs, ms.
    pub drain_ms: f64,
    pub runs_ms: Vec<f64>,
    /// The reference: B plus hyper-util's `GracefulShutdown` and nothing
    /// else, from the trigger until every connection task has ended. It
    /// is the floor for telling idle connections to close on this
    /// machine; A adds its own bookkeeping (reaping, report) on top.
    pub b_graceful_ms: f64,
    pub b_runs_ms: Vec<f64>,
    /// `drain_ms / b_graceful_ms`.
    pub ratio: f64,
    /// From the last run's shutdown report.
    pub outcome: String,
    pub connections_at_drain: usize,
    pub connections_drained: usize,
    pub connections_aborted: usize,
    /// Connections on which the client read EOF after the drain.
    pub closed_seen_by_client: usize,
}

/// Resident memory per idle keep-alive connection.
#[derive(Debug, Serialize)]
pub struct MemIdleFigure {
    pub name: String,
    pub conns: usize,
    /// Median over runs, bytes per connection.
    pub a_bytes: f64,
    pub b_bytes: f64,
    pub ratio: f64,
    pub a_runs: Vec<f64>,
    pub b_runs: Vec<f64>,
}

/// Server A's resident memory before and after many churned connections.
#[derive(Debug, Serialize)]
pub struct MemChurnFigure {
    pub name: String,
    pub conns: u64,
    pub warmup_conns: u64,
    pub rss_before: u64,
    pub rss_after: u64,
    /// `rss_after - rss_before`, bytes (negative if it shrank).
    pub growth: i64,
    pub errors: u64,
}

/// One target from the issue, checked.
#[derive(Debug)]
pub struct Target {
    pub what: String,
    pub value: String,
    pub goal: &'static str,
    pub met: bool,
}

impl Figures {
    /// The targets, as the README states them: lameduck costs nothing
    /// beside bare hyper. Churn (c16, c64) and keep-alive A/B ≥ 1.00
    /// (c1 is reported without one: one connection at a time is bound by
    /// latency, not by the server's work); idle memory A/B ≤ 1.03; the
    /// drain of idle connections no slower than bare hyper with hyper-util's
    /// graceful watcher, in the same run; churn growth ≤ 2 MiB. They are
    /// printed as they are, met or MISSED.
    pub fn targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        for f in &self.load {
            if f.name.ends_with("_c1") {
                continue;
            }
            out.push(Target {
                what: format!("{} A/B", f.name),
                value: format!("{:.3}", f.ratio),
                goal: ">= 1.00",
                met: f.ratio >= 1.0,
            });
        }
        if let Some(d) = &self.drain_idle {
            out.push(Target {
                what: d.name.clone(),
                value: format!("{:.1} ms", d.drain_ms),
                goal: "<= B",
                met: d.drain_ms <= d.b_graceful_ms,
            });
        }
        if let Some(m) = &self.mem_idle {
            out.push(Target {
                what: format!("{} A/B", m.name),
                value: format!("{:.3}", m.ratio),
                goal: "<= 1.03",
                met: m.ratio <= 1.03,
            });
        }
        if let Some(c) = &self.mem_churn {
            out.push(Target {
                what: c.name.clone(),
                value: format!("{:.2} MiB", c.growth as f64 / MIB),
                goal: "<= 2 MiB",
                met: c.growth as f64 <= 2.0 * MIB,
            });
        }
        out
    }

    /// The table printed on stdout.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "lameduck churn bench: {} | {} | {} rounds A B A B x {:.1} s{}",
            self.machine,
            self.date,
            self.rounds,
            self.run_secs,
            if self.quick {
                " | QUICK (not a measurement)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            t,
            "A = lameduck::Server (defaults), B = bare hyper http1 loop; medians; \
             rounds = spread of A/B per round (of A, B for memory and drain); \
             ±% = half the range of the rounds over their median, of A, of B, of A/B; \
             cpu in cores (server/client), and the server's CPU µs per unit\n"
        );
        let _ = writeln!(
            t,
            "{:<22} {:>7} {:>10} {:>10} {:>6} {:>13} {:>15}  {:>15} {:>15}  {:>11} {:>11} {:>22}  {:>6}",
            "figure",
            "unit",
            "A",
            "B",
            "A/B",
            "rounds",
            "±% A/B/ratio",
            "A p50/p99 µs",
            "B p50/p99 µs",
            "A cpu s/c",
            "B cpu s/c",
            "cpu µs A/B",
            "errors"
        );
        for f in &self.load {
            let _ = writeln!(
                t,
                "{:<22} {:>7} {:>10.0} {:>10.0} {:>6.3} {:>13} {:>15}  {:>15} {:>15}  {:>11} {:>11} {:>22}  {:>6}",
                f.name,
                f.unit,
                f.a.rate,
                f.b.rate,
                f.ratio,
                spread(&f.round_ratios, 3),
                format!(
                    "{:.1}/{:.1}/{:.1}",
                    plus_minus_pct(&f.a.runs),
                    plus_minus_pct(&f.b.runs),
                    plus_minus_pct(&f.round_ratios)
                ),
                format!("{:.0}/{:.0}", f.a.p50_us, f.a.p99_us),
                format!("{:.0}/{:.0}", f.b.p50_us, f.b.p99_us),
                format!("{:.2}/{:.2}", f.a.server_cpu, f.a.client_cpu),
                format!("{:.2}/{:.2}", f.b.server_cpu, f.b.client_cpu),
                format!(
                    "{:.2}/{:.2} ±{:.0}/{:.0}%",
                    f.a.cpu_us_per_unit,
                    f.b.cpu_us_per_unit,
                    plus_minus_pct(&f.a.cpu_runs),
                    plus_minus_pct(&f.b.cpu_runs)
                ),
                f.a.errors + f.b.errors,
            );
        }
        if let Some(m) = &self.mem_idle {
            let _ = writeln!(
                t,
                "{:<22} {:>7} {:>10.0} {:>10.0} {:>6.3}  (RSS delta / {} idle keep-alive conns; A {}, B {})",
                m.name,
                "B/conn",
                m.a_bytes,
                m.b_bytes,
                m.ratio,
                m.conns,
                spread(&m.a_runs, 0),
                spread(&m.b_runs, 0)
            );
        }
        if let Some(d) = &self.drain_idle {
            let _ = writeln!(
                t,
                "{:<22} {:>7} {:>10.1} {:>10.1} {:>6.3}  (A {}, B {}; B = bare loop + graceful watcher; {} conns: {}, {} drained, {} aborted, {} closes seen by client)",
                d.name,
                "ms",
                d.drain_ms,
                d.b_graceful_ms,
                d.ratio,
                spread(&d.runs_ms, 1),
                spread(&d.b_runs_ms, 1),
                d.conns,
                d.outcome,
                d.connections_drained,
                d.connections_aborted,
                d.closed_seen_by_client
            );
        }
        if let Some(c) = &self.mem_churn {
            let _ = writeln!(
                t,
                "{:<22} {:>7} {:>10.1} {:>10} {:>6}  (RSS {:.1} -> {:.1} MiB after {} warm-up conns; {} errors)",
                c.name,
                "KiB",
                c.growth as f64 / 1024.0,
                "-",
                "-",
                c.rss_before as f64 / MIB,
                c.rss_after as f64 / MIB,
                c.warmup_conns,
                c.errors
            );
        }
        let _ = writeln!(t, "\ntargets:");
        for target in self.targets() {
            let _ = writeln!(
                t,
                "  {:<28} {:>10}  {:<9} {}",
                target.what,
                target.value,
                target.goal,
                if target.met { "met" } else { "MISSED" }
            );
        }
        t
    }

    /// Writes the figures as JSON to `path`.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let file = std::fs::File::create(path)?;
        serde_json::to_writer_pretty(std::io::BufWriter::new(file), self)?;
        Ok(())
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// `10000` → `10k`, `200` → `200`: the count part of a figure's name.
pub fn count_name(n: u64) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}
