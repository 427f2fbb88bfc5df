//! Upgrading in place: a new process takes over the listening socket, and
//! the old one drains, with no connection refused or reset in between.
//!
//! The protocol has three named steps, as in cloudflare's tableflip
//! (`Upgrade()`, `Ready()`, `Exit()`):
//!
//! 1. **Start** (`start.rs`): on SIGHUP the old process starts the binary
//!    that is on disk now, same arguments and environment, and hands it
//!    the listening socket as fd 3 (`LISTEN_FDS=1`) and a pipe as fd 4.
//! 2. **Ready** (`ready.rs`): the new process opens its store, installs its
//!    signal handlers, and serves the inherited socket — it binds nothing.
//!    Right before its accept loop starts, it writes one byte to the pipe.
//!    Until then, the old process accepts from the same socket as usual;
//!    from then on both do, so a connection queued on the socket is
//!    accepted by one of them whatever happens.
//! 3. **Exit**: the old process's shutdown trigger resolves to
//!    [`Stop::Upgrade`]: it closes its copy of the socket (the socket
//!    itself stays open in the new process, with its queue), drains
//!    without a lame-duck delay, and exits 0.
//!
//! A failed upgrade loses nothing: if the new process exits, or has not
//! said ready within `--upgrade-timeout`, the old process logs why, stops
//! and reaps it, and goes on serving as if nothing had happened. During an
//! upgrade, a second SIGHUP is ignored (with a log line), and SIGTERM stops
//! the new process and then drains as usual.
//!
//! Both processes share the SQLite file during the handover; the store is
//! in WAL mode for exactly that ([`crate::store`]).
//!
//! The service manager is told along the way ([`crate::process::notify`]).
//!
//! # Why the socket is handed over, not bound again
//!
//! The other way to restart is `SO_REUSEPORT`: the new process binds the
//! same port with a listener of its own, and the old one closes its own.
//! But each listener has its own accept queue, and the kernel spreads new
//! connections across them; when the old process closes its listener, the
//! connections queued on it (handshakes completed, not yet accepted) are
//! **reset**. Linux can move them to another listener instead, but only
//! with `net.ipv4.tcp_migrate_req=1` (5.14 and later), a system-wide
//! setting an application cannot count on. With one socket handed from
//! process to process there is one queue, and whichever process accepts,
//! nothing queued is lost. The same handover is what systemd's socket
//! activation does at start ([`crate::process::listener`]).
//!
//! # What the pieces are, and why
//!
//! - **The path recorded at start-up** ([`Origin`]), not
//!   `/proc/self/exe`: that link is the *running* inode, which after a
//!   deploy is the old, deleted file. Replace the file by renaming a new
//!   one over it; a symlink is resolved once, at start-up.
//! - **`LISTEN_PID`** must be the new process's own pid, known only after
//!   `fork`, when only async-signal-safe calls are allowed. The `execve` is
//!   prepared before the fork with room for the digits; the child writes
//!   its pid there and calls `execve` itself (`start.rs`).
//! - **The ready pipe** (`ready.rs`, [`ReadySignal`]): a byte means ready;
//!   end of file without one means the new process died, at once, with no
//!   timeout to wait out. A health check through the socket could not
//!   tell: the old process might answer it.
//! - **Who tells systemd what** ([`crate::process::notify`]): the old
//!   process sends `RELOADING=1` at the SIGHUP, then `MAINPID=` and
//!   `READY=1` for the new one, then falls silent while it drains; the new
//!   one says nothing until it is the main process. A failed upgrade ends
//!   with `READY=1` and a `STATUS=` saying it failed.
//!
//! After a successful upgrade the old process logs no `lame_duck` phase:
//! its report says `cause="upgrade"` and `lame_duck_end="upgrade"`.

mod ready;
mod start;

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::process::Child;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use ready::ReadySignal;
pub use start::Origin;

use crate::process::notify::Notifier;
use crate::process::signals::UpgradeRequests;
use crate::shutdown::stop::Stop;

/// How long a new process that failed is given to exit after SIGTERM
/// before it gets SIGKILL. SIGTERM first because a new process that
/// became ready just as we gave up may already have accepted connections:
/// SIGTERM lets it drain them. A new process that is not ready has
/// accepted nothing, so a short wait is enough.
pub(crate) const STOP_CHILD_WAIT: Duration = Duration::from_secs(3);

/// The old process's side of the protocol. It is the `shutdown` trigger of
/// [`crate::Server::run`]: see [`Upgrader::serve`].
#[derive(Debug)]
pub struct Upgrader {
    origin: Origin,
    /// A copy of the listening socket, for the new process. Dropped when
    /// [`Upgrader::serve`] returns — at the first signal or at the handover
    /// — because as long as one copy is open the socket stays open: left
    /// here during a signal's drain, it would queue connections nobody
    /// will accept instead of refusing them.
    socket: OwnedFd,
    /// `--upgrade-timeout`: how long the new process has to say ready.
    timeout: Duration,
    notifier: Notifier,
}

