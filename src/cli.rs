//! The command line: flags and their `LAMEDUCK_*` environment variables.
//!
//! Each flag's help names the Go `http.Server` setting it corresponds to,
//! and, for durations and sizes, the bounds it takes. How durations
//! (`1m30s`) and sizes (`2MiB`) are read, and why there are bounds at all,
//! is in [`units`].

pub mod units;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser, ValueEnum};

use crate::config::{Config, DEFAULT_DRAIN_SPREAD};
use units::{
    DURATION_FORMS, MAX_BODY, MAX_DRAIN_DELAY, MAX_GRACE, MAX_HEADER_BYTES, MAX_IDEMPOTENCY_TTL,
    MAX_LONG_TIMEOUT, MAX_START_TIMEOUT, MIN_HEADER_BYTES, MIN_POSITIVE, SIZE_FORMS, duration_in,
    size_in,
};

/// A graceful-shutdown HTTP server. On SIGTERM or SIGINT it fails its health
/// check, stops accepting, drains in-flight requests, and exits 0; a second
/// signal or the deadline forces the close and exits 1. On SIGHUP it
/// upgrades in place: the binary on disk now is started on the same
/// listening socket, and once it is ready the old process drains and exits
/// 0. Started with LISTEN_FDS (systemd socket activation), it serves the
/// inherited socket instead of binding --addr.
#[derive(Debug, Parser)]
#[command(name = "lameduck", version, after_help = forms_help())]
pub struct Cli {
    /// Address to listen on: an IP address and a port (a host name is
    /// refused, not looked up); port 0 picks a free port. Ignored when a
    /// socket is inherited (LISTEN_FDS). Go: `Server.Addr`.
    #[arg(long, env = "LAMEDUCK_ADDR", default_value = "127.0.0.1:8080", value_parser = socket_addr)]
    pub addr: SocketAddr,

    /// listen(2) backlog of the listening socket: how many finished
    /// handshakes wait for the accept loop before the kernel drops SYNs
    /// (each a 1 s retransmission for its client). The kernel caps it at
    /// net.core.somaxconn, silently (4096 by default since Linux 5.4).
    /// 1024: 10,000 clients connecting at once queued with no drop on two
    /// shared cores, where 256 dropped 1998 of them (benches/README.md).
    /// Ignored for an inherited socket, whose owner chose it.
    #[arg(long, env = "LAMEDUCK_BACKLOG", default_value_t = 1024)]
    pub backlog: u32,

    /// After the first signal, keep serving this long while /healthz answers
    /// 503, so load balancers stop sending traffic. Go: the article's
    /// `time.Sleep(3 * time.Second)` before `Shutdown`. At most 1h.
    #[arg(long, env = "LAMEDUCK_DRAIN_DELAY", default_value = "0s", value_parser = duration_in(Duration::ZERO, MAX_DRAIN_DELAY))]
    pub drain_delay: Duration,

    /// End the lame-duck phase early, once every health checker (a peer
    /// address that probed /healthz in the 30s before the signal) has been
    /// answered 503 this many times, plus 200ms for the balancer to act;
    /// --drain-delay stays the cap. 0: always wait the whole --drain-delay.
    /// Set it to your balancer's `fall` (HAProxy) or unhealthy threshold.
    /// At most 100.
    #[arg(long, env = "LAMEDUCK_DRAIN_CHECKS", default_value_t = crate::config::DEFAULT_DRAIN_CHECKS, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub drain_checks: u32,

    /// How long in-flight requests may take to finish once the listener is
    /// closed; then the rest is forced (exit 1). Go: the context passed to
    /// `Server.Shutdown(ctx)`. At most 24h.
    #[arg(long, env = "LAMEDUCK_SHUTDOWN_TIMEOUT", default_value = "15s", value_parser = duration_in(Duration::ZERO, MAX_LONG_TIMEOUT))]
    pub shutdown_timeout: Duration,

