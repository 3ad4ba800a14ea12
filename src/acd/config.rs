//! Queue and operator settings as they appear in `conmutador.toml`
//! (`[[queue]]` and `[[operator]]` tables), plus their validation.
//!
//! Durations are written in seconds (integer or fractional). This file only
//! describes and checks settings; it must not hold runtime state. Operator
//! passwords are carried for the registrar and never read by the ACD.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// How a queue picks the operator(s) to ring for a caller.
///
/// Every strategy first respects the caller's allowed penalty (see
/// [`PenaltyStep`]); among the allowed operators, all but `weighted_random` and
/// `ring_all` prefer the lowest penalty tier and apply their rule inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The operator whose last call ended longest ago (Asterisk `leastrecent`,
    /// FreeSWITCH `longest-idle-agent`).
    #[default]
    #[serde(alias = "leastrecent", alias = "longest_idle_agent")]
    LongestIdle,
    /// Round robin that resumes after the last operator rung. Our member order
    /// is always the config file order, so Asterisk's `rrmemory` and
    /// `rrordered` are the same rule here and both names are accepted.
    #[serde(alias = "rrmemory", alias = "rrordered", alias = "round_robin")]
    RoundRobin,
    /// Always start from the first operator in config order (`linear`, top-down).
    #[serde(alias = "top_down")]
    Linear,
    /// Ring every allowed free operator of the best free penalty tier; the
    /// first to answer wins and the others are cancelled.
    #[serde(alias = "ringall")]
    RingAll,
    /// Ring one operator, then one more every `ring_progressive_step`.
    RingProgressive,
    /// The operator with the fewest answered calls in this queue.
    #[serde(alias = "fewestcalls")]
    FewestCalls,
    /// The operator with the least accumulated talk time in this queue.
    LeastTalkTime,
    /// Uniformly random (seeded).
    Random,
    /// Random, weighted by 1 / (1 + penalty) (Asterisk `wrandom`).
    #[serde(alias = "wrandom")]
    WeightedRandom,
}

/// When a queue counts as "empty" for `join_empty` and `leave_when_empty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EmptyWhen {
    /// Never empty: always join / never leave.
    #[default]
    Never,
    /// No member operator is logged in.
    NoMembers,
    /// No member is logged in, unpaused and reachable (nobody staffed).
    Unstaffed,
    /// No member is free to take a call right now.
    NoneFree,
}

/// After a caller has waited `after`, operators with penalty up to
/// `max_penalty` may be rung for them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PenaltyStep {
    #[serde(deserialize_with = "secs")]
    pub after: Duration,
    pub max_penalty: u32,
}

