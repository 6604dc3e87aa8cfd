//! The wire: CloudEvents envelopes, JSON Schemas, inbound messages into domain
//! facts, and the hub's outputs out of domain values.

pub mod canonical;
pub mod event_type;
pub mod inbound;
pub mod named;
pub mod outbound;
pub mod pii;
pub mod rejection;
pub mod schemas;
pub mod trace;
pub mod words;
