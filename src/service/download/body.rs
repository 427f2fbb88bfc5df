//! [`DownloadBody`]: the body of a download, generated a frame at a time
//! and, with `rate`, paced.
//!
//! Nothing is allocated for the body as a whole: each poll fills one frame
//! of at most [`FRAME`] bytes from the generator (`keystream`), at the
//! offset where the last one ended, and hands it to hyper. hyper asks for
//! the next frame only when it has room for it (HTTP/1: its write buffer;
//! HTTP/2: the stream's flow-control window), so a slow reader holds a
//! few frames in memory, never the body.
//!
//! # Pacing
//!
//! With `rate` (bytes per second), frame `n` is due when the bytes before
//! it would have taken that long at `rate`, counted from the first poll:
//! a schedule, not a sleep per frame, so timer lateness on a busy machine
//! does not add up, and a download of `N` bytes takes `N / rate` seconds
//! however late the wake-ups. Frames are a sixteenth of a second's worth
//! (at most [`FRAME`]), so the pace is smooth at any rate. One tokio timer
//! per throttled download, made on the first wait and moved for the next;
//! an unthrottled download has none.
//!
//! # What it does not watch
//!
//! No shutdown token: a download is not ended by the drain (see
//! `download.rs`). It ends at its last byte, when hyper drops it (the
//! client left, or the write stalled: `conn::write_stall`), or when its
//! connection (HTTP/1) or stream task (HTTP/2) is aborted at the forced
//! close. All of those drop it, and its `Drop` does the counting.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::keystream;
use crate::app::App;

/// The largest frame: 64 KiB, what hyper writes in one go and what an
/// HTTP/2 window holds by default, so a frame is never waiting on half a
/// window.
pub const FRAME: usize = 64 * 1024;

/// The body of one download: bytes `next..end` of the body with `seed`.
pub struct DownloadBody {
    /// For the counters in `/metrics`.
    app: Arc<App>,
    seed: u64,
    /// The offset of the next byte to send.
    next: u64,
    /// One past the last byte to send.
    end: u64,
    /// `Some` when the download is throttled. Boxed: an unthrottled
    /// download, and every other response body, stays the smaller size.
    pace: Option<Box<Pace>>,
    /// Counted in `downloads_open`: set on the first poll. A body that is
    /// never polled (a `HEAD` answer drops it unsent) was never open.
    open: bool,
}

/// The schedule of a throttled download.
struct Pace {
    /// Bytes per second, at least 1.
    rate: u64,
    /// The frame size at this rate.
    frame: usize,
    /// When the first frame went out, and from which offset: frame `n`
    /// is due at `start + (offset_n - origin) / rate`. Set on the first
    /// poll, so the time the head took to write is not counted.
    start: Option<(Instant, u64)>,
    /// The one timer, made on the first wait. Boxed because `Sleep` is
    /// `!Unpin` and the body is polled as `Unpin`.
    timer: Option<Pin<Box<Sleep>>>,
}

impl DownloadBody {
    /// Bytes `first..=last` of the body with `seed`, at most `rate` bytes
    /// per second if `rate` is given (at least 1).
    pub(super) fn new(app: Arc<App>, seed: u64, first: u64, last: u64, rate: Option<u64>) -> Self {
        let pace = rate.map(|rate| {
            let rate = rate.max(1);
            Box::new(Pace {
                rate,
                frame: (rate / 16).clamp(1, FRAME as u64) as usize,
                start: None,
                timer: None,
            })
        });
        DownloadBody {
            app,
            seed,
            next: first,
            end: last + 1,
            pace,
            open: false,
        }
    }

    fn remaining(&self) -> u64 {
        self.end - self.next
    }
}

impl Pace {
    /// `Ready` once the frame starting at `offset` is due.
    fn poll_due(&mut self, cx: &mut Context<'_>, offset: u64) -> Poll<()> {
        let (start, origin) = *self.start.get_or_insert((Instant::now(), offset));
        // At most 2^30 bytes at 1 byte per second: 2^30 · 10^9 ns fits a
        // u64 (below 1.1 · 10^18), so this cannot overflow.
        let nanos = (offset - origin) as u128 * 1_000_000_000 / self.rate as u128;
        let due = start + Duration::from_nanos(nanos as u64);
        if due <= Instant::now() {
            return Poll::Ready(());
        }
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        timer.as_mut().poll(cx)
    }
}

