//! The binary's command line. (Its presence also makes `cargo test
//! --workspace` build the `dynzero` binary that the end-to-end tests in
//! `tests/` start as a child process.)

use std::process::Command;

fn dynzero() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dynzero"))
}

#[test]
fn help_lists_run_demo_and_bench() {
    let out = dynzero().arg("--help").output().expect("dynzero runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["run", "demo", "bench"] {
        assert!(help.contains(command), "{command} in:\n{help}");
    }
}

#[test]
fn a_missing_configuration_file_is_a_clear_error() {
    let out = dynzero()
        .args(["--config", "/nonexistent/dynzero.toml", "run"])
        .output()
        .expect("dynzero runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("configuration"), "{err}");
}

#[test]
fn a_malformed_environment_override_is_a_clear_error() {
    let out = dynzero()
        .arg("run")
        .env("DYNZERO__AMQP__PREFETCH", "many")
        .output()
        .expect("dynzero runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("prefetch"), "{err}");
}
