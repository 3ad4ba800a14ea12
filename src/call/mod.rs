//! The call room: one call end to end, the B2BUA that ties the trunk leg, the
//! IVR, the queue and the operator leg.
//!
//! [`Router`] is the SIP endpoint's transaction user: it admits or refuses new
//! INVITEs (403 for strangers, 404 for numbers no plan answers, 488 for no
//! common codec, 503 with Retry-After when full or draining), and routes
//! in-dialog requests to the call that owns the dialog. Each admitted call
//! runs as its own task ([`session`]) that turns SIP, media and timer events
//! into interpreter events, and interpreter commands into media and SIP
//! actions. This room orchestrates; decisions live in `dialplan` and `acd`.

pub mod admin;
pub mod gateway;
pub mod load;
pub mod places;
pub mod queue;
pub mod session;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
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
use crate::sdp::Codec;
use crate::sip::endpoint::{Endpoint, SipEvent, TransactionUser};
use crate::sip::transaction::TxId;
use crate::sip::transport::Peer;
use crate::sip::{Message, Method, new_tag, response_to};

/// Messages a call task receives from the router.
#[derive(Debug)]
pub enum CallMsg {
    Request {
        req: Message,
        tx: TxId,
        peer: Peer,
    },
    Ack {
        req: Message,
    },
    Cancel,
    Response {
        resp: Message,
        tx: Option<TxId>,
    },
    Timeout {
        tx: TxId,
    },
    AckTimeout,
    /// The gateway is shutting down: end the call politely.
    Shutdown,
    /// An admin removed this caller from its queue (admin API).
    Remove,
    /// A decision of the ACD for this caller.
    Acd(crate::acd::AcdCommand),
}

/// How deep a call's inbox may grow; a peer flooding one dialog loses
/// messages (retransmissions recover them) instead of growing memory.
const CALL_INBOX: usize = 64;

/// Everything calls share.
pub struct Services {
    pub media: MediaEngine,
    /// Swapped with the plans on reload; a call holds the prompts it plays.
    pub prompts: RwLock<Arc<PromptLibrary>>,
    /// Makes a reload's swap of plans and prompts one step for new calls.
    pub swap: RwLock<()>,
    pub plans: DialplanStore,
    pub codecs: Vec<Codec>,
    pub media_ip: IpAddr,
    pub ring_delay: Duration,
    /// Where call records go; never blocks (a full buffer is counted).
    pub records: RecordSink,
    /// The queue engine; None when the config has no queues.
    pub acd: Option<queue::AcdHandle>,
    pub operators: Option<Arc<queue::Operators>>,
    /// Played while waiting when the plan ships no `musica_espera` prompt.
    pub hold_music: Arc<crate::media::Prompt>,
    /// Where transfers to SIP URIs are sent (the carrier's proxy); None:
    /// only URIs with an IP address can be reached.
    pub transfer_proxy: Option<std::net::SocketAddr>,
    /// Per-source limits, blocks and password-guessing limits.
    pub guard: Arc<crate::sip::guard::Guard>,
    /// Queue places held per calling number.
    pub places: places::CallerPlaces,
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

/// A call's entry in the admin API, updated by its task.
pub type SharedView = Arc<Mutex<CallView>>;

#[derive(Default)]
struct Table {
    /// Dialog (Call-ID, our tag) → the call's inbox.
    dialogs: HashMap<(String, String), mpsc::Sender<CallMsg>>,
    /// What the admin API shows of each call; the call task keeps it current.
    views: HashMap<(String, String), SharedView>,
    /// INVITE server transaction → dialog, until the INVITE is answered.
    invites: HashMap<TxId, (String, String)>,
    /// Call-ID → our tag, to match ACK timeouts and requests without tags.
    by_call_id: HashMap<String, String>,
    /// The ACD's number for a call → its dialog.
    ids: HashMap<u64, (String, String)>,
}

pub struct Router {
    pub services: Arc<Services>,
    trunks: TrunkConfig,
    max_calls: usize,
    max_cps: u32,
    table: Mutex<Table>,
    draining: AtomicBool,
    next_call: AtomicU64,
    cps_window: Mutex<(Instant, u32)>,
    /// Refuses new calls while the media clock or signalling runs behind.
    pub load: load::LoadGuard,
    me: std::sync::Weak<Router>,
    queue_cfgs: Vec<crate::acd::QueueConfig>,
    /// Feature codes operators dial: number → action.
    features: Vec<(String, queue::Feature)>,
    /// Samples the log line of refused non-trunk INVITEs.
    stranger_log: Mutex<LogSampler>,
}

impl Router {
    pub fn new(cfg: &Config, services: Arc<Services>) -> Arc<Router> {
        Arc::new_cyclic(|me| Router {
            services,
            trunks: cfg.trunks.clone(),
            max_calls: cfg.sip.max_calls,
            max_cps: cfg.sip.max_cps,
            table: Mutex::new(Table::default()),
            draining: AtomicBool::new(false),
            next_call: AtomicU64::new(1),
            cps_window: Mutex::new((Instant::now(), 0)),
            load: load::LoadGuard::new(
                cfg.sip.overload_media_late_ms > 0,
                Duration::from_millis(cfg.sip.overload_signalling_lag_ms),
                Instant::now(),
            ),
            me: me.clone(),
            queue_cfgs: cfg.queues.clone(),
            features: vec![
                (cfg.calls.pause_code.clone(), queue::Feature::Pause),
                (cfg.calls.unpause_code.clone(), queue::Feature::Unpause),
            ],
            stranger_log: Mutex::new(LogSampler::new(Duration::from_secs(1))),
        })
    }

