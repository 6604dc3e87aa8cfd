//! TLS to this machine's PostgreSQL (port 5432, `sslmode=verify-full`) and
//! RabbitMQ (`amqps://` on 5671), with the throwaway authority that
//! `deploy/tls/make-certs.sh` makes (`.ci/run` runs it first). A
//! certificate that does not verify is a configuration error: `dynzero`
//! exits 2 with one line and does not retry.

use dynzero_runtime::settings::{AmqpSettings, DatabaseSettings};
use dynzero_tests::fresh_database;
use dynzero_tests::hub::{dynzero_command, test_settings};
use sqlx::{Connection, PgConnection};
use std::path::PathBuf;
use std::time::Duration;

/// The authority `deploy/tls/make-certs.sh` made (`DYNZERO_TLS_DIR`).
fn ca_file() -> PathBuf {
    let dir = std::env::var("DYNZERO_TLS_DIR").unwrap_or_else(|_| "/var/tmp/dynzero-tls".into());
    let ca = PathBuf::from(dir).join("ca.pem");
    assert!(
        ca.exists(),
        "{} missing: run deploy/tls/make-certs.sh (.ci/run does)",
        ca.display()
    );
    ca
}

/// A certificate no server here was signed by.
const FOREIGN_CA: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

fn verify_full(url: &str, ca: &std::path::Path) -> String {
    format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display())
}

fn amqps(ca: PathBuf) -> AmqpSettings {
    AmqpSettings {
        ca_file: ca,
        ..AmqpSettings::defaults().with_url("amqps://guest:guest@localhost:5671/%2f")
    }
}

#[tokio::test]
async fn postgres_verify_full_with_the_throwaway_authority_is_encrypted() {
    let db = fresh_database().await;
    let settings = DatabaseSettings {
        url: verify_full(db.url(), &ca_file()),
        ..DatabaseSettings::defaults()
    };
    let options = dynzero_runtime::database::options(&settings).expect("a valid URL");
    let mut connection = PgConnection::connect_with(&options)
        .await
        .expect("a verified TLS connection");
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut connection)
            .await
            .expect("pg_stat_ssl");
    assert!(encrypted);
    let _ = connection.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn amqps_with_the_configured_authority_connects() {
    let connection = dynzero_runtime::amqp::connect(&amqps(ca_file()))
        .await
        .expect("an amqps:// connection");
    assert!(connection.status().connected());
    dynzero_runtime::amqp::close_connection(&connection, "OK").await;
}

/// `dynzero run` with these overrides: exit status and stderr.
async fn run_with(env: &[(&str, String)]) -> (Option<i32>, String) {
    let settings = test_settings(
        "postgres://postgres@127.0.0.1:5432/postgres",
        &dynzero_tests::amqp_url(),
    );
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        dynzero_command(&settings)
            .arg("run")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output(),
    )
    .await
    .expect("dynzero gives up by itself: a certificate failure is not retried")
    .expect("dynzero runs");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn a_database_certificate_that_does_not_verify_exits_2_with_one_line() {
    let db = fresh_database().await;
    let url = verify_full(db.url(), std::path::Path::new(FOREIGN_CA));
    let (code, stderr) = run_with(&[("DYNZERO__DATABASE__URL", url)]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    db.drop_database().await;
}

#[tokio::test]
async fn a_broker_certificate_that_does_not_verify_exits_2_with_one_line() {
    let (code, stderr) = run_with(&[
        (
            "DYNZERO__AMQP__URLS",
            "amqps://guest:guest@localhost:5671/%2f".into(),
        ),
        ("DYNZERO__AMQP__CA_FILE", FOREIGN_CA.into()),
    ])
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
