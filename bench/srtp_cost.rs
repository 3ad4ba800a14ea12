//! What SRTP costs per packet, two ways, as ratios to plain RTP in the
//! same run (the machine is shared and noisy; compare rows, not runs).
//!
//! 1. In isolation: building an RTP packet (what the media clock does per
//!    frame) against building and protecting it, and parsing one against
//!    unprotecting and parsing it, with the crate and settings the media
//!    room uses (`webrtc-srtp`, AES_CM_128_HMAC_SHA1_80 and _32, replay
//!    window 128), over 160-byte G.711 frames. Nanoseconds per packet.
//! 2. In the engine: N legs playing looped music to a loopback sink, plain
//!    against SRTP (alternating, twice each), CPU of the whole process per
//!    packet sent. This includes the kernel's send, which dominates.
//!
//! Run: `cargo bench --bench srtp_cost [-- LEGS SECONDS]` (defaults: 500
//! legs, 5 s per step). Traffic stays on 127.0.0.1 and every step stops by
//! itself; the sink is never read.

use std::hint::black_box;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conmutador::media::{MediaConfig, MediaEngine, PlayOpts, Prompt, PromptLibrary};
use conmutador::sdp::{Codec, Direction, MediaParams, SrtpKey, SrtpParams, SrtpSuite};
use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use webrtc_srtp::context::Context;
use webrtc_srtp::option::srtp_replay_protection;
use webrtc_srtp::protection_profile::ProtectionProfile;

const PACKETS: u32 = 200_000;

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn build(seq: u16, out: &mut [u8]) -> usize {
    let payload = [0x55u8; 160];
    RtpPacketBuilder::new()
        .payload_type(0)
        .ssrc(0x1234_5678)
        .sequence(Seq::from(seq))
        .timestamp(u32::from(seq) * 160)
        .payload(&payload)
        .build_into(out)
        .expect("fits")
}