/// One `[[queue]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    #[serde(default)]
    pub strategy: Strategy,
    /// How long one operator rings before we try another.
    #[serde(default = "d_ring_timeout", deserialize_with = "secs")]
    pub ring_timeout: Duration,
    /// After a failed ring, this operator is not rung again for this long.
    #[serde(default = "d_retry_delay", deserialize_with = "secs")]
    pub retry_delay: Duration,
    /// Time after each call before the operator is offered another.
    #[serde(default, deserialize_with = "secs")]
    pub wrapup: Duration,
    /// Pause an operator after this many consecutive unanswered rings (0: never).
    #[serde(default)]
    pub autopause_after: u32,
    /// Callers beyond this many are refused with `Exit Full` (0: only the
    /// built-in cap [`MAX_WAITING_PER_QUEUE`]).
    #[serde(default)]
    pub max_len: usize,
    /// Callers waiting this long leave with `Exit Timeout`.
    #[serde(default, deserialize_with = "opt_secs")]
    pub max_wait: Option<Duration>,
    /// Refuse callers (`Exit Empty`) when the queue is empty in this sense.
    #[serde(default)]
    pub join_empty: EmptyWhen,
    /// Send waiting callers out (`Exit Empty`) when the queue becomes empty in this sense.
    #[serde(default)]
    pub leave_when_empty: EmptyWhen,
    /// Look at each caller's position and estimate this often after entry
    /// (absent: only the entry announcement).
    #[serde(default = "d_announce_interval", deserialize_with = "opt_secs")]
    pub announce_interval: Option<Duration>,
    /// A periodic announcement is made when position or spoken estimate
    /// changed, or when this long has passed since the last one.
    #[serde(default = "d_min_announce_interval", deserialize_with = "secs")]
    pub min_announce_interval: Duration,
    /// Answered within this wait counts toward the service level.
    #[serde(default = "d_service_level", deserialize_with = "secs")]
    pub service_level_threshold: Duration,
    /// A caller waiting longer than this is worth an alert: exported as
    /// `conmutador_queue_wait_alert_seconds`, which the shipped
    /// `ConmutadorOldestWaitHigh` rule compares the oldest wait against.
    #[serde(default = "d_wait_alert", deserialize_with = "secs")]
    pub wait_alert: Duration,
    /// Penalty widening. Empty: every member may be rung at once (penalty
    /// only orders them). Otherwise only penalty 0 until the first step's
    /// `after` has passed (use `after = 0` to start wider).
    #[serde(default)]
    pub penalty_steps: Vec<PenaltyStep>,
    /// For `ring_progressive`: ring one more operator this often.
    #[serde(default = "d_progressive_step", deserialize_with = "secs")]
    pub ring_progressive_step: Duration,
    /// Digits that take a caller out of the queue (`Exit Key`). Absent: any
    /// digit the call layer forwards (it forwards only when the dialplan has a
    /// key overflow).
    #[serde(default)]
    pub exit_keys: Option<String>,
    /// Handle (talk) time assumed before any call has been measured.
    #[serde(default = "d_initial_handle", deserialize_with = "secs")]
    pub initial_handle_time: Duration,
    /// Mean caller patience assumed before callers have been seen leaving
    /// (the abandonment prior; learnt data outweighs it within the first
    /// few dozen callers). `0`: assume nobody hangs up until seen.
    #[serde(default = "d_initial_patience", deserialize_with = "secs")]
    pub initial_patience: Duration,
    /// Seed for `random` / `weighted_random` (absent: from the OS, or from
    /// `Acd::with_seed`).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Local time of day the queue stops serving ("20:00"): callers still
    /// waiting then leave with `Exit Timeout`, and no figure past it is
    /// said (the caller hears that the wait runs past what the queue
    /// allows). Absent: the line is served to the end.
    #[serde(default, deserialize_with = "opt_time_of_day")]
    pub closes: Option<u32>,
    /// Staffing schedule: how many of the queue's operators are expected
    /// logged in when (`[[queues.shifts]]`). The estimator counts the
    /// releases of a shift about to arrive and stops counting those of a
    /// shift about to leave. Empty: only the staffing known now counts.
    #[serde(default)]
    pub shifts: Vec<Shift>,
}

/// One `[[queues.shifts]]` entry: `operators` of the queue's members are
/// expected logged in from `start` to `end` (local time of day, "HH:MM";
/// `end` may be "24:00", and an `end` before `start` runs past midnight).
/// Breaks need no entry: staggered, they take a steady share of the floor,
/// which the staffing seen now already shows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    #[serde(deserialize_with = "time_of_day")]
    pub start: u32,
    #[serde(deserialize_with = "time_of_day")]
    pub end: u32,
    pub operators: u32,
}

/// Seconds in a day.
pub const DAY_SECS: u32 = 86_400;

impl Shift {
    /// Whether the shift is on at `tod` seconds after local midnight.
    pub fn covers(&self, tod: u32) -> bool {
        if self.start <= self.end {
            (self.start..self.end).contains(&tod)
        } else {
            tod >= self.start || tod < self.end
        }
    }
}

/// Operators the schedule expects at `tod` (seconds after local midnight).
pub fn scheduled(shifts: &[Shift], tod: u32) -> u32 {
    shifts
        .iter()
        .filter(|s| s.covers(tod % DAY_SECS))
        .map(|s| s.operators)
        .sum()
}

