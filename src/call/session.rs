//! One call's task: the UAS dialog with the trunk, its media leg and its IVR
//! interpreter.
//!
//! The task owns everything about the call and nothing else. It waits on
//! three sources — SIP messages routed by the [`Router`](super::Router),
//! media events from its leg, and the interpreter's timers — and turns each
//! into actions. It answers the INVITE (with the SDP answer, or an offer for
//! a late-offer INVITE), keeps the dialog state (remote CSeq, route set,
//! remote target), answers in-dialog requests (re-INVITE with the current
//! SDP, UPDATE, INFO digits, OPTIONS, BYE), and hangs up with BYE when the
//! plan ends, RTP stops, the 2xx is never ACKed, or the gateway stops.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, info_span, warn};

mod agent;

use agent::{ANNOUNCE_TOKEN, MOH_TOKEN, OpLeg, Queued};

use super::{CallMsg, Router, Services};
use crate::acd::Party;
use crate::dialplan::{CallInfo, Interpreter, IvrCommand, IvrEvent, Plan};
use crate::media::{LegId, MediaEvent, PlayOpts, PromptLibrary};
use crate::ops::http::CallState;
use crate::ops::metrics as m;
use crate::ops::records::{Cdr, Disposition, HangupSide};
use crate::sdp::{self, LocalSdp, MediaParams};
use crate::sip::endpoint::{ALLOW, Endpoint, SUPPORTED};
use crate::sip::transaction::TxId;
use crate::sip::transport::Peer;
use crate::sip::{Contacts, Message, Method, RequestBuilder, new_branch, response_to};

pub struct CallSetup {
    pub id: u64,
    pub ep: Arc<Endpoint>,
    pub router: Weak<Router>,
    pub services: Arc<Services>,
    pub invite: Message,
    pub invite_tx: TxId,
    pub peer: Peer,
    pub local_tag: String,
    pub plan: Arc<Plan>,
    pub called: String,
    pub view: super::SharedView,
    /// This call's own inbox, handed to the ACD and to operator legs.
    pub inbox: mpsc::Sender<CallMsg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// INVITE received, not answered yet.
    Early,
    /// 200 sent, waiting for the ACK.
    Answered,
    Confirmed,
    /// BYE sent or received; nothing more happens.
    Ended,
}

/// Why a call ended, for logs and metrics.
#[derive(Debug, Clone, Copy)]
enum End {
    CallerHungUp,
    PlanHungUp,
    Cancelled,
    RtpTimeout,
    NoAck,
    Shutdown,
    Failed,
    OperatorHungUp,
    TransferFailed,
    /// Removed from its queue over the admin API.
    Removed,
}

impl End {
    fn label(self) -> &'static str {
        match self {
            End::CallerHungUp => "caller_hangup",
            End::PlanHungUp => "plan_hangup",
            End::Cancelled => "cancelled",
            End::RtpTimeout => "rtp_timeout",
            End::NoAck => "no_ack",
            End::Shutdown => "shutdown",
            End::Failed => "failed",
            End::OperatorHungUp => "operator_hangup",
            End::TransferFailed => "transfer_failed",
            End::Removed => "removed",
        }
    }
    fn disposition(self) -> Disposition {
        match self {
            End::CallerHungUp | End::PlanHungUp | End::Shutdown | End::OperatorHungUp => {
                Disposition::Completed
            }
            End::Cancelled => Disposition::Abandoned,
            End::RtpTimeout | End::NoAck | End::Failed | End::TransferFailed => Disposition::Failed,
            End::Removed => Disposition::Removed,
        }
    }
}

