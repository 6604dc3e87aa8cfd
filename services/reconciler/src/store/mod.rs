//! Every SQL statement of the reconciler, by concern. Everything here runs
//! inside the caller's transaction; nothing commits on its own — except
//! `rejections` (the audit record, written after a batch) and the outbox's
//! sample for the metrics, which run on the pool.

pub mod bulk;
pub mod facts;
pub mod households;
pub mod inbox;
pub mod load;
pub mod locks;
pub mod outbox;
pub mod rejections;
pub mod rows;

pub type Tx<'a> = &'a mut sqlx::PgConnection;
