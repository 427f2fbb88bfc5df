//! Durations and sizes as people write them, and the bounds each flag puts
//! on them.
//!
//! Reading is left to two small, well-kept crates. `humantime` reads
//! durations: `250ms`, `15s`, `1m30s`, `1.5s`, `2h`, and a bare `0`.
//! `bytesize` reads sizes and knows a kilobyte from a kibibyte: `2MB` is
//! 2,000,000 bytes, `2MiB` is 2,097,152. Hand-written parsers had got both
//! wrong in small ways (`1m30s` refused, `2MB` read as 2 MiB).
//!
//! What is ours is the bounds. A value far past what a flag can mean is a
//! typo or a misunderstanding, and refusing it at start-up, with the bound
//! in the message, is cheaper than finding out in the middle of a
//! shutdown. Each flag's help states its bounds. A bound is where a value
//! stops making sense for that flag, not a typo detector: `15h` for `15s`
//! is refused by `--drain-delay` and `--header-read-timeout` (at most an
//! hour) and by the graces (at most a minute), but `--shutdown-timeout`,
//! `--idle-timeout` and `--request-timeout` take it (at most a day).

use std::time::Duration;

/// How the help and the errors describe the accepted durations.
pub const DURATION_FORMS: &str = "a number and a unit (us, ms, s, m, h or d; \
    long names such as sec, min, hours also work), combined or with a fraction: \
    250ms, 15s, 1m30s, 1.5s; or a bare 0";

/// How the help and the errors describe the accepted sizes.
pub const SIZE_FORMS: &str = "bytes (65536), or a number and a unit: \
    KB, MB, GB (powers of 1000; also K, M, G) or KiB, MiB, GiB (powers of 1024; \
    also Ki, Mi, Gi), in any case, with a fraction if you like (1.5MiB)";

/// One second, minute, hour: for writing the bounds below.
const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// `--drain-delay`: at most an hour, the longest deregistration delay a
/// common load balancer takes (AWS ALB: 3600 s).
pub const MAX_DRAIN_DELAY: Duration = HOUR;
/// `--shutdown-timeout`, `--idle-timeout`, `--request-timeout`,
/// `--cleanup-interval`: at most a day. Past that the value no longer
/// bounds anything a person would wait for.
pub const MAX_LONG_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// `--header-read-timeout`, `--upgrade-timeout`: at most an hour. A request
/// head takes milliseconds, a start-up seconds; an hour is already
/// generous.
pub const MAX_START_TIMEOUT: Duration = HOUR;
/// `--force-grace`, `--keepalive-grace`: at most a minute. Both are short
/// extensions of a shutdown already under way (time to write the 503s,
/// time for a client's next request), not second drains.
pub const MAX_GRACE: Duration = MINUTE;
/// `--idempotency-ttl`: at most 30 days. A retry comes within minutes;
/// past a month the keys table only grows.
pub const MAX_IDEMPOTENCY_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The least value of a duration that must not be zero
/// (`--cleanup-interval`, `--upgrade-timeout`).
pub const MIN_POSITIVE: Duration = Duration::from_millis(1);

/// `--max-body`: at most 1 GiB. A body is held in memory whole before it
/// is handled.
pub const MAX_BODY: u64 = 1 << 30;
/// `--max-header-bytes`: at least 8 KiB, hyper's smallest read buffer.
pub const MIN_HEADER_BYTES: u64 = 8 << 10;
/// `--max-header-bytes`: at most 1 MiB, Go's `DefaultMaxHeaderBytes`. A
/// head larger than that is an attack, not a request.
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Reads a duration with `humantime`, with an error that says what is
/// accepted.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        // humantime's own error lists units up to years, which no flag
        // takes; ours lists what the flags take.
        .map_err(|_| format!("`{s}` is not a duration; write {DURATION_FORMS}"))
}

/// Reads a size in bytes with `bytesize`, with an error that says what is
/// accepted.
pub fn parse_size(s: &str) -> Result<u64, String> {
    // bytesize's own error names only the part it could not read; ours
    // lists every form, so one message is enough to fix the flag.
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| format!("`{s}` is not a size; write {SIZE_FORMS}"))
}

