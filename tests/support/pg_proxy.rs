//! A TCP proxy between the binary and PostgreSQL that can break one
//! connection right after a `COMMIT`: the commit reaches the server and is
//! done, and its answer never reaches the client. The one failure no
//! client can see through: was the write stored?
//!
//! It forwards bytes both ways untouched. Armed
//! ([`PgProxy::cut_after_next_commit`]), it watches what clients send for
//! the simple-query message tokio-postgres commits with (`Q`, length 11,
//! `COMMIT\0`). The connection that sends it next is the victim: the
//! message goes to the server, the server's answers are no longer passed
//! on, and once the server's `CommandComplete` for it (`C`, length 11,
//! `COMMIT\0`) has arrived, the proxy closes both sockets. So the cut
//! comes after the commit, for certain, and before the client hears of it.
//! No item name can contain these bytes: names have no control
//! characters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The frontend's `Query("COMMIT")`.
const COMMIT_SENT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";
/// The backend's `CommandComplete("COMMIT")`.
const COMMIT_DONE: &[u8] = b"C\0\0\0\x0bCOMMIT\0";

/// A running proxy; its tasks end with the test's runtime.
pub struct PgProxy {
    /// The loopback port it listens on.
    pub port: u16,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
}

impl PgProxy {
    /// Listens on a free loopback port, forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> PgProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let (a, c) = (armed.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, a.clone(), c.clone()));
            }
        });
        PgProxy { port, armed, cuts }
    }

    /// The URL of database `db` through the proxy.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Breaks the next connection that commits, after the commit.
    pub fn cut_after_next_commit(&self) {
        self.armed.store(true, SeqCst);
    }

    /// Connections broken so far.
    pub fn cuts(&self) -> usize {
        self.cuts.load(SeqCst)
    }
}

/// Position just past the first `needle` in `tail ++ chunk` that ends
/// inside `chunk` (one wholly in `tail` was seen before), as an index
/// into `chunk`.
fn end_of(tail: &[u8], chunk: &[u8], needle: &[u8]) -> Option<usize> {
    let joined = [tail, chunk].concat();
    joined
        .windows(needle.len())
        .enumerate()
        .map(|(at, w)| (at + needle.len(), w))
        .find(|&(end, w)| end > tail.len() && w == needle)
        .map(|(end, _)| end - tail.len())
}

/// The last bytes of `tail ++ chunk`, enough to find a needle split
/// across two reads.
fn keep_tail(tail: &mut Vec<u8>, chunk: &[u8]) {
    tail.extend_from_slice(chunk);
    let excess = tail.len().saturating_sub(COMMIT_SENT.len());
    tail.drain(..excess);
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    // Set by the client side before it sends the fatal COMMIT, so that the
    // server side, which can only read the answer after that, sees it.
    let swallow = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = oneshot::channel::<()>();

    let to_server = {
        let swallow = swallow.clone();
        async move {
            let mut buf = vec![0; 16 * 1024];
            let mut tail = Vec::new();
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let chunk = &buf[..n];
                if armed.load(SeqCst)
                    && let Some(end) = end_of(&tail, chunk, COMMIT_SENT)
                    && armed.swap(false, SeqCst)
                {
                    swallow.store(true, SeqCst);
                    let _ = sw.write_all(&chunk[..end]).await;
                    // Hold the server side open until its answer is in.
                    let _ = done_rx.await;
                    return;
                }
                keep_tail(&mut tail, chunk);
                if sw.write_all(chunk).await.is_err() {
                    return;
                }
            }
        }
    };
    let to_client = async move {
        let mut buf = vec![0; 16 * 1024];
        let mut seen = Vec::new();
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if swallow.load(SeqCst) {
                seen.extend_from_slice(&buf[..n]);
                if end_of(&[], &seen, COMMIT_DONE).is_some() {
                    cuts.fetch_add(1, SeqCst);
                    let _ = done_tx.send(());
                    // Returning drops the client's write half (and the
                    // server's read half): both connections close.
                    return;
                }
            } else if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(to_server, to_client);
}
