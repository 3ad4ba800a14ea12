//! Read-only views of the ACD for the admin API: queues with their waiting
//! callers and statistics, operators with their state.
//!
//! Plain serialisable copies (durations as seconds); building one never
//! changes the core, and nothing here is fed back into decisions.

use std::time::Instant;

use serde::Serialize;

use super::engine::Acd;
use super::state::Activity;
use super::types::{CallId, OperatorState};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueSnapshot {
    pub name: String,
    pub strategy: String,
    pub callers: Vec<CallerSnapshot>,
    pub stats: QueueStatsSnapshot,
    /// Member operators per visible state label.
    pub operators: Vec<(String, usize)>,
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
                    },
                    operators,
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