impl hyper::body::Body for DownloadBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.next >= this.end {
            return Poll::Ready(None);
        }
        if !this.open {
            this.open = true;
            this.app.metrics.downloads.open.fetch_add(1, Relaxed);
        }
        let frame = match &mut this.pace {
            None => FRAME,
            Some(pace) => {
                if pace.poll_due(cx, this.next).is_pending() {
                    return Poll::Pending;
                }
                pace.frame
            }
        };
        let len = (frame as u64).min(this.remaining()) as usize;
        let mut bytes = vec![0u8; len];
        keystream::fill(this.seed, this.next, &mut bytes);
        this.next += len as u64;
        this.app
            .metrics
            .downloads
            .bytes_sent
            .fetch_add(len as u64, Relaxed);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(bytes)))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining())
    }
}

impl Drop for DownloadBody {
    fn drop(&mut self) {
        if self.open {
            let metrics = &self.app.metrics;
            metrics.downloads.open.fetch_sub(1, Relaxed);
            // Dropped before its last byte: the client left, its writes
            // stalled, or the forced close aborted it.
            if self.next < self.end {
                metrics.downloads.cut.fetch_add(1, Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Body as _;

    use crate::service::event_stream::EventStream;
    use crate::service::respond::Body;

    /// The long-lived bodies (downloads, event streams) are boxed: a
    /// plain answer's body, moved from the handler to hyper, is a whole
    /// buffer and a tag, however large the others grow.
    #[test]
    fn the_response_body_is_no_larger_for_having_downloads() {
        assert!(size_of::<EventStream>() > size_of::<Full<Bytes>>());
        assert!(size_of::<DownloadBody>() > size_of::<Full<Bytes>>());
        assert!(
            size_of::<Body>() <= size_of::<Full<Bytes>>() + size_of::<usize>(),
            "{} bytes",
            size_of::<Body>()
        );
    }

    fn app() -> Arc<App> {
        Arc::new(App::new(
            crate::Config::default(),
            Arc::new(crate::store::MemoryStore::new()),
        ))
    }

    /// The frames are the generator's bytes for the range asked for, in
    /// frames of at most 64 KiB, and the size hint is exact throughout.
    #[tokio::test]
    async fn the_frames_are_the_range_of_the_generators_bytes() {
        let app = app();
        let (first, last) = (1000, 200_000);
        let mut body = DownloadBody::new(app.clone(), 9, first, last, None);
        let mut got = Vec::new();
        loop {
            let left = last + 1 - first - got.len() as u64;
            assert_eq!(body.size_hint().exact(), Some(left));
            let Some(frame) = body.frame().await else {
                break;
            };
            let data = frame.unwrap().into_data().unwrap();
            assert!(data.len() <= FRAME);
            got.extend_from_slice(&data);
        }
        let mut want = vec![0u8; (last + 1 - first) as usize];
        keystream::fill(9, first, &mut want);
        assert_eq!(got, want);
        assert_eq!(
            app.metrics.downloads.bytes_sent.load(Relaxed),
            want.len() as u64
        );
        drop(body);
        assert_eq!(app.metrics.downloads.open.load(Relaxed), 0);
        assert_eq!(app.metrics.downloads.cut.load(Relaxed), 0);
    }

    /// A throttled download takes `bytes / rate`, on a paused clock: 1 MB
    /// at 250 kB/s is four seconds, to the millisecond.
    #[tokio::test(start_paused = true)]
    async fn a_throttled_download_takes_its_bytes_over_its_rate() {
        let mut body = DownloadBody::new(app(), 1, 0, 999_999, Some(250_000));
        let start = Instant::now();
        let mut sent = 0;
        let mut last_frame_at = start;
        while let Some(frame) = body.frame().await {
            sent += frame.unwrap().into_data().unwrap().len();
            last_frame_at = Instant::now();
        }
        assert_eq!(sent, 1_000_000);
        // The last frame is due when the bytes before it took their time.
        let frame = 250_000 / 16;
        let due = Duration::from_secs_f64((1_000_000 - frame) as f64 / 250_000.0);
        let took = last_frame_at - start;
        assert!(
            took.abs_diff(due) < Duration::from_millis(2),
            "{took:?} vs {due:?}"
        );
    }

    /// A body dropped before its end counts as cut; one never polled (a
    /// `HEAD` answer) was never open and is not counted at all.
    #[tokio::test]
    async fn a_body_dropped_early_is_counted_as_cut_and_an_unpolled_one_not_at_all() {
        let app = app();
        drop(DownloadBody::new(app.clone(), 1, 0, 999, None));
        assert_eq!(app.metrics.downloads.cut.load(Relaxed), 0);
        let mut body = DownloadBody::new(app.clone(), 1, 0, 999_999, None);
        body.frame().await.unwrap().unwrap();
        assert_eq!(app.metrics.downloads.open.load(Relaxed), 1);
        drop(body);
        assert_eq!(app.metrics.downloads.open.load(Relaxed), 0);
        assert_eq!(app.metrics.downloads.cut.load(Relaxed), 1);
    }
}
