//! SIP transactions (RFC 3261 §17, with the RFC 6026 "Accepted" state), as a
//! sans-I/O core.
//!
//! The layer never touches a socket, a clock or the SIP codec: the shell parses
//! a message, builds a [`TxKey`] (top Via branch, method, sent-by) and hands it
//! in together with the already-encoded bytes and `now`. The layer answers with
//! [`Action`]s (bytes to transmit, transactions that ended) and tells the shell
//! when to call back through [`TransactionLayer::poll_timeout`] /
//! [`TransactionLayer::handle_timeout`]. Tests drive it with virtual time.
//!
//! What it does, per RFC 3261 §17 and RFC 6026 §7–8:
//! - server INVITE: Proceeding → (2xx) Accepted for Timer L, or (300–699)
//!   Completed with Timer G retransmitting the final response over unreliable
//!   transports until the ACK arrives, Timer H giving up ([`Action::TimedOut`]),
//!   then Confirmed for Timer I. Retransmitted INVITEs are answered with the
//!   last response sent (Proceeding, Completed) or silently absorbed
//!   (Accepted, Confirmed); retransmitting a 2xx is the UAS core's job
//!   ([`Uas2xxRetransmitter`]).
//! - server non-INVITE: Trying → Proceeding → Completed for Timer J.
//! - client INVITE: Calling with Timers A/B → Proceeding → Accepted on 2xx, or
//!   Completed + Timer D on 300–699, where the ACK built by the caller
//!   ([`TransactionLayer::client_ack`]) is re-sent for every retransmitted
//!   final response.
//! - client non-INVITE: Trying/Proceeding with Timers E/F → Completed.
//! - reliable transports: no retransmission timers and nothing to absorb:
//!   Timers D (once ACKed), I, J and K are zero.
//!
//! Live and absorbing. A transaction is *live* while the TU or the network
//! still owes it something: a request the TU has not answered, a request of
//! ours with no final answer, a non-2xx answer the TU still has to ACK. Only
//! live transactions have a [`TxId`] and only they count against
//! `max_transactions`, the admission limit (beyond it new requests get
//! [`ServerVerdict::Full`], a 503). Once the final response is sent (server)
//! or ACKed (client INVITE), the transaction ends for the shell
//! ([`Action::Terminated`]) and its key moves into a compact, separately
//! bounded set (`absorb`) that keeps only what answers a retransmission,
//! until Timer L, H (then I), J or D would have ended it: server INVITEs in
//! Accepted, Completed (where Timer G still resends the non-2xx response
//! until the ACK) and Confirmed, server non-INVITEs in Completed, client
//! INVITEs in Completed. At 1,000 calls/s the two finished transactions of
//! every call lingering 32 s would otherwise fill a 50,000 limit with no
//! live work at all, and so would callers refused with 503 that never ACK.
//! Timer H no longer reports [`Action::TimedOut`]: the TU had given its
//! answer and nothing waited on it.
//!
//! Two RFC timers keep nothing: a client non-INVITE transaction ends as soon
//! as its final response arrives (Timer K only absorbs responses, and a
//! response matching no transaction is dropped the same way), and a client
//! INVITE ends as soon as it is Accepted (Timer M only passes further 2xx to
//! the TU, which the shell does for any 2xx to INVITE without a
//! transaction). Both end through a zero-length timer: `poll_timeout()`
//! returns `now` and the next `handle_timeout(now)` reports them.
//!
//! Every transaction ends with exactly one [`Action::Terminated`] or
//! [`Action::TimedOut`], except ones dropped by [`TransactionLayer::remove`].
//! Retransmissions are counted here, in plain data
//! ([`TransactionLayer::retransmissions`], [`Uas2xxRetransmitter::retransmissions`]);
//! the shell exports them as
//! `conmutador_sip_retransmissions_total{kind="request"|"response"|"ack"}`
//! and must not count `retransmission: true` again (the flag is for logging).
//!
//! Must not touch: sockets, the codec, dialogs, call state or the metrics
//! recorder.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::absorb::{Absorbing, Keep};

/// Finished transactions kept for absorbing, per live one allowed: 8 ×
/// 50,000 by default, 5,000 calls/s for the whole 32 s at two per call,
/// with room to spare. Beyond it the entry nearest its end is dropped.
pub const ABSORBING_PER_LIVE: usize = 8;

/// Expired absorbing entries are cleared in batches this far apart (a
/// lookup honours the exact deadline; this only bounds how long the memory
/// is held and how often the shell wakes for it).
const ABSORB_SWEEP: Duration = Duration::from_millis(100);

/// Identifies a transaction: RFC 3261 §17.1.3 / §17.2.3 matching.
///
/// For server transactions all three fields must agree. An ACK or CANCEL is
/// matched to its INVITE by the caller building the key with `method:
/// "INVITE"` from the ACK/CANCEL's top Via. Client transactions are matched on
/// `branch` and `method` only (the response's sent-by is our own).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxKey {
    pub branch: String,
    pub method: String,
    pub sent_by: String,
}

impl TxKey {
    pub fn new(
        branch: impl Into<String>,
        method: impl Into<String>,
        sent_by: impl Into<String>,
    ) -> Self {
        Self {
            branch: branch.into(),
            method: method.into(),
            sent_by: sent_by.into(),
        }
    }
}

/// INVITE transactions and everything else behave differently (§17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    Invite,
    NonInvite,
}

impl TxKind {
    /// `INVITE` → `Invite`, anything else → `NonInvite`. (ACK never creates a
    /// transaction; the caller routes it to [`TransactionLayer::server_ack`].)
    pub fn for_method(method: &str) -> Self {
        if method.eq_ignore_ascii_case("INVITE") {
            TxKind::Invite
        } else {
            TxKind::NonInvite
        }
    }
}

/// The RFC 3261 base timers; every other timer derives from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate (500 ms).
    pub t1: Duration,
    /// Maximum retransmission interval for non-INVITE requests and INVITE
    /// responses (4 s).
    pub t2: Duration,
    /// Maximum time a message stays in the network (5 s).
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64*T1: Timers B, F, H, J (unreliable), L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer D over an unreliable transport: at least 32 s, and never shorter
    /// than the server's 64*T1 retransmission window when T1 is raised.
    pub fn timer_d(&self) -> Duration {
        self.t1x64().max(Duration::from_secs(32))
    }
}

/// Handle to one transaction inside a [`TransactionLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

impl TxId {
    /// A made-up id, for unit tests of the layers above.
    #[cfg(test)]
    pub(crate) fn for_test(n: u64) -> TxId {
        TxId(n)
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx{}", self.0)
    }
}

/// Which side of the transaction we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// Transaction states of RFC 3261 §17 plus RFC 6026 "Accepted" of a live
/// transaction. There is no `Terminated`: a terminated transaction is
/// removed at once. A server transaction is never seen past Proceeding: with
/// its final response it moves to the absorbing set instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// Client INVITE, no response yet.
    Calling,
    /// Client or server non-INVITE, no provisional yet.
    Trying,
    Proceeding,
    /// RFC 6026: a 2xx was sent (server) or received (client).
    Accepted,
    Completed,
    /// Server INVITE after the ACK for a non-2xx final response.
    Confirmed,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<D> {
    /// Send `bytes` to `dest`. `retransmission` is informational (already
    /// counted in the metric by the layer).
    Transmit {
        dest: D,
        bytes: Bytes,
        retransmission: bool,
    },
    /// Timer B or F fired: the peer never answered. The transaction is gone.
    TimedOut { id: TxId },
    /// The transaction ended normally and its id is gone (it may still
    /// absorb retransmissions by its key, see the module docs).
    Terminated { id: TxId },
}

/// Answer to [`TransactionLayer::server_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerVerdict<D> {
    /// A new server transaction: pass the request to the TU.
    New(TxId),
    /// A retransmission: do NOT pass it to the TU; perform these actions (the
    /// last response again, or nothing).
    Retransmission(Vec<Action<D>>),
    /// The live table is full: answer 503 statelessly.
    Full,
}

/// Answer to [`TransactionLayer::server_ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckVerdict {
    /// The ACK belonged to a non-2xx final response and was consumed.
    Absorbed,
    /// No matching transaction in a state that consumes ACKs: the ACK is for a
    /// 2xx and goes to the dialog layer (RFC 6026 §8.5: also in Accepted).
    NotFound,
}

/// Answer to [`TransactionLayer::client_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientVerdict<D> {
    /// Pass the response to the TU. For an INVITE with a 300–699 status the TU
    /// must then build the ACK and hand it to [`TransactionLayer::client_ack`].
    Deliver(TxId),
    /// A retransmission or a stray response: do not pass it on; perform these
    /// actions (the ACK again for a retransmitted non-2xx, or nothing).
    Absorbed(Vec<Action<D>>),
    /// No client transaction: for a 2xx to INVITE after Timer M this is a late
    /// retransmission for the dialog layer; otherwise drop it.
    NotFound,
}

