//! Server-side HTTP Digest authentication for SIP (RFC 7616 as profiled for
//! SIP by RFC 8760), sans I/O.
//!
//! The registrar and the INVITE path use it to challenge operator phones
//! (`WWW-Authenticate` / `Proxy-Authenticate` values from
//! [`DigestServer::challenge`]) and to check their `Authorization` /
//! `Proxy-Authorization` answers ([`parse_authorization`] then
//! [`DigestServer::verify`]).
//!
//! - Algorithms: SHA-256 and MD5 offered, SHA-256 first (RFC 8760 §2.4); the
//!   `-sess` variants are computed correctly and can be offered by config.
//! - qop is always `auth`; answers without qop are refused, since without a
//!   nonce-count a captured answer could be replayed.
//! - Nonces are stateless: `issued-ms ‖ random ‖ HMAC-SHA-256(secret, …)`
//!   (hex). Expired, foreign (e.g. from before a restart) or evicted nonces
//!   give [`Verdict::Stale`] *only if the digest is otherwise correct*, so the
//!   caller re-challenges with `stale=true` and the phone retries silently.
//! - Replay protection: each nonce's last nonce-count is kept, in a table
//!   bounded by `max_nonces`; a nonce is only entered after a correct answer,
//!   so unauthenticated traffic cannot fill it. When it is full the oldest
//!   entry goes and a floor remembers its issue time: nonces issued at or
//!   before the floor and not in the table are stale, never replayable.
//! - Compares use `subtle` (constant time).
//!
//! A failure is returned as [`Verdict::Rejected`] with its reason; the
//! shell counts it in `conmutador_auth_failures_total{reason}`.
//! Must not touch: sockets, the codec, the registrar's bindings, the config
//! store (the caller looks up passwords) or the metrics recorder.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use md5::Md5;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// Longest credentials header value we parse.
pub const MAX_HEADER_LEN: usize = 4096;
/// Most parameters in one credentials value.
pub const MAX_PARAMS: usize = 32;

/// Digest algorithms (RFC 7616 §3.3, RFC 8760 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Case-insensitive, as the token is.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    pub fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lower-case hex of the hash of `data`.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex::encode(Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex::encode(Sha256::digest(data)),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the response digest depends on (RFC 7616 §3.4.1).
#[derive(Debug, Clone, Copy)]
pub struct ResponseInput<'a> {
    pub algorithm: Algorithm,
    pub username: &'a str,
    pub realm: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub nonce: &'a str,
    pub cnonce: &'a str,
    /// As sent on the wire (8 hex digits), since it is hashed as text.
    pub nc: &'a str,
    pub qop: &'a str,
}

/// HA1, including the `-sess` form `H(H(user:realm:pass):nonce:cnonce)`.
pub fn ha1(
    algorithm: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    cnonce: &str,
) -> String {
    let base = algorithm.hash_hex(format!("{username}:{realm}:{password}").as_bytes());
    if algorithm.is_sess() {
        algorithm.hash_hex(format!("{base}:{nonce}:{cnonce}").as_bytes())
    } else {
        base
    }
}

/// The `response` value for qop=auth: `H(HA1:nonce:nc:cnonce:qop:H(method:uri))`.
pub fn compute_response(input: &ResponseInput<'_>) -> String {
    let a = input.algorithm;
    let ha1 = ha1(
        a,
        input.username,
        input.realm,
        input.password,
        input.nonce,
        input.cnonce,
    );
    let ha2 = a.hash_hex(format!("{}:{}", input.method, input.uri).as_bytes());
    a.hash_hex(
        format!(
            "{ha1}:{}:{}:{}:{}:{ha2}",
            input.nonce, input.nc, input.cnonce, input.qop
        )
        .as_bytes(),
    )
}

/// Why an `Authorization` value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("credentials longer than {MAX_HEADER_LEN} bytes")]
    TooLong,
    #[error("more than {MAX_PARAMS} parameters")]
    TooManyParams,
    #[error("scheme is not Digest")]
    NotDigest,
    #[error("syntax error: {0}")]
    Syntax(&'static str),
    #[error("parameter {0} given twice")]
    Duplicate(String),
    #[error("missing parameter {0}")]
    Missing(&'static str),
    #[error("unknown algorithm")]
    UnknownAlgorithm,
    #[error("nonce-count is not 1 to 8 hex digits")]
    BadNonceCount,
}

/// A parsed `Authorization` / `Proxy-Authorization` Digest value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    /// MD5 when absent (RFC 7616 §3.4).
    pub algorithm: Algorithm,
    pub qop: Option<String>,
    pub cnonce: Option<String>,
    /// Raw nonce-count text, as hashed.
    pub nc: Option<String>,
    pub opaque: Option<String>,
    pub userhash: bool,
}

