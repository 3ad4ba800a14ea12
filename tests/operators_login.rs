//! Operators logging in and out with real phones (baresip 1.0) on 127.0.0.1:
//! after a log-out through the admin API the phone's own next REGISTER (a
//! refresh) logs it in again and it takes a queued call; the API logs an
//! operator in; and feature codes work from a phone whose address lies
//! inside a trunk network, decided by the operator's digest credentials,
//! never by the source address.

mod common;

use std::path::Path;
use std::time::Duration;

use common::baresip::{Baresip, BaresipOpts};
use common::ua::Ua;
use common::{Gw, eventually, http_request};

/// Operators `op1` (password `pw`) and `op2` (`pw2`, never registers) on
/// queue `pasaportes`; the trunk network covers all of 127.0.0.0/8, where
/// the phones are too.
fn config(plans: &Path) -> String {
    format!(
        r#"
[sip]
auth_algorithms = ["MD5"]
[trunks]
allow = ["127.0.0.0/8"]
[dialplans]
dir = "{}"
watch = false
[[queues]]
name = "pasaportes"
strategy = "longest_idle"
ring_timeout = 15
announce_interval = 20
[[operators]]
id = "op1"
password = "pw"
queues = [{{ name = "pasaportes" }}]
[[operators]]
id = "op2"
password = "pw2"
queues = [{{ name = "pasaportes" }}]
"#,
        plans.display()
    )
}

/// The operator's entry in `GET /api/operators`.
fn operator(gw: &Gw, id: &str) -> serde_json::Value {
    let (status, body) = common::http_get(gw.http.unwrap(), "/api/operators", Some("test-token"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == id)
        .unwrap_or_else(|| panic!("no operator {id} in {body}"))
        .clone()
}

fn state(gw: &Gw, id: &str) -> String {
    operator(gw, id)["state"].as_str().unwrap().to_owned()
}

fn post(gw: &Gw, path: &str) -> (u16, String) {
    http_request(gw.http.unwrap(), "POST", path, Some("test-token"), None)
}

fn phone(gw: &Gw, regint: u32, quit_after: Duration) -> Baresip {
    let mut opts = BaresipOpts::operator("op1", "pw", gw.udp);
    opts.account = format!("<sip:op1@{}>;auth_pass=pw;regint={regint}", gw.udp);
    opts.auto_answer = true;
    opts.quit_after = quit_after;
    let phone = Baresip::start(opts);
    assert!(
        phone.wait_registered(Duration::from_secs(15)),
        "op1 did not register\n{}\n{}",
        phone.log(),
        gw.log_text()
    );
    phone
}

/// Logged out by the API, the operator is back with the API's log-in and,
/// logged out again, with its phone's next refresh REGISTER (baresip
/// refreshes a 60 s binding about 54 s in), and then takes a queued call.
#[test]
fn after_an_api_log_out_the_api_or_the_phones_refresh_logs_the_operator_in() {
    let tmp = tempfile::tempdir().unwrap();
    let plans = common::pasaportes_plan(tmp.path());
    let gw = Gw::start(&config(&plans));
    // 60 s is the registrar's Min-Expires: the quickest refresh it allows.
    let phone = phone(&gw, 60, Duration::from_secs(180));
    assert!(eventually(Duration::from_secs(5), || state(&gw, "op1") == "available"));

    let (status, body) = post(&gw, "/api/operators/op1/logout");
    assert_eq!(status, 200, "{body}");
    assert_eq!(state(&gw, "op1"), "logged_out");
    let (status, body) = post(&gw, "/api/operators/op1/login");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"available\""), "{body}");
    // An operator without a phone cannot be logged in: nothing could ring.
    let (status, body) = post(&gw, "/api/operators/op2/login");
    assert_eq!(status, 409, "{body}");
    assert_eq!(state(&gw, "op2"), "logged_out");
    assert_eq!(post(&gw, "/api/operators/nobody/login").0, 404);

    let (status, body) = post(&gw, "/api/operators/op1/logout");
    assert_eq!(status, 200, "{body}");
    assert_eq!(state(&gw, "op1"), "logged_out");
    let registered = phone.registrations();
    assert!(
        eventually(Duration::from_secs(90), || phone.registrations()
            > registered),
        "the phone never refreshed its registration\n{}",
        phone.log()
    );
    assert!(
        eventually(Duration::from_secs(5), || state(&gw, "op1") == "available"),
        "the refresh REGISTER did not log op1 in again\n{}",
        gw.log_text()
    );

    let mut ua = Ua::new(gw.udp);
    let resp = ua.call("100", "0", true);
    assert_eq!(resp.status(), Some(200), "{resp:?}");
    ua.send_pcmu(&[0; 160], true);
    assert!(
        phone.wait_call_established(Duration::from_secs(20)),
        "the operator logged in again never got the queued call\n{}",
        gw.log_text()
    );
    // The API names the call the operator talks to and how long it has.
    let (_, calls) = common::http_get(gw.http.unwrap(), "/api/calls", Some("test-token"));
    let calls: serde_json::Value = serde_json::from_str(&calls).unwrap();
    let call_id = calls[0]["call_id"].clone();
    assert!(call_id.is_string(), "{calls}");
    std::thread::sleep(Duration::from_millis(1100));
    let op = operator(&gw, "op1");
    assert_eq!(
        (&op["state"], &op["call_id"]),
        (&"on_call".into(), &call_id),
        "{op}"
    );
    assert!(op["state_seconds"].as_f64().unwrap() >= 1.0, "{op}");
    assert_eq!(ua.hangup("100").and_then(|m| m.status()), Some(200));
    assert!(phone.wait_call_closed(Duration::from_secs(10)));
}

