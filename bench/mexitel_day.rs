//! A Mexitel-like day: long waits, priorities, breaks and shifts, a cold
//! start. How right is the wait a caller hears?
//!
//! A seeded discrete-event model, written for this bench, drives the real
//! ACD core (`conmutador::acd::Acd`) in virtual time through whole office
//! days, several days in a row per seed (the core keeps what it learnt
//! overnight, as a running gateway does; day 1 is a fresh install):
//!
//! - **Office hours 8–20 h.** Poisson arrivals whose rate follows the day:
//!   a burst at opening (8–9 h), a calmer morning, the late-morning peak, a
//!   lunch dip (13:30–15 h), the afternoon peak, a quiet evening. Nobody
//!   new joins after 20 h; the evening shift stays until the line is empty.
//! - **42 operators in three shifts** (8–14 h: 16, 11–17 h: 14, 14–20 h:
//!   12). A fifth of them log in up to 20 min late, a sixth leave up to 20
//!   min early. Each takes two 15-minute breaks, staggered by operator;
//!   a break or a shift end starts when their current call and wrap-up end
//!   (the core reports them paused), as on a real floor. The core is told
//!   the shift plan (`[[queues.shifts]]`: 8–14 h 16, 11–17 h 14, 14–21 h
//!   12, the last an hour past closing since that shift serves the line
//!   out) and the local time, not who is late, early or on a break;
//!   `MEXITEL_SCHEDULE=0` runs it without the plan, as before.
//! - **Calls**: lognormal talk times (mean 340 s, cv 0.8) plus 20 s
//!   wrap-up and a 2–6 s answer delay (about 6 min per call); 3 % of rings
//!   go unanswered (the ring times out after 15 s).
//! - **Callers**: 5 % at a higher priority (they overtake everyone waiting);
//!   heavy-tailed patience (lognormal, median 35 min, σ 1.1: many hang up
//!   within minutes, some wait an hour); `max_wait` of 60 min, after which
//!   the queue lets the caller go to the plan's overflow.
//!
//! Scoring is **as heard**: our side is the figure each caller heard on
//! entry (whole minutes; a range's middle), Asterisk's side its formula
//! (`H ← (3H + w)/4` over answered callers, told `⌊(H + 30)/60⌋` minutes,
//! at least one) scored the same way, both against the wait the caller then
//! had, for every answered caller who heard a figure on entry. Callers rung
//! at once heard nothing and are counted apart; so are callers told their
//! wait would run past `max_wait`. Rows are buckets of the *actual* wait.
//!
//! Run with `cargo bench --bench mexitel_day`; `MEXITEL_SEEDS=n` and
//! `MEXITEL_DAYS=n` change the number of seeds (5) and days per seed (3);
//! `MEXITEL_SEED_BASE=n` starts the seeds elsewhere (0: the published
//! table), to check on draws nobody tuned against; `MEXITEL_SCHEDULE=0`
//! keeps the shift plan from the core.

use std::collections::HashMap;
use std::time::Duration;

use conmutador::acd::{
    Acd, AcdCommand, AcdEvent, CallId, Membership, OperatorConfig, OperatorState, Party,
    QueueConfig, QueueEventKind, Shift, Strategy, WaitSpeech,
};

#[path = "support/sim.rs"]
mod sim;
use sim::{Asterisk, Clock, Draws, Step};

