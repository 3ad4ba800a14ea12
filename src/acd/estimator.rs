//! Expected wait per queue position, from live staffing, learnt handle times
//! and learnt impatience. Sans-I/O: the ACD core feeds it observations and a
//! picture of its servers; it never reads a clock.
//!
//! # The formula
//!
//! Let the queue's *servers* be its member operators who are logged in,
//! unpaused and reachable. Each server `i` becomes free at a random time
//! `R_i` from now: `0` if free or ringing (a ringing operator is about to take
//! the caller being rung, who is counted among the callers ahead), the
//! remaining wrap-up if in wrap-up, and for an operator on a call that has
//! lasted `e`, `R_i = (X − e) + wrapup` where `X` is a talk time drawn from the
//! recent talk times *longer than `e`* (the empirical residual life; a
//! long-tailed call that has run long is expected to run longer still).
//! After that first release, each server keeps completing one call per cycle
//! `h = answer delay + mean talk + wrapup` (elementary renewal theorem).
//!
//! The expected number of servers released by time `t` is therefore
//!
//! ```text
//! M(t) = Σ_i E[ 1{R_i ≤ t} + (t − R_i)⁺ / h ]
//! ```
//!
//! which is piecewise linear in `t` between the atoms of the `R_i`
//! distributions, so `M⁻¹(n)` is found exactly with a prefix sum and a binary
//! search. (Taking `E[M(t)] = n` rather than `E[T_n]` keeps the effect that
//! matters: with N busy servers the *first* release comes after about
//! `min R_i`, not after the mean residual — for memoryless calls it gives
//! exactly `n·h/N`.)
//!
//! The caller at position `k` is served at the `n_k`-th release, where `n_k`
//! counts themself plus the callers ahead *who will still be there*:
//!
//! ```text
//! n_k = 1 + Σ_{j<k} S_j(T_j),   T_k = M⁻¹(n_k),   estimate_k = T_k + answer delay
//! ```
//!
//! `S_j(T) = P(caller j is still waiting T from now | they waited w_j so far)
//! = exp(−∫_{w_j}^{w_j+T} λ(s) ds)` with a piecewise-constant abandonment
//! hazard `λ` learnt from every caller that left the queue: abandons per
//! second of waiting exposure, per wait band (0–10 s, 10–20 s, … 30 min+),
//! with served callers counting as exposure without abandon (censored data),
//! each band shrunk toward the pooled rate while it has little exposure, and
//! old observations decayed so the model follows the day.
//!
//! # Higher priorities overtake
//!
//! A caller of priority `p` is also passed by every caller of a higher
//! priority who arrives before they are served. Those arrivals are measured
//! live (`ArrivalRates`: per priority, exponentially weighted over 30 min),
//! and the releases left for the caller by `t` are `M(t) − λ_{>p}·t`, so
//!
//! ```text
//! T_k = min { t : M(t) − λ_{>p_k}·t ≥ n_k }
//! ```
//!
//! (`M(t) − λt` may dip between atoms, so the crossing is found by walking
//! segments; along the line `n_k` and `λ_{>p_k}` only grow, so one walk
//! serves every caller). In a queue with 5 % of callers at a higher priority
//! and 20-minute waits, this is several minutes per long waiter — the
//! largest cause of long waiters being told too little.
//!
//! # Breaks and shifts
//!
//! The staffing known now counts first: an operator asked to pause or
//! leave stops counting as a server at once (their current call still
//! ends), and one who comes back counts from then. With staggered breaks
//! the share of the floor away is roughly constant, so today's count is the
//! right average for breaks.
//!
//! Shifts are not steady: a queue's `[[queues.shifts]]` (with the local time
//! of day from the shell) give the moves ahead, `(d, ±k)` seconds from now
//! (`estimate_with_staffing`). `k` joining at `d` are servers free at `d`:
//! each adds `1{t ≥ d} + (t − d)⁺/h`. `k` leaving at `d` take `k/N` of every
//! current server's releases after `d` (which of the `N` leave is not
//! known; a leaver finishes the call in progress and takes nobody new, so
//! an atom after `d` loses its step as well as its ramp), and once the
//! servers of now are all gone, the ramps of those who joined since. `M`
//! may then fall between atoms, which the segment walk below handles. A
//! hand-over (one shift leaving as another arrives) is both moves, not
//! their net: the arrivals are a burst of free servers. The engine scales
//! every move by the share of the scheduled floor staffed now (breaks,
//! absences and early leavers show there, and an arriving shift will take
//! its breaks too), and a leave never takes more than are staffed.
//! Without a schedule or a local time the moves are empty and nothing
//! changes. What is left (lateness, breaks, a plan not kept) is part of the
//! relative model error in the spread, and its average effect is absorbed
//! by the calibration below.
//!
//! # Cold start: patience
//!
//! Before any caller has left, a fresh queue assumes a memoryless patience
//! of `initial_patience` (default 30 min) worth 30 min of pseudo exposure,
//! and `initial_handle_time` as talk time. The hazard also counts the
//! exposure of the callers still waiting ahead (censored at now): in an
//! opening burst the first callers to leave are the impatient ones, and
//! without the survivors' exposure a young day's hazard would be far too
//! high and every estimate too short.
//!
//! # The spread
//!
//! The wait's predictive spread is the spread of the count it must reach,
//! divided by the slope of `M(t) − λt` there:
//!
//! ```text
//! Var ≈ c²·(n_k + λT) + λT + Σ_{j<k} S_j(1 − S_j) + (0.08·n_k)²
//! σ_k = √Var / (M'(T) − λ)
//! ```
//!
//! (renewal counting noise with the measured squared coefficient of
//! variation `c²` of the cycle, Poisson overtakers, Bernoulli survivors
//! ahead, and a relative model error for staffing moves).
//!
//! # Calibration: the figure said and the range
//!
//! Answered callers' standardised errors `(actual − T)/σ` are kept per band
//! of the model's figure `T` (under 1, 1–3, 3–7, 7–15, 15–30, 30+ min; the
//! last 1,024 each), always against the model's own `T`, so calibrating never
//! feeds on itself. With `z10`, `z50`, `z90` their percentiles (the normal's
//! −1.28, 0, +1.28 until 50 are known):
//!
//! ```text
//! figure = T + z50·σ        interval = T + z10·σ … T + z90·σ
//! ```
//!
//! The figure is the median of what followed such figures, not the mean:
//! callers are scored on what they heard, and the median minimises the
//! absolute error (for memoryless releases the median of the n-th release
//! is about `M⁻¹(n − 1/3)`, the mean `M⁻¹(n)`). Whatever the formula misses
//! (staffing moves it is not told about, the shape of patience), the
//! interval keeps covering 80 % of what happens; rounding its ends outward
//! to spoken minutes adds a little.
//!
//! # Cold start: talk time
//!
//! Until the talk window (256 calls) is full it holds every call since
//! start, and the first calls to end on a fresh install are the short ones.
//! The mean talk time then counts the time already spent on the calls still
//! running (censored exposure): `(Σ ended + Σ elapsed + 4·initial_handle_time)
//! / (calls ended + 4)`, and a call's residual stays memoryless until 32
//! calls have ended.
//!
//! # What is said (`speech`)
//!
//! - If the figure runs past what the queue allows (the rest of
//!   `max_wait`, or the time left until the queue's `closes`, whichever
//!   is less), no figure: the caller is told so and offered the plan's way
//!   out (`WaitSpeech::Beyond`; the dialplan's say `beyond` words and the
//!   node's key exit are the one place an offer such as a callback hooks
//!   in). At `closes` the callers still waiting leave by `Exit Timeout`,
//!   like at `max_wait`, so the words are kept.
//! - Under 2¾ min, seconds: 10 s steps below two minutes ("un minuto y
//!   cuarenta segundos"), 15 s steps above, at least 10 s. Short waits
//!   are known to within seconds; whole minutes would throw that away,
//!   and coarser steps add their own rounding to what callers hear.
//! - From 8 min on, when the interval's spoken ends are 4 minutes or more
//!   apart, a range centred on the figure in whole minutes and as wide as
//!   the interval's wider side ("entre dieciocho y veintiocho minutos"), so
//!   its middle is the figure; its top capped at what the queue allows.
//! - Otherwise whole minutes, nearest, at least one (`heard_minutes`).
//!
//! The words are what the repeat rule compares, what the records carry and
//! what the prediction-error metric scores (a range by its middle), never
//! the raw seconds.
//!
//! Compared with Asterisk's single average of answered waits, this figure
//! depends on the caller's position and priority, on how many operators are
//! working now and how far into their calls they are, and shrinks when
//! callers ahead tend to hang up. It still gives operators who serve
//! several queues their full capacity to each queue (optimistic there).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::types::WaitSpeech;

