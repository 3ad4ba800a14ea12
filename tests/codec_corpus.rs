//! A corpus of realistic trunk and phone traffic run three ways:
//! - every message parses and validates;
//! - a differential test against ezk-sip-types (dev-dependency) as an
//!   oracle: method, Request-URI, status, Call-ID, CSeq, tags, Via branch;
//! - a deterministic mutation test: seeded byte flips, insertions,
//!   deletions and truncations of every message, asserting that parsing,
//!   every typed accessor and the TCP framer never panic.

use bytes::Bytes;
use conmutador::sip::builder::response_to;
use conmutador::sip::message::{Frame, Message, StreamFramer};
use conmutador::sip::uri::Uri;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SDP_CARRIER: &str = "v=0
o=- 1713370000 1713370000 IN IP4 200.57.7.10
s=SBC
c=IN IP4 200.57.7.10
t=0 0
m=audio 20000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
";

const SDP_ANSWER: &str = "v=0
o=conmutador 1 1 IN IP4 10.20.30.40
s=-
c=IN IP4 10.20.30.40
t=0 0
m=audio 40000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=ptime:20
";

/// (head without Content-Length, body). Content-Length is appended.
const CORPUS: &[(&str, &str)] = &[
    (
        "INVITE sip:5553311234@10.20.30.40:5060 SIP/2.0
Via: SIP/2.0/UDP 200.57.7.195:5060;branch=z9hG4bK-524287-1---a1b2c3d4e5f6;rport
Via: SIP/2.0/UDP 200.57.7.10:5060;received=200.57.7.10;branch=z9hG4bKac1234567
Max-Forwards: 68
Record-Route: <sip:200.57.7.195;lr;ftag=as0a1b2c3d>
From: \"CONSULADO MEX\" <sip:+525512345678@200.57.7.195;user=phone>;tag=as0a1b2c3d
To: <sip:5553311234@10.20.30.40>
Call-ID: 4f1c2d3e5a6b7c8d9e0f@200.57.7.10
CSeq: 102 INVITE
Contact: <sip:+525512345678@200.57.7.10:5060;transport=udp>
P-Asserted-Identity: \"CONSULADO MEX\" <sip:+525512345678@200.57.7.195;user=phone>
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE, PRACK
Supported: replaces, timer, 100rel
Session-Expires: 1800;refresher=uac
Min-SE: 90
User-Agent: Carrier SBC 4.2
Content-Type: application/sdp
",
        SDP_CARRIER,
    ),
    (
        "SIP/2.0 200 OK
Via: SIP/2.0/UDP 200.57.7.195:5060;branch=z9hG4bK-524287-1---a1b2c3d4e5f6;rport=5060;received=200.57.7.195
Via: SIP/2.0/UDP 200.57.7.10:5060;received=200.57.7.10;branch=z9hG4bKac1234567
Record-Route: <sip:200.57.7.195;lr;ftag=as0a1b2c3d>
From: \"CONSULADO MEX\" <sip:+525512345678@200.57.7.195;user=phone>;tag=as0a1b2c3d
To: <sip:5553311234@10.20.30.40>;tag=gw8f3k2j1h
Call-ID: 4f1c2d3e5a6b7c8d9e0f@200.57.7.10
CSeq: 102 INVITE
Contact: <sip:5553311234@10.20.30.40:5060>
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, INFO, UPDATE
Supported: timer
Session-Expires: 1800;refresher=uac
Content-Type: application/sdp
",
        SDP_ANSWER,
    ),
    (
        "SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 200.57.7.195:5060;branch=z9hG4bK-524287-1---a1b2c3d4e5f6, SIP/2.0/UDP 200.57.7.10:5060;branch=z9hG4bKac1234567
From: <sip:+525512345678@200.57.7.195;user=phone>;tag=as0a1b2c3d
To: <sip:5553311234@10.20.30.40>;tag=gw8f3k2j1h
Call-ID: 4f1c2d3e5a6b7c8d9e0f@200.57.7.10
CSeq: 102 INVITE
Contact: <sip:5553311234@10.20.30.40:5060>
",
        "",
    ),
    (
        "REGISTER sip:gw.consulado.example.mx SIP/2.0
Via: SIP/2.0/UDP 192.168.10.21:5062;branch=z9hG4bK1419815417;rport
From: \"Operador 7\" <sip:op7@gw.consulado.example.mx>;tag=1043893766
To: \"Operador 7\" <sip:op7@gw.consulado.example.mx>
Call-ID: 1785430203@192.168.10.21
CSeq: 21 REGISTER
Contact: <sip:op7@192.168.10.21:5062;line=9d5e1a>;reg-id=1;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000b82c81e16>\"
Authorization: Digest username=\"op7\", realm=\"gw.consulado.example.mx\", nonce=\"8f1d6c0a9b2e4f3a\", uri=\"sip:gw.consulado.example.mx\", response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, cnonce=\"0a4f113b\", qop=auth, nc=00000001
Max-Forwards: 70
User-Agent: Grandstream GXP1625 1.0.11.23
Supported: path
Expires: 3600
Allow: INVITE, ACK, OPTIONS, CANCEL, BYE, SUBSCRIBE, NOTIFY, INFO, REFER, UPDATE, MESSAGE
",
        "",
    ),
    (
        "SIP/2.0 401 Unauthorized
Via: SIP/2.0/UDP 192.168.10.21:5062;branch=z9hG4bK1419815417;rport=5062;received=192.168.10.21
From: \"Operador 7\" <sip:op7@gw.consulado.example.mx>;tag=1043893766
To: \"Operador 7\" <sip:op7@gw.consulado.example.mx>;tag=z9reg77
Call-ID: 1785430203@192.168.10.21
CSeq: 21 REGISTER
WWW-Authenticate: Digest realm=\"gw.consulado.example.mx\", nonce=\"8f1d6c0a9b2e4f3a\", algorithm=SHA-256, qop=\"auth\"
WWW-Authenticate: Digest realm=\"gw.consulado.example.mx\", nonce=\"8f1d6c0a9b2e4f3a\", algorithm=MD5, qop=\"auth\"
",
        "",
    ),
    (
        "INVITE sip:+525553311234@[2001:db8:10::40]:5060;user=phone SIP/2.0
v: SIP/2.0/TCP [2001:db8:20::7]:5060;branch=z9hG4bKv6a1;rport
f: \"Sede \\\"Norte\\\"\" <sip:1001@[2001:db8:20::7]>;tag=v6from1
t: <sip:+525553311234@[2001:db8:10::40]>
i: v6-call-1@2001:db8:20::7
CSeq: 1 INVITE
m: <sip:1001@[2001:db8:20::7]:5060;transport=tcp>
Max-Forwards: 70
k: timer
c: application/sdp
",
        SDP_CARRIER,
    ),
    (
        "BYE sip:1001@[2001:db8:20::7]:5060;transport=tcp SIP/2.0
v: SIP/2.0/TCP [2001:db8:10::40]:5060;branch=z9hG4bKv6bye
f: <sip:+525553311234@[2001:db8:10::40]>;tag=gwv6tag
t: \"Sede Norte\" <sip:1001@[2001:db8:20::7]>;tag=v6from1
i: v6-call-1@2001:db8:20::7
CSeq: 2 BYE
Max-Forwards: 70
",
        "",
    ),
    (
        "ACK sip:5553311234@10.20.30.40:5060 SIP/2.0
Via: SIP/2.0/UDP 200.57.7.195:5060;branch=z9hG4bK-524287-1---ack9f8e7d;rport
Route: <sip:200.57.7.195;lr;ftag=as0a1b2c3d>
Max-Forwards: 70
From: <sip:+525512345678@200.57.7.195;user=phone>;tag=as0a1b2c3d
To: <sip:5553311234@10.20.30.40>;tag=gw8f3k2j1h
Call-ID: 4f1c2d3e5a6b7c8d9e0f@200.57.7.10
CSeq: 102 ACK
",
        "",
    ),
    (
        "BYE sip:+525512345678@200.57.7.10:5060;transport=udp SIP/2.0
Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bKgwbye001;rport
Route: <sip:200.57.7.195;lr;ftag=as0a1b2c3d>
Max-Forwards: 70
From: <sip:5553311234@10.20.30.40>;tag=gw8f3k2j1h
To: <sip:+525512345678@200.57.7.195;user=phone>;tag=as0a1b2c3d
Call-ID: 4f1c2d3e5a6b7c8d9e0f@200.57.7.10
CSeq: 1 BYE
Reason: Q.850;cause=16;text=\"Normal call clearing\"
",
        "",
    ),
    (
        "CANCEL sip:5553311234@10.20.30.40:5060 SIP/2.0
Via: SIP/2.0/UDP 200.57.7.195:5060;branch=z9hG4bK-524287-1---a1b2c3d4e5f6;rport
Max-Forwards: 70
From: \"CONSULADO MEX\" <sip:+525512345678@200.57.7.195;user=phone>;tag=as0a1b2c3d
To: <sip:5553311234@10.20.30.40>
Call-ID: 4f1c2d3e5a6b7c8d9e0f@200.57.7.10
CSeq: 102 CANCEL
",
        "",
    ),
    (
        "SIP/2.0 487 Request Terminated
Via: SIP/2.0/UDP 200.57.7.195:5060;branch=z9hG4bK-524287-1---a1b2c3d4e5f6;rport=5060
From: \"CONSULADO MEX\" <sip:+525512345678@200.57.7.195;user=phone>;tag=as0a1b2c3d
To: <sip:5553311234@10.20.30.40>;tag=gw8f3k2j1h
Call-ID: 4f1c2d3e5a6b7c8d9e0f@200.57.7.10
CSeq: 102 INVITE
",
        "",
    ),
    (
        "OPTIONS sip:10.20.30.40:5060 SIP/2.0
Via: SIP/2.0/UDP 200.57.7.195:5060;branch=z9hG4bK-ping-77812
Max-Forwards: 70
From: <sip:ping@200.57.7.195>;tag=ping77812
To: <sip:10.20.30.40:5060>
Call-ID: ping-77812@200.57.7.195
CSeq: 77812 OPTIONS
Accept: application/sdp
",
        "",
    ),
    (
        "INFO sip:5553311234@10.20.30.40:5060 SIP/2.0
Via: SIP/2.0/UDP 200.57.7.195:5060;branch=z9hG4bKinfo5;rport
Max-Forwards: 70
From: <sip:+525512345678@200.57.7.195;user=phone>;tag=as0a1b2c3d
To: <sip:5553311234@10.20.30.40>;tag=gw8f3k2j1h
Call-ID: 4f1c2d3e5a6b7c8d9e0f@200.57.7.10
CSeq: 103 INFO
Content-Type: application/dtmf-relay
",
        "Signal=5\r\nDuration=160\r\n",
    ),
    (
        "SIP/2.0 100 Trying
Via: SIP/2.0/UDP 200.57.7.195:5060;branch=z9hG4bK-524287-1---a1b2c3d4e5f6;rport=5060;received=200.57.7.195
From: <sip:+525512345678@200.57.7.195;user=phone>;tag=as0a1b2c3d
To: <sip:5553311234@10.20.30.40>
Call-ID: 4f1c2d3e5a6b7c8d9e0f@200.57.7.10
CSeq: 102 INVITE
",
        "",
    ),
    (
        "UPDATE sip:5553311234@10.20.30.40:5060 SIP/2.0
Via: SIP/2.0/TCP 200.57.7.195:5060;branch=z9hG4bKupd1
Max-Forwards: 70
From: <sip:+525512345678@200.57.7.195;user=phone>;tag=as0a1b2c3d
To: <sip:5553311234@10.20.30.40>;tag=gw8f3k2j1h
Call-ID: 4f1c2d3e5a6b7c8d9e0f@200.57.7.10
CSeq: 104 UPDATE
Session-Expires: 1800;refresher=uac
Supported: timer
",
        "",
    ),
];

