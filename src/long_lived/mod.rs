//! Long-lived connections: the four kinds the article names, and how each
//! ends at a shutdown and picks up again after a restart.
//!
//! A request ends by itself; the drain only has to wait for it. A
//! long-lived connection does not: an event stream, a long poll, a
//! download or a WebSocket may be open for longer than any deadline, so
//! waiting for it would hold every release up, and killing it looks like
//! a crash to its client. The article's advice is the same for all four:
//! when the signal comes, *tell* them to end, so that the release is not
//! held up and the client sees a natural end it knows how to resume from.
//!
//! | kind | route | how the drain tells it | what the client does | what a restart costs it |
//! |---|---|---|---|---|
//! | event stream | `/api/stream` (`service/stream.rs`) | a last `event: shutdown` with `retry:`, then the body ends | reconnects after `retry`, sending `Last-Event-ID` | nothing: the ids continue |
//! | long poll | `/api/items/poll` ([`poll`]) | answers at once, its items or `204`, with `Connection: close` | polls again, on a new connection, with the last id it got | one round trip |
//! | download | `/api/download` (`service/download.rs`) | not told: it streams on until the deadline, then is cut with the rest of the forced work | resumes with `Range` + `If-Range` from the successor | the bytes in flight, sent again |
//! | WebSocket | `/api/ws` ([`websocket::hub`]), `/api/ws/echo` | a Close frame, 1012 (restart) or 1001 (shutdown), after what was queued; the server waits for the client's Close | reconnects (at once after 1012) with `?after=` the last id it saw | one handshake |
//!
//! The hub and the long poll read the same [`feed`] of new items, which
//! reads the store, so a client that moves to the next process (or
//! another instance on the same database) continues exactly where it
//! was: "after the last id I saw" is the whole of its state.
//!
//! # Why an upgraded connection needs tracking of its own
//!
//! The first three are responses, inside their connection task: the drain
//! that waits for connections waits for them. A WebSocket is not. hyper
//! answers the handshake `101`, hands the socket over, and the connection
//! future is done; its task ends, and from then on nothing in the server
//! knows the socket exists. Go's `Shutdown` "does not attempt to close nor
//! wait for hijacked connections such as WebSockets"; axum's graceful
//! shutdown resolves while WebSocket tasks still run; hyper-util's
//! graceful watcher never sees them. Each leaves the tracking to you.
//!
//! Here the sessions are tasks of a registry ([`sockets`]), and the
//! shutdown treats it like the writes: the on-shutdown hook tells it to
//! refuse new upgrades (`503` + `Retry-After`), the drain waits for it
//! while every session runs its closing handshake, the forced close
//! aborts the rest, and the report and `/metrics` count them
//! (`websockets_at_drain`, `websockets_closed`, `websockets_aborted`,
//! `lameduck_websockets_open`).

pub mod feed;
pub(crate) mod poll;
pub mod sockets;
pub(crate) mod websocket;