/// How many recent talk times the residual-life distribution uses.
pub const TALK_WINDOW: usize = 256;
/// Below this many measured calls, talk time is taken as exponential with
/// the configured (or measured) mean.
pub const MIN_TALK_SAMPLES: usize = 8;
/// Below this many measured calls the residual of a call in progress is
/// memoryless even when samples exist: a young sample holds mostly the
/// short calls that ended first.
const YOUNG_TALK_SAMPLES: usize = 32;
/// How many calls the configured talk time weighs while the window is young.
const PRIOR_TALK_CALLS: f64 = 4.0;
/// Atoms used to discretise an exponential residual.
const EXP_ATOMS: usize = 16;
/// At most this many atoms per busy server: equally spaced quantiles of the
/// conditional sample, so a room of 100 operators sorts 3 200 atoms, not 25 600.
const MAX_ATOMS_PER_SERVER: usize = 32;

/// Upper edges (seconds) of the abandonment hazard bands; the last band is open.
pub const HAZARD_BANDS: [f64; 16] = [
    10.0,
    20.0,
    30.0,
    45.0,
    60.0,
    90.0,
    120.0,
    180.0,
    240.0,
    300.0,
    420.0,
    600.0,
    900.0,
    1200.0,
    1800.0,
    f64::INFINITY,
];
/// Per-observation decay of the hazard counts: about the last 2000 callers weigh.
const HAZARD_DECAY: f64 = 0.9995;
/// Seconds of pooled-rate pseudo exposure blended into each band.
const HAZARD_SHRINK: f64 = 300.0;
/// Weight of a new answer-delay sample in its moving mean.
const ANSWER_DELAY_ALPHA: f64 = 0.1;
/// Cold-start prior of the abandonment hazard: a memoryless patience of
/// the queue's `initial_patience` (this by default), worth PRIOR_EXPOSURE
/// seconds of waiting. Real exposure outweighs it within the first few
/// dozen callers of a day.
const DEFAULT_PATIENCE: Duration = Duration::from_secs(1800);
const PRIOR_EXPOSURE: f64 = 1800.0;
/// Time constant (s) of the per-priority arrival rates.
const ARRIVAL_TAU: f64 = 1800.0;
/// At most this many distinct priorities are tracked (the dialplan sets
/// priorities from its config, but a bound costs nothing).
const MAX_PRIORITIES: usize = 16;
/// Relative model error of the number of releases a caller needs (staffing
/// moves, breaks), added to the counting noise in the spread.
const REL_SPREAD: f64 = 0.08;
/// Upper edges (s) of the model figures whose residuals are kept apart:
/// short and long waits err differently.
const CALIBRATION_BANDS: [f64; 6] = [60.0, 180.0, 420.0, 900.0, 1800.0, f64::INFINITY];
/// Standardised residuals kept to calibrate the announced range.
const RESIDUAL_WINDOW: usize = 1024;
/// Below this many residuals the range uses the normal quantiles.
const MIN_RESIDUALS: usize = 50;
/// The range is the predictive distribution's central interval between
/// these quantiles (80 % wide; rounding outward to spoken minutes adds some).
const RANGE_QUANTILES: (f64, f64) = (0.10, 0.90);
/// Normal quantiles for RANGE_QUANTILES, used before residuals exist.
const RANGE_Z: (f64, f64) = (-1.2816, 1.2816);

/// What one server is doing, as the estimator needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServerStatus {
    /// Free, or ringing for a caller counted among those waiting.
    Free,
    /// In wrap-up, free after `remaining`.
    WrapUp { remaining: Duration },
    /// On a call that has lasted `elapsed`.
    OnCall { elapsed: Duration },
}

/// Recent talk times (answer to hang-up), kept in arrival order and sorted.
#[derive(Debug, Clone, Default)]
pub struct TalkTimes {
    recent: VecDeque<f64>,
    sorted: Vec<f64>,
    sum: f64,
    sumsq: f64,
}

impl TalkTimes {
    pub fn record(&mut self, secs: f64) {
        if !secs.is_finite() || secs < 0.0 {
            return;
        }
        if self.recent.len() == TALK_WINDOW {
            if let Some(old) = self.recent.pop_front() {
                self.sum -= old;
                self.sumsq -= old * old;
                let i = self.sorted.partition_point(|x| *x < old);
                if i < self.sorted.len() {
                    self.sorted.remove(i);
                }
            }
        }
        self.recent.push_back(secs);
        self.sum += secs;
        self.sumsq += secs * secs;
        let i = self.sorted.partition_point(|x| *x < secs);
        self.sorted.insert(i, secs);
    }

    pub fn len(&self) -> usize {
        self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    pub fn mean(&self) -> Option<f64> {
        (!self.recent.is_empty()).then(|| (self.sum / self.recent.len() as f64).max(0.0))
    }

    /// Variance of the window's samples (`None` below two samples).
    pub fn variance(&self) -> Option<f64> {
        let n = self.recent.len() as f64;
        (self.recent.len() >= 2)
            .then(|| ((self.sumsq - self.sum * self.sum / n) / (n - 1.0)).max(0.0))
    }

    /// The samples longer than `elapsed`, ascending.
    fn longer_than(&self, elapsed: f64) -> &[f64] {
        let i = self.sorted.partition_point(|x| *x <= elapsed);
        &self.sorted[i..]
    }
}

/// Piecewise-constant abandonment hazard over time already waited.
#[derive(Debug, Clone)]
pub struct AbandonHazard {
    abandons: [f64; HAZARD_BANDS.len()],
    exposure: [f64; HAZARD_BANDS.len()],
    /// The cold-start prior's rate (per second); its weight is PRIOR_EXPOSURE.
    prior_rate: f64,
}

impl Default for AbandonHazard {
    fn default() -> Self {
        AbandonHazard::with_prior(DEFAULT_PATIENCE)
    }
}

impl AbandonHazard {
    /// No data yet; a memoryless patience of mean `patience` is assumed
    /// until there is (zero: nobody is assumed to leave).
    pub fn with_prior(patience: Duration) -> Self {
        let p = patience.as_secs_f64();
        AbandonHazard {
            abandons: [0.0; HAZARD_BANDS.len()],
            exposure: [0.0; HAZARD_BANDS.len()],
            prior_rate: if p > 0.0 { 1.0 / p } else { 0.0 },
        }
    }

    /// A caller left the queue after `waited`: by hanging up (`abandoned`) or
    /// otherwise (served, timed out, pressed a key: censored observations).
    pub fn record(&mut self, waited: f64, abandoned: bool) {
        if !waited.is_finite() || waited < 0.0 {
            return;
        }
        for b in 0..HAZARD_BANDS.len() {
            self.abandons[b] *= HAZARD_DECAY;
            self.exposure[b] *= HAZARD_DECAY;
        }
        let mut lo = 0.0;
        for (b, hi) in HAZARD_BANDS.iter().enumerate() {
            if waited <= lo {
                break;
            }
            self.exposure[b] += waited.min(*hi) - lo;
            if abandoned && waited <= *hi {
                self.abandons[b] += 1.0;
            }
            lo = *hi;
        }
    }