    /// When the drain begins, tell each connection to go at its own instant
    /// (idle keep-alive connections close, busy ones get `Connection:
    /// close` with a chance that ramps up, event streams and WebSockets
    /// get their goodbye, HTTP/2 its GOAWAY): --drain-spread-burst of them
    /// at once, the rest at --drain-spread-rate a second, so that their
    /// clients do not all reconnect at once. This is the longest that may
    /// take. A second signal skips it. Default: 10s, or two thirds of
    /// --shutdown-timeout if that is less (about 10,000 connections at the
    /// default pace). 0s: all at once. Must be shorter than
    /// --shutdown-timeout. Go: none (Envoy: --drain-strategy gradual).
    #[arg(long, env = "LAMEDUCK_DRAIN_SPREAD", value_parser = duration_in(Duration::ZERO, MAX_LONG_TIMEOUT))]
    pub drain_spread: Option<Duration>,

    /// Goodbyes per second in the drain's spread after the burst (see
    /// --drain-spread): at the defaults two thousand open connections are
    /// told to go within 1.5 s. 1000 kept the reconnects of 10,000 clients
    /// near 100 ms at p99, with no SYN dropped, on two cores shared with
    /// the clients (benches/README.md); a larger machine takes more. At
    /// least 1.
    #[arg(long, env = "LAMEDUCK_DRAIN_SPREAD_RATE", default_value = "1000", value_parser = clap::value_parser!(u32).range(1..))]
    pub drain_spread_rate: u32,

    /// How many connections are told to go at once when the drain begins,
    /// before the rest are spread (see --drain-spread): a server with no
    /// more than this many open exits at once. 500 clients reconnecting at
    /// once had a p99 of 48–75 ms on two shared cores, 1000 of 95–147 ms
    /// (benches/README.md). 0: spread them all.
    #[arg(long, env = "LAMEDUCK_DRAIN_SPREAD_BURST", default_value = "500")]
    pub drain_spread_burst: u64,

    /// Ask a connection older than this (±10 % jitter per connection) to
    /// go, so that after a restart the load spreads over the instances
    /// again: HTTP/1 `Connection: close` on its next response, HTTP/2
    /// GOAWAY, an event stream's last event, a WebSocket's Close (1001).
    /// 0s (the default): never. Go: none (gRPC: MaxConnectionAge). At
    /// most 24h.
    #[arg(long, env = "LAMEDUCK_MAX_CONNECTION_AGE", default_value = "0s", value_parser = duration_in(Duration::ZERO, MAX_LONG_TIMEOUT))]
    pub max_connection_age: Duration,

    /// How long a connection past its age may take to go before it is
    /// closed. gRPC: MaxConnectionAgeGrace. At most 1h.
    #[arg(long, env = "LAMEDUCK_MAX_CONNECTION_AGE_GRACE", default_value = "10s", value_parser = duration_in(Duration::ZERO, MAX_START_TIMEOUT))]
    pub max_connection_age_grace: Duration,

    /// At the deadline, how long to wait for the 503 answers given to
    /// requests that had not started responding, before aborting every
    /// connection. Go has no equivalent: `Close` just drops them. A
    /// connection whose 503 the peer has acknowledged closes then, without
    /// waiting for its FIN, so the exit follows the last acknowledgement;
    /// this grace bounds only a peer that stopped reading. At most 1m.
    #[arg(long, env = "LAMEDUCK_FORCE_GRACE", default_value = "1s", value_parser = duration_in(Duration::ZERO, MAX_GRACE))]
    pub force_grace: Duration,

    /// A request head must arrive within this time (counted from connecting,
    /// or from its first byte on a keep-alive connection). Go:
    /// `ReadHeaderTimeout` / the header part of `ReadTimeout`. At most 1h.
    #[arg(long, env = "LAMEDUCK_HEADER_READ_TIMEOUT", default_value = "5s", value_parser = duration_in(Duration::ZERO, MAX_START_TIMEOUT))]
    pub header_read_timeout: Duration,

    /// Close a keep-alive connection that sends no new request for this
    /// long (HTTP/2: that has no open stream for this long). Go:
    /// `IdleTimeout`. At most 24h.
    #[arg(long, env = "LAMEDUCK_IDLE_TIMEOUT", default_value = "60s", value_parser = duration_in(Duration::ZERO, MAX_LONG_TIMEOUT))]
    pub idle_timeout: Duration,

