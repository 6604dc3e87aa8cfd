//! Liveness and readiness, as `/healthz` and `/readyz` report them.
//!
//! Liveness: every loop the process started is still running (a loop that
//! panicked makes the process not alive; the orchestrator restarts it).
//! Readiness: PostgreSQL and the broker answer right now.

use crate::settings::AmqpSettings;
use sqlx::PgPool;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one readiness probe may take before it counts as "away".
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The loops of a process, watched for dying.
#[derive(Clone, Default)]
pub struct Liveness {
    /// Names of the loops that ended by panicking.
    died: Arc<Mutex<Vec<&'static str>>>,
}

/// Held by a running loop. Dropped before the loop returned — it panicked
/// (tokio drops a panicked task's state after catching the panic) or was
/// aborted — it marks the loop dead.
struct LoopGuard {
    name: &'static str,
    liveness: Liveness,
    returned: bool,
}

impl Drop for LoopGuard {
    fn drop(&mut self) {
        if !self.returned
            && let Ok(mut died) = self.liveness.died.lock()
        {
            died.push(self.name);
        }
    }
}

impl Liveness {
    /// `task`, watched: if it panics, the process is no longer alive.
    pub fn watch<F: Future>(
        &self,
        name: &'static str,
        task: F,
    ) -> impl Future<Output = F::Output> + use<F> {
        let guard = LoopGuard {
            name,
            liveness: self.clone(),
            returned: false,
        };
        async move {
            // The whole guard, not just the field written below.
            let mut guard = guard;
            let output = task.await;
            guard.returned = true;
            output
        }
    }

    /// The loops that died, empty while the process is alive.
    pub fn dead_loops(&self) -> Vec<&'static str> {
        self.died.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

/// What `/readyz` checks.
#[derive(Clone)]
pub struct Readiness {
    pub pool: PgPool,
    pub amqp: AmqpSettings,
}

impl Readiness {
    /// The dependencies that do not answer now, empty when ready.
    pub async fn away(&self) -> Vec<&'static str> {
        let database = tokio::time::timeout(
            PROBE_TIMEOUT,
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool),
        );
        let broker = tokio::time::timeout(PROBE_TIMEOUT, async {
            let connection = crate::amqp::connect(&self.amqp).await?;
            crate::amqp::close_connection(&connection, "readiness probe").await;
            Ok::<_, lapin::Error>(())
        });
        let (database, broker) = tokio::join!(database, broker);
        let mut away = Vec::new();
        if !matches!(database, Ok(Ok(_))) {
            away.push("database");
        }
        if !matches!(broker, Ok(Ok(()))) {
            away.push("broker");
        }
        away
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_loop_that_panicked_is_dead_and_one_that_returned_is_not() {
        let liveness = Liveness::default();
        let fine = tokio::spawn(liveness.watch("fine", async {}));
        fine.await.unwrap();
        assert!(liveness.dead_loops().is_empty());
        let broken = tokio::spawn(liveness.watch("broken", async { panic!("a defect") }));
        assert!(broken.await.is_err());
        assert_eq!(liveness.dead_loops(), ["broken"]);
    }
}