impl Credentials {
    /// The nonce-count as a number.
    pub fn nonce_count(&self) -> Option<u32> {
        self.nc
            .as_deref()
            .and_then(|nc| u32::from_str_radix(nc, 16).ok())
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Lower-cased parameter names with their unquoted values, in order.
type AuthParams = Vec<(String, String)>;

/// Splits `scheme param=value, …` into the scheme and lower-cased parameter
/// names with unquoted values.
fn parse_auth_header(value: &str) -> Result<(&str, AuthParams), DigestError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(DigestError::TooLong);
    }
    let b = value.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        i
    };
    let mut i = skip_ws(0);
    let start = i;
    while i < b.len() && is_tchar(b[i]) {
        i += 1;
    }
    let scheme = &value[start..i];
    if scheme.is_empty() {
        return Err(DigestError::Syntax("missing scheme"));
    }
    if i < b.len() && !is_ws(b[i]) {
        return Err(DigestError::Syntax("bad scheme"));
    }
    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        while i < b.len() && (is_ws(b[i]) || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let name_start = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        if i == name_start {
            return Err(DigestError::Syntax("expected parameter name"));
        }
        let name = value[name_start..i].to_ascii_lowercase();
        i = skip_ws(i);
        if i >= b.len() || b[i] != b'=' {
            return Err(DigestError::Syntax("expected '='"));
        }
        i = skip_ws(i + 1);
        let param_value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut out = String::new();
            loop {
                let Some(c) = value[i..].chars().next() else {
                    return Err(DigestError::Syntax("unterminated quoted string"));
                };
                i += c.len_utf8();
                match c {
                    '"' => break,
                    '\\' => {
                        let Some(escaped) = value[i..].chars().next() else {
                            return Err(DigestError::Syntax("unterminated quoted string"));
                        };
                        i += escaped.len_utf8();
                        out.push(escaped);
                    }
                    c => out.push(c),
                }
            }
            out
        } else {
            let token_start = i;
            while i < b.len() && b[i] != b',' && !is_ws(b[i]) {
                i += 1;
            }
            if i == token_start {
                return Err(DigestError::Syntax("empty parameter value"));
            }
            value[token_start..i].to_owned()
        };
        i = skip_ws(i);
        if i < b.len() && b[i] != b',' {
            return Err(DigestError::Syntax("expected ','"));
        }
        if params.iter().any(|(n, _)| *n == name) {
            return Err(DigestError::Duplicate(name));
        }
        if params.len() >= MAX_PARAMS {
            return Err(DigestError::TooManyParams);
        }
        params.push((name, param_value));
    }
    Ok((scheme, params))
}

/// Parses an `Authorization` or `Proxy-Authorization` header value. Names
/// and the scheme are case-insensitive; values may be tokens or quoted
/// strings with backslash escapes; unknown parameters are ignored.
pub fn parse_authorization(value: &str) -> Result<Credentials, DigestError> {
    let (scheme, params) = parse_auth_header(value)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestError::NotDigest);
    }
    let take = |name: &str| {
        params
            .iter()
            .position(|(n, _)| n == name)
            .map(|p| params[p].1.clone())
    };
    let username = take("username").ok_or(DigestError::Missing("username"))?;
    let realm = take("realm").ok_or(DigestError::Missing("realm"))?;
    let nonce = take("nonce").ok_or(DigestError::Missing("nonce"))?;
    let uri = take("uri").ok_or(DigestError::Missing("uri"))?;
    let response = take("response").ok_or(DigestError::Missing("response"))?;
    let algorithm = match take("algorithm") {
        Some(a) => Algorithm::parse(&a).ok_or(DigestError::UnknownAlgorithm)?,
        None => Algorithm::Md5,
    };
    let nc = take("nc");
    if let Some(nc) = &nc
        && (nc.is_empty() || nc.len() > 8 || !nc.bytes().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(DigestError::BadNonceCount);
    }
    Ok(Credentials {
        username,
        realm,
        nonce,
        uri,
        response,
        algorithm,
        qop: take("qop"),
        cnonce: take("cnonce"),
        nc,
        opaque: take("opaque"),
        userhash: take("userhash").is_some_and(|v| v.eq_ignore_ascii_case("true")),
    })
}

/// Settings of a [`DigestServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestConfig {
    pub realm: String,
    /// How long a nonce is accepted after it was issued.
    pub nonce_lifetime: Duration,
    /// Bound of the nonce-count table.
    pub max_nonces: usize,
    /// Offered in this order, one challenge each; the only ones accepted.
    pub algorithms: Vec<Algorithm>,
}

impl Default for DigestConfig {
    fn default() -> Self {
        Self {
            realm: "conmutador".to_owned(),
            nonce_lifetime: Duration::from_secs(300),
            max_nonces: 10_000,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        }
    }
}

