//! The real `conmutador run` binary's `/metrics` from its very first scrape:
//! every family of the catalog is there (counters at 0, queue and operator
//! gauges at their true values, one series per configured queue and
//! operator state), every label value is one the catalog declares, every
//! series the shipped dashboard and alert rules select exists, and a plan
//! added by a reload has its series at once.
//!
//! Everything is read from `ops::metrics::CATALOG`, so families added there
//! later are covered without touching this file. All traffic goes to
//! 127.0.0.1; the gateway is stopped by its own PID.

mod common;

use std::path::Path;
use std::time::Duration;

use common::vocabulary::{
    Configured, check_dashboard_and_alerts, check_every_family_present, check_label_values, samples,
};
use common::{Gw, eventually, http_request, repo, sipp};

fn shipped_config() -> toml::Table {
    toml::from_str(&std::fs::read_to_string(repo().join("conmutador.toml")).expect("config"))
        .expect("config TOML")
}

/// The value of the one sample of `name` with exactly these labels.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<String> {
    samples(text)
        .into_iter()
        .find(|(n, l, _)| {
            n == name
                && l.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
}

#[test]
fn every_family_is_there_from_the_first_scrape_in_one_vocabulary() {
    let cfg = shipped_config();
    let configured = Configured::read(&cfg, &repo().join("dialplans"));
    assert!(configured.queues.len() >= 2, "{configured:?}");
    let gw = Gw::start("");
    // The very first scrape, before any call.
    let first = gw.metrics();
    check_every_family_present(&first, &configured);
    check_label_values(&first, &configured);
    check_dashboard_and_alerts(&first, &configured);

    // True values, not just names: nobody is logged in yet, so each queue's
    // operators are all logged_out; nobody waits; no ratio is defined yet.
    let operators = cfg["operators"].as_array().expect("operators");
    for q in &configured.queues {
        let members = operators
            .iter()
            .filter(|o| {
                o["queues"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|m| m["name"].as_str() == Some(q))
            })
            .count();
        assert_eq!(
            value(
                &first,
                "conmutador_operators",
                &[("queue", q), ("state", "logged_out")]
            ),
            Some(members.to_string()),
            "{q}"
        );
        assert_eq!(
            value(
                &first,
                "conmutador_operators",
                &[("queue", q), ("state", "available")]
            ),
            Some("0".into())
        );
        assert_eq!(
            value(&first, "conmutador_queue_callers_waiting", &[("queue", q)]),
            Some("0".into())
        );
        assert_eq!(
            value(
                &first,
                "conmutador_queue_service_level_ratio",
                &[("queue", q)]
            ),
            Some("NaN".into())
        );
        assert_eq!(
            value(
                &first,
                "conmutador_queue_wait_alert_seconds",
                &[("queue", q)]
            ),
            Some("600".into()),
            "the default wait_alert"
        );
        assert_eq!(
            value(
                &first,
                "conmutador_queue_callers_total",
                &[("queue", q), ("outcome", "abandoned")]
            ),
            Some("0".into())
        );
    }
    // Whether a queue is open is what its plan says at this hour.
    let store = conmutador::dialplan::DialplanStore::open(
        &repo().join("dialplans"),
        &configured.queues.iter().cloned().collect::<Vec<_>>(),
    )
    .map(|(s, _)| s)
    .expect("shipped plans load");
    let open = conmutador::dialplan::open::open_queues(store.current().plans(), chrono::Utc::now());
    // After hours the shipped plan still takes consular emergencies.
    assert!(open.contains("proteccion"), "{open:?}");
    for q in &configured.queues {
        let want = if open.contains(q) { "1" } else { "0" };
        assert_eq!(
            value(&first, "conmutador_queue_open", &[("queue", q)]).as_deref(),
            Some(want),
            "{q}"
        );
    }
    assert_eq!(
        value(&first, "conmutador_calls_started_total", &[]),
        Some("0".into())
    );

    // After calls through the plan the code's own label values are still
    // the catalog's.
    let r = sipp(
        "uac_basic.xml",
        gw.udp,
        &["-m", "2", "-d", "1000", "-s", "8776394835"],
        Duration::from_secs(120),
    );
    assert!(r.ok, "sipp: {}\n{}", r.stdout, r.stderr);
    assert!(eventually(Duration::from_secs(60), || gw
        .metric("conmutador_calls_ended_total", &[])
        >= 2.0));
    let after = gw.metrics();
    check_every_family_present(&after, &configured);
    check_label_values(&after, &configured);
    assert!(
        after.lines().any(|l| l.starts_with(
            "conmutador_ivr_node_visits_total{plan=\"mexitel\",node=\"bienvenida\"} 2"
        )),
        "{after}"
    );
    let _ = gw.stop();
}

fn write_plan(dir: &Path, name: &str, number: &str) {
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!(
            "[plan]\nname = \"{name}\"\nstart = \"adios\"\nnumbers = [\"{number}\"]\n\n[nodes.adios]\ntype = \"hangup\"\n"
        ),
    )
    .expect("write plan");
}

#[test]
fn a_plan_added_by_a_reload_has_its_series_at_once() {
    let plans = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        repo().join("dialplans/mexitel.toml"),
        plans.path().join("mexitel.toml"),
    )
    .expect("copy plan");
    std::os::unix::fs::symlink(
        repo().join("dialplans/prompts"),
        plans.path().join("prompts"),
    )
    .expect("link prompts");
    write_plan(plans.path(), "extra", "5550001");
    let gw = Gw::start(&format!(
        "[dialplans]\ndir = \"{}\"\nwatch = false\n",
        plans.path().display()
    ));
    let mut configured = Configured::read(&shipped_config(), plans.path());
    assert!(configured.plans.contains_key("extra"));
    let first = gw.metrics();
    check_every_family_present(&first, &configured);
    assert_eq!(
        value(
            &first,
            "conmutador_ivr_node_visits_total",
            &[("plan", "extra"), ("node", "adios")]
        ),
        Some("0".into())
    );

    write_plan(plans.path(), "nueva", "5550002");
    let http = gw.http.expect("http");
    let (status, body) = http_request(http, "POST", "/api/reload", Some("test-token"), None);
    assert_eq!(status, 200, "{body}");
    let after = gw.metrics();
    assert_eq!(
        value(
            &after,
            "conmutador_ivr_node_visits_total",
            &[("plan", "nueva"), ("node", "adios")]
        ),
        Some("0".into()),
        "a plan added by the reload has its series at once\n{after}"
    );
    configured
        .plans
        .extend(Configured::read(&shipped_config(), plans.path()).plans);
    check_every_family_present(&after, &configured);
    check_label_values(&after, &configured);
    let _ = gw.stop();
}
