//! The reconnect storm: what one restart does to a listen queue when ten
//! thousand clients are told to go at once, and what `--drain-spread`
//! and `--max-connection-age` do about it.
//!
//! ```text
//! cargo bench --bench storm                      # burst, storm rows, rebalancing: a few minutes
//! cargo bench --bench storm -- --quick           # tiny counts, seconds
//! cargo bench --bench storm -- --only storm --clients 10000 --spreads 0s,250ms,1s --restarts 3
//! cargo bench --bench storm -- --only storm --flags '--drain-spread-burst 200'
//! cargo bench --bench storm -- --only burst|storm|rebalance --json out.json
//! ```
//!
//! Three parts, each a table:
//!
//! 1. **Burst** (`burst.rs`): N clients connect at once to a fresh
//!    server, at today's backlog and at larger ones. How many the listen
//!    queue and the accept loop absorb before the kernel drops SYNs.
//! 2. **Storm** (this file): a crowd of long-lived clients
//!    (`crowd.rs`: keep-alive, event streams, WebSockets, a third each),
//!    each reconnecting the moment it is told to go; the server restarted
//!    `restarts` times, in place by SIGHUP and as one of a pair on one
//!    socket (`servers.rs`), with `--drain-spread 0s` (everything at
//!    once) and with the other spreads asked for (the default by
//!    default). Per row: the SYNs the kernel dropped (`netstat.rs`), the
//!    reconnect latency from the goodbye to the new connection's first
//!    answer, the peak of reconnects in any 10 ms against the mean,
//!    failed requests, and events and items lost or seen twice.
//! 3. **Rebalance** (`rebalance.rs`): two instances behind HAProxy in
//!    `mode tcp`; one restarts, its clients all land on the other; how long
//!    until the two are within 1.2x of each other, without and with
//!    `--max-connection-age`.
//!
//! Each client is a socket in this process and one in the server, so the
//! bench raises its `RLIMIT_NOFILE` (the servers inherit it) and says what
//! it got. Everything targets loopback; every wait is bounded; servers
//! left running by a failure are killed as their handles drop.

#[path = "storm/burst.rs"]
mod burst;
#[path = "storm/crowd.rs"]
mod crowd;
#[allow(dead_code)] // The rolling bench's HAProxy; only the tcp mode is used here.
#[path = "rolling/haproxy.rs"]
mod haproxy;
#[allow(dead_code)] // The churn bench's helpers; only two are used here.
#[path = "churn/measure.rs"]
mod measure;
#[path = "storm/netstat.rs"]
mod netstat;
#[path = "storm/rebalance.rs"]
mod rebalance;
#[path = "storm/report.rs"]
mod report;
#[path = "storm/servers.rs"]
mod servers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ::lameduck::testing::http1::{Method, ResponseReader};
pub use ::lameduck::testing::process;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crowd::{Crowd, Mix};
use netstat::ListenCounters;
use report::{Figures, StormRestart, StormRow};
use servers::Servers;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One item every this long, for the hub clients to follow: each is a
/// fan-out to every WebSocket client at once (`--item-every`).
const ITEM_EVERY: Duration = Duration::from_millis(500);

/// How long a crowd may take to connect, and to reconnect after a
/// restart.
const CONNECT_LIMIT: Duration = Duration::from_secs(60);

/// The quiet between restarts, and after the last one: every client is
/// back, and the last stragglers' figures are in.
const SETTLE: Duration = Duration::from_secs(2);

/// How much to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub only: Option<String>,
    /// Long-lived clients in the storm rows.
    pub clients: usize,
    /// How often the storm rows' writer creates an item, which the hub
    /// sends to every WebSocket client at once (`--item-every D`).
    pub item_every: Duration,
    pub restarts: usize,
    /// `--drain-spread` values for the storm rows besides `0s`; `None`:
    /// the binary's default.
    pub spreads: Vec<String>,
    /// The burst's sizes and backlogs.
    pub burst_sizes: Vec<usize>,
    pub burst_backlogs: Vec<u32>,
    /// The rebalancing rows' clients and `--max-connection-age`.
    pub rebalance_clients: usize,
    pub age: Duration,
    pub age_grace: Duration,
    pub bin: PathBuf,
    pub json: Option<PathBuf>,
    /// More lameduck flags for the storm rows (`--flags '--drain-spread-burst 200'`).
    pub flags: Vec<String>,
}