    /// Abandons per second of waiting over all bands, with the prior's
    /// pseudo-observations (so a fresh install is not sure nobody leaves).
    pub fn pooled_rate(&self) -> f64 {
        let e: f64 = self.exposure.iter().sum();
        let a: f64 = self.abandons.iter().sum();
        let pe = if self.prior_rate > 0.0 {
            PRIOR_EXPOSURE
        } else {
            0.0
        };
        if e + pe > 0.0 {
            (a + self.prior_rate * pe) / (e + pe)
        } else {
            0.0
        }
    }

    /// Hazard (per second) in band `b`, shrunk toward the pooled rate.
    pub fn band_rate(&self, b: usize) -> f64 {
        self.shrunk_rate(b, self.pooled_rate())
    }

    fn shrunk_rate(&self, b: usize, pooled: f64) -> f64 {
        (self.abandons[b] + pooled * HAZARD_SHRINK) / (self.exposure[b] + HAZARD_SHRINK)
    }

    /// P(still waiting at `to` | waiting at `from`), both as time waited.
    pub fn survival(&self, from: f64, to: f64) -> f64 {
        self.table().survival(from, to)
    }

    /// The cumulative hazard at every band edge, computed once so that an
    /// estimate for thousands of waiting callers does not recompute the
    /// pooled rate and the band rates per caller.
    pub fn table(&self) -> HazardTable {
        self.table_with(std::iter::empty())
    }

    /// `table` after adding the exposure of callers still waiting (`waited`
    /// so far, no abandon yet). Without it the learnt hazard only sees who
    /// already left: in an opening burst those are the impatient few, and
    /// the survivors' long exposure would count only once they leave, so the
    /// hazard of a young day would be far too high.
    pub fn table_with(&self, waited: impl Iterator<Item = f64>) -> HazardTable {
        let mut h = self.clone();
        for w in waited {
            let mut lo = 0.0;
            for (b, hi) in HAZARD_BANDS.iter().enumerate() {
                if w <= lo || !w.is_finite() {
                    break;
                }
                h.exposure[b] += w.min(*hi) - lo;
                lo = *hi;
            }
        }
        let mut rate = [0.0; HAZARD_BANDS.len()];
        let mut cum = [0.0; HAZARD_BANDS.len()];
        let pooled = h.pooled_rate();
        let (mut lo, mut acc) = (0.0, 0.0);
        for (b, hi) in HAZARD_BANDS.iter().enumerate() {
            rate[b] = h.shrunk_rate(b, pooled);
            cum[b] = acc;
            acc += rate[b] * (hi - lo);
            lo = *hi;
        }
        HazardTable { rate, cum }
    }
}

/// `AbandonHazard` frozen for one estimate: `Λ(x) = ∫₀ˣ λ`, piecewise linear.
#[derive(Debug, Clone)]
pub struct HazardTable {
    rate: [f64; HAZARD_BANDS.len()],
    /// `Λ` at each band's lower edge.
    cum: [f64; HAZARD_BANDS.len()],
}

impl HazardTable {
    fn cumulative(&self, x: f64) -> f64 {
        let b = HAZARD_BANDS
            .partition_point(|hi| *hi < x)
            .min(HAZARD_BANDS.len() - 1);
        let lo = if b == 0 { 0.0 } else { HAZARD_BANDS[b - 1] };
        self.cum[b] + self.rate[b] * (x - lo)
    }

    /// P(still waiting at `to` | waiting at `from`), both as time waited.
    pub fn survival(&self, from: f64, to: f64) -> f64 {
        if to <= from {
            return 1.0;
        }
        (-(self.cumulative(to) - self.cumulative(from)).max(0.0)).exp()
    }
}

/// Callers arriving per second at each priority, exponentially weighted
/// over `ARRIVAL_TAU`, so "how many callers of higher priority will arrive
/// and overtake while you wait" is measured live.
#[derive(Debug, Clone, Default)]
pub struct ArrivalRates {
    /// (priority, decayed rate at `at`, `at`).
    levels: Vec<(i32, f64, Instant)>,
}

impl ArrivalRates {
    pub fn record(&mut self, priority: i32, now: Instant) {
        let decay = |v: f64, at: Instant| {
            v * (-now.saturating_duration_since(at).as_secs_f64() / ARRIVAL_TAU).exp()
        };
        if let Some(l) = self.levels.iter_mut().find(|l| l.0 == priority) {
            l.1 = decay(l.1, l.2) + 1.0 / ARRIVAL_TAU;
            l.2 = now;
            return;
        }
        if self.levels.len() >= MAX_PRIORITIES {
            // Forget the quietest level.
            if let Some(i) = (0..self.levels.len()).min_by(|a, b| {
                decay(self.levels[*a].1, self.levels[*a].2)
                    .total_cmp(&decay(self.levels[*b].1, self.levels[*b].2))
            }) {
                self.levels.swap_remove(i);
            }
        }
        self.levels.push((priority, 1.0 / ARRIVAL_TAU, now));
    }

    /// Arrivals per second of priority strictly above `priority`.
    pub fn rate_above(&self, priority: i32, now: Instant) -> f64 {
        self.levels
            .iter()
            .filter(|l| l.0 > priority)
            .map(|l| l.1 * (-now.saturating_duration_since(l.2).as_secs_f64() / ARRIVAL_TAU).exp())
            .sum()
    }
}

/// Recent standardised errors `(actual − expected) / spread` of served
/// callers: their quantiles set the announced range, so its coverage is
/// what it claims whatever the spread formula misses.
#[derive(Debug, Clone, Default)]
pub struct Residuals {
    recent: VecDeque<f64>,
    sorted: Vec<f64>,
}

impl Residuals {
    pub fn record(&mut self, z: f64) {
        if !z.is_finite() {
            return;
        }
        let z = z.clamp(-20.0, 20.0);
        if self.recent.len() == RESIDUAL_WINDOW {
            if let Some(old) = self.recent.pop_front() {
                let i = self.sorted.partition_point(|x| *x < old);
                if i < self.sorted.len() {
                    self.sorted.remove(i);
                }
            }
        }
        self.recent.push_back(z);
        let i = self.sorted.partition_point(|x| *x < z);
        self.sorted.insert(i, z);
    }

    pub fn len(&self) -> usize {
        self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// The standardised low end, middle and high end of what happens:
    /// the 10th, 50th and 90th percentiles of the residuals (the normal's
    /// −1.28, 0, +1.28 until MIN_RESIDUALS are known).
    pub fn bounds(&self) -> (f64, f64, f64) {
        if self.sorted.len() < MIN_RESIDUALS {
            return (RANGE_Z.0, 0.0, RANGE_Z.1);
        }
        let q = |p: f64| {
            let i = (p * (self.sorted.len() - 1) as f64).round() as usize;
            self.sorted[i.min(self.sorted.len() - 1)]
        };
        (q(RANGE_QUANTILES.0), q(0.5), q(RANGE_QUANTILES.1))
    }
}

/// What the estimator predicts for one caller: the expected remaining wait
/// and a central interval of its predictive distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// The wait to announce, seconds: the model's figure moved to the
    /// median of what followed such figures (may be very large: see `speech`).
    pub expected: f64,
    /// The model's own figure `T + answer delay`, before calibration.
    pub model: f64,
    /// Low and high ends of the ~80 % interval, seconds.
    pub low: f64,
    pub high: f64,
    /// Standard deviation of the wait the interval was scaled from, seconds.
    pub spread: f64,
}

impl Forecast {
    /// The expected wait as a Duration (capped, for records and gauges).
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.expected.clamp(0.0, MAX_FIGURE))
    }
}

fn calibration_band(model: f64) -> usize {
    CALIBRATION_BANDS
        .partition_point(|hi| *hi <= model)
        .min(CALIBRATION_BANDS.len() - 1)
}

/// Larger figures are not figures (about 115 days).
const MAX_FIGURE: f64 = 1e7;

/// Whole minutes a figure is spoken as: rounded to the nearest minute, at
/// least one (a caller told "zero minutes" who then waits feels lied to).
/// The speech and the repeat rule both use this and nothing else.
pub fn heard_minutes(d: Duration) -> u32 {
    ((d.as_secs_f64() / 60.0)
        .round()
        .clamp(1.0, f64::from(u32::MAX))) as u32
}

