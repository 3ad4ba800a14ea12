//! The call core: one call end to end as a plain state machine, without I/O.
//!
//! [`CallCore::handle`] takes an [`Input`] (a SIP request or response for one
//! of the call's legs, a media event, an ACD command, a timer tick) and the
//! time, and returns [`Output`]s: messages to send, media commands, ACD
//! events, records, routing changes, the admin view and the figures the shell
//! turns into metrics. [`CallCore::poll_timeout`] says when to tick next. The
//! tokio task around it ([`super::driver`]) only moves messages; tests drive
//! it in virtual time.
//!
//! The call's state lives here and only here, in parts with one job each:
//! the trunk leg ([`trunk`]: the UAS dialog with the carrier and its media),
//! the outgoing legs ([`legs`]: operators and transfers, UAC dialogs), the
//! IVR ([`ivr`]: the interpreter and its timers), the queue part
//! ([`waiting`]: the stay in a queue and the bridge), the record
//! accumulator ([`record`]) and the recording part (`recording`: consent,
//! start, pause codes). Questions that must be answered in the same
//! step (a free RTP port, where an operator's phone is, our address on a
//! flow) go through the [`Env`] trait; everything the call does to the world
//! is an output. Decisions stay in `dialplan` and `acd`.

mod ivr;
mod legs;
mod record;
mod recording;
mod refer;
mod session_timer;
mod trunk;
mod waiting;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::acd::{AcdCommand, AcdEvent};
use crate::dialplan::{IvrCount, Plan};
use crate::media::{LegId, MediaEvent, PlayOpts, PoolExhausted, Prompt, PromptLibrary};
use crate::ops::http::{CallState, CallView};
use crate::ops::records::{Cdr, QueueEvent};
use crate::sdp::{Codec, MediaParams, SrtpParams};
use crate::sip::transaction::TxId;
use crate::sip::transport::Peer;
use crate::sip::{Message, Method};

pub use record::End;
pub use recording::CONSENT_PROMPT;

/// The time of a step: the monotonic clock for timers and durations, the
/// wall clock for records and office hours.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub wall: DateTime<Utc>,
}

impl Now {
    pub fn system() -> Now {
        Now {
            at: Instant::now(),
            wall: Utc::now(),
        }
    }
}

/// What every call of this gateway shares and never changes during a call.
#[derive(Debug, Clone)]
pub struct CallConfig {
    pub codecs: Vec<Codec>,
    pub media_ip: IpAddr,
    /// 180 and this long before the 200; zero answers at once.
    pub ring_delay: Duration,
    pub user_agent: String,
    /// Seconds in Retry-After when a call is refused for load.
    pub retry_after: u32,
    /// Played while waiting when the plan ships no `musica_espera` prompt.
    pub hold_music: Arc<Prompt>,
    /// Whether queues exist at all (without them every queue is "empty").
    pub has_acd: bool,
    /// Session timers: the shortest and the longest interval we keep.
    pub session_min_se: u32,
    pub session_expires: u32,
    /// SRTP on the carrier's legs (the caller's, a transfer's): off, when
    /// the peer wants it (keys only over TLS), or always.
    pub srtp: crate::sdp::SrtpMode,
    /// SRTP on operators' legs: `Optional` offers a phone on TLS keys it
    /// may ignore; `Required` offers RTP/SAVP and rings no phone off TLS.
    pub srtp_operators: crate::sdp::SrtpMode,
    /// What the operator dials in-call to pause / resume the recording.
    pub record_pause_code: String,
    pub record_resume_code: String,
    /// Configured queues and operators: the names a REFER may point at.
    pub queues: Vec<String>,
    pub operators: Vec<String>,
}

/// Where an outgoing leg is sent.
#[derive(Debug, Clone)]
pub struct Reach {
    pub uri: String,
    pub peer: Peer,
}