    /// When the drain begins, a keep-alive connection used within this long
    /// stays open until it has been idle this long (and its spread instant
    /// has come), and its next response carries `Connection: close`, so a
    /// client sending its next request right then gets an answer instead of
    /// a reset. Idle connections older than this are dormant and close at
    /// once, outside the spread. 2 s covers clients that send once a second,
    /// through a balancer too (250ms broke 6-11 such requests per restart
    /// behind HAProxy). Go: none (nginx: `keepalive_min_timeout`). At most 1m.
    #[arg(long, env = "LAMEDUCK_KEEPALIVE_GRACE", default_value = "2s", value_parser = duration_in(Duration::ZERO, MAX_GRACE))]
    pub keepalive_grace: Duration,

    /// A handler (including reading the body) that runs longer is answered
    /// 503 (408 while still reading the body) and stopped; event streams are
    /// exempt. Also the write-stall limit: a write that makes no progress
    /// this long closes the connection, and an HTTP/2 stream whose client
    /// keeps its window shut this long is reset. Go: `WriteTimeout` / the
    /// body part of `ReadTimeout`. At most 24h.
    #[arg(long, env = "LAMEDUCK_REQUEST_TIMEOUT", default_value = "10s", value_parser = duration_in(Duration::ZERO, MAX_LONG_TIMEOUT))]
    pub request_timeout: Duration,

    /// Largest request body; larger gets 413 without being read. Go:
    /// `http.MaxBytesReader`. At most 1GiB (a body is held in memory).
    #[arg(long, env = "LAMEDUCK_MAX_BODY", default_value = "1MiB", value_parser = size_in(0, MAX_BODY))]
    pub max_body: usize,

    /// Largest request head (request line plus headers); larger gets 431.
    /// At least 8KiB (hyper's smallest read buffer), at most 1MiB (Go's
    /// default). Go: `MaxHeaderBytes`.
    #[arg(long, env = "LAMEDUCK_MAX_HEADER_BYTES", default_value = "64KiB", value_parser = size_in(MIN_HEADER_BYTES, MAX_HEADER_BYTES))]
    pub max_header_bytes: usize,

    /// Most connections open at once; beyond it the server stops accepting
    /// until one closes (backpressure). Go: none built in
    /// (`netutil.LimitListener`).
    #[arg(long, env = "LAMEDUCK_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// How often the background cleaner purges expired items. Go: the
    /// article's `runCleaner` ticker. At least 1ms, at most 24h.
    #[arg(long, env = "LAMEDUCK_CLEANUP_INTERVAL", default_value = "60s", value_parser = duration_in(MIN_POSITIVE, MAX_LONG_TIMEOUT))]
    pub cleanup_interval: Duration,

    /// Serve /debug/panic, a handler that panics, to show that a panic
    /// becomes a 500. For tests and demos only.
    #[arg(long, env = "LAMEDUCK_DEBUG_ROUTES", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), hide_possible_values = true, value_name = "BOOL")]
    pub debug_routes: bool,

    /// Log one line per request (target `access`): method, path, status,
    /// duration, response bytes, peer and protocol, written when the
    /// request ends. Off by default; when off it costs one branch per request.
    /// Lines never block serving: if stderr is not read, lines beyond a
    /// queue of 4096 are dropped and counted (lameduck_log_lines_dropped_total).
    #[arg(long, env = "LAMEDUCK_ACCESS_LOG", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = BoolishValueParser::new(), hide_possible_values = true, value_name = "BOOL")]
    pub access_log: bool,

    /// How log lines are written on stderr: `text` for people, `json` for
    /// collectors (one object per line, each structured field a key). What
    /// is logged follows RUST_LOG (default `info`); a RUST_LOG that cannot
    /// be read is a start-up error.
    #[arg(long, env = "LAMEDUCK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Where items live: a SQLite file (created if missing; WAL mode, so
    /// two instances can share it); a Postgres URL, `postgres://` or
    /// `postgresql://` (no TLS: a URL that requires it is refused; the
    /// schema is migrated at start-up; an unreachable database is retried
    /// for 10s, then a start-up error); or `:memory:`, which keeps items
    /// in memory and loses them at exit. Go: the `*sql.DB` behind the
    /// article's `store`.
    #[arg(long, env = "LAMEDUCK_DB", default_value = "lameduck.db")]
    pub db: PathBuf,

