//! HAProxy in front of the instances, started here as a child process with
//! a configuration written for the run, and asked what it thinks of each
//! server through its stats socket.
//!
//! The configuration is the one the article's recipe is written against,
//! and the one Kubernetes-style readiness amounts to:
//!
//! | setting | value | why |
//! |---|---|---|
//! | `option httpchk GET /healthz` | | HAProxy asks `/healthz`, which answers `503` from lameduck's first signal on |
//! | `inter` | 500 ms | one check per server every half second |
//! | `fall` | 2 | two failed checks in a row mark the server `DOWN`: no new request is sent to it |
//! | `rise` | 2 | two passed checks mark it `UP` again |
//! | `retries` | 0 | a request whose connection to the server is refused is answered `503`, not retried elsewhere: each one counts |
//! | `option redispatch` | off | the same: a failed request is not sent to the other server |
//!
//! Keep-alive is on both sides (HAProxy's default, `http-keep-alive`):
//! clients keep their connection to HAProxy, and HAProxy keeps idle
//! connections to the servers and reuses them.
//!
//! The load generator asks for `GET /api/items` only. To put requests
//! that take a while on the servers (`/api/slow?ms=50`, as a real
//! endpoint does), the frontend can rewrite every request's URI with
//! `http-request set-uri`; health checks come from the backend and are
//! not rewritten.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::BoxError;
use super::process::{self, Log};

/// How long HAProxy may take to come up and see every server `UP`.
const START_LIMIT: Duration = Duration::from_secs(20);

/// The health-check settings, for the configuration and for messages.
pub const INTER: Duration = Duration::from_millis(500);
pub const FALL: u32 = 2;
pub const RISE: u32 = 2;

/// The backend's name in the configuration and in the stats.
const BACKEND: &str = "lameduck";

/// A running HAProxy, killed (by its pid) when dropped.
pub struct Haproxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The server names, in the order of the addresses given to `start`.
    pub servers: Vec<String>,
    dir: PathBuf,
    pid: i32,
    log: Log,
}

/// What HAProxy's stats say about one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStats {
    /// `UP`, `DOWN`, or on the way between: `UP 1/2` (one check failed,
    /// still `UP`), `DOWN 1/2` (one passed, still `DOWN`).
    pub status: String,
    /// The last check's result: `L7OK` passed, `L7STS` a bad status (the
    /// `503` of a lame duck), `L4CON` connection refused, ...
    pub check: String,
    /// Responses with a `2xx` status the server sent through HAProxy.
    pub responses_2xx: u64,
    /// Sessions open to the server now (`scur`): in `mode tcp`, the
    /// client connections it holds.
    pub sessions: u64,
}

impl ServerStats {
    /// Fully `UP`: not on the way down.
    pub fn is_up(&self) -> bool {
        self.status == "UP"
    }

    /// Marked `DOWN`, and so sent no new requests (also while on the way
    /// back up).
    pub fn is_down(&self) -> bool {
        self.status.starts_with("DOWN")
    }
}

impl Haproxy {
    /// Writes a configuration with one server per address in `backends`
    /// (named `s0`, `s1`, ...), every request's URI replaced by `uri` if
    /// one is given, starts `haproxy -f CFG -db` on a free loopback port,
    /// and waits until every server is `UP`.
    pub fn start(backends: &[SocketAddr], uri: Option<&str>) -> Result<Haproxy, BoxError> {
        Self::launch(backends, Mode::Http { uri })
    }

    /// The same in `mode tcp`: a layer-4 balancer (as a Kubernetes
    /// Service is) that hands each client connection to a server, round
    /// robin, and never looks inside it. The health check is still
    /// `GET /healthz`.
    pub fn start_tcp(backends: &[SocketAddr]) -> Result<Haproxy, BoxError> {
        Self::launch(backends, Mode::Tcp)
    }

