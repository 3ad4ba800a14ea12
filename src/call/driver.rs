//! The thin tokio task around one [`CallCore`]: it waits on the call's two
//! inboxes, its media events and its next deadline, hands each to the core,
//! and carries out the core's outputs (endpoint, media engine, ACD, records,
//! routes, metrics). It decides nothing.
//!
//! It keeps one piece of bookkeeping the core must not see: which endpoint
//! transaction carries which of the call's requests (the core knows its
//! requests by branch; the endpoint by [`TxId`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::Services;
use super::core::{CallCore, Env, Figure, Input, MediaCmd, Now, Output, Reach, Setup};
use super::routes::{Ctl, NetMsg, Routes, SharedView, state_label};
use crate::media::{LegId, MediaEvent, PoolExhausted};
use crate::ops::metrics as m;
use crate::sip::Message;
use crate::sip::endpoint::Endpoint;
use crate::sip::transaction::TxId;
use crate::sip::transport::Peer;

/// What the core may ask of the gateway in the middle of a step.
pub struct ShellEnv {
    pub ep: Arc<Endpoint>,
    pub svc: Arc<Services>,
}

impl Env for ShellEnv {
    fn allocate(&self, partner: Option<LegId>) -> Result<(LegId, SocketAddr), PoolExhausted> {
        match partner {
            Some(p) => self.svc.media.allocate_beside(p),
            None => self.svc.media.allocate(),
        }
    }

    fn secure(&self, peer: &Peer) -> bool {
        matches!(peer.flow, crate::sip::transport::Flow::Tls { .. })
    }

    fn via(&self, peer: &Peer, branch: &str) -> String {
        self.ep.via_for(peer, branch)
    }

    fn contact(&self, peer: &Peer) -> String {
        self.ep.contact_for(peer)
    }

    fn options_response(&self, req: &Message, peer: &Peer) -> Bytes {
        self.ep.options_response(req, peer)
    }

    fn operator(&self, op: &str) -> Option<Reach> {
        let ops = self.svc.operators.as_ref()?;
        let c = ops.contact(op, |uri| static_peer(uri, &self.ep))?;
        Some(Reach {
            uri: c.uri,
            peer: c.peer,
        })
    }

    fn transfer(&self, uri: &str) -> Option<Peer> {
        // Through the carrier's proxy (UDP, or TLS for a sips: proxy), or
        // straight to the URI's own IP address.
        let via = self.svc.transfer_proxy.as_deref().unwrap_or(uri);
        static_peer(via, &self.ep)
    }

    fn take_place(&self, caller: &str) -> Option<super::places::Place> {
        self.svc.places.take(caller)
    }

    fn recording(&self, queue: &str, call_id: &str) -> Option<String> {
        let share = *self.svc.record_queues.get(queue)?;
        let recorder = self.svc.recorder.as_ref()?;
        if !share.records(rand::random_range(0..100)) || !recorder.admit() {
            return None;
        }
        Some(crate::media::record::file_name(call_id))
    }
}

/// Where a static URI is reached: UDP for `sip:`, a verified TLS
/// connection for `sips:` or `;transport=tls` (IP literals only).
pub(crate) fn static_peer(uri: &str, ep: &Endpoint) -> Option<Peer> {
    ep.transports.peer_for_uri(uri)
}

pub struct Driver {
    core: CallCore<ShellEnv>,
    ep: Arc<Endpoint>,
    svc: Arc<Services>,
    routes: Arc<Routes>,
    key: (String, String),
    invite_tx: TxId,
    view: SharedView,
    /// This call's own lossless inbox, handed to the ACD.
    ctl: mpsc::UnboundedSender<Ctl>,
    media_events: mpsc::Sender<MediaEvent>,
    /// The call's client transactions: branch ↔ endpoint transaction.
    by_branch: HashMap<String, TxId>,
    by_tx: HashMap<TxId, String>,
    /// Client transactions that got their final answer in this step.
    finishing: Vec<TxId>,
}

