//! The source guard: turns floods, scanners and password guessers away
//! before they cost the gateway anything.
//!
//! Three cores, each a plain struct driven with `now` (unit-tested in
//! virtual time), and a thin shell ([`Guard`]) that holds them behind locks,
//! counts every decision in metrics and logs (sampled under a flood):
//!
//! - [`SourceLimiter`]: per-source token buckets for INVITE, REGISTER and
//!   everything else, with trunk sources on their own (higher) rates. A
//!   source that keeps going over its rate collects strikes; enough strikes
//!   within the window block it (in the spirit of Kamailio's pike), for a
//!   time that doubles for repeat offenders. INVITEs the call room refused
//!   to a stranger (not a trunk) cost strikes too, so a slow scanner is
//!   blocked as well. A blocked source's datagrams are dropped unanswered
//!   after one hash lookup, before any parsing.
//! - [`AuthLimiter`]: digest failures counted per source and per account,
//!   with growing answer delays, a temporary block of the guessing source,
//!   and a lock on an account guessed at from many places. Unknown accounts
//!   are tracked exactly like real ones, so no answer or delay tells them
//!   apart. Addresses that authenticated for an account are remembered: an
//!   account lock never applies to them, and they are blocked for guessing
//!   only past a far higher bound, so the real phone keeps registering.
//! - Blocks are listed and lifted through the admin API ([`Guard::blocks`],
//!   [`Guard::unblock`]).
//!
//! Every map is bounded (`max_sources`): when full, stale entries go first,
//! then arbitrary ones, so spoofed sources cannot grow memory.
//!
//! Hand-rolled rather than `governor`: its keyed limiter has no size bound
//! or strike/block notion, and these buckets are a few lines each.
//!
//! Must not touch: sockets, the codec (only [`classify`] peeks at a method
//! token), transactions or the call room.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::ops::metrics as m;

// ---------------------------------------------------------------- config

/// One token bucket: `rate` messages per second sustained, `burst` at once.
/// A rate of 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub rate: f64,
    pub burst: f64,
}

impl Rate {
    const fn new(rate: f64, burst: f64) -> Rate {
        Rate { rate, burst }
    }
    fn unlimited(&self) -> bool {
        self.rate <= 0.0
    }
}

/// The buckets of one kind of source.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassRates {
    pub invite: Rate,
    pub register: Rate,
    /// Every other request, and responses.
    pub other: Rate,
}

impl ClassRates {
    fn get(&self, c: Class) -> Rate {
        match c {
            Class::Invite => self.invite,
            Class::Register => self.register,
            Class::Other => self.other,
        }
    }
}

impl Default for ClassRates {
    /// Any source that is not a trunk: phones and everyone else. An office
    /// of phones behind one NAT address re-registering at once stays under
    /// these.
    fn default() -> Self {
        ClassRates {
            invite: Rate::new(10.0, 50.0),
            register: Rate::new(10.0, 100.0),
            other: Rate::new(50.0, 500.0),
        }
    }
}

fn trunk_rates() -> ClassRates {
    // A carrier's excess is dropped, never blocked, so these only cap a
    // runaway trunk: far above the 5,000 short calls/s (INVITE, ACK, BYE)
    // that bench/sip_load's sustained step drives through the defaults.
    ClassRates {
        invite: Rate::new(20_000.0, 40_000.0),
        register: Rate::new(1_000.0, 2_000.0),
        other: Rate::new(60_000.0, 120_000.0),
    }
}

/// Password-guessing limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Failures from one source answered at once; later ones wait longer
    /// and longer (0.5 s, 1 s, 2 s, … up to `max_delay_ms`).
    pub free_failures: u32,
    pub max_delay_ms: u64,
    /// Failures from one source within `window` that block it.
    pub block_after: u32,
    /// Failures against one account (from anywhere) within `window` that
    /// lock it for `lock_secs`, except from addresses it authenticated from.
    pub lock_account_after: u32,
    pub window: u64,
    pub lock_secs: u64,
    /// How long an address that authenticated stays "usual" for the account.
    pub remember_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            free_failures: 3,
            max_delay_ms: 8_000,
            block_after: 20,
            lock_account_after: 30,
            window: 600,
            lock_secs: 900,
            remember_secs: 7 * 86_400,
        }
    }
}

