//! `dynzero rejected list|show|replay` against a hub that rejected real
//! messages: the table and the JSON list, the detail and body, a replay by
//! id and by reason republishing the original bytes to the inbound exchange
//! and marking them replayed, and the exit statuses.

use dynzero_tests::eventually;
use dynzero_tests::hub::{Fixture, dynzero_command};
use std::time::Duration;

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn rejected(fixture: &Fixture, args: &[&str]) -> Ran {
    let out = dynzero_command(&fixture.settings)
        .arg("rejected")
        .args(args)
        .output()
        .await
        .expect("dynzero runs");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const UNKNOWN: &[u8] = br#"{"specversion":"1.0","id":"r-1","source":"test/rejected","type":"com.example.nothing","time":"2026-11-28T10:00:00+08:00","datacontenttype":"application/json","data":{"a":1}}"#;
const MALFORMED: &[u8] = b"{\"specversion\": \"1.0\", not json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_are_listed_shown_and_replayed_from_the_command_line() {
    let fixture = Fixture::new().await;
    let hub = fixture.start().await;
    fixture
        .publish(&[
            ("household.registered".to_string(), MALFORMED.to_vec()),
            ("com.example.nothing".to_string(), UNKNOWN.to_vec()),
        ])
        .await;
    let pool = fixture.db.pool().await;
    eventually(
        Duration::from_secs(60),
        "both rejected and recorded",
        || async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM rejection")
                .fetch_one(&pool)
                .await
                .ok()?;
            (n == 2).then_some(())
        },
    )
    .await;
    // Stopped, so a replay is not rejected again while the test looks.
    hub.stop().await;
    let (malformed, unknown_reason): (i64, String) = (
        sqlx::query_scalar("SELECT seq FROM rejection WHERE reason = 'malformed'")
            .fetch_one(&pool)
            .await
            .expect("the malformed message's rejection"),
        sqlx::query_scalar("SELECT reason FROM rejection WHERE source = 'test/rejected'")
            .fetch_one(&pool)
            .await
            .expect("the unknown type's rejection"),
    );

    let list = rejected(&fixture, &["list"]).await;
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two rows:\n{}", list.stdout);
    assert!(lines[0].contains("reason") && lines[0].contains("source"));
    assert!(list.stdout.contains("malformed"), "{}", list.stdout);
    assert!(list.stdout.contains("test/rejected"), "{}", list.stdout);
    assert!(
        list.stdout.contains("com.example.nothing"),
        "{}",
        list.stdout
    );

    let json = rejected(&fixture, &["list", "--json", "--reason", "malformed"]).await;
    assert_eq!(json.code, Some(0), "{}", json.stderr);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["id"], malformed);
    assert_eq!(rows[0]["replayed_at"], serde_json::Value::Null);
    let future = rejected(&fixture, &["list", "--since", "2999-01-01"]).await;
    assert_eq!(future.stdout.lines().count(), 1, "{}", future.stdout);

    let show = rejected(&fixture, &["show", &malformed.to_string()]).await;
    assert_eq!(show.code, Some(0), "{}", show.stderr);
    assert!(
        show.stdout.contains("reason:       malformed"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout
            .contains(std::str::from_utf8(MALFORMED).unwrap()),
        "the body: {}",
        show.stdout
    );
    let missing = rejected(&fixture, &["show", "999999"]).await;
    assert_eq!(missing.code, Some(1), "{}", missing.stderr);
    assert!(
        missing.stderr.contains("no rejection 999999"),
        "{}",
        missing.stderr
    );

    // Replays land on the inbound exchange, byte for byte.
    let inbound = fixture
        .broker
        .capture(&fixture.settings.amqp.inbound_exchange, "#")
        .await;
    let one = rejected(&fixture, &["replay", &malformed.to_string()]).await;
    assert_eq!(one.code, Some(0), "{}", one.stderr);
    assert!(
        one.stdout.contains(&format!("replayed {malformed}")),
        "{}",
        one.stdout
    );
    let got = fixture
        .broker
        .drain(&inbound, |d| !d.is_empty(), Duration::from_secs(20))
        .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, MALFORMED);
    assert_eq!(got[0].routing_key.as_str(), "household.registered");
    assert_eq!(
        got[0]
            .properties
            .content_type()
            .as_ref()
            .map(|c| c.as_str()),
        Some("application/cloudevents+json")
    );
    let replayed: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT replayed_at FROM rejection WHERE seq = $1")
            .bind(malformed)
            .fetch_one(&pool)
            .await
            .expect("the row");
    assert!(replayed.is_some(), "marked replayed");

    let bulk = rejected(
        &fixture,
        &[
            "replay",
            "--reason",
            &unknown_reason,
            "--since",
            "2000-01-01",
        ],
    )
    .await;
    assert_eq!(bulk.code, Some(0), "{}", bulk.stderr);
    assert!(bulk.stdout.contains("replayed 1 of 1"), "{}", bulk.stdout);
    let got = fixture
        .broker
        .drain(&inbound, |d| !d.is_empty(), Duration::from_secs(20))
        .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, UNKNOWN);
    // Already replayed: nothing matches unless asked again.
    let none = rejected(&fixture, &["replay", "--reason", &unknown_reason]).await;
    assert_eq!(none.code, Some(1), "{}", none.stdout);
    assert!(
        none.stderr.contains("no rejection matched"),
        "{}",
        none.stderr
    );
    let again = rejected(
        &fixture,
        &["replay", "--reason", &unknown_reason, "--again"],
    )
    .await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(again.stdout.contains("replayed 1 of 1"), "{}", again.stdout);

    for bad in [
        &["replay"][..],
        &["replay", "--reason", "no_such_reason"],
        &["replay", "7", "--reason", "malformed"],
        &["list", "--since", "yesterday"],
    ] {
        let ran = rejected(&fixture, bad).await;
        assert_eq!(ran.code, Some(2), "{bad:?}: {}", ran.stderr);
    }
    pool.close().await;
}

