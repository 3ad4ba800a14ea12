//! The SIP endpoint: glue between the transports, the codec and the
//! transaction layer, with one lock around the sans-I/O state.
//!
//! It answers what needs no call: parse errors (400), Max-Forwards 0 (483),
//! out-of-dialog OPTIONS (200), unknown methods (501), CANCEL (200 + tells the
//! call), retransmissions (absorbed), a full table of live transactions (503). It sends
//! 100 Trying for every new INVITE in the same turn it arrives, retransmits
//! 2xx to INVITE until the ACK comes, and hands everything else to the
//! [`TransactionUser`] (the call room) as [`SipEvent`]s. It never decides
//! whether a call is accepted: that is the TU's job.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;
use tracing::debug;

use super::guard::Guard;
use super::message::is_keepalive;
use super::transaction::{
    AckVerdict, Action, ClientVerdict, Retransmissions, ServerVerdict, Timers, TransactionLayer,
    TxId, TxKey, TxKind, Uas2xxAction, Uas2xxRetransmitter,
};
use super::transport::{Flow, Peer, Sink, Transports};
use super::{Message, Method, response_to};
use crate::ops::metrics as m;

/// Methods this gateway implements, for Allow headers.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, REGISTER, REFER";
pub const ACCEPT: &str = "application/sdp, application/dtmf-relay";
pub const SUPPORTED: &str = "replaces, timer";

/// What the endpoint hands to the transaction user.
#[derive(Debug)]
pub enum SipEvent {
    /// A new request in a new server transaction (never ACK or CANCEL).
    Request { req: Message, tx: TxId, peer: Peer },
    /// An ACK that matched no server transaction: the ACK for a 2xx.
    Ack { req: Message, peer: Peer },
    /// A CANCEL matched the INVITE transaction `invite_tx`; 200 was already
    /// sent for the CANCEL, the TU answers the INVITE with 487.
    Cancel { invite_tx: TxId },
    /// A response for a client transaction started with [`Endpoint::request`];
    /// `tx` is None for a 2xx retransmission after the transaction ended.
    Response { resp: Message, tx: Option<TxId> },
    /// A client transaction got no final response in time (Timer B/F).
    Timeout { tx: TxId },
    /// A 2xx to an INVITE was retransmitted for 64·T1 without an ACK.
    AckTimeout { call_id: String, cseq: u32 },
}

pub trait TransactionUser: Send + Sync + 'static {
    fn on_event(&self, ep: &Arc<Endpoint>, ev: SipEvent);
}

struct Core {
    txl: TransactionLayer<Peer>,
    /// Server transactions the TU still has to answer: the request's peer.
    server_peers: HashMap<TxId, Peer>,
    /// INVITE server transactions by key, for CANCEL matching.
    invites: HashMap<TxKey, TxId>,
    invite_keys: HashMap<TxId, TxKey>,
    /// 2xx to INVITEs resent until their ACK arrives (RFC 3261 §13.3.1.4).
    pending_2xx: Uas2xxRetransmitter<Peer>,
    /// The deadline the timer task sleeps until; an earlier one wakes it.
    armed: Option<Instant>,
    /// The retransmission counts last exported.
    resent: Retransmissions,
}

impl Core {
    /// Both cores' retransmission counts, when they changed since the last
    /// call (most messages cause none: no registry work for them).
    fn new_retransmissions(&mut self) -> Option<Retransmissions> {
        let now = self
            .txl
            .retransmissions()
            .plus(self.pending_2xx.retransmissions());
        (now != self.resent).then(|| {
            self.resent = now;
            now
        })
    }

