//! The call room: one call end to end, the B2BUA that ties the trunk leg, the
//! IVR, the queue and the operator leg.
//!
//! - [`core`]: the call itself, a sans-I/O state machine (`handle(input,
//!   now) -> outputs`, `poll_timeout`) with its state in parts (trunk leg,
//!   outgoing legs, IVR, queue part, record); unit-tested in virtual time.
//! - [`driver`]: the thin tokio task around one core.
//! - [`routes`]: the one owner of routing (dialogs, INVITE and client
//!   transactions → call), and the call's two inboxes (network, bounded;
//!   the gateway's own events, lossless).
//! - [`Router`] (here): the SIP endpoint's transaction user. It admits or
//!   refuses new INVITEs (403 for strangers, 404 for numbers no plan
//!   answers, 503 with Retry-After when full, draining or behind), answers
//!   REGISTER and feature codes through the operator registry
//!   ([`queue::Operators`]), and hands every other message to the call
//!   [`routes`] names.
//! - [`queue`]: the ACD's task and the operator registry; [`admin`]: the
//!   views the admin API shows.
//!
//! This room orchestrates; decisions live in `dialplan` and `acd`.

pub mod admin;
pub mod core;
pub mod driver;
pub mod feature;
pub mod gateway;
pub mod load;
pub mod places;
pub mod queue;
pub mod routes;
pub mod supervise;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::acd::AcdEvent;
use crate::config::{Config, TrunkConfig};
use crate::dialplan::{Diagnostic, DialplanStore, Dialplans};
use crate::media::{MediaEngine, PromptLibrary};
use crate::ops::http::{AdminError, CallState, CallView, OperatorView, QueueView, RemovedCaller};
use crate::ops::metrics as m;
use crate::ops::records::{Cdr, Disposition, HangupSide, QueueEvent, RecordSink};
use crate::sip::endpoint::{Endpoint, SipEvent, TransactionUser};
use crate::sip::transaction::TxId;
use crate::sip::transport::Peer;
use crate::sip::{Message, Method, new_tag, response_to};

/// Everything calls share.
pub struct Services {
    pub media: MediaEngine,
    /// Swapped with the plans on reload; a call holds the prompts it plays.
    pub prompts: RwLock<Arc<PromptLibrary>>,
    /// Makes a reload's swap of plans and prompts one step for new calls.
    pub swap: RwLock<()>,
    pub plans: DialplanStore,
    /// What every call shares: codecs, media address, ringing, hold music.
    pub call: Arc<core::CallConfig>,
    /// Where call records go; never blocks (a full buffer is counted).
    pub records: RecordSink,
    /// The queue engine; None when the config has no queues.
    pub acd: Option<queue::AcdHandle>,
    pub operators: Option<Arc<queue::Operators>>,
    /// Where transfers to SIP URIs are sent (the carrier's proxy); None:
    /// only URIs with an IP address can be reached.
    pub transfer_proxy: Option<String>,
    /// Per-source limits, blocks and password-guessing limits.
    pub guard: Arc<crate::sip::guard::Guard>,
    /// Queue places held per calling number.
    pub places: places::CallerPlaces,
    /// Writes call recordings; None when its directory could not be made.
    pub recorder: Option<Arc<crate::media::record::Recorder>>,
    /// `[recording.queues]`: which share of each queue's calls is recorded.
    pub record_queues: std::collections::BTreeMap<String, crate::config::RecordShare>,
}

impl Services {
    pub fn plans(&self) -> Arc<Dialplans> {
        self.plans.current()
    }

