//! The dialplan model: what a loaded plan is, after parsing and before
//! validation. Every value an author wrote keeps its byte span so that the
//! validator (and journey tests) can point back at the source.
//!
//! Pure data plus the few pure functions that evaluate it (digit patterns,
//! branch conditions). No I/O, no call state.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Weekday};
use chrono_tz::Tz;

use super::diag::SourceFile;
use super::say::SayKind;

/// A value with the byte span it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sp<T> {
    pub v: T,
    pub span: Range<usize>,
}

impl<T> Sp<T> {
    pub fn new(v: T, span: Range<usize>) -> Self {
        Sp { v, span }
    }
}

/// The languages a plan may speak. Prompt folders use these names.
pub const LANGUAGES: &[&str] = &["es-MX", "en"];
pub const DEFAULT_LANGUAGE: &str = "es-MX";
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::America::Mexico_City;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_DIGIT_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// Longest digit string a collect node may ask for (bounds the buffer).
pub const MAX_COLLECT_DIGITS: usize = 32;

/// One plan file.
#[derive(Debug)]
pub struct Plan {
    pub name: String,
    pub source: Arc<SourceFile>,
    pub start: Sp<String>,
    /// Enabled languages; the first one is the call's language at start.
    pub languages: Vec<Sp<String>>,
    pub timezone: Tz,
    /// Called numbers (Request-URI user part) this plan answers.
    pub numbers: Vec<Sp<String>>,
    /// Answers every number no plan claims.
    pub is_default: bool,
    pub holidays: BTreeMap<String, HolidayList>,
    pub nodes: BTreeMap<String, Node>,
    /// Nodes written in the file that could not be read (already reported);
    /// the validator does not call references to them unknown.
    pub broken: BTreeSet<String>,
    pub tests: Vec<Journey>,
}

impl Plan {
    pub fn default_language(&self) -> &str {
        self.languages
            .first()
            .map(|l| l.v.as_str())
            .unwrap_or(DEFAULT_LANGUAGE)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }
}

#[derive(Debug, Clone)]
pub struct HolidayList {
    pub name: Sp<String>,
    /// date -> what the day is called (for simulate output).
    pub days: BTreeMap<NaiveDate, String>,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    /// Span of the node's name in `[nodes.<name>]`.
    pub span: Range<usize>,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Menu(Menu),
    Play(Play),
    Collect(Collect),
    Branch(Branch),
    Language(SetLanguage),
    Queue(Queue),
    Transfer(Transfer),
    Hangup(Hangup),
}

impl NodeKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Menu(_) => "menu",
            NodeKind::Play(_) => "play",
            NodeKind::Collect(_) => "collect",
            NodeKind::Branch(_) => "branch",
            NodeKind::Language(_) => "language",
            NodeKind::Queue(_) => "queue",
            NodeKind::Transfer(_) => "transfer",
            NodeKind::Hangup(_) => "hangup",
        }
    }

    /// Every node reference the node makes, with its span.
    pub fn refs(&self) -> Vec<&Sp<String>> {
        let mut out: Vec<&Sp<String>> = Vec::new();
        match self {
            NodeKind::Menu(m) => {
                out.extend(m.options.iter().map(|o| &o.next));
                out.extend(m.exhausted.iter());
            }
            NodeKind::Play(p) => out.push(&p.next),
            NodeKind::Collect(c) => {
                out.push(&c.next);
                out.extend(c.exhausted.iter());
            }
            NodeKind::Branch(b) => {
                out.extend(b.cases.iter().map(|c| &c.next));
                out.push(&b.otherwise);
            }
            NodeKind::Language(l) => out.push(&l.next),
            NodeKind::Queue(q) => {
                out.extend(
                    [
                        &q.on_full,
                        &q.on_timeout,
                        &q.on_empty,
                        &q.on_key,
                        &q.overflow,
                    ]
                    .into_iter()
                    .flatten(),
                );
            }
            NodeKind::Transfer(_) | NodeKind::Hangup(_) => {}
        }
        out
    }

    /// What a menu or a collect node says and how it retries; None for
    /// the kinds that take no input.
    pub fn retrying(&self) -> Option<Retrying<'_>> {
        // Menu and Collect name these fields alike; one list of them.
        macro_rules! view {
            ($n:expr) => {
                Retrying {
                    prompts: &$n.prompts,
                    reprompt: &$n.reprompt,
                    invalid: &$n.invalid_prompts,
                    timeout_prompts: &$n.timeout_prompts,
                    max_retries: $n.max_retries,
                    exhausted: $n.exhausted.as_ref(),
                    barge_in: $n.barge_in,
                    timeout: $n.timeout,
                }
            };
        }
        match self {
            NodeKind::Menu(m) => Some(view!(m)),
            NodeKind::Collect(c) => Some(view!(c)),
            _ => None,
        }
    }

    /// Every prompt the node plays directly.
    pub fn prompts(&self) -> Vec<&Sp<PromptRef>> {
        if let Some(r) = self.retrying() {
            return [r.prompts, r.reprompt, r.invalid, r.timeout_prompts]
                .into_iter()
                .flatten()
                .collect();
        }
        let lists: Vec<&Vec<Sp<PromptRef>>> = match self {
            NodeKind::Play(p) => vec![&p.prompts],
            NodeKind::Queue(q) => vec![&q.prompts],
            NodeKind::Transfer(t) => vec![&t.prompts],
            NodeKind::Hangup(h) => vec![&h.prompts],
            // Menus and collects were answered above.
            NodeKind::Menu(_)
            | NodeKind::Collect(_)
            | NodeKind::Branch(_)
            | NodeKind::Language(_) => vec![],
        };
        lists.into_iter().flatten().collect()
    }
}

