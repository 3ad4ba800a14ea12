//! Fifty callers against five operators: every caller is either served in
//! order of priority and arrival, or counted as abandoned.
//!
//! The operators are static (no registration) and all point at one SIPp UAS
//! (`tests/sipp/uas_operator_hold.xml`) that answers at once, talks 1–2 s and
//! hangs up. The callers are in-test UAs placed one at a time, each only
//! after the ACD has confirmed it entered the queue, so arrival order is
//! known without relying on timing. Some dial 200 (priority 10), the rest
//! 100 (priority 0); six hang up while waiting.
//!
//! What is asserted, exactly (no timing assertions):
//! - While the operators are paused, the queue as the admin API shows it is
//!   in priority-then-arrival order.
//! - The queue log (records export, in the ACD's own order) has one
//!   ENTERQUEUE per caller, in the order they were placed, and then exactly
//!   one CONNECT or ABANDON each: ABANDON for exactly the callers that hung
//!   up, CONNECT for all others; no ring failed and nobody left otherwise.
//!   The CDRs agree (completed with an operator / abandoned).
//! - No overtaking, on the ACD's logical clock: CONNECT times can come out
//!   of order when several operators ring at once, so the test does not
//!   compare them. Instead it rebuilds *when each caller was assigned*: an
//!   operator is rung the moment it becomes free (its UNPAUSE or the
//!   COMPLETE of its previous call, both logged in the same ACD step as the
//!   ring) or, if nobody was waiting then, the moment its next caller
//!   entered. For every caller X assigned at step r, no caller Y ranked
//!   before X (higher priority, or equal priority and earlier arrival) may
//!   have been waiting at r and still unassigned after r — whether Y was
//!   later served or abandoned.
//! - Each operator alternates CONNECT and COMPLETE: never two calls at once.
//!
//! The reconstruction needs one precondition, checked rather than assumed:
//! the two callers who abandon while operators work hang up right after
//! entering, and their ABANDON position shows they were beyond anyone who
//! could have been ringing (a cancelled ring is not in the queue log).
//!
//! Only loopback traffic; SIPp and the gateway are stopped by PID.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ua::{Msg, Ua};
use common::{Gw, eventually, free_udp_port, http_request, repo};
use conmutador::ops::records::{Cdr, Disposition, QueueEvent, QueueEventKind as K};

const OPERATORS: usize = 5;
const CALLERS: usize = 50;
/// Callers placed while every operator is paused; the rest arrive while
/// the operators work.
const PAUSED_PHASE: usize = 30;
/// Callers who dial 200 (priority 10).
const URGENT: &[usize] = &[3, 8, 13, 19, 26, 33, 38, 41, 46, 49];
/// Callers who hang up while waiting: the first four while nobody is being
/// served, the last two deep in the queue right after they entered.
const ABANDON_PAUSED: &[usize] = &[5, 13, 21, 27];
const ABANDON_LIVE: &[usize] = &[31, 34];
const TOKEN: &str = "test-token";

