//! A tiny in-test SIP user agent over UDP with an RTP socket: enough to send
//! hand-written requests, read the gateway's answers, receive and inspect the
//! audio it plays, and press digits three ways (RFC 4733, in-band tones, SIP
//! INFO). It is deliberately independent of the gateway's own codec so the
//! two cannot share a bug.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub struct Ua {
    pub sip: UdpSocket,
    pub rtp: UdpSocket,
    pub target: SocketAddr,
    pub call_id: String,
    pub from_tag: String,
    pub to_tag: Option<String>,
    pub cseq: u32,
    /// Where the gateway wants our RTP (from its SDP).
    pub remote_rtp: Option<SocketAddr>,
    seq: u16,
    ts: u32,
}

/// A response or request as text with a few helpers.
#[derive(Debug, Clone)]
pub struct Msg(pub String);

impl Msg {
    pub fn status(&self) -> Option<u16> {
        let first = self.0.lines().next()?;
        first
            .strip_prefix("SIP/2.0 ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
    pub fn is_request(&self, method: &str) -> bool {
        self.0.starts_with(&format!("{method} "))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.0.split("\r\n\r\n").next()?;
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
    pub fn body(&self) -> &str {
        self.0.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
    }
    pub fn to_tag(&self) -> Option<String> {
        let to = self.header("To").or_else(|| self.header("t"))?;
        to.split(';')
            .find_map(|p| p.trim().strip_prefix("tag=").map(str::to_owned))
    }
}

impl Ua {
    pub fn new(target: SocketAddr) -> Ua {
        let ip = if target.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        };
        let sip = UdpSocket::bind(ip).unwrap();
        let rtp = UdpSocket::bind(ip).unwrap();
        sip.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        rtp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Ua {
            sip,
            rtp,
            target,
            call_id: format!("{}@test", rand_hex()),
            from_tag: rand_hex(),
            to_tag: None,
            cseq: 1,
            remote_rtp: None,
            seq: 1,
            ts: 0,
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.sip.local_addr().unwrap()
    }

    fn host(a: SocketAddr) -> String {
        match a {
            SocketAddr::V4(v) => v.to_string(),
            SocketAddr::V6(v) => format!("[{}]:{}", v.ip(), v.port()),
        }
    }

    pub fn send(&self, text: &str) {
        self.sip.send_to(text.as_bytes(), self.target).unwrap();
    }

    pub fn recv(&self, limit: Duration) -> Option<Msg> {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 65_535];
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.sip.recv_from(&mut buf) {
                return Some(Msg(String::from_utf8_lossy(&buf[..n]).into_owned()));
            }
        }
        None
    }

    /// The next final response (skipping provisionals), or None.
    pub fn final_response(&self, limit: Duration) -> Option<Msg> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let m = self.recv(deadline.saturating_duration_since(Instant::now()))?;
            if m.status().map(|s| s >= 200).unwrap_or(false) {
                return Some(m);
            }
        }
        None
    }

    pub fn sdp_offer(&self, codecs: &str, with_dtmf: bool) -> String {
        let a = self.rtp.local_addr().unwrap();
        let (fam, ip) = if a.is_ipv4() {
            ("IP4", a.ip().to_string())
        } else {
            ("IP6", a.ip().to_string())
        };
        let mut pts: Vec<String> = codecs.split_whitespace().map(str::to_owned).collect();
        if with_dtmf {
            pts.push("101".into());
        }
        let mut s = format!(
            "v=0\r\no=ua 1 1 IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP {}\r\n",
            a.port(),
            pts.join(" ")
        );
        for pt in codecs.split_whitespace() {
            match pt {
                "0" => s.push_str("a=rtpmap:0 PCMU/8000\r\n"),
                "8" => s.push_str("a=rtpmap:8 PCMA/8000\r\n"),
                "18" => s.push_str("a=rtpmap:18 G729/8000\r\n"),
                _ => {}
            }
        }
        if with_dtmf {
            s.push_str("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n");
        }
        s.push_str("a=ptime:20\r\na=sendrecv\r\n");
        s
    }

    pub fn request(
        &self,
        method: &str,
        uri: &str,
        extra: &str,
        body: Option<(&str, &str)>,
    ) -> String {
        let local = Self::host(self.local());
        let branch = format!("z9hG4bK{}", rand_hex());
        let to = match &self.to_tag {
            Some(t) => format!("<{uri}>;tag={t}"),
            None => format!("<{uri}>"),
        };
        let cseq = self.cseq;
        let (ct, b) = match body {
            Some((ct, b)) => (format!("Content-Type: {ct}\r\n"), b.to_owned()),
            None => (String::new(), String::new()),
        };
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: \"Test\" <sip:+5215550001111@{local}>;tag={}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nContact: <sip:ua@{local}>\r\n{extra}{ct}Content-Length: {}\r\n\r\n{b}",
            self.from_tag,
            self.call_id,
            b.len()
        )
    }

    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", Self::host(self.target))
    }

    /// INVITE with an offer; returns the final response. On 200 it ACKs and
    /// remembers the dialog and the gateway's RTP address.
    pub fn call(&mut self, user: &str, codecs: &str, with_dtmf: bool) -> Msg {
        let uri = self.uri(user);
        let sdp = self.sdp_offer(codecs, with_dtmf);
        let inv = self.request("INVITE", &uri, "", Some(("application/sdp", &sdp)));
        self.send(&inv);
        let resp = self
            .final_response(Duration::from_secs(10))
            .expect("a final response to INVITE");
        if resp.status() == Some(200) {
            self.to_tag = resp.to_tag();
            self.remote_rtp = parse_sdp_addr(resp.body());
            let ack = self.request("ACK", &uri, "", None);
            self.send(&ack);
        }
        resp
    }

    /// Sends BYE and waits for its 200.
    pub fn hangup(&mut self, user: &str) -> Option<Msg> {
        self.cseq += 1;
        let bye = self.request("BYE", &self.uri(user), "", None);
        self.send(&bye);
        self.final_response(Duration::from_secs(5))
    }

    /// Collects RTP for `dur`: (packets, decoded µ-law/A-law samples).
    pub fn receive_audio(&self, dur: Duration) -> RtpCapture {
        let mut cap = RtpCapture::default();
        let deadline = Instant::now() + dur;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            if let Ok((n, from)) = self.rtp.recv_from(&mut buf) {
                record_rtp(&mut cap, &buf[..n], from);
            }
        }
        cap
    }

    /// Sends one 20 ms frame of PCMU audio (from linear samples).
    pub fn send_pcmu(&mut self, samples: &[i16], marker: bool) {
        let Some(dst) = self.remote_rtp else { return };
        let mut pkt = vec![0x80, if marker { 0x80 } else { 0 }];
        pkt.extend_from_slice(&self.seq.to_be_bytes());
        pkt.extend_from_slice(&self.ts.to_be_bytes());
        pkt.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        pkt.extend(samples.iter().map(|&s| linear_to_ulaw(s)));
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(samples.len() as u32);
        let _ = self.rtp.send_to(&pkt, dst);
    }

    /// Sends `dur` of a sum of sine tones (PCMU), paced in real time;
    /// `level` is each tone's amplitude as a fraction of half scale.
    pub fn send_tones(&mut self, freqs: &[f64], dur: Duration, level: f64) {
        let frames = (dur.as_millis() / 20) as usize;
        let mut n = 0usize;
        for f in 0..frames {
            let samples: Vec<i16> = (0..160)
                .map(|_| {
                    let t = n as f64 / 8000.0;
                    n += 1;
                    let v: f64 = freqs
                        .iter()
                        .map(|hz| (2.0 * std::f64::consts::PI * hz * t).sin())
                        .sum();
                    (level * v * 16383.0) as i16
                })
                .collect();
            self.send_pcmu(&samples, f == 0);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Plays `dur` of a DTMF tone in-band (PCMU), real-time paced.
    pub fn send_inband_digit(&mut self, digit: char, dur: Duration, level: f64) {
        let (lo, hi) = dtmf_freqs(digit);
        self.send_tones(&[lo, hi], dur, level);
        // Silence after the tone so the detector sees its end.
        for _ in 0..10 {
            self.send_pcmu(&[0; 160], false);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends an RFC 4733 event as a real phone does: start, continuations,
    /// three end packets, all with one timestamp.
    pub fn send_rfc4733_digit(&mut self, digit: char, pt: u8) {
        let Some(dst) = self.remote_rtp else { return };
        let event = match digit {
            '0'..='9' => digit as u8 - b'0',
            '*' => 10,
            '#' => 11,
            _ => return,
        };
        let ts = self.ts;
        for i in 0..8u16 {
            let end = i >= 5;
            let duration = (i.min(5) + 1) * 160;
            let mut pkt = vec![0x80, if i == 0 { 0x80 | pt } else { pt }];
            pkt.extend_from_slice(&self.seq.to_be_bytes());
            pkt.extend_from_slice(&ts.to_be_bytes());
            pkt.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            pkt.push(event);
            pkt.push(if end { 0x80 | 10 } else { 10 });
            pkt.extend_from_slice(&duration.to_be_bytes());
            self.seq = self.seq.wrapping_add(1);
            let _ = self.rtp.send_to(&pkt, dst);
            std::thread::sleep(Duration::from_millis(20));
        }
        self.ts = self.ts.wrapping_add(960);
    }

    /// Sends a SIP INFO with application/dtmf-relay.
    pub fn send_info_digit(&mut self, user: &str, digit: char) -> Option<Msg> {
        self.cseq += 1;
        let body = format!("Signal={digit}\r\nDuration=160\r\n");
        let info = self.request(
            "INFO",
            &self.uri(user),
            "",
            Some(("application/dtmf-relay", &body)),
        );
        self.send(&info);
        self.final_response(Duration::from_secs(5))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RtpInfo {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub len: usize,
}

#[derive(Debug, Default)]
pub struct RtpCapture {
    pub packets: Vec<RtpInfo>,
    pub samples: Vec<i16>,
    pub from: Option<SocketAddr>,
}

impl RtpCapture {
    /// Root-mean-square level of the decoded audio, 0 for none.
    pub fn rms(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: f64 = self.samples.iter().map(|&s| (s as f64) * (s as f64)).sum();
        (sum / self.samples.len() as f64).sqrt()
    }
}

pub fn parse_sdp_addr(sdp: &str) -> Option<SocketAddr> {
    let ip = sdp.lines().find_map(|l| {
        l.strip_prefix("c=IN IP4 ")
            .or_else(|| l.strip_prefix("c=IN IP6 "))
    })?;
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split_whitespace()
        .next()?;
    let ip: std::net::IpAddr = ip.trim().parse().ok()?;
    Some(SocketAddr::new(ip, port.parse().ok()?))
}

pub fn dtmf_freqs(d: char) -> (f64, f64) {
    let rows = [697.0, 770.0, 852.0, 941.0];
    let cols = [1209.0, 1336.0, 1477.0, 1633.0];
    let (r, c) = match d {
        '1' => (0, 0),
        '2' => (0, 1),
        '3' => (0, 2),
        'A' => (0, 3),
        '4' => (1, 0),
        '5' => (1, 1),
        '6' => (1, 2),
        'B' => (1, 3),
        '7' => (2, 0),
        '8' => (2, 1),
        '9' => (2, 2),
        'C' => (2, 3),
        '*' => (3, 0),
        '0' => (3, 1),
        '#' => (3, 2),
        _ => (3, 3),
    };
    (rows[r], cols[c])
}

fn rand_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    format!("{:016x}", h.finish())
}

// G.711 written out again here on purpose: the test must not trust the
// gateway's own tables.
pub fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0f;
    let mut sample = (((mantissa as i32) << 3) + 0x84) << exponent;
    sample -= 0x84;
    (if sign != 0 { -sample } else { sample }) as i16
}

pub fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let sign = a & 0x80;
    let exponent = (a >> 4) & 0x07;
    let mantissa = (a & 0x0f) as i32;
    let mut sample = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if sign == 0 {
        sample = -sample;
    }
    sample as i16
}

pub fn linear_to_ulaw(s: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut x = s as i32;
    let sign = if x < 0 { 0x80 } else { 0 };
    if x < 0 {
        x = -x;
    }
    x = x.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && x & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (x >> (exponent + 3)) & 0x0f;
    !((sign | (exponent << 4) | mantissa) as u8)
}

// ---------------------------------------------------------------------------
// Which prompts a caller heard (appended for the IVR tests).

/// The audio a call received so far, and the gateway's BYE once it came.
#[derive(Debug, Default)]
pub struct Heard {
    pub rtp: RtpCapture,
    /// The gateway's BYE (already answered with 200 by `listen`).
    pub bye: Option<Msg>,
}

impl Heard {
    pub fn samples(&self) -> &[i16] {
        &self.rtp.samples
    }
}

/// Samples per RTP packet at 8 kHz and 20 ms: prompts are sent frame by
/// frame, each prompt starting on a packet of its own.
const FRAME: usize = 160;

/// Reads a 16-bit PCM mono WAV (walking the RIFF chunks: sox writes extra
/// chunks before `data`).
pub fn read_wav_pcm16(path: &std::path::Path) -> Vec<i16> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
        "{} is not a WAV",
        path.display()
    );
    let mut at = 12;
    let mut format_ok = false;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        match id {
            b"fmt " => {
                let tag = u16::from_le_bytes([body[0], body[1]]);
                let channels = u16::from_le_bytes([body[2], body[3]]);
                let bits = u16::from_le_bytes([body[14], body[15]]);
                format_ok = tag == 1 && channels == 1 && bits == 16;
            }
            b"data" => {
                assert!(format_ok, "{}: not 16-bit PCM mono", path.display());
                return body
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect();
            }
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display())
}

