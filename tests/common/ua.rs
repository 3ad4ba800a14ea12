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
                if n < 12 {
                    continue;
                }
                cap.from = Some(from);
                let pt = buf[1] & 0x7f;
                let marker = buf[1] & 0x80 != 0;
                let seq = u16::from_be_bytes([buf[2], buf[3]]);
                let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                cap.packets.push(RtpInfo {
                    pt,
                    marker,
                    seq,
                    ts,
                    ssrc,
                    len: n - 12,
                });
                let payload = &buf[12..n];
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
