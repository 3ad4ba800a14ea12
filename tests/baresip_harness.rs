//! Self-tests of the baresip harness (`tests/common/baresip.rs`) against SIPp
//! and against itself, all on 127.0.0.1: a caller that dials, records and
//! presses RFC 4733 digits; an operator phone that registers with digest auth,
//! auto-answers and plays its WAV. No conmutador code is involved, so a
//! failure here is the harness's (or the machine's), not the gateway's.
//!
//! Our own ears are an `RtpSink`: the SDP SIPp sends points the phone's RTP at
//! a UDP socket of this test, which decodes G.711 and RFC 4733 itself.
//! Every process is started here and killed by PID; SIPp runs with `-m 1`,
//! `-timeout` and `-recv_timeout`, baresip with `-t`.

#[path = "common/baresip.rs"]
mod baresip;

use baresip::{Baresip, BaresipOpts, free_port_block, rms, tone_frequency};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Generous: 6 sessions share 2 cores.
const LIMIT: Duration = Duration::from_secs(25);
const G711A_PCAP: &str = "/usr/share/sip-tester/g711a.pcap";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One SIPp process running one scenario for one call.
struct Sipp {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Sipp {
    /// Starts SIPp; retries with other ports if it dies at once (a port
    /// taken between our probe and its bind).
    fn start(scenario: &str, keys: &[(&str, &str)]) -> Sipp {
        let mut last = String::new();
        for _ in 0..4 {
            match Sipp::try_start(scenario, keys) {
                Ok(s) => return s,
                Err(report) => last = report,
            }
        }
        panic!("sipp did not start:\n{last}");
    }

    fn try_start(scenario: &str, keys: &[(&str, &str)]) -> Result<Sipp, String> {
        let dir = tempfile::Builder::new()
            .prefix("sipp-")
            .tempdir()
            .expect("temp dir for sipp");
        // SIP port, then media ports (SIPp takes mp and mp+2 for audio/video).
        let base = free_port_block(8);
        let (port, media) = (base, base + 4);
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(repo().join("tests/sipp").join(scenario))
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-mp", &media.to_string()])
            .args(["-m", "1", "-timeout", "60s", "-timeout_error"])
            .args(["-recv_timeout", "30000", "-nostdin"])
            .args(["-trace_msg", "-trace_err"])
            .arg("-message_file")
            .arg(dir.path().join("messages.log"))
            .arg("-error_file")
            .arg(dir.path().join("errors.log"));
        for (k, v) in keys {
            cmd.args(["-key", k, v]);
        }
        let out = std::fs::File::create(dir.path().join("sipp.out")).expect("sipp.out");
        let err = out.try_clone().expect("dup sipp.out");
        let child = cmd
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn sipp");
        let mut s = Sipp { child, dir, port };
        // Wait until its SIP socket is bound (read from /proc, not by probing
        // the port, which could itself steal it): a phone that REGISTERs to a
        // closed port is refused and waits a long time before retrying.
        let ready = eventually(LIMIT, || {
            udp_bound(port) || !matches!(s.child.try_wait(), Ok(None))
        });
        if ready && matches!(s.child.try_wait(), Ok(None)) {
            Ok(s)
        } else {
            Err(s.report())
        }
    }

    fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Exit code once SIPp is done (0: the call followed the scenario).
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let mut code = None;
        eventually(limit, || match self.child.try_wait() {
            Ok(Some(st)) => {
                code = Some(st.code().unwrap_or(-1));
                true
            }
            _ => false,
        });
        code
    }

    fn messages(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("messages.log")).unwrap_or_default()
    }

    fn report(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!(
            "--- sipp.out ---\n{}\n--- errors ---\n{}\n--- messages ---\n{}",
            read("sipp.out"),
            read("errors.log"),
            read("messages.log")
        )
    }

    /// The SIP messages SIPp received (bodies of "message received" blocks).
    fn received(&self) -> Vec<String> {
        let text = self.messages();
        text.split("----------------------------------------------- ")
            .filter_map(|block| {
                let (head, msg) = block.split_once('\n')?;
                let _ = head;
                let (kind, msg) = msg.split_once('\n')?;
                kind.contains("message received")
                    .then(|| msg.trim_start().to_string())
            })
            .collect()
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
    }
}

