//! The IVR interpreter: walks one call through a validated plan.
//!
//! Deterministic and without I/O: the call layer (or `simulate`, or a test)
//! feeds it events — playback finished, a digit, a timer fired, the queue let
//! the caller go — and carries out the commands it returns. Time is virtual:
//! the interpreter asks for timers with a token and a duration and never
//! reads a clock; the wall clock is passed in only for time-of-day branches.
//! Tokens are never reused, so a late event for a stopped prompt or a
//! cancelled timer is recognised and ignored.
//!
//! Figures: the interpreter counts node visits, invalid input and timeouts
//! per node in plain data ([`IvrCount`]) and hands them over with
//! [`Interpreter::take_figures`]; it never touches the metrics recorder.
//! The call's shell turns them into `conmutador_ivr_*` metrics (labels
//! `plan` and `node`; both come from plan files, so the label sets are
//! bounded), and journeys and `simulate` simply never take them, so a
//! reload does not inflate live figures.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::model::*;
use super::say;

/// Consecutive node transitions allowed without waiting for the caller or a
/// prompt. A validated plan cannot loop, but the interpreter does not trust
/// that: past the cap the call is hung up.
pub const MAX_HOPS: usize = 32;
/// Node visits allowed in one call (a caller leaving a phone off the hook in
/// a menu whose exhaustion leads back to itself would otherwise loop for
/// ever).
pub const MAX_VISITS: usize = 500;
/// Digits typed ahead during a barge-in prompt, kept for the next node.
const MAX_TYPE_AHEAD: usize = 16;
/// Variables one call may hold (collected digits plus a few built-ins).
const MAX_VARS: usize = 32;
/// Longest path kept for the CDR; visits past this are counted, not stored.
const MAX_PATH: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    pub caller: String,
    pub called: String,
}

/// Why the queue let a caller go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueExitReason {
    /// The queue was at capacity when the caller arrived.
    Full,
    /// The caller waited longer than the queue allows.
    Timeout,
    /// No operator is logged in to serve the queue.
    Empty,
    /// The caller pressed a key the queue offers as a way out.
    Key(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IvrEvent {
    PlaybackDone { token: u64 },
    Digit(char),
    Timer { token: u64 },
    QueueExit { reason: QueueExitReason },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IvrCommand {
    /// Play these prompts ("es-MX/bienvenida") in order; report
    /// `PlaybackDone { token }` at the end (not when stopped).
    Play {
        prompts: Vec<String>,
        barge_in: bool,
        token: u64,
    },
    /// Stop the current playback at once (barge-in); no `PlaybackDone`.
    StopPlayback,
    SetTimer {
        token: u64,
        after: Duration,
    },
    CancelTimer {
        token: u64,
    },
    /// Put the caller in a queue; the interpreter then waits for
    /// `QueueExit` (digits meanwhile belong to the queue, not the IVR).
    Enqueue {
        queue: String,
        priority: i32,
    },
    Transfer {
        uri: String,
    },
    Hangup,
    /// The call entered this node (for metrics, CDR path, logs).
    Visited {
        node: String,
    },
}

/// What the interpreter counts per node, for the shell's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IvrCount {
    /// The call entered the node.
    Visit,
    /// A menu input matched no option (or a collection failed its check).
    Invalid,
    /// A menu or digit collection timed out without input.
    Timeout,
}

/// How a call left the IVR, when it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Queued { queue: String, priority: i32 },
    Transfer { uri: String },
    Hangup,
}

#[derive(Debug)]
enum State {
    NotStarted,
    /// Prompts of a play node, or the last words before an end.
    Playing {
        token: u64,
        barge_in: bool,
        then: AfterPlay,
    },
    Input(Input),
    Queued,
    Done,
}

#[derive(Debug)]
enum AfterPlay {
    Next(String),
    End(End),
}

/// A menu or collect node waiting for keys.
#[derive(Debug)]
struct Input {
    failures: u32,
    playing: Option<u64>,
    timer: Option<u64>,
    buf: String,
}

enum Flow {
    Stay,
    Goto(String),
    Hangup,
}