    pub fn prompts(&self) -> Arc<PromptLibrary> {
        self.prompts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reloads prompts and plans together: a plan may name new prompts. A
    /// plan set with errors is refused and both stay as they were.
    pub fn reload(&self) -> Result<Vec<Diagnostic>, Vec<Diagnostic>> {
        let dir = self.plans.current().dir().join("prompts");
        let library = PromptLibrary::load_dir(&dir);
        // New calls take plans and prompts under the read side of this lock,
        // so none can see a new plan with the old recordings.
        let _swap = self.swap.write().unwrap_or_else(|p| p.into_inner());
        let warnings = self.plans.reload()?;
        // Series of plans or nodes the reload removed leave /metrics.
        crate::ops::metrics::set_scope_plans(plan_nodes(&self.plans.current()));
        match library {
            Ok(lib) => *self.prompts.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(lib),
            Err(e) => warn!(error = %e, "prompts not reloaded, the previous ones stay"),
        }
        // Asterisk's CONFIGRELOAD: reports tell figures before and after a
        // change of plans apart.
        self.records
            .queue_event(QueueEvent::config_reload(chrono::Utc::now()));
        Ok(warnings)
    }
}

/// Plan name → its node names: the `plan` and `node` label values the
/// metrics show.
pub(crate) fn plan_nodes(
    plans: &Dialplans,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    plans
        .plans()
        .iter()
        .map(|p| (p.name.clone(), p.nodes.keys().cloned().collect()))
        .collect()
}

pub use routes::SharedView;

pub struct Router {
    pub services: Arc<Services>,
    trunks: TrunkConfig,
    max_calls: usize,
    max_cps: u32,
    /// Which call owns which dialog and transaction.
    pub routes: Arc<routes::Routes>,
    draining: AtomicBool,
    next_call: AtomicU64,
    cps_window: Mutex<(Instant, u32)>,
    /// Refuses new calls while the media clock or signalling runs behind.
    pub load: load::LoadGuard,
    queue_cfgs: Vec<crate::acd::QueueConfig>,
    /// Feature codes operators dial: number → action.
    features: Vec<(String, queue::Feature)>,
    /// Samples the log line of refused non-trunk INVITEs.
    stranger_log: Mutex<LogSampler>,
}

impl Router {
    pub fn new(cfg: &Config, services: Arc<Services>) -> Arc<Router> {
        Arc::new(Router {
            services,
            trunks: cfg.trunks.clone(),
            max_calls: cfg.sip.max_calls,
            max_cps: cfg.sip.max_cps,
            routes: Arc::new(routes::Routes::default()),
            draining: AtomicBool::new(false),
            next_call: AtomicU64::new(1),
            cps_window: Mutex::new((Instant::now(), 0)),
            load: load::LoadGuard::new(
                cfg.sip.overload_media_late_ms > 0,
                Duration::from_millis(cfg.sip.overload_signalling_lag_ms),
                Instant::now(),
            ),
            queue_cfgs: cfg.queues.clone(),
            features: vec![
                (cfg.calls.pause_code.clone(), queue::Feature::Pause),
                (cfg.calls.unpause_code.clone(), queue::Feature::Unpause),
            ],
            stranger_log: Mutex::new(LogSampler::new(Duration::from_secs(1))),
        })
    }

    /// Calls from the trunk in progress (operator legs are not counted).
    pub fn active_calls(&self) -> usize {
        self.routes.len()
    }

    /// Stops admitting calls; those in progress go on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Asks every call to end (BYE) — used on shutdown.
    pub fn hang_up_all(&self) {
        for call in self.routes.all() {
            let _ = call.ctl.send(routes::Ctl::Shutdown);
        }
    }

    fn reject(
        &self,
        ep: &Arc<Endpoint>,
        req: &Message,
        tx: TxId,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        let mut b = response_to(req, status, reason)
            .to_tag(&new_tag())
            .header("Server", &ep.user_agent);
        for (k, v) in extra {
            b = b.header(k, v);
        }
        ep.respond(tx, status, b.build(), None);
        let result = match status {
            503 => "overloaded",
            403 => "forbidden",
            404 => "not_found",
            488 => "not_acceptable",
            _ => "rejected",
        };
        if req.method() == Some(&Method::Invite)
            && req.to().map(|t| t.tag().is_none()).unwrap_or(false)
        {
            metrics::counter!(m::CALLS_ENDED_TOTAL, "result" => "rejected", "reason" => result)
                .increment(1);
            let now = chrono::Utc::now();
            self.services.records.cdr(Cdr {
                call_id: req.call_id().unwrap_or("").to_owned(),
                start: now,
                answer: None,
                end: now,
                caller: req.from().map(|f| f.uri.to_string()).unwrap_or_default(),
                called: called_number(req),
                plan: None,
                plan_path: Vec::new(),
                queue: None,
                wait_ms: None,
                operator: None,
                talk_ms: None,
                disposition: Disposition::Rejected,
                hangup_side: HangupSide::Gateway,
                hangup_cause: status.to_string(),
                recording: None,
                transferred_by: None,
            });
        }
    }

