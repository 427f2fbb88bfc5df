//! What an HTTP/1 connection is doing, told by the parts that know.
//!
//! Three timeouts and the drain need one fact about a keep-alive
//! connection: is it reading a request head, answering a request, or idle
//! between two, and since when? hyper does not say. Three places in
//! lameduck each see one step, and each writes it here with one relaxed
//! store:
//!
//! | step | who sees it | activity |
//! |---|---|---|
//! | accepted | `conn::serve` | `Head`, since the accept |
//! | a head is complete | the service, when hyper calls it | `Busy` |
//! | the response is written | the response body, when hyper drops it | `Idle` |
//! | a byte of the next head | the IO (`conn::io`), on a read | `Head` |
//!
//! The times are taken lazily. A step only says *that* it happened;
//! [`ConnState::now`], called by the connection's timer
//! (`http1_deadlines`) after hyper has done all it can, reads the clock if
//! the activity is new. A keep-alive request therefore costs one clock read
//! (when it goes idle), and a head that arrives whole costs none: it is
//! `Busy` again before anyone looks.
//!
//! That one read is of the kernel's *coarse* clock ([`coarse_nanos`]):
//! the time of the last scheduler tick, which the kernel keeps in memory
//! it shares with every process. Reading it is a few loads. The precise
//! clock (`Instant::now`) reads the CPU's time-stamp counter and scales
//! it, which costs tens of nanoseconds, and in a virtual machine can cost
//! far more: measured here, it was the largest single cost lameduck added
//! to a keep-alive request. A tick is 1 to 4 ms, and the times kept here
//! only decide timeouts of seconds and a grace of a quarter second.
//!
//! Everything here is written and read by the connection's own task (the
//! service and the body of an HTTP/1 connection run inside it), so the
//! atomics are never contended; they are atomics because the task moves
//! between threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// What an HTTP/1 connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Waiting for a request head of which a byte has come, or for the
    /// first head: the header timeout runs.
    Head,
    /// A request is being answered: its handler's timeout and the write
    /// stall limit run, not a connection timer.
    Busy,
    /// The last response is written and no byte of the next request has
    /// come: the idle timeout runs, and at the drain the keep-alive grace.
    Idle,
}

/// A connection's activity and when it began.
#[derive(Debug)]
pub struct ConnState {
    accepted_at: Instant,
    /// The coarse clock at `accepted_at`.
    accepted_coarse: u64,
    /// The activity in the top two bits; below them, when it began, in
    /// nanoseconds after `accepted_at` on the coarse clock, or
    /// [`UNSTAMPED`] until someone asks. One word, so each step is one
    /// store.
    word: AtomicU64,
    /// [`CLIENT_CLOSES`], [`NO_LINGER`] and [`PAST_DEADLINE`].
    flags: AtomicU8,
    /// The socket's descriptor, to ask the kernel whether a request is
    /// already waiting before the connection is closed as idle
    /// ([`ConnState::bytes_waiting`]); `-1` for an IO that is not a
    /// socket (the fuzz harness's). It lives as long as the connection
    /// task, which owns the socket and this state.
    socket: i32,
}

const PHASE_SHIFT: u32 = 62;
const HEAD: u64 = 0;
const BUSY: u64 = 1 << PHASE_SHIFT;
const IDLE: u64 = 2 << PHASE_SHIFT;
const PHASE_MASK: u64 = 3 << PHASE_SHIFT;
/// The activity began, but nobody has read the clock for it yet.
const UNSTAMPED: u64 = !PHASE_MASK;

/// The client asked to close after its request, and sent no body: no
/// byte will follow the request (RFC 9112 §9.6: a client that sends
/// `close` must not send another request), so the close need not linger.
const CLIENT_CLOSES: u8 = 1;
/// The drain closed this connection idle: no response is on its way, so
/// there is nothing for a linger to protect.
const NO_LINGER: u8 = 2;
/// The shutdown deadline has passed: once the last response is
/// acknowledged the close need not wait for the client's FIN, because the
/// exit (which the service manager's kill timer is counting) would.
const PAST_DEADLINE: u8 = 4;

