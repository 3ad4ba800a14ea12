//! The queue shell: runs the ACD core in one task and carries its commands
//! to the calls, and the operator registry (registrar + digest auth).
//!
//! The ACD core decides who rings whom; this room only moves events in and
//! commands out, and loses none of either: a call's events and the
//! commands for it travel on unbounded channels whose depth is bounded by
//! admission (past [`ACD_BACKLOG`] waiting events the router refuses new
//! calls with 503), so an operator is never left ringing for a caller the
//! ACD forgot, nor a caller bridged to no one. Commands for a caller go to that call's inbox; queue-log
//! records go to the records writer with wall-clock time stamped here (the
//! core only knows `Instant`s). Operators log in by REGISTER with a
//! password; their bindings feed `OperatorOnline`/`OperatorOffline` (every
//! REGISTER that binds logs the operator in, so a refresh undoes an admin
//! log-out, like a dynamic agent).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::routes::Ctl;
use crate::acd::{
    Acd, AcdCommand, AcdEvent, CallId, OperatorConfig, OperatorSnapshot, QueueEvent as AcdLog,
    QueueEventKind as K, QueueSnapshot,
};
use crate::ops::metrics as m;
use crate::ops::records::{QueueEvent, QueueEventKind, RecordSink};
use crate::sip::digest::{Algorithm, DigestConfig, DigestServer, Verdict, parse_authorization};
use crate::sip::endpoint::Endpoint;
use crate::sip::guard::Guard;
use crate::sip::registrar::{
    ContactSpec, RegisterContacts, RegisterError, RegisterRequest, Registrar, RegistrarConfig,
    RegistrarEvent,
};
use crate::sip::transaction::TxId;
use crate::sip::transport::Peer;
use crate::sip::{Contacts, Message, Method, RequestBuilder, new_branch, new_call_id, new_tag};

/// Messages to the ACD task.
enum AcdMsg {
    Event(AcdEvent),
    Attach {
        call: CallId,
        call_id: String,
        caller: String,
        inbox: mpsc::UnboundedSender<Ctl>,
    },
    Detach {
        call: CallId,
    },
    /// The queues with every waiting caller: costly with a long line, so
    /// asked for apart from the operators.
    Queues {
        reply: oneshot::Sender<Vec<QueueSnapshot>>,
    },
    Operators {
        reply: oneshot::Sender<Vec<OperatorSnapshot>>,
    },
}

/// Events waiting for the ACD task beyond which new calls are refused at
/// the door (the core is fast: ~17 µs per event, so this is a stall of
/// tens of milliseconds, not a normal load).
pub const ACD_BACKLOG: usize = 4096;

/// Beyond this many waiting events, events that are not a call's own
/// (operator log-in from a REGISTER refresh, admin pauses) are dropped and
/// counted: they say a state the next refresh says again, and a flood of
/// them must not grow memory without bound. A call's events never are.
const ACD_BACKLOG_HARD: usize = 16 * ACD_BACKLOG;

/// A cheap handle to the ACD task.
#[derive(Clone)]
pub struct AcdHandle {
    tx: mpsc::UnboundedSender<AcdMsg>,
    /// Messages sent and not yet taken by the task.
    backlog: Arc<std::sync::atomic::AtomicUsize>,
}

