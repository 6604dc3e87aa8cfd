//! The notifier: consumes `dynzero.alerts` and delivers every alert to the
//! subscriptions whose division prefix and kinds cover it — signed webhooks,
//! WeCom and DingTalk group bots — durably: each delivery is a PostgreSQL row
//! created in the transaction that consumes the alert, and its retry schedule
//! (`next_attempt_at`) lives there too, so a restart resumes where it was.

pub mod consumer;
pub mod metrics;
/// Masking lives in the contracts crate, shared with the read side (`dynzero-api`).
pub use dynzero_contracts::pii;
pub mod render;
pub mod seal;
pub mod send;
pub mod service;
pub mod settings;
pub mod sign;
pub mod store;
pub mod subscription;
pub mod target_policy;
pub mod worker;
