//! The ACD core: `Acd::handle(event, now)` and `Acd::handle_timeout(now)`
//! turn events and time into commands.
//!
//! Matching is an event here, never a poll: every event or timer that can
//! free an operator or add a caller ends with `dispatch`, which offers every
//! free operator to the best waiting caller it may serve, whatever the other
//! callers are hearing. The core never reads the clock, never does I/O and
//! never touches the metrics recorder: it keeps its figures as plain data
//! (`figures.rs`) and the shell takes them with [`Acd::take_figures`].
//!
//! With thousands waiting, no event may walk the whole line: caller timers
//! live in a heap, dispatch merges the queues' lines (kept in service
//! order), gauges read the heads of the priority groups. Only an estimate
//! is O(position), as its formula is (`estimator.rs`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::config::{
    self, ConfigError, EmptyWhen, MAX_WAITING_TOTAL, OperatorConfig, QueueConfig, Strategy,
};
use super::estimator::{self, Estimator, Forecast, ServerStatus};
use super::figures::{AcdFigures, Outcome, QueueFigures, QueueGauges, QueueSamples};
use super::state::{
    Activity, CallerRec, ConnectedRec, Key, Member, OpRec, Place, QueueRec, QueueStats, Ring, State,
};
use super::types::{
    AcdCommand, AcdEvent, CallId, ExitReason, OperatorState, Party, QueueEvent, QueueEventKind,
    Removal, RingFailure, WaitSpeech,
};

/// The reason recorded when an operator is paused for not answering.
pub const AUTOPAUSE_REASON: &str = "autopause";

/// The automatic call distributor: queues, operators, strategies, estimates.
pub struct Acd {
    pub(crate) st: State,
    out: Vec<AcdCommand>,
}

impl Acd {
    /// Build from the config sections. Static operators (with `static_uri`)
    /// start logged in; the others wait for `OperatorOnline`.
    pub fn new(
        queues: Vec<QueueConfig>,
        operators: Vec<OperatorConfig>,
    ) -> Result<Self, ConfigError> {
        config::validate(&queues, &operators)?;
        let index: HashMap<String, usize> = queues
            .iter()
            .enumerate()
            .map(|(i, q)| (q.name.clone(), i))
            .collect();
        let mut qrecs: Vec<QueueRec> = queues
            .into_iter()
            .map(|cfg| {
                let (rng, seeded_by_config) = match cfg.seed {
                    Some(s) => (SmallRng::seed_from_u64(s), true),
                    None => (SmallRng::from_os_rng(), false),
                };
                QueueRec {
                    est: Estimator::with_patience(
                        cfg.initial_handle_time,
                        cfg.wrapup,
                        cfg.initial_patience,
                    ),
                    cfg,
                    members: Vec::new(),
                    waiting: Vec::new(),
                    stats: QueueStats::default(),
                    counts: Default::default(),
                    samples: Default::default(),
                    estimated_wait: None,
                    rr_next: 0,
                    rng,
                    seeded_by_config,
                }
            })
            .collect();
        let mut ops = Vec::with_capacity(operators.len());
        for (oi, oc) in operators.into_iter().enumerate() {
            let mut memberships = Vec::new();
            for mb in &oc.queues {
                let qi = *index
                    .get(&mb.name)
                    .expect("validate checked every membership names a queue");
                memberships.push((qi, qrecs[qi].members.len()));
                qrecs[qi].members.push(Member {
                    op: oi,
                    penalty: mb.penalty,
                    calls: 0,
                    talk: Duration::ZERO,
                });
            }
            let logged_in = oc.static_uri.is_some();
            let mut rec = OpRec {
                id: oc.id,
                display_name: oc.display_name,
                static_uri: oc.static_uri,
                memberships,
                logged_in,
                reachable: true,
                paused: None,
                activity: Activity::Idle,
                cooldown: None,
                no_answer_streak: 0,
                idle_since: None,
                calls_taken: 0,
                shown: OperatorState::LoggedOut,
                shown_since: None,
            };
            rec.shown = rec.state();
            ops.push(rec);
        }
        let op_index = ops
            .iter()
            .enumerate()
            .map(|(i, o)| (o.id.clone(), i))
            .collect();
        Ok(Acd {
            st: State {
                queues: qrecs,
                ops,
                op_index,
                callers: HashMap::new(),
                connected: HashMap::new(),
                direct: HashMap::new(),
                // Room below for callers put back at the front of their tier.
                seq: FRONT_ROOM,
                timers: BinaryHeap::new(),
            },
            out: Vec::new(),
        })
    }

    /// Seed the random strategies of every queue that has no `seed` of its
    /// own (each queue gets its own stream), for reproducible runs.
    pub fn with_seed(mut self, seed: u64) -> Self {
        for (i, q) in self.st.queues.iter_mut().enumerate() {
            if !q.seeded_by_config {
                q.rng =
                    SmallRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            }
        }
        self
    }

