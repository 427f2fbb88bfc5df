//! The churn benchmark (`benches/churn.rs`) in its `--quick` mode, so that
//! `cargo test` compiles and runs every phase of it and the bench cannot
//! rot. The counts are tiny: this proves the harness works, not any speed.
//!
//! A bench is its own code, so this file includes it; what the benches
//! share with the tests (the binary as a process, the load generator) is
//! in `lameduck::testing`.

#[allow(dead_code)] // `main` and some fields are only used by the bench binary.
#[path = "../benches/churn.rs"]
mod churn;

/// Every figure is produced against both servers: both answer every churn
/// and keep-alive request (no client errors, a positive rate each), idle
/// connections cost each server some memory, the drain closes every idle
/// connection gracefully (none aborted, the client sees each close), the
/// churn-memory phase completes its count, and the JSON parses back with
/// the same names.
#[test]
fn quick_bench_measures_every_figure_against_both_servers() {
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

/// `--pinned` brings its own rounds and their length, but `--rounds` and
/// `--secs` win wherever they stand on the command line.
#[test]
fn rounds_and_secs_win_over_pinned_in_either_order() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let pinned = churn::Options::from_args(args(&["--pinned"])).expect("options");
    assert_eq!(pinned.rounds, 21);
    assert_eq!(pinned.run_for, std::time::Duration::from_millis(700));
    for order in [
        &["--rounds", "5", "--secs", "1.5", "--pinned"][..],
        &["--pinned", "--rounds", "5", "--secs", "1.5"][..],
    ] {
        let opts = churn::Options::from_args(args(order)).expect("options");
        assert!(opts.pinned, "{order:?}");
        assert_eq!(opts.rounds, 5, "{order:?}");
        assert_eq!(
            opts.run_for,
            std::time::Duration::from_millis(1500),
            "{order:?}"
        );
    }
}
