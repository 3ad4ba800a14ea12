//! Fine-grained SIP and RTP behaviour with an in-test user agent: the audio a
//! caller receives, the three ways of pressing digits, and every refusal the
//! gateway must give (400, 403, 405, 481, 483, 488, 501, 503).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::ua::{Msg, Ua};
use common::{Gw, eventually, unsafe_kill};

const NUMBER: &str = "5550000";

#[test]
fn caller_hears_a_correct_non_silent_rtp_stream() {
    let gw = Gw::start("");
    let mut ua = Ua::new(gw.udp);
    let resp = ua.call(NUMBER, "0 8", true);
    assert_eq!(resp.status(), Some(200), "{resp:?}");
    assert!(
        resp.body().contains("m=audio "),
        "200 carries SDP: {}",
        resp.body()
    );
    // Symmetric RTP: the gateway latches on to where our packets come from.
    ua.send_pcmu(&[0; 160], true);
    let cap = ua.receive_audio(Duration::from_secs(3));
    assert!(
        cap.packets.len() >= 100,
        "only {} RTP packets in 3 s",
        cap.packets.len()
    );
    let ssrc = cap.packets[0].ssrc;
    assert!(
        cap.packets.iter().all(|p| p.ssrc == ssrc),
        "one SSRC per stream"
    );
    assert!(
        cap.packets[0].marker,
        "marker bit on the first packet of a prompt"
    );
    for w in cap.packets.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "sequence increments by one"
        );
        assert_eq!(
            w[1].ts,
            w[0].ts.wrapping_add(160),
            "timestamp advances 160 per 20 ms"
        );
        assert_eq!(w[1].len, 160);
    }
    assert!(
        cap.rms() > 300.0,
        "audio is not silence (rms {})",
        cap.rms()
    );
    assert_eq!(ua.hangup(NUMBER).and_then(|m| m.status()), Some(200));
}

