//! Callers navigate dialplans on the real gateway, and the test checks which
//! prompts they actually heard (decoded from the RTP they received, matched
//! sample by sample against the WAV files): the minimal menu of issue 2
//! with digits from RFC 4733, in-band tones, SIP INFO and SIPp; the shipped
//! Mexitel plan; live reload under load by SIGHUP, the admin API and the
//! file watcher; and `conmutador check` / `simulate` as processes.
//!
//! Everything runs on 127.0.0.1; every process started here is stopped by
//! PID. Waits are "until heard / until counted" with generous limits, never
//! fixed sleeps that assume a fast machine.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::ua::{
    Heard, Ua, heard, heard_at, heard_pcm_at, heard_start, linear_to_ulaw, ulaw_to_linear,
};
use common::{Gw, eventually, http_request, repo, shipped, sipp};

const NUMBER: &str = "5550000";
const LONG: Duration = Duration::from_secs(90);

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo().join("tests/fixtures/dialplans").join(name))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Copies a shipped prompt to `<dir>/prompts/es-MX/<name>.wav` (atomically:
/// the file watcher must never see half a file). A file that already holds
/// the same recording is left alone, so the watcher sees no change.
fn put_prompt(dir: &Path, name: &str, from: &Path) {
    let to = dir.join("prompts/es-MX");
    std::fs::create_dir_all(&to).unwrap();
    let dest = to.join(format!("{name}.wav"));
    if std::fs::read(&dest).ok() == Some(std::fs::read(from).unwrap()) {
        return;
    }
    let tmp = to.join(format!(".{name}.partial"));
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

/// Writes a plan file atomically.
fn put_plan(dir: &Path, file: &str, text: &str) {
    let tmp = dir.join(format!(".{file}.partial"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(file)).unwrap();
}

/// Gateway options for a plan folder of our own.
fn plan_config(dir: &Path, watch: bool) -> String {
    // rtp_timeout: our callers are silent while they listen, as phones on
    // mute are; the default 30 s would end the long calls of the reload test.
    format!(
        "[dialplans]\ndir = {:?}\nwatch = {watch}\n[media]\nrtp_timeout = 300\n",
        dir.display().to_string()
    )
}

fn visits(gw: &Gw, plan: &str, node: &str) -> f64 {
    gw.metric(
        "conmutador_ivr_node_visits_total",
        &[&format!("plan=\"{plan}\""), &format!("node=\"{node}\"")],
    )
}

// ---------------------------------------------------------------------------
// The recogniser itself.

#[test]
fn heard_finds_a_prompt_and_refuses_another() {
    let a = shipped("es-MX", "info_pasaportes");
    let pcm = common::ua::read_wav_pcm16(&a);
    // What a caller receives: some silence, the prompt through µ-law, more.
    let mut rx: Vec<i16> = vec![0; 1234];
    rx.extend(ulaw_roundtrip(&pcm));
    rx.extend(vec![0i16; 4000]);
    assert!(heard(&rx, &a), "the played prompt is recognised");
    assert_eq!(heard_at(&rx, &a), Some(1234), "and where it started");
    // Every other sentence of the shipped set is refused.
    for e in std::fs::read_dir(repo().join("dialplans/prompts/es-MX"))
        .unwrap()
        .flatten()
    {
        let p = e.path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if p.extension().is_some_and(|x| x == "wav")
            && name != "info_pasaportes"
            && !name.starts_with("num_")
        {
            assert!(!heard(&rx, &p), "{name} was not played but was 'heard'");
        }
    }
    // The same sentence in English is another recording.
    assert!(!heard(&rx, &shipped("en", "info_pasaportes")));
    // Half of a prompt is not the prompt, though its start was heard.
    let half: Vec<i16> = ulaw_roundtrip(&pcm[..pcm.len() / 2]);
    assert!(!heard(&half, &a));
    assert!(heard_start(&half, &a, Duration::from_secs(1)));
    // Silence and noise are nothing.
    assert!(!heard(&vec![0; 80_000], &a));
    let noise: Vec<i16> = (0..80_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 16) as i16 / 4)
        .collect();
    assert!(!heard(&noise, &a));
    // A lost packet in the middle does not hide the prompt.
    let mut lossy = ulaw_roundtrip(&pcm);
    lossy.drain(160 * 40..160 * 41);
    assert!(heard_pcm_at(&lossy, &pcm).is_some());
}

/// Audio as a caller receives it from a PCMU stream.
fn ulaw_roundtrip(pcm: &[i16]) -> Vec<i16> {
    pcm.iter()
        .map(|&x| ulaw_to_linear(linear_to_ulaw(x)))
        .collect()
}

// ---------------------------------------------------------------------------
// Issue 2's minimal menu, from a fixture plan written at test time.

const MINIMO: &[(&str, &str)] = &[
    ("bienvenida", "bienvenida"),
    ("menu", "menu_corto"),
    ("opcion_invalida", "opcion_invalida"),
    ("no_escuchamos", "no_escuchamos"),
    ("mensaje_uno", "info_pasaportes"),
    ("mensaje_dos", "info_visas"),
    ("despedida", "despedida"),
];

fn minimo_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, from) in MINIMO {
        put_prompt(dir.path(), name, &shipped("es-MX", from));
    }
    put_plan(dir.path(), "minimo.toml", &fixture("minimo.toml"));
    dir
}

