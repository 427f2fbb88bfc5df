//! `--cost`: what lameduck costs, counted in instructions, not timed.
//!
//! A timed run on a shared machine moves by 10–20 % from round to round,
//! so a gap of 3 % cannot be seen in it. The number of instructions a
//! server executes for a request can be counted exactly: valgrind's
//! callgrind runs the server on a simulated CPU and counts every one, and
//! two runs agree to about 0.01 %.
//!
//! Each server runs in a process of its own under callgrind: **A** is the
//! `lameduck` binary with its defaults, **B** the bench's bare hyper loop
//! (this executable again, with `--serve-bare`). For each figure, each
//! server is run twice, with `n` and with `3n` units of work (requests,
//! connections), and then stopped with SIGTERM: the difference of the two
//! totals, divided by `2n`, is the cost of one unit. Start-up, shutdown
//! and everything else that does not grow with the work cancel out.
//!
//! | figure | one unit |
//! |---|---|
//! | `keepalive_request` | `GET /healthz` on one kept-alive HTTP/1 connection, answered |
//! | `h2_request` | `GET /healthz` as one stream of one HTTP/2 connection (h2c, prior knowledge), answered |
//! | `churned_connection` | connect, `GET /healthz` with `Connection: close`, read to the end, close |
//! | `drained_idle_connection` | the drain of one idle keep-alive connection: SIGTERM to the exit, counted from a zeroing of the counters (`callgrind_control -z`) just before the signal; A with `--drain-spread 0s`, B with hyper-util's graceful watcher |
//! | `upgrade` | one in-place upgrade with nothing in flight: SIGHUP to the old process's exit, the old process's part and the new one's start, both under callgrind (`--trace-children`); A only, bare hyper has none |
//! | `hub_delivery` | one item delivered to one open WebSocket of the hub (`GET /api/ws`), with 50 sockets open and one `POST /api/items` per item (its share, a fiftieth, is in the figure); A only, with `--db :memory:` so that the store's disk work stays out of it |
//!
//! The client runs outside callgrind, with blocking sockets, one unit at
//! a time: its instructions are not counted, and its speed does not matter.
//! The count says nothing about cache misses or system calls' time in the
//! kernel; the timed figures stay for those.
//!
//! Beside each figure the functions where A spends the most instructions
//! per unit beyond B (`callgrind_annotate`'s self counts, differenced the
//! same way) say where to cut.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use lameduck::testing::http1::{Method, ResponseReader};
use lameduck::testing::process::{Exit, Log, signal, wait_exit};

/// The flag that makes this executable serve as B for the cost mode.
pub const SERVE_BARE: &str = "--serve-bare";

/// The same, with hyper-util's graceful shutdown at SIGTERM: B for the
/// drain.
pub const SERVE_BARE_GRACEFUL: &str = "--serve-bare-graceful";

/// B over HTTP/2 (prior knowledge), with hyper's HTTP/2 server.
pub const SERVE_BARE_H2: &str = "--serve-bare-h2";

/// Every mode this executable serves B in.
pub const SERVE_MODES: [&str; 3] = [SERVE_BARE, SERVE_BARE_GRACEFUL, SERVE_BARE_H2];

/// Longer than A's keep-alive grace under callgrind's slowdown: the
/// drain's idle connections are dormant, so they close at once.
fn idle_wait() -> Duration {
    lameduck::Config::default().keepalive_grace + Duration::from_millis(1_000)
}

/// The targets: A's instructions per unit at most B's.
pub const TARGET: f64 = 1.00;

/// How long a server under callgrind may take to start or to exit.
const PROCESS_WAIT: Duration = Duration::from_secs(120);

/// One counted figure.
#[derive(Debug, Clone)]
pub struct Cost {
    pub name: &'static str,
    /// Instructions per unit.
    pub a: f64,
    pub b: f64,
    /// The functions where A spends the most beyond B, per unit.
    pub top: Vec<(String, f64)>,
}

