//! What happens when a broker node dies: a simulated city goes through a hub
//! connected to a three-node RabbitMQ cluster on this machine
//! (`deploy/local-cluster.sh`), the node leading the hub's quorum queue is
//! killed (`kill -9`) mid-run and brought back, and the outcome is compared
//! with a fault-free reference run of the same city.
//!
//! CI runs a small city. The recorded run (RELIABILITY.md) is
//! `tests/faultruns/failover.sh`, about 20 k messages.

use dynzero_tests::faultrun::{self, City, Deployment, Differences, size};
use std::process::Command;
use std::time::{Duration, Instant};

fn cluster(args: &[&str], queue: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local-cluster.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(args)
        .env("DZ_CLUSTER_QUEUE", queue)
        .output()
        .expect("running deploy/local-cluster.sh");
    assert!(
        out.status.success(),
        "local-cluster.sh {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_node_leading_the_hubs_queue_dies_mid_run_and_nothing_is_lost_or_rejected() {
    let city = City {
        households: size("DYNZERO_FAILOVER_HOUSEHOLDS", 300),
        events: size("DYNZERO_FAILOVER_EVENTS", 1200),
        invalid: size("DYNZERO_FAILOVER_INVALID", 8),
        seed: 20261202,
    };
    cluster(&["start"], "");
    let urls: Vec<String> = cluster(&["urls"], "").lines().map(str::to_owned).collect();
    assert_eq!(urls.len(), 3, "three nodes: {urls:?}");

    let (reference, reference_wire, reference_took) = faultrun::reference(city).await;

    let mut run = Deployment::new(&urls).await;
    let queue = run.settings.amqp.queue.clone();
    let leader = cluster(&["leader"], &queue);
    let n = leader
        .strip_prefix("dz")
        .and_then(|rest| rest.split('@').next())
        .unwrap_or_else(|| panic!("no leader for {queue}: {leader:?}"))
        .to_owned();
    // The whole city waits in the queue first, so the kill lands mid-run
    // whatever the machine's speed.
    let published = run.publish(city).await;
    let started = Instant::now();
    run.start_hub(0);
    run.until_processed(published / 3, Duration::from_secs(600))
        .await;
    cluster(&["kill", &n], &queue);
    let killed_at = run.processed().await.unwrap_or_default();
    let killed_after = started.elapsed();
    // The hub fails over to a surviving node, where a new leader was elected.
    run.until_processed(
        killed_at + (published - killed_at) / 3,
        Duration::from_secs(600),
    )
    .await;
    let recovered_after = started.elapsed();
    cluster(&["start"], &queue);
    let took = run.until_settled(Duration::from_secs(1800)).await;
    let outcome = run.outcome().await;
    let wire = run.wire(&outcome).await;
    let differences = Differences::between(&reference, &outcome, &wire);
    println!(
        "failover: {published} messages ({} households, {} alerts, {} rejections); \
         reference settled in {:.1} s; leader dz{n} killed after {killed_after:.1?} at \
         {killed_at} processed, progress again by {recovered_after:.1?}; settled in {:.1} s; \
         versions differing from the reference: {}; {}; repeated on the wire: {} alerts, \
         {} states (reference: {}, {}); differences: {differences}",
        outcome.households.len(),
        outcome.alerts.len(),
        outcome.rejections.len(),
        reference_took.as_secs_f64(),
        took.as_secs_f64(),
        faultrun::versions_differ(&reference, &outcome),
        faultrun::alert_differences(&reference, &outcome),
        wire.duplicate_alerts(),
        wire.duplicate_states(),
        reference_wire.duplicate_alerts(),
        reference_wire.duplicate_states(),
    );
    assert!(killed_at < published, "the kill must land mid-run");
    assert!(
        outcome
            .rejections
            .iter()
            .all(|(reason, _, _)| reason != "poison"),
        "a broker outage rejected a valid message"
    );
    assert_eq!(outcome.rejections.len(), city.invalid);
    assert!(differences.is_empty(), "{differences}");
    run.stop().await;
}
