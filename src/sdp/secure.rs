//! Offer/answer with SRTP (RFC 4568 SDES keys in `a=crypto`), beside the
//! plain functions of `mod.rs`, which stay as they were.
//!
//! Rules, all decided here so the call room only passes [`SecureOpts`]:
//! - Keys only over TLS: with `signalling_secure == false` we never write a
//!   key and never take one. An offer whose only usable audio is RTP/SAVP is
//!   then refused with [`SdpError::SrtpNeedsSecureSignalling`] (the call
//!   room answers 488 with that reason); a plain stream in the same offer,
//!   or `a=crypto` on an RTP/AVP line (best-effort SRTP, as baresip's
//!   `mediaenc=srtp` sends), is answered plain.
//! - With TLS, SRTP is preferred whenever the peer offers a usable line:
//!   RTP/SAVP, or RTP/AVP with `a=crypto` (answered in kind, the same proto
//!   back). [`SrtpMode::Required`] refuses an offer without one
//!   ([`SdpError::SrtpRequired`]); [`SrtpMode::Off`] is the plain `answer`.
//! - The answerer takes the offerer's first usable `a=crypto` line (RFC 4568
//!   §7.1.2), answers with its tag and suite and a key of our own.
//! - Our keys belong to the leg's [`LocalSdp`]: one per suite, made on first
//!   use and kept, so a re-INVITE answered with the same SDP keeps the same
//!   body (and `o=` version) and the media engine keeps its crypto context
//!   (the packet index runs on under one key, never restarting a keystream).
//! - RTP/SAVPF and DTLS-SRTP are not offered or accepted.

use bytes::Bytes;
use sdp_types::{Media, Session};

use super::sdes::{CryptoLine, SrtpKey, SrtpParams, SrtpSuite, parse_crypto};
use super::{
    Codec, Format, LocalSdp, MediaParams, SdpError, finish_answer, formats, is_audio, new_session,
    offer_media, parse_session,
};

/// How one leg treats SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpMode {
    /// Plain RTP only, exactly as [`super::answer`] and [`super::offer`].
    Off,
    /// SRTP when the peer offers it (answers), or best effort (offers:
    /// RTP/AVP carrying `a=crypto`, which a plain phone ignores); plain
    /// otherwise. Needs secure signalling to use keys at all.
    #[default]
    Optional,
    /// SRTP or no call: offers are RTP/SAVP, plain offers are refused.
    Required,
}

/// The SRTP side of one negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SecureOpts {
    pub srtp: SrtpMode,
    /// The SIP signalling of this leg runs over TLS (`sips:` /
    /// `;transport=tls`), end to end as far as we can tell. Only then are
    /// SDES keys written or read.
    pub signalling_secure: bool,
}

/// Our SRTP state inside a [`LocalSdp`].
#[derive(Debug, Clone, Default)]
pub(super) struct LocalSrtp {
    /// One key per suite, made on first use.
    keys: Vec<(SrtpSuite, SrtpKey)>,
    /// What our last offer carried: `None` for a plain offer, else whether
    /// it was RTP/SAVP (SRTP required).
    pub(super) offered: Option<bool>,
}

impl LocalSrtp {
    fn key(&mut self, suite: SrtpSuite) -> SrtpKey {
        if let Some((_, k)) = self.keys.iter().find(|(s, _)| *s == suite) {
            return k.clone();
        }
        let k = SrtpKey::random();
        self.keys.push((suite, k.clone()));
        k
    }

    fn existing(&self, suite: SrtpSuite) -> Option<&SrtpKey> {
        self.keys.iter().find(|(s, _)| *s == suite).map(|(_, k)| k)
    }
}