/// An INVITE to a feature code from 127.0.0.1, a trunk address, carrying
/// `From: op1` and `credentials` (a header line or nothing).
fn feature_invite(ua: &Ua, code: &str, credentials: &str) -> String {
    let local = ua.local();
    let uri = ua.uri(code);
    format!(
        "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{code}{n};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:op1@{local}>;tag=f{n}\r\nTo: <{uri}>\r\n\
Call-ID: feature-{n}-{local}\r\nCSeq: 1 INVITE\r\nContact: <sip:op1@{local}>\r\n\
{credentials}Content-Length: 0\r\n\r\n",
        n = credentials.len()
    )
}

/// The phone is inside the trunk network: its *21/*22 still pause and
/// unpause it after the 407 challenge. Someone else from the same network
/// naming op1 without (or with wrong) credentials only gets 407 and pauses
/// nobody; a trunk caller dialling a feature code does not reach the plan.
#[test]
fn feature_codes_work_from_a_phone_inside_a_trunk_network() {
    let tmp = tempfile::tempdir().unwrap();
    let plans = common::pasaportes_plan(tmp.path());
    let gw = Gw::start(&config(&plans));
    let phone = phone(&gw, 600, Duration::from_secs(90));
    assert!(eventually(Duration::from_secs(5), || state(&gw, "op1") == "available"));

    phone.dial(&format!("sip:*21@{}", gw.udp));
    assert!(
        eventually(Duration::from_secs(10), || state(&gw, "op1") == "paused"),
        "*21 from a trunk address pauses\n{}\n{}",
        phone.log(),
        gw.log_text()
    );
    assert!(phone.wait_call_closed(Duration::from_secs(10)));
    phone.dial(&format!("sip:*22@{}", gw.udp));
    assert!(
        eventually(Duration::from_secs(10), || state(&gw, "op1") == "available"),
        "*22 from a trunk address unpauses\n{}",
        gw.log_text()
    );
    assert!(phone.wait_call_closed(Duration::from_secs(10)));

    for creds in [
        "",
        "Proxy-Authorization: Digest username=\"op1\", realm=\"x\", nonce=\"bad\", \
uri=\"sip:*21\", response=\"00000000000000000000000000000000\", algorithm=MD5\r\n",
    ] {
        // One socket each: the 407 of one is retransmitted (nobody ACKs).
        let stranger = Ua::new(gw.udp);
        stranger.send(&feature_invite(&stranger, "*21", creds));
        let resp = stranger
            .final_response(Duration::from_secs(5))
            .expect("an answer to the feature code");
        assert_eq!(resp.status(), Some(407), "{resp:?}");
    }
    // A trunk caller (not an operator) dialling *21 is challenged too,
    // rather than sent to the default plan.
    let mut caller = Ua::new(gw.udp);
    assert_eq!(caller.call("*21", "0", true).status(), Some(407));
    assert_eq!(
        state(&gw, "op1"),
        "available",
        "nobody paused op1 without its password"
    );
}

/// Without operators the codes mean nothing: a trunk caller dialling one
/// reaches the plan (here the shipped default plan answers).
#[test]
fn without_operators_a_feature_code_from_a_trunk_reaches_the_plan() {
    let gw = Gw::start("operators = []\n[trunks]\nallow = [\"127.0.0.0/8\"]\n");
    let mut caller = Ua::new(gw.udp);
    let resp = caller.call("*21", "0", true);
    assert_eq!(resp.status(), Some(200), "{resp:?}\n{}", gw.log_text());
    assert_eq!(caller.hangup("*21").and_then(|m| m.status()), Some(200));
}
