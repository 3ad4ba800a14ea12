//! Which queues a caller can reach at a given moment, read from the plans'
//! own office hours: feeds the `conmutador_queue_open` gauge, so the alert
//! "a queue is open and nobody is logged in" follows the schedules the
//! dialplan authors wrote instead of hours copied into the alert rules.
//!
//! A walk of each plan from its start node that follows every menu option,
//! collect, play and queue exit, but takes a `branch` only where its clock
//! conditions (holiday, days, time, dates) hold at that moment. A case
//! that also tests a variable may or may not be taken, so both ways are
//! followed. Reads plans only; never touches a call or the clock.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::model::{Condition, NodeKind, Plan, condition_holds};

/// Names of the queues some plan can send a caller to at `now`.
pub fn open_queues(plans: &[Arc<Plan>], now: DateTime<Utc>) -> BTreeSet<String> {
    let mut open = BTreeSet::new();
    for plan in plans {
        let mut seen = BTreeSet::new();
        let mut todo = vec![plan.start.v.clone()];
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(node) = plan.node(&name) else {
                continue;
            };
            match &node.kind {
                NodeKind::Branch(b) => {
                    let local = now.with_timezone(&b.timezone).naive_local();
                    let unknown = |_: &str| None;
                    let mut certain = false;
                    for case in &b.cases {
                        let clock_holds = case
                            .conditions
                            .iter()
                            .filter(|c| !matches!(c, Condition::Var { .. }))
                            .all(|c| condition_holds(c, local, plan, &unknown));
                        if !clock_holds {
                            continue;
                        }
                        todo.push(case.next.v.clone());
                        if !case
                            .conditions
                            .iter()
                            .any(|c| matches!(c, Condition::Var { .. }))
                        {
                            certain = true;
                            break;
                        }
                    }
                    if !certain {
                        todo.push(b.otherwise.v.clone());
                    }
                }
                kind => {
                    if let NodeKind::Queue(q) = kind {
                        open.insert(q.queue.v.clone());
                    }
                    todo.extend(kind.refs().into_iter().map(|r| r.v.clone()));
                }
            }
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialplan::diag::SourceFile;
    use crate::dialplan::parse::parse_plan;
    use chrono::TimeZone;

    const PLAN: &str = r#"
[plan]
name = "t"
start = "horario"
timezone = "America/Mexico_City"

[nodes.horario]
type = "branch"
cases = [
  { days = "mon-fri", time = "08:00-17:00", var = "vip", next = "cola_vip" },
  { days = "mon-fri", time = "08:00-17:00", next = "menu" },
]
else = "guardia"

[nodes.menu]
type = "menu"
prompts = ["m"]
options = { 1 = "cola_a", 2 = "adios" }

[nodes.cola_a]
type = "queue"
queue = "a"
overflow = "cola_b"

[nodes.cola_b]
type = "queue"
queue = "b"

[nodes.cola_vip]
type = "queue"
queue = "vip"

[nodes.guardia]
type = "queue"
queue = "guardia"

[nodes.adios]
type = "hangup"
"#;

    fn plan() -> Vec<Arc<Plan>> {
        let mut d = Vec::new();
        let p = parse_plan(SourceFile::new("t.toml", PLAN.to_string()), "t", &mut d)
            .unwrap_or_else(|| panic!("{d:?}"));
        vec![Arc::new(p)]
    }

    fn names(s: &BTreeSet<String>) -> Vec<&str> {
        s.iter().map(String::as_str).collect()
    }

    #[test]
    fn office_hours_open_the_queues_behind_them_and_close_the_rest() {
        // Tuesday 2026-12-08 10:00 in Mexico City (UTC-6) is 16:00 UTC.
        let tuesday_10 = Utc.with_ymd_and_hms(2026, 12, 8, 16, 0, 0).unwrap();
        assert_eq!(
            names(&open_queues(&plan(), tuesday_10)),
            // The menu's queue, the queue it overflows to, and the one a
            // variable may select; not the after-hours queue.
            vec!["a", "b", "vip"]
        );
        // 18:00 local: closed, only the after-hours queue.
        let tuesday_18 = Utc.with_ymd_and_hms(2026, 12, 9, 0, 0, 0).unwrap();
        assert_eq!(names(&open_queues(&plan(), tuesday_18)), vec!["guardia"]);
        // Saturday 10:00 local.
        let saturday = Utc.with_ymd_and_hms(2026, 12, 12, 16, 0, 0).unwrap();
        assert_eq!(names(&open_queues(&plan(), saturday)), vec!["guardia"]);
    }
}
