//! Supervised bridges through the real engine on 127.0.0.1: plain UDP
//! sockets act as caller, operator and supervisor phones, each sending a
//! distinct level, and what each one receives is sorted by which levels it
//! contains. Every exchange is bounded in count and time.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use tokio::sync::mpsc;

use super::dtmf::event_payload;
use super::engine::{LegId, MediaConfig, MediaEngine, MediaEvent};
use super::g711;
use super::mix::Mode;
use super::prompt::PromptLibrary;
use crate::call::supervise::{KeyAction, key_action};
use crate::sdp::{Codec, Direction, MediaParams};

/// Levels far enough apart that every sum of a subset stays apart after
/// G.711 quantisation (steps of at most 256 below 8 000).
const CALLER: i32 = 4000;
const OPERATOR: i32 = 1000;
const SUPERVISOR: i32 = 250;

fn engine(lo: u16) -> MediaEngine {
    let cfg = MediaConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        ports: (lo, lo + 19),
        rtp_timeout: Duration::from_secs(30),
        workers: 2,
        ..MediaConfig::default()
    };
    MediaEngine::start(cfg, Arc::new(PromptLibrary::new())).unwrap()
}

struct Phone {
    sock: UdpSocket,
    leg: LegId,
    local: SocketAddr,
    codec: Codec,
    seq: u16,
    events: mpsc::Receiver<MediaEvent>,
}

fn phone(e: &MediaEngine, worker: usize, codec: Codec) -> Phone {
    phone_dtmf(e, worker, codec, None)
}

fn phone_dtmf(e: &MediaEngine, worker: usize, codec: Codec, dtmf_pt: Option<u8>) -> Phone {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let (leg, local) = e.allocate_on(worker).unwrap();
    let (tx, rx) = mpsc::channel(256);
    let params = MediaParams {
        codec,
        pt: codec.static_pt(),
        dtmf_pt,
        remote: sock.local_addr().unwrap(),
        direction: Direction::SendRecv,
        ptime_ms: 20,
    };
    e.start_leg(leg, params, tx);
    Phone {
        sock,
        leg,
        local,
        codec,
        seq: 0,
        events: rx,
    }
}

impl Phone {
    fn say(&mut self, level: i32) {
        let byte = match self.codec {
            Codec::Pcmu => g711::ulaw_encode(level as i16),
            Codec::Pcma => g711::alaw_encode(level as i16),
        };
        let pkt = RtpPacketBuilder::new()
            .payload_type(self.codec.static_pt())
            .sequence(Seq::from(self.seq))
            .timestamp(u32::from(self.seq) * 160)
            .ssrc(0x1000 + u32::from(self.local.port()))
            .payload(&[byte; 160])
            .build()
            .unwrap();
        self.seq = self.seq.wrapping_add(1);
        self.sock.send_to(&pkt, self.local).unwrap();
    }

    /// Presses `key` (RFC 4733 event number) as a phone does: a start
    /// packet and three end packets.
    fn press(&mut self, key: u8, ts: u32) {
        for (end, d) in [(false, 160u16), (true, 640), (true, 640), (true, 640)] {
            let pkt = RtpPacketBuilder::new()
                .payload_type(101)
                .sequence(Seq::from(self.seq))
                .timestamp(ts)
                .ssrc(0x1000 + u32::from(self.local.port()))
                .payload(&event_payload(key, end, 10, d))
                .build()
                .unwrap();
            self.seq = self.seq.wrapping_add(1);
            self.sock.send_to(&pkt, self.local).unwrap();
        }
    }

    /// The levels of everything received so far, as sets of parties heard.
    fn heard(&self) -> Vec<Heard> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
            let Ok(r) = RtpReader::new(&buf[..n]) else {
                continue;
            };
            let Some(&b) = r.payload().get(80) else {
                continue;
            };
            let v = i32::from(match self.codec {
                Codec::Pcmu => g711::ulaw_decode(b),
                Codec::Pcma => g711::alaw_decode(b),
            });
            out.push(classify(v));
        }
        out
    }
}

/// Which of caller, operator and supervisor a decoded level contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Heard {
    caller: bool,
    operator: bool,
    supervisor: bool,
}

fn classify(v: i32) -> Heard {
    (0..8u8)
        .map(|m| Heard {
            caller: m & 1 != 0,
            operator: m & 2 != 0,
            supervisor: m & 4 != 0,
        })
        .min_by_key(|h| {
            let sum = CALLER * i32::from(h.caller)
                + OPERATOR * i32::from(h.operator)
                + SUPERVISOR * i32::from(h.supervisor);
            (sum - v).abs()
        })
        .unwrap()
}

/// Everybody talks for `rounds` frames; returns what caller, operator and
/// supervisor heard.
fn talk(c: &mut Phone, o: &mut Phone, s: &mut Phone, rounds: usize) -> [Vec<Heard>; 3] {
    let mut heard: [Vec<Heard>; 3] = Default::default();
    for _ in 0..rounds {
        c.say(CALLER);
        o.say(OPERATOR);
        s.say(SUPERVISOR);
        std::thread::sleep(Duration::from_millis(20));
        heard[0].extend(c.heard());
        heard[1].extend(o.heard());
        heard[2].extend(s.heard());
    }
    std::thread::sleep(Duration::from_millis(60));
    heard[0].extend(c.heard());
    heard[1].extend(o.heard());
    heard[2].extend(s.heard());
    heard
}

