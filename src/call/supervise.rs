//! Supervision: who may listen to, whisper to or barge into an operator's
//! call, how a supervisor's dialled number and keys are read, and the
//! bookkeeping of sessions (queue events SPYSTART / SPYMODE / SPYSTOP and
//! the `conmutador_supervision_*` metrics).
//!
//! Pure logic in virtual time (`now` is passed in): the SIP side (the
//! supervisor's INVITE, the call out to a supervisor's phone for the admin
//! API) and the media side (`media::mix`) call into it; it touches neither
//! sockets nor the media clock.
//!
//! Operator numbers: a supervisor dials the feature code followed by the
//! operator's number. An operator whose id is all digits is reached by its
//! id; any other id by its phone-keypad spelling (E.161 letters: `ana` is
//! `262`, `luis.m` is `5847`, characters other than letters and digits
//! are skipped). A number that matches two operators is refused as
//! ambiguous (give one of them a digit id).

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Deserialize;

pub use crate::media::mix::Mode;
use crate::ops::metrics as m;
use crate::ops::records::{QueueEvent, QueueEventKind};

/// `[[supervisors]]`: a supervisor account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorConfig {
    /// The SIP user name the phone registers and authenticates with.
    pub id: String,
    #[serde(default, alias = "name")]
    pub display_name: Option<String>,
    /// Digest password (REGISTER and the feature-code INVITE).
    pub password: String,
    /// Queues whose calls this supervisor may supervise.
    pub queues: Vec<String>,
}

/// The numbers a supervisor dials and the keys pressed during a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codes {
    pub listen: String,
    pub whisper: String,
    pub barge: String,
}

impl Default for Codes {
    fn default() -> Self {
        Codes {
            listen: "*31".into(),
            whisper: "*32".into(),
            barge: "*33".into(),
        }
    }
}

impl Codes {
    /// The mode and operator number of a dialled user part (`*32262`), if
    /// it starts with one of the codes and a number follows.
    pub fn parse<'a>(&self, dialled: &'a str) -> Option<(Mode, &'a str)> {
        [
            (&self.listen, Mode::Listen),
            (&self.whisper, Mode::Whisper),
            (&self.barge, Mode::Barge),
        ]
        .into_iter()
        .filter(|(code, _)| !code.is_empty())
        .find_map(|(code, mode)| {
            let rest = dialled.strip_prefix(code.as_str())?;
            (!rest.is_empty() && rest.len() <= 32 && rest.bytes().all(|b| b.is_ascii_digit()))
                .then_some((mode, rest))
        })
    }
}

/// What a key pressed during a session does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    Switch(Mode),
    Stop,
}

/// Keys during a session: 4 listen, 5 whisper, 6 barge, `#` ends it.
pub fn key_action(digit: char) -> Option<KeyAction> {
    match digit {
        '4' => Some(KeyAction::Switch(Mode::Listen)),
        '5' => Some(KeyAction::Switch(Mode::Whisper)),
        '6' => Some(KeyAction::Switch(Mode::Barge)),
        '#' => Some(KeyAction::Stop),
        _ => None,
    }
}

/// An id's keypad number (see the module docs).
pub fn keypad_number(id: &str) -> String {
    id.chars()
        .filter_map(|c| {
            let d = match c.to_ascii_lowercase() {
                d @ '0'..='9' => d,
                'a'..='c' => '2',
                'd'..='f' => '3',
                'g'..='i' => '4',
                'j'..='l' => '5',
                'm'..='o' => '6',
                'p'..='s' => '7',
                't'..='v' => '8',
                'w'..='z' => '9',
                _ => return None,
            };
            Some(d)
        })
        .collect()
}

/// The operator a dialled number names, among `operators` (ids).
pub fn find_operator<'a>(
    number: &str,
    operators: impl IntoIterator<Item = &'a str>,
) -> Result<&'a str, Refusal> {
    let mut found = None;
    for id in operators {
        if id == number || keypad_number(id) == number {
            if found.is_some() {
                return Err(Refusal::Ambiguous);
            }
            found = Some(id);
        }
    }
    found.ok_or(Refusal::UnknownOperator)
}

/// Why a supervision request is refused; each maps to a SIP status for
/// the phone and an HTTP status for the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no operator has that number")]
    UnknownOperator,
    #[error("that number names more than one operator")]
    Ambiguous,
    #[error("the operator is not on a call")]
    OperatorIdle,
    #[error("the supervisor does not supervise the queue of that call")]
    NotYourQueue,
    #[error("the supervisor or that call is already in a supervision session")]
    Busy,
    #[error("the supervisor's phone is not registered")]
    NotRegistered,
}

