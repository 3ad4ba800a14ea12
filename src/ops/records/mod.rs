//! Call detail records and the queue event log, and where they are kept.
//!
//! One [`Cdr`] per call and [`QueueEvent`]s in Asterisk's `queue_log`
//! vocabulary (what call-center reporting tools already speak), plus the
//! announced and actual wait so every estimate can be scored later.
//!
//! Storage is SQLite under the data directory by default, PostgreSQL when a
//! URL is configured; both get the same versioned schema ([`store`]). Calls
//! hand records to a [`RecordSink`] that never blocks: a dedicated thread
//! ([`writer`]) writes them by group commit (one transaction per ~20 ms
//! window), so a slow disk never stalls a call and a crash loses at most
//! the last window.
//! This room stores what it is given; it never decides anything about calls.

use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod export;
pub mod stats;
pub mod store;
pub mod writer;

pub use export::{ExportFormat, RecordKind, export};
pub use stats::{QueueStatsSeed, fold_queue_stats, rebuild_queue_stats};
pub use store::Store;
pub use writer::{RecordReceiver, RecordSink, RecordWriter, WriterReport, start};

/// The `[records]` section of the gateway config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordsConfig {
    /// SQLite lives at `<data_dir>/records.sqlite3` unless `postgres_url` is set.
    pub data_dir: PathBuf,
    /// `postgres://user@host:port/db`; when set, SQLite is not used.
    pub postgres_url: Option<String>,
    /// Most records written in one transaction.
    pub batch_max: usize,
    /// The group-commit window: longest a record waits in memory before
    /// its transaction is committed, so about what a crash of the process
    /// can lose (see `writer`).
    pub flush_interval_ms: u64,
    /// Records held in memory at most; beyond it new records are dropped and
    /// counted in `conmutador_records_dropped_total`.
    pub buffer: usize,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            postgres_url: None,
            batch_max: 256,
            flush_interval_ms: 20,
            buffer: 8192,
        }
    }
}

impl RecordsConfig {
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("records.sqlite3")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("database schema version {found} is newer than this build understands ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("corrupt row: {0}")]
    CorruptRow(String),
    #[error("records were not written: {0}")]
    FlushFailed(String),
    #[error("the records writer has stopped")]
    WriterGone,
}

/// How a call ended, as seen by the caller (also the `result` label of
/// `conmutador_calls_ended_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Served: talked to an operator, or finished the IVR normally.
    Completed,
    /// Hung up while waiting in a queue, while an operator or a transfer
    /// target rang, or before the answer.
    Abandoned,
    /// Refused before answer (overload, no route, 4xx/5xx sent).
    Rejected,
    /// Broke: media timeout, operator leg failure, internal error.
    Failed,
    /// Left a queue unserved (timeout, full, empty, exit key) to the plan's
    /// overflow destination, and was not served afterwards.
    Overflowed,
    /// Handed off to another SIP destination (the transfer was answered).
    Transferred,
    /// Taken out of a queue by the gateway before being served: removed
    /// over the admin API, or cut by shutdown while waiting (the cause says
    /// which). Not an abandonment.
    Removed,
}

/// Who hung up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupSide {
    Caller,
    Operator,
    Gateway,
}

