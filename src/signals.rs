//! The only module that knows about OS signals.
//!
//! It turns SIGTERM and SIGINT into the two triggers the server core takes
//! as parameters: the first signal cancels `shutdown` (drain gracefully),
//! the second cancels `force` (stop now). Tests drive the core with their
//! own tokens and never touch this module; the binary tests send real
//! signals to the real process.
//!
//! Go: `signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)`. One
//! difference: after Go's `stop()`, a second Ctrl-C kills the process with
//! the default action. Here it is a deliberate forced close that still
//! writes the shutdown report and exits 1.

use std::io;

use futures_util::StreamExt;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The two triggers, as tokens.
#[derive(Debug, Clone, Default)]
pub struct Triggers {
    /// Cancelled by the first signal: begin the graceful shutdown.
    pub shutdown: CancellationToken,
    /// Cancelled by the second signal: force the close.
    pub force: CancellationToken,
}

/// Installs the SIGTERM/SIGINT handlers and returns the triggers they fire,
/// plus the task that listens (it ends after the second signal; abort it
/// once the server has returned). Must be called inside a Tokio runtime.
pub fn install() -> io::Result<(Triggers, JoinHandle<()>)> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    let triggers = Triggers::default();
    let fire = triggers.clone();
    let listener = tokio::spawn(async move {
        let mut seen = 0;
        while let Some(signal) = signals.next().await {
            seen += 1;
            let name = if signal == SIGTERM {
                "SIGTERM"
            } else {
                "SIGINT"
            };
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
    Ok((triggers, listener))
}
