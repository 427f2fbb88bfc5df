//! One HTTP/1 response reader for every client in the tests, the fuzz
//! checker and the bench.
//!
//! It is *sans-IO*: a [`ResponseReader`] is fed bytes as they arrive
//! ([`ResponseReader::feed`], or [`ResponseReader::read_response`] and its
//! siblings, which read from any `AsyncRead` into the same buffer) and hands
//! back whole responses. Bytes after a response stay in the buffer for the
//! next one, so pipelined answers and answers split across reads come out
//! the same.
//!
//! It reads what a server may send (RFC 9112): HTTP/1.1 and HTTP/1.0 status
//! lines; bodies framed by `Content-Length`, by chunked coding (trailers
//! included) or by the close; no body for 1xx, 204, 304 or an answer to
//! `HEAD` (the caller says which request it was, [`Method`]); and whether
//! the connection closes after it (`Connection` is a comma list, and
//! HTTP/1.0 closes unless it says `keep-alive`). Interim 1xx answers
//! (`100 Continue`) come out as responses of their own: a client that
//! wants the final answer skips them ([`Response::is_interim`]); the fuzz
//! checker sees them.
//!
//! Two ways to take a response out: [`ResponseReader::next`] builds a
//! [`Response`] with its fields and body (for tests), and
//! [`ResponseReader::next_summary`] only says what it was and skips it,
//! allocating nothing (for the bench's load client, where the reader's one
//! buffer is reused for every request).

mod chunked;
mod head;
mod io;
mod reader;
#[cfg(test)]
mod tests;

pub use chunked::{Chunk, next_chunk};
pub use reader::ResponseReader;

/// The request a response answers, as far as its framing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `HEAD`: the answer announces a body it does not send.
    Head,
    /// Any other method: a body is read as the head announces it.
    Other,
    /// Not known: the fuzz checker reads a connection's whole output
    /// without knowing which requests were `HEAD`. A body the head
    /// announces is taken as absent when the bytes after the head start
    /// another response or the output ends there. Decided only once the
    /// output has ended ([`ResponseReader::end`]).
    Unknown,
}

/// How a response's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: 1xx, 204, 304, an answer to `HEAD`, or (with
    /// [`Method::Unknown`]) an announced body that is not there.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the server closes the connection.
    Close,
}

/// One response, with its fields and (de-chunked) body.
#[derive(Debug, Clone)]
pub struct Response {
    /// Where its status line starts, counted from the first byte fed.
    pub offset: usize,
    /// 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor_version: u8,
    /// The status code.
    pub status: u16,
    /// Header fields in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// How the body was delimited.
    pub framing: Framing,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Trailer fields after a chunked body, names lower-cased.
    pub trailers: Vec<(String, String)>,
    /// False if the connection ended before the body did.
    pub complete: bool,
}

impl Response {
    /// The first header called `name` (any case).
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

    /// True for an interim answer (1xx): the final one is still to come.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status)
    }

    /// True if it is the last response on its connection: `Connection`
    /// lists `close`, or it is HTTP/1.0 and does not list `keep-alive`.
    pub fn closes(&self) -> bool {
        let connection = self
            .headers
            .iter()
            .filter(|(k, _)| k == "connection")
            .map(|(_, v)| v.as_bytes());
        head::closes(self.minor_version, connection)
    }
}

/// A response without its fields and body: what a load client needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Where its status line starts, counted from the first byte fed.
    pub offset: usize,
    /// 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor_version: u8,
    /// The status code.
    pub status: u16,
    /// See [`Response::closes`].
    pub closes: bool,
    /// How the body was delimited.
    pub framing: Framing,
    /// Bytes of body (de-chunked).
    pub body_len: u64,
    /// False if the connection ended before the body did.
    pub complete: bool,
}

/// Bytes that are not a well-formed response, and where they start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadResponse {
    /// Offset of the response they belong to, counted from the first byte
    /// fed.
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for BadResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (response at byte {})", self.reason, self.offset)
    }
}

impl std::error::Error for BadResponse {}
