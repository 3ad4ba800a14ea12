//! The caller's time in a queue and its operator legs: the B2BUA half that
//! calls operators (UAC INVITE with an offer), CANCELs the losers, bridges
//! the winner's RTP to the caller, and ends one side when the other hangs up.
//!
//! Decisions (who to ring, when to give up, what to announce) come from the
//! ACD as commands; this file only carries them out and reports back.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{Call, End};
use crate::acd::{AcdCommand, AcdEvent, ExitReason, Party, Removal, RingFailure};
use crate::dialplan::{IvrEvent, QueueExitReason};
use crate::media::{LegId, PlayOpts};
use crate::ops::http::CallState;
use crate::ops::records::QueueEvent;
use crate::sdp::{self, LocalSdp, MediaParams};
use crate::sip::transaction::TxId;
use crate::sip::transport::Peer;
use crate::sip::{Message, Method, RequestBuilder, new_branch, new_call_id, new_tag, response_to};

/// Playback tokens the queue uses; the interpreter's own tokens count up
/// from 1, so the top of the range is free.
pub(super) const MOH_TOKEN: u64 = u64::MAX - 1;
pub(super) const ANNOUNCE_TOKEN: u64 = u64::MAX - 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpState {
    Calling,
    Ringing,
    /// 2xx received and ACKed; waiting for the ACD to connect or cancel.
    Answered,
    /// CANCEL sent; waiting for the 487.
    Cancelling,
    /// Bridged to the caller.
    Connected,
}

pub(super) struct OpLeg {
    pub op: String,
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    pub branch: String,
    pub invite_tx: Option<TxId>,
    pub request_uri: String,
    pub from_hdr: String,
    pub to_hdr: String,
    pub peer: Peer,
    pub leg: LegId,
    pub local_sdp: LocalSdp,
    pub state: OpState,
    pub remote_target: String,
    pub route_set: Vec<String>,
    pub connected_at: Option<Instant>,
    /// A transfer's leg: no ACD involved; its answer bridges at once.
    pub transfer: bool,
}

/// The name of the outgoing leg a transfer places.
pub(super) const TRANSFER_LEG: &str = "transfer";

/// A caller's stay in a queue.
pub(super) struct Queued {
    pub name: String,
    pub joined: Instant,
    /// The caller's number's place in the queues, given back (dropped)
    /// when the caller leaves the line, is bridged or hangs up.
    pub _place: crate::call::places::Place,
}

impl Call {
    /// The plan put the caller in a queue: join it and play music.
    pub(super) fn enqueue(&mut self, queue: String, priority: i32) {
        let Some(acd) = self.svc.acd.clone() else {
            // No queue configured at all: the plan's "empty" exit applies.
            let _ = self.ivr(IvrEvent::QueueExit {
                reason: QueueExitReason::Empty,
            });
            return;
        };
        // One number redialling in a loop gets the plan's "queue full" exit.
        let Some(place) = self.svc.places.take(&self.caller) else {
            info!(call = self.id, caller = %self.caller, %queue, "number holds too many queue places");
            let _ = self.ivr(IvrEvent::QueueExit {
                reason: QueueExitReason::Full,
            });
            return;
        };
        acd.attach(self.id, &self.call_id, &self.caller, self.inbox.clone());
        self.queued = Some(Queued {
            name: queue.clone(),
            joined: Instant::now(),
            _place: place,
        });
        self.cdr_queue = Some(queue.clone());
        self.set_view_state(CallState::Queued, Some(queue.clone()), None);
        self.play_hold_music();
        acd.event(AcdEvent::CallerJoined {
            call: self.id,
            queue,
            priority,
        });
    }

    pub(super) fn play_hold_music(&self) {
        if let Some(leg) = self.leg {
            let lang = self.interp.language().to_owned();
            let moh = self
                .prompts
                .get(&format!("{lang}/musica_espera"))
                .unwrap_or_else(|| self.svc.hold_music.clone());
            self.svc.media.play(
                leg,
                vec![moh],
                PlayOpts {
                    barge_in: false,
                    looped: true,
                    token: MOH_TOKEN,
                },
            );
        }
    }

