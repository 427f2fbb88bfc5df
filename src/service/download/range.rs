//! `Range` and `If-Range`: which bytes of a download to send.
//!
//! RFC 9110 §14 in the order the server applies it, with the choices it
//! leaves to the server written down:
//!
//! 1. **Only `GET` has ranges** (§14.2): `HEAD` and anything else is
//!    answered whole, whatever it asks.
//! 2. **`If-Range`** (§13.1.5), when there is a `Range` to apply it to:
//!    the `Range` is honoured only if `If-Range` is the download's `ETag`,
//!    compared strongly (byte for byte; a weak `W/"…"` never matches). Any
//!    other value — another `ETag`, a weak one, a date, the header given
//!    twice — means "my copy is not this one", and the answer is the whole
//!    body (200). A date never matches because a download has no
//!    `Last-Modified`: its bytes are named by the `ETag` alone.
//! 3. **A `Range` that cannot be read is ignored** (§14.2: "MUST ignore"
//!    for an unknown unit, "MAY ignore" for the rest): a syntax error, a
//!    reversed range (`5-3`), the header given twice, more than 100
//!    ranges. The answer is 200 and the whole body, as if there had been
//!    no `Range`, which is always a correct answer.
//! 4. **Several ranges are answered whole** (200). RFC 9110 allows it, and
//!    it keeps the body one stream of the generator instead of a
//!    `multipart/byteranges` document; a resuming client asks for one
//!    range, its missing tail.
//! 5. **One range** is clamped to the body (`0-999999` of a 10-byte body
//!    is `0-9`), and a suffix longer than the body is all of it (§14.1.2).
//!    A range that starts at or past the end, or `-0`, selects nothing:
//!    416 with `Content-Range: bytes */N` (§15.5.17).
//!
//! The parsing itself is the `http-range-header` crate's (the one
//! tower-http's `ServeDir` uses): strict where RFC 9110 is — digits only,
//! no sign, at most 30 digits a number, no whitespace inside a range —
//! and it sorts its errors into "invalid" and "rejected" (both ignored
//! here) apart from "unsatisfiable" (the 416).

use http_range_header::{RangeUnsatisfiableError, parse_range_header};
use hyper::HeaderMap;
use hyper::header::{IF_RANGE, RANGE};

/// What to send of a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    /// All of it: 200.
    Whole,
    /// Bytes `first..=last`: 206 with `Content-Range`.
    Part { first: u64, last: u64 },
    /// Nothing: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// What a request with `headers` gets of a body of `len` bytes (at least
/// one) whose `ETag` is `etag`. `headers` is `None` for a method that has
/// no ranges (anything but `GET`).
pub fn select(headers: Option<&HeaderMap>, len: u64, etag: &str) -> Selected {
    let Some(headers) = headers else {
        return Selected::Whole;
    };
    let Some(range) = only_one(headers, RANGE) else {
        return Selected::Whole;
    };
    if headers.contains_key(IF_RANGE) && !if_range_matches(headers, etag) {
        return Selected::Whole;
    }
    let parsed = match parse_range_header(range) {
        Ok(parsed) if parsed.len() == 1 => parsed,
        // Several ranges (step 4), or a header that cannot be read
        // (step 3): invalid and rejected alike.
        Ok(_) | Err(_) => return Selected::Whole,
    };
    match parsed.validate(len).as_deref() {
        Ok([range]) => Selected::Part {
            first: *range.start(),
            last: *range.end(),
        },
        Err(RangeUnsatisfiableError::Unsatisfiable) => Selected::Unsatisfiable,
        // One range validates to one range; `len` is never 0, so never to
        // none. Anything else is a range this server does not serve.
        Ok(_) | Err(_) => Selected::Whole,
    }
}

/// The value of the header `name`, if it is there exactly once and is
/// text.
fn only_one(headers: &HeaderMap, name: hyper::header::HeaderName) -> Option<&str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok(),
        _ => None,
    }
}

/// Whether `If-Range` is `etag`, strongly: the same opaque tag, byte for
/// byte, not weak. `etag` is strong, so equality says both.
fn if_range_matches(headers: &HeaderMap, etag: &str) -> bool {
    only_one(headers, IF_RANGE).is_some_and(|value| value.trim_matches([' ', '\t']) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    const ETAG: &str = "\"download-v1-100-7\"";

    fn with(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    fn select_100(fields: &[(&'static str, &'static str)]) -> Selected {
        select(Some(&with(fields)), 100, ETAG)
    }

    fn part(first: u64, last: u64) -> Selected {
        Selected::Part { first, last }
    }

    /// The three forms of one range, clamped to the body.
    #[test]
    fn each_form_of_one_range_selects_its_bytes() {
        assert_eq!(select_100(&[("range", "bytes=10-19")]), part(10, 19));
        assert_eq!(select_100(&[("range", "bytes=90-")]), part(90, 99));
        assert_eq!(select_100(&[("range", "bytes=-5")]), part(95, 99));
        assert_eq!(select_100(&[("range", "bytes=0-0")]), part(0, 0));
        assert_eq!(select_100(&[("range", "bytes=50-5000")]), part(50, 99));
        assert_eq!(select_100(&[("range", "bytes=-500")]), part(0, 99));
        assert_eq!(select_100(&[("range", "BYTES=1-2")]), part(1, 2));
    }

    /// A range that selects nothing is unsatisfiable (416).
    #[test]
    fn a_range_past_the_end_is_unsatisfiable() {
        for range in ["bytes=100-", "bytes=100-200", "bytes=-0", "bytes=5000-"] {
            assert_eq!(
                select_100(&[("range", range)]),
                Selected::Unsatisfiable,
                "{range}"
            );
        }
    }

    /// No `Range`, one that cannot be read, or several ranges: the whole
    /// body.
    #[test]
    fn an_unreadable_range_or_several_ranges_get_the_whole_body() {
        assert_eq!(select_100(&[]), Selected::Whole);
        for range in [
            "bytes=5-3",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-2 ",
            "items=1-2",
            "bytes=",
            "bytes=0-1,5-6",
            "bytes=0-1,200-",
        ] {
            assert_eq!(select_100(&[("range", range)]), Selected::Whole, "{range}");
        }
        let twice = [("range", "bytes=1-2"), ("range", "bytes=3-4")];
        assert_eq!(select_100(&twice), Selected::Whole);
    }

    /// `If-Range` honours the `Range` only for the strong `ETag` itself.
    #[test]
    fn if_range_honours_the_range_only_for_the_etag_itself() {
        let range = ("range", "bytes=10-19");
        assert_eq!(
            select_100(&[range, ("if-range", "\"download-v1-100-7\"")]),
            part(10, 19)
        );
        for other in [
            "\"download-v1-100-8\"",
            "W/\"download-v1-100-7\"",
            "Sat, 01 Jan 2000 00:00:00 GMT",
            "download-v1-100-7",
            "",
        ] {
            assert_eq!(
                select_100(&[range, ("if-range", other)]),
                Selected::Whole,
                "{other}"
            );
        }
        let twice = [range, ("if-range", ETAG), ("if-range", ETAG)];
        assert_eq!(select_100(&twice), Selected::Whole);
        // With no `Range`, `If-Range` alone changes nothing.
        assert_eq!(select_100(&[("if-range", "x")]), Selected::Whole);
    }

    /// A method without ranges (`HEAD`) is answered whole.
    #[test]
    fn a_method_without_ranges_is_answered_whole() {
        assert_eq!(select(None, 100, ETAG), Selected::Whole);
    }
}