/// Why a client transaction could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("transaction table full")]
    Full,
    #[error("a client transaction with this branch and method already exists")]
    DuplicateKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    A,
    B,
    D,
    E,
    F,
    K,
    M,
}

#[derive(Debug)]
struct Tx<D> {
    role: Role,
    kind: TxKind,
    key: TxKey,
    reliable: bool,
    dest: D,
    state: TxState,
    /// Client: the request. Server: the last response sent.
    message: Option<Bytes>,
    /// Client INVITE: the ACK for a non-2xx final response.
    ack: Option<Bytes>,
    /// Current retransmission interval (Timers A, E, G).
    interval: Duration,
    /// Wheel entries of the timers armed for this transaction (at most 2).
    armed: Vec<(Instant, u64)>,
}

/// The transaction table. `D` is the shell's destination type (an address,
/// or a connection handle for TCP).
#[derive(Debug)]
pub struct TransactionLayer<D> {
    timers: Timers,
    max_transactions: usize,
    next_id: u64,
    next_seq: u64,
    txs: HashMap<TxId, Tx<D>>,
    server_index: HashMap<TxKey, TxId>,
    client_index: HashMap<(String, String), TxId>,
    wheel: BTreeMap<(Instant, u64), (TxId, Timer)>,
    /// Finished transactions that only absorb retransmissions; not counted
    /// against `max_transactions`.
    absorbing: Absorbing<D>,
    retransmitted: Retransmissions,
}

fn is_final(status: u16) -> bool {
    (200..=699).contains(&status)
}

fn valid_status(status: u16) -> bool {
    (100..=699).contains(&status)
}

/// What a retransmission resent: our request (Timers A and E), our
/// response (a peer's request came again, or Timer G), or our ACK to a
/// non-2xx final response that came again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retransmitted {
    Request = 0,
    Response = 1,
    Ack = 2,
}

/// The labels of [`Retransmitted`], in its order: the `kind` label of
/// `conmutador_sip_retransmissions_total`.
pub const RETRANSMISSION_KINDS: [&str; 3] = ["request", "response", "ack"];

/// Retransmissions sent since the core was made, by what they resent. The
/// core only counts; the shell turns the counts into metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retransmissions([u64; RETRANSMISSION_KINDS.len()]);

impl Retransmissions {
    fn count(&mut self, what: Retransmitted) {
        self.0[what as usize] += 1;
    }

    pub fn get(&self, what: Retransmitted) -> u64 {
        self.0[what as usize]
    }

    /// `(kind label, count)` for every kind, zeros included.
    pub fn by_kind(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        RETRANSMISSION_KINDS.iter().copied().zip(self.0)
    }

    /// Both cores' counts together (transactions and pending 2xx).
    pub fn plus(mut self, other: Retransmissions) -> Retransmissions {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
        self
    }
}

impl<D: Clone> TransactionLayer<D> {
    /// `max_transactions` live transactions; finished ones absorbing
    /// retransmissions up to [`ABSORBING_PER_LIVE`] times as many.
    pub fn new(timers: Timers, max_transactions: usize) -> Self {
        Self::with_absorbing(
            timers,
            max_transactions,
            max_transactions.saturating_mul(ABSORBING_PER_LIVE),
        )
    }

    /// Like [`Self::new`] with the absorbing set's own cap.
    pub fn with_absorbing(timers: Timers, max_transactions: usize, max_absorbing: usize) -> Self {
        Self {
            timers,
            max_transactions,
            next_id: 0,
            next_seq: 0,
            txs: HashMap::new(),
            server_index: HashMap::new(),
            client_index: HashMap::new(),
            wheel: BTreeMap::new(),
            absorbing: Absorbing::new(max_absorbing),
            retransmitted: Retransmissions::default(),
        }
    }

    pub fn timers(&self) -> Timers {
        self.timers
    }

    /// Live transactions, the ones `max_transactions` bounds (for the
    /// `conmutador_sip_transactions_active` gauge, which the shell sets).
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Finished transactions still absorbing retransmissions.
    pub fn absorbing_len(&self) -> usize {
        self.absorbing.len()
    }

    /// Absorbing entries dropped before their time because that set was full.
    pub fn absorbing_evicted(&self) -> u64 {
        self.absorbing.evicted()
    }

