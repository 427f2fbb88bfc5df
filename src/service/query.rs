//! Reading numbers out of a query string, with a clear error for the client.

/// The raw value of `key` in `query` (`a=1&b=2`), if present.
pub fn param<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// `key` parsed as an integer in `min..=max`, `default` if absent. The
/// error is the message a 400 carries.
pub fn number(
    query: Option<&str>,
    key: &str,
    min: u64,
    max: u64,
    default: Option<u64>,
) -> Result<Option<u64>, String> {
    match param(query, key) {
        None => Ok(default),
        Some(raw) => match raw.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "query parameter `{key}` must be an integer from {min} to {max}"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_bounded_and_garbage_is_an_error() {
        assert_eq!(number(Some("ms=25"), "ms", 0, 100, None), Ok(Some(25)));
        assert_eq!(number(Some("x=1"), "ms", 0, 100, Some(7)), Ok(Some(7)));
        assert!(number(Some("ms=abc"), "ms", 0, 100, None).is_err());
        assert!(number(Some("ms=101"), "ms", 0, 100, None).is_err());
        assert!(number(Some("ms"), "ms", 0, 100, None).is_err());
        assert!(number(Some("ms=-1"), "ms", 0, 100, None).is_err());
    }
}
