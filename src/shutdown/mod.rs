//! [`ShutdownState`]: the phase and the tokens of the shutdown, with one
//! owner.
//!
//! Every part of the server asks the same few questions: has the first
//! signal come (`/healthz`), has the drain begun (the connection code, the
//! event streams, the write counter), has the deadline passed (every
//! waiting handler)? And the server's `run` is the one that moves the
//! answers forward. This type holds the answers privately and names both
//! sides: the questions are methods anyone may call, the transitions are
//! `pub(crate)` and called only by [`crate::server`], `drain` and
//! the fuzz harness, which re-enacts one connection's drain.
//!
//! The order of the drain is written down once, in
//! `ShutdownState::begin_drain`.
//!
//! | token | cancelled when | who watches it |
//! |---|---|---|
//! | `closing` | the drain begins (and again at a forced close) | connections finish (HTTP/1: `Connection: close`; HTTP/2: GOAWAY); event streams end with a last event; background workers stop; writes that finish after it are counted as drained |
//! | `past_deadline` | the shutdown deadline passes | waiting handlers answer `503` + `Retry-After` instead of being cut |
//! | `abandon_writes` | the shutdown is forced, and only then | a write still in progress rolls back instead of committing |
//! | `abort_streams` | the forced close | HTTP/2 stream tasks, which live outside their connection task, and WebSocket sessions (both through `streams_aborted`) |

pub mod health_checkers;
pub(crate) mod phase;
pub mod spread;
pub(crate) mod stop;
pub(crate) mod token_wait;

use std::future::Future;
use std::sync::OnceLock;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::shutdown::phase::{Phase, PhaseCell};
use crate::shutdown::spread::{Pace, Spread};
use crate::shutdown::stop::Stop;
use crate::shutdown::token_wait::TokenWait;

/// The shutdown's shared state. One per server, inside its `App`.
#[derive(Debug)]
pub struct ShutdownState {
    /// The article's `shuttingDown` atomic: read on every `/healthz`, so a
    /// single relaxed load, never a lock.
    phase: PhaseCell,
    /// The same phase for whoever wants to *wait* for a change (the
    /// binary's service-manager notifications). Written only on a
    /// transition, so it costs the request path nothing.
    phase_changes: watch::Sender<Phase>,
    /// Why the server stopped serving, set once at the first signal: what
    /// a WebSocket's Close frame says (1001 going away, or 1012 service
    /// restart after an upgrade), so that its client knows whether to
    /// come back at once.
    cause: OnceLock<Stop>,
    /// The article's `closing` channel; see the module table.
    closing: CancellationToken,
    /// When, after `closing`, each connection is told to go
    /// (`--drain-spread`): see [`Spread`].
    spread: Spread,
    /// See the module table.
    past_deadline: CancellationToken,
    /// See the module table.
    abandon_writes: CancellationToken,
    /// See the module table.
    abort_streams: CancellationToken,
    /// Writes in progress, each a task of its own rather than part of its
    /// request: a client that leaves mid-write drops its handler, not the
    /// write. The drain waits for these like it waits for connections.
    writes: TaskTracker,
}

impl Default for ShutdownState {
    fn default() -> Self {
        ShutdownState {
            phase: PhaseCell::default(),
            phase_changes: watch::Sender::new(Phase::Running),
            cause: OnceLock::new(),
            spread: Spread::default(),
            closing: CancellationToken::new(),
            past_deadline: CancellationToken::new(),
            abandon_writes: CancellationToken::new(),
            abort_streams: CancellationToken::new(),
            writes: TaskTracker::new(),
        }
    }
}

// ── The questions ────────────────────────────────────────────────────────
impl ShutdownState {
    /// The phase now.
    pub fn phase(&self) -> Phase {
        self.phase.get()
    }

    /// True from the first signal on: what `/healthz` asks.
    pub fn is_shutting_down(&self) -> bool {
        self.phase() != Phase::Running
    }

    /// True once the drain has begun: the listener is closed and every
    /// connection has been told to finish.
    pub fn is_draining(&self) -> bool {
        self.phase() >= Phase::Draining
    }

    /// Why the server is stopping (`None` while it runs): a signal, or an
    /// upgrade to a new process.
    pub fn cause(&self) -> Option<Stop> {
        self.cause.get().copied()
    }

    /// True once the shutdown deadline has passed.
    pub fn is_past_deadline(&self) -> bool {
        self.past_deadline.is_cancelled()
    }

