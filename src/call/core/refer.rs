//! Transfers asked for by an operator's phone: a REFER (RFC 3515) in the
//! operator's leg names where the caller should go, and the call carries it
//! out itself, as a B2BUA does (the phone never talks to the target).
//!
//! The Refer-To's user part is read, in order, as an operator's id (rung by
//! name through the ACD, only if free), a queue (the caller joins it with
//! its priority and hears that it is being transferred), a node of the
//! call's plan (the IVR goes on from there), or the URI of one of the
//! plan's transfer nodes (the only numbers an operator may send a caller
//! to). Anything else is refused with 403 and the call stays as it was.
//!
//! Progress goes back to the phone as NOTIFYs of the REFER's implicit
//! subscription (`message/sipfrag`): 100 at once, then 200 or the failure.
//! While the target rings the caller hears hold music; a target that fails
//! (busy, no answer within [`REFER_RING_LIMIT`], unreachable) hands the
//! caller back to the operator if its phone is still on the call, else to
//! the front of the caller's queue: never to silence. The queue log gets
//! a TRANSFER line naming the operator and the target; the ACD ends the
//! first operator's part when the call is handed on.
//!
//! Must not touch: the ACD's choices (who is free is its answer), the
//! dialplan's rules (a node is entered through the interpreter).

use std::time::{Duration, Instant};

use super::legs::{LegKind, LegState, TRANSFER_LEG};
use super::{CallCore, End, Env, MediaCmd, Output};
use crate::acd::{AcdEvent, RingFailure};
use crate::dialplan::model::NodeKind;
use crate::ops::http::CallState;
use crate::ops::records::QueueEvent;
use crate::sip::transaction::TxId;
use crate::sip::{Message, Method, new_branch, response_to};

/// How long a transfer target may ring before the caller goes back.
pub(super) const REFER_RING_LIMIT: Duration = Duration::from_secs(30);

/// An operator hanging up this soon after its transfer failed or was
/// refused is taken for a phone that gives up on its own (baresip 1.0 ends
/// the call when a transfer fails): the caller goes to the front of the
/// queue, not home.
pub(super) const GIVE_BACK_GRACE: Duration = Duration::from_secs(5);

/// The prompt a caller hears when handed to another queue.
const TRANSFERRED_PROMPT: &str = "transferido";

/// Where a REFER sends the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Operator(String),
    Queue(String),
    Node(String),
    /// A plan transfer node's URI.
    Uri(String),
}

impl Target {
    /// The `target` label of `conmutador_operator_transfers_total`.
    fn kind(&self) -> &'static str {
        match self {
            Target::Operator(_) => "operator",
            Target::Queue(_) => "queue",
            Target::Node(_) => "node",
            Target::Uri(_) => "number",
        }
    }

    /// How the queue log and the records name it.
    fn label(&self) -> String {
        match self {
            Target::Operator(op) => format!("operator:{op}"),
            Target::Queue(q) => format!("queue:{q}"),
            Target::Node(n) => format!("node:{n}"),
            Target::Uri(u) => u.clone(),
        }
    }
}

/// A transfer under way.
pub(super) struct Referral {
    /// The operator who asked; its leg carries the subscription.
    pub by: String,
    pub target: Target,
    /// The REFER's CSeq number: the NOTIFYs' Event `id`.
    event_id: u32,
    /// The target must have answered by then.
    pub until: Instant,
    /// The caller's time with the operator who asked, for the queue log.
    talk: Duration,
    /// The TRANSFER line is written.
    logged: bool,
}