impl Options {
    /// The run the figures in `benches/README.md` come from.
    pub fn full() -> Options {
        Options {
            quick: false,
            only: None,
            clients: 10_000,
            item_every: ITEM_EVERY,
            restarts: 3,
            spreads: Vec::new(),
            burst_sizes: vec![1_000, 2_000, 5_000, 10_000],
            burst_backlogs: vec![default_flags().backlog, 4_096],
            rebalance_clients: 2_000,
            age: Duration::from_secs(10),
            age_grace: Duration::from_secs(5),
            bin: default_bin(),
            json: None,
            flags: Vec::new(),
        }
    }

    /// Tiny counts: every part runs, nothing is measured seriously.
    pub fn quick() -> Options {
        Options {
            quick: true,
            clients: 90,
            restarts: 1,
            burst_sizes: vec![100],
            burst_backlogs: vec![default_flags().backlog],
            rebalance_clients: 60,
            age: Duration::from_secs(2),
            age_grace: Duration::from_secs(1),
            ..Options::full()
        }
    }

    /// `--quick`, `--only PART`, `--clients N`, `--restarts N`, `--item-every D`, `--spreads
    /// A,B`, `--bursts N,M`, `--backlogs N,M`, `--rebalance-clients N`,
    /// `--age D`, `--age-grace D`, `--flags 'FLAGS'`, `--bin PATH`, `--json
    /// PATH`. Other
    /// arguments (cargo bench adds `--bench`) are ignored.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let args: Vec<String> = args.into_iter().collect();
        let mut opts = if args.iter().any(|a| a == "--quick") {
            Options::quick()
        } else {
            Options::full()
        };
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            let positive = |v: &str, name: &str| {
                v.parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("{name} takes positive integers"))
            };
            let duration = |v: &str, name: &str| {
                humantime::parse_duration(v).map_err(|e| format!("{name}: {e}"))
            };
            match arg.as_str() {
                "--only" => {
                    let part = value(&arg)?;
                    if !["burst", "storm", "rebalance"].contains(&part.as_str()) {
                        return Err("--only takes burst, storm or rebalance".into());
                    }
                    opts.only = Some(part);
                }
                "--clients" => opts.clients = positive(&value(&arg)?, &arg)?,
                "--restarts" => opts.restarts = positive(&value(&arg)?, &arg)?,
                "--item-every" => opts.item_every = duration(&value(&arg)?, &arg)?,
                "--rebalance-clients" => opts.rebalance_clients = positive(&value(&arg)?, &arg)?,
                "--spreads" => {
                    let v = value(&arg)?;
                    for s in v.split(',') {
                        duration(s, &arg)?;
                    }
                    opts.spreads = v.split(',').map(str::to_owned).collect();
                }
                "--bursts" => {
                    let v = value(&arg)?;
                    opts.burst_sizes = v
                        .split(',')
                        .map(|n| positive(n, &arg))
                        .collect::<Result<_, _>>()?;
                }
                "--backlogs" => {
                    let v = value(&arg)?;
                    opts.burst_backlogs = v
                        .split(',')
                        .map(|n| positive(n, &arg).map(|n| n as u32))
                        .collect::<Result<_, _>>()?;
                }
                "--age" => opts.age = duration(&value(&arg)?, &arg)?,
                "--age-grace" => opts.age_grace = duration(&value(&arg)?, &arg)?,
                "--bin" => opts.bin = PathBuf::from(value(&arg)?),
                "--json" => opts.json = Some(PathBuf::from(value(&arg)?)),
                "--flags" => {
                    opts.flags = value(&arg)?.split_whitespace().map(str::to_owned).collect()
                }
                _ => {}
            }
        }
        Ok(opts)
    }

    fn runs(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == part)
    }
}

/// lameduck's defaults, as its own command line reads them.
fn default_flags() -> ::lameduck::cli::Cli {
    use clap::Parser;
    ::lameduck::cli::Cli::try_parse_from(["lameduck"]).expect("the defaults parse")
}

