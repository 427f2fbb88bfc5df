//! The command line as the real binary reads it: values past a flag's
//! bound, yes-or-no environment variables, `--log-format json` and
//! `RUST_LOG`. The parsing itself is tested in `src/cli.rs`; these prove
//! what an operator sees.

mod support;

use std::process::{Command, Output};

use support::binary::{Binary, stderr_of_a_short_run};
use support::http;

/// Runs the binary to its exit with `args` and `envs`; for start-up errors,
/// which come before it listens.
fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lameduck"))
        .args(args)
        .env("LAMEDUCK_DB", ":memory:")
        .envs(envs.iter().copied())
        .output()
        .expect("run lameduck")
}

/// Exit code 2 and exactly one line on stderr, which is returned.
fn one_line_exit_2(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr.trim_end().to_string()
}

/// A duration past its flag's bound, from a flag or the environment, is a
/// start-up error whose one line names the flag and the bound.
#[test]
fn a_duration_past_its_bound_is_a_startup_error_naming_the_bound() {
    let line = one_line_exit_2(&run(&["--shutdown-timeout", "25h"], &[]));
    assert!(
        line.starts_with("lameduck: invalid value '25h' for '--shutdown-timeout"),
        "{line}"
    );
    assert!(line.ends_with("too long: at most 24h"), "{line}");

    let line = one_line_exit_2(&run(&[], &[("LAMEDUCK_KEEPALIVE_GRACE", "2m")]));
    assert!(line.contains("--keepalive-grace"), "{line}");
    assert!(line.ends_with("too long: at most 1m"), "{line}");
}

/// A value that came from a `LAMEDUCK_*` variable is named by its
/// variable, where the fix is; the same value on the command line is not.
#[test]
fn a_bad_value_from_the_environment_names_its_variable() {
    let line = one_line_exit_2(&run(&[], &[("LAMEDUCK_SHUTDOWN_TIMEOUT", "banana")]));
    assert!(
        line.starts_with("lameduck: LAMEDUCK_SHUTDOWN_TIMEOUT: invalid value 'banana'"),
        "{line}"
    );
    let line = one_line_exit_2(&run(&["--shutdown-timeout", "banana"], &[]));
    assert!(!line.contains("LAMEDUCK_SHUTDOWN_TIMEOUT"), "{line}");
}

/// The one line keeps the hint clap prints on the lines below it: the
/// values `--log-format` takes, and why `--addr` refuses a host name.
#[test]
fn a_one_line_error_keeps_its_hint() {
    let line = one_line_exit_2(&run(&["--log-format", "xml"], &[]));
    assert!(line.ends_with("possible values: text, json"), "{line}");
    let line = one_line_exit_2(&run(&["--addr", "localhost:8080"], &[]));
    assert!(line.contains("host names are not looked up"), "{line}");
}