fn corpus() -> Vec<Bytes> {
    CORPUS
        .iter()
        .map(|(head, body)| {
            let body = body.replace("\r\n", "\n").replace('\n', "\r\n");
            let head = head.replace('\n', "\r\n");
            Bytes::from(format!(
                "{head}Content-Length: {}\r\n\r\n{body}",
                body.len()
            ))
        })
        .collect()
}

#[test]
fn corpus_parses_and_validates() {
    for raw in corpus() {
        let m = Message::parse(raw.clone())
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&raw)));
        m.validate()
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&raw)));
        assert_eq!(m.raw(), &raw);
        // A response built from each request must parse and validate too.
        if m.is_request() {
            let r = Message::parse(response_to(&m, 200, "OK").to_tag("t").build())
                .expect("own response parses");
            r.validate().expect("own response validates");
            assert_eq!(r.call_id(), m.call_id());
        }
    }
}

/// What both parsers must agree on.
#[derive(Debug, PartialEq)]
struct Facts {
    method: Option<String>,
    ruri_user: Option<String>,
    ruri_host: Option<String>,
    status: Option<u16>,
    call_id: String,
    cseq: (u32, String),
    from_tag: Option<String>,
    to_tag: Option<String>,
    via_branches: Vec<Option<String>>,
}

