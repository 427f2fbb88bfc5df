//! A minimal HTTP/1.1 client over real sockets, for tests.
//!
//! Responses are read with the library's response reader
//! (`lameduck::testing::http1`), which keeps whatever arrives after one
//! response for the next: a [`Conn`] reads pipelined answers one by one.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use lameduck::testing::http1::{Framing, Method, ResponseReader, next_chunk};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

pub use lameduck::testing::http1::Response;

/// A client connection: the socket, and what was read past the last
/// response.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    reader: ResponseReader,
}

impl Conn {
    /// The socket's halves, for a test that reads and writes on its own.
    /// Nothing may be waiting in the reader.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        assert!(self.reader.leftover().is_empty(), "unread bytes");
        self.stream.into_split()
    }

    /// One read into the reader. A reset counts as the end, like EOF:
    /// tests assert on what arrived.
    async fn fill(&mut self) -> usize {
        match self.reader.fill_from(&mut self.stream).await {
            Ok(n) => n,
            Err(_) => {
                self.reader.end();
                0
            }
        }
    }
}

/// Raw reads see the bytes the reader holds first, then the socket's.
impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let left = this.reader.leftover();
        if left.is_empty() {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        let n = left.len().min(buf.remaining());
        buf.put_slice(&left[..n]);
        this.reader.consume(n);
        Poll::Ready(Ok(()))
    }
}

impl From<TcpStream> for Conn {
    fn from(stream: TcpStream) -> Self {
        Conn {
            stream,
            reader: ResponseReader::new(),
        }
    }
}

/// The reader's name for a request method.
pub fn method(name: &str) -> Method {
    if name.eq_ignore_ascii_case("HEAD") {
        Method::Head
    } else {
        Method::Other
    }
}

/// Opens a connection.
pub async fn connect(addr: SocketAddr) -> Conn {
    try_connect(addr).await.expect("connect")
}

/// Opens a connection; `None` if it is refused (the server has closed its
/// listener).
pub async fn try_connect(addr: SocketAddr) -> Option<Conn> {
    let stream = TcpStream::connect(addr).await.ok()?;
    stream.set_nodelay(true).unwrap();
    Some(stream.into())
}

/// Writes raw bytes; an error (the server closed or reset the connection)
/// is returned, for tests that count it.
pub async fn try_send(conn: &mut Conn, raw: &[u8]) -> std::io::Result<()> {
    conn.stream.write_all(raw).await
}

/// Writes raw bytes.
pub async fn send(conn: &mut Conn, raw: &[u8]) {
    conn.stream.write_all(raw).await.expect("write");
}

/// A `GET` on a keep-alive connection.
pub async fn send_get(conn: &mut Conn, path: &str) {
    send(
        conn,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
    .await;
}

/// One request on a fresh connection, `Connection: close`.
pub async fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Response {
    request_with(addr, method, path, &[], body).await
}

/// [`request`] with extra header fields, each `(name, value)` written as
/// given.
pub async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Response {
    let mut conn = connect(addr).await;
    let body = body.unwrap_or("");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    send(&mut conn, head.as_bytes()).await;
    send(&mut conn, body.as_bytes()).await;
    read_answer(&mut conn, self::method(method))
        .await
        .expect("a response")
}

/// `GET path` on a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, None).await
}

/// Reads the next final response (interim 1xx ones are skipped) to a
/// request that was not `HEAD`. `None` if the connection closed before a
/// whole head arrived (a bare EOF or reset). A chunked body cut short by
/// the close comes back as far as it got.
pub async fn read_response(conn: &mut Conn) -> Option<Response> {
    read_answer(conn, Method::Other).await
}

async fn read_answer(conn: &mut Conn, method: Method) -> Option<Response> {
    loop {
        match conn.reader.next(method) {
            Ok(Some(res)) if res.is_interim() => {}
            Ok(Some(res)) => {
                assert!(
                    res.complete || res.framing == Framing::Chunked,
                    "EOF inside a body: {res:?}"
                );
                return Some(res);
            }
            // A head cut short by the close.
            Err(_) if conn.reader.is_ended() => return None,
            Err(e) => panic!("response head parses: {e}"),
            Ok(None) if conn.reader.is_ended() => return None,
            Ok(None) => {
                conn.fill().await;
            }
        }
    }
}

/// Reads the next chunk of a chunked stream as text, as it arrives: for
/// event streams that never end on their own. `buf` holds what came after
/// the head ([`read_head`]). `None` at the end.
pub async fn read_chunk(conn: &mut Conn, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(chunk) = next_chunk(buf).expect("a well-formed chunk") {
            let text = String::from_utf8_lossy(&buf[chunk.data.clone()]).into_owned();
            buf.drain(..chunk.len);
            return (!chunk.is_last()).then_some(text);
        }
        if conn.fill().await == 0 {
            return None;
        }
        buf.extend(conn.reader.take_leftover());
    }
}

/// Reads the head of a streaming response and returns it with whatever body
/// bytes came along.
pub async fn read_head(conn: &mut Conn) -> (Response, Vec<u8>) {
    loop {
        match conn.reader.next_head(Method::Other) {
            Ok(Some(res)) if res.is_interim() => {}
            Ok(Some(res)) => return (res, conn.reader.take_leftover()),
            Ok(None) if !conn.reader.is_ended() => {
                conn.fill().await;
            }
            other => panic!("EOF before a response head: {other:?}"),
        }
    }
}

/// Waits for the server to close the connection (EOF or reset) within
/// `within`; returns the bytes that arrived before the close and were not
/// read as a response yet. Panics if the connection is still open after
/// `within`.
pub async fn closed_within(conn: &mut Conn, within: Duration) -> Vec<u8> {
    tokio::time::timeout(within, async { while conn.fill().await > 0 {} })
        .await
        .expect("connection still open");
    conn.reader.take_leftover()
}

/// True if the connection is still open after `wait` (nothing read, no EOF).
pub async fn still_open_after(conn: &mut Conn, wait: Duration) -> bool {
    conn.reader.leftover().is_empty() && tokio::time::timeout(wait, conn.fill()).await.is_err()
}
