//! The notifier's tables: subscriptions, consumed alerts and deliveries.

use crate::pii::PiiPolicy;
use crate::subscription::{Subscription, SubscriptionSpec, Target};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::time::Duration;

/// The notifier's migrations, tracked in a table of their own: the
/// reconciler's migrator refuses a database whose `_sqlx_migrations` lists
/// versions it does not know, and the two share a database.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name("_notifier_migrations");
    migrator
}

/// Where a subscription comes from: the configuration file (re-synchronised
/// at every start) or `dynzero subscriptions add`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Config,
    Runtime,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Runtime => "runtime",
        }
    }
}

/// Insert or replace a subscription.
pub async fn upsert_subscription(
    pool: &PgPool,
    subscription: &Subscription,
    origin: Origin,
) -> Result<(), sqlx::Error> {
    let target = serde_json::to_value(subscription.target()).expect("targets serialise");
    sqlx::query(
        "INSERT INTO notifier_subscription (name, division_prefix, kinds, target, target_kind, pii, origin)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (name) DO UPDATE SET division_prefix = EXCLUDED.division_prefix,
             kinds = EXCLUDED.kinds, target = EXCLUDED.target, target_kind = EXCLUDED.target_kind,
             pii = EXCLUDED.pii, origin = EXCLUDED.origin",
    )
    .bind(subscription.name())
    .bind(subscription.prefix().as_str())
    .bind(subscription.kind_words())
    .bind(target)
    .bind(subscription.target().kind().as_str())
    .bind(subscription.pii().as_str())
    .bind(origin.as_str())
    .execute(pool)
    .await?;
    Ok(())
}

/// Make the configuration's subscriptions the `config` ones in the table;
/// runtime subscriptions are left alone.
pub async fn sync_config(pool: &PgPool, subscriptions: &[Subscription]) -> Result<(), sqlx::Error> {
    let names: Vec<&str> = subscriptions.iter().map(Subscription::name).collect();
    sqlx::query(
        "DELETE FROM notifier_subscription WHERE origin = 'config' AND NOT (name = ANY($1))",
    )
    .bind(&names)
    .execute(pool)
    .await?;
    for s in subscriptions {
        upsert_subscription(pool, s, Origin::Config).await?;
    }
    Ok(())
}

/// Whether it existed.
pub async fn remove_subscription(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM notifier_subscription WHERE name = $1")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// A stored subscription and where it came from.
pub struct StoredSubscription {
    pub subscription: Subscription,
    pub origin: String,
}

pub async fn list_subscriptions(pool: &PgPool) -> anyhow::Result<Vec<StoredSubscription>> {
    let rows = sqlx::query(
        "SELECT name, division_prefix, kinds, target, pii, origin FROM notifier_subscription ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            let target: Target = serde_json::from_value(row.get("target"))?;
            let pii: String = row.get("pii");
            let spec = SubscriptionSpec {
                name: row.get("name"),
                division: row.get("division_prefix"),
                kinds: row.get("kinds"),
                target,
                pii: PiiPolicy::parse(&pii).unwrap_or_default(),
            };
            Ok(StoredSubscription {
                subscription: Subscription::parse(spec)?,
                origin: row.get("origin"),
            })
        })
        .collect()
}

/// An alert as consumed: what routing needs, and its bytes.
pub struct ConsumedAlert<'a> {
    pub id: String,
    pub kind: String,
    pub division_code: String,
    pub body: &'a [u8],
    /// The alert's `traceparent` attribute, when valid.
    pub traceparent: Option<String>,
}

impl<'a> ConsumedAlert<'a> {
    /// `None` for a body that is not an alert CloudEvent.
    pub fn parse(body: &'a [u8]) -> Option<Self> {
        let event: serde_json::Value = serde_json::from_slice(body).ok()?;
        let id = event["id"].as_str()?.to_string();
        let kind = event["data"]["kind"].as_str()?.to_string();
        let division_code = event["data"]["division_code"].as_str()?.to_string();
        let traceparent = event["traceparent"]
            .as_str()
            .filter(|t| dynzero_runtime::telemetry::is_traceparent(t))
            .map(str::to_string);
        Some(Self {
            id,
            kind,
            division_code,
            body,
            traceparent,
        })
    }
}

