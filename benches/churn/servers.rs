//! The two servers under test.
//!
//! * **A** is lameduck as users run it: [`lameduck::Server`] with the
//!   default configuration (connection limit, header/idle/request timeouts,
//!   graceful watcher, metrics, the background cleaner), bound with
//!   [`lameduck::listener::bind`] and driven by [`lameduck::Server::run`].
//! * **B** is the smallest honest hyper 1.x server: accept, spawn a task
//!   per connection, serve HTTP/1 with the same `/healthz` body. No
//!   tracking, no limits, no timers, no shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
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
        let listener = lameduck::listener::bind(config.addr, config.backlog)?;
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
    // As A does: small responses should not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
        let mut res = Response::new(Full::new(Bytes::from_static(b"ok\n")));
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Ok::<_, Infallible>(res)
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
