//! What touches the operating system: the signals that start a shutdown
//! or an upgrade, the listening socket, and the service manager.
//!
//! - [`signals`]: SIGTERM/SIGINT/SIGHUP → triggers. The only module that
//!   knows about OS signals; everything else takes its triggers as
//!   parameters.
//! - [`listener`]: the listening socket, inherited (`LISTEN_FDS`) or built
//!   with socket2.
//! - [`notify`]: telling systemd (`sd_notify`): ready, reloading, stopping.
//! - [`log_writer`]: stderr behind a bounded queue, so that a log reader
//!   that stalls costs dropped lines, not a stalled server.

pub mod listener;
pub mod log_writer;
pub mod notify;
pub mod signals;
