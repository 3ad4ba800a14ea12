//! Gateway settings: the `conmutador.toml` file, its embedded default, and
//! command-line overrides.
//!
//! This room only describes and validates settings; it opens no sockets and
//! reads no files other than the config file itself. Relative paths in the
//! file are resolved against the file's folder so the gateway can be started
//! from anywhere. Rooms that own a section (`acd` for queues and operators)
//! define its type; this room composes them.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ipnet::IpNet;
use serde::Deserialize;

use crate::ops::logging::LogFormat;
use crate::ops::records::RecordsConfig;

/// The shipped configuration, used when no file is given and none is found
/// in the working directory.
pub const EMBEDDED: &str = include_str!("../../conmutador.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub sip: SipConfig,
    #[serde(default)]
    pub trunks: TrunkConfig,
    #[serde(default)]
    pub media: MediaConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub dialplans: DialplanConfig,
    /// Call records and queue events (SQLite by default, PostgreSQL by URL).
    #[serde(default)]
    pub storage: RecordsConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub calls: CallsConfig,
    /// `[guard]`: per-source limits, blocks and password-guessing limits.
    #[serde(default)]
    pub guard: crate::sip::guard::GuardConfig,
    /// `[tls]`: SIP over TLS (off unless it names a listener or a CA file).
    #[serde(default)]
    pub tls: crate::sip::tls::TlsConfig,
    /// `[[queues]]`: the ACD's queues (see the ACD room for every key).
    #[serde(default)]
    pub queues: Vec<crate::acd::QueueConfig>,
    /// `[[operators]]`: who may log in, with which password, to which queues.
    #[serde(default)]
    pub operators: Vec<crate::acd::OperatorConfig>,
    /// `[[supervisors]]`: who may listen, whisper and barge, on which queues.
    #[serde(default)]
    pub supervisors: Vec<crate::call::supervise::SupervisorConfig>,
    /// `[recording]`: which queues' calls are recorded, where, for how long.
    #[serde(default)]
    pub recording: RecordingConfig,
    /// Folder the relative paths are resolved against (not read from the file).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Addresses to listen on; each gets a UDP socket and a TCP listener.
    pub listen: Vec<SocketAddr>,
    pub udp: bool,
    pub tcp: bool,
    /// Host name or address written in Via/Contact; defaults to the listen address.
    pub public_host: Option<String>,
    pub user_agent: String,
    pub max_transactions: usize,
    pub max_calls: usize,
    pub max_tcp_connections: usize,
    /// Largest SIP message accepted over TCP, in bytes.
    pub max_tcp_message: usize,
    /// Seconds a TCP connection may stay silent before it is closed.
    pub tcp_idle_timeout: u64,
    /// RFC 3261 T1 in milliseconds.
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
    /// Retry-After seconds sent with 503 when shedding load.
    pub retry_after: u32,
    /// New INVITEs admitted per second before 503 (0 = no rate limit).
    pub max_cps: u32,
    /// New INVITEs get 503 while, three seconds running, more than 1% of a
    /// media clock thread's frames went out later than this many ms (0 = off).
    pub overload_media_late_ms: u64,
    /// New INVITEs get 503 while the signalling runtime's 50 ms probe timer
    /// ran this many ms late within the last second or two (0 = off). The
    /// default is T1: a gateway that answers later than that has every UDP
    /// peer retransmitting, which only adds to the load.
    pub overload_signalling_lag_ms: u64,
    /// Digest algorithms offered to operators' phones, one challenge each,
    /// in this order ("SHA-256", "MD5"). Some phones (baresip 1.0) fail on
    /// any SHA-256 challenge and need ["MD5"].
    pub auth_algorithms: Vec<String>,
    /// Seconds between OPTIONS pings to registered operator phones (0: off).
    pub operator_ping_secs: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: vec!["127.0.0.1:5060".parse().expect("literal address")],
            udp: true,
            tcp: true,
            public_host: None,
            user_agent: format!("conmutador/{}", env!("CARGO_PKG_VERSION")),
            max_transactions: 50_000,
            max_calls: 10_000,
            max_tcp_connections: 1_024,
            max_tcp_message: 64 * 1024,
            tcp_idle_timeout: 300,
            t1_ms: 500,
            t2_ms: 4_000,
            t4_ms: 5_000,
            retry_after: 5,
            max_cps: 0,
            overload_media_late_ms: 20,
            overload_signalling_lag_ms: 500,
            auth_algorithms: vec!["SHA-256".into(), "MD5".into()],
            operator_ping_secs: 30,
        }
    }
}

