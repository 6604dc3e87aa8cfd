//! The reconciler's shared state, and what can become of a message.
//!
//! A batch of messages goes load → plan → write in one transaction:
//! [`crate::batch`] runs the batch, [`crate::apply`] stores its facts,
//! [`crate::fold`] plans the households they touch with
//! [`dynzero_planner::plan`] and writes the plans; every statement is in
//! [`crate::store`].

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::settings::Settings;
use dynzero_contracts::rejection::Rejection;
use dynzero_domain::rules::Rules;
use sqlx::PgPool;
use std::sync::Arc;

/// Why applying a message failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A dependency is down or the transaction lost a race: try again later, never reject.
    #[error("transient: {0}")]
    Transient(#[source] sqlx::Error),
    /// Anything else is a defect; the message becomes `poison` after repeated failures.
    #[error("failed: {0:#}")]
    Failed(#[source] anyhow::Error),
}

impl From<sqlx::Error> for ProcessError {
    fn from(e: sqlx::Error) -> Self {
        if is_transient(&e) {
            ProcessError::Transient(e)
        } else {
            ProcessError::Failed(e.into())
        }
    }
}

impl From<anyhow::Error> for ProcessError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<sqlx::Error>() {
            Ok(sql) => sql.into(),
            Err(other) => ProcessError::Failed(other),
        }
    }
}

/// Outage or defect: decided by the runtime, in one place.
pub use dynzero_runtime::is_transient;

/// What became of one message: the one answer the consumer settles a
/// delivery by.
#[derive(Debug)]
pub enum Fate {
    /// Its facts, states, alerts and outputs are committed.
    Applied,
    /// Same (source, id) and data as before: no further effect.
    Duplicate,
    /// Refused, with the reason the dead-letter exchange carries.
    Rejected(Rejection),
    /// Rolled back alone; a defect, counted toward `poison`.
    Failed(anyhow::Error),
}

/// The reconciler's state shared by its tasks.
pub struct Hub {
    pub pool: PgPool,
    pub rules: Rules,
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
}
