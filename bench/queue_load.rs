//! Queue load benchmark: SIPp callers arriving at a steady rate dial the
//! queue number of a fixture plan, stream audio (SIPp's rtp_stream) and hang
//! up 30 s after the answer (waiting, then talking if an operator took them);
//! 100 static operators, all answered by one SIPp UAS with `-rtp_echo`, pick
//! up at once and echo the audio back through the bridge.
//!
//! It reports served, abandoned and failed calls, the peak of callers
//! waiting and bridged, the longest time any operator sat available while a
//! caller waited unrung (sampled from one `/api/queues` snapshot every
//! 200 ms), the gateway's CPU (utime+stime from /proc) and its RSS. Then,
//! for scale, the kernel floor: what a bare loop pays to send and receive
//! the same RTP packet rate on loopback (`support::udp_floor`).
//!
//! Run: `cargo bench --bench queue_load` (16 calls/s for 60 s) or
//! `cargo bench --bench queue_load -- quick` (8 calls/s for 20 s); `rate=N`
//! and `secs=N` set another arrival rate and window; `rt` runs the media
//! clock at SCHED_FIFO; `workers=N` sets its thread count. Every load
//! is bounded by SIPp's `-m` and a wall-clock limit; all traffic stays on
//! 127.0.0.1 and only the processes started here are stopped, by PID.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

const TOKEN: &str = "bench-token";
const OPERATORS: usize = 100;
/// Seconds each caller stays after the answer.
const CALL_SECS: u64 = 30;
const SAMPLE: Duration = Duration::from_millis(200);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Four seconds of a two-tone signal (350 + 440 Hz, about −12 dBFS) as raw
/// A-law, which the callers' rtp_stream loops for the whole call.
fn write_caller_audio(path: &Path) {
    use conmutador::media::g711::alaw_encode;
    let bytes: Vec<u8> = (0..4 * 8000)
        .map(|n| {
            let t = f64::from(n) / 8000.0;
            let s = 4000.0
                * ((2.0 * std::f64::consts::PI * 350.0 * t).sin()
                    + (2.0 * std::f64::consts::PI * 440.0 * t).sin());
            alaw_encode(s as i16)
        })
        .collect();
    std::fs::write(path, bytes).expect("write caller audio");
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free loopback UDP port")
}

/// A process started here, killed by its PID when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

struct Gateway {
    proc: Proc,
    udp: SocketAddr,
    http: SocketAddr,
    config: PathBuf,
}

/// The fixture plan: number 100 puts the caller straight into `pasaportes`.
fn write_plans(dir: &Path) -> PathBuf {
    let plans = dir.join("plans");
    for lang in ["es-MX", "en"] {
        let from = repo().join("dialplans/prompts").join(lang);
        let to = plans.join("prompts").join(lang);
        std::fs::create_dir_all(&to).expect("plan dir");
        for e in std::fs::read_dir(&from).expect("shipped prompts").flatten() {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy prompt");
        }
    }
    std::fs::write(
        plans.join("colas.toml"),
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
on_empty = "adios"
overflow = "adios"

[nodes.adios]
type = "hangup"
prompts = ["despedida"]
"#,
    )
    .expect("write plan");
    plans
}

impl Gateway {
    fn start(dir: &Path, operators_port: u16, media: &str) -> Gateway {
        let plans = write_plans(dir);
        let mut cfg = format!(
            r#"
[sip]
listen = ["127.0.0.1:0"]
max_calls = 20000
max_transactions = 200000
[http]
listen = "127.0.0.1:0"
admin_token = "{TOKEN}"
[media]
rtp_ports = "20000-39999"
rtp_timeout = 300
{media}
[dialplans]
dir = "{}"
watch = false
[storage]
data_dir = "{}"
[log]
level = "warn"
[[queues]]
name = "pasaportes"
strategy = "longest_idle"
ring_timeout = 15
wrapup = 0
announce_interval = 30
"#,
            plans.display(),
            dir.join("data").display()
        );
        for i in 1..=OPERATORS {
            cfg.push_str(&format!(
                "[[operators]]\nid = \"op{i}\"\nstatic_uri = \"sip:op{i}@127.0.0.1:{operators_port}\"\nqueues = [{{ name = \"pasaportes\" }}]\n"
            ));
        }
        let path = dir.join("bench.toml");
        std::fs::write(&path, cfg).expect("write config");
        let (child, udp, http) = support::spawn_gateway(&path);
        Gateway {
            udp,
            http,
            proc: Proc(child),
            config: path,
        }
    }

