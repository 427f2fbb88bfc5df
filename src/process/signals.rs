//! The only module that knows about OS signals.
//!
//! It turns signals into the triggers the rest of the program takes as
//! parameters:
//!
//! | signal | trigger | meaning |
//! |---|---|---|
//! | first SIGTERM or SIGINT | [`Triggers::shutdown`] cancelled | drain gracefully |
//! | second SIGTERM or SIGINT | [`Triggers::force`] cancelled | stop now |
//! | SIGHUP, each time | one message on [`UpgradeRequests`] | start an upgrade ([`crate::upgrade`]) |
//!
//! Tests drive the server core with their own tokens and never touch this
//! module; the binary tests send real signals to the real process.
//!
//! Go: `signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)`. One
//! difference: after Go's `stop()`, a second Ctrl-C kills the process with
//! the default action. Here it is a deliberate forced close that still
//! writes the shutdown report and exits 1. Go has no SIGHUP convention;
//! `cloudflare/tableflip` users wire `SIGHUP` to `Upgrade()` by hand, as
//! here.

use std::io;

use futures_util::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The two shutdown triggers, as tokens.
#[derive(Debug, Clone, Default)]
pub struct Triggers {
    /// Cancelled by the first signal: begin the graceful shutdown.
    pub shutdown: CancellationToken,
    /// Cancelled by the second signal: force the close.
    pub force: CancellationToken,
}

/// SIGHUPs, one message each: requests to upgrade. A channel rather than a
/// token because it fires more than once, and whoever reads it decides
/// what a SIGHUP means *now* (start an upgrade, or ignore it because one is
/// already under way). Unbounded, but it holds one `()` per signal the
/// reader has not looked at yet; the reader is always looking.
#[derive(Debug)]
pub struct UpgradeRequests(mpsc::UnboundedReceiver<()>);

impl UpgradeRequests {
    /// The next SIGHUP. Cancel safe: a SIGHUP that arrives while this
    /// future is dropped waits in the channel for the next call.
    pub async fn next(&mut self) {
        // The sender lives in the signal task, which only ends at the
        // second SIGTERM; after that nothing is upgraded any more.
        if self.0.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}

/// What [`install`] sets up.
#[derive(Debug)]
pub struct Installed {
    /// SIGTERM/SIGINT, as tokens.
    pub triggers: Triggers,
    /// SIGHUP, as messages.
    pub upgrades: UpgradeRequests,
    /// The task that listens. It ends after the second SIGTERM/SIGINT;
    /// abort it once the server has returned.
    pub task: JoinHandle<()>,
}

/// Installs the SIGTERM/SIGINT/SIGHUP handlers and returns the triggers
/// they fire. Must be called inside a Tokio runtime.
///
/// From this call on, SIGHUP no longer kills the process (its default
/// action): a new process of an upgrade calls this before it says it is
/// ready, so the next upgrade can never kill it by arriving early.
pub fn install() -> io::Result<Installed> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let triggers = Triggers::default();
    let fire = triggers.clone();
    let (upgrade, upgrades) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut seen = 0;
        while let Some(signal) = signals.next().await {
            let name = match signal {
                SIGHUP => {
                    // Nobody reads once the shutdown has begun: the server
                    // is on its way out, there is nothing left to upgrade.
                    if upgrade.send(()).is_err() {
                        info!(signal = "SIGHUP", "shutting down: upgrade ignored");
                    }
                    continue;
                }
                SIGTERM => "SIGTERM",
                _ => "SIGINT",
            };
            seen += 1;
            if seen == 1 {
                info!(signal = name, "first signal: shutting down gracefully");
                fire.shutdown.cancel();
            } else {
                info!(signal = name, "second signal: forcing the close");
                fire.force.cancel();
                break;
            }
        }
    });
    Ok(Installed {
        triggers,
        upgrades: UpgradeRequests(upgrades),
        task,
    })
}