/// Below this expected wait (s) the figure is said in seconds.
const SECONDS_BELOW: f64 = 165.0;
/// Below this expected wait a single figure is always spoken.
const RANGE_FROM: f64 = 8.0 * 60.0;
/// A range is spoken when its spoken ends are at least this many minutes
/// apart; narrower, a single figure says as much.
const RANGE_MIN_WIDTH: u32 = 4;

/// Below this expected wait (s) the seconds are said in 10 s steps; from it
/// to `SECONDS_BELOW`, in 15 s steps.
const TEN_SECOND_STEPS_BELOW: f64 = 120.0;

/// The seconds a short figure is said as: 10 s steps under two minutes
/// ("un minuto y cuarenta segundos"), 15 s steps to 2¾ min, at least 10 s.
/// A wait of about a minute is known to within some 15–20 s (the spread
/// of a handful of releases); coarser steps would add their own rounding
/// to that error, finer ones would claim a precision the figure lacks.
fn spoken_seconds(expected: f64) -> f64 {
    let step = if expected < TEN_SECOND_STEPS_BELOW {
        10.0
    } else {
        15.0
    };
    ((expected / step).round() * step).max(10.0)
}

/// How a forecast is said, `allowed` being the most the queue will still
/// keep this caller waiting (what is left of `max_wait`, or of the day).
///
/// - past `allowed`: `Beyond`, never a figure the queue will not honour;
/// - under 2¾ min: `Seconds`, in 10 s steps below two minutes and 15 s
///   steps above (10 s at least: never "zero");
/// - a wide interval: `Range`, centred on the figure in whole minutes and
///   as wide as the interval's wider side ("entre dieciocho y veintiocho
///   minutos"), so its middle is the figure; the top capped at `allowed`;
/// - otherwise `Minutes`, by `heard_minutes`.
pub fn speech(f: &Forecast, allowed: Option<Duration>) -> WaitSpeech {
    let allowed_secs = allowed.map(|a| a.as_secs_f64());
    if allowed_secs.is_some_and(|a| f.expected > a) || f.expected >= MAX_FIGURE {
        return WaitSpeech::Beyond;
    }
    if f.expected < SECONDS_BELOW {
        // Short waits are known to within seconds; whole minutes would
        // throw that away (and "one minute" for a 10 s wait is no help).
        let secs = spoken_seconds(f.expected);
        return WaitSpeech::Seconds(secs as u32);
    }
    let minutes = heard_minutes(Duration::from_secs_f64(f.expected));
    if f.expected < RANGE_FROM {
        return WaitSpeech::Minutes(minutes);
    }
    let cap = allowed_secs.map_or(u32::MAX, |a| (a / 60.0).floor().max(1.0) as u32);
    // Symmetric around the figure, as wide as the interval's wider side, so
    // the range's middle is the figure itself.
    let below = minutes.saturating_sub((f.low.max(60.0) / 60.0).floor() as u32);
    let above = ((f.high.min(MAX_FIGURE) / 60.0).ceil() as u32).saturating_sub(minutes);
    let half = below.max(above);
    let lo = minutes.saturating_sub(half).max(1);
    let hi = minutes.saturating_add(half).min(cap);
    if hi < minutes || hi.saturating_sub(lo) < RANGE_MIN_WIDTH {
        return WaitSpeech::Minutes(minutes.min(cap));
    }
    WaitSpeech::Range { low: lo, high: hi }
}

/// One queue's learnt figures and the estimate built from them.
#[derive(Debug, Clone)]
pub struct Estimator {
    talk: TalkTimes,
    prior_talk: f64,
    wrapup: f64,
    answer_delay: Option<f64>,
    hazard: AbandonHazard,
    arrivals: ArrivalRates,
    residuals: [Residuals; CALIBRATION_BANDS.len()],
}

impl Estimator {
    /// `prior_talk`: talk time assumed before measurements; `wrapup`: the
    /// queue's wrap-up, part of every server cycle.
    pub fn new(prior_talk: Duration, wrapup: Duration) -> Self {
        Self::with_patience(prior_talk, wrapup, DEFAULT_PATIENCE)
    }

    /// `new` with the abandonment prior's mean patience (zero: none).
    pub fn with_patience(prior_talk: Duration, wrapup: Duration, patience: Duration) -> Self {
        Estimator {
            talk: TalkTimes::default(),
            prior_talk: prior_talk.as_secs_f64().max(1.0),
            wrapup: wrapup.as_secs_f64(),
            answer_delay: None,
            hazard: AbandonHazard::with_prior(patience),
            arrivals: ArrivalRates::default(),
            residuals: Default::default(),
        }
    }

    /// A connected call's talk time (answer to hang-up).
    pub fn record_talk(&mut self, talk: Duration) {
        self.talk.record(talk.as_secs_f64());
    }

    /// Time from the ring that was answered to the answer.
    pub fn record_answer_delay(&mut self, d: Duration) {
        let x = d.as_secs_f64();
        self.answer_delay = Some(match self.answer_delay {
            None => x,
            Some(m) => m + ANSWER_DELAY_ALPHA * (x - m),
        });
    }

    /// A caller left the queue after `waited`; `abandoned` if they hung up.
    pub fn record_wait(&mut self, waited: Duration, abandoned: bool) {
        self.hazard.record(waited.as_secs_f64(), abandoned);
    }

    /// A caller of `priority` joined the queue.
    pub fn record_arrival(&mut self, priority: i32, now: Instant) {
        self.arrivals.record(priority, now);
    }

    /// A caller forecast `f` on entry was served after `waited`.
    pub fn record_outcome(&mut self, f: &Forecast, waited: Duration) {
        // Against the model's own figure, so that calibrating does not
        // feed on itself; each band of figures apart.
        if f.model < MAX_FIGURE {
            self.residuals[calibration_band(f.model)]
                .record((waited.as_secs_f64() - f.model) / f.spread.max(1.0));
        }
    }

    pub fn hazard(&self) -> &AbandonHazard {
        &self.hazard
    }

    /// Replace the learnt hazard (tests and warm starts).
    pub fn set_hazard(&mut self, hazard: AbandonHazard) {
        self.hazard = hazard;
    }

    pub fn mean_talk(&self) -> f64 {
        self.talk.mean().unwrap_or(self.prior_talk)
    }

    pub fn answer_delay(&self) -> f64 {
        self.answer_delay.unwrap_or(0.0)
    }

    /// Mean server cycle `h` in seconds: answer delay + talk + wrap-up.
    pub fn cycle(&self) -> f64 {
        (self.answer_delay() + self.mean_talk() + self.wrapup).max(1.0)
    }

    /// Squared coefficient of variation of the cycle (1 before data: the
    /// memoryless prior).
    fn cycle_cv2(&self) -> f64 {
        match self.talk.variance() {
            Some(v) if self.talk.len() >= MIN_TALK_SAMPLES => {
                (v / (self.cycle() * self.cycle())).clamp(0.05, 4.0)
            }
            _ => 1.0,
        }
    }

    /// Residual-time atoms `(seconds from now, probability)` for one server.
    fn atoms(&self, s: ServerStatus, mean: f64, out: &mut Vec<(f64, f64)>) {
        match s {
            ServerStatus::Free => out.push((0.0, 1.0)),
            ServerStatus::WrapUp { remaining } => out.push((remaining.as_secs_f64(), 1.0)),
            ServerStatus::OnCall { elapsed } => {
                let e = elapsed.as_secs_f64();
                let longer = self.talk.longer_than(e);
                let enough = self.talk.len() >= MIN_TALK_SAMPLES.max(YOUNG_TALK_SAMPLES);
                if enough && !longer.is_empty() {
                    let k = longer.len().min(MAX_ATOMS_PER_SERVER);
                    let w = 1.0 / k as f64;
                    out.extend((0..k).map(|q| {
                        let i = ((q as f64 + 0.5) / k as f64 * longer.len() as f64) as usize;
                        (longer[i.min(longer.len() - 1)] - e + self.wrapup, w)
                    }));
                } else {
                    // Too little data (or a call longer than any seen): a
                    // memoryless residual with the mean talk time, at the
                    // midpoints of EXP_ATOMS equal-probability slices.
                    let m = mean;
                    let w = 1.0 / EXP_ATOMS as f64;
                    out.extend((0..EXP_ATOMS).map(|q| {
                        let p = (q as f64 + 0.5) / EXP_ATOMS as f64;
                        (-m * (1.0 - p).ln() + self.wrapup, w)
                    }));
                }
            }
        }
    }

