//! What a Postgres failure means to a client: the kinds of [`StoreError`].
//!
//! The question a handler asks of an error is not "what went wrong" but
//! "whose fault is it, and will it pass?". Postgres answers in its
//! SQLSTATE, a five-character code whose first two characters are a class:
//!
//! | SQLSTATE | meaning | kind | HTTP |
//! |---|---|---|---|
//! | no code, the socket failed or closed | the server is down, restarting, or the network is | [`StoreError::Unreachable`] | 503 + `Retry-After` |
//! | `08…` connection exception | the same, reported by the server | `Unreachable` | 503 + `Retry-After` |
//! | `57P01`–`57P03` admin/crash shutdown, cannot connect now | a restart in progress (a fast shutdown ends every session with `57P01`) | `Unreachable` | 503 + `Retry-After` |
//! | `53…` insufficient resources | too many connections, disk full | [`StoreError::Busy`] | 503 + `Retry-After` |
//! | `40001`, `40P01`, `55P03` | serialization failure, deadlock, lock not available | `Busy` | 503 + `Retry-After` |
//! | `57014` query canceled | our own cancel request (see the module docs) | [`StoreError::Cancelled`] | 503 |
//! | `23…` integrity constraint, `22…` data exception | the values broke a rule of the schema | [`StoreError::Rejected`] | 422 |
//! | anything else | a bug, a schema that is not ours, a wrong password | [`StoreError::Unavailable`] | 500 |
//!
//! A database that is down is never a `500`: no request caused it, and the
//! same request will succeed once the pool has reconnected. The
//! `Retry-After` tells a client (or the balancer in front) to come back.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::store::StoreError;

/// What a driver error is made of, as far as the mapping cares. Kept apart
/// from `tokio_postgres::Error` (which has no public constructor) so that
/// the mapping is a pure function the unit tests can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure<'a> {
    /// The server answered with an error: its SQLSTATE.
    Db(&'a str),
    /// No answer: the socket could not be opened, failed, or was closed.
    Connection,
    /// Anything else the driver reports (a type it cannot convert, a
    /// message it did not expect): a bug on this side.
    Driver,
}

impl Failure<'_> {
    /// The kind of [`StoreError`] this failure is; `detail` is the text for
    /// the kinds that carry one.
    pub(super) fn kind(self, detail: String) -> StoreError {
        match self {
            Failure::Connection => StoreError::Unreachable(detail),
            Failure::Driver => StoreError::Unavailable(detail),
            Failure::Db(code) => match code {
                "57014" => StoreError::Cancelled,
                "57P01" | "57P02" | "57P03" => StoreError::Unreachable(detail),
                "40001" | "40P01" | "55P03" => StoreError::Busy,
                _ if code.starts_with("08") => StoreError::Unreachable(detail),
                _ if code.starts_with("53") => StoreError::Busy,
                _ if code.starts_with("23") || code.starts_with("22") => {
                    StoreError::Rejected(detail)
                }
                _ => StoreError::Unavailable(detail),
            },
        }
    }
}

/// Classifies a driver error (see [`Failure`]).
pub(super) fn failure(e: &tokio_postgres::Error) -> Failure<'_> {
    if let Some(db) = e.as_db_error() {
        return Failure::Db(db.code().code());
    }
    // `is_closed`: the session ended under a query. An `io::Error` source:
    // connecting failed (refused, no route, name not found) or the socket
    // broke mid-query.
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        Failure::Connection
    } else {
        Failure::Driver
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's own message ("duplicate key…", "the database system
        // is shutting down") says more than the driver's wrapper.
        let detail = match e.as_db_error() {
            Some(db) => db.message().to_owned(),
            None => e.to_string(),
        };
        failure(&e).kind(detail)
    }
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            // Opening a new connection failed: the database's error.
            PoolError::Backend(e) => e.into(),
            // Waiting for a free connection (every one busy), or for a new
            // one to open (a server that does not answer), took longer than
            // the pool allows: both pass.
            PoolError::Timeout(_) => {
                StoreError::Unreachable("no database connection in time".into())
            }
            // The store is closing: the drain is over. Nothing should ask
            // now; whoever does may try another instance.
            PoolError::Closed => StoreError::Unreachable("the store is closed".into()),
            e => StoreError::Unavailable(e.to_string()),
        }
    }
}

/// True if `e` is the answer to our own cancel request (`57014`).
pub(super) fn is_query_canceled(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::QUERY_CANCELED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(f: Failure<'_>) -> StoreError {
        f.kind("why".into())
    }

    /// A server that is down, restarting or unreachable is `Unreachable`
    /// (a 503), never `Unavailable` (a 500).
    #[test]
    fn a_database_that_is_down_or_restarting_is_unreachable_not_a_failure() {
        let down = StoreError::Unreachable("why".into());
        assert_eq!(kind(Failure::Connection), down);
        for code in ["57P01", "57P02", "57P03", "08006", "08001"] {
            assert_eq!(kind(Failure::Db(code)), down, "{code}");
        }
    }

    /// Contention and exhaustion pass: `Busy`. Constraint and data
    /// violations are the input's fault: `Rejected`. Our own cancel is
    /// `Cancelled`; everything else is the store's failure.
    #[test]
    fn each_sqlstate_class_maps_to_the_kind_a_client_can_act_on() {
        for code in ["53300", "53100", "40001", "40P01", "55P03"] {
            assert_eq!(kind(Failure::Db(code)), StoreError::Busy, "{code}");
        }
        for code in ["23514", "23505", "22001", "22021"] {
            assert_eq!(kind(Failure::Db(code)), StoreError::Rejected("why".into()));
        }
        assert_eq!(kind(Failure::Db("57014")), StoreError::Cancelled);
        for other in [Failure::Db("42P01"), Failure::Db("28P01"), Failure::Driver] {
            assert_eq!(kind(other), StoreError::Unavailable("why".into()));
        }
    }
}
