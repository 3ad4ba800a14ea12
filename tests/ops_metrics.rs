//! The rendered catalog passes `promtool check metrics` (Prometheus's own
//! linter for exposition text: naming, units, counter suffixes, help text).

use std::io::Write;
use std::process::{Command, Stdio};

use conmutador::ops::metrics::{
    CATALOG, Kind, Scope, build_recorder, initial_series, register_all,
};

/// Every catalog family as the gateway shows it from the first scrape
/// (`register_all` over a sample configuration), plus one recorded value
/// per family, with label values from the catalog's own vocabulary.
fn render_full_catalog() -> String {
    let scope = Scope {
        queues: ["pasaportes".to_string()].into(),
        plans: [("mexitel".to_string(), ["bienvenida".to_string()].into())].into(),
    };
    let recorder = build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        register_all(&scope);
        for m in CATALOG {
            let Some(labels) = initial_series(m, &scope).into_iter().next() else {
                continue;
            };
            let labels: Vec<(String, String)> = labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            match m.kind {
                Kind::Counter => metrics::counter!(m.name, &labels).increment(1),
                Kind::Gauge => metrics::gauge!(m.name, &labels).set(1.0),
                Kind::Histogram => metrics::histogram!(m.name, &labels).record(1.0),
            }
        }
    });
    handle.render()
}

#[test]
fn every_catalog_metric_renders_with_help_and_type() {
    let text = render_full_catalog();
    for m in CATALOG {
        assert!(
            text.contains(&format!("# HELP {} ", m.name)),
            "no HELP for {}",
            m.name
        );
        assert!(
            text.contains(&format!("# TYPE {} {}", m.name, m.kind.prometheus_type())),
            "wrong or missing TYPE for {}\n{text}",
            m.name
        );
    }
}

#[test]
fn promtool_check_metrics_passes() {
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!(
            "{promtool} is not runnable ({e}): apt-get install prometheus (scripts/test.sh does)"
        )
    });
    let text = render_full_catalog();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool output");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}\n---\n{text}"
    );
}

/// README.md carries the catalog as a table between two markers; run with
/// `CONMUTADOR_BLESS=1` to rewrite it after changing the catalog.
#[test]
fn docs_metrics_table_matches_the_catalog() {
    const BEGIN: &str = "<!-- metrics-table:begin -->\n";
    const END: &str = "<!-- metrics-table:end -->";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let doc = std::fs::read_to_string(path).expect("README.md");
    let start = doc.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = doc.find(END).expect("end marker");
    let want = conmutador::ops::metrics::markdown_table();
    if doc[start..end] != want {
        if std::env::var_os("CONMUTADOR_BLESS").is_some() {
            std::fs::write(path, format!("{}{want}{}", &doc[..start], &doc[end..]))
                .expect("bless docs");
        } else {
            panic!(
                "README.md metrics table is stale; rerun with CONMUTADOR_BLESS=1. Expected:\n{want}"
            );
        }
    }
}
