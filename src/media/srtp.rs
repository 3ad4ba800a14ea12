//! SRTP (RFC 3711) for one leg: protect what the leg sends, unprotect what
//! it receives, with the keys the SDP room negotiated ([`SrtpParams`]).
//!
//! The cryptography is the `webrtc-srtp` crate (webrtc-rs), chosen over
//! the alternatives for these reasons:
//! - Maintained: part of the webrtc-rs workspace, released with it (0.17 in
//!   2025), used by its WebRTC stack for every media packet.
//! - Pure Rust on RustCrypto's `aes`/`ctr`/`hmac`/`sha1` (AES-NI and SHA
//!   extensions picked at run time): nothing to install, the Docker image
//!   and the test machine need no system library, and no `unsafe` FFI on
//!   the packet path. Bindings to Debian's libsrtp2 (the `srtp` crate) would
//!   bring bindgen 0.55 and libclang into the build, a system library into
//!   the runtime image, and their last release is years old; the pure-Rust
//!   `libsrtp` crate calls itself experimental and had one release.
//! - Replay protection with a sliding window per SSRC (we ask for 128
//!   packets, libsrtp's default), checked before and committed only after
//!   the tag verifies; the rollover counter is estimated per RFC 3711
//!   Appendix A for each SSRC, on both directions.
//! - Cost: two small allocations per packet (the crate returns a fresh
//!   buffer) and a key schedule per packet; `bench/srtp_cost.rs` measures
//!   protect/unprotect against a plain RTP build+parse. Plain legs carry
//!   no SRTP state and pay one `None` check per packet.
//!
//! One gap of the crate is closed here: it keeps per-SSRC state for any
//! SSRC it is handed, before the tag is checked, so a forger could grow it
//! without bound by varying the SSRC. Packets of an SSRC not yet
//! authenticated are therefore first checked on a scratch context (rebuilt
//! after [`PROBE_SSRCS`] SSRCs); only an SSRC whose packet verifies reaches
//! the real context, which holds at most [`MAX_SSRCS`] of them. Beyond that
//! a further SSRC is dropped (a keyed peer would have to cycle SSRCs for
//! that to happen).
//!
//! Must not touch: sockets, SIP, SDP text. `clock.rs` calls it per packet.

use bytes::Bytes;
use webrtc_srtp::Error as CryptoError;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::srtp_replay_protection;
use webrtc_srtp::protection_profile::ProtectionProfile;

use crate::sdp::{SrtpKey, SrtpParams, SrtpSuite};

/// Replay window, in packets (RFC 3711 §3.3.2 asks for at least 64).
pub(crate) const REPLAY_WINDOW: usize = 128;
/// Authenticated SSRCs one leg keeps state for (audio, and events on an
/// SSRC of their own, with room for a restart or two).
pub(crate) const MAX_SSRCS: usize = 8;
/// Unverified SSRCs the scratch context sees before it is rebuilt.
const PROBE_SSRCS: usize = 8;

/// Why a received packet was dropped: the `reason` values of
/// `conmutador_srtp_dropped_total`, in [`Reject`] order.
pub const SRTP_DROP_REASONS: [&str; 4] = ["auth", "replay", "malformed", "ssrc_limit"];

/// Why an SRTP packet was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// The authentication tag did not verify (wrong key, tampered, forged).
    Auth,
    /// Already received, or older than the replay window.
    Replay,
    /// Too short or not RTP.
    Malformed,
    /// A new SSRC on a leg that already has [`MAX_SSRCS`].
    SsrcLimit,
}

/// The crypto contexts of one leg.
pub(crate) struct LegSrtp {
    params: SrtpParams,
    tx: Context,
    rx: Context,
    /// Checks packets of SSRCs `rx` does not know yet.
    probe: Context,
    probe_fed: usize,
    known: Vec<u32>,
}

fn profile(suite: SrtpSuite) -> ProtectionProfile {
    match suite {
        SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
    }
}

fn context(suite: SrtpSuite, key: &SrtpKey, replay: bool) -> Context {
    let opt = replay.then(|| srtp_replay_protection(REPLAY_WINDOW));
    // Key and salt lengths are fixed by the type and the suite, which is
    // the only way this can fail.
    Context::new(
        key.master_key(),
        key.master_salt(),
        profile(suite),
        opt,
        None,
    )
    .expect("AES_CM_128 key and salt have the lengths the suite needs")
}