macro_rules! str_enum {
    ($t:ty { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl FromStr for $t {
            type Err = RecordsError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok(Self::$v),)+
                    other => Err(RecordsError::CorruptRow(format!("unknown {} {other:?}", stringify!($t)))),
                }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(Disposition {
    Completed => "completed", Abandoned => "abandoned", Rejected => "rejected",
    Failed => "failed", Overflowed => "overflowed", Transferred => "transferred",
    Removed => "removed",
});
str_enum!(HangupSide { Caller => "caller", Operator => "operator", Gateway => "gateway" });

/// One call, written when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cdr {
    pub call_id: String,
    #[serde(with = "crate::ops::time::rfc3339")]
    pub start: DateTime<Utc>,
    /// When the gateway answered the caller (200 OK), if it did.
    #[serde(with = "crate::ops::time::rfc3339_opt")]
    pub answer: Option<DateTime<Utc>>,
    #[serde(with = "crate::ops::time::rfc3339")]
    pub end: DateTime<Utc>,
    pub caller: String,
    pub called: String,
    /// The dialplan that handled the call.
    pub plan: Option<String>,
    /// Dialplan nodes visited, in order (capped by the caller of this API).
    pub plan_path: Vec<String>,
    pub queue: Option<String>,
    /// Time spent waiting in the queue.
    pub wait_ms: Option<u64>,
    pub operator: Option<String>,
    /// Time bridged to the operator.
    pub talk_ms: Option<u64>,
    pub disposition: Disposition,
    pub hangup_side: HangupSide,
    /// SIP status or internal reason, e.g. `BYE`, `487`, `rtp_timeout`.
    pub hangup_cause: String,
    /// The recording's file name (under the recording directory), if the
    /// call was recorded.
    #[serde(default)]
    pub recording: Option<String>,
    /// The operator who handed the call on from their phone (REFER); the
    /// queue log's TRANSFER line says to where. `operator` is the last one
    /// the caller talked to.
    #[serde(default)]
    pub transferred_by: Option<String>,
}

/// The `queue_log` event names, spelled as Asterisk spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum QueueEventKind {
    EnterQueue,
    Connect,
    CompleteCaller,
    CompleteAgent,
    Abandon,
    ExitWithTimeout,
    ExitWithKey,
    ExitEmpty,
    /// Asterisk's JOINEMPTY: refused at entry because nobody could answer.
    JoinEmpty,
    /// Asterisk's FULL: refused at entry because the queue was at its cap.
    Full,
    /// Not in Asterisk's vocabulary: taken out of the queue by the gateway
    /// (admin API or shutdown), which is not an abandonment.
    Removed,
    RingNoAnswer,
    Transfer,
    Pause,
    Unpause,
    AgentLogin,
    AgentLogoff,
    ConfigReload,
    /// A supervisor started listening, whispering or barging (Asterisk's
    /// ChanSpy logs nothing to queue_log; the names follow its SPY vocabulary).
    SpyStart,
    /// A supervisor switched mode during a session.
    SpyMode,
    /// A supervision session ended.
    SpyStop,
}

str_enum!(QueueEventKind {
    EnterQueue => "ENTERQUEUE", Connect => "CONNECT", CompleteCaller => "COMPLETECALLER",
    CompleteAgent => "COMPLETEAGENT", Abandon => "ABANDON", ExitWithTimeout => "EXITWITHTIMEOUT",
    ExitWithKey => "EXITWITHKEY", ExitEmpty => "EXITEMPTY", JoinEmpty => "JOINEMPTY", Full => "FULL",
    Removed => "REMOVED",
    RingNoAnswer => "RINGNOANSWER", Transfer => "TRANSFER", Pause => "PAUSE", Unpause => "UNPAUSE",
    AgentLogin => "AGENTLOGIN", AgentLogoff => "AGENTLOGOFF", ConfigReload => "CONFIGRELOAD",
    SpyStart => "SPYSTART", SpyMode => "SPYMODE", SpyStop => "SPYSTOP",
});

/// Asterisk's queue_log has at most five data fields.
pub const MAX_DATA_FIELDS: usize = 5;
/// Longest stored text field; longer input (it may come from the network) is cut.
pub const MAX_FIELD_CHARS: usize = 256;
/// Most plan nodes kept in one CDR's path.
pub const MAX_PLAN_PATH: usize = 64;