    /// Retransmissions this layer has sent since it was made.
    pub fn retransmissions(&self) -> Retransmissions {
        self.retransmitted
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    pub fn state(&self, id: TxId) -> Option<TxState> {
        self.txs.get(&id).map(|t| t.state)
    }

    pub fn role(&self, id: TxId) -> Option<Role> {
        self.txs.get(&id).map(|t| t.role)
    }

    pub fn key(&self, id: TxId) -> Option<&TxKey> {
        self.txs.get(&id).map(|t| &t.key)
    }

    /// The server transaction for `key`, e.g. the INVITE a CANCEL refers to.
    pub fn find_server(&self, key: &TxKey) -> Option<TxId> {
        self.server_index.get(key).copied()
    }

    /// The client transaction for a response's top-Via branch and CSeq method.
    pub fn find_client(&self, branch: &str, method: &str) -> Option<TxId> {
        self.client_index
            .get(&(branch.to_owned(), method.to_owned()))
            .copied()
    }

    /// Drops a transaction without any action, e.g. an INVITE client
    /// transaction the TU abandons 64*T1 after its CANCEL got no final answer
    /// (§9.1), or a server transaction whose call was torn down. Returns
    /// whether it existed.
    pub fn remove(&mut self, id: TxId) -> bool {
        self.destroy(id)
    }

    /// A request arrived (not ACK). `key.method` is the request's method.
    pub fn server_request(
        &mut self,
        key: &TxKey,
        kind: TxKind,
        reliable: bool,
        dest: D,
        now: Instant,
    ) -> ServerVerdict<D> {
        if let Some(id) = self.server_index.get(key).copied() {
            let Some(tx) = self.txs.get(&id) else {
                return ServerVerdict::Retransmission(Vec::new());
            };
            let resend = matches!(tx.state, TxState::Proceeding | TxState::Completed);
            let mut actions = Vec::new();
            if resend && let Some(bytes) = &tx.message {
                self.retransmitted.count(Retransmitted::Response);
                actions.push(Action::Transmit {
                    dest: tx.dest.clone(),
                    bytes: bytes.clone(),
                    retransmission: true,
                });
            }
            return ServerVerdict::Retransmission(actions);
        }
        let digest = self
            .absorbing
            .digest(true, &key.branch, &key.method, &key.sent_by);
        if let Some(keep) = self.absorbing.get(&digest, now) {
            let mut actions = Vec::new();
            if let Keep::Response(bytes)
            | Keep::InviteCompleted {
                response: bytes, ..
            } = keep
            {
                self.retransmitted.count(Retransmitted::Response);
                // To where the copy came from: the same Via, so the same
                // place the response first went, or a fresh connection.
                actions.push(Action::Transmit {
                    dest,
                    bytes,
                    retransmission: true,
                });
            }
            return ServerVerdict::Retransmission(actions);
        }
        if self.txs.len() >= self.max_transactions {
            return ServerVerdict::Full;
        }
        let state = match kind {
            TxKind::Invite => TxState::Proceeding,
            TxKind::NonInvite => TxState::Trying,
        };
        let id = self.insert(Tx {
            role: Role::Server,
            kind,
            key: key.clone(),
            reliable,
            dest,
            state,
            message: None,
            ack: None,
            interval: self.timers.t1,
            armed: Vec::new(),
        });
        self.server_index.insert(key.clone(), id);
        ServerVerdict::New(id)
    }

    /// An ACK arrived; `invite_key` is built from the ACK's top Via with
    /// method `INVITE`.
    pub fn server_ack(&mut self, invite_key: &TxKey, now: Instant) -> AckVerdict {
        let Some(id) = self.server_index.get(invite_key).copied() else {
            let digest = self.absorbing.digest(
                true,
                &invite_key.branch,
                &invite_key.method,
                &invite_key.sent_by,
            );
            // Completed: the ACK confirms it. Accepted: the ACK is for the
            // 2xx and goes to the dialog.
            if self.absorbing.confirm(digest, now, self.timers.t4) {
                return AckVerdict::Absorbed;
            }
            return match self.absorbing.get(&digest, now) {
                Some(Keep::InviteConfirmed) => AckVerdict::Absorbed,
                _ => AckVerdict::NotFound,
            };
        };
        let Some(tx) = self.txs.get(&id) else {
            return AckVerdict::NotFound;
        };
        if tx.kind != TxKind::Invite {
            return AckVerdict::NotFound;
        }
        // Live INVITE transactions are in Proceeding: an ACK before any
        // final response is meaningless; drop it here.
        AckVerdict::Absorbed
    }

    /// The TU sends a response on server transaction `id`. Unknown ids,
    /// invalid statuses and responses the state does not allow give no
    /// actions.
    pub fn send_response(
        &mut self,
        id: TxId,
        status: u16,
        bytes: Bytes,
        now: Instant,
    ) -> Vec<Action<D>> {
        if !valid_status(status) {
            return Vec::new();
        }
        let timers = self.timers;
        let Some(tx) = self.txs.get_mut(&id) else {
            return Vec::new();
        };
        if tx.role != Role::Server {
            return Vec::new();
        }
        let transmit = Action::Transmit {
            dest: tx.dest.clone(),
            bytes: bytes.clone(),
            retransmission: false,
        };
        match (tx.kind, tx.state) {
            (TxKind::Invite, TxState::Proceeding) => {
                if (200..300).contains(&status) {
                    // Accepted: INVITE copies are swallowed until Timer L;
                    // the 2xx itself is the UAS core's to resend.
                    let until = now + timers.t1x64();
                    self.retire(id, Some((Keep::InviteAccepted, until)));
                    return vec![transmit, Action::Terminated { id }];
                }
                if is_final(status) {
                    // Completed: the TU is done; the response is resent on
                    // Timer G and for INVITE copies until the ACK, or until
                    // Timer H gives up. That is the absorbing set's work,
                    // outside the admission limit: a peer that never ACKs
                    // (a flood, or a caller refused with 503 under load)
                    // must not fill the table that admits new calls.
                    let keep = Keep::InviteCompleted {
                        response: bytes,
                        dest: tx.dest.clone(),
                        resend_at: (!tx.reliable).then(|| now + timers.t1),
                    };
                    self.retire(id, Some((keep, now + timers.t1x64())));
                    return vec![transmit, Action::Terminated { id }];
                }
                tx.message = Some(bytes);
            }
            (TxKind::NonInvite, TxState::Trying | TxState::Proceeding) => {
                if is_final(status) {
                    // Completed: copies of the request get this response
                    // again until Timer J (zero over reliable transports).
                    let keep =
                        (!tx.reliable).then(|| (Keep::Response(bytes), now + timers.t1x64()));
                    self.retire(id, keep);
                    return vec![transmit, Action::Terminated { id }];
                }
                tx.message = Some(bytes);
                tx.state = TxState::Proceeding;
            }
            _ => return Vec::new(),
        }
        vec![transmit]
    }

    /// The TU starts a client transaction and sends `bytes` (the request).
    pub fn client_request(
        &mut self,
        key: TxKey,
        kind: TxKind,
        reliable: bool,
        dest: D,
        bytes: Bytes,
        now: Instant,
    ) -> Result<(TxId, Vec<Action<D>>), TxError> {
        let index_key = (key.branch.clone(), key.method.clone());
        if self.client_index.contains_key(&index_key) {
            return Err(TxError::DuplicateKey);
        }
        if self.txs.len() >= self.max_transactions {
            return Err(TxError::Full);
        }
        let (state, retransmit, timeout) = match kind {
            TxKind::Invite => (TxState::Calling, Timer::A, Timer::B),
            TxKind::NonInvite => (TxState::Trying, Timer::E, Timer::F),
        };
        let actions = vec![Action::Transmit {
            dest: dest.clone(),
            bytes: bytes.clone(),
            retransmission: false,
        }];
        let id = self.insert(Tx {
            role: Role::Client,
            kind,
            key,
            reliable,
            dest,
            state,
            message: Some(bytes),
            ack: None,
            interval: self.timers.t1,
            armed: Vec::new(),
        });
        self.client_index.insert(index_key, id);
        if !reliable {
            self.arm(id, retransmit, now + self.timers.t1);
        }
        self.arm(id, timeout, now + self.timers.t1x64());
        Ok((id, actions))
    }

    /// A response arrived; `key` is built from its top Via branch and its
    /// CSeq method (`sent_by` is ignored).
    pub fn client_response(&mut self, key: &TxKey, status: u16, now: Instant) -> ClientVerdict<D> {
        if !valid_status(status) {
            return ClientVerdict::NotFound;
        }
        let Some(id) = self
            .client_index
            .get(&(key.branch.clone(), key.method.clone()))
            .copied()
        else {
            let digest = self.absorbing.digest(false, &key.branch, &key.method, "");
            return match self.absorbing.get(&digest, now) {
                Some(Keep::Ack(to)) if is_final(status) && !(200..300).contains(&status) => {
                    self.retransmitted.count(Retransmitted::Ack);
                    let (dest, ack) = *to;
                    ClientVerdict::Absorbed(vec![Action::Transmit {
                        dest,
                        bytes: ack,
                        retransmission: true,
                    }])
                }
                Some(_) => ClientVerdict::Absorbed(Vec::new()),
                None => ClientVerdict::NotFound,
            };
        };
        let timers = self.timers;
        let Some(tx) = self.txs.get_mut(&id) else {
            return ClientVerdict::NotFound;
        };
        let provisional = status < 200;
        let success = (200..300).contains(&status);
        match (tx.kind, tx.state) {
            (TxKind::Invite, TxState::Calling | TxState::Proceeding) => {
                if provisional {
                    tx.state = TxState::Proceeding;
                    // Timers A and B only run in Calling.
                    self.disarm_all(id);
                } else if success {
                    // Timer M is zero: see the module docs.
                    tx.state = TxState::Accepted;
                    self.disarm_all(id);
                    self.arm(id, Timer::M, now);
                } else {
                    tx.state = TxState::Completed;
                    // Over a reliable transport the ACK itself ends the
                    // transaction; until the TU hands it over, 64*T1 bounds
                    // the wait.
                    let d = if tx.reliable {
                        timers.t1x64()
                    } else {
                        timers.timer_d()
                    };
                    self.disarm_all(id);
                    self.arm(id, Timer::D, now + d);
                }
                ClientVerdict::Deliver(id)
            }
            (TxKind::Invite, TxState::Accepted) if success => ClientVerdict::Deliver(id),
            (TxKind::Invite, TxState::Completed) if !provisional && !success => {
                let mut actions = Vec::new();
                if let Some(ack) = &tx.ack {
                    self.retransmitted.count(Retransmitted::Ack);
                    actions.push(Action::Transmit {
                        dest: tx.dest.clone(),
                        bytes: ack.clone(),
                        retransmission: true,
                    });
                }
                ClientVerdict::Absorbed(actions)
            }
            (TxKind::NonInvite, TxState::Trying | TxState::Proceeding) => {
                if provisional {
                    // Timer E keeps running; it switches to T2 when it fires.
                    tx.state = TxState::Proceeding;
                } else {
                    // Timer K is zero: see the module docs.
                    tx.state = TxState::Completed;
                    self.disarm_all(id);
                    self.arm(id, Timer::K, now);
                }
                ClientVerdict::Deliver(id)
            }
            _ => ClientVerdict::Absorbed(Vec::new()),
        }
    }

    /// The TU hands over the ACK for a 300–699 response to INVITE transaction
    /// `id`. It is sent now and again for every retransmitted final response
    /// until Timer D; over a reliable transport the transaction ends at once.
    pub fn client_ack(&mut self, id: TxId, ack: Bytes) -> Vec<Action<D>> {
        let Some(tx) = self.txs.get_mut(&id) else {
            return Vec::new();
        };
        if tx.role != Role::Client
            || tx.kind != TxKind::Invite
            || tx.state != TxState::Completed
            || tx.ack.is_some()
        {
            return Vec::new();
        }
        let actions = vec![
            Action::Transmit {
                dest: tx.dest.clone(),
                bytes: ack.clone(),
                retransmission: false,
            },
            Action::Terminated { id },
        ];
        // Over UDP the ACK is re-sent for repeated final responses until
        // Timer D, armed when the final response came.
        let keep = match tx.armed.iter().map(|(at, _)| *at).max() {
            Some(until) if !tx.reliable => {
                Some((Keep::Ack(Box::new((tx.dest.clone(), ack))), until))
            }
            _ => None,
        };
        self.retire(id, keep);
        actions
    }

    /// The earliest deadline at which [`Self::handle_timeout`] has work
    /// (for absorbing entries that expired, up to 100 ms late: they are
    /// cleared in batches).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.wheel.first_key_value().map(|((at, _), _)| *at);
        let sweep = self.absorbing.next_deadline().map(|t| t + ABSORB_SWEEP);
        [timer, sweep, self.absorbing.next_resend()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires every timer due at or before `now`, in deadline order, and
    /// forgets absorbing entries past their deadline.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action<D>> {
        self.absorbing.expire(now);
        let mut actions = Vec::new();
        for (dest, bytes) in self
            .absorbing
            .due_resends(now, self.timers.t1, self.timers.t2)
        {
            self.retransmitted.count(Retransmitted::Response);
            actions.push(Action::Transmit {
                dest,
                bytes,
                retransmission: true,
            });
        }
        while let Some(entry) = self.wheel.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (slot, (id, timer)) = entry.remove_entry();
            if let Some(tx) = self.txs.get_mut(&id) {
                tx.armed.retain(|s| *s != slot);
            }
            self.fire(id, timer, now, &mut actions);
        }
        actions
    }