fn p(dir: &Path, name: &str) -> PathBuf {
    dir.join("prompts/es-MX").join(format!("{name}.wav"))
}

/// Calls the minimal menu and listens until its menu prompt has played in
/// full, so the caller's next key lands in the menu.
fn minimo_call(gw: &Gw, dir: &Path, with_dtmf: bool) -> (Ua, Heard) {
    let mut ua = Ua::new(gw.udp);
    let r = ua.call(NUMBER, "0", with_dtmf);
    assert_eq!(r.status(), Some(200), "{r:?}");
    ua.send_pcmu(&[0; 160], true);
    let mut h = Heard::default();
    assert!(
        ua.wait_heard(&mut h, &p(dir, "bienvenida"), LONG),
        "welcome heard"
    );
    assert!(ua.wait_heard(&mut h, &p(dir, "menu"), LONG), "menu heard");
    (ua, h)
}

/// After a key: the message for it, then goodbye, then the gateway's BYE,
/// and never the other message or a retry prompt.
fn expect_message_then_goodbye(gw: &Gw, dir: &Path, ua: &mut Ua, h: &mut Heard, which: &str) {
    assert!(ua.wait_bye(h, LONG), "gateway hangs up after goodbye");
    let s = h.samples();
    let menu = heard_at(s, &p(dir, "menu")).unwrap();
    let msg = heard_at(s, &p(dir, which)).unwrap_or_else(|| panic!("{which} heard"));
    let bye = heard_at(s, &p(dir, "despedida")).expect("goodbye heard");
    assert!(
        menu < msg && msg < bye,
        "welcome, menu, message, goodbye in order"
    );
    let other = if which == "mensaje_uno" {
        "mensaje_dos"
    } else {
        "mensaje_uno"
    };
    for not in [other, "opcion_invalida", "no_escuchamos"] {
        assert!(!heard(s, &p(dir, not)), "{not} must not be heard");
    }
    assert!(eventually(Duration::from_secs(10), || visits(
        gw, "minimo", which
    ) == 1.0));
    assert_eq!(visits(gw, "minimo", other), 0.0);
    assert!(eventually(Duration::from_secs(10), || gw.metric(
        "conmutador_calls_ended_total",
        &["reason=\"plan_hangup\""]
    ) == 1.0));
    let _ = ua;
}

#[test]
fn minimal_menu_key_1_by_rfc4733_plays_message_one_then_goodbye() {
    let dir = minimo_dir();
    let gw = Gw::start(&plan_config(dir.path(), false));
    let (mut ua, mut h) = minimo_call(&gw, dir.path(), true);
    ua.send_rfc4733_digit('1', 101);
    expect_message_then_goodbye(&gw, dir.path(), &mut ua, &mut h, "mensaje_uno");
    assert_eq!(
        gw.metric("conmutador_dtmf_digits_total", &["method=\"rfc4733\""]),
        1.0
    );
}

#[test]
fn minimal_menu_key_2_in_band_plays_message_two_then_goodbye() {
    let dir = minimo_dir();
    let gw = Gw::start(&plan_config(dir.path(), false));
    // No telephone-event in the offer: the gateway listens for tones.
    let (mut ua, mut h) = minimo_call(&gw, dir.path(), false);
    ua.send_inband_digit('2', Duration::from_millis(120), 0.3);
    expect_message_then_goodbye(&gw, dir.path(), &mut ua, &mut h, "mensaje_dos");
    assert_eq!(
        gw.metric("conmutador_dtmf_digits_total", &["method=\"inband\""]),
        1.0
    );
}

