//! The real `lameduck` binary, started on an ephemeral port, for tests of
//! the signal path and the exit codes; and, for upgrades, the processes it
//! starts and a small loop of clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running `lameduck` process.
pub struct Binary {
    child: Child,
    /// The address from its `listening on` log line.
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Binary {
    /// Starts `lameduck --addr 127.0.0.1:0 ARGS…` and waits for it to listen.
    pub fn start(args: &[&str]) -> Binary {
        Self::start_from(Path::new(env!("CARGO_BIN_EXE_lameduck")), args, &[])
    }

    /// [`Binary::start`] with the binary at `program` (a copy, for upgrade
    /// tests) and extra environment variables.
    pub fn start_from(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> Binary {
        let mut command = Command::new(program);
        command.args(["--addr", "127.0.0.1:0"]).args(args);
        Self::spawn(command, envs)
    }

    /// Runs `command` with the test environment plus `envs`, and waits for
    /// the first `listening on` line. Its stderr is collected, and so is
    /// that of every process it starts (they inherit it).
    pub fn spawn(mut command: Command, envs: &[(&str, &str)]) -> Binary {
        let mut child = spawn_for_test(&mut command, envs);
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // `listening on ADDR`, maybe followed by `(inherited)` and
                // fields.
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.parse::<SocketAddr>().expect("address in log"));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "lameduck did not log `listening on`: {:?}",
                    logs.lock().unwrap()
                );
            }
        };
        Binary { child, addr, logs }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits up to `within` for the process to exit; returns its exit code.
    /// Kills it (and panics) if it does not.
    pub fn exit_code_within(&mut self, within: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().expect("exited by a signal, not an exit code");
            }
            if start.elapsed() > within {
                let _ = self.child.kill();
                panic!(
                    "lameduck did not exit within {within:?}; logs: {:#?}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until a log line contains `needle`, up to `within`.
    pub fn wait_for_log(&self, needle: &str, within: Duration) -> String {
        self.wait_for_nth_log(needle, 1, within)
    }

    /// Waits until `n` log lines contain `needle`, up to `within`, and
    /// returns the `n`th.
    pub fn wait_for_nth_log(&self, needle: &str, n: usize, within: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(needle))
                .nth(n - 1)
            {
                return line.clone();
            }
            assert!(
                start.elapsed() < within,
                "fewer than {n} log lines with {needle:?}; logs: {:#?}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many log lines so far contain `needle`.
    pub fn count_logs(&self, needle: &str) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

/// The value of `field=` in a log line (`new_pid=123` → `123`).
pub fn field<'a>(line: &'a str, field: &str) -> &'a str {
    let start = line
        .find(&format!(" {field}="))
        .unwrap_or_else(|| panic!("no {field}= in {line}"))
        + field.len()
        + 2;
    let rest = &line[start..];
    rest[..rest.find(' ').unwrap_or(rest.len())].trim_matches('"')
}

/// Makes this test process the reaper of its orphaned descendants
/// (`PR_SET_CHILD_SUBREAPER`): when an old lameduck exits, the new process
/// it started becomes our child instead of init's, so a test can wait for
/// its exit code and no zombie is left behind.
pub fn become_subreaper() {
    // SAFETY: prctl with integer arguments; it affects only this process.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "prctl(PR_SET_CHILD_SUBREAPER)");
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
        // SAFETY: kill(2) has no memory effects.
        let rc = unsafe { libc::kill(self.pid as i32, signal) };
        assert_eq!(rc, 0, "kill {} failed", self.pid);
    }

    /// Waits up to `within` for its exit code. It must be our child by
    /// now: its parent has exited and we are the subreaper.
    pub fn exit_code_within(&self, within: Duration) -> i32 {
        let start = Instant::now();
        loop {
            let mut status = 0;
            // SAFETY: waitpid on one pid, WNOHANG.
            let rc = unsafe { libc::waitpid(self.pid as i32, &mut status, libc::WNOHANG) };
            assert!(
                rc >= 0,
                "waitpid {}: {}",
                self.pid,
                std::io::Error::last_os_error()
            );
            if rc > 0 {
                assert!(libc::WIFEXITED(status), "{} died by a signal", self.pid);
                return libc::WEXITSTATUS(status);
            }
            assert!(
                start.elapsed() < within,
                "{} did not exit in {within:?}",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Successor {
    fn drop(&mut self) {
        // Never leave a server behind, even when a test fails.
        if self.is_running() {
            // SAFETY: as in `signal`.
            unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
        }
        let mut status = 0;
        // SAFETY: reaps it if it is our child; harmless if not.
        unsafe { libc::waitpid(self.pid as i32, &mut status, 0) };
    }
}

/// True while `pid` exists and is not a zombie (`/proc/PID/stat` state).
pub fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A few clients in a loop, each sending `GET path` on a fresh connection
/// with `Connection: close`, counting answers and failures until stopped.
/// Bounded: at most `MAX_REQUESTS` per client.
pub struct RequestLoop {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    clients: Vec<JoinHandle<Vec<String>>>,
}

impl RequestLoop {
    const MAX_REQUESTS: u64 = 50_000;

    /// Starts `clients` clients against `addr`.
    pub fn start(addr: SocketAddr, path: &str, clients: usize) -> RequestLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let clients = (0..clients)
            .map(|_| {
                let (stop, ok, path) = (stop.clone(), ok.clone(), path.to_string());
                std::thread::spawn(move || {
                    let mut failures = Vec::new();
                    for _ in 0..Self::MAX_REQUESTS {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match get_once(addr, &path) {
                            Ok(200) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(status) => failures.push(format!("status {status}")),
                            Err(e) => failures.push(e.to_string()),
                        }
                    }
                    failures
                })
            })
            .collect();
        RequestLoop { stop, ok, clients }
    }

    /// Requests answered 200 so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits until `more` further requests have been answered: proof that
    /// the server is answering *now*.
    pub fn wait_for_more(&self, more: u64, within: Duration) {
        let (target, start) = (self.ok() + more, Instant::now());
        while self.ok() < target {
            assert!(start.elapsed() < within, "the request loop stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the clients; returns (answered, failures).
    pub fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self
            .clients
            .into_iter()
            .flat_map(|c| c.join().expect("client thread"))
            .collect();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

/// One `GET` on a fresh connection; the status, or why there was none.
fn get_once(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let head = String::from_utf8_lossy(&answer);
    head.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))
}

impl Drop for Binary {
    fn drop(&mut self) {
        // Never leave a server behind, even when a test fails.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `lameduck --addr 127.0.0.1:0 ARGS…` with `envs` until it listens,
/// sends SIGTERM, and returns its exit code and every line it wrote on
/// stderr. For tests of the log lines themselves, whatever their format:
/// unlike [`Binary::start`], it does not read the address from the log.
pub fn stderr_of_a_short_run(args: &[&str], envs: &[(&str, &str)]) -> (i32, Vec<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lameduck"));
    command.args(["--addr", "127.0.0.1:0"]).args(args);
    let mut child = spawn_for_test(&mut command, envs);
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    if rx.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("lameduck did not log `listening on`: {:?}", reader.join());
    }
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill failed");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lameduck did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // The pipe closes when the process exits, so the reader ends.
    let lines = reader.join().expect("stderr reader");
    (status.code().expect("exited by a signal"), lines)
}

/// Starts `command` the way every binary test does: logs at `info` on a
/// piped stderr, items in memory unless the test passes `--db PATH` (no
/// stray `lameduck.db` in the working directory), then `envs`.
fn spawn_for_test(command: &mut Command, envs: &[(&str, &str)]) -> std::process::Child {
    command
        .env("RUST_LOG", "info")
        .env("LAMEDUCK_DB", ":memory:")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lameduck")
}
