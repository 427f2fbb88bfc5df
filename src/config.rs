//! Every knob of the server in one plain struct.
//!
//! The library never reads flags or the environment: the binary builds a
//! [`Config`] from the command line (see [`crate::cli`]) and tests build one
//! by hand. Each field names the Go `http.Server` setting it stands in for,
//! so the mapping in the crate's "From Go to Rust" table can be checked
//! against the code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The default `drain_checks`: 3, the largest of the common defaults, so
/// that it covers them all. HAProxy's `fall` is 3 by default, Kubernetes'
/// readiness `failureThreshold` is 3, and cloud balancers commonly use 2
/// (for those it costs one check interval more). Set it to your
/// balancer's own number to leave the phase as soon as it has decided.
pub const DEFAULT_DRAIN_CHECKS: u32 = 3;

/// The default `drain_spread`, the longest the goodbyes may be spread
/// over: ten thousand connections at the default pace, with the default
/// deadline's last third left for what comes after.
pub const DEFAULT_DRAIN_SPREAD: Duration = Duration::from_secs(10);

/// The default `drain_spread_rate`: goodbyes per second after the burst.
/// Measured with the storm bench (`benches/README.md`): on two cores
/// shared with ten thousand reconnecting clients, 1000 a second kept the
/// reconnects' p99 near 100 ms with no SYN dropped, where 3300 a second
/// (a 3 s window) made it 200–340 ms and all at once 1–2 s.
pub const DEFAULT_DRAIN_SPREAD_RATE: u32 = 1000;

/// The default `drain_spread_burst`: goodbyes at once. Measured the same
/// way: 500 clients told to go at once reconnected with a p99 of 48–75
/// ms, 1000 with 95–147 ms, 2000 with 110–270 ms.
pub const DEFAULT_DRAIN_SPREAD_BURST: u64 = 500;

/// The default `keepalive_grace`. A client that reuses a keep-alive
/// connection does so within a round trip plus its own think time; two
/// seconds cover clients that send once a second, through a balancer too,
/// and they are the most the drain waits for connections that are merely
/// pooled. The measurement is in `conn::keepalive_grace`.
pub const DEFAULT_KEEPALIVE_GRACE: Duration = Duration::from_secs(2);

