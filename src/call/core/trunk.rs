//! The trunk leg: the UAS dialog with the carrier and the caller's media.
//!
//! It answers the INVITE (180 first when configured to ring, then 200 with
//! our SDP answer, or an offer for a late-offer INVITE), keeps the dialog
//! (remote CSeq, route set, remote target in a [`Dialog`]), answers
//! in-dialog requests (re-INVITE and UPDATE with the current SDP, INFO
//! digits, OPTIONS, BYE) and hangs up with BYE.

use std::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;

use super::{CallCore, End, Env, Figure, MediaCmd, Output};
use crate::ops::records::HangupSide;
use crate::sdp::{self, LocalSdp, MediaParams};
use crate::sip::dialog::{CSeqError, Dialog, DialogParams, DialogState};
use crate::sip::endpoint::{ALLOW, SUPPORTED};
use crate::sip::transaction::TxId;
use crate::sip::transport::Peer;
use crate::sip::{Contacts, Message, Method, ResponseBuilder, new_branch, response_to};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TrunkState {
    /// INVITE received, not answered yet.
    Early,
    /// 200 sent, waiting for the ACK.
    Answered,
    Confirmed,
    /// BYE sent or received, or the INVITE refused: nothing more happens.
    Ended,
}

pub(super) struct Trunk {
    pub invite: Message,
    pub invite_tx: TxId,
    pub peer: Peer,
    pub call_id: String,
    pub local_tag: String,
    pub state: TrunkState,
    pub dialog: Dialog,
    invite_cseq: u32,
    local_sdp: LocalSdp,
    /// Our answer or (late offer) our offer: resent unchanged on re-INVITE.
    pub current_sdp: Bytes,
    pub leg: Option<crate::media::LegId>,
    params: Option<MediaParams>,
    /// The keys the SDP negotiated, when the leg is SRTP.
    srtp: Option<crate::sdp::SrtpParams>,
    late_offer: bool,
    /// When the 200 goes out (ringing before answering).
    pub ring_until: Option<Instant>,
    /// Our BYE, until its answer.
    pub bye_branch: Option<String>,
    /// What the INVITE asked of session timers, applied with our 200.
    asked: super::session_timer::Asked,
    pub timer: Option<super::session_timer::SessionTimer>,
    /// The carrier's Allow lists UPDATE: our refreshes need no SDP.
    pub peer_allows_update: bool,
}

impl Trunk {
    pub fn new(
        invite: Message,
        invite_tx: TxId,
        peer: Peer,
        local_tag: String,
        ip: IpAddr,
    ) -> Trunk {
        let call_id = invite.call_id().unwrap_or("").to_owned();
        let uri_and_tag = |na: Result<crate::sip::NameAddr, _>| {
            na.ok()
                .map(|na| (na.uri.to_string(), na.tag().unwrap_or("").to_owned()))
                .unwrap_or_default()
        };
        let (local_uri, _) = uri_and_tag(invite.to());
        let (remote_uri, remote_tag) = uri_and_tag(invite.from());
        let remote_target = invite
            .contacts()
            .ok()
            .and_then(|c| match c {
                Contacts::List(v) => v.first().map(|na| na.uri.to_string()),
                Contacts::Star => None,
            })
            .unwrap_or_else(|| format!("sip:{}", peer.addr));
        let record_route = invite
            .record_routes()
            .map(|v| v.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default();
        let invite_cseq = invite.cseq().map(|c| c.seq).unwrap_or(0);
        let peer_allows_update = invite
            .header_values("Allow")
            .flat_map(|v| v.split(','))
            .any(|m| m.trim().eq_ignore_ascii_case("UPDATE"));
        let dialog = Dialog::uas(
            DialogParams {
                call_id: call_id.clone(),
                local_tag: local_tag.clone(),
                remote_tag,
                local_uri,
                remote_uri,
                remote_target,
                record_route,
                secure: false,
            },
            invite_cseq,
            2,
            DialogState::Early,
        );
        Trunk {
            invite,
            invite_tx,
            peer,
            call_id,
            local_tag,
            state: TrunkState::Early,
            dialog,
            invite_cseq,
            local_sdp: LocalSdp::new(ip, 0),
            current_sdp: Bytes::new(),
            leg: None,
            params: None,
            srtp: None,
            late_offer: false,
            ring_until: None,
            bye_branch: None,
            asked: super::session_timer::Asked::Nothing,
            timer: None,
            peer_allows_update,
        }
    }
}

impl Trunk {
    pub fn local_sdp(&self) -> &LocalSdp {
        &self.local_sdp
    }
}

impl<E: Env> CallCore<E> {
    /// A response of ours on the trunk leg: our tag, our Server, and for
    /// 101–299 our Contact, Allow and Supported.
    pub(super) fn response(&self, req: &Message, status: u16, reason: &str) -> ResponseBuilder {
        let mut b = response_to(req, status, reason)
            .via_received(self.trunk.peer.addr)
            .to_tag(&self.trunk.local_tag)
            .header("Server", &self.cfg.user_agent);
        if (101..300).contains(&status) {
            b = b
                .header("Contact", self.env.contact(&self.trunk.peer))
                .header("Allow", ALLOW)
                .header("Supported", SUPPORTED);
        }
        b
    }

