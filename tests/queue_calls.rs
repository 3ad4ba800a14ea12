//! Queues with real phones: baresip operators register with a password and
//! auto-answer; callers (the in-test UA and SIPp) wait in a queue, hear hold
//! music and announcements, are bridged, and both sides hear each other.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::baresip::{Baresip, BaresipOpts, write_tone_wav};
use common::talk_both_ways;
use common::ua::{Heard, Ua, heard, heard_at, heard_start};
use common::{Gw, eventually, shipped};

/// A plan folder with every shipped prompt and a plan that sends number
/// "100" to queue `pasaportes` and "200" to the same queue at priority 10.
fn queue_plan(dir: &Path) -> PathBuf {
    let plans = common::plan_dir_with_prompts(dir);
    // Both plans put the caller straight into `pasaportes`; they differ in
    // name, number and what they add to [plan] and to the queue node.
    let plan = |name: &str, number: &str, plan_extra: &str, queue_extra: &str| {
        format!(
            r#"
[plan]
name = "{name}"
start = "cola"
languages = ["es-MX"]
numbers = ["{number}"]
{plan_extra}

[nodes.cola]
type = "queue"
queue = "pasaportes"
{queue_extra}
prompts = ["transferencia"]
on_empty = "adios"
overflow = "adios"

[nodes.adios]
type = "hangup"
prompts = ["despedida"]
"#
        )
    };
    std::fs::write(
        plans.join("colas.toml"),
        plan("colas", "100", "default = true", ""),
    )
    .unwrap();
    std::fs::write(
        plans.join("urgente.toml"),
        plan("urgente", "200", "", "priority = 10"),
    )
    .unwrap();
    plans
}

fn queue_config(plans: &Path, strategy: &str, operators: &[(&str, &str)]) -> String {
    queue_config_with(plans, strategy, operators, "")
}

/// As [`queue_config`], with extra `[sip]` keys.
fn queue_config_with(
    plans: &Path,
    strategy: &str,
    operators: &[(&str, &str)],
    sip: &str,
) -> String {
    let mut cfg = format!(
        r#"
[sip]
auth_algorithms = ["MD5"]
{sip}
[dialplans]
dir = "{}"
watch = false
[[queues]]
name = "pasaportes"
strategy = "{strategy}"
ring_timeout = 15
announce_interval = 20
"#,
        plans.display()
    );
    for (id, pw) in operators {
        cfg.push_str(&format!(
            "[[operators]]\nid = \"{id}\"\npassword = \"{pw}\"\nqueues = [{{ name = \"pasaportes\" }}]\n"
        ));
    }
    cfg
}

fn operator(gw: &Gw, id: &str, pw: &str, wav: Option<PathBuf>, auto: bool) -> Baresip {
    common::operator_phone(gw, id, pw, wav, auto)
}

#[test]
fn registered_operator_is_bridged_and_both_sides_hear_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let plans = queue_plan(tmp.path());
    let gw = Gw::start(&queue_config(&plans, "longest_idle", &[("op1", "s3cret")]));
    let wav = tmp.path().join("op-tone.wav");
    write_tone_wav(&wav, 440.0, 30.0, 8000).unwrap();
    let phone = operator(&gw, "op1", "s3cret", Some(wav), true);
    assert!(gw.metric("conmutador_registrations_active", &[]) >= 1.0);

    let mut ua = Ua::new(gw.udp);
    let resp = ua.call("100", "0", true);
    assert_eq!(resp.status(), Some(200), "{resp:?}");
    ua.send_pcmu(&[0; 160], true);
    assert!(
        phone.wait_call_established(Duration::from_secs(20)),
        "operator never got the call\n{}",
        gw.log_text()
    );
    talk_both_ways(&mut ua, &phone);

    // The caller hangs up: the operator's leg ends with BYE too.
    assert_eq!(ua.hangup("100").and_then(|m| m.status()), Some(200));
    assert!(
        phone.wait_call_closed(Duration::from_secs(10)),
        "operator leg closed"
    );
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_calls_ended_total",
        &["reason=\"caller_hangup\"", "result=\"completed\""]
    ) >= 1.0));
}

