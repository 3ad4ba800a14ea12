//! The SIP message codec: framing and a zero-copy header index over `Bytes`.
//!
//! `Message::parse` takes one whole message (a UDP datagram, or a frame cut by
//! `StreamFramer` from a TCP stream), checks the start line and the framing
//! (CRLFCRLF, Content-Length), and records where each header's name and value
//! sit. Compact names are expanded and folded lines unfolded at index time;
//! values are handed out as `&str` borrowed from the datagram (only folded or
//! non-UTF-8 values are copied). Typed views (Via, From, CSeq…) are parsed on
//! demand. Everything is bounded (`Limits`) and no input can panic.
//!
//! For the transport: a UDP datagram for which `is_keepalive` holds is a
//! CRLF ping, not a parse error; a request `parse` rejects is answered from
//! `parse_head` with `err.status_code()` and `err.reason()`; over TCP,
//! `StreamFramer` cuts frames and a `FrameError` means closing the
//! connection.
//!
//! This module knows nothing about sockets, transactions or dialogs.

use std::fmt;
use std::str::FromStr;

use bytes::{Buf, Bytes, BytesMut};

use crate::sip::header::{
    self, AuthParams, CSeq, Contacts, HeaderError, NameAddr, ReasonValue, SessionExpires, Via,
    canonical_name, is_list_header, is_token_byte, split_list,
};
use crate::sip::uri::Uri;

/// Request methods; anything else that is a token is an `Extension`, so a
/// 501 can still be built for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Extension(String),
}

impl Method {
    pub fn as_str(&self) -> &str {
        match self {
            Method::Extension(s) => s,
            known => known.static_name(),
        }
    }

    /// The name of a method this stack knows; "other" for extensions.
    pub fn static_name(&self) -> &'static str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(_) => "other",
        }
    }

    /// Methods are case-sensitive (RFC 3261 §7.1); only tokens are methods.
    pub fn from_bytes(b: &[u8]) -> Option<Method> {
        Some(match b {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"OPTIONS" => Method::Options,
            b"REGISTER" => Method::Register,
            b"INFO" => Method::Info,
            b"UPDATE" => Method::Update,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"PUBLISH" => Method::Publish,
            _ => {
                if b.is_empty() || !b.iter().all(|&c| is_token_byte(c)) {
                    return None;
                }
                // Token bytes are ASCII, so this cannot fail.
                Method::Extension(std::str::from_utf8(b).ok()?.to_owned())
            }
        })
    }
}

