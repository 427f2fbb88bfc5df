//! Counters for `/metrics`, in the Prometheus text format.
//!
//! Plain relaxed atomics: every counter is touched on the request or
//! connection path, so nothing here takes a lock or allocates. The label set
//! is fixed (status codes 100–599, five phases), so a hostile client cannot
//! grow it.
//!
//! Two more things keep the hot counters cheap, because an atomic add is
//! only cheap while its cache line stays with one core. The counters the
//! accept loop and the connection tasks add to, on different threads, sit
//! on cache lines of their own ([`Padded`]). And the response counts, which
//! every request adds to, are kept per thread ([`ByStatus`]): each thread
//! adds to its own row, and `/metrics` sums the rows.

use std::cell::Cell;
use std::fmt::Write;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};

use crate::long_lived::sockets::WebSocketCounts;
use crate::shutdown::phase::Phase;
use crate::store::StoreCounters;

/// Every counter the server keeps. Shared through [`crate::app::App`].
#[derive(Debug)]
pub struct Metrics {
    /// Connections accepted since start. Added to by the accept loop.
    pub connections_accepted: Padded<AtomicU64>,
    /// Connections whose task has ended (any way, aborts included). Added
    /// to by the connection tasks.
    pub connections_closed: Padded<AtomicU64>,
    /// Connections aborted by a forced close.
    pub connections_aborted: AtomicU64,
    /// Requests whose handler is running now.
    pub requests_in_flight: AtomicU64,
    /// Responses produced by our service, by status code.
    by_status: ByStatus,
    /// Event streams open now.
    pub streams_open: AtomicU64,
    /// Event streams that ended because the server was closing.
    pub streams_ended_by_shutdown: AtomicU64,
    /// `/api/download`'s counters, on cache lines of their own: a
    /// download adds to them once a frame, and no other request should
    /// pay for a line it shares with them.
    pub downloads: Padded<DownloadCounters>,
    /// Units of detached work (blocking simulated work) that stopped early
    /// because their request was cancelled.
    pub work_cancelled: AtomicU64,
    /// Completed runs of the background cleaner.
    pub cleaner_runs: AtomicU64,
    /// Items the cleaner removed.
    pub items_purged: AtomicU64,
    /// Transactions the cleaner committed (each removes at most
    /// `cleanup_batch` items).
    pub cleaner_batches: AtomicU64,
    /// Writes that committed after the drain began: the work the drain
    /// waited for instead of cutting.
    pub writes_during_drain: AtomicU64,
    /// Requests with an `Idempotency-Key` answered with the stored
    /// response of an earlier one, without writing.
    pub idempotent_replays: AtomicU64,
    /// Requests refused `409`: their key was being written by another.
    pub idempotency_conflicts: AtomicU64,
    /// Requests refused `422`: their key was used for another request.
    pub idempotency_mismatches: AtomicU64,
    /// Expired idempotency keys the cleaner removed.
    pub keys_purged: AtomicU64,
    /// The store's own counters (interrupted queries, open transactions).
    /// Shared with the store, which is the only one that can see them.
    pub store: Arc<StoreCounters>,
    /// The WebSocket sessions' counts, shared with the registry that
    /// keeps them (`long_lived::sockets`).
    pub websockets: Arc<WebSocketCounts>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections_accepted: Padded(AtomicU64::new(0)),
            connections_closed: Padded(AtomicU64::new(0)),
            connections_aborted: AtomicU64::new(0),
            requests_in_flight: AtomicU64::new(0),
            by_status: ByStatus::default(),
            streams_open: AtomicU64::new(0),
            streams_ended_by_shutdown: AtomicU64::new(0),
            downloads: Padded::default(),
            work_cancelled: AtomicU64::new(0),
            cleaner_runs: AtomicU64::new(0),
            items_purged: AtomicU64::new(0),
            cleaner_batches: AtomicU64::new(0),
            writes_during_drain: AtomicU64::new(0),
            idempotent_replays: AtomicU64::new(0),
            idempotency_conflicts: AtomicU64::new(0),
            idempotency_mismatches: AtomicU64::new(0),
            keys_purged: AtomicU64::new(0),
            store: Arc::default(),
            websockets: Arc::default(),
        }
    }
}

/// What `/api/download` counts.
#[derive(Debug, Default)]
pub struct DownloadCounters {
    /// Downloads whose body is being sent now.
    pub open: AtomicU64,
    /// Download body bytes handed to the connection (some may still have
    /// been in its buffers when a download was cut).
    pub bytes_sent: AtomicU64,
    /// Downloads whose body was dropped before its last byte: the client
    /// left, its writes stalled, or the forced close aborted them.
    pub cut: AtomicU64,
}

impl Metrics {
    /// Counts one response with `status`.
    pub fn record_status(&self, status: u16) {
        self.by_status.add(status);
    }