/// `[guard]` in conmutador.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Off: no per-source limits, no blocks, no guessing delays.
    pub enabled: bool,
    /// Sources outside `[trunks] allow`.
    pub sources: ClassRates,
    /// Sources inside `[trunks] allow`.
    pub trunks: ClassRates,
    /// Whether a trunk that keeps exceeding its rates is blocked too (its
    /// excess is dropped either way).
    pub block_trunks: bool,
    /// Messages over the rates, within `block_window` seconds, that block
    /// a source.
    pub block_after: u32,
    pub block_window: u64,
    /// First block, in seconds; doubles for each repeat up to `block_max_secs`.
    pub block_secs: u64,
    pub block_max_secs: u64,
    /// INVITEs refused to one non-trunk source (403: not a trunk) within
    /// `block_window` that block it, however slowly they came: a scanner
    /// is then no longer answered (0: off).
    pub strangers_block_after: u32,
    /// Sources tracked at once (and accounts, and blocks).
    pub max_sources: usize,
    /// Places one calling number may hold in the queues at once (0: no limit).
    /// Anonymous callers are not limited.
    pub caller_places: usize,
    pub auth: AuthConfig,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            enabled: true,
            sources: ClassRates::default(),
            trunks: trunk_rates(),
            block_trunks: false,
            block_after: 100,
            block_window: 10,
            block_secs: 60,
            block_max_secs: 3_600,
            strangers_block_after: 20,
            max_sources: 100_000,
            caller_places: 3,
            auth: AuthConfig::default(),
        }
    }
}

impl GuardConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (who, r) in [("sources", &self.sources), ("trunks", &self.trunks)] {
            for (k, b) in [
                ("invite", r.invite),
                ("register", r.register),
                ("other", r.other),
            ] {
                if !(b.rate.is_finite() && b.burst.is_finite()) || b.rate < 0.0 {
                    return Err(format!("guard.{who}.{k}: rate must be 0 or more"));
                }
                if !b.unlimited() && b.burst < 1.0 {
                    return Err(format!("guard.{who}.{k}: burst must be at least 1"));
                }
            }
        }
        if self.block_after == 0 || self.block_window == 0 || self.block_secs == 0 {
            return Err("guard: block_after, block_window and block_secs must be above 0".into());
        }
        if self.max_sources == 0 {
            return Err("guard.max_sources must be above 0".into());
        }
        if self.auth.block_after == 0 || self.auth.lock_account_after == 0 || self.auth.window == 0
        {
            return Err(
                "guard.auth: block_after, lock_account_after and window must be above 0".into(),
            );
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- classes

/// Which bucket a message draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Invite,
    Register,
    Other,
}

/// The `class` label of `conmutador_guard_messages_total`, in [`Class`] order.
pub const CLASS_LABELS: [&str; 3] = ["invite", "register", "other"];
/// Its `decision` label.
pub const DECISION_LABELS: [&str; 3] = ["admitted", "limited", "blocked"];
/// The `decision` label of `conmutador_guard_auth_total`.
pub const AUTH_DECISION_LABELS: [&str; 4] = [
    "delayed",
    "source_blocked",
    "lock_started",
    "account_locked",
];

