//! Shared test helpers: a server running in-process with injectable
//! triggers, a minimal raw HTTP/1.1 client over real sockets (and a
//! download client on it that survives a cut body), a handle on the real
//! binary for signal tests, a throwaway PostgreSQL server, and programs
//! from outside the project run to their end (`wstest`, a Python
//! WebSocket client).
//!
//! The client is hand-rolled on purpose: tests need to see exactly what the
//! server wrote (`Connection: close`, a bare EOF, a half-sent stream), which
//! a full client library would hide.

#![allow(dead_code)] // Each test binary uses a different subset.

pub mod binary;
pub mod contract;
pub mod download;
pub mod external;
pub mod h2_raw;
pub mod http;
pub mod http2;
pub mod idempotency;
pub mod pg_proxy;
pub mod postgres;
pub mod python_ws;
pub mod storage;
pub mod websocket;

use std::sync::Arc;
use std::time::Duration;

use lameduck::process::signals::Triggers;
use lameduck::{App, Config, Phase, Server, ShutdownReport};
use tokio::task::JoinHandle;

/// A config for tests: an ephemeral port, and timeouts short enough that
/// a test waiting on one stays quick, long enough for a loaded machine.
pub fn test_config() -> Config {
    Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        shutdown_timeout: Duration::from_secs(10),
        ..Config::default()
    }
}

/// A server running in this process, driven by tokens the test cancels.
pub struct TestServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its shared state (metrics, phase).
    pub app: Arc<App>,
    /// Cancel `shutdown` for the first signal, `force` for the second.
    pub triggers: Triggers,
    run: JoinHandle<ShutdownReport>,
}

impl TestServer {
    /// Starts a default server with `config`.
    pub async fn start(config: Config) -> TestServer {
        Self::start_server(Server::new(config)).await
    }

    /// Starts a server the test has already configured (hooks, workers).
    pub async fn start_server(server: Server) -> TestServer {
        let config = server.app().config.clone();
        let listener =
            lameduck::process::listener::bind(config.addr, config.backlog).expect("bind");
        let addr = listener.local_addr().unwrap();
        let app = server.app().clone();
        let triggers = Triggers::default();
        let (shutdown, force) = (triggers.shutdown.clone(), triggers.force.clone());
        let run = tokio::spawn(server.run(
            listener,
            shutdown.cancelled_owned(),
            force.cancelled_owned(),
        ));
        TestServer {
            addr,
            app,
            triggers,
            run,
        }
    }

    /// The first signal: begin the graceful shutdown.
    pub fn shutdown(&self) {
        self.triggers.shutdown.cancel();
    }

    /// The second signal: force the close.
    pub fn force(&self) {
        self.triggers.force.cancel();
    }

    /// True once `run` has returned.
    pub fn is_finished(&self) -> bool {
        self.run.is_finished()
    }

    /// Waits for `run` to return (at most `within`) and gives its report.
    pub async fn report_within(self, within: Duration) -> ShutdownReport {
        tokio::time::timeout(within, self.run)
            .await
            .expect("server did not stop in time")
            .expect("server task panicked")
    }

    /// Waits until the server has reached `phase` (or gone past it), at
    /// most `within`. It wakes on the transition itself, through the
    /// phase's watch channel, rather than by polling `phase()`.
    pub async fn wait_for_phase(&self, within: Duration, phase: Phase) {
        let mut changes = self.app.shutdown.subscribe();
        // Bounded, so a server stuck before `phase` fails the test with
        // its name instead of hanging it.
        tokio::time::timeout(within, changes.wait_for(|now| *now >= phase))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for the phase {phase:?}"))
            .expect("the sender lives in `app`, which this handle holds");
    }

    /// Waits until `cond` holds on the server's state; see [`eventually`].
    pub async fn wait_until(&self, within: Duration, what: &str, cond: impl Fn(&App) -> bool) {
        eventually(within, what, || cond(&self.app)).await
    }
}

/// Waits until `cond` holds, re-checking every few milliseconds; panics
/// after `within`. Only for conditions with no event to await (a counter
/// reaching a value); a phase has one ([`TestServer::wait_for_phase`]).
pub async fn eventually(within: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// [`eventually`] for a condition that needs to await (a request to the
/// server under test).
pub async fn eventually_async<F, Fut>(within: Duration, what: &str, cond: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
