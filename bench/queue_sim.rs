//! Queue simulation: how right is the announced wait?
//!
//! A seeded discrete-event model with no telephony drives the real ACD core
//! (`conmutador::acd::Acd`) in virtual time: Poisson arrivals, lognormal talk
//! times (mean 225 s, cv 1) plus 10 s wrap-up and a 2–6 s answer delay (about
//! 4 min per call), Weibull caller patience, 3 % of rings unanswered, and 20
//! operators who each take breaks (pause after ~50 min of work, back after
//! ~8 min). The arrival rate is set for the offered occupancy of the staffed
//! operators. Both sides are scored **as heard**, against the wait the
//! caller then had, for every answered caller who heard a figure on entry:
//!
//! - Asterisk (app_queue, default `announce-round-seconds = 0`): on every
//!   answered caller `H ← (3H + w) / 4` in integer seconds (`recalc_holdtime`),
//!   where `w` is that caller's wait; a caller is told
//!   `|H + 30 − waited| / 60` whole minutes (integer division), so on entry
//!   (`waited = 0`) `⌊(H + 30) / 60⌋` minutes, scored as at least one
//!   minute like ours.
//! - Ours: the words of the core's entry announcement (`WaitSpeech`: the
//!   seconds or minutes said, a range's middle), which is also what the
//!   CONNECT queue-log record carries. "MAE ours unrounded" scores the
//!   figure before it was put into words.
//!
//! Callers rung at once hear no figure from either and are counted apart
//! ("rung at once"), not scored.
//!
//! Callers who arrive in the first 30 simulated minutes are not scored (both
//! estimators start cold). The "load" column is the offered load on the
//! staffed operators (0.7, 0.9, 0.98, and 1.1 for an overloaded peak);
//! "occupancy" is what the operators actually were busy, measured, lower
//! than offered because callers abandon.
//!
//! Run with `cargo bench --bench queue_sim`; `QUEUE_SIM_SEED=n` changes the
//! random draws, `QUEUE_SIM_DEBUG=1` adds error and bias per announced band.

use std::collections::HashMap;
use std::time::Duration;

use conmutador::acd::{
    Acd, AcdCommand, AcdEvent, CallId, Membership, OperatorConfig, OperatorState, Party,
    QueueConfig, QueueEventKind, Strategy, WaitSpeech,
};

#[path = "support/sim.rs"]
mod sim;
use sim::{Asterisk, Clock, Draws, Step};

const OPERATORS: usize = 20;
const HOURS: f64 = 48.0;
const WARMUP: f64 = 1800.0;
const TALK_MEAN: f64 = 225.0;
const TALK_CV: f64 = 1.0;
/// Offered occupancies of the accuracy table.
const LOADS: [f64; 4] = [0.7, 0.9, 0.98, 1.1];
const WRAPUP: f64 = 10.0;
const ANSWER_DELAY: (f64, f64) = (2.0, 6.0);
const NO_ANSWER: f64 = 0.03;
const WORK_BETWEEN_BREAKS: f64 = 50.0 * 60.0;
const BREAK: f64 = 8.0 * 60.0;
/// Weibull patience: shape and scale (mean ≈ 0.92 · scale).
const PATIENCE_SHAPE: f64 = 1.3;
const PATIENCE_SCALE: f64 = 420.0;

/// The room being simulated.
#[derive(Debug, Clone, Copy)]
struct Shape {
    operators: usize,
    /// Simulated seconds.
    secs: f64,
    /// Callers arriving before this many seconds are not scored.
    warmup: f64,
    talk_mean: f64,
    patience_scale: f64,
    /// Callers arriving per second (Poisson).
    rate: f64,
}

impl Shape {
    /// The accuracy room at `load`, the offered occupancy of the staffed
    /// operators, which sets the arrival rate.
    fn accuracy(load: f64) -> Shape {
        Shape {
            rate: load * OPERATORS as f64 * availability() / cycle(TALK_MEAN),
            operators: OPERATORS,
            secs: HOURS * 3600.0,
            warmup: WARMUP,
            talk_mean: TALK_MEAN,
            patience_scale: PATIENCE_SCALE,
        }
    }

    /// The queue_load benchmark's room in virtual time: 100 operators,
    /// 30 s calls, callers arriving at 80/s (about 30 times what the
    /// operators can take) who give up after about half a minute, so the
    /// line holds a few thousand callers, for ten simulated minutes.
    fn long_line() -> Shape {
        Shape {
            operators: 100,
            secs: 600.0,
            warmup: 0.0,
            talk_mean: 30.0,
            patience_scale: 35.0,
            rate: 80.0,
        }
    }
}

/// Share of the time an operator is not on a break.
fn availability() -> f64 {
    WORK_BETWEEN_BREAKS / (WORK_BETWEEN_BREAKS + BREAK)
}

