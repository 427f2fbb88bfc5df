//! [`Tally`]: how the tasks the shutdown waited for ended, counted as the
//! accept loop and the drain reap them.
//!
//! A connection task can end three ways: it finished (the client left, or
//! it was told to close), it panicked (a bug: logged here, once, by
//! whoever reaps it), or it was aborted by the forced close. The report
//! counts the first and the last; the second is only logged.

use std::sync::atomic::Ordering::Relaxed;

use tokio::task::JoinError;
use tracing::{error, info};

use crate::app::App;

/// Counts how tasks ended, for the report.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub conns_finished: usize,
    pub conns_aborted: usize,
    pub workers_stopped: usize,
    pub workers_aborted: usize,
}

impl Tally {
    pub(crate) fn connection(&mut self, res: Result<(), JoinError>, app: &App) {
        match res {
            Err(e) if e.is_cancelled() => {
                self.conns_aborted += 1;
                app.metrics.connections_aborted.fetch_add(1, Relaxed);
            }
            res => self.conns_finished += usize::from(log_if_panicked(res)),
        }
    }

    pub(crate) fn worker(&mut self, res: Result<&'static str, JoinError>) {
        match res {
            Ok(name) => {
                info!(worker = name, "background worker stopped");
                self.workers_stopped += 1;
            }
            Err(e) if e.is_cancelled() => self.workers_aborted += 1,
            Err(e) => error!(error = %e, "background worker panicked"),
        }
    }
}

/// Logs a connection task that panicked. Returns true if it ended normally.
pub(crate) fn log_if_panicked(res: Result<(), JoinError>) -> bool {
    match res {
        Ok(()) => true,
        Err(e) if e.is_panic() => {
            error!(error = %e, "connection task panicked");
            false
        }
        Err(_) => false,
    }
}
