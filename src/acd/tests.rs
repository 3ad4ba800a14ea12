//! Behaviour of the ACD core in virtual time: strategies, penalties,
//! wrap-up, pauses, rings, exits, announcements and a randomised order check.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;

fn s(x: u64) -> Duration {
    Duration::from_secs(x)
}

fn op(id: &str, queues: &[(&str, u32)]) -> OperatorConfig {
    OperatorConfig {
        id: id.into(),
        display_name: None,
        password: Some("pw".into()),
        static_uri: None,
        queues: queues
            .iter()
            .map(|(q, p)| Membership {
                name: (*q).into(),
                penalty: *p,
            })
            .collect(),
    }
}

/// Drives an `Acd` in virtual time and keeps every command it produced.
struct H {
    acd: Acd,
    now: Instant,
    log: Vec<AcdCommand>,
}

impl H {
    fn new(queues: Vec<QueueConfig>, ops: Vec<OperatorConfig>) -> Self {
        let acd = Acd::new(queues, ops)
            .expect("valid test config")
            .with_seed(7);
        H {
            acd,
            now: Instant::now(),
            log: Vec::new(),
        }
    }

    /// One queue "q" with `strategy`, operators logged in in order.
    fn simple(strategy: Strategy, ops: &[&str]) -> Self {
        let mut q = QueueConfig::named("q");
        q.strategy = strategy;
        q.retry_delay = Duration::ZERO;
        Self::with_queue(q, ops)
    }

    fn with_queue(q: QueueConfig, ops: &[&str]) -> Self {
        let name = q.name.clone();
        let mut h = H::new(
            vec![q],
            ops.iter().map(|id| op(id, &[(name.as_str(), 0)])).collect(),
        );
        for id in ops {
            h.ev(AcdEvent::OperatorOnline { op: (*id).into() });
            h.advance(1);
        }
        h
    }

    fn ev(&mut self, e: AcdEvent) -> Vec<AcdCommand> {
        let out = self.acd.handle(e, self.now);
        self.log.extend(out.iter().cloned());
        out
    }

    /// Move the clock forward, firing every timer on the way in order.
    fn advance(&mut self, secs: u64) -> Vec<AcdCommand> {
        self.advance_to(self.now + s(secs))
    }

    fn advance_to(&mut self, until: Instant) -> Vec<AcdCommand> {
        let mut out = Vec::new();
        while let Some(t) = self.acd.poll_timeout() {
            if t > until {
                break;
            }
            assert!(t >= self.now || t == self.now, "timer in the past");
            self.now = t.max(self.now);
            let o = self.acd.handle_timeout(self.now);
            out.extend(o);
            // A timer that stays due would spin the shell.
            assert!(
                self.acd.poll_timeout().is_none_or(|n| n > self.now),
                "timer still due after handle_timeout"
            );
        }
        self.now = until;
        self.log.extend(out.iter().cloned());
        out
    }

    fn join(&mut self, call: CallId, priority: i32) -> Vec<AcdCommand> {
        self.join_q(call, "q", priority)
    }

    fn join_q(&mut self, call: CallId, queue: &str, priority: i32) -> Vec<AcdCommand> {
        self.ev(AcdEvent::CallerJoined {
            call,
            queue: queue.into(),
            priority,
        })
    }

    fn answer(&mut self, call: CallId, op: &str) -> Vec<AcdCommand> {
        self.ev(AcdEvent::RingAnswered {
            call,
            op: op.into(),
        })
    }

    fn end(&mut self, call: CallId, op: &str) -> Vec<AcdCommand> {
        self.ev(AcdEvent::CallEnded {
            call,
            op: op.into(),
            by: Party::Operator,
        })
    }

    /// Ring, answer, talk `talk` seconds, hang up.
    fn serve(&mut self, call: CallId, talk: u64) -> String {
        let out = self.join(call, 0);
        let r = rings(&out);
        assert_eq!(r.len(), 1, "expected one ring for {call}: {out:?}");
        let op = r[0].1.clone();
        self.answer(call, &op);
        self.advance(talk);
        self.end(call, &op);
        op
    }

    fn state(&self, op: &str) -> OperatorState {
        self.acd.operator_state(op).expect("known operator")
    }
}

fn rings(cmds: &[AcdCommand]) -> Vec<(CallId, String)> {
    cmds.iter()
        .filter_map(|c| match c {
            AcdCommand::Ring { call, op, .. } => Some((*call, op.clone())),
            _ => None,
        })
        .collect()
}

fn cancels(cmds: &[AcdCommand]) -> Vec<(CallId, String)> {
    cmds.iter()
        .filter_map(|c| match c {
            AcdCommand::CancelRing { call, op } => Some((*call, op.clone())),
            _ => None,
        })
        .collect()
}

fn exits(cmds: &[AcdCommand]) -> Vec<(CallId, ExitReason)> {
    cmds.iter()
        .filter_map(|c| match c {
            AcdCommand::Exit { call, reason } => Some((*call, *reason)),
            _ => None,
        })
        .collect()
}

fn announces(cmds: &[AcdCommand]) -> Vec<(CallId, usize, Option<Duration>)> {
    cmds.iter()
        .filter_map(|c| match c {
            AcdCommand::Announce {
                call,
                position,
                estimate,
                ..
            } => Some((*call, *position, *estimate)),
            _ => None,
        })
        .collect()
}

