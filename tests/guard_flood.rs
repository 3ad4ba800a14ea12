//! Abuse turned away on the wire: sipvicious (`svmap`, `svwar`, `svcrack`)
//! and a SIPp INVITE flood, each from its own loopback address, while a
//! trunk (127.0.0.2) places legitimate calls through SIPp.
//!
//! Shown: every legitimate call succeeds; the flooding source is blocked
//! within seconds (the admin API lists it, the metrics count it) and then
//! gets no answer at all; svwar cannot tell real operators from made-up
//! names; svcrack, with the real password in its dictionary, is blocked
//! before it gets there; the block is lifted through the admin API. The
//! gateway's CPU time during the flood is printed (not asserted: the
//! machine is shared). Every tool is required: the test fails without it.
//! sipvicious cannot send from another loopback address (see [`SCANNER`]),
//! so its tools run from 127.0.0.1 and the trunk here is 127.0.0.2.

mod common;

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Gw, eventually, http_request, sipp};

const TOKEN: &str = "test-token";
const PASSWORD: &str = "Tlaxcala-1519";
const TRUNK: &str = "127.0.0.2";
const FLOODER: &str = "127.0.0.3";
/// sipvicious 0.3.3 sends from 127.0.0.1 whatever `-b` says, so the
/// scanners share it: it is not a trunk in this test's config.
const SCANNER: &str = "127.0.0.1";

fn config() -> String {
    config_with("max_delay_ms = 1000\nblock_after = 10")
}

/// The test's gateway with these `[guard.auth]` keys.
fn config_with(auth: &str) -> String {
    format!(
        r#"
[sip]
auth_algorithms = ["MD5"]
operator_ping_secs = 0
[trunks]
allow = ["{TRUNK}/32"]
[guard.auth]
{auth}
[[operators]]
id = "op1"
password = "{PASSWORD}"
queues = [{{ name = "pasaportes" }}]
[[operators]]
id = "op2"
password = "{PASSWORD}-2"
queues = [{{ name = "pasaportes" }}]
"#
    )
}

/// Runs a tool bounded by `limit`; Err when it is not installed.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<(bool, String), String> {
    let name = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{name} is not installed (apt-get install sipvicious): {e}"))?;
    let deadline = Instant::now() + limit;
    let ok = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut out);
    }
    Ok((ok, out))
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // CLK_TCK is 100 on every Linux this runs on.
    ticks / 100.0
}

fn blocks(gw: &Gw) -> serde_json::Value {
    let (status, body) = http_request(gw.http.unwrap(), "GET", "/api/blocks", Some(TOKEN), None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn blocked(gw: &Gw, ip: &str) -> Option<serde_json::Value> {
    blocks(gw)
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["source"] == ip)
        .cloned()
}

/// An OPTIONS from `src`: whether the gateway answered at all.
fn answers(gw: &Gw, src: &str) -> bool {
    let sock = UdpSocket::bind(format!("{src}:0")).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let local: SocketAddr = sock.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:{0} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-probe{1}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=p{1}\r\nTo: <sip:{0}>\r\nCall-ID: probe{1}@{src}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        gw.udp,
        rand_tag()
    );
    sock.send_to(msg.as_bytes(), gw.udp).unwrap();
    let mut buf = [0u8; 4096];
    sock.recv_from(&mut buf).is_ok()
}

/// An OPTIONS over TCP from `src`: whether the gateway answered at all.
fn answers_tcp(gw: &Gw, src: &str) -> bool {
    use socket2::{Domain, Socket, Type};
    use std::io::Write;
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{src}:0").parse().unwrap();
    sock.bind(&from.into()).unwrap();
    if sock
        .connect_timeout(&gw.tcp.into(), Duration::from_secs(2))
        .is_err()
    {
        return false;
    }
    let mut s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let local = s.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:{0} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-tcp{1}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=t{1}\r\nTo: <sip:{0}>\r\nCall-ID: tcp{1}@{src}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        gw.tcp,
        rand_tag()
    );
    if s.write_all(msg.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    matches!(s.read(&mut buf), Ok(n) if n > 0)
}

