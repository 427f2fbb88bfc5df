//! The shipped deployment files give a stopping lameduck the time its
//! shutdown takes.
//!
//! A stop is a row of waits, each set by a flag: the lame duck
//! (`--drain-delay`), the drain (`--shutdown-timeout`) and the `503`s at
//! the deadline (`--force-grace`); under Kubernetes the `preStop` sleep
//! comes before them all. The supervisor kills the process when its own
//! limit runs out (systemd's `TimeoutStopSec=`, Kubernetes'
//! `terminationGracePeriodSeconds`), so that limit must cover the sum, or
//! a drain that would have finished is cut short by SIGKILL.
//!
//! The flags a file passes are read by the binary's own parser
//! (`Cli::try_parse_from`), and a flag a file leaves out takes the
//! parser's default, the one the binary runs with (`src/cli.rs` holds it
//! equal to `Config::default()`). Raising a flag in a file, or a default
//! in the code, without raising the limit fails here. Nothing runs
//! systemd or Kubernetes: the manifest is read by a YAML parser, the unit
//! line by line.

use std::fmt;
use std::time::Duration;

use clap::Parser as _;
use humantime::format_duration;
use lameduck::Config;
use lameduck::cli::Cli;
use serde::Deserialize as _;
use serde_norway::Value;

const MANIFEST: &str = include_str!("../deploy/kubernetes.yaml");
const UNIT: &str = include_str!("../deploy/systemd/lameduck.service");

/// What lameduck still does after the forced close: write the shutdown
/// report, close the store, exit. Both files leave 4s; less than this
/// fails.
const MARGIN: Duration = Duration::from_secs(2);

/// The environment variables that would change a stop's timings behind
/// the flags' back. This test cannot read them as the binary would, so
/// the files must set the timings as flags.
const TIMING_VARIABLES: [&str; 3] = [
    "LAMEDUCK_DRAIN_DELAY",
    "LAMEDUCK_SHUTDOWN_TIMEOUT",
    "LAMEDUCK_FORCE_GRACE",
];

/// The waits of one stop, in the order they happen.
struct Stop {
    /// Kubernetes' preStop sleep, before SIGTERM is sent; zero under
    /// systemd, which signals at once.
    pre_stop: Duration,
    /// The flags as lameduck reads them.
    config: Config,
}

impl Stop {
    /// The least time the supervisor must allow before its SIGKILL.
    fn needs(&self) -> Duration {
        self.pre_stop
            + self.config.drain_delay
            + self.config.shutdown_timeout
            + self.config.force_grace
            + MARGIN
    }
}

impl fmt::Display for Stop {
    /// The sum written out, so a failure says which wait to shorten or
    /// how far to raise the limit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "preStop {} + --drain-delay {} + --shutdown-timeout {} + --force-grace {} + margin {} = {}",
            format_duration(self.pre_stop),
            format_duration(self.config.drain_delay),
            format_duration(self.config.shutdown_timeout),
            format_duration(self.config.force_grace),
            format_duration(MARGIN),
            format_duration(self.needs()),
        )
    }
}

/// `Ok` if `limit` covers the stop; otherwise what falls short, and by
/// how much.
fn covers(file: &str, setting: &str, limit: Duration, stop: &Stop) -> Result<(), String> {
    if limit >= stop.needs() {
        Ok(())
    } else {
        Err(format!(
            "{file}: {setting} is {}, {} short of the stop: {stop}",
            format_duration(limit),
            format_duration(stop.needs() - limit),
        ))
    }
}

/// The flags as lameduck would read them from `argv` (program name
/// first), or a panic with the parser's own complaint.
fn parse_flags(file: &str, argv: &[String]) -> Config {
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli.config(),
        Err(e) => panic!("{file}: lameduck would refuse {argv:?}:\n{e}"),
    }
}

// ---- Kubernetes -------------------------------------------------------

/// The manifest's Deployment: the first document of `kind: Deployment`.
fn deployment() -> Value {
    document("Deployment")
}