pub struct Interpreter {
    plan: Arc<Plan>,
    info: CallInfo,
    lang: String,
    vars: BTreeMap<String, String>,
    node: String,
    state: State,
    next_token: u64,
    type_ahead: VecDeque<char>,
    path: Vec<String>,
    visits: usize,
    end: Option<End>,
    /// Counts since the last `take_figures`, by what and node: at most three
    /// entries per node of the plan.
    figures: BTreeMap<(IvrCount, String), u64>,
}

impl Interpreter {
    pub fn new(plan: Arc<Plan>, info: CallInfo) -> Self {
        let lang = plan.default_language().to_string();
        Interpreter {
            plan,
            info,
            lang,
            vars: BTreeMap::new(),
            node: String::new(),
            state: State::NotStarted,
            next_token: 1,
            type_ahead: VecDeque::new(),
            path: Vec::new(),
            visits: 0,
            end: None,
            figures: BTreeMap::new(),
        }
    }

    /// What was counted since the last call, as `(what, node, how many)`,
    /// in a stable order; the counts start again from zero.
    pub fn take_figures(&mut self) -> Vec<(IvrCount, String, u64)> {
        std::mem::take(&mut self.figures)
            .into_iter()
            .map(|((what, node), n)| (what, node, n))
            .collect()
    }

    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// The call's language ("es-MX", "en"): the folder prompts come from.
    pub fn language(&self) -> &str {
        &self.lang
    }

    /// The node the call is in (empty before `start`).
    pub fn current_node(&self) -> &str {
        &self.node
    }

    /// Variables collected so far (and `queue_key` after a key exit).
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// Nodes visited, in order (the first `MAX_PATH`).
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// How the call left the IVR (a queued call that the queue lets go
    /// continues in the plan and clears this).
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// The queue's periodic announcement in the call's language, as prompt
    /// keys: "Usted ocupa el lugar número dos. El tiempo estimado de espera
    /// es de cinco minutos." (see `say::queue_announcement`).
    pub fn queue_announcement(&self, position: u64, estimate: Duration) -> Vec<String> {
        say::queue_announcement(&self.lang, position, estimate)
            .into_iter()
            .map(|n| format!("{}/{n}", self.lang))
            .collect()
    }

    /// The queue's announcement with the wait as the queue core worded it
    /// (a figure, a range, or "longer than this line allows" followed by
    /// the key exit when this queue node has somewhere to send a key).
    pub fn queue_wait_announcement(&self, position: u64, wait: say::WaitWords) -> Vec<String> {
        let key_exit = matches!(
            self.plan.node(&self.node).map(|n| &n.kind),
            Some(NodeKind::Queue(q)) if q.on_key.is_some() || q.overflow.is_some()
        );
        say::wait_announcement(&self.lang, position, wait, key_exit)
            .into_iter()
            .map(|n| format!("{}/{n}", self.lang))
            .collect()
    }

