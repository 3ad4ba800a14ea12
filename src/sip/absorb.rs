//! What a finished transaction keeps to absorb retransmissions, and nothing
//! more.
//!
//! RFC 3261 keeps a transaction for up to 64*T1 (32 s) after its work is done
//! only so that a late copy of a request or response is recognised and
//! answered (or dropped) instead of being taken for something new: a server
//! that sent 200 to BYE resends it when the BYE comes again; an INVITE that was
//! answered 2xx swallows its retransmissions; a client that ACKed a 486 re-ACKs
//! a repeated 486. For that it needs the transaction's identity, what to
//! re-send, and when to forget it. The transaction layer moves a transaction
//! here at that point, gives its id back to the shell as terminated, and no
//! longer counts it against `max_transactions`: that limit protects live work
//! (requests the TU still has to answer, requests and final responses still
//! being retransmitted), while this set is sized by its own, larger cap and
//! evicts the entry closest to its end instead of refusing anything. A
//! retransmission that arrives after its entry was evicted is treated like
//! one arriving after the 32 s, which the protocol already survives.
//!
//! Entries are compact: a 128-bit keyed digest of the transaction key (two
//! SipHash-1-3 outputs under random keys, so a peer cannot aim branches at a
//! collision; a chance collision among a million entries has odds around
//! 2^-88), the bytes to re-send (shared with what was transmitted), and the
//! deadline, in a hash map plus a min-heap of deadlines. std's hasher and
//! collections do all of it; no crate would add anything here.
//!
//! Must not touch: sockets, the codec, timers of live transactions, metrics.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::time::Instant;

use bytes::Bytes;

/// What an absorbing transaction does with a retransmission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Keep<D> {
    /// Server INVITE answered 2xx (RFC 6026 "Accepted"): retransmitted INVITEs
    /// are swallowed; ACKs belong to the dialog, not to this transaction.
    InviteAccepted,
    /// Server INVITE whose non-2xx final response was ACKed ("Confirmed"):
    /// INVITE and ACK retransmissions are swallowed.
    InviteConfirmed,
    /// Server non-INVITE ("Completed"): the final response is sent again to
    /// whoever sent the request again.
    Response(Bytes),
    /// Client INVITE that ACKed a 300-699 ("Completed"): the ACK is sent
    /// again for every repeated final response. Boxed: rare, and the
    /// destination would otherwise widen every entry.
    Ack(Box<(D, Bytes)>),
}

/// A transaction key reduced to 128 bits (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Digest(u128);

/// The absorbing transactions, bounded by `cap`.
#[derive(Debug)]
pub(crate) struct Absorbing<D> {
    cap: usize,
    keys: (RandomState, RandomState),
    entries: HashMap<Digest, (Keep<D>, Instant)>,
    /// Deadlines, earliest first; an item whose entry was replaced or is
    /// gone is skipped when it comes up.
    deadlines: BinaryHeap<Reverse<(Instant, Digest)>>,
    evicted: u64,
}

