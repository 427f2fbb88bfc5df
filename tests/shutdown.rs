//! The shutdown sequence, step by step, driven in-process by tokens (the
//! signal path itself is covered by `tests/signals_and_exit_codes.rs`).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use lameduck::{Outcome, Phase, Server, Stop};
use support::http::{self, get};
use support::{TestServer, test_config};

const STOP: Duration = Duration::from_secs(15);

async fn wait_in_flight(server: &TestServer, n: u64) {
    server
        .wait_until(Duration::from_secs(5), "requests in flight", |app| {
            app.metrics.requests_in_flight.load(Relaxed) == n
        })
        .await;
}

/// Step 3: a request in flight when the drain begins completes with 200,
/// and the response tells the client the connection is closing.
#[tokio::test]
async fn in_flight_request_completes_with_connection_close() {
    let server = TestServer::start(test_config()).await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/api/slow?ms=500").await;
    wait_in_flight(&server, 1).await;

    server.shutdown();
    let res = http::read_response(&mut conn)
        .await
        .expect("a response, not a reset");
    assert_eq!((res.status, res.text().as_str()), (200, "done\n"));
    assert!(
        res.closes(),
        "in-flight response must carry Connection: close: {res:?}"
    );
    http::closed_within(&mut conn, Duration::from_secs(5)).await;

    let report = server.report_within(STOP).await;
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.requests_during_drain, 1);
    assert_eq!(
        (report.connections_at_drain, report.connections_drained),
        (1, 1)
    );
}

