//! docker/ checked without a container engine: the Grafana dashboard and the
//! alert rules only use metrics from the catalog, every alert has unit tests
//! that make it fire and keep it quiet, the dashboard's queries are valid
//! PromQL, the compose wiring points at files that exist, and docker/lint.sh
//! (compose config, promtool config/rules/tests) passes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use conmutador::ops::metrics::lookup_series;
use conmutador::ops::promql::{grafana_variable_metric_names, is_prometheus_builtin, metric_names};
use serde_json::Value;

fn docker_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docker")
}

fn yaml(path: &str) -> Value {
    let text =
        std::fs::read_to_string(docker_dir().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(docker_dir().join("grafana/dashboards/conmutador.json"))
        .expect("dashboard");
    serde_json::from_str(&text).expect("dashboard is JSON")
}

/// (panel title, expression) of every query target, rows included.
fn dashboard_exprs(d: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((title.clone(), e.to_string()));
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    out
}

fn alert_rules() -> Vec<(String, String)> {
    let rules = yaml("prometheus/alerts.yml");
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .map(|r| {
            (
                r["alert"].as_str().expect("alert name").to_string(),
                r["expr"].as_str().expect("expr").to_string(),
            )
        })
        .collect()
}

fn unknown_names(names: &BTreeSet<String>) -> Vec<String> {
    names
        .iter()
        .filter(|n| !is_prometheus_builtin(n) && lookup_series(n).is_none())
        .cloned()
        .collect()
}

#[test]
fn dashboard_and_alerts_only_use_cataloged_metrics() {
    let d = dashboard();
    let mut used = BTreeSet::new();
    for (title, expr) in dashboard_exprs(&d) {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "panel {title:?} reads no metric: {expr}");
        let unknown = unknown_names(&names);
        assert!(
            unknown.is_empty(),
            "panel {title:?} uses unknown metrics {unknown:?}: {expr}"
        );
        used.extend(names);
    }
    for v in d["templating"]["list"].as_array().expect("templating") {
        let q = v["query"]["query"]
            .as_str()
            .or_else(|| v["query"].as_str())
            .expect("variable query");
        let unknown = unknown_names(&grafana_variable_metric_names(q));
        assert!(
            unknown.is_empty(),
            "variable {} uses unknown metrics {unknown:?}",
            v["name"]
        );
    }
    for (alert, expr) in alert_rules() {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{alert} reads no metric");
        let unknown = unknown_names(&names);
        assert!(
            unknown.is_empty(),
            "alert {alert} uses unknown metrics {unknown:?}: {expr}"
        );
    }
    // The views the issue asks for are all there.
    for needed in [
        "conmutador_calls_started_total",
        "conmutador_calls_active",
        "conmutador_queue_callers_waiting",
        "conmutador_queue_oldest_wait_seconds",
        "conmutador_queue_service_level_ratio",
        "conmutador_queue_abandon_ratio",
        "conmutador_queue_wait_prediction_error_seconds_bucket",
        "conmutador_operators",
        "conmutador_sip_messages_total",
        "conmutador_sip_overload_rejections_total",
        "conmutador_rtp_packets_total",
        "conmutador_rtp_packets_lost_total",
        "conmutador_media_send_jitter_seconds_bucket",
    ] {
        assert!(
            used.contains(needed),
            "dashboard has no panel reading {needed}"
        );
    }
}

