//! URIs as SIP carries them: `sip:`/`sips:` (RFC 3261 §19.1) with IPv6
//! references, `tel:` (RFC 3966), and any other scheme kept as text so a
//! message with an unusual URI still parses (RFC 4475 §3.3.x).
//!
//! User and password stay in their escaped wire form, so printing a parsed
//! URI gives back what was received. Parsing never panics; it only slices at
//! ASCII delimiters through checked `get`. No transport or dialog logic here.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::sip::header::Params;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Sip(SipUri),
    Tel(TelUri),
    /// Any other scheme (`http:`, `urn:`, `im:`…), kept verbatim.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:`
    pub secure: bool,
    /// Escaped as on the wire (`%40` stays `%40`).
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
    /// `?name=value&...`; not allowed in a Request-URI.
    pub headers: Params,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Domain(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    /// `+52-55-1234-5678` or a local number, visual separators kept.
    pub number: String,
    pub params: Params,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("missing or bad scheme")]
    Scheme,
    #[error("whitespace or control character in URI")]
    Whitespace,
    #[error("bad user part")]
    User,
    #[error("bad host")]
    Host,
    #[error("bad port")]
    Port,
    #[error("bad parameter")]
    Param,
    #[error("bad telephone number")]
    Tel,
}

impl Uri {
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        if s.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(UriError::Whitespace);
        }
        let colon = s.find(':').ok_or(UriError::Scheme)?;
        let scheme = s.get(..colon).ok_or(UriError::Scheme)?;
        let rest = s.get(colon + 1..).ok_or(UriError::Scheme)?;
        let valid_scheme = scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !valid_scheme {
            return Err(UriError::Scheme);
        }
        if scheme.eq_ignore_ascii_case("sip") {
            parse_sip(rest, false).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            parse_sip(rest, true).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            parse_tel(rest).map(Uri::Tel)
        } else if rest.is_empty() {
            Err(UriError::Scheme)
        } else {
            Ok(Uri::Other(s.to_owned()))
        }
    }

    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user part of a SIP URI or the number of a tel URI.
    pub fn user(&self) -> Option<&str> {
        match self {
            Uri::Sip(u) => u.user.as_deref(),
            Uri::Tel(t) => Some(&t.number),
            Uri::Other(_) => None,
        }
    }

    pub fn host(&self) -> Option<&Host> {
        self.as_sip().map(|u| &u.host)
    }

    pub fn params(&self) -> Option<&Params> {
        match self {
            Uri::Sip(u) => Some(&u.params),
            Uri::Tel(t) => Some(&t.params),
            Uri::Other(_) => None,
        }
    }
}

impl FromStr for Uri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Uri, UriError> {
        Uri::parse(s)
    }
}

impl SipUri {
    /// `host[:port]`, IPv6 in brackets.
    pub fn host_port(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }

    pub fn transport(&self) -> Option<&str> {
        self.params.value("transport")
    }
}

impl Host {
    /// A domain name, a dotted IPv4 address or a bracketed IPv6 reference.
    pub fn parse(s: &str) -> Option<Host> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']')?;
            return inner.parse().ok().map(Host::V6);
        }
        if s.is_empty() {
            return None;
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && let Ok(v4) = s.parse()
        {
            return Some(Host::V4(v4));
        }
        let ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            && !s.starts_with(['.', '-']);
        ok.then(|| Host::Domain(s.to_owned()))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')' | b'%'
        )
}

fn is_user_byte(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
}

fn is_password_byte(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',')
}

