//! Header names and the typed header values the stack reads: Via, name-addr
//! (From/To/Contact/Route/Record-Route/P-Asserted-Identity), CSeq, Contact,
//! parameters, and the comma-splitting of list headers.
//!
//! Everything here parses a `&str` that the message index already unfolded;
//! it never sees raw network framing. Parsers walk bytes with bounds-checked
//! reads only, so no input can make them panic. This file must not know about
//! transactions, dialogs or transport.

use std::fmt;

use crate::sip::message::Method;
use crate::sip::uri::{Host, Uri};

/// Why a typed header accessor failed. The `&'static str` is the canonical
/// header name, so a 400 reason phrase can be built from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("Missing {0}")]
    Missing(&'static str),
    #[error("Bad {0}")]
    Invalid(&'static str),
    #[error("Duplicate {0}")]
    Duplicate(&'static str),
}

/// Canonical spelling of the headers we know, with their compact forms
/// (RFC 3261 §7.3.3 and the IANA registry). Unknown names keep their wire
/// spelling.
const KNOWN: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Route",
    "Record-Route",
    "Expires",
    "Min-Expires",
    "Authorization",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Authentication-Info",
    "User-Agent",
    "Server",
    "Allow",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Supported",
    "Require",
    "Proxy-Require",
    "Unsupported",
    "Subject",
    "Content-Encoding",
    "Content-Language",
    "Content-Disposition",
    "Event",
    "Allow-Events",
    "Refer-To",
    "Referred-By",
    "Session-Expires",
    "Min-SE",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Privacy",
    "Reason",
    "Retry-After",
    "Date",
    "Timestamp",
    "Warning",
    "Organization",
    "Priority",
    "Call-Info",
    "Alert-Info",
    "Error-Info",
    "In-Reply-To",
    "Reply-To",
    "MIME-Version",
    "RAck",
    "RSeq",
    "Subscription-State",
    "Replaces",
    "Diversion",
    "History-Info",
    "Path",
    "Service-Route",
    "Identity",
    "Accept-Contact",
    "Reject-Contact",
    "Request-Disposition",
];

/// Headers whose value is a comma-separated list (RFC 3261 §7.3.1), so that
/// `a, b` on one line means the same as two lines.
const LISTS: &[&str] = &[
    "Via",
    "Contact",
    "Route",
    "Record-Route",
    "Allow",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Supported",
    "Require",
    "Proxy-Require",
    "Unsupported",
    "Content-Encoding",
    "Content-Language",
    "Allow-Events",
    "Warning",
    "Call-Info",
    "Alert-Info",
    "Error-Info",
    "In-Reply-To",
    "Reason",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Privacy",
    "Diversion",
    "History-Info",
    "Path",
    "Service-Route",
    "Accept-Contact",
    "Reject-Contact",
    "Request-Disposition",
];

/// Expands a compact form and returns the canonical spelling of a known
/// header name, `None` for names we do not know (they keep their own case).
pub fn canonical_name(name: &[u8]) -> Option<&'static str> {
    if let [c] = name {
        return match c.to_ascii_lowercase() {
            b'v' => Some("Via"),
            b'f' => Some("From"),
            b't' => Some("To"),
            b'i' => Some("Call-ID"),
            b'm' => Some("Contact"),
            b'l' => Some("Content-Length"),
            b'c' => Some("Content-Type"),
            b'k' => Some("Supported"),
            b's' => Some("Subject"),
            b'e' => Some("Content-Encoding"),
            b'o' => Some("Event"),
            b'u' => Some("Allow-Events"),
            b'r' => Some("Refer-To"),
            b'b' => Some("Referred-By"),
            b'x' => Some("Session-Expires"),
            b'a' => Some("Accept-Contact"),
            b'j' => Some("Reject-Contact"),
            b'd' => Some("Request-Disposition"),
            b'y' => Some("Identity"),
            _ => None,
        };
    }
    KNOWN
        .iter()
        .find(|k| k.as_bytes().eq_ignore_ascii_case(name))
        .copied()
}

