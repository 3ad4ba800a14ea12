//! Engine tests on 127.0.0.1: plain UDP sockets in the test act as the peer.
//! Every exchange is bounded in count and time.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use tokio::sync::mpsc;

use super::clock::worker_of;
use super::dtmf::{DtmfSource, event_payload};
use super::engine::{LegId, MediaConfig, MediaEngine, MediaEvent, PlayOpts, PoolExhausted};
use super::g711;
use super::prompt::{Prompt, PromptLibrary};
use crate::sdp::{Codec, Direction, MediaParams};

fn engine(lo: u16, hi: u16, rtp_timeout: Duration) -> MediaEngine {
    engine_with(lo, hi, rtp_timeout, 2)
}

fn engine_with(lo: u16, hi: u16, rtp_timeout: Duration, workers: usize) -> MediaEngine {
    let cfg = MediaConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        ports: (lo, hi),
        rtp_timeout,
        workers,
        ..MediaConfig::default()
    };
    MediaEngine::start(cfg, Arc::new(PromptLibrary::new())).unwrap()
}

fn peer() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

fn params(codec: Codec, dtmf_pt: Option<u8>, remote: SocketAddr) -> MediaParams {
    MediaParams {
        codec,
        pt: codec.static_pt(),
        dtmf_pt,
        remote,
        direction: Direction::SendRecv,
        ptime_ms: 20,
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Pkt {
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    marker: bool,
    payload: Vec<u8>,
}

fn recv(s: &UdpSocket) -> Pkt {
    let mut buf = [0u8; 2048];
    let (n, _) = s.recv_from(&mut buf).expect("an RTP packet within 2 s");
    let r = RtpReader::new(&buf[..n]).expect("valid RTP");
    Pkt {
        pt: r.payload_type(),
        seq: r.sequence_number().into(),
        ts: r.timestamp(),
        ssrc: r.ssrc(),
        marker: r.mark(),
        payload: r.payload().to_vec(),
    }
}

/// Whether `cond` holds within a second (commands reach the clock
/// asynchronously).
fn soon(cond: impl Fn() -> bool) -> bool {
    within(Duration::from_secs(1), cond)
}

fn within(limit: Duration, cond: impl Fn() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}

fn nothing_within(s: &UdpSocket, d: Duration) -> bool {
    s.set_read_timeout(Some(d)).unwrap();
    let mut buf = [0u8; 2048];
    let quiet = s.recv_from(&mut buf).is_err();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    quiet
}

fn send(s: &UdpSocket, to: SocketAddr, pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) {
    let pkt = RtpPacketBuilder::new()
        .payload_type(pt)
        .sequence(Seq::from(seq))
        .timestamp(ts)
        .ssrc(ssrc)
        .payload(payload)
        .build()
        .unwrap();
    s.send_to(&pkt, to).unwrap();
}

/// Waits (bounded) for the next event.
fn next_event(rx: &mut mpsc::Receiver<MediaEvent>, within: Duration) -> Option<MediaEvent> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(ev) = rx.try_recv() {
            return Some(ev);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits for an event that is not FirstPacket.
fn next_non_first(rx: &mut mpsc::Receiver<MediaEvent>, within: Duration) -> Option<MediaEvent> {
    let deadline = Instant::now() + within;
    while let Some(ev) = next_event(rx, deadline.saturating_duration_since(Instant::now())) {
        if !matches!(ev, MediaEvent::FirstPacket { .. }) {
            return Some(ev);
        }
    }
    None
}

fn prompt(name: &str, frames: usize, base: i16) -> Arc<Prompt> {
    let pcm = (0..frames * 160)
        .map(|i| base.wrapping_add((i % 160) as i16 * 10))
        .collect();
    Arc::new(Prompt::from_pcm(name, pcm))
}

fn start(
    e: &MediaEngine,
    codec: Codec,
    dtmf: Option<u8>,
    remote: SocketAddr,
) -> (LegId, SocketAddr, mpsc::Receiver<MediaEvent>) {
    start_on(e, None, codec, dtmf, remote)
}

/// `start` on a chosen worker (`None`: wherever the engine places it).
fn start_on(
    e: &MediaEngine,
    worker: Option<usize>,
    codec: Codec,
    dtmf: Option<u8>,
    remote: SocketAddr,
) -> (LegId, SocketAddr, mpsc::Receiver<MediaEvent>) {
    let (leg, local) = match worker {
        Some(w) => e.allocate_on(w),
        None => e.allocate(),
    }
    .unwrap();
    let (tx, rx) = mpsc::channel(64);
    e.start_leg(leg, params(codec, dtmf, remote), tx);
    (leg, local, rx)
}

#[test]
fn plays_prompts_as_one_correct_stream() {
    let e = engine(41000, 41019, Duration::from_secs(30));
    let p = peer();
    let (leg, local, mut rx) = start(&e, Codec::Pcmu, Some(101), p.local_addr().unwrap());
    assert_eq!(local.ip(), p.local_addr().unwrap().ip());
    assert_eq!(local.port() % 2, 0);
    let a = prompt("a", 3, 100);
    let b = prompt("b", 2, -3000);
    let opts = PlayOpts {
        token: 7,
        ..PlayOpts::default()
    };
    e.play(leg, vec![a.clone(), b.clone()], opts);
    let first_at = Instant::now();
    let pkts: Vec<Pkt> = (0..5).map(|_| recv(&p)).collect();
    let elapsed = first_at.elapsed();
    let want: Vec<&[u8; 160]> = a.pcmu.iter().chain(b.pcmu.iter()).collect();
    for (i, pk) in pkts.iter().enumerate() {
        assert_eq!(pk.pt, 0);
        assert_eq!(pk.ssrc, pkts[0].ssrc);
        assert_eq!(pk.seq, pkts[0].seq.wrapping_add(i as u16));
        assert_eq!(pk.ts, pkts[0].ts.wrapping_add(160 * i as u32));
        assert_eq!(
            pk.marker,
            i == 0 || i == 3,
            "marker at prompt starts, packet {i}"
        );
        assert_eq!(pk.payload.as_slice(), want[i].as_slice());
    }
    // Paced at 20 ms: five frames span at least four periods.
    assert!(elapsed >= Duration::from_millis(70), "{elapsed:?}");
    assert_eq!(
        next_event(&mut rx, Duration::from_secs(1)),
        Some(MediaEvent::PlaybackDone { leg, token: 7 })
    );
    // Silence, then another prompt: sequence continues, timestamp kept
    // running with the clock, marker set.
    assert!(nothing_within(&p, Duration::from_millis(100)));
    e.play(leg, vec![a.clone()], PlayOpts::default());
    let next = recv(&p);
    assert_eq!(next.seq, pkts[4].seq.wrapping_add(1));
    assert!(next.marker);
    let gap = next.ts.wrapping_sub(pkts[4].ts);
    assert!(gap >= 160 * 6 && gap % 160 == 0, "timestamp gap {gap}");
    assert_eq!(next.ssrc, pkts[0].ssrc);
    e.release(leg);
}

#[test]
fn looped_playback_and_barge_in() {
    let e = engine(41020, 41039, Duration::from_secs(30));
    let p = peer();
    let (leg, local, mut rx) = start(&e, Codec::Pcma, Some(101), p.local_addr().unwrap());
    let moh = prompt("moh", 2, 500);
    e.play(
        leg,
        vec![moh.clone()],
        PlayOpts {
            barge_in: true,
            looped: true,
            token: 1,
        },
    );
    let pkts: Vec<Pkt> = (0..6).map(|_| recv(&p)).collect();
    for (i, pk) in pkts.iter().enumerate() {
        assert_eq!(pk.pt, 8);
        assert_eq!(pk.payload.as_slice(), moh.pcma[i % 2].as_slice());
        assert_eq!(pk.marker, i % 2 == 0);
    }
    // A key press stops a barge-in playback; only the digit is reported.
    send(
        &p,
        local,
        101,
        1,
        9000,
        77,
        &event_payload(3, false, 10, 160),
    );
    assert!(matches!(
        next_event(&mut rx, Duration::from_secs(1)),
        Some(MediaEvent::FirstPacket { .. })
    ));
    assert_eq!(
        next_event(&mut rx, Duration::from_secs(1)),
        Some(MediaEvent::Digit {
            leg,
            digit: '3',
            source: DtmfSource::Rfc4733
        })
    );
    // Drain what was in flight, then silence.
    std::thread::sleep(Duration::from_millis(30));
    let mut buf = [0u8; 256];
    p.set_nonblocking(true).unwrap();
    while p.recv_from(&mut buf).is_ok() {}
    p.set_nonblocking(false).unwrap();
    assert!(nothing_within(&p, Duration::from_millis(120)));
    assert_eq!(next_event(&mut rx, Duration::from_millis(50)), None);
}

#[test]
fn rfc4733_digits_once_each_on_any_ssrc_and_symmetric_rtp() {
    let e = engine(41040, 41059, Duration::from_secs(30));
    let p = peer();
    // SDP said somewhere else (a phone behind NAT): four packets in a row
    // from one source make it the peer, and media moves there.
    let bogus: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (leg, local, mut rx) = start(&e, Codec::Pcmu, Some(101), bogus);
    let audio_ssrc = 0x1111;
    let dtmf_ssrc = 0x2222; // SIPp sends its digits on another SSRC
    for seq in 7..10 {
        send(&p, local, 0, seq, 1000, audio_ssrc, &[0xff; 160]);
    }
    assert_eq!(next_event(&mut rx, Duration::from_millis(150)), None);
    send(&p, local, 0, 10, 1000, audio_ssrc, &[0xff; 160]);
    assert_eq!(
        next_event(&mut rx, Duration::from_secs(1)),
        Some(MediaEvent::FirstPacket {
            leg,
            from: p.local_addr().unwrap()
        })
    );
    let mut seq = 500;
    for (ts, ev) in [(4000u32, 5u8), (8000, 11)] {
        for d in [160u16, 320, 480] {
            send(
                &p,
                local,
                101,
                seq,
                ts,
                dtmf_ssrc,
                &event_payload(ev, false, 10, d),
            );
            seq += 1;
        }
        for _ in 0..3 {
            send(
                &p,
                local,
                101,
                seq,
                ts,
                dtmf_ssrc,
                &event_payload(ev, true, 10, 640),
            );
            seq += 1;
        }
    }
    // A digit on the audio SSRC too (baresip style).
    send(
        &p,
        local,
        101,
        11,
        1160,
        audio_ssrc,
        &event_payload(1, true, 10, 640),
    );
    let mut got = String::new();
    while let Some(ev) = next_event(&mut rx, Duration::from_millis(300)) {
        match ev {
            MediaEvent::Digit {
                digit,
                source: DtmfSource::Rfc4733,
                ..
            } => got.push(digit),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, "5#1");
    // Media now goes to the latched source.
    e.play(leg, vec![prompt("x", 1, 0)], PlayOpts::default());
    assert_eq!(recv(&p).pt, 0);
}

#[test]
fn inband_digits_without_telephone_event() {
    let e = engine(41060, 41079, Duration::from_secs(30));
    let p = peer();
    let (leg, local, mut rx) = start(&e, Codec::Pcma, None, p.local_addr().unwrap());
    let tone = Prompt::tone("7", &[852.0, 1209.0], -12.0, 100, 0, 100);
    let mut frames: Vec<[u8; 160]> = tone.pcma.to_vec();
    frames.extend(std::iter::repeat_n([g711::ALAW_SILENCE; 160], 5));
    for (seq, f) in (1u16..).zip(&frames) {
        send(&p, local, 8, seq, u32::from(seq) * 160, 42, f);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        next_non_first(&mut rx, Duration::from_secs(1)),
        Some(MediaEvent::Digit {
            leg,
            digit: '7',
            source: DtmfSource::Inband
        })
    );
    assert_eq!(next_non_first(&mut rx, Duration::from_millis(100)), None);
}

#[test]
fn rtp_timeout_counts_from_start() {
    let e = engine(41080, 41099, Duration::from_millis(200));
    let p = peer();
    let started = Instant::now();
    let (leg, _local, mut rx) = start(&e, Codec::Pcmu, Some(101), p.local_addr().unwrap());
    assert_eq!(
        next_event(&mut rx, Duration::from_secs(2)),
        Some(MediaEvent::RtpTimeout { leg })
    );
    assert!(started.elapsed() >= Duration::from_millis(190));
    // Reported once, not every tick.
    assert_eq!(next_event(&mut rx, Duration::from_millis(300)), None);
    // An allocated but never started leg does not time out.
    let (_idle, _) = e.allocate().unwrap();
    assert_eq!(next_event(&mut rx, Duration::from_millis(300)), None);
}

#[test]
fn bridge_relays_with_rewriting_and_transcoding_on_one_worker() {
    bridge_relays_with_rewriting_and_transcoding(1, 41100);
}

#[test]
fn bridge_relays_with_rewriting_and_transcoding_across_workers() {
    // The two legs are put on different workers, as happens past PACK legs.
    bridge_relays_with_rewriting_and_transcoding(2, 41140);
}

fn bridge_relays_with_rewriting_and_transcoding(workers: usize, lo: u16) {
    let e = engine_with(lo, lo + 19, Duration::from_secs(30), workers);
    let (pa, pb) = (peer(), peer());
    let (wa, wb) = (Some(0), Some(workers - 1));
    let (a, la, mut rxa) = start_on(&e, wa, Codec::Pcmu, Some(101), pa.local_addr().unwrap());
    let (b, lb, mut rxb) = start_on(&e, wb, Codec::Pcma, Some(96), pb.local_addr().unwrap());
    assert_eq!(worker_of(a) == worker_of(b), workers == 1);
    // B sends a prompt first: the relayed stream must continue its line.
    e.play(b, vec![prompt("p", 1, 0)], PlayOpts::default());
    let before = recv(&pb);
    assert!(matches!(
        next_event(&mut rxb, Duration::from_secs(1)),
        Some(MediaEvent::PlaybackDone { .. })
    ));
    assert_eq!(
        e.clock_stats().watched_legs,
        0,
        "unbridged legs are slot-read"
    );
    e.bridge(a, b);
    assert!(
        soon(|| e.clock_stats().watched_legs == 2),
        "both bridged legs are read on arrival"
    );

    let caller_ssrc = 0xabcdef;
    let frame: Vec<u8> = (0..160).map(|i| (i * 3) as u8).collect();
    // An oversize datagram and garbage are dropped without disturbing anything.
    pa.send_to(&[0x80; 1600], la).unwrap();
    pa.send_to(b"not rtp", la).unwrap();
    for i in 0..4u16 {
        send(
            &pa,
            la,
            0,
            65534u16.wrapping_add(i),
            777 + 160 * u32::from(i),
            caller_ssrc,
            &frame,
        );
    }
    let mut alaw = frame.clone();
    g711::ulaw_to_alaw_in_place(&mut alaw);
    let out: Vec<Pkt> = (0..4).map(|_| recv(&pb)).collect();
    for (i, pk) in out.iter().enumerate() {
        assert_eq!(pk.pt, 8, "PT rewritten to B's codec");
        assert_eq!(pk.ssrc, before.ssrc, "B's own SSRC");
        assert_eq!(
            pk.seq,
            before.seq.wrapping_add(1 + i as u16),
            "sequence continues"
        );
        assert_eq!(pk.ts, out[0].ts.wrapping_add(160 * i as u32));
        assert_eq!(pk.marker, i == 0);
        assert_eq!(pk.payload, alaw, "transcoded µ-law → A-law");
    }
    let ts_gap = out[0].ts.wrapping_sub(before.ts);
    assert!(
        (160..8000 * 2).contains(&ts_gap),
        "timestamp continues B's clock: {ts_gap}"
    );
    // telephone-event passes with B's payload type, and is also reported.
    send(
        &pa,
        la,
        101,
        5,
        4000,
        caller_ssrc,
        &event_payload(9, true, 10, 800),
    );
    let ev = recv(&pb);
    assert_eq!(ev.pt, 96);
    assert_eq!(ev.payload, event_payload(9, true, 10, 800));
    assert_eq!(ev.seq, out[3].seq.wrapping_add(1));
    assert!(matches!(
        next_non_first(&mut rxa, Duration::from_secs(1)),
        Some(MediaEvent::Digit { digit: '9', .. })
    ));
    // The other way: A-law from B arrives at A as µ-law.
    let mut back = vec![g711::alaw_encode(1000); 160];
    send(&pb, lb, 8, 1, 1, 0x55, &back);
    let got = recv(&pa);
    g711::alaw_to_ulaw_in_place(&mut back);
    assert_eq!((got.pt, got.payload), (0, back));
    // Unbridged: nothing more is relayed.
    e.unbridge(a);
    assert!(
        soon(|| e.clock_stats().watched_legs == 0),
        "unbridging returns both legs to their slots"
    );
    send(&pa, la, 0, 7, 1, caller_ssrc, &frame);
    assert!(nothing_within(&pb, Duration::from_millis(100)));
}

/// `n` legs on one worker, each playing looped music to its own peer.
fn music_legs(e: &MediaEngine, n: usize) -> Vec<(LegId, UdpSocket, mpsc::Receiver<MediaEvent>)> {
    let opts = PlayOpts {
        looped: true,
        ..PlayOpts::default()
    };
    (0..n)
        .map(|_| {
            let p = peer();
            let (leg, _, rx) = start(e, Codec::Pcmu, Some(101), p.local_addr().unwrap());
            e.play(leg, vec![prompt("moh", 50, 0)], opts);
            recv(&p);
            (leg, p, rx)
        })
        .collect()
}

/// Stalls the worker of `leg` for `pause` every 800 ms, `times` times: at
/// least one stall falls in every second of that stretch.
fn stall_repeatedly(e: &MediaEngine, leg: LegId, pause: Duration, times: usize) {
    for _ in 0..times {
        e.stall(leg, pause);
        std::thread::sleep(Duration::from_millis(800));
    }
}

#[test]
fn a_clock_that_keeps_falling_behind_says_so_then_recovers() {
    let e = engine_with(41200, 41239, Duration::from_secs(30), 1);
    // Ten legs: each 300 ms stall leaves some 150 frames late or skipped,
    // far over 1% of the second's 500.
    let legs = music_legs(&e, 10);
    stall_repeatedly(&e, legs[0].0, Duration::from_millis(300), 5);
    assert!(
        within(Duration::from_secs(1), || e.behind_share() > 0.1),
        "lasting stalls reported: {}",
        e.behind_share()
    );
    // Undisturbed seconds clear it.
    assert!(
        within(Duration::from_secs(5), || e.behind_share() < 0.01),
        "recovered: {}",
        e.behind_share()
    );
    // A worker with no legs left is not behind.
    stall_repeatedly(&e, legs[0].0, Duration::from_millis(300), 4);
    for (leg, _, _) in &legs {
        e.release(*leg);
    }
    assert!(within(Duration::from_secs(3), || e.behind_share() == 0.0));
}

#[test]
fn one_stall_or_a_quiet_clock_is_not_overload() {
    // One stall of a busy worker: many frames late, but only once.
    let e = engine_with(41240, 41279, Duration::from_secs(30), 1);
    let legs = music_legs(&e, 10);
    e.stall(legs[0].0, Duration::from_millis(300));
    std::thread::sleep(Duration::from_millis(3500));
    let st = e.clock_stats();
    assert!(
        st.late_frames + st.frames_skipped > 100,
        "the stall made frames late or skipped them"
    );
    assert_eq!(e.behind_share(), 0.0);
    // Lasting stalls of a worker with one leg: a few frames a second.
    let e = engine_with(41280, 41289, Duration::from_secs(30), 1);
    let legs = music_legs(&e, 1);
    stall_repeatedly(&e, legs[0].0, Duration::from_millis(100), 5);
    assert!(
        e.clock_stats().late_frames > 0,
        "the stalls made frames late"
    );
    assert_eq!(e.behind_share(), 0.0);
}

#[test]
fn pool_bounds_legs_and_release_frees_ports() {
    let e = engine(41120, 41123, Duration::from_secs(30));
    let (l1, a1) = e.allocate().unwrap();
    let (_l2, a2) = e.allocate().unwrap();
    assert_ne!(a1, a2);
    assert_eq!(e.allocate().unwrap_err(), PoolExhausted);
    assert_eq!(e.ports_in_use(), 2);
    e.release(l1);
    let deadline = Instant::now() + Duration::from_secs(1);
    while e.ports_in_use() != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let (_l3, a3) = e.allocate().unwrap();
    assert_eq!(a3, a1);
}

#[test]
fn ipv6_leg_plays() {
    let Ok(p) = UdpSocket::bind("[::1]:0") else {
        return; // no IPv6 loopback on this host
    };
    p.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let cfg = MediaConfig {
        bind_ip: "::1".parse().unwrap(),
        ports: (41180, 41199),
        workers: 1,
        ..MediaConfig::default()
    };
    let e = MediaEngine::start(cfg, Arc::new(PromptLibrary::new())).unwrap();
    let (leg, local, _rx) = start(&e, Codec::Pcmu, Some(101), p.local_addr().unwrap());
    assert!(local.is_ipv6());
    e.play(leg, vec![prompt("v6", 1, 7)], PlayOpts::default());
    let pk = recv(&p);
    assert_eq!((pk.pt, pk.marker), (0, true));
}

#[test]
fn legs_are_packed_onto_few_workers_and_placed_beside_their_partner() {
    use super::engine::{PACK, place};
    // A light load stays on the first worker; past PACK the next one fills.
    assert_eq!(place(&[0, 0], None), 0);
    assert_eq!(place(&[PACK - 1, 0], None), 0);
    assert_eq!(place(&[PACK, 0], None), 1);
    // All full: the least loaded.
    assert_eq!(place(&[PACK + 7, PACK + 3, PACK + 5], None), 1);
    // Beside the partner, unless the partner's worker carries twice its share.
    assert_eq!(place(&[10, PACK + 1], Some(1)), 1);
    assert_eq!(place(&[10, 2 * PACK], Some(1)), 0);
    assert_eq!(place(&[0, 0], Some(5)), 0, "an unknown worker is ignored");

    // On a real engine: the first legs share worker 0, a partner's leg too.
    let e = engine_with(41400, 41419, Duration::from_secs(30), 2);
    let (a, _) = e.allocate().unwrap();
    let (b, _) = e.allocate_beside(a).unwrap();
    assert_eq!((worker_of(a), worker_of(b)), (0, 0));
    e.release(a);
    e.release(b);
}

/// Sends a complete RFC 4733 key press (start, then three end packets).
fn press(s: &UdpSocket, to: SocketAddr, key: u8, seq: &mut u16, ts: u32) {
    for (end, d) in [(false, 160u16), (true, 640), (true, 640), (true, 640)] {
        send(
            s,
            to,
            101,
            *seq,
            ts,
            0x3333,
            &event_payload(key, end, 10, d),
        );
        *seq += 1;
    }
}

#[test]
fn a_locked_leg_hears_only_its_peer_until_new_sdp() {
    let e = engine(41300, 41319, Duration::from_secs(30));
    let (p, intruder) = (peer(), peer());
    let (leg, local, mut rx) = start(&e, Codec::Pcmu, Some(101), p.local_addr().unwrap());
    let mut seq = 100;
    // A packet from the SDP address is the peer at once.
    send(&p, local, 0, seq, 0, 0x1111, &[0xff; 160]);
    seq += 1;
    assert_eq!(
        next_event(&mut rx, Duration::from_secs(1)),
        Some(MediaEvent::FirstPacket {
            leg,
            from: p.local_addr().unwrap()
        })
    );
    // Another source, however persistent, is not heard and gets nothing.
    for i in 0..5u32 {
        press(&intruder, local, 7, &mut seq, 1000 + i * 800);
    }
    // The kernel itself turns it away (the leg's socket is connected).
    intruder.connect(local).unwrap();
    intruder.send(&[0x80; 12]).unwrap();
    let refused = intruder.recv(&mut [0u8; 64]).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    e.play(leg, vec![prompt("x", 1, 0)], PlayOpts::default());
    assert_eq!(recv(&p).pt, 0);
    assert!(nothing_within(&intruder, Duration::from_millis(100)));
    while let Some(ev) = next_event(&mut rx, Duration::from_millis(200)) {
        assert!(matches!(ev, MediaEvent::PlaybackDone { .. }), "{ev:?}");
    }
    // The peer itself still is.
    press(&p, local, 1, &mut seq, 9000);
    assert!(matches!(
        next_event(&mut rx, Duration::from_secs(1)),
        Some(MediaEvent::Digit { digit: '1', .. })
    ));
    // New SDP names the other address: it is the peer from its first packet.
    e.update(
        leg,
        params(Codec::Pcmu, Some(101), intruder.local_addr().unwrap()),
    );
    std::thread::sleep(Duration::from_millis(20));
    press(&intruder, local, 9, &mut seq, 20000);
    assert_eq!(
        next_event(&mut rx, Duration::from_secs(1)),
        Some(MediaEvent::FirstPacket {
            leg,
            from: intruder.local_addr().unwrap()
        })
    );
    assert!(matches!(
        next_event(&mut rx, Duration::from_secs(1)),
        Some(MediaEvent::Digit { digit: '9', .. })
    ));
    e.play(leg, vec![prompt("x", 1, 0)], PlayOpts::default());
    assert_eq!(recv(&intruder).pt, 0);
}

#[test]
fn an_unlocked_leg_follows_a_source_that_keeps_sending() {
    let cfg = MediaConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        ports: (41320, 41339),
        strict_rtp: false,
        workers: 1,
        ..MediaConfig::default()
    };
    let e = MediaEngine::start(cfg, Arc::new(PromptLibrary::new())).unwrap();
    let (p, moved) = (peer(), peer());
    let (leg, local, mut rx) = start(&e, Codec::Pcmu, None, p.local_addr().unwrap());
    send(&p, local, 0, 1, 0, 0x1111, &[0xff; 160]);
    assert!(matches!(
        next_event(&mut rx, Duration::from_secs(1)),
        Some(MediaEvent::FirstPacket { .. })
    ));
    // Nine in a row from elsewhere are not enough...
    for seq in 2..11 {
        send(&moved, local, 0, seq, 0, 0x1111, &[0xff; 160]);
    }
    std::thread::sleep(Duration::from_millis(150));
    e.play(leg, vec![prompt("x", 1, 0)], PlayOpts::default());
    assert_eq!(recv(&p).pt, 0);
    assert!(nothing_within(&moved, Duration::from_millis(100)));
    // ... the tenth is (a NAT that rebound mid-call).
    for seq in 11..21 {
        send(&moved, local, 0, seq, 0, 0x1111, &[0xff; 160]);
    }
    std::thread::sleep(Duration::from_millis(150));
    e.play(leg, vec![prompt("x", 1, 0)], PlayOpts::default());
    assert_eq!(recv(&moved).pt, 0);
}

#[test]
fn the_sdp_address_takes_over_from_a_source_learnt_on_probation() {
    let e = engine(41340, 41359, Duration::from_secs(30));
    let (sdp_peer, other) = (peer(), peer());
    let (leg, local, mut rx) = start(&e, Codec::Pcmu, None, sdp_peer.local_addr().unwrap());
    // Before the SDP address speaks, four in a row from elsewhere win...
    for seq in 0..4 {
        send(&other, local, 0, seq, 0, 0x1111, &[0xff; 160]);
    }
    assert_eq!(
        next_event(&mut rx, Duration::from_secs(1)),
        Some(MediaEvent::FirstPacket {
            leg,
            from: other.local_addr().unwrap()
        })
    );
    e.play(leg, vec![prompt("x", 1, 0)], PlayOpts::default());
    assert_eq!(recv(&other).pt, 0);
    // ... until one packet from the SDP address takes the stream back.
    send(&sdp_peer, local, 0, 1, 0, 0x2222, &[0xff; 160]);
    std::thread::sleep(Duration::from_millis(150));
    e.play(leg, vec![prompt("x", 1, 0)], PlayOpts::default());
    assert_eq!(recv(&sdp_peer).pt, 0);
    assert!(nothing_within(&other, Duration::from_millis(100)));
    // And now nobody else is heard: the socket is locked to it.
    other.connect(local).unwrap();
    other.send(&[0x80; 12]).unwrap();
    let refused = other.recv(&mut [0u8; 64]).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

// ---- SRTP legs -------------------------------------------------------------

use super::srtp::LegSrtp;
use crate::sdp::{SrtpKey, SrtpParams, SrtpSuite};

/// Keys for one SRTP leg and the mirrored context its peer uses.
fn srtp_keys(suite: SrtpSuite) -> (SrtpParams, LegSrtp) {
    let ours = SrtpParams {
        suite,
        local_key: SrtpKey::random(),
        remote_key: SrtpKey::random(),
    };
    let theirs = SrtpParams {
        suite,
        local_key: ours.remote_key.clone(),
        remote_key: ours.local_key.clone(),
    };
    (ours, LegSrtp::new(&theirs))
}

fn start_secure(
    e: &MediaEngine,
    codec: Codec,
    dtmf: Option<u8>,
    remote: SocketAddr,
    srtp: SrtpParams,
) -> (LegId, SocketAddr, mpsc::Receiver<MediaEvent>) {
    let (leg, local) = e.allocate().unwrap();
    let (tx, rx) = mpsc::channel(64);
    e.start_leg_secure(leg, params(codec, dtmf, remote), Some(srtp), tx);
    (leg, local, rx)
}

/// Protects an RTP packet with the peer's context and sends it.
#[allow(clippy::too_many_arguments)]
fn send_srtp(
    s: &UdpSocket,
    to: SocketAddr,
    ctx: &mut LegSrtp,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) -> Vec<u8> {
    let pkt = RtpPacketBuilder::new()
        .payload_type(pt)
        .sequence(Seq::from(seq))
        .timestamp(ts)
        .ssrc(ssrc)
        .payload(payload)
        .build()
        .unwrap();
    let wire = ctx.protect(&pkt).unwrap().to_vec();
    s.send_to(&wire, to).unwrap();
    wire
}

/// Receives one SRTP packet and decrypts it with the peer's context.
fn recv_srtp(s: &UdpSocket, ctx: &mut LegSrtp, tag_len: usize) -> Pkt {
    let mut buf = [0u8; 2048];
    let (n, _) = s.recv_from(&mut buf).expect("an SRTP packet within 2 s");
    let plain = ctx
        .unprotect(&buf[..n])
        .expect("verifies with the answered key");
    assert_eq!(plain.len() + tag_len, n, "the tag is on the wire");
    let r = RtpReader::new(&plain).expect("valid RTP inside");
    assert_ne!(
        &buf[n - tag_len - r.payload().len()..n - tag_len],
        r.payload(),
        "the payload on the wire is not the plaintext"
    );
    Pkt {
        pt: r.payload_type(),
        seq: r.sequence_number().into(),
        ts: r.timestamp(),
        ssrc: r.ssrc(),
        marker: r.mark(),
        payload: r.payload().to_vec(),
    }
}

#[test]
fn srtp_leg_bridged_to_a_plain_leg_both_ways() {
    let e = engine(41500, 41519, Duration::from_secs(30));
    let (pa, pb) = (peer(), peer());
    // The operator (A) is encrypted, the carrier's caller (B) is not.
    let (keys, mut peer_ctx) = srtp_keys(SrtpSuite::AesCm128HmacSha1_80);
    let (a, la, mut rxa) = start_secure(&e, Codec::Pcmu, Some(101), pa.local_addr().unwrap(), keys);
    let (b, lb, _rxb) = start(&e, Codec::Pcma, Some(96), pb.local_addr().unwrap());
    e.bridge(a, b);
    assert!(soon(|| e.clock_stats().watched_legs == 2));
    // SRTP in, plain (and transcoded) out.
    let frame: Vec<u8> = (0..160).map(|i| (i * 7) as u8).collect();
    for i in 0..3u16 {
        send_srtp(
            &pa,
            la,
            &mut peer_ctx,
            0,
            100 + i,
            1000 + 160 * u32::from(i),
            0x1234,
            &frame,
        );
    }
    let mut alaw = frame.clone();
    g711::ulaw_to_alaw_in_place(&mut alaw);
    for _ in 0..3 {
        let pk = recv(&pb);
        assert_eq!((pk.pt, &pk.payload), (8, &alaw));
    }
    assert!(matches!(
        next_event(&mut rxa, Duration::from_secs(1)),
        Some(MediaEvent::FirstPacket { .. })
    ));
    // Plain in, SRTP out: the peer decrypts it with the answered key.
    let back = vec![g711::alaw_encode(-2000); 160];
    for i in 0..3u16 {
        send(&pb, lb, 8, 7 + i, 160 * u32::from(i), 0x55, &back);
    }
    let mut ulaw = back.clone();
    g711::alaw_to_ulaw_in_place(&mut ulaw);
    let got: Vec<Pkt> = (0..3).map(|_| recv_srtp(&pa, &mut peer_ctx, 10)).collect();
    for (i, pk) in got.iter().enumerate() {
        assert_eq!((pk.pt, &pk.payload), (0, &ulaw));
        assert_eq!(pk.seq, got[0].seq.wrapping_add(i as u16));
    }
    // Telephone-events cross too, and are detected after decryption.
    send_srtp(
        &pa,
        la,
        &mut peer_ctx,
        101,
        200,
        5000,
        0x1234,
        &event_payload(4, true, 10, 800),
    );
    let ev = recv(&pb);
    assert_eq!(
        (ev.pt, ev.payload),
        (96, event_payload(4, true, 10, 800).to_vec())
    );
    assert_eq!(
        next_event(&mut rxa, Duration::from_secs(1)),
        Some(MediaEvent::Digit {
            leg: a,
            digit: '4',
            source: DtmfSource::Rfc4733
        })
    );
    let st = e.clock_stats();
    assert_eq!((st.srtp_auth_failed, st.srtp_replayed), (0, 0));
}

#[test]
fn srtp_prompts_are_protected_and_digits_read_after_decryption() {
    let e = engine(41520, 41539, Duration::from_secs(30));
    let p = peer();
    let (keys, mut peer_ctx) = srtp_keys(SrtpSuite::AesCm128HmacSha1_32);
    let (leg, local, mut rx) =
        start_secure(&e, Codec::Pcma, Some(101), p.local_addr().unwrap(), keys);
    let music = prompt("moh", 50, 900);
    e.play(
        leg,
        vec![music.clone()],
        PlayOpts {
            barge_in: true,
            ..PlayOpts::default()
        },
    );
    for i in 0..3 {
        let pk = recv_srtp(&p, &mut peer_ctx, 4);
        assert_eq!(pk.payload.as_slice(), music.pcma[i].as_slice());
        assert_eq!(pk.marker, i == 0);
    }
    let press = [(false, 160u16), (true, 640), (true, 640), (true, 640)];
    for (seq, (end, d)) in (1u16..).zip(press) {
        send_srtp(
            &p,
            local,
            &mut peer_ctx,
            101,
            seq,
            8000,
            9,
            &event_payload(2, end, 10, d),
        );
    }
    assert_eq!(
        next_non_first(&mut rx, Duration::from_secs(1)),
        Some(MediaEvent::Digit {
            leg,
            digit: '2',
            source: DtmfSource::Rfc4733
        })
    );
}

#[test]
fn tampered_forged_and_replayed_srtp_is_dropped_and_counted() {
    let e = engine(41540, 41559, Duration::from_secs(30));
    let (pa, pb, intruder) = (peer(), peer(), peer());
    let (keys, mut peer_ctx) = srtp_keys(SrtpSuite::AesCm128HmacSha1_80);
    // The SDP address is not where the peer sends from (NAT), so a source
    // could take the stream on probation: only verified packets count.
    let nat: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let (a, la, mut rxa) = start_secure(&e, Codec::Pcmu, Some(101), nat, keys);
    let (b, _lb, _rxb) = start(&e, Codec::Pcmu, Some(101), pb.local_addr().unwrap());
    e.bridge(a, b);
    assert!(soon(|| e.clock_stats().watched_legs == 2));
    // An intruder without the key: plain RTP, and SRTP under a wrong key.
    let (_, mut wrong) = srtp_keys(SrtpSuite::AesCm128HmacSha1_80);
    for seq in 0..6u16 {
        send(&intruder, la, 0, seq, 0, 0x777, &[0xff; 160]);
        send_srtp(&intruder, la, &mut wrong, 0, seq, 0, 0x778, &[0xff; 160]);
    }
    assert!(
        nothing_within(&pb, Duration::from_millis(100)),
        "nothing relayed"
    );
    assert_eq!(
        next_event(&mut rxa, Duration::from_millis(50)),
        None,
        "no latch"
    );
    assert!(soon(|| e.clock_stats().srtp_auth_failed == 12));
    // The real peer: four verified packets latch it (probation) and relay.
    let frame = [0x42u8; 160];
    let mut wire = Vec::new();
    for seq in 10..14u16 {
        wire.push(send_srtp(&pa, la, &mut peer_ctx, 0, seq, 0, 0x1234, &frame));
    }
    // (The first three were verified, then held back by probation.)
    assert_eq!(recv(&pb).payload, frame);
    assert!(matches!(
        next_event(&mut rxa, Duration::from_secs(1)),
        Some(MediaEvent::FirstPacket { .. })
    ));
    // A tampered copy of a new packet, then replays of old ones.
    let mut next = send_srtp(&pa, la, &mut peer_ctx, 0, 14, 0, 0x1234, &frame);
    assert_eq!(recv(&pb).payload, frame);
    next[2..4].copy_from_slice(&15u16.to_be_bytes());
    pa.send_to(&next, la).unwrap();
    for w in &wire {
        pa.send_to(w, la).unwrap();
    }
    assert!(
        nothing_within(&pb, Duration::from_millis(100)),
        "none relayed"
    );
    assert!(soon(|| {
        let st = e.clock_stats();
        (st.srtp_auth_failed, st.srtp_replayed) == (13, 4)
    }));
}

#[test]
fn srtp_keeps_decrypting_across_the_sequence_wrap() {
    let e = engine(41560, 41579, Duration::from_secs(30));
    let (pa, pb) = (peer(), peer());
    let (keys, mut peer_ctx) = srtp_keys(SrtpSuite::AesCm128HmacSha1_80);
    let (a, la, _rxa) = start_secure(&e, Codec::Pcmu, Some(101), pa.local_addr().unwrap(), keys);
    let (b, _lb, _rxb) = start(&e, Codec::Pcmu, Some(101), pb.local_addr().unwrap());
    e.bridge(a, b);
    assert!(soon(|| e.clock_stats().watched_legs == 2));
    // 65530 .. 65535, then 0 .. 9 under the next rollover count.
    for (i, seq) in (65530u16..=65535).chain(0..10).enumerate() {
        let frame = [i as u8; 160];
        send_srtp(
            &pa,
            la,
            &mut peer_ctx,
            0,
            seq,
            160 * i as u32,
            0x4321,
            &frame,
        );
        assert_eq!(recv(&pb).payload, frame, "packet {i} (seq {seq})");
    }
    assert_eq!(e.clock_stats().srtp_auth_failed, 0);
}

#[test]
fn update_secure_rekeys_and_turns_srtp_off() {
    let e = engine(41580, 41599, Duration::from_secs(30));
    let p = peer();
    let (keys, mut peer_ctx) = srtp_keys(SrtpSuite::AesCm128HmacSha1_80);
    let remote = p.local_addr().unwrap();
    let (leg, _local, _rx) = start_secure(&e, Codec::Pcmu, Some(101), remote, keys.clone());
    let x = prompt("x", 1, 0);
    e.play(leg, vec![x.clone()], PlayOpts::default());
    recv_srtp(&p, &mut peer_ctx, 10);
    // A plain update (old API) keeps SRTP.
    e.update(leg, params(Codec::Pcmu, Some(101), remote));
    e.play(leg, vec![x.clone()], PlayOpts::default());
    recv_srtp(&p, &mut peer_ctx, 10);
    // New local key: the peer needs the new one.
    let (mut rekeyed, _) = srtp_keys(SrtpSuite::AesCm128HmacSha1_80);
    rekeyed.remote_key = keys.remote_key.clone();
    e.update_secure(
        leg,
        params(Codec::Pcmu, Some(101), remote),
        Some(rekeyed.clone()),
    );
    e.play(leg, vec![x.clone()], PlayOpts::default());
    let mut buf = [0u8; 2048];
    let (n, _) = p.recv_from(&mut buf).unwrap();
    assert!(
        peer_ctx.unprotect(&buf[..n]).is_err(),
        "old key no longer fits"
    );
    let mut new_peer = LegSrtp::new(&SrtpParams {
        suite: rekeyed.suite,
        local_key: rekeyed.remote_key.clone(),
        remote_key: rekeyed.local_key.clone(),
    });
    e.play(leg, vec![x.clone()], PlayOpts::default());
    recv_srtp(&p, &mut new_peer, 10);
    // Off: plain RTP again.
    e.update_secure(leg, params(Codec::Pcmu, Some(101), remote), None);
    e.play(leg, vec![x.clone()], PlayOpts::default());
    let pk = recv(&p);
    assert_eq!(pk.payload.as_slice(), x.pcmu[0].as_slice());
}

/// Two started PCMU legs bridged to each other, each with its peer.
struct BridgedPair {
    a: LegId,
    la: SocketAddr,
    pa: UdpSocket,
    b: LegId,
    lb: SocketAddr,
    pb: UdpSocket,
    _events: [mpsc::Receiver<MediaEvent>; 2],
}

fn bridged_pcmu_pair(e: &MediaEngine) -> BridgedPair {
    let (pa, pb) = (peer(), peer());
    let (a, la, rxa) = start(e, Codec::Pcmu, Some(101), pa.local_addr().unwrap());
    let (b, lb, rxb) = start(e, Codec::Pcmu, Some(101), pb.local_addr().unwrap());
    e.bridge(a, b);
    BridgedPair {
        a,
        la,
        pa,
        b,
        lb,
        pb,
        _events: [rxa, rxb],
    }
}

/// An operator's transfer that fails: the caller's leg leaves the bridge,
/// hears music for a moment, and is bridged to the same partner again.
/// Relaying must resume both ways.
#[test]
fn a_bridge_made_again_after_an_unbridge_relays_both_ways() {
    let e = engine(20940, 20959, Duration::from_secs(30));
    let BridgedPair {
        a,
        la,
        pa,
        b,
        lb,
        pb,
        ..
    } = bridged_pcmu_pair(&e);
    let frame = vec![0x55u8; 160];
    send(&pa, la, 0, 1, 160, 0x1111, &frame);
    assert_eq!(recv(&pb).payload, frame);
    send(&pb, lb, 0, 1, 160, 0x2222, &frame);
    assert_eq!(recv(&pa).payload, frame);
    e.unbridge(a);
    e.play(a, vec![prompt("moh", 50, 0)], PlayOpts::default());
    e.bridge(a, b);
    // Music packets sent to A before the bridge took over are skipped.
    std::thread::sleep(Duration::from_millis(100));
    pa.set_read_timeout(Some(Duration::from_millis(30)))
        .unwrap();
    while pa.recv_from(&mut [0u8; 2048]).is_ok() {}
    pa.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    for i in 2..6u16 {
        send(&pa, la, 0, i, 160 * u32::from(i), 0x1111, &frame);
        assert_eq!(recv(&pb).payload, frame, "A → B after the new bridge");
        send(&pb, lb, 0, i, 160 * u32::from(i), 0x2222, &frame);
        assert_eq!(recv(&pa).payload, frame, "B → A after the new bridge");
    }
}

/// An operator's phone holds the call (its SDP: sendonly, so we send it
/// nothing) and resumes: the relay into it stops and comes back.
#[test]
fn a_held_leg_gets_no_relay_until_it_resumes() {
    let e = engine(20960, 20979, Duration::from_secs(30));
    let BridgedPair { la, pa, b, pb, .. } = bridged_pcmu_pair(&e);
    let frame = vec![0x33u8; 160];
    send(&pa, la, 0, 1, 160, 0x1111, &frame);
    assert_eq!(recv(&pb).payload, frame);
    let mut held = params(Codec::Pcmu, Some(101), pb.local_addr().unwrap());
    held.direction = Direction::RecvOnly;
    e.update(b, held);
    std::thread::sleep(Duration::from_millis(50));
    send(&pa, la, 0, 2, 320, 0x1111, &frame);
    assert!(
        nothing_within(&pb, Duration::from_millis(150)),
        "held: nothing relayed"
    );
    e.update(b, params(Codec::Pcmu, Some(101), pb.local_addr().unwrap()));
    std::thread::sleep(Duration::from_millis(50));
    for i in 3..6u16 {
        send(&pa, la, 0, i, 160 * u32::from(i), 0x1111, &frame);
        assert_eq!(recv(&pb).payload, frame, "resumed: relayed again");
    }
}