/// One line of the queue log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEvent {
    #[serde(with = "crate::ops::time::rfc3339")]
    pub time: DateTime<Utc>,
    /// `None` where Asterisk writes `NONE` (agent and reload events).
    pub call_id: Option<String>,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub event: QueueEventKind,
    /// Asterisk's positional data1..data5, filled the way Asterisk fills them
    /// (see the constructors), so exported logs read like a queue_log.
    pub data: Vec<String>,
    /// Actual time waited in the queue (CONNECT, COMPLETE*, ABANDON, EXIT*).
    pub wait_ms: Option<u64>,
    /// The wait last announced to the caller, to score the estimate.
    pub announced_wait_ms: Option<u64>,
    /// Talk time (COMPLETE*) or ring time (RINGNOANSWER).
    pub talk_ms: Option<u64>,
}

fn secs(ms: u64) -> String {
    (ms / 1000).to_string()
}

impl QueueEvent {
    /// A bare event; the constructors below fill data fields Asterisk-style.
    pub fn new(time: DateTime<Utc>, event: QueueEventKind) -> Self {
        Self {
            time,
            call_id: None,
            queue: None,
            agent: None,
            event,
            data: Vec::new(),
            wait_ms: None,
            announced_wait_ms: None,
            talk_ms: None,
        }
    }
    fn call(mut self, call_id: &str, queue: &str) -> Self {
        self.call_id = Some(call_id.to_string());
        self.queue = Some(queue.to_string());
        self
    }
    fn data(mut self, fields: &[String]) -> Self {
        self.data = fields.to_vec();
        self
    }

    /// ENTERQUEUE: data = url, caller id, position.
    pub fn enter_queue(
        time: DateTime<Utc>,
        call_id: &str,
        queue: &str,
        caller: &str,
        position: u32,
    ) -> Self {
        Self::new(time, QueueEventKind::EnterQueue)
            .call(call_id, queue)
            .data(&[String::new(), caller.to_string(), position.to_string()])
    }

    /// CONNECT: data = hold time (s), operator leg id, ring time (s).
    pub fn connect(
        time: DateTime<Utc>,
        call_id: &str,
        queue: &str,
        agent: &str,
        wait_ms: u64,
        announced_wait_ms: Option<u64>,
        ring_ms: u64,
    ) -> Self {
        let mut ev = Self::new(time, QueueEventKind::Connect)
            .call(call_id, queue)
            .data(&[secs(wait_ms), String::new(), secs(ring_ms)]);
        ev.agent = Some(agent.to_string());
        ev.wait_ms = Some(wait_ms);
        ev.announced_wait_ms = announced_wait_ms;
        ev
    }

    /// COMPLETECALLER / COMPLETEAGENT (by who hung up): data = hold time,
    /// call time, original position.
    #[allow(clippy::too_many_arguments)]
    pub fn complete(
        time: DateTime<Utc>,
        call_id: &str,
        queue: &str,
        agent: &str,
        caller_hung_up: bool,
        wait_ms: u64,
        talk_ms: u64,
        orig_position: u32,
    ) -> Self {
        let kind = if caller_hung_up {
            QueueEventKind::CompleteCaller
        } else {
            QueueEventKind::CompleteAgent
        };
        let mut ev = Self::new(time, kind).call(call_id, queue).data(&[
            secs(wait_ms),
            secs(talk_ms),
            orig_position.to_string(),
        ]);
        ev.agent = Some(agent.to_string());
        ev.wait_ms = Some(wait_ms);
        ev.talk_ms = Some(talk_ms);
        ev
    }

