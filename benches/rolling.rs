//! Rolling restarts behind a load balancer: two lameduck instances behind
//! HAProxy, restarted one at a time again and again under load, with the
//! lame-duck flags under test. How many requests fail, and how long each
//! instance takes from SIGTERM to exit.
//!
//! ```text
//! cargo bench --bench rolling                      # 40 restarts per row, 32 workers, /api/slow?ms=50
//! cargo bench --bench rolling -- --quick           # tiny counts, seconds
//! cargo bench --bench rolling -- --restarts 60 --json rolling.json
//! cargo bench --bench rolling -- --flags '--drain-delay 2s --drain-checks 0'   # one row (repeatable)
//! ```
//!
//! Needs `haproxy` (`apt-get install haproxy`); the bench writes its own
//! configuration and starts it (see `rolling/haproxy.rs`).
//!
//! | default row | the lame-duck phase |
//! |---|---|
//! | `--drain-delay 0s` | none: the listener closes at the SIGTERM |
//! | `--drain-delay 2s --drain-checks 0` | a fixed sleep, `/healthz` failing, long enough for HAProxy's two checks |
//! | `--drain-delay 5s --drain-checks 2` | until HAProxy has been answered `503` twice (its `fall`), plus a margin; at most 5 s |
//!
//! For each row the bench starts the two instances and HAProxy in front
//! of them (`rolling/fleet.rs`), puts HAProxy under load from
//! `lameduck::testing::load` (its own runtime, threads named
//! `rolling-client`): 32 workers, back to back on kept-alive connections,
//! each request turned into `GET /api/slow?ms=50` by HAProxy (`--uri`;
//! see `rolling/haproxy.rs`), so that every instance has requests in
//! flight when its SIGTERM comes. It restarts the instances in turn: SIGTERM, exit,
//! start on the same port, back in rotation, a pause, the other one. The
//! pause has a random part as long as one check interval, so the SIGTERMs
//! fall at every point of HAProxy's check timer. The load's record is cut
//! at each SIGTERM: a restart owns the failures until the next one.
//!
//! Everything targets loopback; every wait is bounded; the run ends by
//! itself, and processes left running by a failure are killed by pid.

#[path = "rolling/fleet.rs"]
pub mod fleet;
#[path = "rolling/haproxy.rs"]
pub mod haproxy;
#[path = "rolling/instance.rs"]
pub mod instance;
#[allow(dead_code)] // The churn bench's helpers; only a few are used here.
#[path = "churn/measure.rs"]
mod measure;
#[path = "rolling/report.rs"]
pub mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use ::lameduck::testing::load::{self, Load, Plan, Record};
pub use ::lameduck::testing::process;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

pub use fleet::{Fleet, Restart};
pub use instance::Stopped;
pub use report::{Figures, RestartFigure, Row};

/// Errors at the edges of the bench: reported, never matched on.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Instances behind HAProxy.
pub const INSTANCES: usize = 2;

/// How much to run, and against what.
#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    /// Instance restarts per row.
    pub restarts: usize,
    pub workers: usize,
    pub load: Load,
    /// The URI HAProxy puts on every request; `None` leaves the load
    /// generator's `/api/items`.
    pub uri: Option<String>,
    /// Load before the first restart.
    pub warmup: Duration,
    /// The fixed part of the pause before each SIGTERM.
    pub between: Duration,
    /// One row per set of flags.
    pub rows: Vec<Vec<String>>,
    pub bin: PathBuf,
    pub json: Option<PathBuf>,
}

impl Options {
    /// The run the figures in `benches/README.md` come from.
    pub fn full() -> Options {
        let flags = |s: &str| s.split_whitespace().map(str::to_owned).collect();
        Options {
            quick: false,
            restarts: 40,
            workers: 32,
            load: Load::KeepAlive,
            uri: Some("/api/slow?ms=50".to_owned()),
            warmup: Duration::from_secs(1),
            between: Duration::from_millis(200),
            rows: vec![
                flags("--drain-delay 0s"),
                flags("--drain-delay 2s --drain-checks 0"),
                flags("--drain-delay 5s --drain-checks 2"),
            ],
            bin: default_bin(),
            json: None,
        }
    }

    /// Tiny counts: every row runs, nothing is measured seriously.
    pub fn quick() -> Options {
        Options {
            quick: true,
            restarts: 2,
            workers: 4,
            warmup: Duration::from_millis(200),
            between: Duration::from_millis(100),
            ..Options::full()
        }
    }