/// The binary cargo built beside this bench, else `target/release/lameduck`.
fn default_bin() -> PathBuf {
    option_env!("CARGO_BIN_EXE_lameduck")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/lameduck"))
}

fn main() -> ExitCode {
    let opts = match Options::from_args(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("storm: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(figures) => {
            print!("{}", figures.table());
            if let Some(path) = &opts.json
                && let Err(e) = figures.write_json(path)
            {
                eprintln!("storm: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("storm: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every part asked for. A row that fails ends early with its error;
/// the others still run.
pub fn run(opts: &Options) -> Result<Figures, BoxError> {
    // Upgraded servers are the bench's grandchildren; see `process`.
    process::become_subreaper()?;
    let nofile = raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("storm-client")
        .enable_all()
        .build()?;
    let mut figures = Figures {
        machine: measure::machine(),
        date: measure::today(),
        quick: opts.quick,
        somaxconn: netstat::somaxconn(),
        nofile,
        bursts: Vec::new(),
        storms: Vec::new(),
        rebalances: Vec::new(),
    };
    if opts.runs("burst") {
        for &backlog in &opts.burst_backlogs {
            for &n in &opts.burst_sizes {
                eprintln!("storm: burst of {n} at backlog {backlog}");
                figures.bursts.push(burst::row(&rt, &opts.bin, backlog, n));
            }
        }
    }
    if opts.runs("storm") {
        let mut spreads = vec!["0s".to_owned()];
        match opts.spreads.is_empty() {
            true => {
                spreads.push(humantime::format_duration(default_flags().drain_spread()).to_string())
            }
            false => spreads.extend(opts.spreads.iter().filter(|s| *s != "0s").cloned()),
        }
        spreads.dedup();
        for method in ["inplace", "pair"] {
            for spread in &spreads {
                eprintln!(
                    "storm: {method}, --drain-spread {spread}, {} clients",
                    opts.clients
                );
                figures.storms.push(storm_row(&rt, opts, method, spread));
            }
        }
    }
    if opts.runs("rebalance") {
        for age in [None, Some(opts.age)] {
            eprintln!("storm: rebalance, --max-connection-age {age:?}");
            figures.rebalances.push(rebalance::row(&rt, opts, age));
        }
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(figures)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one, and the hard one too
/// if this process may (root may, up to `fs.nr_open`). Returns the limit
/// in force.
fn raise_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a plain syscall on a struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        let wanted = limit.rlim_max.max(200_000);
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: wanted,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// One storm row: `method` (`inplace`, `pair`) at `--drain-spread spread`.
fn storm_row(rt: &Runtime, opts: &Options, method: &str, spread: &str) -> StormRow {
    let backlog = default_flags().backlog;
    let mut row = StormRow {
        name: format!(
            "storm_{method}_spread{spread}_c{}{}",
            opts.clients,
            opts.flags.concat()
        ),
        clients: opts.clients,
        spread: spread.to_owned(),
        backlog,
        listen_overflows: 0,
        listen_drops: 0,
        wave: Default::default(),
        failures: Default::default(),
        items_created: 0,
        p99_near_items_ms: 0.0,
        p99_apart_ms: 0.0,
        near_items: 0,
        restarts: Vec::new(),
        error: None,
    };
    let db =
        std::env::temp_dir().join(format!("lameduck-storm-{}-{method}.db", std::process::id()));
    let args: Vec<String> = [
        "--db",
        &db.to_string_lossy(),
        "--drain-spread",
        spread,
        // The crowd, with room: a refusal at the limit would be counted
        // as the storm's, and it is not.
        "--max-connections",
        &(opts.clients * 2).to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(opts.flags.iter().cloned())
    .collect();
    let started = match method {
        "inplace" => Servers::in_place(&opts.bin, &args),
        _ => Servers::pair(&opts.bin, &args, backlog),
    };
    let mut servers = match started {
        Ok(servers) => servers,
        Err(e) => {
            row.error = Some(format!("start: {e}"));
            return row;
        }
    };
    let addr = servers.addr();
    let stop_writer = CancellationToken::new();
    let writer = rt.spawn(write_items(addr, opts.item_every, stop_writer.clone()));
    let crowd = Crowd::start(rt, addr, Mix::thirds(opts.clients), 0);
    let mut all = Vec::new();
    if !crowd.wait_connected(CONNECT_LIMIT) {
        row.error = Some(format!(
            "only {} of {} clients connected",
            crowd.connected(),
            opts.clients
        ));
    } else {
        std::thread::sleep(SETTLE);
        for _ in 0..opts.restarts {
            let (syn_before, failed_before) = (ListenCounters::now(), crowd.failures());
            let began = Instant::now();
            let restarted = servers.restart();
            let took = began.elapsed();
            let back = crowd.wait_connected(CONNECT_LIMIT);
            std::thread::sleep(SETTLE);
            let restarted = match restarted {
                Ok(restarted) => restarted,
                Err(e) => {
                    row.error = Some(format!("restart: {e}"));
                    break;
                }
            };
            let reconnects = crowd.reconnects_since(began);
            let syn = ListenCounters::now()
                .zip(syn_before)
                .map(|(after, before)| after.since(&before));
            row.restarts.push(StormRestart {
                syn,
                wave: report::Wave::of(&reconnects),
                failures: crowd.failures().since(&failed_before),
                old_exit: format!("{:?}", restarted.old_exit),
                took_ms: report::ms(took),
            });
            all.extend(reconnects);
            if !back {
                row.error = Some(format!(
                    "only {} of {} clients came back; last log lines:\n{}",
                    crowd.connected(),
                    opts.clients,
                    servers.log_tail(8)
                ));
                break;
            }
        }
    }
    stop_writer.cancel();
    let written = rt.block_on(writer).unwrap_or_default();
    // The feed reads the store every 100 ms: let the last items reach the
    // hub clients before they stop.
    std::thread::sleep(Duration::from_secs(1));
    let hubs = crowd.stop(rt);
    row.failures = crowd_failures(&row);
    row.failures.lost += crowd::hub_lost(&hubs, &written.ids);
    row.failures.non_2xx += written.failed;
    row.items_created = written.ids.len();
    row.sum_up(&all, &written.at);
    if let Err(e) = servers.stop() {
        row.error.get_or_insert(format!("stop: {e}"));
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    row
}

/// The failures of every restart of `row`, summed.
fn crowd_failures(row: &StormRow) -> crowd::Failures {
    row.restarts
        .iter()
        .fold(Default::default(), |mut sum: crowd::Failures, r| {
            let f = r.failures;
            sum.refused += f.refused;
            sum.reset += f.reset;
            sum.broken += f.broken;
            sum.non_2xx += f.non_2xx;
            sum.timeout += f.timeout;
            sum.lost += f.lost;
            sum.duplicated += f.duplicated;
            sum.keepalive += f.keepalive;
            sum.streams += f.streams;
            sum.sockets += f.sockets;
            sum
        })
}

/// What the item writer did: the ids created, when each create was
/// answered, and how many creates failed.
#[derive(Debug, Default)]
struct Written {
    ids: Vec<u64>,
    at: Vec<Instant>,
    failed: u64,
}

/// Creates an item `every` so long until stopped.
async fn write_items(addr: SocketAddr, every: Duration, stop: CancellationToken) -> Written {
    let mut written = Written::default();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return written,
            _ = tick.tick() => {}
        }
        match create_item(addr).await {
            Some(id) => {
                written.ids.push(id);
                written.at.push(Instant::now());
            }
            None => written.failed += 1,
        }
    }
}

/// One `POST /api/items` on a new connection; the new item's id.
async fn create_item(addr: SocketAddr) -> Option<u64> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let body = r#"{"name":"storm"}"#;
    let head = format!(
        "POST /api/items HTTP/1.1\r\nHost: storm\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    let mut reader = ResponseReader::new();
    let res = tokio::time::timeout(
        Duration::from_secs(10),
        reader.read_response(&mut stream, Method::Other),
    )
    .await
    .ok()?
    .ok()??;
    if res.status != 201 {
        return None;
    }
    let item: serde_json::Value = serde_json::from_slice(&res.body).ok()?;
    item["id"].as_u64()
}