#[test]
fn minimal_menu_key_1_by_sip_info_plays_message_one_then_goodbye() {
    let dir = minimo_dir();
    let gw = Gw::start(&plan_config(dir.path(), false));
    let (mut ua, mut h) = minimo_call(&gw, dir.path(), true);
    let r = ua.send_info_digit(NUMBER, '1').expect("INFO answered");
    assert_eq!(r.status(), Some(200));
    expect_message_then_goodbye(&gw, dir.path(), &mut ua, &mut h, "mensaje_uno");
}

#[test]
fn minimal_menu_wrong_key_gets_the_retry_prompt_then_silence_says_goodbye() {
    let dir = minimo_dir();
    let gw = Gw::start(&plan_config(dir.path(), false));
    let (mut ua, mut h) = minimo_call(&gw, dir.path(), true);
    ua.send_rfc4733_digit('7', 101);
    assert!(
        ua.wait_heard(&mut h, &p(dir.path(), "opcion_invalida"), LONG),
        "retry prompt after a wrong key"
    );
    // Then the menu again, and silence: the second failure says goodbye.
    assert!(ua.wait_bye(&mut h, LONG), "gateway hangs up");
    let s = h.samples();
    let retry = heard_at(s, &p(dir.path(), "opcion_invalida")).unwrap();
    let again = heard_at(&s[retry..], &p(dir.path(), "menu")).expect("menu replayed");
    let bye = heard_at(&s[retry..], &p(dir.path(), "despedida")).expect("goodbye");
    assert!(again < bye);
    for not in ["mensaje_uno", "mensaje_dos", "no_escuchamos"] {
        assert!(!heard(s, &p(dir.path(), not)), "{not} must not be heard");
    }
    let m = |name: &str| gw.metric(name, &["plan=\"minimo\"", "node=\"menu\""]);
    assert!(eventually(Duration::from_secs(10), || m(
        "conmutador_ivr_invalid_total"
    ) == 1.0
        && m("conmutador_ivr_timeouts_total") == 1.0));
    assert_eq!(visits(&gw, "minimo", "despedida"), 1.0);
}

#[test]
fn minimal_menu_silence_gets_the_retry_prompt_then_goodbye() {
    let dir = minimo_dir();
    let gw = Gw::start(&plan_config(dir.path(), false));
    let (mut ua, mut h) = minimo_call(&gw, dir.path(), true);
    assert!(ua.wait_bye(&mut h, LONG), "gateway hangs up");
    let s = h.samples();
    let retry = heard_at(s, &p(dir.path(), "no_escuchamos")).expect("retry prompt after silence");
    assert!(heard(&s[retry..], &p(dir.path(), "menu")), "menu replayed");
    assert!(heard(&s[retry..], &p(dir.path(), "despedida")));
    for not in ["mensaje_uno", "mensaje_dos", "opcion_invalida"] {
        assert!(!heard(s, &p(dir.path(), not)), "{not} must not be heard");
    }
    assert!(eventually(Duration::from_secs(10), || gw.metric(
        "conmutador_ivr_timeouts_total",
        &["plan=\"minimo\"", "node=\"menu\""]
    ) == 2.0));
}

#[test]
fn minimal_menu_keys_from_sipp_pcaps_choose_the_path() {
    let dir = minimo_dir();
    let gw = Gw::start(&plan_config(dir.path(), false));
    // SIPp presses its key 1.5 s after the ACK (during the welcome, which
    // lets keys through) and hangs up 2.5 s later, during the message.
    for (pcap, node) in [
        ("dtmf_2833_1.pcap", "mensaje_uno"),
        ("dtmf_2833_2.pcap", "mensaje_dos"),
    ] {
        let path = format!("/usr/share/sip-tester/{pcap}");
        let r = sipp(
            "uac_dtmf.xml",
            gw.udp,
            &[
                "-m",
                "1",
                "-d",
                "2500",
                "-s",
                NUMBER,
                "-key",
                "digit_pcap",
                &path,
            ],
            Duration::from_secs(90),
        );
        assert!(
            r.ok,
            "sipp {pcap}\n{}\n{}\n{}",
            r.stdout,
            r.stderr,
            gw.log_text()
        );
        assert!(
            eventually(Duration::from_secs(10), || visits(&gw, "minimo", node)
                == 1.0),
            "{pcap} leads to {node}\n{}",
            gw.metrics()
        );
    }
    assert_eq!(visits(&gw, "minimo", "menu"), 2.0);
    assert_eq!(
        gw.metric("conmutador_ivr_invalid_total", &["plan=\"minimo\""]),
        0.0
    );
    assert!(eventually(Duration::from_secs(10), || gw.metric(
        "conmutador_calls_ended_total",
        &["reason=\"caller_hangup\""]
    ) == 2.0));
}

