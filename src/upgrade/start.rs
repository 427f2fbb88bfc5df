//! Step 1 of an upgrade, in the old process: start the new one.
//!
//! The new process is the binary *as it is on disk now*, with the same
//! arguments and environment, plus three things:
//!
//! | fd / variable | what it is |
//! |---|---|
//! | fd 3, `LISTEN_FDS=1`, `LISTEN_FDNAMES=http` | the listening socket, announced the systemd way, so the new process serves it instead of binding |
//! | `LISTEN_PID=<its own pid>` | systemd's guard against variables meant for someone else (see below) |
//! | fd 4, `LAMEDUCK_READY_FD=4` | the write end of the ready pipe ([`super::ready`]) |
//!
//! Every descriptor lameduck opens is close-on-exec (Rust's standard
//! library and Tokio open them that way), so of ours the new process gets
//! these two and no other: the socket and the pipe are copied onto 3 and 4
//! in the child only, after the fork, and `dup2` leaves the copies
//! inheritable. The parent's own descriptors never change.
//!
//! # `LISTEN_PID`, between fork and exec
//!
//! `LISTEN_PID` must be the new process's pid, which only exists after
//! `fork`. Between `fork` and `exec` the child of a multi-threaded program
//! may only make async-signal-safe calls: no allocation, no lock, so no
//! `setenv`. So the whole `execve` is prepared before the fork — path,
//! arguments, environment, with a `LISTEN_PID=` entry that has room for ten
//! digits — and the child only writes its pid into that room and calls
//! `execve` itself from `pre_exec` (`getpid`, `dup2` and `execve` are
//! async-signal-safe). If `execve` fails, `pre_exec` returns the error and
//! the spawn fails with it, as it would have without the trick.
//!
//! Leaving `LISTEN_PID` unset would work with the `listenfd` crate, which
//! accepts a missing one; but systemd's own `sd_listen_fds(3)` does not, and
//! a *wrong* one makes `listenfd` ignore the socket, so setting it right is
//! what lets any socket-activated program be the new process.

use std::ffi::{OsStr, OsString, c_char};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use tokio::process::{Child, Command};

use super::ready::{READY_FD, READY_FD_VAR, ReadyWait};

/// The descriptor the listening socket is given in the new process: the
/// first one systemd's protocol uses (`SD_LISTEN_FDS_START`).
pub(crate) const LISTEN_FD: RawFd = 3;

/// The name of the socket in `LISTEN_FDNAMES`.
const LISTEN_FD_NAME: &str = "http";

/// What to run: recorded once, at start-up.
#[derive(Debug)]
pub struct Origin {
    /// The binary's path as it was when this process started.
    ///
    /// Recorded at start-up because by the time of an upgrade the file may
    /// have been replaced, and both ways of asking then are wrong:
    /// `/proc/self/exe` is a link to the *running* inode — the old,
    /// possibly deleted, file — so exec'ing it would start the old code
    /// again; and `std::env::current_exe()` reads that link, so after a
    /// replace it names `/path/lameduck (deleted)`. The path recorded at
    /// start-up names the file by where it lives, so a new file renamed
    /// over it (a new inode) is what runs.
    ///
    /// A symlink is resolved once, here: a deploy that repoints a symlink
    /// (`current -> releases/v2`) is not followed. Replace the file itself,
    /// or start lameduck through a path without symlinks.
    exe: io::Result<PathBuf>,
    /// `argv`, `argv[0]` included, passed on unchanged.
    args: Vec<OsString>,
}

impl Origin {
    /// Records where this process came from. Call at start-up.
    pub fn record() -> Origin {
        Origin {
            exe: std::env::current_exe(),
            args: std::env::args_os().collect(),
        }
    }

    /// The binary an upgrade runs.
    pub fn exe(&self) -> io::Result<&PathBuf> {
        self.exe
            .as_ref()
            .map_err(|e| io::Error::new(e.kind(), format!("binary path unknown: {e}")))
    }
}

/// A new process that has been started, and the pipe it will say "ready"
/// on.
pub(crate) struct Started {
    pub child: Child,
    pub ready: ReadyWait,
}

