//! The metric catalog: every metric name the gateway exports, in one place.
//!
//! Conventions: prefix `conmutador_`, base units in the name (`_seconds`,
//! `_bytes`), counters end in `_total`, and labels only take values from small
//! fixed sets (never a Call-ID or a phone number). Other rooms record through
//! the `metrics` macros using these constants; this module registers help text
//! and histogram buckets.
//!
//! [`CATALOG`] describes every constant below (kind, unit, labels, buckets);
//! a test reads this file's source and fails when a constant is missing from
//! it, so a room that appends a constant must also add its catalog entry.
//! [`install`] is the only place that touches the global recorder.
//!
//! Each entry also says where each label's values come from ([`Values`],
//! declared with [`MetricDef::with`]): this is the one vocabulary the code,
//! the dashboard and the alert rules share, and tests hold a live
//! `/metrics` to it. From it [`set_scope`] gives every family its series at
//! start and after each reload (one per fixed value, configured queue, plan
//! and node), and [`render`] leaves out the series of queues no longer
//! configured. A room adding an entry with labels must declare
//! their values, or the catalog tests fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{OnceLock, RwLock};

use metrics::Unit;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// What a metric is, in Prometheus terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The `# TYPE` word Prometheus renders for this kind.
    pub fn prometheus_type(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One catalog entry: everything a dashboard author or a test needs to know.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub help: &'static str,
    /// Label names the recording site may use (values from small fixed sets).
    pub labels: &'static [&'static str],
    /// Where each label's values come from, in the order of `labels`.
    pub values: &'static [Values],
    /// Upper bounds for histograms; `None` for counters and gauges.
    pub buckets: Option<&'static [f64]>,
}

impl MetricDef {
    /// Declares where the values of each label come from (same order as
    /// `labels`); a test fails for a labelled family that does not.
    pub const fn with(self, values: &'static [Values]) -> MetricDef {
        MetricDef { values, ..self }
    }
}

/// Where the values of one label come from. This is the one vocabulary
/// shared by the code that records, the catalog, the dashboard and the
/// alert rules: tests check a live `/metrics` against it, and the series
/// present from the first scrape are made from it ([`register_all`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// Every value gets its series from the first scrape.
    Each(&'static [&'static str]),
    /// The values allowed; only the first one gets a series from the first
    /// scrape (the others appear when first recorded), because the full
    /// product with the other labels would be mostly impossible combinations.
    AnyOf(&'static [&'static str]),
    /// The name of a queue of the running configuration.
    Queue,
    /// The name of a loaded dialplan.
    Plan,
    /// A node of the plan named by the family's `plan` label.
    Node,
}

impl Values {
    /// The fixed values, or `None` when they come from the configuration.
    pub fn fixed(self) -> Option<&'static [&'static str]> {
        match self {
            Values::Each(v) | Values::AnyOf(v) => Some(v),
            Values::Queue | Values::Plan | Values::Node => None,
        }
    }
}

// Label vocabularies. Where the recording code has an enum, its own list is
// used, so the two cannot drift apart.
pub const DIRECTIONS: &[&str] = &["in", "out"];
/// SIP methods as `sip::endpoint::method_label` writes them; responses are
/// counted under `response` (first, so that the series of every response
/// class exist from the start), extension methods under `other`.
pub const SIP_METHODS: &[&str] = &[
    "response",
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "INFO",
    "UPDATE",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
    "other",
];
/// The class of a response (`sip::endpoint::status_class`), `request` for
/// requests.
pub const SIP_STATUSES: &[&str] = &["1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "other", "request"];
pub const SIP_PARSE_KINDS: &[&str] = &["headers", "response", "framing"];
/// `sip::transaction::Retransmitted`.
pub const SIP_RETRANSMISSION_KINDS: &[&str] = &crate::sip::transaction::RETRANSMISSION_KINDS;
pub const TRANSPORTS: &[&str] = &["UDP", "TCP", "TLS"];
/// `sip::tls`: how a handshake ended.
pub const TLS_HANDSHAKE_RESULTS: &[&str] = &["ok", "failed", "timeout"];
pub const OVERLOAD_REASONS: &[&str] = &[
    "calls",
    "cps",
    "media",
    "signalling",
    "draining",
    "rtp_ports",
    "transactions",
    "acd_backlog",
];
/// `call::routes::state_label`.
pub const CALL_STATES: &[&str] = &["ivr", "queued", "ringing", "bridged"];
/// `call::core::record::result_label`.
pub const CALL_RESULTS: &[&str] = &[
    "completed",
    "abandoned",
    "rejected",
    "overflowed",
    "transferred",
    "failed",
    "removed",
];
/// `call::core::End::label` and the refusals of `call::Router::reject`.
pub const CALL_END_REASONS: &[&str] = &[
    "caller_hangup",
    "plan_hangup",
    "cancelled",
    "rtp_timeout",
    "no_ack",
    "shutdown",
    "failed",
    "operator_hangup",
    "transfer_failed",
    "removed",
    "session_expired",
    "overloaded",
    "forbidden",
    "not_found",
    "not_acceptable",
    "rejected",
];
/// Who refreshed a session timer.
pub const SESSION_REFRESHERS: &[&str] = &["gateway", "carrier"];
/// Where an operator's transfer (REFER) sent the caller; `none` when the
/// target could not be read or is not allowed.
pub const TRANSFER_TARGETS: &[&str] = &["operator", "queue", "node", "number", "none"];
/// How an operator's transfer ended.
pub const TRANSFER_RESULTS: &[&str] = &["done", "failed", "refused"];
pub const DTMF_METHODS: &[&str] = &["rfc4733", "inband", "sip_info"];
pub const RELOAD_RESULTS: &[&str] = &["ok", "error"];
/// Whether an answered caller's wait fell inside the range they heard.
pub const WAIT_RANGE_RESULTS: &[&str] = &["inside", "outside"];
/// Outcomes of `acd::Acd` leaving a queue (`acd::Outcome`).
pub const QUEUE_OUTCOMES: &[&str] = &crate::acd::Outcome::LABELS;
/// Digest failures: `sip::digest::Rejection::label` and the registrar's own.
pub const AUTH_FAILURE_REASONS: &[&str] = &[
    "bad_realm",
    "unsupported_algorithm",
    "qop_required",
    "userhash",
    "bad_response",
    "replay",
    "unknown_user",
    "malformed",
    "bad_credentials",
];
pub const RECORD_KINDS: &[&str] = &["cdr", "queue_event"];
pub const RECORD_DROP_REASONS: &[&str] = &["buffer_full", "storage_error", "closed"];

/// Send-side jitter of the media clock: sub-millisecond matters here.
pub const BUCKETS_JITTER: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
];
/// Whole calls: from a few seconds (hang-up in the IVR) to an hour.
pub const BUCKETS_CALL_DURATION: &[f64] = &[
    5.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];
