//! The `lameduck` binary: flags, logging, bind, signals, run, exit code.
//! Everything else lives in the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser as _;
use lameduck::cli::Cli;
use lameduck::{Server, listener, signals, store};
use tracing::info;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are not errors: print them and exit 0.
        Err(e) if !e.use_stderr() => e.exit(),
        // A bad flag is a start-up error: one line, exit 2.
        Err(e) => {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or_default();
            return startup_error(format_args!("{}", first.trim_start_matches("error: ")));
        }
    };
    let config = cli.config();

    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    // Before listening: a database that cannot be opened or migrated is a
    // start-up error (exit 2), not a server that answers 500s.
    let store = match store::open(&config.db) {
        Ok(store) => store,
        Err(e) => return startup_error(format_args!("{e}")),
    };
    info!(db = %config.db.display(), "store open");

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return startup_error(format_args!("cannot start the runtime: {e}")),
    };
    let code = runtime.block_on(async {
        let listener = match listener::bind(config.addr, config.backlog) {
            Ok(l) => l,
            Err(e) => return Err(format!("cannot listen on {}: {e}", config.addr)),
        };
        let (triggers, signal_task) =
            signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        info!("listening on {addr}");

        let server = Server::with_store(config, store);
        let report = server
            .run(
                listener,
                triggers.shutdown.cancelled_owned(),
                triggers.force.cancelled_owned(),
            )
            .await;
        // The signal listener has done its job; stop it so the runtime can
        // shut down.
        signal_task.abort();
        Ok(report.exit_code())
    });
    // Hooks still running on the blocking pool do not hold the exit: the
    // outer deadline rules (see lameduck::hooks).
    runtime.shutdown_timeout(HOOKS_EXIT_WAIT);
    match code {
        Ok(code) => ExitCode::from(code as u8),
        Err(msg) => startup_error(format_args!("{msg}")),
    }
}

/// How long the exit waits for tasks still on the runtime once the
/// shutdown is over: only on-shutdown hooks can be left, and they are not
/// awaited (Go's `RegisterOnShutdown` hooks are not either). A short wait
/// lets a hook that is just finishing log its line; a hook that blocks
/// does not keep the process alive past the shutdown it was told about.
const HOOKS_EXIT_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Start-up failures: one line on stderr, exit code 2.
fn startup_error(msg: std::fmt::Arguments<'_>) -> ExitCode {
    eprintln!("lameduck: {msg}");
    ExitCode::from(2)
}
