//! Unit tests of the metric catalog; kept out of `metrics.rs` so that rooms
//! appending constants at the end of that file never collide with them.

use super::*;

/// Every `pub const NAME: &str = "conmutador_..."` in metrics.rs, read from
/// the source so a constant appended without a catalog entry fails here.
fn constants_in_source() -> Vec<(String, String)> {
    let src = include_str!("metrics.rs");
    // Constants may wrap onto the next line after `=`, so join first.
    let joined = src.replace("=\n", "= ");
    joined
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("pub const ")?;
            let (ident, rest) = rest.split_once(':')?;
            let value = rest.split('"').nth(1)?;
            value
                .starts_with("conmutador_")
                .then(|| (ident.trim().to_string(), value.to_string()))
        })
        .collect()
}

#[test]
fn every_constant_is_in_the_catalog_and_vice_versa() {
    let consts = constants_in_source();
    assert!(consts.len() >= 40, "parsed only {} constants", consts.len());
    for (ident, value) in &consts {
        assert!(
            lookup(value).is_some(),
            "{ident} = {value} has no CATALOG entry"
        );
    }
    for m in CATALOG {
        assert!(
            consts.iter().any(|(_, v)| v == m.name),
            "catalog entry {} has no constant",
            m.name
        );
    }
    let mut names: Vec<_> = CATALOG.iter().map(|m| m.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CATALOG.len(), "duplicate catalog entries");
}

#[test]
fn names_follow_the_conventions() {
    for m in CATALOG {
        assert!(m.name.starts_with("conmutador_"), "{}", m.name);
        assert!(
            m.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{}",
            m.name
        );
        assert_eq!(
            m.kind == Kind::Counter,
            m.name.ends_with("_total"),
            "{}: counters and only counters end in _total",
            m.name
        );
        if m.kind == Kind::Histogram {
            assert!(
                m.name.ends_with("_seconds"),
                "{}: histograms are in seconds",
                m.name
            );
            let b = m.buckets.expect("histograms have buckets");
            assert!(
                b.windows(2).all(|w| w[0] < w[1]),
                "{}: buckets ascend",
                m.name
            );
        } else {
            assert!(m.buckets.is_none(), "{}", m.name);
        }
        assert!(
            !m.help.is_empty() && m.help.ends_with('.'),
            "{}: help is a sentence",
            m.name
        );
        for l in m.labels {
            assert!(
                !["call_id", "caller", "called", "number", "operator"].contains(l),
                "{}: unbounded label {l}",
                m.name
            );
        }
    }
}