/// The manifest's document of the given `kind`. Parsed as a whole, so a
/// key indented under the wrong parent is where Kubernetes would see it.
fn document(kind: &str) -> Value {
    serde_norway::Deserializer::from_str(MANIFEST)
        .map(|doc| Value::deserialize(doc).expect("deploy/kubernetes.yaml is valid YAML"))
        .find(|doc| doc["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("deploy/kubernetes.yaml has no {kind}"))
}

/// The value at a dotted path, or a panic naming the path.
fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |value, key| {
        value
            .get(key)
            .unwrap_or_else(|| panic!("deploy/kubernetes.yaml: no `{path}` (`{key}` is missing)"))
    })
}

/// A list of strings (`command:`, `args:`); empty if absent.
fn strings(value: Option<&Value>) -> Vec<String> {
    let Some(value) = value else {
        return Vec::new();
    };
    let items = value.as_sequence().expect("a list");
    items
        .iter()
        .map(|item| item.as_str().expect("a list of strings").to_owned())
        .collect()
}

/// The pod template's container named `lameduck`.
fn lameduck_container(deployment: &Value) -> &Value {
    at(deployment, "spec.template.spec.containers")
        .as_sequence()
        .expect("containers: a list")
        .iter()
        .find(|c| c["name"].as_str() == Some("lameduck"))
        .expect("deploy/kubernetes.yaml: no container named lameduck")
}

/// The container's flags as lameduck reads them. Kubernetes runs
/// `command` (the image's entrypoint when there is none) with `args`
/// after it.
fn container_config(container: &Value) -> Config {
    let env = container.get("env").and_then(Value::as_sequence);
    for var in env.into_iter().flatten() {
        let name = var["name"].as_str().unwrap_or_default();
        assert!(
            !TIMING_VARIABLES.contains(&name),
            "deploy/kubernetes.yaml sets {name}: set it with a flag in args instead"
        );
    }
    let mut argv = strings(container.get("command"));
    if argv.is_empty() {
        argv.push("lameduck".to_owned());
    }
    argv.extend(strings(container.get("args")));
    parse_flags("deploy/kubernetes.yaml", &argv)
}

/// How long the preStop hook holds SIGTERM back: the sleep action's
/// seconds, or `sleep N` run by the exec action; nothing without a hook.
fn pre_stop_sleep(container: &Value) -> Duration {
    let Some(hook) = container.get("lifecycle").and_then(|l| l.get("preStop")) else {
        return Duration::ZERO;
    };
    if let Some(sleep) = hook.get("sleep") {
        let seconds = at(sleep, "seconds").as_u64();
        return Duration::from_secs(seconds.expect("preStop.sleep.seconds: whole seconds"));
    }
    let command = strings(hook.get("exec").and_then(|exec| exec.get("command")));
    match command.as_slice() {
        [sleep, seconds] if sleep == "sleep" || sleep.ends_with("/sleep") => {
            Duration::from_secs(seconds.parse().expect("sleep N: whole seconds"))
        }
        _ => panic!("deploy/kubernetes.yaml: a preStop hook whose length is unknown: {hook:?}"),
    }
}

/// A Deployment's stop, and the grace period it is given.
fn kubernetes_stop(deployment: &Value) -> (Stop, Duration) {
    let container = lameduck_container(deployment);
    let stop = Stop {
        pre_stop: pre_stop_sleep(container),
        config: container_config(container),
    };
    // Required here, though Kubernetes would default it to 30s: the
    // arithmetic belongs in the file, next to the flags it adds up.
    let grace = at(
        deployment,
        "spec.template.spec.terminationGracePeriodSeconds",
    )
    .as_u64()
    .expect("terminationGracePeriodSeconds: whole seconds");
    (stop, Duration::from_secs(grace))
}

fn kubernetes_covers(deployment: &Value) -> Result<(), String> {
    let (stop, grace) = kubernetes_stop(deployment);
    let file = "deploy/kubernetes.yaml";
    covers(file, "terminationGracePeriodSeconds", grace, &stop)
}