    fn launch(backends: &[SocketAddr], mode: Mode) -> Result<Haproxy, BoxError> {
        let program = find_haproxy()?;
        let dir = std::env::temp_dir().join(format!(
            "lameduck-haproxy-{}-{}",
            std::process::id(),
            backends[0].port()
        ));
        std::fs::create_dir_all(&dir)?;
        // A port the kernel has just handed out and nobody holds: taken
        // back between this drop and HAProxy's bind only by bad luck,
        // which the start below reports.
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let servers: Vec<String> = (0..backends.len()).map(|i| format!("s{i}")).collect();
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config(addr, &dir, &servers, backends, mode))?;
        let log = Log::default();
        let child = log.spawn(Command::new(program).arg("-f").arg(&cfg).arg("-db"))?;
        let mut haproxy = Haproxy {
            addr,
            servers,
            dir,
            pid: child.id() as i32,
            log,
        };
        let up = process::poll_until(START_LIMIT, || {
            if process::try_exit(haproxy.pid).is_some() {
                // Reaped: nothing left for `drop` to stop.
                haproxy.pid = 0;
                return Some(false);
            }
            let all_up = haproxy.servers.iter().all(|s| {
                haproxy
                    .server(s)
                    .is_ok_and(|stats| stats.is_up() && stats.check == "L7OK")
            });
            all_up.then_some(true)
        });
        if up != Some(true) {
            return Err(format!(
                "haproxy did not come up with every server UP; its output:\n{}",
                haproxy.log.tail(12)
            )
            .into());
        }
        Ok(haproxy)
    }

    /// What the stats say about `server` now.
    pub fn server(&self, server: &str) -> Result<ServerStats, BoxError> {
        // `show stat BACKEND 4 -1`: servers only (type 4), all of them.
        let csv = self.command(&format!("show stat {BACKEND} 4 -1"))?;
        parse_server(&csv, server)
            .ok_or_else(|| format!("no server {server} in the stats:\n{csv}").into())
    }

    /// HAProxy's last lines on stderr, for messages.
    pub fn log_tail(&self, n: usize) -> String {
        self.log.tail(n)
    }

    /// One command on the stats socket, and its whole answer: the socket
    /// answers one command per connection, then closes.
    fn command(&self, command: &str) -> Result<String, BoxError> {
        let mut socket = UnixStream::connect(self.dir.join("stats.sock"))?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        socket.write_all(format!("{command}\n").as_bytes())?;
        let mut answer = String::new();
        socket.read_to_string(&mut answer)?;
        Ok(answer)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        // SIGTERM is HAProxy's immediate stop; the load is over by now.
        if self.pid > 0 && process::try_exit(self.pid).is_none() {
            let _ = process::signal(self.pid, libc::SIGTERM);
            if process::wait_exit(self.pid, Duration::from_secs(5)).is_none() {
                let _ = process::signal(self.pid, libc::SIGKILL);
                let _ = process::wait_exit(self.pid, Duration::from_secs(5));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `haproxy` on the `PATH`, or Debian's `/usr/sbin/haproxy` (not on every
/// user's `PATH`); a clear error if neither runs.
fn find_haproxy() -> Result<&'static str, BoxError> {
    for program in ["haproxy", "/usr/sbin/haproxy"] {
        let runs = Command::new(program)
            .arg("-v")
            .output()
            .is_ok_and(|out| out.status.success());
        if runs {
            return Ok(program);
        }
    }
    Err(
        "haproxy is not installed (not on PATH, not /usr/sbin/haproxy): \
         apt-get install haproxy"
            .into(),
    )
}

/// Which balancer: layer 7 (the rolling bench) or layer 4 (the storm
/// bench's rebalancing rows).
#[derive(Clone, Copy)]
enum Mode<'a> {
    /// `mode http`, every request's URI replaced by `uri` if given.
    Http { uri: Option<&'a str> },
    /// `mode tcp`, with room for a crowd of long-lived connections (9000:
    /// two descriptors each, under a limit of 20000), and for their quiet: an
    /// event stream is quiet for a second between events and a WebSocket
    /// for its ping interval, so the idle timeouts are a minute.
    Tcp,
}

/// The configuration file; see the module docs for the settings.
fn config(
    addr: SocketAddr,
    dir: &std::path::Path,
    servers: &[String],
    backends: &[SocketAddr],
    mode: Mode,
) -> String {
    let inter = INTER.as_millis();
    let (defaults, uri) = match mode {
        Mode::Http { uri } => (
            "    maxconn 4000

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s",
            uri,
        ),
        Mode::Tcp => (
            "    maxconn 9000

defaults
    mode tcp
    maxconn 9000
    timeout connect 1s
    timeout client 60s
    timeout server 60s",
            None,
        ),
    };
    let mut lines = format!(
        "global
    stats socket {dir}/stats.sock mode 600 level admin
{defaults}
    retries 0
    no option redispatch

frontend web
    bind {addr}
{rewrite}    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option httpchk GET /healthz
    default-server inter {inter}ms fall {FALL} rise {RISE}
",
        dir = dir.display(),
        rewrite = uri.map_or(String::new(), |uri| format!(
            "    http-request set-uri {uri}\n"
        )),
    );
    for (name, backend) in servers.iter().zip(backends) {
        lines.push_str(&format!("    server {name} {backend} check\n"));
    }
    lines
}

/// The stats of `server` from `show stat` CSV: a header line starting
/// `# `, then one line per server.
fn parse_server(csv: &str, server: &str) -> Option<ServerStats> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let column = |name: &str| header.iter().position(|&h| h == name);
    let (name, status) = (column("svname")?, column("status")?);
    let (check, ok) = (column("check_status")?, column("hrsp_2xx")?);
    let sessions = column("scur")?;
    let fields: Vec<&str> = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|fields| fields.get(name) == Some(&server))?;
    let text = |i: usize| fields.get(i).unwrap_or(&"").to_string();
    Some(ServerStats {
        status: text(status),
        // `* L7OK` while a check is under way: the star is not the result.
        check: text(check).trim_start_matches("* ").to_string(),
        responses_2xx: fields.get(ok).and_then(|n| n.parse().ok()).unwrap_or(0),
        sessions: fields
            .get(sessions)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    })
}