    /// Responses produced so far, all statuses.
    pub fn requests_total(&self) -> u64 {
        (0..STATUSES as u16).map(|s| self.by_status.get(s)).sum()
    }

    /// Responses with this status so far.
    pub fn requests_with_status(&self, status: u16) -> u64 {
        self.by_status.get(status)
    }

    /// Connections open now. (SeqCst loads, which cost what relaxed ones
    /// do on x86: the connection limit relies on their order; see
    /// `conn::limit`.)
    pub fn open_connections(&self) -> u64 {
        let closed = self.connections_closed.load(SeqCst);
        self.connections_accepted
            .load(SeqCst)
            .saturating_sub(closed)
    }

    /// The whole page, in Prometheus text format 0.0.4: every row of
    /// [`SERIES`], then the two labelled families.
    pub fn render(&self, now: Phase) -> String {
        let mut out = String::with_capacity(2048);
        for series in SERIES {
            let (name, kind, help, value) = (
                series.name,
                series.kind.name(),
                series.help,
                (series.value)(self),
            );
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }

        out.push_str(
            "# HELP lameduck_requests_total Responses by status code.\n# TYPE lameduck_requests_total counter\n",
        );
        for code in 0..STATUSES as u16 {
            let v = self.by_status.get(code);
            if v > 0 {
                let _ = writeln!(out, "lameduck_requests_total{{status=\"{code}\"}} {v}");
            }
        }
        out.push_str(
            "# HELP lameduck_shutdown_phase 1 for the current shutdown phase.\n# TYPE lameduck_shutdown_phase gauge\n",
        );
        for p in Phase::ALL {
            let _ = writeln!(
                out,
                "lameduck_shutdown_phase{{phase=\"{}\"}} {}",
                p.name(),
                u8::from(p == now)
            );
        }
        out
    }
}

/// Whether a series only grows or goes up and down: Prometheus's `TYPE`.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Only grows (a `_total`): a scraper graphs its rate.
    Counter,
    /// Goes up and down: a scraper graphs its value.
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One unlabelled series of the page.
struct Series {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    value: fn(&Metrics) -> u64,
}