/// INVITE to answer: the gateway answers itself, so mostly sub-second.
pub const BUCKETS_ANSWER_DELAY: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];
/// Time waiting in a queue; 20 s and 30 s are common service-level thresholds.
pub const BUCKETS_QUEUE_WAIT: &[f64] = &[
    5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0,
];
/// Actual minus announced wait: negative means we over-promised the wait.
pub const BUCKETS_PREDICTION_ERROR: &[f64] = &[
    -600.0, -300.0, -120.0, -60.0, -30.0, -10.0, 0.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Talk plus wrap-up of one operator call.
pub const BUCKETS_HANDLE: &[f64] = &[
    30.0, 60.0, 120.0, 180.0, 300.0, 420.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0,
];
/// After-call work.
pub const BUCKETS_WRAPUP: &[f64] = &[5.0, 10.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0];

const fn counter(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
) -> MetricDef {
    MetricDef {
        name,
        kind: Kind::Counter,
        unit: Some(Unit::Count),
        help,
        labels,
        values: &[],
        buckets: None,
    }
}
const fn gauge(
    name: &'static str,
    unit: Unit,
    help: &'static str,
    labels: &'static [&'static str],
) -> MetricDef {
    MetricDef {
        name,
        kind: Kind::Gauge,
        unit: Some(unit),
        help,
        labels,
        values: &[],
        buckets: None,
    }
}
/// A 0..1 share: metrics has no ratio unit, so none is claimed.
const fn ratio(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
) -> MetricDef {
    MetricDef {
        name,
        kind: Kind::Gauge,
        unit: None,
        help,
        labels,
        values: &[],
        buckets: None,
    }
}
const fn histogram(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
) -> MetricDef {
    MetricDef {
        name,
        kind: Kind::Histogram,
        unit: Some(Unit::Seconds),
        help,
        labels,
        values: &[],
        buckets: Some(buckets),
    }
}