/// A SIPp UAS answering for every operator; killed by PID on drop.
struct OperatorPhones {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl OperatorPhones {
    fn start() -> OperatorPhones {
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let mport = (free_udp_port() & !1).max(10_000);
        let child = Command::new("sipp")
            .current_dir(dir.path())
            .arg("-sf")
            .arg(repo().join("tests/sipp/uas_operator_hold.xml"))
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-mp", &mport.to_string()])
            .args(["-nostdin", "-trace_err"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp is installed (apt-get install sip-tester)");
        OperatorPhones { child, dir, port }
    }

    /// SIPp's error log, for failure messages.
    fn errors(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                out.push_str(&t.chars().take(4000).collect::<String>());
            }
        }
        out
    }
}

impl Drop for OperatorPhones {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plans "colas" (100, priority 0) and "urgente" (200, priority 10) into
/// one queue, straight in (no prompt before joining), with the shipped
/// prompts for hold music.
fn plans(dir: &Path) -> PathBuf {
    let plans = common::plan_dir_with_prompts(dir);
    for (name, number, priority, default) in
        [("colas", "100", 0, true), ("urgente", "200", 10, false)]
    {
        std::fs::write(
            plans.join(format!("{name}.toml")),
            format!(
                r#"
[plan]
name = "{name}"
start = "cola"
languages = ["es-MX"]
numbers = ["{number}"]
default = {default}

[nodes.cola]
type = "queue"
queue = "pasaportes"
priority = {priority}
on_empty = "adios"
overflow = "adios"

[nodes.adios]
type = "hangup"
prompts = ["despedida"]
"#
            ),
        )
        .unwrap();
    }
    plans
}

fn config(plans: &Path, data: &Path, sipp_port: u16) -> String {
    let mut cfg = format!(
        r#"
[dialplans]
dir = "{}"
watch = false
[storage]
data_dir = "{}"
[media]
rtp_timeout = 300
[[queues]]
name = "pasaportes"
strategy = "longest_idle"
ring_timeout = 20
wrapup = 0
announce_interval = 30
"#,
        plans.display(),
        data.display()
    );
    for i in 1..=OPERATORS {
        cfg.push_str(&format!(
            "[[operators]]\nid = \"op{i}\"\nstatic_uri = \"sip:op{i}@127.0.0.1:{sipp_port}\"\nqueues = [{{ name = \"pasaportes\" }}]\n"
        ));
    }
    cfg
}

fn api(gw: &Gw, method: &str, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http_request(gw.http.expect("http"), method, path, Some(TOKEN), None);
    (status, serde_json::from_str(&body).unwrap_or_default())
}

/// (waiting call ids in position order, answered, abandoned) of the queue.
fn queue_now(gw: &Gw) -> (Vec<String>, u64, u64) {
    let (status, v) = api(gw, "GET", "/api/queues");
    assert_eq!(status, 200, "GET /api/queues: {v}");
    let q = v
        .as_array()
        .and_then(|a| a.iter().find(|q| q["name"] == "pasaportes"))
        .unwrap_or_else(|| panic!("queue pasaportes in {v}"));
    let mut waiting: Vec<(u64, String)> = q["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["position"].as_u64().unwrap(),
                w["call_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    waiting.sort();
    (
        waiting.into_iter().map(|(_, c)| c).collect(),
        q["stats"]["answered"].as_u64().unwrap(),
        q["stats"]["abandoned"].as_u64().unwrap(),
    )
}

/// 200 OK to a request from the gateway (its BYE), copying the dialog headers.
fn reply_ok(ua: &Ua, req: &Msg) {
    let head = req.0.split("\r\n\r\n").next().unwrap_or("");
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for line in head.lines().skip(1) {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "via" | "v" | "from" | "f" | "to" | "t" | "call-id" | "i" | "cseq"
        ) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    ua.send(&out);
}

/// A served caller waits for the gateway's BYE (the operator hung up) and
/// answers it; true when it came.
fn wait_for_bye(ua: Ua, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(m) = ua.recv(Duration::from_millis(500)) {
            if m.is_request("BYE") {
                reply_ok(&ua, &m);
                return true;
            }
        }
    }
    false
}

fn number(i: usize) -> &'static str {
    if URGENT.contains(&i) { "200" } else { "100" }
}

fn priority(i: usize) -> i32 {
    if URGENT.contains(&i) { 10 } else { 0 }
}

/// Places caller `i` and waits until the ACD counts it as entered, after
/// the `entered` callers placed before it.
fn place(gw: &Gw, i: usize, entered: u64) -> Ua {
    let mut ua = Ua::new(gw.udp);
    let resp = ua.call(number(i), "0", false);
    assert_eq!(resp.status(), Some(200), "caller {i}: {resp:?}");
    // One frame so the gateway's media path sees the caller.
    ua.send_pcmu(&[0; 160], true);
    let ok = eventually(Duration::from_secs(10), || {
        let (waiting, answered, abandoned) = queue_now(gw);
        waiting.len() as u64 + answered + abandoned > entered
    });
    assert!(ok, "caller {i} never entered the queue\n{}", gw.log_text());
    ua
}

fn rank(i: usize) -> (i32, usize) {
    (-priority(i), i)
}

#[test]
fn fifty_callers_five_operators_served_by_priority_then_arrival_or_abandoned() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let plans = plans(tmp.path());
    let data = tmp.path().join("data");
    let phones = OperatorPhones::start();
    let gw = Gw::start(&config(&plans, &data, phones.port));
    // Keep the effective config: the export reads the same storage.
    let cfg_copy = tmp.path().join("conmutador.toml");
    std::fs::copy(gw.dir.path().join("conmutador.toml"), &cfg_copy).unwrap();