    /// Most expired items the cleaner removes per transaction; it checks
    /// for shutdown between batches.
    #[arg(long, env = "LAMEDUCK_CLEANUP_BATCH", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub cleanup_batch: u32,

    /// How long an Idempotency-Key is remembered after its write (POST
    /// /api/items, DELETE /api/items/{id}): a retry with the key and the
    /// same request gets the stored response without writing again; with
    /// another request, 422; while the first is still being written, 409.
    /// After it, the key is free for a new write; the cleaner removes
    /// expired keys. Go: none built in (Stripe: 24h). At least 1ms, at
    /// most 30d.
    #[arg(long, env = "LAMEDUCK_IDEMPOTENCY_TTL", default_value = "24h", value_parser = duration_in(MIN_POSITIVE, MAX_IDEMPOTENCY_TTL))]
    pub idempotency_ttl: Duration,

    /// On SIGHUP, how long the new process has to open its store and say it
    /// is ready before the old one stops it and goes on serving. Start-up
    /// takes milliseconds; the default leaves room for a slow disk or a
    /// long migration, and still ends a hung upgrade well inside the
    /// time systemd gives a reload (TimeoutStartSec, 90s by default). Go:
    /// none built in (tableflip leaves it to the caller's context). At
    /// least 1ms, at most 1h.
    #[arg(long, env = "LAMEDUCK_UPGRADE_TIMEOUT", default_value = "10s", value_parser = duration_in(MIN_POSITIVE, MAX_START_TIMEOUT))]
    pub upgrade_timeout: Duration,

    /// Ping a WebSocket that has sent nothing for this long. Go: none
    /// built in. At least 1ms, at most 1h.
    #[arg(long, env = "LAMEDUCK_WS_PING_INTERVAL", default_value = "30s", value_parser = duration_in(MIN_POSITIVE, MAX_START_TIMEOUT))]
    pub ws_ping_interval: Duration,

    /// Close a pinged WebSocket that sends nothing back within this long
    /// (Close 1001, reason "ping timeout"). At least 1ms, at most 1h.
    #[arg(long, env = "LAMEDUCK_WS_PING_TIMEOUT", default_value = "10s", value_parser = duration_in(MIN_POSITIVE, MAX_START_TIMEOUT))]
    pub ws_ping_timeout: Duration,

    /// The longest a long poll (/api/items/poll?wait=) waits before it
    /// answers 204; a longer wait is cut to it. At the drain every long
    /// poll answers at once. At most 1h.
    #[arg(long, env = "LAMEDUCK_POLL_MAX_WAIT", default_value = "30s", value_parser = duration_in(Duration::ZERO, MAX_START_TIMEOUT))]
    pub poll_max_wait: Duration,
}

impl Cli {
    /// The checks that involve two flags, which clap's per-flag bounds
    /// cannot make: the line of a start-up error, if one fails.
    pub fn check(&self) -> Result<(), String> {
        if let Some(spread) = self.drain_spread
            && !spread.is_zero()
            && spread >= self.shutdown_timeout
        {
            return Err(format!(
                "--drain-spread ({}) must be shorter than --shutdown-timeout ({}): the goodbyes are spread inside the deadline",
                humantime::format_duration(spread),
                humantime::format_duration(self.shutdown_timeout)
            ));
        }
        Ok(())
    }

    /// `--drain-spread`, or its default: 10s, or two thirds of the
    /// deadline if that is less, so that the default always fits inside
    /// it.
    pub fn drain_spread(&self) -> Duration {
        self.drain_spread
            .unwrap_or((self.shutdown_timeout * 2 / 3).min(DEFAULT_DRAIN_SPREAD))
    }