/// The fields menus and collects share: their prompts and their retries.
pub struct Retrying<'a> {
    pub prompts: &'a [Sp<PromptRef>],
    /// Played instead of `prompts` on retries; empty = replay `prompts`.
    pub reprompt: &'a [Sp<PromptRef>],
    pub invalid: &'a [Sp<PromptRef>],
    pub timeout_prompts: &'a [Sp<PromptRef>],
    pub max_retries: u32,
    pub exhausted: Option<&'a Sp<String>>,
    pub barge_in: bool,
    pub timeout: Duration,
}

impl<'a> Retrying<'a> {
    /// What a retry replays: the reprompt, or the prompts when there is none.
    pub fn again(&self) -> &'a [Sp<PromptRef>] {
        if self.reprompt.is_empty() {
            self.prompts
        } else {
            self.reprompt
        }
    }
}

/// A prompt reference as written in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptRef {
    /// `"bienvenida"` (call's language) or `"en/for_english"` (fixed language).
    File { lang: Option<String>, name: String },
    /// `{ say = "digits", var = "cita" }`: words built at run time.
    Say { kind: SayKind, var: String },
}

#[derive(Debug, Clone)]
pub struct MenuOption {
    pub digits: Sp<String>,
    pub next: Sp<String>,
}

#[derive(Debug, Clone)]
pub struct Menu {
    pub prompts: Vec<Sp<PromptRef>>,
    /// Played instead of `prompts` on retries; empty = replay `prompts`.
    pub reprompt: Vec<Sp<PromptRef>>,
    pub invalid_prompts: Vec<Sp<PromptRef>>,
    pub timeout_prompts: Vec<Sp<PromptRef>>,
    pub options: Vec<MenuOption>,
    /// Replays the greeting without counting a failure.
    pub repeat_key: Option<Sp<char>>,
    pub timeout: Duration,
    pub digit_timeout: Duration,
    pub max_retries: u32,
    /// Where callers go when retries run out; None = hang up.
    pub exhausted: Option<Sp<String>>,
    pub barge_in: bool,
}

#[derive(Debug, Clone)]
pub struct Play {
    pub prompts: Vec<Sp<PromptRef>>,
    pub next: Sp<String>,
    pub barge_in: bool,
}