/// Whether some socket is bound to UDP 127.0.0.1:port (or 0.0.0.0:port).
fn udp_bound(port: u16) -> bool {
    let want = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .map(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace().nth(1).is_some_and(|local| {
                    local.ends_with(&want)
                        && (local.starts_with("0100007F") || local.starts_with("00000000"))
                })
            })
        })
        .unwrap_or(false)
}

#[derive(Clone, Debug)]
struct Rtp {
    pt: u8,
    ts: u32,
    payload: Vec<u8>,
}

/// A UDP socket standing in for a media peer: keeps every RTP packet.
struct RtpSink {
    port: u16,
    packets: Arc<Mutex<Vec<Rtp>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RtpSink {
    fn start() -> RtpSink {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind rtp sink");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set read timeout");
        let port = sock.local_addr().expect("sink address").port();
        let packets = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (packets, stop) = (packets.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = sock.recv(&mut buf) else { continue };
                    let p = &buf[..n];
                    // RTP v2, no CSRC/extension from these peers; cap at 10 min.
                    if n < 12 || p[0] >> 6 != 2 {
                        continue;
                    }
                    let start = 12 + 4 * usize::from(p[0] & 0x0f);
                    let mut v = packets.lock().expect("sink lock");
                    if start <= n && v.len() < 30_000 {
                        v.push(Rtp {
                            pt: p[1] & 0x7f,
                            ts: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                            payload: p[start..].to_vec(),
                        });
                    }
                }
            })
        };
        RtpSink {
            port,
            packets,
            stop,
            thread: Some(thread),
        }
    }

    fn packets(&self) -> Vec<Rtp> {
        self.packets.lock().expect("sink lock").clone()
    }

    /// Decoded G.711 audio (PT 0 / 8), in arrival order.
    fn audio(&self) -> Vec<i16> {
        let mut out = Vec::new();
        for p in self.packets() {
            match p.pt {
                0 => out.extend(p.payload.iter().map(|&b| ulaw_to_linear(b))),
                8 => out.extend(p.payload.iter().map(|&b| alaw_to_linear(b))),
                _ => {}
            }
        }
        out
    }

    /// RFC 4733 digits (PT `pt`): one per event timestamp, counted only once
    /// its end packet arrived.
    fn digits(&self, pt: u8) -> String {
        let mut seen: Vec<(u32, u8, bool)> = Vec::new();
        for p in self
            .packets()
            .iter()
            .filter(|p| p.pt == pt && p.payload.len() >= 4)
        {
            let end = p.payload[1] & 0x80 != 0;
            match seen.iter_mut().find(|(ts, _, _)| *ts == p.ts) {
                Some(entry) => entry.2 |= end,
                None => seen.push((p.ts, p.payload[0], end)),
            }
        }
        seen.iter()
            .filter(|(_, _, end)| *end)
            .map(|&(_, ev, _)| match ev {
                0..=9 => char::from(b'0' + ev),
                10 => '*',
                11 => '#',
                12..=15 => char::from(b'A' + ev - 12),
                _ => '?',
            })
            .collect()
    }
}