    /// The library's view of these flags. The log format is not in it: the
    /// binary sets up logging before the library runs.
    pub fn config(&self) -> Config {
        Config {
            addr: self.addr,
            backlog: self.backlog,
            drain_delay: self.drain_delay,
            drain_checks: self.drain_checks,
            shutdown_timeout: self.shutdown_timeout,
            drain_spread: self.drain_spread(),
            drain_spread_rate: self.drain_spread_rate,
            drain_spread_burst: self.drain_spread_burst,
            max_connection_age: Some(self.max_connection_age).filter(|age| !age.is_zero()),
            max_connection_age_grace: self.max_connection_age_grace,
            force_grace: self.force_grace,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            keepalive_grace: self.keepalive_grace,
            request_timeout: self.request_timeout,
            max_body: self.max_body,
            max_header_bytes: self.max_header_bytes,
            max_connections: self.max_connections as usize,
            cleanup_interval: self.cleanup_interval,
            debug_routes: self.debug_routes,
            access_log: self.access_log,
            db: self.db.clone(),
            cleanup_batch: self.cleanup_batch as usize,
            idempotency_ttl: self.idempotency_ttl,
            upgrade_timeout: self.upgrade_timeout,
            ws_ping_interval: self.ws_ping_interval,
            ws_ping_timeout: self.ws_ping_timeout,
            poll_max_wait: self.poll_max_wait,
        }
    }
}

/// `--addr`: an IP address and a port. Names are refused rather than
/// looked up: a name can stand for several addresses, or a different one
/// tomorrow, and a server should listen where its operator said.
fn socket_addr(value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| {
        "not an IP address and port (such as 127.0.0.1:8080 or [::1]:8080); \
         host names are not looked up"
            .to_owned()
    })
}

/// A command-line error as the one line the binary prints (exit 2), with
/// what clap puts on the lines after the first kept: the values a flag
/// takes. A value that came from a `LAMEDUCK_*` variable, not from the
/// command line, is named by its variable, since that is where the fix is.
/// It reads this process's own arguments and environment to tell which,
/// so it is for the binary's `main`, not for `Cli::try_parse_from`.
pub fn one_line_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};

    let msg = e.to_string();
    let mut line = msg
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned();
    if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
        line.push_str(&format!("; possible values: {}", valid.join(", ")));
    }
    if let Some(var) = e
        .get(ContextKind::InvalidArg)
        .and_then(|arg| from_environment(&arg.to_string()))
    {
        line = format!("{var}: {line}");
    }
    line
}

