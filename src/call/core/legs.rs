//! The outgoing legs: operators rung for a queued caller and the target of
//! a transfer. Each is an INVITE we send with an offer from its own media
//! leg; its answer makes a UAC [`Dialog`], which every later request (BYE)
//! and every answer to the phone's requests go through. A CANCEL and the
//! ACK of a failure copy the INVITE, as RFC 3261 §9.1 and §17.1.1.3 want.
//!
//! The ACD decides who is rung and when a ring stops; this part carries
//! that out and reports back (answered, failed), and tells the queue part
//! when a leg is bridged.

use std::time::{Duration, Instant};

use super::{CallCore, End, Env, MediaCmd, Output, Reach};
use crate::acd::{AcdEvent, Party, RingFailure};
use crate::media::LegId;
use crate::sdp::{self, LocalSdp, MediaParams};
use crate::sip::dialog::{Dialog, DialogParams, DialogState};
use crate::sip::transaction::TxId;
use crate::sip::transport::Peer;
use crate::sip::{Message, Method, RequestBuilder, new_branch, new_call_id, new_tag, response_to};

/// The name of the outgoing leg a transfer places.
pub(super) const TRANSFER_LEG: &str = "transfer";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegState {
    Calling,
    Ringing,
    /// 2xx received and ACKed; waiting for the ACD to connect or cancel.
    Answered,
    /// CANCEL sent; waiting for the 487 (or a 2xx crossing it).
    Cancelling,
    /// Bridged to the caller.
    Connected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegKind {
    /// An operator rung by the ACD.
    Operator,
    /// A plan's transfer: no ACD involved; its answer bridges at once.
    Transfer,
}

pub(super) struct OutLeg {
    /// The operator's id, or [`TRANSFER_LEG`].
    pub name: String,
    pub kind: LegKind,
    pub call_id: String,
    pub local_tag: String,
    /// The INVITE's branch: its CANCEL and failure ACK reuse it.
    pub branch: String,
    pub request_uri: String,
    pub from_hdr: String,
    pub to_hdr: String,
    pub peer: Peer,
    pub media: LegId,
    pub local_sdp: LocalSdp,
    pub state: LegState,
    /// From the first 2xx on.
    pub dialog: Option<Dialog>,
    pub connected_at: Option<Instant>,
    /// The phone put the call on hold (its last SDP wants nothing sent).
    pub on_hold: bool,
}

#[derive(Default)]
pub(super) struct Legs {
    pub legs: Vec<OutLeg>,
}

impl Legs {
    pub fn owns(&self, call_id: &str) -> bool {
        self.legs.iter().any(|l| l.call_id == call_id)
    }

    pub fn by_media(&self, media: LegId) -> Option<&OutLeg> {
        self.legs.iter().find(|l| l.media == media)
    }

    fn index_of_call(&self, call_id: &str) -> Option<usize> {
        self.legs.iter().position(|l| l.call_id == call_id)
    }

    fn index_of_branch(&self, branch: &str) -> Option<usize> {
        self.legs.iter().position(|l| l.branch == branch)
    }

    /// Whether an operator (not a transfer) has answered.
    pub fn operator_answered(&self) -> bool {
        self.legs
            .iter()
            .any(|l| l.kind == LegKind::Operator && l.state == LegState::Answered)
    }

    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }

    pub fn take_all(&mut self) -> Vec<OutLeg> {
        std::mem::take(&mut self.legs)
    }

    pub fn connected(&self, name: &str) -> Option<&OutLeg> {
        self.legs
            .iter()
            .find(|l| l.name == name && l.state == LegState::Connected)
    }

    pub fn transfer_uri(&self) -> Option<&str> {
        self.legs
            .iter()
            .find(|l| l.kind == LegKind::Transfer)
            .map(|l| l.request_uri.as_str())
    }
}

impl OutLeg {
    /// A request that copies the INVITE's Request-URI, Via branch, From,
    /// Call-ID and CSeq number: its CANCEL, or the ACK of a failure (with
    /// the failure's To).
    fn like_invite<E: Env>(&self, env: &E, method: Method, to: &str) -> bytes::Bytes {
        RequestBuilder::new(method.clone(), &self.request_uri)
            .header("Via", env.via(&self.peer, &self.branch))
            .header("Max-Forwards", "70")
            .header("From", self.from_hdr.clone())
            .header("To", to)
            .header("Call-ID", self.call_id.clone())
            .header("CSeq", format!("1 {}", method.as_str()))
            .build()
    }
}