/// How far a G.711-decoded sample may be from the original: half a
/// quantisation step is at most about 1/32 of the level for µ-law and
/// A-law; three times that, plus a floor for the smallest steps.
fn close(received: i16, original: i16) -> bool {
    let o = original as i32;
    (received as i32 - o).abs() <= (o.abs() + 132) / 12 + 16
}

fn frame_rms(f: &[i16]) -> f64 {
    (f.iter().map(|&s| (s as f64) * (s as f64)).sum::<f64>() / f.len() as f64).sqrt()
}

/// A prompt frame counts as found when nearly every sample is close.
fn frame_matches(rx: &[i16], at: isize, frame: &[i16]) -> bool {
    if at < 0 || at as usize + frame.len() > rx.len() {
        return false;
    }
    let r = &rx[at as usize..at as usize + frame.len()];
    // Cheap rejection first: most offsets differ at once.
    if !close(r[0], frame[0]) || !close(r[frame.len() / 2], frame[frame.len() / 2]) {
        return false;
    }
    let ok = r.iter().zip(frame).filter(|(a, b)| close(**a, **b)).count();
    ok * 20 >= frame.len() * 19
}

/// Frames of a prompt loud enough to identify it (speech, not the silence
/// around and between words).
const LOUD_RMS: f64 = 300.0;
/// A prompt must have at least this many loud frames (0.2 s) to be told
/// apart from others at all.
const MIN_LOUD_FRAMES: usize = 10;