    /// `--quick`, `--restarts N`, `--workers N`, `--load
    /// keepalive|think|churn`, `--uri URI` (`--uri none`: no rewrite),
    /// `--flags 'FLAGS'` (repeatable: replaces the default rows), `--json
    /// PATH`, `--bin PATH`. Other arguments (cargo bench adds `--bench`)
    /// are ignored.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let args: Vec<String> = args.into_iter().collect();
        let mut opts = if args.iter().any(|a| a == "--quick") {
            Options::quick()
        } else {
            Options::full()
        };
        let mut rows = Vec::new();
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            let positive = |v: String, name: &str| {
                v.parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("{name} takes a positive integer"))
            };
            match arg.as_str() {
                "--restarts" => opts.restarts = positive(value(&arg)?, &arg)?,
                "--workers" => opts.workers = positive(value(&arg)?, &arg)?,
                "--load" => {
                    let name = value(&arg)?;
                    opts.load = *Load::ALL
                        .iter()
                        .find(|l| l.name() == name)
                        .ok_or(format!("--load: no load {name}"))?;
                }
                "--uri" => {
                    let uri = value(&arg)?;
                    if uri != "none" && !uri.starts_with('/') {
                        return Err("--uri takes a path (or none)".into());
                    }
                    opts.uri = (uri != "none").then_some(uri);
                }
                "--flags" => {
                    rows.push(value(&arg)?.split_whitespace().map(str::to_owned).collect())
                }
                "--json" => opts.json = Some(PathBuf::from(value(&arg)?)),
                "--bin" => opts.bin = PathBuf::from(value(&arg)?),
                _ => {}
            }
        }
        if !rows.is_empty() {
            opts.rows = rows;
        }
        Ok(opts)
    }
}

/// The binary cargo built beside this bench (cargo sets the variable for
/// benches and integration tests), else `target/release/lameduck`.
fn default_bin() -> PathBuf {
    option_env!("CARGO_BIN_EXE_lameduck")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/lameduck"))
}