/// Store an alert and one delivery per matching subscription (not `amqp`:
/// those subscribers read the exchange themselves). A redelivered alert adds
/// nothing. Returns the deliveries created.
pub async fn record_alert(
    tx: &mut Transaction<'_, Postgres>,
    alert: &ConsumedAlert<'_>,
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO notifier_alert (alert_id, kind, division_code, body) VALUES ($1, $2, $3, $4)
         ON CONFLICT (alert_id) DO NOTHING",
    )
    .bind(&alert.id)
    .bind(&alert.kind)
    .bind(&alert.division_code)
    .bind(alert.body)
    .execute(&mut **tx)
    .await?;
    let created = sqlx::query(
        "INSERT INTO notifier_delivery (alert_id, subscription, target_key, target_kind, traceparent)
         SELECT $1, name, target->>'url', target_kind, $4 FROM notifier_subscription
         WHERE target_kind <> 'amqp' AND starts_with($2, division_prefix)
           AND (cardinality(kinds) = 0 OR $3 = ANY(kinds))
         ON CONFLICT (alert_id, subscription) DO NOTHING",
    )
    .bind(&alert.id)
    .bind(&alert.division_code)
    .bind(&alert.kind)
    .bind(&alert.traceparent)
    .execute(&mut **tx)
    .await?;
    Ok(created.rows_affected())
}

/// A due delivery, with what sending it needs.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub alert_id: String,
    pub target_key: String,
    pub attempts: i32,
    pub body: Vec<u8>,
    pub received_at: DateTime<Utc>,
    /// The alert's trace context, sent on to webhooks.
    pub traceparent: Option<String>,
    /// `None` when the subscription was removed after the alert came.
    pub subscription: Option<Subscription>,
}

/// Due deliveries, locked (`FOR UPDATE SKIP LOCKED`) for the caller's
/// transaction, oldest first, leaving out targets already at their limit.
pub async fn due(
    tx: &mut Transaction<'_, Postgres>,
    busy_targets: &[String],
    limit: i64,
) -> Result<Vec<Due>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.id, d.alert_id, d.target_key, d.attempts, a.body, a.received_at, d.traceparent,
                s.name, s.division_prefix, s.kinds, s.target, s.pii
         FROM notifier_delivery d
         JOIN notifier_alert a ON a.alert_id = d.alert_id
         LEFT JOIN notifier_subscription s ON s.name = d.subscription
         WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND NOT (d.target_key = ANY($1))
         ORDER BY d.next_attempt_at, d.id
         LIMIT $2
         FOR UPDATE OF d SKIP LOCKED",
    )
    .bind(busy_targets)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let subscription = row.get::<Option<String>, _>("name").and_then(|name| {
                let target: Target = serde_json::from_value(row.get("target")).ok()?;
                let pii: String = row.get("pii");
                Subscription::parse(SubscriptionSpec {
                    name,
                    division: row.get("division_prefix"),
                    kinds: row.get("kinds"),
                    target,
                    pii: PiiPolicy::parse(&pii).unwrap_or_default(),
                })
                .ok()
            });
            Due {
                id: row.get("id"),
                alert_id: row.get("alert_id"),
                target_key: row.get("target_key"),
                attempts: row.get("attempts"),
                body: row.get("body"),
                received_at: row.get("received_at"),
                traceparent: row.get("traceparent"),
                subscription,
            }
        })
        .collect())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Take deliveries for an attempt: counted, and hidden from other workers
