//! One response head: status, version, how its body is delimited, and
//! whether the connection closes after it.

use super::{Framing, Method};

/// Header fields a head may have; a server's answers have a handful.
const MAX_FIELDS: usize = 64;

/// What a head says.
pub(super) struct Head {
    pub minor_version: u8,
    pub status: u16,
    /// The framing the head announces for this request (already
    /// [`Framing::Empty`] for 1xx, 204, 304 and `HEAD`).
    pub framing: Framing,
    pub closes: bool,
    /// Bytes of head, the blank line included.
    pub len: usize,
}

/// Parses the head at the start of `buf`; `Ok(None)` if it is not all
/// there yet. With `fields`, also collects its fields (names lower-cased).
pub(super) fn parse(
    buf: &[u8],
    method: Method,
    fields: Option<&mut Vec<(String, String)>>,
) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad response head: {e}")),
    };
    let minor_version = res.version.unwrap_or(0);
    let status = res.code.unwrap_or(0);
    let named = |name: &'static str| {
        res.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let framing =
        if (100..200).contains(&status) || status == 204 || status == 304 || method == Method::Head
        {
            Framing::Empty
        } else if let Some(te) = named("transfer-encoding").next_back() {
            // Chunked only if it is the final coding; otherwise the close
            // delimits the body (RFC 9112 §6.3, rule 4).
            if last_token(te).eq_ignore_ascii_case(b"chunked") {
                Framing::Chunked
            } else {
                Framing::Close
            }
        } else if let Some(cl) = named("content-length").next() {
            let len = std::str::from_utf8(cl)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| format!("bad content-length {:?}", String::from_utf8_lossy(cl)))?;
            Framing::Length(len)
        } else {
            Framing::Close
        };
    let closes = closes(minor_version, named("connection"));
    if let Some(fields) = fields {
        fields.extend(res.headers.iter().map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        }));
    }
    Ok(Some(Head {
        minor_version,
        status,
        framing,
        closes,
        len,
    }))
}

/// True if the connection closes after a response of `minor_version`
/// whose `Connection` fields are `values`: one of them lists `close`, or
/// it is HTTP/1.0 and none lists `keep-alive`. Each field is a comma list
/// (`keep-alive, close` closes).
pub(super) fn closes<'a>(minor_version: u8, values: impl Iterator<Item = &'a [u8]>) -> bool {
    let (mut close, mut keep_alive) = (false, false);
    for token in values.flat_map(|v| v.split(|&b| b == b',')) {
        let token = token.trim_ascii();
        close |= token.eq_ignore_ascii_case(b"close");
        keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
    }
    close || (minor_version == 0 && !keep_alive)
}

fn last_token(list: &[u8]) -> &[u8] {
    list.rsplit(|&b| b == b',')
        .next()
        .unwrap_or(list)
        .trim_ascii()
}

/// The fields of a trailer section (`name: value` lines, then a blank
/// line), names lower-cased.
pub(super) fn trailer_fields(section: &[u8]) -> Vec<(String, String)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_FIELDS];
    match httparse::parse_headers(section, &mut headers) {
        Ok(httparse::Status::Complete((_, fields))) => fields
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}