/// The variable that gave `arg` (`--flag <VALUE>`, as clap names it in an
/// error) its value, if it was not on the command line.
fn from_environment(arg: &str) -> Option<String> {
    use clap::CommandFactory as _;

    let long = arg.split_whitespace().next()?.strip_prefix("--")?;
    let on_command_line = std::env::args()
        .skip(1)
        .any(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")));
    if on_command_line {
        return None;
    }
    let command = Cli::command();
    let var = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?
        .get_env()?;
    std::env::var_os(var).map(|_| var.to_string_lossy().into_owned())
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Lines for people: `… INFO lameduck::server::report: shutdown report outcome="drained" …`
    Text,
    /// One JSON object per line, each field a key: `{…,"message":"shutdown report","outcome":"drained",…}`
    Json,
}

/// The end of `--help`: the forms a duration, a size and a yes-or-no flag
/// take, written once here and in the errors of [`units`].
fn forms_help() -> String {
    format!(
        "Durations: {DURATION_FORMS}.\n\
         Sizes: {SIZE_FORMS}.\n\
         Yes-or-no flags (--debug-routes, --access-log): the flag alone means \
         yes; --flag=VALUE and the environment take true/false, yes/no, on/off \
         or 1/0."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("lameduck").chain(args.iter().copied()))
    }

    /// A duration flag takes humantime's forms and refuses a value past
    /// its bound, naming the bound.
    #[test]
    fn duration_flags_take_combined_units_and_refuse_values_past_their_bound() {
        let cli = parse(&["--shutdown-timeout", "1m30s", "--drain-delay", "1.5s"]).unwrap();
        assert_eq!(cli.shutdown_timeout, Duration::from_secs(90));
        assert_eq!(cli.drain_delay, Duration::from_millis(1500));
        let cli = parse(&["--keepalive-grace", "250ms", "--force-grace", "0"]).unwrap();
        assert_eq!(cli.keepalive_grace, Duration::from_millis(250));
        assert_eq!(cli.force_grace, Duration::ZERO);

        let err = parse(&["--shutdown-timeout", "25h"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("too long: at most 24h"), "{err}");
        let err = parse(&["--upgrade-timeout", "0"]).unwrap_err().to_string();
        assert!(err.contains("too short: at least 1ms"), "{err}");
    }

    /// Every bound the help states is the one the parser enforces: the
    /// bound itself is taken, one millisecond (one byte) more is refused.
    #[test]
    fn each_flag_takes_its_stated_bound_and_nothing_past_it() {
        for (flag, bound, past) in [
            ("--drain-delay", "1h", "3600001ms"),
            ("--shutdown-timeout", "24h", "86400001ms"),
            ("--force-grace", "1m", "60001ms"),
            ("--header-read-timeout", "1h", "3600001ms"),
            ("--idle-timeout", "24h", "86400001ms"),
            ("--keepalive-grace", "1m", "60001ms"),
            ("--request-timeout", "24h", "86400001ms"),
            ("--cleanup-interval", "24h", "86400001ms"),
            ("--upgrade-timeout", "1h", "3600001ms"),
            ("--idempotency-ttl", "30d", "2592000001ms"),
            ("--max-body", "1GiB", "1073741825"),
            ("--max-header-bytes", "1MiB", "1048577"),
        ] {
            assert!(parse(&[flag, bound]).is_ok(), "{flag} {bound}");
            assert!(parse(&[flag, past]).is_err(), "{flag} {past}");
        }
    }

    /// `--idempotency-ttl` is a day unless set, takes humantime's forms,
    /// and refuses 0 (a key that expires at once would make every retry a
    /// new write).
    #[test]
    fn idempotency_ttl_is_a_day_by_default_and_never_zero() {
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(parse(&[]).unwrap().config().idempotency_ttl, day);
        let cli = parse(&["--idempotency-ttl", "1h30m"]).unwrap();
        assert_eq!(cli.config().idempotency_ttl, Duration::from_secs(5400));
        assert!(parse(&["--idempotency-ttl", "0"]).is_err());
    }

    /// `2MB` is two million bytes and `2MiB` two mebibytes.
    #[test]
    fn size_flags_tell_megabytes_from_mebibytes() {
        assert_eq!(parse(&["--max-body", "2MB"]).unwrap().max_body, 2_000_000);
        assert_eq!(parse(&["--max-body", "2MiB"]).unwrap().max_body, 2_097_152);
        assert_eq!(parse(&["--max-body", "1GiB"]).unwrap().max_body, 1 << 30);
        let err = parse(&["--max-header-bytes", "1KiB"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("too small: at least 8KiB"), "{err}");
    }

    /// A yes-or-no flag alone means yes, and `=VALUE` takes the words
    /// people write for yes and no.
    #[test]
    fn yes_or_no_flags_take_the_flag_alone_or_a_boolish_value() {
        assert!(!parse(&[]).unwrap().debug_routes);
        assert!(parse(&["--debug-routes"]).unwrap().debug_routes);
        for (value, expected) in [("true", true), ("yes", true), ("1", true), ("on", true)]
            .into_iter()
            .chain([
                ("false", false),
                ("no", false),
                ("0", false),
                ("off", false),
            ])
        {
            let flag = format!("--access-log={value}");
            assert_eq!(parse(&[&flag]).unwrap().access_log, expected, "{flag}");
        }
        assert!(parse(&["--debug-routes=maybe"]).is_err());
    }

    /// `--log-format` takes `text` (the default) or `json`, nothing else.
    #[test]
    fn log_format_is_text_unless_json_is_asked_for() {
        assert_eq!(parse(&[]).unwrap().log_format, LogFormat::Text);
        let cli = parse(&["--log-format", "json"]).unwrap();
        assert_eq!(cli.log_format, LogFormat::Json);
        assert!(parse(&["--log-format", "xml"]).is_err());
    }

    /// `--access-log` reaches the library's `Config`.
    #[test]
    fn access_log_reaches_the_config() {
        assert!(!parse(&[]).unwrap().config().access_log);
        assert!(parse(&["--access-log"]).unwrap().config().access_log);
    }

    /// The command line's defaults are the library's: a server started
    /// with no flags behaves like `Config::default()`.
    #[test]
    fn defaults_match_the_library_defaults() {
        let cli = Cli::parse_from(["lameduck"]);
        let (a, b) = (cli.config(), Config::default());
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    /// clap's own consistency checks on the flag definitions.
    #[test]
    fn the_flag_definitions_are_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
