//! SDES key exchange (RFC 4568): the `a=crypto` attribute, read and written.
//!
//! This part of the SDP room knows crypto suites, keys and how they are
//! spelled in SDP; it never encrypts anything (that is the media room's
//! `srtp.rs`) and never decides whether signalling is secure (the call room
//! says so through [`super::SecureOpts`]).
//!
//! Supported: `AES_CM_128_HMAC_SHA1_80` and `AES_CM_128_HMAC_SHA1_32`, one
//! `inline:` key per line. Refused cleanly (the line is skipped, as RFC 4568
//! §7.1.2 asks of lines an answerer cannot use, and an offer with no usable
//! line gets [`super::SdpError::NoCommonCrypto`]):
//! - other suites (AES-256, GCM, F8, NULL);
//! - several keys on one line (`;`), and MKI (`|1:4`): both exist for
//!   re-keying within a session, which we never do;
//! - a key lifetime under 2^31 packets: we never re-key, so a shorter
//!   lifetime would be a promise we break (2^31 packets is 497 days of a
//!   20 ms stream, so the longer ones cannot run out within a call);
//! - session parameters that change what is protected or how keys are
//!   derived (`UNENCRYPTED_SRTP`, `UNAUTHENTICATED_SRTP`, `KDR` other than 0,
//!   `FEC_*`, and any unknown one not marked optional with `-`). `WSH` (a
//!   replay window hint) and `UNENCRYPTED_SRTCP` (we send no RTCP) are fine.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

/// The SRTP crypto suites we speak, in our order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// AES-128 counter mode, 80-bit HMAC-SHA1 tag (RFC 4568 §6.2.1; the
    /// mandatory one).
    AesCm128HmacSha1_80,
    /// The same with a 32-bit tag (saves 6 bytes a packet, weaker forgery
    /// protection).
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    /// Every suite we support, most preferred first.
    pub const ALL: [SrtpSuite; 2] = [
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
    ];

    /// The name written in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// Suite names are case-sensitive tokens (RFC 4568 §9.2).
    pub fn from_name(name: &str) -> Option<SrtpSuite> {
        SrtpSuite::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Bytes of authentication tag each SRTP packet carries.
    pub fn tag_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => 10,
            SrtpSuite::AesCm128HmacSha1_32 => 4,
        }
    }

    /// The tag we give this suite's line in our offers.
    pub(crate) fn offer_tag(self) -> u32 {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => 1,
            SrtpSuite::AesCm128HmacSha1_32 => 2,
        }
    }
}

/// Bytes in an AES_CM_128 master key (16) plus master salt (14).
pub const KEY_SALT_LEN: usize = 30;

/// A master key and salt, as carried in `inline:`. Debug output never shows
/// the bytes (keys must not reach logs).
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey(pub [u8; KEY_SALT_LEN]);

impl SrtpKey {
    /// A fresh key from the thread's CSPRNG (ChaCha, seeded from the OS).
    pub fn random() -> SrtpKey {
        let mut k = [0u8; KEY_SALT_LEN];
        rand::Rng::fill(&mut rand::rng(), &mut k[..]);
        SrtpKey(k)
    }

    /// The 16-byte master key.
    pub fn master_key(&self) -> &[u8] {
        &self.0[..16]
    }

    /// The 14-byte master salt.
    pub fn master_salt(&self) -> &[u8] {
        &self.0[16..]
    }

    /// The `inline:` text (base64 of key ‖ salt, 40 characters).
    pub fn inline(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl std::fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SrtpKey(..)")
    }
}

/// What the media engine needs to run SRTP on one leg: the suite and both
/// directions' keys. Built by [`super::answer_secure`] and
/// [`super::accept_answer_secure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpParams {
    pub suite: SrtpSuite,
    /// Our key: protects what the leg sends.
    pub local_key: SrtpKey,
    /// The peer's key: unprotects what the leg receives.
    pub remote_key: SrtpKey,
}

/// One `a=crypto` line we can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoLine {
    pub tag: u32,
    pub suite: SrtpSuite,
    pub key: SrtpKey,
}

impl CryptoLine {
    /// The attribute value (what follows `a=crypto:`).
    pub fn value(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.name(),
            self.key.inline()
        )
    }
}

/// Why an `a=crypto` line was not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoRefusal {
    #[error("malformed crypto attribute")]
    Malformed,
    #[error("unsupported crypto suite")]
    Suite,
    #[error("more than one key on a line")]
    SeveralKeys,
    #[error("master key identifier (MKI) not supported")]
    Mki,
    #[error("key lifetime shorter than 2^31 packets")]
    Lifetime,
    #[error("unsupported session parameter")]
    SessionParam,
}