    fn fire(&mut self, id: TxId, timer: Timer, now: Instant, actions: &mut Vec<Action<D>>) {
        let timers = self.timers;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        match (timer, tx.state) {
            (Timer::A, TxState::Calling) => {
                // Timer A doubles without the T2 cap (§17.1.1.2).
                tx.interval = tx.interval.saturating_mul(2);
                let next = tx.interval;
                Self::retransmit(tx, &mut self.retransmitted, actions);
                self.arm(id, Timer::A, now + next);
            }
            (Timer::E, TxState::Trying | TxState::Proceeding) => {
                tx.interval = if tx.state == TxState::Trying {
                    tx.interval.saturating_mul(2).min(timers.t2)
                } else {
                    timers.t2
                };
                let next = tx.interval;
                Self::retransmit(tx, &mut self.retransmitted, actions);
                self.arm(id, Timer::E, now + next);
            }
            (Timer::B, TxState::Calling) | (Timer::F, TxState::Trying | TxState::Proceeding) => {
                self.destroy(id);
                actions.push(Action::TimedOut { id });
            }
            (Timer::D | Timer::K, TxState::Completed) | (Timer::M, TxState::Accepted) => {
                self.destroy(id);
                actions.push(Action::Terminated { id });
            }
            // A timer left over from an earlier state: transitions disarm
            // their timers, so this is only reachable if that invariant breaks;
            // ignoring it is the safe answer.
            _ => {}
        }
    }

    /// Resends our request (Timers A and E).
    fn retransmit(tx: &Tx<D>, counts: &mut Retransmissions, actions: &mut Vec<Action<D>>) {
        if let Some(bytes) = &tx.message {
            counts.count(Retransmitted::Request);
            actions.push(Action::Transmit {
                dest: tx.dest.clone(),
                bytes: bytes.clone(),
                retransmission: true,
            });
        }
    }

    fn insert(&mut self, tx: Tx<D>) -> TxId {
        self.next_id += 1;
        let id = TxId(self.next_id);
        self.txs.insert(id, tx);
        id
    }

    fn arm(&mut self, id: TxId, timer: Timer, at: Instant) {
        self.next_seq += 1;
        let slot = (at, self.next_seq);
        if let Some(tx) = self.txs.get_mut(&id) {
            tx.armed.push(slot);
            self.wheel.insert(slot, (id, timer));
        }
    }

    fn disarm_all(&mut self, id: TxId) {
        if let Some(tx) = self.txs.get_mut(&id) {
            for slot in tx.armed.drain(..) {
                self.wheel.remove(&slot);
            }
        }
    }

    /// Ends live transaction `id`; with `keep`, its key goes on absorbing
    /// retransmissions as `keep` says until the deadline.
    fn retire(&mut self, id: TxId, keep: Option<(Keep<D>, Instant)>) {
        if let (Some(tx), Some((keep, until))) = (self.txs.get(&id), keep) {
            let digest = match tx.role {
                Role::Server => {
                    self.absorbing
                        .digest(true, &tx.key.branch, &tx.key.method, &tx.key.sent_by)
                }
                Role::Client => self
                    .absorbing
                    .digest(false, &tx.key.branch, &tx.key.method, ""),
            };
            self.absorbing.insert(digest, keep, until);
        }
        self.destroy(id);
    }

    fn destroy(&mut self, id: TxId) -> bool {
        self.disarm_all(id);
        let Some(tx) = self.txs.remove(&id) else {
            return false;
        };
        match tx.role {
            Role::Server => {
                self.server_index.remove(&tx.key);
            }
            Role::Client => {
                self.client_index.remove(&(tx.key.branch, tx.key.method));
            }
        }
        true
    }
}

/// What [`Uas2xxRetransmitter`] asks the shell to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uas2xxAction<D> {
    /// Send the 2xx again (already counted in the retransmission metric).
    Transmit { dest: D, bytes: Bytes },
    /// No ACK within 64*T1: the dialog is confirmed but the session must end;
    /// the call layer sends BYE (RFC 3261 §13.3.1.4).
    GaveUp { call_id: String, cseq: u32 },
}

#[derive(Debug)]
struct Pending2xx<D> {
    dest: D,
    bytes: Bytes,
    interval: Duration,
    give_up: Instant,
    slot: (Instant, u64),
}

/// The UAS core's 2xx retransmission (RFC 3261 §13.3.1.4): after the INVITE
/// server transaction moved to Accepted, the 2xx is resent at T1, doubling up
/// to T2, until the ACK (same Call-ID and CSeq number) arrives or 64*T1 passes.
///
/// It retransmits over every transport: the 2xx is end to end and may cross
/// an unreliable hop beyond the first one, and §13.3.1.4 makes no exception
/// for reliable transports. Keyed by (Call-ID, CSeq number), bounded.
#[derive(Debug)]
pub struct Uas2xxRetransmitter<D> {
    timers: Timers,
    max_entries: usize,
    next_seq: u64,
    entries: HashMap<(String, u32), Pending2xx<D>>,
    wheel: BTreeMap<(Instant, u64), (String, u32)>,
    retransmitted: Retransmissions,
}