    /// Resolves when the drain begins (or the shutdown is forced, which
    /// skips it). For `select!`, and for every connection task: see
    /// [`TokenWait`] for why it is not the token's own future.
    pub fn closing(&self) -> TokenWait<'_> {
        self.wait(&self.closing, Phase::Draining)
    }

    /// The drain's goodbye window.
    pub fn spread(&self) -> &Spread {
        &self.spread
    }

    /// Resolves when this goodbye is due: the drain has begun and its own
    /// instant in the spread window has come, or the close is forced
    /// (which skips what is left of the window). For the long-lived
    /// connections: an event stream's last event, a WebSocket's Close,
    /// an HTTP/2 connection's GOAWAY.
    pub async fn goodbye(&self) {
        self.closing().await;
        let at = self.spread.instant();
        // Without a window (or past its instant) the goodbye is due in
        // this very poll: no timer, which would cost a turn of the
        // runtime's clock.
        if at <= std::time::Instant::now() {
            return;
        }
        // The forced close skips the rest of the window. Through
        // `streams_aborted`, since a stream's body polls this at every
        // event it sends while the window lasts.
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => {}
            _ = self.streams_aborted() => {}
        }
    }

    /// Resolves when the shutdown deadline passes. For `select!`, in every
    /// handler that waits (see [`TokenWait`]).
    pub fn past_deadline(&self) -> TokenWait<'_> {
        self.wait(&self.past_deadline, Phase::Forcing)
    }

    /// Resolves at the forced close (`abort_everything`): for HTTP/2
    /// stream tasks and WebSocket sessions, which poll it at each of
    /// their wake-ups (see [`TokenWait`]).
    pub fn streams_aborted(&self) -> TokenWait<'_> {
        self.wait(&self.abort_streams, Phase::Forcing)
    }

    /// `token`'s cancellation, cancelled only once the phase is `from`.
    fn wait<'a>(&'a self, token: &'a CancellationToken, from: Phase) -> TokenWait<'a> {
        TokenWait::new(token, &self.phase, from)
    }

    /// Every phase change from now on, for those that wait for one.
    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.phase_changes.subscribe()
    }

    /// Starts a write as a tracked task of its own and returns its handle.
    /// The write gets the `abandon_writes` token, never a request token:
    /// only a forced shutdown makes it roll back.
    pub fn spawn_write<F, Fut>(&self, write: F) -> JoinHandle<Fut::Output>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        self.writes.spawn(write(self.abandon_writes.clone()))
    }

    /// `closing` itself, owned, for those that hold it: background workers
    /// (they stop when the drain begins) and event stream bodies (they end
    /// with a last event).
    pub(crate) fn closing_token(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// The writes in progress, for the drain to wait on.
    pub(crate) fn writes(&self) -> &TaskTracker {
        &self.writes
    }
}

// ── The transitions, in the order `Server::run` makes them ──────────────
impl ShutdownState {
    /// The first signal, or an upgrade (`cause`): `/healthz` fails from
    /// now on.
    pub(crate) fn enter_lame_duck(&self, cause: Stop) {
        // Set once: `run` enters the lame duck once, and a second signal
        // changes how the shutdown ends, not why it began.
        let _ = self.cause.set(cause);
        self.set(Phase::LameDuck);
    }

    /// The drain begins. The order matters:
    ///
    /// 1. the phase, first, because a connection still reading its first
    ///    bytes checks it to decide whether to serve one request and close;
    /// 2. `closing`: event streams send their last event, background
    ///    workers stop at their next check, HTTP/1 connections begin
    ///    their keep-alive grace (idle for longer than it: closed now;
    ///    busy or used recently: the next response carries
    ///    `Connection: close`), and HTTP/2 connections send GOAWAY.
    ///
    /// The goodbyes to the `open` connections go at `pace` over up to
    /// `spread` (see [`Spread`]); the window is set before `closing`, so
    /// that every goodbye sees it.
    pub(crate) fn begin_drain(&self, spread: std::time::Duration, open: u64, pace: Pace) {
        self.spread.begin(spread, open, pace);
        self.set(Phase::Draining);
        self.closing.cancel();
    }

    /// The shutdown is forced (deadline or second signal): writes still in
    /// progress roll back instead of committing, so a forced exit never
    /// leaves a write half done.
    pub(crate) fn begin_force(&self) {
        self.set(Phase::Forcing);
        self.abandon_writes.cancel();
    }

    /// The deadline: handlers that have not answered yet answer `503` +
    /// `Retry-After` now. Called after `begin_force`, so the phase is
    /// already `Forcing` (see [`TokenWait`]).
    pub(crate) fn refuse_unanswered(&self) {
        debug_assert!(self.phase() >= Phase::Forcing);
        self.past_deadline.cancel();
    }

    /// Go's `Close`: everything still running is stopped. `closing` again,
    /// because a second signal during the lame-duck phase skips the drain
    /// (called after `begin_force`, so the phase is past `Draining`).
    pub(crate) fn abort_everything(&self) {
        debug_assert!(self.phase() >= Phase::Forcing);
        self.closing.cancel();
        self.abort_streams.cancel();
    }

    /// `run` has returned.
    pub(crate) fn stopped(&self) {
        self.set(Phase::Stopped);
    }

    fn set(&self, phase: Phase) {
        if self.phase.advance(phase) {
            self.phase_changes.send_replace(phase);
        }
    }
}