impl Class {
    pub fn label(self) -> &'static str {
        CLASS_LABELS[self.index()]
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// The class of a raw message from its first token, without parsing it
/// (a blocked or flooding source must cost no more than this).
pub fn classify(data: &[u8]) -> Class {
    let start = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(data.len());
    let rest = &data[start..];
    if rest.starts_with(b"INVITE ") {
        Class::Invite
    } else if rest.starts_with(b"REGISTER ") {
        Class::Register
    } else {
        Class::Other
    }
}

// ---------------------------------------------------------------- bounded map

/// Inserts into a map that must not grow past `max`: when full, entries
/// `stale` says may go are dropped, then arbitrary ones down to 7/8 of `max`.
fn bounded_entry<K: Hash + Eq + Copy, V>(
    map: &mut HashMap<K, V>,
    key: K,
    max: usize,
    stale: impl Fn(&V) -> bool,
    new: impl FnOnce() -> V,
) -> &mut V {
    if !map.contains_key(&key) && map.len() >= max {
        map.retain(|_, v| !stale(v));
        if map.len() >= max {
            let excess = map.len() - max * 7 / 8;
            let gone: Vec<K> = map.keys().take(excess.max(1)).copied().collect();
            for k in gone {
                map.remove(&k);
            }
        }
    }
    map.entry(key).or_insert_with(new)
}

// ---------------------------------------------------------------- source limiter

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            at: now,
        }
    }
    fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate.rate).min(rate.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct SourceState {
    buckets: [Bucket; 3],
    /// Strikes leak away at block_after per block_window.
    strikes: f64,
    strikes_at: Instant,
    last: Instant,
}

/// Why a source is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockReason {
    /// Kept exceeding its message rates.
    Flood,
    /// Kept failing digest authentication.
    Auth,
    /// Kept sending INVITEs that were refused (not a trunk): a scanner.
    Scan,
}

impl BlockReason {
    /// The `reason` label of `conmutador_guard_blocks_total`.
    pub const LABELS: [&'static str; 3] = ["flood", "auth", "scan"];

    pub fn label(self) -> &'static str {
        Self::LABELS[self as usize]
    }
}

#[derive(Debug, Clone)]
struct Block {
    since: Instant,
    until: Instant,
    reason: BlockReason,
    /// Blocks this source earned so far (the next one lasts twice as long).
    offences: u32,
    dropped: u64,
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// Over its rate: dropped unanswered (UDP peers retransmit).
    Limited,
    /// The source is blocked: dropped unanswered.
    Blocked,
    /// This message got the source blocked (and is dropped).
    NewlyBlocked,
}

/// A block as the admin API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockInfo {
    pub source: IpAddr,
    pub reason: BlockReason,
    pub blocked_for: Duration,
    pub remaining: Duration,
    pub offences: u32,
    pub dropped: u64,
}

/// Per-source token buckets and the block list. Pure: takes `now`.
#[derive(Debug)]
pub struct SourceLimiter {
    sources: ClassRates,
    trunks: ClassRates,
    block_trunks: bool,
    block_after: f64,
    block_window: Duration,
    block_for: Duration,
    block_max: Duration,
    /// Strikes one refused INVITE costs (0: refusals cost none).
    refusal_weight: f64,
    max: usize,
    state: HashMap<IpAddr, SourceState>,
    /// Active blocks, and expired ones kept to double the next block.
    blocks: HashMap<IpAddr, Block>,
}

impl SourceLimiter {
    pub fn new(cfg: &GuardConfig) -> SourceLimiter {
        SourceLimiter {
            sources: cfg.sources,
            trunks: cfg.trunks,
            block_trunks: cfg.block_trunks,
            block_after: f64::from(cfg.block_after),
            block_window: Duration::from_secs(cfg.block_window),
            block_for: Duration::from_secs(cfg.block_secs),
            block_max: Duration::from_secs(cfg.block_max_secs.max(cfg.block_secs)),
            refusal_weight: match cfg.strangers_block_after {
                0 => 0.0,
                n => f64::from(cfg.block_after) / f64::from(n),
            },
            max: cfg.max_sources,
            state: HashMap::new(),
            blocks: HashMap::new(),
        }
    }

    /// Whether `ip` is blocked right now: one hash lookup.
    pub fn is_blocked(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.blocks.get_mut(&ip) {
            Some(b) if b.until > now => {
                b.dropped += 1;
                true
            }
            _ => false,
        }
    }

