//! The one vocabulary of the metrics, checked against a live `/metrics`:
//! every family of the catalog is there, every label value seen is one the
//! catalog declares (`ops::metrics::Values`), and every series the shipped
//! dashboard and alert rules select exists. Reads the catalog, so families
//! other rooms add are covered without touching this file.

use std::collections::{BTreeMap, BTreeSet};

use conmutador::ops::metrics::{CATALOG, Kind, MetricDef, Values, lookup_series, sample_labels};
use conmutador::ops::promql::{is_prometheus_builtin, metric_names};
use serde_json::Value;

use super::repo;

/// One sample line: series name, labels, value.
pub type Sample = (String, BTreeMap<String, String>, String);

pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let rest = &line[name_end..];
            let labels: BTreeMap<String, String> = sample_labels(rest).into_iter().collect();
            let value = rest
                .rsplit_once(' ')
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            (line[..name_end].to_string(), labels, value)
        })
        .collect()
}

/// What the running gateway names: queues, plans and their nodes.
#[derive(Debug, Clone, Default)]
pub struct Configured {
    pub queues: BTreeSet<String>,
    pub plans: BTreeMap<String, BTreeSet<String>>,
}

impl Configured {
    /// The queues of a config file and the plans of a dialplan folder.
    pub fn read(config: &toml::Table, plan_dir: &std::path::Path) -> Configured {
        let queues = config
            .get("queues")
            .and_then(|q| q.as_array())
            .into_iter()
            .flatten()
            .filter_map(|q| q.get("name")?.as_str().map(String::from))
            .collect();
        let mut plans = BTreeMap::new();
        for entry in std::fs::read_dir(plan_dir).expect("plan folder") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let Ok(plan) = toml::from_str::<toml::Table>(&std::fs::read_to_string(&path).unwrap())
            else {
                continue;
            };
            let Some(name) = plan
                .get("plan")
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
            else {
                continue;
            };
            let nodes = plan
                .get("nodes")
                .and_then(|n| n.as_table())
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default();
            plans.insert(name.to_string(), nodes);
        }
        Configured { queues, plans }
    }

    /// The values a label may take, all of them.
    fn allowed(&self, values: Values, labels: &BTreeMap<String, String>) -> Vec<String> {
        match values {
            Values::Each(v) | Values::AnyOf(v) => v.iter().map(|s| s.to_string()).collect(),
            Values::Queue => self.queues.iter().cloned().collect(),
            Values::Plan => self.plans.keys().cloned().collect(),
            Values::Node => labels
                .get("plan")
                .and_then(|p| self.plans.get(p))
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
        }
    }
}

/// Every family of the catalog has a series, and each label of the
/// families named by `complete` has every value it declares with `Each`,
/// every configured queue and every plan node.
pub fn check_every_family_present(text: &str, cfg: &Configured) {
    let live = samples(text);
    for def in CATALOG {
        let mine: Vec<&Sample> = live
            .iter()
            .filter(|(n, _, _)| lookup_series(n).is_some_and(|d| d.name == def.name))
            .collect();
        assert!(
            !mine.is_empty(),
            "{} is in the catalog but has no series\n{text}",
            def.name
        );
        for (label, values) in def.labels.iter().zip(def.values) {
            let want: Vec<String> = match values {
                Values::Each(v) => v.iter().map(|s| s.to_string()).collect(),
                Values::Queue => cfg.queues.iter().cloned().collect(),
                Values::Plan => cfg.plans.keys().cloned().collect(),
                Values::AnyOf(_) | Values::Node => continue,
            };
            for v in want {
                assert!(
                    mine.iter().any(|(_, l, _)| l.get(*label) == Some(&v)),
                    "{}: no series with {label}=\"{v}\"",
                    def.name
                );
            }
        }
    }
}

/// Every sample is of a catalog family, with its labels, and every label
/// value is one the catalog declares for it.
pub fn check_label_values(text: &str, cfg: &Configured) {
    for (series, labels, value) in samples(text) {
        let def = lookup_series(&series)
            .unwrap_or_else(|| panic!("{series} is exported but not in the catalog"));
        assert!(
            value.parse::<f64>().is_ok() || value == "NaN",
            "{series}: value {value:?}"
        );
        for (k, v) in &labels {
            if def.kind == Kind::Histogram && k == "le" && series.ends_with("_bucket") {
                continue;
            }
            let i = def
                .labels
                .iter()
                .position(|l| l == k)
                .unwrap_or_else(|| panic!("{series} carries label {k}, not in the catalog"));
            let allowed = cfg.allowed(def.values[i], &labels);
            assert!(
                allowed.contains(v),
                "{series}{{{k}=\"{v}\"}}: the catalog allows {k} only {allowed:?}"
            );
        }
    }
}

/// One `name{label op "value", ...}` selector of a PromQL expression.
#[derive(Debug, Clone)]
pub struct Selector {
    pub name: String,
    pub matchers: Vec<(String, String, String)>,
}

