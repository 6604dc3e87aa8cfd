//! Every SQL statement of the reconciler, by concern. Everything here runs
//! inside the caller's transaction; nothing commits on its own.

pub mod bulk;
pub mod facts;
pub mod households;
pub mod inbox;
pub mod load;
pub mod locks;
pub mod outbox;
pub mod rows;

pub type Tx<'a> = &'a mut sqlx::PgConnection;
