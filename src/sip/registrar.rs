//! The registrar's bindings (RFC 3261 §10.3), sans I/O.
//!
//! Operators log in by registering their phones; this core keeps, per
//! address-of-record, the contacts they registered with their expiry, and
//! decides every REGISTER: add, refresh or remove bindings, `*` with
//! `Expires: 0` to remove all, Call-ID/CSeq ordering (a lower or equal CSeq
//! from the same Call-ID aborts the request), `Min-Expires` (423), a clamp to
//! the longest expiry we allow, and limits per AOR and in total. Expiry runs
//! on [`Registrar::poll_timeout`] / [`Registrar::handle_timeout`] with the
//! caller's `now`, and every change comes out as a [`RegistrarEvent`] so the
//! ACD can mark operators reachable or not.
//!
//! Types are plain: AORs and contact URIs are strings the shell produced
//! (already canonical, compared exactly), the source address is generic.
//! Must not touch: the codec, sockets, digest authentication (the caller
//! authenticates before calling [`Registrar::register`]) or operator config.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Limits and expiry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shortest non-zero expiry accepted (seconds); shorter gives 423.
    pub min_expires: u32,
    /// Longer requested expiries are cut to this.
    pub max_expires: u32,
    /// Used when neither the contact nor the request says.
    pub default_expires: u32,
    pub max_contacts_per_aor: usize,
    /// All bindings of all AORs.
    pub max_bindings: usize,
    /// Longest AOR or contact URI accepted.
    pub max_uri_len: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts_per_aor: 5,
            max_bindings: 10_000,
            max_uri_len: 1024,
        }
    }
}

/// One Contact of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSpec {
    pub uri: String,
    /// The contact's `expires` parameter.
    pub expires: Option<u32>,
    /// The `q` parameter in thousandths (see [`parse_q`]).
    pub q: Option<u16>,
}

/// The Contact header(s) of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterContacts {
    /// No Contact: a query for the current bindings.
    Query,
    /// `Contact: *`.
    Star,
    List(Vec<ContactSpec>),
}

/// A REGISTER, reduced to what the registrar needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest<A> {
    /// The To URI, canonical.
    pub aor: String,
    pub call_id: String,
    pub cseq: u32,
    /// The `Expires` header.
    pub expires: Option<u32>,
    pub contacts: RegisterContacts,
    /// Where the REGISTER came from (to reach a phone behind NAT).
    pub source: A,
    /// Transport it came over, e.g. `UDP`, `TCP`.
    pub transport: String,
}

/// Why a REGISTER was refused, with the status the caller answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// 423 Interval Too Brief with `Min-Expires: min`.
    #[error("expiry below the minimum of {min} s")]
    IntervalTooBrief { min: u32 },
    /// 400: `*` needs `Expires: 0`.
    #[error("Contact: * needs Expires: 0")]
    InvalidStar,
    /// 500 (§10.3 step 6/7: same Call-ID, CSeq not higher).
    #[error("CSeq not above the binding's for the same Call-ID")]
    OutOfOrder,
    /// 403: this AOR would have more contacts than allowed.
    #[error("more than {max} contacts for one address-of-record")]
    TooManyContacts { max: usize },
    /// 503 with Retry-After: the whole table is full.
    #[error("registrar full")]
    Full,
    /// 400: empty or over-long AOR or contact URI.
    #[error("bad or over-long URI")]
    BadUri,
}

/// A binding as the caller sees it (for the 200 OK's Contact list and for
/// reaching the operator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactView<A> {
    pub uri: String,
    /// Seconds left, rounded up (the `expires` parameter of the 200 OK).
    pub expires_in: u32,
    pub q: Option<u16>,
    pub source: A,
    pub transport: String,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrarEvent<A> {
    Added {
        aor: String,
        uri: String,
        source: A,
    },
    /// A refresh that came from another source address or transport (the
    /// phone moved or its NAT binding changed).
    Updated {
        aor: String,
        uri: String,
        source: A,
    },
    Unregistered {
        aor: String,
        uri: String,
        source: A,
    },
    Expired {
        aor: String,
        uri: String,
        source: A,
    },
}