/// The receiving ends a driver waits on.
pub struct Inboxes {
    pub net: mpsc::Receiver<NetMsg>,
    pub ctl: mpsc::UnboundedReceiver<Ctl>,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        setup: Setup<ShellEnv>,
        ep: Arc<Endpoint>,
        svc: Arc<Services>,
        routes: Arc<Routes>,
        view: SharedView,
        ctl: mpsc::UnboundedSender<Ctl>,
        media_events: mpsc::Sender<MediaEvent>,
    ) -> Driver {
        let key = (
            setup.invite.call_id().unwrap_or("").to_owned(),
            setup.local_tag.clone(),
        );
        let invite_tx = setup.invite_tx;
        Driver {
            core: CallCore::new(setup),
            ep,
            svc,
            routes,
            key,
            invite_tx,
            view,
            ctl,
            media_events,
            by_branch: HashMap::new(),
            by_tx: HashMap::new(),
            finishing: Vec::new(),
        }
    }

    pub async fn run(mut self, mut inboxes: Inboxes, mut media: mpsc::Receiver<MediaEvent>) {
        let span = tracing::info_span!("call", id = self.core.id(), call_id = %self.key.0);
        async move {
            self.step(Input::Start);
            while !self.core.is_done() {
                let deadline = self.core.poll_timeout();
                let sleep = async {
                    match deadline {
                        Some(t) => tokio::time::sleep_until(t.into()).await,
                        None => std::future::pending().await,
                    }
                };
                let input = tokio::select! {
                    // The gateway's own events first: a timeout or an ACD
                    // decision must not wait behind a flood of retransmissions.
                    biased;
                    Some(c) = inboxes.ctl.recv() => self.input_of_ctl(c),
                    Some(n) = inboxes.net.recv() => Some(self.input_of_net(n)),
                    Some(ev) = media.recv() => Some(Input::Media(ev)),
                    _ = sleep => Some(Input::Tick),
                };
                if let Some(input) = input {
                    self.step(input);
                }
            }
        }
        .instrument(span)
        .await
    }

    fn input_of_ctl(&mut self, c: Ctl) -> Option<Input> {
        Some(match c {
            Ctl::Cancel => Input::Cancel,
            Ctl::Timeout { tx } => {
                let branch = self.by_tx.remove(&tx)?;
                self.by_branch.remove(&branch);
                self.routes.client_done(tx);
                Input::ClientTimeout { branch }
            }
            Ctl::AckTimeout => Input::AckTimeout,
            Ctl::Shutdown => Input::Shutdown,
            Ctl::Remove => Input::Remove,
            Ctl::Acd(cmd) => Input::Acd(*cmd),
        })
    }

    fn input_of_net(&mut self, n: NetMsg) -> Input {
        match n {
            NetMsg::Request { req, tx } => Input::Request { req: *req, tx },
            NetMsg::Ack { req } => Input::Ack { req: *req },
            NetMsg::Response { resp, tx } => {
                // A final answer ends the client transaction, after this
                // step (which may still hand it the ACK of a failure).
                if let Some(tx) = tx
                    && resp.status().unwrap_or(0) >= 200
                {
                    self.finishing.push(tx);
                }
                Input::Response { resp: *resp }
            }
        }
    }

    /// One input through the core, and every output carried out; an output
    /// that fails at once (a request that cannot be sent) becomes the next
    /// input in the same turn.
    fn step(&mut self, input: Input) {
        let mut pending = VecDeque::from([input]);
        while let Some(input) = pending.pop_front() {
            for out in self.core.handle(input, Now::system()) {
                if let Some(next) = self.exec(out) {
                    pending.push_back(next);
                }
            }
        }
        for tx in std::mem::take(&mut self.finishing) {
            if let Some(branch) = self.by_tx.remove(&tx) {
                self.by_branch.remove(&branch);
            }
            self.routes.client_done(tx);
        }
    }

    fn exec(&mut self, out: Output) -> Option<Input> {
        match out {
            Output::Respond {
                tx,
                status,
                bytes,
                invite_2xx,
            } => self.ep.respond(tx, status, bytes, invite_2xx),
            Output::Request {
                peer,
                method,
                branch,
                bytes,
            } => match self.ep.request(peer, &method, &branch, bytes) {
                Some(tx) => {
                    self.routes.client_started(tx, self.core.id());
                    self.by_tx.insert(tx, branch.clone());
                    self.by_branch.insert(branch, tx);
                }
                None => return Some(Input::SendFailed { branch }),
            },
            Output::AckFailure { branch, bytes } => {
                if let Some(&tx) = self.by_branch.get(&branch) {
                    self.ep.client_ack(tx, bytes);
                }
            }
            Output::Raw { peer, bytes } => self.ep.send_raw(&peer, bytes),
            Output::Media(cmd) => self.media(cmd),
            Output::Acd(ev) => {
                if let Some(acd) = &self.svc.acd {
                    acd.call_event(ev);
                }
            }
            Output::AcdAttach { call_id, caller } => {
                if let Some(acd) = &self.svc.acd {
                    acd.attach(self.core.id(), &call_id, &caller, self.ctl.clone());
                }
            }
            Output::AcdDetach => {
                if let Some(acd) = &self.svc.acd {
                    acd.detach(self.core.id());
                }
            }
            // A full records buffer is counted by the sink.
            Output::Cdr(cdr) => {
                let _ = self.svc.records.cdr(*cdr);
            }
            Output::QueueEvent(ev) => {
                let _ = self.svc.records.queue_event(*ev);
            }
            Output::RouteDialog { call_id, local_tag } => self
                .routes
                .route_dialog((call_id, local_tag), self.core.id()),
            Output::ForgetDialog { call_id, local_tag } => {
                self.routes.forget_dialog(&(call_id, local_tag))
            }
            Output::InviteAnswered => self.routes.invite_answered(self.invite_tx),
            Output::View(v) => {
                let mut view = self.view.lock().unwrap_or_else(|p| p.into_inner());
                if view.state != v.state {
                    metrics::gauge!(m::CALLS_ACTIVE, "state" => state_label(view.state))
                        .decrement(1.0);
                    metrics::gauge!(m::CALLS_ACTIVE, "state" => state_label(v.state))
                        .increment(1.0);
                }
                *view = v;
            }
            Output::Figure(f) => record_figure(&f),
            Output::Done => {
                let state = self.view.lock().unwrap_or_else(|p| p.into_inner()).state;
                let clients: Vec<TxId> = self.by_tx.keys().copied().collect();
                self.routes
                    .forget_call(self.core.id(), &self.key, self.invite_tx, &clients);
                metrics::gauge!(m::CALLS_ACTIVE, "state" => state_label(state)).decrement(1.0);
            }
        }
        None
    }

    fn media(&self, cmd: MediaCmd) {
        let media = &self.svc.media;
        match cmd {
            MediaCmd::Start { leg, params, srtp } => {
                media.start_leg_secure(leg, params, srtp, self.media_events.clone())
            }
            MediaCmd::Update { leg, params, srtp } => media.update_secure(leg, params, srtp),
            MediaCmd::Play { leg, prompts, opts } => media.play(leg, prompts, opts),
            MediaCmd::StopPlayback { leg } => media.stop_playback(leg),
            MediaCmd::Bridge { a, b } => media.bridge(a, b),
            MediaCmd::Unbridge { leg } => media.unbridge(leg),
            MediaCmd::Release { leg } => media.release(leg),
            MediaCmd::RecordStart {
                file,
                call_id,
                queue,
                caller,
                operator,
            } => {
                let Some(rec) = &self.svc.recorder else {
                    return;
                };
                let meta = crate::media::record::RecordingMeta {
                    call_id,
                    queue,
                    started_at: chrono::Utc::now(),
                };
                if let Some((left, right)) = rec.begin(&file, meta) {
                    media.tap(caller, Some(left));
                    media.tap(operator, Some(right));
                }
            }
            MediaCmd::RecordPause { file } => {
                if let Some(rec) = &self.svc.recorder {
                    rec.pause(&file);
                }
            }
            MediaCmd::RecordResume { file } => {
                if let Some(rec) = &self.svc.recorder {
                    rec.resume(&file);
                }
            }
            MediaCmd::RecordStop { file } => {
                if let Some(rec) = &self.svc.recorder {
                    rec.close(&file);
                }
            }
        }
    }
}