    /// A command from the ACD for this caller.
    pub(super) fn on_acd(&mut self, cmd: AcdCommand) -> Result<(), End> {
        match cmd {
            AcdCommand::Ring {
                op, queue, timeout, ..
            } => {
                self.ring(&op, &queue, timeout);
                Ok(())
            }
            AcdCommand::CancelRing { op, .. } => {
                self.cancel_op(&op);
                Ok(())
            }
            AcdCommand::Connect { op, .. } => {
                self.connect(&op);
                Ok(())
            }
            AcdCommand::Announce { position, wait, .. } => {
                if self.queued.is_some() && self.bridged.is_none() {
                    let prompts = match wait {
                        Some(w) => {
                            use crate::acd::WaitSpeech as W;
                            use crate::dialplan::say::WaitWords;
                            let words = match w {
                                W::Seconds(x) => WaitWords::Seconds(x),
                                W::Minutes(m) => WaitWords::Minutes(m),
                                W::Range { low, high } => WaitWords::Range { low, high },
                                W::Beyond => WaitWords::Beyond,
                            };
                            self.interp.queue_wait_announcement(position as u64, words)
                        }
                        None => {
                            let lang = self.interp.language().to_owned();
                            crate::dialplan::say::position(&lang, position as u64)
                                .into_iter()
                                .map(|n| format!("{lang}/{n}"))
                                .collect()
                        }
                    };
                    let lib = &self.prompts;
                    let found: Vec<_> = prompts.iter().filter_map(|k| lib.get(k)).collect();
                    if let Some(leg) = self.leg {
                        if !found.is_empty() {
                            self.svc.media.play(
                                leg,
                                found,
                                PlayOpts {
                                    barge_in: false,
                                    looped: false,
                                    token: ANNOUNCE_TOKEN,
                                },
                            );
                        }
                    }
                }
                Ok(())
            }
            AcdCommand::Exit { reason, .. } => {
                self.leave_queue();
                self.overflowed = true;
                let reason = match reason {
                    ExitReason::Full => QueueExitReason::Full,
                    ExitReason::Timeout => QueueExitReason::Timeout,
                    ExitReason::Empty => QueueExitReason::Empty,
                    ExitReason::Key(d) => QueueExitReason::Key(d),
                };
                if let Some(leg) = self.leg {
                    self.svc.media.stop_playback(leg);
                }
                self.set_view_state(CallState::Ivr, None, None);
                self.ivr(IvrEvent::QueueExit { reason })
            }
            AcdCommand::OperatorState { .. } | AcdCommand::Log(_) => Ok(()),
        }
    }

    fn leave_queue(&mut self) {
        if let Some(q) = self.queued.take() {
            self.cdr_wait = Some(q.joined.elapsed());
        }
    }

    /// Calls operator `op` with an offer from a fresh media leg.
    fn ring(&mut self, op: &str, queue: &str, timeout: Duration) {
        let (acd, call) = (self.svc.acd.clone(), self.id);
        let fail = |reason| {
            if let Some(acd) = &acd {
                acd.event(AcdEvent::RingFailed {
                    call,
                    op: op.to_owned(),
                    reason,
                });
            }
        };
        let ep = self.ep.clone();
        let Some(contact) = self
            .svc
            .operators
            .as_ref()
            .and_then(|o| o.contact(op, |uri| static_peer(uri, &ep)))
        else {
            debug!(operator = op, "operator has no reachable contact");
            return fail(RingFailure::Unreachable);
        };
        let label = format!("{caller_user} ({queue})", caller_user = self.caller_user());
        let headers = [
            ("Subject", format!("Cola {queue}")),
            ("X-Conmutador-Queue", queue.to_owned()),
        ];
        if self
            .call_out(op, &contact.uri, contact.peer, &label, &headers, false)
            .is_err()
        {
            return fail(RingFailure::Unreachable);
        }
        info!(
            operator = op,
            queue,
            timeout_s = timeout.as_secs(),
            "ringing operator"
        );
        self.set_view_state(
            CallState::Ringing,
            self.queued.as_ref().map(|q| q.name.clone()),
            None,
        );
    }