/// Mean seconds an operator spends per call.
fn cycle(talk_mean: f64) -> f64 {
    (ANSWER_DELAY.0 + ANSWER_DELAY.1) / 2.0 + talk_mean + WRAPUP
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrival,
    Patience(CallId),
    Answer(CallId, usize),
    Hangup(CallId, usize),
    BreakStart(usize),
    BreakEnd(usize),
}

struct Sim {
    shape: Shape,
    clock: Clock<Ev>,
    draws: Draws,
    next_call: CallId,
    waiting: HashMap<CallId, f64>,
    /// Asterisk's running hold time H and per-call announcement.
    ast: Asterisk,
    ast_announced: HashMap<CallId, (i64, i64)>,
    /// What each caller heard from us on entry (absent: rung at once).
    heard: HashMap<CallId, WaitSpeech>,
    /// (ours as heard, asterisk as heard, our raw expected wait, actual) per
    /// scored answered caller who heard a figure on entry.
    scored: Vec<(f64, f64, f64, f64)>,
    /// Answered callers who were rung at once (heard no figure), and their waits.
    rung_at_once: Vec<f64>,
    /// Callers who heard a range, and how many of them waited inside it.
    ranges: u64,
    ranges_covered: u64,
    /// The raw entry estimate per waiting caller (from the Announce).
    raw: HashMap<CallId, f64>,
    arrived: u64,
    /// Per operator: (since, 0 idle / 1 busy / 2 away), and accumulated
    /// staffed idle and busy seconds after warm-up, for the measured occupancy.
    op_state: Vec<(f64, u8)>,
    idle_time: f64,
    busy_time: f64,
    served: u64,
    abandoned: u64,
    no_estimate: u64,
    /// Most callers in the line at once (as the simulation saw it).
    max_waiting: usize,
}

impl Sim {
    fn new(shape: Shape, seed: u64) -> Self {
        let mut q = QueueConfig::named("mexitel");
        q.strategy = Strategy::LongestIdle;
        q.wrapup = Duration::from_secs_f64(WRAPUP);
        q.ring_timeout = Duration::from_secs(15);
        q.retry_delay = Duration::from_secs(5);
        q.announce_interval = Some(Duration::from_secs(60));
        q.initial_handle_time = Duration::from_secs(180);
        let ops = (0..shape.operators)
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
        let mut sim = Sim {
            shape,
            clock: Clock::new(acd),
            draws: Draws::new(seed),
            next_call: 1,
            waiting: HashMap::new(),
            ast: Asterisk::default(),
            ast_announced: HashMap::new(),
            heard: HashMap::new(),
            scored: Vec::new(),
            rung_at_once: Vec::new(),
            ranges: 0,
            ranges_covered: 0,
            raw: HashMap::new(),
            arrived: 0,
            op_state: vec![(0.0, 2); shape.operators],
            idle_time: 0.0,
            busy_time: 0.0,
            served: 0,
            abandoned: 0,
            no_estimate: 0,
            max_waiting: 0,
        };
        for i in 0..shape.operators {
            let base = sim.clock.base;
            let cmds = sim.clock.acd.handle(
                AcdEvent::OperatorOnline {
                    op: format!("op{i}"),
                },
                base,
            );
            sim.apply(cmds, 0.0);
            let t = sim.exp(WORK_BETWEEN_BREAKS);
            sim.push(t, Ev::BreakStart(i));
        }
        let t = sim.exp(1.0 / shape.rate);
        sim.push(t, Ev::Arrival);
        sim
    }

    fn push(&mut self, t: f64, ev: Ev) {
        self.clock.push(t, ev);
    }

    fn exp(&mut self, mean: f64) -> f64 {
        self.draws.exp(mean)
    }

    fn talk(&mut self) -> f64 {
        self.draws.lognormal(self.shape.talk_mean, TALK_CV)
    }

    fn patience(&mut self) -> f64 {
        let u = 1.0 - self.draws.uniform();
        self.shape.patience_scale * (-u.ln()).powf(1.0 / PATIENCE_SHAPE)
    }

    fn run(&mut self) {
        while let Some(step) = self.clock.next(self.shape.secs) {
            match step {
                Step::Timers { secs, cmds } => self.apply(cmds, secs),
                Step::Event { secs, now, ev } => self.event(ev, secs, now),
            }
        }
    }

