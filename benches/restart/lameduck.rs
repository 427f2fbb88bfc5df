//! lameduck's own binary under the two restarts the bench compares.
//!
//! - **SIGHUP upgrade** ([`Restart::Sighup`]): the bench sends SIGHUP to
//!   the serving process, which starts the new one on the same listening
//!   socket, waits for it to be ready, drains, and exits 0 after logging
//!   `shutdown report cause="upgrade" new_pid=N`. The bench takes the new
//!   pid from that line and waits for the old process to exit.
//! - **Naive** ([`Restart::Naive`]): SIGTERM, wait for the exit, start the
//!   binary again on the same port, wait for its `listening on` line. This
//!   is what a plain `systemctl restart` does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ::lameduck::testing::binary::Lameduck as Process;

use super::process::{self, Exit, Log};
use super::target::{BoxError, Restarted, Target};

/// How long a start, an upgrade or a shutdown may take before the bench
/// calls it failed. lameduck's own deadline is 15 s.
const STEP_LIMIT: Duration = Duration::from_secs(30);

/// How long after a process's exit its last stderr lines may still be
/// on their way through the pipe to the bench's reader thread.
const LAST_LINES_WAIT: Duration = Duration::from_secs(1);

/// Which restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    Sighup,
    Naive,
}

/// A running `lameduck`, and how to restart it.
pub struct Lameduck {
    bin: PathBuf,
    /// `--db` and anything else the caller passes, on every start.
    args: Vec<String>,
    restart: Restart,
    addr: SocketAddr,
    /// The process serving now; `None` between an exit and the next start.
    serving: Option<Process>,
    log: Log,
}

impl Lameduck {
    /// Starts `bin --addr 127.0.0.1:0 ARGS` (items in memory unless ARGS
    /// has a `--db`) and waits for it to listen.
    pub fn start(bin: &Path, args: &[&str], restart: Restart) -> Result<Lameduck, BoxError> {
        let mut server = Lameduck {
            bin: bin.to_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
            restart,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            serving: None,
            log: Log::default(),
        };
        server.spawn()?;
        Ok(server)
    }

    /// The process serving now (0 if none).
    pub fn pid(&self) -> i32 {
        self.serving.as_ref().map_or(0, Process::pid)
    }

    /// Every stderr line so far, the last `n`.
    pub fn log_tail(&self, n: usize) -> String {
        self.log.tail(n)
    }

    /// Starts a process on `self.addr` and waits for its `listening on`.
    fn spawn(&mut self) -> Result<(), BoxError> {
        let command = Process::command(&self.bin, self.addr, &self.args);
        let serving = Process::spawn(&self.log, command, STEP_LIMIT)?;
        self.addr = serving.addr();
        self.serving = Some(serving);
        Ok(())
    }

    fn upgrade(&mut self) -> Result<Restarted, BoxError> {
        let old = self.pid();
        let mark = self.log.mark();
        process::signal(old, libc::SIGHUP)?;
        // The old process's exit, once seen, and when.
        let mut exited: Option<(Exit, Instant)> = None;
        let new_pid = process::poll_until(STEP_LIMIT, || {
            let reported = self.log.find_after(mark, |l| {
                let rest = l.split("cause=\"upgrade\"").nth(1)?;
                rest.split("new_pid=")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()
            });
            if let Some(pid) = reported {
                return Some(Ok(pid));
            }
            if exited.is_none() {
                exited = process::try_exit(old).map(|exit| (exit, Instant::now()));
            }
            // The report is the old process's last line, written just
            // before it exits: it may still be in the pipe when the exit is
            // seen. Only an exit with no report for a while is a failure (a
            // process that does not know SIGHUP dies of it).
            match exited {
                Some((exit, at)) if at.elapsed() > LAST_LINES_WAIT => Some(Err(exit)),
                _ => None,
            }
        });
        let new_pid: i32 = match new_pid {
            Some(Ok(pid)) => pid,
            Some(Err(exit)) => {
                return Err(self.failed(&format!(
                    "pid {old} ended without reporting an upgrade ({exit:?})"
                )));
            }
            None => return Err(self.failed(&format!("pid {old} reported no upgrade"))),
        };
        let old_exit = match exited {
            Some((exit, _)) => exit,
            // The report is its last line; the exit follows.
            None => process::wait_exit(old, STEP_LIMIT)
                .ok_or_else(|| self.failed(&format!("pid {old} did not exit after upgrading")))?,
        };
        self.serving = Some(Process::adopt(new_pid, self.addr, &self.log));
        Ok(Restarted {
            old_pid: Some(old),
            new_pid: Some(new_pid),
            old_exit: Some(old_exit),
        })
    }

    fn naive(&mut self) -> Result<Restarted, BoxError> {
        let old = self.pid();
        let old_exit = self.terminate()?;
        self.spawn()?;
        Ok(Restarted {
            old_pid: Some(old),
            new_pid: Some(self.pid()),
            old_exit: Some(old_exit),
        })
    }

    /// SIGTERM to the serving process, and its exit.
    fn terminate(&mut self) -> Result<Exit, BoxError> {
        let Some(serving) = self.serving.take() else {
            return Err(self.failed("no process to terminate"));
        };
        serving.signal(libc::SIGTERM)?;
        // A process that does not exit is killed as `serving` drops.
        serving.wait_exit(STEP_LIMIT).ok_or_else(|| {
            self.failed(&format!("pid {} did not exit after SIGTERM", serving.pid()))
        })
    }

    fn failed(&self, what: &str) -> BoxError {
        format!("lameduck: {what}; last log lines:\n{}", self.log.tail(8)).into()
    }
}

impl Target for Lameduck {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn restart(&mut self) -> Result<Restarted, BoxError> {
        match self.restart {
            Restart::Sighup => self.upgrade(),
            Restart::Naive => self.naive(),
        }
    }

    fn stop(&mut self) -> Result<(), BoxError> {
        if self.serving.is_none() {
            return Ok(());
        }
        match self.terminate()? {
            Exit::Code(0) | Exit::Unknown => Ok(()),
            exit => Err(self.failed(&format!("ended with {exit:?} at the final SIGTERM"))),
        }
    }
}

impl Drop for Lameduck {
    fn drop(&mut self) {
        // Never leave a server behind, even when a run fails halfway: the
        // serving process (killed as `serving` drops), and any process an
        // upgrade started that the bench lost track of (one whose report
        // came too late).
        let serving = self.pid();
        let pids = self.log.all_after(0, |l| {
            l.split("new_pid=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<i32>()
                .ok()
        });
        for pid in pids.into_iter().filter(|&pid| pid > 0 && pid != serving) {
            if process::try_exit(pid).is_none() {
                let _ = process::signal(pid, libc::SIGKILL);
                let _ = process::wait_exit(pid, Duration::from_secs(5));
            }
        }
    }
}
