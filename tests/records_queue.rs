//! What the call records and the queue log say about callers who did not
//! simply talk to an operator, against the real binary: refused on entry
//! (JOINEMPTY, CDR `overflowed`), removed over the admin API and cut by
//! shutdown (REMOVED, CDR `removed`, never ABANDON), a real abandonment
//! (ABANDON), a timeout handed on by the plan's transfer node (TRANSFER, CDR
//! `transferred`), a reload (CONFIGRELOAD); and, after a restart, that only
//! the real abandonment is counted in the statistics rebuilt from storage.
//!
//! Callers are the in-test UA; the transfer target is a small UAS thread in
//! this file. Everything is on 127.0.0.1 and bounded in time.

mod common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::ua::{Msg, Ua};
use common::{Gw, eventually, http_request};
use serde_json::Value;

const TOKEN: Option<&str> = Some("test-token");
const SLOW: Duration = Duration::from_secs(30);

/// Three one-node plans: 100 → queue `vacia` (nobody can answer: refused
/// on entry), 200 → queue `espera` (waits for ever), 300 → queue `desborde`
/// (waits 1 s, then the plan transfers the caller to `target`).
fn plans(dir: &Path, target: &str) -> PathBuf {
    let plans = common::plan_dir_with_prompts(dir);
    let plan = |name: &str, number: &str, queue: &str, overflow: &str, extra: &str| {
        let transfer = if overflow == "pasar" {
            format!("[nodes.pasar]\ntype = \"transfer\"\nuri = \"{target}\"\n")
        } else {
            String::new()
        };
        format!(
            r#"
[plan]
name = "{name}"
start = "cola"
languages = ["es-MX"]
numbers = ["{number}"]
{extra}

[nodes.cola]
type = "queue"
queue = "{queue}"
on_empty = "adios"
overflow = "{overflow}"

[nodes.adios]
type = "hangup"

{transfer}"#
        )
    };
    let files = [
        ("vacia", "100", "vacia", "adios", ""),
        ("espera", "200", "espera", "adios", "default = true"),
        ("desborde", "300", "desborde", "pasar", ""),
    ];
    for (name, number, queue, overflow, extra) in files {
        std::fs::write(
            plans.join(format!("{name}.toml")),
            plan(name, number, queue, overflow, extra),
        )
        .unwrap();
    }
    plans
}

fn config(plans: &Path, data: &Path) -> String {
    let data = toml::Value::from(data.display().to_string());
    format!(
        r#"
[dialplans]
dir = "{}"
watch = false
[storage]
data_dir = {data}
[[queues]]
name = "vacia"
join_empty = "no_members"
[[queues]]
name = "espera"
[[queues]]
name = "desborde"
max_wait = 1
[[operators]]
id = "op1"
password = "secreto"
queues = [{{ name = "vacia" }}, {{ name = "espera" }}, {{ name = "desborde" }}]
"#,
        plans.display()
    )
}

fn caller(gw: &Gw, id: &str) -> Ua {
    let mut ua = Ua::new(gw.udp);
    ua.call_id = format!("{id}@records-queue");
    ua
}

/// Answers the first BYE that reaches `ua` (in a thread); true if one came.
fn answer_bye(ua: Ua, limit: Duration) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 65_535];
        while Instant::now() < deadline {
            let Ok((n, from)) = ua.sip.recv_from(&mut buf) else {
                continue;
            };
            let m = Msg(String::from_utf8_lossy(&buf[..n]).into_owned());
            if m.is_request("BYE") {
                let _ = ua.sip.send_to(reply(&m, None, "").as_bytes(), from);
                return true;
            }
        }
        false
    })
}

