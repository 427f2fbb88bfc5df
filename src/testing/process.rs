//! Processes the tests and the benches start, signal and wait for: their
//! stderr lines, their exit, and adopting the ones they start.
//!
//! A SIGHUP upgrade starts the new server as a child of the old one, so
//! after the first upgrade the serving process is not the bench's child:
//! it is its grandchild, then its great-grandchild. To still learn how
//! each old process exited, the caller makes itself a *child subreaper*
//! (`prctl(PR_SET_CHILD_SUBREAPER)`, Linux): when a parent exits, its
//! children are re-parented to the caller instead of to init, and it can
//! `waitpid` them for their exit code like its own.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a wait for a log line or an exit looks again. A process's
/// exit and another process's log line have no event this process can
/// await together, so these waits poll, briefly.
const POLL: Duration = Duration::from_millis(2);

/// Makes this process the subreaper of everything it starts (see the
/// module docs). Process-wide and idempotent.
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) changes only a flag of this
    // process; no memory is passed.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The stderr lines of every process started with [`Log::spawn`], in the
/// order they arrived. A process started by one of them (an upgrade's new
/// server) inherits its stderr, so its lines are here too.
#[derive(Debug, Clone, Default)]
pub struct Log {
    lines: Arc<Mutex<Vec<String>>>,
    /// The pipes still open: a reader thread each.
    open: Arc<AtomicUsize>,
}

impl Log {
    /// Starts `cmd` with its stderr read into this log; returns the child,
    /// which the caller waits for with [`wait_exit`].
    pub fn spawn(&self, cmd: &mut Command) -> std::io::Result<Child> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (lines, open) = (self.lines.clone(), self.open.clone());
        open.fetch_add(1, Ordering::SeqCst);
        // Ends when every process holding the pipe has exited.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(child)
    }

    /// Waits up to `within` until every pipe into this log has closed:
    /// every process writing to it has exited, and its last lines are
    /// here. False if one is still open.
    pub fn wait_closed(&self, within: Duration) -> bool {
        poll_until(within, || {
            (self.open.load(Ordering::SeqCst) == 0).then_some(())
        })
        .is_some()
    }

    /// How many lines there are: a mark to search from.
    pub fn mark(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// The first line after `mark` for which `find` gives something.
    pub fn find_after<T>(&self, mark: usize, find: impl Fn(&str) -> Option<T>) -> Option<T> {
        let lines = self.lines.lock().unwrap();
        lines.iter().skip(mark).find_map(|l| find(l))
    }

    /// Everything `find` gives for the lines after `mark`.
    pub fn all_after<T>(&self, mark: usize, find: impl Fn(&str) -> Option<T>) -> Vec<T> {
        let lines = self.lines.lock().unwrap();
        lines.iter().skip(mark).filter_map(|l| find(l)).collect()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// How many lines so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        let lines = self.lines.lock().unwrap();
        lines.iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits up to `within` until `n` lines contain `needle`, and gives
    /// the `n`th.
    pub fn wait_for_nth(&self, needle: &str, n: usize, within: Duration) -> Option<String> {
        poll_until(within, || {
            let lines = self.lines.lock().unwrap();
            lines
                .iter()
                .filter(|l| l.contains(needle))
                .nth(n - 1)
                .cloned()
        })
    }

    /// The last `n` lines, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines.lock().unwrap();
        let from = lines.len().saturating_sub(n);
        lines[from..].join("\n")
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// It is gone, but it was not this process's to wait for (not a
    /// descendant, or reaped elsewhere), so how is not known.
    Unknown,
}

/// Has `pid` ended? `Some` once it has (and it is reaped); `None` while it
/// runs.
pub fn try_exit(pid: i32) -> Option<Exit> {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG writes only `status`.
    let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if rc == pid {
        return Some(if libc::WIFEXITED(status) {
            Exit::Code(libc::WEXITSTATUS(status))
        } else {
            Exit::Signal(libc::WTERMSIG(status))
        });
    }
    if rc == 0 {
        return None;
    }
    // ECHILD: not ours (yet). It is gone once it cannot be signalled.
    // SAFETY: kill with signal 0 only checks that `pid` exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    (!alive).then_some(Exit::Unknown)
}

/// Waits up to `within` for `pid` to end.
pub fn wait_exit(pid: i32, within: Duration) -> Option<Exit> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(exit) = try_exit(pid) {
            return Some(exit);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Sends `signal` to `pid`.
pub fn signal(pid: i32, signal: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) has no memory effects.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Polls `ready` until it gives something or `within` passes.
pub fn poll_until<T>(within: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = ready() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// True while `pid` exists and is not a zombie (`/proc/PID/stat` state).
pub fn is_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The value of `field=` in a log line (`new_pid=123` → `123`), quotes
/// removed.
pub fn field<'a>(line: &'a str, field: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {field}="))? + field.len() + 2;
    let rest = &line[start..];
    Some(rest[..rest.find(' ').unwrap_or(rest.len())].trim_matches('"'))
}