    fn pid(&self) -> u32 {
        self.proc.0.id()
    }

    fn usage(&self) -> (f64, u64, u64) {
        usage(self.pid())
    }

    fn get(&self, path: &str) -> String {
        get(self.http, path)
    }

    /// SIGTERM (the records writer flushes), then the queue log as JSON lines.
    fn stop_and_export(mut self) -> Vec<serde_json::Value> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.proc.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(self.proc);
        let out = Command::new(env!("CARGO_BIN_EXE_conmutador"))
            .arg("--config")
            .arg(&self.config)
            .args(["records", "export", "--since", "2000-01-01"])
            .args(["--format", "jsonl", "--kind", "queue-events"])
            .output()
            .expect("conmutador records export");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// From the queue log: the longest and mean time from an operator becoming
/// free (COMPLETE*) to its next CONNECT while some caller waited unrung.
/// This includes the INVITE→200 round trip, so it bounds idle time from
/// above. Also the count of ENTERQUEUE, CONNECT and ABANDON records.
fn idle_from_log(events: &[serde_json::Value]) -> (Option<(f64, String)>, f64, [u64; 3]) {
    use std::collections::{HashMap, HashSet};
    let time = |e: &serde_json::Value| {
        e["time"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis())
    };
    let mut waiting: HashSet<String> = HashSet::new();
    let mut free_since: HashMap<String, i64> = HashMap::new();
    let mut longest: Option<(f64, String)> = None;
    let (mut total, mut n) = (0.0, 0u64);
    let mut counts = [0u64; 3];
    for e in events {
        let call = e["call_id"].as_str().unwrap_or("").to_owned();
        let op = e["agent"].as_str().unwrap_or("").to_owned();
        let Some(t) = time(e) else { continue };
        match e["event"].as_str().unwrap_or("") {
            "ENTERQUEUE" => {
                counts[0] += 1;
                waiting.insert(call);
            }
            "CONNECT" => {
                counts[1] += 1;
                waiting.remove(&call);
                if let Some(t0) = free_since.remove(&op) {
                    let gap = (t - t0) as f64 / 1000.0;
                    total += gap;
                    n += 1;
                    if longest.as_ref().is_none_or(|(g, _)| gap > *g) {
                        longest = Some((gap, op));
                    }
                }
            }
            // Every operator between COMPLETE and CONNECT may be ringing
            // one caller; more waiting callers than that means one of them
            // is not being rung.
            "COMPLETECALLER" | "COMPLETEAGENT" if waiting.len() > free_since.len() => {
                free_since.insert(op, t);
            }
            "ABANDON" | "EXITWITHTIMEOUT" | "EXITEMPTY" | "EXITWITHKEY" => {
                if e["event"] == "ABANDON" {
                    counts[2] += 1;
                }
                waiting.remove(&call);
            }
            _ => {}
        }
    }
    (longest, if n > 0 { total / n as f64 } else { 0.0 }, counts)
}

use support::usage;

/// A GET on the admin port with the bearer token; the body, or "".
fn get(http: SocketAddr, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect_timeout(&http, Duration::from_secs(2)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

fn json(http: SocketAddr, path: &str) -> serde_json::Value {
    serde_json::from_str(&get(http, path)).unwrap_or_default()
}

/// Sum of every sample of `name` whose labels contain all `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn sipp(dir: &Path, args: &[String]) -> Proc {
    let child = Command::new("sipp")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp (apt-get install sip-tester)");
    Proc(child)
}

/// (successful, failed) calls from SIPp's last statistics line.
fn sipp_calls(path: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(';').collect();
    let last: Vec<&str> = lines.last().unwrap_or("").split(';').collect();
    let num = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| last.get(i))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (num("SuccessfulCall(C)"), num("FailedCall(C)"))
}

#[derive(Default)]
struct Samples {
    max_waiting: usize,
    max_bridged: usize,
    /// Longest run of consecutive samples in which an operator was
    /// available while a caller waited without being rung.
    max_idle_samples: usize,
    peak_cpu_cores: f64,
    /// (seconds since sampling began, gateway CPU seconds so far).
    cpu_trace: Vec<(f64, f64)>,
    max_rss: u64,
    /// Peaks of the overload guard's two gauges (read once a second).
    peak_lag: f64,
    peak_behind: f64,
    n: usize,
}

/// Samples the admin API and /proc of the gateway (`pid`) until `stop`.
fn sample(pid: u32, http: SocketAddr, stop: &AtomicBool) -> Samples {
    let mut s = Samples::default();
    // Consecutive samples with an operator available while a caller waited unrung.
    let mut idle_run = 0usize;
    let mut cpu_window: std::collections::VecDeque<(Instant, f64)> = Default::default();
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        // Idle is judged from the queue view alone: it is one snapshot of
        // the core, so a free operator next to an unrung caller in it is a
        // real idle, not the skew between two requests.
        let queues = json(http, "/api/queues");
        let now = Instant::now();
        let q = queues
            .as_array()
            .and_then(|a| a.iter().find(|q| q["name"] == "pasaportes"))
            .unwrap_or(&serde_json::Value::Null);
        let waiting = q["waiting"].as_array().map_or(&[][..], Vec::as_slice);
        let unrung = waiting
            .iter()
            .filter(|c| c["ringing"].as_array().is_none_or(|r| r.is_empty()))
            .count();
        let available = q["stats"]["operators_available"].as_u64().unwrap_or(0);
        s.max_waiting = s.max_waiting.max(waiting.len());
        if unrung > 0 && available > 0 {
            idle_run += 1;
            s.max_idle_samples = s.max_idle_samples.max(idle_run);
        } else {
            idle_run = 0;
        }
        let ops = json(http, "/api/operators");
        let bridged = ops
            .as_array()
            .map_or(0, |a| a.iter().filter(|o| o["state"] == "in_call").count());
        s.max_bridged = s.max_bridged.max(bridged);
        // The guard's gauges cover the last second or two: once a second
        // sees every peak.
        if s.n % 5 == 0 {
            let text = get(http, "/metrics");
            s.peak_lag = s
                .peak_lag
                .max(metric(&text, "conmutador_signalling_lag_seconds", &[]));
            s.peak_behind = s
                .peak_behind
                .max(metric(&text, "conmutador_media_behind_ratio", &[]));
        }
        let (cpu, rss, _) = usage(pid);
        s.max_rss = s.max_rss.max(rss);
        cpu_window.push_back((now, cpu));
        s.cpu_trace
            .push((now.saturating_duration_since(start).as_secs_f64(), cpu));
        while cpu_window
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > Duration::from_secs(5))
        {
            cpu_window.pop_front();
        }
        if let (Some((t1, c1)), Some((t2, c2))) = (cpu_window.front(), cpu_window.back()) {
            let dt = t2.saturating_duration_since(*t1).as_secs_f64();
            if dt >= 4.0 {
                s.peak_cpu_cores = s.peak_cpu_cores.max((c2 - c1) / dt);
            }
        }
        s.n += 1;
        std::thread::sleep(SAMPLE.saturating_sub(t0.elapsed()));
    }
    s
}