/// Moves in the schedule over the day from `tod`: `(seconds from tod,
/// change)`, ascending; at one boundary the operators leaving come before
/// those joining (a shift handing over to another is both, not their net).
pub fn schedule_changes(shifts: &[Shift], tod: u32) -> Vec<(u32, i64)> {
    let tod = tod % DAY_SECS;
    let ahead = |b: u32| (b % DAY_SECS + DAY_SECS - tod) % DAY_SECS;
    let mut moves: Vec<(u32, i64)> = Vec::new();
    for s in shifts
        .iter()
        .filter(|s| s.operators > 0 && s.start % DAY_SECS != s.end % DAY_SECS)
    {
        let n = i64::from(s.operators);
        moves.push((ahead(s.end), -n));
        moves.push((ahead(s.start), n));
    }
    moves.retain(|(d, _)| *d > 0);
    // Leaves before joins at one instant; each sign summed per instant.
    moves.sort_unstable_by_key(|&(d, c)| (d, c > 0));
    let mut out: Vec<(u32, i64)> = Vec::new();
    for (d, c) in moves {
        match out.last_mut() {
            Some((ld, lc)) if *ld == d && (*lc > 0) == (c > 0) => *lc += c,
            _ => out.push((d, c)),
        }
    }
    out
}

/// An operator's membership in one queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    pub name: String,
    #[serde(default)]
    pub penalty: u32,
}

/// One `[[operator]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    pub id: String,
    #[serde(default, alias = "name")]
    pub display_name: Option<String>,
    /// Digest password for REGISTER; used by the registrar, not here.
    #[serde(default)]
    pub password: Option<String>,
    /// A fixed SIP URI: such an operator needs no registration and starts logged in.
    #[serde(default)]
    pub static_uri: Option<String>,
    pub queues: Vec<Membership>,
}

/// Built-in cap on callers waiting in one queue, whatever `max_len` says.
pub const MAX_WAITING_PER_QUEUE: usize = 5_000;
/// Built-in cap on callers waiting across all queues.
pub const MAX_WAITING_TOTAL: usize = 20_000;

/// Why a set of queues and operators cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("queue `{0}` is defined twice")]
    DuplicateQueue(String),
    #[error("operator `{0}` is defined twice")]
    DuplicateOperator(String),
    #[error("operator `{operator}` is a member of unknown queue `{queue}`")]
    UnknownQueue { operator: String, queue: String },
    #[error("operator `{operator}` lists queue `{queue}` twice")]
    DuplicateMembership { operator: String, queue: String },
    #[error("queue `{queue}`: {what} must be greater than zero")]
    Zero { queue: String, what: &'static str },
    #[error("queue `{0}`: penalty_steps must have increasing `after`")]
    UnorderedSteps(String),
}

impl QueueConfig {
    /// A queue with every setting at its default, handy for tests and tools.
    pub fn named(name: &str) -> Self {
        QueueConfig {
            name: name.to_owned(),
            strategy: Strategy::default(),
            ring_timeout: d_ring_timeout(),
            retry_delay: d_retry_delay(),
            wrapup: Duration::ZERO,
            autopause_after: 0,
            max_len: 0,
            max_wait: None,
            join_empty: EmptyWhen::Never,
            leave_when_empty: EmptyWhen::Never,
            announce_interval: d_announce_interval(),
            min_announce_interval: d_min_announce_interval(),
            service_level_threshold: d_service_level(),
            wait_alert: d_wait_alert(),
            penalty_steps: Vec::new(),
            ring_progressive_step: d_progressive_step(),
            exit_keys: None,
            initial_handle_time: d_initial_handle(),
            initial_patience: d_initial_patience(),
            seed: None,
            closes: None,
            shifts: Vec::new(),
        }
    }

    /// The highest penalty a caller who has waited `waited` may reach.
    pub fn allowed_penalty(&self, waited: Duration) -> u32 {
        if self.penalty_steps.is_empty() {
            return u32::MAX;
        }
        self.penalty_steps
            .iter()
            .filter(|s| s.after <= waited)
            .map(|s| s.max_penalty)
            .max()
            .unwrap_or(0)
    }

    /// When (as a wait) the allowed penalty next changes after `waited`.
    pub fn next_step_after(&self, waited: Duration) -> Option<Duration> {
        self.penalty_steps
            .iter()
            .map(|s| s.after)
            .find(|after| *after > waited)
    }

    /// Effective cap on this queue's length.
    pub fn length_cap(&self) -> usize {
        if self.max_len == 0 {
            MAX_WAITING_PER_QUEUE
        } else {
            self.max_len.min(MAX_WAITING_PER_QUEUE)
        }
    }

