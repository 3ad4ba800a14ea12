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

use std::sync::OnceLock;

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
    /// Upper bounds for histograms; `None` for counters and gauges.
    pub buckets: Option<&'static [f64]>,
}

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
        buckets: Some(buckets),
    }
}

/// Every metric the gateway exports.
pub const CATALOG: &[MetricDef] = &[
    counter(
        SIP_MESSAGES_TOTAL,
        "SIP messages received and sent, by direction (in|out), method (responses: response) and status (request, or the class 1xx..6xx).",
        &["direction", "method", "status"],
    ),
    counter(
        SIP_PARSE_ERRORS_TOTAL,
        "SIP messages dropped because they did not parse, by kind (headers|response|framing).",
        &["kind"],
    ),
    counter(
        SIP_RETRANSMISSIONS_TOTAL,
        "SIP retransmissions sent by the transaction layer, by kind of transaction and message.",
        &["kind"],
    ),
    gauge(
        SIP_TRANSACTIONS_ACTIVE,
        Unit::Count,
        "SIP transactions alive, by side (client|server).",
        &["side"],
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
        "New work refused because a limit was reached, by reason (calls|cps|media|signalling|draining|rtp_ports|transactions); every 503 sent is in conmutador_sip_503_sent_total.",
        &["reason"],
    ),
    counter(
        SIP_SEND_FAILURES_TOTAL,
        "SIP messages that could not be handed to the socket (full buffer, closed connection), by transport.",
        &["transport"],
    ),
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
    ),
    gauge(
        CALLS_ACTIVE,
        Unit::Count,
        "Calls in progress, by state (ivr|queued|ringing|bridged).",
        &["state"],
    ),
    counter(CALLS_STARTED_TOTAL, "Calls accepted from the trunk.", &[]),
    counter(
        CALLS_ENDED_TOTAL,
        "Calls ended, by result (completed|abandoned|rejected|failed|overflowed) and reason (caller_hangup, plan_hangup, rtp_timeout, forbidden, not_found, overloaded, ...).",
        &["result", "reason"],
    ),
    histogram(
        CALL_DURATION_SECONDS,
        "Duration of ended calls from INVITE to hang-up, by result.",
        &["result"],
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
    ),
    counter(
        RTP_BYTES_TOTAL,
        "RTP payload bytes received and sent, by direction (in|out).",
        &["direction"],
    ),
    counter(
        RTP_PACKETS_LOST_TOTAL,
        "RTP packets missing from received sequence numbers.",
        &[],
    ),
    counter(
        ACD_EVENTS_DROPPED_TOTAL,
        "Queue events lost because the ACD task's inbox was full.",
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
    ),
    counter(
        IVR_NODE_VISITS_TOTAL,
        "Dialplan node visits, by plan and node.",
        &["plan", "node"],
    ),
    counter(
        IVR_INVALID_TOTAL,
        "Menu inputs that matched no option, by plan and node.",
        &["plan", "node"],
    ),
    counter(
        IVR_TIMEOUTS_TOTAL,
        "Menus and digit collections that timed out without input, by plan and node.",
        &["plan", "node"],
    ),
    counter(
        DIALPLAN_RELOAD_TOTAL,
        "Dialplan reloads, by result (ok|error).",
        &["result"],
    ),
    gauge(
        QUEUE_CALLERS_WAITING,
        Unit::Count,
        "Callers waiting in a queue.",
        &["queue"],
    ),
    gauge(
        QUEUE_OLDEST_WAIT_SECONDS,
        Unit::Seconds,
        "How long the longest-waiting caller of a queue has waited.",
        &["queue"],
    ),
    histogram(
        QUEUE_WAIT_ANSWERED_SECONDS,
        "Queue wait of callers that reached an operator.",
        &["queue"],
        BUCKETS_QUEUE_WAIT,
    ),
    histogram(
        QUEUE_WAIT_ABANDONED_SECONDS,
        "Queue wait of callers that hung up before reaching an operator.",
        &["queue"],
        BUCKETS_QUEUE_WAIT,
    ),
    gauge(
        QUEUE_ESTIMATED_WAIT_SECONDS,
        Unit::Seconds,
        "Current estimated wait, by queue and position bucket (1|2|3-5|6-10|11+).",
        &["queue", "position"],
    ),
    histogram(
        QUEUE_WAIT_PREDICTION_ERROR_SECONDS,
        "Actual minus announced wait of answered callers (negative: shorter than announced).",
        &["queue"],
        BUCKETS_PREDICTION_ERROR,
    ),
    gauge(
        QUEUE_WAIT_PREDICTION_MAE_SECONDS,
        Unit::Seconds,
        "Mean absolute error of announced waits over the recent window.",
        &["queue"],
    ),
    ratio(
        QUEUE_SERVICE_LEVEL_RATIO,
        "Share of callers answered within the queue's threshold; basis=answered divides by answered calls, basis=offered also counts abandonments.",
        &["queue", "basis"],
    ),
    ratio(
        QUEUE_ABANDON_RATIO,
        "Share of callers leaving the queue before an answer over the recent window.",
        &["queue"],
    ),
    counter(
        QUEUE_CALLERS_TOTAL,
        "Callers leaving a queue, by outcome (answered|abandoned|timeout|key|empty|full).",
        &["queue", "outcome"],
    ),
    gauge(
        OPERATORS,
        Unit::Count,
        "Operators per queue, by state (available|ringing|in_call|wrap_up|paused|offline).",
        &["queue", "state"],
    ),
    ratio(
        OPERATOR_OCCUPANCY_RATIO,
        "Share of logged-in operator time spent ringing, talking or in wrap-up.",
        &["queue"],
    ),
    histogram(
        OPERATOR_HANDLE_SECONDS,
        "Handle time (talk plus wrap-up) of operator calls.",
        &["queue"],
        BUCKETS_HANDLE,
    ),
    histogram(
        OPERATOR_WRAPUP_SECONDS,
        "After-call work time of operators.",
        &["queue"],
        BUCKETS_WRAPUP,
    ),
    counter(
        OPERATOR_RING_NO_ANSWER_TOTAL,
        "Operator rings that timed out or were refused.",
        &["queue"],
    ),
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
    ),
    counter(
        RECORDS_WRITTEN_TOTAL,
        "Call records and queue events written to storage, by kind (cdr|queue_event).",
        &["kind"],
    ),
    counter(
        RECORDS_DROPPED_TOTAL,
        "Call records and queue events lost, by kind and reason (buffer_full|storage_error|closed).",
        &["kind", "reason"],
    ),
    counter(
        SIP_503_SENT_TOTAL,
        "503 Service Unavailable responses sent, whatever the reason (overload, draining, no RTP ports).",
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
pub const ACD_EVENTS_DROPPED_TOTAL: &str = "conmutador_acd_events_dropped_total";
pub const SIP_503_SENT_TOTAL: &str = "conmutador_sip_503_sent_total";
pub const SIP_TRANSACTIONS_ABSORBING: &str = "conmutador_sip_transactions_absorbing";
pub const SIP_ABSORBING_EVICTED_TOTAL: &str = "conmutador_sip_absorbing_evicted_total";
