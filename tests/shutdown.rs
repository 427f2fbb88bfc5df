//! The shutdown sequence, step by step, driven in-process by tokens.

mod support;

use std::time::Duration;

use lameduck::Outcome;
use support::http::{self, get};
use support::{TestServer, test_config};

/// A request in flight when the shutdown begins completes with 200, and
/// the response tells the client the connection is closing.
#[tokio::test]
async fn in_flight_request_completes_with_connection_close() {
    let server = TestServer::start(test_config()).await;
    let mut conn = http::connect(server.addr).await;
    http::send_get(&mut conn, "/api/slow?ms=500").await;
    server
        .wait_until(Duration::from_secs(5), "request in flight", |app| {
            app.metrics
                .requests_in_flight
                .load(std::sync::atomic::Ordering::Relaxed)
                == 1
        })
        .await;

    server.shutdown();
    let res = http::read_response(&mut conn)
        .await
        .expect("a response, not a reset");
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "done\n");
    assert!(
        res.closes(),
        "in-flight response must carry Connection: close: {res:?}"
    );

    let report = server.report_within(Duration::from_secs(10)).await;
    assert_eq!(report.outcome, Outcome::Drained);
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.requests_during_drain, 1);
    assert_eq!(
        get_ok_after_close(&mut conn).await,
        0,
        "connection closed after the response"
    );
}

async fn get_ok_after_close(conn: &mut tokio::net::TcpStream) -> usize {
    http::closed_within(conn, Duration::from_secs(5))
        .await
        .len()
}

/// Smoke check used by the other tests: a running server answers /healthz.
#[tokio::test]
async fn healthz_is_ok_while_running() {
    let server = TestServer::start(test_config()).await;
    let res = get(server.addr, "/healthz").await;
    assert_eq!((res.status, res.text().as_str()), (200, "ok\n"));
    server.shutdown();
    server.report_within(Duration::from_secs(10)).await;
}