    /// Places the outgoing leg `name` (an operator id, or the transfer
    /// target): a fresh media leg, an INVITE with our offer to `uri` via
    /// `peer`, and the dialog routed to this call. `label` is the display
    /// name the far phone shows.
    fn call_out(
        &mut self,
        name: &str,
        uri: &str,
        peer: Peer,
        label: &str,
        headers: &[(&str, String)],
        transfer: bool,
    ) -> Result<(), ()> {
        // Beside the caller's leg, so the bridge relays on one thread.
        let allocated = match self.leg {
            Some(caller) => self.svc.media.allocate_beside(caller),
            None => self.svc.media.allocate(),
        };
        let Ok((leg, local)) = allocated else {
            warn!("no RTP port for an outgoing leg");
            return Err(());
        };
        let mut local_sdp = LocalSdp::new(self.svc.media_ip, local.port());
        let offer = sdp::offer(&mut local_sdp, &self.svc.codecs);
        let call_id = new_call_id(&self.svc.media_ip.to_string());
        let local_tag = new_tag();
        let branch = new_branch();
        let caller_user = self.caller_user();
        let host = self.ep.contact_for(&peer);
        let host = host
            .trim_start_matches("<sip:conmutador@")
            .trim_end_matches('>');
        let host = host.split(';').next().unwrap_or(host).to_owned();
        let label: String = label.chars().filter(|c| *c != '"' && *c != '\\').collect();
        let from_hdr = format!("\"{label}\" <sip:{caller_user}@{host}>;tag={local_tag}");
        let to_hdr = format!("<{uri}>");
        let mut b = RequestBuilder::new(Method::Invite, uri)
            .header("Via", self.ep.via_for(&peer, &branch))
            .header("Max-Forwards", "70")
            .header("From", from_hdr.clone())
            .header("To", to_hdr.clone())
            .header("Call-ID", call_id.clone())
            .header("CSeq", "1 INVITE")
            .header("Contact", self.ep.contact_for(&peer));
        for (k, v) in headers {
            b = b.header(k, v.clone());
        }
        let bytes = b
            .header("Allow", crate::sip::endpoint::ALLOW)
            .header("User-Agent", self.ep.user_agent.clone())
            .body("application/sdp", offer)
            .build();
        if let Some(r) = self.router.upgrade() {
            r.attach_leg((call_id.clone(), local_tag.clone()), self.inbox.clone());
        }
        let Some(tx) = self.ep.request(peer, &Method::Invite, &branch, bytes) else {
            self.svc.media.release(leg);
            self.forget_leg(&call_id, &local_tag);
            return Err(());
        };
        self.op_legs.push(OpLeg {
            op: name.to_owned(),
            call_id,
            local_tag,
            remote_tag: None,
            branch,
            invite_tx: Some(tx),
            request_uri: uri.to_owned(),
            from_hdr,
            to_hdr,
            peer,
            leg,
            local_sdp,
            state: OpState::Calling,
            remote_target: String::new(),
            route_set: Vec::new(),
            connected_at: None,
            transfer,
        });
        Ok(())
    }

    /// The plan transfers the caller to `uri`: the gateway calls it (through
    /// `calls.transfer_proxy`, or straight to an IP address in the URI) and
    /// bridges the caller to it when it answers. Err ends the call.
    pub(super) fn transfer(&mut self, uri: &str) -> Result<(), End> {
        let peer = match self.svc.transfer_proxy {
            Some(addr) => self
                .ep
                .transports
                .udp_flow_for(addr)
                .map(|flow| Peer { flow, addr }),
            None => static_peer(uri, &self.ep),
        };
        let Some(peer) = peer else {
            warn!(%uri, "transfer target is not an IP address and no transfer_proxy is set");
            return Err(End::TransferFailed);
        };
        let label = self.caller_user();
        if self
            .call_out(TRANSFER_LEG, uri, peer, &label, &[], true)
            .is_err()
        {
            return Err(End::TransferFailed);
        }
        info!(%uri, "transferring the caller");
        self.cdr_transfer = true;
        Ok(())
    }