impl Cost {
    pub fn ratio(&self) -> f64 {
        self.a / self.b
    }
}

/// What the cost mode needs from outside: valgrind, and its
/// `callgrind_annotate`.
pub fn missing_tools() -> Option<String> {
    for tool in ["valgrind", "callgrind_annotate"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            // Spawned at all: `callgrind_annotate --version` exits 255.
            .is_ok();
        if !found {
            return Some(format!(
                "{tool} is not installed: the cost mode counts instructions under \
                 valgrind's callgrind (Debian: apt-get install valgrind)"
            ));
        }
    }
    None
}

/// Which server a run counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Which {
    A,
    B,
}

/// The programs: `lameduck` for A, `bench` (this executable, with
/// [`SERVE_BARE`]) for B; the counts' files go to `out_dir`.
#[derive(Debug, Clone)]
pub struct Programs {
    pub lameduck: PathBuf,
    pub bench: PathBuf,
    pub out_dir: PathBuf,
}

/// Counts every figure with `n` as the small count of requests (a fifth
/// of it for connections, churned or drained).
pub fn run(programs: &Programs, n: u64) -> std::io::Result<Vec<Cost>> {
    std::fs::create_dir_all(&programs.out_dir)?;
    let conns = (n / 5).max(10);
    // Each drained connection holds a descriptor in this process, and
    // one in the server's (which inherits this limit).
    super::measure::raise_nofile(3 * conns + 256);
    Ok(vec![
        figure(programs, "keepalive_request", n, &Work::KEEPALIVE)?,
        figure(programs, "h2_request", n, &Work::H2)?,
        figure(programs, "churned_connection", conns, &Work::CHURN)?,
        figure(programs, "drained_idle_connection", conns, &Work::DRAIN)?,
    ])
}

/// What one figure does to each server.
struct Work {
    /// The client's units, against the server at the address. What it
    /// returns is held open until the server has exited.
    units: fn(SocketAddr, u64) -> std::io::Result<Vec<TcpStream>>,
    /// Count only from just before the SIGTERM (the drain's figure).
    count_from_stop: bool,
    /// A's flags beyond `--addr`, and B's mode.
    a_flags: &'static [&'static str],
    b_mode: &'static str,
}

impl Work {
    const KEEPALIVE: Work = Work {
        units: keepalive,
        count_from_stop: false,
        a_flags: &[],
        b_mode: SERVE_BARE,
    };
    const H2: Work = Work {
        units: h2_requests,
        count_from_stop: false,
        a_flags: &[],
        b_mode: SERVE_BARE_H2,
    };
    const CHURN: Work = Work {
        units: churn,
        count_from_stop: false,
        a_flags: &[],
        b_mode: SERVE_BARE,
    };
    // A only: `b_mode` is never started. `--db :memory:` keeps the
    // store's disk work out of the figure.
    const HUB: Work = Work {
        units: hub_deliveries,
        count_from_stop: false,
        a_flags: &["--db", ":memory:"],
        b_mode: SERVE_BARE,
    };
    // `--drain-spread 0s`: the drain's own cost, not the pacing of its
    // goodbyes (which the storm bench measures).
    const DRAIN: Work = Work {
        units: idle,
        count_from_stop: true,
        a_flags: &["--drain-spread", "0s"],
        b_mode: SERVE_BARE_GRACEFUL,
    };
}

