//! Least privilege in PostgreSQL: `deploy/postgres/roles.sql` applied to a
//! fresh database, the migrations run as the owner role, and the whole of
//! `dynzero run` (consumer, relay, sweeper, notifier, retention, API) working
//! as the runtime and read-side roles — which cannot change the schema.

use dynzero_tests::hub::{
    Fixture, content, dynzero_command, scenario, scenario_today, test_settings,
};
use dynzero_tests::{TestDatabase, amqp_url, eventually, fresh_database};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The three roles of one test; their names start with the test database's
/// name, so tests running side by side never share a role.
struct Roles {
    prefix: String,
}

impl Roles {
    fn owner(&self) -> String {
        format!("{}_owner", self.prefix)
    }
    fn hub(&self) -> String {
        format!("{}_hub", self.prefix)
    }
    fn api(&self) -> String {
        format!("{}_api", self.prefix)
    }

    /// `psql -f deploy/postgres/roles.sql` on the test's database.
    fn apply(&self, db: &TestDatabase) {
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/postgres/roles.sql");
        let out = std::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-v"])
            .arg(format!("prefix={}", self.prefix))
            .arg("-f")
            .arg(&file)
            .arg(db.url())
            .output()
            .expect("psql runs (PostgreSQL's client is installed with the server)");
        assert!(
            out.status.success(),
            "roles.sql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Best effort: the database first (it holds the roles' privileges).
    async fn drop(&self, db: TestDatabase, server: &str) {
        db.drop_database().await;
        if let Ok(mut admin) = PgConnection::connect(server).await {
            for role in [self.owner(), self.hub(), self.api()] {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    r#"DROP ROLE IF EXISTS "{role}""#
                )))
                .execute(&mut admin)
                .await;
            }
            let _ = admin.close().await;
        }
    }
}

/// The database's URL as `role` (the test server trusts local connections).
fn as_role(db: &TestDatabase, role: &str) -> String {
    let mut url = url::Url::parse(db.url()).expect("a test database URL");
    url.set_username(role).expect("a URL with a user");
    url.set_password(None).expect("a URL with a password");
    url.into()
}

async fn pool_as(db: &TestDatabase, role: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(&as_role(db, role))
        .await
        .unwrap_or_else(|e| panic!("connecting as {role}: {e}"))
}

/// The statement fails with SQLSTATE 42501, insufficient privilege.
async fn denied(pool: &PgPool, sql: &'static str) {
    match sqlx::query(sql).execute(pool).await {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {}
        other => panic!("{sql:?} should be refused for lack of privilege: {other:?}"),
    }
}

