//! The shell's side of the cores' figures: turns what a core counted and
//! measured (plain data it returns) into metrics, with the names and labels
//! of the catalog (`metrics.rs`).
//!
//! The cores (ACD, IVR interpreter, transactions, digest) never touch the
//! metrics recorder, so simulations and unit tests run without one and read
//! the cores' own figures. The tasks that drive them call in here: the ACD
//! task after every turn ([`record_acd`]), the call after every IVR step
//! ([`record_ivr`]); the SIP endpoint exports the transaction counts itself.
//!
//! Counts a core keeps since it was made become counters by `absolute` (the
//! registry keeps the highest value, so a count is never recorded twice);
//! counts handed over once become increments; samples go to histograms.
//!
//! Must not touch: any core's state (it only reads what was returned).

use crate::acd::{AcdFigures, OperatorState};
use crate::dialplan::{Interpreter, IvrCount};
use crate::ops::metrics as m;

/// Records what the ACD core returned from `take_figures`.
pub fn record_acd(figures: AcdFigures) {
    for q in figures.queues {
        let name = q.queue;
        let c = &q.counts;
        for (outcome, n) in c.by_outcome() {
            metrics::counter!(m::QUEUE_CALLERS_TOTAL, "queue" => name.clone(), "outcome" => outcome)
                .absolute(n);
        }
        metrics::counter!(m::OPERATOR_RING_NO_ANSWER_TOTAL, "queue" => name.clone())
            .absolute(c.rings_unanswered);
        for (result, n) in m::WAIT_RANGE_RESULTS
            .iter()
            .zip([c.ranges_inside, c.ranges_outside])
        {
            metrics::counter!(m::QUEUE_WAIT_RANGES_TOTAL, "queue" => name.clone(), "result" => *result)
                .absolute(n);
        }
        metrics::counter!(m::QUEUE_WAIT_UNANNOUNCED_TOTAL, "queue" => name.clone())
            .absolute(c.unannounced);

        let s = &q.samples;
        for (metric, values) in [
            (m::QUEUE_WAIT_ANSWERED_SECONDS, &s.wait_answered),
            (m::QUEUE_WAIT_ABANDONED_SECONDS, &s.wait_abandoned),
            (m::QUEUE_WAIT_PREDICTION_ERROR_SECONDS, &s.prediction_errors),
            (m::OPERATOR_HANDLE_SECONDS, &s.handle),
            (m::OPERATOR_WRAPUP_SECONDS, &s.wrapup),
        ] {
            if !values.is_empty() {
                let h = metrics::histogram!(metric, "queue" => name.clone());
                for v in values {
                    h.record(*v);
                }
            }
        }

        let g = &q.gauges;
        // Unknown is NaN: neither 0 nor 1 (dashboards show a gap).
        let or_nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
        metrics::gauge!(m::QUEUE_WAIT_ALERT_SECONDS, "queue" => name.clone())
            .set(g.wait_alert.as_secs_f64());
        metrics::gauge!(m::QUEUE_CALLERS_WAITING, "queue" => name.clone())
            .set(g.callers_waiting as f64);
        metrics::gauge!(m::QUEUE_OLDEST_WAIT_SECONDS, "queue" => name.clone())
            .set(g.oldest_wait.as_secs_f64());
        metrics::gauge!(m::QUEUE_SERVICE_LEVEL_RATIO, "queue" => name.clone())
            .set(or_nan(g.service_level));
        metrics::gauge!(m::QUEUE_ABANDON_RATIO, "queue" => name.clone())
            .set(or_nan(g.abandon_ratio));
        metrics::gauge!(m::QUEUE_WAIT_PREDICTION_MAE_SECONDS, "queue" => name.clone())
            .set(or_nan(g.prediction_mae));
        // Left alone until a range was scored, as before the figures moved.
        if let Some(cov) = g.range_coverage {
            metrics::gauge!(m::QUEUE_WAIT_RANGE_COVERAGE_RATIO, "queue" => name.clone()).set(cov);
        }
        metrics::gauge!(m::QUEUE_ESTIMATED_WAIT_SECONDS, "queue" => name.clone())
            .set(g.estimated_wait.map_or(f64::NAN, |e| e.as_secs_f64()));
        for (state, n) in OperatorState::LABELS.iter().zip(g.operators) {
            metrics::gauge!(m::OPERATORS, "queue" => name.clone(), "state" => *state).set(n as f64);
        }
        metrics::gauge!(m::OPERATOR_OCCUPANCY_RATIO, "queue" => name).set(or_nan(g.occupancy));
    }
}