impl<E: Env> CallCore<E> {
    /// A REFER on operator leg `i`.
    pub(super) fn on_refer(&mut self, i: usize, req: Message, tx: TxId) -> Result<(), End> {
        let l = &self.legs.legs[i];
        let name = l.name.clone();
        let talking = l.kind == LegKind::Operator
            && l.state == LegState::Connected
            && self.waiting.bridged.as_deref() == Some(name.as_str());
        if self.waiting.referral.is_some() {
            return self.refuse_refer(i, &req, tx, 491, "Request Pending");
        }
        if !talking {
            return self.refuse_refer(i, &req, tx, 403, "Not Talking To A Caller");
        }
        let values: Vec<&str> = req.header_values("Refer-To").collect();
        let refer_to = match values.as_slice() {
            [one] => crate::sip::NameAddr::parse(one),
            _ => None,
        };
        let Some(refer_to) = refer_to else {
            return self.refuse_refer(i, &req, tx, 400, "Bad Refer-To");
        };
        let uri = refer_to.uri.to_string();
        if uri.contains('?') {
            // Replaces (attended transfer) or other embedded headers.
            return self.refuse_refer(i, &req, tx, 501, "Attended Transfer Not Supported");
        }
        let Some(target) = self.refer_target(&refer_to.uri) else {
            tracing::info!(call = self.id, operator = %name, %uri, "transfer target refused");
            return self.refuse_refer(i, &req, tx, 403, "Transfer Target Not Allowed");
        };
        let contact = self.env.contact(&self.legs.legs[i].peer);
        self.leg_reply(i, &req, tx, 202, "Accepted", &[("Contact", contact)]);
        let event_id = req.cseq().map(|c| c.seq).unwrap_or(0);
        let talk = self.legs.legs[i]
            .connected_at
            .map(|t| self.now.at.saturating_duration_since(t))
            .unwrap_or_default();
        tracing::info!(call = self.id, operator = %name, target = %target.label(), "operator transfers the caller");
        self.waiting.referral = Some(Referral {
            by: name,
            target: target.clone(),
            event_id,
            until: self.now.at + REFER_RING_LIMIT,
            talk,
            logged: false,
        });
        self.notify_progress(100, "Trying");
        // The operator stops hearing the caller (and the caller the
        // operator) while the transfer is carried out.
        if let Some(leg) = self.trunk.leg {
            self.media(MediaCmd::Unbridge { leg });
        }
        self.waiting.bridged = None;
        match target {
            Target::Queue(q) => {
                self.referral_done(true);
                let priority = self.waiting.priority;
                self.enqueue(q, priority, false)?;
                self.play_transferred();
                Ok(())
            }
            Target::Node(node) => {
                self.referral_done(true);
                self.set_view_state(CallState::Ivr, None, None);
                self.ivr_jump(&node)
            }
            Target::Operator(op) => {
                self.play_hold_music();
                let queue = self.record.queue.clone().unwrap_or_default();
                self.out.push(Output::Acd(AcdEvent::DirectRing {
                    call: self.id,
                    op,
                    queue,
                }));
                Ok(())
            }
            Target::Uri(uri) => {
                self.play_hold_music();
                if self.transfer(&uri).is_err() {
                    self.referral_failed(503, "Service Unavailable")?;
                }
                Ok(())
            }
        }
    }

    /// A REFER the call cannot carry out: it stays as it was.
    fn refuse_refer(
        &mut self,
        i: usize,
        req: &Message,
        tx: TxId,
        status: u16,
        reason: &str,
    ) -> Result<(), End> {
        self.leg_reply(i, req, tx, status, reason, &[]);
        self.transfer_figure("none", "refused");
        // Some phones hang up when their transfer is refused: the caller
        // must not pay for it.
        let name = self.legs.legs[i].name.clone();
        if self.waiting.bridged.as_deref() == Some(name.as_str()) {
            self.waiting.given_back = Some((name, self.now.at));
        }
        Ok(())
    }

    fn transfer_figure(&mut self, target: &'static str, result: &'static str) {
        self.out
            .push(Output::Figure(super::Figure::Transfer { target, result }));
    }

    /// Reads a Refer-To URI as one of the targets an operator may use.
    fn refer_target(&self, uri: &crate::sip::uri::Uri) -> Option<Target> {
        fn user_of(uri: &crate::sip::uri::Uri) -> Option<String> {
            match uri {
                crate::sip::uri::Uri::Sip(s) => s.user.clone(),
                crate::sip::uri::Uri::Tel(t) => Some(t.number.clone()),
                crate::sip::uri::Uri::Other(_) => None,
            }
        }
        let plan = self.ivr.interp.plan().clone();
        let numbers: Vec<&str> = plan
            .nodes
            .values()
            .filter_map(|n| match &n.kind {
                NodeKind::Transfer(t) => Some(t.uri.v.as_str()),
                _ => None,
            })
            .collect();
        // The very URI of a plan's number is that number, whatever its
        // user part also happens to name.
        let text = uri.to_string();
        if let Some(n) = numbers.iter().find(|n| **n == text) {
            return Some(Target::Uri((*n).to_owned()));
        }
        let user = user_of(uri)?;
        if self.cfg.operators.contains(&user) {
            return Some(Target::Operator(user));
        }
        if self.cfg.queues.contains(&user) {
            return Some(Target::Queue(user));
        }
        if plan.node(&user).is_some() {
            return Some(Target::Node(user));
        }
        // A plan's number dialled by its user part at the gateway.
        numbers
            .iter()
            .find(|n| {
                crate::sip::NameAddr::parse(&format!("<{n}>"))
                    .and_then(|na| user_of(&na.uri))
                    .as_deref()
                    == Some(user.as_str())
            })
            .map(|n| Target::Uri((*n).to_owned()))
    }

