//! What a finished transaction keeps to absorb retransmissions, and nothing
//! more.
//!
//! RFC 3261 keeps a transaction for up to 64*T1 (32 s) after its work is done
//! only so that a late copy of a request or response is recognised and
//! answered (or dropped) instead of being taken for something new: a server
//! that sent 200 to BYE resends it when the BYE comes again; an INVITE that was
//! answered 2xx swallows its retransmissions; a client that ACKed a 486 re-ACKs
//! a repeated 486; an INVITE answered 486 resends the 486 on Timer G until the
//! ACK comes (or Timer H). For that it needs the transaction's identity, what
//! to re-send (and where, for Timer G), and when to forget it. The transaction layer moves a transaction
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
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::time::{Duration, Instant};

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
    /// Server INVITE answered 300-699, not yet ACKed ("Completed"): the
    /// response goes again to `dest` on Timer G (from `resend_at`, doubling
    /// up to T2; None over reliable transports) and for every INVITE copy,
    /// until the ACK confirms it or the deadline (Timer H) passes.
    InviteCompleted {
        response: Bytes,
        dest: D,
        resend_at: Option<Instant>,
    },
    /// Server non-INVITE ("Completed"): the final response is sent again to
    /// whoever sent the request again.
    Response(Bytes),
    /// Client INVITE that ACKed a 300-699 ("Completed"): the ACK is sent
    /// again for every repeated final response. Boxed: rare, and the
    /// destination would otherwise widen every entry.
    Ack(Box<(D, Bytes)>),
}

/// A transaction key reduced to 128 bits (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Digest(u64, u64);

impl std::hash::Hash for Digest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a keyed hash: the map uses half of it as is.
        state.write_u64(self.0);
    }
}

/// Hands a [`Digest`]'s first half to the map unchanged.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `Digest`; fold anything else in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// How an entry is held: responses live in the arena, not in their own
/// allocations.
#[derive(Debug)]
enum Held<D> {
    InviteAccepted,
    InviteConfirmed,
    /// Boxed: it only lasts until the ACK, and keeps the common entries small.
    InviteCompleted(Box<Completed<D>>),
    /// `len` bytes at `offset` of arena chunk number `chunk`.
    Response {
        chunk: u64,
        offset: u32,
        len: u32,
    },
    Ack(Box<(D, Bytes)>),
}

#[derive(Debug)]
struct Completed<D> {
    chunk: u64,
    offset: u32,
    len: u32,
    dest: D,
    /// The current Timer G interval (zero before the first).
    interval: Duration,
    /// No Timer G, and nothing to absorb once ACKed.
    reliable: bool,
}

/// Re-sendable responses, packed into 256 KiB chunks. Responses are kept
/// for one fixed time (Timer J) and leave in about the order they came, so
/// a chunk is freed whole once its last response left: no per-response
/// allocation lingers among short-lived ones for 32 s.
#[derive(Debug, Default)]
struct Arena {
    /// Number of the first chunk in `chunks`.
    first: u64,
    /// (bytes, responses still held in it).
    chunks: VecDeque<(Vec<u8>, usize)>,
}

const CHUNK: usize = 256 * 1024;

impl Arena {
    fn put(&mut self, bytes: &[u8]) -> (u64, u32, u32) {
        let fits = self
            .chunks
            .back()
            .is_some_and(|(buf, _)| buf.capacity() - buf.len() >= bytes.len());
        if !fits {
            self.chunks
                .push_back((Vec::with_capacity(CHUNK.max(bytes.len())), 0));
        }
        let chunk = self.first + self.chunks.len() as u64 - 1;
        let (buf, held) = self.chunks.back_mut().expect("pushed above");
        let offset = buf.len() as u32;
        buf.extend_from_slice(bytes);
        *held += 1;
        (chunk, offset, bytes.len() as u32)
    }

    fn get(&self, chunk: u64, offset: u32, len: u32) -> Option<&[u8]> {
        let (buf, _) = self.chunks.get(chunk.checked_sub(self.first)? as usize)?;
        buf.get(offset as usize..(offset + len) as usize)
    }