fn ours(raw: &Bytes) -> Facts {
    let m = Message::parse(raw.clone()).expect("ours parses");
    let ruri = m.request_uri().and_then(Uri::as_sip);
    let cseq = m.cseq().expect("cseq");
    Facts {
        method: m.method().map(|x| x.to_string()),
        ruri_user: ruri.and_then(|u| u.user.clone()),
        ruri_host: ruri.map(|u| u.host.to_string()),
        status: m.status(),
        call_id: m.call_id().expect("call-id").to_owned(),
        cseq: (cseq.seq, cseq.method.to_string()),
        from_tag: m.from().expect("from").tag().map(str::to_owned),
        to_tag: m.to().expect("to").tag().map(str::to_owned),
        via_branches: m
            .vias()
            .expect("vias")
            .into_iter()
            .map(|v| v.branch)
            .collect(),
    }
}

/// ezk-sip-types' view, or why it could not form one.
fn oracle(raw: &Bytes) -> Result<Facts, String> {
    use ezk_sip_types::Headers;
    use ezk_sip_types::Name;
    use ezk_sip_types::header::typed::{CSeq, CallID, FromTo, Via};
    use ezk_sip_types::msg::{Line, MessageLine, PullParser};
    use ezk_sip_types::parse::Parse;
    use ezk_sip_types::uri::SipUriUserPart;

    let mut lines = PullParser::new(raw, 0);
    let first = lines.next().expect("line").expect("complete");
    let first = std::str::from_utf8(first).expect("utf8");
    let (_, start) = MessageLine::parse(raw)(first).expect("ezk start line");
    let mut headers = Headers::new();
    for line in lines {
        let line = std::str::from_utf8(line.expect("complete")).expect("utf8");
        let (_, l) = Line::parse(raw, line).expect("ezk header line");
        headers.insert(l.name, l.value);
    }
    let (method, ruri_user, ruri_host, status) = match &start {
        MessageLine::Request(r) => {
            let user = match &r.uri.user_part {
                SipUriUserPart::Empty => None,
                SipUriUserPart::User(u) => Some(u.to_string()),
                SipUriUserPart::UserPw(up) => Some(up.user.to_string()),
            };
            let host = match &r.uri.host_port.host {
                ezk_sip_types::host::Host::IP6(a) => format!("[{a}]"),
                h => h.to_string(),
            };
            (Some(r.method.to_string()), user, Some(host), None)
        }
        MessageLine::Response(s) => (None, None, None, Some(s.code.into_u16())),
    };
    let call_id: CallID = headers.get_named().map_err(|e| format!("{e:?}"))?;
    let cseq: CSeq = headers.get_named().map_err(|e| format!("{e:?}"))?;
    let from: FromTo = headers.get(Name::FROM).map_err(|e| format!("{e:?}"))?;
    let to: FromTo = headers.get(Name::TO).map_err(|e| format!("{e:?}"))?;
    let vias: Vec<Via> = headers.get_named().map_err(|e| format!("{e:?}"))?;
    Ok(Facts {
        method,
        ruri_user,
        ruri_host,
        status,
        call_id: call_id.0.to_string(),
        cseq: (cseq.cseq, cseq.method.to_string()),
        from_tag: from.tag.map(|t| t.to_string()),
        to_tag: to.tag.map(|t| t.to_string()),
        via_branches: vias
            .iter()
            .map(|v| v.params.get_val("branch").map(|b| b.to_string()))
            .collect(),
    })
}