    /// Build `M(t)` for these servers; `None` when there are none.
    pub fn curve(&self, servers: &[ServerStatus]) -> Option<ReleaseCurve> {
        self.curve_with_staffing(servers, &[])
    }

    /// `curve` with the schedule's staffing moves `(seconds from now,
    /// change)`, ascending. An operator due to join at `d` is a server free
    /// at `d` (a release at `d`, then one per cycle). Operators due to
    /// leave at `d` stop releasing from `d` on; which ones is not known, so
    /// `k` leaving take `k/N` of every current server's releases after `d`
    /// (the call in progress then included: a leaver finishes it and takes
    /// nobody new), and once the servers of now are all gone, those who
    /// joined since. `None` when nobody is staffed now or later.
    pub fn curve_with_staffing(
        &self,
        servers: &[ServerStatus],
        staffing: &[(f64, f64)],
    ) -> Option<ReleaseCurve> {
        if servers.is_empty() && !staffing.iter().any(|(_, c)| *c > 0.0) {
            return None;
        }
        let mean = self.mean_talk_with(servers);
        let mut atoms = Vec::new();
        for s in servers {
            self.atoms(*s, mean, &mut atoms);
        }
        let h = (self.answer_delay() + mean + self.wrapup).max(1.0);
        if staffing.is_empty() {
            return Some(ReleaseCurve::new(atoms, h));
        }
        let mut moves: Vec<(f64, f64, f64)> = atoms.iter().map(|&(t, w)| (t, w, w)).collect();
        let n0 = servers.len() as f64;
        let last = atoms.iter().map(|a| a.0).fold(0.0, f64::max);
        let (mut of_now, mut joined) = (n0, 0.0);
        for &(d, change) in staffing {
            if change > 0.0 {
                moves.push((d, change, change));
                joined += change;
                continue;
            }
            let k = -change;
            let from_now = k.min(of_now);
            if from_now > 0.0 && d >= last {
                // Every current server has had its first release by `d`
                // (each server's atoms weigh 1): one move, no pass.
                moves.push((d, 0.0, -from_now));
                of_now -= from_now;
            } else if from_now > 0.0 {
                let f = from_now / n0;
                // Atoms released by `d` lose only their ramp after `d`: one move.
                let mut before = 0.0;
                for &(r, w) in &atoms {
                    if r <= d {
                        before += w;
                    } else {
                        moves.push((r, -w * f, -w * f));
                    }
                }
                moves.push((d, 0.0, -before * f));
                of_now -= from_now;
            }
            let rest = (k - from_now).min(joined);
            if rest > 0.0 {
                moves.push((d, 0.0, -rest));
                joined -= rest;
            }
        }
        Some(ReleaseCurve::with_moves(moves, h))
    }

    /// Mean talk time, counting the calls in progress while the window is
    /// young. The first calls to end on a fresh install are the short ones;
    /// their plain mean is far too low for the first hour. Until the
    /// window is full it holds every call since start, so time already
    /// spent on open calls is censored exposure of the same population:
    /// the mean is (talk ended + talk so far + prior) / (calls ended +
    /// PRIOR_TALK_CALLS), the memoryless estimate with `initial_handle_time`
    /// worth PRIOR_TALK_CALLS calls.
    fn mean_talk_with(&self, servers: &[ServerStatus]) -> f64 {
        if self.talk.len() >= TALK_WINDOW {
            return self.mean_talk();
        }
        let open: f64 = servers
            .iter()
            .map(|s| match s {
                ServerStatus::OnCall { elapsed } => elapsed.as_secs_f64(),
                _ => 0.0,
            })
            .sum();
        (self.talk.sum + open + PRIOR_TALK_CALLS * self.prior_talk)
            / (self.talk.len() as f64 + PRIOR_TALK_CALLS)
    }

    /// Forecast for every caller in queue order, given how long each has
    /// waited so far and their priority; `None` when no server is staffed.
    pub fn estimate(
        &self,
        servers: &[ServerStatus],
        callers: &[(Duration, i32)],
        now: Instant,
    ) -> Option<Vec<Forecast>> {
        self.estimate_with_staffing(servers, &[], callers, now)
    }

    /// `estimate` knowing the staffing schedule's moves ahead
    /// (`curve_with_staffing`); with none, the same as `estimate`.
    pub fn estimate_with_staffing(
        &self,
        servers: &[ServerStatus],
        staffing: &[(f64, f64)],
        callers: &[(Duration, i32)],
        now: Instant,
    ) -> Option<Vec<Forecast>> {
        let curve = self.curve_with_staffing(servers, staffing)?;
        let delay = self.answer_delay();
        let hazard = self
            .hazard
            .table_with(callers.iter().map(|c| c.0.as_secs_f64()));
        let cv2 = self.cycle_cv2();
        let bounds = self.residuals.each_ref().map(|r| r.bounds());
        let mut out = Vec::with_capacity(callers.len());
        let mut needed = 1.0;
        // Variance of how many of those ahead will still be there.
        let mut var_ahead = 0.0;
        // `needed` and the overtaking rate only grow along the line, so the
        // crossing time does too: one walk over the atoms serves every caller.
        let mut cursor = 0;
        let mut rate_for: Option<(i32, f64)> = None;
        for &(w, priority) in callers {
            let lam = match rate_for {
                Some((p, l)) if p == priority => l,
                _ => {
                    let l = self.arrivals.rate_above(priority, now);
                    rate_for = Some((priority, l));
                    l
                }
            };
            let (t, slope) = curve.solve_from(needed, lam, &mut cursor);
            let model = (t + delay).min(MAX_FIGURE);
            // Counting noise of the releases (renewal: cv² per expected
            // release), of the overtaking arrivals (Poisson), of who ahead
            // leaves (Bernoulli each), and a relative model error.
            let overtaking = lam * t.min(MAX_FIGURE);
            let var = cv2 * (needed + overtaking)
                + overtaking
                + var_ahead
                + (REL_SPREAD * needed).powi(2);
            let spread = if slope > 0.0 && t < MAX_FIGURE {
                var.sqrt() / slope
            } else {
                MAX_FIGURE
            };
            let (zlo, zmid, zhi) = bounds[calibration_band(model)];
            let expected = if model < MAX_FIGURE {
                (model + zmid * spread).clamp(0.0, MAX_FIGURE)
            } else {
                model
            };
            out.push(Forecast {
                expected,
                model,
                low: (model + zlo * spread).clamp(0.0, expected),
                high: (model + zhi * spread).max(expected),
                spread,
            });
            let w = w.as_secs_f64();
            let s = hazard.survival(w, w + model);
            needed += s;
            var_ahead += s * (1.0 - s);
        }
        Some(out)
    }
}

/// `M(t)`, the expected number of server releases by `t`, and its inverse.
#[derive(Debug, Clone)]
pub struct ReleaseCurve {
    /// Atom times, ascending.
    r: Vec<f64>,
    /// Prefix sums of the atoms' steps (a release at the atom), of their
    /// ramps (servers releasing one per cycle from the atom on) and of
    /// ramp × time.
    ws: Vec<f64>,
    w: Vec<f64>,
    rw: Vec<f64>,
    h: f64,
}

impl ReleaseCurve {
    /// `atoms`: `(time, probability)` pairs over all servers; `h`: cycle.
    pub fn new(atoms: Vec<(f64, f64)>, h: f64) -> Self {
        Self::with_moves(atoms.into_iter().map(|(t, w)| (t, w, w)).collect(), h)
    }

