//! A real WebSocket client from outside the project: Python's
//! `websockets`, run by a small script (`python_ws_client.py`, here
//! beside this file) that connects, sends what the test asks, and prints
//! every message it receives and the server's close frame.
//!
//! The tests' own clients are written to see bytes; this one is what a
//! user of the API would run, with its own framing, masking, handshake
//! checks and close handshake, so a route that only works with a client
//! from the same crate (tungstenite on both ends) shows here.
//!
//! It needs a Python with `websockets`: by default the venv that `.ci/run`
//! makes at `target/py-venv`, or the `python` that `LAMEDUCK_TEST_PYTHON`
//! names. The tests that use it are `#[ignore]`d so that a plain `cargo
//! test` passes without it, and fail, saying how to install it, when they
//! are asked for and it is missing.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::external;

/// What a test that needs the client says when it is missing, and the
/// reason its `#[ignore]` gives.
pub const NEEDS_PYTHON_WS: &str = "needs python websockets: python3 -m venv target/py-venv && target/py-venv/bin/pip install websockets==17.4";

/// The client script, passed to `python -c`.
const SCRIPT: &str = include_str!("python_ws_client.py");

/// How much longer than its own timeouts the client may take in all (the
/// interpreter's start, the close handshake) before it is killed.
const SLACK: Duration = Duration::from_secs(10);

/// One WebSocket message, sent or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
}

/// The server's close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: String,
}

/// What the client does: connect to `url`, send `send`, wait for
/// `receive` messages (or, with `None`, for the server to close), then
/// close with `close`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub send: Vec<Message>,
    pub receive: Option<usize>,
    pub close: (u16, String),
    /// For the handshake, and for each message.
    pub timeout: Duration,
}

impl Plan {
    /// Connect to `url`, send nothing, wait for nothing, close with 1000.
    pub fn new(url: impl Into<String>) -> Plan {
        Plan {
            url: url.into(),
            send: Vec::new(),
            receive: Some(0),
            close: (1000, String::new()),
            timeout: Duration::from_secs(10),
        }
    }

    /// Sends `message` once connected (after the ones before).
    pub fn send(mut self, message: Message) -> Plan {
        self.send.push(message);
        self
    }

    /// Waits for `n` messages before closing.
    pub fn receive(mut self, n: usize) -> Plan {
        self.receive = Some(n);
        self
    }

    /// Waits until the server closes (or a message is `timeout` late).
    pub fn until_closed(mut self) -> Plan {
        self.receive = None;
        self
    }

    /// Closes with `code` and `reason` instead of 1000.
    pub fn close_with(mut self, code: u16, reason: &str) -> Plan {
        self.close = (code, reason.to_string());
        self
    }

    /// The plan as the script reads it.
    fn to_json(&self) -> String {
        let send: Vec<_> = self
            .send
            .iter()
            .map(|m| match m {
                Message::Text(text) => serde_json::json!({ "text": text }),
                Message::Binary(bytes) => serde_json::json!({ "binary": hex(bytes) }),
            })
            .collect();
        serde_json::json!({
            "url": self.url,
            "send": send,
            "receive": self.receive,
            "close": [self.close.0, self.close.1],
            "timeout": self.timeout.as_secs_f64(),
        })
        .to_string()
    }
}

/// What the client saw, in the order it saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Seen {
    /// The handshake succeeded.
    pub opened: bool,
    /// Why the handshake failed (`status 404`, `ConnectionRefusedError …`).
    pub refused: Option<String>,
    pub messages: Vec<Message>,
    /// A message it waited for did not come in time.
    pub timed_out: bool,
    /// The server's close frame; `None` if the connection ended without
    /// one (or never opened).
    pub close: Option<Close>,
}

/// Runs the client's `plan` to its end. Panics, with what the client
/// printed, if Python or `websockets` is missing, if the script fails, or
/// if it runs past its own timeouts.
pub fn run(plan: &Plan) -> Seen {
    let python = python();
    let messages = plan.send.len() + plan.receive.unwrap_or(1);
    let limit = plan.timeout * (messages as u32 + 2) + SLACK;
    let ran = external::run_within(
        Command::new(&python)
            .arg("-c")
            .arg(SCRIPT)
            .arg(plan.to_json()),
        limit,
    )
    .unwrap_or_else(|e| panic!("cannot run {}: {e}; {NEEDS_PYTHON_WS}", python.display()));
    if ran.stderr.contains("ModuleNotFoundError") {
        panic!("{} has no websockets; {NEEDS_PYTHON_WS}", python.display());
    }
    assert!(
        ran.succeeded(),
        "the Python client failed ({plan:?}):\n{}",
        ran.tail(20)
    );
    parse(&ran.stdout).unwrap_or_else(|e| panic!("{e}; the client printed:\n{}", ran.stdout))
}

/// The Python to run: `LAMEDUCK_TEST_PYTHON`, or the venv `.ci/run` makes.
fn python() -> PathBuf {
    match std::env::var_os("LAMEDUCK_TEST_PYTHON") {
        Some(python) => PathBuf::from(python),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/py-venv/bin/python"),
    }
}

/// Reads the script's lines (see its docstring) into a [`Seen`].
fn parse(stdout: &str) -> Result<Seen, String> {
    let mut seen = Seen::default();
    let mut closed = false;
    for line in stdout.lines() {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        if closed {
            return Err(format!("a line after CLOSE: {line:?}"));
        }
        match word {
            "OPEN" => seen.opened = true,
            "REFUSED" => seen.refused = Some(rest.to_string()),
            "TEXT" => {
                let text = serde_json::from_str(rest).map_err(|e| format!("{line:?}: {e}"))?;
                seen.messages.push(Message::Text(text));
            }
            "BINARY" => {
                let bytes = unhex(rest).ok_or_else(|| format!("not hex: {line:?}"))?;
                seen.messages.push(Message::Binary(bytes));
            }
            "TIMEOUT" => seen.timed_out = true,
            "CLOSE" => {
                closed = true;
                if rest != "-" {
                    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                    let code = code.parse().map_err(|e| format!("{line:?}: {e}"))?;
                    seen.close = Some(Close {
                        code,
                        reason: reason.to_string(),
                    });
                }
            }
            _ => return Err(format!("an unknown line: {line:?}")),
        }
    }
    // The script always ends with CLOSE; without it, it stopped halfway.
    if closed {
        Ok(seen)
    } else {
        Err("no CLOSE line".into())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `None` unless `text` is pairs of hex digits (an odd one out has no
/// `i..i + 2`).
fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