#[test]
fn another_source_cannot_take_a_call_s_audio() {
    let gw = Gw::start("");
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call(NUMBER, "0", true).status(), Some(200));
    // A caller's first packets, from the address its SDP gave.
    for i in 0..5 {
        ua.send_pcmu(&[0; 160], i == 0);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ua.receive_audio(Duration::from_millis(500)).packets.len() >= 15);
    // Bursts of twenty from elsewhere: an unlocked leg followed ten.
    let gw_rtp = ua.remote_rtp.expect("the gateway's RTP address");
    // The thief is a UA of its own that never placed a call, aimed at
    // this call's port.
    let mut thief = Ua::new(gw.udp);
    thief.remote_rtp = Some(gw_rtp);
    for _ in 0..5 {
        for _ in 0..20 {
            thief.send_pcmu(&[0; 160], false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The caller keeps the audio, the other source gets none of it, and
    // its packets never reached the gateway (the kernel refused them).
    let heard = ua.receive_audio(Duration::from_secs(1)).packets.len();
    thief.rtp.set_nonblocking(true).unwrap();
    let mut stolen = 0;
    while thief.rtp.recv_from(&mut [0u8; 2048]).is_ok() {
        stolen += 1;
    }
    assert_eq!(stolen, 0, "the other source received audio");
    assert!(heard >= 20, "the caller heard {heard} packets in 1 s");
    std::thread::sleep(Duration::from_millis(1100)); // the clock's counter flush
    assert_eq!(
        gw.metric(
            "conmutador_rtp_dropped_total",
            &["reason=\"unknown_source\""]
        ),
        0.0
    );
    assert_eq!(ua.hangup(NUMBER).and_then(|m| m.status()), Some(200));
}

#[test]
fn pcma_only_caller_gets_pcma() {
    let gw = Gw::start("");
    let mut ua = Ua::new(gw.udp);
    let resp = ua.call(NUMBER, "8", false);
    assert_eq!(resp.status(), Some(200));
    assert!(resp.body().contains("RTP/AVP 8"), "{}", resp.body());
    let cap = ua.receive_audio(Duration::from_secs(1));
    assert!(cap.packets.iter().all(|p| p.pt == 8));
    assert!(cap.rms() > 300.0);
    ua.hangup(NUMBER);
}

#[test]
fn no_common_codec_gets_488() {
    let gw = Gw::start("");
    let mut ua = Ua::new(gw.udp);
    let resp = ua.call(NUMBER, "18", false);
    assert_eq!(resp.status(), Some(488));
    let ack = ua.request("ACK", &ua.uri(NUMBER), "", None);
    ua.send(&ack);
}

#[test]
fn sources_that_are_not_trunks_get_403() {
    let gw = Gw::start("[trunks]\nallow = [\"192.0.2.0/24\"]\n");
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call(NUMBER, "0", true).status(), Some(403));
}

#[test]
fn max_forwards_zero_gets_483() {
    let gw = Gw::start("");
    let ua = Ua::new(gw.udp);
    let req = ua
        .request("OPTIONS", &ua.uri(NUMBER), "", None)
        .replace("Max-Forwards: 70", "Max-Forwards: 0")
        .replace("OPTIONS sip", "INFO sip")
        .replace("CSeq: 1 OPTIONS", "CSeq: 1 INFO");
    ua.send(&req);
    assert_eq!(
        ua.final_response(Duration::from_secs(3))
            .and_then(|m| m.status()),
        Some(483)
    );
}

#[test]
fn malformed_request_gets_400_with_a_reason_and_is_counted() {
    let gw = Gw::start("");
    let ua = Ua::new(gw.udp);
    let bad = ua
        .request("OPTIONS", &ua.uri(NUMBER), "", None)
        .replace("CSeq: 1 OPTIONS", "CSeq: one OPTIONS");
    ua.send(&bad);
    let resp = ua.final_response(Duration::from_secs(3)).expect("a 400");
    assert_eq!(resp.status(), Some(400));
    assert!(
        resp.0.lines().next().unwrap().len() > "SIP/2.0 400 ".len(),
        "reason phrase given"
    );
    assert!(gw.metric("conmutador_sip_parse_errors_total", &[]) >= 1.0);
}

#[test]
fn garbage_never_kills_the_gateway() {
    let gw = Gw::start("");
    let ua = Ua::new(gw.udp);
    let junk: &[&[u8]] = &[
        b"",
        b"\r\n\r\n",
        b"INVITE",
        b"SIP/2.0 200\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\nContent-Length: 99999\r\n\r\n",
        &[0xff; 1400],
        b"INVITE sip:[::1 SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\n\r\n",
    ];
    for j in junk {
        ua.sip.send_to(j, gw.udp).unwrap();
    }
    // Still alive and answering.
    let ping = ua.request("OPTIONS", &ua.uri(NUMBER), "", None);
    ua.send(&ping);
    let mut ok = false;
    for _ in 0..5 {
        if let Some(m) = ua.final_response(Duration::from_secs(2)) {
            if m.status() == Some(200) {
                ok = true;
                break;
            }
        }
    }
    assert!(ok, "gateway answered OPTIONS after garbage");
    assert!(gw.metric("conmutador_sip_parse_errors_total", &[]) >= 3.0);
}

#[test]
fn unknown_method_gets_501_and_unknown_dialog_481() {
    let gw = Gw::start("");
    let mut ua = Ua::new(gw.udp);
    let req = ua.request("FROBNICATE", &ua.uri(NUMBER), "", None);
    ua.send(&req);
    let r = ua.final_response(Duration::from_secs(3)).unwrap();
    assert_eq!(r.status(), Some(501));
    assert!(r.header("Allow").is_some());
    ua.to_tag = Some("nosuchtag".into());
    ua.cseq = 2;
    let bye = ua.request("BYE", &ua.uri(NUMBER), "", None);
    ua.send(&bye);
    assert_eq!(
        ua.final_response(Duration::from_secs(3))
            .and_then(|m| m.status()),
        Some(481)
    );
}

#[test]
fn wrong_method_in_a_dialog_gets_405() {
    let gw = Gw::start("");
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call(NUMBER, "0", true).status(), Some(200));
    ua.cseq += 1;
    let reg = ua.request("REGISTER", &ua.uri(NUMBER), "", None);
    ua.send(&reg);
    let r = ua.final_response(Duration::from_secs(3)).unwrap();
    assert_eq!(r.status(), Some(405), "{r:?}");
    ua.hangup(NUMBER);
}

#[test]
fn full_gateway_sheds_calls_with_503_and_retry_after() {
    let gw = Gw::start("[sip]\nmax_calls = 1\nretry_after = 7\n");
    let mut a = Ua::new(gw.udp);
    assert_eq!(a.call(NUMBER, "0", true).status(), Some(200));
    let mut b = Ua::new(gw.udp);
    let r = b.call(NUMBER, "0", true);
    assert_eq!(r.status(), Some(503));
    assert_eq!(r.header("Retry-After").as_deref(), Some("7"));
    assert!(
        gw.metric(
            "conmutador_sip_overload_rejections_total",
            &["reason=\"calls\""]
        ) >= 1.0
    );
    a.hangup(NUMBER);
}