    fn caller_user(&self) -> String {
        let user = self
            .invite
            .from()
            .ok()
            .and_then(|f| f.uri.user().map(str::to_owned))
            .unwrap_or_else(|| "anonymous".into());
        // Only characters that need no escaping in a SIP user part.
        user.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'))
            .take(32)
            .collect()
    }

    fn forget_leg(&self, call_id: &str, tag: &str) {
        if let Some(r) = self.router.upgrade() {
            r.forget_leg(&(call_id.to_owned(), tag.to_owned()));
        }
    }

    /// Stops ringing `op` (CANCEL), or hangs up its answered leg (BYE).
    fn cancel_op(&mut self, op: &str) {
        let Some(i) = self
            .op_legs
            .iter()
            .position(|l| l.op == op && l.state != OpState::Cancelling)
        else {
            return;
        };
        match self.op_legs[i].state {
            OpState::Calling | OpState::Ringing => {
                self.send_cancel(&self.op_legs[i]);
                self.op_legs[i].state = OpState::Cancelling;
            }
            OpState::Answered | OpState::Connected => {
                let l = self.op_legs.remove(i);
                self.bye_op(&l);
                self.drop_leg(l);
            }
            OpState::Cancelling => {}
        }
    }

    /// Bridges the caller with `op`'s answered leg.
    fn connect(&mut self, op: &str) {
        let Some(l) = self
            .op_legs
            .iter_mut()
            .find(|l| l.op == op && l.state == OpState::Answered)
        else {
            warn!(
                operator = op,
                "connect for an operator leg that is not answered"
            );
            return;
        };
        l.state = OpState::Connected;
        l.connected_at = Some(Instant::now());
        let op_leg = l.leg;
        self.leave_queue();
        if let Some(leg) = self.leg {
            // The bridge also stops whatever either side was hearing.
            self.svc.media.bridge(leg, op_leg);
        }
        self.bridged = Some(op.to_owned());
        if op != TRANSFER_LEG {
            self.cdr_operator = Some(op.to_owned());
        } else if let Some(queue) = self.cdr_queue.clone() {
            // A caller who had been in a queue was handed on: the queue log
            // says so, as Asterisk's TRANSFER does.
            let uri = self
                .op_legs
                .iter()
                .find(|l| l.transfer)
                .map(|l| l.request_uri.clone())
                .unwrap_or_default();
            let wait = self.cdr_wait.map_or(0, |d| d.as_millis() as u64);
            let talk = self.cdr_talk.map_or(0, |d| d.as_millis() as u64);
            self.svc.records.queue_event(QueueEvent::transfer(
                chrono::Utc::now(),
                &self.call_id,
                &queue,
                self.cdr_operator.as_deref(),
                &uri,
                &self.plan_name,
                wait,
                talk,
            ));
        }
        info!(operator = op, "caller connected to operator");
        self.set_view_state(
            CallState::Bridged,
            self.cdr_queue.clone(),
            Some(op.to_owned()),
        );
    }

    /// A response on an operator leg.
    pub(super) fn on_op_response(&mut self, resp: Message, tx: Option<TxId>) -> Result<(), End> {
        let call_id = resp.call_id().unwrap_or("").to_owned();
        let Some(i) = self.op_legs.iter().position(|l| l.call_id == call_id) else {
            return Ok(());
        };
        let status = resp.status().unwrap_or(0);
        let is_invite = resp
            .cseq()
            .map(|c| c.method == Method::Invite)
            .unwrap_or(false);
        if !is_invite {
            return Ok(());
        }
        let _ = tx;
        match status {
            100 => {}
            101..=199 => {
                if self.op_legs[i].state == OpState::Calling {
                    self.op_legs[i].state = OpState::Ringing;
                }
            }
            200..=299 => return self.op_answered(i, &resp),
            _ => {
                let l = &self.op_legs[i];
                let to = resp.header("To").unwrap_or(&l.to_hdr).to_owned();
                let ack = RequestBuilder::new(Method::Ack, &l.request_uri)
                    .header("Via", self.ep.via_for(&l.peer, &l.branch))
                    .header("Max-Forwards", "70")
                    .header("From", l.from_hdr.clone())
                    .header("To", to)
                    .header("Call-ID", l.call_id.clone())
                    .header("CSeq", "1 ACK")
                    .build();
                if let Some(tx) = l.invite_tx {
                    self.ep.client_ack(tx, ack);
                }
                let l = self.op_legs.remove(i);
                let reason = match status {
                    486 | 600 => RingFailure::Busy,
                    603 => RingFailure::Declined,
                    408 | 480 | 487 => RingFailure::NoAnswer,
                    _ => RingFailure::Unreachable,
                };
                debug!(leg = %l.op, status, "the far end did not take the call");
                return self.leg_failed(l, reason);
            }
        }
        Ok(())
    }

