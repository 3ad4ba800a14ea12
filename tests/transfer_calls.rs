//! The dialplan's `transfer` node: the gateway calls the target and bridges
//! the caller to it (a B2BUA leg, like an operator's), or ends the call when
//! the target cannot be reached.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::baresip::{Baresip, BaresipOpts, rms, tone_frequency, write_tone_wav};
use common::ua::Ua;
use common::{Gw, eventually, repo};

fn transfer_plan(dir: &Path, uri: &str) -> PathBuf {
    let plans = dir.join("plans");
    let prompts = plans.join("prompts/es-MX");
    std::fs::create_dir_all(&prompts).unwrap();
    for p in ["transferencia", "despedida"] {
        std::fs::copy(
            repo().join(format!("dialplans/prompts/es-MX/{p}.wav")),
            prompts.join(format!("{p}.wav")),
        )
        .unwrap();
    }
    std::fs::write(
        plans.join("t.toml"),
        format!(
            "[plan]\nname = \"t\"\nstart = \"pasar\"\nlanguages = [\"es-MX\"]\nnumbers = [\"300\"]\ndefault = true\n\n\
             [nodes.pasar]\ntype = \"transfer\"\nuri = \"{uri}\"\nprompts = [\"transferencia\"]\n"
        ),
    )
    .unwrap();
    plans
}

#[test]
fn transfer_bridges_the_caller_to_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("tone.wav");
    write_tone_wav(&wav, 440.0, 30.0, 8000).unwrap();
    let mut opts = BaresipOpts::caller();
    opts.account = "<sip:destino@127.0.0.1>;regint=0;answermode=auto".into();
    opts.source_wav = Some(wav);
    opts.auto_answer = true;
    let target = Baresip::start(opts);
    let plans = transfer_plan(tmp.path(), &target.local_uri());
    let gw = Gw::start(&format!(
        "[dialplans]\ndir = \"{}\"\nwatch = false\n",
        plans.display()
    ));
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call("300", "0", true).status(), Some(200));
    ua.send_pcmu(&[0; 160], true);
    assert!(
        target.wait_call_established(Duration::from_secs(20)),
        "the target was called\n{}\n{}",
        target.log(),
        gw.log_text()
    );
    // After the transfer prompt, the caller hears the target's 440 Hz.
    let cap = ua.receive_audio(Duration::from_secs(6));
    let tail = &cap.samples[cap.samples.len().saturating_sub(8_000)..];
    assert!(
        rms(tail) > 1000.0,
        "caller hears the target (rms {})",
        rms(tail)
    );
    let f = tone_frequency(tail, 8000);
    assert!(
        (400.0..480.0).contains(&f),
        "440 Hz from the target, got {f}"
    );
    assert_eq!(ua.hangup("300").and_then(|m| m.status()), Some(200));
    assert!(
        target.wait_call_closed(Duration::from_secs(10)),
        "the target's leg ends too"
    );
}

#[test]
fn transfer_to_an_unreachable_target_ends_the_call() {
    let tmp = tempfile::tempdir().unwrap();
    // A host name, and no transfer_proxy: the gateway does no DNS.
    let plans = transfer_plan(tmp.path(), "sip:guardia@proteccion.consulmex.example");
    let gw = Gw::start(&format!(
        "[dialplans]\ndir = \"{}\"\nwatch = false\n",
        plans.display()
    ));
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call("300", "0", true).status(), Some(200));
    let mut bye = None;
    for _ in 0..50 {
        if let Some(m) = ua.recv(Duration::from_millis(200)) {
            if m.is_request("BYE") {
                bye = Some(m);
                break;
            }
        }
    }
    assert!(bye.is_some(), "the gateway hangs up\n{}", gw.log_text());
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_calls_ended_total",
        &["reason=\"transfer_failed\""]
    ) >= 1.0));
}
