//! Upgrades with the real binary and real signals: SIGHUP starts the file
//! that is on disk now on the same listening socket, and the old process
//! drains once the new one is ready. Clients on loopback count failed
//! requests across it.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::binary::{Binary, RequestLoop, Successor, become_subreaper, field, is_running};

const WITHIN: Duration = Duration::from_secs(20);
/// The old process's report line after an upgrade.
const UPGRADED: &str = "shutdown report cause=\"upgrade\"";
const REAL: &str = env!("CARGO_BIN_EXE_lameduck");

/// Three upgrades in a row under a small request loop: each time a new
/// process takes over (a new pid, whose `LISTEN_PID` is its own), the old
/// one exits 0 with `cause="upgrade"`, and not one request fails.
#[test]
fn three_upgrades_under_load_fail_no_request() {
    become_subreaper();
    let mut bin = Binary::start(&[]);
    let clients = RequestLoop::start(bin.addr, 4);
    clients.wait_for_more(50, WITHIN);

    let mut serving: Option<Successor> = None;
    for n in 1..=3 {
        let old_pid = serving.as_ref().map_or(bin.pid(), |s| s.pid);
        match &serving {
            None => bin.signal(libc::SIGHUP),
            Some(s) => s.signal(libc::SIGHUP),
        }
        let report = bin.wait_for_nth_log(UPGRADED, n, WITHIN);
        let new = Successor {
            pid: field(&report, "new_pid").parse().unwrap(),
        };
        assert_ne!(new.pid, old_pid);
        assert!(report.contains("outcome=\"drained\""), "{report}");
        let old_exit = match &serving {
            None => bin.exit_code_within(WITHIN),
            Some(old) => old.exit_code_within(WITHIN),
        };
        assert_eq!(old_exit, 0, "the old process exits 0 after an upgrade");
        assert!(new.is_running());
        assert_eq!(listen_pid_of(new.pid), Some(new.pid));
        // The old process is gone: whoever answers now is the new one.
        clients.wait_for_more(50, WITHIN);
        serving = Some(new);
    }

    let (answered, failures) = clients.stop();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    assert!(answered > 150, "{answered}");
    let last = serving.unwrap();
    last.signal(libc::SIGTERM);
    assert_eq!(last.exit_code_within(WITHIN), 0);
}

/// The binary replaced on disk (a new file renamed over the old one) before
/// the SIGHUP is what the new process runs, not the old process's deleted
/// inode: the replacement is a script that records its pid and then
/// exec's lameduck, and the pid it records is the new process's. The old
/// process's log says what happened: no lame-duck phase (nobody needed
/// steering away), and a report whose `lame_duck_end` is `upgrade`.
#[test]
fn the_file_replaced_on_disk_is_what_the_upgrade_runs() {
    become_subreaper();
    let dir = TempDir::new("replaced");
    let exe = dir.install_binary();
    let mut bin = Binary::start_from(&exe, &[], &[]);

    let marker = dir.path.join("marker");
    dir.install_script(&format!(
        "echo $$ > {}\nexec {REAL} \"$@\"",
        marker.display()
    ));
    let running = fs::read_link(format!("/proc/{}/exe", bin.pid())).unwrap();
    assert!(
        running.to_string_lossy().ends_with(" (deleted)"),
        "the old process runs the file that was replaced: {running:?}"
    );

    bin.signal(libc::SIGHUP);
    let report = bin.wait_for_log(UPGRADED, WITHIN);
    let new = Successor {
        pid: field(&report, "new_pid").parse().unwrap(),
    };
    assert_eq!(field(&report, "lame_duck_end"), "upgrade", "{report}");
    assert_eq!(bin.exit_code_within(WITHIN), 0);
    assert_eq!(
        bin.count_logs("phase=\"lame_duck\""),
        0,
        "{:#?}",
        bin.logs()
    );
    let recorded = fs::read_to_string(&marker).expect("the new file ran");
    assert_eq!(recorded.trim(), new.pid.to_string());
    assert_eq!(get_status(bin.addr, "/livez"), Some(200));
    new.signal(libc::SIGTERM);
    assert_eq!(new.exit_code_within(WITHIN), 0);
}

/// An upgrade to a file that exits at once, then to one that never says
/// ready, then to one that also ignores SIGTERM: each time the old process
/// logs why, stops and reaps the new process (SIGKILL for the last; its pid
/// is gone, not a zombie), and serves throughout with no failed request.
/// With the good file back, the next upgrade succeeds.
#[test]
fn a_failed_upgrade_keeps_the_old_process_serving_and_reaps_the_new_one() {
    become_subreaper();
    let dir = TempDir::new("failed");
    let exe = dir.install_binary();
    let mut bin = Binary::start_from(&exe, &["--upgrade-timeout", "1s"], &[]);
    let clients = RequestLoop::start(bin.addr, 3);
    clients.wait_for_more(30, WITHIN);

    let attempts = [
        ("exit 1", "before it was ready|closed its ready pipe"),
        ("exec sleep 1000", "not ready within 1s"),
        // Ignores SIGTERM: it gets SIGKILL after STOP_CHILD_WAIT.
        ("trap '' TERM\nexec sleep 1000", "not ready within 1s"),
    ];
    for (n, (script, why)) in attempts.into_iter().enumerate() {
        dir.install_script(script);
        bin.signal(libc::SIGHUP);
        let started = bin.wait_for_nth_log("new process started", n + 1, WITHIN);
        let pid: u32 = field(&started, "new_pid").parse().unwrap();
        let failed = bin.wait_for_nth_log("upgrade failed", n + 1, WITHIN);
        assert!(
            why.split('|').any(|w| failed.contains(w)),
            "{script}: {failed}"
        );
        bin.wait_for_nth_log("reaped", n + 1, WITHIN);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{script}: the new process {pid} is reaped"
        );
        clients.wait_for_more(30, WITHIN);
    }
    assert_eq!(bin.count_logs("ignored SIGTERM: SIGKILL"), 1);

    dir.install_binary();
    bin.signal(libc::SIGHUP);
    let report = bin.wait_for_log(UPGRADED, WITHIN);
    let new = Successor {
        pid: field(&report, "new_pid").parse().unwrap(),
    };
    assert_eq!(bin.exit_code_within(WITHIN), 0);
    clients.wait_for_more(30, WITHIN);
    let (_, failures) = clients.stop();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    new.signal(libc::SIGTERM);
    assert_eq!(new.exit_code_within(WITHIN), 0);
}

