//! The real `lameduck` binary, started on an ephemeral port, for tests of
//! the signal path and the exit codes; and, for upgrades, the processes it
//! starts and a small loop of clients.
//!
//! Starting, signalling and waiting for the process is the library's
//! (`lameduck::testing::binary`), which the benches use too; what is here
//! is the tests' side of it: the binary this build made, and a panic, with
//! the logs, wherever a step fails.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use lameduck::testing::binary::Lameduck;
use lameduck::testing::load::{self, Load, Plan, Record};
use lameduck::testing::process::{self, Exit, Log};
use tokio_util::sync::CancellationToken;

/// How long the binary may take to log `listening on`.
const START_LIMIT: Duration = Duration::from_secs(20);

/// The binary this build made.
pub fn program() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lameduck"))
}

/// A running `lameduck` process, killed if the test ends first.
pub struct Binary {
    process: Lameduck,
    /// The address from its `listening on` log line.
    pub addr: SocketAddr,
}

impl Binary {
    /// Starts `lameduck --addr 127.0.0.1:0 ARGS…` and waits for it to listen.
    pub fn start(args: &[&str]) -> Binary {
        Self::start_from(program(), args, &[])
    }

    /// [`Binary::start`] with the binary at `program` (a copy, for upgrade
    /// tests) and extra environment variables.
    pub fn start_from(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> Binary {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::spawn(Lameduck::command(program, loopback, args), envs)
    }

    /// Runs `command` (which starts the binary, maybe through a wrapper)
    /// with the test environment plus `envs`, and waits for the first
    /// `listening on` line. Its stderr is collected, and so is that of
    /// every process it starts (they inherit it).
    pub fn spawn(mut command: Command, envs: &[(&str, &str)]) -> Binary {
        Lameduck::environment(&mut command).envs(envs.iter().copied());
        let process = Lameduck::spawn(&Log::default(), command, START_LIMIT)
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = process.addr();
        Binary { process, addr }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid() as u32
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) {
        self.process.signal(signal).expect("kill failed");
    }

    /// Waits up to `within` for the process to exit; returns its exit code.
    /// Panics if it does not (and the process is killed as it drops).
    pub fn exit_code_within(&mut self, within: Duration) -> i32 {
        match self.process.wait_exit(within) {
            Some(Exit::Code(code)) => code,
            Some(exit) => panic!("lameduck ended with {exit:?}, not an exit code"),
            None => panic!(
                "lameduck did not exit within {within:?}; logs: {:#?}",
                self.logs()
            ),
        }
    }

    /// Waits until a log line contains `needle`, up to `within`.
    pub fn wait_for_log(&self, needle: &str, within: Duration) -> String {
        self.wait_for_nth_log(needle, 1, within)
    }

    /// Waits until `n` log lines contain `needle`, up to `within`, and
    /// returns the `n`th.
    pub fn wait_for_nth_log(&self, needle: &str, n: usize, within: Duration) -> String {
        self.process
            .log()
            .wait_for_nth(needle, n, within)
            .unwrap_or_else(|| {
                panic!(
                    "fewer than {n} log lines with {needle:?}; logs: {:#?}",
                    self.logs()
                )
            })
    }

    /// How many log lines so far contain `needle`.
    pub fn count_logs(&self, needle: &str) -> usize {
        self.process.log().count(needle)
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.process.log().lines()
    }
}

/// The value of `field=` in a log line (`new_pid=123` → `123`).
pub fn field<'a>(line: &'a str, field: &str) -> &'a str {
    process::field(line, field).unwrap_or_else(|| panic!("no {field}= in {line}"))
}

/// Makes this test process the reaper of its orphaned descendants
/// (`PR_SET_CHILD_SUBREAPER`): when an old lameduck exits, the new process
/// it started becomes our child instead of init's, so a test can wait for
/// its exit code and no zombie is left behind.
pub fn become_subreaper() {
    process::become_subreaper().expect("prctl(PR_SET_CHILD_SUBREAPER)");
}

/// A process a test did not spawn itself but is responsible for: the new
/// process of an upgrade, known by its pid. Once its parent has exited it
/// is our child (see [`become_subreaper`]).
pub struct Successor {
    pub pid: u32,
}