    fn event(&mut self, ev: Ev, secs: f64, now: std::time::Instant) {
        let acd_ev = match ev {
            Ev::Arrival => {
                let dt = self.exp(1.0 / self.shape.rate);
                self.push(secs + dt, Ev::Arrival);
                let call = self.next_call;
                self.next_call += 1;
                self.arrived += 1;
                self.waiting.insert(call, secs);
                self.max_waiting = self.max_waiting.max(self.waiting.len());
                // Asterisk's entry announcement, made before this caller is
                // counted, scored as heard like ours: whole minutes, at least one.
                let heard = self.ast.heard_on_entry();
                self.ast_announced.insert(call, (heard, self.ast.h));
                let p = self.patience();
                self.push(secs + p, Ev::Patience(call));
                AcdEvent::CallerJoined {
                    call,
                    queue: "mexitel".into(),
                    priority: 0,
                }
            }
            Ev::Patience(call) => {
                if self.waiting.remove(&call).is_none() {
                    return;
                }
                self.abandoned += 1;
                self.ast_announced.remove(&call);
                self.heard.remove(&call);
                self.raw.remove(&call);
                AcdEvent::CallerLeft { call }
            }
            Ev::Answer(call, op) => AcdEvent::RingAnswered {
                call,
                op: format!("op{op}"),
            },
            Ev::Hangup(call, op) => AcdEvent::CallEnded {
                call,
                op: format!("op{op}"),
                by: Party::Caller,
            },
            Ev::BreakStart(op) => {
                // The break itself starts when the core reports the operator
                // paused (after any call and wrap-up); see `apply`.
                AcdEvent::Pause {
                    op: format!("op{op}"),
                    reason: "break".into(),
                }
            }
            Ev::BreakEnd(op) => {
                let d = self.exp(WORK_BETWEEN_BREAKS);
                self.push(secs + d, Ev::BreakStart(op));
                AcdEvent::Unpause {
                    op: format!("op{op}"),
                }
            }
        };
        let joining = match &acd_ev {
            AcdEvent::CallerJoined { call, .. } => Some(*call),
            _ => None,
        };
        let cmds = self.clock.handle(acd_ev, now);
        // The entry announcement comes with the join; a caller rung at
        // once gets none and is scored apart.
        if let Some(call) = joining {
            for c in &cmds {
                if let AcdCommand::Announce {
                    call: a,
                    wait: Some(w),
                    estimate,
                    ..
                } = c
                {
                    if *a == call {
                        self.heard.insert(call, *w);
                        self.raw
                            .insert(call, estimate.map_or(0.0, |e| e.as_secs_f64()));
                    }
                }
            }
        }
        self.apply(cmds, secs);
    }

