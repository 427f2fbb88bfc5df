//! [`WhenWoken`]: a future that is polled only once something it waits
//! on has said so.
//!
//! A task has one waker. When a `select!` waits on three things and any
//! one of them wakes the task, the task cannot tell which: it polls all
//! three again. The accept loop waits on the trigger that ends its phase
//! (the signals, the upgrade's SIGHUP channel, the lame duck's timers), a
//! once-a-second reaping tick, and the listener. The listener wakes it
//! once per connection; the other two almost never. Yet each accept
//! polled them both: a cancellation token's lock, a channel's receive,
//! a timer's state, 1,100 to 1,400 instructions per churned connection,
//! counted under callgrind (`cargo bench --bench churn -- --cost`), for
//! nothing.
//!
//! `WhenWoken` gives the future it wraps a waker of its own, which sets a
//! flag before it wakes the task. Polled while the flag is down, it only
//! leaves the task's waker for the next wake-up (an atomic compare) and
//! answers `Pending`; the inner future is polled only when it asked to
//! be, and once after each answer (a ticker asked for its next tick).
//! This is what `FuturesUnordered` does for each of its futures, and what
//! `select!` cannot do, because it has no waker per branch.
//!
//! An HTTP/2 connection's task is the same shape: its socket wakes it at
//! every frame, its drain and its idle timer almost never (`h2_idle`).
//!
//! A WebSocket hub session is the other way round: the feed wakes it at
//! every item, and its socket almost never (a client's ping, its Close).
//! The socket cannot be wrapped, because the session also writes to it
//! between polls; a [`Gate`] is the same flag without the future, for
//! each poll of a stream the task keeps.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

pin_project_lite::pin_project! {
    /// `inner`, polled only after its own waker has fired (and once at
    /// first, so that it can register that waker).
    pub struct WhenWoken<F> {
        #[pin]
        inner: F,
        gate: Gate,
    }
}

/// The flag and the waker of a [`WhenWoken`], without the future: what
/// it polls is passed to each [`Gate::poll`].
pub struct Gate {
    flag: Arc<Flag>,
    // The waker the gated poll sees: `flag`'s, made once.
    waker: Waker,
}

/// Whether the inner future has been woken, and the task to wake.
struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // The flag before the wake-up: the task that wakes must see it.
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F> WhenWoken<F> {
    pub fn new(inner: F) -> Self {
        WhenWoken {
            inner,
            gate: Gate::new(),
        }
    }
}

impl<F: Future> Future for WhenWoken<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        this.gate.poll(cx, |own| inner.poll(own))
    }
}

impl Gate {
    pub fn new() -> Self {
        let flag = Arc::new(Flag {
            // Up at first: the first poll lets what it gates register.
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Gate {
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    /// Runs `poll` with the gate's own waker if that waker has fired
    /// since the last run (or `poll` has not run yet, or last answered
    /// `Ready`); otherwise leaves the task's waker and answers `Pending`.
    /// Every call must gate the same thing: a wake-up is not kept for
    /// anything else.
    pub fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        // The task's waker first, then the flag: a wake-up that comes
        // after the flag is read finds the waker registered, so none is
        // lost.
        self.flag.task.register(cx.waker());
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let out = poll(&mut Context::from_waker(&self.waker));
        if out.is_ready() {
            // Polled again after an answer (a ticker's next tick, a
            // stream's next item), it must run to register its waker for
            // the next one.
            self.flag.woken.store(true, Ordering::Release);
        }
        out
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts its polls and stays pending, keeping the waker it was
    /// given last.
    struct Counted<'a> {
        polls: &'a AtomicUsize,
        wake_next: Option<Waker>,
    }

    impl Future for Counted<'_> {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            self.wake_next = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn the_inner_future_is_polled_only_after_its_own_waker_fired() {
        let polls = AtomicUsize::new(0);
        let mut fut = Box::pin(WhenWoken::new(Counted {
            polls: &polls,
            wake_next: None,
        }));
        let mut cx = Context::from_waker(Waker::noop());
        // The first poll reaches it, so that it can register.
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 1);
        // Woken by something else: not polled.
        for _ in 0..10 {
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::Relaxed), 1);
        // Its own waker fires: polled once more, and once only.
        let own = fut.as_mut().project().inner.wake_next.take().unwrap();
        own.wake();
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_trigger_that_fires_ends_the_wait() {
        let token = tokio_util::sync::CancellationToken::new();
        let waiting = WhenWoken::new(token.clone().cancelled_owned());
        let cancel = tokio::spawn(async move {
            tokio::task::yield_now().await;
            token.cancel();
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the cancellation reached the wrapped wait");
        cancel.await.unwrap();
    }
}