    /// An outgoing leg ended before it was bridged. For an operator the ACD
    /// tries someone else (unless it cancelled the ring itself); a failed
    /// transfer ends the call.
    fn leg_failed(&mut self, l: OpLeg, reason: RingFailure) -> Result<(), End> {
        let cancelled = l.state == OpState::Cancelling;
        let transfer = l.transfer;
        if !cancelled && !transfer {
            if let Some(acd) = &self.svc.acd {
                acd.event(AcdEvent::RingFailed {
                    call: self.id,
                    op: l.op.clone(),
                    reason,
                });
            }
        }
        self.drop_leg(l);
        self.after_ring_change();
        if transfer {
            return Err(End::TransferFailed);
        }
        Ok(())
    }

    fn op_answered(&mut self, i: usize, resp: &Message) -> Result<(), End> {
        let first = matches!(
            self.op_legs[i].state,
            OpState::Calling | OpState::Ringing | OpState::Cancelling
        );
        {
            let l = &mut self.op_legs[i];
            if first {
                l.remote_tag = resp.to().ok().and_then(|t| t.tag().map(str::to_owned));
                l.remote_target = resp
                    .contacts()
                    .ok()
                    .and_then(|c| match c {
                        crate::sip::Contacts::List(v) => v.first().map(|na| na.uri.to_string()),
                        crate::sip::Contacts::Star => None,
                    })
                    .unwrap_or_else(|| l.request_uri.clone());
                let mut rr: Vec<String> = resp
                    .record_routes()
                    .map(|v| v.iter().map(|r| r.to_string()).collect())
                    .unwrap_or_default();
                rr.reverse();
                l.route_set = rr;
            }
        }
        // Every 2xx (retransmissions too) is acknowledged end to end.
        let l = &self.op_legs[i];
        let to = resp.header("To").unwrap_or(&l.to_hdr).to_owned();
        let mut ack = RequestBuilder::new(Method::Ack, &l.remote_target)
            .header("Via", self.ep.via_for(&l.peer, &new_branch()))
            .header("Max-Forwards", "70")
            .header("From", l.from_hdr.clone())
            .header("To", to.clone())
            .header("Call-ID", l.call_id.clone())
            .header("CSeq", "1 ACK");
        for r in &l.route_set {
            ack = ack.header("Route", r.clone());
        }
        self.ep.send_raw(&l.peer, ack.build());
        if !first {
            return Ok(());
        }
        self.op_legs[i].to_hdr = to;
        if self.op_legs[i].state == OpState::Cancelling {
            // Our CANCEL crossed the answer: the call is up, so end it.
            let l = self.op_legs.remove(i);
            self.bye_op(&l);
            self.drop_leg(l);
            return Ok(());
        }
        let params = match sdp::accept_answer(resp.body(), &self.svc.codecs) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "operator answered with unusable SDP");
                let l = self.op_legs.remove(i);
                self.bye_op(&l);
                return self.leg_failed(l, RingFailure::Unreachable);
            }
        };
        self.start_op_media(i, params);
        self.op_legs[i].state = OpState::Answered;
        if self.op_legs[i].transfer {
            self.connect(TRANSFER_LEG);
        } else if let Some(acd) = &self.svc.acd {
            acd.event(AcdEvent::RingAnswered {
                call: self.id,
                op: self.op_legs[i].op.clone(),
            });
        }
        Ok(())
    }

    fn start_op_media(&self, i: usize, params: MediaParams) {
        self.svc
            .media
            .start_leg(self.op_legs[i].leg, params, self.media_events.0.clone());
    }

    /// A request on an operator leg (BYE from the operator, mostly).
    pub(super) fn on_op_request(&mut self, req: Message, tx: TxId) -> Result<(), End> {
        let call_id = req.call_id().unwrap_or("").to_owned();
        let Some(i) = self.op_legs.iter().position(|l| l.call_id == call_id) else {
            return Ok(());
        };
        let l = &self.op_legs[i];
        let ok = |status: u16, reason: &str| {
            response_to(&req, status, reason)
                .via_received(l.peer.addr)
                .to_tag(&l.local_tag)
                .header("Server", self.ep.user_agent.clone())
                .build()
        };
        match req.method() {
            Some(Method::Bye) => {
                self.ep.respond(tx, 200, ok(200, "OK"), None);
                let l = self.op_legs.remove(i);
                let was_connected = l.state == OpState::Connected;
                let op = l.op.clone();
                self.drop_leg(l);
                if was_connected {
                    self.talk_ended_by = Some(Party::Operator);
                    return Err(End::OperatorHungUp);
                }
                if let Some(acd) = self.svc.acd.as_ref().filter(|_| op != TRANSFER_LEG) {
                    acd.event(AcdEvent::RingFailed {
                        call: self.id,
                        op,
                        reason: RingFailure::Declined,
                    });
                }
                Ok(())
            }
            Some(Method::Options) | Some(Method::Update) | Some(Method::Info) => {
                self.ep.respond(tx, 200, ok(200, "OK"), None);
                Ok(())
            }
            Some(Method::Invite) => {
                // Hold/resume from the operator's phone: answer with our SDP.
                let l = &mut self.op_legs[i];
                match sdp::answer(req.body(), &mut l.local_sdp, &self.svc.codecs) {
                    Ok((answer, params)) => {
                        self.svc.media.update(l.leg, params);
                        let r = response_to(&req, 200, "OK")
                            .via_received(l.peer.addr)
                            .to_tag(&l.local_tag)
                            .header("Contact", self.ep.contact_for(&l.peer))
                            .body("application/sdp", answer)
                            .build();
                        let key = req.cseq().ok().map(|c| (l.call_id.clone(), c.seq));
                        self.ep.respond(tx, 200, r, key);
                    }
                    Err(_) => {
                        let r = response_to(&req, 488, "Not Acceptable Here")
                            .via_received(l.peer.addr)
                            .to_tag(&l.local_tag)
                            .build();
                        self.ep.respond(tx, 488, r, None);
                    }
                }
                Ok(())
            }
            _ => {
                self.ep
                    .respond(tx, 405, ok(405, "Method Not Allowed"), None);
                Ok(())
            }
        }
    }

    /// Timer B on an operator INVITE: the phone never answered at all.
    pub(super) fn on_op_timeout(&mut self, tx: TxId) -> Result<(), End> {
        match self.op_legs.iter().position(|l| l.invite_tx == Some(tx)) {
            Some(i) => {
                let l = self.op_legs.remove(i);
                self.leg_failed(l, RingFailure::Unreachable)
            }
            None => Ok(()),
        }
    }

    /// Back to "queued" in the admin view when no operator rings any more.
    fn after_ring_change(&mut self) {
        if self.bridged.is_none() && self.op_legs.is_empty() {
            if let Some(q) = &self.queued {
                let name = q.name.clone();
                self.set_view_state(CallState::Queued, Some(name), None);
            }
        }
    }

    /// CANCEL for a ringing leg: same branch, Request-URI, From, To and
    /// Call-ID as its INVITE (RFC 3261 §9.1).
    fn send_cancel(&self, l: &OpLeg) {
        let cancel = RequestBuilder::new(Method::Cancel, &l.request_uri)
            .header("Via", self.ep.via_for(&l.peer, &l.branch))
            .header("Max-Forwards", "70")
            .header("From", l.from_hdr.clone())
            .header("To", l.to_hdr.clone())
            .header("Call-ID", l.call_id.clone())
            .header("CSeq", "1 CANCEL")
            .build();
        let _ = self.ep.request(l.peer, &Method::Cancel, &l.branch, cancel);
    }

    fn bye_op(&self, l: &OpLeg) {
        let branch = new_branch();
        let mut b = RequestBuilder::new(Method::Bye, &l.remote_target)
            .header("Via", self.ep.via_for(&l.peer, &branch))
            .header("Max-Forwards", "70")
            .header("From", l.from_hdr.clone())
            .header("To", l.to_hdr.clone())
            .header("Call-ID", l.call_id.clone())
            .header("CSeq", "2 BYE")
            .header("User-Agent", self.ep.user_agent.clone());
        for r in &l.route_set {
            b = b.header("Route", r.clone());
        }
        let _ = self.ep.request(l.peer, &Method::Bye, &branch, b.build());
    }

    fn drop_leg(&self, l: OpLeg) {
        self.svc.media.release(l.leg);
        self.forget_leg(&l.call_id, &l.local_tag);
    }

    /// The call ends: tell the ACD and end every operator leg.
    pub(super) fn end_queue_part(&mut self, end: End) {
        let acd = self.svc.acd.clone();
        if let Some(op) = self.bridged.clone().filter(|op| op != TRANSFER_LEG) {
            let talk = self
                .op_legs
                .iter()
                .find(|l| l.op == op)
                .and_then(|l| l.connected_at)
                .map(|t| t.elapsed());
            self.cdr_talk = talk;
            let by = self.talk_ended_by.unwrap_or(Party::Caller);
            if let Some(acd) = &acd {
                acd.event(AcdEvent::CallEnded {
                    call: self.id,
                    op,
                    by,
                });
            }
        } else if self.queued.is_some() {
            self.leave_queue();
            // Only the caller can abandon; the gateway taking them out is
            // its own event, kept out of the abandonment figures.
            let ev = match end {
                End::Removed => AcdEvent::CallerRemoved {
                    call: self.id,
                    by: Removal::Admin,
                },
                End::Shutdown => AcdEvent::CallerRemoved {
                    call: self.id,
                    by: Removal::Shutdown,
                },
                _ => AcdEvent::CallerLeft { call: self.id },
            };
            if let Some(acd) = &acd {
                acd.event(ev);
            }
        }
        for l in std::mem::take(&mut self.op_legs) {
            match l.state {
                OpState::Calling | OpState::Ringing => self.send_cancel(&l),
                OpState::Answered | OpState::Connected => self.bye_op(&l),
                OpState::Cancelling => {}
            }
            self.drop_leg(l);
        }
        if let Some(acd) = &acd {
            if self.cdr_queue.is_some() {
                acd.detach(self.id);
            }
        }
    }

    pub(super) fn is_op_leg(&self, leg: LegId) -> bool {
        self.op_legs.iter().any(|l| l.leg == leg)
    }

    pub(super) fn owns_op_call(&self, call_id: &str) -> bool {
        self.op_legs.iter().any(|l| l.call_id == call_id)
    }
}

/// A static operator's `sip:host:port` as a UDP peer (IP literals only).
pub(super) fn static_peer(uri: &str, ep: &crate::sip::endpoint::Endpoint) -> Option<Peer> {
    let parsed = crate::sip::Uri::parse(uri).ok()?;
    let sip = parsed.as_sip()?;
    let ip: std::net::IpAddr = match &sip.host {
        crate::sip::Host::V4(a) => (*a).into(),
        crate::sip::Host::V6(a) => (*a).into(),
        crate::sip::Host::Domain(d) => d.parse().ok()?,
    };
    let addr = std::net::SocketAddr::new(ip, sip.port.unwrap_or(5060));
    let flow = ep.transports.udp_flow_for(addr)?;
    Some(Peer { flow, addr })
}
