//! An HTTP/2 client for tests: the `h2` crate over prior-knowledge h2c.
//!
//! `h2` rather than a full client library because tests need its view of
//! the wire: each DATA frame's payload as it came, and the server's
//! GOAWAY as an error with its reason.

use std::net::SocketAddr;

use bytes::Bytes;
use tokio::task::JoinHandle;

/// Sends requests on one connection.
pub type Client = h2::client::SendRequest<Bytes>;

/// Opens an h2c connection; the returned task drives it and ends with it.
pub async fn connect(addr: SocketAddr) -> (Client, JoinHandle<Result<(), h2::Error>>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    (client, tokio::spawn(conn))
}

/// A request with no body.
pub fn request(method: &str, path: &str) -> http::Request<()> {
    http::Request::builder()
        .method(method)
        .uri(format!("http://test{path}"))
        .body(())
        .unwrap()
}

/// A `GET` with no body.
pub fn get(path: &str) -> http::Request<()> {
    request("GET", path)
}

/// The payload of every DATA frame of a response, in order, until the
/// stream ends. Panics on a stream error.
pub async fn data_frames(res: http::Response<h2::RecvStream>) -> Vec<Bytes> {
    let mut body = res.into_body();
    let mut frames = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("the stream ends cleanly");
        let _ = body.flow_control().release_capacity(chunk.len());
        frames.push(chunk);
    }
    assert!(body.is_end_stream());
    frames
}

/// The whole body of a response, as text.
pub async fn body_text(res: http::Response<h2::RecvStream>) -> String {
    let bytes: Vec<u8> = data_frames(res).await.concat();
    String::from_utf8(bytes).unwrap()
}