/// The label values of `conmutador_supervision_refusals_total`.
pub const REFUSAL_REASONS: [&str; 6] = [
    "unknown_operator",
    "ambiguous",
    "operator_idle",
    "not_your_queue",
    "busy",
    "not_registered",
];

impl Refusal {
    pub fn label(self) -> &'static str {
        REFUSAL_REASONS[self as usize]
    }

    /// The SIP final response to the supervisor's INVITE.
    pub fn sip_status(self) -> (u16, &'static str) {
        match self {
            Refusal::UnknownOperator => (404, "Not Found"),
            Refusal::Ambiguous => (485, "Ambiguous"),
            Refusal::OperatorIdle => (480, "Temporarily Unavailable"),
            Refusal::NotYourQueue => (403, "Forbidden"),
            Refusal::Busy => (486, "Busy Here"),
            Refusal::NotRegistered => (480, "Temporarily Unavailable"),
        }
    }

    /// The admin API's status.
    pub fn http_status(self) -> u16 {
        match self {
            Refusal::UnknownOperator => 404,
            Refusal::Ambiguous | Refusal::OperatorIdle | Refusal::Busy => 409,
            Refusal::NotYourQueue => 403,
            Refusal::NotRegistered => 409,
        }
    }
}

/// The call an operator is on, as the ACD knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorCall {
    pub operator: String,
    pub call_id: String,
    pub queue: String,
}

/// One going session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub supervisor: String,
    pub call: OperatorCall,
    pub mode: Mode,
    pub started: Instant,
}

/// The sessions going on, at most one per supervisor and one per call.
#[derive(Debug, Default)]
pub struct Sessions {
    supervisors: HashMap<String, SupervisorConfig>,
    by_supervisor: HashMap<String, Session>,
}

impl Sessions {
    pub fn new(supervisors: &[SupervisorConfig]) -> Sessions {
        Sessions {
            supervisors: supervisors
                .iter()
                .map(|s| (s.id.clone(), s.clone()))
                .collect(),
            by_supervisor: HashMap::new(),
        }
    }

    pub fn supervisor(&self, id: &str) -> Option<&SupervisorConfig> {
        self.supervisors.get(id)
    }

    pub fn session(&self, supervisor: &str) -> Option<&Session> {
        self.by_supervisor.get(supervisor)
    }

    pub fn active(&self) -> usize {
        self.by_supervisor.len()
    }

    /// Whether `supervisor` may supervise `call` now; counts a refusal.
    pub fn check(&self, supervisor: &str, call: Option<&OperatorCall>) -> Result<(), Refusal> {
        let r = self.check_quiet(supervisor, call);
        if let Err(why) = r {
            metrics::counter!(m::SUPERVISION_REFUSALS_TOTAL, "reason" => why.label()).increment(1);
        }
        r
    }

    fn check_quiet(&self, supervisor: &str, call: Option<&OperatorCall>) -> Result<(), Refusal> {
        // An unknown supervisor is refused like one of another queue: the
        // router only lets authenticated supervisors this far anyway.
        let sup = self
            .supervisors
            .get(supervisor)
            .ok_or(Refusal::NotYourQueue)?;
        let call = call.ok_or(Refusal::OperatorIdle)?;
        if !sup.queues.contains(&call.queue) {
            return Err(Refusal::NotYourQueue);
        }
        let busy = self.by_supervisor.contains_key(supervisor)
            || self
                .by_supervisor
                .values()
                .any(|s| s.call.call_id == call.call_id);
        if busy {
            return Err(Refusal::Busy);
        }
        Ok(())
    }

