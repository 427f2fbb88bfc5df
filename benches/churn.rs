//! Connection churn: lameduck beside a bare hyper loop, in one run.
//!
//! ```text
//! cargo bench --bench churn                      # full run, about 4 minutes
//! cargo bench --bench churn -- --quick           # tiny counts, seconds
//! cargo bench --bench churn -- --json out.json   # also write the figures
//! cargo bench --bench churn -- --only drain_idle # one phase (for a profiler)
//! cargo bench --bench churn -- --only drain_idle --drain-conns 2000
//! cargo bench --bench churn -- --access-log       # A logs every request
//! cargo bench --bench churn -- --cost             # instructions, counted (valgrind)
//! cargo bench --bench churn -- --pinned --only keepalive   # server and client on a CPU each
//! ```
//!
//! `--cost` measures no time at all: it counts instructions per request and
//! per connection under callgrind, exactly (see [`cost`]).
//!
//! Two servers share one Tokio runtime (threads named `bench-server`):
//! **A**, lameduck's real [`lameduck::Server`] with its default settings,
//! and **B**, a minimal hyper 1.x accept loop (see [`servers`]). The client
//! has its own runtime (`bench-client`), raw sockets and minimal framing
//! (see [`client`]); both runtimes' CPU time is reported, so a saturated
//! client shows. Each figure alternates A B A B over several rounds (7 for
//! load) and reports medians, the A/B ratio, and the spread of the rounds:
//! on a shared, noisy machine the ratio from one run means more than any
//! absolute number, and the spread says how much of a gap is noise. A's
//! log goes to `target/tmp/churn-servers.log`, not into the table, through
//! the binary's own log writer (`process::log_writer`: a bounded queue and
//! a writer thread); `--access-log` turns A's access log on, a line per
//! request, to measure what it costs.
//!
//! | figure | what |
//! |---|---|
//! | `http1_churn_c1/c16/c64` | connect → `GET /healthz` (`Connection: close`) → read to EOF → close, by 1/16/64 workers: conn/s, p50/p99 |
//! | `http1_keepalive_c64` | 64 keep-alive connections, one request at a time each: req/s |
//! | `mem_idle_5k` | RSS growth per idle keep-alive connection, A and B |
//! | `mem_churn_200k` | A's RSS growth across 200,000 churned connections, after warm-up |
//! | `drain_idle_10k` | drain trigger → `run` returns, 10,000 keep-alive connections open and idle for longer than the keep-alive grace; beside it, B with hyper-util's graceful shutdown as the reference |
//!
//! Everything targets 127.0.0.1, every wait is bounded, and the run ends by
//! itself. `drain_idle_10k` needs over 20,000 descriptors; the bench raises
//! `RLIMIT_NOFILE` as far as it may, and if that is not enough, a child
//! copy of itself holds the client's ends (see [`holder`]).

#[path = "churn/client.rs"]
mod client;
#[path = "churn/cost.rs"]
pub mod cost;
#[path = "churn/holder.rs"]
mod holder;
#[path = "churn/measure.rs"]
mod measure;
#[path = "churn/report.rs"]
mod report;
#[path = "churn/servers.rs"]
mod servers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use client::{Mode, Until};
use holder::IdleConns;
use report::{DrainFigure, LoadFigure, MemChurnFigure, MemIdleFigure, Side, count_name};
use servers::{ServerA, ServerB, ServerBGraceful, config_a};
use tokio::runtime::Runtime;

pub use report::Figures;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SERVER_THREADS: &str = "bench-server";
const CLIENT_THREADS: &str = "bench-client";

/// How much to run. [`Options::full`] is what the figures in the docs come
/// from; [`Options::quick`] only proves that every phase works.
#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    /// A B rounds per load figure.
    pub rounds: usize,
    /// Length of each load run.
    pub run_for: Duration,
    /// Churn and keep-alive load on each server before the first round.
    pub warmup: Duration,
    /// Idle connections per `mem_idle` run, and A B rounds of it.
    pub idle_conns: usize,
    pub mem_rounds: usize,
    /// Connections churned for `mem_churn`, and before it as warm-up.
    pub churn_conns: u64,
    pub churn_warmup: u64,
    /// Idle connections held open for `drain_idle`, and how many drains.
    pub drain_conns: usize,
    pub drain_rounds: usize,
    /// Where to write the figures as JSON.
    pub json: Option<PathBuf>,
    /// Run only this phase (`load`, `keepalive`, `mem_idle`, `mem_churn`,
    /// `drain_idle`),
    /// e.g. under a profiler.
    pub only: Option<String>,
    /// A logs a line per request (`--access-log`).
    pub access_log: bool,
    /// Count instructions instead of timing (`--cost`).
    pub cost: bool,
    /// Server and client on a CPU each, one worker thread apiece
    /// (`--pinned`).
    pub pinned: bool,
}

