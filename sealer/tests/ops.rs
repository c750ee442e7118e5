//! The ops files: the alert rules pass `promtool check rules` and their own unit
//! tests, the local Prometheus config is valid, and the Grafana dashboard and the
//! rules only use metrics that the gateway, the sealer and the trail API export.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn promtool(args: &[&str], dir: &Path) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (Debian package prometheus, installed by deploy/local/up)");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
fn alert_rules_check_and_pass_their_unit_tests() {
    let dir = root().join("deploy/prod/prometheus");
    promtool(&["check", "rules", "alerts.yml"], &dir);
    promtool(&["test", "rules", "alerts_test.yml"], &dir);
}

#[test]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
fn the_local_prometheus_config_is_valid_and_loads_the_rules() {
    let dir = root().join("deploy/local/prometheus");
    promtool(&["check", "config", "prometheus.yml"], &dir);
    let config = std::fs::read_to_string(dir.join("prometheus.yml")).unwrap();
    for target in [
        "127.0.0.1:8080",
        "127.0.0.1:9464",
        "127.0.0.1:8081",
        "alerts.yml",
    ] {
        assert!(config.contains(target), "prometheus.yml lacks {target}");
    }
}

/// Every `sealtrail_…` name in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("sealtrail_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// Names the code registers: the string literals in the binaries' sources.
fn exported() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for dir in ["ingest/src", "sealer/src"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for quoted in text.split('"').skip(1).step_by(2) {
                    if quoted.starts_with("sealtrail_") && !quoted.contains(' ') {
                        names.insert(quoted.to_string());
                    }
                }
            }
        }
    }
    names
}

fn known(name: &str, exported: &BTreeSet<String>) -> bool {
    exported.contains(name)
        || ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| name.strip_suffix(s).is_some_and(|b| exported.contains(b)))
}

#[test]
fn the_dashboard_and_the_rules_use_only_exported_metrics() {
    let exported = exported();
    assert!(
        exported.contains("sealtrail_sealer_pending_epochs"),
        "{exported:?}"
    );
    let text = std::fs::read_to_string(root().join("deploy/prod/grafana/sealtrail.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut exprs = String::new();
    for p in panels {
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            let e = t["expr"].as_str().expect("expr");
            assert!(!e.trim().is_empty(), "empty query in {}", p["title"]);
            exprs.push_str(e);
            exprs.push('\n');
        }
    }
    let titles: Vec<String> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap_or("").to_lowercase())
        .collect();
    for wanted in [
        "throughput",
        "lag",
        "latency",
        "epoch size",
        "dead letters",
        "pending",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "no panel about {wanted}: {titles:?}"
        );
    }
    let rules = std::fs::read_to_string(root().join("deploy/prod/prometheus/alerts.yml")).unwrap();
    for (what, text) in [("dashboard", &exprs), ("alerts.yml", &rules)] {
        let unknown: Vec<String> = metric_names(text)
            .into_iter()
            .filter(|n| !known(n, &exported))
            .collect();
        assert!(
            unknown.is_empty(),
            "{what} uses metrics nothing exports: {unknown:?}"
        );
    }
}

#[test]
#[ignore = "needs the local stack (deploy/local/up); deploy/local/test runs it"]
fn the_production_manifests_hang_together() {
    let out = Command::new("python3")
        .arg(root().join("deploy/prod/check"))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "deploy/prod/check:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