impl FromStr for Method {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Method, ParseError> {
        Method::from_bytes(s.as_bytes()).ok_or(ParseError::BadMethod)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a message was rejected. `reason()` is short enough for the reason
/// phrase of the 400 the transport sends back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Nothing but CRLFs (a keep-alive) or nothing at all.
    Empty,
    /// No CRLFCRLF after the headers.
    NoEndOfHeaders,
    TooLarge,
    TooManyHeaders,
    LineTooLong,
    BadStartLine,
    /// Not SIP/2.0: the transport may answer 505.
    BadVersion,
    BadMethod,
    BadRequestUri,
    BadStatusCode,
    BadHeaderLine,
    BadContentLength,
    /// Body shorter than Content-Length.
    Truncated,
    Missing(&'static str),
    Invalid(&'static str),
    Duplicate(&'static str),
    CSeqMethodMismatch,
}

impl ParseError {
    /// The status to answer a request with: 505 for a SIP version we do
    /// not speak, 513 for an oversized message, 400 otherwise.
    pub fn status_code(&self) -> u16 {
        match self {
            ParseError::BadVersion => 505,
            ParseError::TooLarge => 513,
            _ => 400,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::Empty => "Empty message",
            ParseError::NoEndOfHeaders => "Missing end of headers",
            ParseError::TooLarge => "Message too large",
            ParseError::TooManyHeaders => "Too many headers",
            ParseError::LineTooLong => "Header line too long",
            ParseError::BadStartLine => "Bad start line",
            ParseError::BadVersion => "Version Not Supported",
            ParseError::BadMethod => "Bad method",
            ParseError::BadRequestUri => "Bad Request-URI",
            ParseError::BadStatusCode => "Bad status code",
            ParseError::BadHeaderLine => "Malformed header line",
            ParseError::BadContentLength => "Bad Content-Length",
            ParseError::Truncated => "Content-Length mismatch",
            ParseError::CSeqMethodMismatch => "CSeq method mismatch",
            ParseError::Missing(h) => missing_reason(h),
            ParseError::Invalid(h) => invalid_reason(h),
            ParseError::Duplicate(h) => duplicate_reason(h),
        }
    }
}

fn missing_reason(h: &str) -> &'static str {
    match h {
        "Via" => "Missing Via",
        "From" => "Missing From",
        "To" => "Missing To",
        "Call-ID" => "Missing Call-ID",
        "CSeq" => "Missing CSeq",
        "Max-Forwards" => "Missing Max-Forwards",
        "Contact" => "Missing Contact",
        _ => "Missing header",
    }
}

fn invalid_reason(h: &str) -> &'static str {
    match h {
        "Via" => "Bad Via",
        "From" => "Bad From",
        "To" => "Bad To",
        "Call-ID" => "Bad Call-ID",
        "CSeq" => "Bad CSeq",
        "Max-Forwards" => "Bad Max-Forwards",
        "Contact" => "Bad Contact",
        "Expires" => "Bad Expires",
        "Route" => "Bad Route",
        "Record-Route" => "Bad Record-Route",
        "Content-Length" => "Bad Content-Length",
        "Session-Expires" => "Bad Session-Expires",
        "Min-SE" => "Bad Min-SE",
        "Reason" => "Bad Reason",
        "Authorization" => "Bad Authorization",
        "Proxy-Authorization" => "Bad Proxy-Authorization",
        _ => "Bad header",
    }
}

fn duplicate_reason(h: &str) -> &'static str {
    match h {
        "From" => "Duplicate From",
        "To" => "Duplicate To",
        "Call-ID" => "Duplicate Call-ID",
        "CSeq" => "Duplicate CSeq",
        "Max-Forwards" => "Duplicate Max-Forwards",
        "Content-Length" => "Duplicate Content-Length",
        "Expires" => "Duplicate Expires",
        "Session-Expires" => "Duplicate Session-Expires",
        "Min-SE" => "Duplicate Min-SE",
        _ => "Duplicate header",
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ParseError {}

impl From<HeaderError> for ParseError {
    fn from(e: HeaderError) -> ParseError {
        match e {
            HeaderError::Missing(h) => ParseError::Missing(h),
            HeaderError::Invalid(h) => ParseError::Invalid(h),
            HeaderError::Duplicate(h) => ParseError::Duplicate(h),
        }
    }
}

/// Bounds on what one message may make us index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_message: usize,
    pub max_headers: usize,
    /// One header line after unfolding, or the start line.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Same as the TCP framer's default, so a framed message always
            // fits; a UDP datagram is smaller anyway.
            max_message: StreamFramer::DEFAULT_MAX_MESSAGE,
            max_headers: 256,
            max_line: 16 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        // Messages are capped well below 4 GiB by `Limits::max_message`.
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
}

#[derive(Debug, Clone)]
enum Text {
    Span(Span),
    /// Folded or non-UTF-8 values: the only copies the index makes.
    Owned(String),
}

#[derive(Debug, Clone)]
enum Name {
    Known(&'static str),
    Raw(Span),
}

#[derive(Debug, Clone)]
struct Entry {
    name: Name,
    value: Text,
}

#[derive(Debug, Clone)]
enum StartLine {
    Request {
        method: Method,
        uri: Uri,
        uri_span: Span,
    },
    Response {
        status: u16,
        reason: Text,
    },
}

/// A parsed SIP request or response.
#[derive(Debug, Clone)]
pub struct Message {
    raw: Bytes,
    body: Bytes,
    start: StartLine,
    headers: Vec<Entry>,
}

fn trim_ws(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

fn str_of(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or("")
}

/// Value text: borrowed when it is valid UTF-8, a lossy copy otherwise (a
/// Latin-1 display name from an old PBX must not cost the whole call).
fn text_at(buf: &[u8], start: usize, end: usize) -> Text {
    let b = buf.get(start..end).unwrap_or(&[]);
    if std::str::from_utf8(b).is_ok() {
        Text::Span(Span::new(start, end))
    } else {
        Text::Owned(String::from_utf8_lossy(b).into_owned())
    }
}

/// True for a datagram made only of CRLFs: a RFC 5626 keep-alive ping/pong.
pub fn is_keepalive(datagram: &[u8]) -> bool {
    !datagram.is_empty() && datagram.chunks(2).all(|c| c == b"\r\n")
}

impl Message {
    /// Parses one whole message with the default limits.
    pub fn parse(datagram: Bytes) -> Result<Message, ParseError> {
        Message::parse_with(datagram, &Limits::default())
    }

    pub fn parse_with(datagram: Bytes, limits: &Limits) -> Result<Message, ParseError> {
        Message::parse_inner(datagram, limits, false)
    }

    /// Like [`Message::parse`], but a bad Request-URI, an unknown SIP
    /// version or an unusable Content-Length do not fail it (the URI is
    /// kept as [`Uri::Other`], the body is then empty). Only for building
    /// the 400/505 answer to a request that `parse` rejected: RFC 4475 wants
    /// such requests answered, and the answer needs their Via, From, To,
    /// Call-ID and CSeq. Errors in the header block itself still fail.
    pub fn parse_head(datagram: Bytes) -> Result<Message, ParseError> {
        Message::parse_inner(datagram, &Limits::default(), true)
    }

    fn parse_inner(datagram: Bytes, limits: &Limits, lenient: bool) -> Result<Message, ParseError> {
        let mut datagram = datagram;
        // Stray CRLFs before the start line are ignored (RFC 3261 §7.5).
        let lead = datagram.chunks(2).take_while(|c| *c == b"\r\n").count() * 2;
        datagram.advance(lead.min(datagram.len()));
        if datagram.is_empty() {
            return Err(ParseError::Empty);
        }
        if datagram.len() > limits.max_message || datagram.len() > u32::MAX as usize {
            return Err(ParseError::TooLarge);
        }
        let buf: &[u8] = &datagram;
        let hdr_end = memchr::memmem::find(buf, b"\r\n\r\n").ok_or(ParseError::NoEndOfHeaders)?;
        let sl_end = memchr::memmem::find(buf.get(..hdr_end + 2).unwrap_or(&[]), b"\r\n")
            .ok_or(ParseError::NoEndOfHeaders)?;
        if sl_end > limits.max_line {
            return Err(ParseError::LineTooLong);
        }
        let start = parse_start_line(buf, sl_end, lenient)?;

        let mut headers: Vec<Entry> = Vec::with_capacity(16);
        let block_end = hdr_end + 2;
        let mut pos = sl_end + 2;
        while pos < block_end {
            let rest = buf.get(pos..block_end).unwrap_or(&[]);
            let nl = memchr::memchr2(b'\r', b'\n', rest).ok_or(ParseError::BadHeaderLine)?;
            if rest.get(nl..nl + 2) != Some(b"\r\n") {
                // A bare CR or LF inside a line.
                return Err(ParseError::BadHeaderLine);
            }
            let (lstart, lend) = (pos, pos + nl);
            pos = lend + 2;
            if nl > limits.max_line {
                return Err(ParseError::LineTooLong);
            }
            let line = buf.get(lstart..lend).unwrap_or(&[]);
            if let [b' ' | b'\t', ..] = line {
                // Continuation: unfold into the previous value with one SP.
                let prev = headers.last_mut().ok_or(ParseError::BadHeaderLine)?;
                let cont = trim_ws(line);
                if cont.is_empty() {
                    continue;
                }
                // Append in place: a header folded over many lines costs
                // linear time, not a copy of the whole value per line.
                if let Text::Span(s) = prev.value {
                    let first = buf.get(s.start as usize..s.end as usize).unwrap_or(&[]);
                    prev.value = Text::Owned(String::from_utf8_lossy(first).into_owned());
                }
                let Text::Owned(joined) = &mut prev.value else {
                    return Err(ParseError::BadHeaderLine);
                };
                if joined.len() + 1 + cont.len() > limits.max_line {
                    return Err(ParseError::LineTooLong);
                }
                if !joined.is_empty() {
                    joined.push(' ');
                }
                joined.push_str(&String::from_utf8_lossy(cont));
                continue;
            }
            if headers.len() >= limits.max_headers {
                return Err(ParseError::TooManyHeaders);
            }
            let colon = memchr::memchr(b':', line).ok_or(ParseError::BadHeaderLine)?;
            let name = trim_ws(line.get(..colon).unwrap_or(&[]));
            // Leading whitespace was handled as folding above, so a name
            // with trailing WSP only (`Via :`) is what trim removes here.
            if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
                return Err(ParseError::BadHeaderLine);
            }
            let vstart = lstart + colon + 1;
            let vb = line.get(colon + 1..).unwrap_or(&[]);
            // Only SP/HT are LWS; other control bytes stay in the value.
            let lead_ws = vb.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
            let trimmed = trim_ws(vb);
            let (vs, ve) = (vstart + lead_ws, vstart + lead_ws + trimmed.len());
            let name = match canonical_name(name) {
                Some(k) => Name::Known(k),
                None => Name::Raw(Span::new(lstart, lstart + name.len())),
            };
            headers.push(Entry {
                name,
                value: text_at(buf, vs, ve),
            });
        }

        // Judged on the unfolded values, and kept rather than returned at
        // once so that `parse_head` can go on without a body.
        let mut cls = headers
            .iter()
            .filter(|e| matches!(e.name, Name::Known("Content-Length")));
        let content_length = match (cls.next(), cls.next()) {
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(ParseError::Duplicate("Content-Length")),
            (Some(e), None) => {
                let v: &[u8] = match &e.value {
                    Text::Span(s) => buf.get(s.start as usize..s.end as usize).unwrap_or(&[]),
                    Text::Owned(o) => o.as_bytes(),
                };
                parse_content_length(v).map(Some)
            }
        };
        let body_start = hdr_end + 4;
        let avail = buf.len().saturating_sub(body_start);
        let body_len = match content_length {
            // UDP without Content-Length: the body is the rest (RFC 3261 §18.3).
            Ok(None) => avail,
            Ok(Some(n)) if n <= avail => n,
            _ if lenient => 0,
            Ok(Some(_)) => return Err(ParseError::Truncated),
            Err(e) => return Err(e),
        };
        let end = body_start + body_len;
        let body = datagram.slice(body_start.min(end)..end);
        datagram.truncate(end);
        Ok(Message {
            raw: datagram,
            body,
            start,
            headers,
        })
    }

    fn span_str(&self, s: Span) -> &str {
        str_of(
            self.raw
                .get(s.start as usize..s.end as usize)
                .unwrap_or(&[]),
        )
    }

    fn text<'a>(&'a self, t: &'a Text) -> &'a str {
        match t {
            Text::Span(s) => self.span_str(*s),
            Text::Owned(o) => o,
        }
    }

    fn name<'a>(&'a self, n: &'a Name) -> &'a str {
        match n {
            Name::Known(k) => k,
            Name::Raw(s) => self.span_str(*s),
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn request_uri(&self) -> Option<&Uri> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI exactly as received.
    pub fn request_uri_str(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri_span, .. } => Some(self.span_str(*uri_span)),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(self.text(reason)),
            StartLine::Request { .. } => None,
        }
    }

    fn entries<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Entry> {
        let wanted: &str = canonical_name(name.as_bytes()).unwrap_or(name);
        self.headers
            .iter()
            .filter(move |e| self.name(&e.name).eq_ignore_ascii_case(wanted))
    }

    /// First value of a header (for list headers, the first list element).
    /// Names are case-insensitive and compact forms are accepted.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).next()
    }