/// Every metric the gateway exports.
pub const CATALOG: &[MetricDef] = &[
    counter(
        SIP_MESSAGES_TOTAL,
        "SIP messages received and sent, by direction (in|out), method (responses: response) and status (request, or the class 1xx..6xx).",
        &["direction", "method", "status"],
    )
    .with(&[Values::Each(DIRECTIONS), Values::AnyOf(SIP_METHODS), Values::Each(SIP_STATUSES)]),
    counter(
        SIP_PARSE_ERRORS_TOTAL,
        "SIP messages dropped because they did not parse, by kind (headers|response|framing).",
        &["kind"],
    )
    .with(&[Values::Each(SIP_PARSE_KINDS)]),
    counter(
        SIP_RETRANSMISSIONS_TOTAL,
        "SIP retransmissions sent by the transaction layer, by kind: request (ours, unanswered), response (ours, to a repeated request or until the ACK), ack (ours, to a repeated non-2xx answer).",
        &["kind"],
    )
    .with(&[Values::Each(SIP_RETRANSMISSION_KINDS)]),
    gauge(
        SIP_TRANSACTIONS_ACTIVE,
        Unit::Count,
        "Live SIP transactions, client and server: requests not yet answered (ours or the peer's); the ones sip.max_transactions limits. Answered ones absorbing retransmissions are in conmutador_sip_transactions_absorbing.",
        &[],
    ),
    gauge(SIP_DIALOGS_ACTIVE, Unit::Count, "SIP dialogs alive.", &[]),
    gauge(
        SIGNALLING_LAG_SECONDS,
        Unit::Seconds,
        "How late the signalling runtime's 50 ms probe timer ran, worst of the last one to two seconds; above sip.overload_signalling_lag_ms new calls get 503.",
        &[],
    ),
    gauge(
        MEDIA_BEHIND_RATIO,
        Unit::Count,
        "Share (0-1) of media frames sent more than sip.overload_media_late_ms late or skipped: per clock thread the least of its last three seconds (0 below 50 such frames), worst thread; above 0.01 new calls get 503.",
        &[],
    ),
    gauge(
        SIP_TCP_CONNECTIONS,
        Unit::Count,
        "Open SIP TCP connections.",
        &[],
    ),
    counter(
        SIP_OVERLOAD_REJECTIONS_TOTAL,
        "New work refused because a limit was reached, by reason (calls|cps|media|signalling|draining|rtp_ports|transactions|acd_backlog); every 503 sent is in conmutador_sip_503_sent_total.",
        &["reason"],
    )
    .with(&[Values::Each(OVERLOAD_REASONS)]),
    counter(
        SIP_SEND_FAILURES_TOTAL,
        "SIP messages that could not be handed to the socket (full buffer, closed connection), by transport.",
        &["transport"],
    )
    .with(&[Values::Each(TRANSPORTS)]),
    counter(
        SIP_TCP_REFUSED_TOTAL,
        "TCP connections closed at accept because max_tcp_connections was reached.",
        &[],
    ),
    counter(
        SIP_UDP_KERNEL_DROPS_TOTAL,
        "SIP datagrams the kernel dropped at our UDP sockets before the gateway read them (receive buffer full); sampled once a second. Senders will retransmit, late.",
        &[],
    ),
    counter(
        SIP_OVERSIZE_TOTAL,
        "SIP messages refused for exceeding a size cap, by transport.",
        &["transport"],
    )
    .with(&[Values::Each(TRANSPORTS)]),
    gauge(
        CALLS_ACTIVE,
        Unit::Count,
        "Calls in progress, by state (ivr|queued|ringing|bridged).",
        &["state"],
    )
    .with(&[Values::Each(CALL_STATES)]),
    counter(CALLS_STARTED_TOTAL, "Calls accepted from the trunk.", &[]),
    counter(
        CALLS_ENDED_TOTAL,
        "Calls ended, by result (completed|abandoned|rejected|failed|overflowed|transferred|removed) and reason (caller_hangup, plan_hangup, rtp_timeout, forbidden, not_found, overloaded, ...).",
        &["result", "reason"],
    )
    .with(&[Values::Each(CALL_RESULTS), Values::AnyOf(CALL_END_REASONS)]),
    histogram(
        CALL_DURATION_SECONDS,
        "Duration of ended calls from INVITE to hang-up.",
        &[],
        BUCKETS_CALL_DURATION,
    ),
    histogram(
        CALL_ANSWER_DELAY_SECONDS,
        "Time from the caller's INVITE to the gateway's 200 OK.",
        &[],
        BUCKETS_ANSWER_DELAY,
    ),
    counter(
        RTP_PACKETS_TOTAL,
        "RTP packets received and sent, by direction (in|out).",
        &["direction"],
    )
    .with(&[Values::Each(DIRECTIONS)]),
    counter(
        RTP_BYTES_TOTAL,
        "RTP payload bytes received and sent, by direction (in|out).",
        &["direction"],
    )
    .with(&[Values::Each(DIRECTIONS)]),
    counter(
        RTP_PACKETS_LOST_TOTAL,
        "RTP packets missing from received sequence numbers.",
        &[],
    ),
    counter(
        SESSION_REFRESHES_TOTAL,
        "Session-timer refreshes (RFC 4028) of trunk calls, by who refreshed (gateway|carrier); a session not refreshed in time ends with reason session_expired.",
        &["by"],
    )
    .with(&[Values::Each(SESSION_REFRESHERS)]),
    counter(
        OPERATOR_TRANSFERS_TOTAL,
        "Transfers asked for by operators' phones (REFER), by target kind (operator|queue|node|number|none) and result: done (the caller reached the target), failed (the target could not take the call: the caller went back to the operator or to the front of its queue) or refused (403/491/501: the call stayed as it was).",
        &["target", "result"],
    )
    .with(&[Values::Each(TRANSFER_TARGETS), Values::Each(TRANSFER_RESULTS)]),
    counter(
        ACD_EVENTS_DROPPED_TOTAL,
        "Operator events (log-in, pause, reachability) dropped because the ACD task was far behind; a call's own events are never dropped (new calls are refused with 503 first).",
        &[],
    ),
    counter(
        RTP_KERNEL_DROPS_TOTAL,
        "RTP datagrams the kernel dropped at legs' sockets before the media clock read them (receive buffer full: a flood, or a clock that could not keep up); sampled once a second per leg.",
        &[],
    ),
    counter(
        RTP_DROPPED_TOTAL,
        "RTP packets the media engine dropped, by reason (oversize|malformed|not_started|unknown_source|send_error|events_full|forward_full|unreachable).",
        &["reason"],
    )
    .with(&[Values::Each(&crate::media::DROP_REASONS)]),
    counter(
        SRTP_DROPPED_TOTAL,
        "SRTP packets received and dropped, by reason (auth: the tag did not verify; replay: seen before or older than the window; malformed; ssrc_limit).",
        &["reason"],
    )
    .with(&[Values::Each(&crate::media::SRTP_DROP_REASONS)]),
    gauge(
        SRTP_LEGS,
        Unit::Count,
        "Media legs running SRTP now.",
        &[],
    ),
    counter(
        RTP_TIMEOUTS_TOTAL,
        "Call legs ended because no RTP arrived within the timeout.",
        &[],
    ),
    histogram(
        MEDIA_SEND_JITTER_SECONDS,
        "Lateness of each media clock tick against its 20 ms schedule.",
        &[],
        BUCKETS_JITTER,
    ),
    counter(
        MEDIA_LATE_FRAMES_TOTAL,
        "Media frames sent later than one frame interval after their due time.",
        &[],
    ),
    gauge(
        MEDIA_PORTS_IN_USE,
        Unit::Count,
        "RTP ports allocated from the configured range.",
        &[],
    ),
    counter(
        DTMF_DIGITS_TOTAL,
        "DTMF digits detected, by method (rfc4733|inband|sip_info).",
        &["method"],
    )
    .with(&[Values::Each(DTMF_METHODS)]),
    counter(
        IVR_NODE_VISITS_TOTAL,
        "Dialplan node visits, by plan and node.",
        &["plan", "node"],
    )
    .with(&[Values::Plan, Values::Node]),
    counter(
        IVR_INVALID_TOTAL,
        "Menu inputs that matched no option, by plan and node.",
        &["plan", "node"],
    )
    .with(&[Values::Plan, Values::Node]),
    counter(
        IVR_TIMEOUTS_TOTAL,
        "Menus and digit collections that timed out without input, by plan and node.",
        &["plan", "node"],
    )
    .with(&[Values::Plan, Values::Node]),
    counter(
        DIALPLAN_RELOAD_TOTAL,
        "Dialplan reloads, by result (ok|error).",
        &["result"],
    )
    .with(&[Values::Each(RELOAD_RESULTS)]),
    gauge(
        QUEUE_CALLERS_WAITING,
        Unit::Count,
        "Callers waiting in a queue.",
        &["queue"],
    )
    .with(&[Values::Queue]),
    gauge(
        QUEUE_OLDEST_WAIT_SECONDS,
        Unit::Seconds,
        "How long the longest-waiting caller of a queue has waited.",
        &["queue"],
    )
    .with(&[Values::Queue]),
    histogram(
        QUEUE_WAIT_ANSWERED_SECONDS,
        "Queue wait of callers that reached an operator.",
        &["queue"],
        BUCKETS_QUEUE_WAIT,
    )
    .with(&[Values::Queue]),
    histogram(
        QUEUE_WAIT_ABANDONED_SECONDS,
        "Queue wait of callers that hung up before reaching an operator.",
        &["queue"],
        BUCKETS_QUEUE_WAIT,
    )
    .with(&[Values::Queue]),
    gauge(
        QUEUE_ESTIMATED_WAIT_SECONDS,
        Unit::Seconds,
        "Wait estimated for the last caller who joined the queue; NaN until one has been given an estimate.",
        &["queue"],
    )
    .with(&[Values::Queue]),
    histogram(
        QUEUE_WAIT_PREDICTION_ERROR_SECONDS,
        "Actual wait minus the wait as heard on entry (the minutes said, or a range's middle) of answered callers who heard one (negative: shorter than announced).",
        &["queue"],
        BUCKETS_PREDICTION_ERROR,
    )
    .with(&[Values::Queue]),
    gauge(
        QUEUE_WAIT_PREDICTION_MAE_SECONDS,
        Unit::Seconds,
        "Mean absolute error of the waits as heard on entry, of answered callers who heard one; NaN until one has been scored.",
        &["queue"],
    )
    .with(&[Values::Queue]),
    counter(
        QUEUE_WAIT_RANGES_TOTAL,
        "Answered callers who had heard a wait range on entry, by whether the wait fell inside it (result=inside|outside).",
        &["queue", "result"],
    )
    .with(&[Values::Queue, Values::Each(WAIT_RANGE_RESULTS)]),
    ratio(
        QUEUE_WAIT_RANGE_COVERAGE_RATIO,
        "Share of answered callers told a wait range whose wait fell inside it (target at least 0.8); NaN until one has been scored.",
        &["queue"],
    )
    .with(&[Values::Queue]),
    counter(
        QUEUE_WAIT_UNANNOUNCED_TOTAL,
        "Answered callers who heard no wait figure on entry (rung at once, or told the wait runs past what the queue allows); not in the prediction error.",
        &["queue"],
    )
    .with(&[Values::Queue]),
    ratio(
        QUEUE_SERVICE_LEVEL_RATIO,
        "Share of callers who left the queue answered or abandoned that were answered within its service_level_threshold (abandonments count against it); NaN until one has left.",
        &["queue"],
    )
    .with(&[Values::Queue]),
    ratio(
        QUEUE_ABANDON_RATIO,
        "Share of callers who left the queue answered or abandoned that abandoned; NaN until one has left.",
        &["queue"],
    )
    .with(&[Values::Queue]),
    counter(
        QUEUE_CALLERS_TOTAL,
        "Callers leaving a queue, by outcome (answered|abandoned|timeout|key|empty|joinempty|full|removed).",
        &["queue", "outcome"],
    )
    .with(&[Values::Queue, Values::Each(QUEUE_OUTCOMES)]),
    gauge(
        OPERATORS,
        Unit::Count,
        "Operators per queue, by state (logged_out|available|ringing|on_call|wrapup|paused|unreachable).",
        &["queue", "state"],
    )
    .with(&[Values::Queue, Values::Each(&crate::acd::OperatorState::LABELS)]),
    ratio(
        OPERATOR_OCCUPANCY_RATIO,
        "Share of a queue's logged-in operators ringing, talking or in wrap-up; NaN while none is logged in.",
        &["queue"],
    )
    .with(&[Values::Queue]),
    histogram(
        OPERATOR_HANDLE_SECONDS,
        "Handle time (talk plus wrap-up) of operator calls.",
        &["queue"],
        BUCKETS_HANDLE,
    )
    .with(&[Values::Queue]),
    histogram(
        OPERATOR_WRAPUP_SECONDS,
        "After-call work time of operators.",
        &["queue"],
        BUCKETS_WRAPUP,
    )
    .with(&[Values::Queue]),
    counter(
        OPERATOR_RING_NO_ANSWER_TOTAL,
        "Operator rings that timed out or were refused.",
        &["queue"],
    )
    .with(&[Values::Queue]),
    gauge(
        REGISTRATIONS_ACTIVE,
        Unit::Count,
        "Operator phone registrations currently bound.",
        &[],
    ),
    counter(
        AUTH_FAILURES_TOTAL,
        "Digest authentication failures, by reason.",
        &["reason"],
    )
    .with(&[Values::Each(AUTH_FAILURE_REASONS)]),
    counter(
        RECORDS_WRITTEN_TOTAL,
        "Call records and queue events written to storage, by kind (cdr|queue_event).",
        &["kind"],
    )
    .with(&[Values::Each(RECORD_KINDS)]),
    counter(
        RECORDS_DROPPED_TOTAL,
        "Call records and queue events lost, by kind and reason (buffer_full|storage_error|closed).",
        &["kind", "reason"],
    )
    .with(&[Values::Each(RECORD_KINDS), Values::Each(RECORD_DROP_REASONS)]),
    counter(
        SIP_503_SENT_TOTAL,
        "503 Service Unavailable responses sent, whatever the reason (overload, draining, no RTP ports).",
        &[],
    ),
    counter(
        SIP_FOREIGN_INVITES_TOTAL,
        "INVITEs refused with 403 because their source is not a trunk network (no call record is written for them).",
        &[],
    ),
    gauge(
        QUEUE_OPEN,
        Unit::Count,
        "1 while a caller can reach the queue through a loaded dialplan at this hour (its plan's office-hours branches), else 0.",
        &["queue"],
    )
    .with(&[Values::Queue]),
    gauge(
        QUEUE_WAIT_ALERT_SECONDS,
        Unit::Seconds,
        "The queue's configured wait_alert: a caller waiting longer is worth an alert (ConmutadorOldestWaitHigh).",
        &["queue"],
    )
    .with(&[Values::Queue]),
    counter(
        GUARD_MESSAGES_TOTAL,
        "SIP messages judged by the source guard before parsing, by class (invite|register|other) and decision (admitted|limited: over the source's rate, dropped|blocked: from a blocked source, dropped).",
        &["class", "decision"],
    )
    .with(&[
        Values::Each(&crate::sip::guard::CLASS_LABELS),
        Values::Each(&crate::sip::guard::DECISION_LABELS),
    ]),
    counter(
        GUARD_BLOCKS_TOTAL,
        "Sources blocked by the guard, by reason (flood|auth|scan).",
        &["reason"],
    )
    .with(&[Values::Each(&crate::sip::guard::BlockReason::LABELS)]),
    counter(
        GUARD_UNBLOCKS_TOTAL,
        "Blocks lifted through the admin API.",
        &[],
    ),
    gauge(
        GUARD_BLOCKED_SOURCES,
        Unit::Count,
        "Sources blocked now (their messages are dropped unanswered).",
        &[],
    ),
    counter(
        GUARD_AUTH_TOTAL,
        "Password-guessing decisions, by decision (delayed|source_blocked|lock_started|account_locked: credentials refused because the account is locked for that address).",
        &["decision"],
    )
    .with(&[Values::Each(&crate::sip::guard::AUTH_DECISION_LABELS)]),
    counter(
        GUARD_CALLER_PLACES_REFUSED_TOTAL,
        "Queue joins refused because the calling number already held guard.caller_places places.",
        &[],
    ),
    gauge(
        SIP_TRANSACTIONS_ABSORBING,
        Unit::Count,
        "Answered SIP transactions kept only to absorb retransmissions and resend a non-2xx answer until its ACK (up to 32 s); not counted against sip.max_transactions.",
        &[],
    ),
    counter(
        SIP_ABSORBING_EVICTED_TOTAL,
        "Finished SIP transactions dropped before their 32 s because the absorbing set was full (8 x sip.max_transactions).",
        &[],
    ),
    counter(
        SIP_TLS_HANDSHAKES_TOTAL,
        "SIP TLS handshakes, by direction (in: a peer connected to tls.listen, out: the gateway connected) and result (ok|failed: refused, e.g. TLS 1.1 only or an unverifiable certificate|timeout: not done within tls.handshake_timeout).",
        &["direction", "result"],
    )
    .with(&[Values::Each(DIRECTIONS), Values::Each(TLS_HANDSHAKE_RESULTS)]),
    gauge(
        SIP_TLS_CONNECTIONS,
        Unit::Count,
        "Open SIP TLS connections, accepted and opened by the gateway, handshaking ones included (at most tls.max_connections).",
        &[],
    ),
    counter(
        SIP_TLS_REFUSED_TOTAL,
        "TLS connections closed at accept because tls.max_connections was reached.",
        &[],
    ),
    counter(
        SIP_TLS_RELOADS_TOTAL,
        "Re-reads of the TLS certificate, key and CA files (SIGHUP), by result (ok|error: the previous files stay in force).",
        &["result"],
    )
    .with(&[Values::Each(RELOAD_RESULTS)]),
    gauge(
        WALLBOARD_STREAMS,
        Unit::Count,
        "Wallboard event streams open now (one per open wallboard page), at most 32.",
        &[],
    ),
    counter(
        SUPERVISION_SESSIONS_TOTAL,
        "Supervision sessions started, by mode (listen|whisper|barge) at the start.",
        &["mode"],
    )
    .with(&[Values::Each(SUPERVISION_MODES)]),
    counter(
        SUPERVISION_MODE_CHANGES_TOTAL,
        "Supervision mode changes (by key or admin API), by the mode switched to.",
        &["mode"],
    )
    .with(&[Values::Each(SUPERVISION_MODES)]),
    gauge(
        SUPERVISION_SESSIONS_ACTIVE,
        Unit::Count,
        "Supervision sessions going on now.",
        &[],
    ),
    counter(
        SUPERVISION_REFUSALS_TOTAL,
        "Supervision requests refused, by reason (unknown_operator|ambiguous|operator_idle|not_your_queue|busy|not_registered).",
        &["reason"],
    )
    .with(&[Values::Each(SUPERVISION_REFUSAL_REASONS)]),
    // Recording (appended by the recording room)
    counter(
        RECORDINGS_STARTED_TOTAL,
        "Call recordings started (a two-channel WAV file opened).",
        &[],
    ),
    counter(
        RECORDINGS_COMPLETED_TOTAL,
        "Call recordings closed normally at the end of their call.",
        &[],
    ),
    counter(
        RECORDINGS_FAILED_TOTAL,
        "Call recordings not made or stopped early, by reason (disk_full: free space under recording.min_free_mb; write_error: the file could not be created or written; busy: too many recordings at once). The call itself goes on.",
        &["reason"],
    )
    .with(&[Values::Each(&crate::media::RECORDING_FAIL_REASONS)]),
    gauge(
        RECORDING_BYTES,
        Unit::Bytes,
        "Bytes of recordings on disk under the recording directory.",
        &[],
    ),
    counter(
        RECORDINGS_DELETED_TOTAL,
        "Recordings deleted because they were older than recording.retention_days.",
        &[],
    ),
    counter(
        RECORDINGS_PAUSED_TOTAL,
        "Times an operator paused a recording with the pause code.",
        &[],
    ),
    counter(
        RECORDING_FRAMES_DROPPED_TOTAL,
        "Audio frames the media clock could not hand to the recorder (its queue was full): heard by the parties, missing (silent) in the file.",
        &[],
    ),
];

