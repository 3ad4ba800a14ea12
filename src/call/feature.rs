//! Feature-code calls and SIP INFO digits.
//!
//! An operator dials a feature code (pause, unpause): once the router has
//! authenticated it, [`confirm_feature`] answers, plays two short beeps and
//! hangs up. It never reaches a plan or a queue, so it is not a call core of
//! its own: a few lines of a fixed script.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Services;
use crate::media::{MediaEvent, PlayOpts};
use crate::sdp::{self, LocalSdp};
use crate::sip::dialog::{Dialog, DialogParams, DialogState};
use crate::sip::endpoint::{ALLOW, Endpoint};
use crate::sip::transaction::TxId;
use crate::sip::transport::Peer;
use crate::sip::{Contacts, Message, Method, new_branch, response_to};

/// Reads the digit of a SIP INFO with `application/dtmf-relay` (`Signal=5`)
/// or `application/dtmf` (a bare digit).
pub fn parse_dtmf_relay(req: &Message) -> Option<char> {
    let ct = req.content_type()?.to_ascii_lowercase();
    let body = std::str::from_utf8(req.body()).ok()?;
    let raw = if ct.starts_with("application/dtmf-relay") {
        body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| v.trim().to_owned())
        })?
    } else if ct.starts_with("application/dtmf") {
        body.trim().to_owned()
    } else {
        return None;
    };
    let mut chars = raw.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        // RFC 4733 event numbers 10/11 are sometimes sent for * and #.
        return match raw.as_str() {
            "10" => Some('*'),
            "11" => Some('#'),
            _ => None,
        };
    }
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D' | 'a'..='d').then(|| c.to_ascii_uppercase())
}

/// Answers an operator's feature-code call, plays a short confirmation tone
/// and hangs up. The call never reaches a plan or a queue, so it has no
/// dialog entry: a BYE from the phone before ours gets 481, which is
/// harmless for a two-second call.
pub async fn confirm_feature(
    ep: Arc<Endpoint>,
    svc: Arc<Services>,
    invite: Message,
    tx: TxId,
    peer: Peer,
) {
    let local_tag = crate::sip::new_tag();
    let reject = |status: u16, reason: &str| {
        let r = response_to(&invite, status, reason)
            .via_received(peer.addr)
            .to_tag(&local_tag)
            .build();
        ep.respond(tx, status, r, None);
    };
    let Ok((leg, local)) = svc.media.allocate() else {
        return reject(503, "Service Unavailable");
    };
    let mut local_sdp = LocalSdp::new(svc.call.media_ip, local.port());
    let (answer, params) = match sdp::answer(invite.body(), &mut local_sdp, &svc.call.codecs) {
        Ok(x) => x,
        Err(_) => {
            svc.media.release(leg);
            return reject(488, "Not Acceptable Here");
        }
    };
    let call_id = invite.call_id().unwrap_or("").to_owned();
    let cseq = invite.cseq().map(|c| c.seq).unwrap_or(1);
    let ok = response_to(&invite, 200, "OK")
        .via_received(peer.addr)
        .to_tag(&local_tag)
        .header("Contact", ep.contact_for(&peer))
        .header("Allow", ALLOW)
        .body("application/sdp", answer)
        .build();
    ep.respond(tx, 200, ok, Some((call_id.clone(), cseq)));
    let (events, mut rx) = mpsc::channel(8);
    svc.media.start_leg(leg, params, events);
    // Two short beeps: the phone's user hears the code was taken.
    let beep = Arc::new(crate::media::Prompt::tone(
        "confirm",
        &[1000.0],
        -12.0,
        200,
        150,
        550,
    ));
    svc.media.play(
        leg,
        vec![beep],
        PlayOpts {
            barge_in: false,
            looped: false,
            token: 1,
        },
    );
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(ev) = rx.recv().await {
            if matches!(ev, MediaEvent::PlaybackDone { .. }) {
                break;
            }
        }
    })
    .await;
    let target = invite
        .contacts()
        .ok()
        .and_then(|c| match c {
            Contacts::List(v) => v.first().map(|na| na.uri.to_string()),
            Contacts::Star => None,
        })
        .unwrap_or_else(|| format!("sip:{}", peer.addr));
    let uri_of = |na: Option<crate::sip::NameAddr>| {
        na.map(|n| (n.uri.to_string(), n.tag().unwrap_or("").to_owned()))
            .unwrap_or_default()
    };
    let (local_uri, _) = uri_of(invite.to().ok());
    let (remote_uri, remote_tag) = uri_of(invite.from().ok());
    let mut dialog = Dialog::uas(
        DialogParams {
            call_id,
            local_tag,
            remote_tag,
            local_uri,
            remote_uri,
            remote_target: target,
            record_route: invite
                .record_routes()
                .map(|v| v.iter().map(|r| r.to_string()).collect())
                .unwrap_or_default(),
            secure: false,
        },
        cseq,
        cseq + 1,
        DialogState::Confirmed,
    );
    let branch = new_branch();
    if let Some(bye) = dialog.request(Method::Bye, ep.via_for(&peer, &branch)) {
        let _ = ep.request(peer, &Method::Bye, &branch, bye.build());
    }
    svc.media.release(leg);
}