/// Where in `rx` the prompt `pcm` was played (the sample at which its
/// first frame would sit), if at least 90 % of its loud frames are found
/// there in order. Leading silence is skipped by starting from the first
/// loud frame; a packet lost or skipped on the way shifts the rest by a
/// frame, which the walk follows.
pub fn heard_pcm_at(rx: &[i16], pcm: &[i16]) -> Option<usize> {
    let frames: Vec<&[i16]> = pcm.chunks_exact(FRAME).collect();
    let loud: Vec<usize> = (0..frames.len())
        .filter(|&k| frame_rms(frames[k]) >= LOUD_RMS)
        .collect();
    assert!(
        loud.len() >= MIN_LOUD_FRAMES,
        "prompt too short or quiet to recognise ({} loud frames)",
        loud.len()
    );
    let first = loud[0];
    let need = (loud.len() * 9).div_ceil(10);
    let mut o = 0usize;
    while o + FRAME <= rx.len() {
        if frame_matches(rx, o as isize, frames[first]) {
            let base = o as isize - (first * FRAME) as isize;
            let mut drift = 0isize;
            let mut found = 0usize;
            for &k in &loud {
                let pos = base + (k * FRAME) as isize + drift;
                if pos as usize >= rx.len() {
                    break;
                }
                if frame_matches(rx, pos, frames[k]) {
                    found += 1;
                    continue;
                }
                for d in [-1isize, 1, -2, 2, -3, 3, -4, 4] {
                    if frame_matches(rx, pos + d * FRAME as isize, frames[k]) {
                        drift += d * FRAME as isize;
                        found += 1;
                        break;
                    }
                }
            }
            if found >= need {
                return Some(base.max(0) as usize);
            }
        }
        o += 1;
    }
    None
}

