//! The `lameduck` binary: flags, logging ([`logging`]), the listening
//! socket, signals, run, exit code. Everything else lives in the library.
//!
//! The order of start-up is part of the upgrade protocol
//! ([`lameduck::upgrade`]): a new process says it is ready only once its
//! store is open, its signal handlers are installed and the inherited
//! socket is its listener, right before the accept loop starts.

mod logging;

use std::process::ExitCode;

use clap::Parser as _;
use lameduck::cli::Cli;
use lameduck::process::notify::Notifier;
use lameduck::process::{listener, signals};
use lameduck::upgrade::{Origin, ReadySignal, Upgrader};
use lameduck::{Server, store};
use tracing::{info, warn};

fn main() -> ExitCode {
    // First, while this is the only thread: `listenfd` removes variables
    // from the environment, which races with any other thread reading it.
    let inherited = listener::take_inherited();
    // Where we were started from, before anyone can replace the file: an
    // upgrade runs whatever is at this path then.
    let origin = Origin::record();
    // Set only in the new process of an upgrade.
    let parent = ReadySignal::from_env();

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

    // A RUST_LOG that cannot be read is a bad flag like any other.
    let filter = match logging::filter_from_env() {
        Ok(filter) => filter,
        Err(e) => return startup_error(format_args!("{e}")),
    };
    logging::init(filter, cli.log_format);

    let inherited = match inherited {
        Ok(inherited) => inherited,
        Err(e) => return startup_error(format_args!("cannot use the inherited socket: {e}")),
    };
    let parent = match parent.transpose() {
        Ok(parent) => parent,
        Err(e) => return startup_error(format_args!("upgrade: {e}")),
    };
    // A new process of an upgrade that binds a socket of its own would
    // take the service elsewhere (a different port, with port 0) while
    // the old process drains: refuse, and let the upgrade fail.
    if parent.is_some() && inherited.is_none() {
        return startup_error(format_args!(
            "upgrade: started to take over a socket, but no socket was inherited (LISTEN_FDS, LISTEN_PID)"
        ));
    }

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return startup_error(format_args!("cannot start the runtime: {e}")),
    };
    let code = runtime.block_on(async {
        // Before listening: a database that cannot be opened or migrated is
        // a start-up error (exit 2), not a server that answers 500s. Inside
        // the runtime, because a Postgres store's connections are tasks
        // on it.
        let store = store::open(&config.db).await.map_err(|e| e.to_string())?;
        info!(db = %store::describe(&config.db), "store open");

        let (listener, how) = match inherited {
            Some(socket) => (
                listener::serve_inherited(socket)
                    .map_err(|e| format!("cannot use the inherited socket: {e}"))?,
                " (inherited)",
            ),
            None => (
                listener::bind(config.addr, config.backlog)
                    .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?,
                "",
            ),
        };
        let signals =
            signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        info!(pid = std::process::id(), "listening on {addr}{how}");

        let notifier = Notifier::new();
        let upgrader =
            Upgrader::new(origin, &listener, config.upgrade_timeout, notifier.clone())
                .map_err(|e| format!("cannot keep a copy of the socket for upgrades: {e}"))?;
        let server = Server::with_store(config, store);
        let phases = tokio::spawn(
            notifier
                .clone()
                .follow_phases(server.app().shutdown.subscribe()),
        );

        // Ready. A new process of an upgrade tells the old one, which tells
        // the service manager on its behalf (see lameduck::process::notify); any
        // other process tells the service manager itself.
        match parent {
            // If the old process is gone (it gave up on us, or died), serve
            // on: one that gave up sends SIGTERM next, and we drain.
            Some(parent) => {
                if let Err(e) = parent.ready() {
                    warn!(error = %e, "upgrade: cannot tell the old process we are ready");
                }
            }
            None => notifier.ready(),
        }
        let report = server
            .run(
                listener,
                upgrader.serve(signals.upgrades, signals.triggers.shutdown.clone()),
                signals.triggers.force.cancelled_owned(),
            )
            .await;
        // The signal listener has done its job; stop it so the runtime can
        // shut down. The notifier ends by itself once it has seen the
        // stopped phase; it is waited for (briefly), not aborted, so that
        // `STOPPING=1` is sent even when the whole shutdown took less time
        // than one turn of its task.
        signals.task.abort();
        let _ = tokio::time::timeout(NOTIFIER_EXIT_WAIT, phases).await;
        Ok::<_, String>(report.exit_code())
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

/// How long the exit waits for the service-manager notifier to send its
/// last message: one datagram on a local socket, so a moment is plenty.
const NOTIFIER_EXIT_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Start-up failures: one line on stderr, exit code 2.
fn startup_error(msg: std::fmt::Arguments<'_>) -> ExitCode {
    eprintln!("lameduck: {msg}");
    ExitCode::from(2)
}
