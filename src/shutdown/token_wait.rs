//! [`TokenWait`]: a wait on one of the shutdown's tokens that a connection
//! can poll on every request for the price of one relaxed load.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::shutdown::phase::{Phase, PhaseCell};

pin_project_lite::pin_project! {
    /// A wait on one of the shutdown's tokens that costs one relaxed load
    /// per poll (`ShutdownState::closing`, `ShutdownState::past_deadline`).
    ///
    /// A connection task polls what it waits on at every wake-up: on a
    /// keep-alive connection, for every request. Each poll of a token's
    /// own future takes the token's locks, which every connection shares:
    /// two lock round trips per request, between threads. This one polls
    /// the token's future once, which leaves the task's waker with the
    /// token, and after that only once the phase has reached `from`. Every
    /// transition sets the phase before it cancels the token, so a task
    /// woken by the token sees the phase.
    pub struct TokenWait<'a> {
        #[pin]
        wait: WaitForCancellationFuture<'a>,
        phase: &'a PhaseCell,
        from: Phase,
        registered: bool,
    }
}

impl Future for TokenWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if *this.registered && this.phase.get() < *this.from {
            return Poll::Pending;
        }
        *this.registered = true;
        this.wait.poll(cx)
    }
}

impl<'a> TokenWait<'a> {
    /// A wait on `token`, which is cancelled only once `phase` has reached
    /// `from`.
    pub(crate) fn new(token: &'a CancellationToken, phase: &'a PhaseCell, from: Phase) -> Self {
        TokenWait {
            wait: token.cancelled(),
            phase,
            from,
            registered: false,
        }
    }
}
