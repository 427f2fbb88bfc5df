//! One lameduck instance behind the load balancer: the real binary on a
//! loopback port that stays the same across restarts, as a server listed
//! in a load balancer's configuration does.
//!
//! A restart here is what an orchestrator does to one instance of a
//! fleet: SIGTERM, wait for the exit, start the binary again on the same
//! port. The load balancer is what keeps clients from noticing, if the
//! instance tells it in time (`/healthz` answering `503`) and stays up
//! until it has listened.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ::lameduck::testing::binary::Lameduck as Process;

use super::BoxError;
use super::process::{self, Exit, Log};

/// How long a start or a shutdown may take before it counts as failed.
/// lameduck's own shutdown deadline is 15 s, after its lame-duck phase.
const STEP_LIMIT: Duration = Duration::from_secs(30);

/// How long after a process's exit its last stderr lines may still be on
/// their way through the pipe to the reader thread.
const LAST_LINES_WAIT: Duration = Duration::from_secs(1);

/// A lameduck process on a fixed port, and how to start it again.
pub struct Instance {
    bin: PathBuf,
    /// The flags under test (`--drain-delay 2s`, ...), on every start.
    flags: Vec<String>,
    /// Fixed by the first start (an ephemeral port), reused after.
    pub addr: SocketAddr,
    /// The process serving now; `None` between an exit and the next start.
    serving: Option<Process>,
    log: Log,
}

/// How one instance stopped.
#[derive(Debug, Clone)]
pub struct Stopped {
    pub exit: Exit,
    /// From the SIGTERM to the exit, as seen by polling for it.
    pub took: Duration,
    /// The fields of its `shutdown report` line, if it wrote one.
    pub report: Option<String>,
}

impl Stopped {
    /// The value of `name=` in the report line, quotes removed.
    pub fn field(&self, name: &str) -> Option<&str> {
        let report = self.report.as_deref()?;
        let at = report.find(&format!(" {name}="))? + name.len() + 2;
        let rest = &report[at..];
        Some(rest[..rest.find(' ').unwrap_or(rest.len())].trim_matches('"'))
    }
}

impl Instance {
    /// Starts `bin --addr 127.0.0.1:0 FLAGS` (items in memory) and waits
    /// for it to listen; its port is the instance's from then on.
    pub fn start(bin: &Path, flags: &[String]) -> Result<Instance, BoxError> {
        let mut instance = Instance {
            bin: bin.to_owned(),
            flags: flags.to_vec(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            serving: None,
            log: Log::default(),
        };
        instance.spawn()?;
        Ok(instance)
    }

    /// The process serving now (0 if none).
    pub fn pid(&self) -> i32 {
        self.serving.as_ref().map_or(0, Process::pid)
    }

    /// Sends SIGTERM and waits for the exit. `also` is called between two
    /// looks at the process, with the time since the signal, so the caller
    /// can watch something else meanwhile (the load balancer's view).
    pub fn terminate(&mut self, mut also: impl FnMut(Duration)) -> Result<Stopped, BoxError> {
        let Some(serving) = self.serving.take() else {
            return Err(self.failed("terminate with no process serving"));
        };
        let mark = self.log.mark();
        let signalled = Instant::now();
        serving.signal(libc::SIGTERM)?;
        let exit = process::poll_until(STEP_LIMIT, || {
            let exit = serving.try_exit();
            if exit.is_none() {
                also(signalled.elapsed());
            }
            exit
        });
        let took = signalled.elapsed();
        let Some(exit) = exit else {
            // Killed as `serving` drops.
            let pid = serving.pid();
            drop(serving);
            return Err(self.failed(&format!("pid {pid} did not exit after SIGTERM")));
        };
        // The report is its last line but one, written just before the
        // exit: it may still be in the pipe.
        let report = process::poll_until(LAST_LINES_WAIT, || {
            self.log.find_after(mark, |l| {
                let at = l.find("shutdown report")?;
                Some(l[at + "shutdown report".len()..].to_string())
            })
        });
        Ok(Stopped { exit, took, report })
    }

    /// Starts the binary again on the same port and waits for it to listen.
    pub fn restart(&mut self) -> Result<(), BoxError> {
        assert!(self.serving.is_none(), "restart after terminate");
        self.spawn()
    }

    /// The last `n` log lines, for messages.
    pub fn log_tail(&self, n: usize) -> String {
        self.log.tail(n)
    }

    fn spawn(&mut self) -> Result<(), BoxError> {
        let command = Process::command(&self.bin, self.addr, &self.flags);
        let serving = Process::spawn(&self.log, command, STEP_LIMIT)
            .map_err(|e| format!("lameduck {}: {e}", self.addr))?;
        self.addr = serving.addr();
        self.serving = Some(serving);
        Ok(())
    }

    fn failed(&self, what: &str) -> BoxError {
        format!(
            "lameduck {}: {what}; last log lines:\n{}",
            self.addr,
            self.log.tail(8)
        )
        .into()
    }
}