impl SipConfig {
    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms)
    }
    pub fn t2(&self) -> Duration {
        Duration::from_millis(self.t2_ms)
    }
    pub fn t4(&self) -> Duration {
        Duration::from_millis(self.t4_ms)
    }
}

/// Who may place calls into the gateway without authenticating.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrunkConfig {
    /// Source networks of the carrier's trunk (addresses or CIDR networks).
    pub allow: Vec<IpNet>,
}

impl Default for TrunkConfig {
    fn default() -> Self {
        TrunkConfig {
            allow: vec![
                "127.0.0.0/8".parse().expect("literal network"),
                "::1/128".parse().expect("literal network"),
            ],
        }
    }
}

impl TrunkConfig {
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Address RTP sockets bind to and announce in SDP.
    pub bind: IpAddr,
    /// Address written in SDP when it differs from `bind` (NAT).
    pub public_ip: Option<IpAddr>,
    /// Inclusive even-port range, "LOW-HIGH".
    pub rtp_ports: PortRange,
    /// Seconds without RTP from the caller before the call is hung up.
    pub rtp_timeout: u64,
    /// Codecs offered and accepted, in our order of preference.
    pub codecs: Vec<String>,
    /// Media clock threads; 0 means one per core (at most four).
    pub workers: usize,
    /// SCHED_FIFO priority (1-99) for the media clock threads, when the
    /// process may use it (CAP_SYS_NICE); keeps pacing steady on a busy host.
    pub realtime_priority: Option<u8>,
    /// Lock each call's RTP to the peer it first hears (a packet from the
    /// SDP address, or a few in a row from elsewhere): other sources are
    /// dropped by the kernel. Off: follow a source that moves mid-call.
    pub strict_rtp: bool,
    /// SRTP (SDES keys, RFC 4568) on each leg: `off`; `optional` (SRTP
    /// when the peer offers or accepts it and its signalling is TLS, plain
    /// otherwise: a carrier may stay plain while operators encrypt); or
    /// `required` (a leg without SRTP over TLS is refused 488).
    pub srtp: String,
    /// The same for operators' phones: `optional` offers a phone on TLS
    /// keys it may ignore (RTP/AVP with `a=crypto`); `required` offers
    /// RTP/SAVP (for phones set to mandatory SRTP) and rings no phone that
    /// is not on TLS.
    pub srtp_operators: String,
}

fn srtp_mode(s: &str) -> crate::sdp::SrtpMode {
    match s {
        "off" => crate::sdp::SrtpMode::Off,
        "required" => crate::sdp::SrtpMode::Required,
        _ => crate::sdp::SrtpMode::Optional,
    }
}

impl MediaConfig {
    pub fn srtp_mode(&self) -> crate::sdp::SrtpMode {
        srtp_mode(&self.srtp)
    }