/// True when the header (canonical name) carries a comma-separated list.
pub fn is_list_header(canonical: &str) -> bool {
    LISTS.iter().any(|l| l.eq_ignore_ascii_case(canonical))
}

/// RFC 3261 `token` characters.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Characters allowed in a parameter value besides tokens: IPv6 references
/// (`received=[2001:db8::1]`) and the odd `/` some vendors put in values.
fn is_param_value_byte(b: u8) -> bool {
    is_token_byte(b) || matches!(b, b'[' | b']' | b':' | b'/')
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Splits a list header value at top-level commas: commas inside quoted
/// strings (with `\"` escapes) and inside `<...>` do not split. Empty
/// elements are skipped; elements are trimmed.
pub fn split_list(s: &str) -> ListSplit<'_> {
    ListSplit { s, pos: 0 }
}

pub struct ListSplit<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Iterator for ListSplit<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.s.as_bytes();
        while self.pos < bytes.len() {
            let start = self.pos;
            let mut i = start;
            let mut quoted = false;
            let mut angle = false;
            while let Some(&b) = bytes.get(i) {
                if quoted {
                    match b {
                        b'\\' => i += 1,
                        b'"' => quoted = false,
                        _ => {}
                    }
                } else {
                    match b {
                        b'"' => quoted = true,
                        b'<' => angle = true,
                        b'>' => angle = false,
                        b',' if !angle => break,
                        _ => {}
                    }
                }
                i += 1;
            }
            let end = i.min(bytes.len());
            self.pos = end + 1;
            let item = self.s.get(start..end).unwrap_or("").trim();
            if !item.is_empty() {
                return Some(item);
            }
        }
        None
    }
}

/// Parameters (`;name=value` or `;name`) in wire order. Values are kept as
/// written (a quoted value keeps its quotes); names compare
/// case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    /// `None`: absent; `Some(None)`: present without a value.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The value of a parameter that has one.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn push(&mut self, name: impl Into<String>, value: Option<String>) {
        self.0.push((name.into(), value));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }
}

impl fmt::Display for Params {
    /// Writes `;name=value` for each parameter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, v) in &self.0 {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

/// A bounds-checked byte cursor over a `&str`. It only stops on ASCII bytes,
/// so every slice it hands out falls on char boundaries; `get` is used anyway
/// so a mistake costs an error, never a panic.
pub(crate) struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cursor { s, i: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    pub(crate) fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.i += 1;
        }
    }

    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
        self.s.get(start..self.i).unwrap_or("")
    }

    pub(crate) fn rest(&self) -> &'a str {
        self.s.get(self.i..).unwrap_or("")
    }

    pub(crate) fn pos(&self) -> usize {
        self.i
    }

    pub(crate) fn set_pos(&mut self, i: usize) {
        self.i = i.min(self.s.len());
    }

    /// A quoted string starting at the cursor, returned with its quotes.
    pub(crate) fn quoted(&mut self) -> Option<&'a str> {
        let start = self.i;
        if !self.eat(b'"') {
            return None;
        }
        loop {
            match self.peek()? {
                b'\\' => {
                    self.i += 1;
                    self.peek()?;
                    // Skip the escaped char whole, even if multi-byte.
                    let ch = self.rest().chars().next()?;
                    self.i += ch.len_utf8();
                }
                b'"' => {
                    self.i += 1;
                    return self.s.get(start..self.i);
                }
                _ => {
                    let ch = self.rest().chars().next()?;
                    self.i += ch.len_utf8();
                }
            }
        }
    }
}

/// Removes the quotes and backslash escapes of a quoted string.
pub fn unquote(q: &str) -> String {
    let inner = q
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(q);
    let mut out = String::with_capacity(inner.len());
    let mut esc = false;
    for ch in inner.chars() {
        if esc {
            out.push(ch);
            esc = false;
        } else if ch == '\\' {
            esc = true;
        } else {
            out.push(ch);
        }
    }
    out
}