fn any(v: &[Heard], f: impl Fn(&Heard) -> bool) -> bool {
    v.iter().any(f)
}

#[test]
fn listen_whisper_barge_and_back_to_a_plain_bridge() {
    let e = engine(41400);
    // Caller on one clock thread, operator and supervisor on the other, µ-law
    // and A-law mixed: the mixer is shared across threads and codecs.
    let mut c = phone(&e, 0, Codec::Pcmu);
    let mut o = phone(&e, 1, Codec::Pcma);
    let mut s = phone(&e, 1, Codec::Pcmu);
    e.bridge(c.leg, o.leg);
    // Symmetric RTP: each phone is heard before it is sent to.
    talk(&mut c, &mut o, &mut s, 5);

    let sup = e.supervise(c.leg, o.leg, s.leg, Mode::Listen);
    talk(&mut c, &mut o, &mut s, 3); // the commands reach the clocks
    let [hc, ho, hs] = talk(&mut c, &mut o, &mut s, 25);
    assert!(
        any(&hs, |h| h.caller && h.operator),
        "supervisor hears both: {hs:?}"
    );
    assert!(!any(&hs, |h| h.supervisor), "nobody's own voice comes back");
    assert!(
        any(&ho, |h| h.caller) && !any(&ho, |h| h.supervisor),
        "listen: {ho:?}"
    );
    assert!(
        any(&hc, |h| h.operator) && !any(&hc, |h| h.supervisor),
        "listen: {hc:?}"
    );

    sup.set_mode(Mode::Whisper);
    talk(&mut c, &mut o, &mut s, 2);
    let [hc, ho, hs] = talk(&mut c, &mut o, &mut s, 25);
    assert!(
        any(&ho, |h| h.caller && h.supervisor),
        "operator hears the whisper: {ho:?}"
    );
    assert!(!any(&hc, |h| h.supervisor), "the caller must not: {hc:?}");
    assert!(any(&hc, |h| h.operator));
    assert!(any(&hs, |h| h.caller && h.operator));

    sup.set_mode(Mode::Barge);
    talk(&mut c, &mut o, &mut s, 2);
    let [hc, ho, hs] = talk(&mut c, &mut o, &mut s, 25);
    assert!(
        any(&hc, |h| h.operator && h.supervisor),
        "barge, caller: {hc:?}"
    );
    assert!(
        any(&ho, |h| h.caller && h.supervisor),
        "barge, operator: {ho:?}"
    );
    assert!(any(&hs, |h| h.caller && h.operator));
    assert!(!any(&hc, |h| h.caller) && !any(&ho, |h| h.operator));

    e.end_supervision(sup);
    talk(&mut c, &mut o, &mut s, 3);
    let [hc, ho, hs] = talk(&mut c, &mut o, &mut s, 10);
    assert!(
        hs.is_empty(),
        "the supervisor hears nothing once out: {hs:?}"
    );
    let only = |v: &[Heard], h: Heard| !v.is_empty() && v.iter().all(|x| *x == h);
    let heard = |caller, operator| Heard {
        caller,
        operator,
        supervisor: false,
    };
    assert!(only(&hc, heard(false, true)), "plain bridge again: {hc:?}");
    assert!(only(&ho, heard(true, false)), "plain bridge again: {ho:?}");
}

#[test]
fn a_key_from_the_supervisor_phone_switches_mode() {
    let e = engine(41430);
    let mut c = phone(&e, 0, Codec::Pcmu);
    let mut o = phone(&e, 0, Codec::Pcmu);
    let mut s = phone_dtmf(&e, 0, Codec::Pcmu, Some(101));
    e.bridge(c.leg, o.leg);
    talk(&mut c, &mut o, &mut s, 5);
    let sup = e.supervise(c.leg, o.leg, s.leg, Mode::Listen);
    talk(&mut c, &mut o, &mut s, 3);
    let [_, ho, _] = talk(&mut c, &mut o, &mut s, 10);
    assert!(!any(&ho, |h| h.supervisor), "listen: {ho:?}");

    // Key 5 (whisper), as the call layer applies it: the supervisor leg
    // reports the digit, `key_action` reads it, the session switches.
    s.press(5, 99_999);
    let mut digit = None;
    for _ in 0..200 {
        match s.events.try_recv() {
            Ok(MediaEvent::Digit { digit: d, .. }) => {
                digit = Some(d);
                break;
            }
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let digit = digit.expect("the supervisor's key is reported within a second");
    assert_eq!(digit, '5');
    let Some(KeyAction::Switch(mode)) = key_action(digit) else {
        panic!("5 switches mode");
    };
    sup.set_mode(mode);
    talk(&mut c, &mut o, &mut s, 2);
    let [hc, ho, _] = talk(&mut c, &mut o, &mut s, 20);
    assert!(any(&ho, |h| h.supervisor), "whisper after key 5: {ho:?}");
    assert!(
        !any(&hc, |h| h.supervisor),
        "the caller still must not: {hc:?}"
    );
    e.end_supervision(sup);
}