/// One figure: A and B, each at `n` and `3n` units of `work`.
fn figure(programs: &Programs, name: &'static str, n: u64, work: &Work) -> std::io::Result<Cost> {
    let mut per_unit = HashMap::new();
    let mut functions = HashMap::new();
    for which in [Which::A, Which::B] {
        let small = counted(programs, which, name, n, work)?;
        let large = counted(programs, which, name, 3 * n, work)?;
        let units = (2 * n) as f64;
        per_unit.insert(which, (large.total - small.total) as f64 / units);
        let mut diff: HashMap<String, f64> = HashMap::new();
        for (f, ir) in &large.functions {
            let before = small.functions.get(f).copied().unwrap_or(0);
            diff.insert(f.clone(), (*ir as f64 - before as f64) / units);
        }
        functions.insert(which, diff);
    }
    let (a_fns, b_fns) = (&functions[&Which::A], &functions[&Which::B]);
    let mut top: Vec<(String, f64)> = a_fns
        .iter()
        .map(|(f, a)| (f.clone(), a - b_fns.get(f).copied().unwrap_or(0.0)))
        .filter(|(_, more)| *more >= 1.0)
        .filter(|(f, _)| !(work.count_from_stop && open_at_rest(f)))
        .collect();
    top.sort_by(|x, y| y.1.total_cmp(&x.1));
    top.truncate(10);
    Ok(Cost {
        name,
        a: per_unit[&Which::A],
        b: per_unit[&Which::B],
        top,
    })
}

/// The frames every thread of a server at rest is inside: the entry
/// points, the runtime's loops, `main` blocked on the server. A count
/// zeroed while they are open (the drain's) charges each of them, as its
/// own, everything its callees did after the zeroing; their self counts
/// there are the thread's whole work again, not theirs, so the drain's
/// list leaves them out. These are whole names…
const AT_REST_NAMED: [&str; 4] = ["(below main)", "main", "clone", "start_thread"];

/// …and these are parts of names (generic and closure frames).
const AT_REST_WITHIN: [&str; 14] = [
    "__libc_start_main",
    "std::rt::lang_start",
    "__rust_begin_short_backtrace",
    "lameduck::main",
    "Runtime::block_on",
    "runtime::enter_runtime",
    "Thread>::new::thread_start",
    "FnOnce::call_once{{vtable.shim}}",
    "multi_thread::worker::run",
    "blocking::pool::Inner::run",
    "BlockingTask<T>",
    "Scoped<T>::set",
    "task::raw::poll",
    "Core<T,S>::poll",
];

/// Whether `function` is a frame open at rest. An address (`0x…`) is a
/// frame without a symbol: libc's entry code.
fn open_at_rest(function: &str) -> bool {
    function.starts_with("0x")
        || AT_REST_NAMED.contains(&function)
        || AT_REST_WITHIN.iter().any(|part| function.contains(part))
}

/// One process's count: the total, and each function's own instructions.
struct Count {
    total: u64,
    functions: HashMap<String, u64>,
}

/// Starts `which` under callgrind, does `units` of `work` against it,
/// stops it with SIGTERM, and reads its count.
fn counted(
    programs: &Programs,
    which: Which,
    name: &str,
    units: u64,
    work: &Work,
) -> std::io::Result<Count> {
    let out = programs
        .out_dir
        .join(format!("callgrind.{name}.{which:?}.{units}"));
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()));
    match which {
        Which::A => cmd
            .arg(&programs.lameduck)
            .args(["--addr", "127.0.0.1:0"])
            .args(work.a_flags),
        Which::B => cmd.arg(&programs.bench).arg(work.b_mode),
    };
    let server = Server::start(cmd)?;
    let held = (work.units)(server.addr, units);
    if work.count_from_stop && held.is_ok() {
        std::thread::sleep(idle_wait());
        zero_counters(server.pid)?;
    }
    server.stop()?;
    drop(held?);
    Ok(Count {
        total: total_of(&out)?,
        functions: functions_of(&out)?,
    })
}

/// A figure of A's alone, with nothing in bare hyper to compare it to
/// (an upgrade, a hub delivery): its instructions per unit, and the
/// functions A spends them in.
#[derive(Debug, Clone)]
pub struct OwnCost {
    pub name: &'static str,
    pub per_unit: f64,
    pub top: Vec<(String, f64)>,
}

