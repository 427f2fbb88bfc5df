//! `--max-connection-age`: connections age out, each at its own jittered
//! age, so that after a restart the load spreads over the instances again.
//!
//! A long-lived connection stays where it was opened. After a rolling
//! restart the instance that restarted last holds the fewest connections
//! and the one that did not restart the most, "typically several times
//! more than in steady mode" (envoy#8302), and a layer-4 balancer never
//! moves them. gRPC's answer is `max_connection_age`: a connection older
//! than it is asked to go, and its client reconnects through the balancer.
//! The same here, off by default:
//!
//! | connection | at its age | after `--max-connection-age-grace` more |
//! |---|---|---|
//! | HTTP/1 | its next response carries `Connection: close` | closed (an idle one as at the drain, asking the kernel first) |
//! | HTTP/2 | GOAWAY | closed |
//! | event stream | its last event (`event: shutdown`, `retry:`) | — |
//! | WebSocket | Close 1001, "connection age" | aborted |
//!
//! Each age is the flag's ±10 %, drawn per connection (gRPC's jitter), so
//! that connections opened together (after a restart, all of them) do
//! not all age out together too.

use std::time::{Duration, Instant};

/// The jitter: each connection's age is the flag's value times a factor
/// in `1 - JITTER .. 1 + JITTER`.
const JITTER: f64 = 0.10;

/// The age of the connection named `key`: `age` ±10 %, the same for the
/// same key.
pub fn jittered(age: Duration, key: u64) -> Duration {
    let u = crate::shutdown::spread::unit(key);
    age.mul_f64(1.0 - JITTER + 2.0 * JITTER * u)
}

/// When the connection opened at `opened` and named `key` ages out, if
/// `age` is set.
pub fn due(age: Option<Duration>, opened: Instant, key: u64) -> Option<Instant> {
    age.map(|age| opened + jittered(age, key))
}

/// Resolves when something opened now, named `key`, ages out; never if
/// `age` is `None`. For the event streams and WebSockets, which count
/// their age from their own start.
pub async fn reached(age: Option<Duration>, key: u64) {
    match age {
        Some(age) => tokio::time::sleep(jittered(age, key)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ages fall within ±10 % and are not all the same.
    #[test]
    fn ages_are_jittered_within_ten_percent() {
        let age = Duration::from_secs(100);
        let ages: Vec<_> = (0..1000).map(|k| jittered(age, k)).collect();
        assert!(
            ages.iter()
                .all(|a| *a >= Duration::from_secs(90) && *a <= Duration::from_secs(110))
        );
        let (min, max) = (ages.iter().min().unwrap(), ages.iter().max().unwrap());
        assert!(*max - *min > Duration::from_secs(15), "{min:?}..{max:?}");
    }
}