#[test]
fn histograms_render_as_histograms_with_help() {
    let recorder = build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        metrics::histogram!(MEDIA_SEND_JITTER_SECONDS).record(0.0007);
        metrics::histogram!(QUEUE_WAIT_PREDICTION_ERROR_SECONDS, "queue" => "general")
            .record(-45.0);
        metrics::counter!(CALLS_STARTED_TOTAL).increment(3);
    });
    let text = handle.render();
    assert!(
        text.contains("# TYPE conmutador_media_send_jitter_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("conmutador_media_send_jitter_seconds_bucket{le=\"0.001\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("conmutador_media_send_jitter_seconds_bucket{le=\"0.0005\"} 0"),
        "{text}"
    );
    assert!(!text.contains("quantile="), "no summaries: {text}");
    // -45 s falls in (-60, -30]: counted from the -30 bucket upwards.
    assert!(
        text.contains(
            "conmutador_queue_wait_prediction_error_seconds_bucket{queue=\"general\",le=\"-60\"} 0"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "conmutador_queue_wait_prediction_error_seconds_bucket{queue=\"general\",le=\"-30\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("# HELP conmutador_calls_started_total Calls accepted from the trunk."),
        "{text}"
    );
    assert!(text.contains("conmutador_calls_started_total 3"), "{text}");
}

#[test]
fn series_names_resolve_through_histogram_suffixes() {
    assert_eq!(
        lookup_series("conmutador_call_duration_seconds_bucket").map(|m| m.name),
        Some(CALL_DURATION_SECONDS)
    );
    assert_eq!(
        lookup_series("conmutador_calls_active").map(|m| m.name),
        Some(CALLS_ACTIVE)
    );
    assert!(
        lookup_series("conmutador_calls_active_count").is_none(),
        "gauges have no _count series"
    );
    assert!(lookup_series("conmutador_nope").is_none());
}

#[test]
fn install_is_idempotent() {
    let a = install();
    let b = install();
    metrics::counter!(DIALPLAN_RELOAD_TOTAL, "result" => "ok").increment(1);
    let text = a.render();
    assert!(
        text.contains("conmutador_dialplan_reload_total{result=\"ok\"}"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("# TYPE")).count(),
        b.render()
            .lines()
            .filter(|l| l.starts_with("# TYPE"))
            .count()
    );
}

#[test]
fn every_label_says_where_its_values_come_from() {
    for m in CATALOG {
        assert_eq!(
            m.labels.len(),
            m.values.len(),
            "{}: declare the values of each label with .with(&[...]) in label order",
            m.name
        );
        for (label, values) in m.labels.iter().zip(m.values) {
            if let Some(v) = values.fixed() {
                assert!(!v.is_empty(), "{}: {label} has no values", m.name);
            }
            assert_eq!(
                *values == Values::Node,
                *label == "node",
                "{}: {label}: plan nodes go in a `node` label",
                m.name
            );
            if *values == Values::Node {
                assert!(m.labels.contains(&"plan"), "{}: node without plan", m.name);
            }
        }
    }
}

#[test]
fn operator_states_are_the_engine_s_own() {
    use crate::acd::OperatorState;
    let def = lookup(OPERATORS).expect("operators gauge");
    let states = def.values[1].fixed().expect("fixed states");
    for s in [
        OperatorState::LoggedOut,
        OperatorState::Available,
        OperatorState::Ringing,
        OperatorState::OnCall,
        OperatorState::WrapUp,
        OperatorState::Paused("x".into()),
        OperatorState::Unreachable,
    ] {
        assert!(states.contains(&s.label()), "{}", s.label());
        assert!(def.help.contains(s.label()), "help names {}", s.label());
    }
}

fn scope() -> Scope {
    Scope {
        queues: ["a", "b"].map(String::from).into(),
        plans: [("p".to_string(), ["inicio", "menu"].map(String::from).into())].into(),
    }
}

#[test]
fn every_family_has_its_series_before_any_event() {
    let recorder = build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || register_all(&scope()));
    let text = handle.render();
    for m in CATALOG {
        let first = match m.kind {
            Kind::Histogram => format!("{}_count", m.name),
            _ => m.name.to_string(),
        };
        assert!(
            text.lines().any(
                |l| l.starts_with(&format!("{first} ")) || l.starts_with(&format!("{first}{{"))
            ),
            "{} has no series before any event:\n{text}",
            m.name
        );
    }
    // One series per queue and operator state, at 0.
    for q in ["a", "b"] {
        for s in crate::acd::OperatorState::LABELS {
            let line = format!("conmutador_operators{{queue=\"{q}\",state=\"{s}\"}} 0");
            assert!(text.contains(&line), "{line}\n{text}");
        }
    }
    assert!(text.contains("conmutador_ivr_node_visits_total{plan=\"p\",node=\"menu\"} 0"));
    assert!(text.contains("conmutador_calls_started_total 0"));
    assert!(text.contains("conmutador_queue_wait_answered_seconds_count{queue=\"b\"} 0"));
    // A value recorded before registration survives it.
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!(CALLS_STARTED_TOTAL).increment(2);
        metrics::gauge!(CALLS_ACTIVE, "state" => "ivr").set(1.0);
        register_all(&scope());
    });
    let text = handle.render();
    assert!(text.contains("conmutador_calls_started_total 2"), "{text}");
    assert!(
        text.contains("conmutador_calls_active{state=\"ivr\"} 1"),
        "{text}"
    );
}

#[test]
fn series_of_removed_queues_leave_the_exposition_those_of_old_plans_stay() {
    let recorder = build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        register_all(&scope());
        metrics::histogram!(QUEUE_WAIT_ANSWERED_SECONDS, "queue" => "b").record(3.0);
    });
    let before = handle.render();
    assert!(before.contains("queue=\"b\""));
    let mut after = scope();
    after.queues.remove("b");
    after.plans.clear();
    let text = in_scope(&before, &after);
    assert!(!text.contains("queue=\"b\""), "{text}");
    assert!(text.contains("conmutador_queue_wait_answered_seconds_bucket{queue=\"a\",le=\"5\"} 0"));
    assert!(text.contains("conmutador_operators{queue=\"a\",state=\"paused\"} 0"));
    assert!(text.contains("# TYPE conmutador_operators gauge"));
    // Calls in progress finish on the plan they started with and are
    // counted there: a removed plan's series stay.
    assert!(text.contains("conmutador_ivr_node_visits_total{plan=\"p\",node=\"menu\"} 0"));
    // Families without queues are untouched.
    assert_eq!(
        text.lines().filter(|l| !l.contains("queue=")).count(),
        before.lines().filter(|l| !l.contains("queue=")).count()
    );
}

#[test]
fn sample_labels_read_escapes() {
    assert_eq!(
        sample_labels(r#"{queue="a\"b",le="+Inf"} 3"#),
        vec![
            ("queue".to_string(), "a\"b".to_string()),
            ("le".to_string(), "+Inf".to_string())
        ]
    );
    assert!(sample_labels(" 3").is_empty());
}