    fn next_deadline(&self) -> Option<Instant> {
        match (self.txl.poll_timeout(), self.pending_2xx.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

pub struct EndpointConfig {
    pub timers: Timers,
    pub max_transactions: usize,
    pub user_agent: String,
    pub retry_after: u32,
    /// Host written in Via when sending requests; the socket's address if None.
    pub public_host: Option<String>,
    /// Per-source limits and blocks, asked before parsing; None: no guard.
    pub guard: Option<Arc<Guard>>,
}

pub struct Endpoint {
    core: Mutex<Core>,
    pub transports: Arc<Transports>,
    tu: Arc<dyn TransactionUser>,
    wake: Arc<Notify>,
    pub user_agent: String,
    retry_after: u32,
    public_host: Option<String>,
    guard: Option<Arc<Guard>>,
}

impl Endpoint {
    pub fn new(
        cfg: EndpointConfig,
        transports: Arc<Transports>,
        tu: Arc<dyn TransactionUser>,
    ) -> Arc<Endpoint> {
        let ep = Arc::new(Endpoint {
            core: Mutex::new(Core {
                txl: TransactionLayer::new(cfg.timers, cfg.max_transactions),
                server_peers: HashMap::new(),
                invites: HashMap::new(),
                invite_keys: HashMap::new(),
                pending_2xx: Uas2xxRetransmitter::new(cfg.timers, cfg.max_transactions),
                armed: None,
                resent: Retransmissions::default(),
            }),
            transports,
            tu,
            wake: Arc::new(Notify::new()),
            user_agent: cfg.user_agent,
            retry_after: cfg.retry_after,
            public_host: cfg.public_host,
            guard: cfg.guard,
        });
        let timer = Arc::downgrade(&ep);
        tokio::spawn(async move { timer_loop(timer).await });
        ep
    }

    /// Seconds a refused caller should wait before trying again.
    pub fn retry_after(&self) -> u32 {
        self.retry_after
    }

    fn core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a response in server transaction `tx`. For a 2xx to an INVITE
    /// the endpoint keeps retransmitting it until the ACK arrives.
    pub fn respond(
        self: &Arc<Self>,
        tx: TxId,
        status: u16,
        bytes: Bytes,
        invite_2xx: Option<(String, u32)>,
    ) {
        let now = Instant::now();
        let actions = {
            let mut core = self.core();
            let peer = if status >= 200 {
                core.server_peers.remove(&tx)
            } else {
                core.server_peers.get(&tx).copied()
            };
            if status >= 200 {
                if let Some(key) = core.invite_keys.remove(&tx) {
                    core.invites.remove(&key);
                }
            }
            let actions = core.txl.send_response(tx, status, bytes.clone(), now);
            if let (Some((call_id, cseq)), Some(peer)) = (invite_2xx, peer) {
                // A full table only loses the retransmissions, not the call.
                let _ = core.pending_2xx.start(&call_id, cseq, peer, bytes, now);
            }
            actions
        };
        count_out_response(status);
        self.run(actions);
    }

    /// Sends an out-of-transaction message (e.g. an ACK for a 2xx we received).
    pub fn send_raw(&self, peer: &Peer, bytes: Bytes) {
        self.transports.send(peer, bytes);
    }

    /// Starts a client transaction for an encoded request whose top Via has
    /// `branch`. Returns None when the transaction table is full.
    pub fn request(
        self: &Arc<Self>,
        peer: Peer,
        method: &Method,
        branch: &str,
        bytes: Bytes,
    ) -> Option<TxId> {
        let now = Instant::now();
        let kind = if *method == Method::Invite {
            TxKind::Invite
        } else {
            TxKind::NonInvite
        };
        let key = TxKey {
            branch: branch.to_owned(),
            method: method.as_str().to_owned(),
            sent_by: String::new(),
        };
        let res = self
            .core()
            .txl
            .client_request(key, kind, peer.reliable(), peer, bytes, now);
        metrics::counter!(m::SIP_MESSAGES_TOTAL, "direction" => "out", "method" => method_label(method), "status" => "request").increment(1);
        match res {
            Ok((id, actions)) => {
                self.run(actions);
                Some(id)
            }
            Err(_) => None,
        }
    }

    /// Hands the ACK for a non-2xx final response to the client transaction.
    pub fn client_ack(self: &Arc<Self>, tx: TxId, ack: Bytes) {
        let actions = self.core().txl.client_ack(tx, ack);
        self.run(actions);
    }

    /// host:port we are reached at on `peer`'s flow (public_host if set).
    fn advertised(&self, peer: &Peer) -> String {
        let local = self
            .transports
            .local_addr(peer.flow)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)));
        match &self.public_host {
            Some(h) => format!("{h}:{}", local.port()),
            None => local.to_string(),
        }
    }

