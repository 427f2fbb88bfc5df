//! Restarts under load: how many requests fail, and how long nothing
//! succeeds, while a server is restarted again and again.
//!
//! ```text
//! cargo bench --bench restart                         # 10 restarts x 3 loads x 2 methods, 32 workers
//! cargo bench --bench restart -- --quick              # tiny counts, seconds
//! cargo bench --bench restart -- --restarts 20 --workers 16 --json out.json
//! cargo bench --bench restart -- --addr 127.0.0.1:8080 --start CMD --restart CMD [--stop CMD] [--settle-ms 1000]
//! ```
//!
//! For each restart method and each load, the bench starts a fresh server,
//! puts it under load from `lameduck::testing::load` (its own runtime,
//! threads named `restart-client`), waits a moment, restarts it `restarts`
//! times with a pause between, stops the load and the server, and cuts
//! the load's record at each restart.
//!
//! | method | what a restart is |
//! |---|---|
//! | `sighup` | lameduck's in-place upgrade: SIGHUP, the new process takes the listening socket, the old one drains and exits 0 ([`lameduck`]) |
//! | `naive` | SIGTERM, wait for the exit, start again on the same port ([`lameduck`]) |
//! | `command` | any server: the user's start, restart and stop commands ([`command`]) |
//!
//! | load | what each worker does |
//! |---|---|
//! | `keepalive` | `GET /api/items` back to back on a kept-alive connection |
//! | `think` | the same with 10 ms between requests |
//! | `churn` | a new connection per request (`Connection: close`) |
//!
//! Rows are named hyper-style: `http1_sighup_keepalive_c32` is HTTP/1,
//! SIGHUP upgrades, back-to-back keep-alive, 32 workers. Each row gives the
//! failed requests per restart by class (see
//! `lameduck::testing::load::Verdict`), the worst single restart, and the
//! longest time between two successful responses of any workers.
//!
//! One more row, `http1_sighup_longlived_…` (`restart/long_lived.rs`),
//! counts what the SIGHUP upgrades cost the clients that stay connected:
//! WebSocket hub clients, long polls and a resumed download, each
//! following the items (or the bytes) across every restart. Per restart:
//! items lost and seen twice, the close codes, where the download
//! resumed.
//!
//! Everything targets loopback; every wait is bounded; the run ends by
//! itself, and a server left running by a failure is killed.

#[path = "restart/command.rs"]
mod command;
#[path = "restart/lameduck.rs"]
mod lameduck;
#[path = "restart/long_lived.rs"]
pub mod long_lived;
#[allow(dead_code)] // The churn bench's helpers; only two are used here.
#[path = "churn/measure.rs"]
mod measure;
#[path = "restart/report.rs"]
mod report;
#[path = "restart/target.rs"]
pub mod target;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ::lameduck::testing::load::{self, Load, Plan};
pub use ::lameduck::testing::process;
use tokio::runtime::Runtime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use command::Commands;
pub use lameduck::{Lameduck, Restart};
pub use report::{Figures, RestartFigure, Row};
use target::{BoxError, Target};

/// How much to run, and against what.
#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    /// Restarts per row.
    pub restarts: usize,
    /// Load workers.
    pub workers: usize,
    /// Load before the first restart, and between restarts.
    pub warmup: Duration,
    pub between: Duration,
    pub loads: Vec<Load>,
    /// The lameduck binary, for the `sighup` and `naive` rows.
    pub bin: PathBuf,
    /// Measure the user's server instead of lameduck.
    pub commands: Option<Commands>,
    pub json: Option<PathBuf>,
}

impl Options {
    /// The run the figures in `benches/README.md` come from.
    pub fn full() -> Options {
        Options {
            quick: false,
            restarts: 10,
            workers: 32,
            warmup: Duration::from_millis(500),
            between: Duration::from_millis(500),
            loads: Load::ALL.to_vec(),
            bin: default_bin(),
            commands: None,
            json: None,
        }
    }

    /// Tiny counts: every row runs, nothing is measured seriously.
    pub fn quick() -> Options {
        Options {
            quick: true,
            restarts: 2,
            workers: 4,
            warmup: Duration::from_millis(100),
            between: Duration::from_millis(100),
            ..Options::full()
        }
    }

