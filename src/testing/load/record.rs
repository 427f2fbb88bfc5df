//! What the workers saw, and the questions asked of it afterwards.
//!
//! Every request is kept as the time it ended (counted from the start of
//! the run) and its [`Verdict`], so a caller can cut the run any way it
//! likes: per restart with [`Record::window`], per time slice with
//! [`Record::slices`], the whole run with [`Record::total`]. A minute of
//! back-to-back load is a few hundred thousand events of 24 bytes.

use std::time::Duration;

use tokio::time::Instant;

use super::Verdict;

/// One request, when it ended.
#[derive(Debug, Clone, Copy)]
pub(super) struct Event {
    pub at: Duration,
    pub verdict: Verdict,
}

/// One worker's requests, in order, and its acknowledged creates.
#[derive(Debug, Default)]
pub(super) struct WorkerLog {
    pub events: Vec<Event>,
    pub acked: Vec<Acked>,
}

/// An item the server acknowledged with `201`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    /// The `id` in the `201` body.
    pub id: u64,
    /// The name that was sent.
    pub name: String,
}

/// Requests counted by verdict, and the longest gap between successes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub ok: u64,
    pub refused: u64,
    pub reset: u64,
    pub broken: u64,
    pub non_2xx: u64,
    pub timeout: u64,
    /// The longest time between two successful responses (from any
    /// workers) that touches the window. See [`Record::window`].
    pub longest_gap: Duration,
}

impl Counts {
    /// Every request that was not [`Verdict::Ok`].
    pub fn failed(&self) -> u64 {
        Verdict::FAILURES.iter().map(|&o| self.count(o)).sum()
    }

    /// Requests that ended as `verdict`.
    pub fn count(&self, verdict: Verdict) -> u64 {
        match verdict {
            Verdict::Ok => self.ok,
            Verdict::Refused => self.refused,
            Verdict::Reset => self.reset,
            Verdict::Broken => self.broken,
            Verdict::Non2xx => self.non_2xx,
            Verdict::Timeout => self.timeout,
        }
    }

    fn add(&mut self, verdict: Verdict) {
        *match verdict {
            Verdict::Ok => &mut self.ok,
            Verdict::Refused => &mut self.refused,
            Verdict::Reset => &mut self.reset,
            Verdict::Broken => &mut self.broken,
            Verdict::Non2xx => &mut self.non_2xx,
            Verdict::Timeout => &mut self.timeout,
        } += 1;
    }
}

/// Everything one [`super::run`] saw.
#[derive(Debug)]
pub struct Record {
    /// When the workers started; every time in the record counts from it.
    pub started: Instant,
    /// How long the run lasted, until the last worker stopped.
    pub length: Duration,
    /// Every request of every worker, by the time it ended.
    events: Vec<Event>,
    /// The times of the successful ones, in order: the gaps are between
    /// neighbours.
    successes: Vec<Duration>,
    /// Every `201` of a [`super::Work::Create`] run.
    pub acked: Vec<Acked>,
}

impl Record {
    pub(super) fn new(started: Instant, ended: Instant, logs: Vec<WorkerLog>) -> Record {
        let mut events = Vec::new();
        let mut acked = Vec::new();
        for log in logs {
            events.extend(log.events);
            acked.extend(log.acked);
        }
        events.sort_by_key(|e| e.at);
        let successes = events
            .iter()
            .filter(|e| e.verdict == Verdict::Ok)
            .map(|e| e.at)
            .collect();
        Record {
            started,
            length: ended - started,
            events,
            successes,
            acked,
        }
    }

    /// The whole run.
    pub fn total(&self) -> Counts {
        self.counts(Duration::ZERO, self.length)
    }

    /// The requests that ended between `from` and `to`, and the longest gap
    /// between successes that overlaps that window: a gap is measured whole
    /// even where it starts before `from` or ends after `to`. The run's end
    /// closes a last gap (a server that never came back shows as a gap to
    /// the end); its start does not open one (the first connects are not a
    /// gap in service).
    pub fn window(&self, from: Instant, to: Instant) -> Counts {
        let since = |t: Instant| t.saturating_duration_since(self.started);
        self.counts(since(from), since(to))
    }

    /// The run cut into slices of `width`, in order.
    pub fn slices(&self, width: Duration) -> Vec<Counts> {
        assert!(!width.is_zero(), "slices need a width");
        let n = self.length.as_nanos().div_ceil(width.as_nanos()).max(1);
        (0..n as u32)
            .map(|i| self.counts(width * i, width * (i + 1)))
            .collect()
    }

    /// The failures, as (time since the start, verdict): for messages.
    pub fn failures(&self) -> impl Iterator<Item = (Duration, Verdict)> + '_ {
        self.events
            .iter()
            .filter(|e| e.verdict != Verdict::Ok)
            .map(|e| (e.at, e.verdict))
    }

    fn counts(&self, from: Duration, to: Duration) -> Counts {
        let first = self.events.partition_point(|e| e.at < from);
        let mut counts = Counts::default();
        for e in self.events[first..].iter().take_while(|e| e.at < to) {
            counts.add(e.verdict);
        }
        counts.longest_gap = self.longest_gap(from, to);
        counts
    }

    /// The longest gap between neighbouring successes (or the last success
    /// and the end) that overlaps `from..to`.
    fn longest_gap(&self, from: Duration, to: Duration) -> Duration {
        let s = &self.successes;
        // The first success at or after `from`: the gap before it is the
        // first one that reaches into the window.
        let first = s.partition_point(|&t| t < from).max(1);
        let mut longest = Duration::ZERO;
        for i in first..s.len() {
            if s[i - 1] > to {
                break;
            }
            longest = longest.max(s[i] - s[i - 1]);
        }
        if let Some(&last) = s.last()
            && last <= to
        {
            longest = longest.max(self.length.saturating_sub(last));
        }
        longest
    }
}
