//! The churn bench's cost mode (`cargo bench --bench churn -- --cost`) in
//! a tiny form: 100 and 300 requests over HTTP/1 and over HTTP/2, 20 and
//! 60 connections churned and drained, 100 and 300 hub deliveries (A
//! only), each server
//! under valgrind's callgrind, so that `cargo test` proves the counting
//! works and the mode cannot rot. The debug build's counts say nothing
//! about speed; the bench's do.
//!
//! Without valgrind the test says so and what to install, and passes:
//! `.ci/run` installs valgrind, so CI always counts.
//!
//! This test has its own `main` (`harness = false`): the bare hyper loop
//! the mode counts beside lameduck must be an executable of its own, and
//! this one is it when started with `--serve-bare`.

#[allow(dead_code)] // The bench's own `main` and timed phases are not used here.
#[path = "../benches/churn.rs"]
mod churn;

use std::process::ExitCode;

use churn::cost;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(mode) = args.first()
        && cost::SERVE_MODES.contains(&mode.as_str())
    {
        return cost::serve_bare(mode);
    }
    // `cargo test some_filter` passes its filter to every test binary;
    // this one runs only when unfiltered or asked for by name.
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let name = "the_cost_mode_counts_both_servers_per_request_and_per_connection";
    if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--list") {
        println!("{name}: test");
        return ExitCode::SUCCESS;
    }
    if let Some(missing) = cost::missing_tools() {
        println!("test {name} ... not run: {missing}");
        return ExitCode::SUCCESS;
    }
    the_cost_mode_counts_both_servers_per_request_and_per_connection();
    println!("test {name} ... ok");
    ExitCode::SUCCESS
}

/// Both figures are counted for both servers: positive, finite counts
/// per unit (a request costs a few thousand instructions, a connection
/// more), a ratio, and a list of the functions where lameduck spends more;
/// and lameduck's own figures: the upgrade, both processes counted, and
/// the hub's delivery of an item to a WebSocket.
/// A failed request or a server that did not exit cleanly fails the run.
fn the_cost_mode_counts_both_servers_per_request_and_per_connection() {
    let programs = churn::cost_programs().expect("the programs");
    let costs = cost::run(&programs, 100).expect("the cost mode runs");
    let upgrade = cost::upgrade(&programs, 1).expect("the upgrades are counted");
    let hub = cost::hub(&programs, 100).expect("the hub's deliveries are counted");
    print!("{}", cost::table(&costs, &[upgrade.clone(), hub.clone()]));
    let names: Vec<&str> = costs.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "keepalive_request",
            "h2_request",
            "churned_connection",
            "drained_idle_connection"
        ]
    );
    for c in &costs {
        for (server, n) in [("A", c.a), ("B", c.b)] {
            assert!(
                n.is_finite() && n > 1_000.0,
                "{} {server}: {n} instructions per unit",
                c.name
            );
        }
        assert!(c.ratio().is_finite());
    }
    let (request, connection) = (&costs[0], &costs[2]);
    assert!(
        connection.b > request.b,
        "a connection costs more than a request on it"
    );
    assert!(!request.top.is_empty(), "no function list");
    // A new process's start: far more than a request, and counted at all
    // only if callgrind followed the old process's child.
    assert!(
        upgrade.per_unit > 100.0 * request.a,
        "{} instructions per upgrade",
        upgrade.per_unit
    );
    assert!(!upgrade.top.is_empty(), "no function list for the upgrade");
    // A delivery is one WebSocket frame written, and a fiftieth of the
    // item's creation: hundreds of instructions at the least.
    assert!(
        hub.per_unit.is_finite() && hub.per_unit > 500.0,
        "{} instructions per hub delivery",
        hub.per_unit
    );
    assert!(!hub.top.is_empty(), "no function list for the hub");
}