/// How one upgrade attempt ended.
enum Attempt {
    /// The new process said ready.
    Ready { new_pid: u32 },
    /// It did not; the old process goes on serving.
    Failed(String),
    /// SIGTERM or SIGINT came first.
    Interrupted,
}

impl Upgrader {
    /// An upgrader for `listener`, which the server is about to serve.
    pub fn new(
        origin: Origin,
        listener: &TcpListener,
        timeout: Duration,
        notifier: Notifier,
    ) -> std::io::Result<Upgrader> {
        Ok(Upgrader {
            origin,
            socket: listener.as_fd().try_clone_to_owned()?,
            timeout,
            notifier,
        })
    }

    /// Serves upgrade requests until the server should stop, and says why:
    /// [`Stop::Signal`] at the first SIGTERM/SIGINT (`shutdown`), or
    /// [`Stop::Upgrade`] once a new process has said it is ready.
    pub async fn serve(self, mut requests: UpgradeRequests, shutdown: CancellationToken) -> Stop {
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Stop::Signal,
                _ = requests.next() => {}
            }
            info!(signal = "SIGHUP", "upgrade: starting a new process");
            self.notifier.reloading();
            match self.attempt(&mut requests, &shutdown).await {
                Attempt::Ready { new_pid } => {
                    info!(new_pid, "upgrade: the new process is ready; draining");
                    self.notifier.hand_over(new_pid);
                    return Stop::Upgrade { new_pid };
                }
                Attempt::Failed(why) => {
                    warn!(reason = %why, "upgrade failed: still serving");
                    self.notifier.upgrade_failed(&why);
                }
                Attempt::Interrupted => return Stop::Signal,
            }
        }
    }

    /// One upgrade: start, then wait for ready. A new process that does not
    /// become ready is stopped and reaped before this returns.
    async fn attempt(
        &self,
        requests: &mut UpgradeRequests,
        shutdown: &CancellationToken,
    ) -> Attempt {
        // ── 1. Start ─────────────────────────────────────────────────────
        let started = match start::start(&self.origin, self.socket.as_fd()) {
            Ok(started) => started,
            Err(e) => return Attempt::Failed(format!("cannot start the new process: {e}")),
        };
        let (mut child, mut ready) = (started.child, started.ready);
        let Some(new_pid) = child.id() else {
            return Attempt::Failed("the new process is gone already".into());
        };
        let exe = self.origin.exe().map(|p| p.display().to_string());
        info!(
            new_pid,
            exe = exe.unwrap_or_default(),
            "upgrade: new process started"
        );

        // ── 2. Ready ─────────────────────────────────────────────────────
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let verdict = loop {
            tokio::select! {
                said = ready.said_ready() => break match said {
                    Ok(true) => Attempt::Ready { new_pid },
                    Ok(false) => Attempt::Failed("the new process closed its ready pipe without saying ready".into()),
                    Err(e) => Attempt::Failed(format!("cannot read the ready pipe: {e}")),
                },
                status = child.wait() => break Attempt::Failed(match status {
                    Ok(status) => format!("the new process exited before it was ready ({status})"),
                    Err(e) => format!("cannot wait for the new process: {e}"),
                }),
                _ = &mut deadline => break Attempt::Failed(format!(
                    "the new process was not ready within {:?} (--upgrade-timeout)", self.timeout
                )),
                _ = shutdown.cancelled() => break Attempt::Interrupted,
                _ = requests.next() => {
                    info!(signal = "SIGHUP", new_pid, "upgrade in progress: SIGHUP ignored");
                }
            }
        };

        // ── 3. Exit, or back to serving ──────────────────────────────────
        // Ready: the new process is on its own now. Dropping `child`
        // neither kills nor waits for it: it outlives us.
        if !matches!(verdict, Attempt::Ready { .. }) {
            if matches!(verdict, Attempt::Interrupted) {
                info!(
                    new_pid,
                    "shutting down during an upgrade: stopping the new process"
                );
            }
            stop(&mut child, new_pid).await;
        }
        verdict
    }
}

/// Stops a new process that did not become ready, and reaps it: SIGTERM,
/// up to [`STOP_CHILD_WAIT`], then SIGKILL. Reaping is what keeps it from
/// lingering as a zombie.
async fn stop(child: &mut Child, pid: u32) {
    if let Ok(Some(status)) = child.try_wait() {
        info!(new_pid = pid, %status, "upgrade: the new process has exited and is reaped");
        return;
    }
    // SAFETY: kill(2) on our own child, which has not been reaped (so the
    // pid cannot have been reused).
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = match tokio::time::timeout(STOP_CHILD_WAIT, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            warn!(new_pid = pid, "the new process ignored SIGTERM: SIGKILL");
            // `kill` sends SIGKILL and waits; `wait` then gives the status.
            match child.kill().await {
                Ok(()) => child.wait().await,
                Err(e) => Err(e),
            }
        }
    };
    match status {
        Ok(status) => {
            info!(new_pid = pid, %status, "upgrade: the new process is stopped and reaped")
        }
        Err(e) => warn!(new_pid = pid, error = %e, "cannot reap the new process"),
    }
}
