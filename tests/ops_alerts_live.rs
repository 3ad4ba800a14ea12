//! Every shipped alert can fire against the real gateway: a real Prometheus
//! (Debian's `prometheus`) scrapes `conmutador run` every second and
//! evaluates the SHIPPED `docker/prometheus/alerts.yml`, loaded by path and
//! unchanged, every second; the test drives each situation an alert is
//! about and reads Prometheus' `/api/v1/alerts` until the alert is pending
//! or firing (`for:` durations are minutes, so pending is the proof that
//! the expression matched live series).
//!
//! The situations: no operator logged in while a queue is open (the test
//! plan sends every call straight to its queue at any hour); callers
//! waiting longer than the queue's `wait_alert` (3 s here); callers hanging
//! up in the queue (service level 0, abandon rate 1 over 13 callers); RTP
//! flooded into a call's port faster than the gateway reads it (the kernel
//! drops datagrams at its 8 KiB receive buffer); a source blocked by the
//! guard for flooding (junk INVITEs from 127.0.0.3, not a trunk here);
//! 503s while draining; and the gateway stopped. The list of alerts is read from the rules file, so
//! an alert added there fails this test until it is driven here.
//!
//! No tool may be missing: without `prometheus` or `sipp` the test fails.
//! All traffic is on loopback and bounded (one SIPp run of 12 calls, one
//! burst of at most 5 × 3,000 datagrams, at most 3 × 300 junk INVITEs); the
//! gateway and Prometheus are stopped by their own handles.

mod common;

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use common::prometheus::Prometheus;
use common::ua::Ua;
use common::vocabulary::{Configured, check_every_family_present, check_label_values};
use common::{Gw, eventually, http_request, repo, sipp};
use serde_json::Value;

/// Generous: the machine is small and shared.
const LIMIT: Duration = Duration::from_secs(90);

/// Names of the alerts pending or firing now.
fn active_alerts(prom: &Prometheus) -> BTreeSet<String> {
    prom.get("/api/v1/alerts")
        .and_then(|v| v["data"]["alerts"].as_array().cloned())
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "pending" || a["state"] == "firing")
        .filter_map(|a| a["labels"]["alertname"].as_str().map(String::from))
        .collect()
}