async fn allowed(pool: &PgPool, sql: &'static str) {
    sqlx::query(sql)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql:?} should be allowed: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_runs_as_its_runtime_role_which_cannot_change_the_schema() {
    let db = fresh_database().await;
    let roles = Roles {
        prefix: db.name().to_owned(),
    };
    roles.apply(&db);

    // The migrations as the owner, then the API's writes granted on the
    // tables they made (roles.sql again, as documented).
    let mut settings = test_settings(&as_role(&db, &roles.hub()), &amqp_url());
    settings.database.migration_url = as_role(&db, &roles.owner());
    let migrated = dynzero_command(&settings)
        .arg("migrate")
        .output()
        .await
        .expect("dynzero migrate runs");
    assert!(
        migrated.status.success(),
        "dynzero migrate as the owner: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    roles.apply(&db);

    // Every part of `dynzero run` as the runtime roles.
    let fixture = Fixture::with(db.clone(), settings.clone()).await;
    let mut dynzero = dynzero_command(&settings)
        .env("DYNZERO__API__DATABASE_URL", as_role(&db, &roles.api()))
        .arg("run")
        .spawn()
        .expect("starting dynzero run");
    let messages = scenario(3, 6, 20, scenario_today());
    fixture.publish(&messages).await;
    let mut latest = BTreeMap::new();
    fixture
        .latest_states(&mut latest, Duration::from_secs(60), |seen| seen.len() >= 6)
        .await;
    assert!(
        latest.len() >= 6,
        "states published by the hub as its runtime role: {}",
        latest.len()
    );
    assert!(latest.values().all(|s| content(s)["status"].is_string()));
    let hub = pool_as(&db, &roles.hub()).await;
    eventually(Duration::from_secs(30), "the outbox drained", || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&hub)
            .await
            .ok()?;
        (left == 0).then_some(())
    })
    .await;
    assert!(
        dynzero.try_wait().expect("the child's status").is_none(),
        "dynzero run (the API and the notifier included) keeps running as the runtime roles"
    );
    let _ = dynzero.kill().await;

    // The hub's statements: DML on the hub's and the notifier's tables.
    allowed(
        &hub,
        "INSERT INTO notifier_alert (alert_id, kind, division_code, body) VALUES ('a', 'k', '210302', '')",
    )
    .await;
    allowed(
        &hub,
        "INSERT INTO notifier_delivery (alert_id, subscription, target_key, target_kind) VALUES ('a', 's', 't', 'webhook')",
    )
    .await;
    allowed(&hub, "UPDATE notifier_delivery SET attempts = 1").await;
    allowed(&hub, "DELETE FROM notifier_delivery").await;
    allowed(
        &hub,
        "DELETE FROM rejection WHERE rejected_at < now() - interval '1 day'",
    )
    .await;
    // …and no DDL.
    denied(&hub, "DROP TABLE household").await;
    denied(&hub, "ALTER TABLE household ADD COLUMN extra int").await;
    denied(&hub, "CREATE TABLE extra (a int)").await;
    denied(&hub, "TRUNCATE outbox").await;
    denied(&hub, "CREATE INDEX extra ON inbox (digest)").await;

    // The read side reads, writes its own tables, and nothing of the hub's.
    let api = pool_as(&db, &roles.api()).await;
    allowed(&api, "SELECT count(*) FROM household_version").await;
    denied(&api, "UPDATE household SET status = status").await;
    denied(&api, "DELETE FROM inbox").await;
    denied(&api, "INSERT INTO outbox (stream, routing_key, message_id, body) VALUES ('alerts', 'k', 'm', '')").await;
    denied(&api, "SELECT * FROM notifier_subscription").await;
    denied(&api, "DROP TABLE api_token").await;
    allowed(
        &api,
        "INSERT INTO api_token (name, token_hash, division, role, pii) VALUES ('t', 'h', '2103', 'worker', 'masked')",
    )
    .await;
    allowed(
        &api,
        "UPDATE api_token SET revoked_at = now() WHERE name = 't'",
    )
    .await;
    allowed(
        &api,
        "INSERT INTO api_audit (token_name, household_id) VALUES ('t', 'h')",
    )
    .await;
    allowed(
        &api,
        "UPDATE rejection SET replayed_at = now() WHERE seq = 0",
    )
    .await;
    denied(&api, "UPDATE rejection SET reason = 'x'").await;

    hub.close().await;
    api.close().await;
    drop(fixture);
    roles.drop(db, &dynzero_tests::pg_server_url()).await;
}

/// roles.sql twice, and on a database whose tables an earlier deployment
/// made as another role: idempotent, and the tables become the owner's.
#[tokio::test]
async fn roles_sql_is_idempotent_and_adopts_tables_made_by_another_role() {
    let db = fresh_database().await;
    let roles = Roles {
        prefix: db.name().to_owned(),
    };
    let admin = db.pool().await;
    sqlx::query("CREATE TABLE inbox (source text, id text, arrival bigserial)")
        .execute(&admin)
        .await
        .expect("a table made as postgres");
    roles.apply(&db);
    roles.apply(&db);
    let owner: String =
        sqlx::query_scalar("SELECT tableowner::text FROM pg_tables WHERE tablename = 'inbox'")
            .fetch_one(&admin)
            .await
            .expect("the table's owner");
    assert_eq!(owner, roles.owner());
    let hub = pool_as(&db, &roles.hub()).await;
    allowed(&hub, "INSERT INTO inbox (source, id) VALUES ('s', 'i')").await;
    denied(&hub, "DROP TABLE inbox").await;
    hub.close().await;
    admin.close().await;
    roles.drop(db, &dynzero_tests::pg_server_url()).await;
}