#[test]
fn a_gateway_that_fell_behind_sheds_new_calls_until_it_catches_up() {
    let gw = Gw::start("[sip]\nretry_after = 3\n");
    let mut a = Ua::new(gw.udp);
    assert_eq!(a.call(NUMBER, "0", true).status(), Some(200));
    // The whole process loses the CPU for a second, as on a starved machine.
    unsafe_kill(gw.pid(), "STOP");
    std::thread::sleep(Duration::from_secs(1));
    unsafe_kill(gw.pid(), "CONT");
    let mut b = Ua::new(gw.udp);
    let r = b.call(NUMBER, "0", true);
    assert_eq!(r.status(), Some(503), "{r:?}");
    assert_eq!(r.header("Retry-After").as_deref(), Some("3"));
    let text = gw.metrics();
    let refused = |reason: &str| {
        common::metric_sum(
            &text,
            "conmutador_sip_overload_rejections_total",
            &[&format!("reason=\"{reason}\"")],
        )
    };
    assert!(
        refused("signalling") + refused("media") >= 1.0,
        "counted by reason"
    );
    // The call in progress was never touched and hangs up normally.
    assert_eq!(a.hangup(NUMBER).and_then(|m| m.status()), Some(200));
    // Once both clocks have had a quiet second or two, calls are taken again.
    assert!(eventually(Duration::from_secs(10), || {
        let text = gw.metrics();
        common::metric_sum(&text, "conmutador_signalling_lag_seconds", &[]) < 0.5
            && common::metric_sum(&text, "conmutador_media_behind_ratio", &[]) <= 0.01
    }));
    let mut c = Ua::new(gw.udp);
    assert_eq!(c.call(NUMBER, "0", true).status(), Some(200));
    c.hangup(NUMBER);
}

#[test]
fn what_the_kernel_drops_while_the_gateway_cannot_read_is_counted() {
    let gw = Gw::start("");
    let mut a = Ua::new(gw.udp);
    assert_eq!(a.call(NUMBER, "0", true).status(), Some(200));
    a.send_pcmu(&[0; 160], true);
    std::thread::sleep(Duration::from_millis(200));
    unsafe_kill(gw.pid(), "STOP");
    // A leg's socket queues about sixteen packets; send six seconds' worth.
    for _ in 0..300 {
        a.send_pcmu(&[0; 160], false);
    }
    // The SIP socket holds megabytes; fifty thousand datagrams overflow it.
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..50_000 {
        let _ = junk.send_to(b"x", gw.udp);
    }
    std::thread::sleep(Duration::from_millis(200));
    unsafe_kill(gw.pid(), "CONT");
    let counted = |name: &str| common::metric_sum(&gw.metrics(), name, &[]);
    assert!(
        eventually(Duration::from_secs(5), || {
            counted("conmutador_rtp_kernel_drops_total") > 0.0
                && counted("conmutador_sip_udp_kernel_drops_total") > 0.0
        }),
        "{}",
        gw.metrics()
    );
    // What was queued is read and the call goes on.
    assert_eq!(a.hangup(NUMBER).and_then(|m| m.status()), Some(200));
}

#[test]
fn invite_retransmission_is_absorbed_and_2xx_resent_until_ack() {
    let gw = Gw::start("");
    let ua = Ua::new(gw.udp);
    let sdp = ua.sdp_offer("0", true);
    let inv = ua.request(
        "INVITE",
        &ua.uri(NUMBER),
        "",
        Some(("application/sdp", &sdp)),
    );
    ua.send(&inv);
    ua.send(&inv);
    // Without an ACK the 200 comes again at T1, 2·T1, …
    let mut oks = 0;
    let mut to_tags = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_millis(2_500);
    while std::time::Instant::now() < deadline {
        if let Some(m) = ua.recv(Duration::from_millis(200)) {
            if m.status() == Some(200) {
                oks += 1;
                to_tags.insert(m.to_tag());
            }
        }
    }
    assert!(oks >= 3, "200 retransmitted until ACK (got {oks})");
    assert_eq!(
        to_tags.len(),
        1,
        "one dialog despite the retransmitted INVITE"
    );
    assert_eq!(gw.metric("conmutador_calls_started_total", &[]), 1.0);
}