impl OwnCost {
    /// From the counts at `n` and `3n` units.
    fn between(name: &'static str, small: &Count, large: &Count, n: u64) -> OwnCost {
        let units = (2 * n) as f64;
        let mut top: Vec<(String, f64)> = large
            .functions
            .iter()
            .map(|(f, ir)| {
                let before = small.functions.get(f).copied().unwrap_or(0);
                (f.clone(), (*ir as f64 - before as f64) / units)
            })
            .filter(|(_, per)| *per >= 1.0)
            .collect();
        top.sort_by(|x, y| y.1.total_cmp(&x.1));
        top.truncate(10);
        OwnCost {
            name,
            per_unit: (large.total - small.total) as f64 / units,
            top,
        }
    }
}

/// The hub's figure, `hub_delivery`: `n` and `3n` deliveries of an item
/// to a hub socket (see the module's table).
pub fn hub(programs: &Programs, n: u64) -> std::io::Result<OwnCost> {
    std::fs::create_dir_all(&programs.out_dir)?;
    let small = counted(programs, Which::A, "hub_delivery", n, &Work::HUB)?;
    let large = counted(programs, Which::A, "hub_delivery", 3 * n, &Work::HUB)?;
    Ok(OwnCost::between("hub_delivery", &small, &large, n))
}

/// Counts `n` and `3n` upgrades of A, with nothing in flight: each adds a
/// process that starts and then hands over, while the first start and
/// the last shutdown are in both counts and cancel out.
pub fn upgrade(programs: &Programs, n: u64) -> std::io::Result<OwnCost> {
    // The new processes are the old ones' children; when an old one
    // exits, they are this process's to reap.
    lameduck::testing::process::become_subreaper()?;
    let small = counted_upgrades(programs, n)?;
    let large = counted_upgrades(programs, 3 * n)?;
    Ok(OwnCost::between("upgrade", &small, &large, n))
}

/// Starts A under callgrind, following the processes it starts
/// (`--trace-children`), upgrades it `upgrades` times by SIGHUP, each
/// time waiting for the new process to be ready and the old one to exit,
/// then stops the last with SIGTERM: the counts of every process, summed.
fn counted_upgrades(programs: &Programs, upgrades: u64) -> std::io::Result<Count> {
    let prefix = format!("callgrind.upgrade.{upgrades}.");
    for old in std::fs::read_dir(&programs.out_dir)? {
        let old = old?;
        if old.file_name().to_string_lossy().starts_with(&prefix) {
            std::fs::remove_file(old.path())?;
        }
    }
    let out = programs.out_dir.join(format!("{prefix}%p"));
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg("--trace-children=yes")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&programs.lameduck)
        .args(["--addr", "127.0.0.1:0"])
        // A new process under callgrind starts some fifty times slower.
        .args(["--upgrade-timeout", "300s"]);
    let mut server = Server::start(cmd)?;
    for _ in 0..upgrades {
        let mark = server.log.mark();
        signal(server.pid, libc::SIGHUP)?;
        let ready = lameduck::testing::process::poll_until(PROCESS_WAIT, || {
            server.log.find_after(mark, |line| {
                line.contains("the new process is ready")
                    .then(|| {
                        lameduck::testing::process::field(line, "new_pid")?
                            .parse()
                            .ok()
                    })
                    .flatten()
            })
        });
        let Some(new_pid) = ready else {
            return Err(std::io::Error::other(format!(
                "no new process was ready: {}",
                server.log.tail(5)
            )));
        };
        match wait_exit(server.pid, PROCESS_WAIT) {
            Some(Exit::Code(0) | Exit::Unknown) => server.pid = new_pid,
            other => {
                return Err(std::io::Error::other(format!(
                    "the old process exited {other:?}: {}",
                    server.log.tail(5)
                )));
            }
        }
    }
    server.stop()?;
    let mut count = Count {
        total: 0,
        functions: HashMap::new(),
    };
    for file in std::fs::read_dir(&programs.out_dir)? {
        let file = file?;
        if !file.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        count.total += total_of(&file.path())?;
        for (f, ir) in functions_of(&file.path())? {
            *count.functions.entry(f).or_insert(0) += ir;
        }
    }
    Ok(count)
}

