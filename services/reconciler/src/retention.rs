//! Retention of the reconciler's tables: each call deletes at most one
//! small batch (its own short transaction), oldest first, so a purge never
//! holds locks or a snapshot for long; the caller loops and pauses.
//!
//! What a purge removes and why it is safe:
//!
//! - **inbox**: the idempotency record of each message, `(source, id)` and
//!   the digest of its `data`. Kept `days` after it arrived (the
//!   deduplication window), and while a cause it carries still waits to be
//!   named by a version. Its facts stay (fact tables are keyed by arrival,
//!   not by the inbox). A redelivery after the window is no longer known:
//!   it is applied as a new message (see docs/operations.md, "Retention").
//! - **rejection**: the audit of refused messages (and their bodies, for
//!   replay), kept `days` after the rejection.

use sqlx::PgPool;

/// Delete at most `batch` inbox rows received more than `days` days ago
/// whose causes are all named by a published version; the number deleted.
pub async fn purge_inbox(pool: &PgPool, days: i32, batch: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM inbox WHERE arrival IN (
             SELECT i.arrival FROM inbox i
             WHERE i.received_at < now() - make_interval(days => $1)
               AND NOT EXISTS (SELECT 1 FROM household_cause c
                               WHERE c.arrival = i.arrival AND NOT c.published)
             ORDER BY i.received_at
             LIMIT $2)",
    )
    .bind(days)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Delete at most `batch` rejections older than `days` days; the number deleted.
pub async fn purge_rejections(pool: &PgPool, days: i32, batch: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM rejection WHERE seq IN (
             SELECT seq FROM rejection
             WHERE rejected_at < now() - make_interval(days => $1)
             ORDER BY rejected_at
             LIMIT $2)",
    )
    .bind(days)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