    /// 403 to an INVITE whose source is not a trunk. It never was a call:
    /// no CDR (a flood of them would fill the disk), not in the call
    /// counters; it is counted in `conmutador_sip_foreign_invites_total` and
    /// logged at most once a second with the number of refusals not logged.
    fn refuse_stranger(&self, ep: &Arc<Endpoint>, req: &Message, tx: TxId, peer: Peer) {
        let b = response_to(req, 403, "Forbidden")
            .to_tag(&new_tag())
            .header("Server", &ep.user_agent);
        ep.respond(tx, 403, b.build(), None);
        metrics::counter!(m::SIP_FOREIGN_INVITES_TOTAL).increment(1);
        let suppressed = self
            .stranger_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(Instant::now());
        if let Some(suppressed) = suppressed {
            warn!(from = %peer.addr, suppressed, "INVITE from a source that is not a trunk refused (403); `suppressed` more were not logged in the last second");
        }
    }

    fn cps_exceeded(&self) -> bool {
        if self.max_cps == 0 {
            return false;
        }
        let mut w = self.cps_window.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now.duration_since(w.0) >= Duration::from_secs(1) {
            *w = (now, 0);
        }
        w.1 += 1;
        w.1 > self.max_cps
    }

    fn new_invite(&self, ep: &Arc<Endpoint>, req: Message, tx: TxId, peer: Peer) {
        // Feature codes are reserved for operators whatever the source
        // address: who dials one is decided by the digest credentials of
        // the operator named in From (407), so a phone inside a trunk
        // network can pause itself, and a trunk caller cannot pause anyone
        // (nor learn which operator names exist: all get the challenge).
        // Without operators the codes mean nothing and the plan has them.
        let called = called_number(&req);
        let has_operators = self
            .services
            .operators
            .as_ref()
            .is_some_and(|ops| !ops.is_empty());
        if let Some(feature) = self
            .features
            .iter()
            .find(|(c, _)| has_operators && *c == called)
            .map(|(_, f)| *f)
        {
            return self.feature_code(ep, req, tx, peer, feature);
        }
        if !self.trunks.allows(peer.addr.ip()) {
            // A scanner keeps doing this: enough refusals block the source.
            self.services.guard.refused_stranger(peer.addr.ip());
            return self.refuse_stranger(ep, &req, tx, peer);
        }
        metrics::counter!(m::CALLS_STARTED_TOTAL).increment(1);
        let retry = [("Retry-After", ep.retry_after().to_string())];
        let refusal = if self.is_draining() {
            Some("draining")
        } else if self.active_calls() >= self.max_calls {
            Some("calls")
        } else if let Some(behind) = self
            .load
            .refusal(self.services.media.behind_share(), Instant::now())
        {
            Some(behind)
        } else if self
            .services
            .acd
            .as_ref()
            .is_some_and(|acd| acd.backlogged())
        {
            // The queues are behind: a new caller waits at the door, the
            // calls in progress lose nothing.
            Some("acd_backlog")
        } else if self.cps_exceeded() {
            Some("cps")
        } else {
            None
        };
        if let Some(reason) = refusal {
            metrics::counter!(m::SIP_OVERLOAD_REJECTIONS_TOTAL, "reason" => reason).increment(1);
            return self.reject(ep, &req, tx, 503, "Service Unavailable", &retry);
        }
        let swap_guard = self.services.swap.read().unwrap_or_else(|p| p.into_inner());
        let plans = self.services.plans();
        let Some(plan) = plans.route(&called) else {
            return self.reject(ep, &req, tx, 404, "Not Found", &[]);
        };
        let Ok(call_id) = req.call_id().map(str::to_owned) else {
            return self.reject(ep, &req, tx, 400, "Missing Call-ID", &[]);
        };
        let local_tag = new_tag();
        let caller = req.from().map(|f| f.uri.to_string()).unwrap_or_default();
        let now = core::Now::system();
        let view = Arc::new(Mutex::new(CallView {
            call_id: call_id.clone(),
            caller,
            called: called.clone(),
            state: CallState::Ivr,
            started_at: now.wall,
            queue: None,
            operator: None,
            node: None,
        }));
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (net_tx, net_rx) = mpsc::channel(routes::NET_INBOX);
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (media_tx, media_rx) = mpsc::channel(64);
        self.routes.admit(
            routes::CallHandle {
                id,
                net: net_tx,
                ctl: ctl_tx.clone(),
                view: view.clone(),
            },
            (call_id.clone(), local_tag.clone()),
            tx,
        );
        metrics::gauge!(m::CALLS_ACTIVE, "state" => "ivr").increment(1.0);
        info!(call = id, %call_id, from = %peer.addr, called = %called, "new call");
        let setup = core::Setup {
            id,
            env: driver::ShellEnv {
                ep: ep.clone(),
                svc: self.services.clone(),
            },
            cfg: self.services.call.clone(),
            invite: req,
            invite_tx: tx,
            peer,
            local_tag,
            plan,
            called,
            prompts: self.services.prompts(),
            now,
        };
        drop(swap_guard);
        let driver = driver::Driver::new(
            setup,
            ep.clone(),
            self.services.clone(),
            self.routes.clone(),
            view,
            ctl_tx,
            media_tx,
        );
        tokio::spawn(driver.run(
            driver::Inboxes {
                net: net_rx,
                ctl: ctl_rx,
            },
            media_rx,
        ));
    }

