//! Behind a load balancer: two instances of the real binary behind a real
//! HAProxy (`option httpchk GET /healthz`, `inter 500ms fall 2 rise 2`,
//! `retries 0`, no redispatch), restarted one at a time under keep-alive
//! load through HAProxy.
//!
//! Both tests need `haproxy` and are ignored by a plain `cargo test`; run
//! them with `cargo test --test haproxy -- --ignored` (after `apt-get
//! install haproxy`). `.ci/run` does. Without it they fail, saying so.
//!
//! The fleet, the HAProxy configuration and the restart steps are the
//! rolling-restart bench's (`benches/rolling/`), so the bench and the
//! tests restart the same way; the last test runs the bench itself in its
//! `--quick` mode.

#[allow(dead_code)] // `main` and some helpers are only used by the bench binary.
#[path = "../benches/rolling.rs"]
mod rolling;

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use lameduck::testing::load::Load;
use rolling::process::Exit;
use rolling::{Rolled, Rolling};

/// The lame-duck flags of every instance: leave the phase once HAProxy
/// has been answered `503` as many times as its `fall`, within 5 s.
const FLAGS: &[&str] = &["--drain-delay", "5s", "--drain-checks", "2"];

/// Instance restarts: three rounds of the two instances.
const RESTARTS: usize = 6;

/// Both tests put real load on two shared cores: one at a time.
static ONE_LOAD_AT_A_TIME: Mutex<()> = Mutex::new(());

fn flags() -> Vec<String> {
    FLAGS.iter().map(|f| f.to_string()).collect()
}

/// The value given to `name` in [`FLAGS`], if any.
fn flag(name: &str) -> Option<&'static str> {
    let at = FLAGS.iter().position(|&f| f == name)?;
    FLAGS.get(at + 1).copied()
}

/// Instances restarted in turn, [`RESTARTS`] times, under 12 keep-alive
/// workers with think time: no request fails through HAProxy, HAProxy
/// marks each instance `DOWN` before it exits, and every process exits 0.
/// With `--drain-checks`, every lame-duck phase ends on the checks, well
/// before the `--drain-delay` cap.
#[test]
#[ignore = "needs haproxy: apt-get install haproxy"]
fn rolling_restarts_behind_haproxy_fail_no_request() {
    let _one = ONE_LOAD_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let flags = flags();
    let rolled = Rolling {
        bin: Path::new(env!("CARGO_BIN_EXE_lameduck")),
        flags: &flags,
        load: Load::Think,
        uri: None,
        workers: 12,
        restarts: RESTARTS,
        warmup: Duration::from_millis(500),
        between: Duration::from_millis(200),
    }
    .run(&rt);
    assert_eq!(rolled.error, None, "the rolling restart stopped early");
    assert_eq!(rolled.restarts.len(), RESTARTS);
    assert_no_failures(&rolled);
    for (n, r) in rolled.restarts.iter().enumerate() {
        let what = format!("restart {} (instance {})", n + 1, r.instance);
        assert_eq!(r.stopped.exit, Exit::Code(0), "{what}: {:?}", r.stopped);
        assert!(
            r.marked_down.is_some(),
            "{what}: exited after {:?}, before HAProxy marked it DOWN",
            r.stopped.took
        );
    }
    for (i, stopped) in rolled.stopped.iter().enumerate() {
        assert_eq!(stopped.exit, Exit::Code(0), "instance {i} at the end");
    }
    if flag("--drain-checks").is_some() {
        assert_lame_duck_ended_on_checks(&rolled);
    }
}

/// No request through HAProxy failed (its `503` counts), and plenty
/// succeeded.
fn assert_no_failures(rolled: &Rolled) {
    let record = rolled.record.as_ref().expect("the load ran");
    let total = record.total();
    let failures: Vec<_> = record.failures().take(10).collect();
    let per_restart: Vec<u64> = rolled.windows().iter().map(|w| w.failed()).collect();
    assert_eq!(
        total.failed(),
        0,
        "{total:?}; per restart {per_restart:?}; first failures (time since start, class): {failures:?}"
    );
    assert!(total.ok > 500, "hardly any load: {total:?}");
}

/// Every report says the lame-duck phase ended on the checks, in less
/// than half the `--drain-delay` cap.
fn assert_lame_duck_ended_on_checks(rolled: &Rolled) {
    let cap = humantime::parse_duration(flag("--drain-delay").expect("a --drain-delay cap"))
        .expect("a duration");
    for (n, r) in rolled.restarts.iter().enumerate() {
        let report = &r.stopped;
        assert_eq!(
            report.field("lame_duck_end"),
            Some("checks"),
            "restart {}: {:?}",
            n + 1,
            report.report
        );
        let ms: u64 = report
            .field("lame_duck_ms")
            .and_then(|v| v.parse().ok())
            .expect("lame_duck_ms in the report");
        assert!(
            Duration::from_millis(ms) < cap / 2,
            "restart {}: lame duck {ms} ms against a cap of {cap:?}",
            n + 1
        );
    }
}

/// The rolling-restart bench in its `--quick` mode, with no lame-duck
/// phase and with the flags above: both rows run their restarts, the old
/// processes exit 0, the table names both rows and the JSON parses back.
/// The counts are tiny: this proves the bench works, not any figure.
#[test]
#[ignore = "needs haproxy: apt-get install haproxy"]
fn quick_rolling_bench_runs_every_row() {
    let _one = ONE_LOAD_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let args = [
        "--quick",
        "--flags",
        "--drain-delay 0s",
        "--flags",
        &FLAGS.join(" "),
    ];
    let mut opts = rolling::Options::from_args(args.map(str::to_owned)).expect("options");
    opts.bin = env!("CARGO_BIN_EXE_lameduck").into();
    let figures = rolling::run(&opts);
    let names: Vec<&str> = figures.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "http1_haproxy_delay0s_keepalive_c4".to_owned(),
            rolling::row_name(&flags(), Load::KeepAlive, 4),
        ]
    );
    for row in &figures.rows {
        assert_eq!(row.error, None, "{}", row.name);
        assert_eq!(row.restarts, opts.restarts, "{}", row.name);
        assert_eq!(row.bad_exits, 0, "{}", row.name);
        assert!(row.ok > 0, "{}: no load", row.name);
    }
    let json = std::env::temp_dir().join(format!("lameduck-rolling-{}.json", std::process::id()));
    figures.write_json(&json).expect("write JSON");
    let text = std::fs::read_to_string(&json).expect("read JSON back");
    let _ = std::fs::remove_file(&json);
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(
        parsed["rows"][0]["name"],
        "http1_haproxy_delay0s_keepalive_c4"
    );
    assert!(figures.table().contains("| `--drain-delay 0s` |"));
}