    /// `--quick`, `--restarts N`, `--workers N`, `--json PATH`, `--bin
    /// PATH`, `--addr A --start CMD --restart CMD [--stop CMD] [--settle-ms
    /// MS]`. Other arguments (cargo bench adds `--bench`) are ignored.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let args: Vec<String> = args.into_iter().collect();
        let mut opts = if args.iter().any(|a| a == "--quick") {
            Options::quick()
        } else {
            Options::full()
        };
        let (mut addr, mut start, mut restart, mut stop) = (None, None, None, None);
        let mut settle = Duration::from_secs(1);
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
                "--json" => opts.json = Some(PathBuf::from(value(&arg)?)),
                "--bin" => opts.bin = PathBuf::from(value(&arg)?),
                "--addr" => {
                    let a: SocketAddr = value(&arg)?.parse().map_err(|e| format!("--addr: {e}"))?;
                    if !a.ip().is_loopback() {
                        return Err("--addr must be a loopback address".into());
                    }
                    addr = Some(a);
                }
                "--start" => start = Some(value(&arg)?),
                "--restart" => restart = Some(value(&arg)?),
                "--stop" => stop = Some(value(&arg)?),
                "--settle-ms" => {
                    settle = Duration::from_millis(positive(value(&arg)?, &arg)? as u64)
                }
                _ => {}
            }
        }
        opts.commands = match (addr, start, restart) {
            (Some(addr), Some(start), Some(restart)) => Some(Commands {
                addr,
                start,
                restart,
                stop,
                settle,
            }),
            (None, None, None) => None,
            _ => return Err("--addr, --start and --restart go together".into()),
        };
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
            eprintln!("restart: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(figures) => {
            print!("{}", figures.table());
            if let Some(path) = &opts.json
                && let Err(e) = figures.write_json(path)
            {
                eprintln!("restart: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("restart: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every row and returns the figures. A row whose server fails to
/// start or restart ends early with its error; the others still run. Call
/// from plain (non-async) code.
pub fn run(opts: &Options) -> Result<Figures, BoxError> {
    // Upgraded servers are the bench's grandchildren; see `process`.
    process::become_subreaper()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("restart-client")
        .enable_all()
        .build()?;
    let methods: Vec<&str> = if opts.commands.is_some() {
        vec!["command"]
    } else {
        vec!["sighup", "naive"]
    };
    let mut rows = Vec::new();
    for &load in &opts.loads {
        for &method in &methods {
            eprintln!("restart: {method} under {} load", load.name());
            rows.push(row(&client_rt, opts, method, load));
        }
    }
    let long_lived = if opts.commands.is_none() {
        eprintln!("restart: sighup under the long-lived load");
        Some(long_lived::row(&client_rt, opts))
    } else {
        None
    };
    client_rt.shutdown_timeout(Duration::from_secs(1));
    Ok(Figures {
        long_lived,
        machine: measure::machine(),
        date: measure::today(),
        quick: opts.quick,
        restarts: opts.restarts,
        workers: opts.workers,
        rows,
    })
}

/// Starts the server for `method`.
fn start(opts: &Options, method: &str) -> Result<Box<dyn Target>, BoxError> {
    Ok(match (method, &opts.commands) {
        ("sighup", _) => Box::new(Lameduck::start(&opts.bin, &[], Restart::Sighup)?),
        ("naive", _) => Box::new(Lameduck::start(&opts.bin, &[], Restart::Naive)?),
        (_, Some(commands)) => Box::new(command::Commanded::start(commands)?),
        _ => return Err(format!("no method {method}").into()),
    })
}

/// One method under one load.
fn row(rt: &Runtime, opts: &Options, method: &str, load: Load) -> Row {
    let mut server = match start(opts, method) {
        Ok(server) => server,
        Err(e) => {
            let error = Some(format!("start: {e}"));
            return Row::new(
                method,
                load.name(),
                opts.workers,
                &Default::default(),
                vec![],
                error,
            );
        }
    };
    let plan = Plan {
        // A bound, in case a restart hangs: the stop below ends the load.
        run_for: opts.warmup + (opts.between + Duration::from_secs(70)) * opts.restarts as u32,
        ..Plan::new(server.addr(), load, opts.workers)
    };
    let stop = CancellationToken::new();
    let running = rt.spawn({
        let stop = stop.clone();
        async move { load::run(&plan, stop).await }
    });
    std::thread::sleep(opts.warmup);
    let mut restarts = Vec::new();
    let mut error = None;
    for _ in 0..opts.restarts {
        let began = Instant::now();
        match server.restart() {
            Ok(done) => restarts.push((began, Instant::now(), done)),
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
        std::thread::sleep(opts.between);
    }
    stop.cancel();
    let record = rt.block_on(running).expect("the load panicked");
    if let Err(e) = server.stop() {
        error.get_or_insert(format!("stop: {e}"));
    }
    // Each restart owns the time from its start to the next one's.
    let ends: Vec<Instant> = restarts
        .iter()
        .skip(1)
        .map(|(began, _, _)| *began)
        .chain([record.started + record.length])
        .collect();
    let per_restart = restarts
        .iter()
        .zip(ends)
        .map(|((began, done_at, done), end)| {
            let tally = record.window(*began, end);
            let figure = RestartFigure {
                failed: tally.failed(),
                longest_gap_ms: report::ms(tally.longest_gap),
                took_ms: report::ms(*done_at - *began),
                old_pid: done.old_pid,
                new_pid: done.new_pid,
                old_exit: done.old_exit.map(|e| format!("{e:?}")),
            };
            (tally, figure)
        })
        .collect();
    Row::new(
        method,
        load.name(),
        opts.workers,
        &record.total(),
        per_restart,
        error,
    )
}