/// Step 2: during the drain delay `/healthz` answers 503 `shutting down`,
/// while new connections are still accepted and ordinary requests served.
#[tokio::test]
async fn healthz_flips_to_503_during_the_drain_delay_while_requests_are_served() {
    let config = lameduck::Config {
        drain_delay: Duration::from_secs(2),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    assert_eq!(get(server.addr, "/healthz").await.status, 200);

    server.shutdown();
    server.wait_for_phase(STOP, Phase::LameDuck).await;
    let health = get(server.addr, "/healthz").await;
    assert_eq!(
        (health.status, health.text().as_str()),
        (503, "shutting down\n")
    );
    let live = get(server.addr, "/livez").await;
    assert_eq!(live.status, 200, "liveness must not fail during the drain");
    let work = get(server.addr, "/api/slow?ms=10").await;
    assert_eq!((work.status, work.text().as_str()), (200, "done\n"));

    let report = server.report_within(STOP).await;
    assert_eq!(report.outcome, Outcome::Drained);
    assert!(
        report.lame_duck >= Duration::from_millis(1900),
        "lame duck lasted the delay: {report:?}"
    );
}

/// Step 3: once the drain delay is over the listener is closed, so a new
/// connection is refused rather than queued.
#[tokio::test]
async fn new_connections_are_refused_after_the_drain_delay() {
    let config = lameduck::Config {
        drain_delay: Duration::from_millis(200),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    // Keep the drain open with a slow request, so the server is still
    // running when we try to connect.
    let mut slow = http::connect(server.addr).await;
    http::send_get(&mut slow, "/api/slow?ms=2000").await;
    wait_in_flight(&server, 1).await;

    server.shutdown();
    server.wait_for_phase(STOP, Phase::Draining).await;
    let err = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect_err("listener must be closed");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

    assert_eq!(http::read_response(&mut slow).await.unwrap().status, 200);
    assert_eq!(server.report_within(STOP).await.outcome, Outcome::Drained);
}

/// Step 3: idle keep-alive connections are closed at once, so a thousand of
/// them do not delay the exit.
#[tokio::test]
async fn a_thousand_idle_keep_alive_connections_do_not_delay_the_exit() {
    let server = TestServer::start(test_config()).await;
    let mut idle = Vec::new();
    for _ in 0..1000 {
        let mut conn = http::connect(server.addr).await;
        http::send_get(&mut conn, "/livez").await;
        let res = http::read_response(&mut conn).await.unwrap();
        assert!(res.status == 200 && !res.closes());
        idle.push(conn);
    }
    server
        .wait_until(Duration::from_secs(5), "1000 open", |app| {
            app.metrics.open_connections() == 1000
        })
        .await;

    let started = std::time::Instant::now();
    server.shutdown();
    let report = server.report_within(STOP).await;
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(
        (report.connections_drained, report.connections_aborted),
        (1000, 0)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    for conn in &mut idle {
        http::closed_within(conn, Duration::from_secs(5)).await;
    }
}

/// Step 5: at the deadline a request whose response has not started is
/// answered 503 + Retry-After + Connection: close instead of being cut, and
/// the outcome is "forced" (exit code 1).
#[tokio::test]
async fn the_deadline_answers_a_stuck_request_503_and_exits_1() {
    let config = lameduck::Config {
        shutdown_timeout: Duration::from_millis(500),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/api/slow?ms=60000").await;
    wait_in_flight(&server, 1).await;

    server.shutdown();
    let res = http::read_response(&mut conn)
        .await
        .expect("a 503, not a reset");
    assert_eq!(res.status, 503);
    assert_eq!(res.header("retry-after"), Some("1"));
    assert!(res.closes());

    let app = server.app.clone();
    let report = server.report_within(STOP).await;
    assert_eq!(report.outcome, Outcome::ForcedByDeadline);
    assert_eq!(report.exit_code(), 1);
    assert_eq!(report.requests_refused_at_deadline, 1);
    // The handler was dropped, so its drop guard cancelled the token the
    // detached work was watching: the work stopped instead of running on.
    support::eventually(Duration::from_secs(5), "work cancelled", || {
        app.metrics.work_cancelled.load(Relaxed) == 1
    })
    .await;
}

/// Step 5: a response that is already streaming cannot be answered 503, so
/// at the deadline it is cut and its connection aborted.
#[tokio::test]
async fn the_deadline_aborts_what_cannot_finish_politely() {
    let config = lameduck::Config {
        shutdown_timeout: Duration::from_millis(300),
        force_grace: Duration::from_millis(200),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    let app = server.app.clone();
    // A client that stopped half-way through a request head: there is no
    // request to answer yet, and it is not idle, so the graceful signal
    // cannot close it. Only the forced close ends it.
    let mut half = http::connect(server.addr).await;
    http::send(&mut half, b"GET /livez HTTP/1.1\r\nHost: x\r\n").await;
    server
        .wait_until(Duration::from_secs(5), "connection accepted", |a| {
            a.metrics.open_connections() == 1
        })
        .await;

    server.shutdown();
    let report = server.report_within(STOP).await;
    assert_eq!(report.outcome, Outcome::ForcedByDeadline);
    assert_eq!(report.connections_aborted, 1);
    assert_eq!(app.metrics.open_connections(), 0);
    http::closed_within(&mut half, Duration::from_secs(5)).await;
}

/// Step 5: a second trigger during the drain skips the deadline and its
/// grace: everything is aborted at once.
#[tokio::test]
async fn a_second_trigger_forces_the_close_at_once() {
    let server = TestServer::start(test_config()).await; // 10 s deadline
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/api/slow?ms=60000").await;
    wait_in_flight(&server, 1).await;

    server.shutdown();
    server.wait_for_phase(STOP, Phase::Draining).await;
    let started = std::time::Instant::now();
    server.force();
    let app = server.app.clone();
    let report = server.report_within(STOP).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "forced close took {:?}",
        started.elapsed()
    );
    assert_eq!(report.outcome, Outcome::ForcedBySignal);
    assert_eq!((report.connections_aborted, report.exit_code()), (1, 1));
    // Aborted, not answered: a second signal skips the polite 503.
    assert!(http::read_response(&mut conn).await.is_none());
    // The slow work's token was cancelled when its handler was dropped.
    support::eventually(Duration::from_secs(5), "work cancelled", || {
        app.metrics.work_cancelled.load(Relaxed) == 1
    })
    .await;
}

/// Step 3: an event stream open at the drain sends a final
/// `event: shutdown` with a `retry:` hint and ends its body cleanly.
#[tokio::test]
async fn the_event_stream_ends_with_its_final_event() {
    let server = TestServer::start(test_config()).await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/api/stream?interval_ms=50").await;
    let (head, mut buf) = http::read_head(&mut conn).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let first = http::read_chunk(&mut conn, &mut buf)
        .await
        .expect("first event");
    let id = first
        .strip_prefix("id: ")
        .and_then(|rest| rest.split_once('\n'))
        .map(|(id, _)| id)
        .expect("an id line first");
    assert!(
        first.starts_with(&format!("id: {id}\ndata: {{\"id\":\"{id}\"}}")),
        "{first:?}"
    );

    server.shutdown();
    let mut last = String::new();
    while let Some(chunk) = http::read_chunk(&mut conn, &mut buf).await {
        last = chunk;
    }
    assert_eq!(
        last,
        "event: shutdown\nretry: 1000\ndata: server closing\n\n"
    );
    let report = server.report_within(STOP).await;
    assert_eq!(
        report.outcome,
        Outcome::Drained,
        "the stream did not hold the drain"
    );
    assert_eq!(report.streams_ended, 1);
}

/// Step 3: background workers are cancelled and awaited; the cleaner,
/// which has been running on its ticker, keeps running through the lame
/// duck, stops when the drain begins, not when the drain ends, and does
/// not hold the exit.
#[tokio::test]
async fn the_cleaner_stops_when_the_drain_begins() {
    let config = lameduck::Config {
        cleanup_interval: Duration::from_millis(20),
        // Long enough for a tick between the signal and the drain even on
        // a loaded machine.
        drain_delay: Duration::from_secs(1),
        ..test_config()
    };
    let server = TestServer::start(config).await;
    server
        .wait_until(Duration::from_secs(5), "cleaner ran", |app| {
            app.metrics.cleaner_runs.load(Relaxed) >= 2
        })
        .await;
    let app = server.app.clone();
    // A slow request holds the drain open past the lame duck: a cleaner
    // that stopped only when the drain ended would tick ~50 times in it.
    let mut slow = http::connect(server.addr).await;
    http::send_get(&mut slow, "/api/slow?ms=2000").await;
    wait_in_flight(&server, 1).await;

    server.shutdown();
    server.wait_for_phase(STOP, Phase::LameDuck).await;
    let at_signal = app.metrics.cleaner_runs.load(Relaxed);
    server
        .wait_until(STOP, "the cleaner ran in the lame duck", |app| {
            app.metrics.cleaner_runs.load(Relaxed) > at_signal
        })
        .await;
    server.wait_for_phase(STOP, Phase::Draining).await;
    let at_drain = app.metrics.cleaner_runs.load(Relaxed);
    assert_eq!(http::read_response(&mut slow).await.unwrap().status, 200);

    let report = server.report_within(STOP).await;
    assert_eq!(report.outcome, Outcome::Drained);
    // The cleaner and the items feed.
    assert_eq!((report.workers_stopped, report.workers_aborted), (2, 0));
    assert!(
        report.drain >= Duration::from_millis(500),
        "the slow request held the drain open: {report:?}"
    );
    let runs = app.metrics.cleaner_runs.load(Relaxed);
    // At most the purge already under way when the token fired: the
    // cleaner checks its token before every tick.
    assert!(
        runs <= at_drain + 1,
        "the cleaner ran {} times after the drain began",
        runs - at_drain
    );
    tokio::time::sleep(Duration::from_millis(100)).await; // five more ticks, if it were alive
    assert_eq!(
        app.metrics.cleaner_runs.load(Relaxed),
        runs,
        "the cleaner kept running"
    );
}

/// Step 2: on-shutdown hooks run once each, in the order they were
/// registered, at the first trigger (while the server is a lame duck), and
/// a panicking or failing hook does not stop the hooks after it, or the
/// shutdown. The list of runs is complete when the channel closes, which
/// happens only once every hook has been dropped, so a hook run again at
/// the second trigger, or after `run` returned, would be in it.
#[tokio::test]
async fn hooks_run_once_each_in_order_at_the_first_trigger_past_a_panic() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut server = Server::new(lameduck::Config {
        // Long: the second trigger, not the cap, ends the lame duck, so
        // every hook runs while the server is in it.
        drain_delay: Duration::from_secs(30),
        ..test_config()
    });
    let app = server.app().clone();
    // Each hook counts itself, then reports its name and the phase it saw.
    let hook = |name: &'static str| {
        let (runs, tx, app) = (runs.clone(), tx.clone(), app.clone());
        move || {
            runs.fetch_add(1, Relaxed);
            let _ = tx.send((name, app.shutdown.phase()));
        }
    };
    // Registered first, so that the hooks after it prove it was contained.
    let panicking = hook("panicking");
    server.on_shutdown("panicking", move || {
        panicking();
        panic!("hook panic")
    });
    let failing = hook("failing");
    server.on_shutdown("failing", move || {
        failing();
        Err("the hub is gone".into())
    });
    for name in ["first", "second"] {
        let run = hook(name);
        server.on_shutdown(name, move || {
            run();
            Ok(())
        });
    }
    // From here only the hooks hold a sender.
    drop((tx, app));
    let server = TestServer::start_server(server).await;

    server.shutdown();
    // Bounded: if a panic stopped the hooks after it, nothing would come.
    let mut fired = Vec::new();
    for _ in 0..4 {
        let hook = tokio::time::timeout(STOP, rx.recv()).await;
        fired.push(hook.expect("a hook after the panicking one ran").unwrap());
    }
    let lame_duck = |name| (name, Phase::LameDuck);
    assert_eq!(
        fired,
        ["panicking", "failing", "first", "second"].map(lame_duck),
        "the hooks after the panic ran, in order, in the lame duck"
    );
    server.force(); // a second trigger must not fire them again
    let report = server.report_within(STOP).await;
    // Theirs, and the server's own: the WebSocket hub's.
    assert_eq!(report.hooks_fired, 5);
    // Bounded: the channel closes once the last hook is dropped.
    let later = tokio::time::timeout(STOP, async {
        let mut later = Vec::new();
        while let Some(hook) = rx.recv().await {
            later.push(hook);
        }
        later
    })
    .await
    .expect("every hook was dropped once the server stopped");
    assert_eq!(later, [], "a hook ran again");
    assert_eq!(runs.load(Relaxed), 4, "each hook ran exactly once");
    assert!(rx.try_recv().is_err());
}

/// Step 1: the accept loop reaps finished connection tasks, so after ten
/// thousand short connections nothing is tracked any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_churned_connections_leave_nothing_tracked() {
    let server = TestServer::start(test_config()).await;
    let addr = server.addr;
    let clients: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(async move {
                for _ in 0..1250 {
                    let res = get(addr, "/healthz").await;
                    assert_eq!(res.status, 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    server
        .wait_until(Duration::from_secs(10), "all connections closed", |app| {
            app.metrics.open_connections() == 0
        })
        .await;
    assert_eq!(
        server.app.metrics.connections_accepted.load(Relaxed),
        10_000
    );
    assert_eq!(server.app.metrics.requests_with_status(200), 10_000);
    server.shutdown();
    let report = server.report_within(STOP).await;
    assert_eq!(
        (report.connections_at_drain, report.outcome),
        (0, Outcome::Drained)
    );
}

/// The listener sets `SO_REUSEADDR`: after a shutdown that closed
/// connections from the server side (leaving them in `TIME_WAIT` on the
/// server's port), a new instance can bind the same port at once — the
/// restart case.
#[tokio::test]
async fn a_restarted_server_can_bind_its_port_while_old_connections_linger() {
    let server = TestServer::start(test_config()).await;
    let addr = server.addr;
    for _ in 0..3 {
        // `Connection: close`: the server closes first, so TIME_WAIT is ours.
        assert_eq!(get(addr, "/livez").await.status, 200);
    }
    server.shutdown();
    server.report_within(STOP).await;

    let again = lameduck::process::listener::bind(addr, 16)
        .expect("rebinding the port right after a shutdown");
    assert_eq!(again.local_addr().unwrap(), addr);
}

/// A stop caused by an upgrade skips the lame-duck phase — the new process
/// already serves the same socket, so there is no balancer to wait for —
/// and the report names the cause and the new process.
#[tokio::test]
async fn an_upgrade_stop_skips_the_drain_delay_and_is_named_in_the_report() {
    let server = Server::new(lameduck::Config {
        drain_delay: Duration::from_secs(30),
        ..test_config()
    });
    let listener = lameduck::process::listener::bind(test_config().addr, 16).expect("bind");
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<Stop>();
    let run = tokio::spawn(server.run(
        listener,
        async move { rx.await.unwrap() },
        std::future::pending(),
    ));
    assert_eq!(get(addr, "/healthz").await.status, 200);
    tx.send(Stop::Upgrade { new_pid: 4242 }).unwrap();
    let report = tokio::time::timeout(STOP, run)
        .await
        .expect("no 30 s drain delay after an upgrade")
        .unwrap();
    assert_eq!(report.cause, Stop::Upgrade { new_pid: 4242 });
    assert_eq!(report.outcome, Outcome::Drained);
    assert!(report.lame_duck < Duration::from_secs(5), "{report:?}");
    assert_eq!(report.lame_duck_end, lameduck::LameDuckEnd::Upgrade);
}
