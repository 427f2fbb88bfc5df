//! The real `lameduck` binary as a process: the one way the tests and the
//! benches start it, wait for it to listen, signal it and wait for its
//! exit.
//!
//! Every start is the same: logs at `info` on a piped stderr (read into a
//! [`Log`], with the lines of every process it starts, which inherit the
//! pipe), items in memory unless the arguments name a `--db` (no stray
//! `lameduck.db` in the working directory), and a wait for the
//! `listening on ADDR` line, which is how the caller learns the port.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::testing::process::{self, Exit, Log};

/// How long after a process's exit its last stderr lines may still be on
/// their way through the pipe to the reader thread.
const LAST_LINES_WAIT: Duration = Duration::from_secs(1);

/// What one SIGHUP upgrade did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upgraded {
    /// The process that was serving, and how it ended.
    pub old_pid: i32,
    pub old_exit: Exit,
    /// The process serving now, named by the old one's report.
    pub new_pid: i32,
}

/// A `lameduck` process: one this process started, or one it adopted (the
/// new process of an upgrade). Dropping it kills the process if it still
/// runs, so a failed test or bench never leaves a server behind.
#[derive(Debug)]
pub struct Lameduck {
    pid: i32,
    addr: SocketAddr,
    log: Log,
}

impl Lameduck {
    /// `BIN --addr ADDR ARGS…`, with the environment every start uses;
    /// add to it (more `env`, a wrapper around it) and pass it to
    /// [`Lameduck::spawn`].
    pub fn command<S: AsRef<std::ffi::OsStr>>(bin: &Path, addr: SocketAddr, args: &[S]) -> Command {
        let mut command = Command::new(bin);
        command.args(["--addr", &addr.to_string()]).args(args);
        Self::environment(&mut command);
        command
    }

    /// The environment every start uses, for a `command` built otherwise
    /// (a wrapper that starts the binary): logs at `info`, items in memory.
    pub fn environment(command: &mut Command) -> &mut Command {
        command
            .env("RUST_LOG", "info")
            .env("LAMEDUCK_DB", ":memory:")
    }

    /// Starts `bin --addr 127.0.0.1:0 ARGS…` with its own log and waits up
    /// to `within` for it to listen.
    pub fn start<S: AsRef<std::ffi::OsStr>>(
        bin: &Path,
        args: &[S],
        within: Duration,
    ) -> Result<Lameduck, String> {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::spawn(&Log::default(), Self::command(bin, loopback, args), within)
    }

    /// Runs `command` with its stderr going into `log`, and waits up to
    /// `within` for its first `listening on ADDR` line. If it exits first
    /// or stays silent, it is killed and reaped, and the error says which,
    /// with its last lines.
    pub fn spawn(log: &Log, mut command: Command, within: Duration) -> Result<Lameduck, String> {
        let mark = log.mark();
        let child = log
            .spawn(&mut command)
            .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
        let pid = child.id() as i32;
        // The child is waited for by pid (`process::try_exit`), like an
        // adopted process; the `Child` itself is no longer needed.
        drop(child);
        let listening = process::poll_until(within, || {
            if let Some(exit) = process::try_exit(pid) {
                return Some(Err(format!("exited at start ({exit:?})")));
            }
            log.find_after(mark, listening_addr).map(Ok)
        });
        let failed = |why: String| format!("lameduck {why}; last log lines:\n{}", log.tail(8));
        match listening {
            Some(Ok(addr)) => Ok(Lameduck {
                pid,
                addr,
                log: log.clone(),
            }),
            Some(Err(e)) => Err(failed(e)),
            None => {
                let _ = process::signal(pid, libc::SIGKILL);
                let _ = process::wait_exit(pid, within);
                Err(failed("did not log `listening on`".into()))
            }
        }
    }

    /// A process this one did not start but answers for: the new process
    /// of an upgrade, known by its pid, serving `addr`, logging into
    /// `log`. To learn its exit code, be a subreaper
    /// ([`process::become_subreaper`]) before its parent exits.
    pub fn adopt(pid: i32, addr: SocketAddr, log: &Log) -> Lameduck {
        Lameduck {
            pid,
            addr,
            log: log.clone(),
        }
    }