    /// The target answered (or the caller went where it was sent): the
    /// operator's phone hears 200, its leg is hung up, the queue log says
    /// TRANSFER. `tell_acd`: the ACD must still end the operator's part
    /// (an operator target's answer already did).
    pub(super) fn referral_done(&mut self, tell_acd: bool) {
        self.log_transfer();
        let Some(r) = self.waiting.referral.take() else {
            return;
        };
        self.transfer_figure(r.target.kind(), "done");
        self.record.transferred_by = Some(r.by.clone());
        self.notify(&r, 200, "OK", true);
        if tell_acd {
            self.out
                .push(Output::Acd(AcdEvent::Transferred { call: self.id }));
        }
        self.record.transfer = true;
        self.cancel_leg(&r.by);
    }

    /// The queue log's TRANSFER line, once: when the target answers, so
    /// that it comes before the CONNECT of an operator rung by name.
    pub(super) fn log_transfer(&mut self) {
        let Some(r) = self.waiting.referral.as_mut() else {
            return;
        };
        if std::mem::replace(&mut r.logged, true) {
            return;
        }
        let (by, target, talk) = (r.by.clone(), r.target.label(), r.talk);
        if let Some(queue) = self.record.queue.clone() {
            let wait = self.record.wait.map_or(0, |d| d.as_millis() as u64);
            let ev = QueueEvent::transfer(
                self.now.wall,
                &self.trunk.call_id,
                &queue,
                Some(&by),
                &target,
                self.record.plan(),
                wait,
                talk.as_millis() as u64,
            );
            self.out.push(Output::QueueEvent(Box::new(ev)));
        }
    }

    /// The target could not be reached: the operator's phone hears why,
    /// and the caller goes back to the operator, or to the front of its
    /// queue when the operator has left.
    pub(super) fn referral_failed(&mut self, status: u16, reason: &str) -> Result<(), End> {
        let Some(r) = self.waiting.referral.take() else {
            return Ok(());
        };
        tracing::info!(call = self.id, operator = %r.by, target = %r.target.label(), status, "transfer failed");
        self.transfer_figure(r.target.kind(), "failed");
        self.notify(&r, status, reason, true);
        let back = self
            .legs
            .legs
            .iter()
            .find(|l| l.name == r.by && l.state == LegState::Connected)
            .map(|l| (l.media, l.kind));
        if let Some((media, kind)) = back {
            self.bridged(&r.by, kind, media);
            self.waiting.given_back = Some((r.by, self.now.at));
            return Ok(());
        }
        self.back_to_queue_front(&r.by)
    }

    /// Operator `op` left a caller whose transfer failed: its part ends
    /// (COMPLETEAGENT) and the caller waits again at the front of its
    /// queue.
    fn back_to_queue_front(&mut self, op: &str) -> Result<(), End> {
        self.out.push(Output::Acd(AcdEvent::CallEnded {
            call: self.id,
            op: op.to_owned(),
            by: crate::acd::Party::Operator,
        }));
        let Some(queue) = self.record.queue.clone() else {
            return Err(End::TransferFailed);
        };
        tracing::info!(call = self.id, operator = op, %queue, "caller back at the front of the queue");
        let priority = self.waiting.priority;
        self.enqueue(queue, priority, true)
    }

    /// The operator the caller was given back to hung up: at once after
    /// the failure, the caller waits again; later, it is an ordinary end.
    pub(super) fn left_after_give_back(&mut self, name: &str) -> Option<Result<(), End>> {
        let (op, at) = self.waiting.given_back.take()?;
        if op != name || self.now.at.saturating_duration_since(at) > GIVE_BACK_GRACE {
            return None;
        }
        self.waiting.bridged = None;
        if let Some(leg) = self.trunk.leg {
            self.media(MediaCmd::Unbridge { leg });
        }
        Some(self.back_to_queue_front(name))
    }