impl<D: Clone> Uas2xxRetransmitter<D> {
    pub fn new(timers: Timers, max_entries: usize) -> Self {
        Self {
            timers,
            max_entries,
            next_seq: 0,
            entries: HashMap::new(),
            wheel: BTreeMap::new(),
            retransmitted: Retransmissions::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// 2xx retransmissions sent since this was made (all `response`).
    pub fn retransmissions(&self) -> Retransmissions {
        self.retransmitted
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Starts retransmitting `bytes` (already sent once through the
    /// transaction layer). Starting again for the same key replaces the
    /// response and restarts the schedule.
    pub fn start(
        &mut self,
        call_id: &str,
        cseq: u32,
        dest: D,
        bytes: Bytes,
        now: Instant,
    ) -> Result<(), TxError> {
        let key = (call_id.to_owned(), cseq);
        if let Some(old) = self.entries.remove(&key) {
            self.wheel.remove(&old.slot);
        } else if self.entries.len() >= self.max_entries {
            return Err(TxError::Full);
        }
        let give_up = now + self.timers.t1x64();
        let first = (now + self.timers.t1).min(give_up);
        self.next_seq += 1;
        let slot = (first, self.next_seq);
        self.wheel.insert(slot, key.clone());
        self.entries.insert(
            key,
            Pending2xx {
                dest,
                bytes,
                interval: self.timers.t1,
                give_up,
                slot,
            },
        );
        Ok(())
    }

    /// The ACK for (Call-ID, CSeq) arrived: stop. Returns whether a 2xx was
    /// pending (false for an ACK retransmission or a stray ACK).
    pub fn ack(&mut self, call_id: &str, cseq: u32) -> bool {
        match self.entries.remove(&(call_id.to_owned(), cseq)) {
            Some(p) => {
                self.wheel.remove(&p.slot);
                true
            }
            None => false,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wheel.first_key_value().map(|((at, _), _)| *at)
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Uas2xxAction<D>> {
        let mut actions = Vec::new();
        while let Some(entry) = self.wheel.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (_, key) = entry.remove_entry();
            let Some(p) = self.entries.get_mut(&key) else {
                continue;
            };
            if now >= p.give_up {
                self.entries.remove(&key);
                actions.push(Uas2xxAction::GaveUp {
                    call_id: key.0,
                    cseq: key.1,
                });
                continue;
            }
            self.retransmitted.count(Retransmitted::Response);
            actions.push(Uas2xxAction::Transmit {
                dest: p.dest.clone(),
                bytes: p.bytes.clone(),
            });
            p.interval = p.interval.saturating_mul(2).min(self.timers.t2);
            self.next_seq += 1;
            p.slot = ((now + p.interval).min(p.give_up), self.next_seq);
            self.wheel.insert(p.slot, key);
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Dest = &'static str;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn key(method: &str) -> TxKey {
        TxKey::new("z9hG4bK-1", method, "10.0.0.1:5060")
    }

    fn layer() -> TransactionLayer<Dest> {
        TransactionLayer::new(Timers::default(), 16)
    }

    fn transmits(actions: &[Action<Dest>]) -> Vec<(Bytes, bool)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Transmit {
                    bytes,
                    retransmission,
                    ..
                } => Some((bytes.clone(), *retransmission)),
                _ => None,
            })
            .collect()
    }

    /// Steps virtual time through every deadline up to `until`, recording
    /// (offset from `t0`, action).
    fn run_until(
        l: &mut TransactionLayer<Dest>,
        t0: Instant,
        until: Duration,
    ) -> Vec<(Duration, Action<Dest>)> {
        let mut out = Vec::new();
        while let Some(at) = l.poll_timeout() {
            if at > t0 + until {
                break;
            }
            for a in l.handle_timeout(at) {
                out.push((at - t0, a));
            }
        }
        out
    }

    fn new_server(
        l: &mut TransactionLayer<Dest>,
        method: &str,
        reliable: bool,
        now: Instant,
    ) -> TxId {
        match l.server_request(
            &key(method),
            TxKind::for_method(method),
            reliable,
            "peer",
            now,
        ) {
            ServerVerdict::New(id) => id,
            other => panic!("expected New, got {other:?}"),
        }
    }

    // ---- server INVITE ----

    #[test]
    fn server_invite_retransmission_before_any_response_is_absorbed_silently() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_server(&mut l, "INVITE", false, t0);
        assert_eq!(l.state(id), Some(TxState::Proceeding));
        let v = l.server_request(&key("INVITE"), TxKind::Invite, false, "peer", t0);
        assert_eq!(v, ServerVerdict::Retransmission(vec![]));
        assert_eq!(l.poll_timeout(), None, "Proceeding has no timers");
    }

    #[test]
    fn server_invite_retransmission_gets_last_provisional() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_server(&mut l, "INVITE", false, t0);
        let a = l.send_response(id, 100, Bytes::from_static(b"100"), t0);
        assert_eq!(transmits(&a), vec![(Bytes::from_static(b"100"), false)]);
        let a = l.send_response(id, 180, Bytes::from_static(b"180"), t0);
        assert_eq!(transmits(&a), vec![(Bytes::from_static(b"180"), false)]);
        match l.server_request(&key("INVITE"), TxKind::Invite, false, "peer", t0 + ms(10)) {
            ServerVerdict::Retransmission(a) => {
                assert_eq!(transmits(&a), vec![(Bytes::from_static(b"180"), true)])
            }
            other => panic!("{other:?}"),
        }
        let by_kind: Vec<_> = l.retransmissions().by_kind().collect();
        assert_eq!(by_kind, [("request", 0), ("response", 1), ("ack", 0)]);
    }

    #[test]
    fn server_invite_non2xx_timer_g_doubles_to_t2_then_timer_h_ends_it() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_server(&mut l, "INVITE", false, t0);
        let a = l.send_response(id, 486, Bytes::from_static(b"486"), t0);
        // Sent, and out of the live table: the rest is the absorbing set's.
        assert_eq!(transmits(&a).len(), 1);
        assert_eq!(a.last(), Some(&Action::Terminated { id }));
        assert_eq!((l.len(), l.absorbing_len()), (0, 1));
        let fired = run_until(&mut l, t0, Duration::from_secs(40));
        let resend_at: Vec<u64> = fired
            .iter()
            .filter(|(_, a)| {
                matches!(
                    a,
                    Action::Transmit {
                        retransmission: true,
                        ..
                    }
                )
            })
            .map(|(t, _)| t.as_millis() as u64)
            .collect();
        // G: 0.5, +1, +2, +4 (capped at T2), +4 ... until H at 32 s, which
        // reports nothing: the TU had answered and nothing waits on it.
        assert_eq!(
            resend_at,
            vec![
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(fired.len(), resend_at.len());
        assert!(fired.iter().all(|(_, a)| matches!(
            a,
            Action::Transmit { dest: "peer", bytes, .. } if bytes == &Bytes::from_static(b"486")
        )));
        assert_eq!(l.absorbing_len(), 0);
        assert_eq!(l.poll_timeout(), None);
    }

    #[test]
    fn server_invite_ack_confirms_and_timer_i_ends_absorbing() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_server(&mut l, "INVITE", false, t0);
        l.send_response(id, 404, Bytes::from_static(b"404"), t0);
        // One Timer G retransmission, then the ACK.
        assert_eq!(transmits(&l.handle_timeout(t0 + ms(500))).len(), 1);
        assert_eq!(
            l.server_ack(&key("INVITE"), t0 + ms(600)),
            AckVerdict::Absorbed
        );
        // G and H are gone; Confirmed absorbs for Timer I = T4 from the ACK.
        assert!(l.is_empty());
        assert_eq!(l.absorbing_len(), 1);
        assert!(run_until(&mut l, t0, ms(5599)).is_empty(), "no more G");
        // ACK retransmissions and INVITE retransmissions are absorbed silently.
        assert_eq!(
            l.server_ack(&key("INVITE"), t0 + ms(700)),
            AckVerdict::Absorbed
        );
        assert_eq!(
            l.server_request(&key("INVITE"), TxKind::Invite, false, "peer", t0 + ms(800)),
            ServerVerdict::Retransmission(vec![])
        );
        assert_eq!(
            l.server_ack(&key("INVITE"), t0 + ms(5599)),
            AckVerdict::Absorbed
        );
        assert!(l.handle_timeout(t0 + ms(5600)).is_empty());
        assert_eq!(
            l.server_ack(&key("INVITE"), t0 + ms(5600)),
            AckVerdict::NotFound
        );
        assert_eq!(l.absorbing_len(), 0);
        assert!(matches!(
            l.server_request(&key("INVITE"), TxKind::Invite, false, "peer", t0 + ms(5600)),
            ServerVerdict::New(_)
        ));
    }

    #[test]
    fn server_invite_completed_resends_final_on_request_retransmission() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_server(&mut l, "INVITE", false, t0);
        l.send_response(id, 100, Bytes::from_static(b"100"), t0);
        l.send_response(id, 603, Bytes::from_static(b"603"), t0);
        match l.server_request(&key("INVITE"), TxKind::Invite, false, "peer", t0 + ms(100)) {
            ServerVerdict::Retransmission(a) => {
                assert_eq!(transmits(&a), vec![(Bytes::from_static(b"603"), true)])
            }
            other => panic!("{other:?}"),
        }
        // The id is gone: further responses from the TU go nowhere.
        assert!(
            l.send_response(id, 500, Bytes::from_static(b"500"), t0)
                .is_empty()
        );
    }