/// Records what the IVR counted since the last call: call it after every
/// `Interpreter::start` and `Interpreter::handle` of a live call.
pub fn record_ivr(interp: &mut Interpreter) {
    let figures = interp.take_figures();
    if figures.is_empty() {
        return;
    }
    let plan = interp.plan().name.clone();
    for (what, node, n) in figures {
        let metric = match what {
            IvrCount::Visit => m::IVR_NODE_VISITS_TOTAL,
            IvrCount::Invalid => m::IVR_INVALID_TOTAL,
            IvrCount::Timeout => m::IVR_TIMEOUTS_TOTAL,
        };
        metrics::counter!(metric, "plan" => plan.clone(), "node" => node).increment(n);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::acd::{Acd, AcdEvent, Membership, OperatorConfig, QueueConfig};

    fn op(id: &str) -> OperatorConfig {
        OperatorConfig {
            id: id.into(),
            display_name: None,
            password: Some("pw".into()),
            static_uri: None,
            queues: vec![Membership {
                name: "q".into(),
                penalty: 0,
            }],
        }
    }

    #[test]
    fn acd_gauges_hold_true_values_from_the_start_and_waits_grow_without_events() {
        let recorder = crate::ops::metrics::build_recorder();
        let handle = recorder.handle();
        let mut q = QueueConfig::named("q");
        q.wait_alert = Duration::from_secs(90);
        let t0 = Instant::now();
        let mut acd = Acd::new(vec![q], vec![op("a")]).expect("valid config");
        acd.start(t0);
        let figures = acd.take_figures(t0);
        metrics::with_local_recorder(&recorder, || super::record_acd(figures));
        let text = handle.render();
        for line in [
            "conmutador_operators{queue=\"q\",state=\"logged_out\"} 1",
            "conmutador_operators{queue=\"q\",state=\"available\"} 0",
            "conmutador_queue_callers_waiting{queue=\"q\"} 0",
            // Nothing to divide yet: unknown, not 0 and not 1.
            "conmutador_queue_service_level_ratio{queue=\"q\"} NaN",
            "conmutador_queue_abandon_ratio{queue=\"q\"} NaN",
            "conmutador_operator_occupancy_ratio{queue=\"q\"} NaN",
            "conmutador_queue_estimated_wait_seconds{queue=\"q\"} NaN",
            "conmutador_queue_wait_alert_seconds{queue=\"q\"} 90",
            "conmutador_queue_callers_total{queue=\"q\",outcome=\"abandoned\"} 0",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        // A caller joins, then nothing happens for 42 s: the shell's
        // periodic take still shows the wait growing. Then they hang up.
        acd.handle(
            AcdEvent::CallerJoined {
                call: 1,
                queue: "q".into(),
                priority: 0,
            },
            t0,
        );
        let figures = acd.take_figures(t0 + Duration::from_secs(42));
        metrics::with_local_recorder(&recorder, || super::record_acd(figures));
        let text = handle.render();
        assert!(
            text.contains("conmutador_queue_oldest_wait_seconds{queue=\"q\"} 42"),
            "{text}"
        );
        assert!(text.contains("conmutador_queue_callers_waiting{queue=\"q\"} 1"));
        let t1 = t0 + Duration::from_secs(50);
        acd.handle(AcdEvent::CallerLeft { call: 1 }, t1);
        // Taken twice: counts since start are not recorded twice.
        for _ in 0..2 {
            let figures = acd.take_figures(t1);
            metrics::with_local_recorder(&recorder, || super::record_acd(figures));
        }
        let text = handle.render();
        for line in [
            "conmutador_queue_callers_total{queue=\"q\",outcome=\"abandoned\"} 1",
            "conmutador_queue_wait_abandoned_seconds_count{queue=\"q\"} 1",
            "conmutador_queue_wait_abandoned_seconds_sum{queue=\"q\"} 50",
            "conmutador_queue_abandon_ratio{queue=\"q\"} 1",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }

    #[test]
    fn ivr_figures_become_counters_by_plan_and_node() {
        use crate::dialplan::{CallInfo, Interpreter, IvrEvent, SourceFile, parse};
        let text = r#"[plan]
start = "menu"
languages = ["es-MX"]

[nodes.menu]
type = "menu"
prompts = ["saludo"]
timeout = "5s"
max_retries = 1
exhausted = "adios"
options = { 1 = "adios" }

[nodes.adios]
type = "hangup"
"#;
        let mut diags = Vec::new();
        let plan = parse::parse_plan(SourceFile::new("t.toml", text.into()), "t", &mut diags)
            .expect("plan parses");
        assert!(diags.is_empty(), "{diags:#?}");
        let info = CallInfo {
            caller: "1".into(),
            called: "2".into(),
        };
        let mut ivr = Interpreter::new(std::sync::Arc::new(plan), info);
        let (now, wall) = (Instant::now(), chrono::Utc::now());
        let recorder = crate::ops::metrics::build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            ivr.start(now, wall);
            super::record_ivr(&mut ivr);
            ivr.handle(IvrEvent::Digit('7'), now, wall); // no such option
            super::record_ivr(&mut ivr);
            super::record_ivr(&mut ivr); // nothing new: nothing recorded twice
        });
        let text = handle.render();
        for line in [
            "conmutador_ivr_node_visits_total{plan=\"t\",node=\"menu\"} 1",
            "conmutador_ivr_invalid_total{plan=\"t\",node=\"menu\"} 1",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }

    /// The cores keep figures as data; only shells touch the recorder.
    #[test]
    fn no_core_touches_the_metrics_recorder() {
        let cores = [
            ("src/acd/engine.rs", include_str!("../acd/engine.rs")),
            ("src/acd/estimator.rs", include_str!("../acd/estimator.rs")),
            ("src/acd/figures.rs", include_str!("../acd/figures.rs")),
            ("src/acd/state.rs", include_str!("../acd/state.rs")),
            ("src/acd/snapshot.rs", include_str!("../acd/snapshot.rs")),
            ("src/acd/config.rs", include_str!("../acd/config.rs")),
            ("src/acd/types.rs", include_str!("../acd/types.rs")),
            ("src/acd/tests.rs", include_str!("../acd/tests.rs")),
            (
                "src/dialplan/interpreter.rs",
                include_str!("../dialplan/interpreter.rs"),
            ),
            (
                "src/sip/transaction.rs",
                include_str!("../sip/transaction.rs"),
            ),
            ("src/sip/digest.rs", include_str!("../sip/digest.rs")),
        ];
        for (path, text) in cores {
            for (n, line) in text.lines().enumerate() {
                assert!(
                    !line.contains("metrics::") && !line.contains("ops::metrics"),
                    "{path}:{}: a core touches the metrics recorder: {line}",
                    n + 1
                );
            }
        }
    }
}