impl Drop for RtpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// G.711 expansions (ITU-T G.711 tables in closed form), written here rather
// than borrowed from the gateway so a codec bug there cannot hide here.
fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let t = ((i32::from(u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let mut t = i32::from(a & 0x0f) << 4;
    let seg = (a & 0x70) >> 4;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (seg - 1),
    };
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/audio").join(name)
}

fn assert_tools() {
    for (tool, path) in [("sipp", "/usr/bin/sipp"), ("pcap", G711A_PCAP)] {
        assert!(Path::new(path).exists(), "{tool} missing at {path}");
    }
}

/// Caller role: dial SIPp, hear its PCMA pcap, press digits SIPp's SDP
/// routes to our sink, hang up.
#[test]
fn caller_dials_records_what_it_hears_and_sends_rfc4733_digits() {
    assert_tools();
    let sink = RtpSink::start();
    let sink_port = sink.port.to_string();
    let mut sipp = Sipp::start(
        "uas_answer_audio.xml",
        &[("rtp_sink", &sink_port), ("audio_pcap", G711A_PCAP)],
    );
    let phone = Baresip::start(BaresipOpts::caller());

    phone.dial(&format!("sip:uas@{}", sipp.addr()));
    assert!(phone.wait_call_established(LIMIT), "call not established");

    // Two seconds of the pcap's speech heard and written down.
    assert!(
        eventually(LIMIT, || phone.recorded_samples().len() >= 16_000),
        "recording did not grow: {} samples",
        phone.recorded_samples().len()
    );

    phone.send_dtmf("4#7*");
    let mut digits = String::new();
    let got = eventually(LIMIT, || {
        digits = sink.digits(101);
        digits.len() >= 4
    });
    assert!(got, "digits seen by the peer: {digits:?}");
    assert_eq!(digits, "4#7*");

    phone.hangup();
    assert!(phone.wait_call_closed(LIMIT), "call not closed");
    assert_eq!(sipp.wait(LIMIT), Some(0), "sipp scenario failed");

    // Event ids are the SIP Call-ID, so tests can match phone and gateway records.
    let invite = sipp
        .received()
        .into_iter()
        .find(|m| m.starts_with("INVITE "))
        .expect("sipp logged the INVITE");
    let call_id = invite
        .lines()
        .find_map(|l| l.strip_prefix("Call-ID:"))
        .map(str::trim)
        .expect("INVITE has a Call-ID");
    let closed = phone.events().into_iter().find(|e| e.kind == "CALL_CLOSED");
    assert_eq!(closed.map(|e| e.id), Some(call_id.to_string()));

    let heard = phone.recorded_samples();
    let level = rms(&heard);
    assert!(level > 300.0, "recording is silent: rms {level:.1}");
    // The caller's own microphone is generated silence.
    let sent = sink.audio();
    assert!(sent.len() >= 8000, "peer got {} samples", sent.len());
    assert!(rms(&sent) < 100.0, "silence came out loud: {}", rms(&sent));
}

/// Operator role: 401 digest challenge, authenticated re-REGISTER, then
/// SIPp calls the registered contact; the phone answers by itself, plays its
/// 440 Hz WAV, hears SIPp's pcap and hangs up when the WAV ends.
#[test]
fn operator_registers_with_digest_auto_answers_and_plays_its_wav() {
    assert_tools();
    let sink = RtpSink::start();
    let sink_port = sink.port.to_string();
    let mut sipp = Sipp::start(
        "uas_register_digest_then_call.xml",
        &[
            ("rtp_sink", &sink_port),
            ("audio_pcap", G711A_PCAP),
            ("auth_user", "op1"),
            ("auth_pass", "s3cret"),
        ],
    );
    let mut opts = BaresipOpts::operator("op1", "s3cret", sipp.addr());
    opts.source_wav = Some(fixture("tone440.wav"));
    let phone = Baresip::start(opts);

    assert!(phone.wait_registered(LIMIT), "not registered");
    assert!(phone.wait_call_incoming(LIMIT), "no call came in");
    assert!(phone.wait_call_established(LIMIT), "call not answered");
    // tone440.wav lasts 3 s; then baresip hangs up itself.
    assert!(phone.wait_call_closed(LIMIT), "call not closed");
    assert_eq!(sipp.wait(LIMIT), Some(0), "sipp scenario failed");

    let received = sipp.received();
    let registers: Vec<&String> = received
        .iter()
        .filter(|m| m.starts_with("REGISTER "))
        .collect();
    assert_eq!(
        registers.len(),
        2,
        "expected a challenged and an authorized REGISTER"
    );
    assert!(!registers[0].contains("Authorization:"));
    let auth = registers[1]
        .lines()
        .find(|l| l.starts_with("Authorization:"))
        .unwrap_or_else(|| panic!("no Authorization in {}", registers[1]));
    for part in [
        "Digest ",
        "username=\"op1\"",
        "realm=\"conmutador.test\"",
        "qop=auth",
        "response=\"",
    ] {
        assert!(auth.contains(part), "{part} missing from {auth}");
    }
    let answered = received.iter().any(|m| {
        m.starts_with("SIP/2.0 200") && m.contains("CSeq: 1 INVITE") && m.contains("m=audio")
    });
    assert!(answered, "no 200 OK with SDP for the INVITE");

    let mic = sink.audio();
    assert!(mic.len() >= 16_000, "peer got {} samples", mic.len());
    let level = rms(&mic);
    assert!(
        level > 3000.0,
        "operator's WAV came out silent: rms {level:.1}"
    );
    let f = tone_frequency(&mic, 8000);
    assert!((400.0..480.0).contains(&f), "expected ~440 Hz, got {f:.0}");

    let heard = rms(&phone.recorded_samples());
    assert!(heard > 300.0, "operator heard silence: rms {heard:.1}");
}

#[test]
fn operator_with_wrong_password_is_refused() {
    assert_tools();
    let sink = RtpSink::start();
    let sink_port = sink.port.to_string();
    let mut sipp = Sipp::start(
        "uas_register_digest_then_call.xml",
        &[
            ("rtp_sink", &sink_port),
            ("audio_pcap", G711A_PCAP),
            ("auth_user", "op1"),
            ("auth_pass", "s3cret"),
        ],
    );
    let phone = Baresip::start(BaresipOpts::operator("op1", "wrong", sipp.addr()));
    assert!(phone.wait_register_failed(LIMIT), "no registration failure");
    assert!(!phone.wait_registered(Duration::from_secs(1)));
    assert_eq!(phone.registrations(), 0);
    // The scenario counts a refused digest as a failed call.
    assert_eq!(sipp.wait(LIMIT), Some(1));
}

/// Two phones, no SIPp: the caller dials the other phone's `local_uri`, which
/// rings until `accept`; each hears the other's tone, told apart by frequency.
#[test]
fn caller_and_operator_phones_hear_each_other() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tone1000 = dir.path().join("tone1000.wav");
    baresip::write_tone_wav(&tone1000, 1000.0, 20.0, 8000).expect("write tone");

    // A phone that neither registers nor answers by itself.
    let mut op_opts = BaresipOpts::caller();
    op_opts.account = "<sip:op2@127.0.0.1>;regint=0".into();
    op_opts.source_wav = Some(fixture("tone440.wav"));
    let operator = Baresip::start(op_opts);

    let mut caller_opts = BaresipOpts::caller();
    caller_opts.source_wav = Some(tone1000);
    let caller = Baresip::start(caller_opts);

    caller.dial(&operator.local_uri());
    assert!(operator.wait_call_incoming(LIMIT), "operator not rung");
    assert!(operator.events().iter().any(|e| e.kind == "CALL_INCOMING"));
    operator.accept();
    assert!(caller.wait_call_established(LIMIT), "caller not connected");
    assert!(
        operator.wait_call_established(LIMIT),
        "operator not connected"
    );
    // The operator's 3 s WAV ends and it hangs up; the caller sees the BYE.
    assert!(operator.wait_call_closed(LIMIT));
    assert!(caller.wait_call_closed(LIMIT));

    let caller_heard = caller.recorded_samples();
    let op_heard = operator.recorded_samples();
    assert!(
        rms(&caller_heard) > 3000.0,
        "caller heard {}",
        rms(&caller_heard)
    );
    assert!(rms(&op_heard) > 3000.0, "operator heard {}", rms(&op_heard));
    let (fc, fo) = (
        tone_frequency(&caller_heard, 8000),
        tone_frequency(&op_heard, 8000),
    );
    assert!((400.0..480.0).contains(&fc), "caller heard {fc:.0} Hz");
    assert!((950.0..1050.0).contains(&fo), "operator heard {fo:.0} Hz");
}