impl LocalSdp {
    /// Forgets our SRTP keys: the next offer or answer carries fresh ones
    /// (and the media leg must be given the new [`SrtpParams`]).
    pub fn new_srtp_keys(&mut self) {
        self.srtp.keys.clear();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Avp,
    Savp,
}

/// RTP/AVP(F) or RTP/SAVP; anything else (SAVPF, DTLS, UDPTL) is not ours.
fn proto_of(media: &Media) -> Option<Proto> {
    let proto = media.proto.to_ascii_uppercase();
    match proto.as_str() {
        "RTP/AVP" | "RTP/AVPF" => Some(Proto::Avp),
        "RTP/SAVP" => Some(Proto::Savp),
        _ => None,
    }
}

fn crypto_values(media: &Media) -> impl Iterator<Item = &str> {
    media
        .attributes
        .iter()
        .filter(|a| a.attribute.eq_ignore_ascii_case("crypto"))
        .filter_map(|a| a.value.as_deref())
}

/// The first `a=crypto` line of `media` we can use, in the offerer's order.
fn usable_crypto(media: &Media) -> Option<CryptoLine> {
    crypto_values(media).find_map(|v| parse_crypto(v).ok())
}

struct Candidate {
    index: usize,
    codec: Codec,
    pt: u8,
    dtmf_pt: Option<u8>,
    crypto: Option<(Proto, CryptoLine)>,
}

/// [`super::answer`] with SRTP: see the module doc for the rules. Returns
/// the body, the media parameters and, when the answer is SRTP, the keys
/// for the media leg ([`crate::media::MediaEngine::start_leg_secure`]).
pub fn answer_secure(
    offer: &[u8],
    local: &mut LocalSdp,
    supported: &[Codec],
    opts: SecureOpts,
) -> Result<(Bytes, MediaParams, Option<SrtpParams>), SdpError> {
    if opts.srtp == SrtpMode::Off {
        let (body, params) = super::answer(offer, local, supported)?;
        return Ok((body, params, None));
    }
    let session = parse_session(offer)?;
    let (mut plain, mut srtp) = (None, None);
    let (mut codec_mismatch, mut insecure, mut no_crypto, mut plain_refused) =
        (false, false, false, false);
    for (index, m) in session.medias.iter().enumerate() {
        if !is_audio(m) || m.port == 0 {
            continue;
        }
        let Some(proto) = proto_of(m) else { continue };
        let fmts = formats(m);
        let Some((codec, pt)) = fmts.iter().find_map(|&(pt, f)| match f {
            Format::Audio(c) if supported.contains(&c) => Some((c, pt)),
            _ => None,
        }) else {
            codec_mismatch = true;
            continue;
        };
        let dtmf_pt = fmts
            .iter()
            .find_map(|&(pt, f)| (f == Format::TelephoneEvent).then_some(pt));
        let mut cand = Candidate {
            index,
            codec,
            pt,
            dtmf_pt,
            crypto: None,
        };
        let crypto = if opts.signalling_secure {
            usable_crypto(m)
        } else {
            None
        };
        match (proto, crypto) {
            (Proto::Savp, _) if !opts.signalling_secure => insecure = true,
            (Proto::Savp, None) => no_crypto = true,
            (proto, Some(c)) => {
                if srtp.is_none() {
                    cand.crypto = Some((proto, c));
                    srtp = Some(cand);
                }
            }
            (Proto::Avp, None) if opts.srtp == SrtpMode::Required => {
                if crypto_values(m).next().is_some() && opts.signalling_secure {
                    no_crypto = true;
                } else {
                    plain_refused = true;
                }
            }
            (Proto::Avp, None) => {
                if plain.is_none() {
                    plain = Some(cand);
                }
            }
        }
    }
    let Some(c) = srtp.or(plain) else {
        return Err(if insecure {
            SdpError::SrtpNeedsSecureSignalling
        } else if no_crypto {
            SdpError::NoCommonCrypto
        } else if plain_refused {
            SdpError::SrtpRequired
        } else if codec_mismatch {
            SdpError::NoCommonCodec
        } else {
            SdpError::NoAudio
        });
    };
    let keys = c.crypto.map(|(proto, theirs)| {
        let ours = CryptoLine {
            tag: theirs.tag,
            suite: theirs.suite,
            key: local.srtp.key(theirs.suite),
        };
        let proto = match proto {
            Proto::Savp => "RTP/SAVP",
            Proto::Avp => "RTP/AVP",
        };
        let params = SrtpParams {
            suite: theirs.suite,
            local_key: ours.key.clone(),
            remote_key: theirs.key,
        };
        (proto, ours.value(), params)
    });
    let secure = keys.as_ref().map(|(proto, line, _)| (*proto, line.clone()));
    let (body, params) = finish_answer(&session, local, c.index, c.codec, c.pt, c.dtmf_pt, secure)?;
    Ok((body, params, keys.map(|(_, _, p)| p)))
}

/// [`super::offer`] with SRTP. With secure signalling and SRTP on, the
/// audio line carries one `a=crypto` per supported suite (tag 1 for
/// `_80`, tag 2 for `_32`, each its own key): as RTP/SAVP when
/// [`SrtpMode::Required`], as RTP/AVP (best effort) when optional. Without
/// secure signalling an optional offer is plain and a required one is
/// [`SdpError::SrtpNeedsSecureSignalling`]. Read the answer with
/// [`accept_answer_secure`] and the same `local`.
pub fn offer_secure(
    local: &mut LocalSdp,
    supported: &[Codec],
    opts: SecureOpts,
) -> Result<Bytes, SdpError> {
    let required = match (opts.srtp, opts.signalling_secure) {
        (SrtpMode::Off, _) | (SrtpMode::Optional, false) => {
            return Ok(super::offer(local, supported));
        }
        (SrtpMode::Required, false) => return Err(SdpError::SrtpNeedsSecureSignalling),
        (mode, true) => mode == SrtpMode::Required,
    };
    let mut m = offer_media(local, supported);
    if required {
        m.proto = "RTP/SAVP".to_owned();
    }
    for suite in SrtpSuite::ALL {
        let line = CryptoLine {
            tag: suite.offer_tag(),
            suite,
            key: local.srtp.key(suite),
        };
        m.add_attribute_with_value("crypto", line.value());
    }
    local.srtp.offered = Some(required);
    let mut s = new_session(local);
    s.add_media(m);
    Ok(local.finish(s))
}

/// [`super::accept_answer`] for an offer made by [`offer_secure`] (or
/// [`super::offer`]) on `local`. The answer's `a=crypto` must name one of
/// our tags with its suite; its key protects what the peer sends us.
/// `Ok((params, None))` is a plain answer to an optional offer.
pub fn accept_answer_secure(
    answer: &[u8],
    offered: &[Codec],
    local: &LocalSdp,
) -> Result<(MediaParams, Option<SrtpParams>), SdpError> {
    let session: Session = parse_session(answer)?;
    let we_offered = local.srtp.offered;
    let media = session
        .medias
        .iter()
        .find(|m| {
            is_audio(m)
                && m.port != 0
                && match proto_of(m) {
                    Some(Proto::Avp) => true,
                    Some(Proto::Savp) => we_offered.is_some(),
                    None => false,
                }
        })
        .ok_or(SdpError::NoAudio)?;
    let params = super::accept_media(&session, media, offered)?;
    // Plain offer: whatever the answer says about keys, there are none.
    let Some(required) = we_offered else {
        return Ok((params, None));
    };
    let theirs = usable_crypto(media).filter(|c| c.tag == c.suite.offer_tag());
    let ours = theirs
        .as_ref()
        .and_then(|c| local.srtp.existing(c.suite).cloned());
    match (theirs, ours) {
        (Some(theirs), Some(ours)) => {
            let srtp = SrtpParams {
                suite: theirs.suite,
                local_key: ours,
                remote_key: theirs.key,
            };
            Ok((params, Some(srtp)))
        }
        _ if required || proto_of(media) == Some(Proto::Savp) => Err(SdpError::NoCommonCrypto),
        // A best-effort offer answered plain (or with a line we cannot
        // use: then plain is what both sides can do).
        _ if crypto_values(media).next().is_none() => Ok((params, None)),
        _ => Err(SdpError::NoCommonCrypto),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Direction, accept_answer, answer, offer};
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    const BOTH: &[Codec] = &[Codec::Pcmu, Codec::Pcma];
    const KEY_B64: &str = "4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm";
    const TLS: SecureOpts = SecureOpts {
        srtp: SrtpMode::Optional,
        signalling_secure: true,
    };
    const UDP: SecureOpts = SecureOpts {
        srtp: SrtpMode::Optional,
        signalling_secure: false,
    };

    fn local() -> LocalSdp {
        let mut l = LocalSdp::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 20000);
        l.session_id = 1000;
        l.version = 1000;
        l
    }