// ---------------------------------------------------------------------------
// The shipped Mexitel plan.

/// The first prompt of whichever node the office-hours branch chose, in
/// English: main menu (open), closed, or holiday. Each of them takes 5 for
/// consular protection, so the path below holds at any hour.
const AFTER_BRANCH: [(&str, &str); 3] = [
    ("menu_principal", "menu_principal"),
    ("fuera_de_horario", "fuera_de_horario"),
    ("dia_festivo", "dia_festivo"),
];

#[test]
fn shipped_plan_key_2_switches_to_english_and_5_reaches_protection_at_any_hour() {
    let gw = Gw::start("[media]\nrtp_timeout = 300\n");
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call("18776394835", "0", true).status(), Some(200));
    ua.send_pcmu(&[0; 160], true);
    let mut h = Heard::default();
    assert!(ua.wait_heard(&mut h, &shipped("es-MX", "bienvenida"), LONG));
    assert!(ua.wait_heard(&mut h, &shipped("es-MX", "idioma_es"), LONG));
    assert!(ua.wait_heard(&mut h, &shipped("en", "idioma_en"), LONG));
    ua.send_rfc4733_digit('2', 101);
    let mut branch = None;
    assert!(
        ua.wait_until(&mut h, LONG, |s| {
            branch = AFTER_BRANCH
                .iter()
                .find(|(_, prompt)| heard_start(s, &shipped("en", prompt), Duration::from_secs(1)))
                .map(|(node, _)| *node);
            branch.is_some()
        }),
        "an English prompt after the language choice"
    );
    let branch = branch.unwrap();
    ua.send_rfc4733_digit('5', 101);
    assert!(ua.wait_bye(&mut h, LONG), "the call leaves the IVR");
    let s = h.samples();
    assert!(heard(s, &shipped("en", "proteccion_intro")));
    assert!(!heard(s, &shipped("es-MX", "proteccion_intro")));
    assert!(
        !heard(s, &shipped("en", "bienvenida")),
        "welcome is Spanish"
    );
    assert!(eventually(Duration::from_secs(10), || visits(
        &gw,
        "mexitel",
        "cola_proteccion"
    ) == 1.0));
    for (node, n) in [
        ("ingles", 1.0),
        ("espanol", 0.0),
        ("proteccion", 1.0),
        (branch, 1.0),
    ] {
        assert_eq!(visits(&gw, "mexitel", node), n, "{node}");
    }
    for (other, _) in AFTER_BRANCH.iter().filter(|(n, _)| *n != branch) {
        assert_eq!(visits(&gw, "mexitel", other), 0.0, "{other}");
    }
}