/// The selectors of every metric an expression reads, with their matchers.
pub fn selectors(expr: &str) -> Vec<Selector> {
    let names = metric_names(expr);
    let mut out = Vec::new();
    let b = expr.as_bytes();
    for name in names {
        let mut from = 0;
        while let Some(pos) = expr[from..].find(name.as_str()) {
            let start = from + pos;
            let end = start + name.len();
            from = end;
            let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
            if (start > 0 && ident(b[start - 1])) || b.get(end).is_some_and(|c| ident(*c)) {
                continue;
            }
            let mut matchers = Vec::new();
            if b.get(end) == Some(&b'{') {
                let close = expr[end..].find('}').map_or(expr.len(), |c| end + c);
                let inner = &expr[end + 1..close];
                let mut rest = inner;
                while let Some(q1) = rest.find('"') {
                    let head = rest[..q1].trim_start_matches([',', ' ']);
                    let op_at = head.find(['=', '!']).unwrap_or(head.len());
                    let label = head[..op_at].trim().to_string();
                    let op = head[op_at..].trim().to_string();
                    let after = &rest[q1 + 1..];
                    let q2 = after.find('"').unwrap_or(after.len());
                    matchers.push((label, op, after[..q2].to_string()));
                    rest = after.get(q2 + 1..).unwrap_or("");
                }
            }
            out.push(Selector {
                name: name.clone(),
                matchers,
            });
        }
    }
    out
}

/// Label names in `by (...)`, `on (...)` and `without (...)` lists.
pub fn grouping_labels(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for kw in ["by", "on", "without", "ignoring"] {
        let mut from = 0;
        while let Some(pos) = expr[from..].find(kw) {
            let start = from + pos;
            from = start + kw.len();
            let before_ok = start == 0 || !expr.as_bytes()[start - 1].is_ascii_alphanumeric();
            let rest = expr[from..].trim_start();
            if !before_ok || !rest.starts_with('(') {
                continue;
            }
            let close = rest.find(')').unwrap_or(rest.len());
            out.extend(
                rest[1..close]
                    .split(',')
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty()),
            );
        }
    }
    out
}

/// (where, expression) for every query of the shipped dashboard and every
/// shipped alert rule.
pub fn dashboard_and_alert_exprs() -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((format!("panel {title:?}"), e.to_owned()));
                }
            }
            walk(&p["panels"], out);
        }
    }
    let d: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("docker/grafana/dashboards/conmutador.json"))
            .expect("dashboard"),
    )
    .expect("dashboard JSON");
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    let rules: Value = serde_norway::from_str(
        &std::fs::read_to_string(repo().join("docker/prometheus/alerts.yml")).expect("alerts"),
    )
    .expect("alerts YAML");
    for g in rules["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            out.push((
                format!("alert {}", r["alert"].as_str().unwrap_or("?")),
                r["expr"].as_str().expect("expr").to_owned(),
            ));
        }
    }
    out
}

/// Labels every series has once Prometheus stored it, or that histograms add.
const TARGET_LABELS: &[&str] = &["job", "instance", "le"];

/// The values a matcher names: the literal, or the alternatives of a plain
/// `a|b|c` regex; `None` for Grafana variables and real regexes.
fn matcher_values(op: &str, value: &str) -> Option<Vec<String>> {
    if value.contains('$') {
        return None;
    }
    match op {
        "=" | "!=" => Some(vec![value.to_string()]),
        _ if value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '|' || c == '-') =>
        {
            Some(value.split('|').map(String::from).collect())
        }
        _ => None,
    }
}

fn def_of(what: &str, name: &str) -> &'static MetricDef {
    lookup_series(name).unwrap_or_else(|| panic!("{what} reads {name}, not in the catalog"))
}

/// Every series the dashboard and the alert rules select exists in `text`
/// with the label values they name, every value they name is in the
/// catalog's vocabulary, and they group only by labels their metrics have.
pub fn check_dashboard_and_alerts(text: &str, cfg: &Configured) {
    let live = samples(text);
    for (what, expr) in dashboard_and_alert_exprs() {
        let mut names_labels: BTreeSet<String> =
            TARGET_LABELS.iter().map(|s| s.to_string()).collect();
        for sel in selectors(&expr) {
            if is_prometheus_builtin(&sel.name) {
                continue;
            }
            let def = def_of(&what, &sel.name);
            names_labels.extend(def.labels.iter().map(|s| s.to_string()));
            let mut wanted: Vec<(String, Vec<String>)> = Vec::new();
            for (label, op, value) in &sel.matchers {
                if TARGET_LABELS.contains(&label.as_str()) {
                    continue;
                }
                let i = def
                    .labels
                    .iter()
                    .position(|l| l == label)
                    .unwrap_or_else(|| {
                        panic!(
                            "{what} selects {} by {label}, which it does not have",
                            def.name
                        )
                    });
                let Some(values) = matcher_values(op, value) else {
                    continue;
                };
                let allowed = cfg.allowed(def.values[i], &BTreeMap::new());
                for v in &values {
                    assert!(
                        def.values[i] == Values::Node || allowed.contains(v),
                        "{what}: {}{{{label}{op}\"{value}\"}}: {v} is not one of {allowed:?}",
                        def.name
                    );
                }
                if op == "=" || op == "=~" {
                    wanted.push((label.clone(), values));
                }
            }
            assert!(
                live.iter().any(|(n, l, _)| {
                    n == &sel.name
                        && wanted
                            .iter()
                            .all(|(k, vs)| l.get(k).is_some_and(|v| vs.contains(v)))
                }),
                "{what} selects {sel:?}, which the live /metrics does not have"
            );
        }
        for label in grouping_labels(&expr) {
            assert!(
                names_labels.contains(&label),
                "{what} groups by {label}, which none of its metrics has: {expr}"
            );
        }
    }
}