    /// Via header value for a new request sent on `peer`'s flow.
    pub fn via_for(&self, peer: &Peer, branch: &str) -> String {
        let host = self.advertised(peer);
        format!(
            "SIP/2.0/{} {host};branch={branch};rport",
            peer.transport_name()
        )
    }

    /// A Contact URI for dialogs established on `peer`'s flow.
    pub fn contact_for(&self, peer: &Peer) -> String {
        let host = self.advertised(peer);
        match peer.flow {
            Flow::Tcp { .. } => format!("<sip:conmutador@{host};transport=tcp>"),
            // `sip:` with `transport=tls` rather than `sips:`: a sips Contact
            // would demand TLS on every hop beyond the peer too (RFC 5630),
            // which the trunk side of a call cannot promise.
            Flow::Tls { .. } => format!("<sip:conmutador@{host};transport=tls>"),
            Flow::Udp { .. } => format!("<sip:conmutador@{host}>"),
        }
    }

    fn run(self: &Arc<Self>, actions: Vec<Action<Peer>>) {
        let mut events = Vec::new();
        for a in actions {
            match a {
                // Retransmissions are counted by the cores (see `gauge`).
                Action::Transmit { dest, bytes, .. } => {
                    self.transports.send(&dest, bytes);
                }
                Action::TimedOut { id } => events.push(SipEvent::Timeout { tx: id }),
                Action::Terminated { id } => {
                    let mut core = self.core();
                    core.server_peers.remove(&id);
                    if let Some(key) = core.invite_keys.remove(&id) {
                        core.invites.remove(&key);
                    }
                }
            }
        }
        self.gauge();
        for ev in events {
            self.tu.on_event(self, ev);
        }
    }

    /// Publishes the table sizes and the cores' retransmission counts, and
    /// wakes the timer task when a new deadline is earlier than the one it
    /// sleeps until.
    fn gauge(&self) {
        let (live, absorbing, evicted, resent, wake) = {
            let mut core = self.core();
            let next = core.next_deadline();
            let wake = match (next, core.armed) {
                (Some(n), Some(a)) => n < a,
                (Some(_), None) => true,
                _ => false,
            };
            (
                core.txl.len(),
                core.txl.absorbing_len(),
                core.txl.absorbing_evicted(),
                core.new_retransmissions(),
                wake,
            )
        };
        metrics::gauge!(m::SIP_TRANSACTIONS_ACTIVE).set(live as f64);
        metrics::gauge!(m::SIP_TRANSACTIONS_ABSORBING).set(absorbing as f64);
        metrics::counter!(m::SIP_ABSORBING_EVICTED_TOTAL).absolute(evicted);
        // The cores count since they were made; the registry keeps the most.
        if let Some(resent) = resent {
            for (kind, n) in resent.by_kind() {
                metrics::counter!(m::SIP_RETRANSMISSIONS_TOTAL, "kind" => kind).absolute(n);
            }
        }
        if wake {
            self.wake.notify_one();
        }
    }