/// `callgrind_control -z`: every counter of the process back to 0, so
/// that its count starts here.
fn zero_counters(pid: i32) -> std::io::Result<()> {
    let zeroed = Command::new("callgrind_control")
        .arg("-z")
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if zeroed.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "callgrind_control -z: {zeroed}"
        )))
    }
}

/// A server process under callgrind, and the address it listens on. Its
/// stderr is read into `log` (`lameduck::testing::process`), so the pipe
/// never fills.
struct Server {
    pid: i32,
    addr: SocketAddr,
    log: Log,
}

impl Server {
    /// Spawns `cmd` and waits for its `listening on ADDR` line.
    fn start(mut cmd: Command) -> std::io::Result<Server> {
        let log = Log::default();
        let pid = log.spawn(&mut cmd)?.id() as i32;
        let line = log.wait_for_nth("listening on ", 1, PROCESS_WAIT);
        match line.as_deref().and_then(listening_on) {
            Some(addr) => Ok(Server { pid, addr, log }),
            None => {
                let _ = signal(pid, libc::SIGKILL);
                let _ = wait_exit(pid, PROCESS_WAIT);
                Err(std::io::Error::other(format!(
                    "no `listening on` line from the server: {}",
                    log.tail(5)
                )))
            }
        }
    }

    /// SIGTERM, and the wait for a clean exit (callgrind writes its count
    /// then).
    fn stop(self) -> std::io::Result<()> {
        signal(self.pid, libc::SIGTERM)?;
        match wait_exit(self.pid, PROCESS_WAIT) {
            Some(Exit::Code(0)) => Ok(()),
            Some(other) => Err(std::io::Error::other(format!(
                "server exited {other:?}: {}",
                self.log.tail(5)
            ))),
            None => {
                let _ = signal(self.pid, libc::SIGKILL);
                let _ = wait_exit(self.pid, PROCESS_WAIT);
                Err(std::io::Error::other("server did not exit"))
            }
        }
    }
}