    pub fn srtp_operators_mode(&self) -> crate::sdp::SrtpMode {
        srtp_mode(&self.srtp_operators)
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            public_ip: None,
            rtp_ports: PortRange {
                low: 20_000,
                high: 29_999,
            },
            rtp_timeout: 30,
            codecs: vec!["PCMU".into(), "PCMA".into()],
            workers: 0,
            realtime_priority: None,
            strict_rtp: true,
            srtp: "optional".into(),
            srtp_operators: "optional".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("port range {s:?} is not LOW-HIGH"))?;
        let low: u16 = a.trim().parse().map_err(|_| format!("bad port {a:?}"))?;
        let high: u16 = b.trim().parse().map_err(|_| format!("bad port {b:?}"))?;
        if low == 0 || low > high || high - low < 1 {
            return Err(format!("port range {s:?} must hold at least two ports"));
        }
        Ok(PortRange { low, high })
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Bearer token for the admin API; empty disables the admin API.
    pub admin_token: String,
    /// Read-only token of the wallboard (`/wallboard?token=...`); it opens
    /// nothing under `/api`. Empty closes the wallboard.
    pub viewer_token: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:9090".parse().expect("literal address"),
            admin_token: String::new(),
            viewer_token: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialplanConfig {
    pub dir: PathBuf,
    /// Reload plans when a file in `dir` changes.
    pub watch: bool,
}

impl Default for DialplanConfig {
    fn default() -> Self {
        DialplanConfig {
            dir: PathBuf::from("dialplans"),
            watch: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter such as "info,conmutador::sip=debug"; RUST_LOG wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// Milliseconds to ring (180 Ringing) before answering; 0 answers at once.
    pub ring_ms: u64,
    /// Number an operator dials from the phone to pause (digest-authenticated).
    pub pause_code: String,
    /// Number an operator dials to take calls again.
    pub unpause_code: String,
    /// Numbers a supervisor dials, followed by an operator's number, to
    /// listen to, whisper to or barge into that operator's call.
    pub listen_code: String,
    pub whisper_code: String,
    pub barge_code: String,
    /// Where the dialplan's transfers go (the carrier's SIP proxy, which
    /// routes by Request-URI): `IP:port` (UDP), or a URI such as
    /// `sips:IP:port` or `sip:IP:port;transport=tls` for a carrier that
    /// wants TLS (verified against `tls.ca`). Without it only `sip:user@IP`
    /// targets work: the gateway does no DNS.
    pub transfer_proxy: Option<String>,
    /// Session timers (RFC 4028): the shortest Session-Expires we accept
    /// (a shorter one gets 422 with this Min-SE). RFC 4028 allows no less
    /// than 90 seconds.
    pub session_min_se: u32,
    /// The longest Session-Expires we keep: a carrier asking for more is
    /// answered with this, so a dead call is noticed in at most this long.
    pub session_expires: u32,
}

impl CallsConfig {
    /// The transfer proxy as a URI (`IP:port` is `sip:IP:port`, UDP);
    /// None when unset or unusable (no IP address).
    pub fn transfer_proxy_uri(&self) -> Option<String> {
        let p = self.calls_proxy()?;
        let uri = if p.parse::<SocketAddr>().is_ok() {
            format!("sip:{p}")
        } else {
            p.to_owned()
        };
        let parsed = crate::sip::Uri::parse(&uri).ok()?;
        let sip = parsed.as_sip()?;
        let ip_host = match &sip.host {
            crate::sip::Host::V4(_) | crate::sip::Host::V6(_) => true,
            crate::sip::Host::Domain(d) => d.parse::<std::net::IpAddr>().is_ok(),
        };
        ip_host.then_some(uri)
    }

    /// The supervision feature codes.
    pub fn supervision_codes(&self) -> crate::call::supervise::Codes {
        crate::call::supervise::Codes {
            listen: self.listen_code.clone(),
            whisper: self.whisper_code.clone(),
            barge: self.barge_code.clone(),
        }
    }

    fn calls_proxy(&self) -> Option<&str> {
        self.transfer_proxy.as_deref().map(str::trim)
    }
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            ring_ms: 0,
            pause_code: "*21".into(),
            unpause_code: "*22".into(),
            listen_code: "*31".into(),
            whisper_code: "*32".into(),
            barge_code: "*33".into(),
            transfer_proxy: None,
            session_min_se: 90,
            session_expires: 1800,
        }
    }
}

/// `[recording]`: call recording (see README, "Recording").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Where the WAV files go; relative to the data directory. Default
    /// `recordings` (that is, `<data_dir>/recordings`).
    pub dir: PathBuf,
    /// Recordings older than this many days are deleted (0: never).
    pub retention_days: u32,
    /// Below this many MiB free on the recordings' disk nothing is
    /// recorded (open recordings close; calls go on).
    pub min_free_mb: u64,
    /// What the operator dials in-call (DTMF) to pause the recording…
    pub pause_code: String,
    /// …and to resume it.
    pub resume_code: String,
    /// Queue name → `"all"`, `"none"` or a percentage 0..100 of its calls.
    /// Queues not named are not recorded.
    pub queues: std::collections::BTreeMap<String, RecordShare>,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            dir: PathBuf::from("recordings"),
            retention_days: 90,
            min_free_mb: 1024,
            pause_code: "*1".into(),
            resume_code: "*2".into(),
            queues: Default::default(),
        }
    }
}

