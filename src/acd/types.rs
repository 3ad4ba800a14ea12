//! The vocabulary between the ACD core and the call layer: events in,
//! commands out, operator states and queue-log records.
//!
//! Plain data only; no behaviour beyond naming. Nothing here knows about SIP
//! or RTP: the call layer turns commands into INVITE/CANCEL/BYE and prompts.

use std::fmt;
use std::time::{Duration, Instant};

/// The call layer's identifier for one caller (one trunk leg).
pub type CallId = u64;

/// Who hung up a connected call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Caller,
    Operator,
}

/// Why an operator's phone did not take a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingFailure {
    /// Rang until the timeout (ours or the phone's 408/480).
    NoAnswer,
    /// 486 / 600.
    Busy,
    /// 603 or the operator rejected the call.
    Declined,
    /// Could not reach the phone at all (no binding, transport error, 5xx).
    Unreachable,
}

impl RingFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            RingFailure::NoAnswer => "noanswer",
            RingFailure::Busy => "busy",
            RingFailure::Declined => "declined",
            RingFailure::Unreachable => "unreachable",
        }
    }
}

/// What happens to the ACD, as told by the call layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcdEvent {
    /// A caller enters `queue`; higher `priority` is served first.
    CallerJoined {
        call: CallId,
        queue: String,
        priority: i32,
    },
    /// The caller hung up (abandon while waiting; completion if connected).
    CallerLeft {
        call: CallId,
    },
    /// The gateway took a waiting caller out of the queue (admin API or
    /// shutdown). Not an abandonment: it says nothing about the caller's
    /// patience, so it feeds neither the abandon counters nor the estimator.
    CallerRemoved {
        call: CallId,
        by: Removal,
    },
    /// The caller pressed a digit while waiting.
    CallerPressedKey {
        call: CallId,
        digit: char,
    },
    /// The operator logged in (registered) or was logged in by an admin.
    OperatorOnline {
        op: String,
    },
    /// The operator logged out (registration gone or admin).
    OperatorOffline {
        op: String,
    },
    /// OPTIONS reachability of the operator's phone changed.
    OperatorReachable {
        op: String,
        reachable: bool,
    },
    /// The operator answered the ring for `call`.
    RingAnswered {
        call: CallId,
        op: String,
    },
    /// The ring for `call` at `op` ended without an answer.
    RingFailed {
        call: CallId,
        op: String,
        reason: RingFailure,
    },
    /// A connected call ended.
    CallEnded {
        call: CallId,
        op: String,
        by: Party,
    },
    /// The operator talking to `call` asked (REFER) to hand it to operator
    /// `op`: ring `op` for it if `op` is free (`Ring`, then the usual
    /// `RingAnswered`/`RingFailed`); a `CancelRing` for `op` says it is
    /// not. The answer ends the first operator's part; `queue` is where the
    /// new part is counted.
    DirectRing {
        call: CallId,
        op: String,
        queue: String,
    },
    /// The operator's part of a connected call ended because the call was
    /// handed on (to a queue, a plan node or a number): talk time and
    /// wrap-up as for any end, and no COMPLETE line (the call logs its own
    /// TRANSFER).
    Transferred {
        call: CallId,
    },
    /// A caller whose transfer failed after the operator left goes back to
    /// `queue` ahead of everyone of its priority who is waiting.
    CallerReturned {
        call: CallId,
        queue: String,
        priority: i32,
    },
    /// Pause from the phone's feature code or the admin API.
    Pause {
        op: String,
        reason: String,
    },
    Unpause {
        op: String,
    },
}

/// Why a caller leaves the queue without an operator; the dialplan has an
/// overflow node for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// The queue was at `max_len` (or the built-in cap) on join.
    Full,
    /// Waited `max_wait`.
    Timeout,
    /// `join_empty` / `leave_when_empty` applied.
    Empty,
    /// The caller pressed this exit key.
    Key(char),
}