impl<E: Env> CallCore<E> {
    /// The ACD rings operator `op` for this caller.
    pub(super) fn ring(&mut self, op: &str, queue: &str, timeout: Duration) {
        let failed = |core: &mut Self| {
            core.out.push(Output::Acd(AcdEvent::RingFailed {
                call: core.id,
                op: op.to_owned(),
                reason: RingFailure::Unreachable,
            }));
        };
        let Some(reach) = self.env.operator(op) else {
            tracing::debug!(operator = op, "operator has no reachable contact");
            return failed(self);
        };
        let label = format!("{} ({queue})", self.caller_user());
        let headers = [
            ("Subject", format!("Cola {queue}")),
            ("X-Conmutador-Queue", queue.to_owned()),
        ];
        if self
            .call_out(op, LegKind::Operator, &reach, &label, &headers)
            .is_err()
        {
            return failed(self);
        }
        tracing::info!(
            call = self.id,
            operator = op,
            queue,
            timeout_s = timeout.as_secs(),
            "ringing operator"
        );
        let queue = self.waiting.queued.as_ref().map(|q| q.name.clone());
        self.set_view_state(crate::ops::http::CallState::Ringing, queue, None);
    }

    /// The plan transfers the caller to `uri`: the gateway calls it and
    /// bridges the caller to it when it answers. Err ends the call.
    pub(super) fn transfer(&mut self, uri: &str) -> Result<(), End> {
        let Some(peer) = self.env.transfer(uri) else {
            tracing::warn!(%uri, "transfer target is not an IP address and no transfer_proxy is set");
            return Err(End::TransferFailed);
        };
        let label = self.caller_user();
        let reach = Reach {
            uri: uri.to_owned(),
            peer,
        };
        if self
            .call_out(TRANSFER_LEG, LegKind::Transfer, &reach, &label, &[])
            .is_err()
        {
            return Err(End::TransferFailed);
        }
        tracing::info!(call = self.id, %uri, "transferring the caller");
        self.record.transfer = true;
        Ok(())
    }

    /// Operators' legs follow `srtp_operators`; a transfer goes to the
    /// carrier's side and follows `srtp`.
    fn leg_srtp(&self, kind: LegKind) -> sdp::SrtpMode {
        match kind {
            LegKind::Operator => self.cfg.srtp_operators,
            LegKind::Transfer => self.cfg.srtp,
        }
    }

    /// The caller's user part, cut to characters that need no escaping.
    fn caller_user(&self) -> String {
        let user = self
            .trunk
            .invite
            .from()
            .ok()
            .and_then(|f| f.uri.user().map(str::to_owned))
            .unwrap_or_else(|| "anonymous".into());
        user.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'))
            .take(32)
            .collect()
    }

