//! The audit record of rejected messages (the messages themselves go to
//! `dynzero.rejected`): written by the consumer, read and replayed by the
//! API and by `dynzero rejected`. Each statement runs on its own, never in a
//! batch's transaction: the record is written after the rejection was
//! confirmed on the broker.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// A rejection as the consumer records it.
pub struct Recorded<'a> {
    pub reason: &'a str,
    pub detail: &'a str,
    pub routing_key: &'a str,
    pub body: &'a [u8],
    pub content_type: Option<&'a str>,
    pub source: Option<&'a str>,
    pub event_type: Option<&'a str>,
    /// The AMQP `message_id` the publisher gave it, if any.
    pub message_id: Option<&'a str>,
    /// The broker delivered it before (a hub died before acking it).
    pub redelivered: bool,
}

/// Record a rejection; `false` when it was not recorded because it is a
/// redelivery of one already recorded: same reason, routing key,
/// `message_id` and body. A first delivery is always recorded (two
/// publishes of the same bytes are two rejections).
pub async fn record(pool: &PgPool, r: &Recorded<'_>) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO rejection
             (reason, detail, routing_key, body, content_type, source, event_type, message_id)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8
         WHERE NOT $9 OR NOT EXISTS (
             SELECT 1 FROM rejection
             WHERE body_digest = sha256($4) AND reason = $1 AND routing_key = $3
               AND message_id IS NOT DISTINCT FROM $8)",
    )
    .bind(r.reason)
    .bind(r.detail)
    .bind(r.routing_key)
    .bind(r.body)
    .bind(r.content_type)
    .bind(r.source)
    .bind(r.event_type)
    .bind(r.message_id)
    .bind(r.redelivered)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// A stored rejection, whole and unmasked: whoever shows it masks it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Stored {
    /// The rejection's id (the table's `seq`).
    pub id: i64,
    pub reason: String,
    pub detail: String,
    pub source: Option<String>,
    pub event_type: Option<String>,
    /// When the hub rejected it.
    pub rejected_at: DateTime<Utc>,
    pub routing_key: String,
    /// The original body; `None` for rows recorded before bodies were kept.
    pub body: Option<Vec<u8>>,
    pub content_type: Option<String>,
    /// The last replay, if any.
    pub replayed_at: Option<DateTime<Utc>>,
}

/// Which rejections: every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// One reason code.
    pub reason: Option<String>,
    /// At or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only those never replayed.
    pub not_replayed: bool,
}

/// The columns of [`Stored`] (a macro, so the statements stay literals).
macro_rules! columns {
    () => {
        "seq AS id, reason, detail, source, event_type, rejected_at, routing_key, \
         body, content_type, replayed_at"
    };
}

/// The rejections matching `filter`, newest first, at most `limit`.
pub async fn list(pool: &PgPool, filter: &Filter, limit: i64) -> Result<Vec<Stored>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM rejection
         WHERE ($1::text IS NULL OR reason = $1)
           AND ($2::timestamptz IS NULL OR rejected_at >= $2)
           AND (NOT $3 OR replayed_at IS NULL)
         ORDER BY seq DESC LIMIT $4"
    ))
    .bind(filter.reason.as_deref())
    .bind(filter.since)
    .bind(filter.not_replayed)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Ids of every rejection matching `filter`, oldest first (the order a
/// replay republishes them in).
pub async fn ids(pool: &PgPool, filter: &Filter) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT seq FROM rejection
         WHERE ($1::text IS NULL OR reason = $1)
           AND ($2::timestamptz IS NULL OR rejected_at >= $2)
           AND (NOT $3 OR replayed_at IS NULL)
         ORDER BY seq",
    )
    .bind(filter.reason.as_deref())
    .bind(filter.since)
    .bind(filter.not_replayed)
    .fetch_all(pool)
    .await
}

pub async fn find(pool: &PgPool, id: i64) -> Result<Option<Stored>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM rejection WHERE seq = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Note that rejection `id` was republished, now; returns when.
pub async fn mark_replayed(pool: &PgPool, id: i64) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE rejection SET replayed_at = now() WHERE seq = $1 RETURNING replayed_at",
    )
    .bind(id)
    .fetch_one(pool)
    .await
}
