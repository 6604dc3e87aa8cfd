//! The deciding crates stay pure: the domain and the planner depend on no
//! crate that does IO or speaks a wire format (clippy.toml beside each
//! refuses the clock and std's IO; this refuses the crates).

use std::path::Path;

/// The only crates the domain and the planner may depend on.
const ALLOWED: &[&str] = &["chrono", "thiserror", "dynzero-domain"];

/// The names in a manifest's `[dependencies]` table.
fn dependencies(manifest: &Path) -> Vec<String> {
    let text =
        std::fs::read_to_string(manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let mut names = Vec::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            names.push(name.to_string());
        }
    }
    names
}

#[test]
fn the_domain_and_the_planner_depend_on_nothing_that_does_io_or_serde() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for manifest in [here.join("Cargo.toml"), here.join("../domain/Cargo.toml")] {
        let deps = dependencies(&manifest);
        assert!(
            deps.contains(&"chrono".to_string()),
            "read {}",
            manifest.display()
        );
        for dep in deps {
            assert!(
                ALLOWED.contains(&dep.as_str()),
                "{} depends on {dep}: the deciding crates do no IO and no serde",
                manifest.display()
            );
        }
    }
}

#[test]
fn the_dependency_reader_sees_a_forbidden_crate() {
    let dir = std::env::temp_dir().join(format!("dynzero-boundaries-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("Cargo.toml");
    std::fs::write(
        &manifest,
        "[package]\nname = \"x\"\n\n[dependencies]\nchrono.workspace = true\nserde = \"1\"\n\n[dev-dependencies]\nproptest = \"1\"\n",
    )
    .unwrap();
    assert_eq!(dependencies(&manifest), vec!["chrono", "serde"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
