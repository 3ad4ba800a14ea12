//! The ACD's state as plain data: queues with their waiting lines and learnt
//! figures, operators with their activity, and connected calls.
//!
//! Kept apart from the decisions in `engine.rs` so that a shared store (one
//! queue served by several gateway nodes) can later replace this struct
//! without touching the strategies: every decision reads and writes through
//! these records and nothing else. No clock, no I/O, no metrics recorder
//! here (the figures for metrics are plain data too).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;

use super::config::QueueConfig;
use super::estimator::{Estimator, Forecast};
use super::figures::{QueueCounts, QueueSamples};
use super::types::{CallId, OperatorState, WaitSpeech};

/// Order of service: higher priority first, then arrival.
pub(crate) type Key = (Reverse<i32>, u64);

pub(crate) struct State {
    pub queues: Vec<QueueRec>,
    pub ops: Vec<OpRec>,
    /// Operator id to index in `ops`.
    pub op_index: HashMap<String, usize>,
    /// Callers waiting (including those being rung), by call.
    pub callers: HashMap<CallId, CallerRec>,
    /// Callers bridged to an operator, until the call ends.
    pub connected: HashMap<CallId, ConnectedRec>,
    /// Operators rung by name for a call being transferred to them:
    /// call → (operator, queue counted in, ring start).
    pub direct: HashMap<CallId, (usize, usize, Instant)>,
    /// Arrival counter for FIFO order within a priority.
    pub seq: u64,
    /// Every caller timer ever armed, soonest first: `(when, call)`. Entries
    /// go stale when a caller leaves or re-arms; the engine drops them when
    /// they reach the top, so the top is always a live timer and finding the
    /// next one does not walk thousands of waiting callers.
    pub timers: BinaryHeap<Reverse<(Instant, CallId)>>,
}

pub(crate) struct QueueRec {
    pub cfg: QueueConfig,
    /// Members in config order (the order `linear` and round robin follow).
    pub members: Vec<Member>,
    /// Waiting callers in service order.
    pub waiting: Vec<Place>,
    pub est: Estimator,
    pub stats: QueueStats,
    /// What the shell turns into metrics (`figures.rs`): counts since
    /// start, samples not yet taken, the latest estimate given.
    pub counts: QueueCounts,
    pub samples: QueueSamples,
    pub estimated_wait: Option<Duration>,
    /// Round robin: member index to try first next time.
    pub rr_next: usize,
    pub rng: SmallRng,
    /// Whether the RNG came from the config seed (then `with_seed` leaves it).
    pub seeded_by_config: bool,
}

/// One caller's place in a queue's line. `joined` is kept here as well as
/// in the caller's record so that estimates and gauges read the line
/// without a map lookup per caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place {
    pub key: Key,
    pub call: CallId,
    pub joined: Instant,
}

impl QueueRec {
    /// Where the caller with `key` stands in the line (keys are unique).
    pub fn index_of(&self, key: Key) -> Option<usize> {
        self.waiting.binary_search_by_key(&key, |p| p.key).ok()
    }
}

pub(crate) struct Member {
    pub op: usize,
    pub penalty: u32,
    /// Calls answered from this queue.
    pub calls: u64,
    /// Talk time accumulated from this queue.
    pub talk: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activity {
    Idle,
    Ringing { call: CallId },
    OnCall { call: CallId },
    WrapUp { until: Instant },
}

pub(crate) struct OpRec {
    pub id: String,
    pub display_name: Option<String>,
    pub static_uri: Option<String>,
    /// (queue index, member index in that queue).
    pub memberships: Vec<(usize, usize)>,
    pub logged_in: bool,
    pub reachable: bool,
    pub paused: Option<String>,
    pub activity: Activity,
    /// Not rung again before this (retry_delay after a failed ring).
    pub cooldown: Option<Instant>,
    pub no_answer_streak: u32,
    /// End of the last call, else login time; `None` sorts as longest idle.
    pub idle_since: Option<Instant>,
    pub calls_taken: u64,
    /// The state last reported with `OperatorState`.
    pub shown: OperatorState,
    /// When `shown` began (the admin API's time in state); `None` until the
    /// shell's `Acd::start` gives the core its first clock reading.
    pub shown_since: Option<Instant>,
}

impl OpRec {
    /// The state others see, derived from the orthogonal flags.
    pub fn state(&self) -> OperatorState {
        match self.activity {
            Activity::OnCall { .. } => OperatorState::OnCall,
            Activity::Ringing { .. } => OperatorState::Ringing,
            _ if !self.logged_in => OperatorState::LoggedOut,
            Activity::WrapUp { .. } => OperatorState::WrapUp,
            Activity::Idle => match (&self.paused, self.reachable) {
                (Some(r), _) => OperatorState::Paused(r.clone()),
                (None, false) => OperatorState::Unreachable,
                (None, true) => OperatorState::Available,
            },
        }
    }