    #[test]
    fn server_invite_reliable_no_timer_g_and_nothing_after_the_ack() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_server(&mut l, "INVITE", true, t0);
        let a = l.send_response(id, 486, Bytes::from_static(b"486"), t0);
        assert_eq!(a.last(), Some(&Action::Terminated { id }));
        // No Timer G: only the absorbing deadline (Timer H) is left.
        assert!(run_until(&mut l, t0, Duration::from_secs(31)).is_empty());
        assert_eq!(
            l.server_ack(&key("INVITE"), t0 + ms(50)),
            AckVerdict::Absorbed
        );
        // Nothing to absorb over a reliable transport once ACKed.
        assert_eq!(l.absorbing_len(), 0);
        assert!(run_until(&mut l, t0, Duration::from_secs(60)).is_empty());
        assert_eq!(l.poll_timeout(), None);
    }

    #[test]
    fn server_invite_reliable_without_ack_is_bounded_by_timer_h() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_server(&mut l, "INVITE", true, t0);
        l.send_response(id, 500, Bytes::from_static(b"500"), t0);
        assert_eq!(l.absorbing_len(), 1);
        assert!(run_until(&mut l, t0, Duration::from_secs(60)).is_empty());
        assert_eq!(l.absorbing_len(), 0);
    }

    #[test]
    fn refused_invites_that_are_never_acked_do_not_fill_the_live_table() {
        // Callers refused with 503 under load that never ACK: each answer is
        // resent for 32 s, but outside the admission limit, and bounded.
        let t0 = Instant::now();
        let mut l: TransactionLayer<Dest> =
            TransactionLayer::with_absorbing(Timers::default(), 4, 100);
        for n in 0..1000u64 {
            let now = t0 + ms(n);
            l.handle_timeout(now);
            let k = TxKey::new(format!("r{n}"), "INVITE", "h");
            let ServerVerdict::New(id) = l.server_request(&k, TxKind::Invite, false, "peer", now)
            else {
                panic!("INVITE {n} refused");
            };
            l.send_response(id, 503, Bytes::from_static(b"503"), now);
            assert_eq!(l.len(), 0);
            assert!(l.absorbing_len() <= 100);
        }
        assert_eq!(l.absorbing_evicted(), 900);
    }

    #[test]
    fn server_invite_2xx_accepted_absorbs_retransmissions_and_timer_l_ends() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_server(&mut l, "INVITE", false, t0);
        l.send_response(id, 180, Bytes::from_static(b"180"), t0);
        let a = l.send_response(id, 200, Bytes::from_static(b"200"), t0 + ms(100));
        // Sent, and the transaction is no longer live: only absorbing is left.
        assert_eq!(
            a,
            vec![
                Action::Transmit {
                    dest: "peer",
                    bytes: Bytes::from_static(b"200"),
                    retransmission: false
                },
                Action::Terminated { id }
            ]
        );
        assert_eq!(l.state(id), None);
        assert_eq!((l.len(), l.absorbing_len()), (0, 1));
        // Retransmitted INVITE: absorbed, no resend (the UAS core resends 2xx).
        assert_eq!(
            l.server_request(&key("INVITE"), TxKind::Invite, false, "peer", t0 + ms(200)),
            ServerVerdict::Retransmission(vec![])
        );
        // An ACK that matches in Accepted goes to the TU (RFC 6026 §8.5).
        assert_eq!(
            l.server_ack(&key("INVITE"), t0 + ms(300)),
            AckVerdict::NotFound
        );
        // The id is gone: nothing more goes out through it.
        assert!(
            l.send_response(id, 486, Bytes::from_static(b"486"), t0)
                .is_empty()
        );
        // Timer L = 64*T1 from the 2xx; nothing fires, nothing is resent.
        assert_eq!(
            l.server_request(
                &key("INVITE"),
                TxKind::Invite,
                false,
                "peer",
                t0 + ms(32_099)
            ),
            ServerVerdict::Retransmission(vec![])
        );
        assert!(run_until(&mut l, t0, Duration::from_secs(60)).is_empty());
        assert!(matches!(
            l.server_request(
                &key("INVITE"),
                TxKind::Invite,
                false,
                "peer",
                t0 + ms(32_100)
            ),
            ServerVerdict::New(_)
        ));
    }

    // ---- server non-INVITE ----

    #[test]
    fn server_non_invite_trying_absorbs_then_proceeding_resends_provisional() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_server(&mut l, "REGISTER", false, t0);
        assert_eq!(l.state(id), Some(TxState::Trying));
        assert_eq!(
            l.server_request(&key("REGISTER"), TxKind::NonInvite, false, "peer", t0),
            ServerVerdict::Retransmission(vec![])
        );
        l.send_response(id, 100, Bytes::from_static(b"100"), t0);
        assert_eq!(l.state(id), Some(TxState::Proceeding));
        match l.server_request(&key("REGISTER"), TxKind::NonInvite, false, "peer", t0) {
            ServerVerdict::Retransmission(a) => {
                assert_eq!(transmits(&a), vec![(Bytes::from_static(b"100"), true)])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_non_invite_completed_resends_final_and_timer_j_ends() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_server(&mut l, "OPTIONS", false, t0);
        let a = l.send_response(id, 200, Bytes::from_static(b"200"), t0);
        assert_eq!(
            a.last(),
            Some(&Action::Terminated { id }),
            "Completed is absorbing only"
        );
        assert_eq!((l.len(), l.absorbing_len()), (0, 1));
        // The final response again, to where the copy came from.
        for at in [ms(500), ms(31_999)] {
            assert_eq!(
                l.server_request(&key("OPTIONS"), TxKind::NonInvite, false, "peer2", t0 + at),
                ServerVerdict::Retransmission(vec![Action::Transmit {
                    dest: "peer2",
                    bytes: Bytes::from_static(b"200"),
                    retransmission: true
                }])
            );
        }
        assert!(l.send_response(id, 500, Bytes::new(), t0).is_empty());
        assert!(run_until(&mut l, t0, Duration::from_secs(60)).is_empty());
        assert_eq!(l.absorbing_len(), 0);
        // After Timer J the same key is a new transaction.
        assert!(matches!(
            l.server_request(
                &key("OPTIONS"),
                TxKind::NonInvite,
                false,
                "peer",
                t0 + Duration::from_secs(32)
            ),
            ServerVerdict::New(_)
        ));
    }

    #[test]
    fn server_non_invite_reliable_timer_j_is_zero() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_server(&mut l, "BYE", true, t0);
        let a = l.send_response(id, 200, Bytes::from_static(b"200"), t0 + ms(5));
        assert_eq!(a.last(), Some(&Action::Terminated { id }));
        assert_eq!((l.len(), l.absorbing_len()), (0, 0));
        assert_eq!(l.poll_timeout(), None);
    }

    #[test]
    fn server_invalid_status_and_unknown_id_are_ignored() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_server(&mut l, "INVITE", false, t0);
        assert!(l.send_response(id, 99, Bytes::new(), t0).is_empty());
        assert!(l.send_response(id, 700, Bytes::new(), t0).is_empty());
        assert!(l.send_response(TxId(999), 200, Bytes::new(), t0).is_empty());
        assert_eq!(l.state(id), Some(TxState::Proceeding));
    }

    // ---- client INVITE ----

    fn new_client(
        l: &mut TransactionLayer<Dest>,
        method: &str,
        reliable: bool,
        now: Instant,
    ) -> TxId {
        let (id, a) = l
            .client_request(
                key(method),
                TxKind::for_method(method),
                reliable,
                "peer",
                Bytes::from_static(b"REQ"),
                now,
            )
            .expect("room");
        assert_eq!(transmits(&a), vec![(Bytes::from_static(b"REQ"), false)]);
        id
    }

    #[test]
    fn client_invite_timer_a_doubles_without_cap_and_timer_b_times_out() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_client(&mut l, "INVITE", false, t0);
        assert_eq!(l.state(id), Some(TxState::Calling));
        let fired = run_until(&mut l, t0, Duration::from_secs(60));
        let resend_at: Vec<u64> = fired
            .iter()
            .filter(|(_, a)| {
                matches!(
                    a,
                    Action::Transmit {
                        retransmission: true,
                        ..
                    }
                )
            })
            .map(|(t, _)| t.as_millis() as u64)
            .collect();
        // 0.5, 1.5, 3.5, 7.5, 15.5, 31.5: six retransmissions (A is not capped).
        assert_eq!(resend_at, vec![500, 1500, 3500, 7500, 15500, 31500]);
        // The layer's own figures say the same, with no recorder anywhere.
        let counted = l.retransmissions();
        assert_eq!(
            (
                counted.get(Retransmitted::Request),
                counted.get(Retransmitted::Response),
                counted.get(Retransmitted::Ack)
            ),
            (6, 0, 0)
        );
        assert_eq!(
            fired.last(),
            Some(&(Duration::from_secs(32), Action::TimedOut { id }))
        );
        assert!(l.is_empty());
    }

    #[test]
    fn client_invite_reliable_only_timer_b() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_client(&mut l, "INVITE", true, t0);
        let fired = run_until(&mut l, t0, Duration::from_secs(60));
        assert_eq!(
            fired,
            vec![(Duration::from_secs(32), Action::TimedOut { id })]
        );
    }

    #[test]
    fn client_invite_provisional_stops_a_and_b() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_client(&mut l, "INVITE", false, t0);
        assert_eq!(
            l.client_response(&key("INVITE"), 180, t0 + ms(100)),
            ClientVerdict::Deliver(id)
        );
        assert_eq!(l.state(id), Some(TxState::Proceeding));
        assert_eq!(l.poll_timeout(), None);
        assert_eq!(
            l.client_response(&key("INVITE"), 183, t0 + ms(200)),
            ClientVerdict::Deliver(id)
        );
    }

    #[test]
    fn client_invite_non2xx_ack_resent_for_retransmitted_final_and_timer_d() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_client(&mut l, "INVITE", false, t0);
        l.client_response(&key("INVITE"), 100, t0 + ms(50));
        assert_eq!(
            l.client_response(&key("INVITE"), 486, t0 + ms(1000)),
            ClientVerdict::Deliver(id)
        );
        assert_eq!(l.state(id), Some(TxState::Completed));
        // A retransmission before the TU handed over the ACK: nothing to send.
        assert_eq!(
            l.client_response(&key("INVITE"), 486, t0 + ms(1001)),
            ClientVerdict::Absorbed(vec![])
        );
        let a = l.client_ack(id, Bytes::from_static(b"ACK"));
        // Once ACKed, only absorbing is left: the id ends.
        assert_eq!(
            a,
            vec![
                Action::Transmit {
                    dest: "peer",
                    bytes: Bytes::from_static(b"ACK"),
                    retransmission: false
                },
                Action::Terminated { id }
            ]
        );
        assert_eq!((l.len(), l.absorbing_len()), (0, 1));
        // A second ACK from the TU is refused.
        assert!(l.client_ack(id, Bytes::from_static(b"ACK2")).is_empty());
        // Timer D: 32 s from the final response, the ACK for every copy.
        for at in [ms(1500), ms(32_999)] {
            assert_eq!(
                l.client_response(&key("INVITE"), 486, t0 + at),
                ClientVerdict::Absorbed(vec![Action::Transmit {
                    dest: "peer",
                    bytes: Bytes::from_static(b"ACK"),
                    retransmission: true
                }])
            );
        }
        assert_eq!(l.retransmissions().get(Retransmitted::Ack), 2);
        // Provisionals and 2xx in Completed are dropped.
        assert_eq!(
            l.client_response(&key("INVITE"), 180, t0 + ms(1600)),
            ClientVerdict::Absorbed(vec![])
        );
        assert!(run_until(&mut l, t0, Duration::from_secs(60)).is_empty());
        assert_eq!(
            l.client_response(&key("INVITE"), 486, t0 + ms(33_000)),
            ClientVerdict::NotFound
        );
    }

    #[test]
    fn client_invite_non2xx_reliable_ack_terminates_at_once() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_client(&mut l, "INVITE", true, t0);
        assert_eq!(
            l.client_response(&key("INVITE"), 503, t0 + ms(10)),
            ClientVerdict::Deliver(id)
        );
        let a = l.client_ack(id, Bytes::from_static(b"ACK"));
        assert_eq!(
            a,
            vec![
                Action::Transmit {
                    dest: "peer",
                    bytes: Bytes::from_static(b"ACK"),
                    retransmission: false
                },
                Action::Terminated { id }
            ]
        );
        assert!(l.is_empty());
        assert_eq!(l.poll_timeout(), None);
    }

    #[test]
    fn client_invite_non2xx_reliable_without_ack_is_bounded() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_client(&mut l, "INVITE", true, t0);
        l.client_response(&key("INVITE"), 404, t0);
        let fired = run_until(&mut l, t0, Duration::from_secs(60));
        assert_eq!(
            fired,
            vec![(Duration::from_secs(32), Action::Terminated { id })]
        );
    }

    #[test]
    fn client_invite_2xx_ends_at_once_and_later_2xx_go_on_without_it() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_client(&mut l, "INVITE", false, t0);
        assert_eq!(
            l.client_response(&key("INVITE"), 200, t0 + ms(700)),
            ClientVerdict::Deliver(id)
        );
        assert_eq!(l.state(id), Some(TxState::Accepted));
        // Until the zero-length Timer M runs, a forked 2xx still names it.
        assert_eq!(
            l.client_response(&key("INVITE"), 200, t0 + ms(700)),
            ClientVerdict::Deliver(id)
        );
        assert_eq!(l.poll_timeout(), Some(t0 + ms(700)));
        let fired = run_until(&mut l, t0, Duration::from_secs(60));
        assert_eq!(fired, vec![(ms(700), Action::Terminated { id })]);
        assert_eq!((l.len(), l.absorbing_len()), (0, 0));
        // Later 2xx are NotFound: the shell hands a 2xx to INVITE without a
        // transaction to the TU, which ACKs each; anything else is dropped.
        assert_eq!(
            l.client_response(&key("INVITE"), 200, t0 + ms(1200)),
            ClientVerdict::NotFound
        );
        assert_eq!(
            l.client_response(&key("INVITE"), 486, t0 + ms(1300)),
            ClientVerdict::NotFound
        );
    }

    // ---- client non-INVITE ----

    #[test]
    fn client_non_invite_timer_e_caps_at_t2_and_timer_f_times_out() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_client(&mut l, "OPTIONS", false, t0);
        assert_eq!(l.state(id), Some(TxState::Trying));
        let fired = run_until(&mut l, t0, Duration::from_secs(60));
        let resend_at: Vec<u64> = fired
            .iter()
            .filter(|(_, a)| {
                matches!(
                    a,
                    Action::Transmit {
                        retransmission: true,
                        ..
                    }
                )
            })
            .map(|(t, _)| t.as_millis() as u64)
            .collect();
        assert_eq!(
            resend_at,
            vec![
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(
            fired.last(),
            Some(&(Duration::from_secs(32), Action::TimedOut { id }))
        );
    }

    #[test]
    fn client_non_invite_proceeding_retransmits_at_t2() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_client(&mut l, "BYE", false, t0);
        // First E at 0.5 s (interval becomes 1 s), then a 100 Trying.
        assert_eq!(transmits(&l.handle_timeout(t0 + ms(500))).len(), 1);
        assert_eq!(
            l.client_response(&key("BYE"), 100, t0 + ms(600)),
            ClientVerdict::Deliver(id)
        );
        assert_eq!(l.state(id), Some(TxState::Proceeding));
        let fired = run_until(&mut l, t0, Duration::from_secs(60));
        let resend_at: Vec<u64> = fired
            .iter()
            .filter(|(_, a)| matches!(a, Action::Transmit { .. }))
            .map(|(t, _)| t.as_millis() as u64)
            .collect();
        // The already-armed E fires at 1.5 s, then every T2.
        assert_eq!(
            resend_at,
            vec![1500, 5500, 9500, 13500, 17500, 21500, 25500, 29500]
        );
        assert_eq!(
            fired.last(),
            Some(&(Duration::from_secs(32), Action::TimedOut { id }))
        );
    }

    #[test]
    fn client_non_invite_ends_with_its_final_response() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_client(&mut l, "REGISTER", false, t0);
        assert_eq!(
            l.client_response(&key("REGISTER"), 401, t0 + ms(100)),
            ClientVerdict::Deliver(id)
        );
        assert_eq!(l.state(id), Some(TxState::Completed));
        // Zero-length Timer K: a copy of the response then matches nothing
        // and is dropped, as Completed would have absorbed it.
        let fired = run_until(&mut l, t0, Duration::from_secs(60));
        assert_eq!(fired, vec![(ms(100), Action::Terminated { id })]);
        assert_eq!((l.len(), l.absorbing_len()), (0, 0));
        assert_eq!(
            l.client_response(&key("REGISTER"), 401, t0 + ms(200)),
            ClientVerdict::NotFound
        );
    }

    #[test]
    fn client_non_invite_reliable_no_e_and_zero_k() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_client(&mut l, "OPTIONS", true, t0);
        assert_eq!(
            l.poll_timeout(),
            Some(t0 + Duration::from_secs(32)),
            "only F"
        );
        l.client_response(&key("OPTIONS"), 200, t0 + ms(20));
        assert_eq!(l.poll_timeout(), Some(t0 + ms(20)));
        assert_eq!(
            l.handle_timeout(t0 + ms(20)),
            vec![Action::Terminated { id }]
        );
    }

    #[test]
    fn client_non_invite_reliable_timer_f() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_client(&mut l, "OPTIONS", true, t0);
        let fired = run_until(&mut l, t0, Duration::from_secs(60));
        assert_eq!(
            fired,
            vec![(Duration::from_secs(32), Action::TimedOut { id })]
        );
    }

    #[test]
    fn client_response_matching_ignores_sent_by_and_unknown_is_not_found() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_client(&mut l, "OPTIONS", false, t0);
        let other_sent_by = TxKey::new("z9hG4bK-1", "OPTIONS", "elsewhere");
        assert_eq!(
            l.client_response(&other_sent_by, 200, t0),
            ClientVerdict::Deliver(id)
        );
        assert_eq!(
            l.client_response(&TxKey::new("z9hG4bK-2", "OPTIONS", ""), 200, t0),
            ClientVerdict::NotFound
        );
        assert_eq!(
            l.client_response(&key("OPTIONS"), 42, t0),
            ClientVerdict::NotFound
        );
        assert_eq!(l.find_client("z9hG4bK-1", "OPTIONS"), Some(id));
    }

    #[test]
    fn client_duplicate_key_rejected() {
        let t0 = Instant::now();
        let mut l = layer();
        new_client(&mut l, "OPTIONS", false, t0);
        assert_eq!(
            l.client_request(
                key("OPTIONS"),
                TxKind::NonInvite,
                false,
                "p",
                Bytes::new(),
                t0
            )
            .map(|(id, _)| id),
            Err(TxError::DuplicateKey)
        );
    }

    // ---- table ----

    #[test]
    fn table_full_for_server_and_client_and_frees_on_termination() {
        let t0 = Instant::now();
        let mut l: TransactionLayer<Dest> = TransactionLayer::new(Timers::default(), 2);
        let a = match l.server_request(
            &TxKey::new("b1", "BYE", "x"),
            TxKind::NonInvite,
            true,
            "p",
            t0,
        ) {
            ServerVerdict::New(id) => id,
            other => panic!("{other:?}"),
        };
        assert!(matches!(
            l.server_request(
                &TxKey::new("b2", "BYE", "x"),
                TxKind::NonInvite,
                true,
                "p",
                t0
            ),
            ServerVerdict::New(_)
        ));
        assert_eq!(
            l.server_request(
                &TxKey::new("b3", "BYE", "x"),
                TxKind::NonInvite,
                true,
                "p",
                t0
            ),
            ServerVerdict::Full
        );
        assert_eq!(
            l.client_request(
                TxKey::new("c1", "BYE", "x"),
                TxKind::NonInvite,
                true,
                "p",
                Bytes::new(),
                t0
            )
            .map(|(id, _)| id),
            Err(TxError::Full)
        );
        // A retransmission of a known request is still recognised when full.
        assert_eq!(
            l.server_request(
                &TxKey::new("b1", "BYE", "x"),
                TxKind::NonInvite,
                true,
                "p",
                t0
            ),
            ServerVerdict::Retransmission(vec![])
        );
        let done = l.send_response(a, 200, Bytes::new(), t0);
        assert_eq!(done.last(), Some(&Action::Terminated { id: a }));
        assert_eq!(l.len(), 1);
        assert!(
            l.client_request(
                TxKey::new("c1", "BYE", "x"),
                TxKind::NonInvite,
                true,
                "p",
                Bytes::new(),
                t0
            )
            .is_ok()
        );
    }

    /// One short call over UDP at `now`: INVITE answered 200 (its ACK goes
    /// to the dialog), then BYE answered 200. Returns whether both
    /// transactions were admitted.
    fn short_call(l: &mut TransactionLayer<Dest>, n: u64, now: Instant) -> bool {
        let invite = TxKey::new(format!("z9hG4bK-i{n}"), "INVITE", "10.0.0.1:5060");
        let bye = TxKey::new(format!("z9hG4bK-b{n}"), "BYE", "10.0.0.1:5060");
        let ServerVerdict::New(i) = l.server_request(&invite, TxKind::Invite, false, "peer", now)
        else {
            return false;
        };
        l.send_response(i, 100, Bytes::from_static(b"100"), now);
        l.send_response(i, 200, Bytes::from_static(b"200"), now);
        assert_eq!(l.server_ack(&invite, now), AckVerdict::NotFound);
        let ServerVerdict::New(b) = l.server_request(&bye, TxKind::NonInvite, false, "peer", now)
        else {
            return false;
        };
        l.send_response(b, 200, Bytes::from_static(b"200 BYE"), now);
        true
    }

    #[test]
    fn limit_counts_only_live_work() {
        // The shipped limit, 1,000 short calls/s for 40 s: finished
        // transactions absorb for 32 s but never refuse a new one (counted
        // against the limit, call 25,001 was refused).
        let t0 = Instant::now();
        let mut l: TransactionLayer<Dest> = TransactionLayer::new(Timers::default(), 50_000);
        let mut most_absorbing = 0;
        for n in 0..40_000u64 {
            let now = t0 + Duration::from_millis(n);
            l.handle_timeout(now);
            assert!(short_call(&mut l, n, now), "call {n} refused");
            assert_eq!(l.len(), 0, "nothing live between calls");
            most_absorbing = most_absorbing.max(l.absorbing_len());
        }
        // Two per call for 32 s (plus one sweep's worth).
        assert!(
            (64_000..=64_400).contains(&most_absorbing),
            "{most_absorbing}"
        );
        assert_eq!(l.absorbing_evicted(), 0);
        // A copy of the latest BYE still gets its 200 again.
        let bye = TxKey::new("z9hG4bK-b39999", "BYE", "10.0.0.1:5060");
        assert_eq!(
            l.server_request(&bye, TxKind::NonInvite, false, "peer", t0 + ms(40_000)),
            ServerVerdict::Retransmission(vec![Action::Transmit {
                dest: "peer",
                bytes: Bytes::from_static(b"200 BYE"),
                retransmission: true
            }])
        );

        // Live work is what the limit counts: two unanswered INVITEs fill a
        // table of two, whatever is absorbing.
        let mut l: TransactionLayer<Dest> =
            TransactionLayer::with_absorbing(Timers::default(), 2, 100);
        for n in 0..10 {
            assert!(short_call(&mut l, n, t0));
        }
        for n in 0..2 {
            let k = TxKey::new(format!("live{n}"), "INVITE", "h");
            assert!(matches!(
                l.server_request(&k, TxKind::Invite, false, "peer", t0),
                ServerVerdict::New(_)
            ));
        }
        let k = TxKey::new("live2", "INVITE", "h");
        assert_eq!(
            l.server_request(&k, TxKind::Invite, false, "peer", t0),
            ServerVerdict::Full
        );
        // Copies of finished ones are still recognised while full.
        let bye = TxKey::new("z9hG4bK-b3", "BYE", "10.0.0.1:5060");
        assert!(matches!(
            l.server_request(&bye, TxKind::NonInvite, false, "peer", t0),
            ServerVerdict::Retransmission(a) if a.len() == 1
        ));
        assert_eq!((l.len(), l.absorbing_len()), (2, 20));
    }

    #[test]
    fn absorbing_set_is_bounded_and_drops_the_oldest() {
        let t0 = Instant::now();
        let mut l: TransactionLayer<Dest> =
            TransactionLayer::with_absorbing(Timers::default(), 4, 10);
        for n in 0..100u64 {
            assert!(short_call(&mut l, n, t0 + ms(n)));
            assert!(l.absorbing_len() <= 10);
        }
        assert_eq!(l.absorbing_evicted(), 190);
        let now = t0 + ms(100);
        // The newest calls still absorb; the oldest were dropped and a copy
        // of their BYE now reads as new (as after 32 s).
        let newest = TxKey::new("z9hG4bK-b99", "BYE", "10.0.0.1:5060");
        assert!(matches!(
            l.server_request(&newest, TxKind::NonInvite, false, "peer", now),
            ServerVerdict::Retransmission(_)
        ));
        let oldest = TxKey::new("z9hG4bK-b0", "BYE", "10.0.0.1:5060");
        assert!(matches!(
            l.server_request(&oldest, TxKind::NonInvite, false, "peer", now),
            ServerVerdict::New(_)
        ));
    }

    #[test]
    fn remove_drops_without_action_and_clears_timers() {
        let t0 = Instant::now();
        let mut l = layer();
        let id = new_client(&mut l, "INVITE", false, t0);
        assert!(l.remove(id));
        assert!(!l.remove(id));
        assert_eq!(l.poll_timeout(), None);
        assert!(l.handle_timeout(t0 + Duration::from_secs(100)).is_empty());
        assert_eq!(l.find_client("z9hG4bK-1", "INVITE"), None);
    }

    #[test]
    fn server_and_client_with_same_key_are_separate() {
        let t0 = Instant::now();
        let mut l = layer();
        let s = new_server(&mut l, "OPTIONS", false, t0);
        let c = new_client(&mut l, "OPTIONS", false, t0);
        assert_ne!(s, c);
        assert_eq!(l.role(s), Some(Role::Server));
        assert_eq!(l.role(c), Some(Role::Client));
        assert_eq!(l.find_server(&key("OPTIONS")), Some(s));
        // A server transaction cannot take client input and vice versa.
        assert!(l.client_ack(s, Bytes::new()).is_empty());
        assert!(l.send_response(c, 200, Bytes::new(), t0).is_empty());
    }

    #[test]
    fn late_handle_timeout_does_not_burst() {
        let t0 = Instant::now();
        let mut l = layer();
        new_client(&mut l, "OPTIONS", false, t0);
        // The shell oversleeps by 3 s: one retransmission, then rescheduled
        // from now, not a burst of the missed ones.
        let a = l.handle_timeout(t0 + Duration::from_secs(3));
        assert_eq!(transmits(&a).len(), 1);
        assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(4)));
    }

    // ---- 2xx retransmission by the UAS core ----

    #[test]
    fn uas_2xx_retransmits_doubling_to_t2_until_ack() {
        let t0 = Instant::now();
        let mut r: Uas2xxRetransmitter<Dest> = Uas2xxRetransmitter::new(Timers::default(), 4);
        r.start("call-1", 1, "peer", Bytes::from_static(b"200"), t0)
            .expect("room");
        let mut at = Vec::new();
        while let Some(t) = r.poll_timeout() {
            if t > t0 + Duration::from_secs(10) {
                break;
            }
            for a in r.handle_timeout(t) {
                assert_eq!(
                    a,
                    Uas2xxAction::Transmit {
                        dest: "peer",
                        bytes: Bytes::from_static(b"200")
                    }
                );
                at.push((t - t0).as_millis() as u64);
            }
        }
        assert_eq!(at, vec![500, 1500, 3500, 7500]);
        assert_eq!(r.retransmissions().get(Retransmitted::Response), 4);
        assert!(r.ack("call-1", 1));
        assert!(!r.ack("call-1", 1), "second ACK is a retransmission");
        assert_eq!(r.poll_timeout(), None);
        assert!(r.is_empty());
    }

    #[test]
    fn uas_2xx_gives_up_after_64_t1() {
        let t0 = Instant::now();
        let mut r: Uas2xxRetransmitter<Dest> = Uas2xxRetransmitter::new(Timers::default(), 4);
        r.start("call-1", 7, "peer", Bytes::from_static(b"200"), t0)
            .expect("room");
        let mut sends = 0;
        let mut gave_up = None;
        while let Some(t) = r.poll_timeout() {
            for a in r.handle_timeout(t) {
                match a {
                    Uas2xxAction::Transmit { .. } => sends += 1,
                    Uas2xxAction::GaveUp { call_id, cseq } => {
                        gave_up = Some((t - t0, call_id, cseq))
                    }
                }
            }
        }
        // 0.5, 1.5, 3.5, 7.5, 11.5 ... 31.5: ten resends, then give up at 32 s.
        assert_eq!(sends, 10);
        assert_eq!(
            gave_up,
            Some((Duration::from_secs(32), "call-1".to_owned(), 7))
        );
        assert!(r.is_empty());
    }

    #[test]
    fn uas_2xx_bounded_and_restart_replaces() {
        let t0 = Instant::now();
        let mut r: Uas2xxRetransmitter<Dest> = Uas2xxRetransmitter::new(Timers::default(), 1);
        r.start("a", 1, "peer", Bytes::from_static(b"x"), t0)
            .expect("room");
        assert_eq!(
            r.start("b", 1, "peer", Bytes::from_static(b"y"), t0),
            Err(TxError::Full)
        );
        r.start("a", 1, "peer", Bytes::from_static(b"z"), t0 + ms(100))
            .expect("replace");
        assert_eq!(r.len(), 1);
        assert_eq!(
            r.handle_timeout(t0 + ms(600)),
            vec![Uas2xxAction::Transmit {
                dest: "peer",
                bytes: Bytes::from_static(b"z")
            }]
        );
        assert!(!r.ack("a", 2), "other CSeq does not match");
    }
}