fn is_param_byte(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

fn is_header_byte(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
}

/// `%XX` escapes must be complete hex pairs.
fn escapes_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn parse_sip(rest: &str, secure: bool) -> Result<SipUri, UriError> {
    // A raw `@` can only end the userinfo: parameters and headers must
    // escape it. The user part may itself hold `?` and `;` (RFC 4475
    // intmeth), so it is cut off before looking for headers.
    let (userinfo, after_user) = match rest.find('@') {
        Some(at) => (rest.get(..at), rest.get(at + 1..).unwrap_or("")),
        None => (None, rest),
    };
    let (hostpart, hdrs) = match after_user.find('?') {
        Some(q) => (after_user.get(..q).unwrap_or(""), after_user.get(q + 1..)),
        None => (after_user, None),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(ui) => {
            let (u, p) = match ui.find(':') {
                Some(c) => (ui.get(..c).unwrap_or(""), ui.get(c + 1..)),
                None => (ui, None),
            };
            if u.is_empty() || !u.bytes().all(is_user_byte) || !escapes_ok(u) {
                return Err(UriError::User);
            }
            if let Some(p) = p
                && (!p.bytes().all(is_password_byte) || !escapes_ok(p))
            {
                return Err(UriError::User);
            }
            (Some(u.to_owned()), p.map(str::to_owned))
        }
    };
    // Host ends at the port colon or the first parameter; an IPv6 reference
    // is bracketed so its colons do not count.
    let (host_str, after_host) = if hostpart.starts_with('[') {
        let end = hostpart.find(']').ok_or(UriError::Host)?;
        (
            hostpart.get(..=end).unwrap_or(""),
            hostpart.get(end + 1..).unwrap_or(""),
        )
    } else {
        let end = hostpart.find([':', ';']).unwrap_or(hostpart.len());
        (
            hostpart.get(..end).unwrap_or(""),
            hostpart.get(end..).unwrap_or(""),
        )
    };
    let host = Host::parse(host_str).ok_or(UriError::Host)?;
    let (port, params_str) = if let Some(p) = after_host.strip_prefix(':') {
        let end = p.find(';').unwrap_or(p.len());
        let port =
            crate::sip::header::parse_port(p.get(..end).unwrap_or("")).ok_or(UriError::Port)?;
        (Some(port), p.get(end..).unwrap_or(""))
    } else {
        (None, after_host)
    };
    let params = parse_uri_params(params_str)?;
    let mut headers = Params::default();
    if let Some(h) = hdrs {
        for pair in h.split('&') {
            let (n, v) = match pair.find('=') {
                Some(e) => (pair.get(..e).unwrap_or(""), pair.get(e + 1..)),
                None => (pair, None),
            };
            let valid = |s: &str| s.bytes().all(is_header_byte) && escapes_ok(s);
            if n.is_empty() || !valid(n) || !v.is_none_or(valid) {
                return Err(UriError::Param);
            }
            headers.push(n, v.map(str::to_owned));
        }
    }
    Ok(SipUri {
        secure,
        user,
        password,
        host,
        port,
        params,
        headers,
    })
}

/// `;name[=value]` repeated; `s` is empty or starts with `;`.
fn parse_uri_params(s: &str) -> Result<Params, UriError> {
    let mut params = Params::default();
    if s.is_empty() {
        return Ok(params);
    }
    let s = s.strip_prefix(';').ok_or(UriError::Param)?;
    for p in s.split(';') {
        let (n, v) = match p.find('=') {
            Some(e) => (p.get(..e).unwrap_or(""), p.get(e + 1..)),
            None => (p, None),
        };
        let valid = |s: &str| !s.is_empty() && s.bytes().all(is_param_byte) && escapes_ok(s);
        if !valid(n) || !v.is_none_or(valid) {
            return Err(UriError::Param);
        }
        params.push(n, v.map(str::to_owned));
    }
    Ok(params)
}

fn parse_tel(rest: &str) -> Result<TelUri, UriError> {
    let end = rest.find(';').unwrap_or(rest.len());
    let number = rest.get(..end).unwrap_or("");
    let digits_ok = number.bytes().all(|b| {
        b.is_ascii_hexdigit() || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
    });
    if number.is_empty() || number == "+" || !digits_ok {
        return Err(UriError::Tel);
    }
    let params = parse_uri_params(rest.get(end..).unwrap_or(""))?;
    Ok(TelUri {
        number: number.to_owned(),
        params,
    })
}

fn write_uri_params(f: &mut fmt::Formatter<'_>, p: &Params) -> fmt::Result {
    write!(f, "{p}")
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host_port())?;
        write_uri_params(f, &self.params)?;
        for (i, (n, v)) in self.headers.iter().enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            f.write_str(n)?;
            if let Some(v) = v {
                write!(f, "={v}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for TelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tel:{}", self.number)?;
        write_uri_params(f, &self.params)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Tel(t) => t.fmt(f),
            Uri::Other(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        match Uri::parse(s) {
            Ok(Uri::Sip(u)) => u,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn full_sip_uri() {
        let u = sip(
            "sips:alice:secret@atlanta.com:5061;transport=tcp;lr?subject=project&priority=urgent",
        );
        assert!(u.secure);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.host, Host::Domain("atlanta.com".into()));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport(), Some("tcp"));
        assert_eq!(u.params.get("lr"), Some(None));
        assert_eq!(u.headers.value("priority"), Some("urgent"));
        assert_eq!(
            u.to_string(),
            "sips:alice:secret@atlanta.com:5061;transport=tcp;lr?subject=project&priority=urgent"
        );
    }

    #[test]
    fn ipv6_hosts() {
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!(u.host, Host::V6("2001:db8::10".parse().expect("v6")));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.to_string(), "sip:[2001:db8::10]:5070");
        let u = sip("sip:bob@[::1];transport=udp");
        assert_eq!(u.host_port(), "[::1]");
        assert!(Uri::parse("sip:[2001:db8::10").is_err());
        assert!(Uri::parse("sip:[not-v6]").is_err());
    }

    #[test]
    fn ipv4_and_escapes() {
        let u = sip("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(u.user.as_deref(), Some("sips%3Auser%40example.com"));
        assert_eq!(u.host, Host::Domain("example.net".into()));
        let u = sip("sip:null-%00-null@192.0.2.1");
        assert_eq!(u.host, Host::V4("192.0.2.1".parse().expect("v4")));
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert!(Uri::parse("sip:us%4ger@example.com").is_err());
    }

    #[test]
    fn tel_and_other() {
        match Uri::parse("tel:+52-55-1234-5678;phone-context=+52") {
            Ok(Uri::Tel(t)) => {
                assert_eq!(t.number, "+52-55-1234-5678");
                assert_eq!(t.params.value("phone-context"), Some("+52"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Uri::parse("http://www.example.com"),
            Ok(Uri::Other("http://www.example.com".into()))
        );
        assert!(Uri::parse("tel:").is_err());
        assert!(Uri::parse("nocolon").is_err());
        assert!(Uri::parse("sip:a b@c").is_err());
        assert!(Uri::parse("<sip:a@b>").is_err());
        assert!(Uri::parse("sip:user@host:port").is_err());
        assert!(Uri::parse("sip:user@host:70000").is_err());
        assert!(Uri::parse("sip:@host").is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "sip:alice@atlanta.com",
            "sips:[2001:db8::1]:5061;transport=tls",
            "tel:+52-55-5555-0000;phone-context=+52",
            "sip:+525512345678@200.57.7.195;user=phone",
            "urn:service:sos",
        ] {
            let u = Uri::parse(s).expect(s);
            assert_eq!(u.to_string(), s);
            assert_eq!(Uri::parse(&u.to_string()), Ok(u));
        }
        let u: Uri = "SIP:Bob@Example.COM"
            .parse()
            .expect("case-insensitive scheme");
        assert_eq!(u.user(), Some("Bob"));
        assert_eq!(u.host(), Some(&Host::Domain("Example.COM".into())));
        assert_eq!(
            Uri::parse("tel:+5255").map(|u| u.user().map(str::to_owned)),
            Ok(Some("+5255".into()))
        );
    }
}