    /// Every value of a header in order, across lines; list headers are
    /// split at top-level commas.
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> {
        let list = canonical_name(name.as_bytes()).is_some_and(is_list_header);
        self.entries(name).flat_map(move |e| {
            let v = self.text(&e.value);
            let mut whole = Some(v);
            let mut parts = list.then(|| split_list(v));
            std::iter::from_fn(move || match &mut parts {
                Some(p) => p.next(),
                None => whole.take(),
            })
        })
    }

    /// Whole header lines as (canonical name, raw value), in wire order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .map(|e| (self.name(&e.name), self.text(&e.value)))
    }

    /// Number of header lines with this name (after unfolding).
    pub fn header_count(&self, name: &str) -> usize {
        self.entries(name).count()
    }

    fn single(&self, name: &'static str) -> Result<&str, HeaderError> {
        let mut it = self.entries(name);
        let first = it.next().ok_or(HeaderError::Missing(name))?;
        if it.next().is_some() {
            return Err(HeaderError::Duplicate(name));
        }
        Ok(self.text(&first.value))
    }

    pub fn vias(&self) -> Result<Vec<Via>, HeaderError> {
        let vias = self
            .header_values("Via")
            .map(|v| Via::parse(v).ok_or(HeaderError::Invalid("Via")))
            .collect::<Result<Vec<_>, _>>()?;
        if vias.is_empty() {
            return Err(HeaderError::Missing("Via"));
        }
        Ok(vias)
    }

    pub fn top_via(&self) -> Result<Via, HeaderError> {
        let v = self.header("Via").ok_or(HeaderError::Missing("Via"))?;
        Via::parse(v).ok_or(HeaderError::Invalid("Via"))
    }

    pub fn from(&self) -> Result<NameAddr, HeaderError> {
        NameAddr::parse(self.single("From")?).ok_or(HeaderError::Invalid("From"))
    }

    pub fn to(&self) -> Result<NameAddr, HeaderError> {
        NameAddr::parse(self.single("To")?).ok_or(HeaderError::Invalid("To"))
    }

    pub fn call_id(&self) -> Result<&str, HeaderError> {
        let v = self.single("Call-ID")?;
        if header::is_valid_call_id(v) {
            Ok(v)
        } else {
            Err(HeaderError::Invalid("Call-ID"))
        }
    }

    pub fn cseq(&self) -> Result<CSeq, HeaderError> {
        CSeq::parse(self.single("CSeq")?).ok_or(HeaderError::Invalid("CSeq"))
    }

    /// `None` when absent; values above 255 are invalid (RFC 3261 §20.22).
    pub fn max_forwards(&self) -> Result<Option<u32>, HeaderError> {
        match self.single("Max-Forwards") {
            Err(HeaderError::Missing(_)) => Ok(None),
            Err(e) => Err(e),
            Ok(v) => header::parse_u32(v)
                .filter(|n| *n <= 255)
                .map(Some)
                .ok_or(HeaderError::Invalid("Max-Forwards")),
        }
    }

    pub fn contacts(&self) -> Result<Contacts, HeaderError> {
        let values: Vec<&str> = self.header_values("Contact").collect();
        if values.is_empty() {
            return Err(HeaderError::Missing("Contact"));
        }
        if values.contains(&"*") {
            return if values.len() == 1 {
                Ok(Contacts::Star)
            } else {
                Err(HeaderError::Invalid("Contact"))
            };
        }
        values
            .into_iter()
            .map(|v| NameAddr::parse(v).ok_or(HeaderError::Invalid("Contact")))
            .collect::<Result<Vec<_>, _>>()
            .map(Contacts::List)
    }

    fn name_addrs(&self, name: &'static str) -> Result<Vec<NameAddr>, HeaderError> {
        self.header_values(name)
            .map(|v| NameAddr::parse(v).ok_or(HeaderError::Invalid(name)))
            .collect()
    }

    /// Empty when absent.
    pub fn record_routes(&self) -> Result<Vec<NameAddr>, HeaderError> {
        self.name_addrs("Record-Route")
    }

    /// Empty when absent.
    pub fn routes(&self) -> Result<Vec<NameAddr>, HeaderError> {
        self.name_addrs("Route")
    }

    /// Empty when absent.
    pub fn p_asserted_identities(&self) -> Result<Vec<NameAddr>, HeaderError> {
        self.name_addrs("P-Asserted-Identity")
    }

