//! The test support itself, against the real servers: if these fail, every
//! end-to-end test's verdict is suspect.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dynzero_tests::{
    TEST_DATABASE_PREFIX, TcpProxy, TestBroker, amqp_addr, amqp_url, amqp_url_via, delete_exchange,
    eventually, fresh_database, pg_addr, unique_name,
};
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, ExchangeKind};
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Row};
use tokio::time::timeout;

/// A failure through a cut proxy must come quickly: a hang would make fault
/// tests wait for client timeouts instead of the fault.
const PROMPTLY: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(10);

async fn select_one(conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
    sqlx::query("SELECT 1").fetch_one(conn).await?.try_get(0)
}

// Multi-threaded like the services: the proxy's connection tasks may run
// while the test thread cuts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_cut_breaks_postgres_connections_and_restore_lets_new_ones_in() {
    let db = fresh_database().await;
    let proxy = TcpProxy::start(pg_addr()).expect("proxy starts");
    let via_proxy = db.url_via(proxy.port());
    assert!(via_proxy.contains(&format!("127.0.0.1:{}", proxy.port())));
    assert!(via_proxy.ends_with(db.name()));

    let mut conn = PgConnection::connect(&via_proxy)
        .await
        .expect("connects through proxy");
    assert_eq!(
        select_one(&mut conn).await.expect("SELECT 1 through proxy"),
        1
    );
    assert_eq!(proxy.active_connections(), 1);

    proxy.cut();
    assert!(proxy.is_cut());
    let after_cut = timeout(PROMPTLY, select_one(&mut conn))
        .await
        .expect("a query on a cut connection fails promptly instead of hanging");
    assert!(
        after_cut.is_err(),
        "query through a cut proxy succeeded: {after_cut:?}"
    );
    let new_conn = timeout(PROMPTLY, PgConnection::connect(&via_proxy))
        .await
        .expect("connecting through a cut proxy fails promptly");
    assert!(new_conn.is_err(), "connected through a cut proxy");
    eventually(WAIT, "cut connections closed", || async {
        (proxy.active_connections() == 0).then_some(())
    })
    .await;

    proxy.restore();
    let mut conn = PgConnection::connect(&via_proxy)
        .await
        .expect("connects again after restore, on the same port");
    assert_eq!(
        select_one(&mut conn).await.expect("SELECT 1 after restore"),
        1
    );
    conn.close().await.expect("clean close");
    db.drop_database().await;
}

#[tokio::test]
async fn proxy_cut_breaks_rabbitmq_connections_and_restore_lets_new_ones_in() {
    let proxy = TcpProxy::start(amqp_addr()).expect("proxy starts");
    let via_proxy = amqp_url_via(proxy.port());
    let broker = TestBroker::connect_to(&via_proxy).await;
    assert!(broker.connection().status().connected());

    proxy.cut();
    eventually(
        WAIT,
        "AMQP connection through cut proxy noticed as broken",
        || async { (!broker.connection().status().connected()).then_some(()) },
    )
    .await;
    let refused = timeout(
        PROMPTLY,
        lapin::Connection::connect(&via_proxy, lapin::ConnectionProperties::default()),
    )
    .await
    .expect("connecting through a cut proxy fails promptly");
    assert!(
        refused.is_err(),
        "connected to RabbitMQ through a cut proxy"
    );

    proxy.restore();
    let broker = TestBroker::connect_to(&via_proxy).await;
    let exchange = broker.declare_exchange("proxy", ExchangeKind::Topic).await;
    delete_exchange(broker.channel(), &exchange).await;
    broker.close().await;
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_port_and_connections() {
    let db = fresh_database().await;
    let proxy = TcpProxy::start(pg_addr()).expect("proxy starts");
    let via_proxy = db.url_via(proxy.port());
    let mut conn = PgConnection::connect(&via_proxy)
        .await
        .expect("connects through proxy");
    drop(proxy);
    let after_drop = timeout(PROMPTLY, select_one(&mut conn))
        .await
        .expect("a query after the proxy is dropped fails promptly");
    assert!(
        after_drop.is_err(),
        "query through a dropped proxy succeeded"
    );
    // The accept loop is aborted, not awaited; the port closes once the
    // runtime has dropped the task.
    eventually(WAIT, "proxy port closed", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", conn_port(&via_proxy)))
            .await
            .is_err()
            .then_some(())
    })
    .await;
    db.drop_database().await;
}

fn conn_port(url: &str) -> u16 {
    url::Url::parse(url).unwrap().port().unwrap()
}

