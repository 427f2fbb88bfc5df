//! WebSocket handshakes by hand, for tests that must see exactly what the
//! server answers (a `503`, a `101`'s headers) or hold a socket that
//! never reads or never answers, which a client library would not do.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a handshake's answer may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// A valid WebSocket handshake request for `path` (RFC 6455 §1.3's
/// sample key).
pub fn handshake_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Sends a handshake for `path` on a new connection; the socket, and the
/// answer's head (up to its blank line, nothing after it).
pub async fn handshake(addr: SocketAddr, path: &str) -> (TcpStream, String) {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(handshake_request(path).as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut socket).await;
    (socket, head)
}

/// Reads a byte at a time up to the end of a response head, so that no
/// frame after it is read.
async fn read_head(socket: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(ANSWER_WITHIN, socket.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}
