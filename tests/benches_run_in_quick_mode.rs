//! The churn and restart benchmarks (`benches/churn.rs`,
//! `benches/restart.rs`) in their `--quick` mode, so that `cargo test`
//! compiles and runs every phase of them and the benches cannot rot. The
//! counts are tiny: this proves the benches work, not any speed. (The
//! rolling bench needs HAProxy; its quick run is in `haproxy.rs`.)
//!
//! A bench is its own code, so this file includes it; what the benches
//! share with the tests (the binary as a process, the load generator) is
//! in `lameduck::testing`.

#[allow(dead_code)] // `main` and some fields are only used by the bench binary.
#[path = "../benches/churn.rs"]
mod churn;

#[allow(dead_code)] // `main` and some helpers are only used by the bench binary.
#[path = "../benches/restart.rs"]
mod restart;

use std::sync::Mutex;

/// Each bench puts real load on two shared cores: one at a time.
static ONE_BENCH_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_bench_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_BENCH_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every figure is produced against both servers: both answer every churn
/// and keep-alive request (no client errors, a positive rate each), idle
/// connections cost each server some memory, the drain closes every idle
/// connection gracefully (none aborted, the client sees each close), the
/// churn-memory phase completes its count, and the JSON parses back with
/// the same names.
#[test]
fn quick_bench_measures_every_figure_against_both_servers() {
    let _one = one_bench_at_a_time();
    let opts = churn::Options::from_args(["--quick".to_owned()]).expect("options");
    assert!(opts.quick);

    let figures = churn::run(&opts).expect("the quick bench runs");

    let names: Vec<&str> = figures.load.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "http1_churn_c1",
            "http1_churn_c16",
            "http1_churn_c64",
            "http1_keepalive_c64"
        ]
    );
    for f in &figures.load {
        for (server, side) in [("A", &f.a), ("B", &f.b)] {
            assert_eq!(side.errors, 0, "{} {server}: failed requests", f.name);
            assert!(side.rate > 0.0, "{} {server}: no requests done", f.name);
            assert!(
                side.p99_us >= side.p50_us,
                "{} {server}: percentiles",
                f.name
            );
        }
        assert!(f.ratio.is_finite() && f.ratio > 0.0, "{}: ratio", f.name);
    }

    let mem = figures.mem_idle.as_ref().expect("mem_idle ran");
    assert!(
        mem.a_bytes > 0.0 && mem.b_bytes > 0.0,
        "idle connections cost no memory? {mem:?}"
    );

    let drain = figures.drain_idle.as_ref().expect("drain_idle ran");
    assert_eq!(drain.outcome, "drained", "{drain:?}");
    assert_eq!(drain.connections_at_drain, drain.conns, "{drain:?}");
    assert_eq!(drain.connections_aborted, 0, "{drain:?}");
    assert_eq!(drain.closed_seen_by_client, drain.conns, "{drain:?}");

    let churned = figures.mem_churn.as_ref().expect("mem_churn ran");
    assert_eq!(churned.errors, 0, "{churned:?}");
    assert_eq!(churned.conns, opts.churn_conns, "{churned:?}");

    let json = std::env::temp_dir().join(format!("lameduck-churn-{}.json", std::process::id()));
    figures.write_json(&json).expect("write JSON");
    let text = std::fs::read_to_string(&json).expect("read JSON back");
    let _ = std::fs::remove_file(&json);
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(parsed["load"][2]["name"], "http1_churn_c64");
    assert_eq!(parsed["drain_idle"]["name"], drain.name.as_str());
    assert!(figures.table().contains("mem_churn_1k"));
}

/// The restart bench in its `--quick` mode: every row runs its restarts
/// against the binary, the SIGHUP rows' old processes exit 0, and the
/// JSON parses back. The counts are tiny: this proves the bench works,
/// not any figure.
#[test]
fn quick_restart_bench_runs_every_row() {
    let _one = one_bench_at_a_time();
    let mut opts = restart::Options::from_args(["--quick".to_owned()]).expect("options");
    opts.bin = env!("CARGO_BIN_EXE_lameduck").into();
    let figures = restart::run(&opts).expect("the quick bench runs");
    let names: Vec<&str> = figures.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "http1_sighup_keepalive_c4",
            "http1_naive_keepalive_c4",
            "http1_sighup_think_c4",
            "http1_naive_think_c4",
            "http1_sighup_churn_c4",
            "http1_naive_churn_c4",
        ]
    );
    for row in &figures.rows {
        assert_eq!(row.error, None, "{}", row.name);
        assert_eq!(row.restarts, opts.restarts, "{}", row.name);
        assert!(row.ok > 0, "{}: no load", row.name);
        for r in &row.per_restart {
            assert_ne!(r.old_pid, r.new_pid, "{}", row.name);
            if row.method == "sighup" {
                assert_eq!(r.old_exit.as_deref(), Some("Code(0)"), "{}", row.name);
            }
        }
    }
    let json = std::env::temp_dir().join(format!("lameduck-restart-{}.json", std::process::id()));
    figures.write_json(&json).expect("write JSON");
    let text = std::fs::read_to_string(&json).expect("read JSON back");
    let _ = std::fs::remove_file(&json);
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(parsed["rows"][0]["name"], "http1_sighup_keepalive_c4");
    assert!(figures.table().contains("| `http1_naive_churn_c4` |"));
}
