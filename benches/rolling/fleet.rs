//! Instances behind HAProxy, restarted one at a time: a rolling restart.
//!
//! One instance's restart, step by step, with what each step waits for:
//!
//! ```text
//!  SIGTERM ─▶ lame duck: /healthz 503, still serving ── HAProxy: 2 failed checks ─▶ DOWN
//!         ─▶ drains, exits ─────────────────────────── exit code, SIGTERM → exit time
//!  start  ─▶ listening on the same port
//!         ─▶ HAProxy: 2 passed checks ─▶ UP, and a 2xx through HAProxy from it
//! ```
//!
//! The last wait is the one that makes the next instance's restart safe:
//! the restarted one is back in rotation, seen in HAProxy's own counters,
//! not assumed after a sleep.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::BoxError;
use super::haproxy::Haproxy;
use super::instance::{Instance, Stopped};
use super::process;

/// How long a restarted instance may take to be back in rotation:
/// `rise` checks, plus a generous margin for a loaded machine.
const BACK_LIMIT: Duration = Duration::from_secs(20);

/// How often the stats socket is asked while an instance shuts down: often
/// enough to time the `DOWN` to a hundredth of a second, seldom enough not
/// to load HAProxy.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// The instances and the load balancer in front of them.
pub struct Fleet {
    pub haproxy: Haproxy,
    pub instances: Vec<Instance>,
}

/// What one instance's restart did.
#[derive(Debug, Clone)]
pub struct Restart {
    /// Which instance.
    pub instance: usize,
    /// When the SIGTERM was sent.
    pub signalled: Instant,
    /// How the old process ended, and when.
    pub stopped: Stopped,
    /// From the SIGTERM until HAProxy's stats said `DOWN`, if they did
    /// before the process exited.
    pub marked_down: Option<Duration>,
    /// From the new process's `listening on` until HAProxy had it `UP` and
    /// had a `2xx` from it.
    pub back_in: Duration,
}

impl Fleet {
    /// Starts `count` instances of `bin FLAGS`, then HAProxy in front of
    /// them (rewriting every request's URI to `uri`, if given), and waits
    /// until HAProxy has every one `UP`.
    pub fn start(
        bin: &Path,
        flags: &[String],
        count: usize,
        uri: Option<&str>,
    ) -> Result<Fleet, BoxError> {
        let instances = (0..count)
            .map(|_| Instance::start(bin, flags))
            .collect::<Result<Vec<_>, _>>()?;
        let backends: Vec<SocketAddr> = instances.iter().map(|i| i.addr).collect();
        let haproxy = Haproxy::start(&backends, uri)?;
        Ok(Fleet { haproxy, instances })
    }

    /// Where clients connect: HAProxy's frontend.
    pub fn addr(&self) -> SocketAddr {
        self.haproxy.addr
    }

    /// Restarts instance `i` (see the module docs) and returns once it is
    /// back in rotation. Needs load running through HAProxy: the proof of
    /// being back is a response through it.
    pub fn restart(&mut self, i: usize) -> Result<Restart, BoxError> {
        let Fleet { haproxy, instances } = self;
        let server = haproxy.servers[i].clone();
        let instance = &mut instances[i];
        let signalled = Instant::now();
        let mut marked_down = None;
        let mut looked = Duration::ZERO;
        let stopped = instance.terminate(|since| {
            if marked_down.is_none() && since >= looked + LOOK_EVERY {
                looked = since;
                if haproxy.server(&server).is_ok_and(|s| s.is_down()) {
                    marked_down = Some(since);
                }
            }
        })?;
        instance.restart()?;
        let listening = Instant::now();
        let served_before = haproxy.server(&server)?.responses_2xx;
        let back = process::poll_until(BACK_LIMIT, || {
            std::thread::sleep(LOOK_EVERY);
            let stats = haproxy.server(&server).ok()?;
            (stats.is_up() && stats.responses_2xx > served_before).then_some(())
        });
        if back.is_none() {
            return Err(format!(
                "{server} ({}) not back in rotation {BACK_LIMIT:?} after its restart: {:?}",
                instance.addr,
                haproxy.server(&server)
            )
            .into());
        }
        Ok(Restart {
            instance: i,
            signalled,
            stopped,
            marked_down,
            back_in: listening.elapsed(),
        })
    }

    /// SIGTERM to every instance, one after the other, each awaited; then
    /// HAProxy is stopped when the fleet is dropped.
    pub fn stop(&mut self) -> Result<Vec<Stopped>, BoxError> {
        self.instances
            .iter_mut()
            .map(|i| i.terminate(|_| {}))
            .collect()
    }
}
