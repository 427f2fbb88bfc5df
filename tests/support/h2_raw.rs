//! A raw HTTP/2 peer for flood tests: it writes frames byte by byte, as an
//! attacker would, and reads back every frame the server sends.
//!
//! A real client (the `h2` crate, in `http2`) refuses to send most of
//! what these tests need: a stream reset before the server could see it,
//! a header block split into a thousand CONTINUATION frames, empty DATA
//! frames by the thousand. Header blocks here are plain HPACK: static-table
//! references and literals without Huffman coding (RFC 7541 §6).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The client preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// SETTINGS_INITIAL_WINDOW_SIZE (RFC 9113 §6.5.2).
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;

/// GOAWAY's and RST_STREAM's codes (RFC 9113 §7).
pub const CANCEL: u32 = 0x8;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One frame, whole.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A GOAWAY's error code, or an RST_STREAM's.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            GOAWAY => 4,
            RST_STREAM => 0,
            _ => return None,
        };
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The bytes of one frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A SETTINGS frame with `settings` (id, value).
pub fn settings(settings: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in settings {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

/// An HPACK integer with an `n`-bit prefix, `flags` in the first byte's
/// high bits (RFC 7541 §5.1).
pub fn hpack_int(out: &mut Vec<u8>, flags: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

/// An HPACK string, not Huffman-coded.
pub fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// The header block of a request: `:method`, `:scheme http`, `:path` and
/// `:authority`.
pub fn request_block(method: &str, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    match method {
        "GET" => out.push(0x82),  // static 2
        "POST" => out.push(0x83), // static 3
        other => {
            out.push(0x02); // literal, name static 2, no indexing
            hpack_str(&mut out, other.as_bytes());
        }
    }
    out.push(0x86); // :scheme http, static 6
    out.push(0x04); // :path, name static 4, no indexing
    hpack_str(&mut out, path.as_bytes());
    out.push(0x01); // :authority, name static 1, no indexing
    hpack_str(&mut out, b"test");
    out
}

/// A HEADERS frame for `GET path` on `stream`, which ends the stream.
pub fn get(stream: u32, path: &str) -> Vec<u8> {
    frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        stream,
        &request_block("GET", path),
    )
}

/// One raw HTTP/2 connection.
pub struct RawH2 {
    tcp: TcpStream,
    read: Vec<u8>,
}

impl RawH2 {
    /// Connects, sends the preface and a SETTINGS frame with `with`, and
    /// acknowledges nothing yet.
    pub async fn connect(addr: SocketAddr, with: &[(u16, u32)]) -> RawH2 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(with));
        tcp.write_all(&hello).await.unwrap();
        RawH2 {
            tcp,
            read: Vec::new(),
        }
    }

    /// Writes `bytes`; `false` once the server has closed the connection
    /// (the write failed), which the floods expect sooner or later.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        self.tcp.write_all(bytes).await.is_ok()
    }

    /// Writes `bytes`, giving up after `within` (a server that stopped
    /// reading stops the write): `false` if it did not all go.
    pub async fn send_within(&mut self, bytes: &[u8], within: Duration) -> bool {
        matches!(
            tokio::time::timeout(within, self.tcp.write_all(bytes)).await,
            Ok(Ok(()))
        )
    }

    /// The next whole frame, or `None` at the end of the connection (a
    /// close or a reset) or after `within`.
    pub async fn next_frame(&mut self, within: Duration) -> Option<Frame> {
        let until = tokio::time::Instant::now() + within;
        loop {
            if self.read.len() >= 9 {
                let len =
                    u32::from_be_bytes([0, self.read[0], self.read[1], self.read[2]]) as usize;
                if self.read.len() >= 9 + len {
                    let head: Vec<u8> = self.read.drain(..9 + len).collect();
                    return Some(Frame {
                        kind: head[3],
                        flags: head[4],
                        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]])
                            & 0x7fff_ffff,
                        payload: head[9..].to_vec(),
                    });
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(until, self.tcp.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.read.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Every frame until the connection ends or `within` passes.
    pub async fn frames_until_end(&mut self, within: Duration) -> (Vec<Frame>, bool) {
        let until = tokio::time::Instant::now() + within;
        let mut frames = Vec::new();
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame(left).await {
                Some(f) => frames.push(f),
                None => return (frames, tokio::time::Instant::now() < until),
            }
        }
    }

    /// The socket, for what the frames cannot say.
    pub fn tcp(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }
}

/// The server's resident memory, in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("a VmRSS line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
