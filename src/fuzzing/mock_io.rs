//! An in-memory connection whose every read is chosen by the fuzz input.
//!
//! A socket does not hand over a request in one piece: it arrives in
//! chunks of any size, with waits in between, and the code that parses it
//! must not care. [`MockIo`] replays the client's bytes the way a
//! [`Script`] says — so many bytes now, `Pending` now, the shutdown
//! signal now — as h2's `fuzz_e2e` does. Everything the server writes is
//! kept in [`Wire::output`] to be checked afterwards.
//!
//! When the client's bytes run out the client goes quiet (reads are
//! `Pending`). [`LINGER`] after connecting, long enough for every handler
//! to answer or time out, it hangs up: reads return EOF and writes
//! fail, as on a socket whose peer has gone. The clock is tokio's
//! paused clock, so the wait costs nothing.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long the client stays connected.
/// Longer than the request timeout, so that every handler has answered.
pub const LINGER: Duration = Duration::from_secs(30);

/// Reads fail after this many polls: a connection that keeps polling its
/// IO without ending is a busy loop, and the fuzzer should see it.
const POLL_BUDGET: u64 = 1_000_000;

/// One step of the read script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The next read returns up to this many bytes.
    Read(usize),
    /// The next read returns `Pending` (and asks to be polled again).
    Pending,
    /// Send the graceful-shutdown signal here, then return `Pending`.
    /// The client sends nothing more until the harness has sent it: the
    /// task reading may not be the harness's own (a WebSocket session's
    /// is not), and must not read on before the server has been told.
    Shutdown,
}

/// The read schedule, decoded from the front of a fuzz input.
///
/// Format: byte 0 is `n`, the number of script bytes that follow. Each
/// script byte is one step: `0x00` = `Pending`, `0xFF` = shutdown signal,
/// anything else = read up to that many bytes. Once the script is used up,
/// reads return everything that is left. The rest of the input, after the
/// script, is what the client sends. A seed file that starts with `0x00`
/// is therefore a plain request sent in one read.
#[derive(Debug, Clone, Default)]
pub struct Script {
    steps: Vec<Step>,
}

impl Script {
    /// Splits `input` into the script and the client's bytes.
    pub fn decode(input: &[u8]) -> (Script, &[u8]) {
        let Some((&n, rest)) = input.split_first() else {
            return (Script::default(), input);
        };
        let n = (n as usize).min(rest.len());
        let steps = rest[..n]
            .iter()
            .map(|&b| match b {
                0x00 => Step::Pending,
                0xFF => Step::Shutdown,
                n => Step::Read(n as usize),
            })
            .collect();
        (Script { steps }, &rest[n..])
    }
}

/// What the harness and the connection share: the output, and where in it
/// the shutdown signal was sent.
#[derive(Debug, Default)]
pub struct Wire {
    /// Every byte the server wrote, in order.
    pub output: Vec<u8>,
    /// Set by the script's shutdown step.
    pub shutdown_requested: bool,
    /// `output.len()` when the shutdown signal was sent, if it was.
    pub shutdown_at: Option<usize>,
    /// Woken by the shutdown step, for a harness that does not poll this
    /// IO itself: after a WebSocket's `101` the session's own task reads
    /// it, and the harness, which sends the signal, must hear of the step.
    pub harness: Option<Waker>,
    /// The read waiting for the signal to be sent (see [`Step::Shutdown`]),
    /// for the harness to wake once it has sent it.
    pub reader: Option<Waker>,
}

/// The connection as the server sees it. See the module docs.
pub struct MockIo {
    input: Vec<u8>,
    pos: usize,
    steps: std::vec::IntoIter<Step>,
    wire: Arc<Mutex<Wire>>,
    /// Started when the input runs out; EOF when it fires.
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
    /// When the client hangs up: [`LINGER`] after it connected. From then
    /// on reads return EOF and writes fail.
    hang_up_at: tokio::time::Instant,
    polls: u64,
}

impl MockIo {
    /// A connection that sends `input` as `script` says.
    pub fn new(input: &[u8], script: Script, wire: Arc<Mutex<Wire>>) -> Self {
        MockIo {
            input: input.to_vec(),
            pos: 0,
            steps: script.steps.into_iter(),
            wire,
            linger: None,
            hang_up_at: tokio::time::Instant::now() + LINGER,
            polls: 0,
        }
    }
}

impl MockIo {
    fn hung_up(&self) -> bool {
        tokio::time::Instant::now() >= self.hang_up_at
    }
}

impl AsyncRead for MockIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.polls += 1;
        if self.polls > POLL_BUDGET {
            panic!("the connection polled its IO {POLL_BUDGET} times without ending");
        }
        if self.hung_up() {
            return Poll::Ready(Ok(())); // EOF
        }
        let mut wire = self.wire.lock().unwrap();
        if wire.shutdown_requested && wire.shutdown_at.is_none() {
            // The shutdown step has been taken, the signal not yet sent.
            wire.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        drop(wire);
        let left = self.input.len() - self.pos;
        if left == 0 {
            // Quiet until the hang-up.
            let at = self.hang_up_at;
            let linger = self
                .linger
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            return linger.as_mut().poll(cx).map(|()| Ok(()));
        }
        let max = match self.steps.next() {
            Some(Step::Read(n)) => n,
            Some(Step::Pending) => {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Some(Step::Shutdown) => {
                // The harness sends the signal before it next polls the
                // connection (see `serve_scripted`), or, if another task
                // reads, as soon as it runs (`websocket::Signal`).
                let mut wire = self.wire.lock().unwrap();
                wire.shutdown_requested = true;
                if let Some(harness) = wire.harness.take() {
                    harness.wake();
                }
                drop(wire);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            None => left,
        };
        let n = max.min(left).min(buf.remaining());
        let start = self.pos;
        buf.put_slice(&self.input[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MockIo {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.hung_up() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        self.wire.lock().unwrap().output.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
