//! A throwaway PostgreSQL server for the tests: its own data directory in
//! the temp dir, its own loopback port, `trust` authentication, stopped
//! (and its directory removed) when the handle is dropped.
//!
//! It needs PostgreSQL's server binaries (`initdb`, `pg_ctl`) and `psql`;
//! the tests that use it are `#[ignore]`d so that a plain `cargo test`
//! passes without them, and fail loudly, never skip, when they are asked
//! for and missing. `initdb` refuses to run as root, so under root the
//! server runs as the `postgres` user, which the Debian package creates.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::storage::StoredItem;

/// What a test that needs PostgreSQL says when it is missing, and the
/// reason its `#[ignore]` gives.
pub const NEEDS_POSTGRES: &str = "needs PostgreSQL: apt-get install postgresql";

/// A PostgreSQL server this test started. Dropping it stops it.
pub struct PgServer {
    /// `initdb`, `pg_ctl`, `postgres` live here.
    bin: PathBuf,
    /// The temp dir: `data/` (the cluster), the socket and `server.log`.
    dir: PathBuf,
    /// The loopback port it listens on, the same across restarts.
    pub port: u16,
    /// The OS user it runs as: `postgres` when we are root, else us.
    as_user: Option<String>,
}

impl PgServer {
    /// Creates a cluster in a fresh temp dir and starts it on a free
    /// loopback port; returns once it accepts connections.
    pub fn start() -> PgServer {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let bin = server_bin_dir();
        let dir = std::env::temp_dir().join(format!(
            "lameduck-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        // SAFETY: geteuid has no preconditions.
        let as_user = (unsafe { libc::geteuid() } == 0).then(|| "postgres".to_string());
        if let Some(user) = &as_user {
            chown_to(&dir, user);
        }
        let server = PgServer {
            bin,
            dir,
            port: free_port(),
            as_user,
        };
        // `--no-sync`: a throwaway cluster need not be flushed at creation;
        // the server itself runs with its normal `fsync`.
        server.run_as_owner(
            "initdb",
            &[
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
                server.data().to_str().unwrap(),
            ],
        );
        server.start_again();
        server
    }

    /// The URL of its `postgres` database, as `--db` takes it.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of database `name` on this server.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Creates an empty database named `name` and returns its URL: one per
    /// test when several share a server.
    pub fn fresh_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url_of(name)
    }

    /// Runs `sql` in database `db` with `psql`, stopping at the first
    /// error, and returns its output unaligned: one row a line, columns
    /// separated by tabs.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.try_psql(db, sql);
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("psql prints UTF-8")
    }

    /// [`PgServer::psql`] that hands back the output, failed or not.
    pub fn try_psql(&self, db: &str, sql: &str) -> Output {
        Command::new(tool("psql"))
            .args(["-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", db, "-c", sql])
            .output()
            .unwrap_or_else(|e| panic!("run psql: {e}; {NEEDS_POSTGRES}"))
    }