    fn self_arc(&self) -> Option<Arc<Router>> {
        self.me.upgrade()
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes the dialog count (trunk calls and operator legs).
    fn dialogs_gauge(t: &Table) {
        metrics::gauge!(m::SIP_DIALOGS_ACTIVE).set(t.dialogs.len() as f64);
    }

    /// Calls from the trunk in progress (operator legs are not counted).
    pub fn active_calls(&self) -> usize {
        self.table().views.len()
    }

    /// Routes an operator leg's dialog to the call that owns it.
    pub(crate) fn attach_leg(&self, key: (String, String), inbox: mpsc::Sender<CallMsg>) {
        let mut t = self.table();
        t.dialogs.insert(key, inbox);
        Self::dialogs_gauge(&t);
    }

    pub(crate) fn forget_leg(&self, key: &(String, String)) {
        let mut t = self.table();
        t.dialogs.remove(key);
        Self::dialogs_gauge(&t);
    }

    /// Keeps `conmutador_calls_active{state}` in step with the calls.
    pub(crate) fn state_changed(&self, from: CallState, to: CallState) {
        if from != to {
            metrics::gauge!(m::CALLS_ACTIVE, "state" => state_label(from)).decrement(1.0);
            metrics::gauge!(m::CALLS_ACTIVE, "state" => state_label(to)).increment(1.0);
        }
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
        let inboxes: Vec<_> = self.table().dialogs.values().cloned().collect();
        for tx in inboxes {
            let _ = tx.try_send(CallMsg::Shutdown);
        }
    }

    /// Called by a call task when it ends.
    pub(crate) fn forget(
        &self,
        id: u64,
        invite_tx: TxId,
        key: &(String, String),
        state: CallState,
    ) {
        let mut t = self.table();
        t.dialogs.remove(key);
        t.views.remove(key);
        // By their own keys: a scan for the dialog's value would cost every
        // ending call a pass over every call in progress.
        t.invites.remove(&invite_tx);
        t.ids.remove(&id);
        Self::dialogs_gauge(&t);
        if t.by_call_id.get(&key.0) == Some(&key.1) {
            t.by_call_id.remove(&key.0);
        }
        metrics::gauge!(m::CALLS_ACTIVE, "state" => state_label(state)).decrement(1.0);
    }

    pub(crate) fn invite_answered(&self, tx: TxId) {
        self.table().invites.remove(&tx);
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

    fn new_invite(self: &Arc<Self>, ep: &Arc<Endpoint>, req: Message, tx: TxId, peer: Peer) {
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
        let key = (call_id.clone(), local_tag.clone());
        let (inbox, rx) = mpsc::channel(CALL_INBOX);
        let caller = req.from().map(|f| f.uri.to_string()).unwrap_or_default();
        let view = Arc::new(Mutex::new(CallView {
            call_id: call_id.clone(),
            caller,
            called: called.clone(),
            state: CallState::Ivr,
            started_at: chrono::Utc::now(),
            queue: None,
            operator: None,
            node: None,
        }));
        {
            let mut t = self.table();
            t.dialogs.insert(key.clone(), inbox);
            t.views.insert(key.clone(), view.clone());
            t.invites.insert(tx, key.clone());
            t.by_call_id.insert(call_id.clone(), local_tag.clone());
            Self::dialogs_gauge(&t);
        }
        metrics::gauge!(m::CALLS_ACTIVE, "state" => "ivr").increment(1.0);
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let own_inbox = {
            let mut t = self.table();
            t.ids.insert(id, key.clone());
            t.dialogs.get(&key).cloned()
        };
        info!(call = id, %call_id, from = %peer.addr, called = %called, "new call");
        let call = session::Call::new(session::CallSetup {
            id,
            ep: ep.clone(),
            router: Arc::downgrade(self),
            services: self.services.clone(),
            invite: req,
            invite_tx: tx,
            peer,
            local_tag,
            plan,
            called,
            view,
            inbox: own_inbox.expect("inserted above under the same key"),
        });
        drop(swap_guard);
        tokio::spawn(call.run(rx));
    }

    pub fn call_views(&self) -> Vec<CallView> {
        let views: Vec<SharedView> = self.table().views.values().cloned().collect();
        views
            .iter()
            .map(|v| v.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
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
        let inbox = {
            let t = self.table();
            t.views
                .iter()
                .find(|(_, v)| {
                    let v = v.lock().unwrap_or_else(|p| p.into_inner());
                    v.call_id == call_id
                        && v.queue.as_deref() == Some(queue)
                        && v.state != CallState::Bridged
                })
                .and_then(|(k, _)| t.dialogs.get(k).cloned())
        };
        match inbox {
            Some(inbox) => {
                let _ = inbox.try_send(CallMsg::Remove);
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
        let t = self.table();
        t.ids
            .iter()
            .filter_map(|(id, k)| {
                let v = t.views.get(k)?;
                Some((*id, v.lock().unwrap_or_else(|p| p.into_inner()).clone()))
            })
            .collect()
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
                tokio::spawn(session::confirm_feature(
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

    fn route_in_dialog(
        &self,
        call_id: &str,
        local_tag: Option<&str>,
    ) -> Option<mpsc::Sender<CallMsg>> {
        let t = self.table();
        let tag = match local_tag {
            Some(t) => t.to_owned(),
            None => t.by_call_id.get(call_id)?.clone(),
        };
        t.dialogs.get(&(call_id.to_owned(), tag)).cloned()
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
                let call_id = req.call_id().unwrap_or("").to_owned();
                if to_tag.is_none() {
                    match method {
                        Method::Invite => {
                            if let Some(me) = self.self_arc() {
                                me.new_invite(ep, req, tx, peer);
                            }
                            return;
                        }
                        Method::Register => return self.register(ep, &req, tx, peer),
                        Method::Bye | Method::Info | Method::Update => {
                            return self.reject(
                                ep,
                                &req,
                                tx,
                                481,
                                "Call/Transaction Does Not Exist",
                                &[],
                            );
                        }
                        _ => {
                            return self.reject(
                                ep,
                                &req,
                                tx,
                                405,
                                "Method Not Allowed",
                                &[("Allow", crate::sip::endpoint::ALLOW.to_owned())],
                            );
                        }
                    }
                }
                match self.route_in_dialog(&call_id, to_tag.as_deref()) {
                    Some(inbox) => {
                        if inbox.try_send(CallMsg::Request { req, tx, peer }).is_err() {
                            // The call is busy or gone; the peer will retransmit.
                        }
                    }
                    None => self.reject(ep, &req, tx, 481, "Call/Transaction Does Not Exist", &[]),
                }
            }
            SipEvent::Ack { req, .. } => {
                let call_id = req.call_id().unwrap_or("").to_owned();
                let tag = req.to().ok().and_then(|t| t.tag().map(str::to_owned));
                if let Some(inbox) = self.route_in_dialog(&call_id, tag.as_deref()) {
                    let _ = inbox.try_send(CallMsg::Ack { req });
                }
            }
            SipEvent::Cancel { invite_tx } => {
                let inbox = {
                    let t = self.table();
                    t.invites
                        .get(&invite_tx)
                        .and_then(|k| t.dialogs.get(k))
                        .cloned()
                };
                if let Some(inbox) = inbox {
                    let _ = inbox.try_send(CallMsg::Cancel);
                }
            }
            SipEvent::Response { resp, tx } => {
                let call_id = resp.call_id().unwrap_or("").to_owned();
                if call_id.starts_with(queue::PING_CALL_ID_PREFIX) {
                    if let (Some(ops), Some(tx)) = (&self.services.operators, tx) {
                        if resp.status().unwrap_or(0) >= 200 {
                            ops.ping_answered(tx);
                        }
                    }
                    return;
                }
                let tag = resp.from().ok().and_then(|f| f.tag().map(str::to_owned));
                if let Some(inbox) = self.route_in_dialog(&call_id, tag.as_deref()) {
                    let _ = inbox.try_send(CallMsg::Response { resp, tx });
                }
            }
            SipEvent::Timeout { tx } => {
                if let Some(ops) = &self.services.operators {
                    if ops.ping_timed_out(tx) {
                        return;
                    }
                }
                let inboxes: Vec<_> = self.table().dialogs.values().cloned().collect();
                // Timeouts are rare (a dead peer); tell every call, the owner
                // recognises its transaction.
                for inbox in inboxes {
                    let _ = inbox.try_send(CallMsg::Timeout { tx });
                }
            }
            SipEvent::AckTimeout { call_id, .. } => {
                if let Some(inbox) = self.route_in_dialog(&call_id, None) {
                    let _ = inbox.try_send(CallMsg::AckTimeout);
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

fn state_label(s: CallState) -> &'static str {
    match s {
        CallState::Ivr => "ivr",
        CallState::Queued => "queued",
        CallState::Ringing => "ringing",
        CallState::Bridged => "bridged",
    }
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
