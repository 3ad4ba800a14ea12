//! The recording part in virtual time: the consent prompt before the
//! operator, the recording's start at the bridge, the operator's pause and
//! resume codes (RFC 4733 and INFO), and the file named in the CDR.

use super::*;
use crate::call::core::recording::CONSENT_TOKEN;

const FILE: &str = "trunk-call-1.wav";

fn library() -> PromptLibrary {
    let mut lib = PromptLibrary::new();
    lib.insert(Prompt::tone(
        "es-MX/aviso_grabacion",
        &[440.0],
        -20.0,
        100,
        0,
        2000,
    ));
    lib
}

/// A call to a recorded queue, in the queue (consent playing).
fn queued_recorded(prompts: PromptLibrary) -> (T, Vec<Output>) {
    let mut t = T::new(Opts {
        record: Some(FILE.into()),
        prompts,
        ..Opts::default()
    });
    t.input(Input::Start);
    t.ack();
    let outs = t.digit('1');
    (t, outs)
}

/// The operator's media leg: the one started that is not the caller's.
fn operator_leg(t: &T) -> LegId {
    let trunk = t.core.trunk.leg;
    (1..100)
        .map(LegId)
        .find(|l| Some(*l) != trunk && t.core.legs.by_media(*l).is_some())
        .expect("an operator leg")
}

/// Ana is rung, answers and is connected; (outputs of the connect, her INVITE).
fn connect(t: &mut T) -> (Vec<Output>, Message) {
    let invite = t.ring("ana");
    t.answer_leg(&invite, 200);
    let outs = t.acd(AcdCommand::Connect {
        call: 42,
        op: "ana".into(),
    });
    (outs, invite)
}

fn consent_done(t: &mut T) -> Vec<Output> {
    let leg = t.core.trunk.leg.unwrap();
    t.input(Input::Media(MediaEvent::PlaybackDone {
        leg,
        token: CONSENT_TOKEN,
    }))
}

fn op_digits(t: &mut T, digits: &str) -> Vec<Output> {
    let leg = operator_leg(t);
    let mut outs = Vec::new();
    for d in digits.chars() {
        outs.extend(t.input(Input::Media(MediaEvent::Digit {
            leg,
            digit: d,
            source: DtmfSource::Rfc4733,
        })));
    }
    outs
}

fn recording_cmds(outs: &[Output]) -> Vec<String> {
    media(outs)
        .into_iter()
        .filter_map(|m| match m {
            MediaCmd::RecordStart { file, .. } => Some(format!("start {file}")),
            MediaCmd::RecordPause { file } => Some(format!("pause {file}")),
            MediaCmd::RecordResume { file } => Some(format!("resume {file}")),
            MediaCmd::RecordStop { file } => Some(format!("stop {file}")),
            _ => None,
        })
        .collect()
}

fn bridges(outs: &[Output]) -> usize {
    media(outs)
        .iter()
        .filter(|m| matches!(m, MediaCmd::Bridge { .. }))
        .count()
}

/// Bridged and recording, consent heard; and ana's INVITE.
fn recording() -> (T, Message) {
    let (mut t, _) = queued_recorded(library());
    let (_, invite) = connect(&mut t);
    consent_done(&mut t);
    (t, invite)
}

#[test]
fn a_recorded_queue_plays_the_consent_and_bridges_only_after_it() {
    let (mut t, outs) = queued_recorded(library());
    let plays: Vec<u64> = media(&outs)
        .iter()
        .filter_map(|m| match m {
            MediaCmd::Play { opts, .. } => Some(opts.token),
            _ => None,
        })
        .collect();
    assert_eq!(plays, [CONSENT_TOKEN], "the notice instead of hold music");

    // An announcement would cut the notice short: it waits.
    let outs = t.acd(AcdCommand::Announce {
        call: 42,
        position: 1,
        estimate: None,
        wait: None,
    });
    assert!(media(&outs).is_empty());

    // The operator answers and is connected: nobody is bridged yet.
    let (outs, _) = connect(&mut t);
    assert_eq!(bridges(&outs), 0);
    assert!(recording_cmds(&outs).is_empty());

    let outs = consent_done(&mut t);
    assert_eq!(bridges(&outs), 1);
    let caller_leg = t.core.trunk.leg.unwrap();
    let op_leg = operator_leg(&t);
    let started = media(&outs).into_iter().find_map(|m| match m {
        MediaCmd::RecordStart {
            file,
            call_id,
            queue,
            caller,
            operator,
        } => Some((
            file.clone(),
            call_id.clone(),
            queue.clone(),
            *caller,
            *operator,
        )),
        _ => None,
    });
    assert_eq!(
        started,
        Some((
            FILE.to_string(),
            "trunk-call-1".to_string(),
            Some("pasaportes".to_string()),
            caller_leg,
            op_leg
        ))
    );
}

