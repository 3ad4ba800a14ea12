//! Read-only views of the ACD for the admin API: queues with their waiting
//! callers and statistics, operators with their state.
//!
//! Plain serialisable copies (durations as seconds); building one never
//! changes the core, and nothing here is fed back into decisions.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::engine::Acd;
use super::estimator;
use super::figures::Outcome;
use super::state::Activity;
use super::types::{CallId, OperatorState, WaitSpeech};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueSnapshot {
    pub name: String,
    pub strategy: String,
    pub callers: Vec<CallerSnapshot>,
    pub stats: QueueStatsSnapshot,
    /// Member operators per visible state label.
    pub operators: Vec<(String, usize)>,
    /// What a caller joining now (priority 0) would be told.
    #[serde(skip)]
    pub new_caller: NewCallerWait,
}

/// What a caller entering a queue now would hear, decided as the entry
/// announcement decides it (`estimator::speech` on the same forecast), for
/// a caller of the default priority 0.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum NewCallerWait {
    /// An operator is free and nobody in this queue waits unrung: the caller
    /// would be rung at once and hear no figure.
    AtOnce,
    /// These words.
    Told(WaitSpeech),
    /// No estimate (nobody staffed): no figure is said.
    #[default]
    NoEstimate,
}

/// Counters of what happened since this start only (the stored history
/// that seeded the queue left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SinceStartCounts {
    pub answered: u64,
    pub abandoned: u64,
    pub answered_within_threshold: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallerSnapshot {
    pub call: CallId,
    pub position: usize,
    pub priority: i32,
    pub waited_secs: f64,
    /// Estimate made on entry (scored when answered).
    pub announced_secs: Option<f64>,
    /// Latest estimate of the remaining wait.
    pub estimate_secs: Option<f64>,
    /// Operators being rung for this caller.
    pub ringing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStatsSnapshot {
    pub entered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub timeouts: u64,
    pub key_exits: u64,
    pub empty_exits: u64,
    pub full: u64,
    pub service_level: Option<f64>,
    pub abandon_ratio: Option<f64>,
    pub mean_wait_answered_secs: Option<f64>,
    pub mean_talk_secs: f64,
    pub prediction_mae_secs: Option<f64>,
    pub since_start: SinceStartCounts,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorSnapshot {
    pub id: String,
    pub display_name: Option<String>,
    pub static_uri: Option<String>,
    /// `logged_out`, `available`, `ringing`, `on_call`, `wrapup`, `paused`, `unreachable`.
    pub state: String,
    pub pause_reason: Option<String>,
    pub logged_in: bool,
    pub reachable: bool,
    pub calls_taken: u64,
    /// The call being rung or talked to, if any.
    pub call: Option<CallId>,
    /// Since when `state` holds (`None` before the shell's `Acd::start`).
    #[serde(skip)]
    pub state_since: Option<Instant>,
    /// (queue, penalty).
    pub queues: Vec<(String, u32)>,
}

impl Acd {
    /// Every queue with its waiting callers (in service order) and statistics.
    pub fn queues_snapshot(&self, now: Instant) -> Vec<QueueSnapshot> {
        (0..self.st.queues.len())
            .map(|qi| {
                let q = &self.st.queues[qi];
                let callers = q
                    .waiting
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        let call = &p.call;
                        let c = self.st.callers.get(call)?;
                        Some(CallerSnapshot {
                            call: *call,
                            position: i + 1,
                            priority: c.priority,
                            waited_secs: now.saturating_duration_since(c.joined).as_secs_f64(),
                            announced_secs: c.announced.map(|d| d.as_secs_f64()),
                            estimate_secs: c.last_estimate.map(|d| d.as_secs_f64()),
                            ringing: c
                                .rings
                                .iter()
                                .map(|r| self.st.ops[r.op].id.clone())
                                .collect(),
                        })
                    })
                    .collect();
                let s = &q.stats;
                let mut operators: Vec<(String, usize)> = OperatorState::LABELS
                    .iter()
                    .map(|l| (l.to_string(), 0))
                    .collect();
                for mb in &q.members {
                    let label = self.st.ops[mb.op].state().label();
                    if let Some(e) = operators.iter_mut().find(|(l, _)| l == label) {
                        e.1 += 1;
                    }
                }
                QueueSnapshot {
                    name: q.cfg.name.clone(),
                    strategy: format!("{:?}", q.cfg.strategy),
                    callers,
                    stats: QueueStatsSnapshot {
                        entered: s.entered,
                        answered: s.answered,
                        abandoned: s.abandoned,
                        timeouts: s.timeouts,
                        key_exits: s.key_exits,
                        empty_exits: s.empty_exits,
                        full: s.full,
                        service_level: s.service_level(),
                        abandon_ratio: s.abandon_ratio(),
                        mean_wait_answered_secs: (s.answered > 0)
                            .then(|| s.wait_answered_total.as_secs_f64() / s.answered as f64),
                        mean_talk_secs: q.est.mean_talk(),
                        prediction_mae_secs: s.prediction_mae(),
                        // The same counts the metrics take (not seeded
                        // from the stored history).
                        since_start: SinceStartCounts {
                            answered: q.counts.outcome(Outcome::Answered),
                            abandoned: q.counts.outcome(Outcome::Abandoned),
                            answered_within_threshold: q.counts.answered_within_threshold,
                        },
                    },
                    operators,
                    new_caller: self.new_caller_wait(qi, now),
                }
            })
            .collect()
    }

    /// Every configured operator with its state.
    pub fn operators_snapshot(&self) -> Vec<OperatorSnapshot> {
        self.st
            .ops
            .iter()
            .map(|o| {
                let state = o.state();
                OperatorSnapshot {
                    id: o.id.clone(),
                    display_name: o.display_name.clone(),
                    static_uri: o.static_uri.clone(),
                    state: state.label().to_owned(),
                    pause_reason: o.paused.clone(),
                    logged_in: o.logged_in,
                    reachable: o.reachable,
                    calls_taken: o.calls_taken,
                    state_since: o.shown_since,
                    call: match o.activity {
                        Activity::Ringing { call } | Activity::OnCall { call } => Some(call),
                        _ => None,
                    },
                    queues: o
                        .memberships
                        .iter()
                        .map(|(qi, mi)| {
                            let q = &self.st.queues[*qi];
                            (q.cfg.name.clone(), q.members[*mi].penalty)
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// What a caller of priority 0 joining queue `qi` now would hear: the
    /// forecast for a caller placed where `enter` would place it (behind
    /// everyone of priority ≥ 0), said by `estimator::speech` with the
    /// queue's `max_wait`, as the entry announcement does.
    fn new_caller_wait(&self, qi: usize, now: Instant) -> NewCallerWait {
        let q = &self.st.queues[qi];
        let unrung = q.waiting.iter().any(|p| {
            self.st
                .callers
                .get(&p.call)
                .is_some_and(|c| c.rings.is_empty())
        });
        let allowed = q.cfg.allowed_penalty(Duration::ZERO);
        let free = q
            .members
            .iter()
            .any(|mb| mb.penalty <= allowed && self.st.ops[mb.op].free(now));
        if free && !unrung {
            return NewCallerWait::AtOnce;
        }
        let ahead = q.waiting.iter().take_while(|p| p.key.0.0 >= 0).count();
        let mut callers: Vec<(Duration, i32)> = q
            .waiting
            .iter()
            .take(ahead)
            .map(|p| (now.saturating_duration_since(p.joined), p.key.0.0))
            .collect();
        callers.push((Duration::ZERO, 0));
        let servers = self.servers(qi, now);
        match q
            .est
            .estimate(&servers, &callers, now)
            .and_then(|f| f.get(ahead).copied())
        {
            Some(f) => NewCallerWait::Told(estimator::speech(&f, q.cfg.max_wait)),
            None => NewCallerWait::NoEstimate,
        }
    }

    /// One operator's visible state, `None` for an unknown id.
    pub fn operator_state(&self, op: &str) -> Option<OperatorState> {
        self.st.op_index.get(op).map(|i| self.st.ops[*i].state())
    }

    /// The current estimate of the remaining wait for each caller of `queue`,
    /// in service order (`None`: unknown queue or nobody staffed).
    pub fn estimates_for(&self, queue: &str, now: Instant) -> Option<Vec<std::time::Duration>> {
        let qi = self.st.queues.iter().position(|q| q.cfg.name == queue)?;
        self.estimates(qi, usize::MAX, now)
            .map(|v| v.iter().map(|f| f.duration()).collect())
    }
}
