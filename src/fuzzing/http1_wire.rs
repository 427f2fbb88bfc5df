//! Reading back what the server wrote on an HTTP/1 connection: it must be
//! a sequence of well-formed responses and nothing else (HTTP/1.1, or
//! HTTP/1.0 for an HTTP/1.0 request).

/// One response found in the output.
#[derive(Debug, Clone)]
pub struct WireResponse {
    /// Where its status line starts in the output.
    pub offset: usize,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0 (the answer to
    /// an HTTP/1.0 request).
    pub minor_version: u8,
    /// The status code.
    pub status: u16,
    /// Header fields, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl WireResponse {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// True if it is the last response on its connection: it says
    /// `Connection: close`, or it is HTTP/1.0 (close by default) and does
    /// not say `keep-alive`.
    pub fn closes(&self) -> bool {
        let says = |token: &str| {
            self.header("connection")
                .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        says("close") || (self.minor_version == 0 && !says("keep-alive"))
    }
}

/// Splits `out` into responses. Fails, saying where and why, if any byte
/// does not belong to a well-formed response.
///
/// Two allowances, both for things the server cannot know in advance:
///
/// * a response to `HEAD` announces a body it does not send. The output
///   does not say which request was a `HEAD`, so a response whose body
///   would be absent — the next bytes start another response, or the
///   output ends — is read as bodiless;
/// * the last response may be a chunked body cut short (an event stream
///   still running when the client hung up).
pub fn parse_responses(out: &[u8]) -> Result<Vec<WireResponse>, String> {
    let mut found = Vec::new();
    let mut at = 0;
    while at < out.len() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut headers);
        let head_len = match res.parse(&out[at..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Err(format!("response head cut at {at}")),
            Err(e) => return Err(format!("bad response head at {at}: {e}")),
        };
        let minor_version = res.version.unwrap_or(0);
        let status = res.code.unwrap_or(0);
        let headers: Vec<(String, String)> = res
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let mut resp = WireResponse {
            offset: at,
            minor_version,
            status,
            headers,
            body: Vec::new(),
        };
        let body_at = at + head_len;
        let bodiless = |from: usize| from == out.len() || out[from..].starts_with(b"HTTP/1.");
        at = if (100..200).contains(&status) || status == 204 || status == 304 {
            body_at
        } else if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            if bodiless(body_at) {
                body_at
            } else {
                let (body, end, complete) = dechunk(&out[body_at..])?;
                if !complete && body_at + end != out.len() {
                    return Err(format!("chunked body at {body_at} broken"));
                }
                resp.body = body;
                body_at + end
            }
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| format!("bad content-length {len:?} at {at}"))?;
            if body_at + len <= out.len() && bodiless(body_at + len) {
                resp.body = out[body_at..body_at + len].to_vec();
                body_at + len
            } else if bodiless(body_at) {
                body_at
            } else {
                return Err(format!("body at {body_at} is not {len} bytes"));
            }
        } else {
            // Delimited by the close: everything left.
            resp.body = out[body_at..].to_vec();
            out.len()
        };
        found.push(resp);
    }
    Ok(found)
}

/// De-chunks a chunked body. Returns the body, the bytes consumed, and
/// whether the last chunk was seen.
fn dechunk(mut buf: &[u8]) -> Result<(Vec<u8>, usize, bool), String> {
    let total = buf.len();
    let mut body = Vec::new();
    loop {
        match httparse::parse_chunk_size(buf) {
            Ok(httparse::Status::Complete((start, size))) => {
                let size = usize::try_from(size).map_err(|_| "chunk too large")?;
                if size == 0 {
                    // Last chunk, then (no trailers from this server) CRLF.
                    if buf[start..].starts_with(b"\r\n") {
                        return Ok((body, total - buf.len() + start + 2, true));
                    }
                    return Err("last chunk not followed by CRLF".into());
                }
                if buf.len() < start + size + 2 {
                    return Ok((body, total, false));
                }
                if &buf[start + size..start + size + 2] != b"\r\n" {
                    return Err("chunk not followed by CRLF".into());
                }
                body.extend_from_slice(&buf[start..start + size]);
                buf = &buf[start + size + 2..];
            }
            Ok(httparse::Status::Partial) => return Ok((body, total, false)),
            Err(_) => return Err("bad chunk size line".into()),
        }
    }
}
