//! The `lameduck` binary: flags, logging ([`logging`]), the listening
//! socket, the store, signals, run, exit code. Everything else lives in
//! the library. `main` reads as those steps; each can fail with a
//! start-up error: one line on stderr, exit code 2.
//!
//! The order of start-up is part of the upgrade protocol
//! ([`lameduck::upgrade`]): a new process says it is ready only once its
//! store is open, its signal handlers are installed and the inherited
//! socket is its listener, right before the accept loop starts.

mod logging;

use std::fmt::Display;
use std::process::ExitCode;

use clap::Parser as _;
use lameduck::cli::{self, Cli};
use lameduck::process::log_writer;
use lameduck::process::notify::Notifier;
use lameduck::process::{listener, signals};
use lameduck::upgrade::{Origin, ReadySignal, Upgrader};
use lameduck::{Server, store};
use tokio::net::TcpListener;
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

    // Set once the log is installed: from then on every line, start-up
    // errors included, leaves through its queue and is flushed at exit.
    let mut log = None;
    let started = (|| {
        let cli = read_command_line()?;
        let filter = logging::filter_from_env()?;
        log = Some(logging::init(filter, cli.log_format));
        let inherited = inherited.map_err(context("cannot use the inherited socket"))?;
        let parent = parent.transpose().map_err(context("upgrade"))?;
        // A new process of an upgrade that binds a socket of its own would
        // take the service elsewhere (a different port, with port 0) while
        // the old process drains: refuse, and let the upgrade fail.
        if parent.is_some() && inherited.is_none() {
            return Err("upgrade: started to take over a socket, but no socket was inherited (LISTEN_FDS, LISTEN_PID)".to_owned());
        }
        let runtime =
            tokio::runtime::Runtime::new().map_err(context("cannot start the runtime"))?;
        // Served from a task of the runtime's, not from this thread: the
        // accept loop then runs on a worker, and each connection it spawns
        // goes to that worker's own queue and runs next, where a loop on
        // this thread would hand every one across threads and wake a
        // worker for it (a tenth of a churned connection's instructions,
        // counted under callgrind). A panic in it is this thread's again.
        let served = runtime.spawn(serve(cli, inherited, origin, parent));
        let code = match runtime.block_on(served) {
            Ok(code) => code,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Only a runtime shutting down cancels a task, and this
                // one is not yet.
                Err(e) => Err(format!("the server's task ended: {e}")),
            },
        };
        // Hooks still running on the blocking pool do not hold the exit:
        // the outer deadline rules (see `lameduck::HookResult`).
        runtime.shutdown_timeout(HOOKS_EXIT_WAIT);
        code
    })();
    // Start-up failures: one line on stderr, exit code 2. The line comes
    // after any line logged before it, and the exit waits for stderr only
    // briefly (see `log_writer::EXIT_LOG_WAIT`): a stalled stderr must not
    // keep a failed process, or a finished one, alive.
    let (code, last) = match started {
        Ok(code) => (code, None),
        Err(msg) => (2, Some(format!("lameduck: {msg}"))),
    };
    match (log, last) {
        (Some(log), last) => log.at_exit(last),
        (None, Some(line)) => log_writer::write_bounded(line),
        (None, None) => {}
    }
    ExitCode::from(code)
}

/// The flags. `--help` and `--version` are printed and exit 0; a bad flag
/// is a start-up error like any other.
fn read_command_line() -> Result<Cli, String> {
    match Cli::try_parse() {
        Ok(cli) => cli.check().map(|()| cli),
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => Err(cli::one_line_error(&e)),
    }
}

/// Listens, opens the store, serves until the shutdown is over, and
/// returns the exit code. Every step before the accept loop starts can
/// fail with a start-up error (exit 2).
async fn serve(
    cli: Cli,
    inherited: Option<std::net::TcpListener>,
    origin: Origin,
    parent: Option<ReadySignal>,
) -> Result<u8, String> {
    let config = cli.config();

    // The socket first: a port in use is the commonest start-up error,
    // and finding it must not cost a database connection or leave a new
    // database file behind.
    let (listener, how) = listen(inherited, &config)?;

    // Before serving: a database that cannot be opened or migrated is a
    // start-up error (exit 2), not a server that answers 500s. Inside the
    // runtime, because a Postgres store's connections are tasks on it.
    let store = store::open(&config.db).await.map_err(|e| e.to_string())?;
    info!(db = %store::describe(&config.db), "store open");

    let signals = signals::install().map_err(context("cannot install signal handlers"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    info!(pid = std::process::id(), "listening on {addr}{how}");

    let notifier = Notifier::new();
    let upgrader = Upgrader::new(origin, &listener, config.upgrade_timeout, notifier.clone())
        .map_err(context("cannot keep a copy of the socket for upgrades"))?;
    let server = Server::with_store(config, store);
    let phases = tokio::spawn(
        notifier
            .clone()
            .follow_phases(server.app().shutdown.subscribe()),
    );

    // Ready. A new process of an upgrade tells the old one, which tells
    // the service manager on its behalf (see lameduck::process::notify);
    // any other process tells the service manager itself.
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
    // shut down. The notifier ends by itself once it has seen the stopped
    // phase; it is waited for (briefly), not aborted, so that `STOPPING=1`
    // is sent even when the whole shutdown took less time than one turn of
    // its task.
    signals.task.abort();
    let _ = tokio::time::timeout(NOTIFIER_EXIT_WAIT, phases).await;
    Ok(report.exit_code() as u8)
}

/// The listening socket: the inherited one (an upgrade, or systemd's
/// socket activation), or a new one on `--addr`. The second value says
/// which, for the log line.
fn listen(
    inherited: Option<std::net::TcpListener>,
    config: &lameduck::Config,
) -> Result<(TcpListener, &'static str), String> {
    match inherited {
        Some(socket) => Ok((
            listener::serve_inherited(socket)
                .map_err(context("cannot use the inherited socket"))?,
            " (inherited)",
        )),
        None => Ok((
            listener::bind(config.addr, config.backlog)
                .map_err(context(&format!("cannot listen on {}", config.addr)))?,
            "",
        )),
    }
}

/// Turns an error into a start-up error's line: `what: error`.
fn context<E: Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
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