/// A second SIGHUP while the new process has not said ready is ignored,
/// with a log line; SIGTERM then stops (and reaps) the new process, and the
/// old one drains as for any signal and exits 0.
#[test]
fn sighup_during_an_upgrade_is_ignored_and_sigterm_stops_the_new_process() {
    become_subreaper();
    let dir = TempDir::new("interrupted");
    let exe = dir.install_binary();
    let mut bin = Binary::start_from(&exe, &["--upgrade-timeout", "60s"], &[]);
    dir.install_script("exec sleep 1000");

    bin.signal(libc::SIGHUP);
    let started = bin.wait_for_log("new process started", WITHIN);
    let pid: u32 = field(&started, "new_pid").parse().unwrap();
    bin.signal(libc::SIGHUP);
    bin.wait_for_log("upgrade in progress: SIGHUP ignored", WITHIN);
    assert_eq!(bin.count_logs("new process started"), 1);
    assert_eq!(get_status(bin.addr, "/livez"), Some(200));

    bin.signal(libc::SIGTERM);
    bin.wait_for_log("shutting down during an upgrade", WITHIN);
    assert_eq!(bin.exit_code_within(WITHIN), 0);
    let report = bin.wait_for_log("shutdown report", WITHIN);
    assert!(report.contains("cause=\"signal\""), "{report}");
    assert!(bin.logs().iter().any(|l| l.contains("stopped and reaped")));
    assert!(!is_running(pid));
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

/// POSTs keep going across an upgrade with a SQLite file shared by both
/// processes: every item acknowledged with 201, by either process, is
/// there afterwards.
#[test]
fn every_item_acknowledged_across_an_upgrade_is_kept() {
    become_subreaper();
    let dir = TempDir::new("sqlite");
    let db = dir.path.join("items.db");
    let mut bin = Binary::start(&["--db", db.to_str().unwrap()]);
    let addr = bin.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ids, mut failures) = (Vec::new(), 0);
                for i in 0..5_000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    match post_item(addr, &format!("w{w}-{i}")) {
                        Some(id) => ids.push(id),
                        None => failures += 1,
                    }
                }
                (ids, failures)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    bin.signal(libc::SIGHUP);
    let report = bin.wait_for_log(UPGRADED, WITHIN);
    let new = Successor {
        pid: field(&report, "new_pid").parse().unwrap(),
    };
    assert_eq!(bin.exit_code_within(WITHIN), 0);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let (mut ids, mut failures) = (Vec::new(), 0);
    for w in writers {
        let (i, f) = w.join().unwrap();
        ids.extend(i);
        failures += f;
    }
    assert_eq!(failures, 0, "POSTs failed across the upgrade");
    assert!(ids.len() > 20, "{} items", ids.len());
    for id in &ids {
        assert_eq!(
            get_status(addr, &format!("/api/items/{id}")),
            Some(200),
            "item {id}"
        );
    }
    new.signal(libc::SIGTERM);
    assert_eq!(new.exit_code_within(WITHIN), 0);
}

/// The `LISTEN_PID` a process was started with, from its initial
/// environment.
fn listen_pid_of(pid: u32) -> Option<u32> {
    let environ = fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ
        .split(|&b| b == 0)
        .find_map(|v| v.strip_prefix(b"LISTEN_PID="))
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
}

/// `POST /api/items` on a fresh connection; the new item's id if 201.
fn post_item(addr: SocketAddr, name: &str) -> Option<u64> {
    let body = format!("{{\"name\":\"{name}\"}}");
    let answer = exchange(
        addr,
        &format!(
            "POST /api/items HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )?;
    if !answer.starts_with("HTTP/1.1 201") {
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1)?).ok()?;
    json["id"].as_u64()
}

/// `GET path` on a fresh connection; the status.
fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let answer = exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"),
    )?;
    answer.get(9..12)?.parse().ok()
}

/// Sends `request`, reads until the server closes.
fn exchange(addr: SocketAddr, request: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream.set_read_timeout(Some(WITHIN)).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// A directory of its own for a test, holding the file the server runs
/// from (`lameduck`); removed at the end.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("lameduck-upgrade-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }

    /// Puts a copy of the real binary at `lameduck`, as a deploy would: a
    /// new file (a new inode) renamed over the old one.
    fn install_binary(&self) -> PathBuf {
        let staged = self.path.join(".lameduck.new");
        fs::copy(REAL, &staged).unwrap();
        self.replace_with(&staged)
    }

    /// Puts a shell script with `body` at `lameduck`, the same way.
    fn install_script(&self, body: &str) -> PathBuf {
        let staged = self.path.join(".lameduck.new");
        fs::write(&staged, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&staged, fs::Permissions::from_mode(0o755)).unwrap();
        self.replace_with(&staged)
    }

    fn replace_with(&self, staged: &Path) -> PathBuf {
        let exe = self.path.join("lameduck");
        fs::rename(staged, &exe).unwrap();
        exe
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}