    pub fn call_views(&self) -> Vec<CallView> {
        self.routes.views()
    }

    pub async fn queue_views(&self) -> Vec<QueueView> {
        let Some(acd) = &self.services.acd else {
            return Vec::new();
        };
        let queues = acd.queues().await;
        let calls: HashMap<u64, CallView> = self.call_views_by_id();
        queues
            .into_iter()
            .map(|q| {
                let threshold = self
                    .queue_cfgs
                    .iter()
                    .find(|c| c.name == q.name)
                    .map(|c| c.service_level_threshold.as_secs_f64())
                    .unwrap_or(0.0);
                admin::queue_view(q, &calls, threshold)
            })
            .collect()
    }

    pub async fn operator_views(&self) -> Vec<OperatorView> {
        let Some(acd) = &self.services.acd else {
            return Vec::new();
        };
        let ops = acd.operators().await;
        let calls = self.call_views_by_id();
        let now = Instant::now();
        ops.into_iter()
            .map(|o| admin::operator_view(o, &calls, now))
            .collect()
    }

    async fn operator_view(&self, id: &str) -> Result<OperatorView, AdminError> {
        self.operator_views()
            .await
            .into_iter()
            .find(|o| o.id == id)
            .ok_or_else(|| AdminError::NotFound(format!("no operator {id:?}")))
    }

    pub async fn pause_operator(
        &self,
        id: &str,
        reason: Option<String>,
    ) -> Result<OperatorView, AdminError> {
        self.operator_view(id).await?;
        if let Some(acd) = &self.services.acd {
            let reason = reason.unwrap_or_else(|| "admin".into());
            acd.event(AcdEvent::Pause {
                op: id.to_owned(),
                reason,
            });
        }
        self.operator_view(id).await
    }

    pub async fn unpause_operator(&self, id: &str) -> Result<OperatorView, AdminError> {
        self.operator_view(id).await?;
        if let Some(acd) = &self.services.acd {
            acd.event(AcdEvent::Unpause { op: id.to_owned() });
        }
        self.operator_view(id).await
    }

    pub async fn logout_operator(&self, id: &str) -> Result<OperatorView, AdminError> {
        self.operator_view(id).await?;
        if let Some(acd) = &self.services.acd {
            acd.event(AcdEvent::OperatorOffline { op: id.to_owned() });
        }
        self.operator_view(id).await
    }

    /// Logs an operator in from the API. It must have a phone to ring (a
    /// registered one or a static URI): an operator logged in without one
    /// would look available and take no call.
    pub async fn login_operator(&self, id: &str) -> Result<OperatorView, AdminError> {
        self.operator_view(id).await?;
        let has_phone = self
            .services
            .operators
            .as_ref()
            .is_some_and(|ops| ops.has_phone(id));
        if !has_phone {
            return Err(AdminError::Conflict(format!(
                "operator {id:?} has no registered phone and no static_uri"
            )));
        }
        if let Some(acd) = &self.services.acd {
            acd.event(AcdEvent::OperatorOnline { op: id.to_owned() });
        }
        self.operator_view(id).await
    }

    /// Takes a waiting caller out of a queue (they hear the plan's
    /// goodbye): the call is hung up and counted as removed by an admin.
    pub fn remove_caller(&self, queue: &str, call_id: &str) -> Result<RemovedCaller, AdminError> {
        let call = self.routes.all().into_iter().find(|c| {
            let v = c.view.lock().unwrap_or_else(|p| p.into_inner());
            v.call_id == call_id
                && v.queue.as_deref() == Some(queue)
                && v.state != CallState::Bridged
        });
        match call {
            Some(call) => {
                let _ = call.ctl.send(routes::Ctl::Remove);
                Ok(RemovedCaller {
                    queue: queue.to_owned(),
                    call_id: call_id.to_owned(),
                })
            }
            None => Err(AdminError::NotFound(format!(
                "no caller {call_id:?} waiting in queue {queue:?}"
            ))),
        }
    }