    /// A `psql` session on database `db` that runs what is written to
    /// its stdin, line by line, as it arrives: for a test that must hold a
    /// transaction (and its locks) open while the server works. Closing
    /// stdin ends it; so does killing the child.
    pub fn session(&self, db: &str) -> std::process::Child {
        Command::new(tool("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", db])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("run psql: {e}; {NEEDS_POSTGRES}"))
    }

    /// Every item in database `db`, in id order, with the number of
    /// `create` events logged for it: what the store holds, read behind
    /// its back.
    pub fn stored_items(&self, db: &str) -> Vec<StoredItem> {
        let out = self.psql(
            db,
            "SELECT i.id, i.created_at, coalesce(i.expires_at::text, ''),
                    (SELECT count(*) FROM item_events e
                     WHERE e.item_id = i.id AND e.op = 'create'),
                    i.name
             FROM items i ORDER BY i.id",
        );
        out.lines()
            .map(|line| {
                // The name last: it is the only column that could hold a
                // tab, and `splitn` leaves it whole.
                let f: Vec<&str> = line.splitn(5, '\t').collect();
                StoredItem {
                    id: f[0].parse().unwrap(),
                    created_at: f[1].parse().unwrap(),
                    expires_at: f[2].parse().ok(),
                    create_events: f[3].parse().unwrap(),
                    name: f[4].to_string(),
                }
            })
            .collect()
    }

    /// Rows in database `db`'s event log.
    pub fn event_count(&self, db: &str) -> i64 {
        self.psql(db, "SELECT count(*) FROM item_events")
            .trim()
            .parse()
            .unwrap()
    }

    /// Inserts `n` items of 200 characters into database `db` (which has
    /// the schema: a store has opened it), generated inside PostgreSQL by
    /// `generate_series`, so that a large table takes seconds to make.
    pub fn seed(&self, db: &str, n: u64) {
        self.psql(
            db,
            &format!(
                "INSERT INTO items (name, created_at)
                 SELECT 'seeded-' || g || '-' || repeat('a', 184), 1
                 FROM generate_series(1, {n}) g"
            ),
        );
    }

    /// Statements running now in database `db` whose text contains
    /// `needle`, other than this check itself: `pg_stat_activity` rows of
    /// client backends in state `active`.
    pub fn active_queries(&self, db: &str, needle: &str) -> usize {
        let sql = format!(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = '{db}' AND backend_type = 'client backend'
               AND state = 'active' AND pid <> pg_backend_pid()
               AND position('{needle}' in query) > 0"
        );
        self.psql("postgres", &sql).trim().parse().unwrap()
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are ended, open
    /// transactions rolled back, and the data flushed). For outage tests;
    /// [`PgServer::start_again`] brings it back on the same port.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"]);
    }

    /// Starts the stopped server again on the same port and data, and
    /// returns once it accepts connections.
    pub fn start_again(&self) {
        // `pg_ctl start -w` returns once the server reports it is ready;
        // the check after it is the one that counts, a connection to the
        // port the server's clients use.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "30",
            "-l",
            log.to_str().unwrap(),
            "-o",
            &options,
        ]);
        self.wait_until_ready(Duration::from_secs(30));
    }

    /// Stops and starts it again: every connection to it is cut.
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// Waits until a session can be opened and answer a query.
    fn wait_until_ready(&self, within: Duration) {
        let start = Instant::now();
        loop {
            let out = self.try_psql("postgres", "SELECT 1");
            if out.status.success() {
                return;
            }
            assert!(
                start.elapsed() < within,
                "PostgreSQL did not accept connections within {within:?}: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `pg_ctl ARGS -D data`, as the cluster's owner; panics if it fails.
    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data();
        let mut all = args.to_vec();
        all.extend(["-D", data.to_str().unwrap()]);
        self.run_as_owner("pg_ctl", &all);
    }

    /// Runs the server binary `name` as the cluster's owner.
    fn run_as_owner(&self, name: &str, args: &[&str]) {
        let program = self.bin.join(name);
        let mut command = match &self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        // `pg_ctl start` leaves the server running with our stdout and
        // stderr unless told otherwise (`-l`); `output()` would then wait
        // for the server to exit. Null them instead and read the log.
        let status = command
            .args(args)
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("run {}: {e}; {NEEDS_POSTGRES}", program.display()));
        assert!(
            status.success(),
            "{name} {args:?} failed ({status}); server log:\n{}",
            self.log()
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Only this cluster's server: pg_ctl finds it by its data dir.
        // Harmless if a test already stopped it.
        let data = self.data();
        let program = self.bin.join("pg_ctl");
        let args = ["stop", "-m", "fast", "-w", "-D", data.to_str().unwrap()];
        let mut command = match &self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let _ = command
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory holding `initdb` and `pg_ctl`: found on `PATH`, else in
/// Debian's `/usr/lib/postgresql/NN/bin` (newest first), which is not on
/// `PATH`. Panics with [`NEEDS_POSTGRES`] when neither has them.
pub fn server_bin_dir() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.flatten().map(|d| d.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort_by_key(|d| std::cmp::Reverse(version_of(d)));
    on_path
        .into_iter()
        .chain(debian)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .unwrap_or_else(|| {
            panic!("no initdb and pg_ctl on PATH or in /usr/lib/postgresql: {NEEDS_POSTGRES}")
        })
}

/// `15` for `/usr/lib/postgresql/15/bin`.
fn version_of(bin: &Path) -> u32 {
    bin.parent()
        .and_then(Path::file_name)
        .and_then(|v| v.to_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A client tool (`psql`): on `PATH` on Debian (a wrapper picks the
/// version), else next to the server binaries.
fn tool(name: &str) -> PathBuf {
    let beside = server_bin_dir().join(name);
    if beside.is_file() {
        beside
    } else {
        PathBuf::from(name)
    }
}

/// A loopback port nothing listens on now. Another process could take it
/// before the server does; the server would then fail to start, loudly.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Gives `path` to `user`, so that a server running as them can write
/// there.
fn chown_to(path: &Path, user: &str) {
    let status = Command::new("chown")
        .arg(user)
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown {user} {}", path.display());
}