    /// ABANDON, EXITWITHTIMEOUT, EXITEMPTY, JOINEMPTY, FULL: data =
    /// position, original position, wait (s). EXITWITHKEY puts the key
    /// first.
    #[allow(clippy::too_many_arguments)]
    pub fn exit(
        time: DateTime<Utc>,
        call_id: &str,
        queue: &str,
        kind: QueueEventKind,
        key: Option<char>,
        position: u32,
        orig_position: u32,
        wait_ms: u64,
        announced_wait_ms: Option<u64>,
    ) -> Self {
        let mut data = Vec::with_capacity(4);
        if kind == QueueEventKind::ExitWithKey {
            data.push(key.map(String::from).unwrap_or_default());
        }
        data.extend([
            position.to_string(),
            orig_position.to_string(),
            secs(wait_ms),
        ]);
        let mut ev = Self::new(time, kind).call(call_id, queue).data(&data);
        ev.wait_ms = Some(wait_ms);
        ev.announced_wait_ms = announced_wait_ms;
        ev
    }

    /// REMOVED: data = position, original position, wait (s), and who
    /// removed the caller (`admin` or `shutdown`).
    #[allow(clippy::too_many_arguments)]
    pub fn removed(
        time: DateTime<Utc>,
        call_id: &str,
        queue: &str,
        by: &str,
        position: u32,
        orig_position: u32,
        wait_ms: u64,
        announced_wait_ms: Option<u64>,
    ) -> Self {
        let mut ev = Self::new(time, QueueEventKind::Removed)
            .call(call_id, queue)
            .data(&[
                position.to_string(),
                orig_position.to_string(),
                secs(wait_ms),
                by.to_string(),
            ]);
        ev.wait_ms = Some(wait_ms);
        ev.announced_wait_ms = announced_wait_ms;
        ev
    }

    /// TRANSFER (the plan handed a caller who had been in `queue` to
    /// another destination): data = destination, plan, hold time (s), call
    /// time (s), original position, as Asterisk's extension, context,
    /// holdtime, calltime, origposition.
    #[allow(clippy::too_many_arguments)]
    pub fn transfer(
        time: DateTime<Utc>,
        call_id: &str,
        queue: &str,
        agent: Option<&str>,
        destination: &str,
        plan: &str,
        wait_ms: u64,
        talk_ms: u64,
    ) -> Self {
        let mut ev = Self::new(time, QueueEventKind::Transfer)
            .call(call_id, queue)
            .data(&[
                destination.to_string(),
                plan.to_string(),
                secs(wait_ms),
                secs(talk_ms),
                String::new(),
            ]);
        ev.agent = agent.map(str::to_string);
        ev.wait_ms = Some(wait_ms);
        ev.talk_ms = Some(talk_ms);
        ev
    }

    /// CONFIGRELOAD: the dialplans (and prompts) were reloaded; no call, no
    /// queue, no agent, as Asterisk writes it.
    pub fn config_reload(time: DateTime<Utc>) -> Self {
        Self::new(time, QueueEventKind::ConfigReload)
    }

    /// RINGNOANSWER: data = ring time in milliseconds (as Asterisk).
    pub fn ring_no_answer(
        time: DateTime<Utc>,
        call_id: &str,
        queue: &str,
        agent: &str,
        ring_ms: u64,
    ) -> Self {
        let mut ev = Self::new(time, QueueEventKind::RingNoAnswer)
            .call(call_id, queue)
            .data(&[ring_ms.to_string()]);
        ev.agent = Some(agent.to_string());
        ev.talk_ms = Some(ring_ms);
        ev
    }

    /// PAUSE, UNPAUSE, AGENTLOGIN, AGENTLOGOFF for one operator; `queue`
    /// `None` means all of the operator's queues. data = reason.
    pub fn agent(
        time: DateTime<Utc>,
        kind: QueueEventKind,
        agent: &str,
        queue: Option<&str>,
        reason: Option<&str>,
    ) -> Self {
        let mut ev = Self::new(time, kind);
        ev.agent = Some(agent.to_string());
        ev.queue = queue.map(str::to_string);
        ev.data = reason.map(|r| vec![r.to_string()]).unwrap_or_default();
        ev
    }