    /// Places an outgoing leg: a media leg beside the caller's (so the
    /// bridge relays on one worker), an INVITE with our offer, and the
    /// dialog routed to this call. `label` is what the far phone shows.
    fn call_out(
        &mut self,
        name: &str,
        kind: LegKind,
        reach: &Reach,
        label: &str,
        headers: &[(&str, String)],
    ) -> Result<(), ()> {
        let Ok((media, local)) = self.env.allocate(self.trunk.leg) else {
            tracing::warn!(call = self.id, "no RTP port for an outgoing leg");
            return Err(());
        };
        let mut local_sdp = LocalSdp::new(self.cfg.media_ip, local.port());
        let opts = self.sdp_opts_with(self.leg_srtp(kind), &reach.peer);
        let offer = match sdp::offer_secure(&mut local_sdp, &self.cfg.codecs, opts) {
            Ok(offer) => offer,
            Err(e) => {
                // SRTP required and this phone is not on TLS.
                tracing::warn!(call = self.id, error = %e, "no offer for an outgoing leg");
                self.media(MediaCmd::Release { leg: media });
                return Err(());
            }
        };
        let call_id = new_call_id(&self.cfg.media_ip.to_string());
        let local_tag = new_tag();
        let branch = new_branch();
        let peer = reach.peer;
        let contact = self.env.contact(&peer);
        let host = contact
            .trim_start_matches("<sip:conmutador@")
            .trim_end_matches('>');
        let host = host.split(';').next().unwrap_or(host).to_owned();
        let label: String = label.chars().filter(|c| *c != '"' && *c != '\\').collect();
        let from_hdr = format!(
            "\"{label}\" <sip:{}@{host}>;tag={local_tag}",
            self.caller_user()
        );
        let to_hdr = format!("<{}>", reach.uri);
        let mut b = RequestBuilder::new(Method::Invite, &reach.uri)
            .header("Via", self.env.via(&peer, &branch))
            .header("Max-Forwards", "70")
            .header("From", from_hdr.clone())
            .header("To", to_hdr.clone())
            .header("Call-ID", call_id.clone())
            .header("CSeq", "1 INVITE")
            .header("Contact", contact);
        for (k, v) in headers {
            b = b.header(k, v.clone());
        }
        let bytes = b
            .header("Allow", crate::sip::endpoint::ALLOW)
            .header("User-Agent", self.cfg.user_agent.clone())
            .body("application/sdp", offer)
            .build();
        self.out.push(Output::RouteDialog {
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
        });
        self.out.push(Output::Request {
            peer,
            method: Method::Invite,
            branch: branch.clone(),
            bytes,
        });
        self.legs.legs.push(OutLeg {
            name: name.to_owned(),
            kind,
            call_id,
            local_tag,
            branch,
            request_uri: reach.uri.clone(),
            from_hdr,
            to_hdr,
            peer,
            media,
            local_sdp,
            state: LegState::Calling,
            dialog: None,
            connected_at: None,
            on_hold: false,
        });
        Ok(())
    }

    /// Stops ringing `op` (CANCEL), or hangs up its answered leg (BYE).
    pub(super) fn cancel_leg(&mut self, op: &str) {
        let Some(i) = self
            .legs
            .legs
            .iter()
            .position(|l| l.name == op && l.state != LegState::Cancelling)
        else {
            return;
        };
        match self.legs.legs[i].state {
            LegState::Calling | LegState::Ringing => {
                let l = &self.legs.legs[i];
                let bytes = l.like_invite(&self.env, Method::Cancel, &l.to_hdr);
                self.out.push(Output::Request {
                    peer: l.peer,
                    method: Method::Cancel,
                    branch: l.branch.clone(),
                    bytes,
                });
                self.legs.legs[i].state = LegState::Cancelling;
            }
            LegState::Answered | LegState::Connected => {
                let mut l = self.legs.legs.remove(i);
                self.bye_leg(&mut l);
                self.drop_leg(l);
            }
            LegState::Cancelling => {}
        }
    }

    /// Bridges the caller with `op`'s answered leg.
    pub(super) fn connect(&mut self, op: &str) {
        let now = self.now.at;
        let Some(l) = self
            .legs
            .legs
            .iter_mut()
            .find(|l| l.name == op && l.state == LegState::Answered)
        else {
            tracing::warn!(operator = op, "connect for a leg that is not answered");
            return;
        };
        l.state = LegState::Connected;
        l.connected_at = Some(now);
        let media = l.media;
        let kind = l.kind;
        self.bridged(op, kind, media);
    }

    /// A response on an outgoing leg (matched by Call-ID); only the
    /// INVITE's answers change anything.
    pub(super) fn on_leg_response(&mut self, resp: Message) -> Result<(), End> {
        let call_id = resp.call_id().unwrap_or("");
        let Some(i) = self.legs.index_of_call(call_id) else {
            return Ok(());
        };
        let is_invite = resp
            .cseq()
            .map(|c| c.method == Method::Invite)
            .unwrap_or(false);
        if !is_invite {
            return Ok(());
        }
        let status = resp.status().unwrap_or(0);
        match status {
            100 => Ok(()),
            101..=199 => {
                if self.legs.legs[i].state == LegState::Calling {
                    self.legs.legs[i].state = LegState::Ringing;
                }
                Ok(())
            }
            200..=299 => self.leg_answered(i, &resp),
            _ => {
                let l = &self.legs.legs[i];
                let to = resp.header("To").unwrap_or(&l.to_hdr).to_owned();
                let bytes = l.like_invite(&self.env, Method::Ack, &to);
                self.out.push(Output::AckFailure {
                    branch: l.branch.clone(),
                    bytes,
                });
                let l = self.legs.legs.remove(i);
                let reason = match status {
                    486 | 600 => RingFailure::Busy,
                    603 => RingFailure::Declined,
                    408 | 480 | 487 => RingFailure::NoAnswer,
                    _ => RingFailure::Unreachable,
                };
                tracing::debug!(leg = %l.name, status, "the far end did not take the call");
                self.leg_failed(l, reason)
            }
        }
    }