/// The catalog entry of a metric name, if it exists.
pub fn lookup(name: &str) -> Option<&'static MetricDef> {
    CATALOG.iter().find(|m| m.name == name)
}

/// Resolves a series name as Prometheus stores it (histograms as
/// `_bucket`/`_sum`/`_count`) to its catalog entry.
pub fn lookup_series(series: &str) -> Option<&'static MetricDef> {
    if let Some(def) = lookup(series) {
        return Some(def);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = series.strip_suffix(suffix)?;
        lookup(base).filter(|d| d.kind == Kind::Histogram)
    })
}

fn builder() -> PrometheusBuilder {
    CATALOG
        .iter()
        .filter_map(|m| m.buckets.map(|b| (m.name, b)))
        .fold(PrometheusBuilder::new(), |b, (name, buckets)| {
            b.set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)
                .expect("catalog buckets are non-empty")
        })
}

/// Registers help text and units for every catalog entry on the current
/// recorder (global, or a local one inside `metrics::with_local_recorder`).
pub fn describe_all() {
    for m in CATALOG {
        match (m.kind, m.unit) {
            (Kind::Counter, Some(u)) => metrics::describe_counter!(m.name, u, m.help),
            (Kind::Counter, None) => metrics::describe_counter!(m.name, m.help),
            (Kind::Gauge, Some(u)) => metrics::describe_gauge!(m.name, u, m.help),
            (Kind::Gauge, None) => metrics::describe_gauge!(m.name, m.help),
            (Kind::Histogram, Some(u)) => metrics::describe_histogram!(m.name, u, m.help),
            (Kind::Histogram, None) => metrics::describe_histogram!(m.name, m.help),
        }
    }
}