/// The default `idempotency_ttl`: a day, as Stripe's keys last. A client
/// retrying a lost answer does so within seconds or minutes; a day also
/// covers a client that was down for the night, and the keys of a day's
/// writes are small (a key, a hash and a response of a few hundred bytes).
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Server settings. `Config::default()` is what `lameduck` runs with when no
/// flag is given.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen. Port 0 picks a free port (tests use that).
    pub addr: SocketAddr,
    /// The `listen(2)` backlog: how many finished handshakes the kernel
    /// queues before we accept them. Closing the listener resets them all.
    pub backlog: u32,

    /// Lame-duck time: how long `/healthz` fails while we keep serving, so a
    /// load balancer can take us out of rotation. The article sleeps 3 s here.
    pub drain_delay: Duration,
    /// End the lame-duck phase once every health checker has been answered
    /// `503` this many times (plus a short margin); `drain_delay` stays the
    /// cap. 0: always wait the whole `drain_delay`. See
    /// [`crate::shutdown::health_checkers`].
    pub drain_checks: u32,
    /// How long the drain may take once the listener is closed. Go: the
    /// `context.WithTimeout(.., 15*time.Second)` passed to `Shutdown`.
    pub shutdown_timeout: Duration,
    /// When the drain begins, each connection is told to go at its own
    /// instant within a window instead of all at once, so that their
    /// clients do not all reconnect in the same millisecond (see
    /// [`crate::shutdown::spread`]): `drain_spread_burst` of them at once,
    /// the rest at `drain_spread_rate` a second, in at most this. Zero:
    /// all at once.
    /// Shorter than `shutdown_timeout`. Go: none (Envoy's
    /// `--drain-strategy gradual`, HAProxy's `close-spread-time`).
    pub drain_spread: Duration,
    /// Goodbyes per second in the spread window, after the burst.
    pub drain_spread_rate: u32,
    /// How many goodbyes go at once when the drain begins.
    pub drain_spread_burst: u64,
    /// A connection older than this (±10 %, per connection) is asked to go:
    /// HTTP/1 `Connection: close` on its next response, HTTP/2 GOAWAY, an
    /// event stream's last event, a WebSocket's Close. `None`: never. Go:
    /// none (gRPC's `MaxConnectionAge`). See [`crate::conn::max_age`].
    pub max_connection_age: Option<Duration>,
    /// How long an aged-out connection may then take before it is closed.
    /// gRPC: `MaxConnectionAgeGrace`.
    pub max_connection_age_grace: Duration,
    /// At the deadline, requests whose response has not started are answered
    /// `503` + `Retry-After`; this bounds how long we wait for those answers
    /// to be written before every connection is aborted. A second signal
    /// skips it.
    pub force_grace: Duration,

    /// A client must finish a request head within this time of starting it
    /// (of connecting, for the first request). Go: `ReadHeaderTimeout`, and
    /// the header half of `ReadTimeout`.
    pub header_read_timeout: Duration,
    /// An idle keep-alive connection is closed after this long without a new
    /// request (HTTP/2: without an open stream). Go: `IdleTimeout`.
    pub idle_timeout: Duration,
    /// When the drain begins, an HTTP/1 keep-alive connection used within
    /// this long stays open: its next response carries `Connection: close`,
    /// and it is closed when it has been idle this long. Older idle
    /// connections close at once. Go has none; nginx's
    /// `keepalive_min_timeout` is the precedent.
    pub keepalive_grace: Duration,
    /// A handler (body read included) that runs longer is answered `503`
    /// (`408` if it was still reading the body) and dropped. Streams are
    /// exempt. Go: `WriteTimeout`, plus the body half of `ReadTimeout`.
    pub request_timeout: Duration,

    /// Largest request body accepted; larger ones get `413` unread.
    pub max_body: usize,
    /// Largest request head (request line and all header fields) in bytes;
    /// larger ones get `431`. hyper's minimum is 8 KiB.
    pub max_header_bytes: usize,
    /// At most this many connections are open at once. Beyond it the accept
    /// loop stops accepting (the kernel backlog absorbs the rest) instead of
    /// accepting and dropping.
    pub max_connections: usize,

    /// How often the background cleaner runs. Go: the article's
    /// `runCleaner` ticker.
    pub cleanup_interval: Duration,
    /// Serve `/debug/*` routes that exist only to prove behaviours in tests
    /// (a handler that panics). Off by default.
    pub debug_routes: bool,
    /// Log one line per request, written when the request ends: method,
    /// path, status, duration, response bytes, peer and protocol. Off by
    /// default: at a high request rate it is the costliest log there is,
    /// and a proxy in front often keeps one already. Go: none built in
    /// (a handler wrapper).
    pub access_log: bool,

    /// Where items live, read by the binary to open its store (see
    /// [`crate::store::open`]): a SQLite file, a `postgres://` URL, or
    /// `:memory:`, an in-memory store lost at exit. [`crate::Server::new`] ignores it and always uses
    /// memory; [`crate::Server::with_store`] takes the store it is given.
    pub db: PathBuf,
    /// How long the new process of an upgrade (SIGHUP) has to say it is
    /// ready before the old one gives up on it, stops it and goes on
    /// serving. Go: none built in; tableflip leaves it to the caller's
    /// context. See [`crate::upgrade`].
    pub upgrade_timeout: Duration,

    /// A WebSocket that has sent nothing for this long is pinged. Go: none
    /// built in (gorilla/websocket's examples ping every 54 s). See
    /// [`crate::long_lived::websocket`].
    pub ws_ping_interval: Duration,
    /// A pinged WebSocket that sends nothing back (no pong, no message)
    /// within this long is closed (1001, "ping timeout") and dropped: its
    /// peer is gone, or too slow to be worth a socket.
    pub ws_ping_timeout: Duration,
    /// The longest a long poll (`/api/items/poll?wait=`) may wait before
    /// it answers 204; a longer `wait` is cut to it.
    pub poll_max_wait: Duration,

    /// At most this many expired items per cleaner transaction. The cleaner
    /// checks for cancellation between batches, so this bounds how long
    /// shutdown can wait on a purge.
    pub cleanup_batch: usize,
    /// How long an `Idempotency-Key` is remembered after its write: a
    /// retry within it gets the stored response, a request after it is
    /// a new write. The cleaner removes expired keys. Go: none built in
    /// (Stripe keeps keys for 24 hours).
    pub idempotency_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            backlog: 1024,
            drain_delay: Duration::ZERO,
            drain_checks: DEFAULT_DRAIN_CHECKS,
            shutdown_timeout: Duration::from_secs(15),
            drain_spread: DEFAULT_DRAIN_SPREAD,
            drain_spread_rate: DEFAULT_DRAIN_SPREAD_RATE,
            drain_spread_burst: DEFAULT_DRAIN_SPREAD_BURST,
            max_connection_age: None,
            max_connection_age_grace: Duration::from_secs(10),
            force_grace: Duration::from_secs(1),
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            keepalive_grace: DEFAULT_KEEPALIVE_GRACE,
            request_timeout: Duration::from_secs(10),
            max_body: 1024 * 1024,
            max_header_bytes: 64 * 1024,
            max_connections: 10_000,
            cleanup_interval: Duration::from_secs(60),
            debug_routes: false,
            access_log: false,
            db: PathBuf::from("lameduck.db"),
            cleanup_batch: 500,
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
            upgrade_timeout: Duration::from_secs(10),
            ws_ping_interval: Duration::from_secs(30),
            ws_ping_timeout: Duration::from_secs(10),
            poll_max_wait: Duration::from_secs(30),
        }
    }
}
