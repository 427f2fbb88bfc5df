//! The figures: one row per set of lameduck flags, as a table to paste
//! into the README and as JSON.

use std::fmt::Write as _;
use std::path::Path;

use ::lameduck::testing::load::{Counts, Verdict};
use serde::Serialize;

use super::fleet::Restart;
use super::measure::median;

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Figures {
    pub machine: String,
    pub date: String,
    pub quick: bool,
    /// Instance restarts asked for per row, and load workers.
    pub restarts: usize,
    pub workers: usize,
    pub load: String,
    /// What the servers were asked for.
    pub uri: String,
    pub rows: Vec<Row>,
}

/// One set of flags, restarted again and again.
#[derive(Debug, Serialize)]
pub struct Row {
    /// `http1_haproxy_{flags}_{load}_c{workers}`.
    pub name: String,
    /// The lameduck flags of every instance.
    pub flags: String,
    /// Instance restarts done (fewer than asked if one failed).
    pub restarts: usize,
    /// Requests answered `2xx` through HAProxy over the whole row.
    pub ok: u64,
    /// Failed requests over the whole row, by class. HAProxy answers
    /// `503` for a request it could not deliver: `non_2xx`.
    pub failed: u64,
    pub refused: u64,
    pub reset: u64,
    pub broken: u64,
    pub non_2xx: u64,
    pub timeout: u64,
    /// `failed / restarts`.
    pub failed_per_restart: f64,
    /// The most failures in one restart's window.
    pub worst_restart: u64,
    /// SIGTERM → exit, ms: median, min, max.
    pub exit_ms: Spread,
    /// SIGTERM → HAProxy's `DOWN`, ms, over the restarts where it came
    /// before the exit; and how many those were.
    pub down_ms: Spread,
    pub down_before_exit: usize,
    /// The report's `lame_duck_ms`: median, min, max.
    pub lame_duck_ms: Spread,
    /// The report's `lame_duck_end` values and how often each came
    /// (empty for a lameduck whose report has no such field).
    pub lame_duck_end: Vec<(String, usize)>,
    /// `listening on` → back in rotation, ms.
    pub back_in_ms: Spread,
    /// Restarts whose old process did not exit 0.
    pub bad_exits: usize,
    pub per_restart: Vec<RestartFigure>,
    /// Why the row stopped early, if it did.
    pub error: Option<String>,
}

/// Median, min and max of a figure (NaN when there were none).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        let min = values.iter().copied().fold(f64::NAN, f64::min);
        let max = values.iter().copied().fold(f64::NAN, f64::max);
        Spread {
            median: median(values),
            min,
            max,
        }
    }

    /// `median (min–max)`, in seconds.
    fn secs(&self) -> String {
        if self.median.is_nan() {
            return "—".into();
        }
        format!(
            "{:.2} ({:.2}–{:.2})",
            self.median / 1e3,
            self.min / 1e3,
            self.max / 1e3
        )
    }
}

/// One instance restart: from its SIGTERM to the next one's.
#[derive(Debug, Serialize)]
pub struct RestartFigure {
    pub instance: usize,
    pub failed: u64,
    pub exit: String,
    pub exit_ms: f64,
    pub down_ms: Option<f64>,
    pub lame_duck_ms: Option<f64>,
    pub lame_duck_end: Option<String>,
    pub back_in_ms: f64,
}

impl RestartFigure {
    pub fn new(restart: &Restart, window: &Counts) -> RestartFigure {
        let stopped = &restart.stopped;
        RestartFigure {
            instance: restart.instance,
            failed: window.failed(),
            exit: format!("{:?}", stopped.exit),
            exit_ms: ms(stopped.took),
            down_ms: restart.marked_down.map(ms),
            lame_duck_ms: stopped.field("lame_duck_ms").and_then(|v| v.parse().ok()),
            lame_duck_end: stopped.field("lame_duck_end").map(str::to_owned),
            back_in_ms: ms(restart.back_in),
        }
    }
}

