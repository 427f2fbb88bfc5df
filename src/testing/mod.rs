//! What the tests, the fuzz targets and the bench use to talk to a server
//! as a client would. Built only with the `test-harness` feature: `cargo
//! test`, `cargo bench` and the fuzz crate turn it on, the shipped binary
//! never contains it.
//!
//! - [`http1`]: one HTTP/1 response reader, fed bytes as they arrive,
//!   handing back whole responses and keeping what is left over for the
//!   next one.
//! - [`load`]: a load generator that records what became of every
//!   request, for measuring restarts under load.
//! - [`followers`]: a WebSocket hub client and a long-polling client
//!   that follow the items feed across restarts, resuming after the
//!   last id they saw, and count what each restart cost them.
//! - [`binary`]: the real binary as a process (start, wait to listen,
//!   signal, wait for the exit), on the [`process`] primitives (stderr
//!   lines, exits, adopting the processes an upgrade starts).

pub mod binary;
pub mod followers;
pub mod http1;
pub mod load;
pub mod process;