fn ssrc_of(packet: &[u8]) -> Option<u32> {
    let b = packet.get(8..12)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

impl LegSrtp {
    pub(crate) fn new(params: &SrtpParams) -> LegSrtp {
        LegSrtp {
            tx: context(params.suite, &params.local_key, false),
            rx: context(params.suite, &params.remote_key, true),
            probe: context(params.suite, &params.remote_key, false),
            probe_fed: 0,
            known: Vec::new(),
            params: params.clone(),
        }
    }

    #[cfg(test)]
    pub(crate) fn params(&self) -> &SrtpParams {
        &self.params
    }

    /// New keys from a re-INVITE. A direction whose key and suite did not
    /// change keeps its context, so its packet index (and the keystream
    /// position) runs on; a changed one starts afresh.
    pub(crate) fn rekey(&mut self, params: &SrtpParams) {
        if params.suite != self.params.suite || params.local_key != self.params.local_key {
            self.tx = context(params.suite, &params.local_key, false);
        }
        if params.suite != self.params.suite || params.remote_key != self.params.remote_key {
            self.rx = context(params.suite, &params.remote_key, true);
            self.probe = context(params.suite, &params.remote_key, false);
            self.probe_fed = 0;
            self.known.clear();
        }
        self.params = params.clone();
    }

    /// Encrypts and authenticates one RTP packet. `None` only for a packet
    /// that is not RTP or when the key's packet limit (2^48) is reached.
    pub(crate) fn protect(&mut self, rtp: &[u8]) -> Option<Bytes> {
        self.tx.encrypt_rtp(rtp).ok()
    }

    /// Verifies and decrypts one SRTP packet into plain RTP.
    pub(crate) fn unprotect(&mut self, srtp: &[u8]) -> Result<Bytes, Reject> {
        let ssrc = ssrc_of(srtp).ok_or(Reject::Malformed)?;
        // RTCP sent to the RTP port (we never offer rtcp-mux): not ours,
        // and not a forgery either.
        if (200..=204).contains(&srtp[1]) {
            return Err(Reject::Malformed);
        }
        if !self.known.contains(&ssrc) {
            if self.known.len() >= MAX_SSRCS {
                return Err(Reject::SsrcLimit);
            }
            if self.probe_fed >= PROBE_SSRCS {
                self.probe = context(self.params.suite, &self.params.remote_key, false);
                self.probe_fed = 0;
            }
            self.probe_fed += 1;
            self.probe.decrypt_rtp(srtp).map_err(reject)?;
            self.known.push(ssrc);
        }
        self.rx.decrypt_rtp(srtp).map_err(reject)
    }
}

fn reject(e: CryptoError) -> Reject {
    match e {
        CryptoError::RtpFailedToVerifyAuthTag | CryptoError::ErrFailedToVerifyAuthTag => {
            Reject::Auth
        }
        CryptoError::SrtpSsrcDuplicated(..) => Reject::Replay,
        _ => Reject::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SrtpKey {
        SrtpKey(
            hex::decode("e1f97a0d3e018be0d64fa32c06de41390ec675ad498afeebb6960b3aabe6")
                .unwrap()
                .try_into()
                .unwrap(),
        )
    }

    const PLAIN: &str = "800f1234decafbadcafebabeabababababababababababababababab";
    const CIPHER_80: &str =
        "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb";

    fn params(suite: SrtpSuite) -> SrtpParams {
        SrtpParams {
            suite,
            local_key: key(),
            remote_key: key(),
        }
    }

    #[test]
    fn known_answer_from_libsrtp() {
        // libsrtp's reference packet: both suites share the keystream, the
        // 32-bit tag is the first four bytes of the 80-bit one.
        let plain = hex::decode(PLAIN).unwrap();
        let mut s = LegSrtp::new(&params(SrtpSuite::AesCm128HmacSha1_80));
        let out = s.protect(&plain).unwrap();
        assert_eq!(hex::encode(&out), CIPHER_80);
        assert_eq!(s.unprotect(&out).unwrap().as_ref(), plain.as_slice());
        let mut s = LegSrtp::new(&params(SrtpSuite::AesCm128HmacSha1_32));
        let out = s.protect(&plain).unwrap();
        assert_eq!(hex::encode(&out), &CIPHER_80[..64]);
        assert_eq!(s.unprotect(&out).unwrap().as_ref(), plain.as_slice());
    }

    #[test]
    fn tampering_replay_and_garbage_are_told_apart() {
        let mut s = LegSrtp::new(&params(SrtpSuite::AesCm128HmacSha1_80));
        let good = hex::decode(CIPHER_80).unwrap();
        let mut bad = good.clone();
        bad[20] ^= 1;
        assert_eq!(s.unprotect(&bad), Err(Reject::Auth));
        assert!(s.unprotect(&good).is_ok());
        assert_eq!(s.unprotect(&good), Err(Reject::Replay));
        assert_eq!(s.unprotect(&good[..8]), Err(Reject::Malformed));
        assert_eq!(s.unprotect(&good[..14]), Err(Reject::Malformed));
    }

    #[test]
    fn forged_ssrcs_do_not_grow_state_and_real_ones_are_capped() {
        let p = params(SrtpSuite::AesCm128HmacSha1_80);
        let mut s = LegSrtp::new(&p);
        let mut forged = hex::decode(CIPHER_80).unwrap();
        for ssrc in 0..10_000u32 {
            forged[8..12].copy_from_slice(&ssrc.to_be_bytes());
            assert_eq!(s.unprotect(&forged), Err(Reject::Auth));
        }
        assert!(s.known.is_empty());
        assert!(s.probe_fed <= PROBE_SSRCS);
        // Genuine packets on many SSRCs: the first MAX_SSRCS are kept.
        let mut peer = LegSrtp::new(&p);
        let mut plain = hex::decode(PLAIN).unwrap();
        for ssrc in 0..MAX_SSRCS as u32 + 1 {
            plain[8..12].copy_from_slice(&ssrc.to_be_bytes());
            let pkt = peer.protect(&plain).unwrap();
            let want = if (ssrc as usize) < MAX_SSRCS {
                Ok(Bytes::from(plain.clone()))
            } else {
                Err(Reject::SsrcLimit)
            };
            assert_eq!(s.unprotect(&pkt), want, "ssrc {ssrc}");
        }
    }

    /// An RTP packet with sequence number `seq` on SSRC 0xcafebabe.
    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = hex::decode(PLAIN).unwrap();
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p
    }

    #[test]
    fn the_rollover_counter_carries_both_ways_across_the_wrap() {
        let p = params(SrtpSuite::AesCm128HmacSha1_80);
        let (mut tx, mut rx) = (LegSrtp::new(&p), LegSrtp::new(&p));
        let seqs: Vec<u16> = (65500..=65535).chain(0..40).collect();
        let wire: Vec<Bytes> = seqs.iter().map(|&q| tx.protect(&rtp(q)).unwrap()).collect();
        // Delivered out of order around the wrap: 0 before 65535.
        let mut order: Vec<usize> = (0..wire.len()).collect();
        order.swap(35, 36);
        for i in order {
            assert_eq!(
                rx.unprotect(&wire[i]).unwrap().as_ref(),
                rtp(seqs[i]).as_slice(),
                "seq {}",
                seqs[i]
            );
        }
        // Past the wrap the sender is in ROC 1: the same sequence number
        // under ROC 0 is another packet (and another keystream).
        let roc0 = LegSrtp::new(&p).protect(&rtp(5)).unwrap();
        assert_ne!(roc0, wire[36 + 5]);
        assert_eq!(rx.unprotect(&roc0), Err(Reject::Replay));
        // A new packet after the wrap still verifies; one from before the
        // wrap, already received, does not.
        assert!(rx.unprotect(&tx.protect(&rtp(40)).unwrap()).is_ok());
        assert_eq!(rx.unprotect(&wire[0]), Err(Reject::Replay));
    }

    #[test]
    fn rekey_keeps_an_unchanged_direction_running() {
        let p = params(SrtpSuite::AesCm128HmacSha1_80);
        let mut s = LegSrtp::new(&p);
        let plain = hex::decode(PLAIN).unwrap();
        let first = s.protect(&plain).unwrap();
        // Same keys: the same context, so the same packet index gives the
        // same bytes only if nothing was reset (no keystream restarts).
        s.rekey(&p);
        let good = hex::decode(CIPHER_80).unwrap();
        assert!(s.unprotect(&good).is_ok());
        s.rekey(&p);
        assert_eq!(s.unprotect(&good), Err(Reject::Replay), "window kept");
        let mut q = p.clone();
        q.remote_key = SrtpKey::random();
        s.rekey(&q);
        assert_eq!(s.unprotect(&good), Err(Reject::Auth), "new peer key");
        assert_eq!(s.params(), &q);
        assert_eq!(first.len(), plain.len() + 10);
    }
}