    /// The INVITE with `branch` timed out or could not be sent: the phone
    /// never answered at all.
    pub(super) fn on_leg_lost(&mut self, branch: &str) -> Result<(), End> {
        match self.legs.index_of_branch(branch) {
            Some(i) if self.legs.legs[i].dialog.is_none() => {
                let l = self.legs.legs.remove(i);
                self.leg_failed(l, RingFailure::Unreachable)
            }
            _ => Ok(()),
        }
    }

    /// An outgoing leg ended before it was bridged. For an operator the ACD
    /// tries someone else (unless it cancelled the ring itself, or the call
    /// is ending); a failed transfer ends the call.
    fn leg_failed(&mut self, l: OutLeg, reason: RingFailure) -> Result<(), End> {
        let cancelled = l.state == LegState::Cancelling;
        let kind = l.kind;
        if !cancelled && kind == LegKind::Operator && self.ending.is_none() {
            self.out.push(Output::Acd(AcdEvent::RingFailed {
                call: self.id,
                op: l.name.clone(),
                reason,
            }));
        }
        let name = l.name.clone();
        self.drop_leg(l);
        self.after_ring_change();
        if self.ending.is_some() {
            return Ok(());
        }
        if self.referral_target_is(&name) && !cancelled {
            let (status, text) = match reason {
                RingFailure::Busy => (486, "Busy Here"),
                RingFailure::Declined => (603, "Decline"),
                RingFailure::NoAnswer => (480, "Temporarily Unavailable"),
                RingFailure::Unreachable => (503, "Service Unavailable"),
            };
            return self.referral_failed(status, text);
        }
        if kind == LegKind::Transfer && self.waiting.referral.is_none() {
            return Err(End::TransferFailed);
        }
        Ok(())
    }

