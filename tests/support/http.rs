//! A minimal HTTP/1.1 client over `TcpStream`, for tests.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// True if the server said this is the last response on the connection.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Opens a connection.
pub async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
}

/// Writes raw bytes.
pub async fn send(stream: &mut TcpStream, raw: &[u8]) {
    stream.write_all(raw).await.expect("write");
}

/// A `GET` on a keep-alive connection.
pub async fn send_get(stream: &mut TcpStream, path: &str) {
    send(
        stream,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
    .await;
}

/// One request on a fresh connection, `Connection: close`.
pub async fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Response {
    let mut stream = connect(addr).await;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    send(&mut stream, head.as_bytes()).await;
    send(&mut stream, body.as_bytes()).await;
    read_response(&mut stream).await.expect("a response")
}

/// `GET path` on a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, None).await
}

/// Reads one response. `None` if the connection closed before a status
/// line arrived (a bare EOF or reset).
pub async fn read_response(stream: &mut TcpStream) -> Option<Response> {
    let mut buf = Vec::new();
    let (head_len, status, headers) = loop {
        let mut hdrs = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut hdrs);
        if let httparse::Status::Complete(n) = res.parse(&buf).expect("response head parses") {
            let headers = res
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect::<Vec<_>>();
            break (n, res.code.unwrap(), headers);
        }
        if read_more(stream, &mut buf).await == 0 {
            return None;
        }
    };
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let mut rest = buf.split_off(head_len);
    if let Some(len) = resp
        .header("content-length")
        .map(|v| v.parse::<usize>().unwrap())
    {
        while rest.len() < len {
            assert!(read_more(stream, &mut rest).await > 0, "EOF inside a body");
        }
        rest.truncate(len);
        resp.body = rest;
    } else if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        resp.body = read_chunked(stream, rest).await;
    } else if status != 204 && status != 304 {
        // Delimited by EOF.
        while read_more(stream, &mut rest).await > 0 {}
        resp.body = rest;
    }
    Some(resp)
}

/// Reads a chunked body to its end (or to EOF, returning what arrived).
async fn read_chunked(stream: &mut TcpStream, mut buf: Vec<u8>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        match httparse::parse_chunk_size(&buf) {
            Ok(httparse::Status::Complete((start, size))) => {
                let size = size as usize;
                while buf.len() < start + size + 2 {
                    if read_more(stream, &mut buf).await == 0 {
                        return body;
                    }
                }
                if size == 0 {
                    return body;
                }
                body.extend_from_slice(&buf[start..start + size]);
                buf.drain(..start + size + 2);
            }
            Ok(httparse::Status::Partial) => {
                if read_more(stream, &mut buf).await == 0 {
                    return body;
                }
            }
            Err(e) => panic!("bad chunk: {e:?}"),
        }
    }
}

/// Reads the next chunk of a chunked stream as text, as it arrives: for
/// event streams that never end on their own. `None` at the end.
pub async fn read_chunk(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Ok(httparse::Status::Complete((start, size))) = httparse::parse_chunk_size(buf) {
            let size = size as usize;
            if buf.len() >= start + size + 2 {
                let chunk = String::from_utf8_lossy(&buf[start..start + size]).into_owned();
                buf.drain(..start + size + 2);
                return if size == 0 { None } else { Some(chunk) };
            }
        }
        if read_more(stream, buf).await == 0 {
            return None;
        }
    }
}

/// Reads the head of a streaming response and returns it with whatever body
/// bytes came along.
pub async fn read_head(stream: &mut TcpStream) -> (Response, Vec<u8>) {
    let mut buf = Vec::new();
    loop {
        let mut hdrs = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut hdrs);
        if let httparse::Status::Complete(n) = res.parse(&buf).expect("head parses") {
            let headers = res
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let resp = Response {
                status: res.code.unwrap(),
                headers,
                body: Vec::new(),
            };
            return (resp, buf.split_off(n));
        }
        assert!(
            read_more(stream, &mut buf).await > 0,
            "EOF before a response head"
        );
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 8192];
    // A reset counts as the end, like EOF: tests assert on what arrived.
    let n = stream.read(&mut chunk).await.unwrap_or(0);
    buf.extend_from_slice(&chunk[..n]);
    n
}

/// Waits for the server to close the connection (EOF or reset) within
/// `within`; returns the bytes that arrived before the close. Panics if the
/// connection is still open after `within`.
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(within, async {
        while read_more(stream, &mut got).await > 0 {}
    })
    .await
    .expect("connection still open");
    got
}

/// True if the connection is still open after `wait` (nothing read, no EOF).
pub async fn still_open_after(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    // Timing out is the only way to tell "open and silent".
    tokio::time::timeout(wait, stream.read(&mut byte))
        .await
        .is_err()
}
