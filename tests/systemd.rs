//! lameduck and systemd: the shipped units pass `systemd-analyze verify`,
//! socket activation hands lameduck its socket, and the `sd_notify`
//! messages come in the right order from the right process.
//!
//! The tests that run systemd's own tools are `#[ignore]`d, because a fresh
//! machine may lack them; `.ci/run` installs the `systemd` package and runs
//! them with `cargo test --test systemd -- --ignored`. Run them by hand the same way.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::binary::{Binary, Successor, become_subreaper, field};

const WITHIN: Duration = Duration::from_secs(20);
const BINARY: &str = env!("CARGO_BIN_EXE_lameduck");
const UNITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/systemd");

/// `systemd-analyze verify` finds nothing to say about the shipped units,
/// once `ExecStart=` points at the binary just built. systemd before 253
/// does not know `Type=notify-reload` yet: there the test accepts exactly
/// that one complaint, and verifies a copy with `Type=notify` in its place
/// to prove the rest is clean.
#[test]
#[ignore = "needs systemd: apt-get install systemd"]
fn the_shipped_units_pass_systemd_analyze_verify() {
    let dir = scratch_dir("verify");
    let service = std::fs::read_to_string(Path::new(UNITS).join("lameduck.service")).unwrap();
    let exec_start = "ExecStart=/usr/local/bin/lameduck";
    assert!(
        service.contains(exec_start),
        "ExecStart= moved; update the test"
    );
    let service = service.replace(exec_start, &format!("ExecStart={BINARY}"));
    std::fs::copy(
        Path::new(UNITS).join("lameduck.socket"),
        dir.join("lameduck.socket"),
    )
    .unwrap();

    let version = systemd_version();
    if version >= 253 {
        assert_eq!(verify(&dir, &service), Vec::<String>::new());
    } else {
        let complaints = verify(&dir, &service);
        assert_eq!(complaints.len(), 1, "{complaints:?}");
        assert!(
            complaints[0].ends_with("Failed to parse service type, ignoring: notify-reload"),
            "{complaints:?}"
        );
        eprintln!("systemd {version} < 253: Type=notify-reload verified as Type=notify");
        let older = service.replace("Type=notify-reload", "Type=notify");
        assert_eq!(verify(&dir, &older), Vec::<String>::new());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Started by `systemd-socket-activate`, which listens and execs lameduck
/// on the first connection, lameduck serves the inherited socket (and says
/// so) instead of binding `--addr`; that first connection is answered.
#[test]
#[ignore = "needs systemd: apt-get install systemd"]
fn socket_activation_serves_the_inherited_socket() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // The first connection is what makes systemd-socket-activate start
    // lameduck; it waits in the socket's queue meanwhile.
    let first = std::thread::spawn(move || {
        let start = Instant::now();
        loop {
            if let Ok(status) = get_status(addr, "/livez") {
                return status;
            }
            assert!(start.elapsed() < WITHIN, "never connected to {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut command = Command::new("systemd-socket-activate");
    command
        .args(["-l", &addr.to_string()])
        // It passes on only the variables it is told to.
        .args(["-E", "RUST_LOG=info", "-E", "LAMEDUCK_DB=:memory:"])
        .args([BINARY, "--addr", "127.0.0.1:1"]);
    let mut bin = Binary::spawn(command, &[]);

    assert_eq!(first.join().unwrap(), 200);
    assert_eq!(bin.addr, addr, "serves the inherited socket, not --addr");
    let line = bin.wait_for_log("listening on", WITHIN);
    assert!(
        line.contains(&format!("listening on {addr} (inherited)")),
        "{line}"
    );
    assert_eq!(get_status(addr, "/livez").unwrap(), 200);
    // systemd-socket-activate exec'd lameduck in its own process.
    bin.signal(libc::SIGTERM);
    assert_eq!(bin.exit_code_within(WITHIN), 0);
}

/// The `sd_notify` conversation of a start, an upgrade and a stop, read
/// from a `NOTIFY_SOCKET` the test owns, with each sender's pid from its
/// credentials: `READY=1` from the first process; on SIGHUP `RELOADING=1`
/// with `MONOTONIC_USEC`, then `MAINPID=<new>` and `READY=1`, both from
/// the old process, which says nothing more; on SIGTERM to the new one,
/// `STOPPING=1` from the new one.
#[test]
fn the_notify_socket_hears_ready_reloading_mainpid_and_stopping() {
    become_subreaper();
    let dir = scratch_dir("notify");
    let socket_path = dir.join("notify.sock");
    let socket = NotifySocket::bind(&socket_path);
    let mut bin = Binary::start_from(
        Path::new(BINARY),
        &[],
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    let old = bin.pid();

    let (from, ready) = socket.next();
    assert_eq!(from, old);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");

    let before = monotonic_usec();
    bin.signal(libc::SIGHUP);
    let (from, reloading) = socket.next();
    assert_eq!(from, old);
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading}");
    let usec: u64 = value_of(&reloading, "MONOTONIC_USEC").parse().unwrap();
    assert!(usec >= before && usec <= monotonic_usec(), "{reloading}");

    let (from, handover) = socket.next();
    let report = bin.wait_for_log("shutdown report cause=\"upgrade\"", WITHIN);
    let new = Successor {
        pid: field(&report, "new_pid").parse().unwrap(),
    };
    assert_eq!(from, old, "the old process speaks for the new one");
    assert_eq!(value_of(&handover, "MAINPID"), new.pid.to_string());
    assert!(handover.lines().any(|l| l == "READY=1"), "{handover}");
    assert_eq!(bin.exit_code_within(WITHIN), 0);
    assert_eq!(socket.try_next(), None, "the old process drains silently");

    new.signal(libc::SIGTERM);
    let (from, stopping) = socket.next();
    assert_eq!(from, new.pid);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    assert!(stopping.contains("EXTEND_TIMEOUT_USEC="), "{stopping}");
    assert_eq!(new.exit_code_within(WITHIN), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `NOTIFY_SOCKET` as systemd has it: a datagram socket that receives
/// each sender's credentials (`SO_PASSCRED`), so it knows who spoke.
struct NotifySocket(UnixDatagram);

impl NotifySocket {
    fn bind(path: &Path) -> NotifySocket {
        let socket = UnixDatagram::bind(path).unwrap();
        let on: libc::c_int = 1;
        // SAFETY: setsockopt with a pointer to a live c_int and its size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PASSCRED,
                &on as *const _ as *const libc::c_void,
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        NotifySocket(socket)
    }

    /// The next message and its sender's pid; panics after [`WITHIN`].
    fn next(&self) -> (u32, String) {
        self.receive(WITHIN).expect("no sd_notify message in time")
    }

    /// A message that arrives within half a second, if any.
    fn try_next(&self) -> Option<(u32, String)> {
        self.receive(Duration::from_millis(500))
    }

    fn receive(&self, within: Duration) -> Option<(u32, String)> {
        self.0.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 4096];
        let mut control = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: a zeroed msghdr is valid; the pointers set below point
        // at live buffers of the given sizes.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = size_of_val(&control);
        // SAFETY: recvmsg into the buffers described by `msg`.
        let n = unsafe { libc::recvmsg(self.0.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&buf[..n as usize]).into_owned();
        // SAFETY: walking the control messages the kernel just wrote.
        let pid = unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            assert!(!cmsg.is_null(), "no credentials with {text:?}");
            assert_eq!((*cmsg).cmsg_type, libc::SCM_CREDENTIALS);
            (*(libc::CMSG_DATA(cmsg) as *const libc::ucred)).pid as u32
        };
        Some((pid, text))
    }
}

/// `KEY=value` from a notification.
fn value_of<'a>(message: &'a str, key: &str) -> &'a str {
    message
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {message:?}"))
}

/// CLOCK_MONOTONIC in microseconds, the clock of `MONOTONIC_USEC`.
fn monotonic_usec() -> u64 {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime into a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// `systemd-analyze verify` on the socket unit beside `service`: every line
/// it prints, on either stream. Its exit code alone says too little: it
/// exits 0 with warnings.
fn verify(dir: &Path, service: &str) -> Vec<String> {
    std::fs::write(dir.join("lameduck.service"), service).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.join("lameduck.socket"))
        .arg(dir.join("lameduck.service"))
        .output()
        .expect("systemd-analyze");
    assert!(out.status.success(), "{out:?}");
    [out.stdout, out.stderr]
        .iter()
        .flat_map(|s| {
            String::from_utf8_lossy(s)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// The major version of the installed systemd tools.
fn systemd_version() -> u32 {
    let out = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .expect("systemd-analyze");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no version in {text:?}"))
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on a fresh connection: the status.
fn get_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(WITHIN))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {answer:?}")))
}

/// A fresh directory for one test.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lameduck-systemd-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A failed upgrade is a finished reload too: `RELOADING=1`, then
/// `READY=1` from the old process again, with a `STATUS=` that says so.
#[test]
fn a_failed_upgrade_tells_the_service_manager_the_old_process_serves_on() {
    let dir = scratch_dir("notify-failed");
    let exe = dir.join("lameduck");
    std::fs::copy(BINARY, &exe).unwrap();
    let socket_path = dir.join("notify.sock");
    let socket = NotifySocket::bind(&socket_path);
    let mut bin = Binary::start_from(
        &exe,
        &[],
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    // A broken build, renamed over the binary as a deploy would.
    let staged = dir.join("lameduck.new");
    std::fs::write(&staged, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&staged, &exe).unwrap();
    assert!(socket.next().1.contains("READY=1"));

    bin.signal(libc::SIGHUP);
    assert!(socket.next().1.contains("RELOADING=1"));
    let (from, failed) = socket.next();
    assert_eq!(from, bin.pid());
    assert!(failed.lines().any(|l| l == "READY=1"), "{failed}");
    assert!(
        value_of(&failed, "STATUS").starts_with("upgrade failed"),
        "{failed}"
    );
    assert!(!failed.contains("MAINPID"), "{failed}");

    bin.signal(libc::SIGTERM);
    assert!(socket.next().1.contains("STOPPING=1"));
    assert_eq!(bin.exit_code_within(WITHIN), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A drain that runs long keeps telling systemd it is making progress: an
/// `EXTEND_TIMEOUT_USEC` with `STOPPING=1`, then another every 2 s, each
/// reaching past the next, while a 2.5 s request finishes.
#[test]
fn a_long_drain_extends_the_stop_timeout_while_it_runs() {
    let dir = scratch_dir("notify-extend");
    let socket_path = dir.join("notify.sock");
    let socket = NotifySocket::bind(&socket_path);
    let mut bin = Binary::start_from(
        Path::new(BINARY),
        &[],
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    assert!(socket.next().1.contains("READY=1"));
    let addr = bin.addr;
    let slow = std::thread::spawn(move || get_status(addr, "/api/slow?ms=2500"));
    let start = Instant::now();
    while !get_metrics(addr).contains("lameduck_requests_in_flight 1") {
        assert!(start.elapsed() < WITHIN, "the slow request never started");
        std::thread::sleep(Duration::from_millis(10));
    }

    bin.signal(libc::SIGTERM);
    let (_, stopping) = socket.next();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    let first: u64 = value_of(&stopping, "EXTEND_TIMEOUT_USEC").parse().unwrap();
    let (_, again) = socket.next();
    let second: u64 = value_of(&again, "EXTEND_TIMEOUT_USEC").parse().unwrap();
    // Each reaches past the next one, sent 2 s later.
    assert!(first > 2_000_000 && second > 2_000_000, "{first} {second}");
    assert_eq!(slow.join().unwrap().unwrap(), 200);
    assert_eq!(bin.exit_code_within(WITHIN), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `GET /metrics`, the body.
fn get_metrics(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}