/// Reads one `a=crypto` value: `tag suite inline:key[|lifetime][|mki:len] [params]`.
pub fn parse_crypto(value: &str) -> Result<CryptoLine, CryptoRefusal> {
    let mut words = value.split_ascii_whitespace();
    let (Some(tag), Some(suite), Some(key_params)) = (words.next(), words.next(), words.next())
    else {
        return Err(CryptoRefusal::Malformed);
    };
    // RFC 4568 §9.1: tag = 1*9DIGIT.
    if tag.is_empty() || tag.len() > 9 || !tag.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CryptoRefusal::Malformed);
    }
    let tag: u32 = tag.parse().map_err(|_| CryptoRefusal::Malformed)?;
    let suite = SrtpSuite::from_name(suite).ok_or(CryptoRefusal::Suite)?;
    if key_params.contains(';') {
        return Err(CryptoRefusal::SeveralKeys);
    }
    let inline = key_params
        .strip_prefix("inline:")
        .ok_or(CryptoRefusal::Malformed)?;
    let mut parts = inline.split('|');
    let b64 = parts.next().unwrap_or_default();
    for extra in parts {
        if extra.contains(':') {
            return Err(CryptoRefusal::Mki);
        }
        if !lifetime_ok(extra)? {
            return Err(CryptoRefusal::Lifetime);
        }
    }
    let bytes = STANDARD
        .decode(b64)
        .or_else(|_| STANDARD_NO_PAD.decode(b64))
        .map_err(|_| CryptoRefusal::Malformed)?;
    let key: [u8; KEY_SALT_LEN] = bytes.try_into().map_err(|_| CryptoRefusal::Malformed)?;
    for param in words {
        session_param_ok(param)?;
    }
    Ok(CryptoLine {
        tag,
        suite,
        key: SrtpKey(key),
    })
}

/// Whether a lifetime (`2^n` or decimal) is at least 2^31 packets.
fn lifetime_ok(text: &str) -> Result<bool, CryptoRefusal> {
    const MIN: u64 = 1 << 31;
    if let Some(exp) = text.strip_prefix("2^") {
        let exp: u32 = exp.parse().map_err(|_| CryptoRefusal::Malformed)?;
        return Ok(exp >= 31);
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CryptoRefusal::Malformed);
    }
    // More digits than u64 holds is certainly long enough.
    Ok(text.parse::<u64>().map_or(true, |n| n >= MIN))
}

fn session_param_ok(param: &str) -> Result<(), CryptoRefusal> {
    let name = param.split('=').next().unwrap_or_default();
    match name {
        "WSH" | "UNENCRYPTED_SRTCP" => Ok(()),
        "KDR" if param == "KDR=0" => Ok(()),
        // RFC 4568 §6.3: a '-' prefix marks a parameter the receiver may ignore.
        _ if name.starts_with('-') => Ok(()),
        _ => Err(CryptoRefusal::SessionParam),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The key of libsrtp's known-answer test, as RFC 4568 carries it.
    const KEY_B64: &str = "4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm";

    #[test]
    fn parses_a_plain_line_and_writes_it_back() {
        let l = parse_crypto(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}")).unwrap();
        assert_eq!(l.tag, 1);
        assert_eq!(l.suite, SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(&l.key.0[..4], &[0xe1, 0xf9, 0x7a, 0x0d]);
        assert_eq!(l.key.master_salt().len(), 14);
        assert_eq!(
            l.value(),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}")
        );
        let l = parse_crypto(&format!("9 AES_CM_128_HMAC_SHA1_32 inline:{KEY_B64}|2^31")).unwrap();
        assert_eq!((l.tag, l.suite), (9, SrtpSuite::AesCm128HmacSha1_32));
        // Harmless session parameters.
        parse_crypto(&format!(
            "2 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B64}|2147483648 WSH=64 KDR=0 -FOO=1"
        ))
        .unwrap();
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let cases = [
            ("1 AES_256_CM_HMAC_SHA1_80 inline:{k}", CryptoRefusal::Suite),
            ("1 AEAD_AES_128_GCM inline:{k}", CryptoRefusal::Suite),
            ("1 aes_cm_128_hmac_sha1_80 inline:{k}", CryptoRefusal::Suite),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:{k}|2^20",
                CryptoRefusal::Lifetime,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:{k}|1048576",
                CryptoRefusal::Lifetime,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:{k}|2^31|1:4",
                CryptoRefusal::Mki,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:{k}|1:4",
                CryptoRefusal::Mki,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:{k};inline:{k}",
                CryptoRefusal::SeveralKeys,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:{k} UNENCRYPTED_SRTP",
                CryptoRefusal::SessionParam,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:{k} KDR=24",
                CryptoRefusal::SessionParam,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
                CryptoRefusal::Malformed,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:!!{k}",
                CryptoRefusal::Malformed,
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 uri:{k}",
                CryptoRefusal::Malformed,
            ),
            (
                "x AES_CM_128_HMAC_SHA1_80 inline:{k}",
                CryptoRefusal::Malformed,
            ),
            (
                "1234567890 AES_CM_128_HMAC_SHA1_80 inline:{k}",
                CryptoRefusal::Malformed,
            ),
            ("1 AES_CM_128_HMAC_SHA1_80", CryptoRefusal::Malformed),
            ("", CryptoRefusal::Malformed),
        ];
        for (line, want) in cases {
            let line = line.replace("{k}", KEY_B64);
            assert_eq!(parse_crypto(&line), Err(want), "{line}");
        }
    }

    #[test]
    fn random_keys_differ_and_stay_out_of_logs() {
        let (a, b) = (SrtpKey::random(), SrtpKey::random());
        assert_ne!(a, b);
        assert_eq!(a.inline().len(), 40);
        let p = SrtpParams {
            suite: SrtpSuite::AesCm128HmacSha1_80,
            local_key: a.clone(),
            remote_key: b,
        };
        let shown = format!("{p:?}");
        assert!(!shown.contains(&a.inline()), "{shown}");
        assert!(shown.contains("SrtpKey(..)"), "{shown}");
    }
}