    /// Decides one message of `class` from `ip`.
    pub fn admit(&mut self, ip: IpAddr, class: Class, trunk: bool, now: Instant) -> Verdict {
        if self.is_blocked(ip, now) {
            return Verdict::Blocked;
        }
        self.admit_unblocked(ip, class, trunk, now)
    }

    /// [`admit`](Self::admit) for a source already found not blocked.
    fn admit_unblocked(&mut self, ip: IpAddr, class: Class, trunk: bool, now: Instant) -> Verdict {
        let rates = if trunk { self.trunks } else { self.sources };
        let rate = rates.get(class);
        if rate.unlimited() {
            return Verdict::Admit;
        }
        let idle = self.block_window;
        let st = bounded_entry(
            &mut self.state,
            ip,
            self.max,
            |s: &SourceState| now.saturating_duration_since(s.last) > idle,
            || SourceState {
                buckets: [
                    Bucket::full(rates.invite, now),
                    Bucket::full(rates.register, now),
                    Bucket::full(rates.other, now),
                ],
                strikes: 0.0,
                strikes_at: now,
                last: now,
            },
        );
        st.last = now;
        if st.buckets[class.index()].take(rate, now) {
            return Verdict::Admit;
        }
        if self.strike(ip, 1.0, now) && (!trunk || self.block_trunks) {
            self.state.remove(&ip);
            self.block(ip, BlockReason::Flood, now);
            return Verdict::NewlyBlocked;
        }
        Verdict::Limited
    }

    /// Adds `weight` strikes to a tracked source; whether it now has
    /// enough to be blocked. Strikes leak away at block_after per window.
    fn strike(&mut self, ip: IpAddr, weight: f64, now: Instant) -> bool {
        let per_sec = self.block_after / self.block_window.as_secs_f64();
        let Some(st) = self.state.get_mut(&ip) else {
            return false;
        };
        let leak = now.saturating_duration_since(st.strikes_at).as_secs_f64() * per_sec;
        st.strikes = (st.strikes - leak).max(0.0) + weight;
        st.strikes_at = now;
        st.strikes >= self.block_after
    }

    /// An INVITE from `ip` (not a trunk) was refused. Returns the block
    /// length when refusals came often enough to block it.
    pub fn refused(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.refusal_weight <= 0.0 || self.is_blocked(ip, now) {
            return None;
        }
        if self.strike(ip, self.refusal_weight, now) {
            self.state.remove(&ip);
            return Some(self.block(ip, BlockReason::Scan, now));
        }
        None
    }

    /// Blocks `ip`; returns how long. Repeat offenders get twice as long
    /// each time, up to the maximum.
    pub fn block(&mut self, ip: IpAddr, reason: BlockReason, now: Instant) -> Duration {
        let keep = self.block_max;
        let b = bounded_entry(
            &mut self.blocks,
            ip,
            self.max,
            |b: &Block| now.saturating_duration_since(b.until) > keep,
            || Block {
                since: now,
                until: now,
                reason,
                offences: 0,
                dropped: 0,
            },
        );
        // An expired block long past is forgotten: the source starts afresh.
        if now.saturating_duration_since(b.until) > keep {
            b.offences = 0;
        }
        let shift = b.offences.min(16);
        let len = self
            .block_for
            .saturating_mul(1u32 << shift)
            .min(self.block_max);
        b.offences += 1;
        b.since = now;
        b.until = now + len;
        b.reason = reason;
        b.dropped = 0;
        len
    }

    /// How long `ip` stays blocked (zero when it is not).
    pub fn remaining(&self, ip: IpAddr, now: Instant) -> Duration {
        self.blocks
            .get(&ip)
            .map(|b| b.until.saturating_duration_since(now))
            .unwrap_or_default()
    }

