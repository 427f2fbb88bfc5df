//! Building the listening socket by hand with socket2, so the two settings
//! that matter for restarts are explicit instead of inherited defaults.

use std::io;
use std::net::SocketAddr;

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
/// Must be called inside a Tokio runtime.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    TcpListener::from_std(socket.into())
}
