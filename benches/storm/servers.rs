//! The two restarts a storm row is measured through.
//!
//! - **In place** ([`Servers::InPlace`]): one lameduck, upgraded by
//!   SIGHUP. The new process takes the listening socket; every client of
//!   the old one reconnects into it.
//! - **A pair on one socket** ([`Servers::Pair`]): the bench binds one
//!   listening socket and starts two lameducks on it (`LISTEN_FDS`, the
//!   way systemd hands a socket to a service), both accepting from the
//!   same queue. A restart is SIGTERM to one, its exit, and a new process
//!   in its place; the clients of the one that went reconnect into the
//!   queue the other keeps serving. This is a second instance taking the
//!   load while the first restarts, with no balancer in between.
//!
//! Both share one SQLite file, so that the hub's items outlive every
//! process and both instances of the pair see the same items.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::lameduck::testing::binary::Lameduck;
use ::lameduck::testing::process::{Exit, Log};
use socket2::{Domain, Protocol, Socket, Type};

use super::BoxError;

/// How long a start, an upgrade or a shutdown may take.
const STEP_LIMIT: Duration = Duration::from_secs(60);

/// How one restart went.
#[derive(Debug, Clone)]
pub struct Restarted {
    pub old_exit: Exit,
}

/// The server(s) of one row.
pub enum Servers {
    InPlace {
        serving: Lameduck,
    },
    Pair {
        bin: PathBuf,
        args: Vec<String>,
        listener: Socket,
        addr: SocketAddr,
        log: Log,
        instances: [Lameduck; 2],
        /// Which instance the next restart replaces.
        next: usize,
    },
}

impl Servers {
    /// One lameduck on a port of its own, `--backlog backlog`.
    pub fn in_place(bin: &Path, args: &[String]) -> Result<Servers, BoxError> {
        let serving = Lameduck::start(bin, args, STEP_LIMIT)?;
        Ok(Servers::InPlace { serving })
    }

    /// Two lameducks on one socket bound here with `backlog`.
    pub fn pair(bin: &Path, args: &[String], backlog: u32) -> Result<Servers, BoxError> {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        listener.set_reuse_address(true)?;
        listener.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        listener.listen(backlog as i32)?;
        let addr = listener
            .local_addr()?
            .as_socket()
            .ok_or("the listener has no address")?;
        let log = Log::default();
        let first = spawn_on(bin, args, &listener, &log)?;
        let second = spawn_on(bin, args, &listener, &log)?;
        Ok(Servers::Pair {
            bin: bin.to_owned(),
            args: args.to_vec(),
            listener,
            addr,
            log,
            instances: [first, second],
            next: 0,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Servers::InPlace { serving } => serving.addr(),
            Servers::Pair { addr, .. } => *addr,
        }
    }

    /// The last lines the servers logged.
    pub fn log_tail(&self, n: usize) -> String {
        match self {
            Servers::InPlace { serving } => serving.log().tail(n),
            Servers::Pair { log, .. } => log.tail(n),
        }
    }

    /// One restart, returned once the process that went has exited (and,
    /// for the pair, its successor listens).
    pub fn restart(&mut self) -> Result<Restarted, BoxError> {
        match self {
            Servers::InPlace { serving } => {
                let upgraded = serving.upgrade(STEP_LIMIT)?;
                Ok(Restarted {
                    old_exit: upgraded.old_exit,
                })
            }
            Servers::Pair {
                bin,
                args,
                listener,
                log,
                instances,
                next,
                ..
            } => {
                let old_exit = instances[*next].terminate(STEP_LIMIT)?;
                instances[*next] = spawn_on(bin, args, listener, log)?;
                *next = 1 - *next;
                Ok(Restarted { old_exit })
            }
        }
    }

    /// SIGTERM to every process, and their exits.
    pub fn stop(self) -> Result<(), BoxError> {
        match self {
            Servers::InPlace { serving } => {
                serving.terminate(STEP_LIMIT)?;
            }
            Servers::Pair { instances, .. } => {
                for instance in &instances {
                    instance.terminate(STEP_LIMIT)?;
                }
            }
        }
        Ok(())
    }
}

/// Starts `bin ARGS` serving `listener`, handed over as fd 3 with
/// `LISTEN_FDS=1`, and waits for its `listening on`.
fn spawn_on(
    bin: &Path,
    args: &[String],
    listener: &Socket,
    log: &Log,
) -> Result<Lameduck, BoxError> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut command = Lameduck::command(bin, loopback, args);
    command.env("LISTEN_FDS", "1").env_remove("LISTEN_PID");
    let fd = listener.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls. dup2
    // leaves the copy at fd 3 without close-on-exec; a socket that is at
    // fd 3 already has the flag cleared by hand.
    unsafe {
        command.pre_exec(move || {
            let done = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if done < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(Lameduck::spawn(log, command, STEP_LIMIT)?)
}