    // Nobody is served until every early caller has queued.
    for i in 1..=OPERATORS {
        let (status, v) = api(&gw, "POST", &format!("/api/operators/op{i}/pause"));
        assert_eq!(status, 200, "pause op{i}: {v}");
    }
    assert!(
        eventually(Duration::from_secs(5), || {
            let (_, v) = api(&gw, "GET", "/api/operators");
            v.as_array()
                .is_some_and(|a| a.len() == OPERATORS && a.iter().all(|o| o["state"] == "paused"))
        }),
        "operators paused"
    );

    let mut ids: Vec<String> = Vec::new();
    let mut uas: HashMap<usize, Ua> = HashMap::new();
    for i in 0..PAUSED_PHASE {
        let ua = place(&gw, i, i as u64);
        ids.push(ua.call_id.clone());
        uas.insert(i, ua);
    }
    // The queue as the ACD holds it: priority first, then arrival.
    let mut expected: Vec<usize> = (0..PAUSED_PHASE).collect();
    expected.sort_by_key(|&i| rank(i));
    let expected_ids: Vec<String> = expected.iter().map(|&i| ids[i].clone()).collect();
    let (waiting, answered, _) = queue_now(&gw);
    assert_eq!(answered, 0, "nobody served while paused");
    assert_eq!(
        waiting, expected_ids,
        "queue order is priority, then arrival"
    );

    // Four callers give up while nobody is being served.
    for &i in ABANDON_PAUSED {
        let mut ua = uas.remove(&i).unwrap();
        let r = ua.hangup(number(i));
        assert_eq!(r.and_then(|m| m.status()), Some(200), "abandoner {i} BYE");
    }
    assert!(
        eventually(Duration::from_secs(5), || queue_now(&gw).2
            == ABANDON_PAUSED.len() as u64),
        "abandons counted"
    );
    let (waiting, _, _) = queue_now(&gw);
    let still: Vec<String> = expected
        .iter()
        .filter(|i| !ABANDON_PAUSED.contains(i))
        .map(|&i| ids[i].clone())
        .collect();
    assert_eq!(
        waiting, still,
        "abandoners left, the others kept their order"
    );

    // Served callers wait for the operator's BYE on their own threads.
    let mut served = Vec::new();
    let spawn_waiter = |i: usize, ua: Ua| {
        std::thread::spawn(move || (i, wait_for_bye(ua, Duration::from_secs(90))))
    };
    for i in 0..PAUSED_PHASE {
        if let Some(ua) = uas.remove(&i) {
            served.push(spawn_waiter(i, ua));
        }
    }

    for i in 1..=OPERATORS {
        let (status, v) = api(&gw, "POST", &format!("/api/operators/op{i}/unpause"));
        assert_eq!(status, 200, "unpause op{i}: {v}");
    }
    // The rest arrive while the operators work.
    for i in PAUSED_PHASE..CALLERS {
        let mut ua = place(&gw, i, i as u64);
        ids.push(ua.call_id.clone());
        if ABANDON_LIVE.contains(&i) {
            let r = ua.hangup(number(i));
            assert_eq!(r.and_then(|m| m.status()), Some(200), "abandoner {i} BYE");
        } else {
            served.push(spawn_waiter(i, ua));
        }
    }

