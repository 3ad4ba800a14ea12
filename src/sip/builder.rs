//! Writing SIP messages: responses built from the request they answer, new
//! requests, and the random identifiers (tags, branches, Call-IDs).
//!
//! Builders always write Content-Length themselves (a caller-supplied one is
//! dropped) and end the head with CRLFCRLF, and they replace CR/LF inside any
//! supplied text with spaces, so nothing echoed from the network can inject a
//! header. They do not decide which headers a response needs beyond the
//! RFC 3261 §8.2.6.2 copies; that is the caller's business.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::sip::header::{NameAddr, Via};
use crate::sip::message::{Message, Method};

fn is_content_length(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l")
}

/// Appends `s` with CR and LF turned into spaces.
fn put_clean(out: &mut BytesMut, s: &str) {
    if s.bytes().any(|b| b == b'\r' || b == b'\n') {
        for b in s.bytes() {
            out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
    } else {
        out.put_slice(s.as_bytes());
    }
}

fn write_head(
    out: &mut BytesMut,
    headers: &[(String, String)],
    body: Option<&(String, Bytes)>,
) -> usize {
    for (n, v) in headers {
        put_clean(out, n);
        out.put_slice(b": ");
        put_clean(out, v);
        out.put_slice(b"\r\n");
    }
    let len = body.map_or(0, |(_, b)| b.len());
    if let Some((ct, _)) = body
        && !ct.is_empty()
    {
        out.put_slice(b"Content-Type: ");
        put_clean(out, ct);
        out.put_slice(b"\r\n");
    }
    let mut cl = String::with_capacity(24);
    let _ = write!(cl, "Content-Length: {len}\r\n\r\n");
    out.put_slice(cl.as_bytes());
    len
}

fn head_capacity(headers: &[(String, String)], body: Option<&(String, Bytes)>) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 4)
        .sum::<usize>()
        + body.map_or(0, |(ct, b)| ct.len() + 16 + b.len())
        + 96
}

/// `header` and `body`, the same on both builders (each has `headers` and
/// `body` fields).
macro_rules! header_and_body {
    () => {
        /// Appends a header; Content-Length is ignored (it is always computed).
        pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
            if !is_content_length(name) {
                self.headers.push((name.to_owned(), value.into()));
            }
            self
        }

        /// Sets the body and its Content-Type (an empty type writes none).
        pub fn body(mut self, content_type: &str, body: Bytes) -> Self {
            self.body = Some((content_type.to_owned(), body));
            self
        }
    };
}

/// A response being built; see [`response_to`].
#[derive(Debug, Clone)]
pub struct ResponseBuilder {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Option<(String, Bytes)>,
}

/// Starts a response to `req`: copies every Via (in order), From, To,
/// Call-ID and CSeq, and Record-Route for 101–299 (RFC 3261 §12.1.1: the
/// UAC builds its route set from those), as received.
pub fn response_to(req: &Message, status: u16, reason: &str) -> ResponseBuilder {
    let mut headers = Vec::with_capacity(12);
    let rr = (101..300).contains(&status);
    for (name, value) in req.headers() {
        let copy = matches!(name, "Via" | "From" | "To" | "Call-ID" | "CSeq")
            || (rr && name == "Record-Route");
        if copy {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    ResponseBuilder {
        status,
        reason: reason.to_owned(),
        headers,
        body: None,
    }
}

impl ResponseBuilder {
    /// Adds `;tag=` to To unless it already has one (a retransmitted or
    /// in-dialog request keeps its tag).
    pub fn to_tag(mut self, tag: &str) -> Self {
        if let Some((_, to)) = self.headers.iter_mut().find(|(n, _)| n == "To") {
            let has_tag = match NameAddr::parse(to) {
                Some(na) => na.tag().is_some(),
                None => false,
            };
            if !has_tag {
                to.push_str(";tag=");
                to.push_str(tag);
            }
        }
        self
    }

    header_and_body!();

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn build(self) -> Bytes {
        let mut out = BytesMut::with_capacity(
            head_capacity(&self.headers, self.body.as_ref()) + self.reason.len(),
        );
        let mut sl = String::with_capacity(16);
        let _ = write!(sl, "SIP/2.0 {} ", self.status);
        out.put_slice(sl.as_bytes());
        put_clean(&mut out, &self.reason);
        out.put_slice(b"\r\n");
        write_head(&mut out, &self.headers, self.body.as_ref());
        if let Some((_, b)) = &self.body {
            out.put_slice(b);
        }
        out.freeze()
    }
}

/// A new request. Max-Forwards: 70 is added unless set.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    method: Method,
    uri: String,
    headers: Vec<(String, String)>,
    body: Option<(String, Bytes)>,
}

impl RequestBuilder {
    pub fn new(method: Method, uri: &str) -> Self {
        RequestBuilder {
            method,
            uri: uri.to_owned(),
            headers: Vec::with_capacity(12),
            body: None,
        }
    }

    header_and_body!();

    pub fn build(mut self) -> Bytes {
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("max-forwards"))
        {
            self.headers.push(("Max-Forwards".into(), "70".into()));
        }
        let mut out = BytesMut::with_capacity(
            head_capacity(&self.headers, self.body.as_ref()) + self.uri.len(),
        );
        put_clean(&mut out, self.method.as_str());
        out.put_u8(b' ');
        // A URI has no spaces; any would break the request line.
        for b in self.uri.bytes() {
            out.put_u8(if b.is_ascii_whitespace() { b'+' } else { b });
        }
        out.put_slice(b" SIP/2.0\r\n");
        write_head(&mut out, &self.headers, self.body.as_ref());
        if let Some((_, b)) = &self.body {
            out.put_slice(b);
        }
        out.freeze()
    }
}

