//! Rebalancing: after one of two instances behind a layer-4 balancer
//! restarts, how long until the load is even again.
//!
//! Two lameducks on ports of their own, HAProxy in `mode tcp` in front
//! (round robin, `GET /healthz` checks; `haproxy.rs`), a crowd of
//! long-lived clients through it. Instance `s0` gets SIGTERM: its health
//! check fails, HAProxy marks it `DOWN` (`--drain-checks 2`), its clients
//! are told to go and reconnect, all to `s1`. Then `s0` starts again on
//! its port and HAProxy marks it `UP`. Without `--max-connection-age`
//! nothing moves after that: a long-lived connection stays where it
//! landed, and `s1` keeps the whole crowd (Envoy#8302: "the last process
//! to restart has most connections"). With it, every connection ages out
//! at its own jittered age, reconnects, and lands round robin: the load
//! is even within one age plus its grace.
//!
//! The figure: the seconds from the SIGTERM until the busier server holds
//! at most 1.2x the other's connections (HAProxy's `scur`), and keeps to
//! it until the end of the observation.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::lameduck::testing::binary::Lameduck;
use ::lameduck::testing::process::Log;
use tokio::runtime::Runtime;

use super::Options;
use super::crowd::{Crowd, Mix};
use super::haproxy::Haproxy;
use super::report::RebalanceRow;

/// Even enough: the busier server holds at most this many times the
/// other's connections.
const EVEN: f64 = 1.2;

/// How often HAProxy's counts are read.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// The observation after the SIGTERM: one age plus its grace plus this;
/// without an age, this alone (nothing would move however long).
const MARGIN: Duration = Duration::from_secs(10);

/// How long a start or a shutdown may take.
const STEP_LIMIT: Duration = Duration::from_secs(60);

/// The flags both instances run with: the drain waits for HAProxy to see
/// the failing check (two checks, the rolling bench's finding), so that
/// no new connection is sent to a server that is going.
const DRAIN: [&str; 4] = ["--drain-delay", "5s", "--drain-checks", "2"];

/// One rebalancing row, with `--max-connection-age age` or without.
pub fn row(rt: &Runtime, opts: &Options, age: Option<Duration>) -> RebalanceRow {
    let human = |d: Duration| humantime::format_duration(d).to_string();
    let mut row = RebalanceRow {
        name: format!(
            "rebalance_tcp_age{}_c{}",
            age.map_or("off".into(), human),
            opts.rebalance_clients
        ),
        clients: opts.rebalance_clients,
        max_connection_age: age.map_or("off".into(), human),
        grace: age.map_or("-".into(), |_| human(opts.age_grace)),
        before: (0, 0),
        up_after_s: None,
        rebalanced_after_s: None,
        observed_s: 0.0,
        after: (0, 0),
        failures: Default::default(),
        samples: Vec::new(),
        error: None,
    };
    if let Err(e) = measure(rt, opts, age, &mut row) {
        row.error = Some(e.to_string());
    }
    row
}

fn measure(
    rt: &Runtime,
    opts: &Options,
    age: Option<Duration>,
    row: &mut RebalanceRow,
) -> Result<(), super::BoxError> {
    let mut args: Vec<String> = DRAIN.iter().map(|s| s.to_string()).collect();
    if let Some(age) = age {
        args.extend([
            "--max-connection-age".into(),
            humantime::format_duration(age).to_string(),
            "--max-connection-age-grace".into(),
            humantime::format_duration(opts.age_grace).to_string(),
        ]);
    }
    let log = Log::default();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let start = |addr: SocketAddr| {
        Lameduck::spawn(&log, Lameduck::command(&opts.bin, addr, &args), STEP_LIMIT)
    };
    let first = start(loopback)?;
    let second = start(loopback)?;
    let port_of_first = first.addr();
    let haproxy = Haproxy::start_tcp(&[first.addr(), second.addr()])?;
    let crowd = Crowd::start(rt, haproxy.addr, Mix::thirds(opts.rebalance_clients), 0);
    if !crowd.wait_connected(super::CONNECT_LIMIT) {
        return Err(format!(
            "only {} of {} clients connected",
            crowd.connected(),
            opts.rebalance_clients
        )
        .into());
    }
    std::thread::sleep(super::SETTLE);
    let counts = |h: &Haproxy| -> (u64, u64) {
        let s = |name: &str| h.server(name).map(|s| s.sessions).unwrap_or(0);
        (s("s0"), s("s1"))
    };
    row.before = counts(&haproxy);
    let failed_before = crowd.failures();

    // The restart, with HAProxy's counts read all along by a thread of
    // its own.
    let observe = age.map_or(MARGIN, |age| age + opts.age_grace + MARGIN);
    let haproxy = Arc::new(haproxy);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let began = Instant::now();
    let sampler = std::thread::spawn({
        let (haproxy, samples) = (haproxy.clone(), samples.clone());
        move || {
            while began.elapsed() < observe {
                let (restarted, other) = counts(&haproxy);
                let up = haproxy.server("s0").is_ok_and(|s| s.is_up());
                samples
                    .lock()
                    .unwrap()
                    .push((began.elapsed(), restarted, other, up));
                std::thread::sleep(SAMPLE_EVERY);
            }
        }
    });
    let exit = first.terminate(STEP_LIMIT);
    let restarted = exit.and_then(|_| start(port_of_first));
    let _ = sampler.join();
    let samples = samples.lock().unwrap().clone();
    let restarted = restarted?;

    // Up: the first sample after it went down in which it is `UP` again.
    let down_at = samples.iter().position(|s| !s.3);
    let up = down_at.and_then(|d| samples[d..].iter().position(|s| s.3).map(|u| d + u));
    row.up_after_s = up.map(|u| secs(samples[u].0));
    let even = |&(_, a, b, _): &(Duration, u64, u64, bool)| {
        let (lo, hi) = (a.min(b), a.max(b));
        lo > 0 && hi as f64 <= EVEN * lo as f64
    };
    if let Some(u) = up {
        // The first sample from which every later one is even.
        let last_uneven = samples.iter().rposition(|s| !even(s));
        let from = last_uneven.map_or(u, |i| (i + 1).max(u));
        if from < samples.len() {
            row.rebalanced_after_s = Some(secs(samples[from].0));
        }
    }
    row.observed_s = secs(observe);
    row.after = samples.last().map_or((0, 0), |s| (s.1, s.2));
    row.samples = samples
        .iter()
        .step_by((1000 / SAMPLE_EVERY.as_millis()) as usize)
        .map(|s| (secs(s.0), s.1, s.2))
        .collect();
    row.failures = crowd.failures().since(&failed_before);
    let _ = crowd.stop(rt);
    drop(haproxy);
    restarted.terminate(STEP_LIMIT)?;
    second.terminate(STEP_LIMIT)?;
    Ok(())
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}
