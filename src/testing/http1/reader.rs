//! [`ResponseReader`]: bytes in, whole responses out, the rest kept.

use super::chunked;
use super::head::{self, Head};
use super::{BadResponse, Framing, Method, Response, Summary};

/// Reads the responses on one HTTP/1 connection, in order. See the
/// [module docs](super).
///
/// Feed it what the server sent ([`feed`](Self::feed), or the async
/// `read_*` methods), say when the server closed ([`end`](Self::end)), and
/// take responses out with [`next`](Self::next) or
/// [`next_summary`](Self::next_summary): each returns `Ok(None)` while the
/// next response is not all there yet, and also once the connection has
/// ended with nothing left. At the end, a response cut short comes out
/// with `complete: false`, and a head cut short is an error.
#[derive(Debug, Default)]
pub struct ResponseReader {
    /// Bytes received; `buf[start..]` are not handed out yet. Kept (and
    /// its allocation reused) from one response to the next.
    buf: Vec<u8>,
    start: usize,
    /// How many bytes came before `buf[0]`: offsets count from the first
    /// byte fed.
    base: usize,
    /// The server has closed: what is buffered is all there will be.
    ended: bool,
}

/// Where one whole response lies in the buffer (from `start`).
struct Frame {
    offset: usize,
    head: Head,
    /// The framing used: the head's, except that [`Method::Unknown`] may
    /// find an announced body absent.
    framing: Framing,
    /// Bytes of head and body.
    len: usize,
    data_len: u64,
    complete: bool,
}