    fn call_views_by_id(&self) -> HashMap<u64, CallView> {
        self.routes.views_by_id()
    }

    /// REGISTER from an operator's phone: digest-authenticated bindings.
    fn register(&self, ep: &Arc<Endpoint>, req: &Message, tx: TxId, peer: Peer) {
        let Some(ops) = &self.services.operators else {
            return self.reject(ep, req, tx, 403, "Forbidden", &[]);
        };
        self.answer_auth(ep, req, tx, peer, ops.register(req, peer));
    }

    /// Sends what the operator registry decided: a challenge, 200 with the
    /// bindings, or a refusal.
    fn answer_auth(
        &self,
        ep: &Arc<Endpoint>,
        req: &Message,
        tx: TxId,
        peer: Peer,
        outcome: queue::RegisterOutcome,
    ) {
        let base = |status: u16, reason: &str| {
            response_to(req, status, reason)
                .via_received(peer.addr)
                .to_tag(&new_tag())
                .header("Server", ep.user_agent.clone())
        };
        let (outcome, delay) = match outcome {
            queue::RegisterOutcome::Delayed { delay, then } => (*then, Some(delay)),
            o => (o, None),
        };
        let (status, bytes) = match outcome {
            // Only one level is ever built; a nested one answers at once.
            queue::RegisterOutcome::Delayed { then, .. } => {
                return self.answer_auth(ep, req, tx, peer, *then);
            }
            queue::RegisterOutcome::Challenge(values) => {
                let mut b = base(401, "Unauthorized");
                for v in values {
                    b = b.header("WWW-Authenticate", v);
                }
                (401, b.build())
            }
            queue::RegisterOutcome::ProxyChallenge(values) => {
                let mut b = base(407, "Proxy Authentication Required");
                for v in values {
                    b = b.header("Proxy-Authenticate", v);
                }
                (407, b.build())
            }
            queue::RegisterOutcome::Ok { contacts } => {
                let mut b = base(200, "OK");
                for c in contacts {
                    b = b.header("Contact", c);
                }
                (200, b.build())
            }
            queue::RegisterOutcome::Refused {
                status,
                reason,
                headers,
            } => {
                let mut b = base(status, reason);
                for (k, v) in headers {
                    b = b.header(k, v);
                }
                (status, b.build())
            }
        };
        match delay {
            // The transaction absorbs the phone's retransmissions meanwhile.
            Some(d) => {
                let ep = ep.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    ep.respond(tx, status, bytes, None);
                });
            }
            None => ep.respond(tx, status, bytes, None),
        }
    }

    /// An operator dialled a feature code: authenticate (407), apply it,
    /// and confirm with a short tone.
    fn feature_code(
        &self,
        ep: &Arc<Endpoint>,
        req: Message,
        tx: TxId,
        peer: Peer,
        feature: queue::Feature,
    ) {
        let Some(ops) = &self.services.operators else {
            return self.refuse_stranger(ep, &req, tx, peer);
        };
        let user = req
            .from()
            .ok()
            .and_then(|f| f.uri.user().map(str::to_owned))
            .unwrap_or_default();
        match ops.authenticate(&req, &user, "Proxy-Authorization", peer) {
            Ok(op) => {
                ops.feature(&op, feature);
                tokio::spawn(feature::confirm_feature(
                    ep.clone(),
                    self.services.clone(),
                    req,
                    tx,
                    peer,
                ));
            }
            Err(outcome) => self.answer_auth(ep, &req, tx, peer, outcome),
        }
    }
}

