//! Go's two request-head timeouts, built from hyper's one.
//!
//! Go has `ReadHeaderTimeout` (finish the head once you start it) and
//! `IdleTimeout` (start the next request within this long). hyper's HTTP/1
//! server has a single `header_read_timeout`, and its timer starts as soon
//! as hyper *waits* for a head — which, on a keep-alive connection, is the
//! moment the previous response is written. Used as is, it would close every
//! idle keep-alive connection after 5 s instead of 60 s (or let a slowloris
//! client take 60 s per head, if set to the idle value).
//!
//! hyper asks its [`Timer`] for the sleep, so we hand it a per-connection
//! timer whose sleeps know which wait they are:
//!
//! * the **first head** on a connection must be complete within
//!   `header_read_timeout` of the accept (the sniff in
//!   [`crate::connection`] counts against it too);
//! * a **later head** may wait `idle_timeout` for its first byte, and then
//!   has `header_read_timeout` from that byte to finish.
//!
//! "First byte" is seen through [`CountingIo`], which counts bytes read.
//! When the sleep fires, hyper closes the connection (no response: the
//! client has not sent a complete request).
//!
//! hyper's timer does nothing without `.timer(..)`: its default 30 s header
//! timeout is silently off unless a timer is set. lameduck always sets one.
//!
//! The same bookkeeping answers a question the drain asks of every HTTP/1
//! connection: is it idle (waiting for a head of which no byte has come),
//! and since when? See [`HeadClock::idle_since`] and `keepalive_grace`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use hyper::rt::{Sleep, Timer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::lingering_close::Linger;

/// Per-connection bookkeeping shared by [`CountingIo`] and [`HeadTimer`].
#[derive(Debug)]
pub struct HeadClock {
    accepted_at: Instant,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// Bytes read from the socket so far.
    bytes_read: AtomicU64,
    /// Head waits started so far (0 until hyper starts the first).
    heads: AtomicU64,
    /// When the current wait for a later head began, in nanoseconds after
    /// `accepted_at`; [`NOT_IDLE`] while no such wait runs (a request is
    /// being read or answered). With `bytes_at_idle`, what the drain reads
    /// to tell an idle connection from a busy one. Written once per
    /// request: one relaxed store, on a clock value hyper already read.
    idle_at: AtomicU64,
    /// `bytes_read` when that wait began: a byte since means the next
    /// request has started.
    bytes_at_idle: AtomicU64,
    /// Whether closing this connection should linger (see
    /// `lingering_close`). Cleared only when the drain closes a connection
    /// that has been idle for longer than the keep-alive grace: there is no
    /// response left for the client to read.
    linger: AtomicBool,
    /// One tokio timer for all of this connection's head waits. hyper asks
    /// for a new sleep for every head; registering a fresh timer in
    /// Tokio's wheel and removing it again each time costs two trips
    /// through the wheel's lock per keep-alive request. Resetting this one
    /// to a later deadline is a single atomic update. The `Mutex` is never
    /// contended: only this connection's task touches it.
    timer: Mutex<Option<Pin<Box<tokio::time::Sleep>>>>,
}

impl HeadClock {
    /// A clock for a connection accepted at `accepted_at`.
    pub fn new(
        accepted_at: Instant,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(HeadClock {
            accepted_at,
            header_timeout,
            idle_timeout,
            bytes_read: AtomicU64::new(0),
            heads: AtomicU64::new(0),
            idle_at: AtomicU64::new(NOT_IDLE),
            bytes_at_idle: AtomicU64::new(0),
            linger: AtomicBool::new(true),
            timer: Mutex::new(None),
        })
    }

    /// When the first head must be complete.
    pub fn first_head_deadline(&self) -> Instant {
        self.accepted_at + self.header_timeout
    }

    fn add_read(&self, n: usize) {
        self.bytes_read.fetch_add(n as u64, Relaxed);
    }

    /// When this connection became idle, if it is idle now: it answered a
    /// request, hyper waits for the next head, and no byte of it has come.
    /// `None` while a request is read or answered, and for a connection's
    /// first request (its bytes came with the accept).
    pub fn idle_since(&self) -> Option<Instant> {
        let at = self.idle_at.load(Relaxed);
        if at == NOT_IDLE || self.bytes_read.load(Relaxed) != self.bytes_at_idle.load(Relaxed) {
            return None;
        }
        Some(self.accepted_at + Duration::from_nanos(at))
    }

