//! Programs from outside the project that a test runs to their end (the
//! Autobahn|Testsuite's `wstest`, a Python WebSocket client), each within
//! a time limit: a client that hangs on a server that never answers must
//! fail the test with what it printed so far, not hang `cargo test`.
//!
//! Unlike the server's stderr ([`lameduck::testing::process::Log`]),
//! which is read line by line while the test runs, their output is only
//! read once they have ended: stdout and stderr are drained into buffers
//! by a thread each, so a chatty program never blocks on a full pipe.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use lameduck::testing::process::{self, Exit};

/// How long after the program's exit its last output may still be in the
/// pipe, on its way to the reader thread.
const LAST_OUTPUT_WAIT: Duration = Duration::from_secs(2);

/// How a program run by [`run_within`] ended, and what it printed.
#[derive(Debug)]
pub struct Ran {
    /// How it ended; `None` if it was still running at the limit, and was
    /// killed.
    pub exit: Option<Exit>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// True if it exited by itself, with code 0.
    pub fn succeeded(&self) -> bool {
        self.exit == Some(Exit::Code(0))
    }

    /// The last `n` lines of stdout and of stderr, for a failure message.
    pub fn tail(&self, n: usize) -> String {
        let last = |text: &str| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        format!(
            "exit: {:?}\n--- stdout (last {n} lines)\n{}\n--- stderr (last {n} lines)\n{}",
            self.exit,
            last(&self.stdout),
            last(&self.stderr)
        )
    }
}

/// Runs `command` (stdin empty, stdout and stderr captured) until it
/// exits or `within` has passed; at the limit it is killed. The error is
/// the spawn's: `NotFound` when the program is not installed, which the
/// caller turns into a message saying how to install it.
pub fn run_within(command: &mut Command, within: Duration) -> std::io::Result<Ran> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let pid = child.id() as i32;
    // Waited for by pid, like the server (`process::wait_exit`); the
    // `Child` is not needed for that, and dropping it neither kills nor
    // reaps the program.
    drop(child);
    let exit = process::wait_exit(pid, within);
    if exit.is_none() {
        // Still ours and not reaped, so the pid cannot have been reused.
        let _ = process::signal(pid, libc::SIGKILL);
        let _ = process::wait_exit(pid, LAST_OUTPUT_WAIT);
    }
    Ok(Ran {
        exit,
        stdout: stdout.collected(),
        stderr: stderr.collected(),
    })
}

/// One pipe being read to its end by a thread of its own.
struct Drained {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

/// Starts reading `pipe` into a buffer until EOF.
fn drain(mut pipe: impl Read + Send + 'static) -> Drained {
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let reader = std::thread::spawn({
        let bytes = bytes.clone();
        move || {
            let mut chunk = [0; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                bytes.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        }
    });
    Drained { bytes, reader }
}

impl Drained {
    /// What was read, once the pipe has closed or [`LAST_OUTPUT_WAIT`]
    /// has passed: a process the program started may hold the pipe open
    /// after it has gone, and the test must not wait for that one.
    fn collected(self) -> String {
        process::poll_until(LAST_OUTPUT_WAIT, || self.reader.is_finished().then_some(()));
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }
}
