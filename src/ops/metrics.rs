//! The metric catalog: every metric name the gateway exports, in one place.
//!
//! Conventions: prefix `conmutador_`, base units in the name (`_seconds`,
//! `_bytes`), counters end in `_total`, and labels only take values from small
//! fixed sets (never a Call-ID or a phone number). Other rooms record through
//! the `metrics` macros using these constants; this module registers help text
//! and histogram buckets.

// SIP
pub const SIP_MESSAGES_TOTAL: &str = "conmutador_sip_messages_total";
pub const SIP_PARSE_ERRORS_TOTAL: &str = "conmutador_sip_parse_errors_total";
pub const SIP_RETRANSMISSIONS_TOTAL: &str = "conmutador_sip_retransmissions_total";
pub const SIP_TRANSACTIONS_ACTIVE: &str = "conmutador_sip_transactions_active";
pub const SIP_DIALOGS_ACTIVE: &str = "conmutador_sip_dialogs_active";
pub const SIP_TCP_CONNECTIONS: &str = "conmutador_sip_tcp_connections";
pub const SIP_OVERLOAD_REJECTIONS_TOTAL: &str = "conmutador_sip_overload_rejections_total";
pub const SIP_OVERSIZE_TOTAL: &str = "conmutador_sip_oversize_total";

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