#[test]
fn ring_all_connects_one_operator_and_cancels_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let plans = queue_plan(tmp.path());
    let ops = [("op1", "pw1"), ("op2", "pw2"), ("op3", "pw3")];
    let gw = Gw::start(&queue_config(&plans, "ring_all", &ops));
    let wav = tmp.path().join("op-tone.wav");
    write_tone_wav(&wav, 440.0, 30.0, 8000).unwrap();
    // op2 answers at once; op1 and op3 only ring.
    let p1 = operator(&gw, "op1", "pw1", Some(wav.clone()), false);
    let p2 = operator(&gw, "op2", "pw2", Some(wav.clone()), true);
    let p3 = operator(&gw, "op3", "pw3", Some(wav), false);

    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call("100", "0", true).status(), Some(200));
    assert!(
        p2.wait_call_established(Duration::from_secs(20)),
        "op2 answered\n{}",
        gw.log_text()
    );
    // The losers rang and were cancelled, never connected.
    for p in [&p1, &p3] {
        assert!(
            p.wait_call_incoming(Duration::from_secs(10)),
            "every operator rang\n{}",
            p.log()
        );
        assert!(
            p.wait_call_closed(Duration::from_secs(10)),
            "ringing leg cancelled\n{}",
            p.log()
        );
        assert!(
            p.events().iter().all(|e| e.kind != "CALL_ESTABLISHED"),
            "loser never connected"
        );
    }
    assert!(p2.is_running());
    ua.hangup("100");
    assert!(p2.wait_call_closed(Duration::from_secs(10)));
}

#[test]
fn wrong_password_is_refused_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let plans = queue_plan(tmp.path());
    let gw = Gw::start(&queue_config(&plans, "longest_idle", &[("op1", "right")]));
    let mut opts = BaresipOpts::operator("op1", "wrong", gw.udp);
    opts.quit_after = Duration::from_secs(30);
    let phone = Baresip::start(opts);
    assert!(
        !phone.wait_registered(Duration::from_secs(6)),
        "a wrong password must not log in"
    );
    assert_eq!(gw.metric("conmutador_registrations_active", &[]), 0.0);
    assert!(gw.metric("conmutador_auth_failures_total", &[]) >= 1.0);
}

#[test]
fn callers_wait_hear_hold_music_and_an_announcement_when_nobody_is_free() {
    let tmp = tempfile::tempdir().unwrap();
    let plans = queue_plan(tmp.path());
    let gw = Gw::start(&queue_config(&plans, "longest_idle", &[("op1", "pw")]));
    // The operator is logged in but busy on another caller, so the next
    // caller waits: position 1 and an estimate are announced on entry.
    let wav = tmp.path().join("op-tone.wav");
    write_tone_wav(&wav, 440.0, 60.0, 8000).unwrap();
    let phone = operator(&gw, "op1", "pw", Some(wav), true);
    let mut first = Ua::new(gw.udp);
    assert_eq!(first.call("100", "0", true).status(), Some(200));
    assert!(phone.wait_call_established(Duration::from_secs(20)));

    let mut second = Ua::new(gw.udp);
    assert_eq!(second.call("100", "0", true).status(), Some(200));
    second.send_pcmu(&[0; 160], true);
    let cap = second.receive_audio(Duration::from_secs(8));
    assert!(
        cap.packets.len() > 250,
        "the waiting caller hears something all along"
    );
    assert!(cap.rms() > 300.0, "never silence while waiting");
    assert!(eventually(Duration::from_secs(5), || gw
        .metric("conmutador_calls_active", &["state=\"queued\""])
        >= 1.0));
    // The waiting caller gives up: counted as abandoned.
    second.hangup("100");
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_calls_ended_total",
        &["result=\"abandoned\""]
    ) >= 1.0));
    first.hangup("100");
}