impl ConnState {
    /// A connection accepted at `accepted_at`, waiting for its first head
    /// since then, over an IO that is not a socket (the fuzz harness's).
    #[cfg_attr(not(feature = "test-harness"), allow(dead_code))]
    pub fn new(accepted_at: Instant) -> Arc<Self> {
        Self::of_socket(accepted_at, -1)
    }

    /// The state of a connection over the socket `fd`.
    pub fn of_socket(accepted_at: Instant, fd: i32) -> Arc<Self> {
        Arc::new(ConnState {
            accepted_at,
            accepted_coarse: coarse_nanos(),
            word: AtomicU64::new(HEAD),
            flags: AtomicU8::new(0),
            socket: fd,
        })
    }

    /// When the connection was accepted.
    pub fn accepted_at(&self) -> Instant {
        self.accepted_at
    }

    /// The IO read bytes: if the connection was idle, the next head has
    /// begun. (Bytes read while `Busy` are the request's body, or a
    /// pipelined head that hyper parses as soon as the response is out.)
    #[inline]
    pub fn bytes_arrived(&self) {
        if self.word.load(Relaxed) & PHASE_MASK == IDLE {
            self.word.store(HEAD | UNSTAMPED, Relaxed);
        }
    }

    /// hyper handed the service a complete head. `client_closes`: see
    /// [`CLIENT_CLOSES`].
    #[inline]
    pub fn request_started(&self, client_closes: bool) {
        self.word.store(BUSY, Relaxed);
        if client_closes {
            self.flags.fetch_or(CLIENT_CLOSES, Relaxed);
        }
    }

    /// hyper is done with the response's body: the connection waits for
    /// the next request.
    #[inline]
    pub fn response_finished(&self) {
        self.word.store(IDLE | UNSTAMPED, Relaxed);
    }

    /// The activity and when it began, reading the clock if nobody has yet.
    pub fn now(&self) -> (Activity, Instant) {
        let word = self.word.load(Relaxed);
        let activity = match word & PHASE_MASK {
            HEAD => Activity::Head,
            BUSY => return (Activity::Busy, self.accepted_at),
            _ => Activity::Idle,
        };
        let mut nanos = word & !PHASE_MASK;
        if nanos == UNSTAMPED {
            nanos = coarse_nanos().saturating_sub(self.accepted_coarse) & !PHASE_MASK;
            self.word.store((word & PHASE_MASK) | nanos, Relaxed);
        }
        (activity, self.accepted_at + Duration::from_nanos(nanos))
    }

    /// Whether closing after a response should linger (`lingering_close`).
    pub fn lingers(&self) -> bool {
        self.flags.load(Relaxed) & NO_LINGER == 0
    }

    /// Whether the client said it sends nothing more; see
    /// [`CLIENT_CLOSES`].
    pub fn client_closes(&self) -> bool {
        self.flags.load(Relaxed) & CLIENT_CLOSES != 0
    }

    /// Whether the deadline had passed when the connection last answered;
    /// see [`PAST_DEADLINE`].
    pub fn past_deadline(&self) -> bool {
        self.flags.load(Relaxed) & PAST_DEADLINE != 0
    }

    /// The shutdown deadline has passed: the close waits for the
    /// acknowledgement of what was sent, not for the client's FIN.
    pub fn deadline_passed(&self) {
        self.flags.fetch_or(PAST_DEADLINE, Relaxed);
    }

