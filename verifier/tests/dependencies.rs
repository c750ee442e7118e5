//! The verifier builds on the formats and hashing alone: none of the clients
//! the services need (Kafka, ClickHouse, HTTP, EVM, an async runtime, a
//! command-line parser) may enter its dependency tree, or a third party who only
//! wants to check a proof would have to build them all.

use std::process::Command;

const FORBIDDEN: &[&str] = &[
    "rdkafka",
    "clickhouse",
    "alloy",
    "axum",
    "hyper",
    "reqwest",
    "tokio",
    "clap",
    "tower",
];

#[test]
fn the_verifier_depends_on_no_client_of_the_services() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree", "-p", "verifier", "--edges", "normal", "--prefix", "none", "--format", "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"schemas"),
        "the tree lists the formats: {tree}"
    );
    for c in &crates {
        assert!(
            !FORBIDDEN
                .iter()
                .any(|f| c == f || c.starts_with(&format!("{f}-"))),
            "{c} is in the verifier's dependency tree:\n{tree}"
        );
    }
}
