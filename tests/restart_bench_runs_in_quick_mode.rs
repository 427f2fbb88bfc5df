//! The restart benchmark (`benches/restart.rs`) in its `--quick` mode, so
//! that `cargo test` runs every row of it and the bench cannot rot. (The
//! upgrades under load that the tests hold to account are in
//! `restart_load.rs`, on the same `lameduck::testing::binary`.)
//!
//! A bench is its own code, so this file includes it.

#[allow(dead_code)] // `main` and some helpers are only used by the bench binary.
#[path = "../benches/restart.rs"]
mod restart;

/// The restart bench in its `--quick` mode: every row runs its restarts
/// against the binary, the SIGHUP rows' old processes exit 0, the
/// long-lived row's followers lose and repeat nothing, and the JSON
/// parses back. The counts are tiny: this proves the bench works,
/// not any figure.
#[test]
fn quick_restart_bench_runs_every_row() {
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
    // The long-lived row: followers that lose nothing and see nothing
    // twice, closes that say "restart", a download whose every byte is
    // right.
    print!("{}", figures.table());
    let long = figures.long_lived.as_ref().expect("the long-lived row");
    assert_eq!(long.error, None);
    assert_eq!(long.restarts, opts.restarts);
    assert!(long.items > 0, "no items were created");
    assert_eq!((long.lost, long.duplicated), (0, 0));
    assert_eq!(long.failed_creates, 0);
    let restarts = long.hubs * opts.restarts;
    assert_eq!(long.closes.get(&1012), Some(&restarts), "{:?}", long.closes);
    assert!(
        long.download_complete && long.download_wrong_bytes == 0,
        "{long:?}"
    );
    let json = std::env::temp_dir().join(format!("lameduck-restart-{}.json", std::process::id()));
    figures.write_json(&json).expect("write JSON");
    let text = std::fs::read_to_string(&json).expect("read JSON back");
    let _ = std::fs::remove_file(&json);
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(parsed["rows"][0]["name"], "http1_sighup_keepalive_c4");
    assert!(figures.table().contains("| `http1_naive_churn_c4` |"));
}
