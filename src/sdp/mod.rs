//! SDP offer/answer (RFC 3264) for one audio stream: PCMU (PT 0) and PCMA
//! (PT 8) at 8 kHz plus telephone-event/8000, on the `sdp-types` parser and
//! writer.
//!
//! This room turns SDP bodies into [`MediaParams`] for the media engine and
//! writes our own bodies; it never touches sockets, SIP messages or call
//! state. The call layer sends 488 when [`answer`] returns
//! [`SdpError::NoCommonCodec`] (or any other error).
//!
//! Trunk quirks accepted on purpose: LF-only line ends, uppercase or lowercase
//! encoding names, static payload types without `a=rtpmap`, extra media lines
//! (rejected with port 0 in the answer, in their original order), connection
//! data at session or media level, IPv4 and IPv6, and the old `c=0.0.0.0` way
//! of putting a call on hold (treated as "the peer does not want to receive").
//!
//! SRTP with SDES keys (RFC 4568) lives beside the plain functions, in
//! `secure.rs` ([`answer_secure`], [`offer_secure`], [`accept_answer_secure`]
//! with [`SecureOpts`]) and `sdes.rs` (the `a=crypto` line). The plain
//! [`answer`], [`offer`] and [`accept_answer`] never write or accept keys:
//! they behave as they did before SRTP existed.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use sdp_types::{Attribute, Connection, Media, MediaType, Origin, Session, TransportProto};

mod sdes;
mod secure;
pub use sdes::{
    CryptoLine, CryptoRefusal, KEY_SALT_LEN, SrtpKey, SrtpParams, SrtpSuite, parse_crypto,
};
pub use secure::{SecureOpts, SrtpMode, accept_answer_secure, answer_secure, offer_secure};

/// The packetisation time we send and announce. Every frame the media engine
/// builds is 20 ms (160 samples at 8 kHz).
pub const PTIME_MS: u32 = 20;
/// Payload type we offer for telephone-event when we are the offerer.
pub const DEFAULT_DTMF_PT: u8 = 101;