/// How many of a queue's calls are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordShare {
    All,
    None,
    /// This percentage (0..=100), each call drawn at random.
    Percent(u8),
}

impl<'de> Deserialize<'de> for RecordShare {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Number(i64),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "all" => Ok(RecordShare::All),
            Raw::Word(w) if w == "none" => Ok(RecordShare::None),
            Raw::Number(n @ 0..=100) => Ok(RecordShare::Percent(n as u8)),
            _ => Err(serde::de::Error::custom(
                "expected \"all\", \"none\" or a percentage 0..100",
            )),
        }
    }
}

impl RecordShare {
    /// Whether a call is recorded, given a uniform draw in 0..100.
    pub fn records(self, draw: u8) -> bool {
        match self {
            RecordShare::All => true,
            RecordShare::None => false,
            RecordShare::Percent(p) => draw < p,
        }
    }
}

/// Command-line values that take precedence over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub sip_listen: Vec<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub rtp_ports: Option<PortRange>,
    pub dialplans: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
}

impl Config {
    /// Parses a config text; `base_dir` anchors relative paths.
    pub fn parse_text(text: &str, base_dir: &Path) -> anyhow::Result<Config> {
        let mut cfg: Config = toml::from_str(text).context("invalid configuration")?;
        cfg.base_dir = base_dir.to_path_buf();
        cfg.validate()?;
        Ok(cfg)
    }