/// True when the caller's decoded audio contains the whole prompt in `wav`
/// (a 16-bit PCM WAV): at least 90 % of its speech frames, in order, each
/// matching sample by sample within G.711 quantisation. Another prompt, or
/// silence, cannot pass: a match needs hundreds of consecutive speech
/// samples to agree per frame.
pub fn heard(samples: &[i16], wav: &std::path::Path) -> bool {
    heard_at(samples, wav).is_some()
}

/// Like [`heard`], and where the prompt started in `samples`.
pub fn heard_at(samples: &[i16], wav: &std::path::Path) -> Option<usize> {
    heard_pcm_at(samples, &read_wav_pcm16(wav))
}

/// True when at least the first `min` of the prompt (counted from its first
/// speech frame) was heard: for prompts a key cut short (barge-in).
pub fn heard_start(samples: &[i16], wav: &std::path::Path, min: Duration) -> bool {
    let pcm = read_wav_pcm16(wav);
    let first = pcm
        .chunks_exact(FRAME)
        .position(|f| frame_rms(f) >= LOUD_RMS)
        .unwrap_or(0);
    let end = ((first * FRAME) + (min.as_millis() as usize * 8)).min(pcm.len());
    heard_pcm_at(samples, &pcm[..end]).is_some()
}

impl Ua {
    /// Receives RTP into `h` for up to `dur` while watching the SIP socket:
    /// a BYE from the gateway is answered 200 and ends the wait early.
    pub fn listen(&mut self, h: &mut Heard, dur: Duration) {
        let deadline = Instant::now() + dur;
        self.rtp
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        self.sip.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 65_535];
        while Instant::now() < deadline && h.bye.is_none() {
            if let Ok((n, from)) = self.rtp.recv_from(&mut buf) {
                record_rtp(&mut h.rtp, &buf[..n], from);
            }
            while let Ok((n, from)) = self.sip.recv_from(&mut buf) {
                let m = Msg(String::from_utf8_lossy(&buf[..n]).into_owned());
                if m.is_request("BYE") {
                    let ok = format!(
                        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
                        m.header("Via").unwrap_or_default(),
                        m.header("From").unwrap_or_default(),
                        m.header("To").unwrap_or_default(),
                        m.header("Call-ID").unwrap_or_default(),
                        m.header("CSeq").unwrap_or_default()
                    );
                    let _ = self.sip.send_to(ok.as_bytes(), from);
                    h.bye = Some(m);
                    break;
                }
            }
        }
        self.sip.set_nonblocking(false).unwrap();
        self.rtp
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }

    /// Listens until the prompt in `wav` has been heard in full (true), the
    /// gateway hangs up, or `limit` passes.
    pub fn wait_heard(&mut self, h: &mut Heard, wav: &std::path::Path, limit: Duration) -> bool {
        self.wait_until(h, limit, |s| heard(s, wav))
    }

    /// Listens until `done(samples)` holds (true), the gateway hangs up, or
    /// `limit` passes.
    pub fn wait_until(
        &mut self,
        h: &mut Heard,
        limit: Duration,
        mut done: impl FnMut(&[i16]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if done(h.samples()) {
                return true;
            }
            if h.bye.is_some() || Instant::now() >= deadline {
                return false;
            }
            self.listen(h, Duration::from_millis(400));
        }
    }

    /// Listens until the gateway hangs up (true) or `limit` passes.
    pub fn wait_bye(&mut self, h: &mut Heard, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while h.bye.is_none() && Instant::now() < deadline {
            self.listen(h, Duration::from_millis(500));
        }
        h.bye.is_some()
    }
}

/// Appends one received RTP packet to a capture (audio decoded).
fn record_rtp(cap: &mut RtpCapture, pkt: &[u8], from: SocketAddr) {
    if pkt.len() < 12 {
        return;
    }
    cap.from = Some(from);
    let pt = pkt[1] & 0x7f;
    cap.packets.push(RtpInfo {
        pt,
        marker: pkt[1] & 0x80 != 0,
        seq: u16::from_be_bytes([pkt[2], pkt[3]]),
        ts: u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]),
        ssrc: u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]),
        len: pkt.len() - 12,
    });
    let payload = &pkt[12..];
    match pt {
        0 => cap
            .samples
            .extend(payload.iter().map(|&b| ulaw_to_linear(b))),
        8 => cap
            .samples
            .extend(payload.iter().map(|&b| alaw_to_linear(b))),
        _ => {}
    }
}