/// Result of a successful REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOutcome<A> {
    /// All current bindings of the AOR (for the 200 OK).
    pub contacts: Vec<ContactView<A>>,
    pub events: Vec<RegistrarEvent<A>>,
}

#[derive(Debug, Clone)]
struct Binding<A> {
    uri: String,
    source: A,
    transport: String,
    q: Option<u16>,
    call_id: String,
    cseq: u32,
    expires_at: Instant,
    slot: (Instant, u64),
}

/// Parses a `q` value (`0` to `1` with up to three decimals) into
/// thousandths.
pub fn parse_q(s: &str) -> Option<u16> {
    let s = s.trim();
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The binding table.
#[derive(Debug)]
pub struct Registrar<A> {
    config: RegistrarConfig,
    aors: HashMap<String, Vec<Binding<A>>>,
    total: usize,
    next_seq: u64,
    wheel: BTreeMap<(Instant, u64), (String, String)>,
}

fn secs_left(at: Instant, now: Instant) -> u32 {
    let d = at.saturating_duration_since(now);
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(s).unwrap_or(u32::MAX)
}

impl<A: Clone + PartialEq> Registrar<A> {
    pub fn new(config: RegistrarConfig) -> Self {
        Self {
            config,
            aors: HashMap::new(),
            total: 0,
            next_seq: 0,
            wheel: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Bindings across all AORs (for `conmutador_registrations_active`,
    /// which the shell sets).
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// AORs with at least one binding.
    pub fn aor_count(&self) -> usize {
        self.aors.len()
    }

    /// Current bindings of `aor`, highest q first (no q counts as 1.0).
    pub fn contacts(&self, aor: &str, now: Instant) -> Vec<ContactView<A>> {
        let mut out: Vec<ContactView<A>> = self
            .aors
            .get(aor)
            .map(|bs| {
                bs.iter()
                    .map(|b| ContactView {
                        uri: b.uri.clone(),
                        expires_in: secs_left(b.expires_at, now),
                        q: b.q,
                        source: b.source.clone(),
                        transport: b.transport.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by_key(|c| std::cmp::Reverse(c.q.unwrap_or(1000)));
        out
    }

    /// Applies a REGISTER atomically: on error nothing changed.
    pub fn register(
        &mut self,
        req: RegisterRequest<A>,
        now: Instant,
    ) -> Result<RegisterOutcome<A>, RegisterError> {
        let cfg = &self.config;
        if req.aor.is_empty() || req.aor.len() > cfg.max_uri_len {
            return Err(RegisterError::BadUri);
        }
        let current: Vec<Binding<A>> = self.aors.get(&req.aor).cloned().unwrap_or_default();
        let mut events = Vec::new();
        let mut next: Vec<Binding<A>> = match &req.contacts {
            RegisterContacts::Query => {
                return Ok(RegisterOutcome {
                    contacts: self.contacts(&req.aor, now),
                    events,
                });
            }
            RegisterContacts::Star => {
                if req.expires != Some(0) {
                    return Err(RegisterError::InvalidStar);
                }
                for b in &current {
                    if b.call_id == req.call_id && req.cseq <= b.cseq {
                        return Err(RegisterError::OutOfOrder);
                    }
                }
                for b in &current {
                    events.push(RegistrarEvent::Unregistered {
                        aor: req.aor.clone(),
                        uri: b.uri.clone(),
                        source: b.source.clone(),
                    });
                }
                Vec::new()
            }
            RegisterContacts::List(list) => {
                // A request cannot usefully name more contacts than this; the
                // cap bounds the work done per message.
                let max_listed = cfg.max_contacts_per_aor.saturating_mul(2).max(2);
                if list.len() > max_listed {
                    return Err(RegisterError::TooManyContacts {
                        max: cfg.max_contacts_per_aor,
                    });
                }
                let mut lifetimes = Vec::with_capacity(list.len());
                for spec in list {
                    if spec.uri.is_empty() || spec.uri.len() > cfg.max_uri_len {
                        return Err(RegisterError::BadUri);
                    }
                    let e = spec.expires.or(req.expires).unwrap_or(cfg.default_expires);
                    if e != 0 && e < cfg.min_expires {
                        return Err(RegisterError::IntervalTooBrief {
                            min: cfg.min_expires,
                        });
                    }
                    lifetimes.push(e.min(cfg.max_expires));
                }
                let mut next = current.clone();
                for (spec, e) in list.iter().zip(lifetimes) {
                    let pos = next.iter().position(|b| b.uri == spec.uri);
                    if let Some(p) = pos {
                        let b = &next[p];
                        if b.call_id == req.call_id && req.cseq <= b.cseq {
                            return Err(RegisterError::OutOfOrder);
                        }
                    }
                    match (pos, e) {
                        (Some(p), 0) => {
                            let b = next.remove(p);
                            events.push(RegistrarEvent::Unregistered {
                                aor: req.aor.clone(),
                                uri: b.uri,
                                source: b.source,
                            });
                        }
                        (Some(p), e) => {
                            let b = &mut next[p];
                            if b.source != req.source || b.transport != req.transport {
                                events.push(RegistrarEvent::Updated {
                                    aor: req.aor.clone(),
                                    uri: b.uri.clone(),
                                    source: req.source.clone(),
                                });
                            }
                            b.source = req.source.clone();
                            b.transport = req.transport.clone();
                            b.q = spec.q;
                            b.call_id = req.call_id.clone();
                            b.cseq = req.cseq;
                            b.expires_at = now + Duration::from_secs(u64::from(e));
                        }
                        (None, 0) => {}
                        (None, e) => {
                            events.push(RegistrarEvent::Added {
                                aor: req.aor.clone(),
                                uri: spec.uri.clone(),
                                source: req.source.clone(),
                            });
                            next.push(Binding {
                                uri: spec.uri.clone(),
                                source: req.source.clone(),
                                transport: req.transport.clone(),
                                q: spec.q,
                                call_id: req.call_id.clone(),
                                cseq: req.cseq,
                                expires_at: now + Duration::from_secs(u64::from(e)),
                                slot: (now, 0),
                            });
                        }
                    }
                }
                if next.len() > cfg.max_contacts_per_aor {
                    return Err(RegisterError::TooManyContacts {
                        max: cfg.max_contacts_per_aor,
                    });
                }
                if next.len() > current.len()
                    && self.total - current.len() + next.len() > cfg.max_bindings
                {
                    return Err(RegisterError::Full);
                }
                next
            }
        };

        // Commit: drop the old timers, arm one per binding.
        for b in &current {
            self.wheel.remove(&b.slot);
        }
        for b in &mut next {
            self.next_seq += 1;
            b.slot = (b.expires_at, self.next_seq);
            self.wheel.insert(b.slot, (req.aor.clone(), b.uri.clone()));
        }
        self.total = self.total - current.len() + next.len();
        if next.is_empty() {
            self.aors.remove(&req.aor);
        } else {
            self.aors.insert(req.aor.clone(), next);
        }
        Ok(RegisterOutcome {
            contacts: self.contacts(&req.aor, now),
            events,
        })
    }

    /// Removes every binding of `aor` (admin action, operator disabled).
    pub fn remove_aor(&mut self, aor: &str) -> Vec<RegistrarEvent<A>> {
        let Some(bindings) = self.aors.remove(aor) else {
            return Vec::new();
        };
        self.total -= bindings.len();
        bindings
            .into_iter()
            .map(|b| {
                self.wheel.remove(&b.slot);
                RegistrarEvent::Unregistered {
                    aor: aor.to_owned(),
                    uri: b.uri,
                    source: b.source,
                }
            })
            .collect()
    }

    /// Removes every binding whose source `gone` says is no more (a TCP
    /// or TLS connection that closed: nothing can reach the phone through
    /// it, RFC 5626 §5.3).
    pub fn remove_sources(&mut self, gone: impl Fn(&A) -> bool) -> Vec<RegistrarEvent<A>> {
        let mut events = Vec::new();
        for (aor, bindings) in &mut self.aors {
            bindings.retain(|b| {
                if !gone(&b.source) {
                    return true;
                }
                self.wheel.remove(&b.slot);
                events.push(RegistrarEvent::Unregistered {
                    aor: aor.clone(),
                    uri: b.uri.clone(),
                    source: b.source.clone(),
                });
                false
            });
        }
        self.aors.retain(|_, bs| !bs.is_empty());
        self.total -= events.len();
        events
    }

    /// The next expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wheel.first_key_value().map(|((at, _), _)| *at)
    }

    /// Removes the bindings that expired at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<RegistrarEvent<A>> {
        let mut events = Vec::new();
        while let Some(entry) = self.wheel.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (slot, (aor, uri)) = entry.remove_entry();
            let Some(bindings) = self.aors.get_mut(&aor) else {
                continue;
            };
            let Some(pos) = bindings.iter().position(|b| b.uri == uri && b.slot == slot) else {
                continue;
            };
            let b = bindings.remove(pos);
            if bindings.is_empty() {
                self.aors.remove(&aor);
            }
            self.total -= 1;
            events.push(RegistrarEvent::Expired {
                aor,
                uri: b.uri,
                source: b.source,
            });
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Src = &'static str;

    const AOR: &str = "sip:op1001@mexitel.example";

    fn reg() -> Registrar<Src> {
        Registrar::new(RegistrarConfig::default())
    }

    fn contact(uri: &str, expires: Option<u32>) -> ContactSpec {
        ContactSpec {
            uri: uri.into(),
            expires,
            q: None,
        }
    }

    fn req(
        call_id: &str,
        cseq: u32,
        expires: Option<u32>,
        contacts: RegisterContacts,
    ) -> RegisterRequest<Src> {
        RegisterRequest {
            aor: AOR.into(),
            call_id: call_id.into(),
            cseq,
            expires,
            contacts,
            source: "192.0.2.5:5060",
            transport: "UDP".into(),
        }
    }

    fn list(contacts: Vec<ContactSpec>) -> RegisterContacts {
        RegisterContacts::List(contacts)
    }

    #[test]
    fn bindings_of_a_closed_flow_are_removed_and_others_kept() {
        let t0 = Instant::now();
        let mut r = reg();
        r.register(
            req(
                "c1",
                1,
                Some(120),
                list(vec![contact("sip:op@192.0.2.5", None)]),
            ),
            t0,
        )
        .expect("ok");
        let mut other = req(
            "c2",
            1,
            Some(120),
            list(vec![contact("sip:op@192.0.2.6", None)]),
        );
        other.source = "192.0.2.6:5061";
        r.register(other, t0).expect("ok");
        assert_eq!(r.len(), 2);
        let events = r.remove_sources(|s| *s == "192.0.2.6:5061");
        assert_eq!(
            events,
            vec![RegistrarEvent::Unregistered {
                aor: AOR.into(),
                uri: "sip:op@192.0.2.6".into(),
                source: "192.0.2.6:5061",
            }]
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r.contacts(AOR, t0)[0].uri, "sip:op@192.0.2.5");
        // Its expiry went with it: only the other binding expires later.
        assert_eq!(r.handle_timeout(t0 + Duration::from_secs(121)).len(), 1);
        assert!(r.is_empty() && r.aor_count() == 0);
        assert!(r.remove_sources(|_| true).is_empty());
    }

    #[test]
    fn register_then_query_then_expire() {
        let t0 = Instant::now();
        let mut r = reg();
        let out = r
            .register(
                req(
                    "c1",
                    1,
                    Some(120),
                    list(vec![contact("sip:op@192.0.2.5", None)]),
                ),
                t0,
            )
            .expect("ok");
        assert_eq!(out.contacts.len(), 1);
        assert_eq!(out.contacts[0].expires_in, 120);
        assert_eq!(out.contacts[0].transport, "UDP");
        assert_eq!(
            out.events,
            vec![RegistrarEvent::Added {
                aor: AOR.into(),
                uri: "sip:op@192.0.2.5".into(),
                source: "192.0.2.5:5060"
            }]
        );
        let q = r
            .register(
                req("other", 1, None, RegisterContacts::Query),
                t0 + Duration::from_millis(500),
            )
            .expect("query");
        assert_eq!(q.contacts[0].expires_in, 120, "rounded up");
        assert!(q.events.is_empty());
        assert_eq!(
            r.contacts(AOR, t0 + Duration::from_secs(100))[0].expires_in,
            20
        );
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(120)));
        assert!(r.handle_timeout(t0 + Duration::from_secs(119)).is_empty());
        assert_eq!(
            r.handle_timeout(t0 + Duration::from_secs(120)),
            vec![RegistrarEvent::Expired {
                aor: AOR.into(),
                uri: "sip:op@192.0.2.5".into(),
                source: "192.0.2.5:5060"
            }]
        );
        assert!(r.is_empty());
        assert_eq!(r.aor_count(), 0);
        assert!(r.contacts(AOR, t0).is_empty());
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn default_expiry_and_max_clamp_and_contact_param_wins() {
        let t0 = Instant::now();
        let mut r = reg();
        let out = r
            .register(
                req(
                    "c1",
                    1,
                    Some(100_000),
                    list(vec![
                        contact("sip:a@h", None),
                        contact("sip:b@h", Some(300)),
                    ]),
                ),
                t0,
            )
            .expect("ok");
        let by_uri = |u: &str| {
            out.contacts
                .iter()
                .find(|c| c.uri == u)
                .expect("present")
                .expires_in
        };
        assert_eq!(by_uri("sip:a@h"), 3600, "clamped to max_expires");
        assert_eq!(by_uri("sip:b@h"), 300, "contact parameter beats header");
        let mut r = reg();
        let out = r
            .register(req("c1", 1, None, list(vec![contact("sip:a@h", None)])), t0)
            .expect("ok");
        assert_eq!(out.contacts[0].expires_in, 3600, "default_expires");
    }

    #[test]
    fn too_brief_gives_min_expires_and_changes_nothing() {
        let t0 = Instant::now();
        let mut r = reg();
        assert_eq!(
            r.register(
                req("c1", 1, Some(30), list(vec![contact("sip:a@h", None)])),
                t0
            ),
            Err(RegisterError::IntervalTooBrief { min: 60 })
        );
        // One brief contact spoils the whole request.
        assert_eq!(
            r.register(
                req(
                    "c1",
                    2,
                    Some(600),
                    list(vec![contact("sip:a@h", None), contact("sip:b@h", Some(1))])
                ),
                t0
            ),
            Err(RegisterError::IntervalTooBrief { min: 60 })
        );
        assert!(r.is_empty());
        // Exactly the minimum is fine.
        assert!(
            r.register(
                req("c1", 3, Some(60), list(vec![contact("sip:a@h", None)])),
                t0
            )
            .is_ok()
        );
    }

    #[test]
    fn refresh_extends_and_reports_moves() {
        let t0 = Instant::now();
        let mut r = reg();
        r.register(
            req("c1", 1, Some(120), list(vec![contact("sip:a@h", None)])),
            t0,
        )
        .expect("ok");
        let t1 = t0 + Duration::from_secs(100);
        let out = r
            .register(
                req("c1", 2, Some(120), list(vec![contact("sip:a@h", None)])),
                t1,
            )
            .expect("refresh");
        assert!(out.events.is_empty(), "same source: quiet refresh");
        assert_eq!(r.poll_timeout(), Some(t1 + Duration::from_secs(120)));
        assert!(r.handle_timeout(t0 + Duration::from_secs(120)).is_empty());
        let mut moved = req("c1", 3, Some(120), list(vec![contact("sip:a@h", None)]));
        moved.source = "198.51.100.9:40000";
        moved.transport = "TCP".into();
        let out = r.register(moved, t1).expect("moved");
        assert_eq!(
            out.events,
            vec![RegistrarEvent::Updated {
                aor: AOR.into(),
                uri: "sip:a@h".into(),
                source: "198.51.100.9:40000"
            }]
        );
        assert_eq!(r.contacts(AOR, t1)[0].source, "198.51.100.9:40000");
        assert_eq!(r.contacts(AOR, t1)[0].transport, "TCP");
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn same_call_id_lower_or_equal_cseq_rejected_other_call_id_accepted() {
        let t0 = Instant::now();
        let mut r = reg();
        r.register(
            req("c1", 5, Some(600), list(vec![contact("sip:a@h", None)])),
            t0,
        )
        .expect("ok");
        assert_eq!(
            r.register(
                req("c1", 5, Some(600), list(vec![contact("sip:a@h", None)])),
                t0
            ),
            Err(RegisterError::OutOfOrder)
        );
        assert_eq!(
            r.register(
                req("c1", 4, Some(0), list(vec![contact("sip:a@h", None)])),
                t0
            ),
            Err(RegisterError::OutOfOrder)
        );
        assert_eq!(r.len(), 1, "the late un-REGISTER did not remove it");
        // A phone that rebooted uses a new Call-ID and may restart at CSeq 1.
        assert!(
            r.register(
                req("c2", 1, Some(600), list(vec![contact("sip:a@h", None)])),
                t0
            )
            .is_ok()
        );
    }

    #[test]
    fn expires_zero_removes_one_contact() {
        let t0 = Instant::now();
        let mut r = reg();
        r.register(
            req(
                "c1",
                1,
                Some(600),
                list(vec![contact("sip:a@h", None), contact("sip:b@h", None)]),
            ),
            t0,
        )
        .expect("ok");
        let out = r
            .register(
                req("c1", 2, None, list(vec![contact("sip:a@h", Some(0))])),
                t0,
            )
            .expect("ok");
        assert_eq!(
            out.events,
            vec![RegistrarEvent::Unregistered {
                aor: AOR.into(),
                uri: "sip:a@h".into(),
                source: "192.0.2.5:5060"
            }]
        );
        assert_eq!(out.contacts.len(), 1);
        assert_eq!(out.contacts[0].uri, "sip:b@h");
        // Removing an unknown contact is a no-op.
        let out = r
            .register(
                req("c1", 3, Some(0), list(vec![contact("sip:zz@h", None)])),
                t0,
            )
            .expect("ok");
        assert!(out.events.is_empty());
        // The removed binding's timer is gone too.
        let fired = r.handle_timeout(t0 + Duration::from_secs(600));
        assert_eq!(fired.len(), 1);
        assert!(matches!(&fired[0], RegistrarEvent::Expired { uri, .. } if uri == "sip:b@h"));
    }

    #[test]
    fn star_with_expires_zero_removes_all() {
        let t0 = Instant::now();
        let mut r = reg();
        r.register(
            req(
                "c1",
                1,
                Some(600),
                list(vec![contact("sip:a@h", None), contact("sip:b@h", None)]),
            ),
            t0,
        )
        .expect("ok");
        assert_eq!(
            r.register(req("c1", 2, Some(5), RegisterContacts::Star), t0),
            Err(RegisterError::InvalidStar)
        );
        assert_eq!(
            r.register(req("c1", 2, None, RegisterContacts::Star), t0),
            Err(RegisterError::InvalidStar)
        );
        assert_eq!(
            r.register(req("c1", 1, Some(0), RegisterContacts::Star), t0),
            Err(RegisterError::OutOfOrder)
        );
        let out = r
            .register(req("c1", 2, Some(0), RegisterContacts::Star), t0)
            .expect("ok");
        assert_eq!(out.events.len(), 2);
        assert!(out.contacts.is_empty());
        assert!(r.is_empty());
        assert_eq!(r.poll_timeout(), None);
        // `*` on an empty AOR is fine.
        assert!(
            r.register(req("c9", 1, Some(0), RegisterContacts::Star), t0)
                .is_ok()
        );
    }

    #[test]
    fn per_aor_limit() {
        let t0 = Instant::now();
        let mut r = Registrar::new(RegistrarConfig {
            max_contacts_per_aor: 2,
            ..RegistrarConfig::default()
        });
        r.register(
            req(
                "c1",
                1,
                Some(600),
                list(vec![contact("sip:a@h", None), contact("sip:b@h", None)]),
            ),
            t0,
        )
        .expect("ok");
        assert_eq!(
            r.register(
                req("c2", 1, Some(600), list(vec![contact("sip:c@h", None)])),
                t0
            ),
            Err(RegisterError::TooManyContacts { max: 2 })
        );
        // Swapping one for another within the limit works.
        let out = r
            .register(
                req(
                    "c1",
                    2,
                    Some(600),
                    list(vec![contact("sip:a@h", Some(0)), contact("sip:c@h", None)]),
                ),
                t0,
            )
            .expect("swap");
        assert_eq!(out.contacts.len(), 2);
        // Absurdly long lists are refused before any work.
        let many = (0..5)
            .map(|i| contact(&format!("sip:{i}@h"), None))
            .collect();
        assert_eq!(
            r.register(req("c3", 1, Some(600), list(many)), t0),
            Err(RegisterError::TooManyContacts { max: 2 })
        );
    }

    #[test]
    fn global_limit_gives_full_but_refresh_and_removal_still_work() {
        let t0 = Instant::now();
        let mut r = Registrar::new(RegistrarConfig {
            max_bindings: 2,
            ..RegistrarConfig::default()
        });
        for (i, aor) in ["sip:1@x", "sip:2@x"].iter().enumerate() {
            let mut q = req(
                "c",
                1,
                Some(600),
                list(vec![contact(&format!("sip:{i}@h"), None)]),
            );
            q.aor = (*aor).into();
            r.register(q, t0).expect("room");
        }
        let mut q = req("c", 1, Some(600), list(vec![contact("sip:9@h", None)]));
        q.aor = "sip:3@x".into();
        assert_eq!(r.register(q, t0), Err(RegisterError::Full));
        let mut refresh = req("c", 2, Some(600), list(vec![contact("sip:0@h", None)]));
        refresh.aor = "sip:1@x".into();
        assert!(r.register(refresh, t0).is_ok());
        assert_eq!(r.len(), 2);
        let events = r.remove_aor("sip:2@x");
        assert_eq!(events.len(), 1);
        assert_eq!(r.len(), 1);
        let mut q = req("c", 1, Some(600), list(vec![contact("sip:9@h", None)]));
        q.aor = "sip:3@x".into();
        assert!(r.register(q, t0).is_ok());
    }

    #[test]
    fn bad_uris_rejected() {
        let t0 = Instant::now();
        let mut r = reg();
        let mut q = req("c", 1, Some(600), list(vec![contact("sip:a@h", None)]));
        q.aor = String::new();
        assert_eq!(r.register(q, t0), Err(RegisterError::BadUri));
        let long = format!("sip:{}@h", "a".repeat(2000));
        assert_eq!(
            r.register(req("c", 1, Some(600), list(vec![contact(&long, None)])), t0),
            Err(RegisterError::BadUri)
        );
        assert_eq!(
            r.register(req("c", 1, Some(600), list(vec![contact("", None)])), t0),
            Err(RegisterError::BadUri)
        );
    }

    #[test]
    fn contacts_sorted_by_q() {
        let t0 = Instant::now();
        let mut r = reg();
        let mut low = contact("sip:low@h", None);
        low.q = parse_q("0.1");
        let mut high = contact("sip:high@h", None);
        high.q = parse_q("0.9");
        let none = contact("sip:none@h", None);
        r.register(req("c", 1, Some(600), list(vec![low, high, none])), t0)
            .expect("ok");
        let uris: Vec<String> = r.contacts(AOR, t0).into_iter().map(|c| c.uri).collect();
        assert_eq!(uris, vec!["sip:none@h", "sip:high@h", "sip:low@h"]);
    }

    #[test]
    fn q_values_parse() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.125"), Some(125));
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q(" 0.07 "), Some(70));
        assert_eq!(parse_q("1.001"), None);
        assert_eq!(parse_q("0.1234"), None);
        assert_eq!(parse_q("2"), None);
        assert_eq!(parse_q("0.x"), None);
        assert_eq!(parse_q(""), None);
        assert_eq!(parse_q("-0.5"), None);
    }

    #[test]
    fn expiry_sweep_handles_many_aors_in_order() {
        let t0 = Instant::now();
        let mut r = reg();
        for (i, secs) in [300u32, 60, 180].iter().enumerate() {
            let mut q = req("c", 1, Some(*secs), list(vec![contact("sip:x@h", None)]));
            q.aor = format!("sip:{i}@x");
            r.register(q, t0).expect("ok");
        }
        let mut order = Vec::new();
        while let Some(at) = r.poll_timeout() {
            for e in r.handle_timeout(at) {
                if let RegistrarEvent::Expired { aor, .. } = e {
                    order.push(((at - t0).as_secs(), aor));
                }
            }
        }
        assert_eq!(
            order,
            vec![
                (60, "sip:1@x".to_owned()),
                (180, "sip:2@x".to_owned()),
                (300, "sip:0@x".to_owned())
            ]
        );
        assert!(r.is_empty());
    }
}