fn logs(cmds: &[AcdCommand]) -> Vec<&QueueEvent> {
    cmds.iter()
        .filter_map(|c| match c {
            AcdCommand::Log(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn log_names(cmds: &[AcdCommand]) -> Vec<&'static str> {
    logs(cmds).iter().map(|e| e.kind.name()).collect()
}

// ---- strategies ----

#[test]
fn longest_idle_picks_the_operator_whose_last_call_ended_first() {
    let mut h = H::simple(Strategy::LongestIdle, &["a", "b", "c"]);
    // Nobody has had a call: login order decides (a logged in first).
    assert_eq!(h.serve(1, 10), "a");
    assert_eq!(h.serve(2, 10), "b");
    assert_eq!(h.serve(3, 10), "c");
    // a's call ended longest ago.
    assert_eq!(h.serve(4, 10), "a");
}

#[test]
fn round_robin_resumes_after_the_last_operator_rung() {
    let mut h = H::simple(Strategy::RoundRobin, &["a", "b", "c"]);
    let got: Vec<String> = (1..=5).map(|c| h.serve(c, 5)).collect();
    assert_eq!(got, ["a", "b", "c", "a", "b"]);
    // The turn passes to c; with c busy it wraps round to a.
    h.join(10, 0);
    h.answer(10, "c");
    let r = rings(&h.join(11, 0));
    assert_eq!(r, [(11, "a".to_string())]);
}

#[test]
fn linear_always_starts_from_the_top() {
    let mut h = H::simple(Strategy::Linear, &["a", "b", "c"]);
    assert_eq!(h.serve(1, 5), "a");
    assert_eq!(h.serve(2, 5), "a");
    h.join(3, 0);
    h.answer(3, "a");
    assert_eq!(rings(&h.join(4, 0)), [(4, "b".to_string())]);
}

#[test]
fn fewest_calls_and_least_talk_time_balance_work() {
    let mut h = H::simple(Strategy::FewestCalls, &["a", "b"]);
    assert_eq!(h.serve(1, 100), "a");
    assert_eq!(h.serve(2, 5), "b");
    assert_eq!(h.serve(3, 5), "a");
    assert_eq!(h.serve(4, 5), "b");

    let mut h = H::simple(Strategy::LeastTalkTime, &["a", "b"]);
    assert_eq!(h.serve(1, 100), "a");
    assert_eq!(h.serve(2, 5), "b");
    // b has 5 s of talk, a has 100 s.
    assert_eq!(h.serve(3, 5), "b");
    assert_eq!(h.serve(4, 5), "b");
}

#[test]
fn random_is_seeded_and_spreads() {
    let run = |seed: u64| {
        let mut q = QueueConfig::named("q");
        q.strategy = Strategy::Random;
        q.seed = Some(seed);
        q.retry_delay = Duration::ZERO;
        let mut h = H::with_queue(q, &["a", "b", "c", "d"]);
        (1..=40).map(|c| h.serve(c, 1)).collect::<Vec<_>>()
    };
    let first = run(1);
    assert_eq!(first, run(1), "same seed, same choices");
    assert_ne!(first, run(2));
    for id in ["a", "b", "c", "d"] {
        assert!(first.iter().filter(|x| *x == id).count() >= 3, "{first:?}");
    }
}

#[test]
fn weighted_random_prefers_low_penalty_but_uses_all() {
    let mut q = QueueConfig::named("q");
    q.strategy = Strategy::WeightedRandom;
    q.retry_delay = Duration::ZERO;
    let mut h = H::new(vec![q], vec![op("lo", &[("q", 0)]), op("hi", &[("q", 4)])]);
    h.ev(AcdEvent::OperatorOnline { op: "lo".into() });
    h.ev(AcdEvent::OperatorOnline { op: "hi".into() });
    let got: Vec<String> = (1..=300).map(|c| h.serve(c, 1)).collect();
    let lo = got.iter().filter(|x| *x == "lo").count();
    // Weights 1 and 1/5: expect about 250 of 300.
    assert!((220..=280).contains(&lo), "lo chosen {lo} times");
}

#[test]
fn ring_all_rings_everyone_and_cancels_the_losers() {
    let mut h = H::simple(Strategy::RingAll, &["a", "b", "c"]);
    let out = h.join(1, 0);
    let mut r: Vec<String> = rings(&out).into_iter().map(|(_, o)| o).collect();
    r.sort();
    assert_eq!(r, ["a", "b", "c"]);
    assert!(
        announces(&out).is_empty(),
        "a caller rung at once is not announced"
    );
    let out = h.answer(1, "b");
    let mut c: Vec<String> = cancels(&out).into_iter().map(|(_, o)| o).collect();
    c.sort();
    assert_eq!(c, ["a", "c"]);
    assert!(out.contains(&AcdCommand::Connect {
        call: 1,
        op: "b".into()
    }));
    assert_eq!(
        log_names(&out)
            .iter()
            .filter(|n| **n == "RINGCANCELED")
            .count(),
        2
    );
    assert_eq!(h.state("b"), OperatorState::OnCall);
    assert_eq!(h.state("a"), OperatorState::Available);
    // A late answer from a loser is refused: its leg must be hung up.
    let out = h.answer(1, "a");
    assert_eq!(cancels(&out), [(1, "a".to_string())]);
    assert_eq!(h.state("a"), OperatorState::Available);
}

#[test]
fn ring_all_shares_free_operators_between_waiting_callers() {
    let mut h = H::simple(Strategy::RingAll, &["a", "b", "c", "d", "e"]);
    h.ev(AcdEvent::Pause {
        op: "a".into(),
        reason: "x".into(),
    });
    for op in ["b", "c", "d", "e"] {
        h.ev(AcdEvent::Pause {
            op: op.into(),
            reason: "x".into(),
        });
    }
    h.join(1, 0);
    h.join(2, 0);
    for op in ["a", "b", "c", "d", "e"] {
        h.ev(AcdEvent::Unpause { op: op.into() });
    }
    let r = rings(&h.log);
    let for1 = r.iter().filter(|(c, _)| *c == 1).count();
    let for2 = r.iter().filter(|(c, _)| *c == 2).count();
    assert!(for1 >= 1 && for2 >= 1, "{r:?}");
    assert_eq!(for1 + for2, 5);
}

#[test]
fn ring_progressive_adds_one_operator_per_step() {
    let mut q = QueueConfig::named("q");
    q.strategy = Strategy::RingProgressive;
    q.ring_progressive_step = s(5);
    q.ring_timeout = s(60);
    let mut h = H::with_queue(q, &["a", "b", "c"]);
    let out = h.join(1, 0);
    assert_eq!(rings(&out), [(1, "a".to_string())]);
    assert_eq!(rings(&h.advance(4)), []);
    assert_eq!(rings(&h.advance(1)), [(1, "b".to_string())]);
    assert_eq!(rings(&h.advance(5)), [(1, "c".to_string())]);
    assert_eq!(rings(&h.advance(20)), []);
    let out = h.answer(1, "c");
    let mut c: Vec<String> = cancels(&out).into_iter().map(|(_, o)| o).collect();
    c.sort();
    assert_eq!(c, ["a", "b"]);
}

// ---- penalties ----

#[test]
fn penalty_tiers_then_widening_after_the_configured_wait() {
    let mut q = QueueConfig::named("q");
    q.penalty_steps = vec![
        PenaltyStep {
            after: s(30),
            max_penalty: 1,
        },
        PenaltyStep {
            after: s(90),
            max_penalty: 5,
        },
    ];
    let mut h = H::new(
        vec![q],
        vec![
            op("p0", &[("q", 0)]),
            op("p1", &[("q", 1)]),
            op("p5", &[("q", 5)]),
        ],
    );
    for id in ["p0", "p1", "p5"] {
        h.ev(AcdEvent::OperatorOnline { op: id.into() });
    }
    // p0 free: taken first.
    assert_eq!(rings(&h.join(1, 0)), [(1, "p0".to_string())]);
    h.answer(1, "p0");
    // p0 busy: caller 2 may not reach p1 or p5 yet.
    assert_eq!(rings(&h.join(2, 0)), []);
    assert_eq!(rings(&h.advance(29)), []);
    assert_eq!(rings(&h.advance(1)), [(2, "p1".to_string())]);
    h.answer(2, "p1");
    let out = h.join(3, 0);
    assert_eq!(rings(&out), []);
    assert_eq!(rings(&h.advance(89)), []);
    assert_eq!(rings(&h.advance(1)), [(3, "p5".to_string())]);
}

#[test]
fn without_steps_penalty_only_orders() {
    let mut h = H::new(
        vec![QueueConfig::named("q")],
        vec![op("hi", &[("q", 3)]), op("lo", &[("q", 0)])],
    );
    h.ev(AcdEvent::OperatorOnline { op: "hi".into() });
    h.ev(AcdEvent::OperatorOnline { op: "lo".into() });
    assert_eq!(rings(&h.join(1, 0)), [(1, "lo".to_string())]);
    assert_eq!(rings(&h.join(2, 0)), [(2, "hi".to_string())]);
}

// ---- operator states ----

#[test]
fn wrapup_holds_the_operator_then_releases_to_the_waiting_caller() {
    let mut q = QueueConfig::named("q");
    q.wrapup = s(20);
    let mut h = H::with_queue(q, &["a"]);
    h.join(1, 0);
    h.answer(1, "a");
    assert_eq!(h.state("a"), OperatorState::OnCall);
    h.join(2, 0);
    let out = h.end(1, "a");
    assert!(out.contains(&AcdCommand::OperatorState {
        op: "a".into(),
        state: OperatorState::WrapUp
    }));
    assert_eq!(rings(&out), []);
    assert_eq!(rings(&h.advance(19)), []);
    let out = h.advance(1);
    assert_eq!(rings(&out), [(2, "a".to_string())]);
    assert_eq!(h.state("a"), OperatorState::Ringing);
}

#[test]
fn pause_and_unpause_with_reason_and_logs() {
    let mut h = H::simple(Strategy::LongestIdle, &["a"]);
    let out = h.ev(AcdEvent::Pause {
        op: "a".into(),
        reason: "lunch".into(),
    });
    assert_eq!(log_names(&out), ["PAUSE"]);
    assert_eq!(h.state("a"), OperatorState::Paused("lunch".into()));
    assert_eq!(rings(&h.join(1, 0)), []);
    let out = h.ev(AcdEvent::Unpause { op: "a".into() });
    assert!(log_names(&out).contains(&"UNPAUSE"));
    assert_eq!(rings(&out), [(1, "a".to_string())]);
    let snap = h.acd.operators_snapshot();
    assert_eq!(snap[0].state, "ringing");
}

#[test]
fn login_logoff_and_unreachable_phones() {
    let mut h = H::new(vec![QueueConfig::named("q")], vec![op("a", &[("q", 0)])]);
    assert_eq!(h.state("a"), OperatorState::LoggedOut);
    h.join(1, 0);
    let out = h.ev(AcdEvent::OperatorOnline { op: "a".into() });
    assert!(log_names(&out).contains(&"AGENTLOGIN"));
    assert_eq!(rings(&out), [(1, "a".to_string())]);
    // Logging off mid-ring cancels the ring; the caller stays.
    let out = h.ev(AcdEvent::OperatorOffline { op: "a".into() });
    assert_eq!(cancels(&out), [(1, "a".to_string())]);
    assert!(log_names(&out).contains(&"AGENTLOGOFF"));
    assert_eq!(h.state("a"), OperatorState::LoggedOut);
    h.ev(AcdEvent::OperatorOnline { op: "a".into() });
    h.ev(AcdEvent::RingFailed {
        call: 1,
        op: "a".into(),
        reason: RingFailure::Unreachable,
    });
    h.ev(AcdEvent::OperatorReachable {
        op: "a".into(),
        reachable: false,
    });
    assert_eq!(h.state("a"), OperatorState::Unreachable);
    assert_eq!(rings(&h.advance(30)), []);
    let out = h.ev(AcdEvent::OperatorReachable {
        op: "a".into(),
        reachable: true,
    });
    assert_eq!(rings(&out), [(1, "a".to_string())]);
    // Events for operators not in the config are ignored.
    assert!(
        h.ev(AcdEvent::OperatorOnline { op: "ghost".into() })
            .is_empty()
    );
}

#[test]
fn static_operators_start_logged_in() {
    let mut o = op("desk", &[("q", 0)]);
    o.static_uri = Some("sip:desk@10.0.0.5".into());
    let mut h = H::new(vec![QueueConfig::named("q")], vec![o]);
    assert_eq!(h.state("desk"), OperatorState::Available);
    assert_eq!(rings(&h.join(1, 0)), [(1, "desk".to_string())]);
}

#[test]
fn an_operator_in_two_queues_is_never_rung_twice() {
    let mut h = H::new(
        vec![QueueConfig::named("x"), QueueConfig::named("y")],
        vec![op("a", &[("x", 0), ("y", 0)])],
    );
    h.ev(AcdEvent::OperatorOnline { op: "a".into() });
    assert_eq!(rings(&h.join_q(1, "x", 0)), [(1, "a".to_string())]);
    assert_eq!(rings(&h.join_q(2, "y", 0)), []);
    h.answer(1, "a");
    assert_eq!(rings(&h.advance(60)), []);
    assert_eq!(h.state("a"), OperatorState::OnCall);
    let out = h.end(1, "a");
    assert_eq!(rings(&out), [(2, "a".to_string())]);
}

#[test]
fn across_queues_priority_then_longest_wait_wins() {
    let mut h = H::new(
        vec![QueueConfig::named("x"), QueueConfig::named("y")],
        vec![op("a", &[("x", 0), ("y", 0)])],
    );
    h.join_q(1, "x", 0);
    h.advance(5);
    h.join_q(2, "y", 0);
    h.join_q(3, "y", 2);
    let out = h.ev(AcdEvent::OperatorOnline { op: "a".into() });
    assert_eq!(rings(&out), [(3, "a".to_string())]);
}

// ---- rings that fail ----

#[test]
fn no_answer_tries_the_next_operator_and_the_caller_keeps_the_front() {
    let mut q = QueueConfig::named("q");
    q.ring_timeout = s(15);
    q.retry_delay = s(30);
    let mut h = H::with_queue(q, &["a", "b"]);
    // Both busy, two callers waiting.
    h.join(1, 0);
    h.answer(1, "a");
    h.join(2, 0);
    h.answer(2, "b");
    h.join(3, 0);
    h.join(4, 0);
    let out = h.end(1, "a");
    assert_eq!(rings(&out), [(3, "a".to_string())]);
    h.advance(5);
    let out = h.end(2, "b");
    assert_eq!(rings(&out), [(4, "b".to_string())]);
    // a does not answer: the core cancels at 15 s and keeps caller 3 first.
    h.advance(9);
    let out = h.advance(1);
    assert_eq!(cancels(&out), [(3, "a".to_string())]);
    assert!(log_names(&out).contains(&"RINGNOANSWER"));
    // Three seconds later b rejects caller 4.
    h.advance(3);
    let out = h.ev(AcdEvent::RingFailed {
        call: 4,
        op: "b".into(),
        reason: RingFailure::Busy,
    });
    assert_eq!(rings(&out), []);
    // Both in retry delay; when a's delay ends, caller 3 (front) gets it.
    let out = h.advance(27);
    assert_eq!(rings(&out), [(3, "a".to_string())]);
    let snap = &h.acd.queues_snapshot(h.now)[0];
    assert_eq!(snap.callers[0].call, 3);
    assert_eq!(snap.callers[0].ringing, ["a"]);
    assert_eq!(snap.callers[1].call, 4);
    let out = h.advance(3);
    assert_eq!(rings(&out), [(4, "b".to_string())]);
}

#[test]
fn retry_delay_before_ringing_the_same_operator_again() {
    let mut q = QueueConfig::named("q");
    q.ring_timeout = s(10);
    q.retry_delay = s(5);
    let mut h = H::with_queue(q, &["a"]);
    assert_eq!(rings(&h.join(1, 0)), [(1, "a".to_string())]);
    let out = h.advance(10);
    assert_eq!(rings(&out), []);
    assert_eq!(rings(&h.advance(4)), []);
    assert_eq!(rings(&h.advance(1)), [(1, "a".to_string())]);
}

#[test]
fn autopause_after_consecutive_unanswered_rings() {
    let mut q = QueueConfig::named("q");
    q.ring_timeout = s(10);
    q.retry_delay = Duration::ZERO;
    q.autopause_after = 2;
    let mut h = H::with_queue(q, &["a", "b"]);
    h.ev(AcdEvent::Pause {
        op: "b".into(),
        reason: "x".into(),
    });
    h.join(1, 0);
    h.advance(10);
    assert_eq!(h.state("a"), OperatorState::Ringing);
    let out = h.advance(10);
    assert_eq!(
        h.state("a"),
        OperatorState::Paused(AUTOPAUSE_REASON.to_string())
    );
    assert!(log_names(&out).contains(&"PAUSE"));
    // Only b remains, once unpaused.
    let out = h.ev(AcdEvent::Unpause { op: "b".into() });
    assert_eq!(rings(&out), [(1, "b".to_string())]);
}

#[test]
fn declines_do_not_autopause() {
    let mut q = QueueConfig::named("q");
    q.retry_delay = Duration::ZERO;
    q.autopause_after = 1;
    let mut h = H::with_queue(q, &["a"]);
    h.join(1, 0);
    let out = h.ev(AcdEvent::RingFailed {
        call: 1,
        op: "a".into(),
        reason: RingFailure::Declined,
    });
    // Rung again at once (no retry delay), not paused.
    assert_eq!(rings(&out), [(1, "a".to_string())]);
}

// ---- callers ----

#[test]
fn priorities_first_then_arrival_order() {
    let mut h = H::simple(Strategy::LongestIdle, &["a"]);
    h.ev(AcdEvent::Pause {
        op: "a".into(),
        reason: "x".into(),
    });
    h.join(1, 0);
    h.join(2, 5);
    h.join(3, 0);
    h.join(4, 5);
    let snap = &h.acd.queues_snapshot(h.now)[0];
    let order: Vec<CallId> = snap.callers.iter().map(|c| c.call).collect();
    assert_eq!(order, [2, 4, 1, 3]);
    h.ev(AcdEvent::Unpause { op: "a".into() });
    let mut served = Vec::new();
    for _ in 0..4 {
        let r = rings(&h.log);
        let (call, _) = r.last().expect("a ring").clone();
        served.push(call);
        h.answer(call, "a");
        h.end(call, "a");
    }
    assert_eq!(served, [2, 4, 1, 3]);
}

#[test]
fn exit_full_on_join() {
    let mut q = QueueConfig::named("q");
    q.max_len = 2;
    let mut h = H::with_queue(q, &[]);
    h.join(1, 0);
    h.join(2, 0);
    let out = h.join(3, 0);
    assert_eq!(exits(&out), [(3, ExitReason::Full)]);
    assert_eq!(log_names(&out), ["FULL"]);
    assert_eq!(h.acd.queues_snapshot(h.now)[0].callers.len(), 2);
}

#[test]
fn exit_timeout_after_max_wait_even_while_ringing() {
    let mut q = QueueConfig::named("q");
    q.max_wait = Some(s(60));
    q.ring_timeout = s(100);
    let mut h = H::with_queue(q, &["a"]);
    h.ev(AcdEvent::Pause {
        op: "a".into(),
        reason: "x".into(),
    });
    h.join(1, 0);
    h.advance(50);
    h.ev(AcdEvent::Unpause { op: "a".into() });
    assert_eq!(h.state("a"), OperatorState::Ringing);
    let out = h.advance(10);
    assert_eq!(exits(&out), [(1, ExitReason::Timeout)]);
    assert_eq!(cancels(&out), [(1, "a".to_string())]);
    assert!(log_names(&out).contains(&"EXITWITHTIMEOUT"));
    assert_eq!(h.state("a"), OperatorState::Available);
}

#[test]
fn exit_empty_on_join_and_when_the_queue_empties() {
    let mut q = QueueConfig::named("q");
    q.join_empty = EmptyWhen::Unstaffed;
    q.leave_when_empty = EmptyWhen::Unstaffed;
    let mut h = H::with_queue(q, &["a"]);
    h.ev(AcdEvent::Pause {
        op: "a".into(),
        reason: "x".into(),
    });
    let out = h.join(1, 0);
    assert_eq!(exits(&out), [(1, ExitReason::Empty)]);
    assert_eq!(log_names(&out), ["JOINEMPTY"]);
    h.ev(AcdEvent::Unpause { op: "a".into() });
    h.join(2, 0);
    h.answer(2, "a");
    // Busy is still staffed: callers may join and stay.
    assert!(exits(&h.join(3, 0)).is_empty());
    // The only operator logs off: waiting callers leave with Exit Empty.
    let out = h.ev(AcdEvent::OperatorOffline { op: "a".into() });
    assert_eq!(exits(&out), [(3, ExitReason::Empty)]);
    assert!(log_names(&out).contains(&"EXITEMPTY"));
}

#[test]
fn exit_with_key_only_for_exit_keys() {
    let mut q = QueueConfig::named("q");
    q.exit_keys = Some("0".into());
    let mut h = H::with_queue(q, &[]);
    h.join(1, 0);
    assert!(
        h.ev(AcdEvent::CallerPressedKey {
            call: 1,
            digit: '5'
        })
        .is_empty()
    );
    let out = h.ev(AcdEvent::CallerPressedKey {
        call: 1,
        digit: '0',
    });
    assert_eq!(exits(&out), [(1, ExitReason::Key('0'))]);
    assert_eq!(log_names(&out), ["EXITWITHKEY"]);
}

#[test]
fn abandonment_is_counted_with_its_wait() {
    let mut h = H::simple(Strategy::LongestIdle, &["a"]);
    h.join(1, 0);
    h.answer(1, "a");
    h.join(2, 0);
    h.advance(42);
    let out = h.ev(AcdEvent::CallerLeft { call: 2 });
    let l = logs(&out);
    assert_eq!(l.len(), 1);
    match &l[0].kind {
        QueueEventKind::Abandon {
            position, waited, ..
        } => {
            assert_eq!(*position, 1);
            assert_eq!(*waited, s(42));
        }
        other => panic!("unexpected {other:?}"),
    }
    let stats = &h.acd.queues_snapshot(h.now)[0].stats;
    assert_eq!(stats.abandoned, 1);
    assert_eq!(stats.abandon_ratio, Some(0.5));
    // A ringing caller who hangs up cancels the ring.
    h.join(3, 0);
    h.end(1, "a");
    let out = h.ev(AcdEvent::CallerLeft { call: 3 });
    assert_eq!(cancels(&out), [(3, "a".to_string())]);
    // Hanging up when connected completes the call instead.
    h.join(4, 0);
    h.answer(4, "a");
    let out = h.ev(AcdEvent::CallerLeft { call: 4 });
    assert_eq!(log_names(&out), ["COMPLETECALLER"]);
}

#[test]
fn no_head_of_line_blocking_every_free_operator_matched_in_one_event() {
    let ids: Vec<String> = (0..10).map(|i| format!("op{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut h = H::simple(Strategy::LongestIdle, &refs);
    for id in &ids {
        h.ev(AcdEvent::Pause {
            op: id.clone(),
            reason: "meeting".into(),
        });
    }
    for c in 1..=30 {
        h.join(c, 0);
    }
    // Everyone comes back in one admin action... one event each, but the
    // first already gets a ring, and the tenth leaves nobody idle.
    let mut all = Vec::new();
    for id in &ids {
        let out = h.ev(AcdEvent::Unpause { op: id.clone() });
        assert_eq!(rings(&out).len(), 1);
        all.extend(rings(&out));
    }
    let mut calls: Vec<CallId> = all.iter().map(|(c, _)| *c).collect();
    calls.sort();
    assert_eq!(calls, (1..=10).collect::<Vec<_>>());
    // Ten operators free in one event (wrap-up ends together): all matched.
    for (call, op) in all.clone() {
        h.answer(call, &op);
    }
    let mut q = QueueConfig::named("w");
    q.wrapup = s(30);
    let mut h2 = H::with_queue(q, &refs);
    for c in 1..=10u64 {
        let r = rings(&h2.join_q(c, "w", 0));
        h2.answer(c, &r[0].1);
    }
    for c in 11..=40u64 {
        h2.join_q(c, "w", 0);
    }
    for (c, id) in (1..=10u64).zip(&ids) {
        h2.end(c, id);
    }
    let out = h2.advance(30);
    let r = rings(&out);
    assert_eq!(r.len(), 10, "{out:?}");
    let mut calls: Vec<CallId> = r.iter().map(|(c, _)| *c).collect();
    calls.sort();
    assert_eq!(calls, (11..=20).collect::<Vec<_>>());
}

#[test]
fn a_caller_who_cannot_use_the_free_operator_does_not_block_others() {
    let mut q = QueueConfig::named("q");
    q.penalty_steps = vec![PenaltyStep {
        after: s(600),
        max_penalty: 9,
    }];
    let mut h = H::new(
        vec![q, QueueConfig::named("other")],
        vec![op("a", &[("q", 9), ("other", 0)])],
    );
    h.join_q(1, "q", 10);
    h.join_q(2, "other", 0);
    let out = h.ev(AcdEvent::OperatorOnline { op: "a".into() });
    assert_eq!(rings(&out), [(2, "a".to_string())]);
}

// ---- announcements and estimates ----

#[test]
fn entry_then_periodic_announcements_only_when_something_changed() {
    let mut q = QueueConfig::named("q");
    q.announce_interval = Some(s(30));
    q.min_announce_interval = s(120);
    q.initial_handle_time = s(600);
    let mut h = H::with_queue(q, &["a"]);
    h.join(1, 0);
    h.answer(1, "a");
    let out = h.join(2, 0);
    let a = announces(&out);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].1, 1);
    assert!(a[0].2.is_some());
    // Exponential prior: the estimate barely moves; no change in spoken
    // minutes means no repeat until 120 s.
    let mut heard = Vec::new();
    for _ in 0..8 {
        heard.extend(announces(&h.advance(30)));
    }
    assert!(
        !heard.is_empty() && heard.len() < 8,
        "announced {} times: {heard:?}",
        heard.len()
    );
    // A priority caller overtakes: caller 2 hears the new position at the next tick.
    h.join(3, 5);
    let out = h.advance(30);
    let a = announces(&out);
    assert!(a.iter().any(|x| x.0 == 2 && x.1 == 2), "{a:?}");
}

#[test]
fn nobody_staffed_announces_position_without_estimate() {
    let mut h = H::with_queue(QueueConfig::named("q"), &[]);
    let out = h.join(1, 0);
    assert_eq!(announces(&out), [(1, 1, None)]);
}

#[test]
fn estimate_uses_staffing_and_elapsed_time() {
    let mut q = QueueConfig::named("q");
    q.initial_handle_time = s(300);
    // No abandonment prior: the figures below are hand computed without it.
    q.initial_patience = Duration::ZERO;
    let mut h = H::with_queue(q, &["a", "b"]);
    // Teach a deterministic 300 s talk time (a full window of calls).
    for c in 1..=256u64 {
        let r = rings(&h.join(c, 0));
        h.answer(c, &r[0].1);
        h.advance(300);
        h.end(c, &r[0].1);
    }
    // One operator 240 s into a call, the other 180 s (answer delay 0).
    let first = rings(&h.join(100, 0))[0].1.clone();
    h.answer(100, &first);
    h.advance(60);
    let second = rings(&h.join(101, 0))[0].1.clone();
    h.answer(101, &second);
    h.advance(180);
    h.join(102, 0);
    h.join(103, 0);
    h.join(104, 0);
    let e = h.acd.estimates_for("q", h.now).expect("staffed");
    let secs: Vec<u64> = e.iter().map(|d| d.as_secs_f64().round() as u64).collect();
    // Hand computed in estimator::tests::two_busy_servers_hand_computed.
    assert_eq!(secs, [60, 120, 240]);
    // The entry announcement for the third caller said the same.
    let l = h.log.iter().rev().find_map(|c| match c {
        AcdCommand::Announce {
            call: 104,
            estimate,
            ..
        } => *estimate,
        _ => None,
    });
    assert_eq!(l.map(|d| d.as_secs_f64().round() as u64), Some(240));
    // A caller of higher priority goes to the front; their entry estimate,
    // computed for the callers up to them only, is the full line's first.
    h.join(105, 5);
    let full = h.acd.estimates_for("q", h.now).expect("staffed");
    let announced = h.log.iter().rev().find_map(|c| match c {
        AcdCommand::Announce {
            call: 105,
            position,
            estimate,
            ..
        } => Some((*position, *estimate)),
        _ => None,
    });
    assert_eq!(announced, Some((1, Some(full[0]))));
    assert_eq!(full.len(), 4);
    h.ev(AcdEvent::CallerLeft { call: 105 });
    // Pausing the second (after its call) halves the staffing.
    h.ev(AcdEvent::Pause {
        op: second,
        reason: "x".into(),
    });
    let e = h.acd.estimates_for("q", h.now).expect("staffed");
    let secs: Vec<u64> = e.iter().map(|d| d.as_secs_f64().round() as u64).collect();
    // The priority-5 caller just seen means priority-5 callers arrive at
    // 1/1800 per second (one in the rate's 30 min window), and each will
    // overtake: releases left for the priority-0 line are M(t) − t/1800.
    // The first needs 1 at 60 + 0.0333 / (1/300 − 1/1800) = 72 s, then one
    // per 360 s instead of 300.
    assert_eq!(secs, [72, 432, 792]);
}

#[test]
fn connect_records_announced_and_actual_wait() {
    let mut h = H::simple(Strategy::LongestIdle, &["a"]);
    h.join(1, 0);
    h.answer(1, "a");
    let out = h.join(2, 0);
    // The record carries the wait as heard: the minutes said.
    let heard = out.iter().find_map(|c| match c {
        AcdCommand::Announce { wait, .. } => *wait,
        _ => None,
    });
    let announced = heard.and_then(|w| w.heard());
    assert_eq!(heard.map(|w| w.heard().is_some()), Some(true));
    h.advance(100);
    h.end(1, "a");
    h.advance(3);
    let out = h.answer(2, "a");
    let connect = logs(&out)
        .into_iter()
        .find(|e| e.kind.name() == "CONNECT")
        .expect("CONNECT logged");
    assert_eq!(connect.op.as_deref(), Some("a"));
    match &connect.kind {
        QueueEventKind::Connect {
            waited,
            announced: a,
            ring_time,
        } => {
            assert_eq!(*waited, s(103));
            assert_eq!(*ring_time, s(3));
            assert_eq!(*a, announced);
        }
        other => panic!("unexpected {other:?}"),
    }
    let stats = &h.acd.queues_snapshot(h.now)[0].stats;
    assert_eq!(stats.answered, 2);
    // Caller 1 was rung at once and heard no figure: scored apart, so the
    // error is caller 2's alone, as heard.
    let err2 = (103.0 - announced.expect("staffed").as_secs_f64()).abs();
    let mae = stats.prediction_mae_secs.expect("scored");
    assert!((mae - err2).abs() < 1e-6, "mae {mae} err {err2}");
}

#[test]
fn enter_and_complete_are_logged_in_asterisk_vocabulary() {
    let mut h = H::simple(Strategy::LongestIdle, &["a"]);
    let out = h.join(1, 0);
    assert_eq!(log_names(&out), ["ENTERQUEUE"]);
    h.answer(1, "a");
    h.advance(10);
    let out = h.end(1, "a");
    assert_eq!(log_names(&out), ["COMPLETEAGENT"]);
    assert_eq!(QueueEventKind::Unpause.to_string(), "UNPAUSE");
}

#[test]
fn duplicate_and_unknown_events_are_harmless() {
    let mut h = H::simple(Strategy::LongestIdle, &["a"]);
    h.join(1, 0);
    assert!(h.join(1, 0).is_empty());
    assert_eq!(exits(&h.join_q(2, "nope", 0)), [(2, ExitReason::Empty)]);
    assert!(h.ev(AcdEvent::CallerLeft { call: 99 }).is_empty());
    assert!(
        h.ev(AcdEvent::RingFailed {
            call: 99,
            op: "a".into(),
            reason: RingFailure::Busy
        })
        .is_empty()
    );
    assert!(
        h.ev(AcdEvent::CallEnded {
            call: 99,
            op: "a".into(),
            by: Party::Caller
        })
        .is_empty()
    );
    assert_eq!(h.state("a"), OperatorState::Ringing);
}

// ---- randomised order check ----

/// 50 callers with mixed priorities against 5 operators who answer late,
/// miss rings and pause; callers hang up at random. Every caller ends served
/// or abandoned, and every first ring goes to the best caller not yet rung.
#[test]
fn fifty_callers_five_operators_served_in_order_or_abandoned() {
    // First rings made while other callers were also waiting unrung: the
    // ones where order is actually decided.
    let contested = std::cell::Cell::new(0u32);
    for seed in 0..20u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut q = QueueConfig::named("q");
        q.ring_timeout = s(10);
        q.retry_delay = s(2);
        q.wrapup = s(3);
        let ops = ["o1", "o2", "o3", "o4", "o5"];
        let mut h = H::with_queue(q, &ops);
        // (priority, arrival) per caller.
        let mut key = std::collections::HashMap::new();
        let mut waiting: Vec<CallId> = Vec::new();
        let mut rung_once = std::collections::HashSet::new();
        let mut connected: Vec<(CallId, String)> = Vec::new();
        let mut pending_answers: Vec<(Instant, CallId, String)> = Vec::new();
        let (mut served, mut abandoned) = (0, 0);
        let mut next_call = 1u64;
        let check = |out: &[AcdCommand],
                     waiting: &mut Vec<CallId>,
                     rung_once: &mut std::collections::HashSet<CallId>,
                     key: &std::collections::HashMap<CallId, (i32, u64)>| {
            for c in out {
                if let AcdCommand::Ring { call, .. } = c {
                    if rung_once.insert(*call) {
                        let unrung: Vec<CallId> = waiting
                            .iter()
                            .filter(|w| !rung_once.contains(w) || **w == *call)
                            .copied()
                            .collect();
                        if unrung.len() > 1 {
                            contested.set(contested.get() + 1);
                        }
                        let best = unrung.iter().min_by_key(|w| (-key[w].0, key[w].1)).copied();
                        assert_eq!(best, Some(*call), "seed {seed}: ring out of order");
                    }
                }
            }
        };
        for _step in 0..2000 {
            if next_call > 50 && waiting.is_empty() && connected.is_empty() {
                break;
            }
            let dice = rng.random_range(0..100);
            let out = if dice < 15 && next_call <= 50 {
                let call = next_call;
                next_call += 1;
                let prio = rng.random_range(0..3);
                key.insert(call, (prio, call));
                waiting.push(call);
                h.join(call, prio)
            } else if dice < 20 && !waiting.is_empty() {
                let i = rng.random_range(0..waiting.len());
                let call = waiting.remove(i);
                abandoned += 1;
                pending_answers.retain(|(_, c, _)| *c != call);
                h.ev(AcdEvent::CallerLeft { call })
            } else if dice < 35 && !connected.is_empty() {
                let i = rng.random_range(0..connected.len());
                let (call, op) = connected.remove(i);
                h.end(call, &op)
            } else if dice < 37 {
                let op = ops[rng.random_range(0..ops.len())];
                h.ev(AcdEvent::Pause {
                    op: op.into(),
                    reason: "break".into(),
                })
            } else if dice < 45 {
                let op = ops[rng.random_range(0..ops.len())];
                h.ev(AcdEvent::Unpause { op: op.into() })
            } else {
                let out = h.advance(rng.random_range(1..6));
                let due: Vec<(CallId, String)> = pending_answers
                    .iter()
                    .filter(|(t, _, _)| *t <= h.now)
                    .map(|(_, c, o)| (*c, o.clone()))
                    .collect();
                pending_answers.retain(|(t, _, _)| *t > h.now);
                let mut all = out;
                check(&all, &mut waiting, &mut rung_once, &key);
                for (call, op) in due {
                    let o = h.answer(call, &op);
                    all.extend(o);
                }
                all
            };
            check(&out, &mut waiting, &mut rung_once, &key);
            for c in &out {
                match c {
                    // Two rings in ten are never answered.
                    AcdCommand::Ring { call, op, .. } if rng.random_range(0..10) < 8 => {
                        let t = h.now + s(rng.random_range(1..8));
                        pending_answers.push((t, *call, op.clone()));
                    }
                    AcdCommand::CancelRing { call, op } => {
                        pending_answers.retain(|(_, c, o)| !(c == call && o == op));
                    }
                    AcdCommand::Connect { call, op } => {
                        assert!(
                            waiting.contains(call),
                            "seed {seed}: connect for a gone caller"
                        );
                        waiting.retain(|w| w != call);
                        connected.push((*call, op.clone()));
                        served += 1;
                        pending_answers.retain(|(_, c, _)| c != call);
                    }
                    AcdCommand::Exit { call, .. } => panic!("seed {seed}: unexpected exit {call}"),
                    _ => {}
                }
            }
            // Never two calls on one operator.
            let snap = h.acd.operators_snapshot();
            for o in &snap {
                let n = connected.iter().filter(|(_, op)| *op == o.id).count();
                assert!(n <= 1, "seed {seed}: {} has {n} calls", o.id);
            }
        }
        // Unpause everybody and drain.
        for op in ops {
            h.ev(AcdEvent::Unpause { op: op.into() });
        }
        for _ in 0..500 {
            if waiting.is_empty() {
                break;
            }
            let mut out = h.advance(5);
            for (call, op) in connected.drain(..) {
                out.extend(h.end(call, &op));
            }
            let due: Vec<(CallId, String)> = std::mem::take(&mut pending_answers)
                .into_iter()
                .map(|(_, c, o)| (c, o))
                .collect();
            for (call, op) in due {
                out.extend(h.answer(call, &op));
            }
            check(&out, &mut waiting, &mut rung_once, &key);
            for c in &out {
                match c {
                    AcdCommand::Ring { call, op, .. } => {
                        pending_answers.push((h.now, *call, op.clone()))
                    }
                    AcdCommand::Connect { call, op } => {
                        waiting.retain(|w| w != call);
                        connected.push((*call, op.clone()));
                        served += 1;
                    }
                    _ => {}
                }
            }
        }
        assert!(
            waiting.is_empty(),
            "seed {seed}: callers left waiting {waiting:?}"
        );
        assert_eq!(served + abandoned, next_call - 1, "seed {seed}");
        let stats = &h.acd.queues_snapshot(h.now)[0].stats;
        assert_eq!(stats.answered, served);
        assert_eq!(stats.abandoned, abandoned);
    }
    assert!(
        contested.get() > 100,
        "only {} contested rings",
        contested.get()
    );
}

#[test]
fn ring_all_losers_go_straight_to_the_next_caller() {
    let mut h = H::simple(Strategy::RingAll, &["a", "b", "c"]);
    assert_eq!(rings(&h.join(1, 0)).len(), 3);
    assert_eq!(rings(&h.join(2, 0)), []);
    let out = h.answer(1, "b");
    let mut next: Vec<(CallId, String)> = rings(&out);
    next.sort();
    assert_eq!(next, [(2, "a".to_string()), (2, "c".to_string())]);
    // Cancels come before the new rings so the shell frees the legs first.
    let first_ring = out
        .iter()
        .position(|c| matches!(c, AcdCommand::Ring { .. }))
        .expect("rings");
    let last_cancel = out
        .iter()
        .rposition(|c| matches!(c, AcdCommand::CancelRing { .. }))
        .expect("cancels");
    assert!(last_cancel < first_ring);
}

#[test]
fn quiet_core_has_no_timer() {
    let mut q = QueueConfig::named("q");
    q.wrapup = s(5);
    let mut h = H::with_queue(q, &["a"]);
    assert_eq!(h.acd.poll_timeout(), None);
    h.join(1, 0);
    h.answer(1, "a");
    h.end(1, "a");
    assert_eq!(h.acd.poll_timeout(), Some(h.now + s(5)));
    h.advance(5);
    assert_eq!(h.acd.poll_timeout(), None);
    assert_eq!(h.state("a"), OperatorState::Available);
}

#[test]
fn snapshots_serialise_for_the_admin_api() {
    let mut h = H::simple(Strategy::LongestIdle, &["a"]);
    h.join(1, 0);
    h.answer(1, "a");
    h.join(2, 3);
    h.advance(12);
    let q = h.acd.queues_snapshot(h.now);
    assert_eq!(q[0].callers.len(), 1);
    let c = &q[0].callers[0];
    assert_eq!((c.call, c.position, c.priority), (2, 1, 3));
    assert_eq!(c.waited_secs, 12.0);
    assert!(c.announced_secs.is_some());
    let on_call = q[0]
        .operators
        .iter()
        .find(|(l, _)| l == "on_call")
        .map(|(_, n)| *n);
    assert_eq!(on_call, Some(1));
    let json = serde_json::to_string(&q).expect("serialisable");
    assert!(json.contains("\"waited_secs\":12.0"), "{json}");
    let ops = h.acd.operators_snapshot();
    assert_eq!(ops[0].call, Some(1));
    assert_eq!(ops[0].queues, [("q".to_string(), 0)]);
    serde_json::to_string(&ops).expect("serialisable");
}

#[test]
fn seeding_from_history_restores_statistics_and_the_estimator() {
    use crate::acd::QueueHistory;
    let mut q = QueueConfig::named("q");
    q.initial_handle_time = Duration::from_secs(10);
    let op = OperatorConfig {
        id: "a".into(),
        display_name: None,
        password: None,
        static_uri: Some("sip:a@127.0.0.1".into()),
        queues: vec![Membership {
            name: "q".into(),
            penalty: 0,
        }],
    };
    let t0 = Instant::now();
    let fresh = Acd::new(vec![q.clone()], vec![op.clone()]).unwrap();
    let mut seeded = Acd::new(vec![q], vec![op]).unwrap();
    seeded.seed(
        "q",
        &QueueHistory {
            answered: 40,
            abandoned: 10,
            answered_within_threshold: 30,
            handle_times: vec![Duration::from_secs(300); 40],
            answered_waits: vec![Duration::from_secs(20); 40],
            abandon_waits: vec![Duration::from_secs(60); 10],
            prediction_errors: vec![5.0, -5.0],
        },
    );
    seeded.seed("no-such-queue", &QueueHistory::default());
    let s = &seeded.queues_snapshot(t0)[0].stats;
    assert_eq!((s.answered, s.abandoned), (40, 10));
    assert_eq!(s.service_level, Some(30.0 / 50.0));
    assert_eq!(s.prediction_mae_secs, Some(5.0));
    // Learnt handle times (5 min) replace the 10 s prior.
    assert!(s.mean_talk_secs > fresh.queues_snapshot(t0)[0].stats.mean_talk_secs * 10.0);
}

#[test]
fn timers_of_callers_who_left_do_not_pile_up() {
    let mut q = QueueConfig::named("q");
    q.announce_interval = Some(s(30));
    q.max_wait = Some(s(600));
    let mut h = H::with_queue(q, &["a"]);
    h.join(1, 0);
    h.answer(1, "a");
    // A long line that churns: each caller arms an announcement and a
    // deadline, then hangs up before either fires.
    for round in 0..20u64 {
        for i in 0..100 {
            h.join(1000 + round * 100 + i, 0);
        }
        h.advance(5);
        for i in 0..100 {
            h.ev(AcdEvent::CallerLeft {
                call: 1000 + round * 100 + i,
            });
        }
    }
    assert_eq!(h.acd.poll_timeout(), None, "nobody waits, nothing is due");
    // Entries of gone callers are dropped as they surface: an empty line
    // keeps none of the 4,000 armed.
    assert_eq!(h.acd.st.timers.len(), 0);
    h.join(5000, 0);
    assert_eq!(h.acd.poll_timeout(), Some(h.now + s(30)));
}

#[test]
fn the_oldest_wait_grows_without_events() {
    let mut h = H::new(vec![QueueConfig::named("q")], vec![op("a", &[("q", 0)])]);
    let t0 = h.now;
    h.acd.start(t0);
    let g = &h.acd.take_figures(t0).queues[0].gauges;
    // Nothing to divide yet, no estimate given: unknown.
    assert_eq!(
        (
            g.service_level,
            g.abandon_ratio,
            g.occupancy,
            g.estimated_wait
        ),
        (None, None, None, None)
    );
    h.join(1, 0);
    // Nothing happens for 42 s: the shell's periodic take sees the wait grow.
    let g = &h.acd.take_figures(t0 + s(42)).queues[0].gauges;
    assert_eq!((g.callers_waiting, g.oldest_wait), (1, s(42)));
}

#[test]
fn the_snapshot_says_since_when_each_operator_holds_its_state() {
    let mut h = H::new(vec![QueueConfig::named("q")], vec![op("a", &[("q", 0)])]);
    let t0 = h.now;
    h.acd.start(t0);
    assert_eq!(h.acd.operators_snapshot()[0].state_since, Some(t0));
    h.advance(5);
    h.ev(AcdEvent::OperatorOnline { op: "a".into() });
    let snap = &h.acd.operators_snapshot()[0];
    assert_eq!(
        (snap.state.as_str(), snap.state_since),
        ("available", Some(t0 + s(5)))
    );
    // An event that changes nothing visible keeps the time.
    h.advance(3);
    h.ev(AcdEvent::OperatorOnline { op: "a".into() });
    assert_eq!(h.acd.operators_snapshot()[0].state_since, Some(t0 + s(5)));
    h.advance(2);
    h.join(1, 0);
    let snap = &h.acd.operators_snapshot()[0];
    assert_eq!(
        (snap.state.as_str(), snap.state_since),
        ("ringing", Some(t0 + s(10)))
    );
}

// ---- callers taken out by the gateway ----

#[test]
fn removal_by_admin_or_shutdown_is_logged_as_such_and_is_no_abandonment() {
    let mut h = H::simple(Strategy::LongestIdle, &["a"]);
    h.join(1, 0);
    h.answer(1, "a");
    for (call, by) in [(2, Removal::Admin), (3, Removal::Shutdown)] {
        h.join(call, 0);
        h.advance(42);
        let out = h.ev(AcdEvent::CallerRemoved { call, by });
        assert_eq!(log_names(&out), ["REMOVED"]);
        match &logs(&out)[0].kind {
            QueueEventKind::Removed {
                by: logged,
                position,
                waited,
                ..
            } => {
                assert_eq!((*logged, *position, *waited), (by, 1, s(42)));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(exits(&out).is_empty(), "the plan is not asked to go on");
    }
    let stats = &h.acd.queues_snapshot(h.now)[0].stats;
    assert_eq!(stats.abandoned, 0);
    assert_eq!(stats.abandon_ratio, Some(0.0));
    assert!(h.acd.queues_snapshot(h.now)[0].callers.is_empty());
    // A connected caller cut by shutdown completes its call.
    let out = h.ev(AcdEvent::CallerRemoved {
        call: 1,
        by: Removal::Shutdown,
    });
    assert_eq!(log_names(&out), ["COMPLETECALLER"]);
}

/// The wait announced to a caller behind three others after twenty callers
/// left the queue after a minute each, by `leave` (None: nobody was there).
fn estimate_after(leave: Option<fn(CallId) -> AcdEvent>) -> Option<Duration> {
    let mut h = H::simple(Strategy::LongestIdle, &["a"]);
    h.join(1, 0);
    h.answer(1, "a");
    if let Some(leave) = leave {
        for call in 10..30 {
            h.join(call, 0);
        }
        h.advance(60);
        for call in 10..30 {
            h.ev(leave(call));
        }
    } else {
        h.advance(60);
    }
    for call in 100..103 {
        h.join(call, 0);
    }
    let out = h.join(103, 0);
    logs(&out).iter().find_map(|e| match &e.kind {
        QueueEventKind::EnterQueue { announced, .. } => *announced,
        _ => None,
    })
}

#[test]
fn removed_callers_teach_the_estimator_nothing_about_patience() {
    let none = estimate_after(None);
    assert!(
        none.is_some(),
        "an operator is staffed: there is an estimate"
    );
    let removed = estimate_after(Some(|call| AcdEvent::CallerRemoved {
        call,
        by: Removal::Shutdown,
    }));
    let abandoned = estimate_after(Some(|call| AcdEvent::CallerLeft { call }));
    assert_eq!(removed, none, "removals are not patience samples");
    assert_ne!(
        abandoned, none,
        "abandons are (else this test shows nothing)"
    );
}

#[test]
fn repeat_rule_rounds_exactly_like_the_speech() {
    // The repeat rule used to round to the nearest minute while the speech
    // rounded up: 61 s was "one minute" to one and "two minutes" to the other.
    for secs in (0..7200)
        .step_by(7)
        .chain([29, 30, 31, 89, 90, 91, 149, 150])
    {
        let d = Duration::from_millis(secs * 1000 + 499);
        let said = crate::dialplan::say::heard_minutes(d);
        assert_eq!(crate::acd::spoken_minutes(d), u64::from(said), "{d:?}");
        assert_eq!(crate::acd::estimator::heard_minutes(d), said, "{d:?}");
        assert!(said >= 1);
    }
    assert_eq!(crate::acd::spoken_minutes(Duration::from_secs(61)), 1);
    assert_eq!(crate::acd::spoken_minutes(Duration::from_secs(10)), 1);
}

fn words(cmds: &[AcdCommand]) -> Vec<(CallId, Option<WaitSpeech>)> {
    cmds.iter()
        .filter_map(|c| match c {
            AcdCommand::Announce { call, wait, .. } => Some((*call, *wait)),
            _ => None,
        })
        .collect()
}

/// One operator, deterministic 300 s calls, no abandonment prior.
fn taught(max_wait: Option<Duration>) -> H {
    let mut q = QueueConfig::named("q");
    q.initial_handle_time = s(300);
    q.initial_patience = Duration::ZERO;
    q.max_wait = max_wait;
    let mut h = H::with_queue(q, &["a"]);
    for c in 1..=256u64 {
        h.join(c, 0);
        h.answer(c, "a");
        h.advance(300);
        h.end(c, "a");
    }
    h
}

#[test]
fn no_figure_past_max_wait() {
    let mut h = taught(Some(s(700)));
    h.join(100, 0);
    h.answer(100, "a");
    // Served at 300 and 600 s: figures. At 900 s: past the 700 s the
    // queue allows, so no figure at all, and none in the record either.
    let w1 = words(&h.join(101, 0));
    assert_eq!(w1, [(101, Some(WaitSpeech::Minutes(5)))]);
    let w2 = words(&h.join(102, 0));
    assert!(
        matches!(
            w2[0].1,
            Some(WaitSpeech::Minutes(10) | WaitSpeech::Range { .. })
        ),
        "{w2:?}"
    );
    let out = h.join(103, 0);
    assert_eq!(words(&out), [(103, Some(WaitSpeech::Beyond))]);
    let entered = logs(&out)
        .into_iter()
        .find(|e| e.kind.name() == "ENTERQUEUE")
        .map(|e| e.kind.clone());
    assert!(
        matches!(
            entered,
            Some(QueueEventKind::EnterQueue {
                announced: None,
                ..
            })
        ),
        "{entered:?}"
    );
    // Without the limit the same caller hears a figure (a range here).
    let mut h = taught(None);
    h.join(100, 0);
    h.answer(100, "a");
    h.join(101, 0);
    h.join(102, 0);
    let w = words(&h.join(103, 0));
    assert!(
        matches!(w[0].1, Some(WaitSpeech::Range { low, high }) if low <= 15 && high >= 15),
        "{w:?}"
    );
}

#[test]
fn ranges_are_scored_for_coverage_and_unannounced_callers_apart() {
    let mut h = taught(None);
    // What teaching the queue counted is not this test's business.
    let before = h.acd.take_figures(h.now).queues[0].counts.clone();
    h.join(100, 0);
    h.answer(100, "a");
    let mut heard = Vec::new();
    for c in 101..=103 {
        heard.extend(words(&h.join(c, 0)));
    }
    let ranges = heard
        .iter()
        .filter(|(_, w)| matches!(w, Some(WaitSpeech::Range { .. })))
        .count() as u64;
    assert!(ranges >= 1, "{heard:?}");
    // Serve them in turn, 300 s each: each waits what was forecast.
    let mut current = 100;
    for next in 101..=103 {
        h.advance(300);
        h.end(current, "a");
        h.answer(next, "a");
        current = next;
    }
    // Read from the core's own figures: no recorder anywhere.
    let f = h.acd.take_figures(h.now);
    let q = &f.queues[0];
    assert_eq!(q.counts.ranges_inside - before.ranges_inside, ranges);
    assert_eq!(q.counts.ranges_outside, before.ranges_outside);
    assert_eq!(q.gauges.range_coverage, Some(1.0));
    // The 257 callers rung at once heard no figure and are not in the error.
    assert_eq!(q.counts.unannounced, 257);
    assert_eq!(q.samples.prediction_errors.len(), 3);
    // Samples are handed over once.
    assert!(
        h.acd.take_figures(h.now).queues[0]
            .samples
            .prediction_errors
            .is_empty()
    );
    let stats = &h.acd.queues_snapshot(h.now)[0].stats;
    assert_eq!(stats.answered, 260);
}

#[test]
fn the_core_counts_outcomes_and_samples_waits_without_a_recorder() {
    let mut h = H::new(vec![QueueConfig::named("q")], vec![op("a", &[("q", 0)])]);
    h.ev(AcdEvent::OperatorOnline { op: "a".into() });
    // One answered after 4 s of ringing, one abandoned after 30 s.
    h.join(1, 0);
    h.advance(4);
    h.answer(1, "a");
    h.join(2, 0);
    h.advance(30);
    h.ev(AcdEvent::CallerLeft { call: 2 });
    let f = h.acd.take_figures(h.now);
    let q = f.queue("q").expect("configured queue");
    assert_eq!(q.counts.outcome(Outcome::Answered), 1);
    assert_eq!(q.counts.outcome(Outcome::Abandoned), 1);
    assert_eq!(q.counts.by_outcome().map(|(_, n)| n).sum::<u64>(), 2);
    assert_eq!(q.samples.wait_answered, [4.0]);
    assert_eq!(q.samples.wait_abandoned, [30.0]);
    assert_eq!(q.gauges.abandon_ratio, Some(0.5));
    assert_eq!(q.gauges.callers_waiting, 0);
    // Counts are since start; samples were taken and start again.
    let again = h.acd.take_figures(h.now);
    assert_eq!(again.queues[0].counts, q.counts);
    assert!(again.queues[0].samples.wait_abandoned.is_empty());
}

#[test]
fn samples_nobody_takes_stop_at_the_cap() {
    let mut q = QueueConfig::named("q");
    q.wrapup = Duration::ZERO;
    let mut h = H::new(vec![q], vec![op("a", &[("q", 0)])]);
    h.ev(AcdEvent::OperatorOnline { op: "a".into() });
    for i in 0..(crate::acd::figures::MAX_SAMPLES as u64 + 10) {
        h.join(10_000 + i, 0);
        h.answer(10_000 + i, "a");
        h.end(10_000 + i, "a");
    }
    let q = &h.acd.take_figures(h.now).queues[0];
    assert_eq!(
        q.samples.wait_answered.len(),
        crate::acd::figures::MAX_SAMPLES
    );
    assert_eq!(
        q.counts.outcome(Outcome::Answered),
        crate::acd::figures::MAX_SAMPLES as u64 + 10
    );
}

/// The wallboard's "what a new caller would hear": rung at once while an
/// operator is free and nobody waits unrung; otherwise the very words the
/// entry announcement gives a caller joining at that moment.
#[test]
fn a_new_callers_wait_is_what_the_entry_announcement_would_say() {
    let mut h = H::simple(Strategy::RingAll, &["a"]);
    let wait = |h: &H| h.acd.queues_snapshot(h.now)[0].new_caller;
    assert_eq!(wait(&h), NewCallerWait::AtOnce);
    h.serve(1, 120);
    // Busy with caller 2: caller 3 waits and hears an estimate; a caller
    // joining now (behind 3) would be told what 4 is told on entry.
    let out = h.join(2, 0);
    h.answer(2, &rings(&out)[0].1);
    h.advance(30);
    h.join(3, 0);
    h.advance(5);
    let predicted = wait(&h);
    let NewCallerWait::Told(words) = predicted else {
        panic!("an estimate is said while all are busy: {predicted:?}");
    };
    let out = h.join(4, 0);
    let said = out.iter().find_map(|c| match c {
        AcdCommand::Announce { call: 4, wait, .. } => Some(*wait),
        _ => None,
    });
    assert_eq!(said, Some(Some(words)), "{out:?}");
    // Nobody staffed: no figure.
    let mut lone = H::simple(Strategy::RingAll, &[]);
    lone.join(1, 0);
    assert_eq!(wait(&lone), NewCallerWait::NoEstimate);
}

/// "Since this start" leaves the seeded history out, so the wallboard's
/// figures for today count only calls this process saw.
#[test]
fn since_start_counts_leave_the_seeded_history_out() {
    let mut h = H::simple(Strategy::RingAll, &["a"]);
    h.acd.seed(
        "q",
        &QueueHistory {
            answered: 40,
            abandoned: 10,
            answered_within_threshold: 30,
            ..QueueHistory::default()
        },
    );
    h.serve(1, 10);
    h.join(2, 0);
    h.join(3, 0);
    h.advance(400);
    h.ev(AcdEvent::CallerLeft { call: 3 });
    let s = &h.acd.queues_snapshot(h.now)[0].stats;
    assert_eq!((s.answered, s.abandoned), (41, 11));
    assert_eq!(
        s.since_start,
        SinceStartCounts {
            answered: 1,
            abandoned: 1,
            answered_within_threshold: 1,
        }
    );
}

// ---- transfers (REFER from the operator's phone) ----

#[test]
fn a_direct_ring_hands_the_call_from_one_operator_to_the_other() {
    let mut h = H::simple(Strategy::Linear, &["ana", "beto"]);
    let out = h.join(1, 0);
    assert_eq!(rings(&out), vec![(1, "ana".to_string())]);
    h.answer(1, "ana");
    h.advance(30);
    let out = h.ev(AcdEvent::DirectRing {
        call: 1,
        op: "beto".into(),
        queue: "q".into(),
    });
    assert_eq!(rings(&out), vec![(1, "beto".to_string())]);
    assert_eq!(
        h.state("ana"),
        OperatorState::OnCall,
        "ana talks until beto answers"
    );
    assert_eq!(h.state("beto"), OperatorState::Ringing);
    let out = h.answer(1, "beto");
    assert!(
        out.iter()
            .any(|c| matches!(c, AcdCommand::Connect { call: 1, op } if op == "beto")),
        "{out:?}"
    );
    assert!(cancels(&out).is_empty(), "{out:?}");
    assert!(
        !log_names(&out).contains(&"COMPLETEAGENT"),
        "the handover is not a completion: {:?}",
        log_names(&out)
    );
    assert_ne!(h.state("ana"), OperatorState::OnCall, "ana's part is over");
    assert_eq!(h.state("beto"), OperatorState::OnCall);
    // The call's end is beto's.
    let out = h.end(1, "beto");
    assert_eq!(log_names(&out), vec!["COMPLETEAGENT"]);
    assert_ne!(h.state("beto"), OperatorState::OnCall);
}

#[test]
fn a_direct_ring_to_a_busy_or_unknown_operator_is_refused_and_changes_nothing() {
    let mut h = H::simple(Strategy::Linear, &["ana", "beto"]);
    h.join(1, 0);
    h.answer(1, "ana");
    h.join(2, 0);
    h.answer(2, "beto");
    for op in ["beto", "nadie", "ana"] {
        let out = h.ev(AcdEvent::DirectRing {
            call: 1,
            op: op.into(),
            queue: "q".into(),
        });
        assert_eq!(cancels(&out), vec![(1, op.to_string())], "{op}: {out:?}");
        assert!(rings(&out).is_empty());
    }
    assert_eq!(h.state("ana"), OperatorState::OnCall);
    assert_eq!(h.state("beto"), OperatorState::OnCall);
}

#[test]
fn a_failed_or_abandoned_direct_ring_frees_the_target() {
    let mut h = H::simple(Strategy::Linear, &["ana", "beto"]);
    h.join(1, 0);
    h.answer(1, "ana");
    h.ev(AcdEvent::DirectRing {
        call: 1,
        op: "beto".into(),
        queue: "q".into(),
    });
    let out = h.ev(AcdEvent::RingFailed {
        call: 1,
        op: "beto".into(),
        reason: RingFailure::Busy,
    });
    assert_eq!(log_names(&out), vec!["RINGNOANSWER"]);
    assert_eq!(h.state("beto"), OperatorState::Available);
    assert_eq!(
        h.state("ana"),
        OperatorState::OnCall,
        "the caller is back with ana"
    );
    // Ringing again, and the caller hangs up meanwhile: both are free.
    h.ev(AcdEvent::DirectRing {
        call: 1,
        op: "beto".into(),
        queue: "q".into(),
    });
    h.ev(AcdEvent::CallEnded {
        call: 1,
        op: "ana".into(),
        by: Party::Caller,
    });
    assert_eq!(h.state("beto"), OperatorState::Available);
    assert_ne!(h.state("ana"), OperatorState::OnCall);
}

#[test]
fn a_transferred_caller_keeps_its_priority_and_a_returned_one_goes_first() {
    let mut h = H::simple(Strategy::Linear, &["ana"]);
    h.join(1, 5);
    h.answer(1, "ana");
    // Three callers wait behind: two of priority 5, one of 0.
    h.join(2, 5);
    h.join(3, 5);
    h.join(4, 0);
    // Ana hands caller 1 back to the queue (a transfer whose target
    // failed after she left): it goes first among priority 5.
    let out = h.ev(AcdEvent::Transferred { call: 1 });
    assert!(log_names(&out).is_empty(), "{:?}", log_names(&out));
    let snapshot = |h: &H| -> Vec<CallId> {
        let qs = h.acd.queues_snapshot(h.now);
        qs[0].callers.iter().map(|c| c.call).collect()
    };
    // Ana is in wrap-up: nobody is rung, the line shows the order.
    h.ev(AcdEvent::CallerReturned {
        call: 1,
        queue: "q".into(),
        priority: 5,
    });
    assert_eq!(snapshot(&h), [1, 2, 3, 4]);
    // A second return goes ahead of the first; a plain join goes behind.
    h.ev(AcdEvent::CallerReturned {
        call: 9,
        queue: "q".into(),
        priority: 5,
    });
    h.join(10, 5);
    assert_eq!(snapshot(&h), [9, 1, 2, 3, 10, 4]);
}