/// Starts the new process on `socket`. See the module docs.
pub(crate) fn start(origin: &Origin, socket: BorrowedFd<'_>) -> io::Result<Started> {
    let exe = origin.exe()?;
    // Both ends close-on-exec: the child gets the write end as fd 4 only,
    // through the `dup2` below.
    let (ready_read, ready_write) = io::pipe()?;
    // Copies numbered 10 and above, so that `dup2` onto 3 and 4 in the
    // child can never overwrite one source with the other.
    let socket = dup_above(socket, 10)?;
    let ready_write = dup_above(ready_write.as_fd(), 10)?;
    let (socket_fd, ready_fd) = (socket.as_raw_fd(), ready_write.as_raw_fd());
    let mut image = ExecImage::new(exe.as_os_str(), &origin.args, child_env())?;

    let mut command = Command::new(exe);
    command.args(origin.args.iter().skip(1));
    // SAFETY: the closure runs in the child between fork and exec, and
    // makes only async-signal-safe calls (dup2, getpid, execve) and writes
    // to memory prepared before the fork; see the module docs.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(socket_fd, LISTEN_FD) < 0 || libc::dup2(ready_fd, READY_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            image.set_listen_pid(libc::getpid() as u32);
            libc::execve(image.path(), image.argv(), image.envp());
            Err(io::Error::last_os_error())
        });
    }
    let child = command.spawn()?;
    // Our copies of the socket and of the pipe's write end go now. The
    // socket's, because the server's listener is the one that serves; the
    // pipe's, because the read end sees end-of-file only once *every*
    // write end is closed: with ours open, a child that dies would look
    // like one that is still starting.
    drop(command);
    drop((socket, ready_write));
    Ok(Started {
        child,
        ready: ReadyWait::new(ready_read.into())?,
    })
}

/// This process's environment, minus what described *our* inheritance,
/// plus what describes the child's. `LISTEN_PID` is added by [`ExecImage`].
fn child_env() -> Vec<(OsString, OsString)> {
    let ours = [
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "LISTEN_FDS_FIRST_FD",
        READY_FD_VAR,
    ];
    let mut env: Vec<_> = std::env::vars_os()
        .filter(|(k, _)| !ours.iter().any(|o| k == OsStr::new(o)))
        .collect();
    for (k, v) in [
        ("LISTEN_FDS", "1".to_string()),
        ("LISTEN_FDNAMES", LISTEN_FD_NAME.to_string()),
        (READY_FD_VAR, READY_FD.to_string()),
    ] {
        env.push((k.into(), v.into()));
    }
    env
}