/// Parses `*( SEMI name [EQUAL value] )` with optional whitespace around
/// `;` and `=`, until the end of the cursor. Anything else is an error.
pub(crate) fn parse_params(c: &mut Cursor<'_>) -> Option<Params> {
    let mut params = Params::default();
    loop {
        c.skip_ws();
        if c.at_end() {
            return Some(params);
        }
        if !c.eat(b';') {
            return None;
        }
        c.skip_ws();
        let name = c.take_while(is_token_byte);
        if name.is_empty() {
            return None;
        }
        c.skip_ws();
        let value = if c.eat(b'=') {
            c.skip_ws();
            let v = if c.peek() == Some(b'"') {
                c.quoted()?
            } else {
                c.take_while(is_param_value_byte)
            };
            if v.is_empty() {
                return None;
            }
            Some(v.to_owned())
        } else {
            None
        };
        params.push(name, value);
    }
}

/// `name-addr` or `addr-spec` with header parameters: From, To, Contact,
/// Route, Record-Route, P-Asserted-Identity, Refer-To.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, unquoted and unescaped.
    pub display: Option<String>,
    pub uri: Uri,
    pub params: Params,
}

impl NameAddr {
    pub fn parse(s: &str) -> Option<NameAddr> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        let mut display = None;
        let bracketed;
        if c.peek() == Some(b'"') {
            let q = c.quoted()?;
            display = Some(unquote(q));
            c.skip_ws();
            if c.peek() != Some(b'<') {
                return None;
            }
            bracketed = true;
        } else if let Some(lt) = c.rest().find('<') {
            let name = c.rest().get(..lt)?.trim();
            if !name.is_empty() {
                // Unquoted display names are tokens separated by whitespace.
                if !name.split([' ', '\t']).all(|w| w.is_empty() || is_token(w)) {
                    return None;
                }
                display = Some(name.to_owned());
            }
            c.set_pos(c.pos() + lt);
            bracketed = true;
        } else {
            bracketed = false;
        }
        let uri = if bracketed {
            c.eat(b'<');
            let inner = c.rest();
            let gt = inner.find('>')?;
            let u = inner.get(..gt)?;
            c.set_pos(c.pos() + gt + 1);
            Uri::parse(u).ok()?
        } else {
            // addr-spec: parameters after the URI belong to the header, and
            // the URI may carry neither headers nor commas.
            let u = c.take_while(|b| b != b';' && !is_ws(b));
            if u.contains(['?', ',']) {
                return None;
            }
            Uri::parse(u).ok()?
        };
        let params = parse_params(&mut c)?;
        Some(NameAddr {
            display,
            uri,
            params,
        })
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            f.write_str("\"")?;
            for ch in d.chars() {
                if ch == '"' || ch == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{ch}")?;
            }
            f.write_str("\" ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// The Contact header: `*` (only valid in REGISTER with Expires: 0) or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    Star,
    List(Vec<NameAddr>),
}

/// CSeq: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(s: &str) -> Option<CSeq> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        let digits = c.take_while(|b| b.is_ascii_digit());
        let seq = parse_u32(digits)?;
        if !c.peek().is_some_and(is_ws) {
            return None;
        }
        c.skip_ws();
        let m = c.take_while(is_token_byte);
        c.skip_ws();
        if !c.at_end() {
            return None;
        }
        Some(CSeq {
            seq,
            method: m.parse().ok()?,
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Decimal digits only, bounded to u32 (no sign, no whitespace inside).
pub fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One Via entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `UDP`, `TCP`, `TLS`, `SCTP`, `WS`… as written.
    pub transport: String,
    pub host: Host,
    pub port: Option<u16>,
    pub branch: Option<String>,
    pub received: Option<String>,
    /// `None`: no rport; `Some(None)`: `;rport` asked for; `Some(Some(p))`: filled.
    pub rport: Option<Option<u16>>,
    /// All parameters in wire order, including branch/received/rport.
    pub params: Params,
}

impl Via {
    pub fn parse(s: &str) -> Option<Via> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        let name = c.take_while(is_token_byte);
        c.skip_ws();
        if !name.eq_ignore_ascii_case("SIP") || !c.eat(b'/') {
            return None;
        }
        c.skip_ws();
        let version = c.take_while(is_token_byte);
        c.skip_ws();
        if version.is_empty() || !c.eat(b'/') {
            return None;
        }
        c.skip_ws();
        let transport = c.take_while(is_token_byte);
        if transport.is_empty() || !c.peek().is_some_and(is_ws) {
            return None;
        }
        c.skip_ws();
        let host_str = if c.peek() == Some(b'[') {
            let inner = c.rest();
            let end = inner.find(']')?;
            let h = inner.get(..=end)?;
            c.set_pos(c.pos() + end + 1);
            h
        } else {
            c.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        };
        let host = Host::parse(host_str)?;
        c.skip_ws();
        let port = if c.eat(b':') {
            c.skip_ws();
            let p = c.take_while(|b| b.is_ascii_digit());
            Some(parse_port(p)?)
        } else {
            None
        };
        let params = parse_params(&mut c)?;
        let rport = match params.get("rport") {
            None => None,
            Some(None) => Some(None),
            Some(Some(p)) => Some(Some(parse_port(p)?)),
        };
        Some(Via {
            transport: transport.to_owned(),
            host,
            port,
            branch: params.value("branch").map(str::to_owned),
            received: params.value("received").map(str::to_owned),
            rport,
            params,
        })
    }

    /// `host[:port]`, IPv6 in brackets: the sent-by that keys server
    /// transactions (RFC 3261 §17.2.3). Addresses come out in canonical
    /// form (`[2001:db8::1]`), domains as written.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SIP/2.0/{} {}{}",
            self.transport,
            self.sent_by(),
            self.params
        )
    }
}