/// for `lease` (if this process dies mid-attempt they come due again then).
pub async fn lease(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[i64],
    lease: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifier_delivery SET attempts = attempts + 1,
             next_attempt_at = now() + make_interval(secs => $2)
         WHERE id = ANY($1)",
    )
    .bind(ids)
    .bind(secs(lease))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Put deliveries back without counting an attempt (e.g. a bot over its rate).
pub async fn postpone(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[i64],
    by: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifier_delivery SET next_attempt_at = now() + make_interval(secs => $2) WHERE id = ANY($1)",
    )
    .bind(ids)
    .bind(secs(by))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn mark_delivered(pool: &PgPool, ids: &[i64], status: u16) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifier_delivery SET status = 'delivered', delivered_at = now(), last_status = $2,
             last_error = NULL
         WHERE id = ANY($1)",
    )
    .bind(ids)
    .bind(i32::from(status))
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn mark_failed(
    pool: &PgPool,
    ids: &[i64],
    status: Option<u16>,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifier_delivery SET status = 'failed', last_status = $2, last_error = $3 WHERE id = ANY($1)",
    )
    .bind(ids)
    .bind(status.map(i32::from))
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Schedule another attempt after `delay`, unless that is past the give-up
/// limit counted from the alert's arrival: then the delivery is `failed`.
/// Returns how many were given up.
pub async fn retry_later(
    pool: &PgPool,
    ids: &[i64],
    delay: Duration,
    give_up_after: Duration,
    status: Option<u16>,
    error: &str,
) -> Result<u64, sqlx::Error> {
    let given_up: i64 = sqlx::query_scalar(
        "WITH changed AS (
             UPDATE notifier_delivery SET
                 status = CASE WHEN created_at + make_interval(secs => $4) < now() + make_interval(secs => $2)
                               THEN 'failed' ELSE 'pending' END,
                 next_attempt_at = now() + make_interval(secs => $2),
                 last_status = $3,
                 last_error = $5
             WHERE id = ANY($1)
             RETURNING status)
         SELECT count(*) FROM changed WHERE status = 'failed'",
    )
    .bind(ids)
    .bind(secs(delay))
    .bind(status.map(i32::from))
    .bind(secs(give_up_after))
    .bind(error)
    .fetch_one(pool)
    .await?;
    Ok(given_up as u64)
}

/// Retention (`retention.deliveries_days`): delete at most `batch` rows
/// delivered more than `days` days ago, then at most `batch` consumed alerts
/// as old that no delivery row names any more; the number deleted. Pending
/// and failed rows are never purged: what is not delivered stays.
pub async fn purge_delivered(pool: &PgPool, days: i32, batch: i64) -> Result<u64, sqlx::Error> {
    let deliveries = sqlx::query(
        "DELETE FROM notifier_delivery WHERE id IN (
             SELECT id FROM notifier_delivery
             WHERE status = 'delivered' AND delivered_at < now() - make_interval(days => $1)
             ORDER BY delivered_at
             LIMIT $2)",
    )
    .bind(days)
    .bind(batch)
    .execute(pool)
    .await?;
    let alerts = sqlx::query(
        "DELETE FROM notifier_alert WHERE alert_id IN (
             SELECT a.alert_id FROM notifier_alert a
             WHERE a.received_at < now() - make_interval(days => $1)
               AND NOT EXISTS (SELECT 1 FROM notifier_delivery d WHERE d.alert_id = a.alert_id)
             ORDER BY a.received_at
             LIMIT $2)",
    )
    .bind(days)
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(deliveries.rows_affected() + alerts.rows_affected())
}

/// Deliveries per (target kind, status) for the statuses the metrics report
/// (`pending`, `failed`): the pending ones through the due index; the failed
/// ones stay until retention removes them, so this is sampled, not run per alert.
pub async fn delivery_counts(pool: &PgPool) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT target_kind, status, count(*) FROM notifier_delivery
         WHERE status IN ('pending', 'failed') GROUP BY target_kind, status",
    )
    .fetch_all(pool)
    .await
}
