//! lameduck: an HTTP server on raw hyper 1.x that shuts down gracefully,
//! written to be read.
//!
//! Where the docs say "the article", they mean the article this project
//! started from: a walk through graceful shutdown of Go's `http.Server`
//! (`Shutdown`, `RegisterOnShutdown`, a failing health check, a drain
//! delay, a `closing` channel, a background `runCleaner`). Go names from it
//! are given beside their Rust counterparts.
//!
//! # The shutdown story
//!
//! A SIGTERM arrives ([`signals`] turns it into a token). The server enters
//! the **lame-duck** phase: `/healthz` starts answering 503 so load
//! balancers stop sending traffic, the on-shutdown [`hooks`] fire, and for
//! `drain_delay` everything else carries on. Then the **drain**: the
//! listener is closed so new connections are refused, every connection is
//! told to finish (HTTP/1 responses carry `Connection: close`, keep-alive
//! connections close once idle, after a short grace if they were just used
//! so that a client's next request is not cut off; HTTP/2 gets GOAWAY),
//! event streams send a last
//! `shutdown` event, and background workers are cancelled. The server waits
//! — on events, not a polling loop — until all of it is done, or until
//! `shutdown_timeout`. If the deadline comes first, requests still waiting
//! for an answer get `503` + `Retry-After`, and after a short grace the rest
//! is aborted; a second signal aborts at once. Finally one log line, the
//! [`ShutdownReport`], says what happened, and the exit code says whether
//! anything was forced.
//!
//! Go's `http.Server` gives you `Shutdown`, `Close` and `RegisterOnShutdown`
//! and leaves the rest to you. Here every step is code you can read.
//!
//! # Layout
//!
//! - [`server`]: the shutdown phases, top to bottom — start here.
//! - [`shutdown_state`]: the phase and the tokens of the shutdown, with one
//!   owner; the order of the drain is written there.
//! - `accept_loop`: accept, reap, stop when told.
//! - `conn_limit`: `--max-connections`, on the metrics' own counts.
//! - `drain`: waiting for what still runs, and forcing it.
//! - `connection`: one connection: protocol sniff, hyper, told of the
//!   drain by the `closing` token.
//! - `http1_state`: what an HTTP/1 connection is doing (reading a head,
//!   busy, idle) and since when, one store per step.
//! - `http1_deadlines`: one lazy timer per HTTP/1 connection for Go's
//!   `ReadHeaderTimeout` + `IdleTimeout` and the drain's keep-alive grace.
//! - `conn_io`: the connection's IO as hyper sees it: the sniffed bytes
//!   replayed, the first byte of a head noticed, the close.
//! - `write_stall`: a peer that stops reading is cut off.
//! - `keepalive_grace`: at the drain, idle HTTP/1 keep-alive connections
//!   close without racing the client's next request.
//! - `lingering_close`: a close after a response reads what the client
//!   still sends, so no reset destroys the response.
//! - `executor`: where HTTP/2 stream tasks run, so a forced close reaches
//!   them.
//! - `h2_idle`: Go's `IdleTimeout` for HTTP/2, and how an HTTP/2
//!   connection ends, at the drain or when idle: GOAWAY, then the close.
//! - `accept_errors`: accept errors, classified, with back-off.
//! - [`listener`]: the listening socket, inherited (`LISTEN_FDS`) or built
//!   with socket2.
//! - `phase`: the phases, as a small state machine ([`Phase`]).
//! - [`health_checkers`]: `--drain-checks`: the lame-duck phase ends once
//!   every load balancer has seen `/healthz` fail, not after a blind sleep.
//! - [`hooks`]: on-shutdown callbacks (`RegisterOnShutdown`).
//! - [`report`]: the shutdown report and exit code.
//! - [`signals`]: SIGTERM/SIGINT/SIGHUP → triggers. The only module that
//!   knows about signals.
//! - [`upgrade`]: SIGHUP → a new process on the same socket, then the old
//!   one drains (start, ready, exit).
//! - [`notify`]: telling systemd (`sd_notify`): ready, reloading, stopping.
//! - `service`: routing and handlers; how cancellation reaches work.
//! - [`store`]: the item store; every call takes a cancellation token.
//!   SQLite in WAL mode on a file (`--db`), Postgres (`--db postgres://…`),
//!   or memory: reads interrupted (Postgres: a cancel request) when their
//!   request goes away, writes that commit or roll back whole, and a
//!   store closed after the drain.
//! - [`cleaner`]: the background worker (the article's `runCleaner`).
//! - `metrics`: counters for `/metrics`.
//! - [`config`], [`cli`]: settings, and the command line that fills them.
//! - `fuzzing`: the fuzz targets' entry points, also replayed by `cargo test`.
//! - `testing`: the HTTP/1 response reader, the load generator and the
//!   real binary as a process, which the tests, the fuzz checker and the
//!   benches share.
//!
//! The last two are the test harness, built only with the `test-harness`
//! feature (`cargo test`, `cargo bench` and the fuzz crate turn it on).
//! Modules shown without a link are internal: they are the server's
//! machinery, read in the source rather than used from outside.

mod app;
pub mod cleaner;
pub mod cli;
mod config;
mod conn;
#[cfg(feature = "test-harness")]
pub mod fuzzing;
mod http1_state;
mod metrics;
pub mod process;
mod server;
mod service;
mod shutdown;
pub mod store;
#[cfg(feature = "test-harness")]
pub mod testing;
pub mod upgrade;

pub use app::App;
pub use config::Config;
pub use metrics::Metrics;
pub use server::Server;
pub use server::hooks::HookResult;
pub use server::report::{LameDuckEnd, Outcome, ShutdownReport};
pub use shutdown::ShutdownState;
pub use shutdown::health_checkers;
pub use shutdown::phase::Phase;
pub use shutdown::stop::Stop;