/// The address in a `listening on 127.0.0.1:PORT` line, the form both
/// servers log.
fn listening_on(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The `summary:` line of a callgrind output file: every instruction of
/// every thread.
fn total_of(out: &Path) -> std::io::Result<u64> {
    let text = std::fs::read_to_string(out)?;
    text.lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no summary in {}", out.display())))
}

/// Each function's own instructions, from `callgrind_annotate`. Lines look
/// like `1,234,567 (12.34%)  src/file.rs:crate::function [/path/obj]`; the
/// name is kept without its file and object, so that the same function
/// in the two executables compares.
fn functions_of(out: &Path) -> std::io::Result<HashMap<String, u64>> {
    let annotated = Command::new("callgrind_annotate")
        .args(["--threshold=100", "--inclusive=no", "--auto=no"])
        .arg(out)
        .output()?;
    let text = String::from_utf8_lossy(&annotated.stdout);
    let mut functions = HashMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some((count, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(count) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        // `(12.34%)  file:function`: anything else is a header or a total.
        let Some((_, name)) = rest.split_once(")  ").filter(|_| rest.starts_with('(')) else {
            continue;
        };
        if name.starts_with("PROGRAM TOTALS") {
            continue;
        }
        let name = without_file(name.split(" [").next().unwrap_or(name));
        // `(12x)`: how often it was called; not part of the name.
        let name = match name.rsplit_once(" (") {
            Some((f, calls)) if calls.ends_with("x)") => f,
            _ => name,
        };
        *functions.entry(name.to_owned()).or_insert(0) += count;
    }
    Ok(functions)
}

/// `file:function` without `file:`: the first colon that is not half of
/// a path separator `::`.
fn without_file(name: &str) -> &str {
    let bytes = name.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let lone = b == b':' && bytes.get(i + 1) != Some(&b':') && (i == 0 || bytes[i - 1] != b':');
        if lone {
            return &name[i + 1..];
        }
    }
    name
}

/// `units` requests for `/healthz` on one kept-alive connection.
fn keepalive(addr: SocketAddr, units: u64) -> std::io::Result<Vec<TcpStream>> {
    let mut conn = TcpStream::connect(addr)?;
    let mut reader = ResponseReader::new();
    for _ in 0..units {
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: cost\r\n\r\n")?;
        read_response(&mut conn, &mut reader)?;
    }
    Ok(Vec::new())
}

/// `units` requests for `/healthz`, one stream after another on one
/// HTTP/2 connection (the `h2` crate's client, on a runtime of its own).
fn h2_requests(addr: SocketAddr, units: u64) -> std::io::Result<Vec<TcpStream>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let (mut client, conn) = h2::client::handshake(tcp)
            .await
            .map_err(std::io::Error::other)?;
        let driver = tokio::spawn(conn);
        for _ in 0..units {
            let req = http::Request::get(format!("http://{addr}/healthz"))
                .body(())
                .expect("a request");
            client = client.ready().await.map_err(std::io::Error::other)?;
            let (answer, _) = client
                .send_request(req, true)
                .map_err(std::io::Error::other)?;
            let res = answer.await.map_err(std::io::Error::other)?;
            if res.status() != 200 {
                return Err(std::io::Error::other(format!(
                    "not a 200: {}",
                    res.status()
                )));
            }
            let mut body = res.into_body();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.map_err(std::io::Error::other)?;
                let _ = body.flow_control().release_capacity(chunk.len());
            }
        }
        drop(client);
        driver.abort();
        Ok(Vec::new())
    })
}

/// `units` keep-alive connections, each answered once and then left idle
/// and open, for the drain to close.
fn idle(addr: SocketAddr, units: u64) -> std::io::Result<Vec<TcpStream>> {
    let mut held = Vec::new();
    let mut reader = ResponseReader::new();
    for _ in 0..units {
        let mut conn = TcpStream::connect(addr)?;
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: cost\r\n\r\n")?;
        reader.reset();
        read_response(&mut conn, &mut reader)?;
        held.push(conn);
    }
    Ok(held)
}

/// `units` connections, each one `GET /healthz` with `Connection: close`,
/// read to the server's close.
fn churn(addr: SocketAddr, units: u64) -> std::io::Result<Vec<TcpStream>> {
    for _ in 0..units {
        let mut conn = TcpStream::connect(addr)?;
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: cost\r\nConnection: close\r\n\r\n")?;
        let mut all = Vec::new();
        conn.read_to_end(&mut all)?;
        if !all.starts_with(b"HTTP/1.1 200") {
            return Err(std::io::Error::other("not a 200"));
        }
    }
    Ok(Vec::new())
}

/// The hub sockets `hub_delivery` holds open.
const HUB_SOCKETS: u64 = 50;

