//! The record accumulator: what the call record (CDR) will say, gathered as
//! the call goes, and how the call ended for the caller.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{CallCore, Env};
use crate::acd::Party;
use crate::dialplan::Plan;
use crate::ops::records::{Cdr, Disposition, HangupSide};

/// Why a call ended, for the record's cause and the metrics' `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    CallerHungUp,
    PlanHungUp,
    Cancelled,
    RtpTimeout,
    NoAck,
    Shutdown,
    Failed,
    OperatorHungUp,
    TransferFailed,
    /// Removed from its queue over the admin API.
    Removed,
    /// The session timer ran out without a refresh (RFC 4028).
    SessionExpired,
}

impl End {
    pub fn label(self) -> &'static str {
        match self {
            End::CallerHungUp => "caller_hangup",
            End::PlanHungUp => "plan_hangup",
            End::Cancelled => "cancelled",
            End::RtpTimeout => "rtp_timeout",
            End::NoAck => "no_ack",
            End::Shutdown => "shutdown",
            End::Failed => "failed",
            End::OperatorHungUp => "operator_hangup",
            End::TransferFailed => "transfer_failed",
            End::Removed => "removed",
            End::SessionExpired => "session_expired",
        }
    }

    fn disposition(self) -> Disposition {
        match self {
            End::CallerHungUp | End::PlanHungUp | End::Shutdown | End::OperatorHungUp => {
                Disposition::Completed
            }
            End::Cancelled => Disposition::Abandoned,
            End::RtpTimeout
            | End::NoAck
            | End::Failed
            | End::TransferFailed
            | End::SessionExpired => Disposition::Failed,
            End::Removed => Disposition::Removed,
        }
    }
}

/// Nodes kept in a call record's path; a caller looping in a menu for an
/// hour must not grow the record without bound.
pub(super) const MAX_PATH: usize = 64;

pub(super) struct Record {
    caller: String,
    called: String,
    plan: String,
    started: DateTime<Utc>,
    pub answered: Option<DateTime<Utc>>,
    pub hangup_side: HangupSide,
    /// Nodes visited (capped).
    pub path: Vec<String>,
    pub queue: Option<String>,
    pub wait: Option<Duration>,
    pub operator: Option<String>,
    pub talk: Option<Duration>,
    pub talk_ended_by: Option<Party>,
    /// The plan transferred the caller to another SIP destination.
    pub transfer: bool,
    /// The caller left a queue unserved (timeout, full, empty, exit key)
    /// towards the plan's overflow destination.
    pub overflowed: bool,
    /// The file the call was recorded to.
    pub recording: Option<String>,
    /// The (last) operator who handed the call on from their phone.
    pub transferred_by: Option<String>,
}

impl Record {
    pub fn new(caller: String, called: String, plan: &Plan, started: DateTime<Utc>) -> Record {
        Record {
            caller,
            called,
            plan: plan.name.clone(),
            started,
            answered: None,
            hangup_side: HangupSide::Gateway,
            path: Vec::new(),
            queue: None,
            wait: None,
            operator: None,
            talk: None,
            talk_ended_by: None,
            transfer: false,
            overflowed: false,
            recording: None,
            transferred_by: None,
        }
    }

    pub fn plan(&self) -> &str {
        &self.plan
    }

    pub fn visited(&mut self, node: &str) {
        if self.path.len() < MAX_PATH {
            self.path.push(node.to_owned());
        }
    }

    pub fn cdr(
        &mut self,
        call_id: &str,
        disposition: Disposition,
        end: End,
        now: DateTime<Utc>,
    ) -> Cdr {
        Cdr {
            call_id: call_id.to_owned(),
            start: self.started,
            answer: self.answered,
            end: now,
            caller: std::mem::take(&mut self.caller),
            called: std::mem::take(&mut self.called),
            plan: Some(self.plan.clone()),
            plan_path: std::mem::take(&mut self.path),
            queue: self.queue.take(),
            wait_ms: self.wait.map(|d| d.as_millis() as u64),
            operator: self.operator.take(),
            talk_ms: self.talk.map(|d| d.as_millis() as u64),
            disposition,
            hangup_side: match self.talk_ended_by {
                Some(Party::Operator) => HangupSide::Operator,
                _ => self.hangup_side,
            },
            hangup_cause: end.label().to_owned(),
            recording: self.recording.take(),
            transferred_by: self.transferred_by.take(),
        }
    }
}

impl<E: Env> CallCore<E> {
    /// How the call ended for the caller, as the CDR and the `result`
    /// label tell it.
    pub(super) fn disposition(&self, end: End) -> Disposition {
        // The ACD counts a caller as connected once the operator answers,
        // even if the bridge had not been made when the caller hung up; the
        // record follows the queue log.
        let answered = self.legs.operator_answered();
        let waiting = self.waiting.queued.is_some() && self.waiting.bridged.is_none() && !answered;
        let transferred = self.waiting.bridged.as_deref() == Some(super::legs::TRANSFER_LEG);
        match end {
            _ if transferred => Disposition::Transferred,
            // Hung up while waiting in a queue, or while the transfer rang.
            End::CallerHungUp
                if waiting || (self.record.transfer && self.waiting.bridged.is_none()) =>
            {
                Disposition::Abandoned
            }
            End::Shutdown if waiting => Disposition::Removed,
            End::CallerHungUp | End::PlanHungUp | End::Shutdown
                if self.record.overflowed && self.record.operator.is_none() =>
            {
                Disposition::Overflowed
            }
            _ => end.disposition(),
        }
    }
}

/// The `result` label of `conmutador_calls_ended_total`.
pub fn result_label(d: Disposition) -> &'static str {
    match d {
        Disposition::Completed => "completed",
        Disposition::Abandoned => "abandoned",
        Disposition::Rejected => "rejected",
        Disposition::Overflowed => "overflowed",
        Disposition::Transferred => "transferred",
        Disposition::Failed => "failed",
        Disposition::Removed => "removed",
    }
}