    /// Stateless reply, for requests we refuse before any transaction exists.
    fn reply_stateless(&self, req: &Message, peer: &Peer, status: u16, reason: &str) {
        let mut b = response_to(req, status, reason)
            .via_received(peer.addr)
            .to_tag(&super::new_tag())
            .header("Server", &self.user_agent);
        if status == 503 {
            b = b.header("Retry-After", self.retry_after.to_string());
        }
        if status == 405 || status == 501 {
            b = b.header("Allow", ALLOW);
        }
        let bytes = b.build();
        count_out_response(status);
        self.transports.send(peer, bytes);
    }

    fn handle_request(self: &Arc<Self>, req: Message, peer: Peer) {
        let method = match req.method() {
            Some(m) => m.clone(),
            None => return,
        };
        metrics::counter!(m::SIP_MESSAGES_TOTAL, "direction" => "in", "method" => method_label(&method), "status" => "request").increment(1);
        if let Err(e) = req.validate() {
            metrics::counter!(m::SIP_PARSE_ERRORS_TOTAL, "kind" => "headers").increment(1);
            if method != Method::Ack && req.top_via().is_ok() {
                self.reply_stateless(&req, &peer, 400, e.reason());
            }
            return;
        }
        let via = match req.top_via() {
            Ok(v) => v,
            Err(_) => return,
        };
        let branch = via.branch.clone().unwrap_or_else(|| legacy_branch(&req));
        let sent_by = via.sent_by();
        let now = Instant::now();

        if method == Method::Ack {
            let key = TxKey {
                branch,
                method: "INVITE".into(),
                sent_by,
            };
            let verdict = self.core().txl.server_ack(&key, now);
            if let AckVerdict::NotFound = verdict {
                // An ACK for a 2xx: stop retransmitting it and tell the TU.
                if let (Ok(call_id), Ok(cseq)) = (req.call_id(), req.cseq()) {
                    self.core().pending_2xx.ack(call_id, cseq.seq);
                }
                self.tu.on_event(self, SipEvent::Ack { req, peer });
            }
            return;
        }

        if matches!(req.max_forwards(), Ok(Some(0))) && method != Method::Options {
            self.reply_stateless(&req, &peer, 483, "Too Many Hops");
            return;
        }

        if method == Method::Cancel {
            let invite_key = TxKey {
                branch: branch.clone(),
                method: "INVITE".into(),
                sent_by: sent_by.clone(),
            };
            let key = TxKey {
                branch,
                method: "CANCEL".into(),
                sent_by,
            };
            let Some(id) = self.open_server_tx(&req, &key, TxKind::NonInvite, peer, now) else {
                return;
            };
            let invite_tx = self.core().invites.get(&invite_key).copied();
            match invite_tx {
                Some(invite_tx) => {
                    let ok = response_to(&req, 200, "OK")
                        .via_received(peer.addr)
                        .header("Server", &self.user_agent)
                        .build();
                    self.respond(id, 200, ok, None);
                    self.tu.on_event(self, SipEvent::Cancel { invite_tx });
                }
                None => {
                    let r = response_to(&req, 481, "Call/Transaction Does Not Exist")
                        .via_received(peer.addr)
                        .to_tag(&super::new_tag())
                        .build();
                    self.respond(id, 481, r, None);
                }
            }
            return;
        }

        let kind = if method == Method::Invite {
            TxKind::Invite
        } else {
            TxKind::NonInvite
        };
        let key = TxKey {
            branch,
            method: method.as_str().to_owned(),
            sent_by,
        };
        let Some(id) = self.open_server_tx(&req, &key, kind, peer, now) else {
            return;
        };
        {
            let mut core = self.core();
            core.server_peers.insert(id, peer);
            if method == Method::Invite {
                core.invites.insert(key.clone(), id);
                core.invite_keys.insert(id, key);
            }
        }
        self.gauge();
        if method == Method::Invite {
            let trying = response_to(&req, 100, "Trying")
                .via_received(peer.addr)
                .header("Server", &self.user_agent)
                .build();
            let trying = trying;
            let actions = self.core().txl.send_response(id, 100, trying, now);
            count_out_response(100);
            self.run(actions);
        }
        match method {
            Method::Options if req.to().map(|t| t.tag().is_none()).unwrap_or(false) => {
                let r = self.options_response(&req, &peer);
                self.respond(id, 200, r, None);
            }
            // A REFER inside a call (an operator's transfer) is the call's
            // to answer; outside one there is nothing to transfer.
            Method::Refer if req.to().is_ok_and(|t| t.tag().is_some()) => self
                .tu
                .on_event(self, SipEvent::Request { req, tx: id, peer }),
            Method::Extension(_)
            | Method::Prack
            | Method::Subscribe
            | Method::Notify
            | Method::Refer
            | Method::Message
            | Method::Publish => {
                let r = response_to(&req, 501, "Not Implemented")
                    .via_received(peer.addr)
                    .to_tag(&super::new_tag())
                    .header("Allow", ALLOW)
                    .build();
                self.respond(id, 501, r, None);
            }
            _ => self
                .tu
                .on_event(self, SipEvent::Request { req, tx: id, peer }),
        }
    }