    /// True unless bytes written to the socket still wait for the peer's
    /// acknowledgement (`SIOCOUTQ`, the send queue's unacknowledged bytes,
    /// is above 0). An IO that is not a socket (the fuzz harness's), or a
    /// socket the kernel cannot answer for, has nothing to wait for: a
    /// close must not wait on a question with no answer.
    pub fn all_acked(&self) -> bool {
        if self.socket < 0 {
            return true;
        }
        let mut unacked: libc::c_int = 0;
        // SAFETY: `socket` is the connection's open descriptor (see the
        // field), and SIOCOUTQ (TIOCOUTQ on Linux) writes one int.
        let rc = unsafe { libc::ioctl(self.socket, libc::TIOCOUTQ, &mut unacked) };
        rc != 0 || unacked == 0
    }

    /// The drain closes this idle connection: no linger.
    pub fn skip_linger(&self) {
        self.flags.fetch_or(NO_LINGER, Relaxed);
    }

    /// When this connection ages out (`--max-connection-age`, jittered by
    /// the state's address, which names the connection), if the flag is
    /// set.
    pub fn ages_out_at(&self, age: Option<Duration>) -> Option<Instant> {
        let key = self as *const ConnState as u64;
        crate::conn::max_age::due(age, self.accepted_at, key)
    }

    /// True once the connection is past its age.
    pub fn aged_out(&self, age: Option<Duration>) -> bool {
        self.ages_out_at(age).is_some_and(|at| at <= Instant::now())
    }

    /// True if the kernel holds bytes the server has not read yet: the
    /// client's next request, sent before the close. "Idle" is what the
    /// server has *seen*; a request that has arrived but whose wake-up
    /// the runtime has not yet delivered (a busy worker, a loaded
    /// machine) is not seen. One `FIONREAD` answers it, and is asked only
    /// when an idle connection is about to be closed.
    pub fn bytes_waiting(&self) -> bool {
        if self.socket < 0 {
            return false;
        }
        let mut waiting: libc::c_int = 0;
        // SAFETY: `socket` is the connection's open descriptor (see the
        // field), and FIONREAD writes one int to `waiting`.
        let rc = unsafe { libc::ioctl(self.socket, libc::FIONREAD, &mut waiting) };
        rc == 0 && waiting > 0
    }
}

/// The kernel's coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`), in
/// nanoseconds: the time of the last scheduler tick. See the module docs.
fn coarse_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to; the clock id is a
    // constant every Linux since 2.6.32 knows, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Held by an HTTP/1 response's body; dropped by hyper when the body is
/// written (or the connection ends), which makes the connection idle.
#[derive(Debug)]
pub struct ResponseDone(pub Arc<ConnState>);

impl Drop for ResponseDone {
    fn drop(&mut self) {
        self.0.response_finished();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_goes_head_busy_idle_and_back_to_head_on_a_byte() {
        let state = ConnState::new(Instant::now());
        let (activity, since) = state.now();
        assert_eq!(activity, Activity::Head);
        assert_eq!(since, state.accepted_at());

        state.bytes_arrived(); // more of the first head: still since accept
        assert_eq!(state.now(), (Activity::Head, state.accepted_at()));

        state.request_started(false);
        assert_eq!(state.now().0, Activity::Busy);
        state.bytes_arrived(); // a body: still busy
        assert_eq!(state.now().0, Activity::Busy);

        drop(ResponseDone(state.clone()));
        let (activity, idle_since) = state.now();
        assert_eq!(activity, Activity::Idle);
        assert!(idle_since >= state.accepted_at());
        // Asked again: the same stamp, not a new clock read.
        assert_eq!(state.now(), (Activity::Idle, idle_since));

        // Longer than a tick of the coarse clock.
        std::thread::sleep(Duration::from_millis(20));
        state.bytes_arrived();
        let (activity, head_since) = state.now();
        assert_eq!(activity, Activity::Head);
        assert!(head_since > idle_since);
        assert!(state.lingers() && !state.client_closes());
    }

    #[test]
    fn flags_stick() {
        let state = ConnState::new(Instant::now());
        state.request_started(true);
        state.request_started(false);
        assert!(state.client_closes());
        state.skip_linger();
        assert!(!state.lingers());
    }
}
