//! A connection whose peer stops reading is cut off, not held forever.
//!
//! A handler's work is bounded by the request timeout, but writing its
//! answer is not: a client that asks for a large response and never reads
//! it fills the socket buffers, and from then on every write is `Pending`.
//! hyper has no write timeout, so the connection task would wait forever —
//! holding a connection slot, and holding the drain until the shutdown
//! deadline forces it.
//!
//! [`WriteStall`] wraps the connection's IO and fails a write (or flush)
//! that has made no progress for `limit` with `TimedOut`. hyper then ends
//! the connection, which closes the socket. The limit is the request
//! timeout (`Config::request_timeout`): the same budget a handler gets to
//! produce its answer, it gets again for each stalled write. It is a
//! *stall* limit, not Go's `WriteTimeout` (a limit on the whole write): a
//! slow client that keeps reading, and an event stream that lasts for
//! hours, are not cut off; only one that stops reading is.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The connection's IO, with a limit on how long a write may stall.
#[derive(Debug)]
pub struct WriteStall<T> {
    inner: T,
    limit: Duration,
    /// Armed when a write first returns `Pending`; disarmed by any
    /// progress. Boxed so the wrapper stays `Unpin`.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteStall<T> {
    /// Wraps `inner`; a write that makes no progress for `limit` fails.
    pub fn new(inner: T, limit: Duration) -> Self {
        WriteStall {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Passes `Ready` through (and disarms the timer); on `Pending`, arms
    /// the timer or, once it has fired, fails with `TimedOut`.
    fn watch<R>(&mut self, cx: &mut Context<'_>, res: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if res.is_ready() {
            self.stalled = None;
            return res;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("peer read nothing for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteStall<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteStall<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, res)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, res)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A peer that reads nothing: once the pipe is full, the next write
    /// fails with `TimedOut` after the limit, instead of waiting forever.
    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_never_reads_fails_after_the_limit() {
        let (ours, _theirs) = tokio::io::duplex(16);
        let mut io = WriteStall::new(ours, Duration::from_secs(3));
        io.write_all(&[0; 16]).await.unwrap();
        let start = tokio::time::Instant::now();
        let err = io.write_all(&[0; 1]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    /// A peer that reads, however slowly, is never cut off: progress
    /// re-arms the timer.
    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
        use tokio::io::AsyncReadExt;
        let (ours, mut theirs) = tokio::io::duplex(4);
        let mut io = WriteStall::new(ours, Duration::from_secs(3));
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut byte = [0u8; 1];
            while theirs.read(&mut byte).await.unwrap() > 0 {
                got.push(byte[0]);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            got.len()
        });
        io.write_all(&[7; 12]).await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        assert_eq!(reader.await.unwrap(), 12);
    }
}