/// The codecs this gateway speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551).
    pub fn static_pt(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name used in `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    fn from_static_pt(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    fn from_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }
}

/// Media direction as seen from one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn from_parts(send: bool, recv: bool) -> Direction {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether this side sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The same stream seen from the other side (their sendonly is our recvonly).
    pub fn reversed(self) -> Direction {
        Direction::from_parts(self.receives(), self.sends())
    }

    /// What both of these allow.
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::from_parts(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// The SDP attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attr(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| name.eq_ignore_ascii_case(d.as_str()))
    }
}

/// What the media engine needs to run one leg, the outcome of a negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaParams {
    pub codec: Codec,
    /// Payload type for `codec` on this leg (normally its static one).
    pub pt: u8,
    /// Negotiated telephone-event payload type, if any (the offerer's number).
    pub dtmf_pt: Option<u8>,
    /// Where the peer asked for media; `0.0.0.0`/`::` when it put us on hold.
    pub remote: SocketAddr,
    /// Direction from OUR side: `sends()` means we may transmit to the peer.
    pub direction: Direction,
    /// Packetisation time we send with (always [`PTIME_MS`]).
    pub ptime_ms: u32,
}

/// Our side of the SDP session for one leg. Keeps the `o=` identity and bumps
/// the version only when the body we write differs from the previous one, so
/// a re-INVITE answered "with the current SDP" carries the same version.
#[derive(Debug, Clone)]
pub struct LocalSdp {
    pub session_id: u64,
    pub version: u64,
    /// Address written in `o=` and `c=`.
    pub ip: IpAddr,
    /// Our RTP port for this leg.
    pub port: u16,
    /// What we want: `SendRecv` normally, `SendOnly` to put the peer on hold.
    pub direction: Direction,
    /// Payload type for telephone-event in our offers.
    pub dtmf_pt: u8,
    /// The last body we wrote, with the version field zeroed, to detect change.
    last: Option<Vec<u8>>,
    /// Our SRTP keys and what our last offer carried (`secure.rs`).
    srtp: secure::LocalSrtp,
}

impl LocalSdp {
    /// A new session with a random id; the version starts at the same number
    /// (a common convention that keeps o= lines unique across restarts).
    pub fn new(ip: IpAddr, port: u16) -> LocalSdp {
        let session_id = u64::from(rand::random::<u32>()) + 1;
        LocalSdp {
            session_id,
            version: session_id,
            ip,
            port,
            direction: Direction::SendRecv,
            dtmf_pt: DEFAULT_DTMF_PT,
            last: None,
            srtp: secure::LocalSrtp::default(),
        }
    }

    /// Writes `session` with our origin, bumping the version when the content
    /// changed since the previous body.
    fn finish(&mut self, mut session: Session) -> Bytes {
        session.origin = self.origin(0);
        let fingerprint = write_session(&session);
        match &self.last {
            Some(prev) if *prev == fingerprint => {}
            Some(_) => {
                self.version = self.version.wrapping_add(1);
                self.last = Some(fingerprint);
            }
            None => self.last = Some(fingerprint),
        }
        session.origin = self.origin(self.version);
        Bytes::from(write_session(&session))
    }

    fn origin(&self, version: u64) -> Origin {
        let mut o = Origin::with_ip_addr(self.session_id, version, self.ip);
        o.set_username("conmutador");
        o
    }
}

/// Why an SDP body could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("malformed SDP: {0}")]
    Parse(String),
    #[error("no usable audio stream (RTP/AVP with a non-zero port)")]
    NoAudio,
    #[error("no codec in common")]
    NoCommonCodec,
    #[error("no usable connection address for the audio stream")]
    NoConnection,
    /// The offer (or answer) carries SRTP only, and SDES keys travel in the
    /// clear without TLS: refuse rather than accept keys anyone could read.
    #[error("SRTP offered but signalling is not secure (SDES keys only over TLS)")]
    SrtpNeedsSecureSignalling,
    /// This leg requires SRTP and the peer offered plain RTP only.
    #[error("SRTP required but the peer offered plain RTP")]
    SrtpRequired,
    /// SRTP was offered but with no crypto suite, key form or parameter we support.
    #[error("no usable SRTP crypto attribute (supported: AES_CM_128_HMAC_SHA1_80/32)")]
    NoCommonCrypto,
}

/// One payload type of an m= line, as far as we understand it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Audio(Codec),
    TelephoneEvent,
    Other,
}

fn parse_session(body: &[u8]) -> Result<Session, SdpError> {
    Session::parse(body).map_err(|e| SdpError::Parse(e.to_string()))
}

fn write_session(session: &Session) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    session
        .write(&mut out)
        .expect("writing SDP into a Vec cannot fail");
    out
}

/// The payload types of an m= line with what each one is, in offer order.
fn formats(media: &Media) -> Vec<(u8, Format)> {
    let mut out = Vec::new();
    for pt in media.fmt.split_ascii_whitespace() {
        let Ok(pt) = pt.parse::<u8>() else { continue };
        if pt > 127 {
            continue;
        }
        let rtpmap = media
            .attributes
            .iter()
            .filter(|a| a.attribute.eq_ignore_ascii_case("rtpmap"))
            .filter_map(|a| a.value.as_deref())
            .find_map(|v| {
                let (num, rest) = v.trim().split_once(char::is_whitespace)?;
                (num.parse::<u8>().ok()? == pt).then_some(rest.trim())
            });
        let format = match rtpmap {
            Some(map) => {
                let mut parts = map.split('/');
                let name = parts.next().unwrap_or_default();
                let rate = parts.next().and_then(|r| r.trim().parse::<u32>().ok());
                let channels_ok = parts.next().is_none_or(|c| c.trim() == "1");
                if rate != Some(8000) || !channels_ok {
                    Format::Other
                } else if name.eq_ignore_ascii_case("telephone-event") {
                    Format::TelephoneEvent
                } else {
                    Codec::from_name(name).map_or(Format::Other, Format::Audio)
                }
            }
            None => Codec::from_static_pt(pt).map_or(Format::Other, Format::Audio),
        };
        out.push((pt, format));
    }
    out
}

fn is_rtp_avp(media: &Media) -> bool {
    // Plain RTP only: SAVP needs SRTP keys we do not have.
    let proto = media.proto.to_ascii_uppercase();
    proto == "RTP/AVP" || proto == "RTP/AVPF"
}

fn is_audio(media: &Media) -> bool {
    media.media.eq_ignore_ascii_case("audio")
}

fn connection_ip(session: &Session, media: &Media) -> Result<IpAddr, SdpError> {
    let conn = media
        .connections
        .first()
        .or(session.connection.as_ref())
        .ok_or(SdpError::NoConnection)?;
    conn.try_address()
        .map(|a| a.ip)
        .map_err(|_| SdpError::NoConnection)
}

fn direction_of(session: &Session, media: &Media) -> Direction {
    let find = |attrs: &[Attribute]| {
        attrs
            .iter()
            .filter(|a| a.value.is_none())
            .find_map(|a| Direction::from_attr(&a.attribute))
    };
    find(&media.attributes)
        .or_else(|| find(&session.attributes))
        .unwrap_or_default()
}

/// The peer's stated direction corrected for the `c=0.0.0.0` hold idiom
/// (RFC 3264 §8.4 mentions it; old PBXes still send it).
fn their_direction(session: &Session, media: &Media, ip: IpAddr) -> Direction {
    let dir = direction_of(session, media);
    if ip.is_unspecified() {
        Direction::from_parts(dir.sends(), false)
    } else {
        dir
    }
}

fn audio_media(
    local: &LocalSdp,
    codec: Codec,
    pt: u8,
    dtmf_pt: Option<u8>,
    direction: Direction,
) -> Media {
    let mut fmt = pt.to_string();
    if let Some(d) = dtmf_pt {
        fmt.push(' ');
        fmt.push_str(&d.to_string());
    }
    let mut m = Media::new(MediaType::Audio, local.port, TransportProto::RtpAvp, fmt);
    m.add_attribute_with_value("rtpmap", format!("{pt} {}/8000", codec.name()));
    if let Some(d) = dtmf_pt {
        m.add_attribute_with_value("rtpmap", format!("{d} telephone-event/8000"));
        m.add_attribute_with_value("fmtp", format!("{d} 0-16"));
    }
    m.add_attribute_with_value("ptime", PTIME_MS);
    m.add_attribute(Attribute::new(direction.as_str()));
    m
}

fn new_session(local: &LocalSdp) -> Session {
    let mut s = Session::new(local.origin(0), "conmutador");
    s.set_connection(Connection::from_ip_addr(local.ip));
    s.add_time(sdp_types::Time::new(0, 0));
    s
}

/// Answers `offer` for one audio stream. The chosen codec is the first one in
/// the offerer's list that is also in `supported`; telephone-event keeps the
/// offerer's payload type. Every other m= line is rejected with port 0.
pub fn answer(
    offer: &[u8],
    local: &mut LocalSdp,
    supported: &[Codec],
) -> Result<(Bytes, MediaParams), SdpError> {
    let session = parse_session(offer)?;
    let mut chosen: Option<(usize, Codec, u8, Option<u8>)> = None;
    let mut saw_audio = false;
    for (i, m) in session.medias.iter().enumerate() {
        if !is_audio(m) || m.port == 0 || !is_rtp_avp(m) {
            continue;
        }
        saw_audio = true;
        let fmts = formats(m);
        let codec = fmts.iter().find_map(|&(pt, f)| match f {
            Format::Audio(c) if supported.contains(&c) => Some((c, pt)),
            _ => None,
        });
        if let Some((codec, pt)) = codec {
            let dtmf = fmts
                .iter()
                .find_map(|&(pt, f)| (f == Format::TelephoneEvent).then_some(pt));
            chosen = Some((i, codec, pt, dtmf));
            break;
        }
    }
    let Some((index, codec, pt, dtmf_pt)) = chosen else {
        return Err(if saw_audio {
            SdpError::NoCommonCodec
        } else {
            SdpError::NoAudio
        });
    };
    finish_answer(&session, local, index, codec, pt, dtmf_pt, None)
}

/// Writes the answer that takes stream `index` of `session` with `codec`,
/// refusing every other m= line; `secure` adds the proto and `a=crypto`
/// line of an SRTP answer.
fn finish_answer(
    session: &Session,
    local: &mut LocalSdp,
    index: usize,
    codec: Codec,
    pt: u8,
    dtmf_pt: Option<u8>,
    secure: Option<(&str, String)>,
) -> Result<(Bytes, MediaParams), SdpError> {
    let media = &session.medias[index];
    let ip = connection_ip(session, media)?;
    let direction = local
        .direction
        .intersect(their_direction(session, media, ip).reversed());

    let mut out = new_session(local);
    for (i, m) in session.medias.iter().enumerate() {
        if i == index {
            let mut ours = audio_media(local, codec, pt, dtmf_pt, direction);
            if let Some((proto, crypto)) = &secure {
                ours.proto = (*proto).to_owned();
                ours.add_attribute_with_value("crypto", crypto);
            }
            out.add_media(ours);
        } else {
            // RFC 3264 §6: same number of m= lines, refused ones with port 0.
            let mut refused = Media::new(MediaType::Audio, 0, TransportProto::RtpAvp, &m.fmt);
            refused.media = m.media.clone();
            refused.proto = m.proto.clone();
            out.add_media(refused);
        }
    }
    let body = local.finish(out);
    let params = MediaParams {
        codec,
        pt,
        dtmf_pt,
        remote: SocketAddr::new(ip, media.port),
        direction,
        ptime_ms: PTIME_MS,
    };
    Ok((body, params))
}

/// Our offer (late-offer INVITE answered in the 200, or the operator leg):
/// `supported` in our order of preference, then telephone-event.
pub fn offer(local: &mut LocalSdp, supported: &[Codec]) -> Bytes {
    local.srtp.offered = None;
    let m = offer_media(local, supported);
    let mut s = new_session(local);
    s.add_media(m);
    local.finish(s)
}

/// The audio m= line of our offers, plain RTP/AVP.
fn offer_media(local: &LocalSdp, supported: &[Codec]) -> Media {
    let mut fmt = String::new();
    let mut m = Media::new(MediaType::Audio, local.port, TransportProto::RtpAvp, "");
    let mut seen = Vec::with_capacity(supported.len());
    for &c in supported {
        if seen.contains(&c) {
            continue;
        }
        seen.push(c);
        fmt.push_str(&c.static_pt().to_string());
        fmt.push(' ');
        m.add_attribute_with_value("rtpmap", format!("{} {}/8000", c.static_pt(), c.name()));
    }
    let d = local.dtmf_pt;
    fmt.push_str(&d.to_string());
    m.fmt = fmt;
    m.add_attribute_with_value("rtpmap", format!("{d} telephone-event/8000"));
    m.add_attribute_with_value("fmtp", format!("{d} 0-16"));
    m.add_attribute_with_value("ptime", PTIME_MS);
    m.add_attribute(Attribute::new(local.direction.as_str()));
    m
}

/// Reads the answer to one of our offers. The codec is the first payload
/// type of the answer's audio line that we offered; the direction is the
/// reverse of what the answerer stated (our offers are sendrecv unless the
/// caller set otherwise, and an answer can only narrow it).
pub fn accept_answer(answer: &[u8], offered: &[Codec]) -> Result<MediaParams, SdpError> {
    let session = parse_session(answer)?;
    let media = session
        .medias
        .iter()
        .find(|m| is_audio(m) && m.port != 0 && is_rtp_avp(m))
        .ok_or(SdpError::NoAudio)?;
    accept_media(&session, media, offered)
}

/// The parameters of the answer's audio line `media`.
fn accept_media(
    session: &Session,
    media: &Media,
    offered: &[Codec],
) -> Result<MediaParams, SdpError> {
    let fmts = formats(media);
    let (codec, pt) = fmts
        .iter()
        .find_map(|&(pt, f)| match f {
            Format::Audio(c) if offered.contains(&c) => Some((c, pt)),
            _ => None,
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let dtmf_pt = fmts
        .iter()
        .find_map(|&(pt, f)| (f == Format::TelephoneEvent).then_some(pt));
    let ip = connection_ip(session, media)?;
    Ok(MediaParams {
        codec,
        pt,
        dtmf_pt,
        remote: SocketAddr::new(ip, media.port),
        direction: their_direction(session, media, ip).reversed(),
        ptime_ms: PTIME_MS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const BOTH: &[Codec] = &[Codec::Pcmu, Codec::Pcma];

    fn local() -> LocalSdp {
        let mut l = LocalSdp::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 20000);
        l.session_id = 1000;
        l.version = 1000;
        l
    }

    fn text(b: &Bytes) -> String {
        String::from_utf8(b.to_vec()).expect("utf8")
    }

    fn parse(b: &Bytes) -> Session {
        Session::parse(b).expect("our own SDP parses")
    }

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
m=audio 30000 RTP/AVP 8 0 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\na=ptime:20\r\n";

    #[test]
    fn answer_follows_offerer_preference_and_keeps_dtmf_pt() {
        let mut l = local();
        let (body, p) = answer(OFFER.as_bytes(), &mut l, BOTH).unwrap();
        assert_eq!(p.codec, Codec::Pcma);
        assert_eq!(p.pt, 8);
        assert_eq!(p.dtmf_pt, Some(96));
        assert_eq!(p.remote, "198.51.100.7:30000".parse().unwrap());
        assert_eq!(p.direction, Direction::SendRecv);
        assert_eq!(p.ptime_ms, 20);
        let s = parse(&body);
        assert_eq!(s.medias.len(), 1);
        assert_eq!(s.medias[0].port, 20000);
        assert_eq!(s.medias[0].fmt, "8 96");
        let t = text(&body);
        assert!(t.contains("a=rtpmap:8 PCMA/8000\r\n"), "{t}");
        assert!(t.contains("a=rtpmap:96 telephone-event/8000\r\n"), "{t}");
        assert!(t.contains("a=ptime:20\r\n"), "{t}");
        assert!(t.contains("a=sendrecv\r\n"), "{t}");
        assert!(t.contains("c=IN IP4 192.0.2.1\r\n"), "{t}");
    }

    #[test]
    fn answer_respects_our_supported_list() {
        let mut l = local();
        let (_, p) = answer(OFFER.as_bytes(), &mut l, &[Codec::Pcmu]).unwrap();
        assert_eq!(p.codec, Codec::Pcmu);
        assert_eq!(p.pt, 0);
    }

    #[test]
    fn no_common_codec_is_an_error() {
        let offer = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 18 9 101\r\na=rtpmap:18 G729/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
        assert_eq!(
            answer(offer.as_bytes(), &mut local(), BOTH).unwrap_err(),
            SdpError::NoCommonCodec
        );
        // A codec with the right name but the wrong rate is not G.711.
        let offer = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 97\r\na=rtpmap:97 PCMU/16000\r\n";
        assert_eq!(
            answer(offer.as_bytes(), &mut local(), BOTH).unwrap_err(),
            SdpError::NoCommonCodec
        );
    }

    #[test]
    fn no_audio_and_garbage_are_errors() {
        let offer = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n\
m=video 4000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
        assert_eq!(
            answer(offer.as_bytes(), &mut local(), BOTH).unwrap_err(),
            SdpError::NoAudio
        );
        assert!(matches!(
            answer(b"this is not sdp", &mut local(), BOTH),
            Err(SdpError::Parse(_))
        ));
        assert!(matches!(
            accept_answer(b"\x00\xff", BOTH),
            Err(SdpError::Parse(_))
        ));
    }

    #[test]
    fn missing_rtpmap_for_static_pt_and_uppercase_names_lf_only() {
        let offer = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n\
m=audio 5004 RTP/AVP 0 101\na=rtpmap:101 TELEPHONE-EVENT/8000\n";
        let (_, p) = answer(offer.as_bytes(), &mut local(), BOTH).unwrap();
        assert_eq!((p.codec, p.pt, p.dtmf_pt), (Codec::Pcmu, 0, Some(101)));
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 5004 RTP/AVP 110\r\na=rtpmap:110 pcma/8000\r\n";
        let (body, p) = answer(offer.as_bytes(), &mut local(), BOTH).unwrap();
        assert_eq!((p.codec, p.pt, p.dtmf_pt), (Codec::Pcma, 110, None));
        assert!(text(&body).contains("a=rtpmap:110 PCMA/8000"));
    }

    #[test]
    fn extra_media_lines_are_refused_with_port_zero() {
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=video 6000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
m=audio 5004 RTP/SAVP 0\r\n\
m=audio 5006 RTP/AVP 0\r\n\
m=image 6002 udptl t38\r\n";
        let (body, p) = answer(offer.as_bytes(), &mut local(), BOTH).unwrap();
        assert_eq!(p.remote.port(), 5006);
        let s = parse(&body);
        let lines: Vec<_> = s
            .medias
            .iter()
            .map(|m| (m.media.as_str(), m.port, m.proto.as_str()))
            .collect();
        assert_eq!(
            lines,
            vec![
                ("video", 0, "RTP/AVP"),
                ("audio", 0, "RTP/SAVP"),
                ("audio", 20000, "RTP/AVP"),
                ("image", 0, "udptl"),
            ]
        );
    }

    #[test]
    fn directions_are_negotiated() {
        let with_dir = |d: &str| {
            format!(
                "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 5004 RTP/AVP 0\r\n{d}"
            )
        };
        let cases = [
            ("", Direction::SendRecv),
            ("a=sendrecv\r\n", Direction::SendRecv),
            ("a=sendonly\r\n", Direction::RecvOnly),
            ("a=recvonly\r\n", Direction::SendOnly),
            ("a=inactive\r\n", Direction::Inactive),
        ];
        for (attr, ours) in cases {
            let (body, p) = answer(with_dir(attr).as_bytes(), &mut local(), BOTH).unwrap();
            assert_eq!(p.direction, ours, "offer {attr:?}");
            assert!(text(&body).contains(&format!("a={}\r\n", ours.as_str())));
        }
        // Session-level direction applies when the media line has none.
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\na=sendonly\r\n\
m=audio 5004 RTP/AVP 0\r\n";
        let (_, p) = answer(offer.as_bytes(), &mut local(), BOTH).unwrap();
        assert_eq!(p.direction, Direction::RecvOnly);
        // We asked to hold (sendonly): a sendrecv offer gets sendonly.
        let mut l = local();
        l.direction = Direction::SendOnly;
        let (_, p) = answer(with_dir("").as_bytes(), &mut l, BOTH).unwrap();
        assert_eq!(p.direction, Direction::SendOnly);
    }

    #[test]
    fn zero_address_hold() {
        let offer = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
m=audio 5004 RTP/AVP 0\r\n";
        let (body, p) = answer(offer.as_bytes(), &mut local(), BOTH).unwrap();
        assert_eq!(p.direction, Direction::RecvOnly);
        assert!(p.remote.ip().is_unspecified());
        assert!(text(&body).contains("a=recvonly"));
        let offer = offer.replace(
            "m=audio 5004 RTP/AVP 0\r\n",
            "m=audio 5004 RTP/AVP 0\r\na=sendonly\r\n",
        );
        let (_, p) = answer(offer.as_bytes(), &mut local(), BOTH).unwrap();
        assert_eq!(p.direction, Direction::RecvOnly);
        let offer = offer.replace("a=sendonly", "a=recvonly");
        let (_, p) = answer(offer.as_bytes(), &mut local(), BOTH).unwrap();
        assert_eq!(p.direction, Direction::Inactive);
    }

    #[test]
    fn media_level_connection_wins_and_ipv6_works() {
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 5004 RTP/AVP 0\r\nc=IN IP6 2001:db8::5\r\n";
        let mut l = LocalSdp::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 40000);
        let (body, p) = answer(offer.as_bytes(), &mut l, BOTH).unwrap();
        assert_eq!(p.remote, "[2001:db8::5]:5004".parse().unwrap());
        let t = text(&body);
        assert!(t.contains("c=IN IP6 ::1\r\n"), "{t}");
        assert!(t.contains(" IN IP6 ::1\r\n"), "{t}");
        // No connection anywhere.
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\n";
        assert_eq!(
            answer(offer.as_bytes(), &mut local(), BOTH).unwrap_err(),
            SdpError::NoConnection
        );
    }

    #[test]
    fn version_bumps_only_when_our_sdp_changes() {
        let mut l = local();
        let (a1, _) = answer(OFFER.as_bytes(), &mut l, BOTH).unwrap();
        let v1 = parse(&a1).origin.sess_version;
        // Same offer again (session refresh re-INVITE): identical body.
        let (a2, _) = answer(OFFER.as_bytes(), &mut l, BOTH).unwrap();
        assert_eq!(a1, a2);
        // Hold: direction changes, so the version goes up by one.
        let hold = OFFER.replace("a=ptime:20\r\n", "a=ptime:20\r\na=sendonly\r\n");
        let (a3, _) = answer(hold.as_bytes(), &mut l, BOTH).unwrap();
        assert_eq!(parse(&a3).origin.sess_version, v1 + 1);
        // Resume: changes back, bumps again.
        let (a4, _) = answer(OFFER.as_bytes(), &mut l, BOTH).unwrap();
        assert_eq!(parse(&a4).origin.sess_version, v1 + 2);
        assert_eq!(parse(&a4).origin.sess_id, "1000");
    }

    #[test]
    fn offer_and_accept_answer_round_trip() {
        let mut l = local();
        let body = offer(&mut l, &[Codec::Pcma, Codec::Pcmu]);
        let s = parse(&body);
        assert_eq!(s.medias[0].fmt, "8 0 101");
        let t = text(&body);
        assert!(t.contains("a=rtpmap:101 telephone-event/8000"), "{t}");
        assert!(t.contains("a=sendrecv"), "{t}");
        // Offering twice without change keeps the version.
        assert_eq!(offer(&mut l, &[Codec::Pcma, Codec::Pcmu]), body);

        // An operator phone answers from its own point of view.
        let mut phone = LocalSdp::new(IpAddr::V4(Ipv4Addr::new(10, 1, 1, 9)), 7078);
        phone.dtmf_pt = 101;
        let (ans, theirs) = answer(&body, &mut phone, &[Codec::Pcmu]).unwrap();
        assert_eq!(theirs.codec, Codec::Pcmu);
        let p = accept_answer(&ans, &[Codec::Pcma, Codec::Pcmu]).unwrap();
        assert_eq!(p.codec, Codec::Pcmu);
        assert_eq!(p.pt, 0);
        assert_eq!(p.dtmf_pt, Some(101));
        assert_eq!(p.remote, "10.1.1.9:7078".parse().unwrap());
        assert_eq!(p.direction, Direction::SendRecv);
    }

    #[test]
    fn accept_answer_edge_cases() {
        let ans = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 0 RTP/AVP 0\r\n";
        assert_eq!(
            accept_answer(ans.as_bytes(), BOTH).unwrap_err(),
            SdpError::NoAudio
        );
        let ans = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 5000 RTP/AVP 8\r\na=recvonly\r\n";
        assert_eq!(
            accept_answer(ans.as_bytes(), &[Codec::Pcmu]).unwrap_err(),
            SdpError::NoCommonCodec
        );
        let p = accept_answer(ans.as_bytes(), BOTH).unwrap();
        assert_eq!(
            (p.codec, p.dtmf_pt, p.direction),
            (Codec::Pcma, None, Direction::SendOnly)
        );
    }

    #[test]
    fn direction_algebra() {
        use Direction::*;
        for d in [SendRecv, SendOnly, RecvOnly, Inactive] {
            assert_eq!(d.reversed().reversed(), d);
            assert_eq!(d.intersect(SendRecv), d);
            assert_eq!(d.intersect(Inactive), Inactive);
        }
        assert_eq!(SendOnly.reversed(), RecvOnly);
        assert_eq!(SendOnly.intersect(RecvOnly), Inactive);
    }
}