/// A call's figure as the metrics say it.
fn record_figure(f: &Figure) {
    match f {
        Figure::NoRtpPort => {
            metrics::counter!(m::SIP_OVERLOAD_REJECTIONS_TOTAL, "reason" => "rtp_ports")
                .increment(1)
        }
        Figure::AnswerDelay(d) => {
            metrics::histogram!(m::CALL_ANSWER_DELAY_SECONDS).record(d.as_secs_f64())
        }
        Figure::RtpTimeout => metrics::counter!(m::RTP_TIMEOUTS_TOTAL).increment(1),
        Figure::SessionRefreshed { by_us } => metrics::counter!(
            m::SESSION_REFRESHES_TOTAL,
            "by" => if *by_us { "gateway" } else { "carrier" }
        )
        .increment(1),
        Figure::Transfer { target, result } => metrics::counter!(
            m::OPERATOR_TRANSFERS_TOTAL,
            "target" => *target,
            "result" => *result
        )
        .increment(1),
        Figure::InfoDigit => {
            metrics::counter!(m::DTMF_DIGITS_TOTAL, "method" => "sip_info").increment(1)
        }
        Figure::Ended {
            seconds,
            result,
            reason,
        } => {
            metrics::histogram!(m::CALL_DURATION_SECONDS).record(*seconds);
            metrics::counter!(m::CALLS_ENDED_TOTAL, "result" => *result, "reason" => *reason)
                .increment(1);
        }
        Figure::Ivr {
            plan,
            count,
            node,
            n,
        } => crate::ops::figures::record_ivr(plan, *count, node, *n),
    }
}