/// A 200 OK to `req`, with `to_tag` added to To when given, and `sdp`.
fn reply(req: &Msg, to_tag: Option<&str>, sdp: &str) -> String {
    let mut r = String::from("SIP/2.0 200 OK\r\n");
    for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if let Some(v) = req.header(h) {
            let v = match (h, to_tag) {
                ("To", Some(t)) if !v.contains("tag=") => format!("{v};tag={t}"),
                _ => v,
            };
            r.push_str(&format!("{h}: {v}\r\n"));
        }
    }
    if sdp.is_empty() {
        r.push_str("Content-Length: 0\r\n\r\n");
    } else {
        r.push_str(&format!(
            "Contact: <sip:destino@127.0.0.1>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ));
    }
    r
}

/// The transfer target: answers INVITEs with 200 + SDP, reports the ACK
/// on `acked`, answers the BYE and ends (or gives up after `limit`).
fn transfer_target(
    sock: UdpSocket,
    acked: mpsc::Sender<()>,
    limit: Duration,
) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rtp.local_addr().unwrap().port();
        let sdp = format!(
            "v=0\r\no=destino 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        );
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 65_535];
        while Instant::now() < deadline {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let m = Msg(String::from_utf8_lossy(&buf[..n]).into_owned());
            if m.is_request("INVITE") {
                let _ = sock.send_to(reply(&m, Some("dst1"), &sdp).as_bytes(), from);
            } else if m.is_request("ACK") {
                let _ = acked.send(());
            } else if m.is_request("BYE") {
                let _ = sock.send_to(reply(&m, None, "").as_bytes(), from);
                return true;
            }
        }
        false
    })
}

fn api(gw: &Gw, method: &str, path: &str) -> (u16, String) {
    http_request(gw.http.expect("http"), method, path, TOKEN, None)
}

/// True once `call_id` waits in `queue` (GET /api/queues).
fn waiting(gw: &Gw, queue: &str, call_id: &str) -> bool {
    let (status, body) = api(gw, "GET", "/api/queues");
    if status != 200 {
        return false;
    }
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    v.as_array().into_iter().flatten().any(|q| {
        q["name"] == queue
            && q["waiting"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["call_id"] == call_id)
    })
}

fn call_state(gw: &Gw, call_id: &str) -> Option<String> {
    let (_, body) = api(gw, "GET", "/api/calls");
    let v: Value = serde_json::from_str(&body).ok()?;
    v.as_array()?
        .iter()
        .find(|c| c["call_id"] == call_id)
        .and_then(|c| c["state"].as_str().map(str::to_owned))
}

