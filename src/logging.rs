//! Log set-up: what is logged (`RUST_LOG`) and how (`--log-format`).
//!
//! Every line goes to stderr. The shutdown's lines carry structured
//! fields (`phase`, `conns`, `outcome`); in `text` they read
//! `outcome="drained"`, in `json` each is a key of the line's object, so a
//! log collector can filter on them without parsing strings.
//!
//! Every line goes through [`lameduck::process::log_writer`]'s bounded
//! queue, never straight to stderr: a log reader that stalls costs dropped
//! (and counted) lines, not a server that stops serving. [`init`] returns
//! the [`Flush`] that `main` calls at exit.
//!
//! A `RUST_LOG` that cannot be read is a start-up error, not a silent
//! fall-back to `info`: an operator who asked for `debug` and got `info`
//! would learn it only when the lines they needed were missing.

use std::io::IsTerminal;

use lameduck::cli::LogFormat;
use lameduck::process::log_writer::{self, Flush};
use tracing_subscriber::EnvFilter;

/// What is logged when `RUST_LOG` is unset or empty.
const DEFAULT_FILTER: &str = "info";

/// Reads `RUST_LOG`. Done before [`init`], so that a bad value is reported
/// as a start-up error (one line, exit 2) before anything else is logged.
pub fn filter_from_env() -> Result<EnvFilter, String> {
    let value = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(value) => value,
        Err(std::env::VarError::NotPresent) => String::new(),
        Err(e) => return Err(format!("RUST_LOG: {e}")),
    };
    let directives = match value.trim() {
        "" => DEFAULT_FILTER,
        set => set,
    };
    EnvFilter::try_new(directives)
        .map_err(|e| format!("RUST_LOG={value:?} is not a log filter: {e}"))
}

/// Installs the global subscriber: `filter` decides which lines, `format`
/// how they are written. The returned [`Flush`] writes what is still
/// queued, and the held report, at exit.
pub fn init(filter: EnvFilter, format: LogFormat) -> Flush {
    let (lines, flush) = log_writer::install();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(lines);
    match format {
        // Colours only for a person at a terminal; a file or a pipe gets
        // plain text.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // `flatten_event`: the event's fields sit at the top level of the
        // object (`"outcome":"drained"`), not under a `fields` key. Never
        // colours: an escape code inside a JSON string is noise to a
        // collector, even when the collector is watching a terminal.
        LogFormat::Json => builder.with_ansi(false).json().flatten_event(true).init(),
    }
    flush
}