pub(crate) fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

/// `callid = word [ "@" word ]` (RFC 3261 §25.1).
pub fn is_valid_call_id(s: &str) -> bool {
    fn is_word_byte(b: u8) -> bool {
        is_token_byte(b)
            || matches!(
                b,
                b'(' | b')'
                    | b'<'
                    | b'>'
                    | b':'
                    | b'\\'
                    | b'"'
                    | b'/'
                    | b'['
                    | b']'
                    | b'?'
                    | b'{'
                    | b'}'
            )
    }
    let mut parts = s.splitn(2, '@');
    let a = parts.next().unwrap_or("");
    let ok_word = |w: &str| !w.is_empty() && w.bytes().all(is_word_byte);
    ok_word(a) && parts.next().is_none_or(ok_word)
}

/// Session-Expires (RFC 4028): delta-seconds and who refreshes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionExpires {
    pub delta: u32,
    /// `uac` or `uas` when given.
    pub refresher: Option<String>,
    pub params: Params,
}

impl SessionExpires {
    pub fn parse(s: &str) -> Option<SessionExpires> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        let delta = parse_u32(c.take_while(|b| b.is_ascii_digit()))?;
        let params = parse_params(&mut c)?;
        Some(SessionExpires {
            delta,
            refresher: params.value("refresher").map(str::to_ascii_lowercase),
            params,
        })
    }
}

/// One Reason header value (RFC 3326): `Q.850;cause=16;text="..."`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonValue {
    /// `SIP`, `Q.850` or another token.
    pub protocol: String,
    pub cause: Option<u16>,
    /// Unquoted text.
    pub text: Option<String>,
    pub params: Params,
}

impl ReasonValue {
    pub fn parse(s: &str) -> Option<ReasonValue> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        let protocol = c.take_while(is_token_byte);
        if protocol.is_empty() {
            return None;
        }
        let params = parse_params(&mut c)?;
        let cause = match params.value("cause") {
            Some(v) => Some(v.parse().ok()?),
            None => None,
        };
        Some(ReasonValue {
            protocol: protocol.to_owned(),
            cause,
            text: params.value("text").map(unquote),
            params,
        })
    }
}

