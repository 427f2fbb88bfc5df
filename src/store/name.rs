//! What an item name may be: the one rule the handler checks and both
//! stores enforce.
//!
//! The rule is written down here, next to the stores, because it is the
//! store that has to hold the name. SQLite's `CHECK (length(name) BETWEEN 1
//! AND 200)` counts characters only up to the first NUL: a name starting
//! with `"\u{0}"` has length 0 there and is refused by the database, after
//! the handler had accepted it. The handler checks the same rule first,
//! so a client gets a 422 that names the problem rather than a failed
//! query; the stores check it again ([`StoreError::Rejected`]), so no
//! other caller can get past it.
//!
//! Control characters are refused as a class, not only NUL: the C0 range
//! (`U+0000`–`U+001F`, tab and newline included), `DEL` (`U+007F`) and the
//! C1 range (`U+0080`–`U+009F`) — Unicode's `Cc` category, Rust's
//! [`char::is_control`]. None of them belongs in a one-line name, and each
//! is a way for one client to garble another's log line or terminal.
//!
//! [`StoreError::Rejected`]: super::StoreError::Rejected

/// Longest accepted item name, in characters (Unicode scalar values, which
/// is also what SQLite's `length()` counts for UTF-8 text).
pub(crate) const MAX_NAME_CHARS: usize = 200;

/// `Ok` if `name` is one the stores can hold; otherwise the reason, as a
/// client should read it.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.chars().any(char::is_control) {
        return Err(
            "`name` must not contain control characters (U+0000-U+001F, U+007F-U+009F)".into(),
        );
    }
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "`name` must be 1 to {MAX_NAME_CHARS} characters, not blank"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NUL, the rest of C0, DEL and C1 are refused; blank and overlong
    /// names are refused; any other Unicode, up to 200 characters, is a
    /// name.
    #[test]
    fn control_characters_blank_and_overlong_names_are_refused() {
        for bad in [
            "\u{0}nul",
            "a\u{1}",
            "tab\there",
            "line\n",
            "del\u{7f}",
            "nel\u{85}x",
            "\u{9f}",
            "",
            "   ",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"é".repeat(201)).is_err());
        for good in ["first", "é".repeat(200).as_str(), "日本語 🦀", "a\u{a0}b"] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
    }
}
