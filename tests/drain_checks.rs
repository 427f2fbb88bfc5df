//! `--drain-checks`: the lame-duck phase ends once the health checkers
//! have seen `/healthz` fail, not at the cap; with no checker, the cap
//! decides; a second signal still forces the close.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lameduck::health_checkers::DECISION_MARGIN;
use lameduck::{Config, LameDuckEnd, Outcome, Phase};
use support::http;
use support::{TestServer, test_config};

const STOP: Duration = Duration::from_secs(15);

/// How often the fake balancer probes `/healthz`.
const INTERVAL: Duration = Duration::from_millis(100);

/// A fake balancer: probes `/healthz` every [`INTERVAL`] on a fresh
/// connection, as HAProxy does, and records when each answer came and its
/// status. Stops after `max` probes.
fn fake_checker(addr: std::net::SocketAddr, max: usize) -> Arc<Mutex<Vec<(Instant, u16)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        for _ in 0..max {
            // Refused once the listener is closed: the probing ends.
            let Some(mut conn) = http::try_connect(addr).await else {
                return;
            };
            http::send_get(&mut conn, "/healthz").await;
            let Some(res) = http::read_response(&mut conn).await else {
                return;
            };
            record.lock().unwrap().push((Instant::now(), res.status));
            tokio::time::sleep(INTERVAL).await;
        }
    });
    seen
}

fn config(drain_delay: Duration, drain_checks: u32) -> Config {
    Config {
        drain_delay,
        drain_checks,
        ..test_config()
    }
}

/// With a checker probing every 100 ms and `--drain-checks 2`, the
/// lame-duck phase ends within one interval plus the margin after the
/// second `503`, not at the 10 s cap, and the report says the checks ended
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phase_ends_on_the_checks_soon_after_the_nth_failure() {
    let server = TestServer::start(config(Duration::from_secs(10), 2)).await;
    let seen = fake_checker(server.addr, 100);
    support::eventually(STOP, "the checker seen while running", || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| *s == 200)
            .count()
            >= 2
    })
    .await;

    server.shutdown();
    server.wait_for_phase(STOP, Phase::Draining).await;
    let draining_at = Instant::now();
    let second_503 = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, s)| *s == 503)
        .nth(1)
        .map(|(at, _)| *at)
        .expect("two failed checks before the phase ended");
    let after = draining_at.saturating_duration_since(second_503);
    assert!(
        after <= INTERVAL + DECISION_MARGIN + Duration::from_millis(400),
        "the phase went on {after:?} after the second failed check"
    );
    let report = server.report_within(STOP).await;
    assert_eq!(report.lame_duck_end, LameDuckEnd::Checks);
    assert!(report.lame_duck >= DECISION_MARGIN, "{report:?}");
    assert!(report.lame_duck < Duration::from_secs(5), "{report:?}");
    assert_eq!(report.outcome, Outcome::Drained);
}

/// With nobody probing `/healthz`, there is no checker to wait for: the
/// phase lasts the whole `--drain-delay`.
#[tokio::test]
async fn with_no_checker_the_phase_lasts_the_whole_cap() {
    let cap = Duration::from_millis(600);
    let server = TestServer::start(config(cap, 2)).await;
    server.shutdown();
    let report = server.report_within(STOP).await;
    assert_eq!(report.lame_duck_end, LameDuckEnd::Cap);
    assert!(report.lame_duck >= cap, "{report:?}");
}

/// A checker that stops probing after the signal never completes its
/// checks; a second signal during the phase forces the close at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_during_the_phase_forces_the_close() {
    let server = TestServer::start(config(Duration::from_secs(10), 3)).await;
    let seen = fake_checker(server.addr, 3);
    support::eventually(STOP, "three checks while running", || {
        seen.lock().unwrap().len() >= 3
    })
    .await;
    server.shutdown();
    server.wait_for_phase(STOP, Phase::LameDuck).await;
    let forced_at = Instant::now();
    server.force();
    let report = server.report_within(STOP).await;
    assert_eq!(report.lame_duck_end, LameDuckEnd::SecondSignal);
    assert_eq!(report.outcome, Outcome::ForcedBySignal);
    assert!(forced_at.elapsed() < Duration::from_secs(5), "{report:?}");
}
