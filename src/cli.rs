//! The command line: flags, `LAMEDUCK_*` environment variables, and the
//! parsers for durations (`500ms`, `15s`) and sizes (`64KiB`, `1MiB`).
//!
//! Each flag's help names the Go `http.Server` setting it corresponds to.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::config::Config;

/// A graceful-shutdown HTTP server. On SIGTERM or SIGINT it fails its health
/// check, stops accepting, drains in-flight requests, and exits 0; a second
/// signal or the deadline forces the close and exits 1. On SIGHUP it
/// upgrades in place: the binary on disk now is started on the same
/// listening socket, and once it is ready the old process drains and exits
/// 0. Started with LISTEN_FDS (systemd socket activation), it serves the
/// inherited socket instead of binding --addr.
#[derive(Debug, Parser)]
#[command(name = "lameduck", version)]
pub struct Cli {
    /// Address to listen on; port 0 picks a free port. Ignored when a
    /// socket is inherited (LISTEN_FDS). Go: `Server.Addr`.
    #[arg(long, env = "LAMEDUCK_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// listen(2) backlog of the listening socket.
    #[arg(long, env = "LAMEDUCK_BACKLOG", default_value_t = 1024)]
    pub backlog: u32,

    /// After the first signal, keep serving this long while /healthz answers
    /// 503, so load balancers stop sending traffic. Go: the article's
    /// `time.Sleep(3 * time.Second)` before `Shutdown`.
    #[arg(long, env = "LAMEDUCK_DRAIN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub drain_delay: Duration,

    /// How long in-flight requests may take to finish once the listener is
    /// closed; then the rest is forced (exit 1). Go: the context passed to
    /// `Server.Shutdown(ctx)`.
    #[arg(long, env = "LAMEDUCK_SHUTDOWN_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// At the deadline, how long to wait for the 503 answers given to
    /// requests that had not started responding, before aborting every
    /// connection. Go has no equivalent: `Close` just drops them.
    #[arg(long, env = "LAMEDUCK_FORCE_GRACE", default_value = "1s", value_parser = parse_duration)]
    pub force_grace: Duration,

    /// A request head must arrive within this time (counted from connecting,
    /// or from its first byte on a keep-alive connection). Go:
    /// `ReadHeaderTimeout` / the header part of `ReadTimeout`.
    #[arg(long, env = "LAMEDUCK_HEADER_READ_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// Close a keep-alive connection that sends no new request for this
    /// long (HTTP/2: that has no open stream for this long). Go:
    /// `IdleTimeout`.
    #[arg(long, env = "LAMEDUCK_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// When the drain begins, a keep-alive connection used within this long
    /// stays open until it has been idle this long, and its next response
    /// carries `Connection: close`, so a client sending its next request
    /// right then gets an answer instead of a reset. Idle connections older
    /// than this close at once. Go: none (nginx: `keepalive_min_timeout`).
    #[arg(long, env = "LAMEDUCK_KEEPALIVE_GRACE", default_value = "250ms", value_parser = parse_duration)]
    pub keepalive_grace: Duration,

    /// A handler (including reading the body) that runs longer is answered
    /// 503 (408 while still reading the body) and stopped; event streams are
    /// exempt. Go: `WriteTimeout` / the body part of `ReadTimeout`.
    #[arg(long, env = "LAMEDUCK_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Largest request body; larger gets 413 without being read. Go:
    /// `http.MaxBytesReader`.
    #[arg(long, env = "LAMEDUCK_MAX_BODY", default_value = "1MiB", value_parser = parse_size)]
    pub max_body: usize,

    /// Largest request head (request line plus headers); larger gets 431.
    /// At least 8KiB. Go: `MaxHeaderBytes`.
    #[arg(long, env = "LAMEDUCK_MAX_HEADER_BYTES", default_value = "64KiB", value_parser = parse_header_size)]
    pub max_header_bytes: usize,

    /// Most connections open at once; beyond it the server stops accepting
    /// until one closes (backpressure). Go: none built in
    /// (`netutil.LimitListener`).
    #[arg(long, env = "LAMEDUCK_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// How often the background cleaner purges expired items. Go: the
    /// article's `runCleaner` ticker.
    #[arg(long, env = "LAMEDUCK_CLEANUP_INTERVAL", default_value = "60s", value_parser = parse_positive_duration)]
    pub cleanup_interval: Duration,

    /// Serve /debug/panic, a handler that panics, to show that a panic
    /// becomes a 500. For tests and demos only.
    #[arg(long, env = "LAMEDUCK_DEBUG_ROUTES")]
    pub debug_routes: bool,

    /// SQLite database file for items (created if missing; WAL mode, so
    /// two instances can share it). `:memory:` keeps items in memory and
    /// loses them at exit. Go: the `*sql.DB` behind the article's `store`.
    #[arg(long, env = "LAMEDUCK_DB", default_value = "lameduck.db")]
    pub db: PathBuf,

    /// Most expired items the cleaner removes per transaction; it checks
    /// for shutdown between batches.
    #[arg(long, env = "LAMEDUCK_CLEANUP_BATCH", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub cleanup_batch: u32,

    /// On SIGHUP, how long the new process has to open its store and say it
    /// is ready before the old one stops it and goes on serving. Start-up
    /// takes milliseconds; the default leaves room for a slow disk or a
    /// long migration, and still ends a hung upgrade well inside the
    /// time systemd gives a reload (TimeoutStartSec, 90s by default). Go:
    /// none built in (tableflip leaves it to the caller's context).
    #[arg(long, env = "LAMEDUCK_UPGRADE_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub upgrade_timeout: Duration,
}

impl Cli {
    /// The library's view of these flags.
    pub fn config(&self) -> Config {
        Config {
            addr: self.addr,
            backlog: self.backlog,
            drain_delay: self.drain_delay,
            shutdown_timeout: self.shutdown_timeout,
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
            db: self.db.clone(),
            cleanup_batch: self.cleanup_batch as usize,
            upgrade_timeout: self.upgrade_timeout,
        }
    }
}

/// Parses `250ms`, `15s`, `2m`, `1h`, or a bare `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` needs a unit: ms, s, m or h (e.g. 500ms, 15s)"))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 500ms or 15s"))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(format!("`{unit}` is not a unit: use ms, s, m or h")),
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| format!("`{s}` is too large"))
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        Duration::ZERO => Err("must be greater than zero".into()),
        d => Ok(d),
    }
}

/// Parses `1048576`, `64KiB`, `1MiB` (also `KB`/`MB`, read as binary units).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 65536, 64KiB or 1MiB"))?;
    let factor = match unit {
        "" | "B" => 1,
        "KiB" | "KB" | "k" | "K" => 1024,
        "MiB" | "MB" | "M" => 1024 * 1024,
        _ => return Err(format!("`{unit}` is not a size unit: use KiB or MiB")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{s}` is too large"))
}

fn parse_header_size(s: &str) -> Result<usize, String> {
    match parse_size(s)? {
        n if n < 8192 => Err("must be at least 8KiB (hyper's smallest read buffer)".into()),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_units_the_help_text_promises() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5 days").is_err());
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1GiB").is_err());
        assert!(parse_header_size("1KiB").is_err());
    }

    #[test]
    fn defaults_match_the_library_defaults() {
        let cli = Cli::parse_from(["lameduck"]);
        let (a, b) = (cli.config(), Config::default());
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
}