#[test]
fn the_consent_heard_while_waiting_leads_to_hold_music_and_an_immediate_bridge() {
    let (mut t, _) = queued_recorded(library());
    let outs = consent_done(&mut t);
    assert!(media(&outs).iter().any(|m| matches!(
        m,
        MediaCmd::Play { opts, .. } if opts.token == super::waiting::MOH_TOKEN
    )));
    let (outs, _) = connect(&mut t);
    assert_eq!(bridges(&outs), 1);
    assert_eq!(recording_cmds(&outs), [format!("start {FILE}")]);
}

#[test]
fn without_a_consent_prompt_the_call_is_bridged_and_not_recorded() {
    let (mut t, outs) = queued_recorded(PromptLibrary::new());
    assert!(media(&outs).iter().any(|m| matches!(
        m,
        MediaCmd::Play { opts, .. } if opts.token == super::waiting::MOH_TOKEN
    )));
    let (outs, _) = connect(&mut t);
    assert_eq!(bridges(&outs), 1);
    assert!(recording_cmds(&outs).is_empty());
    let (_, outs) = t.caller_request(Method::Bye, None);
    assert_eq!(cdr(&outs).unwrap().recording, None);
}

#[test]
fn a_consent_cut_by_leaving_the_queue_is_not_consent() {
    let (mut t, _) = queued_recorded(library());
    t.acd(AcdCommand::Exit {
        call: 42,
        reason: ExitReason::Timeout,
    });
    // Announcements may play again; the notice does not count as heard.
    assert!(!t.core.consent_playing());
}

#[test]
fn the_operators_codes_pause_and_resume_by_rfc4733_and_info() {
    let (mut t, invite) = recording();
    assert_eq!(
        recording_cmds(&op_digits(&mut t, "*1")),
        [format!("pause {FILE}")]
    );
    // Pausing a paused recording does nothing.
    assert!(recording_cmds(&op_digits(&mut t, "*1")).is_empty());
    // Digits of the caller are not codes.
    let outs: Vec<Output> = "*2".chars().flat_map(|d| t.digit(d)).collect();
    assert!(recording_cmds(&outs).is_empty());

    // Resume by SIP INFO from the operator's phone.
    let call_id = invite.call_id().unwrap().to_owned();
    let mut outs = Vec::new();
    for d in ['*', '2'] {
        let b = RequestBuilder::new(Method::Info, "sip:conmutador@127.0.0.1:5060")
            .header("Via", "SIP/2.0/UDP 127.0.0.3:5070;branch=z9hG4bKinfo")
            .header("From", "<sip:ana@127.0.0.3:5070>;tag=optag")
            .header("To", "<sip:ana@127.0.0.3:5070>;tag=x")
            .header("Call-ID", call_id.as_str())
            .header("CSeq", "9 INFO")
            .body(
                "application/dtmf-relay",
                Bytes::from(format!("Signal={d}\r\nDuration=160\r\n")),
            );
        let tx = t.tx();
        outs.extend(t.input(Input::Request {
            req: Message::parse(b.build()).unwrap(),
            tx,
        }));
    }
    assert!(statuses(&outs).iter().all(|&s| s == 200));
    assert_eq!(recording_cmds(&outs), [format!("resume {FILE}")]);
}

#[test]
fn code_digits_far_apart_are_not_a_code() {
    let (mut t, _) = recording();
    op_digits(&mut t, "*");
    t.advance(Duration::from_secs(5));
    assert!(recording_cmds(&op_digits(&mut t, "1")).is_empty());
    // Typed at once after other digits, the code still counts.
    assert_eq!(
        recording_cmds(&op_digits(&mut t, "55*1")),
        [format!("pause {FILE}")]
    );
}

#[test]
fn the_end_of_the_call_closes_the_file_and_the_cdr_names_it() {
    let (mut t, _) = recording();
    let (_, outs) = t.caller_request(Method::Bye, None);
    assert_eq!(recording_cmds(&outs), [format!("stop {FILE}")]);
    assert_eq!(cdr(&outs).unwrap().recording.as_deref(), Some(FILE));
}

#[test]
fn a_transfer_to_another_operator_goes_on_in_the_same_file() {
    let (mut t, invite) = recording();
    let ana = operator_leg(&t);
    t.refer(&invite, "sip:beto@127.0.0.1:5060");
    let invite_b = t.ring("beto");
    t.answer_leg(&invite_b, 200);
    let outs = t.acd(AcdCommand::Connect {
        call: 42,
        op: "beto".into(),
    });
    let restarted = media(&outs).into_iter().find_map(|m| match m {
        MediaCmd::RecordStart { file, operator, .. } => Some((file.clone(), *operator)),
        _ => None,
    });
    let (file, op) = restarted.expect("beto's side is recorded too");
    assert_eq!(file, FILE);
    assert_ne!(op, ana, "the new operator's leg on the right");
    let (_, outs) = t.caller_request(Method::Bye, None);
    assert_eq!(recording_cmds(&outs), [format!("stop {FILE}")]);
    assert_eq!(cdr(&outs).unwrap().recording.as_deref(), Some(FILE));
}