fn rand_tag() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn floods_scans_and_guessers_are_turned_away_while_trunk_calls_succeed() {
    // The rates alone, not refused INVITEs, block the flooder here.
    let gw = Gw::start(&format!(
        "{}\n[guard]\nstrangers_block_after = 0\n",
        config()
    ));
    let port = gw.udp.port().to_string();
    let target = gw.udp;

    // Legitimate trunk calls run through everything below.
    let legit = std::thread::spawn(move || {
        sipp(
            "uac_basic.xml",
            target,
            &[
                "-i", TRUNK, "-m", "30", "-r", "2", "-d", "1000", "-s", "5550000",
            ],
            Duration::from_secs(90),
        )
    });

    // The SIPp flood: 6000 INVITEs at 1000/s from a non-trunk address.
    let cpu0 = cpu_seconds(gw.pid());
    let t0 = Instant::now();
    let flood = std::thread::spawn(move || {
        sipp(
            "flood_invite.xml",
            target,
            &[
                "-i", FLOODER, "-m", "6000", "-r", "1000", "-l", "6000", "-s", "5550000",
            ],
            Duration::from_secs(30),
        )
    });
    assert!(
        eventually(Duration::from_secs(5), || blocked(&gw, FLOODER).is_some()),
        "the flooder is blocked within seconds\n{}",
        gw.log_text()
    );
    let blocked_after = t0.elapsed();
    let flood_run = flood.join().unwrap();
    let flood_secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(gw.pid()) - cpu0;
    assert!(
        flood_run.stdout.contains("Total Call created") || flood_run.ok,
        "the flood ran\n{}\n{}",
        flood_run.stdout,
        flood_run.stderr
    );
    println!(
        "flood: 6000 INVITEs at 1000/s from {FLOODER}: blocked after {:.2} s; gateway CPU {cpu:.2} s over {flood_secs:.1} s of flood ({:.3} cores, {:.0} µs per flood INVITE, legitimate calls included)",
        blocked_after.as_secs_f64(),
        cpu / flood_secs,
        cpu * 1e6 / 6000.0
    );
    let b = blocked(&gw, FLOODER).unwrap();
    assert_eq!(b["reason"], "flood");
    assert!(b["dropped"].as_u64().unwrap() > 1000, "{b}");
    let dropped = gw.metric(
        "conmutador_guard_messages_total",
        &["decision=\"blocked\"", "class=\"invite\""],
    );
    let limited = gw.metric(
        "conmutador_guard_messages_total",
        &["decision=\"limited\"", "class=\"invite\""],
    );
    assert!(dropped > 1000.0, "blocked INVITEs counted: {dropped}");
    assert!(limited >= 1.0, "limited INVITEs counted: {limited}");
    assert!(gw.metric("conmutador_guard_blocks_total", &["reason=\"flood\""]) >= 1.0);
    // Nothing of the flood went past the guard to the call room: at most
    // the first burst was answered (403, not a trunk).
    let answered = gw.metric(
        "conmutador_guard_messages_total",
        &["decision=\"admitted\"", "class=\"invite\""],
    );
    assert!(
        answered < 200.0,
        "admitted INVITEs (trunk calls + first burst): {answered}"
    );
    // A blocked source hears nothing at all; another stranger is answered.
    assert!(!answers(&gw, FLOODER), "a blocked source gets no answer");
    assert!(
        !answers_tcp(&gw, FLOODER),
        "nor over TCP (closed at accept)"
    );
    assert!(
        answers_tcp(&gw, "127.0.0.9"),
        "others are answered over TCP"
    );
    assert!(
        answers(&gw, "127.0.0.9"),
        "other sources are still answered"
    );

    // svmap: one probe, answered like any OPTIONS (nothing to hide, no flood).
    let (_, map) = run_bounded(
        Command::new("svmap").args(["-p", &port, "127.0.0.1"]),
        Duration::from_secs(30),
    )
    .unwrap();
    println!("--- svmap\n{map}");

    // svwar: real and made-up operator names look the same.
    let dir = tempfile::tempdir().unwrap();
    let names = dir.path().join("names.txt");
    std::fs::write(&names, "op1\nop2\nzz-nobody\nqq-fake\nop9\nadmin\n").unwrap();
    let (_, war) = run_bounded(
        Command::new("svwar").args([
            "-p",
            &port,
            "-d",
            names.to_str().unwrap(),
            "--force",
            "--maximumtime",
            "10",
            "127.0.0.1",
        ]),
        Duration::from_secs(60),
    )
    .unwrap();
    println!("--- svwar\n{war}");
    let status_of = |name: &str| -> Option<String> {
        war.lines()
            .find(|l| l.split('|').next().map(str::trim) == Some(name))
            .map(|l| l.split('|').nth(1).unwrap_or("").trim().to_owned())
    };
    assert_eq!(
        status_of("op1"),
        status_of("zz-nobody"),
        "svwar tells a real operator from a made-up name\n{war}"
    );
    assert_eq!(status_of("op2"), status_of("qq-fake"), "{war}");
    assert!(status_of("op1").is_none(), "svwar lists no operator\n{war}");

    // svcrack: the real password is in its dictionary, after 40 wrong ones.
    let mut dict: Vec<String> = (0..40).map(|i| format!("guess{i:03}")).collect();
    dict.push(PASSWORD.to_owned());
    dict.extend((40..60).map(|i| format!("guess{i:03}")));
    let dict_path = dir.path().join("dict.txt");
    std::fs::write(&dict_path, dict.join("\n") + "\n").unwrap();
    let (_, crack) = run_bounded(
        Command::new("svcrack").args([
            "-p",
            &port,
            "-u",
            "op1",
            "-d",
            dict_path.to_str().unwrap(),
            "--maximumtime",
            "10",
            "127.0.0.1",
        ]),
        Duration::from_secs(90),
    )
    .unwrap();
    println!("--- svcrack\n{crack}");
    assert!(
        !crack.contains(PASSWORD),
        "svcrack found the password\n{crack}"
    );
    assert!(
        eventually(Duration::from_secs(5), || blocked(&gw, SCANNER)
            .is_some_and(|b| b["reason"] == "auth")),
        "the guesser is blocked\n{}",
        serde_json::to_string(&blocks(&gw)).unwrap()
    );
    assert!(gw.metric("conmutador_guard_auth_total", &["decision=\"delayed\""]) >= 1.0);
    let tries = gw.metric(
        "conmutador_auth_failures_total",
        &["reason=\"bad_credentials\""],
    );
    assert!(
        (10.0..41.0).contains(&tries),
        "svcrack really guessed, and was stopped before the password: {tries}"
    );

    // Every legitimate call succeeded.
    let legit = legit.join().unwrap();
    assert!(
        legit.ok,
        "legitimate trunk calls failed\n{}\n{}\n{}",
        legit.stdout,
        legit.stderr,
        gw.log_text()
    );

    // Lifting the block through the admin API: the source is answered again.
    let (status, body) = http_request(
        gw.http.unwrap(),
        "DELETE",
        &format!("/api/blocks/{FLOODER}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(blocked(&gw, FLOODER).is_none());
    assert!(answers(&gw, FLOODER), "answered again once lifted");
    assert!(answers_tcp(&gw, FLOODER), "over TCP too");
    assert!(gw.metric("conmutador_guard_unblocks_total", &[]) >= 1.0);
}

// ---------------------------------------------------------------- guessing

/// A phone (or a guesser) sending REGISTER for `user` from `src`.
struct Registrar {
    sock: UdpSocket,
    gw: SocketAddr,
    cseq: u32,
    call_id: String,
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(s.as_bytes()))
}

fn param(h: &str, k: &str) -> Option<String> {
    h.split(',').find_map(|p| {
        let (a, b) = p.trim().trim_start_matches("Digest ").split_once('=')?;
        (a.trim() == k).then(|| b.trim().trim_matches('"').to_owned())
    })
}

impl Registrar {
    fn new(src: &str, gw: SocketAddr) -> Registrar {
        let sock = UdpSocket::bind(format!("{src}:0")).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(12)))
            .unwrap();
        Registrar {
            sock,
            gw,
            cseq: 0,
            call_id: format!("reg{}@{src}", rand_tag()),
        }
    }

    fn send(&mut self, user: &str, auth: Option<String>) -> Option<String> {
        self.cseq += 1;
        let local = self.sock.local_addr().unwrap();
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let msg = format!(
            "REGISTER sip:{gw} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-r{t}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{gw}>;tag=f{t}\r\nTo: <sip:{user}@{gw}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}>\r\nExpires: 60\r\n{auth}Content-Length: 0\r\n\r\n",
            gw = self.gw,
            t = rand_tag(),
            cid = self.call_id,
            cseq = self.cseq
        );
        self.sock.send_to(msg.as_bytes(), self.gw).unwrap();
        let mut buf = [0u8; 8192];
        loop {
            let (n, _) = self.sock.recv_from(&mut buf).ok()?;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("SIP/2.0 1") {
                return Some(text);
            }
        }
    }

    /// Challenge, then answer it with `password`: the final response.
    fn register(&mut self, user: &str, password: &str) -> Option<String> {
        let challenge = self.send(user, None)?;
        let www = header(&challenge, "WWW-Authenticate")?;
        let (realm, nonce) = (param(&www, "realm")?, param(&www, "nonce")?);
        let opaque = param(&www, "opaque")
            .map(|o| format!(", opaque=\"{o}\""))
            .unwrap_or_default();
        let uri = format!("sip:{}", self.gw);
        let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
        let ha2 = md5_hex(&format!("REGISTER:{uri}"));
        let cnonce = format!("{:x}", rand_tag());
        let resp = md5_hex(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
        let auth = format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\"{opaque}"
        );
        self.send(user, Some(auth))
    }
}

