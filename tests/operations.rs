//! `dynzero` as an operator meets it, run as a child process: configuration
//! refused at start, `check-config`, `migrate`, a missing database, the
//! readiness endpoint through a database outage, and SIGTERM with the
//! database or the broker away.

use dynzero_runtime::settings::CreateIfMissing;
use dynzero_tests::hub::{Fixture, dynzero_command, spawn_dynzero, test_settings};
use dynzero_tests::{
    TcpProxy, amqp_addr, amqp_url, amqp_url_via, eventually, fresh_database, pg_addr, pg_server_url,
};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `dynzero` with these environment overrides on top of a test's settings;
/// what it printed on stderr and its exit code, once it ended by itself.
async fn dynzero_exits(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let settings = test_settings(
        "postgres://postgres@127.0.0.1:5432/dynzero_test_unused",
        &amqp_url(),
    );
    let mut command = dynzero_command(&settings);
    command.args(args).envs(env.iter().copied());
    let out = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("dynzero ends by itself within 30 s")
        .expect("dynzero runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), stderr + &stdout)
}

#[tokio::test]
async fn an_unknown_key_from_the_environment_stops_the_start_naming_it() {
    let (code, output) = dynzero_exits(&["run"], &[("DYNZERO__AMQP__PREFETCHH", "3")]).await;
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("prefetchh"), "{output}");
    assert_eq!(output.trim().lines().count(), 1, "one clear line: {output}");
}

#[tokio::test]
async fn an_unknown_key_from_a_file_stops_the_start_naming_it() {
    let dir = std::env::temp_dir().join(dynzero_tests::unique_name("config"));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join("dynzero.toml");
    std::fs::write(&file, "[sweep]\ninterval_sec = 5\n").expect("writing the file");
    let path = file.to_string_lossy().into_owned();
    let (code, output) = dynzero_exits(&["--config", &path, "run"], &[]).await;
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("interval_sec"), "{output}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn bad_values_stop_the_start_with_a_clear_error() {
    let table = [
        ("DYNZERO__RULES__MINIMUM_WAGE_YUAN", "2100.005", "yuan"),
        ("DYNZERO__RULES__MINIMUM_WAGE_YUAN", "-5", "negative"),
        ("DYNZERO__RULES__FEMALE_CATEGORY", "F60", "F60"),
        (
            "DYNZERO__RULES__PLACEMENT_LIMIT_DAYS",
            "0",
            "placement_limit_days",
        ),
        ("DYNZERO__AMQP__PREFETCH", "0", "amqp.prefetch"),
        ("DYNZERO__AMQP__URLS", "http://broker", "amqp.urls"),
        ("DYNZERO__SHUTDOWN__GRACE_SECS", "0", "shutdown.grace_secs"),
        (
            "DYNZERO__RETENTION__BATCH_SIZE",
            "0",
            "retention.batch_size",
        ),
        ("DYNZERO__RETENTION__INBOX_DAYS", "-1", "inbox_days"),
        (
            "DYNZERO__DATABASE__MIGRATION_URL",
            "mysql://owner@db/dynzero",
            "database.migration_url",
        ),
        (
            "DYNZERO__API__DATABASE_URL",
            "http://db",
            "api.database_url",
        ),
        ("DYNZERO__LOG__FORMAT", "xml", "xml"),
        (
            "DYNZERO__DATABASE__CREATE_IF_MISSING",
            "sometimes",
            "sometimes",
        ),
    ];
    for (name, value, said) in table {
        let (code, output) = dynzero_exits(&["run"], &[(name, value)]).await;
        assert_eq!(code, Some(2), "{name}={value}: {output}");
        assert!(
            output.to_lowercase().contains(&said.to_lowercase()),
            "{name}={value} should say {said:?}: {output}"
        );
    }
}

#[tokio::test]
async fn check_config_prints_the_effective_configuration_without_secrets() {
    let (code, output) = dynzero_exits(
        &["check-config"],
        &[
            ("DYNZERO__AMQP__URLS", "amqp://hub:s3cret@10.0.0.1:5672/%2f"),
            ("DYNZERO__AMQP__PREFETCH", "7"),
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("prefetch = 7"), "{output}");
    assert!(output.contains("hub:***@10.0.0.1"), "{output}");
    assert!(!output.contains("s3cret"), "{output}");
}

/// `dynzero run` against a server without its database: created when the
/// configuration allows, else one clear line and exit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_creates_a_missing_local_database_or_says_it_may_not() {
    let name = format!("dynzero_test_{:016x}", rand::random::<u64>());
    let mut url = url::Url::parse(&pg_server_url()).expect("a URL");
    url.set_path(&format!("/{name}"));
    let mut settings = test_settings(url.as_str(), &amqp_url());

    settings.database.create_if_missing = CreateIfMissing::Never;
    let out = dynzero_command(&settings)
        .arg("run")
        .output()
        .await
        .expect("dynzero runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");

    settings.database.create_if_missing = CreateIfMissing::Local;
    let out = dynzero_command(&settings)
        .arg("migrate")
        .output()
        .await
        .expect("dynzero runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let admin = sqlx::PgPool::connect(url.as_str())
        .await
        .expect("the database was created");
    // A server without autovacuum (this machine's CI configuration has it
    // off) is named at start; one with it is not.
    let autovacuum: String = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(&admin)
        .await
        .expect("the setting");
    assert_eq!(
        stderr.contains("autovacuum off"),
        autovacuum == "off",
        "autovacuum {autovacuum}: {stderr}"
    );
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('inbox', 'notifier_delivery')",
    )
    .fetch_one(&admin)
    .await
    .expect("counting tables");
    assert_eq!(tables, 2, "both services' migrations ran");
    admin.close().await;
}