/// (event, data…) of every queue-log row of `call_id`, in order.
fn events(db: &rusqlite::Connection, call_id: &str) -> Vec<Vec<String>> {
    let mut st = db
        .prepare("SELECT event, data1, data2, data3, data4, data5 FROM queue_event WHERE call_id = ?1 ORDER BY id")
        .unwrap();
    st.query_map([call_id], |r| {
        (0..6)
            .map(|i| r.get::<_, String>(i))
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn names(evs: &[Vec<String>]) -> Vec<&str> {
    evs.iter().map(|e| e[0].as_str()).collect()
}

/// (disposition, hangup_cause) of the one CDR of `call_id`.
fn cdr(db: &rusqlite::Connection, call_id: &str) -> (String, String) {
    let mut st = db
        .prepare("SELECT disposition, hangup_cause FROM cdr WHERE call_id = ?1")
        .unwrap();
    let rows: Vec<(String, String)> = st
        .query_map([call_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 1, "CDRs of {call_id}: {rows:?}");
    rows.into_iter().next().unwrap()
}

#[test]
fn queue_log_and_cdrs_tell_removal_joinempty_transfer_and_reload_apart() {
    let keep = tempfile::tempdir().unwrap();
    let data = keep.path().join("data");
    let target_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target_uri = format!("sip:destino@{}", target_sock.local_addr().unwrap());
    let plans = plans(keep.path(), &target_uri);
    let cfg = config(&plans, &data);
    let gw = Gw::start(&cfg);

    // A: nobody can answer queue `vacia`: refused on entry, the plan's
    // on_empty hangs up.
    let mut a = caller(&gw, "a");
    assert_eq!(a.call("100", "0", true).status(), Some(200));
    assert!(
        answer_bye(a, SLOW).join().unwrap(),
        "A is hung up by the plan"
    );

    // B: waits in `espera`; an admin removes it.
    let mut b = caller(&gw, "b");
    assert_eq!(b.call("200", "0", true).status(), Some(200));
    assert!(eventually(SLOW, || waiting(
        &gw,
        "espera",
        "b@records-queue"
    )));
    let b_bye = answer_bye(b, SLOW);
    let (status, body) = api(&gw, "DELETE", "/api/queues/espera/callers/b@records-queue");
    assert!((200..300).contains(&status), "DELETE: {status} {body}");
    assert!(b_bye.join().unwrap(), "B is hung up by the gateway");

    // C: waits in `espera` and hangs up: a real abandonment.
    let mut c = caller(&gw, "c");
    assert_eq!(c.call("200", "0", true).status(), Some(200));
    assert!(eventually(SLOW, || waiting(
        &gw,
        "espera",
        "c@records-queue"
    )));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.hangup("200").and_then(|m| m.status()), Some(200));

    // D: waits 1 s in `desborde`, is transferred, talks, hangs up.
    let (acked_tx, acked) = mpsc::channel();
    let target = transfer_target(target_sock, acked_tx, SLOW * 2);
    let mut d = caller(&gw, "d");
    assert_eq!(d.call("300", "0", true).status(), Some(200));
    acked
        .recv_timeout(SLOW)
        .unwrap_or_else(|_| panic!("the transfer target was not called\n{}", gw.log_text()));
    assert!(eventually(SLOW, || call_state(&gw, "d@records-queue")
        .as_deref()
        == Some("bridged")));
    assert_eq!(d.hangup("300").and_then(|m| m.status()), Some(200));
    assert!(target.join().unwrap(), "the target's leg is hung up");

    // A reload of the plans.
    assert_eq!(api(&gw, "POST", "/api/reload").0, 200);

    // E: waits in `espera` when the gateway stops.
    let mut e = caller(&gw, "e");
    assert_eq!(e.call("200", "0", true).status(), Some(200));
    assert!(eventually(SLOW, || waiting(
        &gw,
        "espera",
        "e@records-queue"
    )));
    let e_bye = answer_bye(e, SLOW);
    let log = gw.dir.path().join("gateway.log");
    let st = gw.stop();
    assert!(
        st.success(),
        "{st:?}\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    assert!(e_bye.join().unwrap(), "E is hung up on shutdown");

    let db = rusqlite::Connection::open(data.join("records.sqlite3")).unwrap();
    let ev = |id: &str| events(&db, &format!("{id}@records-queue"));
    let cd = |id: &str| cdr(&db, &format!("{id}@records-queue"));

    assert_eq!(names(&ev("a")), ["JOINEMPTY"]);
    assert_eq!(cd("a").0, "overflowed");

    let b_ev = ev("b");
    assert_eq!(names(&b_ev), ["ENTERQUEUE", "REMOVED"], "{b_ev:?}");
    assert_eq!(b_ev[1][4], "admin", "who removed B: {b_ev:?}");
    assert_eq!(cd("b"), ("removed".into(), "removed".into()));

    assert_eq!(names(&ev("c")), ["ENTERQUEUE", "ABANDON"]);
    assert_eq!(cd("c").0, "abandoned");

    let d_ev = ev("d");
    assert_eq!(
        names(&d_ev),
        ["ENTERQUEUE", "EXITWITHTIMEOUT", "TRANSFER"],
        "{d_ev:?}"
    );
    assert_eq!(d_ev[2][1], target_uri, "TRANSFER names the destination");
    assert_eq!(d_ev[2][2], "desborde", "and the plan");
    assert_eq!(cd("d").0, "transferred");

    let e_ev = ev("e");
    assert_eq!(names(&e_ev), ["ENTERQUEUE", "REMOVED"], "{e_ev:?}");
    assert_eq!(e_ev[1][4], "shutdown");
    assert_eq!(cd("e"), ("removed".into(), "shutdown".into()));

    let reloads: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM queue_event WHERE event = 'CONFIGRELOAD' AND call_id IS NULL AND queue IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reloads, 1);
    let abandons: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM queue_event WHERE event = 'ABANDON'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(abandons, 1, "only C abandoned");
    drop(db);

    // The next start rebuilds the statistics from the stored log: one
    // abandonment (C), not three.
    let gw = Gw::start(&cfg);
    let (_, body) = api(&gw, "GET", "/api/queues");
    let queues: Value = serde_json::from_str(&body).unwrap();
    let espera = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "espera")
        .unwrap_or_else(|| panic!("no espera in {queues}"));
    assert_eq!(espera["stats"]["abandoned"], 1, "{espera}");
}