fn header(msg: &str, name: &str) -> Option<String> {
    msg.split("\r\n\r\n").next()?.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

fn status(msg: &Option<String>) -> Option<u16> {
    msg.as_ref()?.split_whitespace().nth(1)?.parse().ok()
}

/// What an answer looks like, without the values that differ every time.
fn shape(msg: &Option<String>) -> Vec<String> {
    let Some(m) = msg else {
        return vec!["no answer".into()];
    };
    let head = m.split("\r\n\r\n").next().unwrap_or("");
    let mut v: Vec<String> = vec![head.lines().next().unwrap_or("").to_owned()];
    for l in head.lines().skip(1) {
        let (k, val) = l.split_once(':').unwrap_or((l, ""));
        v.push(k.trim().to_owned());
        if k.trim().eq_ignore_ascii_case("WWW-Authenticate") {
            let mut names: Vec<String> = val
                .trim()
                .trim_start_matches("Digest ")
                .split(',')
                .map(|p| p.split('=').next().unwrap_or("").trim().to_owned())
                .collect();
            names.sort();
            v.push(names.join(","));
        }
    }
    v
}

#[test]
fn a_guessed_account_answers_like_an_unknown_one_and_its_phone_keeps_registering() {
    let gw = Gw::start(&config_with(
        "free_failures = 1\nmax_delay_ms = 200\nblock_after = 100\nlock_account_after = 6",
    ));
    // The real phone logs in from its usual address.
    let phone = "127.0.0.7";
    let ok = Registrar::new(phone, gw.udp).register("op1", PASSWORD);
    assert_eq!(status(&ok), Some(200), "{ok:?}\n{}", gw.log_text());

    // Guessers from three addresses, two wrong answers each, against the
    // real account and against a made-up one: the answers look the same.
    for (i, src) in ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
        .iter()
        .enumerate()
    {
        for _ in 0..2 {
            let real = Registrar::new(src, gw.udp).register("op1", &format!("wrong{i}"));
            let fake = Registrar::new(src, gw.udp).register("zz-nobody", &format!("wrong{i}"));
            assert_eq!(status(&real), Some(401), "{real:?}");
            assert_eq!(
                shape(&real),
                shape(&fake),
                "a guessed account and an unknown one answer differently\n{real:?}\n{fake:?}"
            );
        }
    }
    assert!(
        gw.metric(
            "conmutador_guard_auth_total",
            &["decision=\"lock_started\""]
        ) >= 2.0
    );

    // The account is locked: even the right password from a new address
    // gets the same challenge as a wrong one ...
    let stranger = Registrar::new("127.0.0.14", gw.udp).register("op1", PASSWORD);
    assert_eq!(status(&stranger), Some(401), "{stranger:?}");
    let unknown = Registrar::new("127.0.0.14", gw.udp).register("zz-nobody", PASSWORD);
    assert_eq!(shape(&stranger), shape(&unknown));
    assert!(
        gw.metric(
            "conmutador_guard_auth_total",
            &["decision=\"account_locked\""]
        ) >= 1.0
    );
    // ... but the real phone re-registers from its usual address.
    let again = Registrar::new(phone, gw.udp).register("op1", PASSWORD);
    assert_eq!(status(&again), Some(200), "{again:?}\n{}", gw.log_text());
}

// ---------------------------------------------------------------- places

#[test]
fn one_number_cannot_hold_more_queue_places_than_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let plans = common::pasaportes_plan(tmp.path());
    let gw = Gw::start(&format!(
        r#"
operators = []
[dialplans]
dir = "{}"
watch = false
[guard]
caller_places = 2
[[queues]]
name = "pasaportes"
join_empty = "never"
leave_when_empty = "never"
"#,
        plans.display()
    ));
    let waiting = || -> u64 {
        let (status, body) = common::http_get(gw.http.unwrap(), "/api/calls", Some(TOKEN));
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .filter(|c| c["state"] == "queued")
            .count() as u64
    };
    // The in-test UA presents the same number on every call.
    let mut callers = Vec::new();
    for i in 0..3 {
        let mut ua = common::ua::Ua::new(gw.udp);
        let r = ua.call("100", "0", true);
        assert_eq!(r.status(), Some(200), "caller {i}: {r:?}");
        callers.push(ua);
        if i < 2 {
            assert!(
                eventually(Duration::from_secs(10), || waiting() == i + 1),
                "caller {i} queues\n{}",
                gw.log_text()
            );
        }
    }
    // The third call from the same number takes the plan's overflow exit.
    assert!(
        eventually(Duration::from_secs(10), || gw
            .metric("conmutador_guard_caller_places_refused_total", &[])
            >= 1.0),
        "{}",
        gw.log_text()
    );
    let mut third = callers.pop().unwrap();
    let mut heard = common::ua::Heard::default();
    assert!(
        third.wait_bye(&mut heard, Duration::from_secs(20)),
        "the third call is ended by the plan"
    );
    assert_eq!(waiting(), 2, "the first two still wait");
}