/// Messages the oracle cannot read although they are valid: ezk-sip-types
/// 0.6 rejects a quoted display name holding escaped quotes (`\"`), which
/// RFC 3261 allows and our parser reads (checked in `ours`).
const ORACLE_GAPS: &[&str] = &["v6-call-1@2001:db8:20::7"];

#[test]
fn differential_against_ezk_sip_types() {
    let corpus = corpus();
    let mut compared = 0;
    for raw in &corpus {
        let ours = ours(raw);
        match oracle(raw) {
            Ok(theirs) => {
                assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(raw));
                compared += 1;
            }
            Err(e) => assert!(
                ORACLE_GAPS.contains(&ours.call_id.as_str()),
                "oracle failed on an unlisted message ({e}): {}",
                String::from_utf8_lossy(raw)
            ),
        }
    }
    assert_eq!(compared, corpus.len() - ORACLE_GAPS.len());
    assert!(compared >= 14);
}

/// Exercise every accessor so that a panic anywhere in lazy parsing shows.
fn poke(m: &Message) {
    let _ = m.is_request();
    let _ = m.method();
    let _ = m.request_uri().map(|u| u.to_string());
    let _ = m.request_uri_str();
    let _ = m.status();
    let _ = m.reason();
    for (n, v) in m.headers() {
        let _ = m.header(n);
        let _ = m.header_values(n).count();
        // Values are later copied into responses: no line end may leak in.
        assert!(!v.contains(['\r', '\n']), "{n}: {v:?}");
    }
    let _ = m
        .vias()
        .map(|v| v.iter().map(|v| v.sent_by().len()).sum::<usize>());
    let _ = m.top_via();
    let _ = m.from().map(|n| n.to_string());
    let _ = m.to();
    let _ = m.call_id();
    let _ = m.cseq();
    let _ = m.max_forwards();
    let _ = m.contacts();
    let _ = m.routes();
    let _ = m.record_routes();
    let _ = m.p_asserted_identities();
    let _ = m.expires();
    let _ = m.content_type();
    let _ = (m.content_length(), m.session_expires(), m.min_se());
    let _ = (
        m.reason_headers(),
        m.authorization(),
        m.proxy_authorization(),
    );
    let _ = (m.www_authenticate(), m.proxy_authenticate());
    let _ = m.body().len();
    if m.validate().is_ok() && m.is_request() {
        let _ = response_to(m, 200, "OK").to_tag("x").build();
    }
}