/// A recorder with the catalog's buckets and descriptions that is not
/// installed globally: for unit tests that must not fight over the global one.
pub fn build_recorder() -> PrometheusRecorder {
    let recorder = builder().build_recorder();
    metrics::with_local_recorder(&recorder, describe_all);
    recorder
}

/// Installs the Prometheus recorder globally (once per process; later calls
/// return the same handle) and describes every metric.
///
/// If some other recorder was installed first, the gateway still needs a
/// renderable handle, so a detached one is returned and a warning logged:
/// `/metrics` then shows only descriptions, which is visible in tests.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = builder().build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => describe_all(),
                Err(e) => {
                    tracing::warn!(error = %e, "a metrics recorder was already installed; /metrics will be empty");
                    let detached = build_recorder();
                    return detached.handle();
                }
            }
            handle
        })
        .clone()
}

/// What the running configuration names: the values of the labels whose
/// [`Values`] are `Queue`, `Plan` and `Node`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub queues: BTreeSet<String>,
    /// Plan name → the names of its nodes.
    pub plans: BTreeMap<String, BTreeSet<String>>,
}

impl Scope {
    /// Whether a series with these labels belongs to the configuration in
    /// force: a queue no longer configured takes its series with it. Plans
    /// and nodes a reload removed keep theirs, because calls in progress
    /// finish on the plan they started with and are counted there.
    fn admits(&self, def: &MetricDef, labels: &[(String, String)]) -> bool {
        def.labels
            .iter()
            .zip(def.values)
            .filter(|(_, values)| **values == Values::Queue)
            .all(|(label, _)| {
                labels
                    .iter()
                    .find(|(k, _)| k == label)
                    .is_none_or(|(_, q)| self.queues.contains(q))
            })
    }
}