const DAY: f64 = 86_400.0;
const OPEN: f64 = 8.0 * 3600.0;
const CLOSE: f64 = 20.0 * 3600.0;
/// (from hour, arrivals per hour) — piecewise constant through the day.
const PROFILE: [(f64, f64); 7] = [
    (8.0, 380.0),
    (9.0, 175.0),
    (11.0, 300.0),
    (13.5, 200.0),
    (15.0, 260.0),
    (17.0, 125.0),
    (20.0, 0.0),
];
/// (start hour, end hour, operators).
const SHIFTS: [(f64, f64, usize); 3] = [(8.0, 14.0, 16), (11.0, 17.0, 14), (14.0, 20.0, 12)];
const LATE_SHARE: f64 = 0.2;
const EARLY_SHARE: f64 = 0.16;
const DRIFT_MAX: f64 = 20.0 * 60.0;
const BREAK: f64 = 15.0 * 60.0;
const TALK_MEAN: f64 = 340.0;
const TALK_CV: f64 = 0.8;
const WRAPUP: f64 = 20.0;
const ANSWER_DELAY: (f64, f64) = (2.0, 6.0);
const NO_ANSWER: f64 = 0.03;
const HIGH_SHARE: f64 = 0.05;
const HIGH_PRIORITY: i32 = 5;
const PATIENCE_MEDIAN: f64 = 35.0 * 60.0;
const PATIENCE_SIGMA: f64 = 1.1;
const MAX_WAIT: f64 = 3600.0;
/// Buckets of actual wait, seconds.
const BUCKETS: [(f64, f64, &str); 4] = [
    (0.0, 300.0, "< 5 min"),
    (300.0, 900.0, "5–15 min"),
    (900.0, 1800.0, "15–30 min"),
    (1800.0, f64::INFINITY, "> 30 min"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrival,
    Patience(CallId),
    Answer(CallId, usize),
    Hangup(CallId, usize),
    LogIn(usize),
    BreakStart(usize),
    BreakEnd(usize),
    ShiftEnd(usize),
    /// After closing: evening operators leave once the line is empty.
    ClosingCheck,
    NextDay,
}

/// One operator's place in the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Off,
    Working,
    /// Asked to break / leave; the core pauses them after the call.
    BreakAsked,
    OnBreak,
    LeaveAsked,
}

/// One scored caller.
#[derive(Debug, Clone, Copy)]
struct Scored {
    ours: f64,
    ast: f64,
    actual: f64,
    high: bool,
    day: usize,
    /// Seconds after opening the caller joined.
    joined: f64,
    range: Option<bool>,
}

struct Sim {
    clock: Clock<Ev>,
    draws: Draws,
    next_call: CallId,
    day: usize,
    days: usize,
    /// Waiting callers: join time, priority high?
    waiting: HashMap<CallId, (f64, bool)>,
    heard: HashMap<CallId, WaitSpeech>,
    ast: Asterisk,
    ast_heard: HashMap<CallId, f64>,
    phase: Vec<Phase>,
    shift_of: Vec<usize>,
    scored: Vec<Scored>,
    rung_at_once: Vec<f64>,
    /// Callers told on entry their wait would pass max_wait, and how many
    /// of those were answered after all.
    beyond_told: usize,
    beyond_answered: usize,
    arrived: u64,
    served: u64,
    abandoned: u64,
    timed_out: u64,
    /// Sum and count of waits of answered callers, by hour of the day.
    hourly: [(f64, u64); 14],
}

fn rate_at(secs_of_day: f64) -> f64 {
    let h = secs_of_day / 3600.0;
    let mut r = 0.0;
    for (from, rate) in PROFILE {
        if h >= from {
            r = rate;
        }
    }
    if !(8.0..20.0).contains(&h) {
        0.0
    } else {
        r / 3600.0
    }
}

