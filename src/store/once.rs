//! Writes a retry cannot repeat: what the store keeps of an
//! `Idempotency-Key`, and the one rule every store applies to it.
//!
//! A client that sent a write and heard nothing back (its connection broke
//! with the response in flight, the server was restarted, the database
//! connection broke after `COMMIT` was sent) cannot know whether the write
//! happened. Retrying blindly may write twice; not retrying may lose it.
//! With a key, the retry is safe: the store keeps, **in the same
//! transaction as the write**, the key, a fingerprint of the request, and
//! the response the first request got. Either both are stored or neither
//! is, so a later request with the key finds the response exactly when the
//! write happened.
//!
//! What a request with a key gets ([`Once`]):
//!
//! | the key's row | the request | outcome | HTTP |
//! |---|---|---|---|
//! | none, or expired | any | written, and its response stored with it | the write's own (`201`, `204`, `404`) |
//! | live | the same fingerprint | [`Once::Replayed`]: the stored response, nothing written | the stored one, plus `Idempotent-Replayed: true` |
//! | live | another fingerprint | [`Once::Mismatch`]: nothing written | `422` |
//! | being written by another request | any | [`Once::InProgress`]: nothing written | `409` + `Retry-After` |
//!
//! "Being written" has no row: the in-progress marker is something that
//! cannot outlive its owner. In one process it is the service's set of
//! keys in flight (`service::idempotency_key`), released when the write
//! task ends. Across PostgreSQL instances it is a transaction-scoped
//! advisory lock on the key, released by `COMMIT`, `ROLLBACK` or the end
//! of the session, so a process that dies mid-request frees its key at
//! once. SQLite needs none: its one writer at a time (across processes,
//! `BEGIN IMMEDIATE`) means a second request with the key waits for the
//! first to commit and then finds the row.
//!
//! Only a write that commits stores a response. A request refused before
//! the write (`400`, `413`, `422` for a bad name), a forced shutdown's
//! rollback, a busy database: none of them uses the key, and a retry with
//! it is a first request again.
//!
//! Keys expire [`Key::ttl_ms`] after their write (`--idempotency-ttl`,
//! 24 h by default, as Stripe's do); an expired row is ignored and
//! replaced by the next write with the key, and the cleaner removes the
//! rest ([`super::Store::purge_expired_keys`]). Times are in milliseconds,
//! so that a short TTL is not rounded to the second.

use super::{Item, NewItem};

/// Longest key accepted, in characters (all printable ASCII, so also in
/// bytes): Stripe's bound, and more than a UUID or a ULID needs.
pub const MAX_KEY_CHARS: usize = 255;

/// A write a client may send more than once: each write route's.
#[derive(Debug, Clone)]
pub enum Write {
    /// `POST /api/items`.
    Create(NewItem),
    /// `DELETE /api/items/{id}`.
    Delete(u64),
}

/// What a [`Write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The item created.
    Created(Item),
    /// Whether there was an item to delete.
    Deleted(bool),
}

/// The response the first request with a key got, as it is stored and
/// replayed: the status, the `Location` if any, and the body's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The `Location` header, if the response had one.
    pub location: Option<String>,
    /// The body, byte for byte (JSON, or empty).
    pub body: Vec<u8>,
}

/// An `Idempotency-Key`, and what the store needs to judge a request by it.
#[derive(Debug, Clone)]
pub struct Key {
    /// The key as the client sent it, unquoted: 1 to [`MAX_KEY_CHARS`]
    /// printable ASCII characters.
    pub key: String,
    /// SHA-256 of the request's method, path and body: what "the same
    /// request" means.
    pub fingerprint: [u8; 32],
    /// Now, in milliseconds since the Unix epoch: when the key's row, if
    /// written, starts to count.
    pub now_ms: u64,
    /// How long the row lasts, in milliseconds (`--idempotency-ttl`).
    pub ttl_ms: u64,
    /// Makes the response from what the write did, inside the write's
    /// transaction, so that the stored response and the one sent are one.
    pub render: fn(&Written) -> StoredResponse,
}

/// What a write with a key came to. See the module docs for the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once {
    /// The first request with the key (or the first since it expired): the
    /// write was done, and this response was stored with it.
    Done(Written, StoredResponse),
    /// The key was used before for the same request: its stored response.
    Replayed(StoredResponse),
    /// The key was used before for a different request.
    Mismatch,
    /// Another request with the key is being written now.
    InProgress,
}

/// A key's row as a store found it.
#[derive(Debug, Clone)]
pub(crate) struct KeyRow {
    pub fingerprint: Vec<u8>,
    pub response: StoredResponse,
    pub expires_ms: u64,
}

/// The rule every store applies once it holds the key (its lock, its
/// writer, its mutex): `Some(answer)` to give without writing, `None` to
/// write. An expired row counts as no row.
pub(crate) fn judge(key: &Key, found: Option<KeyRow>) -> Option<Once> {
    let row = found.filter(|row| row.expires_ms > key.now_ms)?;
    Some(if row.fingerprint == key.fingerprint {
        Once::Replayed(row.response)
    } else {
        Once::Mismatch
    })
}

impl Key {
    /// When the row written now expires.
    pub(crate) fn expires_ms(&self) -> u64 {
        self.now_ms.saturating_add(self.ttl_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fingerprint: u8, now_ms: u64) -> Key {
        Key {
            key: "k".into(),
            fingerprint: [fingerprint; 32],
            now_ms,
            ttl_ms: 1000,
            render: |_| StoredResponse {
                status: 204,
                location: None,
                body: Vec::new(),
            },
        }
    }

    fn row(fingerprint: u8, expires_ms: u64) -> KeyRow {
        KeyRow {
            fingerprint: vec![fingerprint; 32],
            response: StoredResponse {
                status: 201,
                location: Some("/api/items/1".into()),
                body: b"{}".to_vec(),
            },
            expires_ms,
        }
    }

    /// No row or an expired one: write. A live row: the replay for the
    /// same fingerprint, a mismatch for another. A row expires at its
    /// instant, not after it.
    #[test]
    fn a_live_row_replays_or_mismatches_and_an_expired_one_is_written_over() {
        assert_eq!(judge(&key(1, 10), None), None);
        assert_eq!(judge(&key(1, 10), Some(row(1, 10))), None);
        assert_eq!(
            judge(&key(1, 10), Some(row(1, 11))),
            Some(Once::Replayed(row(1, 11).response))
        );
        assert_eq!(judge(&key(2, 10), Some(row(1, 11))), Some(Once::Mismatch));
        assert_eq!(key(1, 10).expires_ms(), 1010);
    }
}