#[test]
fn an_operator_phone_that_stops_answering_options_gets_no_calls() {
    let tmp = tempfile::tempdir().unwrap();
    let plans = queue_plan(tmp.path());
    // Short timers so the OPTIONS transaction gives up in seconds.
    let cfg = queue_config_with(
        &plans,
        "longest_idle",
        &[("op1", "pw")],
        "t1_ms = 100\noperator_ping_secs = 1",
    );
    let gw = Gw::start(&cfg);
    let phone = operator(&gw, "op1", "pw", None, true);
    let available = || {
        gw.metric(
            "conmutador_operators",
            &["queue=\"pasaportes\"", "state=\"available\""],
        )
    };
    assert!(
        eventually(Duration::from_secs(5), || available() >= 1.0),
        "{}",
        gw.metrics()
    );
    // The phone dies without unregistering.
    common::unsafe_kill(phone.pid(), "KILL");
    assert!(
        eventually(Duration::from_secs(20), || gw.metric(
            "conmutador_operators",
            &["queue=\"pasaportes\"", "state=\"unreachable\""]
        ) >= 1.0),
        "dead phone marked unreachable\n{}",
        gw.metrics()
    );
    assert_eq!(available(), 0.0);
}

#[test]
fn queue_statistics_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let plans = queue_plan(tmp.path());
    let data = tmp.path().join("data");
    let cfg = format!(
        "{}\n[storage]\ndata_dir = \"{}\"\n",
        queue_config(&plans, "longest_idle", &[("op1", "pw")]),
        data.display()
    );
    let abandoned = |gw: &Gw| -> u64 {
        let (status, body) = common::http_get(gw.http.unwrap(), "/api/queues", Some("test-token"));
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == "pasaportes")
            .map(|q| q["stats"]["abandoned"].as_u64().unwrap())
            .unwrap()
    };
    let gw = Gw::start(&cfg);
    // Nobody is logged in, but the queue admits callers; this one gives up.
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call("100", "0", true).status(), Some(200));
    assert!(eventually(Duration::from_secs(5), || gw
        .metric("conmutador_calls_active", &["state=\"queued\""])
        >= 1.0));
    ua.hangup("100");
    assert!(eventually(Duration::from_secs(5), || abandoned(&gw) == 1));
    assert!(gw.stop().success());

    let gw = Gw::start(&cfg);
    assert_eq!(
        abandoned(&gw),
        1,
        "the abandoned caller is remembered after a restart"
    );
}

#[test]
fn operators_pause_and_unpause_from_the_phone_with_feature_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let plans = queue_plan(tmp.path());
    // The phone is not on a trunk address: its INVITEs must authenticate.
    let cfg = format!(
        "{}\n[trunks]\nallow = [\"192.0.2.0/24\"]\n",
        queue_config(&plans, "longest_idle", &[("op1", "pw")])
    );
    let gw = Gw::start(&cfg);
    let phone = operator(&gw, "op1", "pw", None, true);
    let state = || {
        let (status, body) =
            common::http_get(gw.http.unwrap(), "/api/operators", Some("test-token"));
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == "op1")
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(eventually(Duration::from_secs(5), || state() == "available"));
    phone.dial(&format!("sip:*21@{}", gw.udp));
    assert!(
        eventually(Duration::from_secs(10), || state() == "paused"),
        "*21 pauses\n{}\n{}",
        phone.log(),
        gw.log_text()
    );
    // The confirmation call ends by itself.
    assert!(phone.wait_call_closed(Duration::from_secs(10)));
    phone.dial(&format!("sip:*22@{}", gw.udp));
    assert!(
        eventually(Duration::from_secs(10), || state() == "available"),
        "*22 unpauses"
    );
    // Anyone else dialling from outside the trunks is still refused.
    let mut stranger = Ua::new(gw.udp);
    assert_eq!(stranger.call("100", "0", true).status(), Some(403));
}