impl Row {
    /// A row from the whole run's tally and each restart's figures.
    pub fn new(
        name: String,
        flags: &[String],
        total: &Counts,
        per_restart: Vec<RestartFigure>,
        error: Option<String>,
    ) -> Row {
        let restarts = per_restart.len();
        let failed = total.failed();
        let all = |f: fn(&RestartFigure) -> Option<f64>| -> Vec<f64> {
            per_restart.iter().filter_map(f).collect()
        };
        let downs = all(|r| r.down_ms);
        let mut ends: Vec<(String, usize)> = Vec::new();
        for end in per_restart.iter().filter_map(|r| r.lame_duck_end.clone()) {
            match ends.iter_mut().find(|(e, _)| *e == end) {
                Some((_, n)) => *n += 1,
                None => ends.push((end, 1)),
            }
        }
        Row {
            name,
            flags: flags.join(" "),
            restarts,
            ok: total.ok,
            failed,
            refused: total.count(Verdict::Refused),
            reset: total.count(Verdict::Reset),
            broken: total.count(Verdict::Broken),
            non_2xx: total.count(Verdict::Non2xx),
            timeout: total.count(Verdict::Timeout),
            failed_per_restart: failed as f64 / restarts.max(1) as f64,
            worst_restart: per_restart.iter().map(|r| r.failed).max().unwrap_or(0),
            exit_ms: Spread::of(&all(|r| Some(r.exit_ms))),
            down_before_exit: downs.len(),
            down_ms: Spread::of(&downs),
            lame_duck_ms: Spread::of(&all(|r| r.lame_duck_ms)),
            lame_duck_end: ends,
            back_in_ms: Spread::of(&all(|r| Some(r.back_in_ms))),
            bad_exits: per_restart.iter().filter(|r| r.exit != "Code(0)").count(),
            per_restart,
            error,
        }
    }
}

pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Figures {
    /// The figures as Markdown tables (and a header line): what the README
    /// shows.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "lameduck rolling-restart bench behind HAProxy: {} | {} | {} restarts x {} {} workers on GET {}{}\n",
            self.machine,
            self.date,
            self.restarts,
            self.workers,
            self.load,
            self.uri,
            if self.quick {
                " | QUICK (not a measurement)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            t,
            "| flags | restarts | ok | failed/restart | worst restart | SIGTERM → exit (s) | SIGTERM → DOWN (s) | lame duck (s) | lame duck ended | exit ≠ 0 |"
        );
        let _ = writeln!(t, "|---|---:|---:|---:|---:|---|---|---|---|---:|");
        for r in &self.rows {
            let ends = if r.lame_duck_end.is_empty() {
                "—".to_owned()
            } else {
                let ends: Vec<String> = r
                    .lame_duck_end
                    .iter()
                    .map(|(e, n)| format!("{e} ×{n}"))
                    .collect();
                ends.join(", ")
            };
            let _ = writeln!(
                t,
                "| `{}` | {} | {} | {:.1} | {} | {} | {} ({}/{}) | {} | {} | {} |",
                r.flags,
                r.restarts,
                r.ok,
                r.failed_per_restart,
                r.worst_restart,
                r.exit_ms.secs(),
                r.down_ms.secs(),
                r.down_before_exit,
                r.restarts,
                r.lame_duck_ms.secs(),
                ends,
                r.bad_exits,
            );
        }
        let _ = writeln!(
            t,
            "\n| figure | refused | reset | broken | non-2xx | timeout | back in rotation (s) |"
        );
        let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---|");
        for r in &self.rows {
            let _ = writeln!(
                t,
                "| `{}` | {} | {} | {} | {} | {} | {} |",
                r.name,
                r.refused,
                r.reset,
                r.broken,
                r.non_2xx,
                r.timeout,
                r.back_in_ms.secs()
            );
        }
        for r in self.rows.iter().filter(|r| r.error.is_some()) {
            let error = r.error.as_deref().unwrap_or_default();
            let _ = writeln!(t, "\n{}: stopped early: {error}", r.name);
        }
        t
    }

    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }
}
