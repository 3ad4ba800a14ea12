//! The skeleton the wait-estimate benches (`queue_sim`, `mexitel_day`)
//! share: a virtual clock that interleaves the model's own events with the
//! ACD core's timers, the random draws both models use, and Asterisk's
//! hold-time average as its callers hear it. Each bench keeps its model
//! (arrivals, staffing, scoring); only what was the same logic lives here.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use conmutador::acd::{Acd, AcdCommand, AcdEvent};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Virtual seconds as the whole nanoseconds the clock orders by.
pub fn nanos(t: f64) -> u64 {
    (t * 1e9) as u64
}

/// What the clock does next.
pub enum Step<E> {
    /// The core's timers ran at `secs`: apply these commands.
    Timers { secs: f64, cmds: Vec<AcdCommand> },
    /// The model's event `ev` is due at `secs` (`now` for the core).
    Event { secs: f64, now: Instant, ev: E },
}

/// The core in virtual time, with the model's pending events and the real
/// time spent inside the core (the bench prints its cost per call).
pub struct Clock<E: Ord> {
    pub acd: Acd,
    pub base: Instant,
    heap: BinaryHeap<Reverse<(u64, u64, E)>>,
    seq: u64,
    pub core_time: Duration,
    pub core_calls: u64,
}

impl<E: Ord> Clock<E> {
    pub fn new(acd: Acd) -> Self {
        Clock {
            acd,
            base: Instant::now(),
            heap: BinaryHeap::new(),
            seq: 0,
            core_time: Duration::ZERO,
            core_calls: 0,
        }
    }

    /// Schedule `ev` at `t` virtual seconds (ties in the order pushed).
    pub fn push(&mut self, t: f64, ev: E) {
        self.seq += 1;
        self.heap.push(Reverse((nanos(t), self.seq, ev)));
    }

    /// The instant of `t` virtual seconds.
    pub fn at(&self, t: f64) -> Instant {
        self.base + Duration::from_nanos(nanos(t))
    }

    /// Hand the core one event at `now`, timing it.
    pub fn handle(&mut self, ev: AcdEvent, now: Instant) -> Vec<AcdCommand> {
        let t0 = Instant::now();
        let cmds = self.acd.handle(ev, now);
        self.core_time += t0.elapsed();
        self.core_calls += 1;
        cmds
    }

    /// The next step up to `end` seconds: the core's timers first when they
    /// are due no later than the next event. `None` when nothing is left.
    pub fn next(&mut self, end: f64) -> Option<Step<E>> {
        let ev_t = self.heap.peek().map(|Reverse((t, _, _))| *t);
        // Timers stay exact: an Instant rounded through f64 could land
        // just before the deadline and never fire.
        let to = self
            .acd
            .poll_timeout()
            .map(|i| i.saturating_duration_since(self.base).as_nanos() as u64);
        let (t, timer) = match (ev_t, to) {
            (Some(e), Some(x)) if x <= e => (x, true),
            (Some(e), _) => (e, false),
            (None, Some(x)) => (x, true),
            (None, None) => return None,
        };
        let secs = t as f64 / 1e9;
        if secs > end {
            return None;
        }
        let now = self.base + Duration::from_nanos(t);
        if timer {
            let t0 = Instant::now();
            let cmds = self.acd.handle_timeout(now);
            self.core_time += t0.elapsed();
            self.core_calls += 1;
            return Some(Step::Timers { secs, cmds });
        }
        let Reverse((_, _, ev)) = self.heap.pop()?;
        Some(Step::Event { secs, now, ev })
    }
}

/// The seeded draws of both models.
pub struct Draws(SmallRng);

impl Draws {
    pub fn new(seed: u64) -> Self {
        Draws(SmallRng::seed_from_u64(seed))
    }

    pub fn uniform(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        self.0.random_range(lo..hi)
    }

    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.uniform()).ln()
    }

    /// Standard normal (Box–Muller, one of the pair).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Lognormal with this mean and coefficient of variation.
    pub fn lognormal(&mut self, mean: f64, cv: f64) -> f64 {
        let s2 = (1.0 + cv * cv).ln();
        let mu = mean.ln() - s2 / 2.0;
        (mu + s2.sqrt() * self.normal()).exp()
    }
}

/// Asterisk's announced hold time (app_queue, `announce-round-seconds = 0`):
/// `H ← (3H + w)/4` in integer seconds on every answered caller.
#[derive(Default)]
pub struct Asterisk {
    pub h: i64,
}

impl Asterisk {
    /// What a caller hears on entry, in seconds: `⌊(H + 30)/60⌋` minutes,
    /// scored as at least one like ours.
    pub fn heard_on_entry(&self) -> i64 {
        ((self.h + 30).abs() / 60).max(1) * 60
    }

    /// A caller was answered after waiting `waited` whole seconds.
    pub fn answered(&mut self, waited: i64) {
        self.h = (3 * self.h + waited) / 4;
    }
}