    /// One response of `chunk` left; frees the chunks at the front that
    /// hold none (the last one stays to be written into).
    fn release(&mut self, chunk: u64) {
        if let Some(i) = chunk.checked_sub(self.first) {
            if let Some((_, held)) = self.chunks.get_mut(i as usize) {
                *held = held.saturating_sub(1);
            }
        }
        while self.chunks.len() > 1 && self.chunks.front().is_some_and(|(_, held)| *held == 0) {
            self.chunks.pop_front();
            self.first += 1;
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.chunks.iter().map(|(buf, _)| buf.capacity()).sum()
    }
}

/// The absorbing transactions, bounded by `cap`.
#[derive(Debug)]
pub(crate) struct Absorbing<D> {
    cap: usize,
    keys: (RandomState, RandomState),
    entries: HashMap<Digest, (Held<D>, Instant), BuildHasherDefault<PassThrough>>,
    /// Deadlines, earliest first; an item whose entry was replaced or is
    /// gone is skipped when it comes up.
    deadlines: BinaryHeap<Reverse<(Instant, Digest)>>,
    /// Timer G of the Completed INVITEs, earliest first (stale items are
    /// skipped the same way).
    resends: BinaryHeap<Reverse<(Instant, Digest)>>,
    arena: Arena,
    evicted: u64,
}

impl<D> Absorbing<D> {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            keys: (RandomState::new(), RandomState::new()),
            entries: HashMap::default(),
            deadlines: BinaryHeap::new(),
            resends: BinaryHeap::new(),
            arena: Arena::default(),
            evicted: 0,
        }
    }

    /// The digest of a transaction key; `server` keeps server and client
    /// transactions with equal keys apart.
    pub(crate) fn digest(&self, server: bool, branch: &str, method: &str, sent_by: &str) -> Digest {
        let key = (server, branch, method, sent_by);
        Digest(self.keys.0.hash_one(key), self.keys.1.hash_one(key))
    }

    /// Keeps `keep` until `until`. When the set is full, the entry nearest
    /// its end makes room.
    pub(crate) fn insert(&mut self, key: Digest, keep: Keep<D>, until: Instant) {
        if let Some((old, _)) = self.entries.remove(&key) {
            self.drop_held(old);
        }
        while self.entries.len() >= self.cap {
            if !self.pop_earliest() {
                break;
            }
            self.evicted += 1;
        }
        let held = match keep {
            Keep::InviteAccepted => Held::InviteAccepted,
            Keep::InviteConfirmed => Held::InviteConfirmed,
            Keep::Response(bytes) => {
                let (chunk, offset, len) = self.arena.put(&bytes);
                Held::Response { chunk, offset, len }
            }
            Keep::Ack(to) => Held::Ack(to),
            Keep::InviteCompleted {
                response,
                dest,
                resend_at,
            } => {
                let (chunk, offset, len) = self.arena.put(&response);
                if let Some(at) = resend_at {
                    self.resends.push(Reverse((at, key)));
                }
                Held::InviteCompleted(Box::new(Completed {
                    chunk,
                    offset,
                    len,
                    dest,
                    interval: Duration::ZERO,
                    reliable: resend_at.is_none(),
                }))
            }
        };
        self.entries.insert(key, (held, until));
        self.deadlines.push(Reverse((until, key)));
    }

    /// The entry for `key`, if it has not reached its deadline at `now`.
    /// A response comes back as a copy (retransmissions are rare).
    pub(crate) fn get(&self, key: &Digest, now: Instant) -> Option<Keep<D>>
    where
        D: Clone,
    {
        let (held, until) = self.entries.get(key)?;
        if now >= *until {
            return None;
        }
        Some(match held {
            Held::InviteAccepted => Keep::InviteAccepted,
            Held::InviteConfirmed => Keep::InviteConfirmed,
            Held::Response { chunk, offset, len } => Keep::Response(Bytes::copy_from_slice(
                self.arena.get(*chunk, *offset, *len)?,
            )),
            Held::Ack(to) => Keep::Ack(to.clone()),
            Held::InviteCompleted(c) => Keep::InviteCompleted {
                response: Bytes::copy_from_slice(self.arena.get(c.chunk, c.offset, c.len)?),
                dest: c.dest.clone(),
                resend_at: None,
            },
        })
    }

    /// The ACK for a Completed INVITE: it becomes Confirmed for `t4`
    /// (Timer I), or is forgotten over a reliable transport. Returns
    /// whether `key` was a Completed INVITE.
    pub(crate) fn confirm(&mut self, key: Digest, now: Instant, t4: Duration) -> bool {
        let reliable = match self.entries.get(&key) {
            Some((Held::InviteCompleted(c), u)) if now < *u => c.reliable,
            _ => return false,
        };
        if let Some((held, _)) = self.entries.remove(&key) {
            self.drop_held(held);
        }
        if !reliable {
            self.insert(key, Keep::InviteConfirmed, now + t4);
        }
        true
    }

    /// Timer G: the Completed INVITEs whose response is due again at
    /// `now`, with where it goes. Intervals double from `t1` up to `t2`.
    pub(crate) fn due_resends(
        &mut self,
        now: Instant,
        t1: Duration,
        t2: Duration,
    ) -> Vec<(D, Bytes)>
    where
        D: Clone,
    {
        let mut out = Vec::new();
        while let Some(Reverse((at, key))) = self.resends.peek().copied() {
            if at > now {
                break;
            }
            self.resends.pop();
            let Some((Held::InviteCompleted(c), until)) = self.entries.get_mut(&key) else {
                continue;
            };
            if now >= *until {
                continue;
            }
            if let Some(bytes) = self.arena.get(c.chunk, c.offset, c.len) {
                out.push((c.dest.clone(), Bytes::copy_from_slice(bytes)));
            }
            c.interval = if c.interval.is_zero() {
                t1.saturating_mul(2)
            } else {
                c.interval.saturating_mul(2)
            }
            .min(t2);
            let next = now + c.interval;
            if next < *until {
                self.resends.push(Reverse((next, key)));
            }
        }
        out
    }

    /// The earliest Timer G still armed.
    pub(crate) fn next_resend(&self) -> Option<Instant> {
        self.resends.peek().map(|Reverse((at, _))| *at)
    }

    /// Forgets every entry whose deadline is at or before `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(Reverse((until, key))) = self.deadlines.peek().copied() {
            if until > now {
                break;
            }
            self.deadlines.pop();
            self.remove_if_due(key, until);
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
            if self.remove_if_due(key, until) {
                return true;
            }
        }
        false
    }

    /// Removes `key` if its entry is the one that ends at `until`.
    fn remove_if_due(&mut self, key: Digest, until: Instant) -> bool {
        if self.entries.get(&key).is_none_or(|(_, u)| *u != until) {
            return false;
        }
        if let Some((held, _)) = self.entries.remove(&key) {
            self.drop_held(held);
        }
        true
    }

    fn drop_held(&mut self, held: Held<D>) {
        match held {
            Held::Response { chunk, .. } => self.arena.release(chunk),
            Held::InviteCompleted(c) => self.arena.release(c.chunk),
            _ => {}
        }
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
            Some(Keep::Response(Bytes::from_static(b"200")))
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
        assert_eq!(a.get(&k, t0 + s(6)), Some(Keep::InviteConfirmed));
        a.expire(t0 + s(9));
        assert_eq!(a.len(), 0);
    }

    #[test]
    fn responses_share_chunks_that_are_freed_once_empty() {
        let t0 = Instant::now();
        let mut a: Absorbing<()> = Absorbing::new(100_000);
        let body = vec![b'x'; 1000];
        // 32 s of 1,000 responses/s, each held 32 s: about 32 MB in chunks
        // of 256 KiB, and the chunks of expired ones are given back.
        for i in 0..64_000u64 {
            let now = t0 + Duration::from_millis(i);
            a.expire(now);
            let k = a.digest(true, &i.to_string(), "BYE", "h");
            a.insert(k, Keep::Response(Bytes::from(body.clone())), now + s(32));
        }
        assert_eq!(a.len(), 32_000);
        let held = a.arena.bytes();
        assert!(
            (32_000_000..32_000_000 + 2 * CHUNK).contains(&held),
            "{held} bytes in the arena"
        );
        let last = a.digest(true, "63999", "BYE", "h");
        assert_eq!(
            a.get(&last, t0 + s(64)),
            Some(Keep::Response(Bytes::from(body.clone())))
        );
        a.expire(t0 + s(100));
        assert_eq!(a.len(), 0);
        assert!(
            a.arena.bytes() <= CHUNK,
            "only the chunk being written stays"
        );
        // A response bigger than a chunk gets one of its own.
        let big = vec![b'y'; CHUNK + 10];
        let k = a.digest(true, "big", "MESSAGE", "h");
        a.insert(k, Keep::Response(Bytes::from(big.clone())), t0 + s(200));
        assert_eq!(
            a.get(&k, t0 + s(100)),
            Some(Keep::Response(Bytes::from(big)))
        );
    }
}