/// Why correct-looking credentials were refused (answer 403, or 401 with a
/// fresh challenge; see each variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Realm is not ours: 401 with a fresh challenge.
    BadRealm,
    /// Algorithm not offered: 401 with a fresh challenge.
    UnsupportedAlgorithm,
    /// No `qop=auth` (or cnonce/nc missing): 401 with a fresh challenge.
    QopRequired,
    /// `userhash=true`, which we never offer: 401.
    UnsupportedUserhash,
    /// Wrong password, unknown user or tampered fields: 403 (or 401).
    BadResponse,
    /// nonce-count not above the last one seen for this nonce. The digest was
    /// right, so a reordered legitimate request is possible: 401 with a fresh
    /// challenge and `stale=true`.
    Replay,
}

impl Rejection {
    /// The `reason` label of `conmutador_auth_failures_total`.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::BadRealm => "bad_realm",
            Rejection::UnsupportedAlgorithm => "unsupported_algorithm",
            Rejection::QopRequired => "qop_required",
            Rejection::UnsupportedUserhash => "userhash",
            Rejection::BadResponse => "bad_response",
            Rejection::Replay => "replay",
        }
    }
}

/// Outcome of [`DigestServer::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Authorized,
    /// The digest is correct but the nonce is expired, foreign or forgotten:
    /// re-challenge with `stale=true`.
    Stale,
    Rejected(Rejection),
}

const NONCE_BYTES: usize = 8 + 8 + 16;

/// Issues challenges and verifies answers for one realm.
#[derive(Debug)]
pub struct DigestServer {
    config: DigestConfig,
    secret: [u8; 32],
    opaque: String,
    epoch: Instant,
    /// Nonce tag → last nonce-count seen.
    counts: HashMap<[u8; 16], u32>,
    by_issue: BTreeSet<(u64, [u8; 16])>,
    /// Nonces issued at or before this (ms since `epoch`) and absent from
    /// `counts` were evicted: treat them as stale.
    floor_ms: Option<u64>,
}

fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let mut inner = Sha256::new();
    inner.update(ipad);
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha256::new();
    outer.update(opad);
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl DigestServer {
    /// A server with a fresh random secret (nonces do not survive a restart;
    /// phones then get `stale=true` and retry).
    pub fn new(config: DigestConfig, now: Instant) -> Self {
        Self::with_secret(config, rand::random(), now)
    }

    /// A server with a given secret (tests; several nodes sharing nonces).
    pub fn with_secret(config: DigestConfig, secret: [u8; 32], now: Instant) -> Self {
        let opaque =
            hex::encode(&hmac_sha256(&secret, &[b"opaque", config.realm.as_bytes()])[..16]);
        Self {
            config,
            secret,
            opaque,
            epoch: now,
            counts: HashMap::new(),
            by_issue: BTreeSet::new(),
            floor_ms: None,
        }
    }

    pub fn config(&self) -> &DigestConfig {
        &self.config
    }

    /// Nonces currently tracked for replay protection.
    pub fn tracked_nonces(&self) -> usize {
        self.counts.len()
    }

    fn ms_since_epoch(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn mac(&self, issued: &[u8], random: &[u8]) -> [u8; 16] {
        let full = hmac_sha256(&self.secret, &[b"nonce", issued, random]);
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// A new nonce issued at `now`.
    pub fn new_nonce(&self, now: Instant) -> String {
        let issued = self.ms_since_epoch(now).to_be_bytes();
        let random: [u8; 8] = rand::random();
        let mac = self.mac(&issued, &random);
        let mut raw = Vec::with_capacity(NONCE_BYTES);
        raw.extend_from_slice(&issued);
        raw.extend_from_slice(&random);
        raw.extend_from_slice(&mac);
        hex::encode(raw)
    }

    /// Issue time and tag of one of our nonces; `None` for foreign ones.
    fn open_nonce(&self, nonce: &str) -> Option<(u64, [u8; 16])> {
        if nonce.len() != NONCE_BYTES * 2 {
            return None;
        }
        let raw = hex::decode(nonce).ok()?;
        let (issued, rest) = raw.split_at(8);
        let (random, mac) = rest.split_at(8);
        let expected = self.mac(issued, random);
        if !bool::from(expected.ct_eq(mac)) {
            return None;
        }
        let issued_ms = u64::from_be_bytes(issued.try_into().ok()?);
        Some((issued_ms, expected))
    }

    /// `WWW-Authenticate` (registrar, UAS) or `Proxy-Authenticate` values:
    /// one per configured algorithm, in order, all with the same nonce.
    pub fn challenge(&self, now: Instant, stale: bool) -> Vec<String> {
        let nonce = self.new_nonce(now);
        self.config
            .algorithms
            .iter()
            .map(|a| {
                let mut v = format!(
                    "Digest realm={}, nonce=\"{nonce}\", opaque=\"{}\", algorithm={a}, qop=\"auth\"",
                    quote(&self.config.realm),
                    self.opaque
                );
                if stale {
                    v.push_str(", stale=true");
                }
                v
            })
            .collect()
    }

    /// Checks `creds` for a request with `method`. `password` is the
    /// configured password of `creds.username`, or `None` for an unknown user
    /// (the digest is still computed, so both cases take the same time).
    pub fn verify(
        &mut self,
        creds: &Credentials,
        method: &str,
        password: Option<&str>,
        now: Instant,
    ) -> Verdict {
        if creds.realm != self.config.realm {
            return Verdict::Rejected(Rejection::BadRealm);
        }
        if !self.config.algorithms.contains(&creds.algorithm) {
            return Verdict::Rejected(Rejection::UnsupportedAlgorithm);
        }
        if creds.userhash {
            return Verdict::Rejected(Rejection::UnsupportedUserhash);
        }
        let (Some(qop), Some(cnonce), Some(nc_text), Some(nc)) = (
            creds.qop.as_deref(),
            creds.cnonce.as_deref(),
            creds.nc.as_deref(),
            creds.nonce_count(),
        ) else {
            return Verdict::Rejected(Rejection::QopRequired);
        };
        if !qop.eq_ignore_ascii_case("auth") {
            return Verdict::Rejected(Rejection::QopRequired);
        }
        let expected = compute_response(&ResponseInput {
            algorithm: creds.algorithm,
            username: &creds.username,
            realm: &creds.realm,
            password: password.unwrap_or(""),
            method,
            uri: &creds.uri,
            nonce: &creds.nonce,
            cnonce,
            nc: nc_text,
            qop,
        });
        let given = creds.response.to_ascii_lowercase();
        let digest_ok = bool::from(expected.as_bytes().ct_eq(given.as_bytes()));
        if !digest_ok || password.is_none() {
            return Verdict::Rejected(Rejection::BadResponse);
        }

        let opaque_ok = creds
            .opaque
            .as_deref()
            .is_none_or(|o| bool::from(o.as_bytes().ct_eq(self.opaque.as_bytes())));
        let Some((issued_ms, tag)) = self.open_nonce(&creds.nonce).filter(|_| opaque_ok) else {
            return Verdict::Stale;
        };
        let now_ms = self.ms_since_epoch(now);
        let lifetime_ms = u64::try_from(self.config.nonce_lifetime.as_millis()).unwrap_or(u64::MAX);
        if issued_ms > now_ms || now_ms - issued_ms > lifetime_ms {
            return Verdict::Stale;
        }
        if let Some(last_nc) = self.counts.get_mut(&tag) {
            if nc <= *last_nc {
                return Verdict::Rejected(Rejection::Replay);
            }
            *last_nc = nc;
            return Verdict::Authorized;
        }
        if self.floor_ms.is_some_and(|floor| issued_ms <= floor) {
            return Verdict::Stale;
        }
        self.track(tag, issued_ms, nc, now_ms, lifetime_ms);
        Verdict::Authorized
    }

    fn track(&mut self, tag: [u8; 16], issued_ms: u64, nc: u32, now_ms: u64, lifetime_ms: u64) {
        // Expired nonces are refused before the table is consulted, so their
        // entries can go without moving the floor.
        while let Some(&(issued, old)) = self.by_issue.first() {
            if now_ms.saturating_sub(issued) <= lifetime_ms {
                break;
            }
            self.by_issue.pop_first();
            self.counts.remove(&old);
        }
        while self.counts.len() >= self.config.max_nonces.max(1) {
            let Some((issued, old)) = self.by_issue.pop_first() else {
                break;
            };
            self.counts.remove(&old);
            self.floor_ms = Some(self.floor_ms.map_or(issued, |f| f.max(issued)));
        }
        self.counts.insert(tag, nc);
        self.by_issue.insert((issued_ms, tag));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7616 §3.9.1.
    const RFC_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn rfc_input(algorithm: Algorithm) -> ResponseInput<'static> {
        ResponseInput {
            algorithm,
            username: "Mufasa",
            realm: "http-auth@example.org",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: RFC_NONCE,
            cnonce: RFC_CNONCE,
            nc: "00000001",
            qop: "auth",
        }
    }

    #[test]
    fn rfc7616_md5_vector() {
        assert_eq!(
            compute_response(&rfc_input(Algorithm::Md5)),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn rfc7616_sha256_vector() {
        assert_eq!(
            compute_response(&rfc_input(Algorithm::Sha256)),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn sess_variants_hash_nonce_and_cnonce_into_ha1() {
        // Known answers computed independently (Python hashlib).
        assert_eq!(
            compute_response(&rfc_input(Algorithm::Md5Sess)),
            "e783283f46242139c486a698fec7211d"
        );
        assert_eq!(
            compute_response(&rfc_input(Algorithm::Sha256Sess)),
            "2fd51b3a77ad75bad6afad6003e818d767133c46d9e2749e7f5232ae1ea3efd7"
        );
    }

    #[test]
    fn sip_register_known_answers() {
        let mut input = ResponseInput {
            algorithm: Algorithm::Md5,
            username: "op1001",
            realm: "mexitel.example",
            password: "s3cr3t",
            method: "REGISTER",
            uri: "sip:mexitel.example",
            nonce: "n0nce",
            cnonce: "0a4f113b",
            nc: "0000002a",
            qop: "auth",
        };
        assert_eq!(compute_response(&input), "d5e078b29ceb660176dc7dc21d2968d3");
        input.algorithm = Algorithm::Sha256;
        assert_eq!(
            compute_response(&input),
            "ca21aeebe93e6442c82faddb3e37ecd0dccd9c31db7e53bd32f5b301200872c4"
        );
        input.algorithm = Algorithm::Sha256Sess;
        assert_eq!(
            compute_response(&input),
            "4e72cb17b663086fc650dfd50a849a531c11e20ff7c86bf69f680b75e956c84a"
        );
        input.algorithm = Algorithm::Md5Sess;
        assert_eq!(compute_response(&input), "aed24086e4420169b119bfab48455706");
    }

    #[test]
    fn parse_rfc_example_header() {
        let v = "Digest username=\"Mufasa\",\n realm=\"http-auth@example.org\",\n \
                 uri=\"/dir/index.html\",\n algorithm=SHA-256,\n nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\n \
                 nc=00000001,\n cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",\n qop=auth,\n \
                 response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\",\n \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
        let c = parse_authorization(v).expect("parses");
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.realm, "http-auth@example.org");
        assert_eq!(c.uri, "/dir/index.html");
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(c.nonce, RFC_NONCE);
        assert_eq!(c.nc.as_deref(), Some("00000001"));
        assert_eq!(c.nonce_count(), Some(1));
        assert_eq!(c.cnonce.as_deref(), Some(RFC_CNONCE));
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(
            c.opaque.as_deref(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
        assert!(!c.userhash);
    }

    #[test]
    fn parse_is_case_insensitive_handles_escapes_and_tokens() {
        let v = "dIgEsT USERNAME=\"a\\\"b\\\\c\" ,Realm=r,NONCE=\"n\",uri=\"sip:x@y;transport=tcp\",\
                 response=ABCDEF,Algorithm=md5-SESS,foo=\"ignored, really\",userhash=TRUE";
        let c = parse_authorization(v).expect("parses");
        assert_eq!(c.username, "a\"b\\c");
        assert_eq!(c.realm, "r");
        assert_eq!(c.uri, "sip:x@y;transport=tcp");
        assert_eq!(c.response, "ABCDEF");
        assert_eq!(c.algorithm, Algorithm::Md5Sess);
        assert!(c.userhash);
        assert_eq!(c.qop, None);
    }

    #[test]
    fn parse_defaults_algorithm_to_md5_and_keeps_utf8() {
        let c = parse_authorization(
            "Digest username=\"José\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"00\"",
        )
        .expect("parses");
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.username, "José");
    }

    #[test]
    fn parse_errors() {
        let ok_tail = "realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\"";
        assert_eq!(
            parse_authorization(&format!("Basic {ok_tail}")),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            parse_authorization(""),
            Err(DigestError::Syntax("missing scheme"))
        );
        assert_eq!(
            parse_authorization(&format!("Digest username=\"a, {ok_tail}")),
            Err(DigestError::Syntax("expected ','"))
        );
        assert_eq!(
            parse_authorization("Digest username=\"unterminated"),
            Err(DigestError::Syntax("unterminated quoted string"))
        );
        assert_eq!(
            parse_authorization("Digest username=\"trailing\\"),
            Err(DigestError::Syntax("unterminated quoted string"))
        );
        assert_eq!(
            parse_authorization("Digest username"),
            Err(DigestError::Syntax("expected '='"))
        );
        assert_eq!(
            parse_authorization("Digest username=,"),
            Err(DigestError::Syntax("empty parameter value"))
        );
        assert_eq!(
            parse_authorization("Digest =x"),
            Err(DigestError::Syntax("expected parameter name"))
        );
        assert_eq!(
            parse_authorization(&format!("Digest username=a, USERNAME=b, {ok_tail}")),
            Err(DigestError::Duplicate("username".into()))
        );
        assert_eq!(
            parse_authorization(&format!("Digest {ok_tail}")),
            Err(DigestError::Missing("username"))
        );
        assert_eq!(
            parse_authorization(&format!("Digest username=a, algorithm=SHA-512, {ok_tail}")),
            Err(DigestError::UnknownAlgorithm)
        );
        assert_eq!(
            parse_authorization(&format!("Digest username=a, nc=123456789, {ok_tail}")),
            Err(DigestError::BadNonceCount)
        );
        assert_eq!(
            parse_authorization(&format!("Digest username=a, nc=0000000g, {ok_tail}")),
            Err(DigestError::BadNonceCount)
        );
        let many: String = (0..40).map(|i| format!("p{i}=v,")).collect();
        assert_eq!(
            parse_authorization(&format!("Digest {many}")),
            Err(DigestError::TooManyParams)
        );
        let long = format!("Digest username=\"{}\"", "a".repeat(MAX_HEADER_LEN));
        assert_eq!(parse_authorization(&long), Err(DigestError::TooLong));
    }

    #[test]
    fn parse_never_panics_on_prefixes_and_odd_bytes() {
        let v = "Digest username=\"Mufasa\", realm=\"ré\\\"alm\", nonce=abc, uri=\"/\", response=\"1\", nc=1";
        for end in 0..=v.len() {
            if v.is_char_boundary(end) {
                let _ = parse_authorization(&v[..end]);
            }
        }
        for odd in [
            "Digest ,,,,",
            "Digest \"",
            "Digest a=\"\\é\"",
            "\u{0}",
            "Digest a = b , c = \"d\"",
        ] {
            let _ = parse_authorization(odd);
        }
    }

    // ---- server ----

    const SECRET: [u8; 32] = [7; 32];

    fn server(now: Instant) -> DigestServer {
        DigestServer::with_secret(
            DigestConfig {
                realm: "mexitel.example".into(),
                nonce_lifetime: Duration::from_secs(300),
                max_nonces: 100,
                algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            },
            SECRET,
            now,
        )
    }

    /// Pulls (nonce, opaque, algorithm) out of one of our challenge values.
    fn read_challenge(value: &str) -> (String, String, String) {
        let (scheme, params) = parse_auth_header(value).expect("challenge parses");
        assert_eq!(scheme, "Digest");
        let get = |n: &str| {
            params
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        (get("nonce"), get("opaque"), get("algorithm"))
    }

    /// What a phone would send back.
    fn answer(challenge: &str, password: &str, nc: &str, method: &str) -> Credentials {
        let (nonce, opaque, alg) = read_challenge(challenge);
        let algorithm = Algorithm::parse(&alg).expect("known algorithm");
        let uri = "sip:mexitel.example";
        let response = compute_response(&ResponseInput {
            algorithm,
            username: "op1001",
            realm: "mexitel.example",
            password,
            method,
            uri,
            nonce: &nonce,
            cnonce: "c0ffee",
            nc,
            qop: "auth",
        });
        let header = format!(
            "Digest username=\"op1001\", realm=\"mexitel.example\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm={alg}, cnonce=\"c0ffee\", \
             nc={nc}, qop=auth, opaque=\"{opaque}\""
        );
        parse_authorization(&header).expect("our own header parses")
    }

    #[test]
    fn challenge_offers_sha256_first_then_md5_with_one_nonce() {
        let t0 = Instant::now();
        let s = server(t0);
        let c = s.challenge(t0, false);
        assert_eq!(c.len(), 2);
        assert!(c[0].starts_with("Digest realm=\"mexitel.example\", nonce=\""));
        assert!(c[0].contains("algorithm=SHA-256"));
        assert!(c[0].contains("qop=\"auth\""));
        assert!(c[1].contains("algorithm=MD5"));
        assert!(!c[0].contains("stale"));
        assert_eq!(read_challenge(&c[0]).0, read_challenge(&c[1]).0);
        assert_ne!(
            read_challenge(&c[0]).0,
            read_challenge(&s.challenge(t0, false)[0]).0
        );
        assert!(s.challenge(t0, true)[1].ends_with(", stale=true"));
    }

    #[test]
    fn challenge_quotes_realm() {
        let t0 = Instant::now();
        let s = DigestServer::new(
            DigestConfig {
                realm: "a\"b\\c".into(),
                ..DigestConfig::default()
            },
            t0,
        );
        assert!(s.challenge(t0, false)[0].starts_with("Digest realm=\"a\\\"b\\\\c\","));
    }

    #[test]
    fn verify_sha256_and_md5() {
        let t0 = Instant::now();
        let mut s = server(t0);
        let c = s.challenge(t0, false);
        let sha = answer(&c[0], "s3cr3t", "00000001", "REGISTER");
        assert_eq!(sha.algorithm, Algorithm::Sha256);
        assert_eq!(
            s.verify(
                &sha,
                "REGISTER",
                Some("s3cr3t"),
                t0 + Duration::from_secs(1)
            ),
            Verdict::Authorized
        );
        let c = s.challenge(t0, false);
        let md5 = answer(&c[1], "s3cr3t", "00000001", "INVITE");
        assert_eq!(
            s.verify(&md5, "INVITE", Some("s3cr3t"), t0 + Duration::from_secs(1)),
            Verdict::Authorized
        );
        // Upper-case hex in the response is fine.
        let c = s.challenge(t0, false);
        let mut upper = answer(&c[0], "s3cr3t", "00000001", "REGISTER");
        upper.response = upper.response.to_ascii_uppercase();
        assert_eq!(
            s.verify(&upper, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Authorized
        );
    }

    #[test]
    fn verify_sess_only_when_configured() {
        let t0 = Instant::now();
        let mut s = DigestServer::with_secret(
            DigestConfig {
                realm: "mexitel.example".into(),
                algorithms: vec![Algorithm::Sha256Sess],
                ..DigestConfig::default()
            },
            SECRET,
            t0,
        );
        let c = s.challenge(t0, false);
        assert!(c[0].contains("algorithm=SHA-256-sess"));
        let creds = answer(&c[0], "s3cr3t", "00000001", "REGISTER");
        assert_eq!(
            s.verify(&creds, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Authorized
        );
        // The default server does not accept -sess.
        let mut d = server(t0);
        let c = d.challenge(t0, false);
        let mut creds = answer(&c[0], "s3cr3t", "00000001", "REGISTER");
        creds.algorithm = Algorithm::Md5Sess;
        assert_eq!(
            d.verify(&creds, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Rejected(Rejection::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn replayed_nonce_count_rejected_and_higher_accepted() {
        let t0 = Instant::now();
        let mut s = server(t0);
        let c = s.challenge(t0, false);
        let first = answer(&c[0], "s3cr3t", "00000001", "REGISTER");
        assert_eq!(
            s.verify(&first, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Authorized
        );
        assert_eq!(
            s.verify(&first, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Rejected(Rejection::Replay)
        );
        let third = answer(&c[0], "s3cr3t", "00000003", "REGISTER");
        assert_eq!(
            s.verify(&third, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Authorized
        );
        let second = answer(&c[0], "s3cr3t", "00000002", "REGISTER");
        assert_eq!(
            s.verify(&second, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Rejected(Rejection::Replay)
        );
        assert_eq!(s.tracked_nonces(), 1);
    }

    #[test]
    fn expired_nonce_is_stale_only_with_a_correct_digest() {
        let t0 = Instant::now();
        let mut s = server(t0);
        let c = s.challenge(t0, false);
        let late = t0 + Duration::from_secs(301);
        let good = answer(&c[0], "s3cr3t", "00000001", "REGISTER");
        assert_eq!(
            s.verify(&good, "REGISTER", Some("s3cr3t"), late),
            Verdict::Stale
        );
        let bad = answer(&c[0], "guess", "00000001", "REGISTER");
        assert_eq!(
            s.verify(&bad, "REGISTER", Some("s3cr3t"), late),
            Verdict::Rejected(Rejection::BadResponse)
        );
        // Just inside the lifetime is fine.
        assert_eq!(
            s.verify(
                &good,
                "REGISTER",
                Some("s3cr3t"),
                t0 + Duration::from_secs(300)
            ),
            Verdict::Authorized
        );
    }

    #[test]
    fn foreign_nonce_is_stale() {
        let t0 = Instant::now();
        // The RFC example answer, against a server for that realm: the digest
        // is right but the nonce is not one of ours (as after a restart).
        let mut s = DigestServer::with_secret(
            DigestConfig {
                realm: "http-auth@example.org".into(),
                ..DigestConfig::default()
            },
            SECRET,
            t0,
        );
        let v = format!(
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", \
             algorithm=SHA-256, nonce=\"{RFC_NONCE}\", nc=00000001, cnonce=\"{RFC_CNONCE}\", qop=auth, \
             response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
        );
        let c = parse_authorization(&v).expect("parses");
        assert_eq!(
            s.verify(&c, "GET", Some("Circle of Life"), t0),
            Verdict::Stale
        );
        // A nonce from another secret, too.
        let other = DigestServer::with_secret(s.config().clone(), [9; 32], t0);
        let mut forged = c.clone();
        forged.nonce = other.new_nonce(t0);
        forged.response = compute_response(&ResponseInput {
            algorithm: Algorithm::Sha256,
            username: "Mufasa",
            realm: "http-auth@example.org",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: &forged.nonce,
            cnonce: RFC_CNONCE,
            nc: "00000001",
            qop: "auth",
        });
        assert_eq!(
            s.verify(&forged, "GET", Some("Circle of Life"), t0),
            Verdict::Stale
        );
    }

    #[test]
    fn wrong_password_unknown_user_bad_realm_and_tampering() {
        let t0 = Instant::now();
        let mut s = server(t0);
        let c = s.challenge(t0, false);
        let creds = answer(&c[0], "wrong", "00000001", "REGISTER");
        assert_eq!(
            s.verify(&creds, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Rejected(Rejection::BadResponse)
        );
        let creds = answer(&c[0], "s3cr3t", "00000001", "REGISTER");
        assert_eq!(
            s.verify(&creds, "REGISTER", None, t0),
            Verdict::Rejected(Rejection::BadResponse)
        );
        // Method is part of HA2.
        assert_eq!(
            s.verify(&creds, "INVITE", Some("s3cr3t"), t0),
            Verdict::Rejected(Rejection::BadResponse)
        );
        let mut other_realm = creds.clone();
        other_realm.realm = "elsewhere".into();
        assert_eq!(
            s.verify(&other_realm, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Rejected(Rejection::BadRealm)
        );
        let mut uri = creds.clone();
        uri.uri = "sip:other.example".into();
        assert_eq!(
            s.verify(&uri, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Rejected(Rejection::BadResponse)
        );
        // None of the failures consumed the nonce: the good answer still works.
        assert_eq!(
            s.verify(&creds, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Authorized
        );
    }

    #[test]
    fn qop_userhash_and_opaque_rules() {
        let t0 = Instant::now();
        let mut s = server(t0);
        let c = s.challenge(t0, false);
        let good = answer(&c[0], "s3cr3t", "00000001", "REGISTER");
        let mut no_qop = good.clone();
        no_qop.qop = None;
        assert_eq!(
            s.verify(&no_qop, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Rejected(Rejection::QopRequired)
        );
        let mut auth_int = good.clone();
        auth_int.qop = Some("auth-int".into());
        assert_eq!(
            s.verify(&auth_int, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Rejected(Rejection::QopRequired)
        );
        let mut no_cnonce = good.clone();
        no_cnonce.cnonce = None;
        assert_eq!(
            s.verify(&no_cnonce, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Rejected(Rejection::QopRequired)
        );
        let mut userhash = good.clone();
        userhash.userhash = true;
        assert_eq!(
            s.verify(&userhash, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Rejected(Rejection::UnsupportedUserhash)
        );
        let mut bad_opaque = good.clone();
        bad_opaque.opaque = Some("nope".into());
        assert_eq!(
            s.verify(&bad_opaque, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Stale
        );
        let mut no_opaque = good.clone();
        no_opaque.opaque = None;
        assert_eq!(
            s.verify(&no_opaque, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Authorized
        );
    }

    #[test]
    fn nonce_table_is_bounded_and_evicted_nonces_turn_stale() {
        let t0 = Instant::now();
        let mut s = DigestServer::with_secret(
            DigestConfig {
                realm: "mexitel.example".into(),
                max_nonces: 2,
                ..DigestConfig::default()
            },
            SECRET,
            t0,
        );
        let c1 = s.challenge(t0, false);
        let c2 = s.challenge(t0 + Duration::from_millis(1), false);
        let c3 = s.challenge(t0 + Duration::from_millis(2), false);
        let now = t0 + Duration::from_secs(1);
        for c in [&c1, &c2, &c3] {
            let creds = answer(&c[0], "s3cr3t", "00000001", "REGISTER");
            assert_eq!(
                s.verify(&creds, "REGISTER", Some("s3cr3t"), now),
                Verdict::Authorized
            );
            assert!(s.tracked_nonces() <= 2);
        }
        // The first nonce was evicted: a replay of it is stale, not accepted.
        let replay = answer(&c1[0], "s3cr3t", "00000001", "REGISTER");
        assert_eq!(
            s.verify(&replay, "REGISTER", Some("s3cr3t"), now),
            Verdict::Stale
        );
        let next = answer(&c1[0], "s3cr3t", "00000002", "REGISTER");
        assert_eq!(
            s.verify(&next, "REGISTER", Some("s3cr3t"), now),
            Verdict::Stale
        );
        // The survivors still track their counts.
        let again = answer(&c3[0], "s3cr3t", "00000001", "REGISTER");
        assert_eq!(
            s.verify(&again, "REGISTER", Some("s3cr3t"), now),
            Verdict::Rejected(Rejection::Replay)
        );
    }

    #[test]
    fn expired_entries_are_purged_before_evicting() {
        let t0 = Instant::now();
        let mut s = DigestServer::with_secret(
            DigestConfig {
                realm: "mexitel.example".into(),
                max_nonces: 2,
                nonce_lifetime: Duration::from_secs(10),
                ..DigestConfig::default()
            },
            SECRET,
            t0,
        );
        let c1 = s.challenge(t0, false);
        let creds = answer(&c1[0], "s3cr3t", "00000001", "REGISTER");
        assert_eq!(
            s.verify(&creds, "REGISTER", Some("s3cr3t"), t0),
            Verdict::Authorized
        );
        let later = t0 + Duration::from_secs(20);
        let c2 = s.challenge(later, false);
        let creds = answer(&c2[0], "s3cr3t", "00000001", "REGISTER");
        assert_eq!(
            s.verify(&creds, "REGISTER", Some("s3cr3t"), later),
            Verdict::Authorized
        );
        assert_eq!(
            s.tracked_nonces(),
            1,
            "the expired entry went, no floor needed"
        );
        assert_eq!(s.floor_ms, None);
    }
}
