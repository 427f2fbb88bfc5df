//! Holding many idle keep-alive connections open, in this process or in a
//! child.
//!
//! Each loopback connection costs a descriptor at both ends. When the
//! client's and the server's ends together do not fit under
//! `RLIMIT_NOFILE` (10,000 connections need over 20,000, and an
//! unprivileged process cannot raise its hard limit), the client's ends are
//! held by a copy of this bench started with `--hold-idle ADDR N`. It talks
//! over its stdin/stdout, one line each way:
//!
//! ```text
//! child:  ready            (all N connections answered once, now idle)
//! parent: count            (the server has been shut down)
//! child:  closed K         (K of N connections read EOF)
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use tokio::runtime::Runtime;

use super::{BoxError, client};

/// How long to wait for every held connection to be closed by the server.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Parallel connects while opening.
const OPENERS: usize = 32;

/// Idle connections held open to a server.
pub enum IdleConns {
    InProcess(Vec<std::net::TcpStream>),
    Child {
        child: Child,
        stdin: ChildStdin,
        stdout: BufReader<ChildStdout>,
    },
}

impl IdleConns {
    /// Opens `n` idle connections to `addr`; in this process if `in_process`.
    pub fn open(
        client_rt: &Runtime,
        addr: SocketAddr,
        n: usize,
        in_process: bool,
    ) -> Result<IdleConns, BoxError> {
        if in_process {
            let mut conns = Vec::with_capacity(n);
            client_rt.block_on(client::open_idle(addr, n, OPENERS, &mut conns))?;
            return Ok(IdleConns::InProcess(conns));
        }
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--hold-idle", &addr.to_string(), &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("child stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("child stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("connection holder failed: {line:?}").into());
        }
        Ok(IdleConns::Child {
            child,
            stdin,
            stdout,
        })
    }

    /// How many connections the server has closed (EOF within a few
    /// seconds); lets every connection go.
    pub fn count_closed(self) -> Result<usize, BoxError> {
        match self {
            IdleConns::InProcess(conns) => Ok(client::count_closed(&conns, CLOSE_WAIT)),
            IdleConns::Child {
                mut child,
                mut stdin,
                mut stdout,
            } => {
                writeln!(stdin, "count")?;
                let mut line = String::new();
                stdout.read_line(&mut line)?;
                // The child exits after answering; it has no wait of its own
                // left, so this returns promptly.
                let _ = child.wait();
                line.trim()
                    .strip_prefix("closed ")
                    .and_then(|k| k.parse().ok())
                    .ok_or_else(|| format!("connection holder said {line:?}").into())
            }
        }
    }
}

/// The child's side of `--hold-idle ADDR N`.
pub fn child_main(addr: &str, n: &str) -> Result<(), BoxError> {
    let addr: SocketAddr = addr.parse()?;
    let n: usize = n.parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut conns = Vec::with_capacity(n);
    rt.block_on(client::open_idle(addr, n, OPENERS, &mut conns))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    // Wait for the parent; EOF (the parent died) also ends the wait.
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let closed = client::count_closed(&conns, CLOSE_WAIT);
    writeln!(out, "closed {closed}")?;
    out.flush()?;
    Ok(())
}
