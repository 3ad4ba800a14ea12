//! IPv6 cases in the spirit of RFC 5118 (SIP torture tests for IPv6): the
//! trunk may reach us over IPv6, so Request-URIs, Vias, Contacts and
//! `received` parameters with IPv6 references must parse, and unbracketed
//! addresses in URIs must not.

use bytes::Bytes;
use conmutador::sip::builder::response_to;
use conmutador::sip::message::{Message, ParseError};
use conmutador::sip::uri::{Host, Uri};

fn request(ruri: &str, via: &str, contact: &str) -> String {
    format!(
        "OPTIONS {ruri} SIP/2.0\r\n\
Via: {via}\r\n\
Max-Forwards: 70\r\n\
From: <sip:op@[2001:db8::20]>;tag=v6\r\n\
To: <sip:gw@[2001:db8::10]>\r\n\
Call-ID: v6test@2001:db8::20\r\n\
CSeq: 1 OPTIONS\r\n\
Contact: {contact}\r\n\
Content-Length: 0\r\n\r\n"
    )
}

fn parse(s: String) -> Result<Message, ParseError> {
    Message::parse(Bytes::from(s))
}

fn v6(s: &str) -> Host {
    Host::V6(s.parse().expect("test address"))
}

#[test]
fn bracketed_addresses_everywhere() {
    let m = parse(request(
        "sip:gw@[2001:db8::10]:5070",
        "SIP/2.0/UDP [2001:db8::20]:5060;branch=z9hG4bKv6;received=[2001:db8::9:255];rport=5061",
        "<sip:op@[2001:db8::20];transport=udp>",
    ))
    .expect("valid");
    m.validate().expect("validates");
    let ruri = m.request_uri().and_then(Uri::as_sip).expect("sip");
    assert_eq!(ruri.host, v6("2001:db8::10"));
    assert_eq!(ruri.port, Some(5070));
    let via = m.top_via().expect("via");
    assert_eq!(via.host, v6("2001:db8::20"));
    assert_eq!(via.sent_by(), "[2001:db8::20]:5060");
    assert_eq!(via.received.as_deref(), Some("[2001:db8::9:255]"));
    assert_eq!(via.rport, Some(Some(5061)));
    let reply = Message::parse(response_to(&m, 200, "OK").to_tag("t").build()).expect("reply");
    assert_eq!(reply.top_via().expect("via"), via);
}

#[test]
fn port_ambiguity_and_mapped_addresses() {
    // Inside the brackets everything is address: no port here.
    let m = parse(request(
        "sip:[2001:db8::10:5070]",
        "SIP/2.0/UDP [2001:db8::20];branch=z9hG4bKv6b",
        "<sip:[::ffff:192.0.2.10]>",
    ))
    .expect("valid");
    let ruri = m.request_uri().and_then(Uri::as_sip).expect("sip");
    assert_eq!(ruri.host, v6("2001:db8::10:5070"));
    assert_eq!(ruri.port, None);
    let conmutador::sip::header::Contacts::List(c) = m.contacts().expect("contact") else {
        panic!("star")
    };
    assert_eq!(c[0].uri.host(), Some(&v6("::ffff:192.0.2.10")));
}

#[test]
fn unbracketed_or_malformed_addresses_are_rejected() {
    let via = "SIP/2.0/UDP [2001:db8::20];branch=z9hG4bKv6c";
    for ruri in [
        "sip:gw@2001:db8::10",
        "sip:[2001:db8:::192.0.2.1]",
        "sip:[2001:db8::10",
        "sip:[2001:db8::10]:port",
    ] {
        assert_eq!(
            parse(request(ruri, via, "<sip:a@b>")).err(),
            Some(ParseError::BadRequestUri),
            "{ruri}"
        );
    }
    // A Via sent-by without brackets is not a host.
    let m = parse(request(
        "sip:gw@[2001:db8::10]",
        "SIP/2.0/UDP 2001:db8::20;branch=z9hG4bKv6d",
        "<sip:a@b>",
    ))
    .expect("parses");
    assert!(m.top_via().is_err());
    assert_eq!(m.validate(), Err(ParseError::Invalid("Via")));
}