/// A hub that dies after recording a rejection but before acking it gets
/// the message again, redelivered: it goes to the rejected exchange again
/// (outputs are at least once) but is recorded once. A first delivery of
/// the same bytes, or a redelivery under another message id, is a rejection
/// of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_rejection_is_recorded_once() {
    let fixture = Fixture::new().await;
    let pool = fixture.db.pool().await;
    let rejected_wire = fixture
        .broker
        .capture(&fixture.settings.amqp.rejected_exchange, "#")
        .await;
    let publish = |message_id: &'static str| {
        fixture.broker.publish(
            &fixture.settings.amqp.inbound_exchange,
            "household.registered",
            MALFORMED,
            lapin::BasicProperties::default()
                .with_content_type("application/cloudevents+json".into())
                .with_message_id(message_id.into())
                .with_delivery_mode(2),
        )
    };
    let recorded = |message_id: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rejection WHERE message_id = $1")
                .bind(message_id)
                .fetch_one(&pool)
                .await
                .expect("counting rejections")
        }
    };

    // The first life: m-1 rejected, recorded and acked.
    let hub = fixture.start().await;
    publish("m-1").await;
    eventually(Duration::from_secs(60), "m-1 recorded", || async {
        (recorded("m-1").await == 1).then_some(())
    })
    .await;
    hub.stop().await;

    // What a hub that died between record and ack leaves behind: m-1 again,
    // redelivered; and m-2, the same bytes under another id, redelivered.
    publish("m-1").await;
    publish("m-2").await;
    let taker = fixture.broker.connection().create_channel().await.unwrap();
    for _ in 0..2 {
        let got = taker
            .basic_get(
                fixture.settings.amqp.queue.as_str().into(),
                lapin::options::BasicGetOptions::default(),
            )
            .await
            .expect("basic.get");
        assert!(got.is_some(), "both messages are on the hub's queue");
    }
    // Closing the channel hands both back unacknowledged.
    taker.close(200, "died".into()).await.unwrap();
    // And a fresh publish of m-1's bytes and id: a first delivery.
    publish("m-1").await;

    let hub = fixture.start().await;
    eventually(
        Duration::from_secs(60),
        "three rejections settled",
        || async { (hub.hub.metrics.rejected_total() == 3).then_some(()) },
    )
    .await;
    let redeliveries = hub.hub.metrics.redeliveries_count();
    // A graceful stop finishes what is settling: records and acks.
    hub.stop().await;
    assert_eq!(
        redeliveries, 2,
        "the two taken messages came back redelivered"
    );
    assert_eq!(
        recorded("m-1").await,
        2,
        "m-1: the first life's and the fresh publish's"
    );
    assert_eq!(recorded("m-2").await, 1, "m-2: its own rejection");
    let wire = fixture
        .broker
        .drain(&rejected_wire, |d| d.len() >= 4, Duration::from_secs(20))
        .await;
    assert_eq!(
        wire.len(),
        4,
        "every delivery went to the rejected exchange"
    );
}