impl<D> Absorbing<D> {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            keys: (RandomState::new(), RandomState::new()),
            entries: HashMap::new(),
            deadlines: BinaryHeap::new(),
            evicted: 0,
        }
    }

    /// The digest of a transaction key; `server` keeps server and client
    /// transactions with equal keys apart.
    pub(crate) fn digest(&self, server: bool, branch: &str, method: &str, sent_by: &str) -> Digest {
        let key = (server, branch, method, sent_by);
        let hi = self.keys.0.hash_one(key);
        let lo = self.keys.1.hash_one(key);
        Digest((u128::from(hi) << 64) | u128::from(lo))
    }

    /// Keeps `keep` until `until`. When the set is full, the entry nearest
    /// its end makes room.
    pub(crate) fn insert(&mut self, key: Digest, keep: Keep<D>, until: Instant) {
        if !self.entries.contains_key(&key) {
            while self.entries.len() >= self.cap {
                if !self.pop_earliest() {
                    break;
                }
                self.evicted += 1;
            }
        }
        self.entries.insert(key, (keep, until));
        self.deadlines.push(Reverse((until, key)));
    }

    /// The entry for `key`, if it has not reached its deadline at `now`.
    pub(crate) fn get(&self, key: &Digest, now: Instant) -> Option<&Keep<D>> {
        match self.entries.get(key) {
            Some((keep, until)) if now < *until => Some(keep),
            _ => None,
        }
    }

    /// Forgets every entry whose deadline is at or before `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(Reverse((until, key))) = self.deadlines.peek().copied() {
            if until > now {
                break;
            }
            self.deadlines.pop();
            if self.entries.get(&key).is_some_and(|(_, u)| *u == until) {
                self.entries.remove(&key);
            }
        }
    }

    /// The earliest deadline still held.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((until, _))| *until)
    }

    /// Removes the entry with the earliest deadline (skipping stale heap
    /// items). Returns whether one was removed.
    fn pop_earliest(&mut self) -> bool {
        while let Some(Reverse((until, key))) = self.deadlines.pop() {
            if self.entries.get(&key).is_some_and(|(_, u)| *u == until) {
                self.entries.remove(&key);
                return true;
            }
        }
        false
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries dropped before their deadline because the set was full.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn held_until_deadline_then_gone() {
        let t0 = Instant::now();
        let mut a: Absorbing<()> = Absorbing::new(8);
        let k = a.digest(true, "z9hG4bK1", "BYE", "h:1");
        a.insert(k, Keep::Response(Bytes::from_static(b"200")), t0 + s(32));
        assert_eq!(
            a.get(&k, t0 + s(31)),
            Some(&Keep::Response(Bytes::from_static(b"200")))
        );
        assert_eq!(a.get(&k, t0 + s(32)), None, "the deadline is exclusive");
        assert_eq!(a.next_deadline(), Some(t0 + s(32)));
        a.expire(t0 + s(32));
        assert_eq!(a.len(), 0);
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn keys_differ_by_every_part_and_by_side() {
        let a: Absorbing<()> = Absorbing::new(8);
        let base = a.digest(true, "b", "INVITE", "h:1");
        assert_eq!(base, a.digest(true, "b", "INVITE", "h:1"));
        for other in [
            a.digest(false, "b", "INVITE", "h:1"),
            a.digest(true, "c", "INVITE", "h:1"),
            a.digest(true, "b", "BYE", "h:1"),
            a.digest(true, "b", "INVITE", "h:2"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn full_set_evicts_the_entry_nearest_its_end() {
        let t0 = Instant::now();
        let mut a: Absorbing<()> = Absorbing::new(3);
        let k: Vec<Digest> = (0..5)
            .map(|i| a.digest(true, &format!("b{i}"), "BYE", "h"))
            .collect();
        // Deadlines 10, 40, 20 s: the one at 10 s goes first, then 20 s.
        a.insert(k[0], Keep::InviteAccepted, t0 + s(10));
        a.insert(k[1], Keep::InviteAccepted, t0 + s(40));
        a.insert(k[2], Keep::InviteAccepted, t0 + s(20));
        a.insert(k[3], Keep::InviteAccepted, t0 + s(30));
        assert_eq!(a.len(), 3);
        assert_eq!(a.get(&k[0], t0), None);
        a.insert(k[4], Keep::InviteAccepted, t0 + s(35));
        assert_eq!(a.len(), 3);
        assert_eq!(a.get(&k[2], t0), None);
        for kept in [1, 3, 4] {
            assert!(a.get(&k[kept], t0).is_some(), "entry {kept}");
        }
        assert_eq!(a.evicted(), 2);
    }

    #[test]
    fn stays_bounded_under_a_long_stream_of_entries() {
        let t0 = Instant::now();
        let mut a: Absorbing<()> = Absorbing::new(1000);
        for i in 0..100_000u64 {
            let now = t0 + Duration::from_micros(i * 100);
            a.expire(now);
            let k = a.digest(true, &i.to_string(), "BYE", "h");
            a.insert(k, Keep::InviteConfirmed, now + s(32));
            assert!(a.len() <= 1000);
        }
        assert_eq!(a.len(), 1000);
        // Every stale heap item is dropped with its entry: the heap does
        // not outgrow the map.
        assert!(a.deadlines.len() <= 1000);
        assert_eq!(a.evicted(), 99_000);
    }

    #[test]
    fn replacing_an_entry_keeps_the_new_deadline() {
        let t0 = Instant::now();
        let mut a: Absorbing<()> = Absorbing::new(4);
        let k = a.digest(true, "b", "INVITE", "h");
        a.insert(k, Keep::InviteAccepted, t0 + s(5));
        a.insert(k, Keep::InviteConfirmed, t0 + s(9));
        a.expire(t0 + s(6));
        assert_eq!(a.get(&k, t0 + s(6)), Some(&Keep::InviteConfirmed));
        a.expire(t0 + s(9));
        assert_eq!(a.len(), 0);
    }
}
