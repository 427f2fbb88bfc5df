//! Query strings: checked, decoded once, then read by name.
//!
//! Every handler reads its parameters (`q`, `limit`, `after`, `ms`,
//! `interval_ms`) through [`Query`], so `limit=%31` means `limit=1` exactly
//! as `q=a%20b` means `q=a b`. The rules are those of an HTML form
//! (`application/x-www-form-urlencoded`): pairs split on `&`, key and value
//! on the first `=`, `+` is a space, `%XX` is a byte, and the bytes must
//! be UTF-8. Keys are decoded too. When a key appears twice, the first
//! wins.
//!
//! # Why a strict decoder
//!
//! The well-known decoders are lenient, each in its own way, and both ways
//! would turn bad input into a silently different request:
//!
//! * a `%` not followed by two hex digits (`%zz`, `%4`, `%+4`) is passed
//!   through as text by `percent_encoding` and `form_urlencoded` alike;
//! * `form_urlencoded::parse` replaces bytes that are not UTF-8 with
//!   `U+FFFD`, so `q=%FF` would search for "�".
//!
//! So the whole query string is first checked for malformed escapes
//! ([`check_escapes`]), and then decoded with rust-url's `percent_encoding`
//! (the decoder `form_urlencoded` is built on) through its strict
//! `decode_utf8`. Either failure is a 400 for the whole request, whichever
//! parameter it is in: a request whose query cannot be read is not half
//! served.

use std::borrow::Cow;

use percent_encoding::percent_decode;

/// A decoded query string: its `key=value` pairs in order.
#[derive(Debug, Default)]
pub struct Query<'q> {
    pairs: Vec<(Cow<'q, str>, Cow<'q, str>)>,
}

impl<'q> Query<'q> {
    /// Checks and decodes `raw` (the part after `?`, if any). The error is
    /// the message a 400 carries.
    pub fn parse(raw: Option<&'q str>) -> Result<Self, String> {
        let Some(raw) = raw else {
            return Ok(Query::default());
        };
        check_escapes(raw)?;
        let pairs = raw
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((decode(key)?, decode(value)?))
            })
            .collect::<Result<_, String>>()?;
        Ok(Query { pairs })
    }

    /// The decoded value of `key`, if present (the first, if repeated).
    pub fn text(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| &**v)
    }

    /// `key` as a decimal integer in `min..=max`, `default` if absent.
    /// Only ASCII digits: no sign, no spaces (a literal `+` decodes to a
    /// space, which is refused). The error is the message a 400 carries.
    pub fn number(
        &self,
        key: &str,
        min: u64,
        max: u64,
        default: Option<u64>,
    ) -> Result<Option<u64>, String> {
        let Some(raw) = self.text(key) else {
            return Ok(default);
        };
        match digits(raw) {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "query parameter `{key}` must be an integer from {min} to {max}"
            )),
        }
    }
}

/// `text` as a decimal `u64`, if it is nothing but ASCII digits.
/// (`str::parse` alone would also take a leading `+`.)
pub fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Every `%` in `raw` starts an escape of exactly two hex digits.
fn check_escapes(raw: &str) -> Result<(), String> {
    let bytes = raw.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !matches!(
                bytes.get(i + 1..i + 3),
                Some([hi, lo]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit()
            )
    });
    if malformed {
        Err(
            "malformed percent-escape in the query string: `%` must be followed by two hex digits"
                .into(),
        )
    } else {
        Ok(())
    }
}

/// One key or value: `+` to a space, then `%XX` to bytes, which must be
/// UTF-8. Borrows when there is nothing to decode.
fn decode(part: &str) -> Result<Cow<'_, str>, String> {
    let part: Cow<'_, str> = if part.contains('+') {
        Cow::Owned(part.replace('+', " "))
    } else {
        Cow::Borrowed(part)
    };
    let not_utf8 = || "the query string does not decode to UTF-8".to_string();
    match part {
        Cow::Borrowed(part) => percent_decode(part.as_bytes())
            .decode_utf8()
            .map_err(|_| not_utf8()),
        Cow::Owned(part) => percent_decode(part.as_bytes())
            .decode_utf8()
            .map(|text| Cow::Owned(text.into_owned()))
            .map_err(|_| not_utf8()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(query: &str, key: &str, default: Option<u64>) -> Result<Option<u64>, String> {
        Query::parse(Some(query))?.number(key, 0, 100, default)
    }

    /// Numbers are bounded, plain decimal, and may be percent-encoded like
    /// any other value; anything else is an error.
    #[test]
    fn numbers_are_bounded_decoded_and_garbage_is_an_error() {
        assert_eq!(number("ms=25", "ms", None), Ok(Some(25)));
        assert_eq!(number("x=1", "ms", Some(7)), Ok(Some(7)));
        assert_eq!(number("ms=%32%35", "ms", None), Ok(Some(25)));
        assert_eq!(number("m%73=25", "ms", None), Ok(Some(25)));
        assert_eq!(number("ms=1&ms=2", "ms", None), Ok(Some(1)));
        assert!(number("ms=abc", "ms", None).is_err());
        assert!(number("ms=101", "ms", None).is_err());
        assert!(number("ms", "ms", None).is_err());
        assert!(number("ms=-1", "ms", None).is_err());
        assert!(number("ms=%2B1", "ms", None).is_err(), "a sign");
        assert!(number("ms=+1", "ms", None).is_err(), "a space");
    }

    /// Text is decoded like a form value, and a query with a malformed
    /// escape or bytes that are not UTF-8 is refused, whichever parameter
    /// they are in.
    #[test]
    fn text_is_form_decoded_and_bad_escapes_are_refused() {
        let q = Query::parse(Some("q=a%20b+c&e=%C3%A9&plus=%2B&empty=&bare")).unwrap();
        assert_eq!(q.text("q"), Some("a b c"));
        assert_eq!(q.text("e"), Some("\u{e9}"));
        assert_eq!(q.text("plus"), Some("+"));
        assert_eq!(q.text("empty"), Some(""));
        assert_eq!(q.text("bare"), Some(""));
        assert_eq!(q.text("missing"), None);
        for bad in [
            "q=%zz",
            "q=%4",
            "q=%+4",
            "q=%",
            "x=%4g&q=a",
            "q=%FF",
            "%C3=1",
        ] {
            assert!(Query::parse(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(Query::parse(None).unwrap().text("q"), None);
    }
}