    /// Caps every text field so a hostile caller ID cannot bloat storage.
    pub(crate) fn sanitized(mut self) -> Self {
        for f in [&mut self.call_id, &mut self.queue, &mut self.agent]
            .into_iter()
            .flatten()
        {
            cap(f);
        }
        self.data.truncate(MAX_DATA_FIELDS);
        self.data.iter_mut().for_each(cap);
        self
    }
}

impl Cdr {
    pub(crate) fn sanitized(mut self) -> Self {
        for f in [
            &mut self.call_id,
            &mut self.caller,
            &mut self.called,
            &mut self.hangup_cause,
        ] {
            cap(f);
        }
        for f in [
            &mut self.plan,
            &mut self.queue,
            &mut self.operator,
            &mut self.recording,
            &mut self.transferred_by,
        ]
        .into_iter()
        .flatten()
        {
            cap(f);
        }
        self.plan_path.truncate(MAX_PLAN_PATH);
        self.plan_path.iter_mut().for_each(cap);
        self
    }
}

fn cap(s: &mut String) {
    if let Some((i, _)) = s.char_indices().nth(MAX_FIELD_CHARS) {
        s.truncate(i);
    }
}

/// What goes through the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Cdr(Box<Cdr>),
    QueueEvent(Box<QueueEvent>),
}

impl Record {
    /// The `kind` label value.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Cdr(_) => "cdr",
            Record::QueueEvent(_) => "queue_event",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn event_names_round_trip_in_asterisk_spelling() {
        for k in [
            QueueEventKind::EnterQueue,
            QueueEventKind::Connect,
            QueueEventKind::CompleteCaller,
            QueueEventKind::CompleteAgent,
            QueueEventKind::Abandon,
            QueueEventKind::ExitWithTimeout,
            QueueEventKind::ExitWithKey,
            QueueEventKind::ExitEmpty,
            QueueEventKind::JoinEmpty,
            QueueEventKind::Full,
            QueueEventKind::Removed,
            QueueEventKind::RingNoAnswer,
            QueueEventKind::Transfer,
            QueueEventKind::Pause,
            QueueEventKind::Unpause,
            QueueEventKind::AgentLogin,
            QueueEventKind::AgentLogoff,
            QueueEventKind::ConfigReload,
        ] {
            assert_eq!(k.as_str().parse::<QueueEventKind>().ok(), Some(k));
            assert_eq!(
                serde_json::to_value(k).ok(),
                Some(serde_json::Value::String(k.as_str().into()))
            );
        }
        assert!("NOPE".parse::<QueueEventKind>().is_err());
    }

    #[test]
    fn constructors_fill_data_like_asterisk() {
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 15, 0, 0).unwrap();
        let ev = QueueEvent::exit(
            t,
            "c1",
            "general",
            QueueEventKind::ExitWithKey,
            Some('0'),
            3,
            5,
            61_500,
            Some(90_000),
        );
        assert_eq!(ev.data, vec!["0", "3", "5", "61"]);
        assert_eq!(
            (ev.wait_ms, ev.announced_wait_ms),
            (Some(61_500), Some(90_000))
        );
        let ev = QueueEvent::complete(t, "c1", "general", "op7", false, 20_000, 185_000, 2);
        assert_eq!(ev.event, QueueEventKind::CompleteAgent);
        assert_eq!(ev.data, vec!["20", "185", "2"]);
    }

    #[test]
    fn sanitizing_caps_hostile_fields() {
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 15, 0, 0).unwrap();
        let mut ev = QueueEvent::enter_queue(t, &"x".repeat(10_000), "q", &"ñ".repeat(1000), 1);
        ev.data.extend((0..10).map(|i| i.to_string()));
        let ev = ev.sanitized();
        assert_eq!(
            ev.call_id.as_deref().map(|s| s.chars().count()),
            Some(MAX_FIELD_CHARS)
        );
        assert_eq!(ev.data.len(), MAX_DATA_FIELDS);
        assert_eq!(ev.data[1].chars().count(), MAX_FIELD_CHARS);
    }
}