fn main() -> ExitCode {
    let opts = match Options::from_args(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("rolling: {e}");
            return ExitCode::from(2);
        }
    };
    let figures = run(&opts);
    print!("{}", figures.table());
    if let Some(path) = &opts.json
        && let Err(e) = figures.write_json(path)
    {
        eprintln!("rolling: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    if figures.rows.iter().any(|r| r.error.is_some()) {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Runs every row and returns the figures. A row that fails ends early
/// with its error; the others still run. Call from plain (non-async) code.
pub fn run(opts: &Options) -> Figures {
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("rolling-client")
        .enable_all()
        .build()
        .expect("a Tokio runtime for the load");
    let mut rows = Vec::new();
    for flags in &opts.rows {
        eprintln!("rolling: lameduck {}", flags.join(" "));
        rows.push(row(&client_rt, opts, flags));
    }
    client_rt.shutdown_timeout(Duration::from_secs(1));
    Figures {
        machine: measure::machine(),
        date: measure::today(),
        quick: opts.quick,
        restarts: opts.restarts,
        workers: opts.workers,
        load: opts.load.name().to_owned(),
        uri: opts.uri.clone().unwrap_or_else(|| "/api/items".to_owned()),
        rows,
    }
}

/// The row's name: `--drain-delay 5s --drain-checks 2` under 32 think-time
/// workers is `http1_haproxy_delay5s_checks2_think_c32`.
pub fn row_name(flags: &[String], load: Load, workers: usize) -> String {
    let mut parts = vec!["http1_haproxy".to_owned()];
    for pair in flags.chunks(2) {
        let flag = pair[0]
            .trim_start_matches("--")
            .trim_start_matches("drain-");
        parts.push(format!("{flag}{}", pair.get(1).map_or("", |v| v)).replace('-', ""));
    }
    parts.push(format!("{}_c{workers}", load.name()));
    parts.join("_")
}

/// One set of flags.
fn row(rt: &Runtime, opts: &Options, flags: &[String]) -> Row {
    let name = row_name(flags, opts.load, opts.workers);
    let setup = Rolling {
        bin: &opts.bin,
        flags,
        load: opts.load,
        uri: opts.uri.as_deref(),
        workers: opts.workers,
        restarts: opts.restarts,
        warmup: opts.warmup,
        between: opts.between,
    };
    let rolled = setup.run(rt);
    let mut error = rolled.error.clone();
    for stopped in &rolled.stopped {
        if stopped.exit != process::Exit::Code(0) {
            error.get_or_insert(format!(
                "ended with {:?} at the final SIGTERM",
                stopped.exit
            ));
        }
    }
    let per_restart = rolled
        .restarts
        .iter()
        .zip(rolled.windows())
        .map(|(restart, window)| RestartFigure::new(restart, &window))
        .collect();
    let total = rolled
        .record
        .as_ref()
        .map(Record::total)
        .unwrap_or_default();
    Row::new(name, flags, &total, per_restart, error)
}

/// One rolling-restart run: the fleet, the load through HAProxy, and the
/// restarts.
pub struct Rolling<'a> {
    pub bin: &'a Path,
    pub flags: &'a [String],
    pub load: Load,
    /// See [`Options::uri`].
    pub uri: Option<&'a str>,
    pub workers: usize,
    /// Instance restarts, taking the instances in turn.
    pub restarts: usize,
    pub warmup: Duration,
    pub between: Duration,
}

/// What a [`Rolling`] run saw.
pub struct Rolled {
    /// Every request through HAProxy; `None` if the fleet never started.
    pub record: Option<Record>,
    pub restarts: Vec<Restart>,
    /// How each instance ended at the final SIGTERM.
    pub stopped: Vec<Stopped>,
    /// Why the run ended early, if it did.
    pub error: Option<String>,
}

impl Rolled {
    /// Each restart's share of the record: from its SIGTERM to the next
    /// one's (the last one to the end of the load).
    pub fn windows(&self) -> Vec<load::Counts> {
        let Some(record) = &self.record else {
            return Vec::new();
        };
        let end = record.started + record.length;
        let starts: Vec<_> = self.restarts.iter().map(|r| r.signalled.into()).collect();
        starts
            .iter()
            .enumerate()
            .map(|(i, &from)| record.window(from, starts.get(i + 1).copied().unwrap_or(end)))
            .collect()
    }
}

impl Rolling<'_> {
    /// Starts the fleet, runs the load through HAProxy, restarts the
    /// instances in turn, stops the load and then every instance.
    pub fn run(&self, rt: &Runtime) -> Rolled {
        let mut rolled = Rolled {
            record: None,
            restarts: Vec::new(),
            stopped: Vec::new(),
            error: None,
        };
        let mut fleet = match Fleet::start(self.bin, self.flags, INSTANCES, self.uri) {
            Ok(fleet) => fleet,
            Err(e) => {
                rolled.error = Some(format!("start: {e}"));
                return rolled;
            }
        };
        let plan = Plan {
            // A bound, in case a restart hangs: the stop below ends the
            // load sooner.
            run_for: self.warmup + Duration::from_secs(60) * self.restarts as u32,
            ..Plan::new(fleet.addr(), self.load, self.workers)
        };
        let stop = CancellationToken::new();
        let running = rt.spawn({
            let stop = stop.clone();
            async move { load::run(&plan, stop).await }
        });
        std::thread::sleep(self.warmup);
        let mut jitter = Jitter::new(0x5eed);
        for n in 0..self.restarts {
            std::thread::sleep(self.between + jitter.up_to(haproxy::INTER));
            match fleet.restart(n % INSTANCES) {
                Ok(restart) => rolled.restarts.push(restart),
                Err(e) => {
                    rolled.error = Some(format!("restart {}: {e}", n + 1));
                    break;
                }
            }
        }
        std::thread::sleep(self.between);
        stop.cancel();
        rolled.record = Some(rt.block_on(running).expect("the load panicked"));
        match fleet.stop() {
            Ok(stopped) => rolled.stopped = stopped,
            Err(e) => {
                rolled.error.get_or_insert(format!("stop: {e}"));
            }
        }
        rolled
    }
}

/// A small seeded generator (xorshift64) for the pauses: the same
/// sequence every run, spread evenly enough over a check interval.
struct Jitter(u64);

impl Jitter {
    fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }

    /// A duration in `0..limit`.
    fn up_to(&mut self, limit: Duration) -> Duration {
        let x = &mut self.0;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        limit.mul_f64((*x >> 11) as f64 / (1u64 << 53) as f64)
    }
}
