//! A smoke run of `dynzero bench`, so the benchmark keeps working: a few
//! thousand messages through every phase. The figures are not checked here
//! (BENCHMARKS.md has the full runs); that each phase measured something is.

use dynzero_tests::amqp_url;
use dynzero_tests::hub::{dynzero_command, test_settings};
use std::time::Duration;

/// The number after `label` in `text`, e.g. `… 1234 msg/s`.
fn figure(text: &str, label: &str) -> f64 {
    let rest = text
        .split(label)
        .nth(1)
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"));
    rest.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no figure after {label:?} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_every_phase_on_a_small_city() {
    // The bench makes (and drops) its own database on this server and its
    // own uniquely named exchanges and queues.
    let settings = test_settings("postgres://postgres@127.0.0.1:5432/postgres", &amqp_url());
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        dynzero_command(&settings)
            .args([
                "bench",
                "--households",
                "100",
                "--events",
                "300",
                "--latency-messages",
                "60",
                "--rate",
                "200",
                "--backlog",
                "2000",
            ])
            .output(),
    )
    .await
    .expect("the smoke bench finishes within five minutes")
    .expect("dynzero bench runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dynzero bench failed:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(figure(&text, "quorum queue): ") > 0.0, "broker limit");
    assert!(figure(&text, "outputs confirmed): ") > 0.0, "sustained");
    assert!(text.contains("x broker limit"));
    assert!(figure(&text, "latency at 200 msg/s (published at ") > 0.0);
    assert!(figure(&text, "msg/s), publish -> household state (") >= 50.0);
    assert!(text.contains("broker alone: p50"));
    // At the asked rate, at half and at four fifths of the sustained rate.
    assert_eq!(
        text.matches("), publish -> household state (").count(),
        3,
        "three latency runs:\n{text}"
    );
    assert!(
        figure(
            &text,
            "backlog drained by a separate dynzero process: 2000 messages in "
        ) > 0.0
    );
    let rss = figure(&text, "peak RSS with a backlog of 2000 messages: ");
    assert!(rss > 1.0 && rss < 1024.0, "peak RSS {rss} MiB");
    assert!(figure(&text, "households = ") > 0.0, "bytes per household");
}