    /// `(time, step, ramp)` moves: a server's first release is a step and a
    /// ramp of the same weight; a server leaving takes away its ramp (and
    /// its release, if still to come). `M` may then fall between atoms:
    /// use `solve_from`, not `time_for`, on such a curve.
    pub fn with_moves(mut atoms: Vec<(f64, f64, f64)>, h: f64) -> Self {
        atoms.retain(|(t, s, w)| {
            t.is_finite() && s.is_finite() && w.is_finite() && (*s != 0.0 || *w != 0.0)
        });
        atoms.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut r = Vec::with_capacity(atoms.len());
        let mut ws = Vec::with_capacity(atoms.len());
        let mut w = Vec::with_capacity(atoms.len());
        let mut rw = Vec::with_capacity(atoms.len());
        let (mut ss, mut sw, mut srw) = (0.0, 0.0, 0.0);
        for (t, s, p) in atoms {
            let t = t.max(0.0);
            ss += s;
            sw += p;
            srw += p * t;
            // Moves at one instant are one atom: a leaver's release taken
            // away at the very time it was due must not be reached first.
            if r.last() == Some(&t) {
                let last = r.len() - 1;
                (ws[last], w[last], rw[last]) = (ss, sw, srw);
                continue;
            }
            r.push(t);
            ws.push(ss);
            w.push(sw);
            rw.push(srw);
        }
        ReleaseCurve { r, ws, w, rw, h }
    }

    /// `M(t)` using the atoms up to index `i` inclusive (`None`: no atom yet).
    fn m_with(&self, upto: Option<usize>, t: f64) -> f64 {
        match upto {
            None => 0.0,
            Some(i) => self.ws[i] + (self.w[i] * t - self.rw[i]) / self.h,
        }
    }

    /// Expected releases by `t` seconds from now.
    pub fn releases_by(&self, t: f64) -> f64 {
        let n = self.r.partition_point(|x| *x <= t);
        self.m_with(n.checked_sub(1), t)
    }

    /// `M` at atom `i`'s own time: increasing in `i`.
    fn m_at(&self, i: usize) -> f64 {
        self.m_with(Some(i), self.r[i])
    }