impl Successor {
    /// True while the process exists and is not a zombie.
    pub fn is_running(&self) -> bool {
        is_running(self.pid)
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: i32) {
        process::signal(self.pid as i32, signal)
            .unwrap_or_else(|e| panic!("kill {} failed: {e}", self.pid));
    }

    /// Waits up to `within` for its exit code. It must be our child by
    /// now: its parent has exited and we are the subreaper.
    pub fn exit_code_within(&self, within: Duration) -> i32 {
        match process::wait_exit(self.pid as i32, within) {
            Some(Exit::Code(code)) => code,
            Some(exit) => panic!("{} ended with {exit:?}, not an exit code", self.pid),
            None => panic!("{} did not exit in {within:?}", self.pid),
        }
    }
}

impl Drop for Successor {
    fn drop(&mut self) {
        // Never leave a server behind, even when a test fails: the
        // library's handle kills and reaps it as it drops.
        drop(Lameduck::adopt(
            self.pid as i32,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            &Log::default(),
        ));
    }
}

/// True while `pid` exists and is not a zombie (`/proc/PID/stat` state).
pub fn is_running(pid: u32) -> bool {
    process::is_running(pid as i32)
}

/// A few clients of the library's load generator (`testing::load`), each
/// sending `GET /api/items` on a fresh connection with `Connection:
/// close`, on a runtime of their own, until stopped (at most a minute).
pub struct RequestLoop {
    answered: Arc<AtomicU64>,
    stop: CancellationToken,
    runtime: tokio::runtime::Runtime,
    run: tokio::task::JoinHandle<Record>,
}

impl RequestLoop {
    /// Starts `clients` clients against `addr`.
    pub fn start(addr: SocketAddr, clients: usize) -> RequestLoop {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime for the clients");
        let plan = Plan::new(addr, Load::Churn, clients);
        let (answered, stop) = (plan.answered.clone(), CancellationToken::new());
        let run = runtime.spawn({
            let stop = stop.clone();
            async move { load::run(&plan, stop).await }
        });
        RequestLoop {
            answered,
            stop,
            runtime,
            run,
        }
    }

    /// Requests answered 200 so far.
    pub fn ok(&self) -> u64 {
        self.answered.load(Relaxed)
    }

    /// Waits until `more` further requests have been answered: proof that
    /// the server is answering *now*. Polls: the count has no event.
    pub fn wait_for_more(&self, more: u64, within: Duration) {
        let (target, start) = (self.ok() + more, Instant::now());
        while self.ok() < target {
            assert!(start.elapsed() < within, "the request loop stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the clients; returns (answered, failures).
    pub fn stop(self) -> (u64, Vec<String>) {
        self.stop.cancel();
        let record = self
            .runtime
            .block_on(self.run)
            .expect("the load did not panic");
        let failures = record
            .failures()
            .map(|(at, verdict)| format!("{} at {at:?}", verdict.name()))
            .collect();
        (record.total().ok, failures)
    }
}

/// Runs `lameduck --addr 127.0.0.1:0 ARGS…` with `envs` until it listens,
/// sends SIGTERM, and returns its exit code and every line it wrote on
/// stderr. For tests of the log lines themselves, whatever their format:
/// unlike [`Binary::start`], it does not read the address from the log.
pub fn stderr_of_a_short_run(args: &[&str], envs: &[(&str, &str)]) -> (i32, Vec<String>) {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut command = Lameduck::command(program(), loopback, args);
    command.envs(envs.iter().copied());
    let log = Log::default();
    let pid = log.spawn(&mut command).expect("spawn lameduck").id() as i32;
    // The handle only kills it if the test fails before it exits.
    let process = Lameduck::adopt(pid, loopback, &log);
    if log.wait_for_nth("listening on", 1, START_LIMIT).is_none() {
        panic!("lameduck did not log `listening on`: {:?}", log.lines());
    }
    process.signal(libc::SIGTERM).expect("kill failed");
    let code = match process.wait_exit(START_LIMIT) {
        Some(Exit::Code(code)) => code,
        other => panic!("lameduck did not exit after SIGTERM: {other:?}"),
    };
    // The pipe closes when the process exits, so the reader ends.
    assert!(
        log.wait_closed(START_LIMIT),
        "stderr still open after the exit"
    );
    (code, log.lines())
}