    let abandoned: Vec<usize> = ABANDON_PAUSED.iter().chain(ABANDON_LIVE).copied().collect();
    let n_served = (CALLERS - abandoned.len()) as u64;
    assert!(
        eventually(Duration::from_secs(60), || {
            let (w, a, b) = queue_now(&gw);
            w.is_empty() && a == n_served && b == abandoned.len() as u64
        }),
        "every caller answered or abandoned: {:?}\n{}",
        queue_now(&gw),
        phones.errors()
    );
    for h in served {
        let (i, got_bye) = h.join().unwrap();
        assert!(got_bye, "served caller {i} was hung up by the gateway");
    }
    assert!(
        eventually(Duration::from_secs(10), || gw
            .metric("conmutador_calls_active", &[])
            == 0.0),
        "all calls ended"
    );
    let st = gw.stop();
    assert!(st.success(), "gateway exits cleanly on SIGTERM: {st:?}");

    let events: Vec<QueueEvent> = export(&cfg_copy, "queue-events")
        .into_iter()
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let cdrs: Vec<Cdr> = export(&cfg_copy, "cdr")
        .into_iter()
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let who: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let report = || {
        events
            .iter()
            .map(|e| {
                format!(
                    "{} {:<13} caller={:?} op={:?}",
                    conmutador::ops::time::to_rfc3339(&e.time),
                    e.event.as_str(),
                    e.call_id.as_deref().and_then(|c| who.get(c)),
                    e.agent
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };

    // The log is in the ACD's order; its clock never runs backwards.
    assert!(
        events.windows(2).all(|w| w[0].time <= w[1].time),
        "queue log in time order\n{}",
        report()
    );
    for e in &events {
        assert!(
            !matches!(
                e.event,
                K::RingNoAnswer
                    | K::ExitWithTimeout
                    | K::ExitWithKey
                    | K::ExitEmpty
                    | K::Full
                    | K::Transfer
            ),
            "unexpected {} in the queue log\n{}",
            e.event,
            report()
        );
    }

    // Per caller: its ENTERQUEUE, then its CONNECT or ABANDON (log indexes).
    let idx_of = |kind: K, i: usize| -> Vec<usize> {
        events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.event == kind && e.call_id.as_deref() == Some(ids[i].as_str()))
            .map(|(k, _)| k)
            .collect()
    };
    let mut enter: Vec<usize> = Vec::with_capacity(CALLERS);
    let mut end: Vec<(K, usize)> = Vec::with_capacity(CALLERS);
    for i in 0..CALLERS {
        let e = idx_of(K::EnterQueue, i);
        assert_eq!(e.len(), 1, "caller {i}: one ENTERQUEUE\n{}", report());
        enter.push(e[0]);
        let c = idx_of(K::Connect, i);
        let a = idx_of(K::Abandon, i);
        if abandoned.contains(&i) {
            assert!(
                c.is_empty() && a.len() == 1,
                "caller {i} hung up waiting: ABANDON, never CONNECT\n{}",
                report()
            );
            assert!(a[0] > e[0]);
            end.push((K::Abandon, a[0]));
        } else {
            assert!(
                a.is_empty() && c.len() == 1,
                "caller {i} waited: CONNECT once, never ABANDON\n{}",
                report()
            );
            assert!(c[0] > e[0]);
            assert_eq!(
                idx_of(K::CompleteAgent, i).len(),
                1,
                "caller {i}: the operator hung up\n{}",
                report()
            );
            end.push((K::Connect, c[0]));
        }
    }
    assert!(
        enter.windows(2).all(|w| w[0] < w[1]),
        "callers entered in the order they were placed\n{}",
        report()
    );
    // The live abandoners were far from the front, so no operator was
    // being rung for them (a cancelled ring is not in the queue log, and
    // the reconstruction below relies on that).
    for &i in ABANDON_LIVE {
        let pos: usize = events[end[i].1].data[0].parse().unwrap();
        assert!(
            pos > OPERATORS + URGENT.len(),
            "caller {i} abandoned at position {pos}"
        );
    }

    // When each served caller was assigned, on the log's clock.
    let mut assigned: HashMap<usize, usize> = HashMap::new();
    let mut free_at: HashMap<String, usize> = HashMap::new();
    let mut on_call: HashMap<String, Option<usize>> = HashMap::new();
    for (k, e) in events.iter().enumerate() {
        let Some(op) = e.agent.clone() else { continue };
        match e.event {
            K::Unpause => {
                free_at.insert(op, k);
            }
            K::Connect => {
                let i = who[e.call_id.as_deref().unwrap()];
                let busy = on_call.entry(op.clone()).or_default();
                assert!(
                    busy.is_none(),
                    "{op} connected to caller {i} while on a call\n{}",
                    report()
                );
                *busy = Some(i);
                let free = *free_at
                    .get(&op)
                    .unwrap_or_else(|| panic!("{op} connected before it was unpaused"));
                assigned.insert(i, free.max(enter[i]));
            }
            K::CompleteAgent | K::CompleteCaller => {
                let i = who[e.call_id.as_deref().unwrap()];
                let busy = on_call.entry(op.clone()).or_default();
                assert_eq!(*busy, Some(i), "{op} completes the call it had");
                *busy = None;
                free_at.insert(op, k);
            }
            _ => {}
        }
    }
    // Until when each caller was waiting unassigned.
    let until = |i: usize| -> usize {
        match end[i] {
            (K::Abandon, k) => k,
            _ => assigned[&i],
        }
    };
    let mut order: Vec<usize> = assigned.keys().copied().collect();
    order.sort_by_key(|i| (assigned[i], rank(*i)));
    for &x in &order {
        let r = assigned[&x];
        for (y, &entered) in enter.iter().enumerate() {
            if y != x && rank(y) < rank(x) && entered <= r && until(y) > r {
                panic!(
                    "caller {x} (priority {}) was assigned at log step {r} while caller {y} \
                     (priority {}, arrived earlier or ranked higher) was still waiting \
                     until step {}\nassignment order: {order:?}\n{}",
                    priority(x),
                    priority(y),
                    until(y),
                    report()
                );
            }
        }
    }
    // How often priority let a caller overtake an earlier arrival.
    let overtakes = order
        .iter()
        .enumerate()
        .map(|(k, &x)| order[k + 1..].iter().filter(|&&y| y < x).count())
        .sum::<usize>();
    // The CDRs tell the same story.
    for (i, id) in ids.iter().enumerate() {
        let c: Vec<&Cdr> = cdrs.iter().filter(|c| &c.call_id == id).collect();
        assert_eq!(c.len(), 1, "caller {i}: one CDR");
        if abandoned.contains(&i) {
            assert_eq!(c[0].disposition, Disposition::Abandoned, "caller {i}");
            assert!(c[0].operator.is_none(), "caller {i}");
        } else {
            assert_eq!(c[0].disposition, Disposition::Completed, "caller {i}");
            assert!(c[0].operator.is_some(), "caller {i}");
            assert_eq!(c[0].queue.as_deref(), Some("pasaportes"));
        }
    }
    eprintln!(
        "assignment order {order:?}; {overtakes} overtakes by priority; \
         {} served, {} abandoned in {:.1} s",
        order.len(),
        abandoned.len(),
        started.elapsed().as_secs_f64()
    );
}

/// `conmutador records export` lines of one kind.
fn export(cfg: &Path, kind: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_conmutador"))
        .arg("--config")
        .arg(cfg)
        .args(["records", "export", "--since", "2000-01-01"])
        .args(["--format", "jsonl", "--kind", kind])
        .output()
        .expect("run conmutador records export");
    assert!(
        out.status.success(),
        "export {kind}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}