    /// Starts a server transaction for `req`. A retransmission is answered
    /// with the last response and a full table with 503; both give None.
    fn open_server_tx(
        self: &Arc<Self>,
        req: &Message,
        key: &TxKey,
        kind: TxKind,
        peer: Peer,
        now: Instant,
    ) -> Option<TxId> {
        let verdict = self
            .core()
            .txl
            .server_request(key, kind, peer.reliable(), peer, now);
        match verdict {
            ServerVerdict::New(id) => Some(id),
            ServerVerdict::Retransmission(actions) => {
                self.run(actions);
                None
            }
            ServerVerdict::Full => {
                self.overloaded(req, &peer);
                None
            }
        }
    }

    /// 200 to OPTIONS, in or out of a dialog.
    pub fn options_response(&self, req: &Message, peer: &Peer) -> Bytes {
        response_to(req, 200, "OK")
            .via_received(peer.addr)
            .to_tag(&super::new_tag())
            .header("Allow", ALLOW)
            .header("Accept", ACCEPT)
            .header("Supported", SUPPORTED)
            .header("Server", &self.user_agent)
            .build()
    }

    fn overloaded(&self, req: &Message, peer: &Peer) {
        metrics::counter!(m::SIP_OVERLOAD_REJECTIONS_TOTAL, "reason" => "transactions")
            .increment(1);
        self.reply_stateless(req, peer, 503, "Service Unavailable");
    }

    fn handle_response(self: &Arc<Self>, resp: Message) {
        let status = resp.status().unwrap_or(0);
        metrics::counter!(m::SIP_MESSAGES_TOTAL, "direction" => "in", "method" => "response", "status" => status_class(status)).increment(1);
        let (via, cseq) = match (resp.top_via(), resp.cseq()) {
            (Ok(v), Ok(c)) => (v, c),
            _ => {
                metrics::counter!(m::SIP_PARSE_ERRORS_TOTAL, "kind" => "response").increment(1);
                return;
            }
        };
        let Some(branch) = via.branch.clone() else {
            return;
        };
        let key = TxKey {
            branch,
            method: cseq.method.as_str().to_owned(),
            sent_by: String::new(),
        };
        let verdict = self
            .core()
            .txl
            .client_response(&key, status, Instant::now());
        match verdict {
            ClientVerdict::Deliver(tx) => self
                .tu
                .on_event(self, SipEvent::Response { resp, tx: Some(tx) }),
            ClientVerdict::Absorbed(actions) => self.run(actions),
            ClientVerdict::NotFound => {
                // A retransmitted 2xx to an INVITE whose transaction is gone:
                // the dialog must ACK it again, so the TU sees it.
                if cseq.method == Method::Invite && (200..300).contains(&status) {
                    self.tu
                        .on_event(self, SipEvent::Response { resp, tx: None });
                }
            }
        }
    }

