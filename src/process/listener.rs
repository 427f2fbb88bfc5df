//! The listening socket: either inherited from whoever started us, or
//! built by hand with socket2 so that the settings that matter for
//! restarts are explicit instead of inherited defaults.
//!
//! An inherited socket comes the systemd way (`LISTEN_FDS`, fd 3): from a
//! `.socket` unit, from `systemd-socket-activate`, or from the old process
//! of an upgrade ([`crate::upgrade`]). Then nothing is bound: the socket
//! already listens, and connections that arrived before we started wait in
//! its queue.
//!
//! A socket built here is built by hand (socket2) for two settings that
//! matter at a restart. Dropping the listener at the start of the drain is
//! what refuses new connections
//! (`new_connections_are_refused_after_the_drain_delay`). `SO_REUSEADDR`
//! is what lets a restarted instance bind the port while the old one's
//! connections sit in `TIME_WAIT`
//! (`a_restarted_server_can_bind_its_port_while_old_connections_linger`).
//! The backlog (`--backlog`) is explicit: it is where connections wait
//! while the accept loop is at `--max-connections`.

use std::io;
use std::net::SocketAddr;

use listenfd::ListenFd;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// Binds `addr` with `SO_REUSEADDR` and an explicit `backlog`.
///
/// * `SO_REUSEADDR` lets a new instance bind the port while the old one's
///   closed connections sit in `TIME_WAIT` — the usual restart case.
/// * The backlog is how many completed handshakes the kernel holds for us.
///   When the listener is dropped at the start of the drain, those queued
///   connections are reset, so clients see a refusal they can retry
///   elsewhere instead of hanging in a queue nobody reads.
///
/// No `SO_REUSEPORT`: two processes each with their own listener on the
/// port is not how an upgrade hands over (see `crate::upgrade`):
/// closing one of them resets what is queued on it.
///
/// Must be called inside a Tokio runtime.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    TcpListener::from_std(socket.into())
}

/// The listening socket handed to us with `LISTEN_FDS`, if any.
///
/// Reads and *removes* `LISTEN_FDS` and `LISTEN_PID` from the environment
/// (the `listenfd` crate does, so that our own children do not think the
/// socket is theirs). Removing a variable races with any other thread
/// reading the environment, so this must be called first thing in `main`,
/// before the runtime or anything else starts a thread.
///
/// `listenfd` follows systemd's `sd_listen_fds(3)` with one extension: a
/// *missing* `LISTEN_PID` is accepted. A `LISTEN_PID` that is not ours means
/// the variables were meant for another process (a wrapper that forked
/// instead of exec'ing): they are ignored, and this returns `None`.
///
/// Only the first socket is served; systemd numbers them from fd 3.
pub fn take_inherited() -> io::Result<Option<std::net::TcpListener>> {
    let mut fds = ListenFd::from_env();
    // Checks that fd 3 is a TCP listening socket, and marks it
    // close-on-exec: a process we start later gets it only on purpose.
    fds.take_tcp_listener(0)
}

/// Turns an inherited socket into a Tokio listener. Must be called inside
/// a Tokio runtime.
pub fn serve_inherited(socket: std::net::TcpListener) -> io::Result<TcpListener> {
    // Whoever made the socket may have left it blocking; Tokio needs it
    // non-blocking.
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket)
}
