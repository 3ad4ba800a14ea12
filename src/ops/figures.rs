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
