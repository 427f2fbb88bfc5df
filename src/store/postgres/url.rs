//! Reading `--db postgres://…`: which values choose Postgres, what the URL
//! may ask for, and how it is shown in logs.
//!
//! This build has no TLS: the store is meant for a database on loopback
//! or on a private network, and it connects with `NoTls`. The default
//! `sslmode` (`prefer`) then quietly means "without TLS", as it does for
//! libpq. A URL that *requires* TLS (`sslmode=require`, `verify-ca`,
//! `verify-full`) is refused at start-up rather than downgraded: whoever
//! wrote it asked for encryption, and silently not encrypting would be
//! worse than not starting.

use tokio_postgres::config::SslMode;

/// True if `db` names a Postgres database rather than a SQLite file. The
/// two URL schemes libpq accepts; anything else is a path.
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// Parses `url` into the driver's configuration, refusing what this build
/// cannot do. Each error is one line, for the start-up error.
pub fn parse(url: &str) -> Result<tokio_postgres::Config, String> {
    // Checked before the driver parses the URL: it does not know the
    // `verify-*` modes at all, and would only say "invalid value".
    if let Some(mode) = query_value(url, "sslmode")
        && mode.starts_with("verify-")
    {
        return Err(tls_refused(mode));
    }
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("cannot read the database URL {}: {e}", redacted(url)))?;
    if config.get_ssl_mode() == SslMode::Require {
        return Err(tls_refused("require"));
    }
    Ok(config)
}

fn tls_refused(mode: &str) -> String {
    format!(
        "the database URL asks for TLS (sslmode={mode}), which this build does not have; \
         use a database on loopback or a private network with sslmode=disable or prefer"
    )
}

/// The value of `key` in the URL's query string, if present (the last
/// one wins, as in the driver).
fn query_value<'a>(url: &'a str, key: &str) -> Option<&'a str> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .next_back()
}

/// `url` with its password, if any, replaced by `***`: what the logs and
/// the errors show. The password sits between the first `:` after the
/// scheme and the last `@` of the authority.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both schemes libpq accepts choose Postgres; a path, `:memory:` or a
    /// relative file name that happens to contain "postgres" does not.
    #[test]
    fn only_postgres_url_schemes_choose_postgres() {
        assert!(is_postgres_url("postgres://u@127.0.0.1/db"));
        assert!(is_postgres_url("postgresql://u@localhost:5433/db"));
        for path in [":memory:", "lameduck.db", "postgres.db", "./postgres://x"] {
            assert!(!is_postgres_url(path), "{path}");
        }
    }

    /// A URL that requires TLS is refused with a line that names the
    /// setting; `disable` and `prefer` (the default) connect without.
    #[test]
    fn a_url_that_requires_tls_is_refused_and_one_that_prefers_it_is_not() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let url = format!("postgres://u@127.0.0.1/db?sslmode={mode}");
            let err = parse(&url).unwrap_err();
            assert!(err.contains(&format!("sslmode={mode}")), "{err}");
            assert!(!err.contains('\n'));
        }
        for url in [
            "postgres://u@127.0.0.1/db",
            "postgres://u@127.0.0.1/db?sslmode=disable",
            "postgresql://u@127.0.0.1:5432/db?application_name=x&sslmode=prefer",
        ] {
            assert!(parse(url).is_ok(), "{url}");
        }
    }

    /// A URL the driver cannot read is an error that does not show the
    /// password.
    #[test]
    fn a_bad_url_is_an_error_without_the_password() {
        let err = parse("postgres://u:hunter2@127.0.0.1:notaport/db").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    /// The password, and only the password, is hidden.
    #[test]
    fn redaction_hides_the_password_and_nothing_else() {
        assert_eq!(
            redacted("postgres://app:s3cr:et@db.local:5432/items?sslmode=disable"),
            "postgres://app:***@db.local:5432/items?sslmode=disable"
        );
        assert_eq!(
            redacted("postgres://app@127.0.0.1/items"),
            "postgres://app@127.0.0.1/items"
        );
        assert_eq!(redacted("postgres://127.0.0.1/x"), "postgres://127.0.0.1/x");
    }
}