#[test]
fn every_alert_has_unit_tests_that_fire_it_and_keep_it_quiet() {
    let alerts: BTreeSet<String> = alert_rules().into_iter().map(|(a, _)| a).collect();
    let required = [
        "ConmutadorDown",
        "ConmutadorSending503",
        "ConmutadorKernelDroppingPackets",
        "ConmutadorServiceLevelLow",
        "ConmutadorOldestWaitHigh",
        "ConmutadorAbandonRateHigh",
        "ConmutadorNoOperatorsInOfficeHours",
    ];
    for r in required {
        assert!(alerts.contains(r), "alert {r} missing from alerts.yml");
    }
    let tests = yaml("prometheus/alerts_test.yml");
    let (mut fires, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for t in tests["tests"].as_array().expect("tests") {
        for a in t["alert_rule_test"].as_array().into_iter().flatten() {
            let name = a["alertname"].as_str().expect("alertname").to_string();
            let expected = a["exp_alerts"].as_array().map_or(0, Vec::len);
            if expected > 0 {
                fires.insert(name)
            } else {
                quiet.insert(name)
            };
        }
    }
    for a in &alerts {
        assert!(fires.contains(a), "no unit test makes {a} fire");
        assert!(quiet.contains(a), "no unit test keeps {a} quiet");
    }
}

#[test]
fn compose_prometheus_grafana_and_dockerfile_are_wired_together() {
    let compose = yaml("compose.yaml");
    for (service, mounts) in [
        ("prometheus", vec!["./prometheus"]),
        (
            "grafana",
            vec!["./grafana/provisioning", "./grafana/dashboards"],
        ),
    ] {
        let volumes: Vec<&str> = compose["services"][service]["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for m in mounts {
            assert!(
                volumes.iter().any(|v| v.starts_with(&format!("{m}:"))),
                "{service} does not mount {m}"
            );
            assert!(docker_dir().join(m).is_dir(), "{m} does not exist");
        }
    }
    // Prometheus scrapes the port the image exposes for the ops listener.
    let prom = yaml("prometheus/prometheus.yml");
    let job = prom["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .iter()
        .find(|j| j["job_name"] == "conmutador")
        .expect("conmutador scrape job");
    let target = job["static_configs"][0]["targets"][0]
        .as_str()
        .expect("target");
    let (host, port) = target.split_once(':').expect("host:port");
    assert!(
        compose["services"][host].is_object(),
        "scrape target {host} is not a compose service"
    );
    let dockerfile = std::fs::read_to_string(docker_dir().join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains(&format!(" {port}/tcp")),
        "Dockerfile does not expose {port}/tcp"
    );
    assert!(
        dockerfile.contains("FROM rust:1.95-bookworm AS build")
            && dockerfile.contains("FROM debian:bookworm-slim")
    );
    // Every panel uses the provisioned datasource.
    let ds = yaml("grafana/provisioning/datasources/prometheus.yaml");
    let uid = ds["datasources"][0]["uid"]
        .as_str()
        .expect("datasource uid");
    fn check_ds(panels: &Value, uid: &str) {
        for p in panels.as_array().into_iter().flatten() {
            if p["type"] != "row" {
                assert_eq!(
                    p["datasource"]["uid"], uid,
                    "panel {} datasource",
                    p["title"]
                );
            }
            check_ds(&p["panels"], uid);
        }
    }
    check_ds(&dashboard()["panels"], uid);
    let provider = yaml("grafana/provisioning/dashboards/conmutador.yaml");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    let grafana_volumes = compose["services"]["grafana"]["volumes"]
        .as_array()
        .expect("volumes");
    assert!(
        grafana_volumes
            .iter()
            .any(|v| v.as_str() == Some(&format!("./grafana/dashboards:{path}:ro"))),
        "dashboards are not mounted where the provider reads them ({path})"
    );
}

/// Fails the test when `tool` is missing: a lint that cannot run is no pass.
fn require_tool(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is missing: apt-get install -y prometheus docker-compose (scripts/test.sh does)"
    );
}

#[test]
fn dashboard_queries_are_valid_promql() {
    require_tool("promtool");
    // Grafana variables become what they expand to; each query is then a
    // recording rule that promtool parses.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in dashboard_exprs(&dashboard()).into_iter().enumerate() {
        let e = expr
            .replace("$__rate_interval", "1m")
            .replace("$queue", ".*")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&e).expect("quote")
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dashboard_rules.yml");
    std::fs::write(&file, rules).expect("write rules");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn lint_script_passes() {
    require_tool("promtool");
    require_tool("docker-compose");
    let out = Command::new("bash")
        .arg(docker_dir().join("lint.sh"))
        .output()
        .expect("run lint.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("lint: all checks passed"), "{text}");
}

/// The demo stack's gateway has the repository's queues and operators:
/// without them its dashboard's queue and operator panels have nothing to
/// show and the office-hours alert has no queue to watch.
#[test]
fn docker_config_has_the_shipped_queues_and_operators() {
    let read = |p: &Path| -> toml::Table {
        toml::from_str(&std::fs::read_to_string(p).expect("config")).expect("config TOML")
    };
    let docker = read(&docker_dir().join("conmutador.toml"));
    let shipped = read(&docker_dir().join("../conmutador.toml"));
    for key in ["queues", "operators"] {
        assert!(
            shipped[key].as_array().is_some_and(|a| !a.is_empty()),
            "{key}"
        );
        assert_eq!(docker.get(key), shipped.get(key), "[[{key}]] differ");
    }
}
