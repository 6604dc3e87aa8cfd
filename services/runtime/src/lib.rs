//! What every dynzero service runs on, written once: the layered
//! configuration and the shared settings sections, broker and database
//! connections with reconnect supervision, the outage-or-defect
//! classification of their errors, and the metrics and health endpoint.
//!
//! The services (reconciler, notifier) depend on this crate and never on
//! each other; they meet only in the `dynzero` binary and on the broker.

pub mod amqp;
pub mod backoff;
pub mod config;
pub mod database;
pub mod fault;
pub mod health;
pub mod histogram;
pub mod http;
pub mod nodelay;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

pub use fault::{Fault, is_transient};
pub use settings::redact;