#[derive(Debug, Clone)]
pub struct Collect {
    pub prompts: Vec<Sp<PromptRef>>,
    pub reprompt: Vec<Sp<PromptRef>>,
    pub invalid_prompts: Vec<Sp<PromptRef>>,
    pub timeout_prompts: Vec<Sp<PromptRef>>,
    pub min_digits: usize,
    pub max_digits: usize,
    pub terminator: Option<char>,
    pub timeout: Duration,
    pub digit_timeout: Duration,
    pub pattern: Option<Sp<DigitPattern>>,
    pub variable: Sp<String>,
    pub max_retries: u32,
    pub next: Sp<String>,
    pub exhausted: Option<Sp<String>>,
    pub barge_in: bool,
}

#[derive(Debug, Clone)]
pub struct Branch {
    pub timezone: Tz,
    pub cases: Vec<Case>,
    pub otherwise: Sp<String>,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub span: Range<usize>,
    pub conditions: Vec<Condition>,
    pub next: Sp<String>,
}

#[derive(Debug, Clone)]
pub enum Condition {
    /// Today (in the branch's zone) is in the named holiday list.
    Holiday(Sp<String>),
    /// Bit `n` set for the day `n` days from Monday (see `day_bit`).
    Days(u8),
    /// Start inclusive, end exclusive; `end <= start` wraps past midnight.
    Time {
        start: NaiveTime,
        end: NaiveTime,
    },
    /// Inclusive date ranges; the condition holds when any range contains today.
    Dates(Vec<(NaiveDate, NaiveDate)>),
    Var {
        name: Sp<String>,
        test: VarTest,
    },
}

#[derive(Debug, Clone)]
pub enum VarTest {
    IsSet,
    Equals(String),
    Matches(DigitPattern),
}

#[derive(Debug, Clone)]
pub struct SetLanguage {
    pub language: Sp<String>,
    pub next: Sp<String>,
}

#[derive(Debug, Clone)]
pub struct Queue {
    pub queue: Sp<String>,
    pub priority: i32,
    pub prompts: Vec<Sp<PromptRef>>,
    pub on_full: Option<Sp<String>>,
    pub on_timeout: Option<Sp<String>>,
    pub on_empty: Option<Sp<String>>,
    pub on_key: Option<Sp<String>>,
    /// Used for any exit reason without its own node.
    pub overflow: Option<Sp<String>>,
}

#[derive(Debug, Clone)]
pub struct Transfer {
    pub uri: Sp<String>,
    pub prompts: Vec<Sp<PromptRef>>,
}

#[derive(Debug, Clone)]
pub struct Hangup {
    pub prompts: Vec<Sp<PromptRef>>,
}

/// A journey test carried by a plan.
#[derive(Debug, Clone)]
pub struct Journey {
    pub name: String,
    pub span: Range<usize>,
    pub caller: String,
    pub number: String,
    /// Local time in the plan's zone; None = a fixed weekday morning.
    pub at: Option<NaiveDateTime>,
    pub press: Vec<Step>,
    pub expect: Sp<Expect>,
    pub visits: Vec<Sp<String>>,
    pub language: Option<Sp<String>>,
}

/// What a journey (or a call) ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Queue(String),
    Transfer(String),
    Hangup,
    /// Still waiting in this node when the presses run out.
    Node(String),
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Queue(q) => write!(f, "queue:{q}"),
            Expect::Transfer(u) => write!(f, "transfer:{u}"),
            Expect::Hangup => write!(f, "hangup"),
            Expect::Node(n) => write!(f, "node:{n}"),
        }
    }
}

impl std::str::FromStr for Expect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "hangup" {
            return Ok(Expect::Hangup);
        }
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("expected \"queue:NAME\", \"transfer:URI\", \"node:NAME\" or \"hangup\", found \"{s}\""))?;
        let rest = rest.trim();
        if rest.is_empty() {
            return Err(format!("\"{kind}:\" needs a name after the colon"));
        }
        match kind {
            "queue" => Ok(Expect::Queue(rest.into())),
            "transfer" => Ok(Expect::Transfer(rest.into())),
            "node" => Ok(Expect::Node(rest.into())),
            _ => Err(format!(
                "unknown end \"{kind}\": use queue, transfer, node or hangup"
            )),
        }
    }
}

