//! Rebuilds per-queue statistics from stored queue events, so a restart
//! does not reset the wait estimator's inputs or the service-level counters.
//!
//! The fold is pure ([`fold_queue_stats`]) and unit-tested; the ACD decides
//! what to do with the samples. Samples are capped to the most recent
//! [`MAX_SAMPLES`] per queue so a long window cannot exhaust memory.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::export::{Page, RecordKind, for_each_page};
use super::{QueueEvent, QueueEventKind, RecordsConfig, RecordsError};

/// Most recent samples kept per queue and per series.
pub const MAX_SAMPLES: usize = 2000;

/// What one queue looked like over the window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStatsSeed {
    /// Callers connected to an operator (CONNECT).
    pub answered: u64,
    /// Callers who hung up while waiting (ABANDON).
    pub abandoned: u64,
    /// Callers who left by timeout, key, empty queue (on entry or while
    /// waiting) or full queue. Callers removed by the gateway are not
    /// counted anywhere.
    pub exited: u64,
    pub answered_within_threshold: u64,
    /// Abandoned before the threshold ("short abandons").
    pub abandoned_within_threshold: u64,
    /// Waits of answered callers, oldest first.
    pub answered_waits: VecDeque<Duration>,
    /// How long abandoning callers waited before hanging up (the patience
    /// samples of an estimator with abandonment), oldest first.
    pub abandon_waits: VecDeque<Duration>,
    /// Talk time of completed operator calls, oldest first.
    pub handle_times: VecDeque<Duration>,
    /// Actual minus announced wait in milliseconds, for calls that had an
    /// announcement (negative: served sooner than announced).
    pub prediction_errors_ms: VecDeque<i64>,
}

impl QueueStatsSeed {
    /// Answered within threshold ÷ answered.
    pub fn service_level(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.answered_within_threshold as f64 / self.answered as f64)
    }

    /// Answered within threshold ÷ (answered + abandoned): abandonments
    /// count against the queue.
    pub fn service_level_offered(&self) -> Option<f64> {
        let offered = self.answered + self.abandoned;
        (offered > 0).then(|| self.answered_within_threshold as f64 / offered as f64)
    }

    pub fn abandon_rate(&self) -> Option<f64> {
        let left = self.answered + self.abandoned + self.exited;
        (left > 0).then(|| self.abandoned as f64 / left as f64)
    }
}

fn push<T>(v: &mut VecDeque<T>, x: T) {
    if v.len() == MAX_SAMPLES {
        v.pop_front();
    }
    v.push_back(x);
}

/// Folds one event into the per-queue map. Events without a queue (agent
/// events for all queues, reloads) carry nothing for these statistics.
pub fn apply_event(
    stats: &mut BTreeMap<String, QueueStatsSeed>,
    ev: &QueueEvent,
    threshold: &impl Fn(&str) -> Duration,
) {
    let Some(queue) = ev.queue.as_deref() else {
        return;
    };
    let wait = ev.wait_ms.map(Duration::from_millis);
    let relevant = matches!(
        ev.event,
        QueueEventKind::Connect
            | QueueEventKind::Abandon
            | QueueEventKind::CompleteCaller
            | QueueEventKind::CompleteAgent
            | QueueEventKind::ExitWithTimeout
            | QueueEventKind::ExitWithKey
            | QueueEventKind::ExitEmpty
            | QueueEventKind::JoinEmpty
            | QueueEventKind::Full
    );
    // REMOVED (admin API, shutdown) is deliberately not here: the gateway
    // took the caller out, so it tells nothing about service or patience.
    if !relevant {
        return;
    }
    let s = stats.entry(queue.to_string()).or_default();
    let limit = threshold(queue);
    match ev.event {
        QueueEventKind::Connect => {
            s.answered += 1;
            if let Some(w) = wait {
                if w <= limit {
                    s.answered_within_threshold += 1;
                }
                push(&mut s.answered_waits, w);
                if let (Some(actual), Some(announced)) = (ev.wait_ms, ev.announced_wait_ms) {
                    let err = i64::try_from(actual).unwrap_or(i64::MAX)
                        - i64::try_from(announced).unwrap_or(i64::MAX);
                    push(&mut s.prediction_errors_ms, err);
                }
            }
        }
        QueueEventKind::Abandon => {
            s.abandoned += 1;
            if let Some(w) = wait {
                if w <= limit {
                    s.abandoned_within_threshold += 1;
                }
                push(&mut s.abandon_waits, w);
            }
        }
        QueueEventKind::CompleteCaller | QueueEventKind::CompleteAgent => {
            if let Some(t) = ev.talk_ms {
                push(&mut s.handle_times, Duration::from_millis(t));
            }
        }
        _ => s.exited += 1,
    }
}

/// Pure fold over events in time order. `threshold` gives each queue's
/// service-level threshold.
pub fn fold_queue_stats<'a>(
    events: impl IntoIterator<Item = &'a QueueEvent>,
    threshold: impl Fn(&str) -> Duration,
) -> BTreeMap<String, QueueStatsSeed> {
    let mut stats = BTreeMap::new();
    for ev in events {
        apply_event(&mut stats, ev, &threshold);
    }
    stats
}

