//! Any server, restarted by commands the user gives: the bench measures it
//! the same way as lameduck.
//!
//! ```text
//! cargo bench --bench restart -- --addr 127.0.0.1:8080 \
//!     --start 'nginx -c /tmp/nginx.conf -g "daemon off;"' \
//!     --restart 'nginx -c /tmp/nginx.conf -s reload' \
//!     --stop 'nginx -c /tmp/nginx.conf -s quit'
//! ```
//!
//! The bench cannot see when such a restart is over (`nginx -s reload`
//! returns while the old workers still drain), so after the restart
//! command returns it waits the settle time before the next one. Each
//! command runs with `sh -c`.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use super::process::{self, Log};
use super::target::{BoxError, Restarted, Target};

/// How long the server may take to accept its first connection.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The user's commands.
#[derive(Debug, Clone)]
pub struct Commands {
    pub addr: SocketAddr,
    pub start: String,
    pub restart: String,
    /// Without one, the bench sends SIGTERM to what `start` started.
    pub stop: Option<String>,
    /// The wait after each restart command.
    pub settle: Duration,
}

/// A server started by [`Commands::start`].
pub struct Commanded {
    commands: Commands,
    /// The `sh -c START` process.
    pid: i32,
    log: Log,
}

impl Commanded {
    /// Runs the start command and waits until `addr` accepts a connection.
    pub fn start(commands: &Commands) -> Result<Commanded, BoxError> {
        let log = Log::default();
        let child = log.spawn(Command::new("sh").args(["-c", &commands.start]))?;
        let pid = child.id() as i32;
        let server = Commanded {
            commands: commands.clone(),
            pid,
            log,
        };
        let up = process::poll_until(START_LIMIT, || {
            TcpStream::connect_timeout(&commands.addr, Duration::from_millis(100))
                .ok()
                .map(drop)
        });
        if up.is_none() {
            return Err(format!(
                "nothing accepted on {} after the start command; its output:\n{}",
                commands.addr,
                server.log.tail(8)
            )
            .into());
        }
        Ok(server)
    }
}

/// Runs `cmd` with `sh -c` to its end; an error unless it exits 0.
fn run(cmd: &str) -> Result<(), BoxError> {
    let out = Command::new("sh").args(["-c", cmd]).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{cmd}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into())
    }
}

impl Target for Commanded {
    fn addr(&self) -> SocketAddr {
        self.commands.addr
    }

    fn restart(&mut self) -> Result<Restarted, BoxError> {
        run(&self.commands.restart)?;
        std::thread::sleep(self.commands.settle);
        Ok(Restarted {
            old_pid: None,
            new_pid: None,
            old_exit: None,
        })
    }

    fn stop(&mut self) -> Result<(), BoxError> {
        match &self.commands.stop {
            Some(stop) => run(stop)?,
            None => process::signal(self.pid, libc::SIGTERM)?,
        }
        process::wait_exit(self.pid, START_LIMIT)
            .map(drop)
            .ok_or_else(|| format!("`{}` did not end", self.commands.start).into())
    }
}