    pub(super) fn reply(
        &mut self,
        req: &Message,
        tx: TxId,
        status: u16,
        reason: &str,
        body: Option<Bytes>,
    ) {
        let mut b = self.response(req, status, reason);
        if let Some(body) = body {
            b = b.body("application/sdp", body);
        }
        self.out.push(Output::Respond {
            tx,
            status,
            bytes: b.build(),
            invite_2xx: None,
        });
    }

    /// A final non-2xx answer to the INVITE: the trunk leg is over.
    pub(super) fn final_invite_response(
        &mut self,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        let mut b = self.response(&self.trunk.invite, status, reason);
        for (k, v) in extra {
            b = b.header(k, v);
        }
        self.out.push(Output::Respond {
            tx: self.trunk.invite_tx,
            status,
            bytes: b.build(),
            invite_2xx: None,
        });
        self.out.push(Output::InviteAnswered);
        self.trunk.state = TrunkState::Ended;
    }

    /// Takes an RTP port and works out our SDP; then rings or answers.
    pub(super) fn answer(&mut self) -> Result<(), End> {
        let asked = super::session_timer::asked(
            &self.trunk.invite,
            self.cfg.session_min_se,
            self.cfg.session_expires,
        );
        if asked == super::session_timer::Asked::TooSmall {
            let min = self.cfg.session_min_se.to_string();
            self.final_invite_response(422, "Session Interval Too Small", &[("Min-SE", min)]);
            return Err(End::Failed);
        }
        self.trunk.asked = asked;
        let leg = match self.env.allocate(None) {
            Ok((leg, local)) => {
                self.trunk.local_sdp = LocalSdp::new(self.cfg.media_ip, local.port());
                leg
            }
            Err(_) => {
                self.out.push(Output::Figure(Figure::NoRtpPort));
                let retry = self.cfg.retry_after.to_string();
                self.final_invite_response(503, "Service Unavailable", &[("Retry-After", retry)]);
                return Err(End::Failed);
            }
        };
        self.trunk.leg = Some(leg);
        let offer = self.trunk.invite.body().clone();
        let sdp_body = self.trunk.invite.content_type().is_none_or(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/sdp")
        });
        if !offer.is_empty() && !sdp_body {
            // RFC 3261 §21.4.16: a body we cannot read is 415, saying what
            // we read (RFC 4475's invut).
            self.final_invite_response(
                415,
                "Unsupported Media Type",
                &[("Accept", "application/sdp".to_owned())],
            );
            return Err(End::Failed);
        }
        let opts = self.sdp_opts(&self.trunk.peer);
        let negotiated = if offer.is_empty() {
            self.trunk.late_offer = true;
            sdp::offer_secure(&mut self.trunk.local_sdp, &self.cfg.codecs, opts)
                .map(|body| (body, None))
        } else {
            sdp::answer_secure(&offer, &mut self.trunk.local_sdp, &self.cfg.codecs, opts)
                .map(|(body, params, srtp)| (body, Some((params, srtp))))
        };
        match negotiated {
            Ok((body, media)) => {
                self.trunk.current_sdp = body;
                if let Some((params, srtp)) = media {
                    self.trunk.params = Some(params);
                    self.trunk.srtp = srtp;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "SDP offer refused");
                match e {
                    sdp::SdpError::Parse(_) => self.final_invite_response(400, "Bad SDP", &[]),
                    // The reason says which rule refused it (no codec, SRTP
                    // without TLS, SRTP required, no usable crypto).
                    e => self.final_invite_response(
                        488,
                        "Not Acceptable Here",
                        &[("Warning", format!("399 conmutador \"{e}\""))],
                    ),
                }
                return Err(End::Failed);
            }
        }
        if self.cfg.ring_delay.is_zero() {
            return self.send_200();
        }
        let ringing = self.response(&self.trunk.invite, 180, "Ringing").build();
        self.out.push(Output::Respond {
            tx: self.trunk.invite_tx,
            status: 180,
            bytes: ringing,
            invite_2xx: None,
        });
        self.trunk.ring_until = Some(self.now.at + self.cfg.ring_delay);
        Ok(())
    }

