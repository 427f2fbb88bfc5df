//! Chunked transfer coding (RFC 9112 §7.1), one chunk at a time: the
//! reader walks a body with it, and a client reading an event stream as it
//! arrives takes its chunks out one by one.

use std::ops::Range;

/// Trailer fields a last chunk may carry.
const MAX_TRAILERS: usize = 64;

/// One chunk at the start of a buffer. Ranges are into that buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Its data; empty for the last chunk.
    pub data: Range<usize>,
    /// The trailer section after the last chunk (its fields and the blank
    /// line); empty for the others.
    pub trailers: Range<usize>,
    /// Bytes it takes up: size line, data, CRLF, and after the last chunk
    /// the trailer section.
    pub len: usize,
}

impl Chunk {
    /// True for the zero-size chunk that ends the body.
    pub fn is_last(&self) -> bool {
        self.data.is_empty()
    }
}

/// The chunk at the start of `buf`; `Ok(None)` if it is not all there yet.
pub fn next_chunk(buf: &[u8]) -> Result<Option<Chunk>, String> {
    let (start, size) = match httparse::parse_chunk_size(buf) {
        Ok(httparse::Status::Complete(found)) => found,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("bad chunk size line".into()),
    };
    if size == 0 {
        let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILERS];
        return match httparse::parse_headers(&buf[start..], &mut fields) {
            Ok(httparse::Status::Complete((n, _))) => Ok(Some(Chunk {
                data: start..start,
                trailers: start..start + n,
                len: start + n,
            })),
            Ok(httparse::Status::Partial) => Ok(None),
            Err(e) => Err(format!("bad trailer section: {e}")),
        };
    }
    let end = usize::try_from(size)
        .ok()
        .and_then(|size| start.checked_add(size)?.checked_add(2))
        .ok_or("chunk too large")?;
    if buf.len() < end {
        return Ok(None);
    }
    if &buf[end - 2..end] != b"\r\n" {
        return Err("chunk not followed by CRLF".into());
    }
    Ok(Some(Chunk {
        data: start..end - 2,
        trailers: end..end,
        len: end,
    }))
}

/// How far a chunked body at the start of a buffer goes.
pub(super) struct Walk {
    /// Bytes of whole chunks (all of the body if `complete`).
    pub len: usize,
    /// Data bytes in them.
    pub data_len: u64,
    /// True once the last chunk (and its trailers) is in.
    pub complete: bool,
}

/// Walks the chunks at the start of `buf`, calling `each` for every one.
pub(super) fn walk(buf: &[u8], mut each: impl FnMut(&[u8], &Chunk)) -> Result<Walk, String> {
    let mut at = 0;
    let mut data_len = 0;
    while let Some(chunk) = next_chunk(&buf[at..])? {
        each(&buf[at..], &chunk);
        at += chunk.len;
        data_len += chunk.data.len() as u64;
        if chunk.is_last() {
            return Ok(Walk {
                len: at,
                data_len,
                complete: true,
            });
        }
    }
    Ok(Walk {
        len: at,
        data_len,
        complete: false,
    })
}