/// The shipped plan and configuration end to end: operator op1 logs in with
/// its shipped password; a first caller takes op1 through the language menu
/// and key 5 (consular protection, open at any hour); a second caller takes
/// the same path, waits and hears its position and estimated wait spoken in
/// Spanish; when the first hangs up, the second is bridged to op1 and both
/// hear each other.
#[test]
fn shipped_plan_caller_waits_hears_position_and_wait_then_talks_to_an_operator() {
    const LONG: Duration = Duration::from_secs(90);
    let tmp = tempfile::tempdir().unwrap();
    // Shipped, but for MD5 only: baresip 1.0 fails on any SHA-256 challenge.
    let gw = Gw::start("[media]\nrtp_timeout = 300\n[sip]\nauth_algorithms = [\"MD5\"]\n");
    let wav = tmp.path().join("op-tone.wav");
    write_tone_wav(&wav, 440.0, 90.0, 8000).unwrap();
    let phone = operator(&gw, "op1", "cambiame-op1", Some(wav), true);

    // Spanish (1), then 5 in whichever menu the hour leads to: main menu,
    // closed or holiday all take 5 for protection.
    let through_the_menus = |ua: &mut Ua, h: &mut Heard| {
        assert_eq!(ua.call("18776394835", "0", true).status(), Some(200));
        ua.send_pcmu(&[0; 160], true);
        assert!(ua.wait_heard(h, &shipped("en", "idioma_en"), LONG));
        ua.send_rfc4733_digit('1', 101);
        assert!(
            ua.wait_until(h, LONG, |s| {
                ["menu_principal", "fuera_de_horario", "dia_festivo"]
                    .iter()
                    .any(|p| heard_start(s, &shipped("es-MX", p), Duration::from_secs(1)))
            }),
            "a Spanish menu after the language choice"
        );
        ua.send_rfc4733_digit('5', 101);
        assert!(ua.wait_heard(h, &shipped("es-MX", "proteccion_intro"), LONG));
    };
    let mut first = Ua::new(gw.udp);
    through_the_menus(&mut first, &mut Heard::default());
    assert!(
        phone.wait_call_established(Duration::from_secs(20)),
        "op1 never got the first caller\n{}",
        gw.log_text()
    );

    let mut second = Ua::new(gw.udp);
    let mut h = Heard::default();
    through_the_menus(&mut second, &mut h);
    // On entry: "Usted ocupa el lugar número uno. El tiempo estimado de
    // espera es de ..." over the hold music.
    assert!(
        second.wait_heard(&mut h, &shipped("es-MX", "say_espera"), LONG),
        "the waiting caller hears the estimated wait\n{}",
        gw.log_text()
    );
    let s = h.samples();
    let place = heard_at(s, &shipped("es-MX", "say_lugar")).expect("position announced");
    let one = heard_at(&s[place..], &shipped("es-MX", "num_uno")).expect("number one");
    assert!(
        heard(&s[place + one..], &shipped("es-MX", "say_espera")),
        "position, then the wait"
    );
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_queue_callers_waiting",
        &["queue=\"proteccion\""]
    ) == 1.0));

    // The first caller hangs up; op1 is free and takes the second at once.
    assert_eq!(
        first.hangup("18776394835").and_then(|m| m.status()),
        Some(200)
    );
    assert!(phone.wait_call_closed(Duration::from_secs(10)));
    assert!(
        phone.wait_call_established(Duration::from_secs(20)),
        "op1 never got the waiting caller\n{}",
        gw.log_text()
    );
    talk_both_ways(&mut second, &phone);
    // What was announced is scored against the wait that followed.
    assert!(
        gw.metric(
            "conmutador_queue_wait_prediction_error_seconds_count",
            &["queue=\"proteccion\""]
        ) >= 1.0
    );
    assert_eq!(
        second.hangup("18776394835").and_then(|m| m.status()),
        Some(200)
    );
    assert!(phone.wait_call_closed(Duration::from_secs(10)));
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_calls_ended_total",
        &["result=\"completed\""]
    ) == 2.0));
}