/// Credentials or a challenge (RFC 3261 §25.1, RFC 7616): a scheme and
/// comma-separated `name=value` pairs; quoted values are unquoted. Names
/// compare case-insensitively. Used for (Proxy-)Authorization and
/// (Proxy-/WWW-)Authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParams {
    /// `Digest`, or whatever the peer sent.
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl AuthParams {
    pub fn parse(s: &str) -> Option<AuthParams> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        let scheme = c.take_while(is_token_byte);
        if scheme.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        loop {
            c.skip_ws();
            if c.at_end() {
                break;
            }
            if !params.is_empty() && !c.eat(b',') {
                return None;
            }
            c.skip_ws();
            let name = c.take_while(is_token_byte);
            if name.is_empty() {
                return None;
            }
            c.skip_ws();
            if !c.eat(b'=') {
                return None;
            }
            c.skip_ws();
            let value = if c.peek() == Some(b'"') {
                unquote(c.quoted()?)
            } else {
                c.take_while(|b| is_token_byte(b) || b == b'/' || b == b':')
                    .to_owned()
            };
            params.push((name.to_owned(), value));
        }
        Some(AuthParams {
            scheme: scheme.to_owned(),
            params,
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::uri::Uri;

    #[test]
    fn compact_names_expand() {
        assert_eq!(canonical_name(b"v"), Some("Via"));
        assert_eq!(canonical_name(b"I"), Some("Call-ID"));
        assert_eq!(canonical_name(b"call-id"), Some("Call-ID"));
        assert_eq!(canonical_name(b"X-Custom"), None);
    }

    #[test]
    fn split_list_respects_quotes_and_angles() {
        let v: Vec<_> =
            split_list(r#""Smith, J \"x, y\"" <sip:a@b;x=1,2>, <sip:c@d> ,, sip:e@f"#).collect();
        assert_eq!(
            v,
            vec![
                r#""Smith, J \"x, y\"" <sip:a@b;x=1,2>"#,
                "<sip:c@d>",
                "sip:e@f"
            ]
        );
    }

    #[test]
    fn params_with_and_without_values() {
        let mut c = Cursor::new(" ; lr ;  tag = abc;q=0.5;+sip.instance=\"<urn:x>\"");
        let p = parse_params(&mut c).expect("valid params");
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.value("TAG"), Some("abc"));
        assert_eq!(p.value("q"), Some("0.5"));
        assert_eq!(p.value("+sip.instance"), Some("\"<urn:x>\""));
        assert!(p.get("missing").is_none());
    }

    #[test]
    fn name_addr_quoted_with_escapes() {
        let na = NameAddr::parse(r#""J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8"#)
            .expect("valid");
        assert_eq!(na.display.as_deref(), Some("J Rosenberg \\\""));
        assert_eq!(na.tag(), Some("98asjd8"));
        assert!(matches!(na.uri, Uri::Sip(_)));
    }

    #[test]
    fn name_addr_forms() {
        let na = NameAddr::parse("caller<sip:caller@example.com>;tag=323").expect("valid");
        assert_eq!(na.display.as_deref(), Some("caller"));
        let na = NameAddr::parse("sip:bob@example.com;tag=1").expect("valid");
        assert_eq!(na.display, None);
        assert_eq!(na.tag(), Some("1"));
        let na = NameAddr::parse("<tel:+525512345678>").expect("valid");
        assert!(matches!(na.uri, Uri::Tel(_)));
        assert!(NameAddr::parse("Bell, Alexander <sip:a@b>").is_none());
        assert!(NameAddr::parse("\"unterminated <sip:a@b>").is_none());
        assert!(NameAddr::parse("<sip:a@b").is_none());
        assert!(NameAddr::parse("sip:a@b?Route=x").is_none());
        assert!(NameAddr::parse("< sip:a@b >").is_none());
        assert!(NameAddr::parse("<sip:a@b>;tag=1, <sip:c@d>").is_none());
    }

    #[test]
    fn via_with_whitespace_and_ipv6() {
        let v = Via::parse("SIP  /   2.0 /UDP 192.0.2.2;rport;branch=390skdjuw").expect("valid");
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.rport, Some(None));
        assert_eq!(v.branch.as_deref(), Some("390skdjuw"));
        assert_eq!(v.sent_by(), "192.0.2.2");
        let v = Via::parse(
            "SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK1;received=[2001:db8::2];rport=5071",
        )
        .expect("valid");
        assert_eq!(v.sent_by(), "[2001:db8::1]:5070");
        assert_eq!(v.rport, Some(Some(5071)));
        assert_eq!(v.received.as_deref(), Some("[2001:db8::2]"));
        assert!(Via::parse("SIP/2.0/UDP").is_none());
        assert!(Via::parse("SIP/2.0/UDP host:99999").is_none());
    }

    #[test]
    fn cseq_parse() {
        let c = CSeq::parse(" 4711   INVITE ").expect("valid");
        assert_eq!(c.seq, 4711);
        assert_eq!(c.method, Method::Invite);
        assert!(CSeq::parse("36893488147419103232 INVITE").is_none());
        assert!(CSeq::parse("1INVITE").is_none());
        assert!(CSeq::parse("-1 INVITE").is_none());
        assert!(CSeq::parse("1 INVITE extra").is_none());
    }

    #[test]
    fn call_id_words() {
        assert!(is_valid_call_id("a84b4c76e66710@pc33.atlanta.com"));
        assert!(!is_valid_call_id("a b"));
        assert!(!is_valid_call_id(""));
        assert!(!is_valid_call_id("a@"));
    }

    #[test]
    fn session_expires_and_reason() {
        let se = SessionExpires::parse("1800;refresher=UAC").expect("valid");
        assert_eq!((se.delta, se.refresher.as_deref()), (1800, Some("uac")));
        assert!(SessionExpires::parse("soon").is_none());
        let r = ReasonValue::parse("Q.850;cause=16;text=\"Normal call clearing\"").expect("valid");
        assert_eq!(r.protocol, "Q.850");
        assert_eq!(r.cause, Some(16));
        assert_eq!(r.text.as_deref(), Some("Normal call clearing"));
        assert!(ReasonValue::parse("SIP;cause=abc").is_none());
    }

    #[test]
    fn auth_params() {
        let a = AuthParams::parse(
            "Digest username=\"op7\", realm=\"gw\",nonce=\"a,b\", uri=\"sip:gw\", response=\"6629\", algorithm=MD5, qop=auth, nc=00000001",
        )
        .expect("valid");
        assert!(a.is_digest());
        assert_eq!(a.get("USERNAME"), Some("op7"));
        assert_eq!(a.get("nonce"), Some("a,b"));
        assert_eq!(a.get("uri"), Some("sip:gw"));
        assert_eq!(a.get("nc"), Some("00000001"));
        assert_eq!(a.get("opaque"), None);
        let u = AuthParams::parse("NoOneKnowsThisScheme opaque-data=here").expect("valid");
        assert_eq!(u.get("opaque-data"), Some("here"));
        assert!(AuthParams::parse("Digest realm").is_none());
        assert!(AuthParams::parse("Digest realm=\"x").is_none());
        assert!(AuthParams::parse("").is_none());
    }

    #[test]
    fn name_addr_display_round_trips() {
        let na = NameAddr::parse(r#""A \"B\"" <sip:a@b;lr>;tag=x;q=0.5"#).expect("valid");
        let printed = na.to_string();
        assert_eq!(printed, r#""A \"B\"" <sip:a@b;lr>;tag=x;q=0.5"#);
        assert_eq!(NameAddr::parse(&printed), Some(na));
        let v = Via::parse("SIP/2.0/UDP [::1]:5060;branch=z9hG4bKx;rport").expect("valid");
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP [::1]:5060;branch=z9hG4bKx;rport"
        );
        assert_eq!(
            CSeq::parse("7 ACK").map(|c| c.to_string()).as_deref(),
            Some("7 ACK")
        );
    }
}
