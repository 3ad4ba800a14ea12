//! Shared helpers for the integration tests: start the real `conmutador`
//! binary on 127.0.0.1 with OS-picked ports, read its metrics, and run real
//! peers (SIPp) against it. Every process started here is stopped by PID.
#![allow(dead_code)]

pub mod baresip;
pub mod prometheus;
pub mod ua;
pub mod vocabulary;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A prompt of the shipped set, e.g. `shipped("es-MX", "bienvenida")`.
pub fn shipped(lang: &str, name: &str) -> PathBuf {
    repo()
        .join("dialplans/prompts")
        .join(lang)
        .join(format!("{name}.wav"))
}

/// A running gateway process.
pub struct Gw {
    child: Child,
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    /// The first `[tls] listen` address, when TLS is on.
    pub tls: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

/// `dir/plans`, holding a copy of every shipped prompt in both languages,
/// for a test that writes its own plans beside them (a queue says numbers
/// and plays hold music, so it needs them all).
pub fn plan_dir_with_prompts(dir: &Path) -> PathBuf {
    let plans = dir.join("plans");
    for lang in ["es-MX", "en"] {
        let from = repo().join("dialplans/prompts").join(lang);
        let to = plans.join("prompts").join(lang);
        std::fs::create_dir_all(&to).expect("create the prompts folder");
        for e in std::fs::read_dir(&from).expect("shipped prompts").flatten() {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy a prompt");
        }
    }
    plans
}

/// [`plan_dir_with_prompts`] with one plan, the default, that answers "100"
/// (and anything else) by putting the caller in queue `pasaportes`; a
/// caller the queue cannot take hears goodbye and is hung up.
pub fn pasaportes_plan(dir: &Path) -> PathBuf {
    pasaportes_plan_with(dir, &["transferencia"], "")
}

/// [`pasaportes_plan`] with the prompts played before queueing and more
/// nodes (TOML) of the test's own.
pub fn pasaportes_plan_with(dir: &Path, queue_prompts: &[&str], extra_nodes: &str) -> PathBuf {
    let plans = plan_dir_with_prompts(dir);
    let prompts: Vec<String> = queue_prompts.iter().map(|p| format!("{p:?}")).collect();
    std::fs::write(
        plans.join("colas.toml"),
        format!(
            r#"
[plan]
name = "colas"
start = "cola"
languages = ["es-MX"]
numbers = ["100"]
default = true

[nodes.cola]
type = "queue"
queue = "pasaportes"
prompts = [{}]
on_empty = "adios"
overflow = "adios"

[nodes.adios]
type = "hangup"
prompts = ["despedida"]
{extra_nodes}
"#,
            prompts.join(", ")
        ),
    )
    .expect("write the plan");
    plans
}

fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (k, v) in extra {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge(b, e),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// An RTP range for this test process: below the kernel's ephemeral ports
/// (32768 and up, where peers' sockets land) and, by PID, unlikely to be
/// shared with a concurrent test; a shared slot still works because the
/// gateway skips busy ports.
fn rtp_range() -> (u16, u16) {
    let slot = (std::process::id() % 110) as u16;
    let low = 10_000 + slot * 200;
    (low, low + 199)
}

/// A UDP port that was free a moment ago (for peers that need a fixed port).
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral port");
    s.local_addr().expect("bound socket has an address").port()
}

impl Gw {
    /// Starts the gateway with the shipped config, loopback ports picked by
    /// the OS, and `extra` (TOML) merged over it.
    pub fn start(extra: &str) -> Gw {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg: toml::Table =
            toml::from_str(&std::fs::read_to_string(repo().join("conmutador.toml")).unwrap())
                .unwrap();
        let (lo, hi) = rtp_range();
        let fixed = format!(
            r#"
            [sip]
            listen = ["127.0.0.1:0"]
            [http]
            listen = "127.0.0.1:0"
            admin_token = "test-token"
            [media]
            rtp_ports = "{lo}-{hi}"
            [dialplans]
            dir = "{}"
            [storage]
            data_dir = "{}"
            [guard]
            # The in-test UA and most SIPp scenarios present one number for
            # every caller: they stand for many people, not one redialling.
            caller_places = 0
            "#,
            repo().join("dialplans").display(),
            dir.path().join("data").display()
        );
        merge(&mut cfg, toml::from_str(&fixed).unwrap());
        merge(
            &mut cfg,
            toml::from_str(extra).expect("extra config is TOML"),
        );
        let path = dir.path().join("conmutador.toml");
        std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
        Gw::start_with_file(&path, dir, &[])
    }