    /// Whether `digit` takes a caller out of this queue.
    pub fn is_exit_key(&self, digit: char) -> bool {
        match &self.exit_keys {
            Some(keys) => keys.contains(digit),
            None => true,
        }
    }
}

/// Check a configuration as a whole; `Acd::new` calls it.
pub fn validate(queues: &[QueueConfig], operators: &[OperatorConfig]) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for q in queues {
        if !names.insert(q.name.as_str()) {
            return Err(ConfigError::DuplicateQueue(q.name.clone()));
        }
        if q.ring_timeout.is_zero() {
            return Err(ConfigError::Zero {
                queue: q.name.clone(),
                what: "ring_timeout",
            });
        }
        if q.strategy == Strategy::RingProgressive && q.ring_progressive_step.is_zero() {
            return Err(ConfigError::Zero {
                queue: q.name.clone(),
                what: "ring_progressive_step",
            });
        }
        if q.announce_interval.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::Zero {
                queue: q.name.clone(),
                what: "announce_interval",
            });
        }
        if q.penalty_steps.windows(2).any(|w| w[0].after >= w[1].after) {
            return Err(ConfigError::UnorderedSteps(q.name.clone()));
        }
    }
    let mut ids = HashSet::new();
    for op in operators {
        if !ids.insert(op.id.as_str()) {
            return Err(ConfigError::DuplicateOperator(op.id.clone()));
        }
        let mut mine = HashSet::new();
        for m in &op.queues {
            if !names.contains(m.name.as_str()) {
                return Err(ConfigError::UnknownQueue {
                    operator: op.id.clone(),
                    queue: m.name.clone(),
                });
            }
            if !mine.insert(m.name.as_str()) {
                return Err(ConfigError::DuplicateMembership {
                    operator: op.id.clone(),
                    queue: m.name.clone(),
                });
            }
        }
    }
    Ok(())
}

fn d_ring_timeout() -> Duration {
    Duration::from_secs(15)
}
fn d_retry_delay() -> Duration {
    Duration::from_secs(5)
}
fn d_announce_interval() -> Option<Duration> {
    Some(Duration::from_secs(60))
}
fn d_min_announce_interval() -> Duration {
    Duration::from_secs(180)
}
fn d_service_level() -> Duration {
    Duration::from_secs(60)
}
fn d_wait_alert() -> Duration {
    Duration::from_secs(600)
}
fn d_progressive_step() -> Duration {
    Duration::from_secs(10)
}
fn d_initial_patience() -> Duration {
    Duration::from_secs(1800)
}
fn d_initial_handle() -> Duration {
    Duration::from_secs(180)
}

/// Seconds as a non-negative finite number (integer or float).
fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = f64::deserialize(d)?;
    Duration::try_from_secs_f64(v).map_err(|_| {
        serde::de::Error::custom(format!(
            "expected a non-negative number of seconds, got {v}"
        ))
    })
}

/// "HH:MM" (or "HH:MM:SS") local time of day, as seconds after midnight;
/// "24:00" is the end of the day.
fn time_of_day<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = String::deserialize(d)?;
    parse_time_of_day(&v).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "expected a time of day such as \"20:00\", got {v:?}"
        ))
    })
}

fn opt_time_of_day<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    time_of_day(d).map(Some)
}

