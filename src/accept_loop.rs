//! The accept loop: accept, reap, and stop when told.
//!
//! `Acceptor::accept_until` is a biased `select!` over three things: the
//! trigger that ends this phase, `JoinSet::join_next` (finished connection
//! tasks are reaped as they end, so the set never grows and panics are
//! logged), and the next connection. The server runs it twice: until the
//! first signal (running), then until the drain delay is over (lame duck).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use crate::accept_errors::AcceptBackoff;
use crate::app::App;
use crate::connection::{self, ConnectionConfig, log_if_panicked};
use crate::drain::Running;
use crate::executor::StreamExecutor;

/// The accept side of the server, alive until the listener is dropped.
pub(crate) struct Acceptor {
    /// Dropped at step 3; dropping it is what refuses new connections.
    listener: TcpListener,
    /// One permit per open connection (`max_connections`). A permit moves
    /// into its connection task and is released when the task ends, which
    /// is what wakes an accept loop waiting at the limit.
    limiter: Arc<Semaphore>,
    /// Back-off state for resource errors (EMFILE and friends).
    backoff: AcceptBackoff,
    /// One task per connection. Reaped as they finish, so it never grows;
    /// handed to the drain at step 3.
    conns: JoinSet<()>,
    /// Builders and service shared by all connection tasks.
    conn_config: Arc<ConnectionConfig>,
    /// HTTP/2 stream tasks, which hyper spawns outside their connection
    /// task (see [`crate::executor`]); handed to the drain at step 3.
    streams: TaskTracker,
}

impl Acceptor {
    /// An accept loop over `listener`, serving `app`.
    pub fn new(listener: TcpListener, app: Arc<App>) -> Self {
        let streams = TaskTracker::new();
        let executor = StreamExecutor::new(streams.clone(), app.shutdown.abort_streams_token());
        Acceptor {
            listener,
            limiter: Arc::new(Semaphore::new(app.config.max_connections)),
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
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Step 3: stops accepting. Dropping the listener closes the socket:
    /// new connections are refused, and ones queued in the backlog are
    /// reset, rather than waiting for an accept that will never come.
    /// Returns everything still running. (Connections learn of the drain
    /// from the `closing` token, which exists before any of them, so none
    /// can miss it.)
    pub fn stop(self, workers: JoinSet<&'static str>) -> Running {
        let Acceptor {
            listener,
            conns,
            streams,
            conn_config,
            ..
        } = self;
        drop(listener);
        let writes = conn_config.app().shutdown.writes().clone();
        Running::new(conns, workers, streams, writes)
    }

    /// Accepts connections until `until` resolves, and returns its output.
    pub async fn accept_until<T>(&mut self, until: impl Future<Output = T>) -> T {
        let mut until = pin!(until);
        loop {
            tokio::select! {
                // The trigger first, so that a flood of connections cannot
                // delay the shutdown; then reaping, so finished tasks never
                // pile up; then new work.
                biased;
                out = &mut until => return out,
                Some(res) = self.conns.join_next() => { log_if_panicked(res); }
                accepted = accept(&self.listener, &self.limiter) => match accepted {
                    Ok((stream, peer, permit)) => {
                        self.backoff.reset();
                        self.spawn_connection(stream, peer, permit);
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
            }
        }
    }

    fn spawn_connection(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) {
        // Small responses should not wait for Nagle's algorithm to
        // coalesce them with data that will never come.
        let _ = stream.set_nodelay(true);
        let app = self.conn_config.app();
        app.metrics.connections_accepted.fetch_add(1, Relaxed);
        let cfg = self.conn_config.clone();
        self.conns.spawn(connection::serve(
            stream,
            std::time::Instant::now(),
            Some(peer),
            cfg,
            Some(permit),
        ));
    }
}

/// Waits for a connection slot, then for a connection. Cancel-safe: if
/// dropped while waiting, the permit returns to the semaphore and no
/// connection is lost (`accept` is cancel-safe).
async fn accept(
    listener: &TcpListener,
    limiter: &Arc<Semaphore>,
) -> std::io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = match limiter.clone().try_acquire_owned() {
        Ok(permit) => permit,
        // At the limit: stop accepting until a connection ends. The kernel
        // backlog holds (and eventually refuses) the rest.
        Err(_) => limiter
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed"),
    };
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, permit))
}
