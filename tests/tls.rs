//! TLS to PostgreSQL and RabbitMQ against this machine's own servers, with
//! the throwaway authority of `deploy/tls/local-tls.sh` (which `.ci/run`
//! runs first): `sslmode=verify-full` with `sslrootcert`, `amqps://` with
//! `amqp.ca_file`. A certificate that does not verify — another authority, a
//! name it does not cover, a server that does not speak TLS — is a
//! configuration error: classified so (never an outage to wait out), and
//! `dynzero` stops with exit status 2 and one line.
//!
//! Where: `DYNZERO_TEST_TLS_DIR` (default `/var/tmp/dynzero-tls`), PostgreSQL
//! with TLS on 127.0.0.1:5432, RabbitMQ with TLS on 127.0.0.1:5671. Without
//! those listeners the tests fail, unless `DYNZERO_TEST_TLS=skip` says to
//! skip them (loudly).

use dynzero_reconciler::service::MIGRATOR;
use dynzero_runtime::config::ConfigError;
use dynzero_runtime::fault::{self, Fault};
use dynzero_runtime::settings::{AmqpSettings, DatabaseSettings};
use dynzero_runtime::{amqp, database};
use dynzero_tests::hub::{dynzero_command, test_settings};
use dynzero_tests::{TcpProxy, amqp_url, fresh_database, pg_addr, unique_name};
use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use sqlx::{Connection, PgConnection};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;

const TLS_DIR_VAR: &str = "DYNZERO_TEST_TLS_DIR";
const DEFAULT_TLS_DIR: &str = "/var/tmp/dynzero-tls";
const SKIP_VAR: &str = "DYNZERO_TEST_TLS";
const AMQPS_PORT: u16 = 5671;
/// A configuration error is said at once; an outage would be waited out
/// far longer than this.
const PROMPTLY: Duration = Duration::from_secs(15);

/// The script's files: the authority the servers' certificate comes from,
/// and an unrelated one.
struct Tls {
    ca: PathBuf,
    other_ca: PathBuf,
}

/// The TLS listeners, or `None` when they are absent and `DYNZERO_TEST_TLS=skip`
/// allows skipping. Absent without it, the test fails: in CI they are there.
async fn listeners() -> Option<Tls> {
    let dir = std::env::var(TLS_DIR_VAR)
        .ok()
        .filter(|d| !d.trim().is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_TLS_DIR), PathBuf::from);
    let tls = Tls {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
    };
    let mut missing = Vec::new();
    if !tls.ca.exists() || !tls.other_ca.exists() {
        missing.push(format!("the authorities in {}", dir.display()));
    }
    if tokio::net::TcpStream::connect(("127.0.0.1", AMQPS_PORT))
        .await
        .is_err()
    {
        missing.push(format!("RabbitMQ's TLS listener on 127.0.0.1:{AMQPS_PORT}"));
    }
    if missing.is_empty() && !postgres_speaks_tls(&tls.ca).await {
        missing.push("PostgreSQL's TLS with that authority".to_owned());
    }
    if missing.is_empty() {
        return Some(tls);
    }
    let what = missing.join(", ");
    if std::env::var(SKIP_VAR).as_deref() == Ok("skip") {
        eprintln!(
            "\n!!!!!!!! SKIPPED: TLS test without {what} ({SKIP_VAR}=skip). \
             Run deploy/tls/local-tls.sh to test TLS. !!!!!!!!\n"
        );
        return None;
    }
    panic!(
        "TLS listeners missing ({what}): run deploy/tls/local-tls.sh (.ci/run does), \
         or set {SKIP_VAR}=skip to skip the TLS tests"
    );
}

async fn postgres_speaks_tls(ca: &Path) -> bool {
    let url = format!(
        "postgres://postgres@127.0.0.1:5432/postgres?sslmode=verify-full&sslrootcert={}",
        ca.display()
    );
    match PgConnection::connect(&url).await {
        Ok(connection) => {
            let _ = connection.close().await;
            true
        }
        Err(_) => false,
    }
}