impl Sim {
    fn new(seed: u64, days: usize, schedule: bool) -> Self {
        let mut q = QueueConfig::named("mexitel");
        if schedule {
            // The plan as a supervisor writes it; the evening shift is
            // written to 21 h because it serves the line out.
            q.shifts = SHIFTS
                .iter()
                .map(|&(start, end, n)| Shift {
                    start: (start * 3600.0) as u32,
                    end: (if end >= 20.0 { end + 1.0 } else { end } * 3600.0) as u32,
                    operators: n as u32,
                })
                .collect();
        }
        q.strategy = Strategy::LongestIdle;
        q.wrapup = Duration::from_secs_f64(WRAPUP);
        q.ring_timeout = Duration::from_secs(15);
        q.retry_delay = Duration::from_secs(5);
        q.announce_interval = Some(Duration::from_secs(60));
        q.max_wait = Some(Duration::from_secs_f64(MAX_WAIT));
        let total: usize = SHIFTS.iter().map(|s| s.2).sum();
        let ops = (0..total)
            .map(|i| OperatorConfig {
                id: format!("op{i}"),
                display_name: None,
                password: None,
                static_uri: None,
                queues: vec![Membership {
                    name: "mexitel".into(),
                    penalty: 0,
                }],
            })
            .collect();
        let acd = Acd::new(vec![q], ops)
            .expect("valid simulation config")
            .with_seed(seed);
        let mut shift_of = Vec::new();
        for (s, (_, _, n)) in SHIFTS.iter().enumerate() {
            shift_of.extend(std::iter::repeat_n(s, *n));
        }
        let mut sim = Sim {
            clock: Clock::new(acd),
            draws: Draws::new(seed),
            next_call: 1,
            day: 0,
            days,
            waiting: HashMap::new(),
            heard: HashMap::new(),
            ast: Asterisk::default(),
            ast_heard: HashMap::new(),
            phase: vec![Phase::Off; total],
            shift_of,
            scored: Vec::new(),
            rung_at_once: Vec::new(),
            beyond_told: 0,
            beyond_answered: 0,
            arrived: 0,
            served: 0,
            abandoned: 0,
            timed_out: 0,
            hourly: [(0.0, 0); 14],
        };
        sim.push(0.0, Ev::NextDay);
        sim
    }

    fn push(&mut self, t: f64, ev: Ev) {
        self.clock.push(t, ev);
    }

    fn uniform(&mut self) -> f64 {
        self.draws.uniform()
    }

    fn talk(&mut self) -> f64 {
        self.draws.lognormal(TALK_MEAN, TALK_CV)
    }

    fn patience(&mut self) -> f64 {
        (PATIENCE_MEDIAN.ln() + PATIENCE_SIGMA * self.draws.normal()).exp()
    }

    /// The next arrival after `t` (thinning against the day's top rate).
    fn next_arrival(&mut self, mut t: f64) -> Option<f64> {
        let top = PROFILE.iter().map(|p| p.1).fold(0.0, f64::max) / 3600.0;
        let day_start = self.day_start();
        loop {
            t += -(1.0 - self.uniform()).ln() / top;
            let tod = t - day_start;
            if tod >= CLOSE {
                return None;
            }
            if self.uniform() * top < rate_at(tod) {
                return Some(t);
            }
        }
    }

    fn day_start(&self) -> f64 {
        (self.day.saturating_sub(1)) as f64 * DAY
    }

    fn plan_day(&mut self) {
        let d0 = self.day_start();
        for op in 0..self.phase.len() {
            let (start, end, _) = SHIFTS[self.shift_of[op]];
            let late = if self.uniform() < LATE_SHARE {
                self.uniform() * DRIFT_MAX
            } else {
                0.0
            };
            let early = if self.uniform() < EARLY_SHARE {
                self.uniform() * DRIFT_MAX
            } else {
                0.0
            };
            let t_in = d0 + start * 3600.0 + late;
            let t_out = d0 + end * 3600.0 - early;
            self.push(t_in, Ev::LogIn(op));
            // Two breaks, staggered by operator within the shift.
            let len = (end - start) * 3600.0;
            let stagger = (op % 8) as f64 * 10.0 * 60.0;
            for frac in [0.22, 0.62] {
                let t = d0 + start * 3600.0 + frac * len + stagger - 40.0 * 60.0;
                if t > t_in && t + BREAK < t_out {
                    self.push(t, Ev::BreakStart(op));
                }
            }
            if end < 20.0 || early > 0.0 {
                self.push(t_out, Ev::ShiftEnd(op));
            }
        }
        let first = self.next_arrival(d0 + OPEN);
        if let Some(t) = first {
            self.push(t, Ev::Arrival);
        }
        self.push(d0 + CLOSE, Ev::ClosingCheck);
    }