fn ns_per(n: u32, f: impl FnMut(u32)) -> f64 {
    let mut f = f;
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

fn isolation() {
    println!("1. per packet in isolation ({PACKETS} packets of 160 B payload):");
    println!("| work | plain ns | _80 ns | _80 ÷ plain | _32 ns | _32 ÷ plain |");
    println!("|---|---:|---:|---:|---:|---:|");
    let key = SrtpKey::random();
    let ctx = |profile, replay: bool| {
        Context::new(
            key.master_key(),
            key.master_salt(),
            profile,
            replay.then(|| srtp_replay_protection(128)),
            None,
        )
        .expect("key lengths")
    };
    let mut out = [0u8; 1600];
    let plain_build = ns_per(PACKETS, |i| {
        black_box(build(i as u16, &mut out));
    });
    let mut rows = [(0.0, 0.0), (0.0, 0.0)];
    let profiles = [
        ProtectionProfile::Aes128CmHmacSha1_80,
        ProtectionProfile::Aes128CmHmacSha1_32,
    ];
    let mut wire: Vec<Vec<Vec<u8>>> = Vec::new();
    for (k, &profile) in profiles.iter().enumerate() {
        let mut tx = ctx(profile, false);
        rows[k].0 = ns_per(PACKETS, |i| {
            let len = build(i as u16, &mut out);
            black_box(tx.encrypt_rtp(&out[..len]).expect("protects"));
        });
        // The same packets again, kept for the receive side (untimed).
        let mut tx = ctx(profile, false);
        let packets = (0..PACKETS)
            .map(|i| {
                let len = build(i as u16, &mut out);
                tx.encrypt_rtp(&out[..len]).expect("protects").to_vec()
            })
            .collect();
        wire.push(packets);
    }
    // Parse: what a plain leg does with a received packet before digits.
    let plain: Vec<Vec<u8>> = (0..PACKETS)
        .map(|i| {
            let len = build(i as u16, &mut out);
            out[..len].to_vec()
        })
        .collect();
    let plain_parse = ns_per(PACKETS, |i| {
        let r = RtpReader::new(&plain[i as usize]).expect("rtp");
        black_box(r.payload().len());
    });
    for (k, &profile) in profiles.iter().enumerate() {
        let mut rx = ctx(profile, true);
        let packets = &wire[k];
        rows[k].1 = ns_per(PACKETS, |i| {
            let p = rx.decrypt_rtp(&packets[i as usize]).expect("verifies");
            let r = RtpReader::new(&p).expect("rtp");
            black_box(r.payload().len());
        });
    }
    println!(
        "| build (+ protect) | {plain_build:.0} | {:.0} | {:.1}× | {:.0} | {:.1}× |",
        rows[0].0,
        rows[0].0 / plain_build,
        rows[1].0,
        rows[1].0 / plain_build
    );
    println!(
        "| (unprotect +) parse | {plain_parse:.0} | {:.0} | {:.1}× | {:.0} | {:.1}× |",
        rows[0].1,
        rows[0].1 / plain_parse,
        rows[1].1,
        rows[1].1 / plain_parse
    );
}

/// CPU seconds per packet sent with `legs` legs playing music, SRTP or not.
fn engine_step(legs: usize, secs: u64, srtp: bool, port: u16) -> std::io::Result<(f64, f64)> {
    let cfg = MediaConfig {
        bind_ip: "127.0.0.1".parse().expect("literal address"),
        ports: (port, port + (legs as u16) * 2 + 100),
        rtp_timeout: Duration::from_secs(3600),
        ..MediaConfig::default()
    };
    let engine = MediaEngine::start(cfg, Arc::new(PromptLibrary::new()))?;
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    let prompt = Arc::new(Prompt::hold_music("moh"));
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let mut ids = Vec::with_capacity(legs);
    for _ in 0..legs {
        let (leg, _) = engine
            .allocate()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let params = MediaParams {
            codec: Codec::Pcmu,
            pt: 0,
            dtmf_pt: Some(101),
            remote: sink.local_addr()?,
            direction: Direction::SendRecv,
            ptime_ms: 20,
        };
        let keys = srtp.then(|| SrtpParams {
            suite: SrtpSuite::AesCm128HmacSha1_80,
            local_key: SrtpKey::random(),
            remote_key: SrtpKey::random(),
        });
        engine.start_leg_secure(leg, params, keys, tx.clone());
        let opts = PlayOpts {
            looped: true,
            ..PlayOpts::default()
        };
        engine.play(leg, vec![prompt.clone()], opts);
        ids.push(leg);
    }
    std::thread::sleep(Duration::from_secs(1));
    engine.reset_clock_stats();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let sent = engine.clock_stats().frames_sent;
    let cpu = cpu_seconds() - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    for leg in ids {
        engine.release(leg);
    }
    while rx.try_recv().is_ok() {}
    Ok((cpu / sent.max(1) as f64, sent as f64 / wall))
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let legs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(500);
    let secs: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    isolation();
    println!();
    println!("2. in the engine: {legs} legs playing music, {secs} s per step, loopback sink:");
    println!("| step | packets/s | process CPU per packet sent (µs) |");
    println!("|---|---:|---:|");
    let mut plain = Vec::new();
    let mut srtp = Vec::new();
    for round in 0..2u16 {
        for secure in [false, true] {
            let port = 42000 + round * 4000 + if secure { 2000 } else { 0 };
            let (cpu, rate) = engine_step(legs, secs, secure, port)?;
            let name = if secure { "SRTP _80" } else { "plain" };
            println!("| {name} | {rate:.0} | {:.2} |", cpu * 1e6);
            if secure {
                srtp.push(cpu);
            } else {
                plain.push(cpu);
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!();
    println!(
        "SRTP ÷ plain, CPU per packet in the engine: {:.2}×",
        mean(&srtp) / mean(&plain)
    );
    Ok(())
}
