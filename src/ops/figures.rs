//! The shell's side of the cores' figures: turns what a core counted and
//! measured (plain data it returns) into metrics, with the names and labels
//! of the catalog (`metrics.rs`).
//!
//! The cores (ACD, IVR interpreter, transactions, digest) never touch the
//! metrics recorder, so simulations and unit tests run without one and read
//! the cores' own figures. The tasks that drive them call in here: the ACD
//! task after every turn ([`AcdMetrics::record`]), the call's driver for
//! each `Figure::Ivr` its core hands over ([`record_ivr`]); the SIP endpoint
//! exports the transaction counts itself.
//!
//! Counts a core keeps since it was made become counters by `absolute` (the
//! registry keeps the highest value, so a count is never recorded twice);
//! counts handed over once become increments; samples go to histograms.
//!
//! Must not touch: any core's state (it only reads what was returned).

use metrics::{Counter, Gauge, Histogram};

use crate::acd::{AcdFigures, OperatorState, Outcome};
use crate::dialplan::IvrCount;
use crate::ops::metrics as m;

/// Turns the ACD core's figures into metrics. Keeps the metric handles of
/// each queue, resolved once: a registry look-up per series on every event
/// would cost more than the core's own work.
#[derive(Default)]
pub struct AcdMetrics {
    queues: Vec<QueueMetrics>,
}

/// One queue's handles, in the order of the figures they show.
struct QueueMetrics {
    queue: String,
    outcomes: Vec<Counter>,
    rings_unanswered: Counter,
    /// By `WAIT_RANGE_RESULTS`: inside, outside.
    ranges: [Counter; 2],
    unannounced: Counter,
    /// wait answered, wait abandoned, prediction error, handle, wrap-up.
    samples: [Histogram; 5],
    wait_alert: Gauge,
    callers_waiting: Gauge,
    oldest_wait: Gauge,
    service_level: Gauge,
    abandon_ratio: Gauge,
    prediction_mae: Gauge,
    range_coverage: Gauge,
    estimated_wait: Gauge,
    operators: Vec<Gauge>,
    occupancy: Gauge,
}

impl QueueMetrics {
    fn new(name: &str) -> QueueMetrics {
        let q = || name.to_owned();
        let gauge = |metric: &'static str| metrics::gauge!(metric, "queue" => q());
        let histogram = |metric: &'static str| metrics::histogram!(metric, "queue" => q());
        QueueMetrics {
            queue: q(),
            outcomes: Outcome::LABELS
                .iter()
                .map(|o| metrics::counter!(m::QUEUE_CALLERS_TOTAL, "queue" => q(), "outcome" => *o))
                .collect(),
            rings_unanswered: metrics::counter!(m::OPERATOR_RING_NO_ANSWER_TOTAL, "queue" => q()),
            ranges: [0, 1].map(|r| {
                let result = m::WAIT_RANGE_RESULTS[r];
                metrics::counter!(m::QUEUE_WAIT_RANGES_TOTAL, "queue" => q(), "result" => result)
            }),
            unannounced: metrics::counter!(m::QUEUE_WAIT_UNANNOUNCED_TOTAL, "queue" => q()),
            samples: [
                histogram(m::QUEUE_WAIT_ANSWERED_SECONDS),
                histogram(m::QUEUE_WAIT_ABANDONED_SECONDS),
                histogram(m::QUEUE_WAIT_PREDICTION_ERROR_SECONDS),
                histogram(m::OPERATOR_HANDLE_SECONDS),
                histogram(m::OPERATOR_WRAPUP_SECONDS),
            ],
            wait_alert: gauge(m::QUEUE_WAIT_ALERT_SECONDS),
            callers_waiting: gauge(m::QUEUE_CALLERS_WAITING),
            oldest_wait: gauge(m::QUEUE_OLDEST_WAIT_SECONDS),
            service_level: gauge(m::QUEUE_SERVICE_LEVEL_RATIO),
            abandon_ratio: gauge(m::QUEUE_ABANDON_RATIO),
            prediction_mae: gauge(m::QUEUE_WAIT_PREDICTION_MAE_SECONDS),
            range_coverage: gauge(m::QUEUE_WAIT_RANGE_COVERAGE_RATIO),
            estimated_wait: gauge(m::QUEUE_ESTIMATED_WAIT_SECONDS),
            operators: OperatorState::LABELS
                .iter()
                .map(|s| metrics::gauge!(m::OPERATORS, "queue" => q(), "state" => *s))
                .collect(),
            occupancy: gauge(m::OPERATOR_OCCUPANCY_RATIO),
        }
    }
}