fn mutate(rng: &mut StdRng, base: &[u8]) -> Vec<u8> {
    const INTERESTING: &[u8] = b"\r\n \t:;,<>\"\\@[]%?=/0-9\x00\x0b\x0c\xff";
    let mut v = base.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if v.is_empty() {
            break;
        }
        let i = rng.random_range(0..v.len());
        match rng.random_range(0..6) {
            0 => v[i] ^= 1 << rng.random_range(0..8),
            1 => v[i] = INTERESTING[rng.random_range(0..INTERESTING.len())],
            2 => v.insert(i, INTERESTING[rng.random_range(0..INTERESTING.len())]),
            3 => {
                v.remove(i);
            }
            4 => v.truncate(i),
            _ => {
                // Duplicate a slice: repeated headers, folded lines.
                let j = rng.random_range(i..v.len().min(i + 40));
                let chunk = v[i..=j].to_vec();
                let at = rng.random_range(0..v.len());
                v.splice(at..at, chunk);
            }
        }
    }
    v
}

#[test]
fn mutations_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5eed_4475);
    let mut seeds = corpus();
    for name in [
        "wsinv", "intmeth", "longreq", "mpart01", "esc01", "badinv01",
    ] {
        let path = format!(
            "{}/tests/fixtures/rfc4475/{name}.dat",
            env!("CARGO_MANIFEST_DIR")
        );
        seeds.push(Bytes::from(std::fs::read(path).expect("fixture")));
    }
    let mut parsed = 0usize;
    // CODEC_MUTATIONS=N runs a longer campaign by hand (in --release).
    let iterations = std::env::var("CODEC_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000usize);
    for n in 0..iterations {
        let base = &seeds[n % seeds.len()];
        let bytes = mutate(&mut rng, base);
        if let Ok(m) = Message::parse(Bytes::from(bytes.clone())) {
            parsed += 1;
            poke(&m);
        } else if let Ok(m) = Message::parse_head(Bytes::from(bytes.clone())) {
            poke(&m);
        }
        // The same bytes through the TCP framer, split at a random point.
        let mut f = StreamFramer::new(4096);
        let cut = rng.random_range(0..=bytes.len());
        f.push(&bytes[..cut]);
        while let Ok(Some(frame)) = f.next() {
            if let Frame::Message(b) = frame {
                let _ = Message::parse(b).map(|m| poke(&m));
            }
        }
        f.push(&bytes[cut..]);
        while let Ok(Some(frame)) = f.next() {
            if let Frame::Message(b) = frame {
                let _ = Message::parse(b).map(|m| poke(&m));
            }
        }
        assert!(f.buffered() <= 4096 + bytes.len());
    }
    // The mutations must leave enough messages parseable to reach the
    // typed accessors, or the test proves little.
    assert!(parsed > iterations / 4, "only {parsed} parsed");
}

