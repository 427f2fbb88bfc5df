//! Telling a service manager (systemd) where we are: `sd_notify(3)`.
//!
//! Everything here is a no-op unless `NOTIFY_SOCKET` is set, which systemd
//! does for `Type=notify` and `Type=notify-reload` services.
//!
//! | when | message | sent by |
//! |---|---|---|
//! | serving, at start-up | `READY=1` | a process started by the service manager |
//! | SIGHUP: an upgrade starts | `RELOADING=1`, `MONOTONIC_USEC=…` | the old process |
//! | the new process is ready | `MAINPID=<new>`, `READY=1` | the old process, for the new one |
//! | the upgrade failed | `READY=1`, `STATUS=upgrade failed: …` | the old process, which goes on serving |
//! | the shutdown begins | `STOPPING=1` | the main process |
//! | while it lame-ducks and drains | `EXTEND_TIMEOUT_USEC=…`, every [`EXTEND_EVERY`] | the main process |
//!
//! Who says what, during an upgrade: until the new process is ready, the
//! old one is the service's main process and speaks for it. The new process
//! says nothing at start-up — a `READY=1` from a process systemd does not
//! yet know as the main one is refused under `NotifyAccess=main` — and the
//! old one sends `MAINPID=` and `READY=1` together, for it. From then on the
//! old process is silent ([`Notifier::hand_over`]): it drains, but a
//! `STOPPING=1` from it would read as the *service* stopping. systemd reads
//! notifications before it reaps exits, so the `MAINPID=` is seen before
//! the old process is gone.
//!
//! `MONOTONIC_USEC` with `RELOADING=1` is required by systemd 253's
//! `Type=notify-reload`: it tells a reload this process started apart from
//! an older one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;
use tracing::warn;

use crate::shutdown::phase::Phase;

/// How often a shutdown in progress tells systemd it is still making
/// progress.
pub(crate) const EXTEND_EVERY: Duration = Duration::from_secs(2);

/// How far each `EXTEND_TIMEOUT_USEC` reaches: past the next one, with a
/// second to spare for a slow wake-up, so systemd's stop timeout never
/// fires between two of them while our own deadline has not passed.
pub(crate) const EXTEND_BY: Duration = Duration::from_secs(3);

/// Sends notifications for this process. Cheap to clone; the clones share
/// whether this process has handed over.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    /// Set once a new process has taken over: from then on, this process
    /// no longer speaks for the service.
    handed_over: Arc<AtomicBool>,
}

impl Notifier {
    /// A notifier for this process.
    pub fn new() -> Notifier {
        Notifier::default()
    }

    /// Serving: `READY=1`.
    pub fn ready(&self) {
        self.send(&[NotifyState::Ready, NotifyState::Status("serving")]);
    }

    /// An upgrade begins: `RELOADING=1` with the monotonic clock.
    pub fn reloading(&self) {
        let mut states = vec![NotifyState::Reloading, NotifyState::Status("upgrading")];
        match NotifyState::monotonic_usec_now() {
            Ok(now) => states.push(now),
            Err(e) => warn!(error = %e, "cannot read CLOCK_MONOTONIC for sd_notify"),
        }
        self.send(&states);
    }

    /// The new process `new_pid` is ready: `MAINPID=` and `READY=1` for it.
    /// This process says nothing more after this.
    pub fn hand_over(&self, new_pid: u32) {
        self.send(&[
            NotifyState::MainPid(new_pid),
            NotifyState::Ready,
            NotifyState::Status("serving"),
        ]);
        self.handed_over.store(true, Ordering::Relaxed);
    }

    /// The upgrade failed: this process still serves, `READY=1` again.
    pub fn upgrade_failed(&self, why: &str) {
        let status = format!("upgrade failed: {why}; the old process still serves");
        self.send(&[NotifyState::Ready, NotifyState::Status(&status)]);
    }

    /// Follows the shutdown's phases: `STOPPING=1` when it begins, then an
    /// `EXTEND_TIMEOUT_USEC` every [`EXTEND_EVERY`] while it lame-ducks and
    /// drains — until the phase moves on to forcing, which is when our own
    /// `--shutdown-timeout` has passed. Returns at `Stopped`.
    pub async fn follow_phases(self, mut phases: watch::Receiver<Phase>) {
        let mut stopping_sent = false;
        loop {
            // Only the newest phase is kept: a shutdown with nothing to
            // drain can go from running to stopped before this task runs.
            // `STOPPING=1` is sent for whatever phase past running is seen
            // first, stopped included.
            let phase = *phases.borrow_and_update();
            let extending = matches!(phase, Phase::LameDuck | Phase::Draining);
            if phase != Phase::Running && !stopping_sent {
                self.send(&[
                    NotifyState::Stopping,
                    NotifyState::Status("draining"),
                    NotifyState::ExtendTimeoutUsec(EXTEND_BY.as_micros() as u32),
                ]);
                stopping_sent = true;
            } else if extending {
                self.send(&[NotifyState::ExtendTimeoutUsec(EXTEND_BY.as_micros() as u32)]);
            }
            if phase == Phase::Stopped {
                return;
            }
            let next_ping = async {
                if extending {
                    tokio::time::sleep(EXTEND_EVERY).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                changed = phases.changed() => if changed.is_err() { return },
                _ = next_ping => {}
            }
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if self.handed_over.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            warn!(error = %e, "sd_notify failed");
        }
    }
}
