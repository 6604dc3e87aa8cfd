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
