//! The queue shell: runs the ACD core in one task and carries its commands
//! to the calls, and the operator registry (registrar + digest auth).
//!
//! The ACD core decides who rings whom; this room only moves events in and
//! commands out. Commands for a caller go to that call's inbox; queue-log
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

use super::CallMsg;
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
use crate::sip::{Contacts, Message, Method, RequestBuilder, new_branch, new_tag};

/// Messages to the ACD task.
enum AcdMsg {
    Event(AcdEvent),
    Attach {
        call: CallId,
        call_id: String,
        caller: String,
        inbox: mpsc::Sender<CallMsg>,
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

/// How many events may wait for the ACD task; beyond it events are dropped
/// and counted (the core is fast: ~17 µs per event).
const ACD_INBOX: usize = 4096;

/// A cheap handle to the ACD task.
#[derive(Clone)]
pub struct AcdHandle {
    tx: mpsc::Sender<AcdMsg>,
}

impl AcdHandle {
    /// Starts the ACD task.
    pub fn start(mut acd: Acd, records: RecordSink) -> AcdHandle {
        let (tx, rx) = mpsc::channel(ACD_INBOX);
        // The queue and operator gauges hold their true values before the
        // first scrape can happen.
        let now = Instant::now();
        acd.start(now);
        let mut figures = crate::ops::figures::AcdMetrics::default();
        figures.record(acd.take_figures(now));
        tokio::spawn(run(acd, rx, records, figures));
        AcdHandle { tx }
    }

    pub fn event(&self, ev: AcdEvent) {
        if self.tx.try_send(AcdMsg::Event(ev)).is_err() {
            metrics::counter!(m::ACD_EVENTS_DROPPED_TOTAL).increment(1);
            warn!("ACD inbox full, event dropped");
        }
    }

    /// Registers a caller's inbox before it joins a queue.
    pub fn attach(&self, call: CallId, call_id: &str, caller: &str, inbox: mpsc::Sender<CallMsg>) {
        let _ = self.tx.try_send(AcdMsg::Attach {
            call,
            call_id: call_id.to_owned(),
            caller: caller.to_owned(),
            inbox,
        });
    }

    pub fn detach(&self, call: CallId) {
        let _ = self.tx.try_send(AcdMsg::Detach { call });
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
        if self.tx.send(msg(reply)).await.is_err() {
            return T::default();
        }
        rx.await.unwrap_or_default()
    }
}

struct Attached {
    call_id: String,
    caller: String,
    inbox: mpsc::Sender<CallMsg>,
}

async fn run(
    mut acd: Acd,
    mut rx: mpsc::Receiver<AcdMsg>,
    records: RecordSink,
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
            msg = rx.recv() => match msg {
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
                    Some(a) => {
                        if a.inbox.try_send(CallMsg::Acd(cmd)).is_err() {
                            warn!(call, "call inbox full, ACD command dropped");
                        }
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
}

struct OpsInner {
    digest: DigestServer,
    registrar: Registrar<Peer>,
    /// OPTIONS pings in flight: transaction → operator.
    pings: HashMap<TxId, String>,
    /// Operators whose phone stopped answering OPTIONS.
    unreachable: std::collections::HashSet<String>,
}

/// Call-IDs of reachability pings start with this, so their responses are
/// told apart from calls.
pub const PING_CALL_ID_PREFIX: &str = "ping-";

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
        }
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
        // Read the credentials before looking the user up, so a known and
        // an unknown name get the same answer to the same header.
        let creds = match req.header(header).map(parse_authorization) {
            None => None,
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
                .header("Call-ID", format!("{PING_CALL_ID_PREFIX}{}", new_tag()))
                .header("CSeq", "1 OPTIONS")
                .header("User-Agent", ep.user_agent.clone())
                .build();
            if let Some(tx) = ep.request(peer, &Method::Options, &branch, bytes) {
                self.inner().pings.insert(tx, op);
            }
        }
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