    fn text(b: &Bytes) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    fn sdp(media: &str) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n{media}"
        )
    }

    fn savp(cryptos: &[&str]) -> String {
        let mut m =
            "m=audio 30000 RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n".to_owned();
        for c in cryptos {
            m.push_str(&format!("a=crypto:{}\r\n", c.replace("{k}", KEY_B64)));
        }
        sdp(&m)
    }

    /// The `a=crypto` values of the first audio line of `body`.
    fn cryptos(body: &Bytes) -> Vec<CryptoLine> {
        let s = Session::parse(body).unwrap();
        crypto_values(&s.medias[0])
            .map(|v| parse_crypto(v).unwrap())
            .collect()
    }

    #[test]
    fn answers_an_srtp_offer_over_tls_with_the_first_usable_line_and_our_own_key() {
        let offer = savp(&[
            "1 AES_256_CM_HMAC_SHA1_80 inline:{k}{k}",
            "2 AES_CM_128_HMAC_SHA1_32 inline:{k}",
            "3 AES_CM_128_HMAC_SHA1_80 inline:{k}",
        ]);
        let mut l = local();
        let (body, p, srtp) = answer_secure(offer.as_bytes(), &mut l, BOTH, TLS).unwrap();
        let srtp = srtp.expect("SRTP answered");
        assert_eq!(srtp.suite, SrtpSuite::AesCm128HmacSha1_32);
        assert_eq!(srtp.remote_key.inline(), KEY_B64);
        assert_ne!(srtp.local_key, srtp.remote_key);
        assert_eq!((p.codec, p.dtmf_pt), (Codec::Pcmu, Some(101)));
        let t = text(&body);
        assert!(t.contains("m=audio 20000 RTP/SAVP 0 101\r\n"), "{t}");
        let lines = cryptos(&body);
        assert_eq!(lines.len(), 1, "{t}");
        assert_eq!(lines[0].tag, 2, "the offerer's tag comes back");
        assert_eq!(lines[0].suite, SrtpSuite::AesCm128HmacSha1_32);
        assert_eq!(lines[0].key, srtp.local_key);
        // A refresh with the same offer: same key, same body, same version.
        let (again, _, srtp2) = answer_secure(offer.as_bytes(), &mut l, BOTH, TLS).unwrap();
        assert_eq!(again, body);
        assert_eq!(srtp2.unwrap(), srtp);
        // Another leg gets another key.
        let (_, _, other) = answer_secure(offer.as_bytes(), &mut local(), BOTH, TLS).unwrap();
        assert_ne!(other.unwrap().local_key, srtp.local_key);
    }

    #[test]
    fn srtp_only_offer_without_tls_is_refused_and_keys_are_never_read() {
        let offer = savp(&["1 AES_CM_128_HMAC_SHA1_80 inline:{k}"]);
        assert_eq!(
            answer_secure(offer.as_bytes(), &mut local(), BOTH, UDP).unwrap_err(),
            SdpError::SrtpNeedsSecureSignalling
        );
        // Required changes nothing about that.
        let req = SecureOpts {
            srtp: SrtpMode::Required,
            signalling_secure: false,
        };
        assert_eq!(
            answer_secure(offer.as_bytes(), &mut local(), BOTH, req).unwrap_err(),
            SdpError::SrtpNeedsSecureSignalling
        );
        // Best-effort SRTP (crypto on RTP/AVP) without TLS: answered plain.
        let best_effort = sdp(&format!(
            "m=audio 30000 RTP/AVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}\r\n"
        ));
        let (body, _, srtp) =
            answer_secure(best_effort.as_bytes(), &mut local(), BOTH, UDP).unwrap();
        assert_eq!(srtp, None);
        let t = text(&body);
        assert!(!t.contains("crypto") && t.contains("RTP/AVP 0"), "{t}");
        // An SRTP line beside a plain one without TLS: the plain one.
        let two = format!(
            "{}m=audio 30002 RTP/AVP 0\r\n",
            savp(&["1 AES_CM_128_HMAC_SHA1_80 inline:{k}"])
        );
        let (body, p, srtp) = answer_secure(two.as_bytes(), &mut local(), BOTH, UDP).unwrap();
        assert_eq!((srtp, p.remote.port()), (None, 30002));
        assert!(text(&body).contains("m=audio 0 RTP/SAVP"));
        // Over TLS the SRTP one wins.
        let (_, p, srtp) = answer_secure(two.as_bytes(), &mut local(), BOTH, TLS).unwrap();
        assert_eq!(p.remote.port(), 30000);
        assert!(srtp.is_some());
    }

    #[test]
    fn unusable_crypto_and_required_mode() {
        // Only lines we refuse: no common crypto.
        let offer = savp(&[
            "1 AEAD_AES_128_GCM inline:{k}",
            "2 AES_CM_128_HMAC_SHA1_80 inline:{k}|2^20|1:4",
        ]);
        assert_eq!(
            answer_secure(offer.as_bytes(), &mut local(), BOTH, TLS).unwrap_err(),
            SdpError::NoCommonCrypto
        );
        // SRTP required, plain offered.
        let req = SecureOpts {
            srtp: SrtpMode::Required,
            signalling_secure: true,
        };
        let plain = sdp("m=audio 30000 RTP/AVP 8\r\n");
        assert_eq!(
            answer_secure(plain.as_bytes(), &mut local(), BOTH, req).unwrap_err(),
            SdpError::SrtpRequired
        );
        // ... but best-effort SRTP on RTP/AVP satisfies it, answered in kind.
        let best_effort = sdp(&format!(
            "m=audio 30000 RTP/AVP 8\r\na=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}\r\n"
        ));
        let (body, _, srtp) =
            answer_secure(best_effort.as_bytes(), &mut local(), BOTH, req).unwrap();
        assert!(srtp.is_some());
        let t = text(&body);
        assert!(
            t.contains("RTP/AVP 8") && t.contains("a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:")
        );
        // Off: SAVP is not ours at all (as the plain answer).
        let off = SecureOpts {
            srtp: SrtpMode::Off,
            signalling_secure: true,
        };
        let offer = savp(&["1 AES_CM_128_HMAC_SHA1_80 inline:{k}"]);
        assert_eq!(
            answer_secure(offer.as_bytes(), &mut local(), BOTH, off).unwrap_err(),
            SdpError::NoAudio
        );
        // A codec problem stays a codec problem.
        let g729 = sdp(&format!(
            "m=audio 30000 RTP/SAVP 18\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}\r\n"
        ));
        assert_eq!(
            answer_secure(g729.as_bytes(), &mut local(), BOTH, TLS).unwrap_err(),
            SdpError::NoCommonCodec
        );
    }

    #[test]
    fn plain_offers_are_answered_as_before() {
        let offer = sdp(
            "m=audio 30000 RTP/AVP 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\na=sendonly\r\n",
        );
        for opts in [TLS, UDP] {
            let (body, p, srtp) =
                answer_secure(offer.as_bytes(), &mut local(), BOTH, opts).unwrap();
            let (want_body, want) = answer(offer.as_bytes(), &mut local(), BOTH).unwrap();
            assert_eq!((body, p, srtp), (want_body, want, None));
        }
        let p = answer(offer.as_bytes(), &mut local(), BOTH).unwrap().1;
        assert_eq!(p.direction, Direction::RecvOnly);
        // The plain answer still refuses SAVP, whatever crypto it carries.
        let offer = savp(&["1 AES_CM_128_HMAC_SHA1_80 inline:{k}"]);
        assert_eq!(
            answer(offer.as_bytes(), &mut local(), BOTH).unwrap_err(),
            SdpError::NoAudio
        );
    }

    #[test]
    fn offers_keys_only_over_tls() {
        // Optional without TLS: byte for byte the plain offer.
        let mut a = local();
        let mut b = local();
        assert_eq!(
            offer_secure(&mut a, BOTH, UDP).unwrap(),
            offer(&mut b, BOTH)
        );
        let req = SecureOpts {
            srtp: SrtpMode::Required,
            signalling_secure: false,
        };
        assert_eq!(
            offer_secure(&mut local(), BOTH, req).unwrap_err(),
            SdpError::SrtpNeedsSecureSignalling
        );
        // Required over TLS: RTP/SAVP, a line per suite, distinct keys.
        let req = SecureOpts {
            srtp: SrtpMode::Required,
            signalling_secure: true,
        };
        let mut l = local();
        let body = offer_secure(&mut l, BOTH, req).unwrap();
        let t = text(&body);
        assert!(t.contains("m=audio 20000 RTP/SAVP 0 8 101\r\n"), "{t}");
        let lines = cryptos(&body);
        assert_eq!(
            lines.iter().map(|c| (c.tag, c.suite)).collect::<Vec<_>>(),
            vec![
                (1, SrtpSuite::AesCm128HmacSha1_80),
                (2, SrtpSuite::AesCm128HmacSha1_32)
            ]
        );
        assert_ne!(lines[0].key, lines[1].key);
        // Offering again keeps keys and version.
        assert_eq!(offer_secure(&mut l, BOTH, req).unwrap(), body);
        // Optional over TLS: best effort on RTP/AVP.
        let body = offer_secure(&mut local(), BOTH, TLS).unwrap();
        let t = text(&body);
        assert!(
            t.contains("RTP/AVP 0 8 101") && t.contains("a=crypto:1 "),
            "{t}"
        );
    }

    #[test]
    fn offer_answer_round_trip_gives_mirrored_keys() {
        let req = SecureOpts {
            srtp: SrtpMode::Required,
            signalling_secure: true,
        };
        let mut us = local();
        let body = offer_secure(&mut us, &[Codec::Pcma, Codec::Pcmu], req).unwrap();
        // The operator's phone answers (prefers the first usable line: _80).
        let mut phone = LocalSdp::new(IpAddr::V4(Ipv4Addr::new(10, 1, 1, 9)), 7078);
        let (ans, _, theirs) = answer_secure(&body, &mut phone, &[Codec::Pcmu], TLS).unwrap();
        let theirs = theirs.unwrap();
        let (p, ours) = accept_answer_secure(&ans, &[Codec::Pcma, Codec::Pcmu], &us).unwrap();
        let ours = ours.unwrap();
        assert_eq!(p.codec, Codec::Pcmu);
        assert_eq!(ours.suite, SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(ours.local_key, theirs.remote_key);
        assert_eq!(ours.remote_key, theirs.local_key);
        // The plain reader does not take an RTP/SAVP answer.
        assert_eq!(accept_answer(&ans, BOTH).unwrap_err(), SdpError::NoAudio);
        // An answer naming a tag we never offered, or none, is refused.
        let forged = text(&ans).replace("a=crypto:1 ", "a=crypto:7 ");
        assert_eq!(
            accept_answer_secure(forged.as_bytes(), BOTH, &us).unwrap_err(),
            SdpError::NoCommonCrypto
        );
        let stripped: String = text(&ans)
            .lines()
            .filter(|l| !l.starts_with("a=crypto"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        assert_eq!(
            accept_answer_secure(stripped.as_bytes(), BOTH, &us).unwrap_err(),
            SdpError::NoCommonCrypto
        );
    }

    #[test]
    fn best_effort_offer_accepts_a_plain_answer() {
        let mut us = local();
        let body = offer_secure(&mut us, BOTH, TLS).unwrap();
        // A phone without SRTP ignores the crypto lines.
        let mut phone = LocalSdp::new(IpAddr::V4(Ipv4Addr::new(10, 1, 1, 9)), 7078);
        let (ans, _) = answer(&body, &mut phone, BOTH).unwrap();
        let (p, srtp) = accept_answer_secure(&ans, BOTH, &us).unwrap();
        assert_eq!((p.codec, srtp), (Codec::Pcmu, None));
        // A phone with SRTP takes them.
        let (ans, _, _) = answer_secure(&body, &mut phone, BOTH, TLS).unwrap();
        assert!(accept_answer_secure(&ans, BOTH, &us).unwrap().1.is_some());
        // After a plain re-offer, a crypto line in the answer is ignored.
        offer(&mut us, BOTH);
        assert_eq!(accept_answer_secure(&ans, BOTH, &us).unwrap().1, None);
    }
}