impl TransactionUser for Router {
    fn on_event(&self, ep: &Arc<Endpoint>, ev: SipEvent) {
        match ev {
            SipEvent::Request { req, tx, peer } => {
                let method = req
                    .method()
                    .cloned()
                    .unwrap_or(Method::Extension(String::new()));
                let to_tag = req.to().ok().and_then(|t| t.tag().map(str::to_owned));
                if to_tag.is_none() {
                    return match method {
                        Method::Invite => self.new_invite(ep, req, tx, peer),
                        Method::Register => self.register(ep, &req, tx, peer),
                        Method::Bye | Method::Info | Method::Update => {
                            self.reject(ep, &req, tx, 481, "Call/Transaction Does Not Exist", &[])
                        }
                        _ => self.reject(
                            ep,
                            &req,
                            tx,
                            405,
                            "Method Not Allowed",
                            &[("Allow", crate::sip::endpoint::ALLOW.to_owned())],
                        ),
                    };
                }
                let call_id = req.call_id().unwrap_or("");
                match self.routes.by_dialog(call_id, to_tag.as_deref()) {
                    // A full network inbox drops the request; the peer
                    // retransmits it.
                    Some(call) => {
                        let _ = call.net.try_send(routes::NetMsg::Request {
                            req: Box::new(req),
                            tx,
                        });
                    }
                    None => self.reject(ep, &req, tx, 481, "Call/Transaction Does Not Exist", &[]),
                }
            }
            SipEvent::Ack { req, .. } => {
                let tag = req.to().ok().and_then(|t| t.tag().map(str::to_owned));
                let call_id = req.call_id().unwrap_or("");
                if let Some(call) = self.routes.by_dialog(call_id, tag.as_deref()) {
                    let _ = call
                        .net
                        .try_send(routes::NetMsg::Ack { req: Box::new(req) });
                }
            }
            SipEvent::Cancel { invite_tx } => {
                if let Some(call) = self.routes.by_invite(invite_tx) {
                    let _ = call.ctl.send(routes::Ctl::Cancel);
                }
            }
            SipEvent::Response { resp, tx } => {
                if let (Some(ops), Some(tx)) = (&self.services.operators, tx)
                    && ops.is_ping(tx)
                {
                    if resp.status().unwrap_or(0) >= 200 {
                        ops.ping_answered(tx);
                    }
                    return;
                }
                let tag = resp.from().ok().and_then(|f| f.tag().map(str::to_owned));
                let call_id = resp.call_id().unwrap_or("");
                if let Some(call) = self.routes.by_dialog(call_id, tag.as_deref()) {
                    let _ = call.net.try_send(routes::NetMsg::Response {
                        resp: Box::new(resp),
                        tx,
                    });
                }
            }
            SipEvent::Timeout { tx } => {
                if let Some(ops) = &self.services.operators
                    && ops.ping_timed_out(tx)
                {
                    return;
                }
                if let Some(call) = self.routes.by_client(tx) {
                    let _ = call.ctl.send(routes::Ctl::Timeout { tx });
                }
            }
            SipEvent::AckTimeout { call_id, .. } => {
                if let Some(call) = self.routes.by_dialog(&call_id, None) {
                    let _ = call.ctl.send(routes::Ctl::AckTimeout);
                }
            }
        }
    }
}

/// Lets one log line through per `period` and counts the ones it held back,
/// so a flood from the network cannot flood the log.
#[derive(Debug)]
pub(crate) struct LogSampler {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogSampler {
    pub(crate) fn new(period: Duration) -> Self {
        Self {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)`: log now, mentioning the `n` events held back since the
    /// last line; `None`: stay quiet (the event is counted).
    pub(crate) fn admit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.period => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

pub use feature::parse_dtmf_relay;

/// The number the caller dialled: the Request-URI user part, else the To user.
pub fn called_number(req: &Message) -> String {
    use crate::sip::uri::Uri;
    let user = |u: &Uri| match u {
        Uri::Sip(s) => s.user.clone(),
        Uri::Tel(t) => Some(t.number.clone()),
        Uri::Other(_) => None,
    };
    req.request_uri()
        .and_then(user)
        .or_else(|| req.to().ok().and_then(|t| user(&t.uri)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sampler_lets_one_line_a_period_through_and_counts_the_rest() {
        let t0 = Instant::now();
        let mut s = LogSampler::new(Duration::from_secs(1));
        assert_eq!(s.admit(t0), Some(0));
        let quiet = (1..=2999)
            .filter_map(|i| s.admit(t0 + Duration::from_micros(i * 300)))
            .count();
        assert_eq!(quiet, 0, "3,000 events within 0.9 s: one line only");
        assert_eq!(s.admit(t0 + Duration::from_secs(1)), Some(2999));
        assert_eq!(s.admit(t0 + Duration::from_millis(1500)), None);
        assert_eq!(s.admit(t0 + Duration::from_secs(3)), Some(1));
    }
}