struct Outcome {
    rate: u32,
    calls: u64,
    served: f64,
    abandoned: f64,
    failed_gw: f64,
    /// The ACD's own answered / abandoned counts.
    acd: (u64, u64),
    /// ENTERQUEUE, CONNECT, ABANDON records in the queue log.
    log_counts: [u64; 3],
    log_idle: Option<(f64, String)>,
    log_idle_mean: f64,
    records_dropped: f64,
    retransmissions: f64,
    /// Datagrams the kernel dropped at the gateway's SIP and RTP sockets.
    kernel_drops: (f64, f64),
    acd_dropped: f64,
    ring_no_answer: usize,
    sipp_ok: u64,
    sipp_failed: u64,
    ops_failed: u64,
    samples: Samples,
    cpu_s: f64,
    /// CPU seconds of the SIPp callers and the SIPp operators.
    sipp_cpu_s: (f64, f64),
    wall_s: f64,
    hwm: u64,
    rtp_in: f64,
    rtp_out: f64,
    /// Media clock send lateness p50 / p99 (bucket upper bounds, seconds).
    jitter: (Option<f64>, Option<f64>),
    late_frames: f64,
    /// RTP the gateway dropped, by reason (non-zero ones only).
    dropped: Vec<(String, f64)>,
    /// New calls refused with 503, by reason (non-zero ones only).
    refused: Vec<(String, f64)>,
}

