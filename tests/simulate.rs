//! `dynzero simulate` publishes a seeded city that the hub accepts whole.

use dynzero_contracts::inbound;
use dynzero_reconciler::amqp;
use dynzero_reconciler::clock::{Clock, SystemClock};
use dynzero_tests::hub::{dynzero_command, test_settings};
use dynzero_tests::{TestBroker, amqp_url};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_publishes_every_message_of_the_city_and_every_one_is_valid() {
    // No database is touched: simulate only publishes.
    let settings = test_settings("postgres://unused", &amqp_url());
    let broker = TestBroker::connect().await;
    amqp::declare_topology(broker.channel(), &settings.amqp)
        .await
        .expect("declaring the topology");
    amqp::declare_rejected_queue(broker.connection(), &settings.amqp)
        .await
        .expect("declaring the rejected queue");
    let capture = broker.capture(&settings.amqp.inbound_exchange, "#").await;

    let output = tokio::time::timeout(
        Duration::from_secs(120),
        dynzero_command(&settings)
            .args([
                "simulate",
                "--households",
                "40",
                "--events",
                "80",
                "--seed",
                "3",
            ])
            .output(),
    )
    .await
    .expect("simulate finishes within two minutes")
    .expect("simulate runs");
    assert!(
        output.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    let published: usize = summary
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count in: {summary}"));
    assert!(published >= 120, "{summary}");
    assert!(summary.contains("household.registered: 40"), "{summary}");

    let got = broker
        .drain(&capture, |d| d.len() >= published, Duration::from_secs(60))
        .await;
    assert_eq!(got.len(), published, "every message confirmed and routed");
    // The real date: simulate stamps the city with today in Asia/Shanghai.
    let today = SystemClock.today();
    for d in &got {
        if let Err(rejection) = inbound::parse(&d.data, inbound::DEFAULT_MAX_BODY_BYTES, today) {
            panic!("a generated message is rejected: {rejection}");
        }
    }
}

/// `CityConfig::city` keeps the programme's proportions: the domain core,
/// folding the whole city, finds about 5 in 1,000 households
/// zero-employment (1 to 10 accepted), some of them on 低保.
#[test]
fn the_city_has_the_programmes_share_of_zero_employment_households() {
    let today = dynzero_tests::hub::scenario_today();
    let mut city =
        dynzero_simulator::City::new(dynzero_simulator::CityConfig::city(42, 1000, 3000, today));
    let mut messages = city.backfill();
    messages.extend(city.events());
    let bodies: Vec<&[u8]> = messages.iter().map(|m| m.body.as_slice()).collect();
    let rules = dynzero_reconciler::settings::RulesSettings::defaults()
        .rules()
        .expect("default rules");
    let states = dynzero_tests::hub::expected_states(&bodies, today, &rules);
    assert!(states.len() >= 1000, "{} households", states.len());
    let zero: Vec<_> = states
        .values()
        .filter(|s| s["status"] == "zero_employment")
        .collect();
    let per_thousand = zero.len() as f64 * 1000.0 / states.len() as f64;
    assert!(
        (1.0..=10.0).contains(&per_thousand),
        "{} of {} households zero-employment ({per_thousand:.1} per 1,000)",
        zero.len(),
        states.len()
    );
    assert!(
        zero.iter().any(|s| !s["dibao"].is_null()),
        "some zero-employment households are on 低保"
    );
}