/// Questions the core asks and that must be answered in the same step.
/// Nothing here changes what the far ends see; the port pool and the
/// per-number places are the only state touched, and both are given back by
/// outputs ([`MediaCmd::Release`]) or by dropping what was taken.
pub trait Env {
    /// A free RTP port, beside `partner`'s media worker when given.
    fn allocate(&self, partner: Option<LegId>) -> Result<(LegId, SocketAddr), PoolExhausted>;
    /// Whether signalling with `peer` is encrypted (TLS): only then may SDP
    /// carry SRTP keys.
    fn secure(&self, peer: &Peer) -> bool;
    /// The Via value for a new request with `branch` on `peer`'s flow.
    fn via(&self, peer: &Peer, branch: &str) -> String;
    /// Our Contact (a name-addr) for dialogs on `peer`'s flow.
    fn contact(&self, peer: &Peer) -> String;
    /// The answer to an in-dialog OPTIONS.
    fn options_response(&self, req: &Message, peer: &Peer) -> Bytes;
    /// Where operator `op`'s phone is rung now, if anywhere.
    fn operator(&self, op: &str) -> Option<Reach>;
    /// How a transfer to `uri` is sent (the transfer proxy, or the URI's
    /// own IP address).
    fn transfer(&self, uri: &str) -> Option<Peer>;
    /// One of the calling number's queue places; None when it holds them all.
    fn take_place(&self, caller: &str) -> Option<crate::call::places::Place>;
    /// Whether a call joining `queue` is recorded (the queue's share, and
    /// room on disk): the recording's file name if so.
    fn recording(&self, queue: &str, call_id: &str) -> Option<String> {
        let _ = (queue, call_id);
        None
    }
}

/// Everything that can happen to a call.
#[derive(Debug)]
pub enum Input {
    /// The admitted INVITE is ours to answer.
    Start,
    /// A request in one of the call's dialogs (trunk or an outgoing leg).
    Request {
        req: Message,
        tx: TxId,
    },
    /// The ACK for our 2xx on the trunk leg.
    Ack {
        req: Message,
    },
    /// The caller cancelled the INVITE (200 to the CANCEL is already sent).
    Cancel,
    /// A response to one of the call's requests.
    Response {
        resp: Message,
    },
    /// A client transaction with this branch got no final answer in time.
    ClientTimeout {
        branch: String,
    },
    /// The request with this branch could not be sent (transaction table
    /// full): as if it had timed out, at once.
    SendFailed {
        branch: String,
    },
    /// Our 2xx was never acknowledged.
    AckTimeout,
    Media(MediaEvent),
    Acd(AcdCommand),
    /// The gateway stops: end politely.
    Shutdown,
    /// An admin took the caller out of its queue.
    Remove,
    /// Timers: due ones fire.
    Tick,
}

/// Commands for the media engine.
#[derive(Debug)]
pub enum MediaCmd {
    /// Start sending and receiving on `leg`, with SRTP keys when the SDP
    /// negotiated them; its events come back as [`Input::Media`].
    Start {
        leg: LegId,
        params: MediaParams,
        srtp: Option<SrtpParams>,
    },
    /// New parameters (and keys) from a re-negotiation; unchanged keys keep
    /// their crypto context.
    Update {
        leg: LegId,
        params: MediaParams,
        srtp: Option<SrtpParams>,
    },
    Play {
        leg: LegId,
        prompts: Vec<Arc<Prompt>>,
        opts: PlayOpts,
    },
    StopPlayback {
        leg: LegId,
    },
    Bridge {
        a: LegId,
        b: LegId,
    },
    /// Ends the bridge `leg` is in (both sides stop relaying).
    Unbridge {
        leg: LegId,
    },
    Release {
        leg: LegId,
    },
    /// Record the bridge of `caller` (left) and `operator` (right) to `file`.
    RecordStart {
        file: String,
        call_id: String,
        queue: Option<String>,
        caller: LegId,
        operator: LegId,
    },
    RecordPause {
        file: String,
    },
    RecordResume {
        file: String,
    },
    /// The call is over: close the file.
    RecordStop {
        file: String,
    },
}

/// Figures of one call for the shell's metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum Figure {
    /// No RTP port was free: refused 503.
    NoRtpPort,
    /// From the INVITE to our 200.
    AnswerDelay(Duration),
    /// A leg's peer stopped sending RTP.
    RtpTimeout,
    /// A DTMF digit came by SIP INFO.
    InfoDigit,
    /// The session timer was refreshed, by us or by the carrier.
    SessionRefreshed { by_us: bool },
    /// An operator's transfer (REFER) ended: `target` kind and `result`
    /// as in `conmutador_operator_transfers_total`.
    Transfer {
        target: &'static str,
        result: &'static str,
    },
    /// The call is over.
    Ended {
        seconds: f64,
        result: &'static str,
        reason: &'static str,
    },
    /// What the IVR counted at `node` of `plan` (`Interpreter::take_figures`).
    Ivr {
        plan: String,
        count: IvrCount,
        node: String,
        n: u64,
    },
}

