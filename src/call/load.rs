//! The overload guard: is the gateway too far behind to take a new call?
//!
//! `sip.max_calls` and `sip.max_cps` are limits an operator guesses before
//! the day; they cannot know the machine. This guard watches the two clocks
//! that slip first when the CPU runs out, and refuses new calls while
//! either has slipped, so the calls already in progress keep their audio
//! and their signalling on time:
//!
//! - the media clock: the share of frames sent more than
//!   `sip.overload_media_late_ms` late (or skipped), sustained over three
//!   seconds on the worst worker, read from the media engine. Above
//!   [`MEDIA_BEHIND_SHARE`] the gateway is behind.
//! - the signalling runtime: a timer that should fire every
//!   [`PROBE_PERIOD`] records how late it fired. The worst lateness of the
//!   last one to two seconds, or the time since the probe last ran when
//!   that is longer (a stalled runtime cannot report itself), above
//!   `sip.overload_signalling_lag_ms` means SIP is answered late.
//!
//! A refusal is a 503 with Retry-After, counted by reason (`media`,
//! `signalling`) in `conmutador_sip_overload_rejections_total`.
//!
//! Sans-I/O: it is handed readings and the time. The probe task that feeds
//! it and publishes the gauges lives in `gateway.rs`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the signalling probe should run.
pub const PROBE_PERIOD: Duration = Duration::from_millis(50);
/// The lateness record covers this window and the one before it.
const WINDOW: Duration = Duration::from_secs(1);
/// Share of frames behind above which the media clock counts as overloaded.
/// A healthy clock sends essentially every frame within a few milliseconds;
/// one frame in a hundred past the limit is audible damage spreading.
pub const MEDIA_BEHIND_SHARE: f64 = 0.01;

pub struct LoadGuard {
    /// None: the media guard is off.
    media: Option<f64>,
    /// None: the signalling guard is off.
    lag_limit: Option<Duration>,
    probe: Mutex<Probe>,
}

struct Probe {
    last_run: Instant,
    window_start: Instant,
    worst: Duration,
    worst_before: Duration,
}

impl LoadGuard {
    /// `media_on`: whether the media clock's share counts; `lag_limit`:
    /// the signalling lateness that refuses calls (zero: off).
    pub fn new(media_on: bool, lag_limit: Duration, now: Instant) -> LoadGuard {
        LoadGuard {
            media: media_on.then_some(MEDIA_BEHIND_SHARE),
            lag_limit: (!lag_limit.is_zero()).then_some(lag_limit),
            probe: Mutex::new(Probe {
                last_run: now,
                window_start: now,
                worst: Duration::ZERO,
                worst_before: Duration::ZERO,
            }),
        }
    }

    /// The probe timer due at `due` ran at `now`.
    pub fn probe(&self, due: Instant, now: Instant) {
        let mut p = self.probe.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(p.window_start);
        if elapsed >= WINDOW {
            // A window with no probe at all had nothing better to say than
            // this probe's own lateness, which is recorded below.
            p.worst_before = if elapsed >= 2 * WINDOW {
                Duration::ZERO
            } else {
                p.worst
            };
            p.worst = Duration::ZERO;
            p.window_start = now;
        }
        p.worst = p.worst.max(now.saturating_duration_since(due));
        p.last_run = now;
    }

    /// How late signalling runs: the worst probe lateness of the last one
    /// to two seconds, or how overdue the next probe is, if more.
    pub fn lag(&self, now: Instant) -> Duration {
        let p = self.probe.lock().unwrap_or_else(|e| e.into_inner());
        let overdue = now
            .saturating_duration_since(p.last_run)
            .saturating_sub(PROBE_PERIOD);
        p.worst.max(p.worst_before).max(overdue)
    }

    /// Why a new call must be refused now, if it must. `media_behind` is
    /// the media engine's share of frames behind.
    pub fn refusal(&self, media_behind: f64, now: Instant) -> Option<&'static str> {
        if let Some(limit) = self.media
            && media_behind > limit
        {
            return Some("media");
        }
        if let Some(limit) = self.lag_limit
            && self.lag(now) > limit
        {
            return Some("signalling");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs the probe every period from `from` for `n` periods, each `late`.
    fn steady(g: &LoadGuard, from: Instant, n: u32, late: Duration) -> Instant {
        let mut due = from;
        for _ in 0..n {
            due += PROBE_PERIOD;
            g.probe(due, due + late);
        }
        due + late
    }

    #[test]
    fn healthy_gateway_takes_calls() {
        let t0 = Instant::now();
        let g = LoadGuard::new(true, ms(250), t0);
        let now = steady(&g, t0, 40, ms(2));
        assert_eq!(g.lag(now), ms(2));
        assert_eq!(g.refusal(0.0, now), None);
        assert_eq!(g.refusal(MEDIA_BEHIND_SHARE, now), None, "at the limit");
    }

    #[test]
    fn media_behind_refuses_until_it_recovers() {
        let t0 = Instant::now();
        let g = LoadGuard::new(true, ms(250), t0);
        let now = steady(&g, t0, 4, ms(1));
        assert_eq!(g.refusal(0.2, now), Some("media"));
        assert_eq!(g.refusal(0.001, now), None);
        let off = LoadGuard::new(false, ms(250), t0);
        assert_eq!(off.refusal(1.0, now), None, "media guard off");
    }

    #[test]
    fn one_late_probe_refuses_for_one_to_two_seconds() {
        let t0 = Instant::now();
        let g = LoadGuard::new(true, ms(250), t0);
        let due = t0 + PROBE_PERIOD;
        g.probe(due, due + ms(400));
        let now = due + ms(400);
        assert_eq!(g.lag(now), ms(400));
        assert_eq!(g.refusal(0.0, now), Some("signalling"));
        // On time again: still remembered through the next window...
        let now = steady(&g, due + ms(400), 20, ms(1));
        assert_eq!(g.refusal(0.0, now), Some("signalling"));
        // ...and forgotten after it.
        let now = steady(&g, now, 25, ms(1));
        assert_eq!(g.refusal(0.0, now), None);
        assert_eq!(g.lag(now), ms(1));
    }

    #[test]
    fn a_stalled_probe_counts_before_it_reports() {
        let t0 = Instant::now();
        let g = LoadGuard::new(true, ms(250), t0);
        let last = steady(&g, t0, 10, ms(0));
        // The runtime stalls: no probe runs, yet the lag grows.
        assert_eq!(g.refusal(0.0, last + ms(200)), None);
        assert_eq!(g.lag(last + ms(600)), ms(550));
        assert_eq!(g.refusal(0.0, last + ms(600)), Some("signalling"));
    }

    #[test]
    fn zero_limit_turns_the_signalling_guard_off() {
        let t0 = Instant::now();
        let g = LoadGuard::new(false, Duration::ZERO, t0);
        g.probe(t0, t0 + ms(5000));
        assert_eq!(g.refusal(1.0, t0 + ms(9000)), None);
    }

    #[test]
    fn a_long_gap_forgets_the_old_window() {
        let t0 = Instant::now();
        let g = LoadGuard::new(true, ms(250), t0);
        g.probe(t0 + PROBE_PERIOD, t0 + PROBE_PERIOD + ms(300));
        // Three seconds later a probe runs on time: the 300 ms is history.
        let due = t0 + ms(3000);
        g.probe(due, due);
        assert_eq!(g.lag(due), Duration::ZERO);
    }
}