/// The container port a probe or the Service names, by number or by name.
fn container_port(container: &Value, port: &Value) -> u64 {
    if let Some(number) = port.as_u64() {
        return number;
    }
    let name = port.as_str().expect("a port: a number or a name");
    let ports = container["ports"].as_sequence().expect("ports: a list");
    let named = ports.iter().find(|p| p["name"].as_str() == Some(name));
    let named = named.unwrap_or_else(|| panic!("no container port named {name}"));
    named["containerPort"].as_u64().expect("containerPort")
}

/// The pod's `terminationGracePeriodSeconds` covers the preStop sleep,
/// the lame duck, the drain, the force grace and a margin, with the
/// flags the container is started with.
#[test]
fn kubernetes_grace_period_covers_the_prestop_sleep_and_the_whole_shutdown() {
    let deployment = deployment();
    if let Err(shortfall) = kubernetes_covers(&deployment) {
        panic!("{shortfall}");
    }
    // The manifest's own comments add up the flags it passes; each of
    // them is there, not left to a default that could change under it.
    let args = strings(lameduck_container(&deployment).get("args"));
    for flag in ["--drain-delay=", "--shutdown-timeout=", "--force-grace="] {
        assert!(
            args.iter().any(|arg| arg.starts_with(flag)),
            "deploy/kubernetes.yaml: {flag} is not in args"
        );
    }
}

/// The kubelet asks `/healthz` whether to send traffic and `/livez`
/// whether to restart, on the port lameduck listens on; lameduck listens
/// on every address, where the probes and the Service reach it, and the
/// Service sends to that same port.
#[test]
fn kubernetes_probes_ask_healthz_for_readiness_and_livez_for_liveness() {
    let deployment = deployment();
    let container = lameduck_container(&deployment);
    let addr = container_config(container).addr;
    assert!(
        addr.ip().is_unspecified(),
        "--addr={addr}: not reachable from outside the pod"
    );
    let listening = u64::from(addr.port());

    for (probe, path) in [("readinessProbe", "/healthz"), ("livenessProbe", "/livez")] {
        let get = at(container, &format!("{probe}.httpGet"));
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(
            container_port(container, &get["port"]),
            listening,
            "{probe}"
        );
    }

    let service = document("Service");
    let ports = at(&service, "spec.ports").as_sequence().expect("a list");
    for port in ports {
        let target = &port["targetPort"];
        assert_eq!(
            container_port(container, target),
            listening,
            "Service targetPort"
        );
    }
}

/// A rollout starts a new pod before it stops an old one, and stops an
/// old one only once the new one is ready: `maxUnavailable: 0`,
/// `maxSurge` at least 1.
#[test]
fn kubernetes_rollout_starts_a_new_pod_before_stopping_an_old_one() {
    let deployment = deployment();
    let rolling = at(&deployment, "spec.strategy.rollingUpdate");
    assert_eq!(at(rolling, "maxUnavailable").as_u64(), Some(0));
    assert!(at(rolling, "maxSurge").as_u64().is_some_and(|n| n >= 1));
}

// ---- systemd ----------------------------------------------------------

/// The value of the unit's one `key=` line, comments aside.
fn unit_setting<'a>(unit: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    let mut values = unit
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with(['#', ';']))
        .filter_map(|line| line.strip_prefix(&prefix));
    let value = values.next();
    assert!(values.next().is_none(), "lameduck.service: {key}= twice");
    value.unwrap_or_else(|| panic!("lameduck.service: no {key}="))
}

/// A systemd time span: `20s`, `1min 30s`, a bare number of seconds, or
/// `infinity`.
fn systemd_timespan(value: &str) -> Duration {
    if value == "infinity" {
        Duration::MAX
    } else if let Ok(seconds) = value.parse() {
        Duration::from_secs(seconds)
    } else {
        humantime::parse_duration(value).expect("TimeoutStopSec: a time span")
    }
}