/// The shipped plan with its office-hours branch pinned open (all day)
/// and its journey tests (written for fixed times) dropped; every other
/// node, prompt and key is the shipped one.
fn mexitel_always_open() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut text = std::fs::read_to_string(repo().join("dialplans/mexitel.toml")).unwrap();
    let a = text
        .find("[nodes.horario]")
        .expect("shipped plan has horario");
    let b = a + text[a + 1..].find("\n[nodes.").expect("a node follows") + 1;
    text.replace_range(
        a..b,
        "[nodes.horario]\ntype = \"branch\"\ncases = [{ time = \"00:00-24:00\", next = \"menu_principal\" }]\nelse = \"fuera_de_horario\"\n",
    );
    let t = text
        .find("[[test]]")
        .expect("shipped plan has journey tests");
    text.truncate(t);
    put_plan(dir.path(), "mexitel.toml", &text);
    for lang in ["es-MX", "en"] {
        let to = dir.path().join("prompts").join(lang);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(repo().join("dialplans/prompts").join(lang))
            .unwrap()
            .flatten()
        {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    dir
}

#[test]
fn shipped_plan_main_menu_appointment_number_is_read_back() {
    let dir = mexitel_always_open();
    let gw = Gw::start(&plan_config(dir.path(), false));
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call("mexitel", "0", true).status(), Some(200));
    ua.send_pcmu(&[0; 160], true);
    let mut h = Heard::default();
    assert!(ua.wait_heard(&mut h, &shipped("en", "idioma_en"), LONG));
    // Spanish by SIP INFO; 9 in the main menu (barge-in) by RFC 4733.
    assert_eq!(
        ua.send_info_digit("mexitel", '1').and_then(|m| m.status()),
        Some(200)
    );
    assert!(ua.wait_until(&mut h, LONG, |s| heard_start(
        s,
        &shipped("es-MX", "menu_principal"),
        Duration::from_secs(2)
    )));
    ua.send_rfc4733_digit('9', 101);
    assert!(ua.wait_heard(&mut h, &shipped("es-MX", "cita_ingrese"), LONG));
    for d in "12345678".chars() {
        ua.send_rfc4733_digit(d, 101);
    }
    assert!(
        ua.wait_bye(&mut h, LONG),
        "the call leaves the IVR for the queue"
    );
    let s = h.samples();
    let confirm = heard_at(s, &shipped("es-MX", "cita_confirmar")).expect("read-back");
    let mut at = confirm;
    for w in [
        "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho",
    ] {
        let off = heard_at(&s[at..], &shipped("es-MX", &format!("num_{w}")))
            .unwrap_or_else(|| panic!("\"{w}\" read back in order"));
        at += off;
    }
    assert!(heard(&s[at..], &shipped("es-MX", "transferencia")));
    assert!(!heard(s, &shipped("es-MX", "num_nueve")));
    assert!(!heard(s, &shipped("es-MX", "cita_invalida")));
    assert!(eventually(Duration::from_secs(10), || visits(
        &gw,
        "mexitel",
        "cola_citas"
    ) == 1.0));
    for node in ["espanol", "menu_principal", "cita", "cita_confirmar"] {
        assert_eq!(visits(&gw, "mexitel", node), 1.0, "{node}");
    }
    assert_eq!(visits(&gw, "mexitel", "fuera_de_horario"), 0.0);
}

// ---------------------------------------------------------------------------
// Live reload under load.

/// One version of the reload fixture: its plan, the node key 1 leads to and
/// the recording that node plays, and what the menu prompt sounds like.
struct Version {
    plan: &'static str,
    node: &'static str,
    message: (&'static str, &'static str),
    menu: (&'static str, &'static str),
}

const V1: Version = Version {
    plan: "recarga_v1.toml",
    node: "uno",
    message: ("mensaje", "info_pasaportes"),
    menu: ("es-MX", "idioma_es"),
};
const V2: Version = Version {
    plan: "recarga_v2.toml",
    node: "uno_v2",
    message: ("mensaje_v2", "info_visas"),
    menu: ("en", "idioma_en"),
};
const V3: Version = Version {
    plan: "recarga_v3.toml",
    node: "uno_v3",
    message: ("mensaje_v3", "info_matricula"),
    menu: ("es-MX", "menu_corto"),
};
/// Version 2 with version 1's menu recording, for the file watcher: the
/// plan is the only file that changes, so one poll sees the whole change.
const V2_SAME_MENU: Version = Version {
    menu: V1.menu,
    ..V2
};
/// What key 2 ("nuevo", added in version 2) plays.
const NUEVO: &str = "info_registro_civil";

/// Writes a version's files. The menu prompt keeps its file name and gets
/// another recording: a changed prompt, not only a changed plan.
fn install(dir: &Path, v: &Version) {
    put_prompt(dir, v.message.0, &shipped("es-MX", v.message.1));
    put_prompt(dir, "nuevo", &shipped("es-MX", NUEVO));
    put_prompt(dir, "menu", &shipped(v.menu.0, v.menu.1));
    put_plan(dir, "recarga.toml", &fixture(v.plan));
}

struct CallResult {
    heard: Heard,
    bye_status: Option<u16>,
}

/// A caller who waits in the menu until told to go, presses `key`, listens
/// to the message and the menu that follows, and hangs up.
fn caller(
    udp: std::net::SocketAddr,
    key: char,
    menu: PathBuf,
    message: PathBuf,
    ready: mpsc::Sender<()>,
    go: mpsc::Receiver<()>,
) -> CallResult {
    let mut ua = Ua::new(udp);
    let r = ua.call(NUMBER, "0", true);
    assert_eq!(r.status(), Some(200), "{r:?}");
    ua.send_pcmu(&[0; 160], true);
    let mut h = Heard::default();
    assert!(ua.wait_heard(&mut h, &menu, LONG), "menu heard");
    let _ = ready.send(());
    let _ = go.recv_timeout(Duration::from_secs(300));
    ua.send_rfc4733_digit(key, 101);
    let after = h.samples().len();
    assert!(
        ua.wait_until(&mut h, LONG, |s| heard(&s[after..], &message)),
        "message heard"
    );
    // Back in the menu: its prompt plays again (the call's own version).
    let msg_at = after + heard_at(&h.samples()[after..], &message).unwrap();
    ua.wait_until(&mut h, LONG, |s| heard(&s[msg_at..], &menu));
    let bye = ua.hangup(NUMBER);
    CallResult {
        heard: h,
        bye_status: bye.and_then(|m| m.status()),
    }
}