/// One thing a simulated caller does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Press after the current prompt has finished.
    Press(char),
    /// Press while the prompt still plays (barge-in).
    Barge(char),
    /// Press nothing: let the node's timer run out.
    Wait,
    /// The queue lets the caller go for this reason.
    QueueExit(super::interpreter::QueueExitReason),
}

/// Parses press tokens as authors write them: `1`, `12345678#` (several
/// presses), `!1` (barge-in), `w` (wait for the timeout) and `exit:full`,
/// `exit:timeout`, `exit:empty`, `exit:key:3` (the queue lets go).
pub fn parse_steps<S: AsRef<str>>(tokens: &[S]) -> Result<Vec<Step>, String> {
    use super::interpreter::QueueExitReason as R;
    let mut out = Vec::new();
    for tok in tokens.iter().flat_map(|t| {
        t.as_ref()
            .split([',', ' ', '\t'])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    }) {
        let t = tok.as_str();
        if t == "w" || t == "wait" {
            out.push(Step::Wait);
        } else if let Some(reason) = t.strip_prefix("exit:") {
            let r = match reason {
                "full" => R::Full,
                "timeout" => R::Timeout,
                "empty" => R::Empty,
                k => match k
                    .strip_prefix("key:")
                    .map(|d| d.chars().collect::<Vec<_>>())
                {
                    Some(d) if d.len() == 1 && is_dtmf(d[0]) => R::Key(d[0]),
                    _ => {
                        return Err(format!(
                            "unknown queue exit \"{t}\": use exit:full, exit:timeout, exit:empty or exit:key:D"
                        ));
                    }
                },
            };
            out.push(Step::QueueExit(r));
        } else if let Some(d) = t.strip_prefix('!') {
            let mut first = true;
            for c in d.chars() {
                if !is_dtmf(c) {
                    return Err(format!("\"{c}\" in \"{t}\" is not a telephone key"));
                }
                out.push(if first {
                    Step::Barge(c)
                } else {
                    Step::Press(c)
                });
                first = false;
            }
            if first {
                return Err("\"!\" needs a key after it".into());
            }
        } else {
            for c in t.chars() {
                if !is_dtmf(c) {
                    let within = if t.chars().count() > 1 {
                        format!(" in \"{t}\"")
                    } else {
                        String::new()
                    };
                    return Err(format!(
                        "\"{c}\"{within} is not a telephone key (0-9, *, #), w, !KEY or exit:REASON"
                    ));
                }
                out.push(Step::Press(c));
            }
        }
    }
    Ok(out)
}

pub fn is_dtmf(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#' || ('A'..='D').contains(&c)
}

/// A digit pattern in the style of Asterisk extensions: `X` any digit,
/// `Z` 1-9, `N` 2-9, `[1-5#]` a class, `.` one or more of anything, and
/// literal digits, `*`, `#`. Small on purpose: authors know these from
/// every PBX, and a full regex buys nothing for digit strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitPattern {
    pub source: String,
    elems: Vec<PatElem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatElem {
    Set(Vec<(char, char)>),
    Rest,
}

