//! The real `lameduck` binary, started on an ephemeral port, for tests of
//! the signal path and the exit codes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_lameduck"))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            // No stray `lameduck.db` in the working directory: tests that
            // want a file pass `--db PATH`, which overrides this.
            .env("LAMEDUCK_DB", ":memory:")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lameduck");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.trim().parse::<SocketAddr>().expect("address in log"));
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
        let start = Instant::now();
        loop {
            if let Some(line) = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                start.elapsed() < within,
                "no log line with {needle:?}; logs: {:#?}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
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
