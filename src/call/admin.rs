//! The admin API's view of the running gateway: what `/api/*` reads and the
//! actions it may take (drain, reload). It only reads shared state and sends
//! messages; it never touches a call's task directly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::acd::{NewCallerWait, OperatorSnapshot, QueueSnapshot, WaitSpeech};

use crate::ops::http::{
    AdminBackend, AdminError, BlockView, CallView, DrainStatus, LiftedBlock, OperatorState,
    OperatorView, QueueStatsView, QueueView, Readiness, RecordingView, ReloadReport, RemovedCaller,
    WaitingCaller,
};

use crate::ops::wallboard::{Counts, NewCallerWords, OperatorInput, QueueInput, WallboardInput};

use super::Router;

pub struct Admin {
    pub router: Arc<Router>,
    pub readiness: Arc<Readiness>,
}

impl AdminBackend for Admin {
    async fn recordings(&self) -> Result<Vec<RecordingView>, AdminError> {
        let Some(rec) = self.router.services.recorder.clone() else {
            return Ok(Vec::new());
        };
        let list = tokio::task::spawn_blocking(move || rec.list())
            .await
            .map_err(|e| AdminError::Unavailable(e.to_string()))?
            .map_err(|e| AdminError::Unavailable(format!("recording directory: {e}")))?;
        Ok(list
            .into_iter()
            .map(|r| RecordingView {
                call_id: r.meta.as_ref().map(|m| m.call_id.clone()),
                queue: r.meta.as_ref().and_then(|m| m.queue.clone()),
                started_at: r.meta.as_ref().map(|m| m.started_at),
                name: r.name,
                bytes: r.bytes,
            })
            .collect())
    }

    async fn recording_file(&self, name: String) -> Result<std::path::PathBuf, AdminError> {
        let not_found = || AdminError::NotFound(format!("no recording {name:?}"));
        let rec = self
            .router
            .services
            .recorder
            .clone()
            .ok_or_else(not_found)?;
        if !crate::media::record::valid_name(&name) {
            return Err(AdminError::BadRequest(format!(
                "{name:?} is not a recording's name"
            )));
        }
        let n = name.clone();
        tokio::task::spawn_blocking(move || rec.path_of(&n))
            .await
            .ok()
            .flatten()
            .ok_or_else(not_found)
    }

    async fn blocks(&self) -> Vec<BlockView> {
        self.router
            .services
            .guard
            .blocks()
            .into_iter()
            .map(|b| BlockView {
                source: b.source.to_string(),
                reason: b.reason.label().to_owned(),
                blocked_seconds: b.blocked_for.as_secs_f64(),
                remaining_seconds: b.remaining.as_secs_f64(),
                offences: b.offences,
                dropped: b.dropped,
            })
            .collect()
    }

    async fn unblock(&self, source: String) -> Result<LiftedBlock, AdminError> {
        let ip: std::net::IpAddr = source
            .parse()
            .map_err(|_| AdminError::BadRequest(format!("{source:?} is not an IP address")))?;
        if self.router.services.guard.unblock(ip) {
            Ok(LiftedBlock { source })
        } else {
            Err(AdminError::NotFound(format!("{source} is not blocked")))
        }
    }

    async fn queues(&self) -> Vec<QueueView> {
        self.router.queue_views().await
    }

    async fn operators(&self) -> Vec<OperatorView> {
        self.router.operator_views().await
    }

    /// Straight from the ACD's snapshots: the since-start counters (so the
    /// wallboard's "today" leaves the seeded history out) and what a new
    /// caller would hear, which the admin views do not carry.
    async fn wallboard(&self) -> WallboardInput {
        let Some(acd) = &self.router.services.acd else {
            return WallboardInput::default();
        };
        let queues = acd.queues().await;
        let operators = acd.operators().await;
        let now = Instant::now();
        let threshold = |name: &str| {
            self.router
                .queue_cfgs
                .iter()
                .find(|c| c.name == name)
                .map_or(0.0, |c| c.service_level_threshold.as_secs_f64())
        };
        WallboardInput {
            queues: queues
                .into_iter()
                .map(|q| wallboard_queue(q, threshold))
                .collect(),
            operators: operators
                .into_iter()
                .map(|o| {
                    let name = o.display_name.clone();
                    let v = operator_view(o, &HashMap::new(), now);
                    OperatorInput {
                        id: v.id,
                        name,
                        state: v.state,
                        reason: v.reason,
                        queues: v.queues,
                        state_seconds: v.state_seconds,
                    }
                })
                .collect(),
        }
    }

    async fn calls(&self) -> Vec<CallView> {
        self.router.call_views()
    }

    async fn pause(
        &self,
        operator: String,
        reason: Option<String>,
    ) -> Result<OperatorView, AdminError> {
        self.router.pause_operator(&operator, reason).await
    }

    async fn unpause(&self, operator: String) -> Result<OperatorView, AdminError> {
        self.router.unpause_operator(&operator).await
    }

    async fn logout(&self, operator: String) -> Result<OperatorView, AdminError> {
        self.router.logout_operator(&operator).await
    }

    async fn login(&self, operator: String) -> Result<OperatorView, AdminError> {
        self.router.login_operator(&operator).await
    }

    async fn remove_caller(
        &self,
        queue: String,
        call_id: String,
    ) -> Result<RemovedCaller, AdminError> {
        self.router.remove_caller(&queue, &call_id)
    }

