//! The reconciler's decisions, pure: what the store loaded goes in, what to
//! write comes out. For every household a batch touches, [`plan`] decides the
//! next state, whether it is a new version, its `caused_by`, which alerts fire
//! (and the occurrence that makes each unique), and when to look again;
//! [`layoff`] decides what a layoff notice raises. Which households a posting
//! is offered to is the domain's `alerts::job_matches`, applied to the
//! county's states as they stand at the end of the posting's batch.
//!
//! Like the domain crate, this one knows nothing of AMQP, SQL, HTTP, JSON or
//! the wall clock: "today" is an argument, and the reconciler does
//! load → plan → write.

pub mod household;
pub mod layoff;
pub mod occurrence;

pub use household::{Cause, Current, HouseholdAlert, Loaded, Plan, Published, Version, plan};
