//! The RFC 4475 torture messages (tests/fixtures/rfc4475/*.dat, written from
//! the RFC's text with CRLF line ends) against the codec: valid messages
//! parse and give the values the RFC describes; invalid ones are rejected by
//! `Message::parse` or flagged by `validate()`, as the RFC says they should.

use bytes::Bytes;
use conmutador::sip::builder::response_to;
use conmutador::sip::header::Contacts;
use conmutador::sip::message::{Message, Method, ParseError};
use conmutador::sip::uri::{Host, Uri};

fn fixture(name: &str) -> Bytes {
    let path = format!(
        "{}/tests/fixtures/rfc4475/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn valid(name: &str) -> Message {
    let m = Message::parse(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    m.validate()
        .unwrap_or_else(|e| panic!("{name} validate: {e}"));
    m
}

fn sip_user(uri: &Uri) -> Option<&str> {
    uri.as_sip().and_then(|u| u.user.as_deref())
}

#[test]
fn wsinv_short_tortuous_invite() {
    let m = valid("wsinv");
    assert_eq!(m.method(), Some(&Method::Invite));
    let ruri = m.request_uri().and_then(Uri::as_sip).expect("sip uri");
    assert_eq!(ruri.params.get("unknownparam"), Some(None));
    let to = m.to().expect("to");
    assert_eq!(to.tag(), Some("1918181833n"));
    assert_eq!(sip_user(&to.uri), Some("vivekg"));
    let from = m.from().expect("from");
    assert_eq!(from.display.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(m.max_forwards(), Ok(Some(68)));
    assert_eq!(m.call_id(), Ok("wsinv.ndaksdj@192.0.2.1"));
    let cseq = m.cseq().expect("cseq");
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    let vias = m.vias().expect("vias");
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].transport, "UDP");
    assert_eq!(vias[0].sent_by(), "192.0.2.2");
    assert_eq!(vias[0].rport, Some(None));
    assert_eq!(vias[0].branch.as_deref(), Some("390skdjuw"));
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].sent_by(), "spindle.example.com");
    assert_eq!(vias[1].branch.as_deref(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].sent_by(), "192.168.255.111");
    assert_eq!(vias[2].branch.as_deref(), Some("z9hG4bK30239"));
    assert_eq!(m.header("Subject"), Some(""));
    assert_eq!(
        m.header("newfangledheader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(m.header("UnknownHeaderWithUnusualValue"), Some(";;,,;;,;"));
    let routes = m.routes().expect("routes");
    assert_eq!(routes.len(), 1);
    let r = routes[0].uri.as_sip().expect("sip");
    assert_eq!(r.params.get("lr"), Some(None));
    assert_eq!(r.params.value("unknownwith"), Some("value"));
    assert_eq!(r.params.get("unknown-no-value"), Some(None));
    let Contacts::List(c) = m.contacts().expect("contacts") else {
        panic!("star")
    };
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].display.as_deref(), Some("Quoted string \"\""));
    assert_eq!(c[0].params.value("newparam"), Some("newvalue"));
    assert_eq!(c[0].params.get("secondparam"), Some(None));
    assert_eq!(c[0].params.value("q"), Some("0.33"));
    assert_eq!(m.content_type(), Some("application/sdp"));
    assert_eq!(m.body().len(), 150);
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let m = valid("intmeth");
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(m.method(), Some(&Method::Extension(method.into())));
    let ruri = m.request_uri().and_then(Uri::as_sip).expect("sip");
    assert_eq!(
        ruri.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        ruri.password.as_deref(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(ruri.host, Host::Domain("example.com".into()));
    assert_eq!(
        m.top_via().expect("via").branch.as_deref(),
        Some("z9hG4bK-.!%66*_+`'~")
    );
    let to = m.to().expect("to");
    assert_eq!(to.display.as_deref(), Some("BEL:\x07 NUL:\0 DEL:\x7f"));
    let from = m.from().expect("from");
    assert_eq!(
        from.display.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        from.params.value("fromParam''~+*_!.-%"),
        Some("\"работающий\"")
    );
    assert_eq!(
        m.call_id(),
        Ok("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    );
    let cseq = m.cseq().expect("cseq");
    assert_eq!(cseq.seq, 139122385);
    assert_eq!(cseq.method.as_str(), method);
    assert_eq!(m.max_forwards(), Ok(Some(255)));
    assert_eq!(
        m.header("extensionHeader-!.%*+_`'~"),
        Some("\u{feff}大停電")
    );
}

#[test]
fn esc01_escapes_kept_as_written() {
    let m = valid("esc01");
    assert_eq!(
        m.request_uri().and_then(sip_user),
        Some("sips%3Auser%40example.com")
    );
    assert_eq!(sip_user(&m.to().expect("to").uri), Some("%75se%72"));
    assert_eq!(
        sip_user(&m.from().expect("from").uri),
        Some("I%20have%20spaces")
    );
    assert_eq!(m.call_id(), Ok("esc01.239409asdfakjkn23onasd0-3234"));
    assert_eq!(m.content_type(), Some("application/sdp"));
    let Contacts::List(c) = m.contacts().expect("contacts") else {
        panic!("star")
    };
    let u = c[0].uri.as_sip().expect("sip");
    assert_eq!(u.params.get("%6C%72"), Some(None));
    assert_eq!(u.params.value("n%61me"), Some("v%61lue%25%34%31"));
}

#[test]
fn escnull_and_esc02() {
    let m = valid("escnull");
    assert_eq!(sip_user(&m.to().expect("to").uri), Some("null-%00-null"));
    let Contacts::List(c) = m.contacts().expect("contacts") else {
        panic!("star")
    };
    let users: Vec<_> = c.iter().filter_map(|n| sip_user(&n.uri)).collect();
    assert_eq!(users, vec!["%00", "%00%00"]);

    let m = valid("esc02");
    assert_eq!(m.method(), Some(&Method::Extension("RE%47IST%45R".into())));
    assert_eq!(m.to().expect("to").display.as_deref(), Some("%Z%45"));
    assert_eq!(
        m.top_via().expect("via").branch.as_deref(),
        Some("z9hG4bK209%fzsnel234")
    );
    let Contacts::List(c) = m.contacts().expect("contacts") else {
        panic!("star")
    };
    assert_eq!(c.len(), 2, "C%6Fntact is not a Contact");
    assert_eq!(
        m.header("C%6Fntact"),
        Some("<sip:alias2@host2.example.com>")
    );
}

#[test]
fn lwsdisp_longreq_dblreq_semiuri_transports() {
    let m = valid("lwsdisp");
    assert_eq!(m.from().expect("from").display.as_deref(), Some("caller"));

    let m = valid("longreq");
    let to = m.to().expect("to");
    assert!(to.display.as_deref().is_some_and(|d| d.len() > 90));
    assert_eq!(to.uri.as_sip().and_then(|u| u.port), Some(6000));
    assert!(m.from().expect("from").tag().is_some_and(|t| t.len() > 140));
    let vias = m.vias().expect("vias");
    assert_eq!(vias.len(), 34);
    assert_eq!(vias[0].sent_by(), "sip33.example.com");
    assert_eq!(vias[32].sent_by(), "sip1.example.com");
    assert_eq!(vias[33].received.as_deref(), Some("192.0.2.5"));
    assert_eq!(m.body().len(), 150);

    let m = valid("dblreq");
    assert_eq!(m.method(), Some(&Method::Register));
    assert!(m.body().is_empty());
    assert!(
        !m.raw().windows(6).any(|w| w == b"INVITE"),
        "the trailing INVITE octets are not part of the message"
    );

    let m = valid("semiuri");
    assert_eq!(
        m.request_uri().and_then(sip_user),
        Some("user;par=u%40example.net")
    );
    assert_eq!(m.header_values("Accept").count(), 6);

    let m = valid("transports");
    let t: Vec<String> = m
        .vias()
        .expect("vias")
        .into_iter()
        .map(|v| v.transport)
        .collect();
    assert_eq!(t, vec!["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    assert_eq!(m.call_id(), Ok("transports.kijh4akdnaqjkwendsasfdj"));
}

#[test]
fn mpart01_binary_body_framed_by_content_length() {
    let m = valid("mpart01");
    assert_eq!(m.body().len(), 553);
    assert!(m.body().contains(&0u8));
    assert!(m.body().ends_with(b"--7a9cbec02ceef655--\r\n"));
    assert_eq!(m.top_via().expect("via").rport, Some(None));
    assert_eq!(m.top_via().expect("via").port, Some(5070));
}

#[test]
fn unreason_and_noreason_responses() {
    let m = valid("unreason");
    assert_eq!(m.status(), Some(200));
    assert_eq!(
        m.reason(),
        Some("= 2**3 * 5**2 но сто девяносто девять - простое")
    );
    let m = valid("noreason");
    assert_eq!(m.status(), Some(100));
    assert_eq!(m.reason(), Some(""));
}

/// §3.2–3.4: syntactically valid messages whose oddities are for the
/// application to judge.
#[test]
fn application_layer_cases_parse() {
    let m = valid("badbranch");
    assert_eq!(m.top_via().expect("via").branch.as_deref(), Some("z9hG4bK"));
    let m = valid("bcast");
    assert_eq!(
        m.vias().expect("vias")[1].host,
        Host::V4("255.255.255.255".parse().expect("v4"))
    );
    let m = valid("bext01");
    assert_eq!(m.header_values("Require").count(), 2);
    assert_eq!(m.header_values("Proxy-Require").count(), 2);
    let m = valid("cparam01");
    let Contacts::List(c) = m.contacts().expect("contacts") else {
        panic!("star")
    };
    assert_eq!(c[0].params.get("unknownparam"), Some(None));
    assert!(c[0].uri.as_sip().is_some_and(|u| u.params.is_empty()));
    let m = valid("cparam02");
    let Contacts::List(c) = m.contacts().expect("contacts") else {
        panic!("star")
    };
    assert!(c[0].params.is_empty());
    assert!(
        c[0].uri
            .as_sip()
            .is_some_and(|u| u.params.contains("unknownparam"))
    );
    let m = valid("inv2543");
    assert_eq!(m.top_via().expect("via").branch, None);
    assert_eq!(m.from().expect("from").tag(), None);
    assert_eq!(m.max_forwards(), Ok(None));
    assert_eq!(m.body().len(), 105, "no Content-Length over UDP: the rest");
    let m = valid("invut");
    assert_eq!(m.content_type(), Some("application/unknownformat"));
    let m = valid("novelsc");
    assert_eq!(
        m.request_uri(),
        Some(&Uri::Other("soap.beep://192.0.2.103:3002".into()))
    );
    let m = valid("unkscm");
    assert_eq!(
        m.request_uri(),
        Some(&Uri::Other(
            "nobodyKnowsThisScheme:totallyopaquecontent".into()
        ))
    );
    let m = valid("unksm2");
    assert_eq!(
        m.to().expect("to").uri,
        Uri::Other("isbn:2983792873".into())
    );
    assert_eq!(
        m.from().expect("from").uri,
        Uri::Other("http://www.example.com".into())
    );
    let m = valid("regaut01");
    assert_eq!(
        m.header("Authorization"),
        Some("NoOneKnowsThisScheme opaque-data=here")
    );
    let m = valid("regescrt");
    let Contacts::List(c) = m.contacts().expect("contacts") else {
        panic!("star")
    };
    assert!(
        c[0].uri
            .as_sip()
            .is_some_and(|u| u.headers.contains("Route"))
    );
    let m = valid("sdp01");
    assert_eq!(m.header("Accept"), Some("text/nobodyKnowsThis"));
    let m = valid("zeromf");
    assert_eq!(m.max_forwards(), Ok(Some(0)));
    // The RFC lets an element that does not use Date accept this one; the
    // codec never interprets Date.
    let m = valid("baddate");
    assert_eq!(m.header("Date"), Some("Fri, 01 Jan 2010 16:00:00 EST"));
}

/// Rejected while parsing: framing and start-line errors.
#[test]
fn invalid_messages_rejected_by_parse() {
    let cases = [
        ("clerr", ParseError::Truncated),
        ("ncl", ParseError::BadContentLength),
        ("ltgtruri", ParseError::BadRequestUri),
        ("lwsruri", ParseError::BadRequestUri),
        ("lwsstart", ParseError::BadRequestUri),
        ("trws", ParseError::BadStartLine),
        ("escruri", ParseError::BadRequestUri),
        ("badvers", ParseError::BadVersion),
        ("bigcode", ParseError::BadStatusCode),
        ("mcl01", ParseError::Duplicate("Content-Length")),
    ];
    for (name, want) in cases {
        assert_eq!(Message::parse(fixture(name)).err(), Some(want), "{name}");
        assert!(!want.reason().is_empty());
    }
}

/// Parsed (so a 400 with a reason can be built) but flagged by validate().
#[test]
fn invalid_messages_flagged_by_validate() {
    let cases = [
        ("badinv01", ParseError::Invalid("Via"), "Bad Via"),
        ("scalar02", ParseError::Invalid("CSeq"), "Bad CSeq"),
        ("scalarlg", ParseError::Invalid("CSeq"), "Bad CSeq"),
        ("quotbal", ParseError::Invalid("To"), "Bad To"),
        ("regbadct", ParseError::Invalid("Contact"), "Bad Contact"),
        ("badaspec", ParseError::Invalid("To"), "Bad To"),
        ("baddn", ParseError::Invalid("From"), "Bad From"),
        (
            "mismatch01",
            ParseError::CSeqMethodMismatch,
            "CSeq method mismatch",
        ),
        (
            "mismatch02",
            ParseError::CSeqMethodMismatch,
            "CSeq method mismatch",
        ),
        ("insuf", ParseError::Missing("From"), "Missing From"),
        ("multi01", ParseError::Duplicate("From"), "Duplicate From"),
    ];
    for (name, want, reason) in cases {
        let m = Message::parse(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = m.validate();
        assert_eq!(got, Err(want), "{name}");
        assert_eq!(want.reason(), reason, "{name}");
    }
}

#[test]
fn scalar_fields_out_of_range_are_reported_individually() {
    let m = Message::parse(fixture("scalar02")).expect("parses");
    assert!(m.max_forwards().is_err(), "300 > 255");
    assert_eq!(m.expires(), Ok(Some(u32::MAX)), "clamped, not fatal");
    let m = Message::parse(fixture("multi01")).expect("parses");
    assert!(m.call_id().is_err());
    assert!(m.cseq().is_err());
    assert!(m.max_forwards().is_err());
    let m = Message::parse(fixture("insuf")).expect("parses");
    assert!(m.call_id().is_err());
    assert!(m.to().is_err());
}

#[test]
fn every_fixture_is_covered() {
    let dir = format!("{}/tests/fixtures/rfc4475", env!("CARGO_MANIFEST_DIR"));
    let n = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "dat"))
        })
        .count();
    // 13 valid syntax + 19 invalid syntax + 1 transaction + 15 application
    // + 1 backward-compatibility messages in RFC 4475 §3.
    assert_eq!(n, 49);
}

/// RFC 4475 asks for a 400 (505 for badvers) to these: `parse_head` still
/// gives the headers a reply needs.
#[test]
fn rejected_requests_can_still_be_answered() {
    for name in [
        "clerr", "ncl", "ltgtruri", "lwsruri", "lwsstart", "trws", "escruri", "badvers", "mcl01",
    ] {
        let raw = fixture(name);
        let err = Message::parse(raw.clone()).expect_err(name);
        let head = Message::parse_head(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(head.is_request(), "{name}");
        let reply = response_to(&head, err.status_code(), err.reason()).build();
        let reply = Message::parse(reply).unwrap_or_else(|e| panic!("{name} reply: {e}"));
        assert_eq!(
            reply.status(),
            Some(if name == "badvers" { 505 } else { 400 })
        );
        assert_eq!(reply.reason(), Some(err.reason()));
        assert_eq!(reply.call_id(), head.call_id(), "{name}");
        assert_eq!(
            reply.top_via().map(|v| v.branch),
            head.top_via().map(|v| v.branch),
            "{name}"
        );
    }
    let head = Message::parse_head(fixture("ltgtruri")).expect("head");
    assert_eq!(
        head.request_uri(),
        Some(&Uri::Other("<sip:user@example.com>".into()))
    );
    assert!(
        Message::parse_head(fixture("clerr"))
            .expect("head")
            .body()
            .is_empty()
    );
}
