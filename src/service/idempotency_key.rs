//! The `Idempotency-Key` request header (draft-ietf-httpapi-idempotency-key-header):
//! reading it, the request's fingerprint, and the keys being written in
//! this process.
//!
//! What the store does with a key, and what each outcome answers, is in
//! [`crate::store::once`]. This module is the HTTP side.
//!
//! # The header
//!
//! The draft makes the field a Structured Field String (RFC 8941 §3.3.3):
//! `Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"`. That is what
//! is read first: printable ASCII between double quotes, `\"` and `\\` the
//! only escapes. A bare value (`Idempotency-Key: 8e03978e-…`) is accepted
//! too, because that is what clients written for Stripe's API, and most
//! others that came before the draft, send: letters, digits and
//! `!#$%&'*+-.^_`|~:/`, the characters of a Structured Field Token, from
//! the first one on (a token may not start with a digit; a UUID does).
//! `abc` and `"abc"` are the same key.
//!
//! Refused with `400`, naming the rule: an empty key, one over
//! [`MAX_KEY_CHARS`] characters, a character outside those sets, a string
//! not closed or with something after it (parameters included: the draft
//! defines none), and more than one `Idempotency-Key` field.
//!
//! # The fingerprint
//!
//! "The same request" is the same method, path and body, byte for byte:
//! a SHA-256 of the three, stored with the key. A retry must send the
//! body it sent the first time; the same JSON written differently (keys
//! in another order, other spaces) is a different request, and `422`.
//!
//! # Keys in flight
//!
//! [`KeysInFlight`] is the in-progress marker within one process: a key is
//! in it from the moment its write is handed to the store until the write
//! task ends, commit or not, whether or not its client is still there. A
//! second request with the key meanwhile is answered `409` without asking
//! the store. Across processes, PostgreSQL's advisory lock does the same
//! (`store::postgres`); nothing is written down that could outlive a dead
//! process.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use hyper::header::{HeaderMap, HeaderName};
use hyper::{Method, StatusCode};
use sha2::{Digest, Sha256};

use super::respond::{self, Body};
use crate::store::once::MAX_KEY_CHARS;

/// The header's name.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The key a request carries: `Ok(None)` without the header, `Err` with
/// the `400` to answer when it is malformed.
pub fn from_headers(headers: &HeaderMap) -> Result<Option<String>, Box<hyper::Response<Body>>> {
    let mut values = headers.get_all(&IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let refuse = |why: &str| {
        Box::new(respond::json_error(
            StatusCode::BAD_REQUEST,
            format!("Idempotency-Key: {why}"),
        ))
    };
    if values.next().is_some() {
        return Err(refuse("more than one field; send one key"));
    }
    parse(value.as_bytes())
        .map(Some)
        .map_err(|why| refuse(&why))
}

/// Reads a field value: a Structured Field String, or a bare value (see
/// the module docs). Returns the key unquoted.
pub fn parse(value: &[u8]) -> Result<String, String> {
    let value = value.trim_ascii();
    let key = match value.split_first() {
        Some((b'"', rest)) => sf_string(rest)?,
        _ => {
            if let Some(bad) = value.iter().find(|&&b| !is_bare(b)) {
                return Err(format!(
                    "character {:?} is not allowed outside quotes; send a quoted string, \"like-this\"",
                    char::from(*bad)
                ));
            }
            String::from_utf8(value.to_vec()).expect("checked ASCII")
        }
    };
    if key.is_empty() || key.len() > MAX_KEY_CHARS {
        return Err(format!("the key must be 1 to {MAX_KEY_CHARS} characters"));
    }
    Ok(key)
}

/// The rest of a Structured Field String after its opening quote (RFC 8941
/// §4.2.5), which must be the whole of what is left.
fn sf_string(rest: &[u8]) -> Result<String, String> {
    let mut key = String::new();
    let mut bytes = rest.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => match bytes.next() {
                Some(&e @ (b'"' | b'\\')) => key.push(char::from(e)),
                _ => return Err(r#"only \" and \\ may follow a backslash"#.into()),
            },
            b'"' => {
                return if bytes.as_slice().is_empty() {
                    Ok(key)
                } else {
                    Err(
                        "nothing may follow the closing quote (the field takes no parameters)"
                            .into(),
                    )
                };
            }
            0x20..=0x7e => key.push(char::from(b)),
            _ => return Err("a quoted key holds printable ASCII only".into()),
        }
    }
    Err("the quoted string is not closed".into())
}