    /// Delta-seconds; larger than 2^32-1 is clamped (RFC 3261 §20.19 only
    /// bounds what a sender may put, a receiver should not fail on it).
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        match self.single("Expires") {
            Err(HeaderError::Missing(_)) => Ok(None),
            Err(e) => Err(e),
            Ok(v) => {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(HeaderError::Invalid("Expires"));
                }
                Ok(Some(v.parse::<u32>().unwrap_or(u32::MAX)))
            }
        }
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header("Content-Type")
    }

    /// Content-Length as received (checked at parse), `None` when absent.
    pub fn content_length(&self) -> Option<usize> {
        self.header("Content-Length")
            .and_then(|v| parse_content_length(v.as_bytes()).ok())
    }

    /// Session-Expires (RFC 4028), `None` when absent.
    pub fn session_expires(&self) -> Result<Option<SessionExpires>, HeaderError> {
        match self.single("Session-Expires") {
            Err(HeaderError::Missing(_)) => Ok(None),
            Err(e) => Err(e),
            Ok(v) => SessionExpires::parse(v)
                .map(Some)
                .ok_or(HeaderError::Invalid("Session-Expires")),
        }
    }

    /// Min-SE (RFC 4028), `None` when absent.
    pub fn min_se(&self) -> Result<Option<u32>, HeaderError> {
        match self.single("Min-SE") {
            Err(HeaderError::Missing(_)) => Ok(None),
            Err(e) => Err(e),
            Ok(v) => {
                // Min-SE may carry parameters; only the number matters.
                let n = v.split(';').next().unwrap_or("").trim();
                header::parse_u32(n)
                    .map(Some)
                    .ok_or(HeaderError::Invalid("Min-SE"))
            }
        }
    }

    /// Reason header values (RFC 3326), empty when absent. Not the reason
    /// phrase of a response: see [`Message::reason`].
    pub fn reason_headers(&self) -> Result<Vec<ReasonValue>, HeaderError> {
        self.header_values("Reason")
            .map(|v| ReasonValue::parse(v).ok_or(HeaderError::Invalid("Reason")))
            .collect()
    }

    /// Authorization credentials, `None` when absent.
    pub fn authorization(&self) -> Result<Option<AuthParams>, HeaderError> {
        self.auth_single("Authorization")
    }

    /// Proxy-Authorization credentials, `None` when absent.
    pub fn proxy_authorization(&self) -> Result<Option<AuthParams>, HeaderError> {
        self.auth_single("Proxy-Authorization")
    }

    /// Every WWW-Authenticate challenge (one per header line), in order.
    pub fn www_authenticate(&self) -> Result<Vec<AuthParams>, HeaderError> {
        self.auth_all("WWW-Authenticate")
    }

    /// Every Proxy-Authenticate challenge (one per header line), in order.
    pub fn proxy_authenticate(&self) -> Result<Vec<AuthParams>, HeaderError> {
        self.auth_all("Proxy-Authenticate")
    }

    fn auth_single(&self, name: &'static str) -> Result<Option<AuthParams>, HeaderError> {
        match self.header(name) {
            None => Ok(None),
            Some(v) => AuthParams::parse(v)
                .map(Some)
                .ok_or(HeaderError::Invalid(name)),
        }
    }

    fn auth_all(&self, name: &'static str) -> Result<Vec<AuthParams>, HeaderError> {
        self.header_values(name)
            .map(|v| AuthParams::parse(v).ok_or(HeaderError::Invalid(name)))
            .collect()
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The whole message as received (leading CRLFs and bytes past
    /// Content-Length dropped).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Checks the headers RFC 3261 §8.1.1 makes mandatory, and that they
    /// parse: Via, From, To, Call-ID, CSeq (method matching the request
    /// line), Max-Forwards when present, Contact when present. Headers only
    /// some methods need (Expires, Session-Expires, auth) are left to the
    /// layer that reads them, so an odd one never costs a whole call.
    pub fn validate(&self) -> Result<(), ParseError> {
        self.vias()?;
        self.from()?;
        self.to()?;
        self.call_id()?;
        let cseq = self.cseq()?;
        if let Some(m) = self.method() {
            if *m != cseq.method {
                return Err(ParseError::CSeqMethodMismatch);
            }
            self.max_forwards()?;
        }
        // A Contact is not mandatory everywhere, but one that is there must
        // parse: the dialog layer takes the remote target from it.
        match self.contacts() {
            Ok(_) | Err(HeaderError::Missing(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}

/// Content-Length is `1*DIGIT` (RFC 3261 §20.14), so leading zeros are
/// valid and say nothing about the size: only the significant digits are
/// capped (nine, under 1 GB, far above any message cap), which keeps the
/// value in range without refusing `0005`. The scan is bounded by the
/// message cap that already bounds the header line.
fn parse_content_length(v: &[u8]) -> Result<usize, ParseError> {
    let v = trim_ws(v);
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::BadContentLength);
    }
    let significant = v
        .iter()
        .position(|&d| d != b'0')
        .and_then(|i| v.get(i..))
        .unwrap_or(&[]);
    if significant.is_empty() {
        return Ok(0);
    }
    if significant.len() > 9 {
        return Err(ParseError::BadContentLength);
    }
    str_of(significant)
        .parse()
        .map_err(|_| ParseError::BadContentLength)
}

fn is_sip_version(b: &[u8]) -> bool {
    b.eq_ignore_ascii_case(b"SIP/2.0")
}

fn parse_start_line(buf: &[u8], sl_end: usize, lenient: bool) -> Result<StartLine, ParseError> {
    let line = buf.get(..sl_end).unwrap_or(&[]);
    if line.len() >= 4
        && line
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
    {
        let sp = memchr::memchr(b' ', line).ok_or(ParseError::BadStartLine)?;
        if !is_sip_version(line.get(..sp).unwrap_or(&[])) {
            return Err(ParseError::BadVersion);
        }
        let rest = line.get(sp + 1..).unwrap_or(&[]);
        let code_end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        let code = rest.get(..code_end).unwrap_or(&[]);
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::BadStatusCode);
        }
        let status: u16 = str_of(code)
            .parse()
            .map_err(|_| ParseError::BadStatusCode)?;
        if !(100..=699).contains(&status) {
            return Err(ParseError::BadStatusCode);
        }
        let rstart = (sp + 1 + code_end + 1).min(sl_end);
        Ok(StartLine::Response {
            status,
            reason: text_at(buf, rstart, sl_end),
        })
    } else {
        let sp1 = memchr::memchr(b' ', line).ok_or(ParseError::BadStartLine)?;
        let sp2 = memchr::memrchr(b' ', line).ok_or(ParseError::BadStartLine)?;
        if sp1 == sp2 {
            return Err(ParseError::BadStartLine);
        }
        let version = line.get(sp2 + 1..).unwrap_or(&[]);
        if !is_sip_version(version) && !lenient {
            return Err(
                if version.len() > 4
                    && version
                        .get(..4)
                        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
                {
                    ParseError::BadVersion
                } else {
                    ParseError::BadStartLine
                },
            );
        }
        let method =
            Method::from_bytes(line.get(..sp1).unwrap_or(&[])).ok_or(ParseError::BadMethod)?;
        let uri_b = line.get(sp1 + 1..sp2).unwrap_or(&[]);
        let parsed = std::str::from_utf8(uri_b)
            .ok()
            .and_then(|u| Uri::parse(u).ok())
            // Headers are not allowed in a Request-URI (RFC 3261 §19.1.1).
            .filter(|u| u.as_sip().is_none_or(|u| u.headers.is_empty()));
        let uri = match parsed {
            Some(u) => u,
            None if lenient => Uri::Other(String::from_utf8_lossy(uri_b).into_owned()),
            None => return Err(ParseError::BadRequestUri),
        };
        Ok(StartLine::Request {
            method,
            uri,
            uri_span: Span::new(sp1 + 1, sp2),
        })
    }
}

/// One unit cut from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole message, to hand to `Message::parse`.
    Message(Bytes),
    /// A CRLFCRLF ping (RFC 5626 §3.5.1): answer with a CRLF pong.
    KeepAlive,
}

/// A stream that cannot be framed any further: close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("Message too large")]
    TooLarge,
    #[error("Missing Content-Length")]
    MissingContentLength,
    #[error("Bad Content-Length")]
    BadContentLength,
}

/// Cuts a byte stream (TCP) into messages by CRLFCRLF and Content-Length.
/// Feed it with `push`, then call `next` until it returns `Ok(None)`. The
/// buffer never holds more than `max_message` plus the last push.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    max_message: usize,
    /// Bytes already searched for CRLFCRLF without success.
    scanned: usize,
    /// Total length of the message whose head has been seen.
    pending: Option<usize>,
    failed: Option<FrameError>,
}

impl StreamFramer {
    /// 64 KiB: the cap DESIGN gives for one message over TCP.
    pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