/// A unit's stop, and the `TimeoutStopSec=` it is given.
fn systemd_stop(unit: &str) -> (Stop, Duration) {
    for line in unit
        .lines()
        .filter(|l| l.trim_start().starts_with("Environment"))
    {
        for var in TIMING_VARIABLES {
            assert!(
                !line.contains(var),
                "lameduck.service sets {var}: set it with a flag in ExecStart= instead"
            );
        }
    }
    let exec_start = unit_setting(unit, "ExecStart");
    // systemd's quoting, `$VARIABLE`s and `%` specifiers would need
    // systemd's own reading; a plain line splits on spaces.
    assert!(
        !exec_start.contains(['"', '\'', '\\', '$', '%']),
        "lameduck.service: ExecStart= is more than words; read it as systemd does"
    );
    let argv: Vec<String> = exec_start.split_whitespace().map(str::to_owned).collect();
    let stop = Stop {
        pre_stop: Duration::ZERO,
        config: parse_flags("lameduck.service", &argv),
    };
    (stop, systemd_timespan(unit_setting(unit, "TimeoutStopSec")))
}

fn systemd_covers(unit: &str) -> Result<(), String> {
    let (stop, timeout) = systemd_stop(unit);
    covers("lameduck.service", "TimeoutStopSec", timeout, &stop)
}

/// The unit's `TimeoutStopSec=` covers the lame duck, the drain, the
/// force grace and a margin, with the flags `ExecStart=` passes and the
/// defaults for the rest.
#[test]
fn systemd_stop_timeout_covers_the_whole_shutdown() {
    if let Err(shortfall) = systemd_covers(UNIT) {
        panic!("{shortfall}");
    }
}

// ---- the checks themselves ---------------------------------------------

/// The checks above bite: in both files, a limit one second short of the
/// stop, or a drain made longer than the limit allows (as a raised flag
/// or a raised default would), is reported, with the sum.
#[test]
fn a_shorter_limit_or_a_longer_drain_is_caught() {
    let one_second = Duration::from_secs(1);

    // Kubernetes, the grace period lowered.
    let mut deployment = deployment();
    let (stop, _) = kubernetes_stop(&deployment);
    let short = (stop.needs() - one_second).as_secs();
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = short.into();
    let err = kubernetes_covers(&deployment).unwrap_err();
    assert!(err.contains("1s short"), "{err}");

    // Kubernetes, the drain lengthened.
    let mut deployment = self::deployment();
    let containers = deployment["spec"]["template"]["spec"]["containers"].as_sequence_mut();
    let container = containers
        .expect("containers")
        .iter_mut()
        .find(|c| c["name"].as_str() == Some("lameduck"))
        .expect("a container named lameduck");
    let args = container["args"].as_sequence_mut().expect("args");
    let timeout = args
        .iter_mut()
        .find(|arg| {
            arg.as_str()
                .is_some_and(|a| a.starts_with("--shutdown-timeout="))
        })
        .expect("--shutdown-timeout= in args");
    *timeout = "--shutdown-timeout=1m".into();
    let err = kubernetes_covers(&deployment).unwrap_err();
    assert!(err.contains("--shutdown-timeout 1m"), "{err}");

    // systemd, the stop timeout lowered.
    let (stop, _) = systemd_stop(UNIT);
    let short = format!("TimeoutStopSec={}s", (stop.needs() - one_second).as_secs());
    let unit = rewrite_line(UNIT, "TimeoutStopSec=", |_| short.clone());
    let err = systemd_covers(&unit).unwrap_err();
    assert!(err.contains("1s short"), "{err}");

    // systemd, the drain lengthened.
    let unit = rewrite_line(UNIT, "ExecStart=", |line| {
        format!("{line} --shutdown-timeout 1m")
    });
    let err = systemd_covers(&unit).unwrap_err();
    assert!(err.contains("--shutdown-timeout 1m"), "{err}");
}

/// `text` with its one line starting with `prefix` replaced.
fn rewrite_line(text: &str, prefix: &str, new: impl Fn(&str) -> String) -> String {
    let mut found = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with(prefix) {
                found += 1;
                new(line)
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert_eq!(found, 1, "one line starts with {prefix}");
    lines.join("\n")
}