fn prompt_of(v: &Version) -> (PathBuf, PathBuf) {
    (shipped(v.menu.0, v.menu.1), shipped("es-MX", v.message.1))
}

/// `n` calls settle in the menu of `old`; the plan is rewritten to `new`
/// and reloaded by `trigger`; then the waiting callers press 1 and new
/// callers press 1 and 2. Checks who heard what and that nobody was
/// dropped. Returns how many calls were made.
fn reload_phase(
    gw: &Gw,
    dir: &Path,
    n: usize,
    old: &Version,
    new: &Version,
    trigger: &dyn Fn(),
) -> usize {
    let ok_before = gw.metric("conmutador_dialplan_reload_total", &["result=\"ok\""]);
    let old_node_before = visits(gw, "recarga", old.node);
    let nuevo_before = visits(gw, "recarga", "nuevo");
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut gos = Vec::new();
    let mut olds = Vec::new();
    let (old_menu, old_msg) = prompt_of(old);
    for _ in 0..n {
        let (go_tx, go_rx) = mpsc::channel();
        gos.push(go_tx);
        let (udp, ready, m, g) = (gw.udp, ready_tx.clone(), old_menu.clone(), old_msg.clone());
        olds.push(std::thread::spawn(move || {
            caller(udp, '1', m, g, ready, go_rx)
        }));
    }
    for i in 0..n {
        assert!(
            ready_rx.recv_timeout(Duration::from_secs(180)).is_ok(),
            "caller {i} never settled in the menu\n{}",
            gw.log_text()
        );
    }
    install(dir, new);
    trigger();
    assert!(
        eventually(Duration::from_secs(30), || gw
            .metric("conmutador_dialplan_reload_total", &["result=\"ok\""])
            == ok_before + 1.0),
        "one reload counted\n{}",
        gw.metrics()
    );
    // The waiting callers press 1; new callers arrive at the same time.
    for g in &gos {
        let _ = g.send(());
    }
    let (new_menu, new_msg) = prompt_of(new);
    let mut news = Vec::new();
    for (key, msg) in [('1', new_msg.clone()), ('2', shipped("es-MX", NUEVO))] {
        let (go_tx, go_rx) = mpsc::channel();
        go_tx.send(()).unwrap();
        let (udp, m) = (gw.udp, new_menu.clone());
        let (ready, _) = mpsc::channel();
        news.push(std::thread::spawn(move || {
            caller(udp, key, m, msg, ready, go_rx)
        }));
    }
    for (i, t) in olds.into_iter().enumerate() {
        let r = t.join().expect("caller thread");
        assert_eq!(r.bye_status, Some(200), "old call {i}: BYE answered 200");
        let s = r.heard.samples();
        assert!(
            heard(s, &old_msg),
            "old call {i} heard its own plan's message"
        );
        assert!(!heard(s, &new_msg), "old call {i} heard the new message");
        let msg_at = heard_at(s, &old_msg).unwrap();
        assert!(
            heard(&s[msg_at..], &old_menu),
            "old call {i}: back in the menu, still the old recording"
        );
        if new_menu != old_menu {
            assert!(!heard(s, &new_menu), "old call {i} heard the new menu");
        }
    }
    for (i, t) in news.into_iter().enumerate() {
        let r = t.join().expect("caller thread");
        assert_eq!(r.bye_status, Some(200), "new call {i}: BYE answered 200");
        assert!(!heard(r.heard.samples(), &old_msg), "new call {i}");
    }
    assert!(eventually(Duration::from_secs(10), || visits(
        gw, "recarga", old.node
    ) == old_node_before
        + n as f64));
    // The new callers took the new nodes: the renamed one and the added one.
    assert!(visits(gw, "recarga", new.node) >= 1.0);
    assert_eq!(visits(gw, "recarga", "nuevo"), nuevo_before + 1.0);
    n + 2
}

