//! Helpers for the storage tests: throwaway database files, reading a file
//! back behind the server's back (as an operator would after it exits),
//! and clients that keep writing while a server is being stopped.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lameduck::store::{SqliteStore, StepHook};
use lameduck::testing::http1::ResponseReader;
use rusqlite::Connection;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::http;

/// A database path in a fresh directory under the system temp dir; the
/// directory (with the `-wal` and `-shm` files) is removed on drop.
pub struct TempDb {
    dir: PathBuf,
    /// The database file (not created yet).
    pub path: PathBuf,
}

impl TempDb {
    /// A new, empty directory named after `tag`, the process and a counter.
    pub fn new(tag: &str) -> TempDb {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lameduck-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let path = dir.join("items.db");
        TempDb { dir, path }
    }

    /// The path as a `--db` argument.
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("temp path is UTF-8")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How many writes a [`hold_writes_open`] store has held so far.
#[derive(Debug, Clone, Default)]
pub struct WriteHold(Arc<AtomicU64>);

impl WriteHold {
    /// Writes that have reached the hold (tests wait for this).
    pub fn writes_held(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// `store`, with every create held half done — the item row inserted, its
/// event not yet, the transaction open — until its token is cancelled (a
/// forced shutdown) or `max` has passed.
///
/// Why hold: a real create is over in microseconds, so a test could not
/// otherwise shut the server down *while* a write is half done and then
/// check that it rolled back (forced) or committed (drained, the client
/// gone). The hold makes that moment last, and [`WriteHold`] says when it
/// has begun.
pub fn hold_writes_open(store: SqliteStore, max: Duration) -> (SqliteStore, WriteHold) {
    let hold = WriteHold::default();
    let held = hold.0.clone();
    let hook: StepHook = Arc::new(move |cancel: &CancellationToken| {
        held.fetch_add(1, Relaxed);
        // The hook runs on the blocking-pool thread doing the write, where
        // waiting on the runtime with `block_on` is allowed (on a runtime
        // worker it would panic). The wait ends at a forced shutdown, which
        // cancels the write's token, or after `max`.
        let cancelled = cancel.cancelled();
        let _ = tokio::runtime::Handle::current()
            .block_on(async { tokio::time::timeout(max, cancelled).await });
    });
    (store.with_step_hook(hook), hold)
}

/// Opens the file directly with rusqlite.
pub fn open_raw(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open database");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

/// `PRAGMA integrity_check`: `"ok"` for a sound file.
pub fn integrity_check(conn: &Connection) -> String {
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check runs")
}

/// One stored item, with the number of `create` events logged for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    pub id: u64,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub create_events: i64,
}

/// Every item in the file, in id order.
pub fn stored_items(conn: &Connection) -> Vec<StoredItem> {
    let mut stmt = conn
        .prepare(
            "SELECT i.id, i.name, i.created_at, i.expires_at,
                    (SELECT count(*) FROM item_events e
                     WHERE e.item_id = i.id AND e.op = 'create')
             FROM items i ORDER BY i.id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(StoredItem {
            id: r.get::<_, i64>(0)? as u64,
            name: r.get(1)?,
            created_at: r.get(2)?,
            expires_at: r.get(3)?,
            create_events: r.get(4)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Checks what a store holds (its `stored` items and `events` rows in
/// the event log) against what the clients were told: every item whose
/// `201` reached a client is there with its name, and every item there is
/// complete (a well-formed name and its one `create` event, written in the
/// same transaction), with no event left over. Returns how many items it
/// holds.
pub fn assert_holds_what_was_acked(stored: &[StoredItem], events: i64, log: &WriteLog) -> usize {
    let by_id: HashMap<u64, &str> = stored.iter().map(|i| (i.id, i.name.as_str())).collect();
    for (id, name) in &log.acked {
        assert_eq!(
            by_id.get(id).copied(),
            Some(name.as_str()),
            "acknowledged item {id} missing or different"
        );
    }
    for item in stored {
        assert!(is_writer_name(&item.name), "mangled item: {item:?}");
        assert_eq!(item.create_events, 1, "half-written item: {item:?}");
        assert!(item.created_at > 0, "{item:?}");
    }
    assert_eq!(events, stored.len() as i64, "an event without its item");
    stored.len()
}

/// Rows in the event log.
pub fn event_count(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM item_events", [], |r| r.get(0))
        .unwrap()
}

/// Inserts `n` items (names of `len` characters, each `expires_at`) in one
/// transaction, generated inside SQLite so that seeding a large table is
/// quick. The file must already have the schema (open a store on it
/// first).
pub fn seed(conn: &Connection, n: u64, len: usize, expires_at: Option<i64>) {
    conn.execute(
        "WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < ?1)
         INSERT INTO items (name, created_at, expires_at)
         SELECT printf('seeded-%d-%.*c', x, ?2, 'a'), 1, ?3 FROM seq",
        rusqlite::params![n as i64, len as i64 - 16, expires_at],
    )
    .expect("seed items");
}

/// What one request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A complete response: status and body.
    Status(u16, String),
    /// The connection was refused: nothing is listening.
    Refused,
    /// Connected, but no complete response came: cut off by a reset, an
    /// early EOF or the time-out.
    Cut,
}

/// One request on a fresh connection with `Connection: close`. Never
/// panics: every way it can go wrong is an [`Answer`].
pub async fn try_request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Answer {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return Answer::Refused;
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let exchange = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut reader = ResponseReader::new();
        loop {
            match reader
                .read_response(&mut stream, http::method(method))
                .await?
            {
                Some(res) if res.is_interim() => continue,
                res => return std::io::Result::Ok(res),
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(20), exchange).await {
        Ok(Ok(Some(res))) if res.complete => Answer::Status(res.status, res.text()),
        _ => Answer::Cut,
    }
}

/// The id in a `201` body.
pub fn id_of(body: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(body).ok()?["id"].as_u64()
}

/// The name the writers give item `n` of client `client`: fixed length, so
/// a truncated one would show.
pub fn item_name(client: usize, n: usize) -> String {
    format!("w{client:02}-{n:05}-{}", "x".repeat(40))
}

/// True if `name` is one [`item_name`] could have made.
pub fn is_writer_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 50
        && b[0] == b'w'
        && b[1..3].iter().all(u8::is_ascii_digit)
        && b[3] == b'-'
        && b[4..9].iter().all(u8::is_ascii_digit)
        && b[9] == b'-'
        && b[10..].iter().all(|&c| c == b'x')
}

/// Everything the writers saw.
#[derive(Debug, Default)]
pub struct WriteLog {
    /// `(id, name)` of every item whose `201` reached a client.
    pub acked: Vec<(u64, String)>,
    /// How many answers of each status (201 included).
    pub statuses: BTreeMap<u16, usize>,
    /// Answers that were not 2xx, with their bodies.
    pub failures: Vec<(u16, String)>,
    /// Requests that got no complete answer.
    pub no_answer: usize,
    /// Read-backs (`GET /api/items/{id}` of an acknowledged item) done.
    pub reads: usize,
}

/// `clients` tasks POSTing distinct items to the servers in `targets`,
/// round robin, each at most `max_each` times. A server that refuses a
/// connection is taken out of `targets` (it has closed its listener); a
/// client stops when none is left, or when [`Writers::stop`] is called.
pub struct Writers {
    targets: Arc<Mutex<Vec<SocketAddr>>>,
    acked: Arc<AtomicUsize>,
    acked_by: Arc<Mutex<BTreeMap<SocketAddr, usize>>>,
    progress: Arc<Notify>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<WriteLog>>,
}

impl Writers {
    /// Starts the clients. With `read_back`, each acknowledged item is
    /// also fetched (from the next target in turn) and must be there.
    pub fn start(targets: &[SocketAddr], clients: usize, max_each: usize, read_back: bool) -> Self {
        let targets = Arc::new(Mutex::new(targets.to_vec()));
        let acked = Arc::new(AtomicUsize::new(0));
        let acked_by = Arc::new(Mutex::new(BTreeMap::new()));
        let progress = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let tasks = (0..clients)
            .map(|client| {
                let (targets, acked, acked_by, progress, stop) = (
                    targets.clone(),
                    acked.clone(),
                    acked_by.clone(),
                    progress.clone(),
                    stop.clone(),
                );
                tokio::spawn(async move {
                    let mut log = WriteLog::default();
                    for n in 0..max_each {
                        let Some(addr) = pick(&targets, client + n) else {
                            break;
                        };
                        if stop.is_cancelled() {
                            break;
                        }
                        let name = item_name(client, n);
                        let body = format!(r#"{{"name":"{name}"}}"#);
                        let answer = try_request(addr, "POST", "/api/items", &body).await;
                        let id = match record(&mut log, &targets, addr, answer) {
                            Some((201, body)) => id_of(&body).expect("201 carries an id"),
                            _ => continue,
                        };
                        log.acked.push((id, name));
                        acked.fetch_add(1, Relaxed);
                        *acked_by.lock().unwrap().entry(addr).or_insert(0) += 1;
                        progress.notify_waiters();
                        if read_back && let Some(addr) = pick(&targets, client + n + 1) {
                            let path = format!("/api/items/{id}");
                            let answer = try_request(addr, "GET", &path, "").await;
                            if record(&mut log, &targets, addr, answer).is_some() {
                                log.reads += 1;
                            }
                        }
                    }
                    log
                })
            })
            .collect();
        Writers {
            targets,
            acked,
            acked_by,
            progress,
            stop,
            tasks,
        }
    }

    /// Adds a server for the clients to use.
    pub fn add_target(&self, addr: SocketAddr) {
        self.targets.lock().unwrap().push(addr);
    }

    /// Items acknowledged so far.
    pub fn acked(&self) -> usize {
        self.acked.load(Relaxed)
    }

    /// Items acknowledged by the server at `addr` so far.
    pub fn acked_by(&self, addr: SocketAddr) -> usize {
        self.acked_by
            .lock()
            .unwrap()
            .get(&addr)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until at least `n` items have been acknowledged in all.
    pub async fn wait_acked(&self, n: usize, within: Duration) {
        tokio::time::timeout(within, async {
            loop {
                let notified = self.progress.notified();
                if self.acked() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("fewer than {n} writes acknowledged in {within:?}"));
    }

    /// Tells the clients to stop after their current request.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits for every client (they are bounded by `max_each`) and merges
    /// their logs.
    pub async fn join(self) -> WriteLog {
        let mut all = WriteLog::default();
        for task in self.tasks {
            let log = task.await.expect("client task");
            all.acked.extend(log.acked);
            for (status, n) in log.statuses {
                *all.statuses.entry(status).or_default() += n;
            }
            all.failures.extend(log.failures);
            all.no_answer += log.no_answer;
            all.reads += log.reads;
        }
        all
    }
}

/// The target for request `turn`, round robin; `None` when none is left.
fn pick(targets: &Mutex<Vec<SocketAddr>>, turn: usize) -> Option<SocketAddr> {
    let targets = targets.lock().unwrap();
    (!targets.is_empty()).then(|| targets[turn % targets.len()])
}

/// Logs `answer`; returns it if a response came.
fn record(
    log: &mut WriteLog,
    targets: &Mutex<Vec<SocketAddr>>,
    addr: SocketAddr,
    answer: Answer,
) -> Option<(u16, String)> {
    match answer {
        Answer::Status(status, body) => {
            *log.statuses.entry(status).or_default() += 1;
            if !(200..300).contains(&status) {
                log.failures.push((status, body.clone()));
            }
            Some((status, body))
        }
        Answer::Refused => {
            targets.lock().unwrap().retain(|a| *a != addr);
            None
        }
        Answer::Cut => {
            log.no_answer += 1;
            None
        }
    }
}

/// What [`hand_over_under_writes`] saw.
pub struct Handover {
    /// Every client's writes and read-backs.
    pub log: WriteLog,
    /// The old instance's and the new one's exit codes.
    pub codes: (i32, i32),
    /// The old instance's acknowledged writes when the new one started,
    /// and in all; the new instance's.
    pub old_before_new: usize,
    pub old_acked: usize,
    pub new_acked: usize,
    /// Both instances' log lines, for messages.
    pub logs: (Vec<String>, Vec<String>),
}

/// A rolling restart on one database (`--db DB`, a file or a URL): 8
/// writers on the old instance; then SIGTERM to it (one second of lame
/// duck, so it still serves) while a new instance starts beside it and the
/// writers take it on; the old one drains and exits, the new one carries on
/// for 100 more writes, then is stopped too.
pub async fn hand_over_under_writes(db: &str) -> Handover {
    use super::binary::Binary;
    const CLIENTS: usize = 8;
    const MAX_EACH: usize = 2_000;
    let within = Duration::from_secs(20);

    let mut old = Binary::start(&["--db", db, "--drain-delay", "1s"]);
    let writers = Writers::start(&[old.addr], CLIENTS, MAX_EACH, true);
    writers.wait_acked(100, within).await;

    old.signal(libc::SIGTERM);
    let mut new = tokio::task::block_in_place(|| Binary::start(&["--db", db]));
    writers.add_target(new.addr);
    let old_before_new = writers.acked_by(old.addr);
    let old_code = tokio::task::block_in_place(|| old.exit_code_within(within));
    // The new instance carries on alone for a while.
    let so_far = writers.acked();
    writers.wait_acked(so_far + 100, within).await;
    writers.stop();
    let (old_acked, new_acked) = (writers.acked_by(old.addr), writers.acked_by(new.addr));
    let log = writers.join().await;
    new.signal(libc::SIGTERM);
    let new_code = tokio::task::block_in_place(|| new.exit_code_within(within));
    Handover {
        log,
        codes: (old_code, new_code),
        old_before_new,
        old_acked,
        new_acked,
        logs: (old.logs(), new.logs()),
    }
}

impl Handover {
    /// Both instances exited 0, no client saw an error, read-backs were
    /// served, and both instances wrote while they overlapped.
    pub fn assert_clean(&self) {
        let log = &self.log;
        eprintln!(
            "acked {} (old {} before the new one started, {} in all; new {}), read back {}",
            log.acked.len(),
            self.old_before_new,
            self.old_acked,
            self.new_acked,
            log.reads
        );
        assert_eq!(self.codes.0, 0, "old instance: {:#?}", self.logs.0);
        assert_eq!(self.codes.1, 0, "new instance: {:#?}", self.logs.1);
        assert!(
            log.failures.is_empty(),
            "clients saw errors: {:?}",
            log.failures
        );
        assert!(log.reads > 0, "read-backs were served");
        assert!(
            self.old_acked > self.old_before_new && self.new_acked > 0,
            "both instances wrote while they overlapped"
        );
    }
}