    pub fn new(max_message: usize) -> StreamFramer {
        StreamFramer {
            buf: BytesMut::new(),
            max_message,
            scanned: 0,
            pending: None,
            failed: None,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes buffered and not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let r = self.next_inner();
        if let Err(e) = r {
            self.failed = Some(e);
            self.buf = BytesMut::new();
        }
        r
    }

    fn next_inner(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.pending.is_none() {
            loop {
                match self.buf.get(..4) {
                    Some(b"\r\n\r\n") => {
                        self.buf.advance(4);
                        return Ok(Some(Frame::KeepAlive));
                    }
                    _ if self.buf.starts_with(b"\r\n") => {
                        // Could still become a CRLFCRLF ping: wait.
                        if self.buf.len() < 3
                            || (self.buf.len() == 3 && self.buf.get(2) == Some(&b'\r'))
                        {
                            return Ok(None);
                        }
                        self.buf.advance(2);
                    }
                    _ => break,
                }
            }
            let from = self.scanned.saturating_sub(3);
            let Some(i) = self
                .buf
                .get(from..)
                .and_then(|b| memchr::memmem::find(b, b"\r\n\r\n"))
                .map(|i| i + from)
            else {
                self.scanned = self.buf.len();
                if self.buf.len() > self.max_message {
                    return Err(FrameError::TooLarge);
                }
                return Ok(None);
            };
            let head = self.buf.get(..i + 2).unwrap_or(&[]);
            let cl = stream_content_length(head)?;
            let total = (i + 4).checked_add(cl).ok_or(FrameError::TooLarge)?;
            if total > self.max_message {
                return Err(FrameError::TooLarge);
            }
            self.pending = Some(total);
            self.scanned = 0;
        }
        match self.pending {
            Some(total) if self.buf.len() >= total => {
                self.pending = None;
                Ok(Some(Frame::Message(self.buf.split_to(total).freeze())))
            }
            _ => Ok(None),
        }
    }
}

/// Content-Length from a raw header block (start line included, each line
/// ending in CRLF). Mandatory on streams (RFC 3261 §18.3).
fn stream_content_length(head: &[u8]) -> Result<usize, FrameError> {
    let mut found = None;
    let mut lines = head.split(|&b| b == b'\n').skip(1);
    let mut current_is_cl = false;
    let mut value: Vec<u8> = Vec::new();
    let mut finish = |is_cl: bool, value: &mut Vec<u8>| -> Result<(), FrameError> {
        if is_cl {
            let n = parse_content_length(value).map_err(|_| FrameError::BadContentLength)?;
            // Two Content-Lengths that agree still frame the message (parse
            // then answers 400); two that disagree leave no way to know
            // where the next message starts.
            if found.is_some_and(|f| f != n) {
                return Err(FrameError::BadContentLength);
            }
            found = Some(n);
        }
        value.clear();
        Ok(())
    };
    for line in lines.by_ref() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if let [b' ' | b'\t', ..] = line {
            if current_is_cl {
                value.push(b' ');
                value.extend_from_slice(trim_ws(line));
            }
            continue;
        }
        finish(current_is_cl, &mut value)?;
        // A malformed line is Message::parse's business (it answers 400);
        // the framer only needs Content-Length to keep the stream in step.
        let Some(colon) = memchr::memchr(b':', line) else {
            current_is_cl = false;
            continue;
        };
        let name = trim_ws(line.get(..colon).unwrap_or(&[]));
        current_is_cl =
            name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l");
        if current_is_cl {
            value.extend_from_slice(trim_ws(line.get(colon + 1..).unwrap_or(&[])));
        }
    }
    finish(current_is_cl, &mut value)?;
    found.ok_or(FrameError::MissingContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::uri::Host;

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds, SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKold\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: \"Alice \\\"A\\\"\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>, \"Two\" <sip:alice@[2001:db8::1]:5070;transport=tcp>;expires=60\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
Record-Route: <sip:p2.example.com;lr>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    fn parse(s: &str) -> Result<Message, ParseError> {
        Message::parse(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn request_line_and_basic_headers() {
        let m = parse(INVITE).expect("valid");
        assert!(m.is_request());
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.request_uri_str(), Some("sip:bob@biloxi.example.com"));
        assert_eq!(
            m.request_uri().and_then(Uri::host),
            Some(&Host::Domain("biloxi.example.com".into()))
        );
        assert_eq!(m.status(), None);
        assert_eq!(m.call_id(), Ok("a84b4c76e66710@pc33.atlanta.example.com"));
        let cseq = m.cseq().expect("cseq");
        assert_eq!((cseq.seq, cseq.method), (314159, Method::Invite));
        assert_eq!(m.max_forwards(), Ok(Some(70)));
        assert_eq!(m.content_type(), Some("application/sdp"));
        assert_eq!(&m.body()[..], b"v=0\n");
        assert_eq!(m.validate(), Ok(()));
    }

    #[test]
    fn vias_from_one_line() {
        let m = parse(INVITE).expect("valid");
        let vias = m.vias().expect("vias");
        assert_eq!(vias.len(), 2);
        assert_eq!(vias[1].branch.as_deref(), Some("z9hG4bKold"));
        assert_eq!(vias[1].sent_by(), "10.0.0.1:5062");
        let top = m.top_via().expect("top");
        assert_eq!(top.branch.as_deref(), Some("z9hG4bK776asdhds"));
        assert_eq!(
            m.header("v"),
            Some("SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds")
        );
    }

    #[test]
    fn from_to_and_tags() {
        let m = parse(INVITE).expect("valid");
        let from = m.from().expect("from");
        assert_eq!(from.display.as_deref(), Some("Alice \"A\""));
        assert_eq!(from.tag(), Some("1928301774"));
        let to = m.to().expect("to");
        assert_eq!(to.display.as_deref(), Some("Bob"));
        assert_eq!(to.tag(), None);
    }

    #[test]
    fn two_contacts_in_one_line() {
        let m = parse(INVITE).expect("valid");
        let Contacts::List(c) = m.contacts().expect("contacts") else {
            panic!("not a list")
        };
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].display.as_deref(), Some("Two"));
        assert_eq!(c[1].params.value("expires"), Some("60"));
        let uri = c[1].uri.as_sip().expect("sip");
        assert_eq!(uri.host_port(), "[2001:db8::1]:5070");
        assert_eq!(uri.transport(), Some("tcp"));
    }

    #[test]
    fn record_routes_in_order_and_routes_empty() {
        let m = parse(INVITE).expect("valid");
        let rr = m.record_routes().expect("rr");
        assert_eq!(rr.len(), 2);
        assert_eq!(rr[0].uri.to_string(), "sip:p1.example.com;lr");
        assert_eq!(m.routes(), Ok(vec![]));
        assert_eq!(m.expires(), Ok(None));
    }

    #[test]
    fn headers_iter_and_case_insensitive_lookup() {
        let m = parse(INVITE).expect("valid");
        let names: Vec<&str> = m.headers().map(|(n, _)| n).collect();
        assert_eq!(names[0], "Via");
        assert_eq!(names.len(), 11);
        assert_eq!(m.header("CALL-id"), m.header("i"));
        assert_eq!(m.header_values("record-route").count(), 2);
        assert_eq!(m.header("X-Nope"), None);
    }

    const COMPACT: &str = "REGISTER sip:registrar.example.com SIP/2.0\r\n\
v: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKnashds7;rport\r\n\
f: <sip:op1@example.com>;tag=a73kszlfl\r\n\
t: <sip:op1@example.com>\r\n\
i: 1j9FpLxk3uxtm8tn@192.0.2.4\r\n\
CSeq: 1 REGISTER\r\n\
m: *\r\n\
Expires: 0\r\n\
X-Folded: first\r\n  second\r\n\tthird\r\n\
l: 0\r\n\
\r\n";

