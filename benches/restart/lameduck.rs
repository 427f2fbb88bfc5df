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
use std::time::Duration;

use ::lameduck::testing::binary::Lameduck as Process;

use super::process::{self, Exit, Log};
use super::target::{BoxError, Restarted, Target};

/// How long a start, an upgrade or a shutdown may take before the bench
/// calls it failed. lameduck's own deadline is 15 s.
const STEP_LIMIT: Duration = Duration::from_secs(30);

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
        let Some(serving) = self.serving.as_mut() else {
            return Err(self.failed("no process to upgrade"));
        };
        let done = serving.upgrade(STEP_LIMIT)?;
        Ok(Restarted {
            old_pid: Some(done.old_pid),
            new_pid: Some(done.new_pid),
            old_exit: Some(done.old_exit),
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
        Ok(serving.terminate(STEP_LIMIT)?)
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