    fn run(&mut self) {
        while let Some(step) = self.clock.next(f64::INFINITY) {
            match step {
                Step::Timers { secs, cmds } => self.apply(cmds, secs, None),
                Step::Event { secs, now, ev } => {
                    if let Some(acd_ev) = self.event(ev, secs) {
                        let joining = match &acd_ev {
                            AcdEvent::CallerJoined { call, .. } => Some(*call),
                            _ => None,
                        };
                        let cmds = self.clock.handle(acd_ev, now);
                        self.apply(cmds, secs, joining);
                    }
                }
            }
        }
    }

    fn event(&mut self, ev: Ev, secs: f64) -> Option<AcdEvent> {
        let op_id = |op: usize| format!("op{op}");
        match ev {
            Ev::NextDay => {
                self.day += 1;
                if self.day > self.days {
                    return None;
                }
                self.plan_day();
                // Midnight: the shell's local time of day.
                Some(AcdEvent::LocalTime { secs_of_day: 0 })
            }
            Ev::Arrival => {
                if let Some(t) = self.next_arrival(secs) {
                    self.push(t, Ev::Arrival);
                }
                let call = self.next_call;
                self.next_call += 1;
                self.arrived += 1;
                let high = self.uniform() < HIGH_SHARE;
                self.waiting.insert(call, (secs, high));
                // Asterisk's entry announcement, as heard: at least a minute.
                let heard = self.ast.heard_on_entry() as f64;
                self.ast_heard.insert(call, heard);
                let p = self.patience();
                self.push(secs + p, Ev::Patience(call));
                Some(AcdEvent::CallerJoined {
                    call,
                    queue: "mexitel".into(),
                    priority: if high { HIGH_PRIORITY } else { 0 },
                })
            }
            Ev::Patience(call) => {
                self.waiting.remove(&call)?;
                self.abandoned += 1;
                self.forget(call);
                Some(AcdEvent::CallerLeft { call })
            }
            Ev::Answer(call, op) => Some(AcdEvent::RingAnswered {
                call,
                op: op_id(op),
            }),
            Ev::Hangup(call, op) => Some(AcdEvent::CallEnded {
                call,
                op: op_id(op),
                by: Party::Caller,
            }),
            Ev::LogIn(op) => {
                self.phase[op] = Phase::Working;
                // Yesterday's "shift" pause ends with the new log-in.
                let now = self.clock.at(secs);
                let cmds = self.clock.handle(AcdEvent::Unpause { op: op_id(op) }, now);
                self.apply(cmds, secs, None);
                Some(AcdEvent::OperatorOnline { op: op_id(op) })
            }
            Ev::BreakStart(op) => {
                if self.phase[op] != Phase::Working {
                    return None;
                }
                self.phase[op] = Phase::BreakAsked;
                Some(AcdEvent::Pause {
                    op: op_id(op),
                    reason: "break".into(),
                })
            }
            Ev::BreakEnd(op) => {
                if self.phase[op] != Phase::OnBreak {
                    return None;
                }
                self.phase[op] = Phase::Working;
                Some(AcdEvent::Unpause { op: op_id(op) })
            }
            Ev::ShiftEnd(op) => {
                if self.phase[op] == Phase::Off {
                    return None;
                }
                let was_paused = self.phase[op] == Phase::OnBreak;
                self.phase[op] = Phase::LeaveAsked;
                if was_paused {
                    self.phase[op] = Phase::Off;
                    return Some(AcdEvent::OperatorOffline { op: op_id(op) });
                }
                Some(AcdEvent::Pause {
                    op: op_id(op),
                    reason: "shift".into(),
                })
            }
            Ev::ClosingCheck => {
                if !self.waiting.is_empty() {
                    self.push(secs + 60.0, Ev::ClosingCheck);
                    return None;
                }
                // The line is empty: everyone still here goes home.
                let now = self.clock.at(secs);
                for op in 0..self.phase.len() {
                    if self.phase[op] != Phase::Off {
                        self.phase[op] = Phase::Off;
                        let cmds = self
                            .clock
                            .handle(AcdEvent::OperatorOffline { op: op_id(op) }, now);
                        self.apply(cmds, secs, None);
                    }
                }
                self.push(self.day as f64 * DAY, Ev::NextDay);
                None
            }
        }
    }