/// The alert names of the shipped rules file.
fn shipped_alerts(rules: &Path) -> BTreeSet<String> {
    let doc: Value = serde_norway::from_str(&std::fs::read_to_string(rules).expect("rules"))
        .expect("rules YAML");
    doc["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["alert"].as_str().map(String::from))
        .collect()
}

/// Polls the alerts until every one of `want` has been seen pending or
/// firing (adding all it sees to `seen`); fails after `LIMIT`.
fn wait_for(prom: &Prometheus, gw: Option<&Gw>, seen: &mut BTreeSet<String>, want: &[&str]) {
    let deadline = Instant::now() + LIMIT;
    loop {
        seen.extend(active_alerts(prom));
        if want.iter().all(|w| seen.contains(*w)) {
            return;
        }
        if Instant::now() > deadline {
            let rules = prom.get("/api/v1/rules").unwrap_or_default();
            panic!(
                "never pending or firing: {:?} (seen {seen:?})\n--- rules\n{rules:#}\n--- prometheus log\n{}\n--- gateway metrics\n{}",
                want.iter()
                    .filter(|w| !seen.contains(**w))
                    .collect::<Vec<_>>(),
                prom.log(),
                gw.map(Gw::metrics).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Not a trunk in this test: its flood is blocked, not only limited.
const FLOODER: &str = "127.0.0.3";

/// A plan that sends every call, at any hour, to the queue `alertas`.
const PLAN: &str = r#"
[plan]
name = "alertas"
start = "cola"
languages = ["es-MX"]
default = true

[nodes.cola]
type = "queue"
queue = "alertas"
"#;

const QUEUES: &str = r#"
[[queues]]
name = "alertas"
join_empty = "never"
leave_when_empty = "never"
service_level_threshold = 60
wait_alert = 3

[[operators]]
id = "op-alertas"
password = "alertas-secreto"
queues = [{ name = "alertas" }]
"#;

/// Calls of `alertas` are recorded, on a disk that never has enough room
/// (the minimum free space is absurd): the caller of step 2 is not recorded.
const RECORDING: &str = r#"
[recording]
min_free_mb = 1000000000000
[recording.queues]
alertas = "all"
"#;

#[test]
fn every_shipped_alert_goes_pending_against_the_live_gateway() {
    let rules = repo().join("docker/prometheus/alerts.yml");
    let all = shipped_alerts(&rules);
    assert!(all.len() >= 7, "{all:?}");

    let plans = tempfile::tempdir().expect("tempdir");
    std::fs::write(plans.path().join("alertas.toml"), PLAN).expect("plan");
    std::os::unix::fs::symlink(
        repo().join("dialplans/prompts"),
        plans.path().join("prompts"),
    )
    .expect("link prompts");
    // The load guard stays off: on a busy machine it would answer some of
    // the callers below 503 before the test means 503s to be sent (draining).
    // The test's own callers (UA, SIPp) send from 127.0.0.1, the trunk;
    // the rest of 127.0.0.0/8 are strangers the guard may block.
    let extra = format!(
        "[sip]\noverload_media_late_ms = 0\noverload_signalling_lag_ms = 0\n\
         [trunks]\nallow = [\"127.0.0.1/32\"]\n\
         [dialplans]\ndir = \"{}\"\nwatch = false\n{QUEUES}{RECORDING}",
        plans.path().display()
    );
    let gw = Gw::start(&extra);
    let http = gw.http.expect("http listener");
    let prom = Prometheus::start(http, Some(&rules));

    // Prometheus scrapes the gateway and has evaluated the rules.
    assert!(
        eventually(LIMIT, || {
            prom.get("/api/v1/query?query=up%7Bjob%3D%22conmutador%22%7D")
                .is_some_and(|v| v["data"]["result"][0]["value"][1] == "1")
        }),
        "no scrape of {http}; prometheus log:\n{}",
        prom.log()
    );
    let mut seen = BTreeSet::new();

    // 1. The queue is open (its plan leads there now) and its only
    // operator is logged out.
    wait_for(
        &prom,
        Some(&gw),
        &mut seen,
        &["ConmutadorNoOperatorsInOfficeHours"],
    );

    // 2. A caller waits past the queue's wait_alert; meanwhile its call's
    // RTP port is flooded faster than the gateway reads it.
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call("alertas", "0", true).status(), Some(200));
    let rtp = ua.remote_rtp.expect("the gateway's RTP address");
    let flood = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut packet = vec![0u8; 172];
    packet[0] = 0x80;
    for burst in 0..5 {
        for i in 0..3000u16 {
            packet[2..4].copy_from_slice(&i.to_be_bytes());
            let _ = flood.send_to(&packet, rtp);
        }
        if eventually(Duration::from_secs(3), || {
            gw.metric("conmutador_rtp_kernel_drops_total", &[]) > 0.0
        }) {
            break;
        }
        assert!(burst < 4, "no kernel drops after 5 bursts");
    }
    wait_for(
        &prom,
        Some(&gw),
        &mut seen,
        &[
            "ConmutadorKernelDroppingPackets",
            "ConmutadorOldestWaitHigh",
            "ConmutadorRecordingFailing",
        ],
    );
    assert_eq!(ua.hangup("alertas").and_then(|m| m.status()), Some(200));

    // 3. Twelve more callers hang up while waiting: service level 0,
    // abandon rate 1 over 13 callers.
    let r = sipp(
        "uac_basic.xml",
        gw.udp,
        &["-m", "12", "-r", "6", "-d", "2000", "-s", "alertas"],
        Duration::from_secs(120),
    );
    assert!(r.ok, "sipp failed\n{}\n{}", r.stdout, r.stderr);
    wait_for(
        &prom,
        Some(&gw),
        &mut seen,
        &["ConmutadorServiceLevelLow", "ConmutadorAbandonRateHigh"],
    );

    // 4. A stranger floods INVITEs (junk: none of them can become a call)
    // past its rate until the guard blocks it.
    let flooder = UdpSocket::bind(format!("{FLOODER}:0")).expect("bind the flooder");
    let junk = b"INVITE sip:flood@127.0.0.1 SIP/2.0\r\n\r\n";
    for burst in 0..3 {
        for _ in 0..300 {
            let _ = flooder.send_to(junk, gw.udp);
        }
        if eventually(Duration::from_secs(3), || {
            gw.metric("conmutador_guard_blocked_sources", &[]) > 0.0
        }) {
            break;
        }
        assert!(burst < 2, "the flooder was never blocked\n{}", gw.metrics());
    }
    assert!(gw.metric("conmutador_guard_blocks_total", &["reason=\"flood\""]) >= 1.0);
    wait_for(&prom, Some(&gw), &mut seen, &["ConmutadorSourcesBlocked"]);

    // 5. Draining: new callers get 503.
    let (status, body) = http_request(http, "POST", "/api/drain", Some("test-token"), None);
    assert_eq!(status, 200, "{body}");
    let mut late = Ua::new(gw.udp);
    assert_eq!(late.call("alertas", "0", true).status(), Some(503));
    wait_for(&prom, Some(&gw), &mut seen, &["ConmutadorSending503"]);

    // The label values of all this traffic are still the catalog's.
    let dump = gw.metrics();
    let configured = Configured::read(&toml::from_str(QUEUES).expect("queues TOML"), plans.path());
    check_every_family_present(&dump, &configured);
    check_label_values(&dump, &configured);

    // 6. The gateway goes away.
    let _ = gw.stop();
    wait_for(&prom, None, &mut seen, &["ConmutadorDown"]);

    let missed: Vec<&String> = all.difference(&seen).collect();
    assert!(
        missed.is_empty(),
        "shipped alerts never driven to pending: {missed:?}"
    );
}