/// Every unlabelled series, in the order of the page.
const SERIES: &[Series] = &[
    Series {
        name: "lameduck_open_connections",
        kind: Kind::Gauge,
        help: "Connections open now.",
        value: |m| m.open_connections(),
    },
    Series {
        name: "lameduck_connections_accepted_total",
        kind: Kind::Counter,
        help: "Connections accepted.",
        value: |m| m.connections_accepted.load(Relaxed),
    },
    Series {
        name: "lameduck_connections_aborted_total",
        kind: Kind::Counter,
        help: "Connections aborted by a forced close.",
        value: |m| m.connections_aborted.load(Relaxed),
    },
    Series {
        name: "lameduck_requests_in_flight",
        kind: Kind::Gauge,
        help: "Requests whose handler is running.",
        value: |m| m.requests_in_flight.load(Relaxed),
    },
    Series {
        name: "lameduck_streams_open",
        kind: Kind::Gauge,
        help: "Event streams open now.",
        value: |m| m.streams_open.load(Relaxed),
    },
    Series {
        name: "lameduck_streams_ended_by_shutdown_total",
        kind: Kind::Counter,
        help: "Event streams ended because the server was closing.",
        value: |m| m.streams_ended_by_shutdown.load(Relaxed),
    },
    Series {
        name: "lameduck_websockets_open",
        kind: Kind::Gauge,
        help: "WebSocket sessions open now (upgraded connections, outside the connection count).",
        value: |m| m.websockets.open(),
    },
    Series {
        name: "lameduck_websockets_closed_total",
        kind: Kind::Counter,
        help: "WebSocket sessions that ended with a completed closing handshake.",
        value: |m| m.websockets.closed(),
    },
    Series {
        name: "lameduck_websockets_aborted_total",
        kind: Kind::Counter,
        help: "WebSocket sessions cut by a forced close before their closing handshake finished.",
        value: |m| m.websockets.aborted(),
    },
    Series {
        name: "lameduck_downloads_open",
        kind: Kind::Gauge,
        help: "Downloads whose body is being sent.",
        value: |m| m.downloads.open.load(Relaxed),
    },
    Series {
        name: "lameduck_download_bytes_sent_total",
        kind: Kind::Counter,
        help: "Download body bytes handed to the connection.",
        value: |m| m.downloads.bytes_sent.load(Relaxed),
    },
    Series {
        name: "lameduck_downloads_cut_total",
        kind: Kind::Counter,
        help: "Downloads dropped before their last byte (client gone, write stalled, or forced close).",
        value: |m| m.downloads.cut.load(Relaxed),
    },
    Series {
        name: "lameduck_work_cancelled_total",
        kind: Kind::Counter,
        help: "Detached work stopped early by its cancellation token.",
        value: |m| m.work_cancelled.load(Relaxed),
    },
    Series {
        name: "lameduck_cleaner_runs_total",
        kind: Kind::Counter,
        help: "Completed runs of the background cleaner.",
        value: |m| m.cleaner_runs.load(Relaxed),
    },
    Series {
        name: "lameduck_items_purged_total",
        kind: Kind::Counter,
        help: "Expired items removed by the cleaner.",
        value: |m| m.items_purged.load(Relaxed),
    },
    Series {
        name: "lameduck_cleaner_batches_total",
        kind: Kind::Counter,
        help: "Cleaner transactions committed (bounded batches of expired items).",
        value: |m| m.cleaner_batches.load(Relaxed),
    },
    Series {
        name: "lameduck_writes_during_drain_total",
        kind: Kind::Counter,
        help: "Writes that committed after the drain began.",
        value: |m| m.writes_during_drain.load(Relaxed),
    },
    Series {
        name: "lameduck_log_lines_dropped_total",
        kind: Kind::Counter,
        help: "Log lines dropped because stderr could not keep up (its reader stalled).",
        value: |_| crate::process::log_writer::dropped_lines(),
    },
    Series {
        name: "lameduck_h2_streams_stalled_total",
        kind: Kind::Counter,
        help: "HTTP/2 streams reset because the client kept its flow-control window shut for the write-stall limit (--request-timeout).",
        value: |_| crate::conn::h2_stall::streams_stalled(),
    },
    Series {
        name: "lameduck_idempotent_replays_total",
        kind: Kind::Counter,
        help: "Requests with an Idempotency-Key answered with the stored response of an earlier one, without writing.",
        value: |m| m.idempotent_replays.load(Relaxed),
    },
    Series {
        name: "lameduck_idempotency_conflicts_total",
        kind: Kind::Counter,
        help: "Requests answered 409: their Idempotency-Key was being written by another request.",
        value: |m| m.idempotency_conflicts.load(Relaxed),
    },
    Series {
        name: "lameduck_idempotency_mismatches_total",
        kind: Kind::Counter,
        help: "Requests answered 422: their Idempotency-Key was used for a different request.",
        value: |m| m.idempotency_mismatches.load(Relaxed),
    },
    Series {
        name: "lameduck_idempotency_keys_purged_total",
        kind: Kind::Counter,
        help: "Expired Idempotency-Keys removed by the cleaner.",
        value: |m| m.keys_purged.load(Relaxed),
    },
    Series {
        name: "lameduck_queries_interrupted_total",
        kind: Kind::Counter,
        help: "Database statements interrupted (SQLite) or cancelled on the server (PostgreSQL) because their reader went away.",
        value: |m| m.store.queries_interrupted.load(Relaxed),
    },
    Series {
        name: "lameduck_store_reads_running",
        kind: Kind::Gauge,
        help: "Database reads running: on a blocking thread (SQLite) or a pooled connection (PostgreSQL).",
        value: |m| m.store.reads_running.load(Relaxed),
    },
    Series {
        name: "lameduck_store_writes_open",
        kind: Kind::Gauge,
        help: "Database write transactions open.",
        value: |m| m.store.writes_open.load(Relaxed),
    },
    Series {
        name: "lameduck_writes_rolled_back_total",
        kind: Kind::Counter,
        help: "Write transactions rolled back by a forced shutdown.",
        value: |m| m.store.writes_rolled_back.load(Relaxed),
    },
];

/// A value on cache lines of its own (two: x86 fetches lines in pairs), so
/// that writes to it do not take the line from a core using a neighbour.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Padded<T>(pub T);

impl<T> Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Status codes counted: 0–599, indexed by code.
const STATUSES: usize = 600;
/// Rows of [`ByStatus`]: more than a server has busy threads, so threads
/// rarely share one.
const SHARDS: usize = 8;

/// Responses by status code, one row of counters per shard of threads.
#[derive(Debug)]
struct ByStatus {
    rows: Box<[Padded<[AtomicU64; STATUSES]>]>,
}

impl Default for ByStatus {
    fn default() -> Self {
        ByStatus {
            rows: (0..SHARDS)
                .map(|_| Padded(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        }
    }
}

impl ByStatus {
    /// Adds one to `status` in this thread's row.
    fn add(&self, status: u16) {
        if let Some(c) = self.rows[this_shard()].0.get(status as usize) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// The count for `status`, all rows summed.
    fn get(&self, status: u16) -> u64 {
        self.rows
            .iter()
            .filter_map(|row| row.0.get(status as usize))
            .map(|c| c.load(Relaxed))
            .sum()
    }
}

/// This thread's shard: threads are dealt shards in turn, the first time
/// each counts something.
fn this_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|shard| {
        if shard.get() == usize::MAX {
            shard.set(NEXT.fetch_add(1, Relaxed) % SHARDS);
        }
        shard.get()
    })
}