    pub fn start_with_file(path: &Path, dir: tempfile::TempDir, args: &[&str]) -> Gw {
        let log = dir.path().join("gateway.log");
        let logf = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_conmutador"))
            .arg("--config")
            .arg(path)
            .arg("run")
            .args(args)
            .env("RUST_LOG", "info,conmutador=debug")
            .stdout(Stdio::piped())
            .stderr(logf)
            .spawn()
            .expect("start conmutador");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let line = loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) if l.starts_with("listening ") => break l,
                Ok(_) => continue,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "gateway did not start; log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        };
        let field = |k: &str| -> Option<SocketAddr> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.parse().ok())
        };
        let Some(udp) = field("sip_udp") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no sip_udp in {line:?}");
        };
        let tcp = field("sip_tcp").unwrap_or(udp);
        let http = field("http");
        let tls = field("sip_tls");
        Gw {
            child,
            udp,
            tcp,
            tls,
            http,
            dir,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The /metrics text.
    pub fn metrics(&self) -> String {
        http_get(
            self.http.expect("gateway has an HTTP listener"),
            "/metrics",
            None,
        )
        .1
    }

    /// Sum of every sample of `name` whose labels contain all `labels`
    /// (`k="v"` strings).
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        metric_sum(&self.metrics(), name, labels)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        unsafe_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends a signal by PID with the `kill` command (no libc in tests).
pub fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let n = l.split(['{', ' ']).next().unwrap_or("");
            n == name
        })
        .filter(|l| labels.iter().all(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A minimal HTTP/1.1 GET; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    http_request(addr, "GET", path, token, None)
}

pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect http");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = body.unwrap_or("");
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}{ct}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    // Chunked bodies: good enough to drop the chunk-size lines for text checks.
    (status, body)
}

pub struct SippRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs SIPp with a scenario from tests/sipp against the gateway, bounded
/// by `-m` calls and a wall-clock limit.
pub fn sipp(scenario: &str, target: SocketAddr, args: &[&str], limit: Duration) -> SippRun {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port().to_string();
    let mport = (free_udp_port() & !1).max(10_000).to_string();
    let mut cmd = Command::new("sipp");
    cmd.current_dir(dir.path())
        .arg(target.to_string())
        .arg("-sf")
        .arg(repo().join("tests/sipp").join(scenario))
        .args(["-i", if target.is_ipv4() { "127.0.0.1" } else { "::1" }])
        .args(["-p", &port, "-mp", &mport, "-nostdin"])
        .args(["-trace_err", "-trace_screen"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("sipp is installed (apt-get install sip-tester)");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    // SIPp writes its error log and screen into the working directory.
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        if let Ok(t) = std::fs::read_to_string(entry.path()) {
            stderr.push_str(&format!("\n--- {}\n{}", entry.path().display(), t));
        }
    }
    SippRun {
        ok: status.map(|s| s.success()).unwrap_or(false),
        stdout,
        stderr,
    }
}

/// Waits until `f` holds or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// A baresip operator phone `id`/`pw` registered with `gw` (asserted),
/// playing `wav` if given and answering by itself if `auto`; it quits after
/// two minutes whatever happens.
pub fn operator_phone(
    gw: &Gw,
    id: &str,
    pw: &str,
    wav: Option<PathBuf>,
    auto: bool,
) -> baresip::Baresip {
    let mut opts = baresip::BaresipOpts::operator(id, pw, gw.udp);
    opts.source_wav = wav;
    opts.auto_answer = auto;
    opts.quit_after = Duration::from_secs(120);
    let phone = baresip::Baresip::start(opts);
    assert!(
        phone.wait_registered(Duration::from_secs(15)),
        "{id} did not register\n{}\n{}",
        phone.log(),
        gw.log_text()
    );
    phone
}

/// The caller talks (1 kHz) for 3.5 s while listening; then each side must
/// have heard the other: the caller the operator's 440 Hz (in the last two
/// seconds: the bridge, not the hold music before it), the operator the
/// caller's 1 kHz at the end of its latest recording.
pub fn talk_both_ways(ua: &mut ua::Ua, phone: &baresip::Baresip) {
    let listener = {
        let rtp = ua.rtp.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            let mut buf = [0u8; 2048];
            rtp.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(4);
            while Instant::now() < deadline {
                if let Ok((n, _)) = rtp.recv_from(&mut buf) {
                    if n > 12 && buf[1] & 0x7f == 0 {
                        samples.extend(buf[12..n].iter().map(|&b| ua::ulaw_to_linear(b)));
                    }
                }
            }
            samples
        })
    };
    ua.send_tones(&[1000.0], Duration::from_millis(3500), 0.5);
    let heard = listener.join().unwrap();
    // The last two seconds: the bridge, not the hold music.
    let tail = &heard[heard.len().saturating_sub(16_000)..];
    assert!(
        baresip::rms(tail) > 1000.0,
        "caller hears the operator (rms {})",
        baresip::rms(tail)
    );
    let f = baresip::tone_frequency(tail, 8000);
    assert!(
        (400.0..480.0).contains(&f),
        "caller hears the operator's 440 Hz, got {f}"
    );
    let op_heard = phone.recorded_samples();
    let op_tail = &op_heard[op_heard.len().saturating_sub(8_000)..];
    assert!(
        baresip::rms(op_tail) > 1000.0,
        "operator hears the caller (rms {})",
        baresip::rms(op_tail)
    );
    let f = baresip::tone_frequency(op_tail, 8000);
    assert!(
        (950.0..1050.0).contains(&f),
        "operator hears the caller's 1 kHz, got {f}"
    );
}