    /// Loads `path`, or `./conmutador.toml`, or the embedded default.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let path = match path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("conmutador.toml")).filter(|p| p.exists()),
        };
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("reading {}", p.display()))?;
                let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
                let base = if base.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    base
                };
                Config::parse_text(&text, &base).with_context(|| format!("in {}", p.display()))
            }
            None => {
                // The embedded file names paths relative to the repository,
                // which is where `cargo run` starts.
                Config::parse_text(EMBEDDED, Path::new(env!("CARGO_MANIFEST_DIR")))
            }
        }
    }

    pub fn apply(&mut self, o: &Overrides) -> anyhow::Result<()> {
        if !o.sip_listen.is_empty() {
            self.sip.listen = o.sip_listen.clone();
        }
        if let Some(h) = o.http_listen {
            self.http.listen = h;
        }
        if let Some(r) = o.rtp_ports {
            self.media.rtp_ports = r;
        }
        if let Some(d) = &o.dialplans {
            self.dialplans.dir = d.clone();
        }
        if let Some(d) = &o.data_dir {
            self.storage.data_dir = d.clone();
        }
        if let Some(f) = o.log_format {
            self.log.format = f;
        }
        self.validate()
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.sip.listen.is_empty() {
            bail!("sip.listen names no address");
        }
        if !self.sip.udp && !self.sip.tcp {
            bail!("sip: enable at least one of udp and tcp");
        }
        for c in &self.media.codecs {
            if !matches!(c.to_ascii_uppercase().as_str(), "PCMU" | "PCMA") {
                bail!("media.codecs: unsupported codec {c:?} (PCMU, PCMA)");
            }
        }
        if let Some(p) = &self.calls.transfer_proxy
            && self.calls.transfer_proxy_uri().is_none()
        {
            bail!(
                "calls.transfer_proxy: {p:?} is neither IP:port nor a sip:/sips: URI with an IP address"
            );
        }
        if !matches!(self.media.srtp.as_str(), "off" | "optional" | "required") {
            bail!(
                "media.srtp: {:?} is not off, optional or required",
                self.media.srtp
            );
        }
        if self.sip.auth_algorithms.is_empty() {
            bail!("sip.auth_algorithms names no algorithm");
        }
        for a in &self.sip.auth_algorithms {
            if crate::sip::digest::Algorithm::parse(a).is_none() {
                bail!("sip.auth_algorithms: unknown algorithm {a:?} (SHA-256, MD5)");
            }
        }
        crate::acd::config::validate(&self.queues, &self.operators)
            .map_err(|e| anyhow::anyhow!("queues/operators: {e}"))?;
        let queue_names: Vec<&str> = self.queues.iter().map(|q| q.name.as_str()).collect();
        crate::call::supervise::validate(
            &self.supervisors,
            &queue_names,
            self.operators.iter().map(|o| o.id.as_str()),
            &self.calls.supervision_codes(),
        )
        .map_err(|e| anyhow::anyhow!("supervisors: {e}"))?;
        self.guard.validate().map_err(|e| anyhow::anyhow!(e))?;
        self.tls.validate().map_err(|e| anyhow::anyhow!(e))?;
        if self.sip.t1_ms == 0 || self.sip.t2_ms < self.sip.t1_ms {
            bail!("sip timers: need 0 < t1_ms <= t2_ms");
        }
        // A wall screen's URL carries the viewer token; were it the admin
        // token, anyone reading the screen's address could act as admin.
        if !self.http.viewer_token.is_empty() && self.http.viewer_token == self.http.admin_token {
            bail!("http.viewer_token must differ from http.admin_token");
        }
        if self.calls.session_min_se < 90 || self.calls.session_expires < self.calls.session_min_se
        {
            bail!("calls: need 90 <= session_min_se <= session_expires (RFC 4028)");
        }
        let r = &self.recording;
        for q in r.queues.keys() {
            if !self.queues.iter().any(|c| &c.name == q) {
                bail!("recording.queues: no queue named {q:?}");
            }
        }
        for (k, code) in [
            ("pause_code", &r.pause_code),
            ("resume_code", &r.resume_code),
        ] {
            if code.is_empty()
                || code.len() > 8
                || !code
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
            {
                bail!("recording.{k}: {code:?} is not 1 to 8 DTMF digits (0-9 * #)");
            }
        }
        if r.pause_code == r.resume_code {
            bail!("recording: pause_code and resume_code must differ");
        }
        Ok(())
    }

    /// Resolves a path from the file against the file's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub fn dialplan_dir(&self) -> PathBuf {
        self.resolve(&self.dialplans.dir)
    }

    /// The TLS files with their paths resolved.
    pub fn tls_files(&self) -> crate::sip::tls::TlsFiles {
        crate::sip::tls::TlsFiles {
            cert: self.tls.cert.as_deref().map(|p| self.resolve(p)),
            key: self.tls.key.as_deref().map(|p| self.resolve(p)),
            ca: self.tls.ca.as_deref().map(|p| self.resolve(p)),
        }
    }

    /// The records settings with the data folder resolved.
    pub fn records(&self) -> RecordsConfig {
        RecordsConfig {
            data_dir: self.resolve(&self.storage.data_dir),
            ..self.storage.clone()
        }
    }

    /// Where recordings go, resolved against the data directory.
    pub fn recording_dir(&self) -> PathBuf {
        let data = self.resolve(&self.storage.data_dir);
        if self.recording.dir.is_absolute() {
            self.recording.dir.clone()
        } else {
            data.join(&self.recording.dir)
        }
    }

    pub fn queue_names(&self) -> Vec<String> {
        self.queues.iter().map(|q| q.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_and_listens_on_loopback() {
        let cfg = Config::parse_text(EMBEDDED, Path::new(".")).unwrap();
        assert!(cfg.sip.listen.iter().all(|a| a.ip().is_loopback()));
        assert!(cfg.http.listen.ip().is_loopback());
        assert_eq!(cfg.sip.listen[0].port(), 5060);
        assert_eq!(cfg.http.listen.port(), 9090);
    }

    #[test]
    fn recording_section_parses_shares_and_refuses_bad_ones() {
        let q = "[[queues]]\nname = \"pasaportes\"\n[[queues]]\nname = \"visas\"\n";
        let cfg = Config::parse_text(
            &format!(
                "[storage]\ndata_dir = \"/srv/data\"\n{q}[recording]\nretention_days = 7\n\
                 [recording.queues]\npasaportes = \"all\"\nvisas = 25\n"
            ),
            Path::new("/etc"),
        )
        .unwrap();
        let r = &cfg.recording;
        assert_eq!(r.queues["pasaportes"], RecordShare::All);
        assert_eq!(r.queues["visas"], RecordShare::Percent(25));
        assert_eq!(
            (r.pause_code.as_str(), r.resume_code.as_str()),
            ("*1", "*2")
        );
        assert_eq!(cfg.recording_dir(), Path::new("/srv/data/recordings"));
        assert!(RecordShare::Percent(25).records(24) && !RecordShare::Percent(25).records(25));
        assert!(!RecordShare::None.records(0) && RecordShare::All.records(99));
        // Off by default.
        let plain = Config::parse_text(q, Path::new(".")).unwrap();
        assert!(plain.recording.queues.is_empty());
        for bad in [
            "[recording.queues]\npasaportes = 101\n",
            "[recording.queues]\npasaportes = \"some\"\n",
            "[recording.queues]\nnadie = \"all\"\n",
            "[recording]\npause_code = \"*1x\"\n",
            "[recording]\npause_code = \"*2\"\n",
        ] {
            let text = format!("{q}{bad}");
            let parsed = Config::parse_text(&text, Path::new("."))
                .and_then(|mut c| c.apply(&Overrides::default()).map(|()| c));
            assert!(parsed.is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn shipped_guard_section_is_the_built_in_default() {
        let cfg = Config::parse_text(EMBEDDED, Path::new(".")).unwrap();
        assert_eq!(cfg.guard, crate::sip::guard::GuardConfig::default());
        let bad = Config::parse_text(
            "[guard.sources]\ninvite = { rate = 5, burst = 0 }\n",
            Path::new("."),
        );
        assert!(format!("{:#}", bad.unwrap_err()).contains("guard.sources.invite"));
    }

    /// The wall screen's URL carries the viewer token: it may not be the
    /// admin token too.
    #[test]
    fn supervisors_parse_and_are_checked_against_queues_and_operators() {
        let base = "[[queues]]\nname = \"visas\"\n\
                    [[operators]]\nid = \"ana\"\npassword = \"p\"\nqueues = [{ name = \"visas\" }]\n";
        let ok = format!(
            "[calls]\nwhisper_code = \"*42\"\n{base}\
             [[supervisors]]\nid = \"marta\"\npassword = \"s\"\nqueues = [\"visas\"]\n"
        );
        let cfg = Config::parse_text(&ok, Path::new(".")).unwrap();
        assert_eq!(cfg.supervisors[0].id, "marta");
        assert_eq!(cfg.calls.supervision_codes().whisper, "*42");
        assert_eq!(cfg.calls.supervision_codes().listen, "*31");
        for bad in [
            "[[supervisors]]\nid = \"marta\"\npassword = \"s\"\nqueues = [\"nope\"]\n",
            "[[supervisors]]\nid = \"ana\"\npassword = \"s\"\nqueues = [\"visas\"]\n",
        ] {
            let err = Config::parse_text(&format!("{base}{bad}"), Path::new(".")).unwrap_err();
            assert!(format!("{err:#}").contains("supervisor"), "{err:#}");
        }
    }

    #[test]
    fn the_viewer_token_must_differ_from_the_admin_token() {
        let same = "[http]\nadmin_token = \"t\"\nviewer_token = \"t\"\n";
        let err = Config::parse_text(same, Path::new(".")).unwrap_err();
        assert!(format!("{err:#}").contains("viewer_token"), "{err:#}");
        let apart = "[http]\nadmin_token = \"t\"\nviewer_token = \"v\"\n";
        let cfg = Config::parse_text(apart, Path::new(".")).unwrap();
        assert_eq!(cfg.http.viewer_token, "v");
        let closed = Config::parse_text("[http]\nadmin_token = \"\"\n", Path::new(".")).unwrap();
        assert!(closed.http.viewer_token.is_empty());
    }

    #[test]
    fn a_transfer_proxy_is_ip_port_over_udp_or_a_sip_uri_with_an_ip() {
        let proxy = |p: &str| {
            Config::parse_text(
                &format!("[calls]\ntransfer_proxy = \"{p}\"\n"),
                Path::new("."),
            )
            .map(|c| c.calls.transfer_proxy_uri())
        };
        assert_eq!(
            proxy("192.0.2.10:5060").unwrap().as_deref(),
            Some("sip:192.0.2.10:5060")
        );
        assert_eq!(
            proxy("sips:192.0.2.10:5061").unwrap().as_deref(),
            Some("sips:192.0.2.10:5061")
        );
        assert_eq!(
            proxy("sip:[2001:db8::1]:5061;transport=tls")
                .unwrap()
                .as_deref(),
            Some("sip:[2001:db8::1]:5061;transport=tls")
        );
        // The gateway does no DNS: a name is refused at load, not at the
        // first transfer.
        assert!(proxy("sips:proxy.example.com:5061").is_err());
        assert!(proxy("not a uri").is_err());
    }

    #[test]
    fn shipped_tls_section_is_the_built_in_default_and_off() {
        let cfg = Config::parse_text(EMBEDDED, Path::new(".")).unwrap();
        assert_eq!(cfg.tls, crate::sip::tls::TlsConfig::default());
        assert!(!cfg.tls.enabled());
        let bad = Config::parse_text("[tls]\nlisten = [\"127.0.0.1:5061\"]\n", Path::new("."));
        assert!(format!("{:#}", bad.unwrap_err()).contains("tls.cert"));
        let ok = Config::parse_text(
            "[tls]\nlisten = [\"127.0.0.1:5061\"]\ncert = \"tls/c.pem\"\nkey = \"tls/k.pem\"\n",
            Path::new("/etc/conmutador"),
        )
        .unwrap();
        assert_eq!(
            ok.tls_files().cert,
            Some(PathBuf::from("/etc/conmutador/tls/c.pem"))
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Config::parse_text("[sip]\nlisten_on = []\n", Path::new(".")).unwrap_err();
        assert!(format!("{err:#}").contains("listen_on"), "{err:#}");
    }

    #[test]
    fn port_range_parses_and_rejects_nonsense() {
        assert_eq!(
            "10000-10010".parse::<PortRange>().unwrap(),
            PortRange {
                low: 10000,
                high: 10010
            }
        );
        assert!("10010-10000".parse::<PortRange>().is_err());
        assert!("abc".parse::<PortRange>().is_err());
        assert!("0-10".parse::<PortRange>().is_err());
    }

    #[test]
    fn trunk_allow_list_matches_networks_and_mapped_v4() {
        let t = TrunkConfig::default();
        assert!(t.allows("127.0.0.1".parse().unwrap()));
        assert!(t.allows("::1".parse().unwrap()));
        assert!(t.allows("::ffff:127.0.0.9".parse().unwrap()));
        assert!(!t.allows("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn overrides_win_over_the_file() {
        let mut cfg = Config::parse_text(EMBEDDED, Path::new("/etc/x")).unwrap();
        let o = Overrides {
            sip_listen: vec!["[::1]:5070".parse().unwrap()],
            http_listen: Some("127.0.0.1:0".parse().unwrap()),
            rtp_ports: Some("40000-40100".parse().unwrap()),
            ..Default::default()
        };
        cfg.apply(&o).unwrap();
        assert_eq!(
            cfg.sip.listen,
            vec!["[::1]:5070".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(cfg.media.rtp_ports.low, 40000);
        assert_eq!(cfg.dialplan_dir(), PathBuf::from("/etc/x/dialplans"));
    }
}