    /// The smallest `t` with `M(t) ≥ n`.
    pub fn time_for(&self, n: f64) -> f64 {
        if self.r.is_empty() {
            return f64::INFINITY;
        }
        // First atom index whose inclusion brings M to n.
        let j = {
            let (mut lo, mut hi) = (0usize, self.r.len());
            while lo < hi {
                let mid = (lo + hi) / 2;
                if self.m_at(mid) >= n {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo
        };
        self.time_at(n, j)
    }

    /// `time_for(n)` for a non-decreasing run of `n`: `cursor` keeps the
    /// atom reached so far between calls (start it at 0).
    pub fn time_for_from(&self, n: f64, cursor: &mut usize) -> f64 {
        self.solve_from(n, 0.0, cursor).0
    }

    /// The first `t` with `M(t) − lam·t ≥ n`, and the slope of `M − lam·t`
    /// there: releases left for a caller when callers of higher priority
    /// arrive at `lam` per second and take releases first. `M − lam·t` may
    /// fall between atoms, so this walks segments, not `M`'s inverse; for a
    /// run of non-decreasing `n` and `lam` the crossing never moves back, so
    /// `cursor` (start it at 0) makes a whole line one walk. `t` is
    /// infinite when the releases never catch up.
    pub fn solve_from(&self, n: f64, lam: f64, cursor: &mut usize) -> (f64, f64) {
        if self.r.is_empty() {
            return (f64::INFINITY, 0.0);
        }
        loop {
            let i = (*cursor).min(self.r.len() - 1);
            let ri = self.r[i];
            let at = self.m_with(Some(i), ri) - lam * ri;
            let slope = self.w[i] / self.h - lam;
            if at >= n {
                return (ri, slope);
            }
            let next = self.r.get(i + 1).copied();
            if slope > 0.0 {
                let t = ri + (n - at) / slope;
                if next.is_none_or(|r| t <= r) {
                    return (t, slope);
                }
            } else if next.is_none() {
                return (f64::INFINITY, slope);
            }
            *cursor = i + 1;
        }
    }

    /// The time `M` reaches `n`, `j` being the first atom with `M ≥ n`.
    fn time_at(&self, n: f64, j: usize) -> f64 {
        let solve = |i: usize| (self.h * (n - self.ws[i]) + self.rw[i]) / self.w[i];
        if j == self.r.len() {
            return solve(j - 1);
        }
        if j > 0 && self.m_with(Some(j - 1), self.r[j]) >= n {
            // Reached on the ramp before the next atom.
            return solve(j - 1).max(self.r[j - 1]);
        }
        self.r[j]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// A full window of identical talk times: the plain sample mean and
    /// empirical residuals apply (no young-window corrections).
    fn fixed_talk(est: &mut Estimator, x: u64) {
        for _ in 0..TALK_WINDOW {
            est.record_talk(Duration::from_secs(x));
        }
    }

    /// Expected waits of `n` callers who just arrived, priority 0.
    fn plain(est: &Estimator, s: &[ServerStatus], n: usize) -> Option<Vec<Duration>> {
        let callers = vec![(Duration::ZERO, 0); n];
        est.estimate(s, &callers, Instant::now())
            .map(|v| v.iter().map(|f| f.duration()).collect())
    }

    fn plain_forecasts(est: &Estimator, s: &[ServerStatus], n: usize) -> Vec<Forecast> {
        let callers = vec![(Duration::ZERO, 0); n];
        est.estimate(s, &callers, Instant::now()).expect("staffed")
    }

    fn close(a: Duration, b: f64) -> bool {
        (a.as_secs_f64() - b).abs() < 0.01
    }

    #[test]
    fn free_servers_mean_no_wait_for_the_first_callers() {
        let mut est = Estimator::with_patience(secs(300.0), Duration::ZERO, Duration::ZERO);
        fixed_talk(&mut est, 300);
        let s = [ServerStatus::Free, ServerStatus::Free];
        let e = plain(&est, &s, 3).expect("staffed");
        assert!(close(e[0], 0.0) && close(e[1], 0.0));
        // Third caller: both servers start a 300 s cycle at 0, M(t) = 2 + 2t/300 = 3.
        assert!(close(e[2], 150.0), "{:?}", e[2]);
    }

    #[test]
    fn residual_comes_from_elapsed_time_then_cycles() {
        let mut est = Estimator::with_patience(secs(300.0), Duration::ZERO, Duration::ZERO);
        fixed_talk(&mut est, 300);
        // Deterministic 300 s calls: one server 100 s in -> free at 200.
        let s = [ServerStatus::OnCall {
            elapsed: secs(100.0),
        }];
        let e = plain(&est, &s, 2).expect("staffed");
        assert!(close(e[0], 200.0), "{:?}", e[0]);
        // Then one cycle later: 200 + 300.
        assert!(close(e[1], 500.0), "{:?}", e[1]);
    }

    #[test]
    fn two_busy_servers_hand_computed() {
        let mut est = Estimator::with_patience(secs(300.0), Duration::ZERO, Duration::ZERO);
        fixed_talk(&mut est, 300);
        let s = [
            ServerStatus::OnCall {
                elapsed: secs(240.0),
            },
            ServerStatus::OnCall {
                elapsed: secs(180.0),
            },
        ];
        let e = plain(&est, &s, 3).expect("staffed");
        assert!(close(e[0], 60.0));
        assert!(close(e[1], 120.0));
        // After 120: M = 2 + (t-60)/300 + (t-120)/300 = 3  ->  t = 240.
        assert!(close(e[2], 240.0), "{:?}", e[2]);
    }

    #[test]
    fn wrapup_and_answer_delay_are_part_of_the_cycle() {
        let mut est = Estimator::with_patience(secs(100.0), secs(20.0), Duration::ZERO);
        fixed_talk(&mut est, 100);
        est.record_answer_delay(secs(5.0));
        assert!((est.cycle() - 125.0).abs() < 1e-9);
        let s = [ServerStatus::WrapUp {
            remaining: secs(10.0),
        }];
        let e = plain(&est, &s, 2).expect("staffed");
        assert!(close(e[0], 15.0));
        assert!(close(e[1], 10.0 + 125.0 + 5.0));
    }

    #[test]
    fn memoryless_prior_gives_n_h_over_n() {
        // No measurements: exponential talk with mean 120 s, 4 busy servers.
        let est = Estimator::with_patience(secs(120.0), Duration::ZERO, Duration::ZERO);
        let s = [ServerStatus::OnCall {
            elapsed: Duration::ZERO,
        }; 4];
        let e = plain(&est, &s, 8).expect("staffed");
        // Exact answer for Poisson releases: k·h/N = 30 k. The discretised
        // residual is close but not exact for the first few.
        for (k, got) in e.iter().enumerate() {
            let want = 30.0 * (k + 1) as f64;
            assert!(
                (got.as_secs_f64() - want).abs() < 0.2 * want,
                "k={k} got {got:?}"
            );
        }
        assert!((e[7].as_secs_f64() - 240.0).abs() < 15.0);
    }

    #[test]
    fn abandonment_ahead_shortens_the_wait() {
        let mut est = Estimator::with_patience(secs(300.0), Duration::ZERO, Duration::ZERO);
        fixed_talk(&mut est, 300);
        // Learn a flat hazard of 1/300 per second: many callers, each either
        // abandoning or served, with exposure spread evenly.
        let mut hz = AbandonHazard::with_prior(Duration::ZERO);
        for i in 0..4000 {
            let w = (i % 100) as f64 * 18.0;
            hz.record(w, false);
        }
        let flat = {
            let mut h = AbandonHazard::with_prior(Duration::ZERO);
            let mut lo = 0.0;
            for (b, hi) in HAZARD_BANDS.iter().enumerate() {
                let width = if hi.is_finite() { hi - lo } else { 1000.0 };
                h.exposure[b] = width * 1000.0;
                h.abandons[b] = width * 1000.0 / 300.0;
                lo = *hi;
            }
            h
        };
        assert!((flat.pooled_rate() - 1.0 / 300.0).abs() < 1e-9);
        assert!((flat.survival(0.0, 300.0) - (-1.0f64).exp()).abs() < 1e-9);
        est.set_hazard(flat);
        let s = [ServerStatus::OnCall {
            elapsed: Duration::ZERO,
        }];
        let e = plain(&est, &s, 2).expect("staffed");
        assert!(close(e[0], 300.0));
        // Caller 1 is still there at 300 s with p = e^-1, so caller 2 needs
        // 1 + e^-1 releases: 1 + (t - 300)/300 = 1.3679  ->  t = 410.36.
        let want = 300.0 + 300.0 * (-1.0f64).exp();
        assert!(close(e[1], want), "{:?} vs {want}", e[1]);
        // Without abandonment it would be 600.
        est.set_hazard(hz);
        let e = plain(&est, &s, 2).expect("staffed");
        assert!(close(e[1], 600.0), "{:?}", e[1]);
    }

    #[test]
    fn hazard_learns_from_censored_waits() {
        let mut hz = AbandonHazard::with_prior(Duration::ZERO);
        // 10 callers abandon at 5 s, 10 are served at 5 s: 50 s + 50 s of
        // exposure in the first band, 10 abandons.
        for _ in 0..10 {
            hz.record(5.0, true);
            hz.record(5.0, false);
        }
        assert!((hz.band_rate(0) - 0.1).abs() < 0.01, "{}", hz.band_rate(0));
        assert!(hz.survival(0.0, 10.0) < 1.0);
        assert_eq!(hz.survival(10.0, 5.0), 1.0);
    }

    #[test]
    fn hazard_table_integrates_band_by_band() {
        let mut hz = AbandonHazard::default();
        for i in 0..500 {
            let w = f64::from(i % 50) * 37.0;
            hz.record(w, i % 3 == 0);
        }
        // The integral summed band by band, as the formula is written.
        let direct = |from: f64, to: f64| {
            let (mut lo, mut integral) = (0.0, 0.0);
            for (b, hi) in HAZARD_BANDS.iter().enumerate() {
                let (a, z) = (from.max(lo), to.min(*hi));
                if z > a {
                    integral += hz.band_rate(b) * (z - a);
                }
                lo = *hi;
            }
            (-integral).exp()
        };
        let table = hz.table();
        for (from, to) in [
            (0.0, 5.0),
            (3.0, 95.0),
            (10.0, 20.0),
            (50.0, 4000.0),
            (1900.0, 2500.0),
        ] {
            let (a, b) = (table.survival(from, to), direct(from, to));
            assert!((a - b).abs() < 1e-12, "{from}..{to}: {a} vs {b}");
            assert!(a < 1.0, "{from}..{to}: nobody would ever leave");
        }
        assert_eq!(table.survival(30.0, 30.0), 1.0);
    }

    #[test]
    fn walking_the_curve_agrees_with_searching_it() {
        let mut est = Estimator::new(secs(120.0), secs(10.0));
        for i in 0..40 {
            est.record_talk(secs(20.0 + f64::from(i) * 7.5));
        }
        let servers: Vec<ServerStatus> = (0..25)
            .map(|i| match i % 3 {
                0 => ServerStatus::Free,
                1 => ServerStatus::WrapUp {
                    remaining: secs(f64::from(i)),
                },
                _ => ServerStatus::OnCall {
                    elapsed: secs(f64::from(i) * 11.0),
                },
            })
            .collect();
        let curve = est.curve(&servers).expect("staffed");
        let mut cursor = 0;
        for k in 0..400 {
            let n = 0.5 + f64::from(k) * 0.37;
            let (walked, searched) = (curve.time_for_from(n, &mut cursor), curve.time_for(n));
            assert!(
                (walked - searched).abs() < 1e-9,
                "n={n}: {walked} vs {searched}"
            );
        }
    }

    fn fc(expected: f64, low: f64, high: f64) -> Forecast {
        Forecast {
            expected,
            model: expected,
            low,
            high,
            spread: (high - low) / 2.56,
        }
    }

    #[test]
    fn higher_priority_arrivals_overtake_lower_priority_callers() {
        let mut est = Estimator::with_patience(secs(300.0), Duration::ZERO, Duration::ZERO);
        fixed_talk(&mut est, 300);
        let t0 = Instant::now();
        // One priority-5 caller every 10 minutes over the last hours: the
        // weighted rate settles near 1/600 per second.
        for i in 0..60 {
            est.record_arrival(5, t0 + Duration::from_secs(i * 600));
        }
        // Half-way between two arrivals the weighted rate is at its mean.
        let now = t0 + Duration::from_secs(59 * 600 + 300);
        let rate = est.arrivals.rate_above(0, now);
        assert!((rate - 1.0 / 600.0).abs() < 0.02 / 600.0, "{rate}");
        assert_eq!(est.arrivals.rate_above(5, now), 0.0);
        // Two servers starting 300 s cycles now: 2/300 releases per second,
        // of which 1/600 go to overtakers, leaving 1/200 for the line.
        let s = [ServerStatus::OnCall {
            elapsed: Duration::ZERO,
        }; 2];
        let line: Vec<(Duration, i32)> = (0..10).map(|_| (Duration::ZERO, 0)).collect();
        let low = est.estimate(&s, &line, now).expect("staffed");
        // Both release at 300 s (M = 2), by when `rate·300` overtakers came:
        // M(t) − rate·t = 2 − 300·rate + (2/300 − rate)(t − 300) ≥ n.
        let at300 = 2.0 - 300.0 * rate;
        let want = |n: f64| 300.0 + (n - at300) / (2.0 / 300.0 - rate);
        assert!((low[0].expected - 300.0).abs() < 1e-6);
        for (k, f) in low.iter().enumerate().skip(1) {
            let n = k as f64 + 1.0;
            assert!((f.expected - want(n)).abs() < 1e-6, "k={k}: {f:?}");
        }
        // Callers of the top priority are overtaken by nobody.
        let top: Vec<(Duration, i32)> = (0..10).map(|_| (Duration::ZERO, 5)).collect();
        let high = est.estimate(&s, &top, now).expect("staffed");
        assert!(
            (high[9].expected - (300.0 + 150.0 * 8.0)).abs() < 1e-6,
            "{:?}",
            high[9]
        );
        assert!(low[9].expected > high[9].expected + 300.0);
        // Overtakers beyond capacity: no finite wait for the low priority.
        for i in 0..200 {
            est.record_arrival(5, now + Duration::from_secs(i));
        }
        let later = now + Duration::from_secs(200);
        let swamped = est.estimate(&s, &line, later).expect("staffed");
        assert_eq!(speech(&swamped[5], None), WaitSpeech::Beyond);
    }

    #[test]
    fn walking_with_overtakers_agrees_with_a_fine_scan() {
        let mut est = Estimator::new(secs(120.0), secs(10.0));
        for i in 0..40 {
            est.record_talk(secs(20.0 + f64::from(i) * 7.5));
        }
        let servers: Vec<ServerStatus> = (0..9)
            .map(|i| ServerStatus::OnCall {
                elapsed: secs(f64::from(i) * 13.0),
            })
            .collect();
        let curve = est.curve(&servers).expect("staffed");
        let mut cursor = 0;
        for k in 0..60 {
            let (n, lam) = (1.0 + f64::from(k) * 0.7, 0.002 + f64::from(k) * 0.0005);
            let (t, _) = curve.solve_from(n, lam, &mut cursor);
            // The first t on a 0.01 s grid where M(t) − lam·t reaches n.
            let mut x = 0.0;
            while curve.releases_by(x) - lam * x < n {
                x += 0.01;
            }
            assert!((t - x).abs() < 0.02, "n={n} lam={lam}: {t} vs {x}");
        }
    }

    #[test]
    fn a_young_window_counts_the_calls_still_running() {
        // Fresh install, prior 180 s, 16 operators 400 s into their first
        // calls, and the two calls that ended were short ones.
        let mut est = Estimator::with_patience(secs(180.0), Duration::ZERO, Duration::ZERO);
        est.record_talk(secs(60.0));
        est.record_talk(secs(90.0));
        let s = [ServerStatus::OnCall {
            elapsed: secs(400.0),
        }; 16];
        let curve = est.curve(&s).expect("staffed");
        // (150 + 16·400 + 4·180) / (2 + 4) = 1211.7 s of talk per call.
        assert!((curve.h - 7270.0 / 6.0).abs() < 1e-6, "{}", curve.h);
        // The plain mean of what ended would say 75 s.
        assert!((est.mean_talk() - 75.0).abs() < 1e-9);
    }

    #[test]
    fn a_fresh_queue_assumes_some_callers_leave() {
        let fresh = Estimator::new(secs(300.0), Duration::ZERO);
        let trusting = Estimator::with_patience(secs(300.0), Duration::ZERO, Duration::ZERO);
        let s = [ServerStatus::OnCall {
            elapsed: Duration::ZERO,
        }; 4];
        let (a, b) = (
            plain(&fresh, &s, 40).unwrap(),
            plain(&trusting, &s, 40).unwrap(),
        );
        // 40th caller: 30-minute patience means some ahead leave first.
        assert!(a[39] < b[39].mul_f64(0.9), "{:?} vs {:?}", a[39], b[39]);
        assert!((fresh.hazard().pooled_rate() - 1.0 / 1800.0).abs() < 1e-12);
        // A few quick abandons early in the day must not make the model
        // think everyone leaves: the survivors still waiting count as exposure.
        let mut young = fresh.clone();
        for _ in 0..10 {
            young.record_wait(secs(30.0), true);
        }
        let line: Vec<(Duration, i32)> = (0..60)
            .map(|i| (secs(600.0 - f64::from(i) * 10.0), 0))
            .collect();
        let with_survivors = young
            .hazard()
            .table_with(line.iter().map(|c| c.0.as_secs_f64()));
        let without = young.hazard().table();
        assert!(with_survivors.survival(0.0, 600.0) > 2.0 * without.survival(0.0, 600.0));
    }

    #[test]
    fn speech_never_promises_past_max_wait() {
        let allowed = Some(secs(1800.0));
        assert_eq!(
            speech(&fc(1900.0, 1500.0, 2300.0), allowed),
            WaitSpeech::Beyond
        );
        // Under the limit, a wide interval becomes a range capped at it.
        // 25 min, interval 18⅓–36⅔ min: centred, as wide as the wider side.
        assert_eq!(
            speech(&fc(1500.0, 1100.0, 2200.0), allowed),
            WaitSpeech::Range { low: 13, high: 30 }
        );
        assert_eq!(
            speech(&fc(1500.0, 1100.0, 2200.0), None),
            WaitSpeech::Range { low: 13, high: 37 }
        );
        // A narrow interval is one figure, rounded to the nearest minute.
        assert_eq!(
            speech(&fc(629.0, 580.0, 650.0), None),
            WaitSpeech::Minutes(10)
        );
        assert_eq!(
            speech(&fc(300.0, 100.0, 900.0), None),
            WaitSpeech::Minutes(5)
        );
        // Short waits in seconds, never zero.
        assert_eq!(speech(&fc(3.0, 0.0, 10.0), None), WaitSpeech::Seconds(10));
        assert_eq!(speech(&fc(38.0, 20.0, 60.0), None), WaitSpeech::Seconds(40));
        assert_eq!(
            speech(&fc(100.0, 60.0, 130.0), None),
            WaitSpeech::Seconds(100)
        );
        // From two minutes, 15 s steps; from 2¾ min, whole minutes.
        assert_eq!(
            speech(&fc(128.0, 90.0, 170.0), None),
            WaitSpeech::Seconds(135)
        );
        assert_eq!(
            speech(&fc(170.0, 120.0, 220.0), None),
            WaitSpeech::Minutes(3)
        );
        // Nobody staffed for ever: no figure.
        assert_eq!(
            speech(&fc(MAX_FIGURE, 0.0, MAX_FIGURE), None),
            WaitSpeech::Beyond
        );
    }

    #[test]
    fn the_range_follows_the_errors_seen() {
        let mut est = Estimator::with_patience(secs(300.0), Duration::ZERO, Duration::ZERO);
        fixed_talk(&mut est, 300);
        let s = [ServerStatus::OnCall {
            elapsed: Duration::ZERO,
        }; 3];
        let f = plain_forecasts(&est, &s, 30)[29];
        assert!(f.low < f.expected && f.expected < f.high);
        // Before data: the normal ±1.28 σ.
        assert!(((f.high - f.expected) / f.spread - 1.2816).abs() < 1e-3);
        // Callers then waited 0.5 σ to 3 σ longer than forecast: the range
        // moves up to cover what happens.
        for i in 0..400 {
            let z = 0.5 + 2.5 * f64::from(i % 100) / 99.0;
            est.record_outcome(&f, secs(f.expected + z * f.spread));
        }
        let g = plain_forecasts(&est, &s, 30)[29];
        assert!(g.low > f.expected, "{g:?}");
        assert!(g.high > f.expected + 2.5 * f.spread, "{g:?}");
    }

    #[test]
    fn nobody_staffed_gives_no_estimate() {
        let est = Estimator::new(secs(60.0), Duration::ZERO);
        assert!(plain(&est, &[], 1).is_none());
    }

    #[test]
    fn talk_window_is_bounded_and_sorted() {
        let mut t = TalkTimes::default();
        for i in 0..(TALK_WINDOW * 3) {
            t.record((i % 97) as f64);
        }
        assert_eq!(t.len(), TALK_WINDOW);
        assert!(t.sorted.windows(2).all(|w| w[0] <= w[1]));
        let mean = t.recent.iter().sum::<f64>() / TALK_WINDOW as f64;
        assert!((t.mean().expect("samples") - mean).abs() < 1e-6);
    }
}