    pub(super) fn send_200(&mut self) -> Result<(), End> {
        self.carrier_refreshed(self.trunk.asked);
        let mut b = self.response(&self.trunk.invite, 200, "OK");
        for (k, v) in self.timer_headers() {
            b = b.header(k, v);
        }
        let ok = b
            .body("application/sdp", self.trunk.current_sdp.clone())
            .build();
        self.out.push(Output::Respond {
            tx: self.trunk.invite_tx,
            status: 200,
            bytes: ok,
            invite_2xx: Some((self.trunk.call_id.clone(), self.trunk.invite_cseq)),
        });
        self.out.push(Output::InviteAnswered);
        self.trunk.state = TrunkState::Answered;
        self.record.answered = Some(self.now.wall);
        self.out.push(Output::Figure(Figure::AnswerDelay(
            self.now.at.saturating_duration_since(self.started),
        )));
        match self.trunk.params.clone() {
            Some(params) => self.start_trunk_media(params),
            None => Ok(()),
        }
    }

    /// How SDP is negotiated with `peer`: our SRTP mode, and whether keys
    /// may travel (TLS).
    pub(super) fn sdp_opts(&self, peer: &crate::sip::transport::Peer) -> sdp::SecureOpts {
        self.sdp_opts_with(self.cfg.srtp, peer)
    }

    pub(super) fn sdp_opts_with(
        &self,
        srtp: sdp::SrtpMode,
        peer: &crate::sip::transport::Peer,
    ) -> sdp::SecureOpts {
        sdp::SecureOpts {
            srtp,
            signalling_secure: self.env.secure(peer),
        }
    }

    fn start_trunk_media(&mut self, params: MediaParams) -> Result<(), End> {
        let Some(leg) = self.trunk.leg else {
            return Ok(());
        };
        self.media(MediaCmd::Start {
            leg,
            params: params.clone(),
            srtp: self.trunk.srtp.clone(),
        });
        self.trunk.params = Some(params);
        self.start_ivr()
    }

    pub(super) fn on_ack(&mut self, req: &Message) -> Result<(), End> {
        if self.trunk.state != TrunkState::Answered {
            return Ok(());
        }
        self.trunk.state = TrunkState::Confirmed;
        self.trunk.dialog.confirm(None);
        if !self.trunk.late_offer {
            return Ok(());
        }
        match sdp::accept_answer_secure(req.body(), &self.cfg.codecs, &self.trunk.local_sdp) {
            Ok((params, srtp)) => {
                self.trunk.srtp = srtp;
                self.start_trunk_media(params)
            }
            Err(e) => {
                tracing::warn!(error = %e, "ACK carried no usable SDP answer");
                Err(End::Failed)
            }
        }
    }

    pub(super) fn on_cancel(&mut self) -> Result<(), End> {
        // After the 200 a CANCEL changes nothing.
        if self.trunk.state != TrunkState::Early {
            return Ok(());
        }
        self.trunk.ring_until = None;
        self.record.hangup_side = HangupSide::Caller;
        self.final_invite_response(487, "Request Terminated", &[]);
        Err(End::Cancelled)
    }

    pub(super) fn on_ack_timeout(&mut self) -> Result<(), End> {
        if self.trunk.state == TrunkState::Answered {
            tracing::warn!(call = self.id, "2xx never acknowledged");
            return Err(End::NoAck);
        }
        Ok(())
    }