    fn leg_answered(&mut self, i: usize, resp: &Message) -> Result<(), End> {
        let first = self.legs.legs[i].dialog.is_none();
        if first {
            let l = &mut self.legs.legs[i];
            let remote_target = resp
                .contacts()
                .ok()
                .and_then(|c| match c {
                    crate::sip::Contacts::List(v) => v.first().map(|na| na.uri.to_string()),
                    crate::sip::Contacts::Star => None,
                })
                .unwrap_or_else(|| l.request_uri.clone());
            let to = resp.to().ok();
            let remote_tag = to
                .as_ref()
                .and_then(|t| t.tag().map(str::to_owned))
                .unwrap_or_default();
            let remote_uri = to
                .map(|t| t.uri.to_string())
                .unwrap_or_else(|| l.request_uri.clone());
            let local_uri = crate::sip::NameAddr::parse(&l.from_hdr)
                .map(|na| na.uri.to_string())
                .unwrap_or_default();
            let record_route = resp
                .record_routes()
                .map(|v| v.iter().map(|r| r.to_string()).collect())
                .unwrap_or_default();
            l.dialog = Some(Dialog::uac(
                DialogParams {
                    call_id: l.call_id.clone(),
                    local_tag: l.local_tag.clone(),
                    remote_tag,
                    local_uri,
                    remote_uri,
                    remote_target,
                    record_route,
                    secure: false,
                },
                1,
                DialogState::Confirmed,
            ));
        }
        // Every 2xx (retransmissions too) is acknowledged end to end.
        self.ack_2xx(i);
        if !first {
            return Ok(());
        }
        if self.legs.legs[i].state == LegState::Cancelling || self.ending.is_some() {
            // Our CANCEL crossed the answer: the call is up, so end it.
            let mut l = self.legs.legs.remove(i);
            self.bye_leg(&mut l);
            self.drop_leg(l);
            return Ok(());
        }
        let answer =
            sdp::accept_answer_secure(resp.body(), &self.cfg.codecs, &self.legs.legs[i].local_sdp);
        let (params, srtp) = match answer {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "the far end answered with unusable SDP");
                let mut l = self.legs.legs.remove(i);
                self.bye_leg(&mut l);
                return self.leg_failed(l, RingFailure::Unreachable);
            }
        };
        self.start_leg_media(i, params, srtp);
        self.legs.legs[i].state = LegState::Answered;
        let l = &self.legs.legs[i];
        if l.kind == LegKind::Transfer {
            self.connect(TRANSFER_LEG);
        } else {
            // An operator's transfer reached its target: say so before the
            // ACD logs the new CONNECT.
            if self.referral_target_is(&l.name) {
                self.log_transfer();
            }
            let l = &self.legs.legs[i];
            self.out.push(Output::Acd(AcdEvent::RingAnswered {
                call: self.id,
                op: l.name.clone(),
            }));
        }
        Ok(())
    }

    /// The ACK for a 2xx: in the dialog, with the INVITE's CSeq number.
    fn ack_2xx(&mut self, i: usize) {
        let l = &self.legs.legs[i];
        let Some(d) = &l.dialog else { return };
        let target = d.request_target();
        let mut ack = RequestBuilder::new(Method::Ack, &target.request_uri)
            .header("Via", self.env.via(&l.peer, &new_branch()))
            .header("Max-Forwards", "70")
            .header("From", l.from_hdr.clone())
            .header(
                "To",
                format!("<{}>;tag={}", d.remote_uri(), d.id().remote_tag),
            )
            .header("Call-ID", l.call_id.clone())
            .header("CSeq", "1 ACK");
        for r in target.routes {
            ack = ack.header("Route", r);
        }
        self.out.push(Output::Raw {
            peer: l.peer,
            bytes: ack.build(),
        });
    }

    fn start_leg_media(&mut self, i: usize, params: MediaParams, srtp: Option<sdp::SrtpParams>) {
        let leg = self.legs.legs[i].media;
        self.media(MediaCmd::Start { leg, params, srtp });
    }

    /// A request on an outgoing leg: BYE from the operator, mostly.
    pub(super) fn on_leg_request(&mut self, req: Message, tx: TxId) -> Result<(), End> {
        let call_id = req.call_id().unwrap_or("");
        let Some(i) = self.legs.index_of_call(call_id) else {
            return Ok(());
        };
        let l = &self.legs.legs[i];
        let respond = |status: u16, reason: &str| {
            response_to(&req, status, reason)
                .via_received(l.peer.addr)
                .to_tag(&l.local_tag)
                .header("Server", self.cfg.user_agent.clone())
        };
        match req.method() {
            Some(Method::Bye) => {
                let bytes = respond(200, "OK").build();
                self.respond(tx, 200, bytes, None);
                let l = self.legs.legs.remove(i);
                let was_connected = l.state == LegState::Connected;
                let (name, kind) = (l.name.clone(), l.kind);
                self.drop_leg(l);
                if self.ending.is_some() || self.referrer_left(&name) {
                    // An operator hanging up after asking for a transfer
                    // leaves the caller to it.
                    return Ok(());
                }
                if was_connected {
                    if let Some(back) = self.left_after_give_back(&name) {
                        return back;
                    }
                    self.record.talk_ended_by = Some(Party::Operator);
                    return Err(End::OperatorHungUp);
                }
                if kind == LegKind::Operator {
                    self.out.push(Output::Acd(AcdEvent::RingFailed {
                        call: self.id,
                        op: name,
                        reason: RingFailure::Declined,
                    }));
                }
                self.after_ring_change();
                Ok(())
            }
            Some(Method::Refer) => self.on_refer(i, req, tx),
            Some(Method::Options) | Some(Method::Update) | Some(Method::Info) => {
                let bytes = respond(200, "OK").build();
                self.respond(tx, 200, bytes, None);
                // A digit the operator sent by SIP INFO: maybe a recording code.
                if req.method() == Some(&Method::Info)
                    && let Some(d) = crate::call::parse_dtmf_relay(&req)
                {
                    self.operator_digit(d);
                }
                Ok(())
            }
            Some(Method::Invite) => {
                // Hold/resume from the operator's phone: answer with our SDP.
                let contact = self.env.contact(&l.peer);
                let opts = self.sdp_opts_with(self.leg_srtp(l.kind), &l.peer);
                let l = &mut self.legs.legs[i];
                match sdp::answer_secure(req.body(), &mut l.local_sdp, &self.cfg.codecs, opts) {
                    Ok((answer, params, srtp)) => {
                        let leg = l.media;
                        // The phone holds the caller when it wants nothing
                        // sent to it (sendonly, inactive).
                        let held = !params.direction.sends();
                        let changed = std::mem::replace(&mut l.on_hold, held) != held;
                        let name = l.name.clone();
                        let bytes = response_to(&req, 200, "OK")
                            .via_received(l.peer.addr)
                            .to_tag(&l.local_tag)
                            .header("Contact", contact)
                            .body("application/sdp", answer)
                            .build();
                        let key = req.cseq().ok().map(|c| (l.call_id.clone(), c.seq));
                        self.media(MediaCmd::Update { leg, params, srtp });
                        self.respond(tx, 200, bytes, key);
                        if changed && self.waiting.bridged.as_deref() == Some(name.as_str()) {
                            self.caller_held(held);
                        }
                    }
                    Err(_) => {
                        let bytes = response_to(&req, 488, "Not Acceptable Here")
                            .via_received(l.peer.addr)
                            .to_tag(&l.local_tag)
                            .build();
                        self.respond(tx, 488, bytes, None);
                    }
                }
                Ok(())
            }
            _ => {
                let bytes = respond(405, "Method Not Allowed").build();
                self.respond(tx, 405, bytes, None);
                Ok(())
            }
        }
    }

    fn respond(
        &mut self,
        tx: TxId,
        status: u16,
        bytes: bytes::Bytes,
        invite_2xx: Option<(String, u32)>,
    ) {
        self.out.push(Output::Respond {
            tx,
            status,
            bytes,
            invite_2xx,
        });
    }

    /// The operator put the caller on hold (music over the bridge: a
    /// prompt takes precedence over relayed audio) or took them back.
    fn caller_held(&mut self, held: bool) {
        if held {
            self.play_hold_music();
        } else if let Some(leg) = self.trunk.leg {
            self.media(MediaCmd::StopPlayback { leg });
        }
    }

    /// Back to "queued" in the admin view when no operator rings any more.
    pub(super) fn after_ring_change(&mut self) {
        if self.waiting.bridged.is_none() && self.legs.is_empty() && self.ending.is_none() {
            if let Some(q) = &self.waiting.queued {
                let name = q.name.clone();
                self.set_view_state(crate::ops::http::CallState::Queued, Some(name), None);
            }
        }
    }

    /// BYE in the leg's dialog.
    fn bye_leg(&mut self, l: &mut OutLeg) {
        let branch = new_branch();
        let via = self.env.via(&l.peer, &branch);
        let Some(b) = l.dialog.as_mut().and_then(|d| d.request(Method::Bye, via)) else {
            return;
        };
        let bytes = b.header("User-Agent", self.cfg.user_agent.clone()).build();
        self.out.push(Output::Request {
            peer: l.peer,
            method: Method::Bye,
            branch,
            bytes,
        });
    }

    /// Gives back a leg's port and its route.
    pub(super) fn drop_leg(&mut self, l: OutLeg) {
        self.media(MediaCmd::Release { leg: l.media });
        self.out.push(Output::ForgetDialog {
            call_id: l.call_id,
            local_tag: l.local_tag,
        });
    }

    /// The call ends: every outgoing leg is cancelled (ringing) or hung up
    /// (answered). Cancelled legs stay until the call is done, so a 2xx
    /// crossing the CANCEL is still acknowledged and hung up.
    pub(super) fn end_legs(&mut self) {
        let mut kept = Vec::new();
        for mut l in self.legs.take_all() {
            match l.state {
                LegState::Calling | LegState::Ringing => {
                    let bytes = l.like_invite(&self.env, Method::Cancel, &l.to_hdr);
                    self.out.push(Output::Request {
                        peer: l.peer,
                        method: Method::Cancel,
                        branch: l.branch.clone(),
                        bytes,
                    });
                    l.state = LegState::Cancelling;
                    kept.push(l);
                }
                LegState::Cancelling => kept.push(l),
                LegState::Answered | LegState::Connected => {
                    self.bye_leg(&mut l);
                    self.drop_leg(l);
                }
            }
        }
        self.legs.legs = kept;
    }
}