impl AcdHandle {
    /// Starts the ACD task.
    pub fn start(mut acd: Acd, records: RecordSink) -> AcdHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        // The queue and operator gauges hold their true values before the
        // first scrape can happen.
        let now = Instant::now();
        acd.start(now);
        let mut figures = crate::ops::figures::AcdMetrics::default();
        figures.record(acd.take_figures(now));
        let backlog = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(run(acd, rx, records, backlog.clone(), figures));
        AcdHandle { tx, backlog }
    }

    fn send(&self, msg: AcdMsg) {
        self.backlog
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.tx.send(msg).is_err() {
            self.backlog
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Events waiting for the ACD task.
    pub fn backlog(&self) -> usize {
        self.backlog.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether new calls should be refused until the ACD catches up.
    pub fn backlogged(&self) -> bool {
        self.backlog() >= ACD_BACKLOG
    }

    /// An event about an operator (log-in, pause…) from a phone or the
    /// admin API; dropped and counted only past [`ACD_BACKLOG_HARD`].
    pub fn event(&self, ev: AcdEvent) {
        if self.backlog() >= ACD_BACKLOG_HARD {
            metrics::counter!(m::ACD_EVENTS_DROPPED_TOTAL).increment(1);
            warn!("ACD far behind, operator event dropped");
            return;
        }
        self.send(AcdMsg::Event(ev));
    }

    /// An event of a call (joined, left, ring answered or failed, ended):
    /// never dropped.
    pub fn call_event(&self, ev: AcdEvent) {
        self.send(AcdMsg::Event(ev));
    }

    /// Registers a caller's inbox before it joins a queue.
    pub fn attach(
        &self,
        call: CallId,
        call_id: &str,
        caller: &str,
        inbox: mpsc::UnboundedSender<Ctl>,
    ) {
        self.send(AcdMsg::Attach {
            call,
            call_id: call_id.to_owned(),
            caller: caller.to_owned(),
            inbox,
        });
    }

    pub fn detach(&self, call: CallId) {
        self.send(AcdMsg::Detach { call });
    }

    pub async fn queues(&self) -> Vec<QueueSnapshot> {
        self.ask(|reply| AcdMsg::Queues { reply }).await
    }

    pub async fn operators(&self) -> Vec<OperatorSnapshot> {
        self.ask(|reply| AcdMsg::Operators { reply }).await
    }

    /// A question to the core's task; empty if the task is gone.
    async fn ask<T: Default>(&self, msg: impl FnOnce(oneshot::Sender<T>) -> AcdMsg) -> T {
        let (reply, rx) = oneshot::channel();
        self.send(msg(reply));
        rx.await.unwrap_or_default()
    }
}

struct Attached {
    call_id: String,
    caller: String,
    inbox: mpsc::UnboundedSender<Ctl>,
}

async fn run(
    mut acd: Acd,
    mut rx: mpsc::UnboundedReceiver<AcdMsg>,
    records: RecordSink,
    backlog: Arc<std::sync::atomic::AtomicUsize>,
    mut figures: crate::ops::figures::AcdMetrics,
) {
    let mut calls: HashMap<CallId, Attached> = HashMap::new();
    // Instant → wall clock, for stamping queue-log records.
    let origin = (Instant::now(), chrono::Utc::now());
    // Waits grow while nothing happens: the figures are taken each second
    // as well as after every turn.
    let mut refresh = tokio::time::interval(Duration::from_secs(1));
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let deadline = acd.poll_timeout();
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let cmds = tokio::select! {
            msg = rx.recv() => match msg.inspect(|_| {
                backlog.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }) {
                None => return,
                Some(AcdMsg::Event(ev)) => acd.handle(ev, Instant::now()),
                Some(AcdMsg::Attach { call, call_id, caller, inbox }) => {
                    calls.insert(call, Attached { call_id, caller, inbox });
                    continue;
                }
                Some(AcdMsg::Detach { call }) => {
                    calls.remove(&call);
                    continue;
                }
                Some(AcdMsg::Queues { reply }) => {
                    let _ = reply.send(acd.queues_snapshot(Instant::now()));
                    continue;
                }
                Some(AcdMsg::Operators { reply }) => {
                    let _ = reply.send(acd.operators_snapshot());
                    continue;
                }
            },
            _ = sleep => acd.handle_timeout(Instant::now()),
            _ = refresh.tick() => Vec::new(),
        };
        figures.record(acd.take_figures(Instant::now()));
        for cmd in cmds {
            let target = match &cmd {
                AcdCommand::Ring { call, .. }
                | AcdCommand::CancelRing { call, .. }
                | AcdCommand::Connect { call, .. }
                | AcdCommand::Announce { call, .. }
                | AcdCommand::Exit { call, .. } => Some(*call),
                AcdCommand::OperatorState { op, state } => {
                    debug!(op = %op, state = state.label(), "operator state");
                    None
                }
                AcdCommand::Log(log) => {
                    if let Some(ev) = to_record(log, &calls, origin) {
                        records.queue_event(ev);
                    }
                    None
                }
            };
            if let Some(call) = target {
                match calls.get(&call) {
                    // A call that ended meanwhile has dropped its inbox.
                    Some(a) => {
                        let _ = a.inbox.send(Ctl::Acd(Box::new(cmd)));
                    }
                    None => debug!(call, "ACD command for a call that is gone"),
                }
            }
        }
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// The core's log record in the records room's Asterisk-shaped form.
fn to_record(
    log: &AcdLog,
    calls: &HashMap<CallId, Attached>,
    origin: (Instant, chrono::DateTime<chrono::Utc>),
) -> Option<QueueEvent> {
    let since = log.at.saturating_duration_since(origin.0);
    let time = origin.1 + chrono::Duration::from_std(since).ok()?;
    let call = log.call.and_then(|c| calls.get(&c));
    let call_id = call.map(|c| c.call_id.as_str()).unwrap_or("");
    let caller = call.map(|c| c.caller.as_str()).unwrap_or("");
    let agent = log.op.as_deref().unwrap_or("");
    let q = log.queue.as_str();
    let pos = |p: usize| p.min(u32::MAX as usize) as u32;
    let exit = |kind, key, position: usize, waited: Duration, announced: Option<Duration>| {
        let p = pos(position);
        QueueEvent::exit(
            time,
            call_id,
            q,
            kind,
            key,
            p,
            p,
            ms(waited),
            announced.map(ms),
        )
    };
    Some(match &log.kind {
        K::EnterQueue { position, .. } => {
            QueueEvent::enter_queue(time, call_id, q, caller, pos(*position))
        }
        K::Connect {
            waited,
            announced,
            ring_time,
        } => QueueEvent::connect(
            time,
            call_id,
            q,
            agent,
            ms(*waited),
            announced.map(ms),
            ms(*ring_time),
        ),
        K::CompleteCaller { waited, talk } => {
            QueueEvent::complete(time, call_id, q, agent, true, ms(*waited), ms(*talk), 0)
        }
        K::CompleteAgent { waited, talk } => {
            QueueEvent::complete(time, call_id, q, agent, false, ms(*waited), ms(*talk), 0)
        }
        K::Abandon {
            position,
            entry_position,
            waited,
            announced,
        } => QueueEvent::exit(
            time,
            call_id,
            q,
            QueueEventKind::Abandon,
            None,
            pos(*position),
            pos(*entry_position),
            ms(*waited),
            announced.map(ms),
        ),
        K::ExitWithTimeout {
            position,
            waited,
            announced,
        } => exit(
            QueueEventKind::ExitWithTimeout,
            None,
            *position,
            *waited,
            *announced,
        ),
        K::ExitWithKey {
            digit,
            position,
            waited,
            announced,
        } => exit(
            QueueEventKind::ExitWithKey,
            Some(*digit),
            *position,
            *waited,
            *announced,
        ),
        K::ExitEmpty {
            position,
            waited,
            announced,
        } => exit(
            QueueEventKind::ExitEmpty,
            None,
            *position,
            *waited,
            *announced,
        ),
        K::Removed {
            by,
            position,
            entry_position,
            waited,
            announced,
        } => QueueEvent::removed(
            time,
            call_id,
            q,
            by.as_str(),
            pos(*position),
            pos(*entry_position),
            ms(*waited),
            announced.map(ms),
        ),
        K::Full | K::JoinEmpty => {
            let kind = if matches!(log.kind, K::Full) {
                QueueEventKind::Full
            } else {
                QueueEventKind::JoinEmpty
            };
            QueueEvent::exit(time, call_id, q, kind, None, 0, 0, 0, None)
        }
        K::RingNoAnswer { rang, .. } => {
            QueueEvent::ring_no_answer(time, call_id, q, agent, ms(*rang))
        }
        // A ring-all loser being cancelled is not a failure of that operator.
        K::RingCanceled => return None,
        K::Pause { reason } => {
            QueueEvent::agent(time, QueueEventKind::Pause, agent, Some(q), Some(reason))
        }
        K::Unpause => QueueEvent::agent(time, QueueEventKind::Unpause, agent, Some(q), None),
        K::AgentLogin => QueueEvent::agent(time, QueueEventKind::AgentLogin, agent, Some(q), None),
        K::AgentLogoff => {
            QueueEvent::agent(time, QueueEventKind::AgentLogoff, agent, Some(q), None)
        }
    })
}

/// Where to reach a logged-in operator.
#[derive(Debug, Clone)]
pub struct OperatorContact {
    pub uri: String,
    pub peer: Peer,
    pub display: Option<String>,
}

/// Feature codes an operator dials from the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    Pause,
    Unpause,
}

/// What a REGISTER (or an authenticated request) gets back.
pub enum RegisterOutcome {
    /// 401 with these WWW-Authenticate values.
    Challenge(Vec<String>),
    /// 407 with these Proxy-Authenticate values.
    ProxyChallenge(Vec<String>),
    /// 200 with these Contact values (with expires) and the bindings' events.
    Ok { contacts: Vec<String> },
    /// A final error status and reason, plus extra headers.
    Refused {
        status: u16,
        reason: &'static str,
        headers: Vec<(&'static str, String)>,
    },
    /// `then`, sent after `delay` (a source that keeps failing waits longer).
    Delayed {
        delay: Duration,
        then: Box<RegisterOutcome>,
    },
}

/// Operators from the config, their digest credentials and their phones'
/// registrations.
pub struct Operators {
    configs: HashMap<String, OperatorConfig>,
    inner: Mutex<OpsInner>,
    acd: AcdHandle,
    /// Counts digest failures, delays and blocks guessers.
    guard: Arc<Guard>,
    /// `tls.require_for_operators`: credentials only over TLS.
    tls_required: bool,
}

struct OpsInner {
    digest: DigestServer,
    registrar: Registrar<Peer>,
    /// OPTIONS pings in flight: transaction → operator.
    pings: HashMap<TxId, String>,
    /// Operators whose phone stopped answering OPTIONS.
    unreachable: std::collections::HashSet<String>,
}

impl Operators {
    pub fn new(
        configs: &[OperatorConfig],
        realm: &str,
        algorithms: &[String],
        acd: AcdHandle,
        guard: Arc<Guard>,
    ) -> Operators {
        let now = Instant::now();
        let algorithms = algorithms
            .iter()
            .filter_map(|a| Algorithm::parse(a))
            .collect();
        let digest = DigestServer::new(
            DigestConfig {
                realm: realm.to_owned(),
                algorithms,
                ..DigestConfig::default()
            },
            now,
        );
        Operators {
            configs: configs.iter().map(|c| (c.id.clone(), c.clone())).collect(),
            inner: Mutex::new(OpsInner {
                digest,
                registrar: Registrar::new(RegistrarConfig::default()),
                pings: HashMap::new(),
                unreachable: Default::default(),
            }),
            acd,
            guard,
            tls_required: false,
        }
    }

    /// Refuses REGISTER and feature codes that do not come over TLS.
    pub fn with_tls_required(mut self, required: bool) -> Operators {
        self.tls_required = required;
        self
    }

    fn inner(&self) -> MutexGuard<'_, OpsInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    /// Handles a REGISTER from `peer`: digest check, then the bindings.
    /// Checks the digest credentials of `req` against operator `user`'s
    /// password. `header` is `Authorization` (registrar, 401) or
    /// `Proxy-Authorization` (other requests, 407). Err carries the answer
    /// to send: a fresh challenge, or 400 for unreadable credentials.
    pub fn authenticate(
        &self,
        req: &Message,
        user: &str,
        header: &str,
        peer: Peer,
    ) -> Result<String, RegisterOutcome> {
        let now = Instant::now();
        let ip = peer.addr.ip();
        // Before any digest work, and the same for every name: a password
        // must not cross the network in the clear to be checked at all.
        if self.tls_required && !peer.is_tls() {
            return Err(RegisterOutcome::Refused {
                status: 403,
                reason: "TLS Required",
                headers: vec![(
                    "Warning",
                    "399 conmutador \"operators must use TLS (sips: or transport=tls)\"".to_owned(),
                )],
            });
        }
        // Read the credentials before looking the user up, so a known and
        // an unknown name get the same answer to the same header.
        let creds = match req.header(header).map(parse_authorization) {
            // A scheme we do not know is no credentials for us: challenge
            // with ours (RFC 4475's regaut01), as for none at all.
            None | Some(Err(crate::sip::digest::DigestError::NotDigest)) => None,
            Some(Ok(c)) => Some(c),
            Some(Err(_)) => {
                metrics::counter!(m::AUTH_FAILURES_TOTAL, "reason" => "malformed").increment(1);
                return Err(RegisterOutcome::Refused {
                    status: 400,
                    reason: "Bad Authorization",
                    headers: Vec::new(),
                });
            }
        };
        let Some(creds) = creds else {
            return Err(self.challenge(req, header, now, false));
        };
        // Every path below that refuses offered credentials goes through
        // `refuse`: the same counting, delay and challenge for a guessed
        // account, an unknown one and a locked one.
        let refuse = || {
            let delay = self.guard.auth_failed(ip, user);
            let answer = self.challenge(req, header, now, false);
            if delay.is_zero() {
                answer
            } else {
                RegisterOutcome::Delayed {
                    delay,
                    then: Box::new(answer),
                }
            }
        };
        let Some(cfg) = self.configs.get(user) else {
            // Unknown users get a challenge like everyone else, so the answer
            // does not tell which names exist.
            metrics::counter!(m::AUTH_FAILURES_TOTAL, "reason" => "unknown_user").increment(1);
            let _ = self.guard.auth_locked(ip, user);
            return Err(refuse());
        };
        if self.guard.auth_locked(ip, user) || creds.username != cfg.id {
            return Err(refuse());
        }
        let method = req
            .method()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        let verdict = self
            .inner()
            .digest
            .verify(&creds, &method, cfg.password.as_deref(), now);
        match verdict {
            Verdict::Authorized => {
                self.guard.auth_succeeded(ip, user);
                Ok(cfg.id.clone())
            }
            Verdict::Stale => Err(self.challenge(req, header, now, true)),
            Verdict::Rejected(r) => {
                // The digest core only answers; the failure is counted here.
                metrics::counter!(m::AUTH_FAILURES_TOTAL, "reason" => r.label()).increment(1);
                Err(refuse())
            }
        }
    }

    /// Handles a REGISTER from `peer`: digest check, then the bindings.
    pub fn register(&self, req: &Message, peer: Peer) -> RegisterOutcome {
        let now = Instant::now();
        let user = req
            .to()
            .ok()
            .and_then(|t| t.uri.user().map(str::to_owned))
            .unwrap_or_default();
        let cfg = match self.authenticate(req, &user, "Authorization", peer) {
            Ok(id) => match self.configs.get(&id) {
                Some(c) => c,
                None => return self.challenge(req, "Authorization", now, false),
            },
            Err(answer) => return answer,
        };
        let mut binding_uris: Vec<String> = Vec::new();
        let contacts = match req.contacts() {
            Ok(Contacts::Star) => RegisterContacts::Star,
            Ok(Contacts::List(v)) if v.is_empty() => RegisterContacts::Query,
            Ok(Contacts::List(v)) => RegisterContacts::List(
                v.iter()
                    .inspect(|na| binding_uris.push(na.uri.to_string()))
                    .map(|na| ContactSpec {
                        uri: na.uri.to_string(),
                        expires: na.params.value("expires").and_then(|e| e.parse().ok()),
                        q: na
                            .params
                            .value("q")
                            .and_then(crate::sip::registrar::parse_q),
                    })
                    .collect(),
            ),
            Err(_) => RegisterContacts::Query,
        };
        let rr = RegisterRequest {
            aor: cfg.id.clone(),
            call_id: req.call_id().unwrap_or("").to_owned(),
            cseq: req.cseq().map(|c| c.seq).unwrap_or(0),
            expires: req.expires().ok().flatten(),
            contacts,
            source: peer,
            transport: peer.transport_name().to_owned(),
        };
        let res = self.inner().registrar.register(rr, now);
        match res {
            Ok(out) => {
                self.publish(out.events);
                // Any REGISTER that leaves one of its contacts bound (new or
                // a refresh) logs the operator in, like a dynamic agent: an
                // operator logged out by the API is back with the phone's
                // next refresh. No-op when already logged in.
                if out.contacts.iter().any(|c| binding_uris.contains(&c.uri)) {
                    self.acd
                        .event(AcdEvent::OperatorOnline { op: cfg.id.clone() });
                }
                let contacts = out
                    .contacts
                    .iter()
                    .map(|c| format!("<{}>;expires={}", c.uri, c.expires_in))
                    .collect();
                RegisterOutcome::Ok { contacts }
            }
            Err(RegisterError::IntervalTooBrief { min }) => RegisterOutcome::Refused {
                status: 423,
                reason: "Interval Too Brief",
                headers: vec![("Min-Expires", min.to_string())],
            },
            Err(RegisterError::InvalidStar | RegisterError::BadUri) => RegisterOutcome::Refused {
                status: 400,
                reason: "Bad Contact",
                headers: Vec::new(),
            },
            Err(RegisterError::OutOfOrder) => RegisterOutcome::Refused {
                status: 500,
                reason: "CSeq Out of Order",
                headers: Vec::new(),
            },
            Err(RegisterError::TooManyContacts { .. }) => RegisterOutcome::Refused {
                status: 403,
                reason: "Too Many Contacts",
                headers: Vec::new(),
            },
            Err(RegisterError::Full) => RegisterOutcome::Refused {
                status: 503,
                reason: "Service Unavailable",
                headers: vec![("Retry-After", "30".to_owned())],
            },
        }
    }

    fn challenge(&self, req: &Message, header: &str, now: Instant, stale: bool) -> RegisterOutcome {
        if req.header(header).is_some() && !stale {
            metrics::counter!(m::AUTH_FAILURES_TOTAL, "reason" => "bad_credentials").increment(1);
        }
        let values = self.inner().digest.challenge(now, stale);
        if header == "Authorization" {
            RegisterOutcome::Challenge(values)
        } else {
            RegisterOutcome::ProxyChallenge(values)
        }
    }

    /// Applies a feature code an operator dialled; returns what happened.
    pub fn feature(&self, op: &str, code: Feature) {
        let ev = match code {
            Feature::Pause => AcdEvent::Pause {
                op: op.to_owned(),
                reason: "phone".into(),
            },
            Feature::Unpause => AcdEvent::Unpause { op: op.to_owned() },
        };
        info!(operator = op, feature = ?code, "feature code");
        self.acd.event(ev);
    }

    /// Turns binding changes into operator log-ins and log-outs.
    fn publish(&self, events: Vec<RegistrarEvent<Peer>>) {
        for ev in events {
            match ev {
                RegistrarEvent::Added { aor, uri, .. } => {
                    info!(operator = %aor, contact = %uri, "operator registered");
                    self.acd.event(AcdEvent::OperatorOnline { op: aor });
                }
                RegistrarEvent::Updated { .. } => {}
                RegistrarEvent::Unregistered { aor, .. } | RegistrarEvent::Expired { aor, .. } => {
                    let still = !self
                        .inner()
                        .registrar
                        .contacts(&aor, Instant::now())
                        .is_empty();
                    if !still {
                        info!(operator = %aor, "operator logged out");
                        self.acd.event(AcdEvent::OperatorOffline { op: aor });
                    }
                }
            }
        }
        let n = self.inner().registrar.len();
        metrics::gauge!(m::REGISTRATIONS_ACTIVE).set(n as f64);
    }

    /// Logs out the phones registered over a TCP or TLS connection that
    /// closed: calls could not reach them through it.
    pub fn flow_closed(&self, flow: crate::sip::transport::Flow) {
        let events = self.inner().registrar.remove_sources(|p| p.flow == flow);
        if !events.is_empty() {
            info!(?flow, "connection of a registered phone closed");
            self.publish(events);
        }
    }

    /// Expires bindings; call about once a second.
    pub fn sweep(&self) {
        let events = self.inner().registrar.handle_timeout(Instant::now());
        if !events.is_empty() {
            self.publish(events);
        }
    }

    /// Sends OPTIONS to every registered operator phone; a phone that does
    /// not answer is reported unreachable and is not offered calls until it
    /// answers again.
    pub fn ping_all(&self, ep: &std::sync::Arc<Endpoint>) {
        let now = Instant::now();
        let targets: Vec<(String, String, Peer)> = {
            let inner = self.inner();
            self.configs
                .keys()
                .filter_map(|op| {
                    let c = inner.registrar.contacts(op, now).into_iter().next()?;
                    Some((op.clone(), c.uri, c.source))
                })
                .collect()
        };
        for (op, uri, peer) in targets {
            let branch = new_branch();
            let bytes = RequestBuilder::new(Method::Options, &uri)
                .header("Via", ep.via_for(&peer, &branch))
                .header("Max-Forwards", "70")
                .header(
                    "From",
                    format!(
                        "<sip:conmutador@{}>;tag={}",
                        peer_host(ep, &peer),
                        new_tag()
                    ),
                )
                .header("To", format!("<{uri}>"))
                .header("Call-ID", new_call_id(&peer_host(ep, &peer)))
                .header("CSeq", "1 OPTIONS")
                .header("User-Agent", ep.user_agent.clone())
                .build();
            if let Some(tx) = ep.request(peer, &Method::Options, &branch, bytes) {
                self.inner().pings.insert(tx, op);
            }
        }
    }

    /// Whether client transaction `tx` is one of our OPTIONS pings: their
    /// answers are the registry's, not a call's.
    pub fn is_ping(&self, tx: TxId) -> bool {
        self.inner().pings.contains_key(&tx)
    }

    /// Any response to a ping: the phone is alive.
    pub fn ping_answered(&self, tx: TxId) {
        let op = self.inner().pings.remove(&tx);
        if let Some(op) = op {
            if self.inner().unreachable.remove(&op) {
                info!(operator = %op, "operator phone reachable again");
                self.acd.event(AcdEvent::OperatorReachable {
                    op,
                    reachable: true,
                });
            }
        }
    }

    /// A ping timed out (Timer F). Returns whether `tx` was a ping.
    pub fn ping_timed_out(&self, tx: TxId) -> bool {
        let op = self.inner().pings.remove(&tx);
        let Some(op) = op else { return false };
        if self.inner().unreachable.insert(op.clone()) {
            warn!(operator = %op, "operator phone does not answer OPTIONS");
            self.acd.event(AcdEvent::OperatorReachable {
                op,
                reachable: false,
            });
        }
        true
    }

    /// Whether operator `op` has a phone to ring: a registered contact or
    /// a static URI.
    pub fn has_phone(&self, op: &str) -> bool {
        let Some(cfg) = self.configs.get(op) else {
            return false;
        };
        cfg.static_uri.is_some()
            || !self
                .inner()
                .registrar
                .contacts(op, Instant::now())
                .is_empty()
    }

    /// Where to ring operator `op`: the best registered contact, reached
    /// over the flow it registered from, or its static URI.
    pub fn contact(
        &self,
        op: &str,
        static_peer: impl Fn(&str) -> Option<Peer>,
    ) -> Option<OperatorContact> {
        let cfg = self.configs.get(op)?;
        let display = cfg.display_name.clone();
        if let Some(c) = self
            .inner()
            .registrar
            .contacts(op, Instant::now())
            .into_iter()
            .next()
        {
            return Some(OperatorContact {
                uri: c.uri,
                peer: c.source,
                display,
            });
        }
        let uri = cfg.static_uri.clone()?;
        let peer = static_peer(&uri)?;
        Some(OperatorContact { uri, peer, display })
    }
}

/// Our host:port as the peer sees it, for the From of pings.
fn peer_host(ep: &Endpoint, peer: &Peer) -> String {
    ep.transports
        .local_addr(peer.flow)
        .map(|a| a.to_string())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acd::{Membership, QueueConfig};

    fn operator(id: &str) -> OperatorConfig {
        OperatorConfig {
            id: id.into(),
            display_name: None,
            password: Some("pw".into()),
            static_uri: None,
            queues: vec![Membership {
                name: "q".into(),
                penalty: 0,
            }],
        }
    }

    /// A burst far deeper than the old bounded inbox (4,096 events, dropped
    /// beyond), sent while the ACD task cannot run (one thread, no await):
    /// every event arrives, every ring reaches its caller, and once every
    /// caller has left the ACD knows no caller and no ringing operator.
    #[tokio::test(flavor = "current_thread")]
    async fn a_burst_beyond_the_door_loses_no_event_between_calls_and_the_acd() {
        const CALLERS: u64 = 2_200;
        const OPERATORS: usize = 40;
        let ops: Vec<OperatorConfig> = (0..OPERATORS)
            .map(|i| operator(&format!("op{i}")))
            .collect();
        let mut q = QueueConfig::named("q");
        q.max_len = 0;
        let acd = Acd::new(vec![q], ops.clone()).unwrap();
        let (records, _rx) = RecordSink::channel(1 << 20);
        let h = AcdHandle::start(acd, records);
        for o in &ops {
            h.event(AcdEvent::OperatorOnline { op: o.id.clone() });
        }
        let mut inboxes = Vec::new();
        for call in 1..=CALLERS {
            let (tx, rx) = mpsc::unbounded_channel();
            h.attach(call, &format!("c{call}"), "sip:x@127.0.0.1", tx);
            h.call_event(AcdEvent::CallerJoined {
                call,
                queue: "q".into(),
                priority: 0,
            });
            inboxes.push((call, rx));
        }
        assert!(
            h.backlog() > ACD_BACKLOG,
            "deeper than the old inbox (4,096)"
        );
        assert!(h.backlogged(), "new calls would get 503 at the door now");

        // FIFO: when the snapshot answers, everything sent before is handled.
        let queues = h.queues().await;
        assert_eq!(
            queues[0].callers.len(),
            CALLERS as usize,
            "every join arrived"
        );
        let ringing_in_acd: std::collections::HashSet<(CallId, String)> = queues[0]
            .callers
            .iter()
            .flat_map(|c| c.ringing.iter().map(move |op| (c.call, op.clone())))
            .collect();
        assert_eq!(ringing_in_acd.len(), OPERATORS, "every free operator rings");
        let mut rung_at_calls = std::collections::HashSet::new();
        for (call, rx) in &mut inboxes {
            while let Ok(Ctl::Acd(cmd)) = rx.try_recv() {
                if let AcdCommand::Ring { op, .. } = *cmd {
                    rung_at_calls.insert((*call, op));
                }
            }
        }
        assert_eq!(
            rung_at_calls, ringing_in_acd,
            "each ring reached its caller"
        );
        assert!(!h.backlogged());

        for call in 1..=CALLERS {
            h.call_event(AcdEvent::CallerLeft { call });
            h.detach(call);
        }
        let queues = h.queues().await;
        assert!(queues[0].callers.is_empty(), "every leave arrived");
        let ops = h.operators().await;
        assert!(
            ops.iter()
                .all(|o| o.call.is_none() && o.state == "available"),
            "no operator is left ringing for a caller that left: {:?}",
            ops.iter().filter(|o| o.call.is_some()).collect::<Vec<_>>()
        );
        assert_eq!(h.backlog(), 0);
    }
}