    fn forget(&mut self, call: CallId) {
        self.heard.remove(&call);
        self.ast_heard.remove(&call);
    }

    fn apply(&mut self, cmds: Vec<AcdCommand>, secs: f64, joining: Option<CallId>) {
        let now = self.clock.at(secs);
        for c in cmds {
            match c {
                // 3 % of rings are never answered (the core's ring timeout ends them).
                AcdCommand::Ring { call, op, .. } if self.uniform() >= NO_ANSWER => {
                    let d = self.draws.range(ANSWER_DELAY.0, ANSWER_DELAY.1);
                    let oi = op[2..].parse().expect("sim operator ids are opN");
                    self.push(secs + d, Ev::Answer(call, oi));
                }
                AcdCommand::Announce {
                    call,
                    wait: Some(w),
                    ..
                } if Some(call) == joining => {
                    self.beyond_told += usize::from(w == WaitSpeech::Beyond);
                    self.heard.insert(call, w);
                }
                AcdCommand::Connect { call, op } => {
                    let oi = op[2..].parse().expect("sim operator ids are opN");
                    let Some((joined, high)) = self.waiting.remove(&call) else {
                        continue;
                    };
                    self.served += 1;
                    let talk = self.talk();
                    self.push(secs + talk, Ev::Hangup(call, oi));
                    let waited = secs - joined;
                    self.ast.answered(waited.round() as i64);
                    let hour = ((joined - self.day_start()) / 3600.0) as usize;
                    if let Some(h) = self.hourly.get_mut(hour.saturating_sub(8)) {
                        h.0 += waited;
                        h.1 += 1;
                    }
                    let ast = self.ast_heard.remove(&call);
                    match self.heard.remove(&call) {
                        None => self.rung_at_once.push(waited),
                        Some(WaitSpeech::Beyond) => self.beyond_answered += 1,
                        Some(w) => {
                            let heard = w.heard().expect("a figure").as_secs_f64();
                            let range = match w {
                                WaitSpeech::Range { .. } => {
                                    Some(w.covers(Duration::from_secs_f64(waited)))
                                }
                                _ => None,
                            };
                            self.scored.push(Scored {
                                ours: heard,
                                ast: ast.unwrap_or(60.0),
                                actual: waited,
                                high,
                                day: self.day,
                                joined: joined - self.day_start() - OPEN,
                                range,
                            });
                        }
                    }
                }
                AcdCommand::Exit { call, .. } => {
                    if self.waiting.remove(&call).is_some() {
                        self.timed_out += 1;
                    }
                    self.forget(call);
                }
                AcdCommand::OperatorState { op, state } => {
                    let oi: usize = op[2..].parse().expect("sim operator ids are opN");
                    if let OperatorState::Paused(reason) = state {
                        match (reason.as_str(), self.phase[oi]) {
                            ("break", Phase::BreakAsked) => {
                                self.phase[oi] = Phase::OnBreak;
                                self.push(secs + BREAK, Ev::BreakEnd(oi));
                            }
                            ("shift", Phase::LeaveAsked) => {
                                self.phase[oi] = Phase::Off;
                                let cmds = self.clock.handle(AcdEvent::OperatorOffline { op }, now);
                                self.apply(cmds, secs, None);
                            }
                            _ => {}
                        }
                    }
                }
                AcdCommand::Log(ev) => {
                    // The CONNECT record carries the wait as heard.
                    if let QueueEventKind::Connect { announced, .. } = ev.kind {
                        if let Some(w) = ev.call.and_then(|c| self.heard.get(&c)) {
                            debug_assert_eq!(announced, w.heard());
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// MAE, P90 of |error|, share within ±25 % of the actual wait, mean bias
/// (heard − actual).
fn stats(v: &[(f64, f64)]) -> (f64, f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let mut abs: Vec<f64> = v.iter().map(|(h, a)| (h - a).abs()).collect();
    let mae = abs.iter().sum::<f64>() / n;
    abs.sort_by(f64::total_cmp);
    let p90 = abs[((n * 0.9).ceil() as usize).saturating_sub(1)];
    let within = v.iter().filter(|(h, a)| (h - a).abs() <= 0.25 * a).count() as f64 / n;
    let bias = v.iter().map(|(h, a)| h - a).sum::<f64>() / n;
    (mae, p90, within, bias)
}

fn row(label: &str, sel: &[&Scored]) -> String {
    let ours: Vec<(f64, f64)> = sel.iter().map(|s| (s.ours, s.actual)).collect();
    let ast: Vec<(f64, f64)> = sel.iter().map(|s| (s.ast, s.actual)).collect();
    let (om, op, ow, ob) = stats(&ours);
    let (am, ap, aw, ab) = stats(&ast);
    format!(
        "| {label} | {} | {om:.0} / {op:.0} / {:.0} % / {ob:+.0} | {am:.0} / {ap:.0} / {:.0} % / {ab:+.0} | {:.2}× |",
        sel.len(),
        ow * 100.0,
        aw * 100.0,
        am / om
    )
}

fn main() {
    let started = std::time::Instant::now();
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (seeds, days) = (env("MEXITEL_SEEDS", 5), env("MEXITEL_DAYS", 3).max(2));
    let base = env("MEXITEL_SEED_BASE", 0);
    let schedule = env("MEXITEL_SCHEDULE", 1) != 0;
    println!(
        "mexitel_day: {seeds} seeds × {days} days; shift plan {}; 42 operators in 3 shifts with late/early starts and staggered breaks; talk lognormal mean {TALK_MEAN} s cv {TALK_CV} + {WRAPUP} s wrap-up; {:.0} % priority callers; lognormal patience median {:.0} min σ {PATIENCE_SIGMA}; max_wait {:.0} min\n",
        if schedule { "told" } else { "not told" },
        HIGH_SHARE * 100.0,
        PATIENCE_MEDIAN / 60.0,
        MAX_WAIT / 60.0
    );
    let mut all = Vec::new();
    let (mut arrived, mut served, mut abandoned, mut timed_out) = (0, 0, 0, 0);
    let (mut rung, mut beyond, mut beyond_served) = (Vec::new(), 0usize, 0usize);
    let mut hourly = [(0.0, 0u64); 14];
    let (mut core_time, mut core_calls) = (Duration::ZERO, 0u64);
    let mut exported = (0u64, 0u64);
    for seed in 0..seeds {
        let mut sim = Sim::new(0x4D45_5849 + (base + seed) as u64, days, schedule);
        sim.run();
        // What the core exports (conmutador_queue_wait_ranges_total), to
        // check against the bench's own count below.
        let end = sim.clock.at(days as f64 * DAY);
        let c = &sim.clock.acd.take_figures(end).queues[0].counts;
        exported.0 += c.ranges_inside;
        exported.1 += c.ranges_outside;
        all.extend(sim.scored.iter().copied());
        arrived += sim.arrived;
        served += sim.served;
        abandoned += sim.abandoned;
        timed_out += sim.timed_out;
        rung.extend(sim.rung_at_once.iter().copied());
        beyond += sim.beyond_told;
        beyond_served += sim.beyond_answered;
        for (h, x) in hourly.iter_mut().zip(sim.hourly) {
            h.0 += x.0;
            h.1 += x.1;
        }
        core_time += sim.clock.core_time;
        core_calls += sim.clock.core_calls;
    }
    println!(
        "callers {arrived}: served {served}, abandoned {abandoned}, sent out at max_wait {timed_out}"
    );
    let means: Vec<String> = hourly
        .iter()
        .enumerate()
        .filter(|(_, h)| h.1 > 0)
        .map(|(i, h)| format!("{}h {:.0}", i + 8, h.0 / h.1 as f64 / 60.0))
        .collect();
    println!(
        "mean wait of answered callers by hour joined (min): {}\n",
        means.join(", ")
    );
    println!(
        "| actual wait | callers | ours: MAE / P90 / within ±25 % / bias (s) | Asterisk: MAE / P90 / within ±25 % / bias (s) | ratio |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let refs: Vec<&Scored> = all.iter().collect();
    println!("{}", row("all", &refs));
    for (lo, hi, label) in BUCKETS {
        let sel: Vec<&Scored> = all
            .iter()
            .filter(|s| s.actual >= lo && s.actual < hi)
            .collect();
        println!("{}", row(label, &sel));
    }
    let normal: Vec<&Scored> = all.iter().filter(|s| !s.high).collect();
    let high: Vec<&Scored> = all.iter().filter(|s| s.high).collect();
    println!("{}", row("normal priority", &normal));
    println!("{}", row("higher priority", &high));
    let first_hour = |fresh: bool| -> Vec<&Scored> {
        all.iter()
            .filter(|s| s.joined < 3600.0 && (s.day == 1) == fresh)
            .collect()
    };
    println!(
        "{}",
        row("first hour, fresh install (day 1)", &first_hour(true))
    );
    println!("{}", row("first hour, warm (days 2+)", &first_hour(false)));
    if std::env::var_os("MEXITEL_DEBUG").is_some() {
        // Error and bias by half hour joined, to see where they come from.
        for half in 0..26 {
            let sel: Vec<&Scored> = all
                .iter()
                .filter(|s| (s.joined / 1800.0) as usize == half)
                .collect();
            if !sel.is_empty() {
                println!(
                    "{}",
                    row(&format!("{:.1} h", 8.0 + half as f64 / 2.0), &sel)
                );
            }
        }
    }
    let ranges: Vec<bool> = all.iter().filter_map(|s| s.range).collect();
    println!(
        "\nranges heard by {} answered callers; actual wait inside the range: {:.1} %",
        ranges.len(),
        100.0 * ranges.iter().filter(|c| **c).count() as f64 / ranges.len().max(1) as f64
    );
    println!(
        "exported by the core (conmutador_queue_wait_ranges_total): inside {} / outside {} = {:.1} %",
        exported.0,
        exported.1,
        100.0 * exported.0 as f64 / (exported.0 + exported.1).max(1) as f64
    );
    let cold = stats(
        &first_hour(true)
            .iter()
            .map(|s| (s.ours, s.actual))
            .collect::<Vec<_>>(),
    )
    .0;
    let warm = stats(
        &first_hour(false)
            .iter()
            .map(|s| (s.ours, s.actual))
            .collect::<Vec<_>>(),
    )
    .0;
    println!(
        "first hour MAE, fresh install / warm day: {cold:.0} / {warm:.0} s = {:.2}×",
        cold / warm
    );
    println!(
        "told the wait would pass max_wait: {beyond} (of whom {beyond_served} were answered after all); rung at once (no figure heard): {} answered, mean wait {:.1} s",
        rung.len(),
        rung.iter().sum::<f64>() / rung.len().max(1) as f64
    );
    println!(
        "core: {core_calls} handle/handle_timeout calls, {:.1} µs each on average; elapsed {:.1} s",
        core_time.as_secs_f64() * 1e6 / core_calls.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
}
