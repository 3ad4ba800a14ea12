//! The ACD's figures as plain data: what the core counted, measured and
//! holds, for the shell to turn into metrics (`ops::figures::AcdMetrics`).
//!
//! The core never touches the metrics recorder, so a simulation runs with
//! nothing to switch off and a test reads the core's own figures. Three
//! kinds, as the metrics they become:
//! - counts since the core was made ([`QueueCounts`]): the shell sets its
//!   counters to them;
//! - samples since the last [`Acd::take_figures`](super::Acd::take_figures)
//!   ([`QueueSamples`], seconds): the shell records them in histograms. At
//!   most [`MAX_SAMPLES`] of each kind wait to be taken; a core nobody
//!   drains (a simulation) keeps no more;
//! - values at the instant of the take ([`QueueGauges`]).
//!
//! Must not touch: the metrics recorder, a clock, I/O.

use std::time::Duration;

use super::types::OperatorState;

/// Samples of one kind kept for one queue until the shell takes them. The
/// gateway's ACD task takes them after every event, so only a core that is
/// never drained comes near this.
pub const MAX_SAMPLES: usize = 4096;

/// How a caller left a queue (the `outcome` label of
/// `conmutador_queue_callers_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    Abandoned,
    Timeout,
    Key,
    Empty,
    JoinEmpty,
    Full,
    Removed,
}

impl Outcome {
    /// The labels, in the order of the variants.
    pub const LABELS: [&'static str; 8] = [
        "answered",
        "abandoned",
        "timeout",
        "key",
        "empty",
        "joinempty",
        "full",
        "removed",
    ];

    pub fn label(self) -> &'static str {
        Self::LABELS[self as usize]
    }
}

/// One queue's counts since the core was made (not seeded from history).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Callers who left the queue, by [`Outcome`] (its order).
    pub outcomes: [u64; Outcome::LABELS.len()],
    /// Rings that ended without an answer (timeout, busy, decline, error).
    pub rings_unanswered: u64,
    /// Answered callers who had heard a range, and whether their wait fell
    /// inside it.
    pub ranges_inside: u64,
    pub ranges_outside: u64,
    /// Answered callers who heard no figure on entry (rung at once).
    pub unannounced: u64,
    /// Answered callers who waited no longer than the service-level
    /// threshold.
    pub answered_within_threshold: u64,
}

impl QueueCounts {
    pub fn outcome(&self, o: Outcome) -> u64 {
        self.outcomes[o as usize]
    }

    pub(crate) fn left(&mut self, o: Outcome) {
        self.outcomes[o as usize] += 1;
    }

    /// `(outcome label, count)` for every outcome, zeros included.
    pub fn by_outcome(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Outcome::LABELS.iter().copied().zip(self.outcomes)
    }
}

/// One queue's samples since the last take, in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueSamples {
    /// Waits of answered callers.
    pub wait_answered: Vec<f64>,
    /// Waits of callers who hung up while waiting.
    pub wait_abandoned: Vec<f64>,
    /// Actual minus heard wait of answered callers who heard a figure.
    pub prediction_errors: Vec<f64>,
    /// Talk plus wrap-up of ended operator calls.
    pub handle: Vec<f64>,
    /// Wrap-up periods begun.
    pub wrapup: Vec<f64>,
}

impl QueueSamples {
    pub(crate) fn push(kind: &mut Vec<f64>, v: f64) {
        if kind.len() < MAX_SAMPLES {
            kind.push(v);
        }
    }
}

/// One queue's values at the instant of the take. A ratio with nothing to
/// divide is `None`: unknown, neither 0 nor 1.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueGauges {
    /// The configured `wait_alert`.
    pub wait_alert: Duration,
    pub callers_waiting: usize,
    /// How long the caller who has waited longest has waited.
    pub oldest_wait: Duration,
    pub service_level: Option<f64>,
    pub abandon_ratio: Option<f64>,
    pub prediction_mae: Option<f64>,
    pub range_coverage: Option<f64>,
    /// The latest estimate given to a joining caller; `None` until one was.
    pub estimated_wait: Option<Duration>,
    /// Members by shown state, in the order of [`OperatorState::LABELS`].
    pub operators: [usize; OperatorState::LABELS.len()],
    /// Busy over staffed members; `None` with nobody staffed.
    pub occupancy: Option<f64>,
}

/// Everything one queue has to report.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFigures {
    pub queue: String,
    pub counts: QueueCounts,
    pub samples: QueueSamples,
    pub gauges: QueueGauges,
}

/// What [`Acd::take_figures`](super::Acd::take_figures) returns: one entry
/// per configured queue, in configuration order.
#[derive(Debug, Clone, PartialEq)]
pub struct AcdFigures {
    pub queues: Vec<QueueFigures>,
}

impl AcdFigures {
    /// The figures of queue `name`.
    pub fn queue(&self, name: &str) -> Option<&QueueFigures> {
        self.queues.iter().find(|q| q.queue == name)
    }
}