/// Who took a waiting caller out of the queue, when it was not the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// `DELETE` on the admin API.
    Admin,
    /// The gateway is stopping.
    Shutdown,
}

impl Removal {
    pub fn as_str(self) -> &'static str {
        match self {
            Removal::Admin => "admin",
            Removal::Shutdown => "shutdown",
        }
    }
}

/// What the call layer must do.
#[derive(Debug, Clone, PartialEq)]
pub enum AcdCommand {
    /// Call operator `op` for `call` (INVITE). The core cancels it itself at
    /// `timeout` (it sends `CancelRing`), so the shell needs no timer of its own.
    Ring {
        call: CallId,
        op: String,
        queue: String,
        timeout: Duration,
    },
    /// Stop ringing `op` for `call` (CANCEL; BYE if it had answered meanwhile).
    CancelRing { call: CallId, op: String },
    /// Bridge `call` with `op`'s answered leg; stop any announcement at once.
    Connect { call: CallId, op: String },
    /// Tell the caller their position (1 = next) and what to say about the
    /// wait. `wait` `None`: nobody is staffed, so no honest figure exists;
    /// say the position only. `estimate` is the expected wait behind it (for
    /// logs and tests; the caller hears `wait`).
    Announce {
        call: CallId,
        position: usize,
        estimate: Option<Duration>,
        wait: Option<WaitSpeech>,
    },
    /// The caller leaves the queue towards the dialplan's overflow for `reason`.
    Exit { call: CallId, reason: ExitReason },
    /// An operator's visible state changed (for the phone's BLF/admin view).
    OperatorState { op: String, state: OperatorState },
    /// A queue-log record for the records room.
    Log(QueueEvent),
}

/// What a waiting caller is told about their wait. The core decides the
/// words' numbers (`estimator::speech`); the speech only says them, so what
/// is scored and what is heard cannot differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitSpeech {
    /// A short wait said in seconds ("treinta segundos", "un minuto y
    /// cuarenta segundos"): 10 s steps under two minutes, 15 s steps to 2¾.
    Seconds(u32),
    /// "About N minutes" (N ≥ 1).
    Minutes(u32),
    /// "Between `low` and `high` minutes": the wait is uncertain.
    Range { low: u32, high: u32 },
    /// The wait would run past what the queue allows (`max_wait`): no
    /// figure, the plan's alternative instead.
    Beyond,
}

impl WaitSpeech {
    /// The figure a caller takes away, in seconds, for scoring: the minutes
    /// said, or the middle of the range. `None` for `Beyond`.
    pub fn heard(&self) -> Option<Duration> {
        match *self {
            WaitSpeech::Seconds(x) => Some(Duration::from_secs(u64::from(x))),
            WaitSpeech::Minutes(m) => Some(Duration::from_secs(u64::from(m) * 60)),
            WaitSpeech::Range { low, high } => {
                Some(Duration::from_secs((u64::from(low) + u64::from(high)) * 30))
            }
            WaitSpeech::Beyond => None,
        }
    }

    /// Whether `waited` fell inside what was said (for a range, its ends
    /// included; a figure counts as the minute around it).
    pub fn covers(&self, waited: Duration) -> bool {
        let m = waited.as_secs_f64() / 60.0;
        match *self {
            WaitSpeech::Seconds(x) => (waited.as_secs_f64() - f64::from(x)).abs() <= 15.0,
            WaitSpeech::Minutes(x) => (m - f64::from(x)).abs() <= 0.5,
            WaitSpeech::Range { low, high } => m >= f64::from(low) && m <= f64::from(high),
            WaitSpeech::Beyond => false,
        }
    }
}

/// An operator's visible state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorState {
    LoggedOut,
    Available,
    Ringing,
    OnCall,
    WrapUp,
    Paused(String),
    /// Logged in but failing OPTIONS; not offered calls.
    Unreachable,
}