    /// The in-place upgrade: SIGHUP, then the old process's `shutdown
    /// report cause="upgrade" new_pid=N` line and its exit, each within
    /// `within`. From then on this handle is the new process (adopted: be
    /// a subreaper to learn its exit code). An old process that exits
    /// without the report (one that does not know SIGHUP dies of it) is an
    /// error, as is one that never reports.
    pub fn upgrade(&mut self, within: Duration) -> Result<Upgraded, String> {
        let old_pid = self.pid;
        let mark = self.log.mark();
        self.signal(libc::SIGHUP)
            .map_err(|e| format!("SIGHUP to {old_pid}: {e}"))?;
        // The old process's exit, once seen, and when.
        let mut exited: Option<(Exit, Instant)> = None;
        let reported = process::poll_until(within, || {
            let new_pid = self.log.find_after(mark, |l| {
                let rest = l.split("cause=\"upgrade\"").nth(1)?;
                process::field(rest, "new_pid")?.parse().ok()
            });
            if let Some(pid) = new_pid {
                return Some(Ok(pid));
            }
            if exited.is_none() {
                exited = self.try_exit().map(|exit| (exit, Instant::now()));
            }
            // The report is the old process's last line, written just
            // before it exits: it may still be in the pipe when the exit is
            // seen. Only an exit with no report for a while is a failure.
            match exited {
                Some((exit, at)) if at.elapsed() > LAST_LINES_WAIT => Some(Err(exit)),
                _ => None,
            }
        });
        let failed = |why: String| format!("lameduck {why}; last log lines:\n{}", self.log.tail(8));
        let new_pid = match reported {
            Some(Ok(pid)) => pid,
            Some(Err(exit)) => {
                return Err(failed(format!(
                    "{old_pid} ended without reporting an upgrade ({exit:?})"
                )));
            }
            None => return Err(failed(format!("{old_pid} reported no upgrade"))),
        };
        let old_exit = match exited {
            Some((exit, _)) => exit,
            // The report is its last line; the exit follows.
            None => self
                .wait_exit(within)
                .ok_or_else(|| failed(format!("{old_pid} did not exit after upgrading")))?,
        };
        // The old handle drops here; its process is gone already.
        *self = Lameduck::adopt(new_pid, self.addr, &self.log);
        Ok(Upgraded {
            old_pid,
            old_exit,
            new_pid,
        })
    }

    /// SIGTERM, and the exit within `within`. A process that does not exit
    /// in time is killed as the handle drops.
    pub fn terminate(&self, within: Duration) -> Result<Exit, String> {
        self.signal(libc::SIGTERM)
            .map_err(|e| format!("SIGTERM to {}: {e}", self.pid))?;
        self.wait_exit(within).ok_or_else(|| {
            format!(
                "lameduck {} did not exit after SIGTERM; last log lines:\n{}",
                self.pid,
                self.log.tail(8)
            )
        })
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Where it listens, from its `listening on` line.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its stderr lines (and those of the processes it started).
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Sends `signal` (`libc::SIGTERM`, …).
    pub fn signal(&self, signal: i32) -> std::io::Result<()> {
        process::signal(self.pid, signal)
    }

    /// True while the process exists and is not a zombie.
    pub fn is_running(&self) -> bool {
        process::is_running(self.pid)
    }

    /// Has it ended? See [`process::try_exit`].
    pub fn try_exit(&self) -> Option<Exit> {
        process::try_exit(self.pid)
    }

    /// Waits up to `within` for it to end.
    pub fn wait_exit(&self, within: Duration) -> Option<Exit> {
        process::wait_exit(self.pid, within)
    }
}

impl Drop for Lameduck {
    fn drop(&mut self) {
        // Never leave a server behind, even when a run fails halfway.
        if self.try_exit().is_none() {
            let _ = self.signal(libc::SIGKILL);
            // Bounded: a SIGKILLed process is gone within moments.
            let _ = self.wait_exit(Duration::from_secs(5));
        }
    }
}

/// The address in a `listening on ADDR …` line (maybe followed by
/// `(inherited)` and fields).
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}
