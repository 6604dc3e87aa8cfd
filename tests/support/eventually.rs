//! Waiting for an effect without guessing how long it takes.

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, sleep, timeout};

const FIRST_PAUSE: Duration = Duration::from_millis(20);
const LONGEST_PAUSE: Duration = Duration::from_millis(200);

/// Calls `f` until it returns `Some`, pausing 20 ms, then longer up to
/// 200 ms, between attempts; panics naming `what` once `deadline` has passed.
///
/// The deadline bounds each attempt too: an attempt still running at the
/// deadline is dropped. One last attempt is made right at the deadline, so a
/// condition that became true while sleeping is not reported as a timeout.
///
/// ```text
/// let row = eventually(Duration::from_secs(10), "household 42 stored", || async {
///     sqlx::query("SELECT 1 FROM household WHERE id = 42")
///         .fetch_optional(&pool).await.unwrap()
/// }).await;
/// ```
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    let give_up_at = started + deadline;
    let mut pause = FIRST_PAUSE;
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        let remaining = give_up_at.saturating_duration_since(Instant::now());
        // Even with no time left the attempt gets a moment to answer a
        // condition that is already true.
        let budget = remaining.max(FIRST_PAUSE);
        if let Ok(Some(value)) = timeout(budget, f()).await {
            return value;
        }
        let now = Instant::now();
        if now >= give_up_at {
            panic!(
                "timed out after {:?} ({attempts} attempts) waiting for: {what}",
                now - started
            );
        }
        sleep(pause.min(give_up_at - now)).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}