    #[test]
    fn compact_forms_star_contact_and_folding() {
        let m = parse(COMPACT).expect("valid");
        assert_eq!(m.method(), Some(&Method::Register));
        assert_eq!(m.call_id(), Ok("1j9FpLxk3uxtm8tn@192.0.2.4"));
        assert_eq!(m.contacts(), Ok(Contacts::Star));
        assert_eq!(m.expires(), Ok(Some(0)));
        assert_eq!(m.header("x-folded"), Some("first second third"));
        assert_eq!(m.top_via().expect("via").rport, Some(None));
        assert_eq!(m.max_forwards(), Ok(None));
        assert_eq!(m.validate(), Ok(()));
        let h: Vec<_> = m.headers().collect();
        assert_eq!(h[0].0, "Via");
        assert_eq!(h[7], ("X-Folded", "first second third"));
    }

    #[test]
    fn response_parse() {
        let r = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n\
Via : SIP/2.0/TCP b.example.com;branch=z9hG4bK2\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\n\
Call-ID: c1\r\nCSeq: 5 INVITE\r\nContent-Length: 0\r\n\r\n";
        let m = parse(r).expect("valid");
        assert!(!m.is_request());
        assert_eq!(m.status(), Some(180));
        assert_eq!(m.reason(), Some("Ringing"));
        assert_eq!(m.vias().expect("vias").len(), 2);
        assert_eq!(m.to().expect("to").tag(), Some("2"));
        assert_eq!(m.validate(), Ok(()));
    }

    #[test]
    fn extension_method_and_empty_reason() {
        let m = parse("FOOBAR sip:x@y SIP/2.0\r\nContent-Length: 0\r\n\r\n").expect("valid");
        assert_eq!(m.method(), Some(&Method::Extension("FOOBAR".into())));
        assert_eq!(m.method().map(Method::as_str), Some("FOOBAR"));
        let m = parse("SIP/2.0 100 \r\n\r\n").expect("valid");
        assert_eq!(m.reason(), Some(""));
    }

    #[test]
    fn framing_errors() {
        assert_eq!(parse("\r\n\r\n").err(), Some(ParseError::Empty));
        assert_eq!(
            parse("OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n").err(),
            Some(ParseError::NoEndOfHeaders)
        );
        assert_eq!(
            parse("OPTIONS sip:x SIP/2.0\r\nContent-Length: 10\r\n\r\nabc").err(),
            Some(ParseError::Truncated)
        );
        assert_eq!(
            parse("OPTIONS sip:x SIP/2.0\r\nContent-Length: -1\r\n\r\n").err(),
            Some(ParseError::BadContentLength)
        );
        assert_eq!(
            parse("OPTIONS sip:x SIP/2.0\r\nl: 0\r\nContent-Length: 0\r\n\r\n").err(),
            Some(ParseError::Duplicate("Content-Length"))
        );
        assert_eq!(
            parse("OPTIONS sip:x SIP/7.0\r\n\r\n").err(),
            Some(ParseError::BadVersion)
        );
        assert_eq!(
            parse("OPTIONS  sip:x SIP/2.0\r\n\r\n").err(),
            Some(ParseError::BadRequestUri)
        );
        assert_eq!(
            parse("OPTIONS sip:x SIP/2.0 \r\n\r\n").err(),
            Some(ParseError::BadStartLine)
        );
        assert_eq!(
            parse("OPTIONS <sip:x> SIP/2.0\r\n\r\n").err(),
            Some(ParseError::BadRequestUri)
        );
        assert_eq!(
            parse("SIP/2.0 4294967301 x\r\n\r\n").err(),
            Some(ParseError::BadStatusCode)
        );
        assert_eq!(
            parse("OPTIONS sip:x SIP/2.0\r\nBad Header\r\n\r\n").err(),
            Some(ParseError::BadHeaderLine)
        );
        assert_eq!(
            parse("OPTIONS sip:x SIP/2.0\r\nA: b\nc\r\n\r\n").err(),
            Some(ParseError::BadHeaderLine)
        );
        assert_eq!(
            parse("OPTIONS sip:x SIP/2.0\r\n folded-first: x\r\n\r\n").err(),
            Some(ParseError::BadHeaderLine)
        );
    }

    #[test]
    fn udp_body_rules() {
        // No Content-Length: body is the rest of the datagram.
        let m = parse("MESSAGE sip:x@y SIP/2.0\r\n\r\nhello").expect("valid");
        assert_eq!(&m.body()[..], b"hello");
        // Extra octets after Content-Length are dropped from body and raw.
        let m = parse("MESSAGE sip:x@y SIP/2.0\r\nl: 2\r\n\r\nhello").expect("valid");
        assert_eq!(&m.body()[..], b"he");
        assert!(m.raw().ends_with(b"\r\n\r\nhe"));
        // Leading CRLFs are skipped.
        let m = parse("\r\n\r\nOPTIONS sip:x@y SIP/2.0\r\n\r\n").expect("valid");
        assert!(m.raw().starts_with(b"OPTIONS"));
    }

