//! The figures: one row per method and load, as a table to paste into the
//! README and as JSON.

use std::fmt::Write as _;
use std::path::Path;

use ::lameduck::testing::load::{Counts, Verdict};
use serde::Serialize;

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Figures {
    pub machine: String,
    pub date: String,
    pub quick: bool,
    /// Restarts asked for per row, and workers per load.
    pub restarts: usize,
    pub workers: usize,
    pub rows: Vec<Row>,
    /// The long-lived load's row (lameduck only).
    pub long_lived: Option<super::long_lived::LongLivedRow>,
}

/// One method under one load.
#[derive(Debug, Serialize)]
pub struct Row {
    /// `http1_{method}_{load}_c{workers}`.
    pub name: String,
    pub method: String,
    pub load: String,
    /// Restarts done (fewer than asked if one failed).
    pub restarts: usize,
    /// Requests answered `2xx` over the whole row.
    pub ok: u64,
    /// Failed requests over the whole row, by class.
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
    /// The longest time with no successful response, over the row.
    pub longest_gap_ms: f64,
    pub per_restart: Vec<RestartFigure>,
    /// Why the row stopped early, if it did.
    pub error: Option<String>,
}

/// One restart: from its signal (or command) to the next one's.
#[derive(Debug, Serialize)]
pub struct RestartFigure {
    pub failed: u64,
    pub longest_gap_ms: f64,
    /// How long the restart step took, until the old process was gone.
    pub took_ms: f64,
    pub old_pid: Option<i32>,
    pub new_pid: Option<i32>,
    /// How the old process ended (`Code(0)`, `Signal(1)`, ...), if known.
    pub old_exit: Option<String>,
}

impl Row {
    /// A row from the whole run's tally and each restart's.
    pub fn new(
        method: &str,
        load: &str,
        workers: usize,
        total: &Counts,
        per_restart: Vec<(Counts, RestartFigure)>,
        error: Option<String>,
    ) -> Row {
        let restarts = per_restart.len();
        let failed = total.failed();
        Row {
            name: format!("http1_{method}_{load}_c{workers}"),
            method: method.to_owned(),
            load: load.to_owned(),
            restarts,
            ok: total.ok,
            failed,
            refused: total.count(Verdict::Refused),
            reset: total.count(Verdict::Reset),
            broken: total.count(Verdict::Broken),
            non_2xx: total.count(Verdict::Non2xx),
            timeout: total.count(Verdict::Timeout),
            failed_per_restart: failed as f64 / restarts.max(1) as f64,
            worst_restart: per_restart
                .iter()
                .map(|(t, _)| t.failed())
                .max()
                .unwrap_or(0),
            longest_gap_ms: ms(total.longest_gap),
            per_restart: per_restart.into_iter().map(|(_, f)| f).collect(),
            error,
        }
    }
}

pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Figures {
    /// The figures as a Markdown table (and a header line): what the README
    /// shows.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "lameduck restart bench: {} | {} | {} restarts x {} workers{}\n",
            self.machine,
            self.date,
            self.restarts,
            self.workers,
            if self.quick {
                " | QUICK (not a measurement)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            t,
            "| figure | restarts | ok | failed/restart | refused | reset | broken | non-2xx | timeout | worst restart | longest gap (ms) |"
        );
        let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.rows {
            let per = |n: u64| n as f64 / r.restarts.max(1) as f64;
            let _ = writeln!(
                t,
                "| `{}` | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.1} |",
                r.name,
                r.restarts,
                r.ok,
                r.failed_per_restart,
                per(r.refused),
                per(r.reset),
                per(r.broken),
                per(r.non_2xx),
                per(r.timeout),
                r.worst_restart,
                r.longest_gap_ms
            );
        }
        if let Some(l) = &self.long_lived {
            let closes = |c: &std::collections::BTreeMap<u16, usize>| {
                c.iter()
                    .map(|(code, n)| format!("{code}×{n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let _ = writeln!(
                t,
                "\n| figure | restarts | items | lost | duplicated | closes | refused | download |"
            );
            let _ = writeln!(t, "|---|---:|---:|---:|---:|---|---:|---|");
            let _ = writeln!(
                t,
                "| `{}` | {} | {} | {} | {} | {} | {} | {} MB, {}, {} wrong bytes |",
                l.name,
                l.restarts,
                l.items,
                l.lost,
                l.duplicated,
                closes(&l.closes),
                l.refused,
                l.download_bytes / 1_000_000,
                if l.download_complete {
                    "whole"
                } else {
                    "NOT whole"
                },
                l.download_wrong_bytes
            );
            let _ = writeln!(
                t,
                "\n| restart | lost | duplicated | closes | download cut after | resumed at | old process |"
            );
            let _ = writeln!(t, "|---:|---:|---:|---|---:|---:|---|");
            for (i, r) in l.per_restart.iter().enumerate() {
                let opt = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
                let _ = writeln!(
                    t,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    i + 1,
                    r.lost,
                    r.duplicated,
                    closes(&r.closes),
                    opt(r.download_bytes_before_cut),
                    opt(r.download_resumed_at),
                    r.old_exit.as_deref().unwrap_or("-")
                );
            }
            if let Some(error) = &l.error {
                let first = error.lines().next().unwrap_or_default();
                let _ = writeln!(t, "\n{}: stopped early: {first}", l.name);
            }
        }
        for r in self.rows.iter().filter(|r| r.error.is_some()) {
            let error = r.error.as_deref().unwrap_or_default();
            let first = error.lines().next().unwrap_or_default();
            let _ = writeln!(t, "\n{}: stopped early: {first}", r.name);
        }
        t
    }

    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }
}