    /// Counted as a server by the estimator: will take calls when free.
    pub fn staffed(&self) -> bool {
        self.logged_in && self.reachable && self.paused.is_none()
    }

    /// May be rung right now.
    pub fn free(&self, now: Instant) -> bool {
        self.staffed() && self.activity == Activity::Idle && self.cooldown.is_none_or(|c| c <= now)
    }
}

pub(crate) struct Ring {
    pub op: usize,
    pub started: Instant,
    pub deadline: Instant,
}

pub(crate) struct CallerRec {
    pub queue: usize,
    pub key: Key,
    pub priority: i32,
    pub joined: Instant,
    pub entry_position: usize,
    /// The wait as heard on entry (the minutes said, the middle of a
    /// range), or as it would have been heard by a caller rung at once.
    pub announced: Option<Duration>,
    /// What the caller heard on entry; `None` if rung at once (or told
    /// nothing): scored apart.
    pub heard: Option<WaitSpeech>,
    /// The forecast made on entry, to calibrate the ranges.
    pub forecast: Option<Forecast>,
    /// The latest estimate computed for this caller (admin view).
    pub last_estimate: Option<Duration>,
    /// When, at which position and with which words we last announced.
    pub last_announce: Option<(Instant, usize, Option<WaitSpeech>)>,
    pub next_announce: Option<Instant>,
    pub deadline: Option<Instant>,
    pub next_widen: Option<Instant>,
    pub next_progressive: Option<Instant>,
    pub rings: Vec<Ring>,
}

impl CallerRec {
    /// Every timer this caller has armed.
    pub fn timers(&self) -> impl Iterator<Item = Instant> + '_ {
        [
            self.deadline,
            self.next_announce,
            self.next_widen,
            self.next_progressive,
        ]
        .into_iter()
        .flatten()
        .chain(self.rings.iter().map(|r| r.deadline))
    }
}

pub(crate) struct ConnectedRec {
    pub op: usize,
    pub queue: usize,
    pub answered: Instant,
    pub waited: Duration,
}

/// Running counters for one queue since start.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueueStats {
    pub entered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub timeouts: u64,
    pub key_exits: u64,
    pub empty_exits: u64,
    pub full: u64,
    pub answered_within_sl: u64,
    pub wait_answered_total: Duration,
    pub abs_error_total: f64,
    pub scored: u64,
    /// Answered callers who had heard a range, and how many waited inside it.
    pub ranges: u64,
    pub ranges_covered: u64,
}

impl QueueStats {
    pub fn service_level(&self) -> Option<f64> {
        let d = self.answered + self.abandoned;
        (d > 0).then(|| self.answered_within_sl as f64 / d as f64)
    }

    pub fn abandon_ratio(&self) -> Option<f64> {
        let d = self.answered + self.abandoned;
        (d > 0).then(|| self.abandoned as f64 / d as f64)
    }

    pub fn range_coverage(&self) -> Option<f64> {
        (self.ranges > 0).then(|| self.ranges_covered as f64 / self.ranges as f64)
    }

    pub fn prediction_mae(&self) -> Option<f64> {
        (self.scored > 0).then(|| self.abs_error_total / self.scored as f64)
    }
}