/// Seconds after midnight of "HH:MM" or "HH:MM:SS" (up to "24:00").
pub fn parse_time_of_day(v: &str) -> Option<u32> {
    let mut parts = v.trim().split(':');
    let h: u32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let s: u32 = match parts.next() {
        Some(x) => x.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() || m > 59 || s > 59 {
        return None;
    }
    let t = h * 3600 + m * 60 + s;
    (t <= DAY_SECS).then_some(t)
}

fn opt_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    secs(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_and_closing_parse_and_give_the_day_s_changes() {
        let q: QueueConfig = toml::from_str(
            r#"
            name = "mexitel"
            closes = "20:00"
            [[shifts]]
            start = "08:00"
            end = "14:00"
            operators = 16
            [[shifts]]
            start = "11:00"
            end = "17:00"
            operators = 14
            [[shifts]]
            start = "22:00"
            end = "06:30"
            operators = 2
            "#,
        )
        .expect("valid test toml");
        assert_eq!(q.closes, Some(20 * 3600));
        assert_eq!(scheduled(&q.shifts, 12 * 3600), 30);
        assert_eq!(scheduled(&q.shifts, 14 * 3600), 14);
        assert_eq!(scheduled(&q.shifts, 3600), 2);
        // From 10:00: +14 at 11 h, −16 at 14 h, −14 at 17 h, +2 at 22 h,
        // −2 at 6:30, +16 at 8 h; a hand-over is both moves, leaves first.
        let h = |x: f64| (x * 3600.0) as u32;
        assert_eq!(
            schedule_changes(&q.shifts, h(10.0)),
            vec![
                (h(1.0), 14),
                (h(4.0), -16),
                (h(7.0), -14),
                (h(12.0), 2),
                (h(20.5), -2),
                (h(22.0), 16)
            ]
        );
        let handover = [
            Shift {
                start: 8 * 3600,
                end: 14 * 3600,
                operators: 16,
            },
            Shift {
                start: 14 * 3600,
                end: 20 * 3600,
                operators: 12,
            },
        ];
        assert_eq!(
            schedule_changes(&handover, h(13.0)),
            vec![(h(1.0), -16), (h(1.0), 12), (h(7.0), -12), (h(19.0), 16)]
        );
        assert!(toml::from_str::<QueueConfig>("name = \"x\"\ncloses = \"25:00\"").is_err());
        assert_eq!(parse_time_of_day("24:00"), Some(DAY_SECS));
        assert_eq!(parse_time_of_day("7:61"), None);
    }

    #[test]
    fn parses_a_queue_and_operator_from_toml() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            queue: Vec<QueueConfig>,
            operator: Vec<OperatorConfig>,
        }
        let f: File = toml::from_str(
            r#"
            [[queue]]
            name = "proteccion"
            strategy = "rrmemory"
            ring_timeout = 20
            wrapup = 7.5
            max_wait = 900
            join_empty = "unstaffed"
            penalty_steps = [{ after = 60, max_penalty = 1 }, { after = 120, max_penalty = 5 }]

            [[operator]]
            id = "op1"
            name = "Ana"
            password = "s3cret"
            queues = [{ name = "proteccion", penalty = 1 }]
            "#,
        )
        .expect("valid test toml");
        let q = &f.queue[0];
        assert_eq!(q.strategy, Strategy::RoundRobin);
        assert_eq!(q.ring_timeout, Duration::from_secs(20));
        assert_eq!(q.wrapup, Duration::from_millis(7500));
        assert_eq!(q.max_wait, Some(Duration::from_secs(900)));
        assert_eq!(q.join_empty, EmptyWhen::Unstaffed);
        assert_eq!(q.allowed_penalty(Duration::from_secs(10)), 0);
        assert_eq!(q.allowed_penalty(Duration::from_secs(60)), 1);
        assert_eq!(q.allowed_penalty(Duration::from_secs(500)), 5);
        assert_eq!(
            q.next_step_after(Duration::from_secs(60)),
            Some(Duration::from_secs(120))
        );
        assert_eq!(f.operator[0].display_name.as_deref(), Some("Ana"));
        assert!(validate(&f.queue, &f.operator).is_ok());
    }

    #[test]
    fn rejects_unknown_fields_and_bad_references() {
        let bad: Result<QueueConfig, _> = toml::from_str("name = \"q\"\nstrategee = \"random\"");
        assert!(bad.is_err());
        let neg: Result<QueueConfig, _> = toml::from_str("name = \"q\"\nwrapup = -1");
        assert!(neg.is_err());
        let q = vec![QueueConfig::named("a")];
        let op = OperatorConfig {
            id: "x".into(),
            display_name: None,
            password: None,
            static_uri: None,
            queues: vec![Membership {
                name: "b".into(),
                penalty: 0,
            }],
        };
        assert_eq!(
            validate(&q, &[op]),
            Err(ConfigError::UnknownQueue {
                operator: "x".into(),
                queue: "b".into()
            })
        );
        assert_eq!(
            validate(&[QueueConfig::named("a"), QueueConfig::named("a")], &[]),
            Err(ConfigError::DuplicateQueue("a".into()))
        );
    }
}
