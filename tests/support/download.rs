//! A download client for tests: one request on a fresh HTTP/1.1
//! connection, its head, then its body as it comes — kept, hashed, or
//! counted — up to its `Content-Length` or to the cut, whichever is first.
//!
//! A cut is what the forced close does to a download, so the body is read
//! with raw reads, not the response reader (which takes a body that ends
//! short of its length for a broken response).

use std::net::SocketAddr;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::http::{self, Conn, Response};

/// `/api/download` for the body of `bytes` bytes with `seed`.
pub fn path(bytes: u64, seed: u64) -> String {
    format!("/api/download?bytes={bytes}&seed={seed}")
}

/// Sends `METHOD path` with `headers` (and `Connection: close`) on a fresh
/// connection; gives the connection, the answer's head, and the body
/// bytes that came with it.
pub async fn open(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Conn, Response, Vec<u8>) {
    let mut conn = http::connect(addr).await;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    http::send(&mut conn, head.as_bytes()).await;
    let (res, first) = http::read_head(&mut conn).await;
    (conn, res, first)
}

/// The `Content-Length` of `res`.
pub fn content_length(res: &Response) -> u64 {
    res.header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length: {res:?}"))
}

/// Reads the body of `res` from `conn` (`first` is what came with the
/// head) into `sink`, until its `Content-Length` or the connection's end
/// (EOF or reset). Returns how many bytes came: the length, or less if
/// the body was cut.
pub async fn read_body(
    conn: &mut Conn,
    res: &Response,
    first: Vec<u8>,
    mut sink: impl FnMut(&[u8]),
) -> u64 {
    let len = content_length(res);
    assert!(
        first.len() as u64 <= len,
        "more than the body after the head"
    );
    sink(&first);
    let mut got = first.len() as u64;
    let mut buf = vec![0u8; 256 * 1024];
    while got < len {
        let want = buf.len().min((len - got) as usize);
        match conn.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                sink(&buf[..n]);
                got += n as u64;
            }
        }
    }
    got
}

/// `GET path` with `headers`: the head and the whole body, as far as it
/// came.
pub async fn fetch(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (Response, Vec<u8>) {
    let (mut conn, res, first) = open(addr, "GET", path, headers).await;
    let mut body = Vec::new();
    read_body(&mut conn, &res, first, |b| body.extend_from_slice(b)).await;
    (res, body)
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex(Sha256::digest(bytes).as_slice())
}

/// `digest` in lower-case hex.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