    async fn reload(&self) -> ReloadReport {
        // Prompts and plans together, as SIGHUP and the file watcher do: a
        // reloaded plan may name a prompt that was added with it.
        let res = self.router.services.reload();
        let plans = self.router.services.plans().plans().len() as u32;
        match res {
            Ok(warnings) => ReloadReport {
                ok: true,
                plans,
                warnings: warnings.iter().map(ToString::to_string).collect(),
                errors: Vec::new(),
            },
            Err(errors) => ReloadReport {
                ok: false,
                plans,
                warnings: Vec::new(),
                errors: errors.iter().map(ToString::to_string).collect(),
            },
        }
    }

    async fn drain(&self) -> DrainStatus {
        self.router.drain();
        self.readiness.set_draining(true);
        DrainStatus {
            draining: true,
            active_calls: self.router.active_calls() as u32,
        }
    }
}

/// The ACD's view of a queue in the admin API's shape.
pub fn queue_view(
    q: QueueSnapshot,
    calls: &HashMap<u64, CallView>,
    threshold_secs: f64,
) -> QueueView {
    let staffed: u32 = q
        .operators
        .iter()
        .filter(|(state, _)| !matches!(state.as_str(), "logged_out" | "unreachable"))
        .map(|(_, n)| *n as u32)
        .sum();
    let available: u32 = q
        .operators
        .iter()
        .filter(|(s, _)| s == "available")
        .map(|(_, n)| *n as u32)
        .sum();
    let oldest = q.callers.iter().map(|c| c.waited_secs).fold(0.0, f64::max);
    let waiting = q
        .callers
        .iter()
        .map(|c| {
            let view = calls.get(&c.call);
            WaitingCaller {
                call_id: view.map(|v| v.call_id.clone()).unwrap_or_default(),
                caller: view.map(|v| v.caller.clone()).unwrap_or_default(),
                position: c.position as u32,
                priority: c.priority,
                waited_seconds: c.waited_secs,
                announced_wait_seconds: c.announced_secs,
                ringing: c.ringing.clone(),
            }
        })
        .collect();
    QueueView {
        name: q.name,
        waiting,
        stats: QueueStatsView {
            operators_logged_in: staffed,
            operators_available: available,
            answered: q.stats.answered,
            abandoned: q.stats.abandoned,
            service_level: q.stats.service_level,
            service_level_threshold_seconds: threshold_secs,
            abandon_rate: q.stats.abandon_ratio,
            oldest_wait_seconds: oldest,
            estimated_wait_seconds: q.callers.last().and_then(|c| c.estimate_secs),
            average_handle_seconds: Some(q.stats.mean_talk_secs),
        },
    }
}

/// The ACD's view of a queue in the wallboard's shape.
pub fn wallboard_queue(q: QueueSnapshot, threshold: impl Fn(&str) -> f64) -> QueueInput {
    let count = |pick: &dyn Fn(&str) -> bool| -> u32 {
        q.operators
            .iter()
            .filter(|(state, _)| pick(state))
            .map(|(_, n)| *n as u32)
            .sum()
    };
    let staffed = count(&|s| !matches!(s, "logged_out" | "unreachable" | "paused"));
    let available = count(&|s| s == "available");
    let new_caller = match q.new_caller {
        NewCallerWait::AtOnce => NewCallerWords::AtOnce,
        NewCallerWait::NoEstimate => NewCallerWords::NoEstimate,
        NewCallerWait::Told(w) => match w {
            WaitSpeech::Seconds(seconds) => NewCallerWords::Seconds { seconds },
            WaitSpeech::Minutes(minutes) => NewCallerWords::Minutes { minutes },
            WaitSpeech::Range { low, high } => NewCallerWords::Range { low, high },
            WaitSpeech::Beyond => NewCallerWords::Beyond,
        },
    };
    let s = q.stats.since_start;
    QueueInput {
        waiting: q.callers.len() as u32,
        oldest_wait_seconds: q.callers.iter().map(|c| c.waited_secs).fold(0.0, f64::max),
        new_caller,
        service_level_threshold_seconds: threshold(&q.name),
        since_start: Counts {
            answered: s.answered,
            abandoned: s.abandoned,
            answered_within_threshold: s.answered_within_threshold,
        },
        operators_staffed: staffed,
        operators_available: available,
        name: q.name,
    }
}

/// The ACD's view of an operator in the admin API's shape; `calls` (by the
/// ACD's call number) gives the Call-ID of the call it rings or talks to.
pub fn operator_view(
    o: OperatorSnapshot,
    calls: &HashMap<u64, CallView>,
    now: Instant,
) -> OperatorView {
    let state = OperatorState::from_label(&o.state)
        .expect("the ACD's state labels and the API's states are one vocabulary");
    OperatorView {
        id: o.id,
        state,
        reason: o.pause_reason,
        queues: o.queues.into_iter().map(|(q, _)| q).collect(),
        call_id: o
            .call
            .and_then(|c| calls.get(&c))
            .map(|v| v.call_id.clone()),
        state_seconds: o
            .state_since
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_names_operator_states_with_the_metrics_words() {
        let api: Vec<&str> = OperatorState::ALL.iter().map(|s| s.label()).collect();
        assert_eq!(api, crate::acd::OperatorState::LABELS);
        for s in OperatorState::ALL {
            let json = serde_json::to_value(s).expect("a state serialises");
            assert_eq!(json, s.label(), "serde and label() say the same word");
        }
    }
}