#[test]
fn framer_reassembles_corpus_over_any_split() {
    let corpus = corpus();
    let stream: Vec<u8> = corpus
        .iter()
        .flat_map(|m| m.iter().copied().chain(*b"\r\n\r\n"))
        .collect();
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..50 {
        let mut f = StreamFramer::new(StreamFramer::DEFAULT_MAX_MESSAGE);
        let mut got = Vec::new();
        let mut keepalives = 0;
        let mut pos = 0;
        while pos < stream.len() {
            let n = rng.random_range(1..=300).min(stream.len() - pos);
            f.push(&stream[pos..pos + n]);
            pos += n;
            while let Some(frame) = f.next().expect("well-formed stream") {
                match frame {
                    Frame::Message(b) => got.push(b),
                    Frame::KeepAlive => keepalives += 1,
                }
            }
        }
        assert_eq!(got, corpus);
        assert_eq!(keepalives, corpus.len());
    }
}

/// Rough throughput figure, for humans: `cargo test --release --test
/// codec_corpus -- --ignored --nocapture throughput`. Ignored by default
/// because timing in a shared debug build proves nothing.
#[test]
#[ignore]
fn throughput() {
    let corpus = corpus();
    let rounds = 20_000;
    let start = std::time::Instant::now();
    let mut checksum = 0usize;
    for _ in 0..rounds {
        for raw in &corpus {
            let m = Message::parse(raw.clone()).expect("parses");
            // What the transport and call layers read for every message.
            checksum += m.top_via().map(|v| v.sent_by().len()).unwrap_or(0);
            checksum += m.call_id().map(str::len).unwrap_or(0);
            checksum += m.cseq().map(|c| c.seq as usize).unwrap_or(0);
            checksum += m
                .from()
                .ok()
                .and_then(|f| f.tag().map(str::len))
                .unwrap_or(0);
            checksum += m.to().ok().and_then(|f| f.tag().map(str::len)).unwrap_or(0);
        }
    }
    let n = rounds * corpus.len();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} messages in {secs:.3}s: {:.0} msg/s on one core (checksum {checksum})",
        n as f64 / secs
    );
}