/// Status code of `GET path`, `None` if nothing answers.
async fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

fn free_address() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_database_is_away_and_200_again_after() {
    let db = fresh_database().await;
    let proxy = TcpProxy::start(pg_addr()).expect("a proxy in front of PostgreSQL");
    let mut settings = test_settings(&db.url_via(proxy.port()), &amqp_url());
    let addr = free_address();
    settings.metrics.listen = addr.clone();
    let mut child = spawn_dynzero(&settings);
    let status = |want: u16| {
        let addr = addr.clone();
        move || {
            let addr = addr.clone();
            async move { (http_status(&addr, "/readyz").await == Some(want)).then_some(()) }
        }
    };
    eventually(Duration::from_secs(60), "/readyz 200", status(200)).await;
    proxy.cut();
    eventually(Duration::from_secs(30), "/readyz 503", status(503)).await;
    assert_eq!(
        http_status(&addr, "/healthz").await,
        Some(200),
        "alive while the database is away"
    );
    proxy.restore();
    eventually(Duration::from_secs(30), "/readyz 200 again", status(200)).await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    db.drop_database().await;
}

/// SIGTERM to a `dynzero run` that has been working; it must exit with
/// status 0 within the grace period and say what the outbox holds.
async fn sigterm_exits_within_the_grace_period(mut child: tokio::process::Child, grace: Duration) {
    let pid = child.id().expect("the child is running");
    let sent = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .expect("running kill");
    assert!(sent.success(), "SIGTERM delivered");
    let sent_at = tokio::time::Instant::now();
    let status = tokio::time::timeout(grace * 3, child.wait())
        .await
        .expect("dynzero exits after SIGTERM")
        .expect("waiting for dynzero");
    let took = sent_at.elapsed();
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr).await;
    }
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        took <= grace + Duration::from_secs(1),
        "took {took:?}, grace {grace:?}: {stderr}"
    );
    assert!(stderr.contains("outbox_rows_left"), "{stderr}");
}

async fn spawn_with_stderr(
    settings: &dynzero_reconciler::settings::Settings,
) -> tokio::process::Child {
    dynzero_command(settings)
        .arg("run")
        // The stop line is `info` when the outbox is empty, `warn` otherwise.
        .env("RUST_LOG", "warn,dynzero_reconciler=info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting dynzero run")
}

/// Some messages through, so the process is past its start and working.
async fn feed_and_wait(fixture: &Fixture) {
    let messages = dynzero_tests::hub::scenario(71, 20, 40, dynzero_tests::hub::scenario_today());
    fixture.publish(&messages).await;
    let pool = fixture.db.pool().await;
    eventually(Duration::from_secs(60), "messages applied", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
            .fetch_one(&pool)
            .await
            .ok()?;
        (n > 0).then_some(())
    })
    .await;
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_the_database_away_exits_within_the_grace_period() {
    let db = fresh_database().await;
    let proxy = TcpProxy::start(pg_addr()).expect("a proxy in front of PostgreSQL");
    let mut settings = test_settings(&db.url_via(proxy.port()), &amqp_url());
    settings.shutdown.grace_secs = 3;
    let fixture = Fixture::with(db, settings.clone()).await;
    let child = spawn_with_stderr(&settings).await;
    feed_and_wait(&fixture).await;
    proxy.cut();
    // Work arriving while the database is away, for the consumer to hold.
    fixture
        .publish(&dynzero_tests::hub::scenario(
            72,
            5,
            5,
            dynzero_tests::hub::scenario_today(),
        ))
        .await;
    sigterm_exits_within_the_grace_period(child, settings.shutdown.grace()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_the_broker_away_exits_within_the_grace_period() {
    let db = fresh_database().await;
    let proxy = TcpProxy::start(amqp_addr()).expect("a proxy in front of RabbitMQ");
    let mut settings = test_settings(db.url(), &amqp_url_via(proxy.port()));
    settings.shutdown.grace_secs = 3;
    let fixture = Fixture::with(db, settings.clone()).await;
    let child = spawn_with_stderr(&settings).await;
    feed_and_wait(&fixture).await;
    proxy.cut();
    sigterm_exits_within_the_grace_period(child, settings.shutdown.grace()).await;
}
