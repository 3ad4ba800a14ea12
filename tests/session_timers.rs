//! Session timers (RFC 4028) against the real binary with SIPp as the
//! carrier: a carrier that promises to refresh and does not is hung up
//! before its session expires; a carrier that cannot refresh gets the
//! gateway as refresher (re-INVITE at half the interval); an interval below
//! our Min-SE is refused 422. Each session is the RFC's shortest (90 s), so
//! these tests take a minute each and run side by side.

mod common;

use std::time::Duration;

use common::{Gw, plan_dir_with_prompts, sipp};

/// A gateway whose plan holds the caller in a silent menu for five
/// minutes, and that does not hang up on SIPp's silence: only the session
/// timer can end these calls.
fn gateway(dir: &std::path::Path) -> Gw {
    let plans = plan_dir_with_prompts(dir);
    std::fs::write(
        plans.join("espera.toml"),
        r#"
[plan]
name = "espera"
start = "espera"
languages = ["es-MX"]
numbers = ["100"]
default = true

[nodes.espera]
type = "menu"
prompts = ["transferencia"]
timeout = 300
max_retries = 0
options = { 9 = "adios" }
exhausted = "adios"

[nodes.adios]
type = "hangup"
"#,
    )
    .expect("write the plan");
    Gw::start(&format!(
        "[dialplans]\ndir = \"{}\"\n[media]\nrtp_timeout = 600\n",
        plans.display()
    ))
}

fn run(gw: &Gw, scenario: &str) {
    let r = sipp(
        scenario,
        gw.udp,
        &["-m", "1", "-s", "100"],
        Duration::from_secs(120),
    );
    assert!(
        r.ok,
        "sipp {scenario} failed\n--- stdout\n{}\n--- stderr\n{}\n--- gateway log\n{}",
        r.stdout,
        r.stderr,
        gw.log_text()
    );
}

#[test]
fn a_carrier_that_stops_refreshing_is_hung_up_before_the_session_expires() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path());
    let started = std::time::Instant::now();
    run(&gw, "uac_session_timer_expire.xml");
    // The BYE comes at 60 s of a 90 s session: not at the RTP timeout
    // (600 s) nor at the menu's (300 s).
    assert!(started.elapsed() < Duration::from_secs(100));
    assert!(common::eventually(Duration::from_secs(5), || {
        gw.metric(
            "conmutador_calls_ended_total",
            &["reason=\"session_expired\""],
        ) == 1.0
    }));
}

#[test]
fn the_gateway_refreshes_for_a_carrier_that_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path());
    run(&gw, "uac_session_timer_refresh.xml");
    assert!(common::eventually(Duration::from_secs(5), || {
        gw.metric("conmutador_session_refreshes_total", &["by=\"gateway\""]) == 1.0
            && gw.metric(
                "conmutador_calls_ended_total",
                &["reason=\"caller_hangup\""],
            ) == 1.0
    }));
}

#[test]
fn an_interval_below_our_min_se_is_refused_422() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path());
    run(&gw, "uac_session_too_small.xml");
}