/// A clap value parser for a duration flag: [`parse_duration`], then
/// `min..=max`.
pub fn duration_in(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s| match parse_duration(s)? {
        d if d < min => Err(format!(
            "`{s}` is too short: at least {}",
            show_duration(min)
        )),
        d if d > max => Err(format!("`{s}` is too long: at most {}", show_duration(max))),
        d => Ok(d),
    }
}

/// A clap value parser for a size flag: [`parse_size`], then `min..=max`.
pub fn size_in(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |s| match parse_size(s)? {
        n if n < min => Err(format!("`{s}` is too small: at least {}", show_size(min))),
        // Also keeps the value within `usize` on a 32-bit target, since
        // every bound is below 4 GiB.
        n if n > max => Err(format!("`{s}` is too large: at most {}", show_size(max))),
        n => Ok(n as usize),
    }
}

/// A bound written the way the help writes it: `24h`, `1m`, `1ms`.
fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, name) in [(HOUR, "h"), (MINUTE, "m"), (SECOND, "s")] {
        let per = unit.as_millis();
        if ms >= per && ms.is_multiple_of(per) {
            return format!("{}{name}", ms / per);
        }
    }
    format!("{ms}ms")
}

/// A bound written the way the help writes it: `1GiB`, `8KiB`.
fn show_size(n: u64) -> String {
    for (shift, name) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{}{name}", n >> shift);
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// humantime takes combined units and fractions, which the old
    /// hand-written parser refused, and still takes a bare `0`.
    #[test]
    fn durations_take_combined_units_fractions_and_zero() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    /// A number without a unit, or words, are refused, and the error shows
    /// the forms that are accepted.
    #[test]
    fn a_bad_duration_is_refused_with_the_accepted_forms() {
        for bad in ["15", "soon", "5 parsecs", "-1s", ""] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("250ms, 15s, 1m30s, 1.5s"), "{bad}: {err}");
        }
    }

    /// Each bound is inclusive, and the error names it in the help's form.
    #[test]
    fn a_duration_past_its_bound_is_refused_with_the_bound() {
        let day = duration_in(Duration::ZERO, MAX_LONG_TIMEOUT);
        assert_eq!(day("24h"), Ok(MAX_LONG_TIMEOUT));
        assert_eq!(day("0"), Ok(Duration::ZERO));
        let err = day("24h 1s").unwrap_err();
        assert!(err.ends_with("too long: at most 24h"), "{err}");
        // What the old parser accepted and then overflowed timers with.
        assert!(day("99999999999h").is_err());

        let positive = duration_in(MIN_POSITIVE, MAX_START_TIMEOUT);
        let err = positive("0").unwrap_err();
        assert!(err.ends_with("too short: at least 1ms"), "{err}");
    }

    /// KB is 1000 bytes and KiB 1024: the old parser read both as 1024.
    #[test]
    fn sizes_tell_decimal_units_from_binary_ones() {
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("2MiB"), Ok(2_097_152));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
    }

    /// A size with an unknown unit is refused, and the error lists every
    /// unit the flags take.
    #[test]
    fn a_bad_size_is_refused_with_the_accepted_units() {
        for bad in ["1 parsec", "MiB", "-1", "1XB"] {
            let err = parse_size(bad).unwrap_err();
            for unit in ["KB", "MB", "GB", "KiB", "MiB", "GiB"] {
                assert!(err.contains(unit), "{bad}: {err}");
            }
        }
    }

    /// The header limit keeps its floor (hyper's smallest buffer) and
    /// gains a ceiling; the body limit takes 1GiB and no more.
    #[test]
    fn a_size_outside_its_bounds_is_refused_with_the_bound() {
        let head = size_in(MIN_HEADER_BYTES, MAX_HEADER_BYTES);
        assert!(
            head("1KiB")
                .unwrap_err()
                .ends_with("too small: at least 8KiB")
        );
        assert!(
            head("2MiB")
                .unwrap_err()
                .ends_with("too large: at most 1MiB")
        );
        assert_eq!(head("8KiB"), Ok(8192));

        let body = size_in(0, MAX_BODY);
        assert_eq!(body("1GiB"), Ok(1 << 30));
        assert!(
            body("1.1GB")
                .unwrap_err()
                .ends_with("too large: at most 1GiB")
        );
    }
}