/// `units` deliveries: [`HUB_SOCKETS`] hub sockets open, then one item
/// created after another, each read on every socket before the next is
/// created (tungstenite's blocking client). The sockets are dropped at
/// the end, which ends their sessions as the server's count goes on; the
/// same in both counts.
fn hub_deliveries(addr: SocketAddr, units: u64) -> std::io::Result<Vec<TcpStream>> {
    use tokio_tungstenite::tungstenite::{self, Message};
    let mut sockets = Vec::new();
    for _ in 0..HUB_SOCKETS {
        let conn = TcpStream::connect(addr)?;
        let (socket, _) = tungstenite::client::client(format!("ws://{addr}/api/ws"), conn)
            .map_err(|e| std::io::Error::other(format!("hub handshake: {e}")))?;
        sockets.push(socket);
    }
    for _ in 0..(units / HUB_SOCKETS).max(1) {
        let mut conn = TcpStream::connect(addr)?;
        let body = r#"{"name":"cost"}"#;
        write!(
            conn,
            "POST /api/items HTTP/1.1\r\nHost: cost\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer)?;
        if !answer.starts_with(b"HTTP/1.1 201") {
            return Err(std::io::Error::other("the item was not created"));
        }
        for socket in &mut sockets {
            // The item; a ping (tungstenite answers it) is skipped.
            loop {
                match socket.read() {
                    Ok(Message::Text(_)) => break,
                    Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                    other => {
                        return Err(std::io::Error::other(format!(
                            "expected the item, got {other:?}"
                        )));
                    }
                }
            }
        }
    }
    Ok(Vec::new())
}

/// Reads one whole response (`lameduck::testing::http1`'s reader); fails
/// on anything but a 200.
fn read_response(conn: &mut TcpStream, reader: &mut ResponseReader) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let parsed = reader
            .next(Method::Other)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        match parsed {
            Some(res) if res.status == 200 => return Ok(()),
            Some(res) => return Err(std::io::Error::other(format!("not a 200: {}", res.status))),
            None => match conn.read(&mut buf)? {
                0 => return Err(std::io::Error::other("closed before the answer")),
                n => reader.feed(&buf[..n]),
            },
        }
    }
}

/// B for the cost mode (`mode` is one of [`SERVE_MODES`]): the bare hyper loop on a runtime like the
/// binary's, until SIGTERM; then, gracefully or not, a clean exit, so
/// callgrind writes.
pub fn serve_bare(mode: &str) -> std::process::ExitCode {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        if mode == SERVE_BARE_H2 {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            eprintln!(
                "listening on {}",
                listener.local_addr().expect("an address")
            );
            loop {
                tokio::select! {
                    _ = term.recv() => break,
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            tokio::spawn(super::servers::serve_b_h2(stream));
                        }
                    }
                }
            }
        } else if mode == SERVE_BARE_GRACEFUL {
            let server = super::servers::ServerBGraceful::start()
                .await
                .expect("bind");
            eprintln!("listening on {}", server.addr);
            term.recv().await;
            server.shutdown().await;
        } else {
            let server = super::servers::ServerB::start().await.expect("bind");
            eprintln!("listening on {}", server.addr);
            term.recv().await;
            server.stop();
        }
    });
    std::process::ExitCode::SUCCESS
}

/// The table: instructions per unit, A/B, and where A spends more; and
/// A's own figures (the upgrade, the hub), if they were taken.
pub fn table(costs: &[Cost], own: &[OwnCost]) -> String {
    let mut out = String::from(
        "instructions per unit, counted under callgrind (difference of two runs, n and 3n)\n\
         figure                        A (lameduck)   B (bare hyper)     A/B   target\n",
    );
    for c in costs {
        let verdict = if c.ratio() <= TARGET { "met" } else { "MISSED" };
        out.push_str(&format!(
            "{:<28} {:>14.0} {:>16.0} {:>7.3}   <= {TARGET:.2} {verdict}\n",
            c.name,
            c.a,
            c.b,
            c.ratio()
        ));
    }
    for o in own {
        out.push_str(&format!(
            "{:<28} {:>14.0} {:>16} {:>7}   (nothing in bare hyper to compare)\n",
            o.name, o.per_unit, "-", "-"
        ));
    }
    for c in costs {
        out.push_str(&format!(
            "\n{}: where A spends more than B (instructions per unit, self)\n",
            c.name
        ));
        for (f, more) in &c.top {
            out.push_str(&format!("  {more:>9.0}  {f}\n"));
        }
    }
    for o in own {
        out.push_str(&format!(
            "\n{}: where A spends its instructions (per unit, self)\n",
            o.name
        ));
        for (f, per) in &o.top {
            out.push_str(&format!("  {per:>9.0}  {f}\n"));
        }
    }
    out
}