impl Options {
    /// The real run.
    pub fn full() -> Options {
        Options {
            quick: false,
            rounds: 7,
            run_for: Duration::from_secs(2),
            warmup: Duration::from_secs(1),
            idle_conns: 5_000,
            mem_rounds: 5,
            churn_conns: 200_000,
            churn_warmup: 20_000,
            drain_conns: 10_000,
            drain_rounds: 5,
            json: None,
            only: None,
            access_log: false,
            cost: false,
            pinned: false,
        }
    }

    /// Tiny counts: every phase runs, nothing is measured seriously.
    pub fn quick() -> Options {
        Options {
            quick: true,
            rounds: 1,
            run_for: Duration::from_millis(150),
            warmup: Duration::from_millis(50),
            idle_conns: 100,
            mem_rounds: 1,
            churn_conns: 1_000,
            churn_warmup: 100,
            drain_conns: 200,
            drain_rounds: 1,
            json: None,
            only: None,
            access_log: false,
            cost: false,
            pinned: false,
        }
    }

    /// `--quick`, `--json PATH`, `--rounds N`, `--secs S`, `--only PHASE`.
    /// Other arguments
    /// (cargo bench adds `--bench`) are ignored.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let args: Vec<String> = args.into_iter().collect();
        let mut opts = if args.iter().any(|a| a == "--quick") {
            Options::quick()
        } else {
            Options::full()
        };
        let (mut rounds_given, mut secs_given) = (false, false);
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--json" => opts.json = Some(PathBuf::from(value("--json")?)),
                "--access-log" => opts.access_log = true,
                "--cost" => opts.cost = true,
                "--pinned" => opts.pinned = true,
                "--rounds" => {
                    rounds_given = true;
                    opts.rounds = value("--rounds")?
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or("--rounds takes a positive integer")?;
                }
                "--secs" => {
                    secs_given = true;
                    let secs: f64 = value("--secs")?
                        .parse()
                        .ok()
                        .filter(|&s: &f64| s > 0.0 && s <= 60.0)
                        .ok_or("--secs takes seconds in (0, 60]")?;
                    opts.run_for = Duration::from_secs_f64(secs);
                }
                "--drain-conns" => {
                    opts.drain_conns = value("--drain-conns")?
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or("--drain-conns takes a positive integer")?;
                }
                "--only" => {
                    let phase = value("--only")?;
                    if !PHASES.contains(&phase.as_str()) {
                        return Err(format!("--only takes one of {PHASES:?}"));
                    }
                    opts.only = Some(phase);
                }
                _ => {}
            }
        }
        // `--pinned`: more and shorter alternations, so that a slow second
        // of the machine's spoils one round, not a seventh of them; unless
        // `--rounds` or `--secs` say otherwise, wherever they come.
        if opts.pinned && !opts.quick {
            if !rounds_given {
                opts.rounds = PINNED_ROUNDS;
            }
            if !secs_given {
                opts.run_for = PINNED_RUN;
            }
        }
        Ok(opts)
    }

    fn runs(&self, phase: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == phase)
    }
}

/// `--pinned`'s rounds, each A then B, and their length (`--rounds` and
/// `--secs` still override them).
const PINNED_ROUNDS: usize = 21;
const PINNED_RUN: Duration = Duration::from_millis(700);

/// Longer than a quiet accept loop takes to reap finished connection tasks
/// (once a second).
const REAP_WAIT: Duration = Duration::from_millis(1_200);

/// How much longer than the keep-alive grace `drain_idle`'s connections
/// are left idle before the drain.
const IDLE_MARGIN: Duration = Duration::from_millis(100);

/// The phases, in the order they run.
const PHASES: [&str; 5] = ["load", "keepalive", "mem_idle", "mem_churn", "drain_idle"];

/// The programs the cost mode counts: the `lameduck` binary cargo built
/// beside this bench, and this executable as the bare loop.
pub fn cost_programs() -> std::io::Result<cost::Programs> {
    Ok(cost::Programs {
        lameduck: PathBuf::from(env!("CARGO_BIN_EXE_lameduck")),
        bench: std::env::current_exe()?,
        out_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cost"),
    })
}