    fn apply(&mut self, cmds: Vec<AcdCommand>, secs: f64) {
        for c in cmds {
            match c {
                AcdCommand::Ring { call, op, .. } if self.draws.uniform() >= NO_ANSWER => {
                    let d = self.draws.range(ANSWER_DELAY.0, ANSWER_DELAY.1);
                    let oi = op[2..].parse().expect("sim operator ids are opN");
                    self.push(secs + d, Ev::Answer(call, oi));
                }
                AcdCommand::Connect { call, op } => {
                    let oi = op[2..].parse().expect("sim operator ids are opN");
                    let joined = self.waiting.remove(&call).unwrap_or(secs);
                    self.served += 1;
                    let talk = self.talk();
                    self.push(secs + talk, Ev::Hangup(call, oi));
                    let waited = (secs - joined).round() as i64;
                    self.ast.answered(waited);
                }
                AcdCommand::Exit { call, .. } => {
                    self.waiting.remove(&call);
                    self.heard.remove(&call);
                    self.raw.remove(&call);
                }
                AcdCommand::OperatorState { op, state } => {
                    let oi: usize = op[2..].parse().expect("sim operator ids are opN");
                    let (since, was) = self.op_state[oi];
                    let dt = secs - since;
                    if since >= self.shape.warmup {
                        match was {
                            0 => self.idle_time += dt,
                            1 => self.busy_time += dt,
                            _ => {}
                        }
                    }
                    let now_state = match state {
                        OperatorState::Available => 0,
                        OperatorState::Ringing | OperatorState::OnCall | OperatorState::WrapUp => 1,
                        _ => 2,
                    };
                    self.op_state[oi] = (secs, now_state);
                    if matches!(state, OperatorState::Paused(ref r) if r == "break") {
                        let d = self.exp(BREAK);
                        self.push(secs + d, Ev::BreakEnd(oi));
                    }
                }
                AcdCommand::Log(ev) => {
                    if let QueueEventKind::Connect {
                        waited, announced, ..
                    } = ev.kind
                    {
                        let Some(call) = ev.call else { continue };
                        let ast = self.ast_announced.remove(&call);
                        let heard = self.heard.remove(&call);
                        let raw = self.raw.remove(&call);
                        let joined = secs - waited.as_secs_f64();
                        if joined < self.shape.warmup {
                            continue;
                        }
                        let w = waited.as_secs_f64();
                        let Some(heard) = heard else {
                            self.rung_at_once.push(w);
                            continue;
                        };
                        if let WaitSpeech::Range { .. } = heard {
                            self.ranges += 1;
                            self.ranges_covered += u64::from(heard.covers(waited));
                        }
                        // The CONNECT record carries the wait as heard.
                        debug_assert_eq!(announced, heard.heard());
                        match (heard.heard(), ast) {
                            (Some(a), Some((x, _))) => {
                                self.scored
                                    .push((a.as_secs_f64(), x as f64, raw.unwrap_or(0.0), w))
                            }
                            _ => self.no_estimate += 1,
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn p90(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.9).ceil() as usize).saturating_sub(1)]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn main() {
    let started = std::time::Instant::now();
    // QUEUE_SIM_SEED=n reruns the same model with other random draws.
    let seed = std::env::var("QUEUE_SIM_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0xC0FFEE);
    println!(
        "queue_sim: {OPERATORS} operators with breaks, {HOURS} h per load, talk lognormal mean {TALK_MEAN} s cv {TALK_CV}, wrap-up {WRAPUP} s, Weibull patience k={PATIENCE_SHAPE} scale={PATIENCE_SCALE} s\n"
    );
    println!(
        "| load | occupancy | callers | served | abandoned | rung at once | scored | mean wait s | MAE ours s | P90 ours s | MAE Asterisk s | P90 Asterisk s | MAE ours unrounded s | ranges (coverage) | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let (mut core_time, mut core_calls) = (Duration::ZERO, 0u64);
    for (i, load) in LOADS.into_iter().enumerate() {
        let mut sim = Sim::new(Shape::accuracy(load), seed + i as u64);
        sim.run();
        core_time += sim.clock.core_time;
        core_calls += sim.clock.core_calls;
        let ours: Vec<f64> = sim
            .scored
            .iter()
            .map(|(a, _, _, w)| (w - a).abs())
            .collect();
        let ast: Vec<f64> = sim
            .scored
            .iter()
            .map(|(_, x, _, w)| (w - x).abs())
            .collect();
        let raw: Vec<f64> = sim
            .scored
            .iter()
            .map(|(_, _, r, w)| (w - r).abs())
            .collect();
        let waits: Vec<f64> = sim.scored.iter().map(|(_, _, _, w)| *w).collect();
        let (mo, ma) = (mean(&ours), mean(&ast));
        println!(
            "| {load} | {:.2} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} ({}) | {:.2}× |",
            sim.busy_time / (sim.busy_time + sim.idle_time),
            sim.arrived,
            sim.served,
            sim.abandoned,
            sim.rung_at_once.len(),
            sim.scored.len(),
            mean(&waits),
            mo,
            p90(ours),
            ma,
            p90(ast),
            mean(&raw),
            sim.ranges,
            if sim.ranges > 0 {
                format!(
                    "{:.0} %",
                    100.0 * sim.ranges_covered as f64 / sim.ranges as f64
                )
            } else {
                "–".into()
            },
            ma / mo
        );
        if std::env::var_os("QUEUE_SIM_DEBUG").is_some() {
            for (lo, hi) in [
                (0.0, 1.0),
                (1.0, 30.0),
                (30.0, 60.0),
                (60.0, 120.0),
                (120.0, 240.0),
                (240.0, 1e9),
            ] {
                let sel: Vec<&(f64, f64, f64, f64)> = sim
                    .scored
                    .iter()
                    .filter(|(a, ..)| *a >= lo && *a < hi)
                    .collect();
                let n = sel.len().max(1) as f64;
                let bias = sel.iter().map(|(a, _, _, w)| w - a).sum::<f64>() / n;
                let mae = sel.iter().map(|(a, _, _, w)| (w - a).abs()).sum::<f64>() / n;
                let amae = sel.iter().map(|(_, x, _, w)| (w - x).abs()).sum::<f64>() / n;
                println!(
                    "  announced {lo}..{hi}: n={} bias={bias:.1} mae={mae:.1} ast={amae:.1}",
                    sel.len()
                );
            }
        }
    }
    println!(
        "\ncore: {core_calls} handle/handle_timeout calls, {:.1} µs each on average",
        core_time.as_secs_f64() * 1e6 / core_calls.max(1) as f64,
    );
    // What one event costs when the line is thousands long: every event
    // that walks the line shows here, not in the table above.
    let shape = Shape::long_line();
    let mut sim = Sim::new(shape, seed);
    sim.run();
    println!(
        "long line ({} operators, {:.0} s calls, {:.0} callers/s, {:.0} s): peak {} waiting, {} served, {} abandoned; core: {} calls, {:.1} µs each on average",
        shape.operators,
        shape.talk_mean,
        shape.rate,
        shape.secs,
        sim.max_waiting,
        sim.served,
        sim.abandoned,
        sim.clock.core_calls,
        sim.clock.core_time.as_secs_f64() * 1e6 / sim.clock.core_calls.max(1) as f64,
    );
    println!("elapsed {:.1} s", started.elapsed().as_secs_f64());
}