impl OperatorState {
    /// Label value for the operators-by-state gauge (bounded set).
    pub fn label(&self) -> &'static str {
        match self {
            OperatorState::LoggedOut => "logged_out",
            OperatorState::Available => "available",
            OperatorState::Ringing => "ringing",
            OperatorState::OnCall => "on_call",
            OperatorState::WrapUp => "wrapup",
            OperatorState::Paused(_) => "paused",
            OperatorState::Unreachable => "unreachable",
        }
    }

    pub const LABELS: [&'static str; 7] = [
        "logged_out",
        "available",
        "ringing",
        "on_call",
        "wrapup",
        "paused",
        "unreachable",
    ];
}

/// One queue-log record, in Asterisk's vocabulary. `at` is the core's clock;
/// the shell stamps wall time when it stores the record.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueEvent {
    pub at: Instant,
    pub queue: String,
    pub call: Option<CallId>,
    pub op: Option<String>,
    pub kind: QueueEventKind,
}

/// The record's payload. `announced` is the estimate made on entry (what the
/// caller heard, or would have heard had they not been rung at once);
/// `waited` is the actual time in the queue.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueEventKind {
    EnterQueue {
        priority: i32,
        position: usize,
        announced: Option<Duration>,
    },
    Connect {
        waited: Duration,
        announced: Option<Duration>,
        ring_time: Duration,
    },
    CompleteCaller {
        waited: Duration,
        talk: Duration,
    },
    CompleteAgent {
        waited: Duration,
        talk: Duration,
    },
    Abandon {
        position: usize,
        entry_position: usize,
        waited: Duration,
        announced: Option<Duration>,
    },
    /// Taken out by the gateway (not an Asterisk event: Asterisk has no
    /// record for a caller removed by an operator or a shutdown).
    Removed {
        by: Removal,
        position: usize,
        entry_position: usize,
        waited: Duration,
        announced: Option<Duration>,
    },
    ExitWithTimeout {
        position: usize,
        waited: Duration,
        announced: Option<Duration>,
    },
    ExitWithKey {
        digit: char,
        position: usize,
        waited: Duration,
        announced: Option<Duration>,
    },
    ExitEmpty {
        position: usize,
        waited: Duration,
        announced: Option<Duration>,
    },
    /// Refused on join because the queue was full (not an Asterisk event).
    Full,
    /// Refused on join by `join_empty` (not an Asterisk event; Asterisk only
    /// sets a channel variable).
    JoinEmpty,
    RingNoAnswer {
        rang: Duration,
        reason: RingFailure,
    },
    /// A ring-all loser was cancelled because another operator answered.
    RingCanceled,
    Pause {
        reason: String,
    },
    Unpause,
    AgentLogin,
    AgentLogoff,
}

impl QueueEventKind {
    /// The queue_log event name.
    pub fn name(&self) -> &'static str {
        match self {
            QueueEventKind::EnterQueue { .. } => "ENTERQUEUE",
            QueueEventKind::Connect { .. } => "CONNECT",
            QueueEventKind::CompleteCaller { .. } => "COMPLETECALLER",
            QueueEventKind::CompleteAgent { .. } => "COMPLETEAGENT",
            QueueEventKind::Abandon { .. } => "ABANDON",
            QueueEventKind::Removed { .. } => "REMOVED",
            QueueEventKind::ExitWithTimeout { .. } => "EXITWITHTIMEOUT",
            QueueEventKind::ExitWithKey { .. } => "EXITWITHKEY",
            QueueEventKind::ExitEmpty { .. } => "EXITEMPTY",
            QueueEventKind::Full => "FULL",
            QueueEventKind::JoinEmpty => "JOINEMPTY",
            QueueEventKind::RingNoAnswer { .. } => "RINGNOANSWER",
            QueueEventKind::RingCanceled => "RINGCANCELED",
            QueueEventKind::Pause { .. } => "PAUSE",
            QueueEventKind::Unpause => "UNPAUSE",
            QueueEventKind::AgentLogin => "AGENTLOGIN",
            QueueEventKind::AgentLogoff => "AGENTLOGOFF",
        }
    }
}

impl fmt::Display for QueueEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