fn expect_no_drops(gw: &Gw, calls: usize) {
    assert!(
        eventually(Duration::from_secs(20), || gw.metric(
            "conmutador_calls_ended_total",
            &["reason=\"caller_hangup\""]
        ) == calls as f64),
        "every call ended by its caller\n{}",
        gw.metrics()
    );
    assert_eq!(
        gw.metric("conmutador_calls_ended_total", &[]),
        calls as f64,
        "and no other way\n{}",
        gw.metrics()
    );
}

/// The plan with an error is refused: counted, logged with file:line:col,
/// and the version in force still answers calls.
fn expect_broken_plan_refused(gw: &Gw, dir: &Path, errors_before: f64, trigger: &dyn Fn()) {
    let text = fixture("recarga_roto.toml");
    put_plan(dir, "recarga.toml", &text);
    trigger();
    assert!(
        eventually(Duration::from_secs(30), || gw
            .metric("conmutador_dialplan_reload_total", &["result=\"error\""])
            == errors_before + 1.0),
        "refused reload counted\n{}",
        gw.metrics()
    );
    let at = location(&text, "\"uno_v9\"");
    assert!(
        eventually(Duration::from_secs(10), || gw
            .log_text()
            .contains(&format!("recarga.toml:{at}"))),
        "error logged at recarga.toml:{at}\n{}",
        gw.log_text()
    );
}

/// "line:col" (1-based) of the first `needle` in `text`.
fn location(text: &str, needle: &str) -> String {
    let i = text.find(needle).expect("needle in text");
    let line = text[..i].matches('\n').count() + 1;
    let col = i - text[..i].rfind('\n').map(|j| j + 1).unwrap_or(0) + 1;
    format!("{line}:{col}")
}

/// One call that presses 1 and must reach `v`'s node and message.
fn one_call_on(gw: &Gw, v: &Version) {
    let (menu, msg) = prompt_of(v);
    let (go_tx, go_rx) = mpsc::channel();
    go_tx.send(()).unwrap();
    let (ready, _) = mpsc::channel();
    let r = caller(gw.udp, '1', menu, msg, ready, go_rx);
    assert_eq!(r.bye_status, Some(200));
}

const LOAD: usize = 20;

#[test]
fn reload_by_sighup_and_api_under_load_keeps_calls_on_their_plan() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &V1);
    let gw = Gw::start(&plan_config(dir.path(), false));
    let http = gw.http.unwrap();
    let pid = gw.pid();
    let mut calls = 0;

    calls += reload_phase(&gw, dir.path(), LOAD, &V1, &V2, &|| {
        common::unsafe_kill(pid, "HUP")
    });
    calls += reload_phase(&gw, dir.path(), LOAD, &V2, &V3, &|| {
        let (status, body) = http_request(http, "POST", "/api/reload", Some("test-token"), None);
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"ok\":true"), "{body}");
    });
    expect_no_drops(&gw, calls);

    // A broken plan, by SIGHUP and by the API: refused, V3 stays.
    expect_broken_plan_refused(&gw, dir.path(), 0.0, &|| common::unsafe_kill(pid, "HUP"));
    let text = fixture("recarga_roto.toml");
    let (status, body) = http_request(http, "POST", "/api/reload", Some("test-token"), None);
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains(&format!("recarga.toml:{}", location(&text, "\"uno_v9\""))),
        "{body}"
    );
    assert_eq!(
        gw.metric("conmutador_dialplan_reload_total", &["result=\"error\""]),
        2.0
    );
    assert_eq!(
        gw.metric("conmutador_dialplan_reload_total", &["result=\"ok\""]),
        2.0
    );
    let before = visits(&gw, "recarga", V3.node);
    one_call_on(&gw, &V3);
    assert!(eventually(Duration::from_secs(10), || visits(
        &gw, "recarga", V3.node
    ) == before + 1.0));
    expect_no_drops(&gw, calls + 1);
}

#[test]
fn reload_by_file_watcher_under_load_keeps_calls_on_their_plan() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &V1);
    let gw = Gw::start(&plan_config(dir.path(), true));
    // The watcher polls every 2 s and could see a version's files in
    // several steps; so the new version's new prompt files go first and are
    // reloaded (unused by version 1) before the calls arrive, and the phase
    // then changes one file: the plan.
    put_prompt(dir.path(), V2.message.0, &shipped("es-MX", V2.message.1));
    put_prompt(dir.path(), "nuevo", &shipped("es-MX", NUEVO));
    assert!(
        eventually(Duration::from_secs(30), || gw
            .metric("conmutador_dialplan_reload_total", &["result=\"ok\""])
            == 1.0),
        "the watcher reloads after new prompt files\n{}",
        gw.log_text()
    );
    let calls = reload_phase(&gw, dir.path(), LOAD, &V1, &V2_SAME_MENU, &|| {});
    expect_no_drops(&gw, calls);
    expect_broken_plan_refused(&gw, dir.path(), 0.0, &|| {});
    one_call_on(&gw, &V2_SAME_MENU);
    expect_no_drops(&gw, calls + 1);
}

