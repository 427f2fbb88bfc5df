//! The keep-alive race when the server's CPU is contended: a request that
//! is already in the kernel's receive buffer when the drain closes idle
//! connections, but that the server has not seen, because the wake-up
//! that would tell it has not been delivered yet.
//!
//! The contention is made exact: the server runs on a runtime with one
//! worker thread, and the shutdown trigger itself blocks that thread
//! while the clients send. When the trigger returns (as an upgrade, which
//! has no lame-duck phase), the drain begins at once, before the runtime has looked at its sockets
//! again, so every connection still looks idle to the server while its
//! next request sits in the kernel.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lameduck::{Config, Server, Stop};

/// Connections per trial, and trials.
const CONNS: usize = 40;
const TRIALS: usize = 5;

/// How long the trigger holds the server's only worker.
const CONTENDED: Duration = Duration::from_millis(300);

/// Reads one response to a `GET /livez` (a short, `Content-Length`
/// body) from `s`. `None` if the connection ended before it was whole.
fn read_answer(s: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return Some(head);
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// One trial: `CONNS` keep-alive connections, each answered once and then
/// idle past the keep-alive grace; the trigger blocks the server's worker,
/// every client sends its next request meanwhile, and the drain begins the
/// moment the worker is free. Returns how many of those requests got no
/// answer.
fn trial() -> usize {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        keepalive_grace: Duration::from_millis(50),
        shutdown_timeout: Duration::from_secs(10),
        ..Config::default()
    };
    let listener = {
        let _in = rt.enter();
        lameduck::process::listener::bind(config.addr, config.backlog).expect("bind")
    };
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (go, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (blocking, blocked) = std::sync::mpsc::channel::<()>();
    let shutdown = async move {
        let _ = go_rx.await;
        let _ = blocking.send(());
        // The contention: the runtime's only worker does nothing else.
        std::thread::sleep(CONTENDED);
        // As after an upgrade: no lame-duck phase, so the drain begins in
        // this same turn of the worker, before it polls its sockets.
        Stop::Upgrade { new_pid: 0 }
    };
    let run = rt.spawn(Server::new(config).run(listener, shutdown, std::future::pending::<()>()));

    let mut conns: Vec<TcpStream> = (0..CONNS)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            assert!(read_answer(&mut s).is_some(), "the first answer");
            s
        })
        .collect();
    // Idle for longer than the keep-alive grace: the drain closes these at
    // once, unless it sees a request waiting.
    std::thread::sleep(Duration::from_millis(200));
    go.send(()).unwrap();
    blocked.recv().unwrap();
    for s in &mut conns {
        s.write_all(b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
    }
    let mut unanswered = 0;
    for s in &mut conns {
        match read_answer(s) {
            Some(head) => {
                assert!(head.starts_with("http/1.1 200"), "{head}");
                assert!(head.contains("connection: close"), "{head}");
            }
            None => unanswered += 1,
        }
    }
    let report = rt.block_on(run).expect("the server ran");
    assert_eq!(report.outcome, lameduck::Outcome::Drained);
    unanswered
}

/// Over several trials, no request that was in the kernel when the drain
/// closed the idle connections goes unanswered: each is served, with
/// `Connection: close`. Before the drain asked the kernel (`FIONREAD`,
/// `ConnState::bytes_waiting`), most of them met a FIN.
#[test]
fn requests_waiting_in_the_kernel_when_idle_connections_close_are_answered() {
    let unanswered: Vec<usize> = (0..TRIALS).map(|_| trial()).collect();
    assert_eq!(
        unanswered,
        vec![0; TRIALS],
        "requests met the drain's close without an answer, per trial"
    );
}