    /// Lifts the block on `ip`; false when it was not blocked. The source
    /// keeps its history, so blocking it again doubles the time.
    pub fn unblock(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.blocks.get_mut(&ip) {
            Some(b) if b.until > now => {
                b.until = now;
                true
            }
            _ => false,
        }
    }

    /// Active blocks, longest remaining first.
    pub fn blocks(&self, now: Instant) -> Vec<BlockInfo> {
        let mut v: Vec<BlockInfo> = self
            .blocks
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(ip, b)| BlockInfo {
                source: *ip,
                reason: b.reason,
                blocked_for: now.saturating_duration_since(b.since),
                remaining: b.until - now,
                offences: b.offences,
                dropped: b.dropped,
            })
            .collect();
        v.sort_by(|a, b| b.remaining.cmp(&a.remaining).then(a.source.cmp(&b.source)));
        v
    }

    pub fn tracked(&self) -> usize {
        self.state.len()
    }
}

// ---------------------------------------------------------------- auth limiter

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
    last: Instant,
}

impl Failures {
    fn bump(&mut self, window: Duration, now: Instant) -> u32 {
        if now.saturating_duration_since(self.first) > window {
            self.count = 0;
            self.first = now;
        }
        self.count += 1;
        self.last = now;
        self.count
    }
}

/// What a digest failure costs the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Penalty {
    /// Wait this long before answering.
    pub delay: Duration,
    /// Block the source now.
    pub block: bool,
    /// This failure locked the account.
    pub locked_account: bool,
}

/// How many more failures a usual address of some account may make
/// before it is blocked, as a multiple of the ordinary bound.
const USUAL_ADDRESS_MARGIN: u32 = 5;
/// Usual addresses remembered per account (phones that moved keep working).
const USUAL_PER_ACCOUNT: usize = 4;

/// Digest failures per source and per account. Pure: takes `now`.
#[derive(Debug)]
pub struct AuthLimiter {
    cfg: AuthConfig,
    max: usize,
    by_source: HashMap<IpAddr, Failures>,
    /// Keyed by the account name as given, known or not, so unknown
    /// accounts behave exactly like real ones.
    by_account: HashMap<u64, Failures>,
    locked: HashMap<u64, Instant>,
    /// Account → addresses it authenticated from, with when.
    usual: HashMap<u64, Vec<(IpAddr, Instant)>>,
    seed: u64,
}

impl AuthLimiter {
    pub fn new(cfg: &AuthConfig, max: usize) -> AuthLimiter {
        AuthLimiter {
            cfg: cfg.clone(),
            max,
            by_source: HashMap::new(),
            by_account: HashMap::new(),
            locked: HashMap::new(),
            usual: HashMap::new(),
            seed: rand::random(),
        }
    }