/// What the call does.
#[derive(Debug)]
pub enum Output {
    /// A response in server transaction `tx`; `invite_2xx` (Call-ID, CSeq)
    /// makes the endpoint resend a 2xx to an INVITE until its ACK.
    Respond {
        tx: TxId,
        status: u16,
        bytes: Bytes,
        invite_2xx: Option<(String, u32)>,
    },
    /// A request in a new client transaction (its top Via has `branch`).
    /// When it cannot be sent the shell answers [`Input::SendFailed`].
    Request {
        peer: Peer,
        method: Method,
        branch: String,
        bytes: Bytes,
    },
    /// The ACK for a non-2xx final response, for the INVITE transaction
    /// with `branch` to send (and resend).
    AckFailure {
        branch: String,
        bytes: Bytes,
    },
    /// A message outside any transaction: the ACK for a 2xx.
    Raw {
        peer: Peer,
        bytes: Bytes,
    },
    Media(MediaCmd),
    Acd(AcdEvent),
    /// Make this call the ACD's addressee for its commands (before it joins).
    AcdAttach {
        call_id: String,
        caller: String,
    },
    /// The ACD has nothing more to say to this call.
    AcdDetach,
    Cdr(Box<Cdr>),
    QueueEvent(Box<QueueEvent>),
    /// Route the dialog (Call-ID, our tag) of an outgoing leg to this call.
    RouteDialog {
        call_id: String,
        local_tag: String,
    },
    ForgetDialog {
        call_id: String,
        local_tag: String,
    },
    /// The INVITE got its final answer: a CANCEL can no longer match it.
    InviteAnswered,
    /// What the admin API shows of the call changed.
    View(CallView),
    Figure(Figure),
    /// Nothing more will happen; the shell stops the call.
    Done,
}

/// How long an ending call waits for the answer to its BYE.
const BYE_WAIT: Duration = Duration::from_secs(4);

/// Everything a new call starts from.
pub struct Setup<E> {
    pub id: u64,
    pub env: E,
    pub cfg: Arc<CallConfig>,
    pub invite: Message,
    pub invite_tx: TxId,
    pub peer: Peer,
    pub local_tag: String,
    pub plan: Arc<Plan>,
    pub called: String,
    /// The prompts in force when the call arrived: like its plan, they stay
    /// the same for the whole call.
    pub prompts: Arc<PromptLibrary>,
    pub now: Now,
}

/// A call that is ending: BYE sent, waiting for its answer.
struct Ending {
    end: End,
    disposition: crate::ops::records::Disposition,
    until: Instant,
}

pub struct CallCore<E> {
    id: u64,
    env: E,
    cfg: Arc<CallConfig>,
    now: Now,
    started: Instant,
    trunk: trunk::Trunk,
    legs: legs::Legs,
    ivr: ivr::Ivr,
    waiting: waiting::Waiting,
    record: record::Record,
    recording: recording::Recording,
    view: CallView,
    ending: Option<Ending>,
    done: bool,
    out: Vec<Output>,
}

impl<E: Env> CallCore<E> {
    pub fn new(s: Setup<E>) -> CallCore<E> {
        let caller = s
            .invite
            .from()
            .ok()
            .map(|f| f.uri.to_string())
            .unwrap_or_default();
        let call_id = s.invite.call_id().unwrap_or("").to_owned();
        let view = CallView {
            call_id: call_id.clone(),
            caller: caller.clone(),
            called: s.called.clone(),
            state: CallState::Ivr,
            started_at: s.now.wall,
            queue: None,
            operator: None,
            node: None,
        };
        let record = record::Record::new(caller.clone(), s.called.clone(), &s.plan, s.now.wall);
        let ivr = ivr::Ivr::new(s.plan, caller, s.called, s.prompts);
        let trunk = trunk::Trunk::new(s.invite, s.invite_tx, s.peer, s.local_tag, s.cfg.media_ip);
        CallCore {
            id: s.id,
            env: s.env,
            cfg: s.cfg,
            now: s.now,
            started: s.now.at,
            trunk,
            legs: legs::Legs::default(),
            ivr,
            waiting: waiting::Waiting::default(),
            record,
            recording: recording::Recording::default(),
            view,
            ending: None,
            done: false,
            out: Vec::new(),
        }
    }

    /// The ACD's number for this call.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// What the admin API shows of the call now.
    pub fn view(&self) -> &CallView {
        &self.view
    }

    /// Takes one input; returns what to do.
    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Output> {
        if self.done {
            return Vec::new();
        }
        self.now = now;
        if self.ending.is_some() {
            self.while_ending(input);
        } else if let Err(end) = self.step(input) {
            self.end_call(end);
        }
        std::mem::take(&mut self.out)
    }

