//! Capped, jittered exponential backoff (`backon`), and the reconnect
//! supervisor's schedule that starts over once a session has stayed up.

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The first wait.
const FIRST: Duration = Duration::from_millis(100);
/// No wait is longer, however long the outage.
const LONGEST: Duration = Duration::from_secs(5);
/// A session that stayed up this long was a real recovery: the next outage
/// starts again from [`FIRST`] instead of where the last one left off.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Capped, jittered exponential waits, without end.
pub fn backoff() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(FIRST)
        .with_max_delay(LONGEST)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Sleep `wait`, or less if `shutdown` turns true; `false` if it did.
pub async fn sleep_unless_stopped(wait: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = shutdown.changed() => {}
    }
    !*shutdown.borrow()
}

/// The waits of one reconnect loop: growing while attempts fail, and reset
/// when a session has been up for [`STABLE_AFTER`] (a session that breaks at
/// once — a broker that accepts and then drops — keeps growing them).
pub struct Reconnect {
    waits: ExponentialBackoff,
    up_since: Option<Instant>,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self::new()
    }
}

impl Reconnect {
    pub fn new() -> Self {
        Self {
            waits: backoff(),
            up_since: None,
        }
    }

    /// A session is up.
    pub fn connected(&mut self) {
        self.up_since = Some(Instant::now());
    }

    /// The wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        if let Some(since) = self.up_since.take()
            && since.elapsed() >= STABLE_AFTER
        {
            self.waits = backoff();
        }
        self.waits.next().unwrap_or(LONGEST)
    }

    /// Wait the next step, or less if `shutdown` turns true; `false` if it did.
    pub async fn wait(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let wait = self.next_wait();
        sleep_unless_stopped(wait, shutdown).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_capped_and_grow() {
        let waits: Vec<Duration> = backoff().take(20).collect();
        assert!(waits.iter().all(|w| *w <= LONGEST * 2), "{waits:?}");
        assert!(waits[0] < Duration::from_secs(1));
        assert!(waits[19] >= LONGEST, "{waits:?}");
    }

    #[test]
    fn a_short_session_keeps_the_schedule_growing() {
        let mut reconnect = Reconnect::new();
        for _ in 0..10 {
            reconnect.next_wait();
        }
        reconnect.connected();
        assert!(reconnect.next_wait() >= LONGEST);
    }

    #[test]
    fn a_stable_session_starts_the_schedule_over() {
        let mut reconnect = Reconnect::new();
        for _ in 0..10 {
            reconnect.next_wait();
        }
        reconnect.up_since = Instant::now().checked_sub(STABLE_AFTER);
        assert!(reconnect.next_wait() < Duration::from_secs(1));
    }
}