    /// Account names come from the network: keep a keyed hash, not the
    /// string, so the maps hold fixed-size keys.
    fn key(&self, account: &str) -> u64 {
        use std::hash::Hasher;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write_u64(self.seed);
        h.write(account.as_bytes());
        h.finish()
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.cfg.window)
    }

    fn is_usual(&self, acc: u64, ip: IpAddr, now: Instant) -> bool {
        let keep = Duration::from_secs(self.cfg.remember_secs);
        self.usual.get(&acc).is_some_and(|v| {
            v.iter()
                .any(|(a, t)| *a == ip && now.saturating_duration_since(*t) <= keep)
        })
    }

    fn usual_anywhere(&self, ip: IpAddr, now: Instant) -> bool {
        let keep = Duration::from_secs(self.cfg.remember_secs);
        self.usual.values().any(|v| {
            v.iter()
                .any(|(a, t)| *a == ip && now.saturating_duration_since(*t) <= keep)
        })
    }

    /// Whether `account` is locked for credentials from `ip`: then even the
    /// right password is answered like a wrong one.
    pub fn locked(&self, ip: IpAddr, account: &str, now: Instant) -> bool {
        let acc = self.key(account);
        match self.locked.get(&acc) {
            Some(until) if *until > now => !self.is_usual(acc, ip, now),
            _ => false,
        }
    }

    /// A wrong (or refused) answer from `ip` for `account`.
    pub fn failed(&mut self, ip: IpAddr, account: &str, now: Instant) -> Penalty {
        let window = self.window();
        let acc = self.key(account);
        let fresh = Failures {
            count: 0,
            first: now,
            last: now,
        };
        let stale = |f: &Failures| now.saturating_duration_since(f.last) > window;
        let n_src =
            bounded_entry(&mut self.by_source, ip, self.max, stale, || fresh).bump(window, now);
        let n_acc =
            bounded_entry(&mut self.by_account, acc, self.max, stale, || fresh).bump(window, now);
        let mut locked_account = false;
        if n_acc >= self.cfg.lock_account_after {
            let until = now + Duration::from_secs(self.cfg.lock_secs);
            let was = bounded_entry(
                &mut self.locked,
                acc,
                self.max,
                |u: &Instant| *u <= now,
                || now,
            );
            locked_account = *was <= now;
            *was = until;
        }
        let bound = if self.usual_anywhere(ip, now) {
            self.cfg.block_after.saturating_mul(USUAL_ADDRESS_MARGIN)
        } else {
            self.cfg.block_after
        };
        let block = n_src >= bound;
        if block {
            self.by_source.remove(&ip);
        }
        let over = n_src.saturating_sub(self.cfg.free_failures);
        let delay = if over == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(500)
                .saturating_mul(1u32 << (over - 1).min(16))
                .min(Duration::from_millis(self.cfg.max_delay_ms))
        };
        Penalty {
            delay,
            block,
            locked_account,
        }
    }

    /// `ip` authenticated as `account`: it becomes a usual address, and its
    /// own failure count is forgiven.
    pub fn succeeded(&mut self, ip: IpAddr, account: &str, now: Instant) {
        let acc = self.key(account);
        self.by_source.remove(&ip);
        let keep = Duration::from_secs(self.cfg.remember_secs);
        let v = bounded_entry(
            &mut self.usual,
            acc,
            self.max,
            |v: &Vec<(IpAddr, Instant)>| {
                v.iter()
                    .all(|(_, t)| now.saturating_duration_since(*t) > keep)
            },
            Vec::new,
        );
        v.retain(|(a, _)| *a != ip);
        v.push((ip, now));
        if v.len() > USUAL_PER_ACCOUNT {
            v.remove(0);
        }
    }
}

// ---------------------------------------------------------------- shell

/// Logs at most one line a second per kind of decision, with the count of
/// those it kept quiet about.
#[derive(Debug, Default)]
struct Sampler {
    last: Option<Instant>,
    quiet: u64,
}

impl Sampler {
    /// Some(suppressed since last line) when a line may be written now.
    fn due(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < Duration::from_secs(1) => {
                self.quiet += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.quiet))
            }
        }
    }
}

struct Counters {
    admitted: [metrics::Counter; 3],
    limited: [metrics::Counter; 3],
    blocked: [metrics::Counter; 3],
}

impl Counters {
    fn new() -> Counters {
        let by = |d: &'static str| {
            [Class::Invite, Class::Register, Class::Other].map(|c| {
                metrics::counter!(m::GUARD_MESSAGES_TOTAL, "class" => c.label(), "decision" => d)
            })
        };
        let [admitted, limited, blocked] = DECISION_LABELS;
        Counters {
            admitted: by(admitted),
            limited: by(limited),
            blocked: by(blocked),
        }
    }
}

/// The shared guard: the endpoint asks it about every message, the
/// operator registry about every digest answer, the admin API about blocks.
pub struct Guard {
    enabled: bool,
    trunks: Vec<IpNet>,
    block_trunks: bool,
    sources: Mutex<Sources>,
    auth: Mutex<AuthLimiter>,
    counters: Counters,
    delayed_log: Mutex<Sampler>,
    caller_places: usize,
}