pub struct Call {
    id: u64,
    ep: Arc<Endpoint>,
    router: Weak<Router>,
    svc: Arc<Services>,
    invite: Message,
    invite_tx: TxId,
    peer: Peer,
    call_id: String,
    local_tag: String,
    state: State,
    /// Our To header (the caller's To with our tag) and their From.
    local_party: String,
    remote_party: String,
    remote_target: String,
    route_set: Vec<String>,
    remote_cseq: u32,
    local_cseq: u32,
    invite_cseq: u32,
    local_sdp: LocalSdp,
    /// Our answer or (late offer) our offer: resent unchanged on re-INVITE.
    current_sdp: Bytes,
    leg: Option<LegId>,
    params: Option<MediaParams>,
    late_offer: bool,
    interp: Interpreter,
    /// The prompts in force when the call arrived: like its plan, they stay
    /// the same for the whole call even if a reload replaces the files.
    prompts: Arc<PromptLibrary>,
    timers: BTreeMap<(Instant, u64), ()>,
    timer_tokens: std::collections::HashMap<u64, Instant>,
    media_events: (mpsc::Sender<MediaEvent>, Option<mpsc::Receiver<MediaEvent>>),
    started: Instant,
    bye_tx: Option<TxId>,
    ivr_started: bool,
    /// An end decided outside the main loop (the plan ended as it started).
    pending_end: Option<End>,
    view: super::SharedView,
    /// Nodes visited, for the call record (capped).
    path: Vec<String>,
    caller: String,
    called: String,
    plan_name: String,
    started_wall: chrono::DateTime<chrono::Utc>,
    answered_wall: Option<chrono::DateTime<chrono::Utc>>,
    hangup_side: HangupSide,
    inbox: mpsc::Sender<CallMsg>,
    queued: Option<Queued>,
    op_legs: Vec<OpLeg>,
    /// The operator this caller is talking to.
    bridged: Option<String>,
    cdr_queue: Option<String>,
    cdr_wait: Option<Duration>,
    cdr_operator: Option<String>,
    cdr_talk: Option<Duration>,
    talk_ended_by: Option<Party>,
    /// The plan transferred the caller to another SIP destination.
    cdr_transfer: bool,
    /// The caller left a queue unserved (timeout, full, empty, exit key)
    /// towards the plan's overflow destination.
    overflowed: bool,
}

/// Nodes kept in a call record's path; a caller looping in a menu for an
/// hour must not grow the record without bound.
const MAX_PATH: usize = 64;