#[test]
fn digits_by_rfc4733_inband_and_info_reach_the_ivr() {
    let gw = Gw::start("");
    // RFC 4733
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call(NUMBER, "0", true).status(), Some(200));
    ua.send_pcmu(&[0; 160], true);
    std::thread::sleep(Duration::from_millis(300));
    ua.send_rfc4733_digit('1', 101);
    assert!(
        eventually(Duration::from_secs(3), || gw
            .metric("conmutador_dtmf_digits_total", &["method=\"rfc4733\""])
            == 1.0),
        "one RFC 4733 digit despite three end packets:\n{}",
        gw.metrics()
    );
    ua.hangup(NUMBER);
    // In-band, for a caller whose offer has no telephone-event.
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call(NUMBER, "0", false).status(), Some(200));
    ua.send_inband_digit('2', Duration::from_millis(120), 0.3);
    assert!(
        eventually(Duration::from_secs(3), || gw
            .metric("conmutador_dtmf_digits_total", &["method=\"inband\""])
            == 1.0),
        "one in-band digit:\n{}",
        gw.metrics()
    );
    ua.hangup(NUMBER);
    // SIP INFO
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call(NUMBER, "0", true).status(), Some(200));
    let r = ua.send_info_digit(NUMBER, '3').expect("INFO answered");
    assert_eq!(r.status(), Some(200));
    assert!(gw.metric("conmutador_dtmf_digits_total", &["method=\"sip_info\""]) == 1.0);
    ua.hangup(NUMBER);
}

#[test]
fn tcp_framing_handles_coalesced_and_split_messages() {
    let gw = Gw::start("");
    let mut s = TcpStream::connect(gw.tcp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = s.local_addr().unwrap();
    let opt = |n: u32| {
        format!(
            "OPTIONS sip:{} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKtcp{n}\r\nMax-Forwards: 70\r\nFrom: <sip:t@{local}>;tag=a{n}\r\nTo: <sip:{}>\r\nCall-ID: tcp{n}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            gw.tcp, gw.tcp
        )
    };
    // Two messages in one segment, then one message in three pieces.
    s.write_all(format!("{}{}", opt(1), opt(2)).as_bytes())
        .unwrap();
    let third = opt(3);
    let (a, rest) = third.split_at(10);
    let (b, c) = rest.split_at(40);
    for part in [a, b, c] {
        s.write_all(part.as_bytes()).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while got.matches("SIP/2.0 200").count() < 3 && std::time::Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert_eq!(got.matches("SIP/2.0 200").count(), 3, "{got}");
    for n in 1..=3 {
        assert!(got.contains(&format!("Call-ID: tcp{n}@test")));
    }
}

#[test]
fn oversize_tcp_message_closes_the_connection_and_is_counted() {
    let gw = Gw::start("[sip]\nmax_tcp_message = 4096\n");
    let mut s = TcpStream::connect(gw.tcp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let big = format!(
        "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKbig\r\nX-Pad: {}\r\n",
        "a".repeat(10_000)
    );
    let _ = s.write_all(big.as_bytes());
    let mut buf = [0u8; 16];
    let closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
    assert!(closed, "connection closed");
    assert!(eventually(Duration::from_secs(3), || gw
        .metric("conmutador_sip_oversize_total", &[])
        >= 1.0));
}

#[test]
fn sigterm_stops_cleanly_and_hangs_up_calls() {
    let gw = Gw::start("");
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call(NUMBER, "0", true).status(), Some(200));
    let pid = gw.pid();
    let sock = ua.sip.try_clone().unwrap();
    let waiter = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65535];
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        loop {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let m = Msg(String::from_utf8_lossy(&buf[..n]).into_owned());
                    if m.is_request("BYE") {
                        let ok = format!(
                            "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
                            m.header("Via").unwrap(),
                            m.header("From").unwrap(),
                            m.header("To").unwrap(),
                            m.header("Call-ID").unwrap(),
                            m.header("CSeq").unwrap()
                        );
                        sock.send_to(ok.as_bytes(), from).unwrap();
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    });
    common::unsafe_kill(pid, "TERM");
    assert!(waiter.join().unwrap(), "the call got a BYE on shutdown");
    let status = gw.stop();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn numbers_no_plan_answers_get_404_without_a_default_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let plans = tmp.path().join("plans");
    let prompts = plans.join("prompts/es-MX");
    std::fs::create_dir_all(&prompts).unwrap();
    for p in ["bienvenida", "despedida"] {
        std::fs::copy(
            common::repo().join(format!("dialplans/prompts/es-MX/{p}.wav")),
            prompts.join(format!("{p}.wav")),
        )
        .unwrap();
    }
    std::fs::write(
        plans.join("solo.toml"),
        "[plan]\nname = \"solo\"\nstart = \"hola\"\nlanguages = [\"es-MX\"]\nnumbers = [\"5551000\"]\n\n[nodes.hola]\ntype = \"hangup\"\nprompts = [\"bienvenida\"]\n",
    )
    .unwrap();
    let gw = Gw::start(&format!(
        "[dialplans]\ndir = \"{}\"\nwatch = false\n",
        plans.display()
    ));
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call("5559999", "0", true).status(), Some(404));
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call("5551000", "0", true).status(), Some(200));
}