/// A port in use is found before the store is opened: exit 2, one line
/// naming the address, no `store open` line, and no database file left
/// behind.
#[test]
fn a_port_in_use_exits_2_before_any_store_is_opened() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = std::env::temp_dir().join(format!("lameduck-port-in-use-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("items.db");
    let out = run(
        &["--addr", &addr, "--db", db.to_str().expect("utf-8 path")],
        &[],
    );
    let line = one_line_exit_2(&out);
    assert!(
        line.starts_with(&format!("lameduck: cannot listen on {addr}: ")),
        "{line}"
    );
    let created: Vec<_> = std::fs::read_dir(&dir).expect("read dir").collect();
    assert!(created.is_empty(), "files left behind: {created:?}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

/// A size with a unit the flags do not take is refused, and the one line
/// lists the units they do take.
#[test]
fn a_size_with_an_unknown_unit_is_refused_with_the_accepted_units() {
    let line = one_line_exit_2(&run(&["--max-body", "5XB"], &[]));
    for unit in ["KB", "MB", "GB", "KiB", "MiB", "GiB"] {
        assert!(line.contains(unit), "{line}");
    }
    let line = one_line_exit_2(&run(&["--max-body", "2GiB"], &[]));
    assert!(line.ends_with("too large: at most 1GiB"), "{line}");
}

/// `LAMEDUCK_DEBUG_ROUTES=yes` turns the debug routes on, `=0` leaves them
/// off: the environment takes the words people write for yes and no.
#[tokio::test]
async fn yes_or_no_environment_variables_take_yes_and_0() {
    let program = std::path::Path::new(env!("CARGO_BIN_EXE_lameduck"));
    let on = Binary::start_from(program, &[], &[("LAMEDUCK_DEBUG_ROUTES", "yes")]);
    assert_eq!(http::get(on.addr, "/debug/panic").await.status, 500);
    let off = Binary::start_from(program, &[], &[("LAMEDUCK_DEBUG_ROUTES", "0")]);
    assert_eq!(http::get(off.addr, "/debug/panic").await.status, 404);
}

/// With `--log-format json`, every line of a run from start to SIGTERM to
/// exit is one JSON object, and the structured fields of the shutdown
/// lines (`phase`, `conns`, `outcome`) are keys of it.
#[test]
fn json_logs_are_one_object_per_line_with_the_fields_as_keys() {
    let (code, lines) = stderr_of_a_short_run(&["--log-format", "json"], &[]);
    assert_eq!(code, 0, "{lines:#?}");
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(objects.iter().all(|o| o.is_object()), "{lines:#?}");
    let with = |message: &str| {
        objects
            .iter()
            .filter(move |o| o["message"] == message)
            .collect::<Vec<_>>()
    };
    let report = with("shutdown report");
    assert_eq!(report.len(), 1, "{lines:#?}");
    assert_eq!(report[0]["outcome"], "drained");
    assert!(
        with("shutdown phase")
            .iter()
            .any(|o| o["phase"] == "draining" && o["conns"].is_u64()),
        "{lines:#?}"
    );
}

/// A `RUST_LOG` that cannot be read is a start-up error with one line, not
/// a silent fall-back to `info`.
#[test]
fn an_unreadable_rust_log_is_a_startup_error() {
    let line = one_line_exit_2(&run(
        &["--addr", "127.0.0.1:0"],
        &[("RUST_LOG", "bad[[filter")],
    ));
    assert!(line.starts_with("lameduck: RUST_LOG="), "{line}");
}

/// An empty `RUST_LOG` means `info`, as an unset one does: the
/// `info`-level start-up and shutdown lines are written.
#[test]
fn an_empty_rust_log_means_info() {
    let (code, lines) = stderr_of_a_short_run(&[], &[("RUST_LOG", "")]);
    assert_eq!(code, 0, "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("shutdown report")),
        "{lines:#?}"
    );
}

/// `--help` lists the forms durations, sizes and yes-or-no values take,
/// and the bounds.
#[test]
fn help_lists_the_accepted_forms_and_the_bounds() {
    let out = run(&["--help"], &[]);
    // The flags' help says "At most 24h." at the start of a sentence.
    let help = String::from_utf8_lossy(&out.stdout).to_lowercase();
    for form in [
        "1m30s",
        "1.5s",
        "kib",
        "mb",
        "yes/no",
        "at most 24h",
        "at most 1gib",
    ] {
        assert!(help.contains(form), "--help does not mention {form}");
    }
}

/// A goodbye window as long as the deadline, or longer, is refused at
/// start-up: the spread must fit inside the drain it spreads.
#[test]
fn a_drain_spread_not_shorter_than_the_deadline_is_a_startup_error() {
    let line = one_line_exit_2(&run(
        &["--drain-spread", "2s", "--shutdown-timeout", "2s"],
        &[],
    ));
    assert!(
        line.starts_with(
            "lameduck: --drain-spread (2s) must be shorter than --shutdown-timeout (2s)"
        ),
        "{line}"
    );
}