    /// Apply one event; returns what the call layer must do, in order.
    pub fn handle(&mut self, ev: AcdEvent, now: Instant) -> Vec<AcdCommand> {
        match ev {
            AcdEvent::CallerJoined {
                call,
                queue,
                priority,
            } => self.caller_joined(call, &queue, priority, false, now),
            AcdEvent::CallerReturned {
                call,
                queue,
                priority,
            } => self.caller_joined(call, &queue, priority, true, now),
            AcdEvent::CallerLeft { call } => {
                self.drop_direct(call, now);
                self.caller_left(call, now)
            }
            AcdEvent::CallerRemoved { call, by } => {
                self.drop_direct(call, now);
                self.caller_removed(call, by, now)
            }
            AcdEvent::DirectRing { call, op, queue } => self.direct_ring(call, &op, &queue, now),
            AcdEvent::Transferred { call } => self.call_ended(call, None, now),
            AcdEvent::CallerPressedKey { call, digit } => {
                if let Some(c) = self.st.callers.get(&call) {
                    if self.st.queues[c.queue].cfg.is_exit_key(digit) {
                        self.exit(call, ExitReason::Key(digit), now);
                    }
                }
            }
            AcdEvent::OperatorOnline { op } => {
                if let Some(oi) = self.op_index(&op) {
                    if !self.st.ops[oi].logged_in {
                        let o = &mut self.st.ops[oi];
                        o.logged_in = true;
                        o.no_answer_streak = 0;
                        if o.idle_since.is_none() {
                            o.idle_since = Some(now);
                        }
                        self.log_op(oi, QueueEventKind::AgentLogin, now);
                    }
                }
            }
            AcdEvent::OperatorOffline { op } => {
                if let Some(oi) = self.op_index(&op) {
                    if self.st.ops[oi].logged_in {
                        self.abort_ring(oi, now);
                        self.st.ops[oi].logged_in = false;
                        self.log_op(oi, QueueEventKind::AgentLogoff, now);
                    }
                }
            }
            AcdEvent::OperatorReachable { op, reachable } => {
                if let Some(oi) = self.op_index(&op) {
                    self.st.ops[oi].reachable = reachable;
                }
            }
            AcdEvent::RingAnswered { call, op } => {
                if let Some(oi) = self.op_index(&op) {
                    if self.st.direct.get(&call).is_some_and(|d| d.0 == oi) {
                        self.direct_answered(call, now);
                    } else {
                        self.ring_answered(call, oi, now);
                    }
                }
            }
            AcdEvent::RingFailed { call, op, reason } => {
                if let Some(oi) = self.op_index(&op) {
                    if self.st.direct.get(&call).is_some_and(|d| d.0 == oi) {
                        self.direct_failed(call, reason, now);
                    } else if self.has_ring(call, oi) {
                        self.ring_failed(call, oi, reason, false, now);
                    }
                }
            }
            AcdEvent::CallEnded { call, op: _, by } => {
                self.drop_direct(call, now);
                self.call_ended(call, Some(by), now)
            }
            AcdEvent::Pause { op, reason } => {
                if let Some(oi) = self.op_index(&op) {
                    self.pause(oi, reason, now);
                }
            }
            AcdEvent::Unpause { op } => {
                if let Some(oi) = self.op_index(&op) {
                    let o = &mut self.st.ops[oi];
                    if o.paused.take().is_some() {
                        o.no_answer_streak = 0;
                        self.log_op(oi, QueueEventKind::Unpause, now);
                    }
                }
            }
        }
        self.dispatch(now);
        self.finish(now)
    }

