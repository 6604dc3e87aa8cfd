//! The notifier's tables: subscriptions, consumed alerts and deliveries.

use crate::pii::PiiPolicy;
use crate::seal::SealingKey;
use crate::subscription::{
    DivisionPrefix, Subscription, SubscriptionSpec, Target, TargetKind, redact_url,
};
use anyhow::Context;
use chrono::{DateTime, Utc};
use dynzero_runtime::config::ConfigError;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
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

/// What a subscription's row holds of its target: a public view (kind, URL
/// without its query) in `target`, the whole target sealed in
/// `target_sealed`, and the keyed hash delivery rows group by in `target_hash`.
struct StoredTarget {
    public: serde_json::Value,
    sealed: Option<Vec<u8>>,
    hash: Option<String>,
}

fn store_target(
    name: &str,
    target: &Target,
    key: Option<&SealingKey>,
) -> Result<StoredTarget, ConfigError> {
    let Some(url) = target.url() else {
        return Ok(StoredTarget {
            public: serde_json::json!({ "kind": target.kind().as_str() }),
            sealed: None,
            hash: None,
        });
    };
    let key = key.ok_or_else(|| missing_key(name))?;
    let plain = serde_json::to_vec(target).expect("targets serialise");
    Ok(StoredTarget {
        public: serde_json::json!({ "kind": target.kind().as_str(), "url": redact_url(url) }),
        sealed: Some(key.seal(name, &plain)),
        hash: Some(key.target_hash(url)),
    })
}

/// The one line `dynzero run` or `dynzero subscriptions add` stops with when
/// a secret would be stored in the clear.
pub fn missing_key(name: &str) -> ConfigError {
    ConfigError::new(
        "security.key_file",
        &format!(
            "(or DYNZERO__SECURITY__KEY) is needed: subscription {name:?} carries a secret, \
             and secrets are stored only sealed (`dynzero keys generate` makes a key)"
        ),
    )
}

/// A stored target, opened: sealed with `key`, or (rows stored before
/// sealing, until `dynzero run` seals them) in the clear.
fn open_target(
    name: &str,
    public: serde_json::Value,
    sealed: Option<Vec<u8>>,
    key: Option<&SealingKey>,
) -> anyhow::Result<Target> {
    match sealed {
        Some(sealed) => {
            let key = key.ok_or_else(|| missing_key(name))?;
            let plain = key.open(name, &sealed).map_err(|e| {
                ConfigError::new("security.key", &format!("subscription {name:?}: {e}"))
            })?;
            Ok(serde_json::from_slice(&plain)?)
        }
        None => Ok(serde_json::from_value(public)?),
    }
}