impl ResponseReader {
    /// An empty reader for a new connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts over for a new connection, keeping the buffer's allocation.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.base = 0;
        self.ended = false;
    }

    /// Adds bytes the server sent.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// The server closed the connection: nothing more will be fed.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// True once [`end`](Self::end) was called (or a read returned EOF).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The bytes received but not handed out as part of a response.
    pub fn leftover(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Takes the leftover bytes out of the reader.
    pub fn take_leftover(&mut self) -> Vec<u8> {
        let rest = self.leftover().to_vec();
        self.consume(rest.len());
        rest
    }

    /// The next whole response, with its fields and de-chunked body.
    pub fn next(&mut self, method: Method) -> Result<Option<Response>, BadResponse> {
        let Some(frame) = self.frame(method)? else {
            return Ok(None);
        };
        let bytes = &self.buf[self.start..self.start + frame.len];
        let mut headers = Vec::new();
        // The head is whole (the frame found it): this only collects its
        // fields, which `frame` does not allocate for.
        let _ = head::parse(bytes, method, Some(&mut headers));
        let raw_body = &bytes[frame.head.len..];
        let mut trailers = Vec::new();
        let body = if frame.framing == Framing::Chunked {
            let mut body = Vec::with_capacity(frame.data_len as usize);
            let _ = chunked::walk(raw_body, |at, chunk| {
                body.extend_from_slice(&at[chunk.data.clone()]);
                if chunk.is_last() {
                    trailers = head::trailer_fields(&at[chunk.trailers.clone()]);
                }
            });
            body
        } else {
            raw_body.to_vec()
        };
        let res = Response {
            offset: frame.offset,
            minor_version: frame.head.minor_version,
            status: frame.head.status,
            headers,
            framing: frame.framing,
            body,
            trailers,
            complete: frame.complete,
        };
        self.consume(frame.len);
        Ok(Some(res))
    }

    /// The next whole response, skipped over: only what it was. Allocates
    /// nothing.
    pub fn next_summary(&mut self, method: Method) -> Result<Option<Summary>, BadResponse> {
        let Some(frame) = self.frame(method)? else {
            return Ok(None);
        };
        self.consume(frame.len);
        Ok(Some(Summary {
            offset: frame.offset,
            minor_version: frame.head.minor_version,
            status: frame.head.status,
            closes: frame.head.closes,
            framing: frame.framing,
            body_len: frame.data_len,
            complete: frame.complete,
        }))
    }

    /// Only the next response's head, its body left in the buffer: for a
    /// body read as it arrives (an event stream, with [`super::next_chunk`]
    /// over [`take_leftover`](Self::take_leftover)). The body is empty and
    /// `complete` says whether there is none to come.
    pub fn next_head(&mut self, method: Method) -> Result<Option<Response>, BadResponse> {
        let offset = self.base + self.start;
        let mut headers = Vec::new();
        let parsed = head::parse(self.leftover(), method, Some(&mut headers))
            .map_err(|reason| BadResponse { offset, reason })?;
        let Some(head) = parsed else {
            return self.cut_head(offset);
        };
        self.consume(head.len);
        Ok(Some(Response {
            offset,
            minor_version: head.minor_version,
            status: head.status,
            headers,
            framing: head.framing,
            body: Vec::new(),
            trailers: Vec::new(),
            complete: head.framing == Framing::Empty,
        }))
    }

    /// Finds the next whole response (or, once ended, the cut one).
    fn frame(&self, method: Method) -> Result<Option<Frame>, BadResponse> {
        let buf = self.leftover();
        let offset = self.base + self.start;
        let bad = |reason: String| BadResponse { offset, reason };
        let Some(head) = head::parse(buf, method, None).map_err(bad)? else {
            return self.cut_head(offset);
        };
        if method == Method::Unknown && !self.ended {
            return Ok(None);
        }
        let at = head.len;
        // Only for `Method::Unknown`: nothing but another response, or the
        // end, follows `from`.
        let nothing_at = |from: usize| from == buf.len() || buf[from..].starts_with(b"HTTP/1.");
        let unknown = method == Method::Unknown;
        let (framing, end, data_len, complete) = match head.framing {
            Framing::Empty => (Framing::Empty, at, 0, true),
            Framing::Length(n) => match usize::try_from(n).ok().and_then(|n| at.checked_add(n)) {
                Some(end) if end <= buf.len() && (!unknown || nothing_at(end)) => {
                    (Framing::Length(n), end, n, true)
                }
                _ if unknown && nothing_at(at) => (Framing::Empty, at, 0, true),
                _ if unknown => return Err(bad(format!("body is not {n} bytes"))),
                _ if self.ended => {
                    let got = (buf.len() - at) as u64;
                    (Framing::Length(n), buf.len(), got, false)
                }
                _ => return Ok(None),
            },
            Framing::Chunked if unknown && nothing_at(at) => (Framing::Empty, at, 0, true),
            Framing::Chunked => {
                let walk = chunked::walk(&buf[at..], |_, _| {}).map_err(bad)?;
                if walk.complete {
                    (Framing::Chunked, at + walk.len, walk.data_len, true)
                } else if self.ended {
                    // Cut short: an event stream still running when the
                    // connection ended.
                    (Framing::Chunked, buf.len(), walk.data_len, false)
                } else {
                    return Ok(None);
                }
            }
            Framing::Close if self.ended => {
                let len = (buf.len() - at) as u64;
                (Framing::Close, buf.len(), len, true)
            }
            Framing::Close => return Ok(None),
        };
        Ok(Some(Frame {
            offset,
            head,
            framing,
            len: end,
            data_len,
            complete,
        }))
    }

    /// No whole head at `offset`: wait for more, or, once ended, the clean
    /// end (nothing left) or an error (a head cut short).
    fn cut_head<T>(&self, offset: usize) -> Result<Option<T>, BadResponse> {
        if self.ended && !self.leftover().is_empty() {
            Err(BadResponse {
                offset,
                reason: "response head cut short".into(),
            })
        } else {
            Ok(None)
        }
    }

    /// Drops the first `n` leftover bytes: for a caller that reads them
    /// itself (a client handing raw bytes on).
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.leftover().len(), "consuming bytes not received");
        self.start += n;
        if self.start == self.buf.len() {
            self.base += self.buf.len();
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Moves the leftover to the front before more bytes come in.
    pub(super) fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.base += self.start;
            self.start = 0;
        }
    }

    /// The buffer, for the async reads to fill (after [`compact`]).
    pub(super) fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}