fn random_token(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// A From/To tag: 16 random alphanumerics (~95 bits).
pub fn new_tag() -> String {
    random_token(16)
}

/// A branch with the RFC 3261 magic cookie and 22 random alphanumerics.
pub fn new_branch() -> String {
    let mut b = String::with_capacity(29);
    b.push_str("z9hG4bK");
    b.push_str(&random_token(22));
    b
}

/// `random@host`; an IPv6 host is fine as is (Call-ID words allow `[]:`).
pub fn new_call_id(host: &str) -> String {
    format!("{}@{host}", random_token(24))
}

impl ResponseBuilder {
    /// Records where the request really came from in the top Via
    /// (RFC 3261 §18.2.1 `received`, RFC 3581 `rport`), so that a reply can
    /// be routed back through NAT and the peer can see its public address.
    pub fn via_received(mut self, from: std::net::SocketAddr) -> Self {
        if let Some((_, via)) = self.headers.iter_mut().find(|(n, _)| n == "Via") {
            // Only the first entry of a comma-joined Via line is ours to mark.
            let first_end = super::header::split_list(via)
                .next()
                .map(str::len)
                .unwrap_or(via.len());
            let (first, rest) = via.split_at(first_end.min(via.len()));
            let mut first = first.to_owned();
            if let Some(parsed) = Via::parse(&first) {
                let ip = from.ip().to_string();
                let mut params = String::new();
                for (k, v) in parsed.params.iter() {
                    if k.eq_ignore_ascii_case("received") {
                        continue;
                    }
                    if k.eq_ignore_ascii_case("rport") {
                        let _ = write!(params, ";rport={}", from.port());
                        continue;
                    }
                    match v {
                        Some(v) => {
                            let _ = write!(params, ";{k}={v}");
                        }
                        None => {
                            let _ = write!(params, ";{k}");
                        }
                    }
                }
                let cut = first.find(';').unwrap_or(first.len());
                first.truncate(cut);
                let _ = write!(first, ";received={ip}");
                first.push_str(&params);
                *via = format!("{}{}", first.trim_end(), rest);
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Message;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa1\r\n\
v: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKa0\r\n\
Max-Forwards: 69\r\n\
f: \"Alice\" <sip:alice@example.com>;tag=abc\r\n\
t: <sip:bob@example.com>\r\n\
i: call-1@10.0.0.1\r\n\
CSeq: 7 INVITE\r\n\
Record-Route: <sip:proxy.example.com;lr>\r\n\
Contact: <sip:alice@10.0.0.1>\r\n\
Content-Length: 0\r\n\r\n";

    fn req() -> Message {
        Message::parse(Bytes::from_static(INVITE.as_bytes())).expect("valid")
    }

    #[test]
    fn response_copies_mandatory_headers() {
        let bytes = response_to(&req(), 180, "Ringing").to_tag("xyz").build();
        let r = Message::parse(bytes.clone()).expect("own output parses");
        assert_eq!(r.status(), Some(180));
        assert_eq!(r.reason(), Some("Ringing"));
        let vias = r.vias().expect("vias");
        assert_eq!(
            vias.iter()
                .map(|v| v.branch.as_deref().unwrap_or(""))
                .collect::<Vec<_>>(),
            vec!["z9hG4bKp1", "z9hG4bKa1", "z9hG4bKa0"]
        );
        assert_eq!(r.from().expect("from").tag(), Some("abc"));
        assert_eq!(r.to().expect("to").tag(), Some("xyz"));
        assert_eq!(r.call_id(), Ok("call-1@10.0.0.1"));
        assert_eq!(r.cseq().expect("cseq").seq, 7);
        assert_eq!(r.record_routes().expect("rr").len(), 1);
        assert_eq!(r.header("Contact"), None);
        assert_eq!(r.header("Content-Length"), Some("0"));
        assert!(bytes.ends_with(b"\r\n\r\n"));
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn record_route_only_for_101_to_299() {
        for (status, expect) in [(100, 0), (183, 1), (200, 1), (486, 0)] {
            let r = Message::parse(response_to(&req(), status, "x").build()).expect("parses");
            assert_eq!(r.header_count("Record-Route"), expect, "status {status}");
        }
    }

    #[test]
    fn to_tag_kept_when_present() {
        let raw = INVITE.replace(
            "t: <sip:bob@example.com>",
            "t: <sip:bob@example.com>;tag=old",
        );
        let m = Message::parse(Bytes::from(raw)).expect("valid");
        let r = Message::parse(response_to(&m, 200, "OK").to_tag("new").build()).expect("parses");
        assert_eq!(r.to().expect("to").tag(), Some("old"));
    }

    #[test]
    fn body_and_content_length_always_written() {
        let sdp = Bytes::from_static(b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n");
        let bytes = response_to(&req(), 200, "OK")
            .header("Content-Length", "999")
            .header("Contact", "<sip:gw@127.0.0.1>")
            .body("application/sdp", sdp.clone())
            .build();
        let r = Message::parse(bytes).expect("parses");
        assert_eq!(r.header_count("Content-Length"), 1);
        assert_eq!(r.header("l"), Some(sdp.len().to_string().as_str()));
        assert_eq!(r.content_type(), Some("application/sdp"));
        assert_eq!(r.body(), &sdp);
    }

    #[test]
    fn injected_crlf_is_neutralised() {
        let bytes = response_to(&req(), 400, "Bad\r\nX-Evil: 1")
            .header("Warning", "399 gw \"a\r\nX-Evil: 2\"")
            .build();
        let r = Message::parse(bytes).expect("parses");
        assert_eq!(r.header("X-Evil"), None);
        assert_eq!(r.reason(), Some("Bad  X-Evil: 1"));
    }

    #[test]
    fn request_builder_round_trip() {
        let branch = new_branch();
        let bytes = RequestBuilder::new(Method::Bye, "sip:alice@10.0.0.1:5060")
            .header(
                "Via",
                format!("SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport"),
            )
            .header("From", "<sip:gw@127.0.0.1>;tag=t1")
            .header("To", "<sip:alice@example.com>;tag=t2")
            .header("Call-ID", new_call_id("127.0.0.1"))
            .header("CSeq", "2 BYE")
            .build();
        let m = Message::parse(bytes).expect("parses");
        assert_eq!(m.method(), Some(&Method::Bye));
        assert_eq!(m.request_uri_str(), Some("sip:alice@10.0.0.1:5060"));
        assert_eq!(m.max_forwards(), Ok(Some(70)));
        assert_eq!(m.top_via().expect("via").branch, Some(branch));
        assert_eq!(m.header("Content-Length"), Some("0"));
        assert_eq!(m.validate(), Ok(()));
    }

    #[test]
    fn identifiers_look_right() {
        let b = new_branch();
        assert!(b.starts_with("z9hG4bK") && b.len() == 29);
        assert_ne!(new_tag(), new_tag());
        assert_eq!(new_tag().len(), 16);
        let c = new_call_id("[::1]");
        assert!(c.ends_with("@[::1]"));
        assert!(crate::sip::header::is_valid_call_id(&c));
    }
}