/// Insert or replace a subscription, its target sealed under `key` (needed
/// for every target but `amqp`).
pub async fn upsert_subscription(
    conn: &mut PgConnection,
    key: Option<&SealingKey>,
    subscription: &Subscription,
    origin: Origin,
) -> anyhow::Result<()> {
    let stored = store_target(subscription.name(), subscription.target(), key)?;
    sqlx::query(
        "INSERT INTO notifier_subscription
             (name, division_prefix, kinds, target, target_kind, pii, origin, target_sealed, target_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (name) DO UPDATE SET division_prefix = EXCLUDED.division_prefix,
             kinds = EXCLUDED.kinds, target = EXCLUDED.target, target_kind = EXCLUDED.target_kind,
             pii = EXCLUDED.pii, origin = EXCLUDED.origin,
             target_sealed = EXCLUDED.target_sealed, target_hash = EXCLUDED.target_hash",
    )
    .bind(subscription.name())
    .bind(subscription.prefix().as_str())
    .bind(subscription.kind_words())
    .bind(stored.public)
    .bind(subscription.target().kind().as_str())
    .bind(subscription.pii().as_str())
    .bind(origin.as_str())
    .bind(stored.sealed)
    .bind(stored.hash)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Make the configuration's subscriptions the `config` ones in the table, in
/// one transaction; runtime subscriptions are left alone. Only `dynzero run`
/// (building the notifier) does this.
pub async fn sync_config(
    pool: &PgPool,
    key: Option<&SealingKey>,
    subscriptions: &[Subscription],
) -> anyhow::Result<()> {
    let names: Vec<&str> = subscriptions.iter().map(Subscription::name).collect();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "DELETE FROM notifier_subscription WHERE origin = 'config' AND NOT (name = ANY($1))",
    )
    .bind(&names)
    .execute(&mut *tx)
    .await?;
    for s in subscriptions {
        upsert_subscription(&mut tx, key, s, Origin::Config).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The unkeyed digest the migration left in delivery rows in place of a
/// target's URL, until the target is sealed and hashed with the key.
fn legacy_target_key(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("legacy:{hex}")
}

/// Seal the targets stored in the clear before sealing existed, and give
/// their deliveries the keyed hash. Returns how many were sealed.
async fn seal_legacy_in(conn: &mut PgConnection, key: Option<&SealingKey>) -> anyhow::Result<u64> {
    let rows = sqlx::query(
        "SELECT name, target FROM notifier_subscription
         WHERE target_sealed IS NULL AND target_kind <> 'amqp' FOR UPDATE",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in &rows {
        let name: String = row.get("name");
        let target: Target = serde_json::from_value(row.get("target"))
            .with_context(|| format!("subscription {name:?}: its stored target"))?;
        let stored = store_target(&name, &target, key)?;
        sqlx::query(
            "UPDATE notifier_subscription SET target = $2, target_sealed = $3, target_hash = $4 WHERE name = $1",
        )
        .bind(&name)
        .bind(stored.public)
        .bind(stored.sealed)
        .bind(&stored.hash)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE notifier_delivery SET target_key = $2 WHERE target_key = $1")
            .bind(legacy_target_key(target.url().unwrap_or_default()))
            .bind(&stored.hash)
            .execute(&mut *conn)
            .await?;
    }
    Ok(rows.len() as u64)
}

/// At start: seal what is still in the clear, and check that `key` opens
/// every sealed target — a missing or wrong key is a configuration error,
/// found before any alert is taken. Returns how many were sealed now.
pub async fn prepare_sealing(pool: &PgPool, key: Option<&SealingKey>) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    let sealed_now = seal_legacy_in(&mut tx, key).await?;
    tx.commit().await?;
    let rows = sqlx::query(
        "SELECT name, target, target_sealed FROM notifier_subscription WHERE target_sealed IS NOT NULL",
    )
    .fetch_all(pool)
    .await?;
    for row in rows {
        let name: String = row.get("name");
        open_target(&name, row.get("target"), row.get("target_sealed"), key)?;
    }
    Ok(sealed_now)
}

/// Re-seal every target under `new`, and re-hash the deliveries' targets,
/// in one transaction: all or nothing. Returns how many targets.
pub async fn rotate(pool: &PgPool, old: &SealingKey, new: &SealingKey) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    let legacy = seal_legacy_in(&mut tx, Some(new)).await?;
    let rows = sqlx::query(
        "SELECT name, target, target_sealed, target_hash FROM notifier_subscription
         WHERE target_sealed IS NOT NULL FOR UPDATE",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut resealed = 0;
    for row in rows {
        let name: String = row.get("name");
        let sealed: Vec<u8> = row.get("target_sealed");
        let old_hash: Option<String> = row.get("target_hash");
        if new.open(&name, &sealed).is_ok() {
            continue; // sealed just now, from the clear
        }
        let target = open_target(&name, row.get("target"), Some(sealed), Some(old))?;
        let stored = store_target(&name, &target, Some(new))?;
        sqlx::query(
            "UPDATE notifier_subscription SET target_sealed = $2, target_hash = $3 WHERE name = $1",
        )
        .bind(&name)
        .bind(stored.sealed)
        .bind(&stored.hash)
        .execute(&mut *tx)
        .await?;
        if let Some(old_hash) = old_hash {
            sqlx::query("UPDATE notifier_delivery SET target_key = $2 WHERE target_key = $1")
                .bind(old_hash)
                .bind(&stored.hash)
                .execute(&mut *tx)
                .await?;
        }
        resealed += 1;
    }
    tx.commit().await?;
    Ok(resealed + legacy)
}

/// Whether it existed.
pub async fn remove_subscription(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM notifier_subscription WHERE name = $1")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// A stored subscription as listed: what can be shown without the key.
pub struct Listed {
    pub name: String,
    pub prefix: DivisionPrefix,
    pub kinds: Vec<String>,
    pub target_kind: String,
    /// The target's URL without its query (a bot's token is there).
    pub url: Option<String>,
    pub pii: String,
    pub origin: String,
}

pub async fn list_subscriptions(pool: &PgPool) -> anyhow::Result<Vec<Listed>> {
    let rows = sqlx::query(
        "SELECT name, division_prefix, kinds, target, target_kind, pii, origin
         FROM notifier_subscription ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            let target: serde_json::Value = row.get("target");
            let target_kind: String = row.get("target_kind");
            let pii: String = row.get("pii");
            let bot = TargetKind::parse(&target_kind).is_some_and(TargetKind::is_bot);
            Ok(Listed {
                name: row.get("name"),
                prefix: DivisionPrefix::parse(row.get("division_prefix"))?,
                kinds: row.get("kinds"),
                url: target["url"].as_str().map(redact_url),
                pii: if bot { "masked".into() } else { pii },
                target_kind,
                origin: row.get("origin"),
            })
        })
        .collect()
}

/// One subscription, its target opened with `key`.
pub async fn find_subscription(
    pool: &PgPool,
    key: Option<&SealingKey>,
    name: &str,
) -> anyhow::Result<Option<Subscription>> {
    let row = sqlx::query(
        "SELECT name, division_prefix, kinds, target, target_sealed, pii
         FROM notifier_subscription WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let target = open_target(name, row.get("target"), row.get("target_sealed"), key)?;
    let pii: String = row.get("pii");
    Ok(Some(Subscription::parse(SubscriptionSpec {
        name: row.get("name"),
        division: row.get("division_prefix"),
        kinds: row.get("kinds"),
        target,
        pii: PiiPolicy::parse(&pii).unwrap_or_default(),
    })?))
}

/// An alert that could not be recorded, kept with why.
pub async fn park(
    conn: &mut PgConnection,
    alert_id: &str,
    routing_key: &str,
    body: &[u8],
    reason: &str,
) -> Result<(), sqlx::Error> {
    // What could not be stored once may be what broke it: a NUL is the one
    // character a text column refuses.
    let text = |s: &str| s.replace('\0', "\\0");
    sqlx::query(
        "INSERT INTO notifier_parked (alert_id, routing_key, body, reason) VALUES ($1, $2, $3, $4)",
    )
    .bind(text(alert_id))
    .bind(text(routing_key))
    .bind(body)
    .bind(text(reason))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn parked_count(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notifier_parked")
        .fetch_one(pool)
        .await?;
    Ok(n as u64)
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
         SELECT $1, name, coalesce(target_hash, 'subscription:' || name), target_kind, $4 FROM notifier_subscription
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
    key: Option<&SealingKey>,
    busy_targets: &[String],
    limit: i64,
) -> Result<Vec<Due>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.id, d.alert_id, d.target_key, d.attempts, a.body, a.received_at, d.traceparent,
                s.name, s.division_prefix, s.kinds, s.target, s.target_sealed, s.pii
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
                let target =
                    match open_target(&name, row.get("target"), row.get("target_sealed"), key) {
                        Ok(target) => target,
                        Err(e) => {
                            tracing::warn!(subscription = %name, error = %e, "a target that cannot be opened");
                            return None;
                        }
                    };
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

/// At most a century: PostgreSQL's intervals overflow long before `Duration`'s.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64().min(100.0 * 365.0 * 86_400.0)
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
/// (`pending`, `failed`): the pending ones through the due index; failed ones
/// are kept (retention purges only delivered rows), so this is sampled every
/// few seconds, never run per alert.
pub async fn delivery_counts(pool: &PgPool) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT target_kind, status, count(*) FROM notifier_delivery
         WHERE status IN ('pending', 'failed') GROUP BY target_kind, status",
    )
    .fetch_all(pool)
    .await
}
