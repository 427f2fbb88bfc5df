//! Opening connections: the pool's connector, which keeps every session
//! task where `close()` can wait for it, and the bounded retry at
//! start-up.

use std::pin::Pin;
use std::time::Duration;

use deadpool_postgres::{Connect, Pool};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls};
use tokio_util::task::TaskTracker;

use super::errors::{Failure, failure, message};
use crate::store::StoreError;

/// How long start-up keeps trying to reach the database before it gives
/// up (exit 2). A service manager often starts lameduck and Postgres
/// together, and Postgres takes a few seconds to replay its WAL after an
/// unclean stop, answering `57P03 cannot connect now` meanwhile. Ten
/// seconds covers that; a database still unreachable after it is more
/// likely a wrong host or port, which deserves a clear error rather than
/// a process that hangs. It also stays inside the default
/// `--upgrade-timeout` (10s) only just: an upgrade that has to wait this
/// long for the database fails, and the old process serves on.
pub(crate) const STARTUP_CONNECT_WAIT: Duration = Duration::from_secs(10);

/// The first pause between start-up attempts; it doubles up to
/// [`MAX_RETRY_PAUSE`]. Short at first, because a database that is just
/// starting is usually ready within a second.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The pool's connector: `NoTls` (see `url.rs`), with each session's task
/// spawned into `sessions`.
///
/// Why not deadpool's own connector: it aborts the session task when the
/// pool drops a connection. An aborted task never runs again, so the
/// socket just closes, and the server logs "unexpected EOF on client
/// connection" for every connection of every clean shutdown. Left to run,
/// the task sees its client dropped, sends Postgres's `Terminate`
/// message and closes the socket itself; `close()` waits for that.
pub(super) struct TrackedConnect {
    pub(super) sessions: TaskTracker,
}

type ConnectFuture<'a> = Pin<
    Box<dyn Future<Output = Result<(Client, JoinHandle<()>), tokio_postgres::Error>> + Send + 'a>,
>;

impl Connect for TrackedConnect {
    fn connect(&self, config: &tokio_postgres::Config) -> ConnectFuture<'_> {
        let config = config.clone();
        let sessions = self.sessions.clone();
        Box::pin(async move {
            let (client, session) = config.connect(NoTls).await?;
            sessions.spawn(async move {
                // The session ends with an error when the server goes away
                // (a restart, a network cut); the pool notices the closed
                // client and opens a new connection on the next checkout.
                if let Err(e) = session.await {
                    tracing::warn!(error = %message(&e), "database connection lost");
                }
            });
            // What deadpool aborts when it drops the client: a task that
            // has already finished, so the abort touches nothing.
            Ok((client, tokio::spawn(async {})))
        })
    }
}

/// Waits, for at most [`STARTUP_CONNECT_WAIT`], for a first connection
/// that works; returns it. Only an unreachable or still-starting database
/// is retried: a wrong password or database name fails at once.
pub(super) async fn first_connection(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    let give_up = Instant::now() + STARTUP_CONNECT_WAIT;
    let mut pause = FIRST_RETRY_PAUSE;
    loop {
        let err = match pool.get().await {
            Ok(conn) => return Ok(conn),
            Err(e) => e,
        };
        let passing = match &err {
            deadpool_postgres::PoolError::Backend(e) => match failure(e) {
                Failure::Connection => true,
                Failure::Db(code) => code == "57P03" || code.starts_with("08"),
                Failure::Driver => false,
            },
            deadpool_postgres::PoolError::Timeout(_) => true,
            _ => false,
        };
        let err = StoreError::from(err);
        let now = Instant::now();
        if !passing || now >= give_up {
            return Err(match err {
                StoreError::Unreachable(why) => StoreError::Unreachable(format!(
                    "{why} (tried for {}s)",
                    STARTUP_CONNECT_WAIT.as_secs()
                )),
                other => other,
            });
        }
        tracing::info!(error = %err, retry_in_ms = pause.as_millis() as u64, "database not reachable yet");
        // Never past `give_up`: one last attempt is made right at it.
        tokio::time::sleep(pause.min(give_up - now)).await;
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
    }
}
