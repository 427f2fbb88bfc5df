//! The accept loop: accept, reap, and stop when told.
//!
//! `Acceptor::accept_until` is a biased `select!` over three things: the
//! trigger that ends this phase, the next connection, and a reaping tick.
//! After each accept, the connection tasks that have finished are reaped
//! (`JoinSet::try_join_next`), and at the tick, once a second, on a quiet
//! listener, so the set never grows and panics are logged. Reaping then,
//! rather than as each task ends, is deliberate: a loop that waited on
//! `join_next` would be woken once more per connection, on the busiest
//! path there is (a finished task has already released its connection
//! slot and its memory but a few bytes; it only waits to be counted).
//! The server runs it twice: until the first signal (running), then
//! until the drain delay is over (lame duck).
//!
//! The listener wakes the loop once per connection; the trigger and the
//! tick almost never. Both are wrapped in `WhenWoken`, so an accept does
//! not poll them too (see `when_woken`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::conn::executor::StreamExecutor;
use crate::conn::{self, ConnectionConfig};
use crate::server::accept_errors::AcceptBackoff;
use crate::server::drain::InFlight;
use crate::server::tally::log_if_panicked;
use crate::server::when_woken::WhenWoken;

/// How often a quiet accept loop reaps finished connection tasks.
const REAP_EVERY: Duration = Duration::from_secs(1);

/// The accept side of the server, alive until the listener is dropped.
pub(crate) struct Acceptor {
    /// Dropped at step 3; dropping it is what refuses new connections.
    listener: TcpListener,
    /// Back-off state for resource errors (EMFILE and friends).
    backoff: AcceptBackoff,
    /// One task per connection. Reaped after each accept, so it never
    /// grows; handed to the drain at step 3.
    conns: JoinSet<()>,
    /// Builders and service shared by all connection tasks.
    conn_config: Arc<ConnectionConfig>,
    /// HTTP/2 stream tasks, which hyper spawns outside their connection
    /// task (see [`crate::conn::executor`]); handed to the drain at step 3.
    streams: TaskTracker,
}

impl Acceptor {
    /// An accept loop over `listener`, serving `app`.
    pub fn new(listener: TcpListener, app: Arc<App>) -> Self {
        let streams = TaskTracker::new();
        let executor =
            StreamExecutor::new(streams.clone(), app.clone(), app.config.request_timeout);
        Acceptor {
            listener,
            backoff: AcceptBackoff::default(),
            conns: JoinSet::new(),
            conn_config: Arc::new(ConnectionConfig::new(app, executor)),
            streams,
        }
    }

    /// The address it listens on, for the log.
    pub fn local_addr(&self) -> String {
        self.listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }

    /// Connections open now.
    pub fn connections(&mut self) -> usize {
        self.reap();
        self.conns.len()
    }

    /// Reaps the connection tasks that have finished, logging panics.
    fn reap(&mut self) {
        while let Some(res) = self.conns.try_join_next() {
            log_if_panicked(res);
        }
    }

    /// Step 3: stops accepting. Dropping the listener closes the socket:
    /// new connections are refused, and ones queued in the backlog are
    /// reset, rather than waiting for an accept that will never come.
    /// Returns everything still running. (Connections learn of the drain
    /// from the `closing` token, which exists before any of them, so none
    /// can miss it.)
    pub fn stop(mut self, workers: JoinSet<&'static str>) -> InFlight {
        // What has finished is not part of the drain.
        self.reap();
        let Acceptor {
            listener,
            conns,
            streams,
            conn_config,
            ..
        } = self;
        drop(listener);
        let app = conn_config.app();
        let writes = app.shutdown.writes().clone();
        let websockets = app.websockets.tracker().clone();
        InFlight::new(conns, workers, streams, writes, websockets, conn_config)
    }

    /// Accepts connections until `until` resolves, and returns its output.
    pub async fn accept_until<T>(&mut self, until: impl Future<Output = T>) -> T {
        // The trigger and the tick are polled only when they wake the
        // task, not at every accept (see `when_woken`).
        let mut until = pin!(WhenWoken::new(until));
        // A quiet listener still reaps, so that finished tasks do not
        // wait for the next connection to be counted and freed.
        let mut reap_tick = tokio::time::interval(REAP_EVERY);
        reap_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut reap_tick = pin!(WhenWoken::new(std::future::poll_fn(move |cx| {
            reap_tick.poll_tick(cx).map(drop)
        })));
        loop {
            tokio::select! {
                // The trigger first, so that a flood of connections cannot
                // delay the shutdown; then new work.
                biased;
                out = &mut until => return out,
                accepted = accept(&self.listener, &self.conn_config) => match accepted {
                    Ok((stream, peer)) => {
                        self.backoff.reset();
                        self.spawn_connection(stream, peer);
                        self.reap();
                    }
                    Err(e) => {
                        let wait = self.backoff.on_error(&e);
                        if !wait.is_zero() {
                            // Sleep, but stay responsive to the trigger.
                            tokio::select! {
                                out = &mut until => return out,
                                _ = tokio::time::sleep(wait) => {}
                            }
                        }
                    }
                },
                _ = &mut reap_tick => self.reap(),
            }
        }
    }

    fn spawn_connection(&mut self, stream: TcpStream, peer: SocketAddr) {
        // Small responses should not wait for Nagle's algorithm to
        // coalesce them with data that will never come.
        let _ = stream.set_nodelay(true);
        let app = self.conn_config.app();
        app.metrics.connections_accepted.fetch_add(1, Relaxed);
        let cfg = self.conn_config.clone();
        self.conns.spawn(conn::serve_tcp(
            stream,
            std::time::Instant::now(),
            Some(peer),
            cfg,
        ));
    }
}

/// Waits for room under the connection limit, then for a connection.
/// Cancel-safe: waiting for room holds nothing, and `accept` is
/// cancel-safe, so no connection is lost if this is dropped.
async fn accept(
    listener: &TcpListener,
    cfg: &ConnectionConfig,
) -> std::io::Result<(TcpStream, SocketAddr)> {
    // At the limit: stop accepting until a connection ends. The kernel
    // backlog holds (and eventually refuses) the rest.
    cfg.limit().room(&cfg.app().metrics).await;
    listener.accept().await
}