    #[test]
    fn limits_are_enforced() {
        let mut s = String::from("OPTIONS sip:x SIP/2.0\r\n");
        for i in 0..300 {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        s.push_str("\r\n");
        assert_eq!(parse(&s).err(), Some(ParseError::TooManyHeaders));
        let long = format!("OPTIONS sip:x SIP/2.0\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        assert_eq!(parse(&long).err(), Some(ParseError::LineTooLong));
        let limits = Limits {
            max_message: 10,
            ..Limits::default()
        };
        assert_eq!(
            Message::parse_with(
                Bytes::from_static(b"OPTIONS sip:x SIP/2.0\r\n\r\n"),
                &limits
            )
            .err(),
            Some(ParseError::TooLarge)
        );
    }

    #[test]
    fn non_utf8_value_is_lossy_not_fatal() {
        let mut raw = b"OPTIONS sip:x@y SIP/2.0\r\nFrom: \"Jos".to_vec();
        raw.push(0xe9);
        raw.extend_from_slice(b"\" <sip:jose@y>;tag=1\r\n\r\n");
        let m = Message::parse(Bytes::from(raw)).expect("valid");
        let from = m.from().expect("from");
        assert_eq!(from.display.as_deref(), Some("Jos\u{fffd}"));
    }

    #[test]
    fn validate_reports_reasons() {
        let base = "INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n";
        let m = parse(&format!("{base}CSeq: 1 INVITE\r\n\r\n")).expect("parses");
        assert_eq!(m.validate(), Err(ParseError::Missing("Call-ID")));
        assert_eq!(ParseError::Missing("Call-ID").reason(), "Missing Call-ID");
        let m = parse(&format!("{base}Call-ID: x\r\nCSeq: 1 BYE\r\n\r\n")).expect("parses");
        assert_eq!(m.validate(), Err(ParseError::CSeqMethodMismatch));
        let m = parse(&format!("{base}Call-ID: x\r\nCSeq: one INVITE\r\n\r\n")).expect("parses");
        assert_eq!(m.validate().map_err(|e| e.reason()), Err("Bad CSeq"));
        let m = parse(&format!(
            "{base}Call-ID: x\r\nCSeq: 1 INVITE\r\nMax-Forwards: 300\r\n\r\n"
        ))
        .expect("parses");
        assert_eq!(m.validate(), Err(ParseError::Invalid("Max-Forwards")));
        let m = parse(&format!(
            "{base}Call-ID: x\r\nCall-ID: y\r\nCSeq: 1 INVITE\r\n\r\n"
        ))
        .expect("parses");
        assert_eq!(m.validate(), Err(ParseError::Duplicate("Call-ID")));
    }

    #[test]
    fn keepalive_detection() {
        assert!(is_keepalive(b"\r\n\r\n"));
        assert!(is_keepalive(b"\r\n"));
        assert!(!is_keepalive(b""));
        assert!(!is_keepalive(b"\r\nX"));
    }

    #[test]
    fn framer_splits_and_joins_segments() {
        let msg = "OPTIONS sip:x@y SIP/2.0\r\nContent-Length: 3\r\n\r\nabc";
        let mut f = StreamFramer::new(StreamFramer::DEFAULT_MAX_MESSAGE);
        // Two messages and a ping in one segment.
        f.push(format!("{msg}\r\n\r\n{msg}").as_bytes());
        assert_eq!(f.next(), Ok(Some(Frame::Message(Bytes::from(msg)))));
        assert_eq!(f.next(), Ok(Some(Frame::KeepAlive)));
        assert_eq!(f.next(), Ok(Some(Frame::Message(Bytes::from(msg)))));
        assert_eq!(f.next(), Ok(None));
        // One message byte by byte.
        for b in msg.as_bytes() {
            assert_eq!(f.next(), Ok(None));
            f.push(&[*b]);
        }
        assert_eq!(f.next(), Ok(Some(Frame::Message(Bytes::from(msg)))));
        // A pong (single CRLF) is skipped.
        f.push(b"\r\n");
        assert_eq!(f.next(), Ok(None));
        f.push(msg.as_bytes());
        assert_eq!(f.next(), Ok(Some(Frame::Message(Bytes::from(msg)))));
        assert_eq!(f.buffered(), 0);
    }

    /// `1*DIGIT` allows leading zeros: the message frames with the body
    /// the significant digits say, and the next message on the stream is
    /// found right after it.
    #[test]
    fn content_length_with_leading_zeros_frames_and_parses() {
        for cl in ["0005", "00000000000000000005", " 005 "] {
            let msg = format!("OPTIONS sip:x@y SIP/2.0\r\nContent-Length:{cl}\r\n\r\nhello");
            let next = "OPTIONS sip:x@y SIP/2.0\r\nContent-Length: 0000\r\n\r\n";
            let mut f = StreamFramer::new(StreamFramer::DEFAULT_MAX_MESSAGE);
            f.push(format!("{msg}{next}").as_bytes());
            assert_eq!(f.next(), Ok(Some(Frame::Message(Bytes::from(msg.clone())))));
            assert_eq!(f.next(), Ok(Some(Frame::Message(Bytes::from(next)))));
            assert_eq!(f.next(), Ok(None));
            let m = Message::parse(Bytes::from(msg)).expect("leading zeros are valid");
            assert_eq!(m.body(), &b"hello"[..]);
            assert_eq!(m.content_length(), Some(5));
            assert_eq!(
                Message::parse(Bytes::from(next)).map(|m| m.body().len()),
                Ok(0)
            );
        }
        // Significant digits are still capped; a lone run of zeros is 0.
        assert_eq!(parse_content_length(b"000"), Ok(0));
        assert_eq!(parse_content_length(b"0999999999"), Ok(999_999_999));
        assert_eq!(
            parse_content_length(b"1000000000"),
            Err(ParseError::BadContentLength)
        );
        assert_eq!(
            parse_content_length(b"5a"),
            Err(ParseError::BadContentLength)
        );
        assert_eq!(parse_content_length(b""), Err(ParseError::BadContentLength));
    }

    #[test]
    fn framer_errors() {
        let mut f = StreamFramer::new(100);
        f.push(&[b'a'; 150]);
        assert_eq!(f.next(), Err(FrameError::TooLarge));
        assert_eq!(f.next(), Err(FrameError::TooLarge));
        let mut f = StreamFramer::new(100);
        f.push(b"OPTIONS sip:x SIP/2.0\r\nl: 1000\r\n\r\n");
        assert_eq!(f.next(), Err(FrameError::TooLarge));
        let mut f = StreamFramer::new(1000);
        f.push(b"OPTIONS sip:x SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next(), Err(FrameError::MissingContentLength));
        let mut f = StreamFramer::new(1000);
        f.push(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: x\r\n\r\n");
        assert_eq!(f.next(), Err(FrameError::BadContentLength));
        let mut f = StreamFramer::new(1000);
        f.push(b"OPTIONS sip:x SIP/2.0\r\nl: 1\r\nL: 2\r\n\r\nxy");
        assert_eq!(f.next(), Err(FrameError::BadContentLength));
        // Nothing is framed after the framing is lost, whatever follows.
        f.push(b"OPTIONS sip:x SIP/2.0\r\nl: 0\r\n\r\n");
        assert_eq!(f.next(), Err(FrameError::BadContentLength));
        let mut f = StreamFramer::new(1000);
        f.push(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 1234567890\r\n\r\n");
        assert_eq!(f.next(), Err(FrameError::BadContentLength));
        let mut f = StreamFramer::new(1000);
        f.push(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: +5\r\n\r\nabcde");
        assert_eq!(f.next(), Err(FrameError::BadContentLength));
        // Agreeing duplicates still frame; parse answers 400 for them.
        let dup = "OPTIONS sip:x SIP/2.0\r\nl: 1\r\nContent-Length: 01\r\n\r\nx";
        let mut f = StreamFramer::new(1000);
        f.push(dup.as_bytes());
        assert_eq!(f.next(), Ok(Some(Frame::Message(Bytes::from(dup)))));
        assert_eq!(
            Message::parse(Bytes::from(dup)).err(),
            Some(ParseError::Duplicate("Content-Length"))
        );
        // A broken header line is framed (and left for parse to answer 400).
        let bad = "OPTIONS sip:x SIP/2.0\r\nno colon here\r\nl: 2\r\n\r\nab";
        let mut f = StreamFramer::new(1000);
        f.push(bad.as_bytes());
        assert_eq!(f.next(), Ok(Some(Frame::Message(Bytes::from(bad)))));
        assert_eq!(
            Message::parse(Bytes::from(bad)).err(),
            Some(ParseError::BadHeaderLine)
        );
        // A folded Content-Length still frames.
        let folded = "OPTIONS sip:x SIP/2.0\r\nContent-Length:\r\n 2\r\n\r\nab";
        let mut f = StreamFramer::new(1000);
        f.push(folded.as_bytes());
        assert_eq!(f.next(), Ok(Some(Frame::Message(Bytes::from(folded)))));
        assert_eq!(
            Message::parse(Bytes::from(folded)).map(|m| m.body().len()),
            Ok(2)
        );
    }

    #[test]
    fn session_reason_auth_and_identity_accessors() {
        let raw = "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 2 BYE\r\n\
x: 1800;refresher=uas\r\nMin-SE: 90\r\n\
Reason: Q.850;cause=16;text=\"Normal\", SIP;cause=200\r\n\
P-Asserted-Identity: \"Cons\" <sip:+5255@carrier>, <tel:+5255>\r\n\
Authorization: Digest username=\"op7\", realm=\"gw\", nonce=\"n\", uri=\"sip:a@b\", response=\"r\"\r\n\
Proxy-Authorization: Digest username=\"op8\"\r\n\
Content-Length: 0\r\n\r\n";
        let m = parse(raw).expect("valid");
        let se = m.session_expires().expect("se").expect("present");
        assert_eq!((se.delta, se.refresher.as_deref()), (1800, Some("uas")));
        assert_eq!(m.min_se(), Ok(Some(90)));
        let reasons = m.reason_headers().expect("reasons");
        assert_eq!(reasons.len(), 2);
        assert_eq!(reasons[0].cause, Some(16));
        assert_eq!(reasons[1].protocol, "SIP");
        let pai = m.p_asserted_identities().expect("pai");
        assert_eq!(pai.len(), 2);
        assert!(matches!(pai[1].uri, Uri::Tel(_)));
        let auth = m.authorization().expect("auth").expect("present");
        assert_eq!(auth.get("username"), Some("op7"));
        let pauth = m.proxy_authorization().expect("pauth").expect("present");
        assert_eq!(pauth.get("username"), Some("op8"));
        assert_eq!(m.www_authenticate(), Ok(vec![]));
        assert_eq!(m.content_length(), Some(0));
        let bare = parse("OPTIONS sip:x SIP/2.0\r\n\r\n").expect("valid");
        assert_eq!(bare.session_expires(), Ok(None));
        assert_eq!(bare.min_se(), Ok(None));
        assert_eq!(bare.authorization(), Ok(None));
        assert_eq!(bare.content_length(), None);
        assert_eq!(bare.reason_headers(), Ok(vec![]));
    }

    #[test]
    fn several_challenges() {
        let raw = "SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"gw\", nonce=\"a\", algorithm=SHA-256\r\n\
WWW-Authenticate: Digest realm=\"gw\", nonce=\"a\", algorithm=MD5\r\n\
Proxy-Authenticate: Digest realm=\"p\", nonce=\"b\", stale=TRUE\r\n\r\n";
        let m = parse(raw).expect("valid");
        let ch = m.www_authenticate().expect("challenges");
        assert_eq!(ch.len(), 2);
        assert_eq!(ch[0].get("algorithm"), Some("SHA-256"));
        assert_eq!(ch[1].get("algorithm"), Some("MD5"));
        let p = m.proxy_authenticate().expect("challenges");
        assert_eq!(p[0].get("stale"), Some("TRUE"));
        let bad = parse("SIP/2.0 401 x\r\nWWW-Authenticate: Digest realm\r\n\r\n").expect("parses");
        assert_eq!(
            bad.www_authenticate(),
            Err(HeaderError::Invalid("WWW-Authenticate"))
        );
    }

    #[test]
    fn values_never_reach_into_the_line_end() {
        let m = parse("OPTIONS sip:x SIP/2.0\r\nX-A:\x0bv\r\nX-B: \t w \t\r\n\r\n").expect("valid");
        assert_eq!(m.header("X-A"), Some("\x0bv"));
        assert_eq!(m.header("X-B"), Some("w"));
    }

    #[test]
    fn many_folded_lines_are_joined_and_capped() {
        let mut raw = String::from("OPTIONS sip:x SIP/2.0\r\nX-Long: a");
        raw.push_str(&"\r\n b".repeat(5000));
        raw.push_str("\r\nl: 0\r\n\r\n");
        let m = parse(&raw).expect("valid");
        let v = m.header("x-long").expect("present");
        assert_eq!(v.len(), 1 + 2 * 5000);
        assert!(v.starts_with("a b b"));
        assert_eq!(m.content_length(), Some(0));
        let mut raw = String::from("OPTIONS sip:x SIP/2.0\r\nX-Long: a");
        raw.push_str(&"\r\n bbbbbbb".repeat(3000));
        raw.push_str("\r\n\r\n");
        assert_eq!(parse(&raw).err(), Some(ParseError::LineTooLong));
    }

    #[test]
    fn status_codes_for_errors() {
        assert_eq!(ParseError::BadVersion.status_code(), 505);
        assert_eq!(ParseError::TooLarge.status_code(), 513);
        assert_eq!(ParseError::Missing("Call-ID").status_code(), 400);
        let head = Message::parse_head(Bytes::from_static(
            b"OPTIONS sip:x SIP/3.0\r\nCall-ID: c\r\nl: 99\r\n\r\nabc",
        ))
        .expect("lenient");
        assert_eq!(head.call_id(), Ok("c"));
        assert!(head.body().is_empty());
        // The header block itself must still be sound.
        assert!(
            Message::parse_head(Bytes::from_static(b"OPTIONS sip:x SIP/2.0\r\nbad\r\n\r\n"))
                .is_err()
        );
    }

    #[test]
    fn expires_contacts_and_max_forwards_edge_cases() {
        let base = "REGISTER sip:r SIP/2.0\r\n";
        let m = parse(&format!("{base}Expires: abc\r\n\r\n")).expect("parses");
        assert_eq!(m.expires(), Err(HeaderError::Invalid("Expires")));
        let m = parse(&format!("{base}Expires: 99999999999\r\n\r\n")).expect("parses");
        assert_eq!(m.expires(), Ok(Some(u32::MAX)));
        let m = parse(&format!("{base}Expires: 1\r\nExpires: 2\r\n\r\n")).expect("parses");
        assert_eq!(m.expires(), Err(HeaderError::Duplicate("Expires")));
        let m = parse(&format!("{base}Contact: *, <sip:a@b>\r\n\r\n")).expect("parses");
        assert_eq!(m.contacts(), Err(HeaderError::Invalid("Contact")));
        let m = parse(&format!(
            "{base}Contact: <sip:a@b>\r\nm: sip:c@d;expires=5\r\n\r\n"
        ))
        .expect("parses");
        let Ok(Contacts::List(c)) = m.contacts() else {
            panic!("list")
        };
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].params.value("expires"), Some("5"));
        assert_eq!(m.header_count("contact"), 2);
        let m =
            parse(&format!("{base}Max-Forwards: 1\r\nMax-Forwards: 2\r\n\r\n")).expect("parses");
        assert_eq!(
            m.max_forwards(),
            Err(HeaderError::Duplicate("Max-Forwards"))
        );
        let m = parse(&format!("{base}Max-Forwards: -1\r\n\r\n")).expect("parses");
        assert_eq!(m.max_forwards(), Err(HeaderError::Invalid("Max-Forwards")));
        let m = parse(base.trim_end()).err();
        assert_eq!(m, Some(ParseError::NoEndOfHeaders));
    }

    #[test]
    fn response_has_no_request_parts_and_method_round_trips() {
        let m = parse("SIP/2.0 404 Not Found\r\n\r\n").expect("valid");
        assert_eq!(m.method(), None);
        assert_eq!(m.request_uri(), None);
        assert_eq!(m.request_uri_str(), None);
        assert_eq!(m.raw().as_ref(), b"SIP/2.0 404 Not Found\r\n\r\n");
        assert_eq!(m.vias().err(), Some(HeaderError::Missing("Via")));
        assert_eq!(m.validate(), Err(ParseError::Missing("Via")));
        for name in [
            "INVITE",
            "ACK",
            "BYE",
            "CANCEL",
            "OPTIONS",
            "REGISTER",
            "INFO",
            "UPDATE",
            "PRACK",
            "SUBSCRIBE",
            "NOTIFY",
            "REFER",
            "MESSAGE",
            "PUBLISH",
            "X-OWN",
        ] {
            let m: Method = name.parse().expect("token");
            assert_eq!(m.to_string(), name);
        }
        assert_eq!(
            "invite".parse::<Method>(),
            Ok(Method::Extension("invite".into()))
        );
        assert_eq!("IN VITE".parse::<Method>(), Err(ParseError::BadMethod));
        assert_eq!("".parse::<Method>(), Err(ParseError::BadMethod));
    }
}