/// The limiter and the log samplers of its drops, under one lock.
struct Sources {
    limiter: SourceLimiter,
    limited_log: Sampler,
    blocked_log: Sampler,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Maps `::ffff:a.b.c.d` to `a.b.c.d`, so one host is one address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The key a source is limited and blocked by: its IPv4 address, or its
/// IPv6 /64, since one host commonly holds a whole /64 and could otherwise
/// walk through fresh addresses past every limit.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Guard {
    /// Metrics handles are taken here: build it after the recorder is installed.
    pub fn new(cfg: &GuardConfig, trunks: &[IpNet]) -> Guard {
        Guard {
            enabled: cfg.enabled,
            trunks: trunks.to_vec(),
            block_trunks: cfg.block_trunks,
            sources: Mutex::new(Sources {
                limiter: SourceLimiter::new(cfg),
                limited_log: Sampler::default(),
                blocked_log: Sampler::default(),
            }),
            auth: Mutex::new(AuthLimiter::new(&cfg.auth, cfg.max_sources)),
            counters: Counters::new(),
            delayed_log: Mutex::new(Sampler::default()),
            caller_places: cfg.caller_places,
        }
    }

    /// Places one calling number may hold in the queues (0: unlimited).
    pub fn caller_places(&self) -> usize {
        self.caller_places
    }

    fn is_trunk(&self, ip: IpAddr) -> bool {
        self.trunks.iter().any(|n| n.contains(&ip))
    }

    /// Whether a raw message from `ip` may go on to parsing. Called for
    /// every datagram and framed TCP message before anything else.
    pub fn admit(&self, data: &[u8], ip: IpAddr) -> bool {
        if !self.enabled {
            return true;
        }
        let host = canonical(ip);
        let ip = source_key(host);
        let now = Instant::now();
        let class = classify(data);
        // One lock: the block check, the buckets and the log samplers.
        let (verdict, log) = {
            let mut s = lock(&self.sources);
            // Blocked sources stop here, before the trunk check and buckets.
            if s.limiter.is_blocked(ip, now) {
                (Verdict::Blocked, s.blocked_log.due(now))
            } else {
                let trunk = self.is_trunk(host);
                match s.limiter.admit_unblocked(ip, class, trunk, now) {
                    Verdict::Limited => (Verdict::Limited, s.limited_log.due(now)),
                    v => (v, None),
                }
            }
        };
        let i = class.index();
        match verdict {
            Verdict::Admit => {
                self.counters.admitted[i].increment(1);
                true
            }
            Verdict::Blocked => {
                self.counters.blocked[i].increment(1);
                if let Some(quiet) = log {
                    debug!(source = %ip, class = class.label(), more = quiet, "blocked source: dropped (sampled)");
                }
                false
            }
            Verdict::Limited => {
                self.counters.limited[i].increment(1);
                if let Some(quiet) = log {
                    info!(source = %ip, class = class.label(), more = quiet, "over its rate: dropped (sampled)");
                }
                false
            }
            Verdict::NewlyBlocked => {
                self.counters.limited[i].increment(1);
                self.blocked_now(ip, BlockReason::Flood, now);
                false
            }
        }
    }

    /// Whether a TCP connection from `ip` may stay open: not when blocked
    /// (counted as a blocked message of class "other").
    pub fn accepts(&self, ip: IpAddr) -> bool {
        if !self.enabled {
            return true;
        }
        let blocked = lock(&self.sources)
            .limiter
            .is_blocked(source_key(ip), Instant::now());
        if blocked {
            self.counters.blocked[Class::Other.index()].increment(1);
        }
        !blocked
    }

    fn blocked_now(&self, ip: IpAddr, reason: BlockReason, now: Instant) {
        let len = match reason {
            BlockReason::Auth => lock(&self.sources).limiter.block(ip, reason, now),
            // The limiter made these blocks itself.
            BlockReason::Flood | BlockReason::Scan => {
                lock(&self.sources).limiter.remaining(ip, now)
            }
        };
        metrics::counter!(m::GUARD_BLOCKS_TOTAL, "reason" => reason.label()).increment(1);
        self.publish_blocked(now);
        warn!(source = %ip, reason = reason.label(), secs = len.as_secs(), "source blocked");
    }