    fn on_timer(self: &Arc<Self>, now: Instant) -> Option<Instant> {
        let actions = self.core().txl.handle_timeout(now);
        self.run(actions);
        let (resends, next) = {
            let mut core = self.core();
            let resends = core.pending_2xx.handle_timeout(now);
            let next = core.next_deadline();
            core.armed = next;
            (resends, next)
        };
        if !resends.is_empty() {
            self.gauge();
        }
        for r in resends {
            match r {
                Uas2xxAction::Transmit { dest, bytes } => {
                    self.transports.send(&dest, bytes);
                }
                Uas2xxAction::GaveUp { call_id, cseq } => {
                    self.tu
                        .on_event(self, SipEvent::AckTimeout { call_id, cseq });
                }
            }
        }
        next
    }
}

async fn timer_loop(ep: std::sync::Weak<Endpoint>) {
    loop {
        let Some(me) = ep.upgrade() else { return };
        let next = me.on_timer(Instant::now());
        let wake = async {
            match next {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let wake_handle = me.wake.clone();
        let notified = wake_handle.notified();
        drop(me);
        tokio::select! {
            _ = wake => {}
            _ = notified => {}
            // Lets the loop notice a dropped endpoint.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Receives bytes from the transports.
pub struct EndpointSink(pub std::sync::Weak<Endpoint>);

impl Sink for EndpointSink {
    fn accepts(&self, addr: SocketAddr) -> bool {
        let Some(ep) = self.0.upgrade() else {
            return true;
        };
        ep.guard.as_ref().is_none_or(|g| g.accepts(addr.ip()))
    }

    fn on_message(&self, data: Bytes, peer: Peer) {
        let Some(ep) = self.0.upgrade() else { return };
        if is_keepalive(&data) {
            return;
        }
        // Blocked and flooding sources stop here, unanswered: one hash
        // lookup, before any parsing or transaction work.
        if let Some(g) = &ep.guard {
            if !g.admit(&data, peer.addr.ip()) {
                return;
            }
        }
        match Message::parse(data.clone()) {
            Ok(msg) => {
                if msg.is_request() {
                    ep.handle_request(msg, peer);
                } else {
                    ep.handle_response(msg);
                }
            }
            Err(e) => {
                metrics::counter!(m::SIP_PARSE_ERRORS_TOTAL, "kind" => "framing").increment(1);
                debug!(error = %e, from = %peer.addr, "unparseable SIP message");
                // A request whose headers can still be read gets its answer
                // (400, 505, 513); anything else is dropped.
                if let Ok(head) = Message::parse_head(data) {
                    if head.is_request()
                        && head.method() != Some(&Method::Ack)
                        && head.top_via().is_ok()
                    {
                        ep.reply_stateless(&head, &peer, e.status_code(), e.reason());
                    }
                }
            }
        }
    }
}

fn legacy_branch(req: &Message) -> String {
    // RFC 2543 peers have no magic cookie; key their transactions on what
    // identifies a request instead.
    let from_tag = req
        .from()
        .ok()
        .and_then(|f| f.tag().map(str::to_owned))
        .unwrap_or_default();
    let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
    format!(
        "legacy-{}-{}-{}",
        req.call_id().unwrap_or(""),
        cseq,
        from_tag
    )
}

pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        600..=699 => "6xx",
        _ => "other",
    }
}

pub fn method_label(m: &Method) -> &'static str {
    // Extension methods come from the network: one bounded label for all.
    match m {
        Method::Extension(_) => "other",
        known => known.static_name(),
    }
}

fn count_out_response(status: u16) {
    metrics::counter!(m::SIP_MESSAGES_TOTAL, "direction" => "out", "method" => "response", "status" => status_class(status)).increment(1);
    if status == 503 {
        metrics::counter!(m::SIP_503_SENT_TOTAL).increment(1);
    }
}