/// Reads stored queue events from `since` on and folds them. Blocking; call
/// it at start-up (from async code, inside `spawn_blocking`).
pub fn rebuild_queue_stats(
    cfg: &RecordsConfig,
    since: DateTime<Utc>,
    threshold: impl Fn(&str) -> Duration,
) -> Result<BTreeMap<String, QueueStatsSeed>, RecordsError> {
    let mut stats = BTreeMap::new();
    for_each_page(cfg, RecordKind::QueueEvents, since, |page| {
        if let Page::Events(events) = page {
            for ev in &events {
                apply_event(&mut stats, ev, &threshold);
            }
        }
        Ok(())
    })?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn counts_service_level_abandons_and_errors() {
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 15, 0, 0).unwrap();
        let q = "general";
        let events = [
            QueueEvent::enter_queue(t, "a", q, "+5255", 1),
            QueueEvent::connect(t, "a", q, "op1", 15_000, Some(20_000), 3_000),
            QueueEvent::complete(t, "a", q, "op1", true, 15_000, 240_000, 1),
            QueueEvent::connect(t, "b", q, "op2", 45_000, Some(30_000), 2_000),
            QueueEvent::exit(t, "c", q, QueueEventKind::Abandon, None, 2, 3, 8_000, None),
            QueueEvent::exit(
                t,
                "d",
                q,
                QueueEventKind::Abandon,
                None,
                1,
                4,
                70_000,
                Some(60_000),
            ),
            QueueEvent::exit(
                t,
                "e",
                q,
                QueueEventKind::ExitWithTimeout,
                None,
                1,
                1,
                600_000,
                None,
            ),
            QueueEvent::exit(
                t,
                "f",
                "ventas",
                QueueEventKind::ExitWithKey,
                Some('0'),
                1,
                1,
                5_000,
                None,
            ),
            QueueEvent::agent(t, QueueEventKind::Pause, "op1", None, Some("comida")),
        ];
        let stats = fold_queue_stats(&events, |q| {
            Duration::from_secs(if q == "general" { 20 } else { 30 })
        });
        let g = &stats["general"];
        assert_eq!((g.answered, g.abandoned, g.exited), (2, 2, 1));
        assert_eq!(g.answered_within_threshold, 1);
        assert_eq!(g.abandoned_within_threshold, 1);
        assert_eq!(g.service_level(), Some(0.5));
        assert_eq!(g.service_level_offered(), Some(0.25));
        assert_eq!(g.abandon_rate(), Some(0.4));
        assert_eq!(g.handle_times, [Duration::from_secs(240)]);
        assert_eq!(
            g.abandon_waits,
            [Duration::from_secs(8), Duration::from_secs(70)]
        );
        assert_eq!(g.prediction_errors_ms, [-5_000, 15_000]);
        assert_eq!(stats["ventas"].exited, 1);
        assert_eq!(stats.len(), 2, "agent events without a queue add nothing");
    }

    #[test]
    fn removals_feed_nothing_and_join_empty_counts_as_an_exit() {
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 15, 0, 0).unwrap();
        let q = "general";
        let events = [
            QueueEvent::connect(t, "a", q, "op1", 15_000, None, 3_000),
            QueueEvent::exit(t, "b", q, QueueEventKind::Abandon, None, 1, 1, 9_000, None),
            QueueEvent::removed(t, "c", q, "admin", 1, 2, 30_000, Some(60_000)),
            QueueEvent::removed(t, "d", q, "shutdown", 1, 1, 5_000, None),
            QueueEvent::exit(t, "e", q, QueueEventKind::JoinEmpty, None, 0, 0, 0, None),
            QueueEvent::config_reload(t),
        ];
        let stats = fold_queue_stats(&events, |_| Duration::from_secs(20));
        let g = &stats[q];
        assert_eq!((g.answered, g.abandoned, g.exited), (1, 1, 1));
        assert_eq!(g.abandon_waits, [Duration::from_secs(9)]);
        assert_eq!(g.abandon_rate(), Some(1.0 / 3.0));
        assert_eq!(stats.len(), 1, "a reload has no queue");
    }

    #[test]
    fn samples_are_capped() {
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 15, 0, 0).unwrap();
        let events: Vec<_> = (0..MAX_SAMPLES as u64 + 10)
            .map(|i| QueueEvent::connect(t, "x", "q", "op", i, None, 0))
            .collect();
        let stats = fold_queue_stats(&events, |_| Duration::from_secs(20));
        let q = &stats["q"];
        assert_eq!(q.answered, MAX_SAMPLES as u64 + 10);
        assert_eq!(q.answered_waits.len(), MAX_SAMPLES);
        assert_eq!(
            q.answered_waits.front(),
            Some(&Duration::from_millis(10)),
            "oldest dropped first"
        );
    }
}
