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