/// `fcntl(F_DUPFD_CLOEXEC)`: a close-on-exec copy of `fd` numbered `min`
/// or above.
fn dup_above(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl on a descriptor we borrow; the new one is ours alone.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Everything `execve(2)` takes, laid out in memory before the fork, so the
/// child only has to read it (and write its pid into one slot).
struct ExecImage {
    path: CStrings,
    argv: CStrings,
    envp: CStrings,
    /// The ten bytes after `LISTEN_PID=` in `envp`, all NUL until the
    /// child writes its pid there.
    listen_pid: *mut u8,
}

// SAFETY: the raw pointers all point into buffers this value owns and frees;
// nothing else holds them. Send/Sync are needed because `pre_exec` demands
// them; the closure only ever runs in the child, on one thread.
unsafe impl Send for ExecImage {}
unsafe impl Sync for ExecImage {}

/// Room for any `u32` in decimal: a pid is at most 4194304 on Linux.
const PID_DIGITS: usize = 10;

impl ExecImage {
    fn new(
        path: &OsStr,
        args: &[OsString],
        env: Vec<(OsString, OsString)>,
    ) -> io::Result<ExecImage> {
        let path = CStrings::new([no_nul(path.as_bytes().to_vec())?]);
        let argv = args
            .iter()
            .map(|a| no_nul(a.as_bytes().to_vec()))
            .collect::<io::Result<Vec<_>>>()?;
        let mut envp = Vec::with_capacity(env.len() + 1);
        // The slot goes first so that its index is known. The NULs after
        // the pid end the string early; the buffer keeps its length.
        envp.push([b"LISTEN_PID=".as_slice(), &[0; PID_DIGITS]].concat());
        for (k, v) in &env {
            envp.push(no_nul([k.as_bytes(), b"=", v.as_bytes()].concat())?);
        }
        let (argv, envp) = (CStrings::new(argv), CStrings::new(envp));
        let listen_pid = envp.bytes_mut(0).wrapping_add(b"LISTEN_PID=".len());
        Ok(ExecImage {
            path,
            argv,
            envp,
            listen_pid,
        })
    }

    /// Writes `pid` in decimal into the `LISTEN_PID=` slot. No allocation:
    /// safe to call between fork and exec.
    fn set_listen_pid(&mut self, pid: u32) {
        let mut digits = [0u8; PID_DIGITS];
        let mut n = pid;
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in 0..PID_DIGITS {
            let byte = if i < len { digits[len - 1 - i] } else { 0 };
            // SAFETY: `listen_pid` points at PID_DIGITS bytes owned by
            // `self.envp`.
            unsafe { *self.listen_pid.add(i) = byte };
        }
    }

    fn path(&self) -> *const c_char {
        self.path.ptrs[0]
    }

    fn argv(&self) -> *const *const c_char {
        self.argv.ptrs.as_ptr()
    }

    fn envp(&self) -> *const *const c_char {
        self.envp.ptrs.as_ptr()
    }
}

/// `bytes`, if it holds no NUL: C would read it as cut short there.
fn no_nul(bytes: Vec<u8>) -> io::Result<Vec<u8>> {
    if bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an argument or variable contains a NUL byte",
        ));
    }
    Ok(bytes)
}

/// A NULL-terminated array of NUL-terminated strings, as C wants them.
/// Each string is a boxed slice whose length is kept by the box, not by
/// its first NUL, so one may be written in place and still be freed whole.
struct CStrings {
    buffers: Vec<*mut [u8]>,
    ptrs: Vec<*const c_char>,
}

impl CStrings {
    fn new(items: impl IntoIterator<Item = Vec<u8>>) -> CStrings {
        let mut out = CStrings {
            buffers: Vec::new(),
            ptrs: Vec::new(),
        };
        for mut item in items {
            item.push(0);
            let buffer = Box::into_raw(item.into_boxed_slice());
            out.buffers.push(buffer);
            out.ptrs.push(buffer as *const c_char);
        }
        out.ptrs.push(std::ptr::null());
        out
    }

    /// The bytes of string `i`, for writing in place.
    fn bytes_mut(&self, i: usize) -> *mut u8 {
        self.buffers[i] as *mut u8
    }
}

impl Drop for CStrings {
    fn drop(&mut self) {
        for buffer in self.buffers.drain(..) {
            // SAFETY: each came from `Box::into_raw` in `new`, once.
            drop(unsafe { Box::from_raw(buffer) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    /// The pid lands in the slot with no leading zeros and ends the string:
    /// what `sd_listen_fds` and `listenfd` both parse.
    #[test]
    fn the_listen_pid_slot_reads_as_the_pid_written_into_it() {
        let env = vec![("A".into(), "b".into())];
        let mut image = ExecImage::new(OsStr::new("/bin/true"), &[], env).unwrap();
        for pid in [u32::MAX, 1, 42, 4_194_304] {
            image.set_listen_pid(pid);
            // SAFETY: envp[0] is the NUL-terminated slot.
            let slot = unsafe { CStr::from_ptr(*image.envp()) };
            assert_eq!(slot.to_str().unwrap(), format!("LISTEN_PID={pid}"));
        }
        // SAFETY: envp[1] is "A=b", envp[2] the terminating NULL.
        unsafe {
            assert_eq!(CStr::from_ptr(*image.envp().add(1)).to_bytes(), b"A=b");
            assert!((*image.envp().add(2)).is_null());
        }
    }
}