/// The label sets a family shows from the first scrape: the product of its
/// labels' values ([`Values`] says which), with the configured queues,
/// plans and plan nodes for the labels that name them.
pub fn initial_series(def: &MetricDef, scope: &Scope) -> Vec<Vec<(&'static str, String)>> {
    let mut out: Vec<Vec<(&'static str, String)>> = vec![Vec::new()];
    for (label, values) in def.labels.iter().zip(def.values) {
        let mut next = Vec::new();
        for set in out {
            let choices: Vec<String> = match values {
                Values::Each(v) => v.iter().map(|s| s.to_string()).collect(),
                Values::AnyOf(v) => v.iter().take(1).map(|s| s.to_string()).collect(),
                Values::Queue => scope.queues.iter().cloned().collect(),
                Values::Plan => scope.plans.keys().cloned().collect(),
                Values::Node => set
                    .iter()
                    .find(|(l, _)| *l == "plan")
                    .and_then(|(_, p)| scope.plans.get(p))
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect(),
            };
            for c in choices {
                let mut s = set.clone();
                s.push((*label, c));
                next.push(s);
            }
        }
        out = next;
    }
    out
}

/// Gives every catalog family its series on the current recorder: counters
/// at 0, gauges and histograms empty at 0 until their room sets them (a
/// gauge already set keeps its value, a counter already counted keeps its
/// count). Dashboards and `absent`-style alerts treat a missing series as
/// "no data", never as zero, so nothing may wait for a first event.
pub fn register_all(scope: &Scope) {
    for def in CATALOG {
        for set in initial_series(def, scope) {
            let labels: Vec<metrics::Label> = set
                .into_iter()
                .map(|(k, v)| metrics::Label::new(k, v))
                .collect();
            match def.kind {
                Kind::Counter => metrics::counter!(def.name, labels).increment(0),
                Kind::Gauge => metrics::gauge!(def.name, labels).increment(0.0),
                Kind::Histogram => drop(metrics::histogram!(def.name, labels)),
            }
        }
    }
}

/// The scope `/metrics` shows; `None` (unit tests with their own
/// recorders) shows everything.
static SCOPE: RwLock<Option<Scope>> = RwLock::new(None);

/// Makes `scope` the configuration in force: its series exist from now on
/// ([`register_all`] on the global recorder) and [`render`] hides those of
/// queues it no longer names. Called at start and after every reload.
pub fn set_scope(scope: Scope) {
    register_all(&scope);
    *SCOPE.write().unwrap_or_else(|p| p.into_inner()) = Some(scope);
}

/// Replaces the plans of the scope in force (after a dialplan reload; the
/// queues come from the gateway configuration, which a reload keeps).
pub fn set_scope_plans(plans: BTreeMap<String, BTreeSet<String>>) {
    let current = SCOPE
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default();
    set_scope(Scope { plans, ..current });
}

/// The `/metrics` text: the handle's rendering without the series of
/// queues no longer configured. The recorder cannot forget a series, so
/// they are left out here.
pub fn render(handle: &PrometheusHandle) -> String {
    let text = handle.render();
    match &*SCOPE.read().unwrap_or_else(|p| p.into_inner()) {
        Some(scope) => in_scope(&text, scope),
        None => text,
    }
}

/// `text` (Prometheus exposition) without the sample lines `scope` does
/// not admit.
pub fn in_scope(text: &str, scope: &Scope) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let keep = line.starts_with('#') || {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            match lookup_series(&line[..name_end]) {
                Some(def) if def.values.contains(&Values::Queue) => {
                    scope.admits(def, &sample_labels(&line[name_end..]))
                }
                _ => true,
            }
        };
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The labels of a sample line after its name (`{k="v",...} value`).
pub fn sample_labels(rest: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(inner) = rest.strip_prefix('{') else {
        return out;
    };
    let mut chars = inner.chars();
    loop {
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim_start_matches(',')
            .trim()
            .to_string();
        if key.is_empty() || key.starts_with('}') || chars.next() != Some('"') {
            return out;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(e) => value.push(e),
                    None => {}
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.push((key, value));
    }
}

/// The metrics reference as a Markdown table (README.md embeds it; a test
/// keeps the two equal).
pub fn markdown_table() -> String {
    let mut out = String::from("| metric | type | labels | help |\n| --- | --- | --- | --- |\n");
    for m in CATALOG {
        let labels = if m.labels.is_empty() {
            "—".to_string()
        } else {
            m.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            m.name,
            m.kind.prometheus_type(),
            labels,
            m.help.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;

// SIP
pub const SIP_MESSAGES_TOTAL: &str = "conmutador_sip_messages_total";
pub const SIP_PARSE_ERRORS_TOTAL: &str = "conmutador_sip_parse_errors_total";
pub const SIP_RETRANSMISSIONS_TOTAL: &str = "conmutador_sip_retransmissions_total";
pub const SIP_TRANSACTIONS_ACTIVE: &str = "conmutador_sip_transactions_active";
pub const SIP_DIALOGS_ACTIVE: &str = "conmutador_sip_dialogs_active";
pub const SIP_TCP_CONNECTIONS: &str = "conmutador_sip_tcp_connections";
pub const SIP_OVERLOAD_REJECTIONS_TOTAL: &str = "conmutador_sip_overload_rejections_total";
pub const SIGNALLING_LAG_SECONDS: &str = "conmutador_signalling_lag_seconds";
pub const MEDIA_BEHIND_RATIO: &str = "conmutador_media_behind_ratio";
pub const SIP_OVERSIZE_TOTAL: &str = "conmutador_sip_oversize_total";
pub const SIP_UDP_KERNEL_DROPS_TOTAL: &str = "conmutador_sip_udp_kernel_drops_total";

// Calls
pub const CALLS_ACTIVE: &str = "conmutador_calls_active";
pub const CALLS_STARTED_TOTAL: &str = "conmutador_calls_started_total";
pub const CALLS_ENDED_TOTAL: &str = "conmutador_calls_ended_total";
pub const CALL_DURATION_SECONDS: &str = "conmutador_call_duration_seconds";
pub const CALL_ANSWER_DELAY_SECONDS: &str = "conmutador_call_answer_delay_seconds";

// Media
pub const RTP_PACKETS_TOTAL: &str = "conmutador_rtp_packets_total";
pub const RTP_BYTES_TOTAL: &str = "conmutador_rtp_bytes_total";
pub const RTP_PACKETS_LOST_TOTAL: &str = "conmutador_rtp_packets_lost_total";
pub const RTP_TIMEOUTS_TOTAL: &str = "conmutador_rtp_timeouts_total";
pub const MEDIA_SEND_JITTER_SECONDS: &str = "conmutador_media_send_jitter_seconds";
pub const MEDIA_LATE_FRAMES_TOTAL: &str = "conmutador_media_late_frames_total";
pub const MEDIA_PORTS_IN_USE: &str = "conmutador_media_ports_in_use";
pub const DTMF_DIGITS_TOTAL: &str = "conmutador_dtmf_digits_total";

// IVR
pub const IVR_NODE_VISITS_TOTAL: &str = "conmutador_ivr_node_visits_total";
pub const IVR_INVALID_TOTAL: &str = "conmutador_ivr_invalid_total";
pub const IVR_TIMEOUTS_TOTAL: &str = "conmutador_ivr_timeouts_total";
pub const DIALPLAN_RELOAD_TOTAL: &str = "conmutador_dialplan_reload_total";

// Queues
pub const QUEUE_CALLERS_WAITING: &str = "conmutador_queue_callers_waiting";
pub const QUEUE_OLDEST_WAIT_SECONDS: &str = "conmutador_queue_oldest_wait_seconds";
pub const QUEUE_WAIT_ANSWERED_SECONDS: &str = "conmutador_queue_wait_answered_seconds";
pub const QUEUE_WAIT_ABANDONED_SECONDS: &str = "conmutador_queue_wait_abandoned_seconds";
pub const QUEUE_ESTIMATED_WAIT_SECONDS: &str = "conmutador_queue_estimated_wait_seconds";
pub const QUEUE_WAIT_PREDICTION_ERROR_SECONDS: &str =
    "conmutador_queue_wait_prediction_error_seconds";
pub const QUEUE_WAIT_PREDICTION_MAE_SECONDS: &str = "conmutador_queue_wait_prediction_mae_seconds";
pub const QUEUE_WAIT_RANGES_TOTAL: &str = "conmutador_queue_wait_ranges_total";
pub const QUEUE_WAIT_RANGE_COVERAGE_RATIO: &str = "conmutador_queue_wait_range_coverage_ratio";
pub const QUEUE_WAIT_UNANNOUNCED_TOTAL: &str = "conmutador_queue_wait_unannounced_total";
pub const QUEUE_SERVICE_LEVEL_RATIO: &str = "conmutador_queue_service_level_ratio";
pub const QUEUE_ABANDON_RATIO: &str = "conmutador_queue_abandon_ratio";
pub const QUEUE_CALLERS_TOTAL: &str = "conmutador_queue_callers_total";

// Operators
pub const OPERATORS: &str = "conmutador_operators";
pub const OPERATOR_OCCUPANCY_RATIO: &str = "conmutador_operator_occupancy_ratio";
pub const OPERATOR_HANDLE_SECONDS: &str = "conmutador_operator_handle_seconds";
pub const OPERATOR_WRAPUP_SECONDS: &str = "conmutador_operator_wrapup_seconds";
pub const OPERATOR_RING_NO_ANSWER_TOTAL: &str = "conmutador_operator_ring_no_answer_total";
pub const REGISTRATIONS_ACTIVE: &str = "conmutador_registrations_active";
pub const AUTH_FAILURES_TOTAL: &str = "conmutador_auth_failures_total";

// Records
pub const RECORDS_WRITTEN_TOTAL: &str = "conmutador_records_written_total";
pub const RECORDS_DROPPED_TOTAL: &str = "conmutador_records_dropped_total";
pub const SIP_SEND_FAILURES_TOTAL: &str = "conmutador_sip_send_failures_total";
pub const SIP_TCP_REFUSED_TOTAL: &str = "conmutador_sip_tcp_refused_total";

// Media (appended by the media room)
/// RTP packets dropped by the media engine, label `reason`: oversize,
/// malformed, not_started, unknown_source, send_error, events_full,
/// forward_full, unreachable (the peer's port answered "unreachable").
pub const RTP_DROPPED_TOTAL: &str = "conmutador_rtp_dropped_total";
pub const RTP_KERNEL_DROPS_TOTAL: &str = "conmutador_rtp_kernel_drops_total";
/// SRTP packets dropped, label `reason`: auth, replay, malformed, ssrc_limit.
pub const SRTP_DROPPED_TOTAL: &str = "conmutador_srtp_dropped_total";
pub const SRTP_LEGS: &str = "conmutador_srtp_legs";
pub const SESSION_REFRESHES_TOTAL: &str = "conmutador_session_refreshes_total";
pub const OPERATOR_TRANSFERS_TOTAL: &str = "conmutador_operator_transfers_total";
pub const ACD_EVENTS_DROPPED_TOTAL: &str = "conmutador_acd_events_dropped_total";
pub const SIP_503_SENT_TOTAL: &str = "conmutador_sip_503_sent_total";
pub const SIP_FOREIGN_INVITES_TOTAL: &str = "conmutador_sip_foreign_invites_total";
pub const QUEUE_OPEN: &str = "conmutador_queue_open";
pub const QUEUE_WAIT_ALERT_SECONDS: &str = "conmutador_queue_wait_alert_seconds";

// Source guard (appended by the guard room)
pub const GUARD_MESSAGES_TOTAL: &str = "conmutador_guard_messages_total";
pub const GUARD_BLOCKS_TOTAL: &str = "conmutador_guard_blocks_total";
pub const GUARD_UNBLOCKS_TOTAL: &str = "conmutador_guard_unblocks_total";
pub const GUARD_BLOCKED_SOURCES: &str = "conmutador_guard_blocked_sources";
pub const GUARD_AUTH_TOTAL: &str = "conmutador_guard_auth_total";
pub const GUARD_CALLER_PLACES_REFUSED_TOTAL: &str = "conmutador_guard_caller_places_refused_total";

// SIP transactions (appended by the sip room)
pub const SIP_TRANSACTIONS_ABSORBING: &str = "conmutador_sip_transactions_absorbing";
pub const SIP_ABSORBING_EVICTED_TOTAL: &str = "conmutador_sip_absorbing_evicted_total";

// SIP over TLS (appended by the tls room)
pub const SIP_TLS_HANDSHAKES_TOTAL: &str = "conmutador_sip_tls_handshakes_total";
pub const SIP_TLS_CONNECTIONS: &str = "conmutador_sip_tls_connections";
pub const SIP_TLS_REFUSED_TOTAL: &str = "conmutador_sip_tls_refused_total";
pub const SIP_TLS_RELOADS_TOTAL: &str = "conmutador_sip_tls_reloads_total";
// Wallboard (appended by the wallboard room)
pub const WALLBOARD_STREAMS: &str = "conmutador_wallboard_streams";
// Supervision (appended by the supervision room)
pub const SUPERVISION_SESSIONS_TOTAL: &str = "conmutador_supervision_sessions_total";
pub const SUPERVISION_MODE_CHANGES_TOTAL: &str = "conmutador_supervision_mode_changes_total";
pub const SUPERVISION_SESSIONS_ACTIVE: &str = "conmutador_supervision_sessions_active";
pub const SUPERVISION_REFUSALS_TOTAL: &str = "conmutador_supervision_refusals_total";
pub const SUPERVISION_MODES: &[&str] = &["listen", "whisper", "barge"];
pub const SUPERVISION_REFUSAL_REASONS: &[&str] = &crate::call::supervise::REFUSAL_REASONS;
// Recording (appended by the recording room)
pub const RECORDINGS_STARTED_TOTAL: &str = "conmutador_recordings_started_total";
pub const RECORDINGS_COMPLETED_TOTAL: &str = "conmutador_recordings_completed_total";
pub const RECORDINGS_FAILED_TOTAL: &str = "conmutador_recordings_failed_total";
pub const RECORDING_BYTES: &str = "conmutador_recording_bytes";
pub const RECORDINGS_DELETED_TOTAL: &str = "conmutador_recordings_deleted_total";
pub const RECORDINGS_PAUSED_TOTAL: &str = "conmutador_recordings_paused_total";
pub const RECORDING_FRAMES_DROPPED_TOTAL: &str = "conmutador_recording_frames_dropped_total";