    /// The next instant [`Input::Tick`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        if let Some(e) = &self.ending {
            return Some(e.until);
        }
        [
            self.trunk.ring_until,
            self.ivr.next_timer(),
            self.trunk.timer.as_ref().map(|t| t.at),
            self.waiting.referral.as_ref().map(|r| r.until),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn step(&mut self, input: Input) -> Result<(), End> {
        match input {
            Input::Start => self.answer(),
            Input::Tick => self.on_tick(),
            Input::Request { req, tx } => {
                let call_id = req.call_id().unwrap_or("");
                if call_id != self.trunk.call_id && self.legs.owns(call_id) {
                    self.on_leg_request(req, tx)
                } else {
                    self.on_trunk_request(req, tx)
                }
            }
            Input::Ack { req } => self.on_ack(&req),
            Input::Cancel => self.on_cancel(),
            Input::Response { resp } => {
                let refresh =
                    resp.top_via().ok().and_then(|v| v.branch).is_some_and(|b| {
                        self.trunk.timer.as_ref().is_some_and(|t| t.is_refresh(&b))
                    });
                if refresh {
                    self.on_refresh_response(resp)
                } else {
                    self.on_leg_response(resp)
                }
            }
            Input::ClientTimeout { branch } | Input::SendFailed { branch } => {
                if self
                    .trunk
                    .timer
                    .as_ref()
                    .is_some_and(|t| t.is_refresh(&branch))
                {
                    return Err(End::SessionExpired);
                }
                self.on_leg_lost(&branch)
            }
            Input::AckTimeout => self.on_ack_timeout(),
            Input::Media(ev) => self.on_media(ev),
            Input::Acd(cmd) => self.on_acd(cmd),
            Input::Shutdown => {
                if self.trunk.state == trunk::TrunkState::Early {
                    self.final_invite_response(503, "Service Unavailable", &[]);
                }
                Err(End::Shutdown)
            }
            Input::Remove => Err(End::Removed),
        }
    }

    fn on_tick(&mut self) -> Result<(), End> {
        if self.trunk.ring_until.is_some_and(|t| t <= self.now.at) {
            self.trunk.ring_until = None;
            self.send_200()?;
        }
        for token in self.ivr.due_timers(self.now.at) {
            self.ivr_event(crate::dialplan::IvrEvent::Timer { token })?;
        }
        self.referral_due()?;
        self.session_timer_due()
    }

    /// A media event from the trunk leg or an outgoing leg.
    fn on_media(&mut self, ev: MediaEvent) -> Result<(), End> {
        use crate::dialplan::IvrEvent;
        let leg = match &ev {
            MediaEvent::Digit { leg, .. }
            | MediaEvent::PlaybackDone { leg, .. }
            | MediaEvent::RtpTimeout { leg }
            | MediaEvent::FirstPacket { leg, .. } => *leg,
        };
        if self.legs.by_media(leg).is_some() {
            if let MediaEvent::Digit { digit, .. } = ev {
                self.operator_digit(digit);
                return Ok(());
            }
            // The operator's phone went silent for good while talking.
            if matches!(ev, MediaEvent::RtpTimeout { .. }) && self.waiting.bridged.is_some() {
                self.out.push(Output::Figure(Figure::RtpTimeout));
                self.record.talk_ended_by = Some(crate::acd::Party::Operator);
                return Err(End::OperatorHungUp);
            }
            return Ok(());
        }
        match ev {
            MediaEvent::Digit { digit, .. } => self.on_digit(digit),
            MediaEvent::PlaybackDone {
                token: waiting::ANNOUNCE_TOKEN,
                ..
            } => {
                if self.waiting.queued.is_some() && self.waiting.bridged.is_none() {
                    self.play_hold_music();
                }
                Ok(())
            }
            MediaEvent::PlaybackDone {
                token: waiting::MOH_TOKEN,
                ..
            } => Ok(()),
            MediaEvent::PlaybackDone {
                token: recording::CONSENT_TOKEN,
                ..
            } => {
                self.consent_done();
                Ok(())
            }
            MediaEvent::PlaybackDone { token, .. } => {
                self.ivr_event(IvrEvent::PlaybackDone { token })
            }
            MediaEvent::RtpTimeout { .. } => {
                self.out.push(Output::Figure(Figure::RtpTimeout));
                tracing::info!(call = self.id, "no RTP from the caller, hanging up");
                Err(End::RtpTimeout)
            }
            MediaEvent::FirstPacket { .. } => Ok(()),
        }
    }

    /// A digit from the caller, however it came (RFC 4733, in-band, INFO).
    fn on_digit(&mut self, digit: char) -> Result<(), End> {
        if self.waiting.bridged.is_some() {
            // Relayed to the operator by the bridge; nothing to decide here.
            return Ok(());
        }
        if self.waiting.queued.is_some() {
            self.out.push(Output::Acd(AcdEvent::CallerPressedKey {
                call: self.id,
                digit,
            }));
            return Ok(());
        }
        self.ivr_event(crate::dialplan::IvrEvent::Digit(digit))
    }

    /// Changes what the admin view shows (state, queue, operator).
    fn set_view_state(
        &mut self,
        state: CallState,
        queue: Option<String>,
        operator: Option<String>,
    ) {
        if self.view.state == state && self.view.queue == queue && self.view.operator == operator {
            return;
        }
        self.view.state = state;
        self.view.queue = queue;
        self.view.operator = operator;
        self.out.push(Output::View(self.view.clone()));
    }

    fn media(&mut self, cmd: MediaCmd) {
        self.out.push(Output::Media(cmd));
    }

    /// The call ends for `end`: the queue part tells the ACD at once, the
    /// outgoing legs are cancelled or hung up, and the trunk leg gets a BYE
    /// (or a final answer to its INVITE) whose answer we wait for briefly.
    fn end_call(&mut self, end: End) {
        if self.ending.is_some() || self.done {
            return;
        }
        if matches!(end, End::CallerHungUp | End::Cancelled) {
            self.record
                .talk_ended_by
                .get_or_insert(crate::acd::Party::Caller);
        }
        let disposition = self.disposition(end);
        self.end_queue_part(end);
        if self.trunk.state != trunk::TrunkState::Ended {
            self.send_bye();
        }
        self.ending = Some(Ending {
            end,
            disposition,
            until: self.now.at + BYE_WAIT,
        });
        if self.trunk.bye_branch.is_none() {
            self.finish();
        }
    }

    /// While the BYE is out: its answer (or its loss, or the deadline)
    /// finishes the call; a request crossing it is answered 200; a late 2xx
    /// from an operator being cancelled is acknowledged and hung up.
    fn while_ending(&mut self, input: Input) {
        let bye = self.trunk.bye_branch.clone();
        match input {
            Input::Response { resp } => {
                let branch = resp.top_via().ok().and_then(|v| v.branch);
                if branch.is_some() && branch == bye {
                    if resp.status().unwrap_or(0) >= 200 {
                        self.finish();
                    }
                } else {
                    let _ = self.on_leg_response(resp);
                }
            }
            Input::ClientTimeout { branch } | Input::SendFailed { branch } => {
                if Some(&branch) == bye.as_ref() {
                    self.finish();
                } else {
                    let _ = self.on_leg_lost(&branch);
                }
            }
            Input::Request { req, tx } => {
                let call_id = req.call_id().unwrap_or("");
                if call_id != self.trunk.call_id && self.legs.owns(call_id) {
                    let _ = self.on_leg_request(req, tx);
                } else {
                    self.reply(&req, tx, 200, "OK", None);
                }
            }
            Input::Tick if self.ending.as_ref().is_some_and(|e| e.until <= self.now.at) => {
                self.finish();
            }
            _ => {}
        }
    }

    /// The last step: media given back, routes forgotten, the record
    /// written, the figures out, and [`Output::Done`].
    fn finish(&mut self) {
        let Some(ending) = self.ending.take() else {
            return;
        };
        self.record.recording = self.stop_recording();
        if let Some(leg) = self.trunk.leg.take() {
            self.media(MediaCmd::Release { leg });
        }
        for l in self.legs.take_all() {
            self.drop_leg(l);
        }
        let cdr = self.record.cdr(
            &self.trunk.call_id,
            ending.disposition,
            ending.end,
            self.now.wall,
        );
        self.out.push(Output::Cdr(Box::new(cdr)));
        let seconds = self
            .now
            .at
            .saturating_duration_since(self.started)
            .as_secs_f64();
        self.out.push(Output::Figure(Figure::Ended {
            seconds,
            result: record::result_label(ending.disposition),
            reason: ending.end.label(),
        }));
        tracing::info!(
            call = self.id,
            reason = ending.end.label(),
            seconds,
            "call ended"
        );
        self.done = true;
        self.out.push(Output::Done);
    }
}