#[tokio::test]
async fn fresh_databases_are_distinct_empty_and_reachable() {
    let first = fresh_database().await;
    let second = fresh_database().await;
    assert_ne!(first.name(), second.name());
    for db in [&first, &second] {
        assert!(db.name().starts_with(TEST_DATABASE_PREFIX), "{}", db.name());
        assert!(
            db.url().ends_with(&format!("/{}", db.name())),
            "{}",
            db.url()
        );
    }

    let first_pool = first.pool().await;
    sqlx::query("CREATE TABLE only_in_first (id int)")
        .execute(&first_pool)
        .await
        .expect("create table");
    let current: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&first_pool)
        .await
        .expect("current_database");
    assert_eq!(current, first.name());

    let second_pool = second.pool().await;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&second_pool)
    .await
    .expect("count tables");
    assert_eq!(tables, 0, "a fresh database has no tables");

    first_pool.close().await;
    second_pool.close().await;
    let name = first.name().to_owned();
    first.drop_database().await;
    second.drop_database().await;
    let mut admin = PgConnection::connect(&dynzero_tests::pg_server_url())
        .await
        .expect("admin connection");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .expect("look up database");
    assert_eq!(left, 0, "drop_database removed {name}");
}

#[test]
fn unique_names_are_prefixed_and_distinct() {
    let a = unique_name("households");
    let b = unique_name("households");
    assert!(a.starts_with("t.households."), "{a}");
    assert_ne!(a, b);
}

#[test]
fn amqp_url_via_changes_only_host_and_port() {
    let via = amqp_url_via(40123);
    let direct = url::Url::parse(&amqp_url()).unwrap();
    let via = url::Url::parse(&via).unwrap();
    assert_eq!(via.host_str(), Some("127.0.0.1"));
    assert_eq!(via.port(), Some(40123));
    assert_eq!(via.username(), direct.username());
    assert_eq!(via.password(), direct.password());
    assert_eq!(via.path(), direct.path());
}

#[tokio::test]
async fn eventually_returns_once_the_condition_holds() {
    let calls = Arc::new(AtomicU32::new(0));
    let value = eventually(WAIT, "third call", || {
        let calls = calls.clone();
        async move {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            (n >= 3).then_some(n)
        }
    })
    .await;
    assert_eq!(value, 3);
}

#[tokio::test]
#[should_panic(expected = "waiting for: something that never happens")]
async fn eventually_panics_with_what_after_the_deadline() {
    eventually(
        Duration::from_millis(100),
        "something that never happens",
        || async { None::<()> },
    )
    .await;
}

#[tokio::test]
#[should_panic(expected = "waiting for: an attempt that hangs")]
async fn eventually_bounds_an_attempt_that_hangs() {
    eventually(Duration::from_millis(100), "an attempt that hangs", || {
        std::future::pending::<Option<()>>()
    })
    .await;
}

#[tokio::test]
async fn drain_collects_what_the_binding_matches_in_order() {
    let broker = TestBroker::connect().await;
    let exchange = broker
        .declare_exchange("selftest", ExchangeKind::Topic)
        .await;
    let queue = broker.capture(&exchange, "household.#").await;
    assert!(queue.starts_with("t.capture."), "{queue}");

    for (key, body) in [
        ("household.zero", "one"),
        ("household.state", "two"),
        ("household.zero", "three"),
    ] {
        broker
            .publish(&exchange, key, body.as_bytes(), BasicProperties::default())
            .await;
    }
    // Not matched by the binding: published without `mandatory`, since
    // `publish` rightly refuses an unroutable message.
    broker
        .channel()
        .basic_publish(
            exchange.as_str().into(),
            "alert.raised".into(),
            BasicPublishOptions::default(),
            b"not captured",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");

    let first = broker.drain(&queue, |got| !got.is_empty(), WAIT).await;
    assert_eq!(bodies(&first), ["one"]);
    let rest = broker.drain(&queue, |got| got.len() >= 2, WAIT).await;
    assert_eq!(bodies(&rest), ["two", "three"]);
    assert_eq!(rest[0].routing_key.as_str(), "household.state");
    let nothing = broker
        .drain(&queue, |_| false, Duration::from_millis(200))
        .await;
    assert!(nothing.is_empty(), "unexpected: {:?}", bodies(&nothing));

    delete_exchange(broker.channel(), &exchange).await;
    broker.close().await;
}

#[tokio::test]
#[should_panic(expected = "was unroutable")]
async fn publish_panics_on_an_unroutable_message() {
    let broker = TestBroker::connect().await;
    // The default exchange routes by queue name, and this queue does not
    // exist; nothing is left behind when the test panics.
    broker
        .publish(
            "",
            &unique_name("nobody"),
            b"lost",
            BasicProperties::default(),
        )
        .await;
}

fn bodies(deliveries: &[lapin::message::Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| String::from_utf8_lossy(&d.data).into_owned())
        .collect()
}