/// `--cost`: the counted table (1,000 and 3,000 requests and hub
/// deliveries, 2 and 6 upgrades; `--quick`: 100 and 300, 1 and 3), or
/// what to install if callgrind is missing.
fn cost_mode(opts: &Options) -> ExitCode {
    if let Some(missing) = cost::missing_tools() {
        eprintln!("churn: {missing}");
        return ExitCode::from(2);
    }
    let n = if opts.quick { 100 } else { 1_000 };
    // Upgrades: 2 and 6 (`--quick`: 1 and 3), each a start under callgrind.
    let upgrades = if opts.quick { 1 } else { 2 };
    let counted = cost_programs().and_then(|programs| {
        Ok((
            cost::run(&programs, n)?,
            [
                cost::upgrade(&programs, upgrades)?,
                cost::hub(&programs, n)?,
            ],
        ))
    });
    match counted {
        Ok((costs, own)) => {
            print!("{}", cost::table(&costs, &own));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("churn: cost mode: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, addr, n, ..] = args.as_slice()
        && flag == "--hold-idle"
    {
        // A child started by `holder::IdleConns::open`.
        return match holder::child_main(addr, n) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                println!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(mode) = args.first()
        && cost::SERVE_MODES.contains(&mode.as_str())
    {
        // A child started by the cost mode, under callgrind.
        return cost::serve_bare(mode);
    }
    let opts = match Options::from_args(args) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("churn: {e}");
            return ExitCode::from(2);
        }
    };
    if opts.cost {
        return cost_mode(&opts);
    }
    // Server A logs as the `lameduck` binary does, `info` and up (phase
    // transitions and shutdown reports), but to a file: the table is for
    // figures.
    let log_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("churn-servers.log");
    let log = match std::fs::File::create(&log_path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("churn: cannot create {}: {e}", log_path.display());
            return ExitCode::FAILURE;
        }
    };
    // The binary's writer: every line through its bounded queue and writer
    // thread, so its cost is in A's figures.
    let report_to = match log.try_clone() {
        Ok(file) => file,
        Err(e) => {
            eprintln!("churn: cannot reopen {}: {e}", log_path.display());
            return ExitCode::FAILURE;
        }
    };
    let (lines, flush) = lameduck::process::log_writer::install_to(log, report_to);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .with_writer(lines)
        .init();
    let outcome = run(&opts);
    flush.at_exit(None);
    if opts.access_log {
        println!(
            "access log: {} lines dropped (the queue was full)",
            lameduck::process::log_writer::dropped_lines()
        );
    }
    match outcome {
        Ok(figures) => {
            print!("{}", figures.table());
            println!("\nserver logs: {}", log_path.display());
            if let Some(path) = &opts.json
                && let Err(e) = figures.write_json(path)
            {
                eprintln!("churn: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("churn: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every phase and returns the figures. Builds its own runtimes, so
/// call it from plain (non-async) code.
pub fn run(opts: &Options) -> Result<Figures, BoxError> {
    // Server and client descriptors for the drain phase, plus slack.
    let want = 2 * opts.drain_conns.max(opts.idle_conns) as u64 + 512;
    let nofile = measure::raise_nofile(want);
    let (server_rt, client_rt) = runtimes(opts)?;

    let a_config = lameduck::Config {
        access_log: opts.access_log,
        ..config_a()
    };
    let a = server_rt.block_on(async { ServerA::start(a_config) })?;
    let b = server_rt.block_on(ServerB::start())?;

    progress("warm-up");
    // Warm both servers (and the client) so the first measured round is
    // not also the first use of every allocation.
    for addr in [a.addr, b.addr] {
        for mode in [Mode::Churn, Mode::KeepAlive] {
            let until = Until::Deadline(Instant::now() + opts.warmup);
            client_rt.block_on(client::load(addr, mode, 16, until, false));
        }
    }

    let mut load = Vec::new();
    if opts.runs("load") || opts.runs("keepalive") {
        for (mode, conc) in [
            (Mode::Churn, 1),
            (Mode::Churn, 16),
            (Mode::Churn, 64),
            (Mode::KeepAlive, 64),
        ] {
            // `--only keepalive`: just the keep-alive figure.
            if !opts.runs("load") && mode != Mode::KeepAlive {
                continue;
            }
            load.push(load_figure(&client_rt, opts, mode, conc, a.addr, b.addr));
        }
    }
    let mem_idle = if opts.runs("mem_idle") {
        Some(mem_idle(&server_rt, &client_rt, opts, &a, b.addr)?)
    } else {
        None
    };
    let mem_churn = if opts.runs("mem_churn") {
        Some(mem_churn(&server_rt, &client_rt, opts, &a)?)
    } else {
        None
    };

    // Done with the long-lived pair. A drains (nothing is open) and B's
    // accept loop stops.
    server_rt.block_on(a.shutdown());
    b.stop();

    let drain_idle = if opts.runs("drain_idle") {
        Some(drain_idle(&server_rt, &client_rt, opts, nofile)?)
    } else {
        None
    };

    // Nothing is left running; do not wait for tasks that never yield.
    server_rt.shutdown_timeout(Duration::from_secs(1));
    client_rt.shutdown_timeout(Duration::from_secs(1));
    Ok(Figures {
        machine: measure::machine(),
        date: measure::today(),
        quick: opts.quick,
        rounds: opts.rounds,
        run_secs: opts.run_for.as_secs_f64(),
        load,
        drain_idle,
        mem_idle,
        mem_churn,
    })
}

/// The server's and the client's runtimes. By default each has a worker
/// per CPU, and they share the CPUs. `--pinned`: one worker each, the
/// server's threads on the first allowed CPU and the client's (and this
/// thread, which drives the client) on the second, so that the rounds
/// measure the server's work rather than who the scheduler ran first.
fn runtimes(opts: &Options) -> Result<(Runtime, Runtime), BoxError> {
    let mut server = tokio::runtime::Builder::new_multi_thread();
    let mut client = tokio::runtime::Builder::new_multi_thread();
    server.thread_name(SERVER_THREADS).enable_all();
    client.thread_name(CLIENT_THREADS).enable_all();
    if opts.pinned {
        let cpus = measure::allowed_cpus();
        let [server_cpu, client_cpu, ..] = cpus[..] else {
            return Err(format!("--pinned needs two CPUs; this process may use {cpus:?}").into());
        };
        server
            .worker_threads(1)
            .on_thread_start(move || measure::pin_this_thread(server_cpu));
        client
            .worker_threads(1)
            .on_thread_start(move || measure::pin_this_thread(client_cpu));
        measure::pin_this_thread(client_cpu);
    }
    Ok((server.build()?, client.build()?))
}

/// One load figure: `rounds` × (A, B), medians and ratio.
fn load_figure(
    client_rt: &Runtime,
    opts: &Options,
    mode: Mode,
    conc: usize,
    a: SocketAddr,
    b: SocketAddr,
) -> LoadFigure {
    let (name, unit) = match mode {
        Mode::Churn => (format!("http1_churn_c{conc}"), "conn/s"),
        Mode::KeepAlive => (format!("http1_keepalive_c{conc}"), "req/s"),
    };
    let mut runs: [Vec<Run>; 2] = Default::default();
    for round in 1..=opts.rounds {
        progress(&format!("{name} round {round}/{}", opts.rounds));
        for (side, addr) in [a, b].into_iter().enumerate() {
            runs[side].push(measured_run(client_rt, addr, mode, conc, opts.run_for));
        }
    }
    let [a, b] = runs.map(|runs| side(&runs));
    LoadFigure::new(name, unit, a, b)
}

/// What one load run measured.
struct Run {
    rate: f64,
    p50: f64,
    p99: f64,
    server_cpu: f64,
    client_cpu: f64,
    /// The server's CPU µs per completed unit.
    cpu_us: f64,
    errors: u64,
}

fn measured_run(rt: &Runtime, addr: SocketAddr, mode: Mode, conc: usize, dur: Duration) -> Run {
    let (s0, c0) = (
        measure::thread_cpu(SERVER_THREADS),
        measure::thread_cpu(CLIENT_THREADS),
    );
    let until = Until::Deadline(Instant::now() + dur);
    let mut run = rt.block_on(client::load(addr, mode, conc, until, true));
    let (s1, c1) = (
        measure::thread_cpu(SERVER_THREADS),
        measure::thread_cpu(CLIENT_THREADS),
    );
    let wall = run.wall.as_secs_f64();
    Run {
        rate: run.ok as f64 / wall,
        p50: measure::quantile(&mut run.latencies_us, 0.50),
        p99: measure::quantile(&mut run.latencies_us, 0.99),
        server_cpu: (s1 - s0).as_secs_f64() / wall,
        cpu_us: (s1 - s0).as_secs_f64() * 1e6 / run.ok.max(1) as f64,
        client_cpu: (c1 - c0).as_secs_f64() / wall,
        errors: run.errors,
    }
}

fn side(runs: &[Run]) -> Side {
    let med = |f: fn(&Run) -> f64| measure::median(&runs.iter().map(f).collect::<Vec<_>>());
    Side {
        rate: med(|r| r.rate),
        p50_us: med(|r| r.p50),
        p99_us: med(|r| r.p99),
        server_cpu: med(|r| r.server_cpu),
        client_cpu: med(|r| r.client_cpu),
        cpu_us_per_unit: med(|r| r.cpu_us),
        cpu_runs: runs.iter().map(|r| r.cpu_us).collect(),
        errors: runs.iter().map(|r| r.errors).sum(),
        runs: runs.iter().map(|r| r.rate).collect(),
    }
}

/// `mem_idle`: per server, alternating, the RSS delta of holding
/// `idle_conns` idle keep-alive connections. The client holds them as
/// bare descriptors, so the delta is the server's.
fn mem_idle(
    server_rt: &Runtime,
    client_rt: &Runtime,
    opts: &Options,
    a: &ServerA,
    b: SocketAddr,
) -> Result<MemIdleFigure, BoxError> {
    let n = opts.idle_conns;
    let name = format!("mem_idle_{}", count_name(n as u64));
    let mut per_conn: [Vec<f64>; 2] = Default::default();
    for round in 1..=opts.mem_rounds {
        progress(&format!("{name} round {round}/{}", opts.mem_rounds));
        for (side, addr) in [a.addr, b].into_iter().enumerate() {
            let tasks = || server_rt.metrics().num_alive_tasks();
            let idle_tasks = quiet_tasks(server_rt, a)?;
            let mut conns = Vec::with_capacity(n);
            measure::trim_heap();
            let before = measure::rss_bytes();
            client_rt.block_on(client::open_idle(addr, n, 32, &mut conns))?;
            // Every connection has been answered, so its task exists; let
            // the tasks finish going back to waiting for the next request.
            steady_tasks(server_rt)?;
            measure::trim_heap();
            let after = measure::rss_bytes();
            per_conn[side].push(after.saturating_sub(before) as f64 / n as f64);
            drop(conns);
            wait_for("idle connection tasks to end", || tasks() <= idle_tasks)?;
            // A frees a finished connection task's memory when its accept
            // loop reaps it: at the next accept, or within a second on a
            // quiet listener. Wait for that, so the memory A gives back is
            // not found again, and taken for nothing, by the next side.
            std::thread::sleep(REAP_WAIT);
        }
    }
    let [a_bytes, b_bytes] = [&per_conn[0], &per_conn[1]].map(|v| measure::median(v));
    let [a_runs, b_runs] = per_conn;
    Ok(MemIdleFigure {
        name,
        conns: n,
        a_bytes,
        b_bytes,
        ratio: a_bytes / b_bytes,
        a_runs,
        b_runs,
    })
}

/// `mem_churn`: A's RSS before and after `churn_conns` churned
/// connections (c64), after a warm-up of `churn_warmup`. Freed heap is
/// trimmed before both readings, so growth is memory still held.
fn mem_churn(
    server_rt: &Runtime,
    client_rt: &Runtime,
    opts: &Options,
    a: &ServerA,
) -> Result<MemChurnFigure, BoxError> {
    let name = format!("mem_churn_{}", count_name(opts.churn_conns));
    progress(&name);
    let idle_tasks = quiet_tasks(server_rt, a)?;
    let settle = || {
        wait_for("churned connections to close", || {
            a.app.metrics.open_connections() == 0
                && server_rt.metrics().num_alive_tasks() <= idle_tasks
        })
    };
    let warm = client_rt.block_on(client::load(
        a.addr,
        Mode::Churn,
        64,
        Until::Count(opts.churn_warmup),
        false,
    ));
    settle()?;
    measure::trim_heap();
    let rss_before = measure::rss_bytes();
    let run = client_rt.block_on(client::load(
        a.addr,
        Mode::Churn,
        64,
        Until::Count(opts.churn_conns),
        false,
    ));
    settle()?;
    measure::trim_heap();
    let rss_after = measure::rss_bytes();
    Ok(MemChurnFigure {
        name,
        conns: run.ok,
        warmup_conns: warm.ok,
        rss_before,
        rss_after,
        growth: rss_after as i64 - rss_before as i64,
        errors: warm.errors + run.errors,
    })
}

/// `drain_idle`: a fresh A with `drain_conns` idle keep-alive connections;
/// time from the shutdown trigger until `run` returns.
fn drain_idle(
    server_rt: &Runtime,
    client_rt: &Runtime,
    opts: &Options,
    nofile: u64,
) -> Result<DrainFigure, BoxError> {
    let n = opts.drain_conns;
    // Each connection costs a descriptor at both ends; if both do not fit
    // here, a child process holds the client's ends.
    let in_process = 2 * n as u64 + 512 <= nofile;
    let name = format!("drain_idle_{}", count_name(n as u64));
    let mut runs_ms = Vec::new();
    let mut b_runs_ms = Vec::new();
    let mut last = None;
    for round in 1..=opts.drain_rounds {
        progress(&format!("{name} round {round}/{}", opts.drain_rounds));
        let config = lameduck::Config {
            // The default limit is 10,000: leave room above the count so
            // the limit is never what the drain waits behind.
            max_connections: n + 1024,
            // Everything else as it comes: these connections are dormant
            // when the drain begins, so the spread does not hold them.
            ..config_a()
        };
        let a = server_rt.block_on(async { ServerA::start(config.clone()) })?;
        let conns = IdleConns::open(client_rt, a.addr, n, in_process)?;
        let app = a.app.clone();
        wait_for("every idle connection to be open", || {
            app.metrics.open_connections() == n as u64
        })?;
        // Idle means idle for longer than the keep-alive grace (dormant):
        // one used within it is kept open for the rest of it and waits
        // for its instant in the spread, by design (its client may be
        // sending; see `keepalive_grace`), and the restart and storm
        // benches measure that case. These were all just used.
        std::thread::sleep(config.keepalive_grace + IDLE_MARGIN);
        let (fired, report, returned) = server_rt.block_on(a.shutdown());
        runs_ms.push((returned - fired).as_secs_f64() * 1e3);
        let closed = conns.count_closed()?;
        last = Some((report, closed));

        // The reference: the same connections on B with hyper-util's
        // graceful shutdown only.
        let b = server_rt.block_on(ServerBGraceful::start())?;
        let conns = IdleConns::open(client_rt, b.addr, n, in_process)?;
        // Every connection has been answered, so its task exists; let the
        // tasks finish going back to waiting for the next request.
        steady_tasks(server_rt)?;
        let (fired, returned) = server_rt.block_on(b.shutdown());
        b_runs_ms.push((returned - fired).as_secs_f64() * 1e3);
        let b_closed = conns.count_closed()?;
        if b_closed != n {
            return Err(format!("B closed {b_closed} of {n} idle connections").into());
        }
    }
    let (report, closed) = last.ok_or("drain_rounds is 0")?;
    let (a_ms, b_ms) = (measure::median(&runs_ms), measure::median(&b_runs_ms));
    Ok(DrainFigure {
        name,
        conns: n,
        drain_ms: a_ms,
        runs_ms,
        b_graceful_ms: b_ms,
        b_runs_ms,
        ratio: a_ms / b_ms,
        outcome: report.outcome.name().to_owned(),
        connections_at_drain: report.connections_at_drain,
        connections_drained: report.connections_drained,
        connections_aborted: report.connections_aborted,
        closed_seen_by_client: closed,
    })
}

/// The number of tasks on the server runtime once the connections of an
/// earlier phase have all ended: A reports none open, and the task count
/// has held still for 100 ms (B has no counter of its own).
fn quiet_tasks(server_rt: &Runtime, a: &ServerA) -> Result<usize, BoxError> {
    wait_for("earlier connections to close", || {
        a.app.metrics.open_connections() == 0
    })?;
    steady_tasks(server_rt)
}

/// Waits until the number of tasks on the server runtime has held still
/// for 100 ms, and returns it.
fn steady_tasks(server_rt: &Runtime) -> Result<usize, BoxError> {
    let mut last = server_rt.metrics().num_alive_tasks();
    let mut still = 0;
    wait_for("the server runtime to go quiet", || {
        let now = server_rt.metrics().num_alive_tasks();
        still = if now == last { still + 1 } else { 0 };
        last = now;
        still >= 20
    })?;
    Ok(last)
}

/// Polls `done` (every 5 ms, for up to 30 s). Benchmark bookkeeping only:
/// the counters it reads have no event to await.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn progress(what: &str) {
    eprintln!("churn: {what}");
}