    pub(super) fn on_trunk_request(&mut self, req: Message, tx: TxId) -> Result<(), End> {
        if self.trunk.state == TrunkState::Early {
            // Only CANCEL and in-dialog requests can arrive before the
            // answer; anything else waits for a confirmed dialog.
            self.reply(&req, tx, 491, "Request Pending", None);
            return Ok(());
        }
        let Ok(cseq) = req.cseq() else {
            self.reply(&req, tx, 400, "Bad CSeq", None);
            return Ok(());
        };
        let method = req.method().cloned();
        let method_name = method.as_ref().map(|m| m.as_str()).unwrap_or("");
        match self.trunk.dialog.check_remote_cseq(cseq.seq, method_name) {
            Ok(()) => {}
            Err(CSeqError::OutOfOrder { .. }) => {
                self.reply(&req, tx, 500, "CSeq Out of Order", None);
                return Ok(());
            }
            Err(CSeqError::OutOfRange(_)) => {
                self.reply(&req, tx, 400, "Bad CSeq", None);
                return Ok(());
            }
        }
        match method {
            Some(Method::Bye) => {
                self.reply(&req, tx, 200, "OK", None);
                self.record.hangup_side = HangupSide::Caller;
                self.trunk.state = TrunkState::Ended;
                Err(End::CallerHungUp)
            }
            Some(Method::Invite) | Some(Method::Update) => {
                let asked = super::session_timer::asked(
                    &req,
                    self.cfg.session_min_se,
                    self.cfg.session_expires,
                );
                if asked == super::session_timer::Asked::TooSmall {
                    let b = self
                        .response(&req, 422, "Session Interval Too Small")
                        .header("Min-SE", self.cfg.session_min_se.to_string());
                    self.respond_bytes(tx, 422, b.build());
                    return Ok(());
                }
                if method == Some(Method::Update) && req.body().is_empty() {
                    self.carrier_refreshed(asked);
                    let mut b = self.response(&req, 200, "OK");
                    for (k, v) in self.timer_headers() {
                        b = b.header(k, v);
                    }
                    self.respond_bytes(tx, 200, b.build());
                } else {
                    self.reinvite(req, tx, asked);
                }
                Ok(())
            }
            Some(Method::Info) => match crate::call::parse_dtmf_relay(&req) {
                Some(d) => {
                    self.reply(&req, tx, 200, "OK", None);
                    self.out.push(Output::Figure(Figure::InfoDigit));
                    self.on_digit(d)
                }
                None if req.body().is_empty() => {
                    self.reply(&req, tx, 200, "OK", None);
                    Ok(())
                }
                None => {
                    self.reply(&req, tx, 415, "Unsupported Media Type", None);
                    Ok(())
                }
            },
            Some(Method::Options) => {
                let bytes = self.env.options_response(&req, &self.trunk.peer);
                self.out.push(Output::Respond {
                    tx,
                    status: 200,
                    bytes,
                    invite_2xx: None,
                });
                Ok(())
            }
            _ => {
                let bytes = self
                    .response(&req, 405, "Method Not Allowed")
                    .header("Allow", ALLOW)
                    .build();
                self.out.push(Output::Respond {
                    tx,
                    status: 405,
                    bytes,
                    invite_2xx: None,
                });
                Ok(())
            }
        }
    }

    fn respond_bytes(&mut self, tx: TxId, status: u16, bytes: Bytes) {
        self.out.push(Output::Respond {
            tx,
            status,
            bytes,
            invite_2xx: None,
        });
    }

    /// re-INVITE or UPDATE with SDP: hold/resume and session refresh.
    fn reinvite(&mut self, req: Message, tx: TxId, asked: super::session_timer::Asked) {
        let is_invite = req.method() == Some(&Method::Invite);
        let offer = req.body().clone();
        if !offer.is_empty() {
            let opts = self.sdp_opts(&self.trunk.peer);
            match sdp::answer_secure(&offer, &mut self.trunk.local_sdp, &self.cfg.codecs, opts) {
                Ok((answer, params, srtp)) => {
                    self.trunk.current_sdp = answer;
                    if let Some(leg) = self.trunk.leg {
                        self.media(MediaCmd::Update {
                            leg,
                            params: params.clone(),
                            srtp: srtp.clone(),
                        });
                    }
                    self.trunk.params = Some(params);
                    self.trunk.srtp = srtp;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "re-INVITE offer refused");
                    self.reply(&req, tx, 488, "Not Acceptable Here", None);
                    return;
                }
            }
        }
        if let Ok(c) = req.contacts()
            && let Contacts::List(v) = c
            && let Some(first) = v.first()
        {
            // A target refresh (§12.2.2): later requests go to the new Contact.
            self.trunk
                .dialog
                .update_remote_target(first.uri.to_string());
        }
        self.carrier_refreshed(asked);
        let mut b = self.response(&req, 200, "OK");
        for (k, v) in self.timer_headers() {
            b = b.header(k, v);
        }
        let bytes = b
            .body("application/sdp", self.trunk.current_sdp.clone())
            .build();
        let invite_2xx = if is_invite {
            req.cseq().ok().map(|c| (self.trunk.call_id.clone(), c.seq))
        } else {
            None
        };
        self.out.push(Output::Respond {
            tx,
            status: 200,
            bytes,
            invite_2xx,
        });
    }

    /// Hangs up the trunk leg: BYE in a confirmed dialog, 480 to an INVITE
    /// not answered yet.
    pub(super) fn send_bye(&mut self) {
        if self.trunk.state == TrunkState::Early {
            self.trunk.ring_until = None;
            self.final_invite_response(480, "Temporarily Unavailable", &[]);
            return;
        }
        self.trunk.state = TrunkState::Ended;
        let branch = new_branch();
        let via = self.env.via(&self.trunk.peer, &branch);
        let Some(b) = self.trunk.dialog.request(Method::Bye, via) else {
            return;
        };
        let bytes = b.header("User-Agent", &self.cfg.user_agent).build();
        self.trunk.bye_branch = Some(branch.clone());
        self.out.push(Output::Request {
            peer: self.trunk.peer,
            method: Method::Bye,
            branch,
            bytes,
        });
    }
}