    fn publish_blocked(&self, now: Instant) {
        let n = lock(&self.sources).limiter.blocks(now).len();
        metrics::gauge!(m::GUARD_BLOCKED_SOURCES).set(n as f64);
    }

    /// Keeps the blocked-sources gauge true as blocks run out; call every
    /// few seconds.
    pub fn publish(&self) {
        self.publish_blocked(Instant::now());
    }

    /// Active blocks for the admin API.
    pub fn blocks(&self) -> Vec<BlockInfo> {
        let now = Instant::now();
        let v = lock(&self.sources).limiter.blocks(now);
        metrics::gauge!(m::GUARD_BLOCKED_SOURCES).set(v.len() as f64);
        v
    }

    /// Lifts a block; false when `ip` was not blocked.
    pub fn unblock(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let ip = source_key(ip);
        let lifted = lock(&self.sources).limiter.unblock(ip, now);
        if lifted {
            metrics::counter!(m::GUARD_UNBLOCKS_TOTAL).increment(1);
            info!(source = %ip, "block lifted by the admin API");
            self.publish_blocked(now);
        }
        lifted
    }

    /// The call room refused an INVITE from `ip` because it is not a
    /// trunk: enough of those block it like a flood does.
    pub fn refused_stranger(&self, ip: IpAddr) {
        if !self.enabled {
            return;
        }
        let ip = source_key(ip);
        let now = Instant::now();
        let blocked = lock(&self.sources).limiter.refused(ip, now);
        if blocked.is_some() {
            self.blocked_now(ip, BlockReason::Scan, now);
        }
    }

    /// Whether credentials for `account` from `ip` must be refused whatever
    /// they are (the account is locked and `ip` is not a usual address).
    pub fn auth_locked(&self, ip: IpAddr, account: &str) -> bool {
        if !self.enabled {
            return false;
        }
        let locked = lock(&self.auth).locked(source_key(ip), account, Instant::now());
        if locked {
            metrics::counter!(m::GUARD_AUTH_TOTAL, "decision" => "account_locked").increment(1);
        }
        locked
    }

    /// Records a failed digest answer; returns how long to hold the answer.
    pub fn auth_failed(&self, ip: IpAddr, account: &str) -> Duration {
        if !self.enabled {
            return Duration::ZERO;
        }
        let host = canonical(ip);
        let ip = source_key(host);
        let now = Instant::now();
        let p = lock(&self.auth).failed(ip, account, now);
        if p.locked_account {
            metrics::counter!(m::GUARD_AUTH_TOTAL, "decision" => "lock_started").increment(1);
            // The account name comes from the network: log it escaped, once.
            warn!(account = %account.escape_debug(), source = %ip, "account locked for password guessing");
        }
        // A trunk's failures delay it like anyone's, but block it only when
        // trunks may be blocked at all: its calls matter more.
        if p.block && (self.block_trunks || !self.is_trunk(host)) {
            metrics::counter!(m::GUARD_AUTH_TOTAL, "decision" => "source_blocked").increment(1);
            self.blocked_now(ip, BlockReason::Auth, now);
        } else if !p.delay.is_zero() {
            metrics::counter!(m::GUARD_AUTH_TOTAL, "decision" => "delayed").increment(1);
            if let Some(quiet) = lock(&self.delayed_log).due(now) {
                info!(source = %ip, delay_ms = p.delay.as_millis() as u64, more = quiet, "digest failure: answer delayed (sampled)");
            }
        }
        p.delay
    }

    /// Records a good digest answer from `ip` for `account`.
    pub fn auth_succeeded(&self, ip: IpAddr, account: &str) {
        if self.enabled {
            lock(&self.auth).succeeded(source_key(ip), account, Instant::now());
        }
    }
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