    /// The ring limit passed with the target still ringing.
    pub(super) fn referral_due(&mut self) -> Result<(), End> {
        let Some(r) = &self.waiting.referral else {
            return Ok(());
        };
        if r.until > self.now.at {
            return Ok(());
        }
        let name = match &r.target {
            Target::Operator(op) => {
                // The ACD forgets the ring only when told; a CANCEL's 487
                // does not tell it.
                self.out.push(Output::Acd(AcdEvent::RingFailed {
                    call: self.id,
                    op: op.clone(),
                    reason: RingFailure::NoAnswer,
                }));
                op.clone()
            }
            _ => TRANSFER_LEG.to_owned(),
        };
        self.cancel_leg(&name);
        self.referral_failed(408, "Request Timeout")
    }

    /// Whether leg `name` is what the transfer under way is calling.
    pub(super) fn referral_target_is(&self, name: &str) -> bool {
        self.waiting
            .referral
            .as_ref()
            .is_some_and(|r| match &r.target {
                Target::Operator(op) => op == name,
                Target::Uri(_) => name == TRANSFER_LEG,
                Target::Queue(_) | Target::Node(_) => false,
            })
    }

    /// The operator's leg went away while its transfer is under way.
    pub(super) fn referrer_left(&self, name: &str) -> bool {
        self.waiting.referral.as_ref().is_some_and(|r| r.by == name)
    }

    /// A NOTIFY with the transfer's progress (`SIP/2.0 <status>`).
    fn notify_progress(&mut self, status: u16, reason: &str) {
        if let Some(r) = self.waiting.referral.take() {
            self.notify(&r, status, reason, false);
            self.waiting.referral = Some(r);
        }
    }

    fn notify(&mut self, r: &Referral, status: u16, reason: &str, last: bool) {
        let Some(l) = self
            .legs
            .legs
            .iter_mut()
            .find(|l| l.name == r.by && l.state == LegState::Connected)
        else {
            return;
        };
        let peer = l.peer;
        let branch = new_branch();
        let via = self.env.via(&peer, &branch);
        let contact = self.env.contact(&peer);
        let Some(b) = l
            .dialog
            .as_mut()
            .and_then(|d| d.request(Method::Notify, via))
        else {
            return;
        };
        let state = if last {
            "terminated;reason=noresource".to_owned()
        } else {
            format!("active;expires={}", REFER_RING_LIMIT.as_secs() * 2)
        };
        let bytes = b
            .header("Contact", contact)
            .header("Event", format!("refer;id={}", r.event_id))
            .header("Subscription-State", state)
            .header("User-Agent", self.cfg.user_agent.clone())
            .body(
                "message/sipfrag;version=2.0",
                bytes::Bytes::from(format!("SIP/2.0 {status} {reason}\r\n")),
            )
            .build();
        self.out.push(Output::Request {
            peer,
            method: Method::Notify,
            branch,
            bytes,
        });
    }

    /// "Su llamada está siendo transferida", over the hold music's start.
    fn play_transferred(&mut self) {
        let lang = self.ivr.interp.language().to_owned();
        let Some(prompt) = self
            .ivr
            .prompts
            .get(&format!("{lang}/{TRANSFERRED_PROMPT}"))
        else {
            return;
        };
        if let Some(leg) = self.trunk.leg {
            self.media(MediaCmd::Play {
                leg,
                prompts: vec![prompt],
                opts: crate::media::PlayOpts {
                    barge_in: false,
                    looped: false,
                    token: super::waiting::ANNOUNCE_TOKEN,
                },
            });
        }
    }

    /// An answer to a request on leg `i`, in its dialog.
    pub(super) fn leg_reply(
        &mut self,
        i: usize,
        req: &Message,
        tx: TxId,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        let l = &self.legs.legs[i];
        let mut b = response_to(req, status, reason)
            .via_received(l.peer.addr)
            .to_tag(&l.local_tag)
            .header("Server", self.cfg.user_agent.clone());
        for (k, v) in extra {
            b = b.header(k, v.clone());
        }
        let bytes = b.build();
        self.out.push(Output::Respond {
            tx,
            status,
            bytes,
            invite_2xx: None,
        });
    }
}
