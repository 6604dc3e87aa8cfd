//! Bounded shutdown: every task gets until one deadline, then is aborted,
//! so SIGTERM ends the process within `shutdown.grace_secs` whatever is away.

use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::warn;

/// What is kept back from the grace period for the last words (counting
/// what is left, closing pools).
pub fn reserve(grace: Duration) -> Duration {
    (grace / 4).min(Duration::from_secs(2))
}

/// Wait for `task` until `deadline`, then abort it. `Ok(true)` if it ended
/// by itself; a panic in it is an error.
pub async fn finish_by<T>(
    task: JoinHandle<T>,
    deadline: Instant,
    name: &str,
) -> Result<bool, tokio::task::JoinError> {
    let abort = task.abort_handle();
    match tokio::time::timeout_at(deadline, task).await {
        Ok(ended) => ended.map(|_| true),
        Err(_) => {
            abort.abort();
            warn!(
                task = name,
                "still busy at the end of the grace period; stopped"
            );
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_will_not_end_is_stopped_at_the_deadline() {
        let stuck = tokio::spawn(std::future::pending::<()>());
        let deadline = Instant::now() + Duration::from_millis(50);
        assert!(!finish_by(stuck, deadline, "stuck").await.unwrap());
        let quick = tokio::spawn(async {});
        assert!(
            finish_by(quick, Instant::now() + Duration::from_secs(5), "quick")
                .await
                .unwrap()
        );
    }

    #[test]
    fn the_reserve_is_a_small_part_of_the_grace() {
        assert_eq!(reserve(Duration::from_secs(20)), Duration::from_secs(2));
        assert_eq!(reserve(Duration::from_secs(1)), Duration::from_millis(250));
    }
}