// ---------------------------------------------------------------- scanners

#[test]
fn a_slow_scanner_stops_being_answered_after_its_refused_invites() {
    let gw = Gw::start(&config());
    let src = "127.0.0.8";
    let sock = UdpSocket::bind(format!("{src}:0")).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    let mut answered = 0;
    // Forty INVITEs at about five a second: under every rate limit.
    for i in 0..40 {
        let msg = format!(
            "INVITE sip:5550000@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-scan{i}x{t}\r\nMax-Forwards: 70\r\nFrom: <sip:scan@{local}>;tag=s{i}\r\nTo: <sip:5550000@{gw}>\r\nCall-ID: scan{i}x{t}@{src}\r\nCSeq: 1 INVITE\r\nContact: <sip:scan@{local}>\r\nContent-Length: 0\r\n\r\n",
            gw = gw.udp,
            t = rand_tag()
        );
        sock.send_to(msg.as_bytes(), gw.udp).unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            // Earlier 403s are retransmitted (no ACK here): count this one's.
            if text.starts_with("SIP/2.0 403") && text.contains(&format!("scan{i}x")) {
                answered += 1;
                break;
            }
            if start.elapsed() > Duration::from_millis(300) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200).saturating_sub(start.elapsed()));
    }
    let b =
        blocked(&gw, src).unwrap_or_else(|| panic!("the scanner is blocked; {answered} answered"));
    assert_eq!(b["reason"], "scan", "{b}");
    assert!(
        (15..35).contains(&answered),
        "answered until blocked, then silence: {answered}"
    );
    assert_eq!(
        gw.metric(
            "conmutador_guard_messages_total",
            &["decision=\"limited\"", "class=\"invite\""]
        ),
        0.0,
        "never over the rate"
    );
    assert!(gw.metric("conmutador_guard_blocks_total", &["reason=\"scan\""]) >= 1.0);
}
