//! The storm benchmark (`benches/storm.rs`) in its `--quick` mode, so
//! that `cargo test` runs every part of it and the bench cannot rot. The
//! rebalancing rows need HAProxy, so they are a test of their own, run by
//! `.ci/run` with `--ignored`.
//!
//! A bench is its own code, so this file includes it.

#[allow(dead_code)] // `main` and some helpers are only used by the bench binary.
#[path = "../benches/storm.rs"]
mod storm;

fn quick(only: &str) -> storm::Options {
    let args = ["--quick", "--only", only].map(str::to_owned);
    let mut opts = storm::Options::from_args(args).expect("options");
    opts.bin = env!("CARGO_BIN_EXE_lameduck").into();
    opts
}

/// The burst and the storm rows in `--quick` mode: every client
/// reconnects after every restart, every old process exits 0, and nothing
/// fails or is lost. The counts are tiny: this proves the bench works, not
/// any figure.
#[test]
fn quick_storm_bench_runs_the_burst_and_every_storm_row() {
    let burst = storm::run(&quick("burst")).expect("the burst runs");
    print!("{}", burst.table());
    for row in &burst.bursts {
        assert_eq!(
            (row.error.as_deref(), row.failed),
            (None, 0),
            "{}",
            row.name
        );
    }
    let opts = quick("storm");
    let figures = storm::run(&opts).expect("the storm rows run");
    print!("{}", figures.table());
    let names: Vec<&str> = figures.storms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    for row in &figures.storms {
        assert_eq!(row.error, None, "{}", row.name);
        assert_eq!(row.restarts.len(), opts.restarts, "{}", row.name);
        assert!(row.items_created > 0, "{}: no items", row.name);
        assert_eq!(
            row.failures.requests(),
            0,
            "{}: {:?}",
            row.name,
            row.failures
        );
        assert_eq!(
            (row.failures.lost, row.failures.duplicated),
            (0, 0),
            "{}",
            row.name
        );
        for r in &row.restarts {
            assert_eq!(r.old_exit, "Code(0)", "{}", row.name);
            assert!(r.wave.reconnects > 0, "{}: nobody reconnected", row.name);
        }
    }
}

/// The rebalancing rows behind a real HAProxy in `mode tcp`, tiny: with
/// `--max-connection-age` the restarted instance gets its share back
/// within the observation; without it, it does not.
#[test]
#[ignore = "needs haproxy: apt-get install haproxy"]
fn quick_storm_bench_rebalances_only_with_a_connection_age() {
    let figures = storm::run(&quick("rebalance")).expect("the rebalancing rows run");
    print!("{}", figures.table());
    let [without, with] = &figures.rebalances[..] else {
        panic!("two rows: {:?}", figures.rebalances);
    };
    assert_eq!((&without.error, &with.error), (&None, &None));
    assert_eq!(without.rebalanced_after_s, None, "{without:?}");
    assert!(with.rebalanced_after_s.is_some(), "{with:?}");
}
