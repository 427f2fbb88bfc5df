//! Log lines that never block serving.
//!
//! `tracing` formats a line on the thread that logs it, and a plain stderr
//! writer then calls `write(2)` there too. When stderr is a pipe that
//! nobody reads (a stalled log collector; Docker's default `blocking` log
//! mode when its driver falls behind), the pipe fills in 64 KiB and every
//! `write(2)` waits: the connection task that wanted to log its access
//! line stops, and with it every request on that worker thread. A process
//! whose stderr was no longer read could not even exit on SIGTERM.
//!
//! So every line goes through a queue instead ([`install`]):
//!
//! ```text
//!   connection task ──line──▶ [ queue: QUEUED_LINES ] ──▶ writer thread ──▶ stderr
//!        (never waits)          full? drop it, count it     (may wait, alone)
//! ```
//!
//! - **Lossy.** A line that finds the queue full is dropped and counted
//!   ([`dropped_lines`]); the count is in `/metrics`
//!   (`lameduck_log_lines_dropped_total`) and in the shutdown report
//!   (`log_lines_dropped`). A server that says what it lost beats one that
//!   stops serving to keep every access line.
//! - **The report is held, not queued.** The shutdown report is the one
//!   line an operator must see, and the queue may be full when it is
//!   written. It is kept aside ([`REPORT_TARGET`]) and written last, by
//!   [`Flush::at_exit`], after every queued line.
//! - **The exit waits for the log, but not for ever.** [`Flush::at_exit`]
//!   waits up to [`EXIT_LOG_WAIT`] for the queue and the held lines to
//!   reach stderr, then the process exits anyway. If stderr is stalled the
//!   report is lost then, and if stderr is gone (its reader closed the
//!   pipe) every write fails at once; either way the exit code still
//!   carries the outcome (0 drained, 1 forced). Start-up errors, written
//!   before or instead of serving, take the same bounded path
//!   ([`write_bounded`]).
//!
//! The queue and the writer thread are `tracing-appender`'s `non_blocking`;
//! this module adds the held report, the bounded exit and the count.

use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing::Metadata;
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;

/// How many formatted lines may wait for stderr. At about 250 bytes a line
/// that is some 1 MiB: a fifth of a second of access lines at 20,000
/// requests a second. A log reader that hiccups loses nothing; one that
/// stalls costs this much memory, and dropped lines, but not the server.
pub const QUEUED_LINES: usize = 4_096;

/// How long the exit waits for queued and held lines to reach stderr. A
/// live reader takes a few milliseconds for a full queue; a stalled one
/// would take for ever, and the exit (which the service manager's kill
/// timer is counting) must not wait for it.
pub const EXIT_LOG_WAIT: Duration = Duration::from_millis(500);

/// The target of the shutdown report's line: held and written last.
pub const REPORT_TARGET: &str = "lameduck::server::report";

/// The queue's count of dropped lines, once [`install`] has run.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Lines dropped because the queue was full, since start. 0 when the
/// process logs some other way (the library's own tests, an embedding).
pub fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |c| c.dropped_lines() as u64)
}

/// Starts the writer thread and returns what `tracing` writes to, and what
/// the exit must call to flush it. Everything goes to stderr.
pub fn install() -> (Lines, Flush) {
    install_to(std::io::stderr(), std::io::stderr())
}

/// [`install`], writing the queued lines to `out` and, at exit, the held
/// report to `last` (the same file, opened twice: the churn bench logs to
/// one).
pub fn install_to(
    out: impl Write + Send + 'static,
    last: impl Write + Send + 'static,
) -> (Lines, Flush) {
    let (queue, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("log-writer")
        .finish(out);
    // Only the first install counts: one process, one log.
    let _ = DROPPED.set(queue.error_counter());
    let held = Arc::new(Mutex::new(Vec::new()));
    let lines = Lines {
        queue,
        held: held.clone(),
    };
    let end = Box::new(last);
    (lines, Flush { guard, held, end })
}

/// The `MakeWriter` for `tracing_subscriber::fmt`: the queue for every
/// line, the held buffer for the report's.
pub struct Lines {
    queue: NonBlocking,
    held: Arc<Mutex<Vec<u8>>>,
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line::Queued(self.queue.clone())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        match meta.target() == REPORT_TARGET {
            true => Line::Held(self.held.clone()),
            false => self.make_writer(),
        }
    }
}

/// Where one formatted line goes. `fmt` formats a line in full and writes
/// it with one `write_all`, so a line is never split between the two.
pub enum Line {
    Queued(NonBlocking),
    Held(Arc<Mutex<Vec<u8>>>),
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Line::Queued(queue) => queue.write(buf),
            Line::Held(held) => {
                // A poisoned lock only means another thread panicked while
                // appending; the bytes are still worth writing.
                held.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(buf);
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Flushes the log at exit: see [`Flush::at_exit`].
pub struct Flush {
    guard: WorkerGuard,
    held: Arc<Mutex<Vec<u8>>>,
    /// Where the held lines go (stderr for the binary).
    end: Box<dyn Write + Send>,
}

impl Flush {
    /// Writes every queued line, then the held ones (the report), then
    /// `last` (a start-up error's line), and waits for that at most
    /// [`EXIT_LOG_WAIT`].
    ///
    /// The work is done on a thread of its own, so that the wait can be
    /// bounded: dropping the guard blocks until the writer thread has
    /// written the queue (or for up to about 1 s, `tracing-appender`'s own
    /// bound), and a write to a stalled stderr blocks for ever. A thread
    /// still blocked when the wait is over ends with the process.
    pub fn at_exit(self, last: Option<String>) {
        let Flush {
            guard,
            held,
            mut end,
        } = self;
        run_bounded(move || {
            drop(guard);
            let mut bytes = std::mem::take(&mut *held.lock().unwrap_or_else(|e| e.into_inner()));
            if let Some(line) = last {
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
            }
            // An error here (stderr closed) leaves nothing to tell it to.
            let _ = end.write_all(&bytes);
            let _ = end.flush();
        });
    }
}

/// Writes `line` to stderr, waiting at most [`EXIT_LOG_WAIT`]: for a
/// start-up error before the log is installed.
pub fn write_bounded(line: String) {
    run_bounded(move || {
        let _ = writeln!(std::io::stderr(), "{line}");
    });
}

/// Runs `work` on a thread and waits for it at most [`EXIT_LOG_WAIT`].
fn run_bounded(work: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("log-flush".into())
        .spawn(move || {
            work();
            // The exit may have stopped waiting; nobody to tell then.
            let _ = done.send(());
        });
    if spawned.is_ok() {
        let _ = finished.recv_timeout(EXIT_LOG_WAIT);
    }
}
