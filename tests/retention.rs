//! Retention: rows past their window are purged a small batch at a time,
//! newer ones and undelivered notifier rows stay, `dynzero run --only
//! retention` purges by itself, and a message redelivered after its inbox
//! row was purged changes no state and raises no alert again. Rows are
//! back-dated with SQL instead of waiting.

use dynzero_notifier::store::purge_delivered;
use dynzero_reconciler::retention::{purge_inbox, purge_rejections};
use dynzero_runtime::database;
use dynzero_runtime::settings::DatabaseSettings;
use dynzero_tests::hub::{Fixture, dynzero_command, scenario, scenario_today, test_settings};
use dynzero_tests::{amqp_url, eventually, fresh_database};
use sqlx::PgPool;
use std::time::Duration;

/// A fresh database with the reconciler's and the notifier's tables.
async fn migrated() -> (dynzero_tests::TestDatabase, PgPool) {
    let db = fresh_database().await;
    let settings = DatabaseSettings {
        url: db.url().to_owned(),
        ..DatabaseSettings::defaults()
    };
    database::migrate(&dynzero_reconciler::service::MIGRATOR, &settings)
        .await
        .expect("the reconciler's migrations");
    database::migrate(&dynzero_notifier::store::migrator(), &settings)
        .await
        .expect("the notifier's migrations");
    let pool = db.pool().await;
    (db, pool)
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn strings(pool: &PgPool, sql: &'static str) -> Vec<String> {
    sqlx::query_scalar(sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Inbox rows i1..i5 100 days old, n1..n3 10 days old, and w1 100 days old
/// whose cause still waits for a version; rejections r1..r3 400 days old and
/// s1, s2 of yesterday; notifier alerts and deliveries of every status.
async fn back_dated_rows(pool: &PgPool) {
    exec(
        pool,
        "INSERT INTO inbox (source, id, digest, event_type, received_at)
         SELECT 'src', 'i' || n, 'd', 'household.registered', now() - interval '100 days' FROM generate_series(1, 5) n;
         INSERT INTO inbox (source, id, digest, event_type, received_at)
         SELECT 'src', 'n' || n, 'd', 'household.registered', now() - interval '10 days' FROM generate_series(1, 3) n;
         INSERT INTO inbox (source, id, digest, event_type, received_at)
         VALUES ('src', 'w1', 'd', 'household.registered', now() - interval '100 days');
         INSERT INTO household_cause (household_id, cause, arrival, published)
         SELECT 'h1', 'w1', arrival, false FROM inbox WHERE id = 'w1';
         INSERT INTO household_cause (household_id, cause, arrival, published)
         SELECT 'h1', 'i1', arrival, true FROM inbox WHERE id = 'i1';
         INSERT INTO rejection (reason, detail, routing_key, rejected_at)
         SELECT 'r' || n, '', 'k', now() - interval '400 days' FROM generate_series(1, 3) n;
         INSERT INTO rejection (reason, detail, routing_key, rejected_at)
         SELECT 's' || n, '', 'k', now() - interval '1 day' FROM generate_series(1, 2) n;
         INSERT INTO notifier_alert (alert_id, kind, division_code, body, received_at)
         SELECT a, 'household_at_risk', '210302', '', now() - interval '40 days'
         FROM unnest(ARRAY['all-delivered', 'one-pending', 'failed', 'unrouted']) a;
         INSERT INTO notifier_alert (alert_id, kind, division_code, body)
         VALUES ('recent', 'household_at_risk', '210302', '');
         INSERT INTO notifier_delivery
             (alert_id, subscription, target_key, target_kind, status, created_at, next_attempt_at, delivered_at)
         VALUES
             ('all-delivered', 'a', 't', 'webhook', 'delivered', now() - interval '40 days', now() - interval '40 days', now() - interval '40 days'),
             ('all-delivered', 'b', 't', 'webhook', 'delivered', now() - interval '40 days', now() - interval '40 days', now() - interval '39 days'),
             ('one-pending',   'a', 't', 'webhook', 'delivered', now() - interval '40 days', now() - interval '40 days', now() - interval '40 days'),
             ('one-pending',   'b', 't', 'webhook', 'pending',   now() - interval '40 days', now() - interval '40 days', NULL),
             ('failed',        'a', 't', 'webhook', 'failed',    now() - interval '40 days', now() - interval '40 days', NULL),
             ('recent',        'a', 't', 'webhook', 'delivered', now(), now(), now());",
    )
    .await;
}

/// What the windows of the default configuration keep of [`back_dated_rows`].
async fn assert_kept(pool: &PgPool) {
    assert_eq!(
        strings(pool, "SELECT id FROM inbox ORDER BY id").await,
        ["n1", "n2", "n3", "w1"],
        "the inbox keeps the window and what a version has yet to name"
    );
    assert_eq!(
        strings(pool, "SELECT reason FROM rejection ORDER BY reason").await,
        ["s1", "s2"]
    );
    assert_eq!(
        strings(
            pool,
            "SELECT alert_id || '/' || subscription || '/' || status FROM notifier_delivery ORDER BY 1"
        )
        .await,
        ["failed/a/failed", "one-pending/b/pending", "recent/a/delivered"],
        "pending and failed deliveries are never purged"
    );
    assert_eq!(
        strings(pool, "SELECT alert_id FROM notifier_alert ORDER BY 1").await,
        ["failed", "one-pending", "recent"],
        "a consumed alert goes with its last delivery"
    );
}

#[tokio::test]
async fn rows_past_their_window_are_purged_in_small_batches() {
    let (db, pool) = migrated().await;
    back_dated_rows(&pool).await;

    // Batches of two: 5 old inbox rows go 2, 2, 1 (w1 waits, i1's cause is named).
    let mut batches = Vec::new();
    loop {
        let n = purge_inbox(&pool, 90, 2).await.expect("purging the inbox");
        batches.push(n);
        if n < 2 {
            break;
        }
    }
    assert_eq!(batches, [2, 2, 1]);
    let mut batches = Vec::new();
    loop {
        let n = purge_rejections(&pool, 365, 2)
            .await
            .expect("purging rejections");
        batches.push(n);
        if n < 2 {
            break;
        }
    }
    assert_eq!(batches, [2, 1]);
    // Deliveries first, then the alerts left without one: at most a batch each.
    let mut purged = 0;
    loop {
        let n = purge_delivered(&pool, 30, 1)
            .await
            .expect("purging deliveries");
        assert!(n <= 2, "one delivery and one alert at most per call: {n}");
        purged += n;
        if n == 0 {
            break;
        }
    }
    assert_eq!(purged, 3 + 2, "three delivered rows, two alerts");
    assert_kept(&pool).await;

    // A window that has not passed purges nothing.
    assert_eq!(purge_inbox(&pool, 90, 100).await.unwrap(), 0);
    assert_eq!(
        purge_inbox(&pool, 11, 100).await.unwrap(),
        0,
        "w1 still waits"
    );
    assert_eq!(purge_inbox(&pool, 5, 100).await.unwrap(), 3);
    pool.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn dynzero_run_only_retention_purges_by_itself() {
    let (db, pool) = migrated().await;
    back_dated_rows(&pool).await;
    let settings = test_settings(db.url(), &amqp_url());
    let mut dynzero = dynzero_command(&settings)
        .args(["run", "--only", "retention"])
        .env("DYNZERO__RETENTION__BATCH_SIZE", "2")
        .env("DYNZERO__RETENTION__PAUSE_MS", "1")
        .spawn()
        .expect("starting dynzero run --only retention");
    eventually(Duration::from_secs(30), "the old rows purged", || async {
        let left: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM inbox) + (SELECT count(*) FROM rejection)
                  + (SELECT count(*) FROM notifier_delivery) + (SELECT count(*) FROM notifier_alert)",
        )
        .fetch_one(&pool)
        .await
        .ok()?;
        (left == 4 + 2 + 3 + 3).then_some(())
    })
    .await;
    assert_kept(&pool).await;
    assert!(
        dynzero.try_wait().expect("the child's status").is_none(),
        "retention keeps running"
    );
    let _ = dynzero.kill().await;
    pool.close().await;
    db.drop_database().await;
}

/// Households' versions and every alert id: what a redelivery must not change.
async fn outcome(pool: &PgPool) -> (Vec<String>, Vec<String>) {
    let versions = strings(
        pool,
        "SELECT household_id || '@' || version FROM household ORDER BY 1",
    )
    .await;
    let alerts = strings(pool, "SELECT id FROM alert ORDER BY id").await;
    (versions, alerts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_after_the_window_changes_no_state_and_raises_no_alert() {
    let fixture = Fixture::new().await;
    // Postings are matched against the states of their day: a posting
    // redelivered after the window is matched again, against today's
    // (docs/operations.md, "Retention"); everything else is replayed.
    let messages: Vec<_> = scenario(17, 20, 80, scenario_today())
        .into_iter()
        .filter(|(key, _)| key != "job.posting")
        .collect();
    let hub = fixture.start().await;
    fixture.publish(&messages).await;
    let total = messages.len() as u64;
    eventually(
        Duration::from_secs(120),
        "every message settled",
        || async { (hub.settled() >= total).then_some(()) },
    )
    .await;
    let pool = fixture.db.pool().await;
    let before = outcome(&pool).await;
    assert!(!before.0.is_empty() && !before.1.is_empty());
    let duplicates = hub.hub.metrics.duplicate_count();

    // The window passes for every message, and the inbox forgets them.
    exec(
        &pool,
        "UPDATE inbox SET received_at = now() - interval '91 days'",
    )
    .await;
    let mut purged = 0;
    loop {
        let n = purge_inbox(&pool, 90, 50).await.expect("purging the inbox");
        purged += n;
        if n < 50 {
            break;
        }
    }
    // Causes not yet named by a version (people of households with no
    // version yet) keep their inbox rows.
    assert!(purged >= total / 2, "{purged} of {total} purged");

    fixture.publish(&messages).await;
    eventually(
        Duration::from_secs(120),
        "every redelivery settled",
        || async { (hub.settled() >= 2 * total).then_some(()) },
    )
    .await;
    // Applied as new messages, not counted as duplicates (those whose
    // inbox row was kept still are)…
    assert_eq!(
        hub.hub.metrics.duplicate_count() - duplicates,
        total - purged,
        "redeliveries after the window are new messages"
    );
    // …that leave every household at its version and raise nothing again.
    assert_eq!(outcome(&pool).await, before);
    hub.stop().await;
    pool.close().await;
}