    /// The next instant at which `handle_timeout` has work, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // `finish` left a live timer on top of the heap.
        let callers = self.st.timers.peek().map(|Reverse((t, _))| *t);
        debug_assert_eq!(
            callers,
            self.st.callers.values().flat_map(|c| c.timers()).min(),
            "the timer heap lost a caller timer"
        );
        let ops = self.st.ops.iter().flat_map(|o| {
            let wrap = match o.activity {
                Activity::WrapUp { until } => Some(until),
                _ => None,
            };
            [o.cooldown, wrap].into_iter().flatten()
        });
        callers.into_iter().chain(ops).min()
    }

    /// Run every timer due at `now`: ring timeouts, wrap-up ends, retry
    /// delays, max waits, penalty widening, progressive rings, announcements.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<AcdCommand> {
        // The callers with a timer due; each is checked field by field below.
        let mut due = Vec::new();
        while let Some(Reverse((t, call))) = self.st.timers.peek().copied() {
            if t > now {
                break;
            }
            self.st.timers.pop();
            due.push(call);
        }
        due.sort_unstable();
        due.dedup();
        // Ring timeouts: the core cancels and moves on; the caller keeps their place.
        let mut expired = Vec::new();
        for call in &due {
            if let Some(c) = self.st.callers.get(call) {
                for r in &c.rings {
                    if r.deadline <= now {
                        expired.push((*call, r.op));
                    }
                }
            }
        }
        expired.sort_unstable();
        for (call, oi) in expired {
            self.ring_failed(call, oi, RingFailure::NoAnswer, true, now);
        }
        for o in &mut self.st.ops {
            if let Activity::WrapUp { until } = o.activity {
                if until <= now {
                    o.activity = Activity::Idle;
                }
            }
            if o.cooldown.is_some_and(|c| c <= now) {
                o.cooldown = None;
            }
        }
        let mut timed_out: Vec<(Instant, CallId)> = due
            .iter()
            .filter_map(|call| self.st.callers.get(call).map(|c| (call, c)))
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(call, c)| (c.joined, *call))
            .collect();
        timed_out.sort_unstable();
        for (_, call) in timed_out {
            self.exit(call, ExitReason::Timeout, now);
        }
        for call in &due {
            let Some(c) = self.st.callers.get_mut(call) else {
                continue;
            };
            if c.next_widen.is_some_and(|t| t <= now) {
                let cfg = &self.st.queues[c.queue].cfg;
                c.next_widen = cfg
                    .next_step_after(now.saturating_duration_since(c.joined))
                    .map(|a| c.joined + a);
                arm(&mut self.st.timers, *call, c.next_widen);
            }
        }
        self.progressive_steps(&due, now);
        self.dispatch(now);
        self.periodic_announcements(&due, now);
        self.finish(now)
    }

    // ---- callers ----

    /// A caller enters `queue`; `front`: ahead of everyone of its priority
    /// (a caller coming back from a failed transfer).
    fn caller_joined(
        &mut self,
        call: CallId,
        queue: &str,
        priority: i32,
        front: bool,
        now: Instant,
    ) {
        if self.st.callers.contains_key(&call) || self.st.connected.contains_key(&call) {
            tracing::warn!(call, "caller joined twice; ignored");
            return;
        }
        let Some(qi) = self.st.queues.iter().position(|q| q.cfg.name == queue) else {
            tracing::warn!(call, queue, "unknown queue; caller sent to the empty exit");
            self.out.push(AcdCommand::Exit {
                call,
                reason: ExitReason::Empty,
            });
            return;
        };
        let cfg = &self.st.queues[qi].cfg;
        if self.is_empty(qi, cfg.join_empty, now) {
            self.outcome(qi, Outcome::JoinEmpty);
            self.st.queues[qi].stats.empty_exits += 1;
            self.log(qi, Some(call), None, QueueEventKind::JoinEmpty, now);
            self.out.push(AcdCommand::Exit {
                call,
                reason: ExitReason::Empty,
            });
            return;
        }
        if self.st.queues[qi].waiting.len() >= cfg.length_cap()
            || self.st.callers.len() >= MAX_WAITING_TOTAL
        {
            self.outcome(qi, Outcome::Full);
            self.st.queues[qi].stats.full += 1;
            self.log(qi, Some(call), None, QueueEventKind::Full, now);
            self.out.push(AcdCommand::Exit {
                call,
                reason: ExitReason::Full,
            });
            return;
        }
        let head = self.st.queues[qi]
            .waiting
            .iter()
            .find(|p| p.key.0 == Reverse(priority))
            .map(|p| p.key.1);
        let key: Key = match head {
            Some(seq) if front && seq > 0 => (Reverse(priority), seq - 1),
            _ => {
                self.st.seq += 1;
                (Reverse(priority), self.st.seq)
            }
        };
        let q = &mut self.st.queues[qi];
        let pos = q.waiting.partition_point(|p| p.key < key);
        q.waiting.insert(
            pos,
            Place {
                key,
                call,
                joined: now,
            },
        );
        q.stats.entered += 1;
        let cfg = &q.cfg;
        let rec = CallerRec {
            queue: qi,
            key,
            priority,
            joined: now,
            entry_position: pos + 1,
            announced: None,
            heard: None,
            forecast: None,
            last_estimate: None,
            last_announce: None,
            next_announce: cfg.announce_interval.map(|i| now + i),
            deadline: cfg.max_wait.map(|w| now + w),
            next_widen: cfg.next_step_after(Duration::ZERO).map(|a| now + a),
            next_progressive: None,
            rings: Vec::new(),
        };
        for t in rec.timers() {
            arm(&mut self.st.timers, call, Some(t));
        }
        self.st.callers.insert(call, rec);
        self.st.queues[qi].est.record_arrival(priority, now);
        let forecast = self
            .estimates(qi, pos + 1, now)
            .and_then(|e| e.get(pos).copied());
        let estimate = forecast.map(|f| f.duration());
        let max_wait = self.st.queues[qi].cfg.max_wait;
        let wait = forecast.map(|f| estimator::speech(&f, max_wait));
        let announced = wait.and_then(|w| w.heard());
        if let Some(c) = self.st.callers.get_mut(&call) {
            c.announced = announced;
            c.forecast = forecast;
            c.last_estimate = estimate;
        }
        if estimate.is_some() {
            self.st.queues[qi].estimated_wait = estimate;
        }
        self.log(
            qi,
            Some(call),
            None,
            QueueEventKind::EnterQueue {
                priority,
                position: pos + 1,
                announced,
            },
            now,
        );
        self.dispatch(now);
        // A caller rung at once hears no announcement: an operator is coming.
        if let Some(c) = self.st.callers.get_mut(&call) {
            if c.rings.is_empty() {
                c.last_announce = Some((now, pos + 1, wait));
                c.heard = wait;
                self.out.push(AcdCommand::Announce {
                    call,
                    position: pos + 1,
                    estimate,
                    wait,
                });
            }
        }
    }

    /// The caller's leg is gone, or the gateway takes it out: a connected
    /// call ends as usual (`None`); a waiting caller leaves the line, and
    /// what the queue log says of it is returned:
    /// (queue, position, waited, announced, entry position).
    fn leave_line(
        &mut self,
        call: CallId,
        now: Instant,
    ) -> Option<(usize, usize, Duration, Option<Duration>, usize)> {
        if self.st.connected.contains_key(&call) {
            self.call_ended(call, Some(Party::Caller), now);
            return None;
        }
        let left = self.st.callers.get(&call).map(|c| {
            (
                c.queue,
                self.position(call).unwrap_or(0),
                now.saturating_duration_since(c.joined),
                c.announced,
                c.entry_position,
            )
        })?;
        self.remove_caller(call, now);
        Some(left)
    }

    fn caller_left(&mut self, call: CallId, now: Instant) {
        let Some((qi, position, waited, announced, entry_position)) = self.leave_line(call, now)
        else {
            return;
        };
        let q = &mut self.st.queues[qi];
        q.stats.abandoned += 1;
        q.est.record_wait(waited, true);
        QueueSamples::push(&mut q.samples.wait_abandoned, waited.as_secs_f64());
        self.outcome(qi, Outcome::Abandoned);
        self.log(
            qi,
            Some(call),
            None,
            QueueEventKind::Abandon {
                position,
                entry_position,
                waited,
                announced,
            },
            now,
        );
    }

    /// The gateway took the caller out (admin API, shutdown). A connected
    /// call ends as usual; a waiting caller leaves without counting as an
    /// abandonment: no abandon counter, no patience sample for the
    /// estimator, its own queue-log record.
    fn caller_removed(&mut self, call: CallId, by: Removal, now: Instant) {
        let Some((qi, position, waited, announced, entry_position)) = self.leave_line(call, now)
        else {
            return;
        };
        self.outcome(qi, Outcome::Removed);
        self.log(
            qi,
            Some(call),
            None,
            QueueEventKind::Removed {
                by,
                position,
                entry_position,
                waited,
                announced,
            },
            now,
        );
    }

    /// Take a waiting caller out for `reason` (rings are cancelled).
    fn exit(&mut self, call: CallId, reason: ExitReason, now: Instant) {
        let Some((qi, waited, announced)) = self.st.callers.get(&call).map(|c| {
            (
                c.queue,
                now.saturating_duration_since(c.joined),
                c.announced,
            )
        }) else {
            return;
        };
        let position = self.position(call).unwrap_or(0);
        self.remove_caller(call, now);
        let q = &mut self.st.queues[qi];
        q.est.record_wait(waited, false);
        let (kind, outcome) = match reason {
            ExitReason::Timeout => {
                q.stats.timeouts += 1;
                (
                    QueueEventKind::ExitWithTimeout {
                        position,
                        waited,
                        announced,
                    },
                    Outcome::Timeout,
                )
            }
            ExitReason::Key(digit) => {
                q.stats.key_exits += 1;
                (
                    QueueEventKind::ExitWithKey {
                        digit,
                        position,
                        waited,
                        announced,
                    },
                    Outcome::Key,
                )
            }
            ExitReason::Empty => {
                q.stats.empty_exits += 1;
                (
                    QueueEventKind::ExitEmpty {
                        position,
                        waited,
                        announced,
                    },
                    Outcome::Empty,
                )
            }
            ExitReason::Full => {
                q.stats.full += 1;
                (QueueEventKind::Full, Outcome::Full)
            }
        };
        self.outcome(qi, outcome);
        self.log(qi, Some(call), None, kind, now);
        self.out.push(AcdCommand::Exit { call, reason });
    }

    /// Remove a waiting caller and cancel whatever rings it had.
    fn remove_caller(&mut self, call: CallId, now: Instant) {
        let Some(c) = self.st.callers.remove(&call) else {
            return;
        };
        let q = &mut self.st.queues[c.queue];
        if let Some(i) = q.index_of(c.key) {
            q.waiting.remove(i);
        }
        for r in c.rings {
            self.st.ops[r.op].activity = Activity::Idle;
            let op = self.st.ops[r.op].id.clone();
            self.out.push(AcdCommand::CancelRing { call, op });
            self.log(
                c.queue,
                Some(call),
                Some(r.op),
                QueueEventKind::RingCanceled,
                now,
            );
        }
    }

    fn position(&self, call: CallId) -> Option<usize> {
        let c = self.st.callers.get(&call)?;
        self.st.queues[c.queue].index_of(c.key).map(|i| i + 1)
    }

    // ---- rings and calls ----

    fn has_ring(&self, call: CallId, oi: usize) -> bool {
        self.st
            .callers
            .get(&call)
            .is_some_and(|c| c.rings.iter().any(|r| r.op == oi))
    }

    fn ring(&mut self, call: CallId, oi: usize, now: Instant) {
        let Some(c) = self.st.callers.get_mut(&call) else {
            return;
        };
        let cfg = &self.st.queues[c.queue].cfg;
        let deadline = now + cfg.ring_timeout;
        if cfg.strategy == Strategy::RingProgressive && c.next_progressive.is_none() {
            c.next_progressive = Some(now + cfg.ring_progressive_step);
            arm(&mut self.st.timers, call, c.next_progressive);
        }
        c.rings.push(Ring {
            op: oi,
            started: now,
            deadline,
        });
        arm(&mut self.st.timers, call, Some(deadline));
        self.st.ops[oi].activity = Activity::Ringing { call };
        self.out.push(AcdCommand::Ring {
            call,
            op: self.st.ops[oi].id.clone(),
            queue: cfg.name.clone(),
            timeout: cfg.ring_timeout,
        });
    }

    fn ring_failed(
        &mut self,
        call: CallId,
        oi: usize,
        reason: RingFailure,
        by_timeout: bool,
        now: Instant,
    ) {
        let Some(c) = self.st.callers.get_mut(&call) else {
            return;
        };
        let Some(i) = c.rings.iter().position(|r| r.op == oi) else {
            return;
        };
        let r = c.rings.swap_remove(i);
        if c.rings.is_empty() {
            c.next_progressive = None;
        }
        let qi = c.queue;
        let cfg = &self.st.queues[qi].cfg;
        let (retry, autopause_after) = (cfg.retry_delay, cfg.autopause_after);
        let o = &mut self.st.ops[oi];
        o.activity = Activity::Idle;
        o.cooldown = (!retry.is_zero()).then(|| now + retry);
        if by_timeout {
            self.out.push(AcdCommand::CancelRing {
                call,
                op: o.id.clone(),
            });
        }
        self.st.queues[qi].counts.rings_unanswered += 1;
        self.log(
            qi,
            Some(call),
            Some(oi),
            QueueEventKind::RingNoAnswer {
                rang: now.saturating_duration_since(r.started),
                reason,
            },
            now,
        );
        if reason == RingFailure::NoAnswer {
            let o = &mut self.st.ops[oi];
            o.no_answer_streak += 1;
            if autopause_after > 0 && o.no_answer_streak >= autopause_after && o.paused.is_none() {
                self.pause(oi, AUTOPAUSE_REASON.to_owned(), now);
            }
        }
    }

    /// An operator going away mid-ring: cancel it, no retry delay.
    fn abort_ring(&mut self, oi: usize, now: Instant) {
        if let Activity::Ringing { call } = self.st.ops[oi].activity {
            self.st.ops[oi].activity = Activity::Idle;
            if let Some(c) = self.st.callers.get_mut(&call) {
                c.rings.retain(|r| r.op != oi);
                if c.rings.is_empty() {
                    c.next_progressive = None;
                }
                let qi = c.queue;
                self.out.push(AcdCommand::CancelRing {
                    call,
                    op: self.st.ops[oi].id.clone(),
                });
                self.log(qi, Some(call), Some(oi), QueueEventKind::RingCanceled, now);
            }
        }
    }

    fn ring_answered(&mut self, call: CallId, oi: usize, now: Instant) {
        let Some(ring) = self
            .st
            .callers
            .get(&call)
            .and_then(|c| c.rings.iter().find(|r| r.op == oi))
            .map(|r| r.started)
        else {
            // A ring we already cancelled (ring-all race, timeout, caller
            // gone) was answered: the call layer must hang that leg up.
            self.out.push(AcdCommand::CancelRing {
                call,
                op: self.st.ops[oi].id.clone(),
            });
            return;
        };
        let Some(mut c) = self.st.callers.remove(&call) else {
            return;
        };
        let qi = c.queue;
        {
            let q = &mut self.st.queues[qi];
            if let Some(i) = q.index_of(c.key) {
                q.waiting.remove(i);
            }
        }
        for r in c.rings.drain(..) {
            if r.op != oi {
                self.st.ops[r.op].activity = Activity::Idle;
                self.out.push(AcdCommand::CancelRing {
                    call,
                    op: self.st.ops[r.op].id.clone(),
                });
                self.log(
                    qi,
                    Some(call),
                    Some(r.op),
                    QueueEventKind::RingCanceled,
                    now,
                );
            }
        }
        let waited = now.saturating_duration_since(c.joined);
        let ring_time = now.saturating_duration_since(ring);
        let q = &mut self.st.queues[qi];
        q.est.record_answer_delay(ring_time);
        q.est.record_wait(waited, false);
        q.stats.answered += 1;
        q.stats.wait_answered_total += waited;
        if waited <= q.cfg.service_level_threshold {
            q.stats.answered_within_sl += 1;
            q.counts.answered_within_threshold += 1;
        }
        QueueSamples::push(&mut q.samples.wait_answered, waited.as_secs_f64());
        if let Some(f) = &c.forecast {
            q.est.record_outcome(f, waited);
        }
        // Scored as heard: the minutes said (or a range's middle) against
        // the wait, only for callers who heard a figure on entry; callers
        // rung at once heard none and are counted apart.
        match c.heard.and_then(|w| w.heard().map(|a| (w, a))) {
            Some((words, a)) => {
                let err = waited.as_secs_f64() - a.as_secs_f64();
                q.stats.abs_error_total += err.abs();
                q.stats.scored += 1;
                QueueSamples::push(&mut q.samples.prediction_errors, err);
                if let WaitSpeech::Range { .. } = words {
                    let inside = words.covers(waited);
                    q.stats.ranges += 1;
                    q.stats.ranges_covered += u64::from(inside);
                    if inside {
                        q.counts.ranges_inside += 1;
                    } else {
                        q.counts.ranges_outside += 1;
                    }
                }
            }
            None => q.counts.unannounced += 1,
        }
        self.outcome(qi, Outcome::Answered);
        self.start_talk(call, oi, qi, waited, c.announced, ring_time, now);
    }

    /// Operator `oi` answered for `call` (counted in queue `qi`): they talk
    /// from now on, the call layer bridges them, the log says CONNECT.
    #[allow(clippy::too_many_arguments)]
    fn start_talk(
        &mut self,
        call: CallId,
        oi: usize,
        qi: usize,
        waited: Duration,
        announced: Option<Duration>,
        ring_time: Duration,
        now: Instant,
    ) {
        let o = &mut self.st.ops[oi];
        o.activity = Activity::OnCall { call };
        o.no_answer_streak = 0;
        self.st.connected.insert(
            call,
            ConnectedRec {
                op: oi,
                queue: qi,
                answered: now,
                waited,
            },
        );
        self.out.push(AcdCommand::Connect {
            call,
            op: self.st.ops[oi].id.clone(),
        });
        self.log(
            qi,
            Some(call),
            Some(oi),
            QueueEventKind::Connect {
                waited,
                announced,
                ring_time,
            },
            now,
        );
    }

    /// A connected call's operator part ends: `by` who hung up, `None`
    /// when the call was handed on (its TRANSFER line is the call's own).
    fn call_ended(&mut self, call: CallId, by: Option<Party>, now: Instant) {
        let Some(rec) = self.st.connected.remove(&call) else {
            return;
        };
        let talk = now.saturating_duration_since(rec.answered);
        let q = &mut self.st.queues[rec.queue];
        q.est.record_talk(talk);
        let wrapup = q.cfg.wrapup;
        if let Some(&(_, mi)) = self.st.ops[rec.op]
            .memberships
            .iter()
            .find(|(qi, _)| *qi == rec.queue)
        {
            let mb = &mut q.members[mi];
            mb.calls += 1;
            mb.talk += talk;
        }
        QueueSamples::push(&mut q.samples.handle, (talk + wrapup).as_secs_f64());
        let wrapups = &mut q.samples.wrapup;
        let o = &mut self.st.ops[rec.op];
        o.calls_taken += 1;
        o.idle_since = Some(now);
        if o.activity == (Activity::OnCall { call }) {
            o.activity = if wrapup.is_zero() {
                Activity::Idle
            } else {
                QueueSamples::push(wrapups, wrapup.as_secs_f64());
                Activity::WrapUp {
                    until: now + wrapup,
                }
            };
        }
        let kind = match by {
            Some(Party::Caller) => QueueEventKind::CompleteCaller {
                waited: rec.waited,
                talk,
            },
            Some(Party::Operator) => QueueEventKind::CompleteAgent {
                waited: rec.waited,
                talk,
            },
            None => return,
        };
        self.log(rec.queue, Some(call), Some(rec.op), kind, now);
    }

    // ---- transfers to an operator by name ----

    fn direct_ring(&mut self, call: CallId, op: &str, queue: &str, now: Instant) {
        let oi = self.op_index(op);
        let free = oi.is_some_and(|oi| {
            self.st.ops[oi].free(now)
                && !self.st.direct.contains_key(&call)
                && self.st.connected.get(&call).is_none_or(|c| c.op != oi)
        });
        let (Some(oi), true) = (oi, free) else {
            self.out.push(AcdCommand::CancelRing {
                call,
                op: op.to_owned(),
            });
            return;
        };
        let qi = self
            .st
            .queues
            .iter()
            .position(|q| q.cfg.name == queue)
            .or_else(|| self.st.connected.get(&call).map(|c| c.queue))
            .unwrap_or(0);
        let Some(q) = self.st.queues.get(qi) else {
            self.out.push(AcdCommand::CancelRing {
                call,
                op: op.to_owned(),
            });
            return;
        };
        self.st.ops[oi].activity = Activity::Ringing { call };
        self.st.direct.insert(call, (oi, qi, now));
        self.out.push(AcdCommand::Ring {
            call,
            op: op.to_owned(),
            queue: q.cfg.name.clone(),
            timeout: q.cfg.ring_timeout,
        });
    }

    /// The operator rung by name answered: the first operator's part
    /// ends, the new one's starts.
    fn direct_answered(&mut self, call: CallId, now: Instant) {
        let Some((oi, qi, started)) = self.st.direct.remove(&call) else {
            return;
        };
        self.call_ended(call, None, now);
        let ring_time = now.saturating_duration_since(started);
        self.start_talk(call, oi, qi, Duration::ZERO, None, ring_time, now);
    }

    fn direct_failed(&mut self, call: CallId, reason: RingFailure, now: Instant) {
        let Some((oi, qi, started)) = self.st.direct.remove(&call) else {
            return;
        };
        if self.st.ops[oi].activity == (Activity::Ringing { call }) {
            self.st.ops[oi].activity = Activity::Idle;
        }
        self.log(
            qi,
            Some(call),
            Some(oi),
            QueueEventKind::RingNoAnswer {
                rang: now.saturating_duration_since(started),
                reason,
            },
            now,
        );
    }

    /// The call ended while an operator was being rung for it by name.
    fn drop_direct(&mut self, call: CallId, now: Instant) {
        if self.st.direct.contains_key(&call) {
            self.direct_failed(call, RingFailure::NoAnswer, now);
        }
    }

    fn pause(&mut self, oi: usize, reason: String, now: Instant) {
        let o = &mut self.st.ops[oi];
        if o.paused.as_deref() == Some(reason.as_str()) {
            return;
        }
        o.paused = Some(reason.clone());
        o.no_answer_streak = 0;
        self.log_op(oi, QueueEventKind::Pause { reason }, now);
    }

    // ---- matching ----

    /// Offer every free operator to the best waiting caller it may serve.
    fn dispatch(&mut self, now: Instant) {
        if !self.st.ops.iter().any(|o| o.free(now)) {
            return;
        }
        // The callers being rung, found from the operators (a handful)
        // rather than by walking every waiting caller.
        let mut ringing: Vec<CallId> = self
            .st
            .ops
            .iter()
            .filter_map(|o| match o.activity {
                Activity::Ringing { call } => Some(call),
                _ => None,
            })
            .collect();
        ringing.sort_unstable();
        ringing.dedup();
        let nq = self.st.queues.len();
        let mut unrung: Vec<usize> = self.st.queues.iter().map(|q| q.waiting.len()).collect();
        for call in &ringing {
            if let Some(c) = self.st.callers.get(call) {
                unrung[c.queue] = unrung[c.queue].saturating_sub(1);
            }
        }
        // Across queues: priority, then who has waited longest. Each line is
        // already in that order (its key is priority then arrival number),
        // so the best caller overall is the best of the lines' heads.
        let mut next = vec![0usize; nq];
        loop {
            let mut best: Option<(&Place, usize)> = None;
            for (qi, i) in next.iter_mut().enumerate() {
                let line = &self.st.queues[qi].waiting;
                while *i < line.len()
                    && self
                        .st
                        .callers
                        .get(&line[*i].call)
                        .is_none_or(|c| !c.rings.is_empty())
                {
                    *i += 1;
                }
                if let Some(p) = line.get(*i) {
                    if best.is_none_or(|(b, _)| p.key < b.key) {
                        best = Some((p, qi));
                    }
                }
            }
            let Some((&Place { call, joined, .. }, qi)) = best else {
                break;
            };
            next[qi] += 1;
            let share = unrung[qi];
            unrung[qi] = unrung[qi].saturating_sub(1);
            let waited = now.saturating_duration_since(joined);
            for oi in self.pick(qi, waited, share, now) {
                self.ring(call, oi, now);
            }
            if !self.st.ops.iter().any(|o| o.free(now)) {
                return;
            }
        }
        // Ring-all callers already ringing also take operators freed since,
        // the caller with the fewest rings first.
        let mut extend: Vec<(usize, Key, Instant, CallId, usize)> = ringing
            .iter()
            .filter_map(|call| self.st.callers.get(call).map(|c| (call, c)))
            .filter(|(_, c)| {
                !c.rings.is_empty() && self.st.queues[c.queue].cfg.strategy == Strategy::RingAll
            })
            .map(|(call, c)| (c.rings.len(), c.key, c.joined, *call, c.queue))
            .collect();
        extend.sort_unstable();
        let mut left = vec![0usize; nq];
        for (.., qi) in &extend {
            left[*qi] += 1;
        }
        for (_, _, joined, call, qi) in extend {
            let share = left[qi];
            left[qi] -= 1;
            let waited = now.saturating_duration_since(joined);
            for oi in self.pick(qi, waited, share, now) {
                self.ring(call, oi, now);
            }
        }
    }

    /// The operator(s) to ring for a caller of queue `qi` who waited `waited`;
    /// `share`: callers of this queue still to be matched in this pass,
    /// this one included (ring-all leaves operators for them).
    fn pick(&mut self, qi: usize, waited: Duration, share: usize, now: Instant) -> Vec<usize> {
        let ops = &self.st.ops;
        let q = &mut self.st.queues[qi];
        let allowed = q.cfg.allowed_penalty(waited);
        let cands: Vec<usize> = (0..q.members.len())
            .filter(|&mi| q.members[mi].penalty <= allowed && ops[q.members[mi].op].free(now))
            .collect();
        if cands.is_empty() {
            return Vec::new();
        }
        let idle = |mi: usize| ops[q.members[mi].op].idle_since;
        if q.cfg.strategy == Strategy::WeightedRandom {
            let weights: Vec<f64> = cands
                .iter()
                .map(|&mi| 1.0 / (1.0 + q.members[mi].penalty as f64))
                .collect();
            let total: f64 = weights.iter().sum();
            let mut x = q.rng.random_range(0.0..total);
            for (mi, w) in cands.iter().zip(&weights) {
                if x < *w {
                    return vec![q.members[*mi].op];
                }
                x -= w;
            }
            return vec![q.members[*cands.last().expect("cands is not empty")].op];
        }
        let best = cands
            .iter()
            .map(|&mi| q.members[mi].penalty)
            .min()
            .expect("cands is not empty");
        let mut tier: Vec<usize> = cands
            .into_iter()
            .filter(|&mi| q.members[mi].penalty == best)
            .collect();
        let chosen = match q.cfg.strategy {
            Strategy::RingAll => {
                tier.sort_by_key(|&mi| (idle(mi), mi));
                let take = tier.len().div_ceil(share.max(1));
                tier.truncate(take);
                return tier.into_iter().map(|mi| q.members[mi].op).collect();
            }
            Strategy::LongestIdle | Strategy::RingProgressive => *tier
                .iter()
                .min_by_key(|&&mi| (idle(mi), mi))
                .expect("tier is not empty"),
            Strategy::Linear => tier[0],
            Strategy::RoundRobin => {
                let start = q.rr_next;
                let c = *tier.iter().find(|&&mi| mi >= start).unwrap_or(&tier[0]);
                q.rr_next = c + 1;
                c
            }
            Strategy::FewestCalls => *tier
                .iter()
                .min_by_key(|&&mi| (q.members[mi].calls, idle(mi), mi))
                .expect("tier is not empty"),
            Strategy::LeastTalkTime => *tier
                .iter()
                .min_by_key(|&&mi| (q.members[mi].talk, idle(mi), mi))
                .expect("tier is not empty"),
            Strategy::Random => tier[q.rng.random_range(0..tier.len())],
            Strategy::WeightedRandom => unreachable!("handled above"),
        };
        vec![q.members[chosen].op]
    }

    /// Ring-progressive callers still ringing get one more operator per step.
    fn progressive_steps(&mut self, due: &[CallId], now: Instant) {
        let mut due: Vec<(Key, Instant, CallId)> = due
            .iter()
            .filter_map(|call| self.st.callers.get(call).map(|c| (call, c)))
            .filter(|(_, c)| c.next_progressive.is_some_and(|t| t <= now))
            .map(|(call, c)| (c.key, c.joined, *call))
            .collect();
        due.sort_unstable();
        for (_, joined, call) in due {
            let Some(c) = self.st.callers.get_mut(&call) else {
                continue;
            };
            if c.rings.is_empty() {
                c.next_progressive = None;
                continue;
            }
            let qi = c.queue;
            c.next_progressive = Some(now + self.st.queues[qi].cfg.ring_progressive_step);
            arm(&mut self.st.timers, call, c.next_progressive);
            let waited = now.saturating_duration_since(joined);
            for oi in self.pick(qi, waited, 1, now) {
                self.ring(call, oi, now);
            }
        }
    }

    // ---- estimates and announcements ----

    /// Forecasts for the first `upto` callers of queue `qi`, in order (a
    /// caller's forecast depends only on those ahead of them).
    pub(crate) fn estimates(&self, qi: usize, upto: usize, now: Instant) -> Option<Vec<Forecast>> {
        let q = &self.st.queues[qi];
        let servers = self.servers(qi, now);
        let callers: Vec<(Duration, i32)> = q
            .waiting
            .iter()
            .take(upto)
            .map(|p| (now.saturating_duration_since(p.joined), p.key.0.0))
            .collect();
        q.est.estimate(&servers, &callers, now)
    }

    /// The estimator's view of queue `qi`'s staffed members right now.
    pub(crate) fn servers(&self, qi: usize, now: Instant) -> Vec<ServerStatus> {
        self.st.queues[qi]
            .members
            .iter()
            .map(|mb| &self.st.ops[mb.op])
            .filter(|o| o.staffed())
            .map(|o| match o.activity {
                Activity::Idle | Activity::Ringing { .. } => ServerStatus::Free,
                Activity::WrapUp { until } => ServerStatus::WrapUp {
                    remaining: until.saturating_duration_since(now),
                },
                Activity::OnCall { call } => ServerStatus::OnCall {
                    elapsed: self
                        .st
                        .connected
                        .get(&call)
                        .map(|c| now.saturating_duration_since(c.answered))
                        .unwrap_or_default(),
                },
            })
            .collect()
    }

    fn periodic_announcements(&mut self, due: &[CallId], now: Instant) {
        // (key, call, queue, position) of every caller whose announcement
        // is due; announcing moves nobody, so positions hold for the batch.
        let mut due: Vec<(Key, CallId, usize, usize)> = due
            .iter()
            .filter_map(|call| {
                let c = self.st.callers.get(call)?;
                c.next_announce.filter(|t| *t <= now)?;
                Some((c.key, *call, c.queue, self.position(*call)?))
            })
            .collect();
        if due.is_empty() {
            return;
        }
        due.sort_unstable();
        // Each queue's estimates are needed down to its last due caller.
        let mut upto: HashMap<usize, usize> = HashMap::new();
        for &(_, _, qi, pos) in &due {
            let deepest = upto.entry(qi).or_default();
            *deepest = (*deepest).max(pos);
        }
        let mut cache: HashMap<usize, Option<Vec<Forecast>>> = HashMap::new();
        for (_, call, qi, pos) in due {
            if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(qi) {
                slot.insert(self.estimates(qi, upto[&qi], now));
            }
            let forecast = cache
                .get(&qi)
                .and_then(|e| e.as_ref())
                .and_then(|e| e.get(pos - 1).copied());
            let estimate = forecast.map(|f| f.duration());
            let cfg = &self.st.queues[qi].cfg;
            let (interval, min_gap) = (cfg.announce_interval, cfg.min_announce_interval);
            let max_wait = cfg.max_wait;
            let Some(c) = self.st.callers.get_mut(&call) else {
                continue;
            };
            // What the queue still allows this caller.
            let allowed =
                max_wait.map(|m| m.saturating_sub(now.saturating_duration_since(c.joined)));
            let wait = forecast.map(|f| estimator::speech(&f, allowed));
            c.last_estimate = estimate;
            c.next_announce = interval.map(|i| now + i);
            arm(&mut self.st.timers, call, c.next_announce);
            if !c.rings.is_empty() {
                continue;
            }
            // Repeat when the position or the words would change, or after
            // `min_gap`: compared as said, so a figure that moves within one
            // spoken minute stays silent.
            let speak = match c.last_announce {
                None => true,
                Some((at, p, s)) => {
                    p != pos || s != wait || now.saturating_duration_since(at) >= min_gap
                }
            };
            if speak {
                c.last_announce = Some((now, pos, wait));
                self.out.push(AcdCommand::Announce {
                    call,
                    position: pos,
                    estimate,
                    wait,
                });
            }
        }
    }

    // ---- housekeeping ----

    fn is_empty(&self, qi: usize, rule: EmptyWhen, now: Instant) -> bool {
        let ops = self.st.queues[qi]
            .members
            .iter()
            .map(|mb| &self.st.ops[mb.op]);
        match rule {
            EmptyWhen::Never => false,
            EmptyWhen::NoMembers => !ops.clone().any(|o| o.logged_in),
            EmptyWhen::Unstaffed => !ops.clone().any(|o| o.staffed()),
            EmptyWhen::NoneFree => !ops.clone().any(|o| o.free(now)),
        }
    }

    /// Apply `leave_when_empty`, report operator state changes, refresh gauges.
    fn finish(&mut self, now: Instant) -> Vec<AcdCommand> {
        for qi in 0..self.st.queues.len() {
            let rule = self.st.queues[qi].cfg.leave_when_empty;
            if rule != EmptyWhen::Never && self.is_empty(qi, rule, now) {
                let leaving: Vec<CallId> = self.st.queues[qi]
                    .waiting
                    .iter()
                    .map(|p| p.call)
                    .filter(|call| {
                        self.st
                            .callers
                            .get(call)
                            .is_some_and(|c| c.rings.is_empty())
                    })
                    .collect();
                for call in leaving {
                    self.exit(call, ExitReason::Empty, now);
                }
            }
        }
        for o in &mut self.st.ops {
            let s = o.state();
            if s != o.shown {
                o.shown = s.clone();
                o.shown_since = Some(now);
                self.out.push(AcdCommand::OperatorState {
                    op: o.id.clone(),
                    state: s,
                });
            }
        }
        while let Some(Reverse((t, call))) = self.st.timers.peek().copied() {
            let live = self
                .st
                .callers
                .get(&call)
                .is_some_and(|c| c.timers().any(|x| x == t));
            if live {
                break;
            }
            self.st.timers.pop();
        }
        std::mem::take(&mut self.out)
    }

    /// The shell's first clock reading, before any event: operators hold
    /// their start state since `now` (the admin view's time in state).
    pub fn start(&mut self, now: Instant) {
        for o in &mut self.st.ops {
            o.shown_since.get_or_insert(now);
        }
    }

    /// The figures for metrics: counts since start, the samples measured
    /// since the last take (they are handed over once), and every queue's
    /// gauges at `now`. The shell takes them after each event or timer and
    /// once a second, so a wait grows on the dashboard while nothing happens.
    pub fn take_figures(&mut self, now: Instant) -> AcdFigures {
        let queues = (0..self.st.queues.len())
            .map(|qi| {
                let gauges = self.gauges(qi, now);
                let q = &mut self.st.queues[qi];
                QueueFigures {
                    queue: q.cfg.name.clone(),
                    counts: q.counts.clone(),
                    samples: std::mem::take(&mut q.samples),
                    gauges,
                }
            })
            .collect();
        AcdFigures { queues }
    }

    /// Queue `qi`'s gauges at `now`.
    fn gauges(&self, qi: usize, now: Instant) -> QueueGauges {
        let q = &self.st.queues[qi];
        // The oldest caller heads one of the priority groups of the line.
        let mut oldest = Duration::ZERO;
        let mut i = 0;
        while let Some(p) = q.waiting.get(i) {
            oldest = oldest.max(now.saturating_duration_since(p.joined));
            i = q.waiting.partition_point(|x| x.key.0 <= p.key.0);
        }
        let mut operators = [0usize; OperatorState::LABELS.len()];
        let (mut busy, mut staffed) = (0usize, 0usize);
        for mb in &q.members {
            let o = &self.st.ops[mb.op];
            let label = o.shown.label();
            if let Some(i) = OperatorState::LABELS.iter().position(|l| *l == label) {
                operators[i] += 1;
            }
            if o.staffed() || o.activity != Activity::Idle {
                staffed += usize::from(o.logged_in);
                busy += usize::from(o.logged_in && o.activity != Activity::Idle);
            }
        }
        QueueGauges {
            wait_alert: q.cfg.wait_alert,
            callers_waiting: q.waiting.len(),
            oldest_wait: oldest,
            service_level: q.stats.service_level(),
            abandon_ratio: q.stats.abandon_ratio(),
            prediction_mae: q.stats.prediction_mae(),
            range_coverage: q.stats.range_coverage(),
            estimated_wait: q.estimated_wait,
            operators,
            occupancy: (staffed > 0).then(|| busy as f64 / staffed as f64),
        }
    }

    fn outcome(&mut self, qi: usize, outcome: Outcome) {
        self.st.queues[qi].counts.left(outcome);
    }

    fn op_index(&self, id: &str) -> Option<usize> {
        let found = self.st.op_index.get(id).copied();
        if found.is_none() {
            tracing::debug!(op = id, "event for an unknown operator ignored");
        }
        found
    }

    fn log(
        &mut self,
        qi: usize,
        call: Option<CallId>,
        oi: Option<usize>,
        kind: QueueEventKind,
        now: Instant,
    ) {
        self.out.push(AcdCommand::Log(QueueEvent {
            at: now,
            queue: self.st.queues[qi].cfg.name.clone(),
            call,
            op: oi.map(|i| self.st.ops[i].id.clone()),
            kind,
        }));
    }

    /// Operator events are logged once per queue the operator serves, as
    /// Asterisk does.
    fn log_op(&mut self, oi: usize, kind: QueueEventKind, now: Instant) {
        let queues: Vec<usize> = self.st.ops[oi]
            .memberships
            .iter()
            .map(|(qi, _)| *qi)
            .collect();
        for qi in queues {
            self.log(qi, None, Some(oi), kind.clone(), now);
        }
    }
}