    /// Starts a session (after [`Sessions::check`]); returns its SPYSTART.
    pub fn start(
        &mut self,
        supervisor: &str,
        call: OperatorCall,
        mode: Mode,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Result<QueueEvent, Refusal> {
        self.check(supervisor, Some(&call))?;
        let ev = event(
            QueueEventKind::SpyStart,
            &call,
            wall,
            &[supervisor, mode.as_str()],
        );
        self.by_supervisor.insert(
            supervisor.to_owned(),
            Session {
                supervisor: supervisor.to_owned(),
                call,
                mode,
                started: now,
            },
        );
        metrics::counter!(m::SUPERVISION_SESSIONS_TOTAL, "mode" => mode.as_str()).increment(1);
        metrics::gauge!(m::SUPERVISION_SESSIONS_ACTIVE).set(self.active() as f64);
        Ok(ev)
    }

    /// Switches a session's mode; `None` when there is no session or the
    /// mode is the same (nothing to log).
    pub fn switch(
        &mut self,
        supervisor: &str,
        mode: Mode,
        wall: DateTime<Utc>,
    ) -> Option<QueueEvent> {
        let s = self.by_supervisor.get_mut(supervisor)?;
        if s.mode == mode {
            return None;
        }
        let from = std::mem::replace(&mut s.mode, mode);
        metrics::counter!(m::SUPERVISION_MODE_CHANGES_TOTAL, "mode" => mode.as_str()).increment(1);
        Some(event(
            QueueEventKind::SpyMode,
            &s.call,
            wall,
            &[supervisor, mode.as_str(), from.as_str()],
        ))
    }

    /// Ends a supervisor's session; its SPYSTOP carries the length.
    pub fn stop(
        &mut self,
        supervisor: &str,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Option<QueueEvent> {
        let s = self.by_supervisor.remove(supervisor)?;
        metrics::gauge!(m::SUPERVISION_SESSIONS_ACTIVE).set(self.active() as f64);
        let secs = now
            .saturating_duration_since(s.started)
            .as_secs()
            .to_string();
        Some(event(
            QueueEventKind::SpyStop,
            &s.call,
            wall,
            &[supervisor, s.mode.as_str(), &secs],
        ))
    }

    /// Ends every session on a call that ended; their SPYSTOPs.
    pub fn call_ended(
        &mut self,
        call_id: &str,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Vec<QueueEvent> {
        let gone: Vec<String> = self
            .by_supervisor
            .values()
            .filter(|s| s.call.call_id == call_id)
            .map(|s| s.supervisor.clone())
            .collect();
        gone.iter()
            .filter_map(|sup| self.stop(sup, now, wall))
            .collect()
    }
}

/// SPY* events: agent is the operator; data1 the supervisor, data2 the
/// mode, data3 the previous mode (SPYMODE) or the length in seconds (SPYSTOP).
fn event(
    kind: QueueEventKind,
    call: &OperatorCall,
    wall: DateTime<Utc>,
    data: &[&str],
) -> QueueEvent {
    let mut ev = QueueEvent::new(wall, kind);
    ev.call_id = Some(call.call_id.clone());
    ev.queue = Some(call.queue.clone());
    ev.agent = Some(call.operator.clone());
    ev.data = data.iter().map(|s| s.to_string()).collect();
    ev
}

/// Errors in `[[supervisors]]` given the queues and operator ids.
pub fn validate<'a>(
    supervisors: &[SupervisorConfig],
    queues: &[&str],
    operators: impl IntoIterator<Item = &'a str>,
    codes: &Codes,
) -> Result<(), String> {
    let operators: Vec<&str> = operators.into_iter().collect();
    let mut seen = std::collections::HashSet::new();
    for s in supervisors {
        if !seen.insert(s.id.as_str()) {
            return Err(format!("supervisor `{}` is defined twice", s.id));
        }
        // Phones authenticate by user name: one name, one kind of account.
        if operators.contains(&s.id.as_str()) {
            return Err(format!("supervisor `{}` is also an operator id", s.id));
        }
        if s.password.is_empty() {
            return Err(format!("supervisor `{}` has no password", s.id));
        }
        if let Some(q) = s.queues.iter().find(|q| !queues.contains(&q.as_str())) {
            return Err(format!("supervisor `{}` names unknown queue `{q}`", s.id));
        }
    }
    let all = [&codes.listen, &codes.whisper, &codes.barge];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            // One code a prefix of another would make the longer unreachable.
            if a.starts_with(b.as_str()) || b.starts_with(a.as_str()) {
                return Err(format!("supervision codes `{a}` and `{b}` overlap"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sup(id: &str, queues: &[&str]) -> SupervisorConfig {
        SupervisorConfig {
            id: id.into(),
            display_name: None,
            password: "pw".into(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
        }
    }

    fn call(op: &str, id: &str, queue: &str) -> OperatorCall {
        OperatorCall {
            operator: op.into(),
            call_id: id.into(),
            queue: queue.into(),
        }
    }

    #[test]
    fn dialled_codes_name_a_mode_and_a_number() {
        let c = Codes::default();
        assert_eq!(c.parse("*31262"), Some((Mode::Listen, "262")));
        assert_eq!(c.parse("*32101"), Some((Mode::Whisper, "101")));
        assert_eq!(c.parse("*3342"), Some((Mode::Barge, "42")));
        assert_eq!(c.parse("*31"), None);
        assert_eq!(c.parse("*31ab"), None);
        assert_eq!(c.parse("*21"), None);
    }

    #[test]
    fn operators_are_dialled_by_digits_or_keypad_spelling() {
        assert_eq!(keypad_number("ana"), "262");
        assert_eq!(keypad_number("Luis.M"), "58476");
        assert_eq!(keypad_number("op7"), "677");
        let ops = ["ana", "101", "carlos"];
        assert_eq!(find_operator("262", ops), Ok("ana"));
        assert_eq!(find_operator("101", ops), Ok("101"));
        assert_eq!(find_operator("999", ops), Err(Refusal::UnknownOperator));
        // "bob" spells 262 too: with both, 262 names nobody for sure.
        assert_eq!(keypad_number("bob"), "262");
        assert_eq!(
            find_operator("262", ["ana", "bob"]),
            Err(Refusal::Ambiguous)
        );
    }

    #[test]
    fn keys_switch_mode_or_stop() {
        assert_eq!(key_action('4'), Some(KeyAction::Switch(Mode::Listen)));
        assert_eq!(key_action('5'), Some(KeyAction::Switch(Mode::Whisper)));
        assert_eq!(key_action('6'), Some(KeyAction::Switch(Mode::Barge)));
        assert_eq!(key_action('#'), Some(KeyAction::Stop));
        assert_eq!(key_action('1'), None);
    }

    #[test]
    fn only_a_supervisor_of_the_calls_queue_may_supervise() {
        let s = Sessions::new(&[sup("marta", &["consular"]), sup("pablo", &["visados"])]);
        let c = call("ana", "c1", "consular");
        assert_eq!(s.check("marta", Some(&c)), Ok(()));
        assert_eq!(s.check("pablo", Some(&c)), Err(Refusal::NotYourQueue));
        assert_eq!(s.check("nobody", Some(&c)), Err(Refusal::NotYourQueue));
        assert_eq!(s.check("marta", None), Err(Refusal::OperatorIdle));
        assert_eq!(Refusal::NotYourQueue.sip_status().0, 403);
        assert_eq!(Refusal::NotYourQueue.http_status(), 403);
    }

    #[test]
    fn a_session_logs_start_mode_changes_and_stop() {
        let mut s = Sessions::new(&[sup("marta", &["consular"]), sup("luz", &["consular"])]);
        let t0 = Instant::now();
        let wall = Utc::now();
        let c = call("ana", "c1", "consular");
        let ev = s.start("marta", c.clone(), Mode::Listen, t0, wall).unwrap();
        assert_eq!(ev.event.as_str(), "SPYSTART");
        assert_eq!(ev.agent.as_deref(), Some("ana"));
        assert_eq!(ev.queue.as_deref(), Some("consular"));
        assert_eq!(ev.data, ["marta", "listen"]);
        assert_eq!(s.active(), 1);
        // One supervisor per call, one call per supervisor.
        assert_eq!(
            s.start("luz", c.clone(), Mode::Barge, t0, wall),
            Err(Refusal::Busy)
        );
        assert_eq!(
            s.start(
                "marta",
                call("bea", "c2", "consular"),
                Mode::Barge,
                t0,
                wall
            ),
            Err(Refusal::Busy)
        );
        let ev = s.switch("marta", Mode::Whisper, wall).unwrap();
        assert_eq!(ev.event.as_str(), "SPYMODE");
        assert_eq!(ev.data, ["marta", "whisper", "listen"]);
        assert!(s.switch("marta", Mode::Whisper, wall).is_none());
        let ev = s.stop("marta", t0 + Duration::from_secs(42), wall).unwrap();
        assert_eq!(ev.event.as_str(), "SPYSTOP");
        assert_eq!(ev.data, ["marta", "whisper", "42"]);
        assert_eq!(s.active(), 0);
        assert!(s.stop("marta", t0, wall).is_none());
    }

    #[test]
    fn a_call_that_ends_ends_its_session() {
        let mut s = Sessions::new(&[sup("marta", &["consular"])]);
        let t0 = Instant::now();
        let wall = Utc::now();
        s.start(
            "marta",
            call("ana", "c1", "consular"),
            Mode::Barge,
            t0,
            wall,
        )
        .unwrap();
        assert!(s.call_ended("other", t0, wall).is_empty());
        let evs = s.call_ended("c1", t0, wall);
        assert_eq!(evs.len(), 1);
        assert_eq!(s.active(), 0);
    }

    #[test]
    fn config_is_checked() {
        let codes = Codes::default();
        let q = ["consular"];
        assert!(validate(&[sup("marta", &["consular"])], &q, ["ana"], &codes).is_ok());
        assert!(validate(&[sup("marta", &["visados"])], &q, ["ana"], &codes).is_err());
        assert!(validate(&[sup("ana", &["consular"])], &q, ["ana"], &codes).is_err());
        let twice = [sup("marta", &["consular"]), sup("marta", &["consular"])];
        assert!(validate(&twice, &q, ["ana"], &codes).is_err());
        let overlap = Codes {
            listen: "*3".into(),
            ..Codes::default()
        };
        assert!(validate(&[], &q, ["ana"], &overlap).is_err());
    }
}