fn run(rate: u32, arrival_secs: u64, media: &str) -> Outcome {
    let dir = tempfile::tempdir().expect("temp dir");
    let ops_port = free_udp_port();
    let ops_media = 40_000 + (free_udp_port() % 5_000) * 2;
    let _ops = sipp(
        dir.path(),
        &[
            "-sf".into(),
            repo()
                .join("tests/sipp/uas_operator_echo.xml")
                .display()
                .to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-mi".into(),
            "127.0.0.1".into(),
            "-p".into(),
            ops_port.to_string(),
            "-mp".into(),
            ops_media.to_string(),
            "-rtp_echo".into(),
            "-nostdin".into(),
            "-trace_stat".into(),
            "-stf".into(),
            "ops.csv".into(),
            "-fd".into(),
            "1".into(),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let gw = Gateway::start(dir.path(), ops_port, media);
    std::thread::sleep(Duration::from_millis(500));

    write_caller_audio(&dir.path().join("caller.alaw"));
    let calls = u64::from(rate) * arrival_secs;
    let callers_media = 45_000 + (free_udp_port() % 5_000) * 2;
    let (cpu0, _, _) = gw.usage();
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let (pid, http) = (gw.pid(), gw.http);
        std::thread::spawn(move || sample(pid, http, &stop))
    };
    let callers = sipp(
        dir.path(),
        &[
            gw.udp.to_string(),
            "-sf".into(),
            repo()
                .join("tests/sipp/uac_queue_talk.xml")
                .display()
                .to_string(),
            "-s".into(),
            "100".into(),
            "-i".into(),
            "127.0.0.1".into(),
            "-mi".into(),
            "127.0.0.1".into(),
            "-p".into(),
            free_udp_port().to_string(),
            "-mp".into(),
            callers_media.to_string(),
            "-r".into(),
            rate.to_string(),
            "-rp".into(),
            "1000".into(),
            "-m".into(),
            calls.to_string(),
            "-l".into(),
            calls.to_string(),
            "-nostdin".into(),
            "-trace_stat".into(),
            "-stf".into(),
            "callers.csv".into(),
            "-fd".into(),
            "1".into(),
        ],
    );
    let limit = Duration::from_secs(arrival_secs + CALL_SECS + 60);
    let mut callers = callers;
    // The load generators share the machine: their CPU (read while they
    // run, before they are reaped) says how much of it the gateway had.
    let mut callers_cpu = 0.0f64;
    loop {
        callers_cpu = callers_cpu.max(usage(callers.0.id()).0);
        if callers.0.try_wait().ok().flatten().is_some() {
            break;
        }
        if t0.elapsed() > limit {
            eprintln!("callers still running after {limit:?}: stopped");
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(callers);
    // Let the last BYEs reach the operators and the records settle.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && metric(&gw.get("/metrics"), "conmutador_calls_active", &[]) > 0.0
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let wall_s = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler");
    let (cpu1, _, hwm) = gw.usage();
    let text = gw.get("/metrics");
    let ended = |result: &str| {
        metric(
            &text,
            "conmutador_calls_ended_total",
            &[&format!("result=\"{result}\"")],
        )
    };
    let stats = json(gw.http, "/api/queues");
    let q = stats
        .as_array()
        .and_then(|a| a.iter().find(|q| q["name"] == "pasaportes"))
        .cloned()
        .unwrap_or_default();
    let acd = (
        q["stats"]["answered"].as_u64().unwrap_or(0),
        q["stats"]["abandoned"].as_u64().unwrap_or(0),
    );
    let (sipp_ok, sipp_failed) = sipp_calls(&dir.path().join("callers.csv"));
    let events = gw.stop_and_export();
    let (log_idle, log_idle_mean, log_counts) = idle_from_log(&events);
    let ops_cpu = usage(_ops.0.id()).0;
    drop(_ops);
    let (_, ops_failed) = sipp_calls(&dir.path().join("ops.csv"));
    Outcome {
        rate,
        calls,
        served: ended("completed"),
        abandoned: ended("abandoned"),
        failed_gw: ended("failed") + ended("rejected"),
        acd,
        log_counts,
        log_idle,
        log_idle_mean,
        records_dropped: metric(&text, "conmutador_records_dropped_total", &[]),
        retransmissions: metric(&text, "conmutador_sip_retransmissions_total", &[]),
        kernel_drops: (
            metric(&text, "conmutador_sip_udp_kernel_drops_total", &[]),
            metric(&text, "conmutador_rtp_kernel_drops_total", &[]),
        ),
        acd_dropped: metric(&text, "conmutador_acd_events_dropped_total", &[]),
        ring_no_answer: events
            .iter()
            .filter(|e| e["event"] == "RINGNOANSWER")
            .count(),
        sipp_ok,
        sipp_failed,
        ops_failed,
        samples,
        cpu_s: cpu1 - cpu0,
        sipp_cpu_s: (callers_cpu, ops_cpu),
        wall_s,
        hwm,
        rtp_in: metric(&text, "conmutador_rtp_packets_total", &["direction=\"in\""]),
        rtp_out: metric(
            &text,
            "conmutador_rtp_packets_total",
            &["direction=\"out\""],
        ),
        jitter: {
            let b = support::buckets(&text, "conmutador_media_send_jitter_seconds");
            (
                support::percentile(&[], &b, 0.5),
                support::percentile(&[], &b, 0.99),
            )
        },
        late_frames: metric(&text, "conmutador_media_late_frames_total", &[]),
        dropped: support::by_reason(&text, "conmutador_rtp_dropped_total"),
        refused: support::by_reason(&text, "conmutador_sip_overload_rejections_total"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "quick");
    let (mut rate, mut secs) = if quick { (8, 20) } else { (16, 60) };
    // `rate=N` and `secs=N` override the arrival rate and window (bounded).
    for a in &args {
        if let Some(v) = a.strip_prefix("rate=").and_then(|v| v.parse::<u32>().ok()) {
            rate = v.clamp(1, 200);
        }
        if let Some(v) = a.strip_prefix("secs=").and_then(|v| v.parse::<u64>().ok()) {
            secs = v.clamp(1, 300);
        }
    }
    // `rt`: the media clock at SCHED_FIFO, as `[media] realtime_priority`
    // (needs root or CAP_SYS_NICE; refused, it stays at normal priority).
    let rt = args.iter().any(|a| a == "rt");
    let mut media = if rt { "realtime_priority = 10\n" } else { "" }.to_owned();
    // `workers=N`: that many media clock threads (`[media] workers`).
    if let Some(n) = args
        .iter()
        .find_map(|a| a.strip_prefix("workers=")?.parse::<u8>().ok())
    {
        media += &format!("workers = {}\n", n.clamp(1, 8));
    }
    println!(
        "media clock priority: {}",
        if rt { "SCHED_FIFO 10" } else { "normal" }
    );
    let o = run(rate, secs, &media);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "queue load: {} calls at {}/s, each {} s after answer, {} echoing SIPp operators",
        o.calls, o.rate, CALL_SECS, OPERATORS
    );
    println!(
        "| rate | calls | served | abandoned | failed (gateway / SIPp callers / SIPp operators) | peak waiting | peak bridged | operator free→next CONNECT while callers waited (max / mean) | idle seen in samples | gateway CPU avg / plateau / peak 5 s | RSS peak |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    // The plateau: every caller of the last 30 s is still there (about
    // rate × 30 in the system) and arrivals have not stopped yet.
    let plateau = {
        let (a, b) = ((CALL_SECS + 5) as f64, secs as f64);
        let at = |t: f64| o.samples.cpu_trace.iter().find(|(x, _)| *x >= t).copied();
        match (at(a), at(b)) {
            (Some((ta, ca)), Some((tb, cb))) if b - a >= 10.0 => Some((cb - ca) / (tb - ta)),
            _ => None,
        }
    };
    let plateau_text = plateau.map_or("-".to_owned(), |p| format!("{p:.2}"));
    let idle = match &o.log_idle {
        Some((g, op)) => format!(
            "{:.0} ms ({op}) / {:.0} ms",
            g * 1000.0,
            o.log_idle_mean * 1000.0
        ),
        None => "- (no operator freed while callers waited)".into(),
    };
    println!(
        "| {}/s | {} | {} | {} | {} / {} / {} | {} | {} | {} | {} | {:.2} / {plateau_text} / {:.2} cores | {:.0} MiB |",
        o.rate,
        o.calls,
        o.served as u64,
        o.abandoned as u64,
        o.failed_gw as u64,
        o.sipp_failed,
        o.ops_failed,
        o.samples.max_waiting,
        o.samples.max_bridged,
        idle,
        if o.samples.max_idle_samples == 0 {
            "never".to_owned()
        } else {
            format!("{} in a row", o.samples.max_idle_samples)
        },
        o.cpu_s / o.wall_s,
        o.samples.peak_cpu_cores,
        mib(o.hwm.max(o.samples.max_rss)),
    );
    println!(
        "ACD: {} answered, {} abandoned; queue log: {} ENTERQUEUE, {} CONNECT, {} ABANDON, {} RINGNOANSWER ({} records dropped); SIP retransmissions {}; ACD events dropped {}; kernel drops at the gateway's sockets: SIP {}, RTP {}",
        o.acd.0,
        o.acd.1,
        o.log_counts[0],
        o.log_counts[1],
        o.log_counts[2],
        o.ring_no_answer,
        o.records_dropped as u64,
        o.retransmissions as u64,
        o.acd_dropped as u64,
        o.kernel_drops.0 as u64,
        o.kernel_drops.1 as u64
    );
    // The floor for the busiest moment's streams: every waiting caller, and
    // both legs of every bridge.
    let streams = o.samples.max_waiting + 2 * o.samples.max_bridged;
    let floor = support::udp_floor(streams, 10);
    let (what, cores) = match plateau {
        Some(p) => ("plateau", p),
        None => ("busiest 5 s", o.samples.peak_cpu_cores),
    };
    println!(
        "kernel floor: {streams} RTP streams both ways ({:.1}k packets/s each way) cost a bare send/receive loop {floor:.2} cores; the gateway's {what} took {:.1}× that",
        streams as f64 * 50.0 / 1000.0,
        cores / floor
    );
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |s| format!("≤{:.2}", s * 1000.0));
    let list = |v: &[(String, f64)]| support::list(v, "none");
    println!(
        "media clock: send lateness p50 {} ms, p99 {} ms; {} frames sent over 2 ms late; RTP dropped: {}",
        ms(o.jitter.0),
        ms(o.jitter.1),
        o.late_frames,
        list(&o.dropped)
    );
    println!(
        "overload guard: peak signalling lag {:.0} ms, peak media frames behind {:.1}%; new calls refused with 503: {}",
        o.samples.peak_lag * 1000.0,
        o.samples.peak_behind * 100.0,
        list(&o.refused)
    );
    println!(
        "gateway CPU {:.1} s over {:.1} s of load (SIPp callers {:.1} s, SIPp operators {:.1} s, on {} cores); RTP packets in {:.0}k / out {:.0}k; SIPp callers completed {}; {} samples of the admin API ({} ms apart)",
        o.cpu_s,
        o.wall_s,
        o.sipp_cpu_s.0,
        o.sipp_cpu_s.1,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        o.rtp_in / 1000.0,
        o.rtp_out / 1000.0,
        o.sipp_ok,
        o.samples.n,
        SAMPLE.as_millis()
    );
}
