//! Event ids for `/api/stream`: numbers a client can resume from, on this
//! process or the next.
//!
//! # What an id is
//!
//! An event's id is its sequence number in the stream the client follows.
//! A stream that is resumed (the request carries `Last-Event-ID: N`)
//! continues at `N + 1`, whichever process serves it. A fresh stream (no
//! `Last-Event-ID`) starts at a number no other fresh stream has started
//! near: the start of its own **block** of 2^23 (8,388,608) ids.
//!
//! # How a block is chosen
//!
//! Block numbers come from the wall clock: the milliseconds since
//! 2025-01-01, and within one process never the same twice — a stream
//! that starts in the same millisecond as the one before takes the next
//! free number (a small "hybrid" clock: `max(last + 1, now)`). So:
//!
//! * two fresh streams of one process never share a block;
//! * a process started later (an upgrade after SIGHUP, a restart) takes
//!   blocks from a later clock, past those its predecessor used — unless
//!   its predecessor ran ahead of the clock by starting more than one
//!   stream per millisecond for a while, or both start a stream in the
//!   same millisecond of an upgrade's overlap. Those are the only ways two
//!   fresh streams can share a block.
//!
//! A block lasts 2^23 events: 97 days at the default one event a second,
//! 23 hours at the fastest (`interval_ms=10`). A stream that outlives its
//! block runs on into the next number, which a stream started that
//! millisecond later may have begun at.
//!
//! Ids stay below 2^63, so they fit a signed 64-bit integer anywhere
//! (an SQL `INTEGER`, a Java `long`); the 40 bits of milliseconds wrap
//! after 34 years, in 2059. They do not fit a JavaScript number exactly
//! (2^53), which is why the event's `data` carries its id as a string. An
//! `EventSource` treats the `id:` field as a string anyway.
//!
//! # Why the `shutdown` event has no id
//!
//! An event without an `id:` line leaves the client's last event id as it
//! was (the SSE rules), so after `event: shutdown` a reconnecting
//! `EventSource` sends the id of the last *data* event, `N`, and the next
//! process continues at `N + 1`: nothing missed, nothing repeated.
//!
//! # A `Last-Event-ID` that is not one of ours
//!
//! It is refused with 400 ([`resume_after`]): anything but a decimal
//! number below 2^63 - 1 (so that `N + 1` is still an id), or the header
//! given twice. Guessing would hand the client a stream it did not ask
//! for; an `EventSource` only ever sends back an id it was sent, so it can
//! meet this answer only if something else rewrote the header. An empty
//! `Last-Event-ID` means none: it is what an event with an empty `id:`
//! line asks a client to send.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::HeaderMap;

use crate::service::query::digits;

/// Ids in one block: a fresh stream's room before it reaches the start of
/// the next millisecond's.
pub const BLOCK_BITS: u32 = 23;

/// The largest id ever sent: ids fit an `i64`.
pub const MAX_ID: u64 = i64::MAX as u64;

/// 2025-01-01T00:00:00Z in Unix milliseconds: the block clock's zero,
/// later than 1970 so that 40 bits of milliseconds last until 2059.
const CLOCK_ZERO_MS: u64 = 1_735_689_600_000;

/// Block numbers wrap at 2^40, so that `block << BLOCK_BITS` < 2^63.
const BLOCK_MASK: u64 = (1 << 40) - 1;

/// The last block handed out by this process. A static, not a field of
/// the `App`: the promise is about the process (and the next one on the
/// same clock), however many servers a test runs in it.
static LAST_BLOCK: AtomicU64 = AtomicU64::new(0);

/// The first id of a fresh stream: the start of a block of its own.
pub fn fresh_start() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        .saturating_sub(CLOCK_ZERO_MS);
    let prev = LAST_BLOCK
        .fetch_update(Relaxed, Relaxed, |last| Some(now.max(last + 1)))
        .unwrap_or_else(|last| last);
    let block = now.max(prev + 1) & BLOCK_MASK;
    block << BLOCK_BITS
}

/// The first id of the stream `headers` ask for: `Ok(None)` for a fresh
/// stream (no `Last-Event-ID`, or an empty one), `Ok(Some(N + 1))` to
/// resume after `N`. The error is the message a 400 carries.
pub fn resume_after(headers: &HeaderMap) -> Result<Option<u64>, String> {
    let mut values = headers.get_all("last-event-id").iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return if headers.contains_key("last-event-id") {
            Err("`Last-Event-ID` given more than once".into())
        } else {
            Ok(None)
        };
    };
    if value.is_empty() {
        return Ok(None);
    }
    match value.to_str().ok().and_then(digits) {
        Some(last) if last < MAX_ID => Ok(Some(last + 1)),
        _ => Err(format!(
            "`Last-Event-ID` must be an event id this server sent: a decimal integer below {MAX_ID}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn with(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("last-event-id", HeaderValue::from_static(v));
        }
        headers
    }

    /// Fresh streams start in blocks of their own, in increasing order,
    /// below 2^63.
    #[test]
    fn fresh_streams_start_in_distinct_increasing_blocks() {
        let starts: Vec<u64> = (0..1000).map(|_| fresh_start()).collect();
        for pair in starts.windows(2) {
            assert!(pair[1] >= pair[0] + (1 << BLOCK_BITS), "{pair:?}");
        }
        assert!(starts.iter().all(|&s| s <= MAX_ID));
    }

    /// `Last-Event-ID: N` resumes at `N + 1`; absent or empty is a fresh
    /// stream; anything else is refused.
    #[test]
    fn last_event_id_resumes_after_it_or_is_refused() {
        assert_eq!(resume_after(&with(&[])), Ok(None));
        assert_eq!(resume_after(&with(&[""])), Ok(None));
        assert_eq!(resume_after(&with(&["41"])), Ok(Some(42)));
        assert_eq!(resume_after(&with(&["0"])), Ok(Some(1)));
        let below_max = "9223372036854775806";
        assert_eq!(resume_after(&with(&[below_max])), Ok(Some(MAX_ID)));
        for bad in [
            "9223372036854775807",
            "99999999999999999999",
            "-1",
            "+1",
            "4a",
            "1 2",
        ] {
            assert!(resume_after(&with(&[bad])).is_err(), "{bad}");
        }
        assert!(resume_after(&with(&["1", "2"])).is_err());
    }
}