/// Record that `call` has a timer at `at` (see `State::timers`).
fn arm(timers: &mut BinaryHeap<Reverse<(Instant, CallId)>>, call: CallId, at: Option<Instant>) {
    if let Some(t) = at {
        timers.push(Reverse((t, call)));
    }
}

/// The estimate as spoken: whole minutes rounded to the nearest, at least
/// one — the same rule the speech uses (`estimator::heard_minutes`), so the
/// repeat rule and the caller agree.
/// Arrival numbers start this high so that callers put back at the front
/// of their tier (a failed transfer) can take numbers below the head's.
const FRONT_ROOM: u64 = 1 << 40;

pub fn spoken_minutes(d: Duration) -> u64 {
    u64::from(estimator::heard_minutes(d))
}

/// What a queue's history says, to seed the estimator and the service-level
/// counters on start (the records room rebuilds it from stored queue events,
/// so a restart does not forget what the queue has learnt).
#[derive(Debug, Clone, Default)]
pub struct QueueHistory {
    pub answered: u64,
    pub abandoned: u64,
    pub answered_within_threshold: u64,
    pub handle_times: Vec<Duration>,
    pub answered_waits: Vec<Duration>,
    pub abandon_waits: Vec<Duration>,
    /// Actual − announced wait of answered callers, in seconds.
    pub prediction_errors: Vec<f64>,
}

impl Acd {
    /// Seeds queue `name` from its history; unknown queues are ignored.
    /// Call before the first event.
    pub fn seed(&mut self, name: &str, h: &QueueHistory) {
        let Some(q) = self.st.queues.iter_mut().find(|q| q.cfg.name == name) else {
            return;
        };
        for t in &h.handle_times {
            q.est.record_talk(*t);
        }
        for w in &h.answered_waits {
            q.est.record_wait(*w, false);
        }
        for w in &h.abandon_waits {
            q.est.record_wait(*w, true);
        }
        q.stats.answered += h.answered;
        q.stats.abandoned += h.abandoned;
        q.stats.answered_within_sl += h.answered_within_threshold;
        q.stats.wait_answered_total += h.answered_waits.iter().sum::<Duration>();
        q.stats.abs_error_total += h.prediction_errors.iter().map(|e| e.abs()).sum::<f64>();
        q.stats.scored += h.prediction_errors.len() as u64;
    }
}
