//! Finished transactions on the wire: they still absorb retransmissions,
//! and they no longer count against `sip.max_transactions` (which refused
//! call 25,001 of a steady 1,000 calls/s on the shipped limit).

mod common;

use std::time::Duration;

use common::ua::Ua;
use common::{Gw, sipp};

#[test]
fn finished_calls_do_not_fill_the_transaction_limit() {
    // Room for 20 live transactions. Each short call leaves two finished
    // ones for 32 s, so counted as before this limit refused call 11 on.
    let gw = Gw::start("[sip]\nmax_transactions = 20\n");
    let r = sipp(
        "uac_basic.xml",
        gw.udp,
        &[
            "-m", "60", "-r", "20", "-l", "5", "-d", "0", "-s", "5550000",
        ],
        Duration::from_secs(60),
    );
    assert!(
        r.ok,
        "sipp failed\n--- stdout\n{}\n--- stderr\n{}\n--- gateway log\n{}",
        r.stdout,
        r.stderr,
        gw.log_text()
    );
    let m = gw.metrics();
    let get = |name: &str, labels: &[&str]| common::metric_sum(&m, name, labels);
    assert_eq!(
        get(
            "conmutador_sip_overload_rejections_total",
            &["reason=\"transactions\""]
        ),
        0.0
    );
    assert_eq!(get("conmutador_sip_503_sent_total", &[]), 0.0);
    // Both transactions of every call still absorb, outside the limit.
    assert_eq!(get("conmutador_sip_transactions_absorbing", &[]), 120.0);
    assert!(get("conmutador_sip_transactions_active", &[]) <= 20.0);
    assert_eq!(get("conmutador_sip_absorbing_evicted_total", &[]), 0.0);
}

#[test]
fn a_finished_call_still_answers_copies_of_its_requests() {
    let gw = Gw::start("");
    let mut ua = Ua::new(gw.udp);
    let uri = ua.uri("5550000");
    let sdp = ua.sdp_offer("0", true);
    let invite = ua.request("INVITE", &uri, "", Some(("application/sdp", &sdp)));
    ua.send(&invite);
    let ok = ua
        .final_response(Duration::from_secs(10))
        .expect("200 to INVITE");
    assert_eq!(ok.status(), Some(200));
    ua.to_tag = ok.to_tag();
    ua.send(&ua.request("ACK", &uri, "", None));
    ua.cseq += 1;
    let bye = ua.request("BYE", &uri, "", None);
    ua.send(&bye);
    let first = ua
        .final_response(Duration::from_secs(5))
        .expect("200 to BYE");
    assert_eq!(first.status(), Some(200));
    let started = gw.metric("conmutador_calls_started_total", &[]);

    // The BYE again (same branch): the same 200, from the finished
    // transaction; the call is long gone, so a 481 would mean it was lost.
    ua.send(&bye);
    let again = ua
        .final_response(Duration::from_secs(5))
        .expect("200 to the repeated BYE");
    assert_eq!(again.0, first.0);

    // The INVITE again: swallowed, not a new call and no answer.
    ua.send(&invite);
    assert!(
        ua.recv(Duration::from_secs(1)).is_none(),
        "a repeated INVITE was answered"
    );
    assert_eq!(gw.metric("conmutador_calls_started_total", &[]), started);
    assert!(
        gw.metric(
            "conmutador_sip_retransmissions_total",
            &["kind=\"response\""]
        ) >= 1.0
    );
}

#[test]
fn refused_callers_that_never_ack_do_not_fill_the_transaction_limit() {
    // Every call is refused (max_calls = 0) with a stateful 503 that the
    // callers never ACK, so each is resent for 32 s. Counted as live work,
    // ten of them filled this table and the rest got the stateless
    // "transactions" refusal instead.
    let gw = Gw::start("[sip]\nmax_transactions = 10\nmax_calls = 0\n");
    let mut callers = Vec::new();
    for _ in 0..40 {
        let ua = Ua::new(gw.udp);
        let uri = ua.uri("5550000");
        let sdp = ua.sdp_offer("0", true);
        ua.send(&ua.request("INVITE", &uri, "", Some(("application/sdp", &sdp))));
        let refused = ua
            .final_response(Duration::from_secs(5))
            .expect("an answer to INVITE");
        assert_eq!(refused.status(), Some(503));
        callers.push(ua);
    }
    let m = gw.metrics();
    let get = |labels: &[&str]| {
        common::metric_sum(&m, "conmutador_sip_overload_rejections_total", labels)
    };
    assert_eq!(get(&["reason=\"calls\""]), 40.0);
    assert_eq!(get(&["reason=\"transactions\""]), 0.0);
    assert!(common::metric_sum(&m, "conmutador_sip_transactions_active", &[]) <= 10.0);
    // Still resending its 503 to the first caller, who never ACKed (Timer G).
    let again = callers[0]
        .final_response(Duration::from_secs(5))
        .expect("the 503 again");
    assert_eq!(again.status(), Some(503));
}
