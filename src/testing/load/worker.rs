//! One worker: requests in a loop until the deadline or the stop token,
//! each one recorded.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::client::{Client, Exchange};
use super::record::{Acked, Event, WorkerLog};
use super::{Load, Plan, THINK_TIME, Verdict, Work};

/// Runs one worker; `id` makes its item names unique in the run.
pub(super) async fn run(
    id: usize,
    plan: Arc<Plan>,
    started: Instant,
    deadline: Instant,
    stop: CancellationToken,
) -> WorkerLog {
    let mut client = Client::new(plan.addr, plan.step_timeout);
    let mut log = WorkerLog::default();
    let mut request = Vec::new();
    for seq in 0u64.. {
        if stop.is_cancelled() || Instant::now() >= deadline {
            break;
        }
        let name = format!("w{id}-{seq}");
        build_request(&mut request, plan.work, plan.load, &name);
        if plan.load == Load::Churn {
            client.close();
        }
        let exchange = client.request(&request).await;
        let at = Instant::now() - started;
        log.events.push(Event {
            at,
            verdict: exchange.verdict,
        });
        if exchange.verdict == Verdict::Ok {
            plan.answered.fetch_add(1, Relaxed);
        }
        if let Some(acked) = acknowledged(plan.work, &exchange, name) {
            log.acked.push(acked);
        }
        let pause = if exchange.verdict != Verdict::Ok {
            plan.retry_pause
        } else if plan.load == Load::Think {
            THINK_TIME
        } else {
            continue;
        };
        // The pause ends early if the run does: the stop is awaited, not
        // polled.
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = sleep_until(deadline) => break,
            _ = sleep(pause) => {}
        }
    }
    log
}

/// The request's bytes, into `buf`.
fn build_request(buf: &mut Vec<u8>, work: Work, load: Load, name: &str) {
    use std::io::Write;
    buf.clear();
    let connection = if load == Load::Churn {
        "close"
    } else {
        "keep-alive"
    };
    let _ = match work {
        Work::List => write!(
            buf,
            "GET /api/items HTTP/1.1\r\nHost: lameduck\r\nConnection: {connection}\r\n\r\n"
        ),
        Work::Create => {
            let body = serde_json::json!({ "name": name }).to_string();
            write!(
                buf,
                "POST /api/items HTTP/1.1\r\nHost: lameduck\r\nConnection: {connection}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        }
    };
}

/// The item a `201` acknowledged, with the name that was sent. A `201`
/// whose body has no numeric `id` is still acknowledged, with id 0, so
/// that the check afterwards fails loudly rather than skipping it.
fn acknowledged(work: Work, exchange: &Exchange, name: String) -> Option<Acked> {
    let response = exchange.response.as_ref()?;
    if work != Work::Create || response.status != 201 {
        return None;
    }
    let id = serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| v.get("id")?.as_u64())
        .unwrap_or(0);
    Some(Acked { id, name })
}