    /// Whether closing should linger; see the `linger` field.
    pub fn lingers(&self) -> bool {
        self.linger.load(Relaxed)
    }

    /// Closing this connection need not linger; see the `linger` field.
    pub fn skip_linger(&self) {
        self.linger.store(false, Relaxed);
    }
}

/// `HeadClock::idle_at` while the connection is not idle.
const NOT_IDLE: u64 = u64::MAX;

/// The [`Timer`] handed to hyper's HTTP/1 builder, one per connection.
#[derive(Debug, Clone)]
pub struct HeadTimer(pub Arc<HeadClock>);

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(PlainSleep {
            inner: tokio::time::sleep(duration),
        })
    }

    /// hyper calls this when it starts waiting for a request head; its
    /// `deadline` is `now + header_read_timeout` (hyper read the clock just
    /// before), which we replace with the rule above.
    fn sleep_until(&self, hyper_deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let clock = self.0.clone();
        let index = clock.heads.fetch_add(1, Relaxed);
        let bytes_at_start = clock.bytes_read.load(Relaxed);
        let (deadline, started) = if index == 0 {
            (clock.first_head_deadline(), true)
        } else {
            // hyper's deadline minus its timeout is the "now" it just
            // read: one clock read per request instead of two.
            let now = hyper_deadline - clock.header_timeout;
            clock.bytes_at_idle.store(bytes_at_start, Relaxed);
            let idle_at = now.saturating_duration_since(clock.accepted_at).as_nanos();
            clock.idle_at.store(idle_at as u64, Relaxed);
            (now + clock.idle_timeout, false)
        };
        Box::pin(HeadSleep {
            clock,
            index,
            deadline,
            bytes_at_start,
            started,
            armed: false,
        })
    }
}

/// A sleep for one head wait: idle deadline until the first byte, head
/// deadline after it. It owns no timer itself: it points the connection's
/// shared timer ([`HeadClock`]) at its deadline and polls that.
struct HeadSleep {
    clock: Arc<HeadClock>,
    /// Which head wait this is (0 for the first).
    index: u64,
    deadline: Instant,
    bytes_at_start: u64,
    started: bool,
    /// Whether the shared timer has been set to `deadline` yet.
    armed: bool,
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        // hyper polls this after every read that left the head incomplete,
        // so the first poll after bytes arrive is when the head began.
        if !this.started && this.clock.bytes_read.load(Relaxed) != this.bytes_at_start {
            this.started = true;
            this.deadline = Instant::now() + this.clock.header_timeout;
            this.armed = false;
        }
        let mut slot = this.clock.timer.lock().unwrap_or_else(|p| p.into_inner());
        let timer =
            slot.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(this.deadline.into())));
        if !this.armed {
            // Usually a later deadline than the last one: Tokio then just
            // moves the deadline, without touching its timer wheel.
            timer.as_mut().reset(this.deadline.into());
            this.armed = true;
        }
        timer.as_mut().poll(cx)
    }
}

impl Sleep for HeadSleep {}

impl Drop for HeadSleep {
    /// hyper drops the sleep when the head is complete (or the connection
    /// ends): the connection is no longer idle. Only the newest wait may
    /// say so.
    fn drop(&mut self) {
        if self.clock.heads.load(Relaxed) == self.index + 1 {
            self.clock.idle_at.store(NOT_IDLE, Relaxed);
        }
    }
}

pin_project_lite::pin_project! {
    struct PlainSleep {
        #[pin]
        inner: tokio::time::Sleep,
    }
}

impl Future for PlainSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().inner.poll(cx)
    }
}

impl Sleep for PlainSleep {}

/// The connection's IO as hyper sees it: first the bytes the protocol sniff
/// already read (`prefix`), then the socket, counting every byte read into
/// the [`HeadClock`]. Its close lingers (see `lingering_close`).
#[derive(Debug)]
pub struct CountingIo<T> {
    inner: T,
    prefix: Bytes,
    clock: Arc<HeadClock>,
    close: Linger,
}

impl<T> CountingIo<T> {
    /// Wraps `inner`; `prefix` is replayed before anything is read from it.
    pub fn new(inner: T, prefix: Bytes, clock: Arc<HeadClock>) -> Self {
        clock.add_read(prefix.len());
        CountingIo {
            inner,
            prefix,
            clock,
            close: Linger::Open,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CountingIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.clock.add_read(n);
        }
        res
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for CountingIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let linger = this.clock.lingers();
        this.close.poll_close(&mut this.inner, linger, cx)
    }
}
