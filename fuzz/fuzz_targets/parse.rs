//! Fuzz target for the SIP codec: any bytes through `Message::parse`, every
//! typed accessor, `validate`, the response builder, and the TCP framer fed
//! in two pieces. The codec must never panic and the framer must stay
//! within its cap. Seeds: tests/fixtures/rfc4475/*.dat.
#![no_main]

use bytes::Bytes;
use conmutador::sip::builder::response_to;
use conmutador::sip::message::{Frame, Message, StreamFramer};
use libfuzzer_sys::fuzz_target;

fn poke(m: &Message) {
    let _ = (m.method(), m.status(), m.reason(), m.request_uri_str());
    let _ = m.request_uri().map(|u| u.to_string());
    for (name, _) in m.headers() {
        let _ = m.header_values(name).count();
    }
    let _ = m
        .vias()
        .map(|v| v.iter().map(|v| v.sent_by()).collect::<Vec<_>>());
    let _ = (
        m.from().map(|n| n.to_string()),
        m.to(),
        m.call_id(),
        m.cseq(),
    );
    let _ = (
        m.max_forwards(),
        m.contacts(),
        m.routes(),
        m.record_routes(),
    );
    let _ = (m.p_asserted_identities(), m.expires(), m.content_type());
    let _ = (m.content_length(), m.session_expires(), m.min_se());
    let _ = (
        m.reason_headers(),
        m.authorization(),
        m.proxy_authorization(),
    );
    let _ = (m.www_authenticate(), m.proxy_authenticate());
    if m.validate().is_ok() && m.is_request() {
        let built = response_to(m, 486, "Busy Here").to_tag("fz").build();
        let reparsed = Message::parse(built).expect("our own response must parse");
        assert_eq!(reparsed.call_id(), m.call_id());
    }
}

fuzz_target!(|data: &[u8]| {
    match Message::parse(Bytes::copy_from_slice(data)) {
        Ok(m) => poke(&m),
        Err(_) => {
            if let Ok(m) = Message::parse_head(Bytes::copy_from_slice(data)) {
                poke(&m);
            }
        }
    }
    let cap = 8 * 1024;
    let mut framer = StreamFramer::new(cap);
    let cut = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    for piece in [&data[..cut], &data[cut..]] {
        framer.push(piece);
        while let Ok(Some(frame)) = framer.next() {
            if let Frame::Message(b) = frame {
                assert!(b.len() <= cap);
                if let Ok(m) = Message::parse(b) {
                    poke(&m);
                }
            }
        }
    }
});