impl Call {
    pub fn new(s: CallSetup) -> Call {
        let call_id = s.invite.call_id().unwrap_or("").to_owned();
        let caller = s
            .invite
            .from()
            .ok()
            .map(|f| f.uri.to_string())
            .unwrap_or_default();
        let plan_name = s.plan.name.clone();
        let interp = Interpreter::new(
            s.plan,
            CallInfo {
                caller: caller.clone(),
                called: s.called.clone(),
            },
        );
        let to_raw = s.invite.header("To").unwrap_or("").to_owned();
        let local_party = format!("{to_raw};tag={}", s.local_tag);
        let remote_party = s.invite.header("From").unwrap_or("").to_owned();
        let remote_target = s
            .invite
            .contacts()
            .ok()
            .and_then(|c| match c {
                Contacts::List(v) => v.first().map(|na| na.uri.to_string()),
                Contacts::Star => None,
            })
            .unwrap_or_else(|| format!("sip:{}", s.peer.addr));
        let route_set = s
            .invite
            .record_routes()
            .map(|v| v.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default();
        let cseq = s.invite.cseq().map(|c| c.seq).unwrap_or(0);
        let (etx, erx) = mpsc::channel(64);
        let prompts = s.services.prompts();
        Call {
            id: s.id,
            ep: s.ep,
            router: s.router,
            local_sdp: LocalSdp::new(s.services.media_ip, 0),
            svc: s.services,
            invite: s.invite,
            invite_tx: s.invite_tx,
            peer: s.peer,
            call_id,
            local_tag: s.local_tag,
            state: State::Early,
            local_party,
            remote_party,
            remote_target,
            route_set,
            remote_cseq: cseq,
            local_cseq: 1,
            invite_cseq: cseq,
            current_sdp: Bytes::new(),
            leg: None,
            params: None,
            late_offer: false,
            interp,
            prompts,
            timers: BTreeMap::new(),
            timer_tokens: Default::default(),
            media_events: (etx, Some(erx)),
            started: Instant::now(),
            bye_tx: None,
            ivr_started: false,
            pending_end: None,
            view: s.view,
            path: Vec::new(),
            caller,
            called: s.called,
            plan_name,
            started_wall: chrono::Utc::now(),
            answered_wall: None,
            hangup_side: HangupSide::Gateway,
            inbox: s.inbox,
            queued: None,
            op_legs: Vec::new(),
            bridged: None,
            cdr_queue: None,
            cdr_wait: None,
            cdr_operator: None,
            cdr_talk: None,
            talk_ended_by: None,
            cdr_transfer: false,
            overflowed: false,
        }
    }

    pub async fn run(mut self, inbox: mpsc::Receiver<CallMsg>) {
        let span = info_span!("call", id = self.id, call_id = %self.call_id);
        async move {
            let end = self.drive(inbox).await;
            self.finish(end);
        }
        .instrument(span)
        .await
    }

    async fn drive(&mut self, mut inbox: mpsc::Receiver<CallMsg>) -> End {
        if let Err(end) = self.answer(&mut inbox).await {
            return end;
        }
        let mut media_rx = self
            .media_events
            .1
            .take()
            .expect("receiver taken once, here");
        loop {
            if let Some(end) = self.pending_end.take() {
                return self.end_call(end, &mut inbox).await;
            }
            let next_timer = self.timers.keys().next().map(|(t, _)| *t);
            let sleep = async {
                match next_timer {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            let result = tokio::select! {
                msg = inbox.recv() => match msg {
                    Some(msg) => self.on_sip(msg),
                    None => Err(End::Shutdown),
                },
                ev = media_rx.recv() => match ev {
                    Some(ev) => self.on_media(ev),
                    None => Ok(()),
                },
                _ = sleep => self.on_timers(),
            };
            if let Err(end) = result {
                return self.end_call(end, &mut inbox).await;
            }
        }
    }

    /// Hangs up (BYE unless the far end already did) and waits briefly for
    /// the BYE's answer so its transaction can finish cleanly; the endpoint
    /// retransmits meanwhile.
    async fn end_call(&mut self, end: End, inbox: &mut mpsc::Receiver<CallMsg>) -> End {
        if self.state != State::Ended {
            self.send_bye();
        }
        if self.bye_tx.is_some() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
            loop {
                match tokio::time::timeout_at(deadline, inbox.recv()).await {
                    Ok(Some(CallMsg::Response { resp, tx }))
                        if tx.is_some() && tx == self.bye_tx =>
                    {
                        if resp.status().unwrap_or(0) >= 200 {
                            break;
                        }
                    }
                    Ok(Some(CallMsg::Timeout { tx })) if Some(tx) == self.bye_tx => break,
                    Ok(Some(CallMsg::Request { req, tx, .. })) => {
                        // A BYE crossing ours: answer it.
                        self.reply(&req, tx, 200, "OK", None);
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
        end
    }

    /// Sends 180 (when configured to ring) and the 200 with SDP.
    async fn answer(&mut self, inbox: &mut mpsc::Receiver<CallMsg>) -> Result<(), End> {
        let leg = match self.svc.media.allocate() {
            Ok((leg, local)) => {
                self.local_sdp = LocalSdp::new(self.svc.media_ip, local.port());
                leg
            }
            Err(_) => {
                metrics::counter!(m::SIP_OVERLOAD_REJECTIONS_TOTAL, "reason" => "rtp_ports")
                    .increment(1);
                self.final_invite_response(
                    503,
                    "Service Unavailable",
                    &[("Retry-After", self.ep.retry_after().to_string())],
                );
                return Err(End::Failed);
            }
        };
        self.leg = Some(leg);
        let offer = self.invite.body().clone();
        if offer.is_empty() {
            self.late_offer = true;
            self.current_sdp = sdp::offer(&mut self.local_sdp, &self.svc.codecs);
        } else {
            match sdp::answer(&offer, &mut self.local_sdp, &self.svc.codecs) {
                Ok((answer, params)) => {
                    self.current_sdp = answer;
                    self.params = Some(params);
                }
                Err(e) => {
                    debug!(error = %e, "SDP offer refused");
                    let status = if e == sdp::SdpError::NoCommonCodec {
                        488
                    } else {
                        400
                    };
                    let reason = if status == 488 {
                        "Not Acceptable Here"
                    } else {
                        "Bad SDP"
                    };
                    self.final_invite_response(status, reason, &[]);
                    return Err(End::Failed);
                }
            }
        }
        if !self.svc.ring_delay.is_zero() {
            let ringing = self.response(&self.invite, 180, "Ringing").build();
            self.ep.respond(self.invite_tx, 180, ringing, None);
            let deadline = tokio::time::Instant::now() + self.svc.ring_delay;
            loop {
                match tokio::time::timeout_at(deadline, inbox.recv()).await {
                    Err(_) => break,
                    Ok(None) => return Err(End::Shutdown),
                    Ok(Some(CallMsg::Cancel)) => {
                        self.hangup_side = HangupSide::Caller;
                        self.final_invite_response(487, "Request Terminated", &[]);
                        return Err(End::Cancelled);
                    }
                    Ok(Some(CallMsg::Shutdown)) => {
                        self.final_invite_response(503, "Service Unavailable", &[]);
                        return Err(End::Shutdown);
                    }
                    Ok(Some(CallMsg::Request { req, tx, .. })) => {
                        // Only CANCEL and in-dialog requests can arrive before
                        // the answer; anything else waits for a confirmed dialog.
                        self.reply(&req, tx, 491, "Request Pending", None);
                    }
                    Ok(Some(_)) => {}
                }
            }
        }
        let ok = self
            .response(&self.invite, 200, "OK")
            .body("application/sdp", self.current_sdp.clone())
            .build();
        self.ep.respond(
            self.invite_tx,
            200,
            ok,
            Some((self.call_id.clone(), self.invite_cseq)),
        );
        if let Some(r) = self.router.upgrade() {
            r.invite_answered(self.invite_tx);
        }
        self.state = State::Answered;
        self.answered_wall = Some(chrono::Utc::now());
        metrics::histogram!(m::CALL_ANSWER_DELAY_SECONDS)
            .record(self.started.elapsed().as_secs_f64());
        if let Some(params) = self.params.clone() {
            self.start_media(params);
        }
        Ok(())
    }

    fn start_media(&mut self, params: MediaParams) {
        let Some(leg) = self.leg else { return };
        self.svc
            .media
            .start_leg(leg, params.clone(), self.media_events.0.clone());
        self.params = Some(params);
        if !self.ivr_started {
            self.ivr_started = true;
            let cmds = self.interp.start(Instant::now(), chrono::Utc::now());
            if let Err(end) = self.apply(cmds) {
                // The plan ended at once (e.g. a transfer that cannot be
                // placed); the loop ends the call before waiting again.
                self.pending_end = Some(end);
            }
        }
    }

    fn on_sip(&mut self, msg: CallMsg) -> Result<(), End> {
        match msg {
            CallMsg::Ack { req } => {
                if self.state == State::Answered {
                    self.state = State::Confirmed;
                    if self.late_offer {
                        let body = req.body();
                        match sdp::accept_answer(body, &self.svc.codecs) {
                            Ok(params) => self.start_media(params),
                            Err(e) => {
                                warn!(error = %e, "ACK carried no usable SDP answer");
                                return Err(End::Failed);
                            }
                        }
                    }
                }
                Ok(())
            }
            CallMsg::Cancel => Ok(()), // after the 200 a CANCEL changes nothing
            CallMsg::AckTimeout => {
                if self.state == State::Answered {
                    warn!("2xx never acknowledged");
                    return Err(End::NoAck);
                }
                Ok(())
            }
            CallMsg::Shutdown => Err(End::Shutdown),
            CallMsg::Remove => Err(End::Removed),
            CallMsg::Acd(cmd) => self.on_acd(cmd),
            CallMsg::Response { resp, tx } => {
                let call_id = resp.call_id().unwrap_or("");
                if self.owns_op_call(call_id) {
                    self.on_op_response(resp, tx)
                } else {
                    Ok(())
                }
            }
            CallMsg::Timeout { tx } => self.on_op_timeout(tx),
            CallMsg::Request { req, tx, .. } => {
                let call_id = req.call_id().unwrap_or("");
                if call_id != self.call_id && self.owns_op_call(call_id) {
                    self.on_op_request(req, tx)
                } else {
                    self.on_request(req, tx)
                }
            }
        }
    }

    fn on_request(&mut self, req: Message, tx: TxId) -> Result<(), End> {
        let Ok(cseq) = req.cseq() else {
            self.reply(&req, tx, 400, "Bad CSeq", None);
            return Ok(());
        };
        // RFC 3261 §12.2.2: requests must arrive in CSeq order.
        if cseq.seq <= self.remote_cseq {
            self.reply(&req, tx, 500, "CSeq Out of Order", None);
            return Ok(());
        }
        self.remote_cseq = cseq.seq;
        match req.method() {
            Some(Method::Bye) => {
                self.reply(&req, tx, 200, "OK", None);
                self.hangup_side = HangupSide::Caller;
                self.state = State::Ended;
                Err(End::CallerHungUp)
            }
            Some(Method::Invite) => {
                self.reinvite(req, tx);
                Ok(())
            }
            Some(Method::Update) => {
                if req.body().is_empty() {
                    self.reply(&req, tx, 200, "OK", None);
                } else {
                    self.reinvite(req, tx);
                }
                Ok(())
            }
            Some(Method::Info) => {
                let digit = parse_dtmf_relay(&req);
                match digit {
                    Some(d) => {
                        self.reply(&req, tx, 200, "OK", None);
                        metrics::counter!(m::DTMF_DIGITS_TOTAL, "method" => "sip_info")
                            .increment(1);
                        self.ivr(IvrEvent::Digit(d))
                    }
                    None if req.body().is_empty() => {
                        self.reply(&req, tx, 200, "OK", None);
                        Ok(())
                    }
                    None => {
                        self.reply(&req, tx, 415, "Unsupported Media Type", None);
                        Ok(())
                    }
                }
            }
            Some(Method::Options) => {
                let r = self.ep.options_response(&req, &self.peer);
                self.ep.respond(tx, 200, r, None);
                Ok(())
            }
            _ => {
                let r = self
                    .response(&req, 405, "Method Not Allowed")
                    .header("Allow", ALLOW)
                    .build();
                self.ep.respond(tx, 405, r, None);
                Ok(())
            }
        }
    }

    /// re-INVITE or UPDATE with SDP: hold/resume and session refresh.
    fn reinvite(&mut self, req: Message, tx: TxId) {
        let is_invite = req.method() == Some(&Method::Invite);
        let offer = req.body().clone();
        if !offer.is_empty() {
            match sdp::answer(&offer, &mut self.local_sdp, &self.svc.codecs) {
                Ok((answer, params)) => {
                    self.current_sdp = answer;
                    if let Some(leg) = self.leg {
                        self.svc.media.update(leg, params.clone());
                    }
                    self.params = Some(params);
                }
                Err(e) => {
                    debug!(error = %e, "re-INVITE offer refused");
                    self.reply(&req, tx, 488, "Not Acceptable Here", None);
                    return;
                }
            }
        }
        let r = self
            .response(&req, 200, "OK")
            .body("application/sdp", self.current_sdp.clone())
            .build();
        let retransmit = if is_invite {
            req.cseq().ok().map(|c| (self.call_id.clone(), c.seq))
        } else {
            None
        };
        self.ep.respond(tx, 200, r, retransmit);
    }

    fn on_media(&mut self, ev: MediaEvent) -> Result<(), End> {
        let leg = match &ev {
            MediaEvent::Digit { leg, .. }
            | MediaEvent::PlaybackDone { leg, .. }
            | MediaEvent::RtpTimeout { leg }
            | MediaEvent::FirstPacket { leg, .. } => *leg,
        };
        if self.is_op_leg(leg) {
            // The operator's phone went silent for good while talking.
            if matches!(ev, MediaEvent::RtpTimeout { .. }) && self.bridged.is_some() {
                metrics::counter!(m::RTP_TIMEOUTS_TOTAL).increment(1);
                self.talk_ended_by = Some(Party::Operator);
                return Err(End::OperatorHungUp);
            }
            return Ok(());
        }
        match ev {
            MediaEvent::Digit { digit, .. } if self.bridged.is_some() => {
                // Relayed to the operator by the bridge; nothing to decide here.
                let _ = digit;
                Ok(())
            }
            MediaEvent::Digit { digit, .. } if self.queued.is_some() => {
                if let Some(acd) = &self.svc.acd {
                    acd.event(crate::acd::AcdEvent::CallerPressedKey {
                        call: self.id,
                        digit,
                    });
                }
                Ok(())
            }
            MediaEvent::Digit { digit, .. } => self.ivr(IvrEvent::Digit(digit)),
            MediaEvent::PlaybackDone {
                token: ANNOUNCE_TOKEN,
                ..
            } => {
                if self.queued.is_some() && self.bridged.is_none() {
                    self.play_hold_music();
                }
                Ok(())
            }
            MediaEvent::PlaybackDone {
                token: MOH_TOKEN, ..
            } => Ok(()),
            MediaEvent::PlaybackDone { token, .. } => self.ivr(IvrEvent::PlaybackDone { token }),
            MediaEvent::RtpTimeout { .. } => {
                metrics::counter!(m::RTP_TIMEOUTS_TOTAL).increment(1);
                info!("no RTP from the caller, hanging up");
                Err(End::RtpTimeout)
            }
            MediaEvent::FirstPacket { .. } => Ok(()),
        }
    }

    fn on_timers(&mut self) -> Result<(), End> {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some((&(at, token), _)) = self.timers.iter().next() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, token));
            self.timer_tokens.remove(&token);
            due.push(token);
        }
        for token in due {
            self.ivr(IvrEvent::Timer { token })?;
        }
        Ok(())
    }

    fn ivr(&mut self, ev: IvrEvent) -> Result<(), End> {
        let cmds = self.interp.handle(ev, Instant::now(), chrono::Utc::now());
        self.apply(cmds)
    }

    fn apply(&mut self, cmds: Vec<IvrCommand>) -> Result<(), End> {
        crate::ops::figures::record_ivr(&mut self.interp);
        for cmd in cmds {
            match cmd {
                IvrCommand::Play {
                    prompts,
                    barge_in,
                    token,
                } => {
                    let library = &self.prompts;
                    let found: Vec<_> = prompts
                        .iter()
                        .filter_map(|k| {
                            let p = library.get(k);
                            if p.is_none() {
                                warn!(prompt = %k, "prompt missing");
                            }
                            p
                        })
                        .collect();
                    if let Some(leg) = self.leg {
                        self.svc.media.play(
                            leg,
                            found,
                            PlayOpts {
                                barge_in,
                                looped: false,
                                token,
                            },
                        );
                    }
                }
                IvrCommand::StopPlayback => {
                    if let Some(leg) = self.leg {
                        self.svc.media.stop_playback(leg);
                    }
                }
                IvrCommand::SetTimer { token, after } => {
                    if let Some(old) = self.timer_tokens.remove(&token) {
                        self.timers.remove(&(old, token));
                    }
                    let at = Instant::now() + after;
                    self.timers.insert((at, token), ());
                    self.timer_tokens.insert(token, at);
                }
                IvrCommand::CancelTimer { token } => {
                    if let Some(old) = self.timer_tokens.remove(&token) {
                        self.timers.remove(&(old, token));
                    }
                }
                IvrCommand::Visited { node } => {
                    if self.path.len() < MAX_PATH {
                        self.path.push(node.clone());
                    }
                    self.view.lock().unwrap_or_else(|p| p.into_inner()).node = Some(node);
                }
                IvrCommand::Hangup => return Err(End::PlanHungUp),
                IvrCommand::Enqueue { queue, priority } => self.enqueue(queue, priority),
                IvrCommand::Transfer { uri } => self.transfer(&uri)?,
            }
        }
        Ok(())
    }

    fn send_bye(&mut self) {
        if matches!(self.state, State::Early) {
            self.final_invite_response(480, "Temporarily Unavailable", &[]);
            self.state = State::Ended;
            return;
        }
        self.local_cseq += 1;
        let branch = new_branch();
        let mut b = RequestBuilder::new(Method::Bye, &self.remote_target)
            .header("Via", self.ep.via_for(&self.peer, &branch))
            .header("Max-Forwards", "70")
            .header("From", &self.local_party)
            .header("To", &self.remote_party)
            .header("Call-ID", &self.call_id)
            .header("CSeq", format!("{} BYE", self.local_cseq))
            .header("User-Agent", &self.ep.user_agent);
        for r in &self.route_set {
            b = b.header("Route", r);
        }
        self.bye_tx = self.ep.request(self.peer, &Method::Bye, &branch, b.build());
        self.state = State::Ended;
    }

    fn final_invite_response(&mut self, status: u16, reason: &str, extra: &[(&str, String)]) {
        let mut b = self.response(&self.invite, status, reason);
        for (k, v) in extra {
            b = b.header(k, v);
        }
        let bytes = b.build();
        self.ep.respond(self.invite_tx, status, bytes, None);
        if let Some(r) = self.router.upgrade() {
            r.invite_answered(self.invite_tx);
        }
    }

    fn response(&self, req: &Message, status: u16, reason: &str) -> crate::sip::ResponseBuilder {
        let mut b = response_to(req, status, reason)
            .via_received(self.peer.addr)
            .to_tag(&self.local_tag)
            .header("Server", &self.ep.user_agent);
        if (101..300).contains(&status) {
            b = b
                .header("Contact", self.ep.contact_for(&self.peer))
                .header("Allow", ALLOW)
                .header("Supported", SUPPORTED);
        }
        b
    }

    fn reply(&self, req: &Message, tx: TxId, status: u16, reason: &str, body: Option<Bytes>) {
        let mut b = self.response(req, status, reason);
        if let Some(body) = body {
            b = b.body("application/sdp", body);
        }
        self.ep.respond(tx, status, b.build(), None);
    }

    fn set_view_state(&self, state: CallState, queue: Option<String>, operator: Option<String>) {
        let mut v = self.view.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = self.router.upgrade() {
            r.state_changed(v.state, state);
        }
        v.state = state;
        v.queue = queue;
        v.operator = operator;
    }

    fn finish(&mut self, end: End) {
        if matches!(end, End::CallerHungUp | End::Cancelled) {
            self.talk_ended_by.get_or_insert(Party::Caller);
        }
        let disposition = self.disposition(end);
        self.end_queue_part(end);
        if let Some(leg) = self.leg.take() {
            self.svc.media.release(leg);
        }
        // The record goes before the call is forgotten: shutdown waits for
        // the call count to reach zero and then closes the writer, which
        // must already hold this record.
        self.svc.records.cdr(Cdr {
            call_id: self.call_id.clone(),
            start: self.started_wall,
            answer: self.answered_wall,
            end: chrono::Utc::now(),
            caller: std::mem::take(&mut self.caller),
            called: std::mem::take(&mut self.called),
            plan: Some(self.plan_name.clone()),
            plan_path: std::mem::take(&mut self.path),
            queue: self.cdr_queue.take(),
            wait_ms: self.cdr_wait.map(|d| d.as_millis() as u64),
            operator: self.cdr_operator.take(),
            talk_ms: self.cdr_talk.map(|d| d.as_millis() as u64),
            disposition,
            hangup_side: match self.talk_ended_by {
                Some(Party::Operator) => HangupSide::Operator,
                _ => self.hangup_side,
            },
            hangup_cause: end.label().to_owned(),
        });
        if let Some(r) = self.router.upgrade() {
            let state = self.view.lock().unwrap_or_else(|p| p.into_inner()).state;
            r.forget(
                self.id,
                self.invite_tx,
                &(self.call_id.clone(), self.local_tag.clone()),
                state,
            );
        }
        let secs = self.started.elapsed().as_secs_f64();
        metrics::histogram!(m::CALL_DURATION_SECONDS).record(secs);
        metrics::counter!(m::CALLS_ENDED_TOTAL, "result" => result_label(disposition), "reason" => end.label())
            .increment(1);
        info!(reason = end.label(), seconds = secs, "call ended");
    }
}

impl Call {
    /// How the call ended for the caller, as the CDR and the `result`
    /// label tell it.
    fn disposition(&self, end: End) -> Disposition {
        // The ACD counts a caller as connected once the operator answers,
        // even if the bridge had not been made when the caller hung up; the
        // record follows the queue log.
        let answered = self
            .op_legs
            .iter()
            .any(|l| l.state == agent::OpState::Answered && !l.transfer);
        let waiting = self.queued.is_some() && self.bridged.is_none() && !answered;
        let transferred = self.bridged.as_deref() == Some(agent::TRANSFER_LEG);
        match end {
            _ if transferred => Disposition::Transferred,
            // Hung up while waiting in a queue, or while the transfer rang.
            End::CallerHungUp if waiting || (self.cdr_transfer && self.bridged.is_none()) => {
                Disposition::Abandoned
            }
            End::Shutdown if waiting => Disposition::Removed,
            End::CallerHungUp | End::PlanHungUp | End::Shutdown
                if self.overflowed && self.cdr_operator.is_none() =>
            {
                Disposition::Overflowed
            }
            _ => end.disposition(),
        }
    }
}

/// The `result` label of `conmutador_calls_ended_total`.
fn result_label(d: Disposition) -> &'static str {
    match d {
        Disposition::Completed => "completed",
        Disposition::Abandoned => "abandoned",
        Disposition::Rejected => "rejected",
        Disposition::Overflowed => "overflowed",
        Disposition::Transferred => "transferred",
        Disposition::Failed => "failed",
        Disposition::Removed => "removed",
    }
}

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
    let mut local_sdp = LocalSdp::new(svc.media_ip, local.port());
    let (answer, params) = match sdp::answer(invite.body(), &mut local_sdp, &svc.codecs) {
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
    let branch = new_branch();
    let mut bye = RequestBuilder::new(Method::Bye, &target)
        .header("Via", ep.via_for(&peer, &branch))
        .header("Max-Forwards", "70")
        .header(
            "From",
            format!("{};tag={local_tag}", invite.header("To").unwrap_or("")),
        )
        .header("To", invite.header("From").unwrap_or("").to_owned())
        .header("Call-ID", call_id)
        .header("CSeq", format!("{} BYE", cseq + 1));
    if let Ok(rr) = invite.record_routes() {
        for r in rr {
            bye = bye.header("Route", r.to_string());
        }
    }
    let _ = ep.request(peer, &Method::Bye, &branch, bye.build());
    svc.media.release(leg);
}