/// A character of a Structured Field Token (RFC 8941 §3.3.4): `tchar`,
/// `:` and `/`.
fn is_bare(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b)
}

/// SHA-256 of the method, the path and the body: what makes two requests
/// with one key "the same request". The lengths go in first, so that no
/// two different triples hash the same bytes.
pub fn fingerprint(method: &Method, path: &str, body: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [method.as_str().as_bytes(), path.as_bytes(), body] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// The keys whose write is under way in this process. See the module docs.
#[derive(Debug, Default)]
pub struct KeysInFlight(Mutex<HashSet<String>>);

impl KeysInFlight {
    /// Marks `key` as being written, unless it already is (`None`: answer
    /// `409`). The mark lasts as long as the returned [`Claim`].
    pub fn claim(self: &Arc<Self>, key: &str) -> Option<Claim> {
        let fresh = self.lock().insert(key.to_owned());
        fresh.then(|| Claim {
            keys: self.clone(),
            key: key.to_owned(),
        })
    }

    /// Keys being written now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no key is being written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // Each critical section is one insert or remove, which a panic
        // cannot leave half done.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A key marked as being written. Moved into the write task, so that it
/// is dropped, and the key freed, when the write ends, not when the
/// request does: a client that leaves mid-write does not free it early.
#[derive(Debug)]
pub struct Claim {
    keys: Arc<KeysInFlight>,
    key: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.keys.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quoted string and a bare value are the same key; escapes are
    /// undone; surrounding spaces are not part of it.
    #[test]
    fn quoted_and_bare_keys_read_as_the_same_key() {
        assert_eq!(parse(br#""abc-123""#), Ok("abc-123".into()));
        assert_eq!(parse(b"abc-123"), Ok("abc-123".into()));
        assert_eq!(parse(b"  \"a b\"  "), Ok("a b".into()));
        assert_eq!(parse(br#""q\"b\\s""#), Ok(r#"q"b\s"#.into()));
        let uuid = "8e03978e-40d5-43e8-bc93-6894a57f9324";
        assert_eq!(parse(uuid.as_bytes()), Ok(uuid.into()));
        assert_eq!(
            parse(format!("\"{}\"", "k".repeat(255)).as_bytes()).map(|k| k.len()),
            Ok(255)
        );
    }

    /// Each malformed value is refused with its reason.
    #[test]
    fn empty_overlong_unclosed_parameterised_and_non_ascii_keys_are_refused() {
        for (bad, why) in [
            (&b"\"\""[..], "1 to 255"),
            (b"", "1 to 255"),
            (&"k".repeat(256).into_bytes()[..], "1 to 255"),
            (b"\"abc", "not closed"),
            (b"\"abc\";p=1", "nothing may follow"),
            (b"abc;p=1", "not allowed"),
            (b"a b", "not allowed"),
            (b"\"a\\nb\"", "backslash"),
            (b"\"caf\xc3\xa9\"", "printable ASCII"),
            (b"\"tab\there\"", "printable ASCII"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(
                err.contains(why),
                "{:?}: {err}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// The fingerprint tells apart the method, the path and the body, and
    /// a split between path and body.
    #[test]
    fn the_fingerprint_differs_when_the_method_path_or_body_does() {
        let base = fingerprint(&Method::POST, "/api/items", b"{}");
        assert_eq!(base, fingerprint(&Method::POST, "/api/items", b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/api/items", b"{ }"));
        assert_ne!(base, fingerprint(&Method::DELETE, "/api/items", b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/api/items{", b"}"));
    }

    /// A key is claimed once until its claim is dropped.
    #[test]
    fn a_key_in_flight_cannot_be_claimed_again_until_its_claim_is_dropped() {
        let keys = Arc::new(KeysInFlight::default());
        let first = keys.claim("k").expect("free");
        assert!(keys.claim("k").is_none());
        assert!(keys.claim("other").is_some());
        drop(first);
        assert!(keys.claim("k").is_some());
        assert!(keys.is_empty());
    }
}