/// The WAV reader must take samples from a recording whose header sizes were
/// never filled in (baresip killed, or the call still running).
#[test]
fn wav_reader_tolerates_unfinished_headers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().join("t.wav");
    baresip::write_tone_wav(&p, 440.0, 1.0, 10_000).expect("write");
    let full = baresip::read_wav(&p).expect("read");
    assert_eq!(
        (full.rate, full.channels, full.samples.len()),
        (8000, 1, 8000)
    );
    let r = rms(&full.samples);
    assert!((r - 10_000.0 / 2f64.sqrt()).abs() < 100.0, "rms {r}");
    let f = tone_frequency(&full.samples, 8000);
    assert!((430.0..450.0).contains(&f), "{f}");

    let mut bytes = std::fs::read(&p).expect("read bytes");
    bytes[40..44].copy_from_slice(&0u32.to_le_bytes());
    bytes.truncate(44 + 1001); // odd: half a sample at the end
    let w = baresip::parse_wav(&bytes).expect("parse");
    assert_eq!(w.samples.len(), 500);
    assert_eq!(w.samples[..], full.samples[..500]);

    assert!(baresip::parse_wav(b"RIFF\0\0\0\0WAVE").is_err());
    assert_eq!(rms(&[]), 0.0);
    let g = fixture("tone440.wav");
    let fx = baresip::read_wav(&g).expect("fixture");
    assert_eq!((fx.rate, fx.channels, fx.samples.len()), (8000, 1, 24_000));
}
