//! The two servers under test.
//!
//! * **A** is lameduck as users run it: [`lameduck::Server`] with the
//!   default configuration (connection limit, header/idle/request
//!   timeouts, write-stall limit, keep-alive grace, lingering close,
//!   metrics, the background cleaner), bound with
//!   [`lameduck::process::listener::bind`] and driven by [`lameduck::Server::run`].
//! * **B** is the smallest honest hyper 1.x server: accept, spawn a task
//!   per connection, serve HTTP/1 with the same `/healthz` body. No
//!   tracking, no limits, no timers, no shutdown.
//! * **B with graceful shutdown** ([`ServerBGraceful`]) is B plus
//!   hyper-util's `GracefulShutdown` and nothing else: the reference for
//!   `drain_idle`, i.e. what telling idle connections to close costs with
//!   no lameduck machinery around it.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use lameduck::{App, Config, Server, ShutdownReport};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Server A while it runs.
pub struct ServerA {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    /// Cancelling it is the first signal: the drain begins.
    shutdown: CancellationToken,
    /// `run`'s report, and the moment `run` returned.
    run: JoinHandle<(ShutdownReport, Instant)>,
}

/// lameduck's defaults, on an ephemeral loopback port.
pub fn config_a() -> Config {
    Config {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Config::default()
    }
}

impl ServerA {
    /// Binds and starts `run` on the current runtime.
    pub fn start(config: Config) -> std::io::Result<ServerA> {
        let listener = lameduck::process::listener::bind(config.addr, config.backlog)?;
        let addr = listener.local_addr()?;
        let server = Server::new(config);
        let app = server.app().clone();
        let shutdown = CancellationToken::new();
        // Never cancelled: the bench measures the graceful path only.
        let force = CancellationToken::new();
        let trigger = shutdown.clone();
        let run = tokio::spawn(async move {
            let report = server
                .run(listener, trigger.cancelled_owned(), force.cancelled_owned())
                .await;
            (report, Instant::now())
        });
        Ok(ServerA {
            addr,
            app,
            shutdown,
            run,
        })
    }

    /// Fires the shutdown trigger and returns when it fired, then the
    /// report and when `run` returned. Call inside the server's runtime.
    pub async fn shutdown(self) -> (Instant, ShutdownReport, Instant) {
        let fired = Instant::now();
        self.shutdown.cancel();
        let (report, returned) = self.run.await.expect("server A's run panicked");
        (fired, report, returned)
    }
}

/// Server B while it runs.
pub struct ServerB {
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl ServerB {
    /// Binds (tokio's default backlog, 1024, as A's) and starts the accept
    /// loop on the current runtime.
    pub async fn start() -> std::io::Result<ServerB> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(accept_loop(listener));
        Ok(ServerB { addr, accept })
    }

    /// Stops accepting. Its connection tasks end when their clients close.
    pub fn stop(self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_b(stream));
            }
            // Out of descriptors or similar: pause rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn serve_b(stream: TcpStream) {
    let _ = connection_b(stream).await;
}

/// B's HTTP/1 connection for one accepted stream.
fn connection_b(stream: TcpStream) -> http1::Connection<TokioIo<TcpStream>, SayOk> {
    // As A does: small responses should not wait for Nagle.
    let _ = stream.set_nodelay(true);
    http1::Builder::new().serve_connection(TokioIo::new(stream), SayOk)
}

/// B's HTTP/2 connection (prior knowledge) for one accepted stream: for
/// the cost mode's HTTP/2 figure.
pub async fn serve_b_h2(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let exec = hyper_util::rt::TokioExecutor::new();
    let _ = hyper::server::conn::http2::Builder::new(exec)
        .serve_connection(TokioIo::new(stream), SayOk)
        .await;
}

/// B's service: `ok\n` for every request, as a ready future (A's
/// `/healthz` is one too).
#[derive(Debug, Clone, Copy)]
struct SayOk;

impl Service<Request<Incoming>> for SayOk {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn call(&self, _req: Request<Incoming>) -> Self::Future {
        let mut res = Response::new(Full::new(Bytes::from_static(b"ok\n")));
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        ready(Ok(res))
    }
}

/// B plus hyper-util's graceful shutdown, while it runs.
pub struct ServerBGraceful {
    pub addr: SocketAddr,
    /// Cancelling it stops the accept loop, which hands back its
    /// `GracefulShutdown`.
    stop: CancellationToken,
    accept: JoinHandle<GracefulShutdown>,
}

impl ServerBGraceful {
    /// Binds and starts the accept loop on the current runtime.
    pub async fn start() -> std::io::Result<ServerBGraceful> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let accept = tokio::spawn(async move {
            let graceful = GracefulShutdown::new();
            loop {
                tokio::select! {
                    biased;
                    _ = stopped.cancelled() => return graceful,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let conn = graceful.watch(connection_b(stream));
                            tokio::spawn(async move {
                                let _ = conn.await;
                            });
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                }
            }
        });
        Ok(ServerBGraceful { addr, stop, accept })
    }

    /// Stops accepting (the listener is dropped), tells every connection
    /// to finish and waits until all have; returns when it began and
    /// ended. Call inside the server's runtime.
    pub async fn shutdown(self) -> (Instant, Instant) {
        let fired = Instant::now();
        self.stop.cancel();
        let graceful = self.accept.await.expect("B's accept loop panicked");
        graceful.shutdown().await;
        (fired, Instant::now())
    }
}