    /// True once the interpreter has nothing more to do for the call.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done)
    }

    pub fn start(&mut self, now: Instant, wall: DateTime<Utc>) -> Vec<IvrCommand> {
        let mut out = Vec::new();
        if matches!(self.state, State::NotStarted) {
            let start = self.plan.start.v.clone();
            self.goto(start, now, wall, &mut out);
        }
        out
    }

    pub fn handle(&mut self, ev: IvrEvent, now: Instant, wall: DateTime<Utc>) -> Vec<IvrCommand> {
        let mut out = Vec::new();
        let flow = self.event(ev, &mut out);
        match flow {
            Flow::Stay => {}
            Flow::Goto(n) => self.goto(n, now, wall, &mut out),
            Flow::Hangup => self.finish(End::Hangup, &mut out),
        }
        out
    }

    /// Enters `node` from outside the plan's own flow (an operator sent the
    /// caller there), as if a transition had led to it; whatever the call
    /// was doing in the plan (waiting in a queue) is over.
    pub fn jump(&mut self, node: &str, now: Instant, wall: DateTime<Utc>) -> Vec<IvrCommand> {
        let mut out = Vec::new();
        self.type_ahead.clear();
        self.goto(node.to_owned(), now, wall, &mut out);
        out
    }

    fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    fn count(&mut self, what: IvrCount) {
        *self.figures.entry((what, self.node.clone())).or_default() += 1;
    }

    fn var(&self, name: &str) -> Option<String> {
        match name {
            "language" => Some(self.lang.clone()),
            "caller" => Some(self.info.caller.clone()),
            "called" => Some(self.info.called.clone()),
            _ => self.vars.get(name).cloned(),
        }
    }

    fn set_var(&mut self, name: &str, value: String) {
        if self.vars.len() < MAX_VARS || self.vars.contains_key(name) {
            self.vars.insert(name.to_string(), value);
        }
    }

    /// Turns prompt references into "lang/name" keys for this call.
    fn resolve(&self, prompts: &[Sp<PromptRef>]) -> Vec<String> {
        let mut out = Vec::new();
        for p in prompts {
            match &p.v {
                PromptRef::File { lang, name } => {
                    out.push(format!("{}/{name}", lang.as_deref().unwrap_or(&self.lang)));
                }
                PromptRef::Say { kind, var } => {
                    let value = self.var(var).unwrap_or_default();
                    let names = match kind {
                        say::SayKind::Digits => say::digits(&self.lang, &value),
                        say::SayKind::Number => match value.parse::<u64>() {
                            Ok(n) => say::number(&self.lang, n, say::Form::Counting),
                            Err(_) => say::digits(&self.lang, &value),
                        },
                    };
                    out.extend(names.into_iter().map(|n| format!("{}/{n}", self.lang)));
                }
            }
        }
        out
    }

    /// Emits a Play for the prompts, or nothing when they resolve to none.
    fn play(
        &mut self,
        prompts: &[Sp<PromptRef>],
        barge_in: bool,
        out: &mut Vec<IvrCommand>,
    ) -> Option<u64> {
        let keys = self.resolve(prompts);
        if keys.is_empty() {
            return None;
        }
        let token = self.token();
        out.push(IvrCommand::Play {
            prompts: keys,
            barge_in,
            token,
        });
        Some(token)
    }

    fn set_timer(&mut self, after: Duration, out: &mut Vec<IvrCommand>) -> u64 {
        let token = self.token();
        out.push(IvrCommand::SetTimer { token, after });
        token
    }

    fn finish(&mut self, end: End, out: &mut Vec<IvrCommand>) {
        out.push(match &end {
            End::Queued { queue, priority } => IvrCommand::Enqueue {
                queue: queue.clone(),
                priority: *priority,
            },
            End::Transfer { uri } => IvrCommand::Transfer { uri: uri.clone() },
            End::Hangup => IvrCommand::Hangup,
        });
        self.state = if matches!(end, End::Queued { .. }) {
            State::Queued
        } else {
            State::Done
        };
        self.end = Some(end);
    }

    /// Plays an end node's last words, then ends.
    fn play_then_end(&mut self, prompts: &[Sp<PromptRef>], end: End, out: &mut Vec<IvrCommand>) {
        match self.play(prompts, false, out) {
            Some(token) => {
                self.state = State::Playing {
                    token,
                    barge_in: false,
                    then: AfterPlay::End(end),
                }
            }
            None => self.finish(end, out),
        }
    }

    /// Enters `target` and runs through nodes that need no waiting.
    fn goto(
        &mut self,
        mut target: String,
        _now: Instant,
        wall: DateTime<Utc>,
        out: &mut Vec<IvrCommand>,
    ) {
        let plan = self.plan.clone();
        for _ in 0..MAX_HOPS {
            let Some(node) = plan.node(&target) else {
                tracing::error!(plan = %plan.name, node = %target, "dialplan refers to a missing node; hanging up");
                return self.finish(End::Hangup, out);
            };
            self.visits += 1;
            if self.visits > MAX_VISITS {
                tracing::warn!(plan = %plan.name, node = %target, "call visited too many nodes; hanging up");
                return self.finish(End::Hangup, out);
            }
            self.node = target.clone();
            self.end = None;
            if self.path.len() < MAX_PATH {
                self.path.push(target.clone());
            }
            out.push(IvrCommand::Visited {
                node: target.clone(),
            });
            self.count(IvrCount::Visit);
            let flow = match &node.kind {
                NodeKind::Branch(b) => {
                    let local = wall.with_timezone(&b.timezone).naive_local();
                    let var = |n: &str| self.var(n);
                    let hit = b.cases.iter().find(|c| {
                        c.conditions
                            .iter()
                            .all(|cond| condition_holds(cond, local, &plan, &var))
                    });
                    Flow::Goto(
                        hit.map(|c| c.next.v.clone())
                            .unwrap_or_else(|| b.otherwise.v.clone()),
                    )
                }
                NodeKind::Language(l) => {
                    self.lang = l.language.v.clone();
                    Flow::Goto(l.next.v.clone())
                }
                NodeKind::Play(p) => {
                    if p.barge_in && !self.type_ahead.is_empty() {
                        // The caller already knows where to go.
                        Flow::Goto(p.next.v.clone())
                    } else {
                        match self.play(&p.prompts, p.barge_in, out) {
                            Some(token) => {
                                self.state = State::Playing {
                                    token,
                                    barge_in: p.barge_in,
                                    then: AfterPlay::Next(p.next.v.clone()),
                                };
                                Flow::Stay
                            }
                            None => Flow::Goto(p.next.v.clone()),
                        }
                    }
                }
                NodeKind::Menu(m) => self.enter_input(&m.prompts, m.barge_in, m.timeout, out),
                NodeKind::Collect(c) => self.enter_input(&c.prompts, c.barge_in, c.timeout, out),
                NodeKind::Queue(q) => {
                    let end = End::Queued {
                        queue: q.queue.v.clone(),
                        priority: q.priority,
                    };
                    self.play_then_end(&q.prompts, end, out);
                    Flow::Stay
                }
                NodeKind::Transfer(t) => {
                    self.play_then_end(
                        &t.prompts,
                        End::Transfer {
                            uri: t.uri.v.clone(),
                        },
                        out,
                    );
                    Flow::Stay
                }
                NodeKind::Hangup(h) => {
                    self.play_then_end(&h.prompts, End::Hangup, out);
                    Flow::Stay
                }
            };
            match flow {
                Flow::Stay => return,
                Flow::Goto(n) => target = n,
                Flow::Hangup => return self.finish(End::Hangup, out),
            }
        }
        tracing::error!(plan = %plan.name, node = %target, "dialplan loops without waiting for the caller; hanging up");
        self.finish(End::Hangup, out);
    }

    /// Starts a menu or collect node: type-ahead digits first, else the
    /// greeting.
    fn enter_input(
        &mut self,
        prompts: &[Sp<PromptRef>],
        barge_in: bool,
        timeout: Duration,
        out: &mut Vec<IvrCommand>,
    ) -> Flow {
        self.state = State::Input(Input {
            failures: 0,
            playing: None,
            timer: None,
            buf: String::new(),
        });
        if barge_in && !self.type_ahead.is_empty() {
            while let Some(d) = self.type_ahead.pop_front() {
                match self.input_digit(d, out) {
                    Flow::Stay => {}
                    other => return other,
                }
                // A wrong key typed ahead: the caller hears why, and the
                // rest of what they typed no longer means anything.
                if matches!(&self.state, State::Input(i) if i.playing.is_some()) {
                    self.type_ahead.clear();
                }
            }
            return Flow::Stay;
        }
        self.type_ahead.clear();
        let playing = self.play(prompts, barge_in, out);
        let timer = match playing {
            Some(_) => None,
            None => Some(self.set_timer(timeout, out)),
        };
        if let State::Input(i) = &mut self.state {
            i.playing = playing;
            i.timer = timer;
        }
        Flow::Stay
    }

    fn event(&mut self, ev: IvrEvent, out: &mut Vec<IvrCommand>) -> Flow {
        match ev {
            IvrEvent::PlaybackDone { token } => match &mut self.state {
                State::Playing { token: t, then, .. } if *t == token => {
                    let then = std::mem::replace(then, AfterPlay::End(End::Hangup));
                    match then {
                        AfterPlay::Next(n) => Flow::Goto(n),
                        AfterPlay::End(end) => {
                            self.finish(end, out);
                            Flow::Stay
                        }
                    }
                }
                State::Input(i) if i.playing == Some(token) => {
                    i.playing = None;
                    let after = self.input_timeout();
                    let t = self.set_timer(after, out);
                    if let State::Input(i) = &mut self.state {
                        i.timer = Some(t);
                    }
                    Flow::Stay
                }
                _ => Flow::Stay,
            },
            IvrEvent::Digit(d) => {
                if !is_dtmf(d) {
                    return Flow::Stay;
                }
                match &mut self.state {
                    State::Playing {
                        barge_in: true,
                        then: AfterPlay::Next(n),
                        ..
                    } => {
                        let n = n.clone();
                        out.push(IvrCommand::StopPlayback);
                        if self.type_ahead.len() < MAX_TYPE_AHEAD {
                            self.type_ahead.push_back(d);
                        }
                        Flow::Goto(n)
                    }
                    State::Input(_) => self.input_digit(d, out),
                    // Not listening: a non-barge-in prompt, the queue (which
                    // gets digits from the call layer), or the end.
                    _ => Flow::Stay,
                }
            }
            IvrEvent::Timer { token } => match &mut self.state {
                State::Input(i) if i.timer == Some(token) => {
                    i.timer = None;
                    self.input_timer(out)
                }
                _ => Flow::Stay,
            },
            IvrEvent::QueueExit { reason } => {
                if !matches!(self.state, State::Queued) {
                    return Flow::Stay;
                }
                let Some(NodeKind::Queue(q)) = self.plan.node(&self.node).map(|n| &n.kind) else {
                    return Flow::Hangup;
                };
                let specific = match reason {
                    QueueExitReason::Full => &q.on_full,
                    QueueExitReason::Timeout => &q.on_timeout,
                    QueueExitReason::Empty => &q.on_empty,
                    QueueExitReason::Key(_) => &q.on_key,
                };
                let target = specific
                    .as_ref()
                    .or(q.overflow.as_ref())
                    .map(|s| s.v.clone());
                if let QueueExitReason::Key(k) = reason {
                    self.set_var("queue_key", k.to_string());
                }
                self.end = None;
                match target {
                    Some(t) => Flow::Goto(t),
                    None => Flow::Hangup,
                }
            }
        }
    }

    fn input_timeout(&self) -> Duration {
        match self.plan.node(&self.node).map(|n| &n.kind) {
            Some(NodeKind::Menu(m)) => m.timeout,
            Some(NodeKind::Collect(c)) => c.timeout,
            _ => DEFAULT_TIMEOUT,
        }
    }

    fn input_digit(&mut self, d: char, out: &mut Vec<IvrCommand>) -> Flow {
        let plan = self.plan.clone();
        let State::Input(input) = &mut self.state else {
            return Flow::Stay;
        };
        let kind = plan.node(&self.node).map(|n| &n.kind);
        let barge_in = match kind {
            Some(NodeKind::Menu(m)) => m.barge_in,
            Some(NodeKind::Collect(c)) => c.barge_in,
            _ => return Flow::Stay,
        };
        if input.playing.is_some() {
            if !barge_in {
                return Flow::Stay;
            }
            input.playing = None;
            out.push(IvrCommand::StopPlayback);
        }
        if let Some(t) = input.timer.take() {
            out.push(IvrCommand::CancelTimer { token: t });
        }
        match kind {
            Some(NodeKind::Menu(m)) => {
                if input.buf.is_empty() && m.repeat_key.as_ref().is_some_and(|k| k.v == d) {
                    let prompts = if m.reprompt.is_empty() {
                        &m.prompts
                    } else {
                        &m.reprompt
                    };
                    let p = self.play(prompts, m.barge_in, out);
                    return self.after_replay(p, m.timeout, out);
                }
                input.buf.push(d);
                let buf = input.buf.clone();
                let exact = m.options.iter().find(|o| o.digits.v == buf);
                let longer = m
                    .options
                    .iter()
                    .any(|o| o.digits.v.len() > buf.len() && o.digits.v.starts_with(&buf));
                match (exact, longer) {
                    (Some(o), false) => Flow::Goto(o.next.v.clone()),
                    (_, true) => {
                        let t = self.set_timer(m.digit_timeout, out);
                        if let State::Input(i) = &mut self.state {
                            i.timer = Some(t);
                        }
                        Flow::Stay
                    }
                    (None, false) => self.failure(false, out),
                }
            }
            Some(NodeKind::Collect(c)) => {
                if Some(d) == c.terminator {
                    return self.collect_done(out);
                }
                if input.buf.len() < MAX_COLLECT_DIGITS {
                    input.buf.push(d);
                }
                if input.buf.len() >= c.max_digits {
                    return self.collect_done(out);
                }
                let t = self.set_timer(c.digit_timeout, out);
                if let State::Input(i) = &mut self.state {
                    i.timer = Some(t);
                }
                Flow::Stay
            }
            _ => Flow::Stay,
        }
    }

    fn after_replay(
        &mut self,
        playing: Option<u64>,
        timeout: Duration,
        out: &mut Vec<IvrCommand>,
    ) -> Flow {
        let timer = match playing {
            Some(_) => None,
            None => Some(self.set_timer(timeout, out)),
        };
        if let State::Input(i) = &mut self.state {
            i.playing = playing;
            i.timer = timer;
        }
        Flow::Stay
    }

    fn input_timer(&mut self, out: &mut Vec<IvrCommand>) -> Flow {
        let plan = self.plan.clone();
        let State::Input(input) = &mut self.state else {
            return Flow::Stay;
        };
        if input.buf.is_empty() {
            return self.failure(true, out);
        }
        match plan.node(&self.node).map(|n| &n.kind) {
            Some(NodeKind::Menu(m)) => {
                let buf = input.buf.clone();
                match m.options.iter().find(|o| o.digits.v == buf) {
                    Some(o) => Flow::Goto(o.next.v.clone()),
                    None => self.failure(false, out),
                }
            }
            Some(NodeKind::Collect(_)) => self.collect_done(out),
            _ => Flow::Stay,
        }
    }

    fn collect_done(&mut self, out: &mut Vec<IvrCommand>) -> Flow {
        let plan = self.plan.clone();
        let Some(NodeKind::Collect(c)) = plan.node(&self.node).map(|n| &n.kind) else {
            return Flow::Stay;
        };
        let State::Input(input) = &mut self.state else {
            return Flow::Stay;
        };
        let buf = std::mem::take(&mut input.buf);
        let ok = buf.len() >= c.min_digits
            && buf.len() <= c.max_digits
            && c.pattern.as_ref().is_none_or(|p| p.v.matches(&buf));
        if ok {
            self.set_var(&c.variable.v, buf);
            Flow::Goto(c.next.v.clone())
        } else {
            self.failure(false, out)
        }
    }

    /// An invalid entry or a timeout: re-prompt, or leave when retries are
    /// used up.
    fn failure(&mut self, timeout: bool, out: &mut Vec<IvrCommand>) -> Flow {
        let plan = self.plan.clone();
        self.count(if timeout {
            IvrCount::Timeout
        } else {
            IvrCount::Invalid
        });
        let State::Input(input) = &mut self.state else {
            return Flow::Stay;
        };
        input.buf.clear();
        input.failures += 1;
        let failures = input.failures;
        let Some(r) = plan.node(&self.node).and_then(|n| n.kind.retrying()) else {
            return Flow::Hangup;
        };
        let why = if timeout {
            r.timeout_prompts
        } else {
            r.invalid
        };
        let prompts: Vec<Sp<PromptRef>> = [why, r.again()].concat();
        let (max, exhausted, barge_in, wait) =
            (r.max_retries, r.exhausted.cloned(), r.barge_in, r.timeout);
        if failures > max {
            return match exhausted {
                Some(n) => Flow::Goto(n.v),
                None => Flow::Hangup,
            };
        }
        let p = self.play(&prompts, barge_in, out);
        self.after_replay(p, wait, out)
    }
}