// ---------------------------------------------------------------------------
// The authors' tools as processes.

fn tool(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_conmutador"))
        .arg("--config")
        .arg(repo().join("conmutador.toml"))
        .args(args)
        .output()
        .expect("run conmutador");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn check_accepts_the_shipped_dialplans() {
    let dir = repo().join("dialplans");
    let (ok, out) = tool(&["check", dir.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("ok: 1 plan(s)"), "{out}");
    assert!(out.contains("journey test(s) passed"), "{out}");
    assert!(!out.contains("error:"), "{out}");
}

#[test]
fn check_refuses_a_broken_plan_and_points_at_each_error() {
    let dir = minimo_dir();
    std::fs::remove_file(dir.path().join("minimo.toml")).unwrap();
    let text = fixture("roto.toml");
    put_plan(dir.path(), "roto.toml", &text);
    let (ok, out) = tool(&["check", dir.path().to_str().unwrap()]);
    assert!(!ok, "check must fail\n{out}");
    for (needle, what) in [
        ("timout", "unknown key \"timout\""),
        ("\"1\"\noptions", "digit \"1\" is used twice"),
        ("\"mensaje_dos\"", "unknown node \"mensaje_dos\""),
    ] {
        let at = location(&text, needle);
        assert!(
            out.contains(&format!("roto.toml:{at}")),
            "{what} at {at}\n{out}"
        );
        assert!(out.contains(what), "{what}\n{out}");
    }
    assert!(out.contains("failed: 3 error(s)"), "{out}");
}

#[test]
fn gateway_refuses_to_start_on_a_broken_plan() {
    let dir = minimo_dir();
    let text = fixture("roto.toml");
    std::fs::remove_file(dir.path().join("minimo.toml")).unwrap();
    put_plan(dir.path(), "roto.toml", &text);
    let cfg = dir.path().join("conmutador.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sip]\nlisten = [\"127.0.0.1:0\"]\n[http]\nlisten = \"127.0.0.1:0\"\n[dialplans]\ndir = {:?}\n[storage]\ndata_dir = {:?}\n",
            dir.path().display().to_string(),
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_conmutador"))
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gateway with a broken plan kept running");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let text_out = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!status.success());
    assert!(!text_out.contains("listening "), "{text_out}");
    let at = location(&text, "\"mensaje_dos\"");
    assert!(text_out.contains(&format!("roto.toml:{at}")), "{text_out}");
}

#[test]
fn simulate_prints_the_journey_of_the_shipped_plan() {
    let dir = repo().join("dialplans");
    let (ok, out) = tool(&[
        "simulate",
        dir.to_str().unwrap(),
        "--number",
        "mexitel",
        "--press",
        "2,9,12345678#",
        "--at",
        "2026-12-01 10:00",
    ]);
    assert!(ok, "{out}");
    let mut rest = out.as_str();
    // In this order: nodes, the prompt files and their words, keys, the end.
    for step in [
        "→ bienvenida (play)",
        "bienvenida.wav",
        "→ idioma (menu)",
        "pressed 2",
        "→ ingles (language: en)",
        "→ menu_principal (menu)",
        "prompts/en/menu_principal.wav",
        "pressed 9",
        "→ cita (collect)",
        "pressed 8",
        "→ cita_confirmar (play)",
        "prompts/en/num_one.wav",
        "\"one\"",
        "prompts/en/num_eight.wav",
        "→ cola_citas (queue)",
        "queue \"operador\"",
        "cita=12345678",
        "end: queue:operador (language en)",
    ] {
        let i = rest
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing or out of order in\n{out}"));
        rest = &rest[i + step.len()..];
    }
    // After hours the same keys end elsewhere.
    let (ok, out) = tool(&[
        "simulate",
        dir.to_str().unwrap(),
        "--number",
        "mexitel",
        "--press",
        "1,w",
        "--at",
        "2026-12-05 11:00",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("→ fuera_de_horario (menu)"), "{out}");
    assert!(out.contains("end: hangup"), "{out}");
    assert!(!out.contains("menu_principal"), "{out}");
}