/// `url` (a `postgres://` URL without a query) with TLS verified against `ca`.
fn with_tls(url: &str, mode: &str, ca: &Path) -> String {
    format!("{url}?sslmode={mode}&sslrootcert={}", ca.display())
}

/// `url` with its host and port replaced.
fn at(url: &str, host: &str, port: u16) -> String {
    let mut url = url::Url::parse(url).expect("a URL");
    url.set_host(Some(host)).expect("a host");
    url.set_port(Some(port)).expect("a port");
    url.into()
}

fn database_settings(url: &str) -> DatabaseSettings {
    DatabaseSettings {
        url: url.to_owned(),
        max_connections: 2,
        ..DatabaseSettings::defaults()
    }
}

fn amqps_settings(host: &str, port: u16, ca: &Path) -> AmqpSettings {
    AmqpSettings {
        ca_file: ca.to_owned(),
        ..AmqpSettings::defaults().with_url(&format!("amqps://guest:guest@{host}:{port}/%2f"))
    }
}

fn config_error(e: &anyhow::Error) -> Option<&ConfigError> {
    e.chain().find_map(|c| c.downcast_ref::<ConfigError>())
}

#[tokio::test]
async fn postgres_with_verify_full_migrates_and_queries() {
    let Some(tls) = listeners().await else { return };
    let db = fresh_database().await;
    for host in ["127.0.0.1", "localhost"] {
        let url = with_tls(&at(db.url(), host, 5432), "verify-full", &tls.ca);
        let settings = database_settings(&url);
        database::ensure_exists(&settings)
            .await
            .unwrap_or_else(|e| panic!("{host}: {e:#}"));
        let pool = database::pool(&settings, database::options(&settings).expect("the URL"));
        tokio::time::timeout(PROMPTLY, database::migrate(&MIGRATOR, &settings))
            .await
            .expect("migrations over TLS do not wait")
            .unwrap_or_else(|e| panic!("{host}: {e:#}"));
        let (ssl, inbox): (bool, i64) = sqlx::query_as(
            "SELECT (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), \
                    (SELECT count(*) FROM inbox)",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert!(ssl, "{host}: the session is encrypted");
        assert_eq!(inbox, 0);
        pool.close().await;
    }
    db.drop_database().await;
}

#[tokio::test]
async fn amqps_with_the_ca_file_publishes_and_consumes() {
    let Some(tls) = listeners().await else { return };
    for host in ["127.0.0.1", "localhost"] {
        let settings = amqps_settings(host, AMQPS_PORT, &tls.ca);
        let (_stop, mut stopped) = watch::channel(false);
        let connection =
            tokio::time::timeout(PROMPTLY, amqp::connect_at_start(&settings, &mut stopped))
                .await
                .expect("amqps connects at once")
                .unwrap_or_else(|e| panic!("{host}: {e:#}"))
                .expect("a connection");
        let channel = amqp::confirm_channel(&connection).await.expect("a channel");
        let queue = unique_name("tls");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("a queue");
        let body = format!("over TLS to {host}");
        channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .expect("published")
            .await
            .expect("confirmed");
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consuming");
        let delivery = tokio::time::timeout(PROMPTLY, consumer.next())
            .await
            .expect("the message comes back")
            .expect("a delivery")
            .expect("not an error");
        assert_eq!(delivery.data, body.as_bytes());
        delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("acked");
        amqp::close(&connection, &channel).await;
    }
}

#[tokio::test]
async fn another_authority_is_a_configuration_error_for_both() {
    let Some(tls) = listeners().await else { return };
    let db = fresh_database().await;
    let url = with_tls(db.url(), "verify-full", &tls.other_ca);

    let e = PgConnection::connect(&url).await.expect_err("refused");
    assert_eq!(fault::database(&e), Fault::Configuration, "{e}");
    let settings = database_settings(&url);
    let e = tokio::time::timeout(PROMPTLY, database::ensure_exists(&settings))
        .await
        .expect("said at once")
        .expect_err("refused");
    assert!(config_error(&e).is_some(), "{e:#}");
    assert!(e.to_string().contains("certificate"), "{e:#}");
    let e = tokio::time::timeout(PROMPTLY, database::migrate(&MIGRATOR, &settings))
        .await
        .expect("not waited out as an outage")
        .expect_err("refused");
    assert!(config_error(&e).is_some(), "{e:#}");

    let settings = amqps_settings("127.0.0.1", AMQPS_PORT, &tls.other_ca);
    let e = amqp::connect(&settings).await.expect_err("refused");
    assert_eq!(fault::broker(&e), Fault::Configuration, "{e}");
    let (_stop, mut stopped) = watch::channel(false);
    let e = tokio::time::timeout(PROMPTLY, amqp::connect_at_start(&settings, &mut stopped))
        .await
        .expect("not waited out as an outage")
        .expect_err("refused");
    assert!(config_error(&e).is_some(), "{e:#}");
    assert!(e.to_string().contains("certificate"), "{e:#}");
    db.drop_database().await;
}

/// The servers' certificate names 127.0.0.1 and localhost; through a proxy
/// on 127.0.0.2 the name does not match. `verify-ca`, which does not check
/// the name, goes through the same proxy: the name is what failed.
#[tokio::test]
async fn a_name_the_certificate_does_not_cover_is_a_configuration_error_for_both() {
    let Some(tls) = listeners().await else { return };
    let elsewhere = IpAddr::from([127, 0, 0, 2]);
    let db = fresh_database().await;
    let pg = TcpProxy::start_on(elsewhere, pg_addr()).expect("a proxy");
    let via = at(db.url(), "127.0.0.2", pg.port());

    let e = PgConnection::connect(&with_tls(&via, "verify-full", &tls.ca))
        .await
        .expect_err("the name does not match");
    assert_eq!(fault::database(&e), Fault::Configuration, "{e}");
    let connection = PgConnection::connect(&with_tls(&via, "verify-ca", &tls.ca))
        .await
        .expect("verify-ca does not check the name");
    connection.close().await.expect("closed");

    let broker = SocketAddr::from(([127, 0, 0, 1], AMQPS_PORT));
    let rabbit = TcpProxy::start_on(elsewhere, broker).expect("a proxy");
    let settings = amqps_settings("127.0.0.2", rabbit.port(), &tls.ca);
    let e = amqp::connect(&settings)
        .await
        .expect_err("the name does not match");
    assert_eq!(fault::broker(&e), Fault::Configuration, "{e}");
    db.drop_database().await;
}

/// `amqps://` to the plain broker, and `sslmode=require` to a PostgreSQL
/// that will not do TLS (its Unix socket never does) or to a port that is
/// not PostgreSQL at all.
#[tokio::test]
async fn a_server_that_does_not_speak_tls_is_a_configuration_error() {
    let Some(tls) = listeners().await else { return };
    let plain = url::Url::parse(&amqp_url()).expect("a URL");
    let settings = amqps_settings(
        plain.host_str().expect("a host"),
        plain.port().unwrap_or(5672),
        &tls.ca,
    );
    let e = tokio::time::timeout(PROMPTLY, amqp::connect(&settings))
        .await
        .expect("said at once")
        .expect_err("not TLS");
    assert_eq!(fault::broker(&e), Fault::Configuration, "{e}");

    let socket_dir = "/var/run/postgresql";
    if Path::new(socket_dir).exists() {
        let url =
            format!("postgres://postgres@localhost/postgres?host={socket_dir}&sslmode=require");
        let e = PgConnection::connect(&url)
            .await
            .expect_err("no TLS on a Unix socket");
        assert_eq!(fault::database(&e), Fault::Configuration, "{e}");
        assert!(e.to_string().contains("TLS"), "{e}");
    }
    let url = format!(
        "postgres://postgres@{}:{}/postgres?sslmode=require",
        plain.host_str().expect("a host"),
        plain.port().unwrap_or(5672)
    );
    let e = tokio::time::timeout(PROMPTLY, PgConnection::connect(&url))
        .await
        .expect("said at once")
        .expect_err("not PostgreSQL");
    assert_eq!(fault::database(&e), Fault::Configuration, "{e}");
}

/// What `dynzero <args>` said and its exit status, with these overrides.
async fn dynzero_exits(args: &[&str], env: &[(&str, String)]) -> (Option<i32>, String) {
    let settings = test_settings(
        "postgres://postgres@127.0.0.1:5432/dynzero_test_unused",
        &amqp_url(),
    );
    let mut command = dynzero_command(&settings);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let out = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("dynzero ends by itself within 30 s")
        .expect("dynzero runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), stderr + &stdout)
}

fn one_clear_line(code: Option<i32>, output: &str, what: &str) {
    assert_eq!(code, Some(2), "{what}: {output}");
    assert_eq!(
        output.trim().lines().count(),
        1,
        "{what}, one line: {output}"
    );
    assert!(output.contains("certificate"), "{what}: {output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynzero_stops_with_exit_2_and_one_line_for_a_certificate_that_does_not_verify() {
    let Some(tls) = listeners().await else { return };
    let db = fresh_database().await;
    let bad_database = with_tls(db.url(), "verify-full", &tls.other_ca);
    let good_database = with_tls(db.url(), "verify-full", &tls.ca);
    let amqps = format!("amqps://guest:guest@127.0.0.1:{AMQPS_PORT}/%2f");
    let other_ca = tls.other_ca.display().to_string();

    let (code, output) = dynzero_exits(
        &["migrate"],
        &[("DYNZERO__DATABASE__URL", bad_database.clone())],
    )
    .await;
    one_clear_line(
        code,
        &output,
        "migrate, database signed by another authority",
    );
    assert!(output.contains("sslrootcert"), "{output}");

    let (code, output) = dynzero_exits(&["run"], &[("DYNZERO__DATABASE__URL", bad_database)]).await;
    one_clear_line(code, &output, "run, database signed by another authority");

    let (code, output) = dynzero_exits(
        &["run"],
        &[
            ("DYNZERO__DATABASE__URL", good_database.clone()),
            ("DYNZERO__AMQP__URLS", amqps.clone()),
            ("DYNZERO__AMQP__CA_FILE", other_ca),
        ],
    )
    .await;
    one_clear_line(code, &output, "run, broker signed by another authority");
    assert!(output.contains("amqp.ca_file"), "{output}");

    // And with the right authority for both, `migrate` works over TLS.
    let (code, output) =
        dynzero_exits(&["migrate"], &[("DYNZERO__DATABASE__URL", good_database)]).await;
    assert_eq!(code, Some(0), "{output}");
    db.drop_database().await;
}

#[tokio::test]
async fn check_config_shows_tls_settings_without_secrets() {
    let (code, output) = dynzero_exits(
        &["check-config"],
        &[
            (
                "DYNZERO__DATABASE__URL",
                "postgres://hub:pg-s3cret@db.example:5432/dynzero?sslmode=verify-full&sslrootcert=/etc/dynzero/ca.pem"
                    .to_owned(),
            ),
            (
                "DYNZERO__AMQP__URLS",
                "amqps://hub:mq-s3cret@mq.example:5671/%2f".to_owned(),
            ),
            ("DYNZERO__AMQP__CA_FILE", "/etc/dynzero/ca.pem".to_owned()),
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{output}");
    assert!(!output.contains("s3cret"), "{output}");
    assert!(output.contains("sslmode=verify-full"), "{output}");
    assert!(output.contains("amqps://hub:***@mq.example"), "{output}");
    assert!(output.contains("/etc/dynzero/ca.pem"), "{output}");
}
