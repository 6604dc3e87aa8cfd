//! The rules of the zero-employment household (零就业家庭) programme.
//!
//! This crate is pure: it knows nothing of AMQP, SQL, HTTP, JSON or the wall
//! clock. "Today" is always an argument. Wire formats convert into these types
//! at the edge (`dynzero-contracts`).

pub mod alerts;
pub mod facts;
pub mod ids;
pub mod reconcile;
pub mod retirement;
pub mod rules;
