//! The kernel's own count of the connections it turned away at a listen
//! queue: `ListenOverflows` and `ListenDrops` in `/proc/net/netstat`.
//!
//! `ListenOverflows` counts handshakes that completed while the accept
//! queue (the backlog) was full; `ListenDrops` counts those and every other
//! SYN or final ACK dropped at a listener. Each one costs its client a
//! retransmission: the SYN's first comes after 1 s (RFC 6298), the next
//! after 2 s more. They count the whole network namespace, so the bench
//! reads them before and after a restart and nothing else listens on
//! loopback meanwhile.

use serde::Serialize;

/// The two counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ListenCounters {
    pub overflows: u64,
    pub drops: u64,
}

impl ListenCounters {
    /// Reads them now; `None` where the file cannot be read (not Linux).
    pub fn now() -> Option<ListenCounters> {
        let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
        parse(&text)
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &ListenCounters) -> ListenCounters {
        ListenCounters {
            overflows: self.overflows.saturating_sub(earlier.overflows),
            drops: self.drops.saturating_sub(earlier.drops),
        }
    }
}

/// The `TcpExt:` lines: one of names, one of values.
fn parse(text: &str) -> Option<ListenCounters> {
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let value = |name: &str| -> Option<u64> {
        let i = names.iter().position(|&n| n == name)?;
        values.get(i)?.parse().ok()
    };
    Some(ListenCounters {
        overflows: value("ListenOverflows")?,
        drops: value("ListenDrops")?,
    })
}

/// `net.core.somaxconn`: the kernel caps every backlog at it, silently.
pub fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}