impl AcdMetrics {
    /// Records what the ACD core returned from `take_figures`.
    pub fn record(&mut self, figures: AcdFigures) {
        for (i, f) in figures.queues.into_iter().enumerate() {
            if self.queues.get(i).is_none_or(|h| h.queue != f.queue) {
                self.queues.truncate(i);
                self.queues.push(QueueMetrics::new(&f.queue));
            }
            let h = &self.queues[i];
            let c = &f.counts;
            for (counter, (_, n)) in h.outcomes.iter().zip(c.by_outcome()) {
                counter.absolute(n);
            }
            h.rings_unanswered.absolute(c.rings_unanswered);
            h.ranges[0].absolute(c.ranges_inside);
            h.ranges[1].absolute(c.ranges_outside);
            h.unannounced.absolute(c.unannounced);

            let s = &f.samples;
            let samples = [
                &s.wait_answered,
                &s.wait_abandoned,
                &s.prediction_errors,
                &s.handle,
                &s.wrapup,
            ];
            for (histogram, values) in h.samples.iter().zip(samples) {
                for v in values {
                    histogram.record(*v);
                }
            }

            let g = &f.gauges;
            // Unknown is NaN: neither 0 nor 1 (dashboards show a gap).
            let or_nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
            h.wait_alert.set(g.wait_alert.as_secs_f64());
            h.callers_waiting.set(g.callers_waiting as f64);
            h.oldest_wait.set(g.oldest_wait.as_secs_f64());
            h.service_level.set(or_nan(g.service_level));
            h.abandon_ratio.set(or_nan(g.abandon_ratio));
            h.prediction_mae.set(or_nan(g.prediction_mae));
            // Left alone until a range was scored, as before the figures moved.
            if let Some(cov) = g.range_coverage {
                h.range_coverage.set(cov);
            }
            h.estimated_wait
                .set(g.estimated_wait.map_or(f64::NAN, |e| e.as_secs_f64()));
            for (gauge, n) in h.operators.iter().zip(g.operators) {
                gauge.set(n as f64);
            }
            h.occupancy.set(or_nan(g.occupancy));
        }
    }
}

/// Records `n` more of what the IVR counted at `node` of `plan` (the call
/// core hands them over as `Figure::Ivr`, from `Interpreter::take_figures`).
pub fn record_ivr(plan: &str, count: IvrCount, node: &str, n: u64) {
    let metric = match count {
        IvrCount::Visit => m::IVR_NODE_VISITS_TOTAL,
        IvrCount::Invalid => m::IVR_INVALID_TOTAL,
        IvrCount::Timeout => m::IVR_TIMEOUTS_TOTAL,
    };
    metrics::counter!(metric, "plan" => plan.to_owned(), "node" => node.to_owned()).increment(n);
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
        let mut shell = super::AcdMetrics::default();
        acd.start(t0);
        let figures = acd.take_figures(t0);
        metrics::with_local_recorder(&recorder, || shell.record(figures));
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
        metrics::with_local_recorder(&recorder, || shell.record(figures));
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
            metrics::with_local_recorder(&recorder, || shell.record(figures));
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
        let record = |ivr: &mut Interpreter| {
            let plan = ivr.plan().name.clone();
            for (count, node, n) in ivr.take_figures() {
                metrics::with_local_recorder(&recorder, || {
                    super::record_ivr(&plan, count, &node, n)
                });
            }
        };
        ivr.start(now, wall);
        record(&mut ivr);
        ivr.handle(IvrEvent::Digit('7'), now, wall); // no such option
        record(&mut ivr);
        record(&mut ivr); // nothing new: nothing recorded twice
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
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut cores: Vec<std::path::PathBuf> = std::fs::read_dir(src.join("acd"))
            .expect("src/acd")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .collect();
        assert!(cores.len() >= 8, "{cores:?}");
        for f in [
            "dialplan/interpreter.rs",
            "sip/transaction.rs",
            "sip/digest.rs",
        ] {
            cores.push(src.join(f));
        }
        for path in cores {
            let text = std::fs::read_to_string(&path).expect("core source");
            for (n, line) in text.lines().enumerate() {
                assert!(
                    !line.contains("metrics::") && !line.contains("ops::metrics"),
                    "{}:{}: a core touches the metrics recorder: {line}",
                    path.display(),
                    n + 1
                );
            }
        }
    }
}