impl DigitPattern {
    pub fn parse(s: &str) -> Result<DigitPattern, String> {
        let mut elems = Vec::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if matches!(elems.last(), Some(PatElem::Rest)) {
                return Err("\".\" must be the last thing in a pattern".into());
            }
            let e = match c.to_ascii_uppercase() {
                'X' => PatElem::Set(vec![('0', '9')]),
                'Z' => PatElem::Set(vec![('1', '9')]),
                'N' => PatElem::Set(vec![('2', '9')]),
                '.' => PatElem::Rest,
                '[' => {
                    let mut set = Vec::new();
                    let mut closed = false;
                    while let Some(c) = chars.next() {
                        if c == ']' {
                            closed = true;
                            break;
                        }
                        if !is_dtmf(c) {
                            return Err(format!("\"{c}\" is not a telephone key"));
                        }
                        if chars.peek() == Some(&'-') {
                            chars.next();
                            match chars.next() {
                                Some(hi) if is_dtmf(hi) && hi >= c => set.push((c, hi)),
                                _ => return Err(format!("bad range after \"{c}-\"")),
                            }
                        } else {
                            set.push((c, c));
                        }
                    }
                    if !closed || set.is_empty() {
                        return Err("\"[\" without a closing \"]\" or with nothing inside".into());
                    }
                    PatElem::Set(set)
                }
                c if is_dtmf(c) => PatElem::Set(vec![(c, c)]),
                _ => {
                    return Err(format!(
                        "\"{c}\" is not allowed in a digit pattern (use digits, X, Z, N, [..] and a final .)"
                    ));
                }
            };
            elems.push(e);
        }
        if elems.is_empty() {
            return Err("empty pattern".into());
        }
        Ok(DigitPattern {
            source: s.to_string(),
            elems,
        })
    }

    pub fn matches(&self, digits: &str) -> bool {
        let ds: Vec<char> = digits.chars().collect();
        for (i, e) in self.elems.iter().enumerate() {
            match e {
                PatElem::Rest => return ds.len() > i,
                PatElem::Set(set) => match ds.get(i) {
                    Some(&d) if set.iter().any(|&(lo, hi)| d >= lo && d <= hi) => {}
                    _ => return false,
                },
            }
        }
        ds.len() == self.elems.len()
    }

    /// Shortest and longest strings the pattern can match (None = unbounded).
    pub fn length_bounds(&self) -> (usize, Option<usize>) {
        match self.elems.last() {
            Some(PatElem::Rest) => (self.elems.len(), None),
            _ => (self.elems.len(), Some(self.elems.len())),
        }
    }
}

pub fn day_bit(w: Weekday) -> u8 {
    1 << w.num_days_from_monday()
}

/// Where the clock stands for a branch: a local date and time in the
/// branch's zone.
pub fn condition_holds(
    cond: &Condition,
    local: NaiveDateTime,
    plan: &Plan,
    var: &dyn Fn(&str) -> Option<String>,
) -> bool {
    match cond {
        Condition::Holiday(name) => plan
            .holidays
            .get(&name.v)
            .is_some_and(|h| h.days.contains_key(&local.date())),
        Condition::Days(days) => days & day_bit(local.weekday()) != 0,
        Condition::Time { start, end } => {
            let t = local.time();
            if start < end {
                *start <= t && t < *end
            } else {
                t >= *start || t < *end
            }
        }
        Condition::Dates(ranges) => ranges
            .iter()
            .any(|(a, b)| *a <= local.date() && local.date() <= *b),
        Condition::Var { name, test } => match (var(&name.v), test) {
            (None, _) => false,
            (Some(v), VarTest::IsSet) => !v.is_empty(),
            (Some(v), VarTest::Equals(x)) => v == *x,
            (Some(v), VarTest::Matches(p)) => p.matches(&v),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_patterns_match_like_a_pbx() {
        let p = DigitPattern::parse("XXXXXXXX").unwrap();
        assert!(p.matches("12345678"));
        assert!(!p.matches("1234567"));
        assert!(!p.matches("123456789"));
        let p = DigitPattern::parse("Z[1-3]X.").unwrap();
        assert!(p.matches("1305"));
        assert!(!p.matches("130"));
        assert!(!p.matches("0305"));
        assert!(!p.matches("1405"));
        assert_eq!(p.length_bounds(), (4, None));
        assert!(DigitPattern::parse("12e").is_err());
        assert!(DigitPattern::parse("1.2").is_err());
        assert!(DigitPattern::parse("[1-").is_err());
    }

    #[test]
    fn press_tokens_parse() {
        use crate::dialplan::interpreter::QueueExitReason as R;
        let s = parse_steps(&["1", "!2", "w", "12#", "exit:key:3", "exit:full"]).unwrap();
        assert_eq!(
            s,
            vec![
                Step::Press('1'),
                Step::Barge('2'),
                Step::Wait,
                Step::Press('1'),
                Step::Press('2'),
                Step::Press('#'),
                Step::QueueExit(R::Key('3')),
                Step::QueueExit(R::Full)
            ]
        );
        assert_eq!(parse_steps(&["1,2 3"]).unwrap().len(), 3);
        assert!(parse_steps(&["x"]).is_err());
        assert!(parse_steps(&["exit:later"]).is_err());
    }
}
