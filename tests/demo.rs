//! `dynzero demo`, as the README runs it, on a database and exchanges of the
//! test's own.

use dynzero_tests::hub::{dynzero_command, test_settings};
use dynzero_tests::{amqp_url, fresh_database};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_to_completion_and_its_board_shows_zero_employment_households_and_alerts() {
    let db = fresh_database().await;
    // The demo creates its database when missing: name one that does not exist yet.
    let url = format!("{}_demo", db.url());
    let settings = test_settings(&url, &amqp_url());
    let output = tokio::time::timeout(
        Duration::from_secs(180),
        dynzero_command(&settings).arg("demo").output(),
    )
    .await
    .expect("the demo finishes within three minutes")
    .expect("the demo runs");
    let board = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(board.contains("区县 210302"), "a district line:\n{board}");
    assert!(board.contains("街道 210302001"), "a street line:\n{board}");
    assert!(
        board.contains("社区 210302001001"),
        "a community line:\n{board}"
    );
    let zero_lines = board
        .lines()
        .filter(|l| l.trim_start().starts_with("- HH"))
        .count();
    assert!(
        zero_lines > 0,
        "open zero-employment households listed:\n{board}"
    );
    for kind in [
        "zero_employment_new",
        "layoff_early_warning",
        "layoff_unreported",
        "job_match",
    ] {
        assert!(board.contains(kind), "{kind} on the board:\n{board}");
    }
    for reason in [
        "malformed",
        "unknown_type",
        "schema_invalid",
        "invalid_identifier",
    ] {
        assert!(
            board.contains(&format!("{reason}:")),
            "{reason} among the rejections:\n{board}"
        );
    }
}
