//! The gateway against SIPp, a real SIP user agent: every scenario in
//! tests/sipp runs against the real binary on 127.0.0.1.

mod common;

use std::time::Duration;

use common::{Gw, eventually, sipp};

fn run_ok(gw: &Gw, scenario: &str, args: &[&str]) {
    let r = sipp(scenario, gw.udp, args, Duration::from_secs(60));
    assert!(
        r.ok,
        "sipp {scenario} failed\n--- stdout\n{}\n--- stderr\n{}\n--- gateway log\n{}",
        r.stdout,
        r.stderr,
        gw.log_text()
    );
}

#[test]
fn invite_ack_bye_over_udp() {
    let gw = Gw::start("");
    run_ok(
        &gw,
        "uac_basic.xml",
        &["-m", "3", "-l", "3", "-d", "1500", "-s", "5550000"],
    );
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_calls_ended_total",
        &["reason=\"caller_hangup\""]
    ) >= 3.0));
}

#[test]
fn invite_ack_bye_over_tcp() {
    let gw = Gw::start("");
    let r = sipp(
        "uac_basic.xml",
        gw.tcp,
        &["-t", "t1", "-m", "2", "-d", "1000", "-s", "5550000"],
        Duration::from_secs(60),
    );
    assert!(
        r.ok,
        "sipp over TCP failed\n{}\n{}\n{}",
        r.stdout,
        r.stderr,
        gw.log_text()
    );
    assert!(
        gw.metric(
            "conmutador_sip_messages_total",
            &["method=\"INVITE\"", "direction=\"in\""]
        ) >= 2.0
    );
}

#[test]
fn options_is_answered_with_capabilities() {
    let gw = Gw::start("");
    run_ok(&gw, "options.xml", &["-m", "1"]);
}

#[test]
fn cancel_while_ringing_gets_200_and_487() {
    let gw = Gw::start("[calls]\nring_ms = 3000\n");
    run_ok(&gw, "uac_cancel.xml", &["-m", "1", "-s", "5550000"]);
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_calls_ended_total",
        &["reason=\"cancelled\""]
    ) >= 1.0));
}

#[test]
fn late_offer_takes_the_answer_from_the_ack() {
    let gw = Gw::start("");
    run_ok(
        &gw,
        "uac_late_offer.xml",
        &["-m", "1", "-d", "1000", "-s", "5550000"],
    );
}

#[test]
fn reinvite_hold_resume_and_update() {
    let gw = Gw::start("");
    run_ok(&gw, "uac_reinvite.xml", &["-m", "1", "-s", "5550000"]);
}

#[test]
fn rtp_timeout_hangs_up_with_bye() {
    let gw = Gw::start("[media]\nrtp_timeout = 2\n");
    // The scenario sends no RTP at all and waits for the gateway's BYE.
    run_ok(&gw, "uac_wait_bye.xml", &["-m", "1", "-s", "5550000"]);
    assert!(gw.metric("conmutador_calls_ended_total", &["reason=\"rtp_timeout\""]) >= 1.0);
}

#[test]
fn rfc4733_digit_from_sipp_pcap_reaches_the_menu() {
    let gw = Gw::start("");
    run_ok(
        &gw,
        "uac_dtmf.xml",
        &[
            "-m",
            "1",
            "-d",
            "1500",
            "-s",
            "5550000",
            "-key",
            "digit_pcap",
            "/usr/share/sip-tester/dtmf_2833_1.pcap",
        ],
    );
    assert!(
        eventually(Duration::from_secs(5), || gw
            .metric("conmutador_dtmf_digits_total", &["method=\"rfc4733\""])
            >= 1.0),
        "no RFC 4733 digit counted\n{}",
        gw.metrics()
    );
}

#[test]
fn ipv6_listener_answers_calls() {
    let gw = Gw::start("[sip]\nlisten = [\"[::1]:0\"]\n[media]\nbind = \"::1\"\n");
    assert!(gw.udp.is_ipv6());
    let r = sipp(
        "uac_basic.xml",
        gw.udp,
        &["-m", "1", "-d", "1000", "-s", "5550000"],
        Duration::from_secs(60),
    );
    assert!(
        r.ok,
        "sipp over IPv6 failed\n{}\n{}\n{}",
        r.stdout,
        r.stderr,
        gw.log_text()
    );
}
