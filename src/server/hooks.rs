//! On-shutdown hooks: the counterpart of Go's `Server.RegisterOnShutdown`.
//!
//! A hook is a callback that fires once, when the first shutdown signal
//! arrives (the start of the lame-duck phase). It is meant for *telling*
//! side components that we are going away — a WebSocket hub that should stop
//! taking sessions, a registry that should mark us draining — not for doing
//! cleanup that must finish.
//!
//! Like Go's, hooks are **not awaited**: they run on Tokio's blocking pool
//! and the shutdown carries on at once. Unlike Go, which starts a goroutine
//! per hook, they run one after another, in the order they were
//! registered, on one blocking thread: the order is the one you wrote, and
//! a hook that fails or panics is only logged, and does not stop the ones
//! after it, because no caller is left to decide anything. The outer deadline still rules: `run` does not
//! wait for hooks, and the binary exits after the drain whether a hook has
//! finished or not. Cleanup that must complete, or whose error matters,
//! belongs in the main flow after `run` returns.

use std::panic::{AssertUnwindSafe, catch_unwind};

use tracing::{info, warn};

/// What a hook returns: `Err` is logged and otherwise ignored.
pub type HookResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

type Hook = Box<dyn FnOnce() -> HookResult + Send + 'static>;

/// The registered hooks, fired at most once.
#[derive(Default)]
pub struct ShutdownHooks {
    hooks: Vec<(&'static str, Hook)>,
}

impl ShutdownHooks {
    /// Registers `hook` under `name` (used in logs).
    pub fn register(
        &mut self,
        name: &'static str,
        hook: impl FnOnce() -> HookResult + Send + 'static,
    ) {
        self.hooks.push((name, Box::new(hook)));
    }

    /// Fires every hook, in order, on the blocking pool and returns
    /// without waiting. Taking `self` by value is what makes "exactly once"
    /// a type-level fact. Must be called inside a Tokio runtime.
    pub fn fire(self) -> usize {
        let n = self.hooks.len();
        if n == 0 {
            return 0;
        }
        // The JoinHandle is dropped on purpose: hooks are not awaited.
        drop(tokio::task::spawn_blocking(move || {
            for (name, hook) in self.hooks {
                // Caught so that a panicking hook is logged like a failing
                // one and the hooks after it still run.
                match catch_unwind(AssertUnwindSafe(hook)) {
                    Ok(Ok(())) => info!(hook = name, "shutdown hook done"),
                    Ok(Err(e)) => warn!(hook = name, error = %e, "shutdown hook failed"),
                    Err(_) => warn!(hook = name, "shutdown hook panicked"),
                }
            }
        }));
        n
    }
}

impl std::fmt::Debug for ShutdownHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.hooks.iter().map(|(n, _)| *n).collect();
        f.debug_struct("ShutdownHooks")
            .field("hooks", &names)
            .finish()
    }
}
