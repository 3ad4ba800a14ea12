//! SIP load benchmark: SIPp against the release binary on 127.0.0.1.
//!
//! (a) `ivr`: 5 s IVR calls (answer, 3 s of prompt, the caller hangs up)
//!     stepped up in rate; (b) `hold`: calls held for 45 s while prompts
//!     replay, stepped up in count. Per step it prints calls offered and
//!     failed, INVITE→200 latency (inside the gateway), its CPU time per call
//!     (utime+stime from /proc, not wall time), resident memory per active
//!     call, and the media clock's send-jitter percentiles from /metrics.
//!
//! (c) `sustained`: short calls (INVITE, 200, ACK, BYE at once) at a steady
//!     rate on the SHIPPED configuration (the embedded `conmutador.toml`,
//!     only the SIP and HTTP ports moved to free loopback ones and the data
//!     folder to a temporary one): calls attempted, succeeded and failed,
//!     503s sent by reason, the gateway's CPU per call, its peak and final
//!     memory (VmHWM, VmRSS), and the most live and absorbing transactions
//!     seen. Finished transactions absorb retransmissions for 32 s, so this
//!     is where per-call state that outlives the call shows up.
//!
//! Run: `cargo bench --bench sip_load` (all three), or with `-- ivr` /
//! `-- hold` / `-- sustained`, `-- quick` for a short smoke run, `-- rt` for
//! a real-time media clock; `-- sustained rate=N secs=N` sets the sustained
//! step's rate and length (default 5000 calls/s for 60 s). Every load is
//! bounded by SIPp's `-m` and a wall-clock limit; all traffic stays on
//! loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[path = "support/mod.rs"]
mod support;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Gateway {
    child: Child,
    udp: SocketAddr,
    http: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// `media`: extra lines for the `[media]` table.
    fn start(media: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = format!(
            r#"
[sip]
listen = ["127.0.0.1:0"]
max_calls = 20000
max_transactions = 200000
[http]
listen = "127.0.0.1:0"
[media]
rtp_ports = "20000-59999"
rtp_timeout = 300
{media}
[dialplans]
dir = "{}"
[storage]
data_dir = "{}"
[log]
level = "warn"
"#,
            repo().join("dialplans").display(),
            dir.path().join("data").display()
        );
        let path = dir.path().join("bench.toml");
        std::fs::write(&path, cfg).unwrap();
        let (child, udp, http) = support::spawn_gateway(&path);
        Gateway {
            udp,
            http,
            child,
            _dir: dir,
        }
    }

    /// (utime + stime) in seconds, and VmRSS in bytes.
    fn usage(&self) -> (f64, u64) {
        let (cpu, rss, _) = support::usage(self.child.id());
        (cpu, rss)
    }

    fn metrics(&self) -> String {
        let mut s = match TcpStream::connect(self.http) {
            Ok(s) => s,
            Err(_) => return String::new(),
        };
        let _ = write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use support::{buckets, percentile};

struct SippStats {
    created: u64,
    ok: u64,
    failed: u64,
    retransmissions: u64,
}

/// SIPp's failed calls, with the gateway's 503 refusals among them by reason.
fn failed(st: &SippStats, gateway_metrics: &str) -> String {
    let refused = support::by_reason(gateway_metrics, "conmutador_sip_overload_rejections_total");
    match st.failed {
        0 => "0".to_owned(),
        n => format!("{n} (503: {})", support::list(&refused, "none")),
    }
}

fn run_sipp(gw: &Gateway, scenario: &str, args: &[String], limit: Duration) -> SippStats {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("sipp")
        .current_dir(dir.path())
        .arg(gw.udp.to_string())
        .arg("-sf")
        .arg(repo().join("tests/sipp").join(scenario))
        .args(["-i", "127.0.0.1", "-p", "0", "-nostdin", "-s", "5550000"])
        .args(["-trace_stat", "-stf", "stats.csv", "-fd", "1"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp (apt-get install sip-tester)");
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    parse_stats(&dir.path().join("stats.csv"))
}

fn parse_stats(path: &Path) -> SippStats {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(';').collect();
    let last: Vec<&str> = lines.last().unwrap_or("").split(';').collect();
    let col = |name: &str| -> Option<&str> {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| last.get(i).copied())
    };
    let num = |name: &str| {
        col(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    SippStats {
        created: num("TotalCallCreated"),
        ok: num("SuccessfulCall(C)"),
        failed: num("FailedCall(C)"),
        retransmissions: num("Retransmissions(C)"),
    }
}

const JITTER: &str = "conmutador_media_send_jitter_seconds";
/// INVITE received → 200 sent, measured inside the gateway: SIPp's own
/// response times have millisecond granularity and include its scheduling.
const ANSWER: &str = "conmutador_call_answer_delay_seconds";

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("≤{:.2}", x * 1000.0),
        Some(_) => ">max".into(),
        None => "-".into(),
    }
}

fn ivr(quick: bool, media: &str) {
    let rates: &[u32] = if quick {
        &[20]
    } else {
        &[25, 50, 100, 200, 400, 600]
    };
    let step_secs = if quick { 10 } else { 30 };
    println!(
        "\n(a) 5 s IVR calls (answer, 3 s of prompt, caller hangs up), {step_secs} s per step"
    );
    println!(
        "| rate (calls/s) | offered | ok | failed | INVITE→200 p50 / p99 (ms) | CPU per call (ms) | RSS per active call (KiB) | jitter p50 (ms) | jitter p99 (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &rate in rates {
        let gw = Gateway::start(media);
        std::thread::sleep(Duration::from_millis(500));
        let (cpu0, rss0) = gw.usage();
        let text0 = gw.metrics();
        let (m0, a0) = (buckets(&text0, JITTER), buckets(&text0, ANSWER));
        let calls = rate * step_secs;
        let gw_ref = &gw;
        // Sample RSS in the middle of the step, when the most calls are up.
        let sampler = std::thread::scope(|s| {
            let h = s.spawn(move || {
                std::thread::sleep(Duration::from_secs(u64::from(step_secs) / 2 + 3));
                gw_ref.usage().1
            });
            let st = run_sipp(
                gw_ref,
                "uac_basic.xml",
                &[
                    "-r".into(),
                    rate.to_string(),
                    "-m".into(),
                    calls.to_string(),
                    "-d".into(),
                    "3000".into(),
                    "-l".into(),
                    (rate * 10).to_string(),
                    "-max_socket".into(),
                    "50000".into(),
                ],
                Duration::from_secs(u64::from(step_secs) + 60),
            );
            (st, h.join().unwrap())
        });
        let (st, rss_mid) = sampler;
        std::thread::sleep(Duration::from_secs(1));
        let (cpu1, _) = gw.usage();
        let text1 = gw.metrics();
        let (m1, a1) = (buckets(&text1, JITTER), buckets(&text1, ANSWER));
        let active = f64::from(rate) * 5.0;
        let rss_per = (rss_mid.saturating_sub(rss0)) as f64 / active / 1024.0;
        let cpu_per = if st.ok > 0 {
            (cpu1 - cpu0) * 1000.0 / st.ok as f64
        } else {
            f64::NAN
        };
        println!(
            "| {rate} | {calls} | {} | {} | {} / {} | {:.2} | {:.1} | {} | {} |",
            st.ok,
            failed(&st, &text1),
            fmt_ms(percentile(&a0, &a1, 0.5)),
            fmt_ms(percentile(&a0, &a1, 0.99)),
            cpu_per,
            rss_per,
            fmt_ms(percentile(&m0, &m1, 0.5)),
            fmt_ms(percentile(&m0, &m1, 0.99)),
        );
    }
}

fn hold(quick: bool, media: &str) {
    let counts: &[u32] = if quick {
        &[200]
    } else {
        &[500, 1000, 2000, 3000, 5000]
    };
    let hold_ms = if quick { 10_000 } else { 45_000 };
    println!(
        "\n(b) calls held for {} s while prompts replay",
        hold_ms / 1000
    );
    println!(
        "| calls up | ok | failed | INVITE→200 p99 (ms) | CPU per call-second (ms) | RSS per call (KiB) | jitter p50 (ms) | jitter p99 (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &n in counts {
        let gw = Gateway::start(media);
        std::thread::sleep(Duration::from_millis(500));
        let (cpu0, rss0) = gw.usage();
        let a0 = buckets(&gw.metrics(), ANSWER);
        let gw_ref = &gw;
        let ramp = (n / 10).clamp(50, 500); // calls per second while ramping up
        let (st, rss_mid, m0, m1) = std::thread::scope(|s| {
            let h = s.spawn(move || {
                // Wait for the ramp, then measure a steady window.
                std::thread::sleep(Duration::from_millis(u64::from(n / ramp) * 1000 + 2000));
                let a = buckets(&gw_ref.metrics(), JITTER);
                let rss = gw_ref.usage().1;
                std::thread::sleep(Duration::from_millis(hold_ms as u64 / 3));
                let b = buckets(&gw_ref.metrics(), JITTER);
                (rss, a, b)
            });
            let st = run_sipp(
                gw_ref,
                "uac_basic.xml",
                &[
                    "-r".into(),
                    ramp.to_string(),
                    "-m".into(),
                    n.to_string(),
                    "-l".into(),
                    n.to_string(),
                    "-d".into(),
                    hold_ms.to_string(),
                    "-max_socket".into(),
                    "50000".into(),
                ],
                Duration::from_millis(hold_ms as u64 + 120_000),
            );
            let (rss, a, b) = h.join().unwrap();
            (st, rss, a, b)
        });
        let (cpu1, _) = gw.usage();
        let text1 = gw.metrics();
        let a1 = buckets(&text1, ANSWER);
        let call_secs = f64::from(n) * hold_ms as f64 / 1000.0;
        println!(
            "| {n} | {} | {} | {} | {:.3} | {:.1} | {} | {} |",
            st.ok,
            failed(&st, &text1),
            fmt_ms(percentile(&a0, &a1, 0.99)),
            (cpu1 - cpu0) * 1000.0 / call_secs,
            rss_mid.saturating_sub(rss0) as f64 / f64::from(n) / 1024.0,
            fmt_ms(percentile(&m0, &m1, 0.5)),
            fmt_ms(percentile(&m0, &m1, 0.99)),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "quick");
    // `rt`: the media clock threads run SCHED_FIFO (root or CAP_SYS_NICE),
    // which keeps pacing steady when other work shares the cores.
    let rt = args.iter().any(|a| a == "rt");
    let media = if rt { "realtime_priority = 10" } else { "" };
    println!(
        "media clock priority: {}",
        if rt { "SCHED_FIFO 10" } else { "normal" }
    );
    let want = |k: &str| {
        !args
            .iter()
            .any(|a| a == "ivr" || a == "hold" || a == "sustained")
            || args.iter().any(|a| a == k)
    };
    if want("ivr") {
        ivr(quick, media);
    }
    if want("hold") {
        hold(quick, media);
    }
    if want("sustained") {
        let value = |k: &str| {
            args.iter()
                .find_map(|a| a.strip_prefix(k)?.parse::<u32>().ok())
        };
        let rate = value("rate=").unwrap_or(if quick { 1000 } else { 5000 });
        let secs = value("secs=").unwrap_or(if quick { 10 } else { 60 });
        sustained(rate, secs);
    }
}

/// /proc/loadavg's first three fields: how busy the machine was.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value of an unlabelled gauge or counter in a scrape (0 if absent).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

const LIVE_TX: &str = "conmutador_sip_transactions_active";
const ABSORBING_TX: &str = "conmutador_sip_transactions_absorbing";

/// (c) Short calls at `rate` per second for `secs` on the shipped defaults.
fn sustained(rate: u32, secs: u32) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conmutador"));
    // No conmutador.toml in the working folder: the gateway runs on the
    // embedded one, whose relative paths point into this repository.
    cmd.current_dir(dir.path())
        .args(["run", "--sip-listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"));
    let (child, udp, http) = support::spawn(cmd);
    let gw = Gateway {
        child,
        udp,
        http,
        _dir: dir,
    };
    std::thread::sleep(Duration::from_millis(500));
    let load0 = loadavg();
    let (cpu0, _) = gw.usage();
    let calls = u64::from(rate) * u64::from(secs);
    println!(
        "\n(c) short calls (INVITE, 200, ACK, BYE) on the shipped defaults, {rate} calls/s for {secs} s"
    );
    let done = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    let (st, peak_live, peak_absorbing, wall) = std::thread::scope(|s| {
        let (gw_ref, done_ref) = (&gw, &done);
        // Once a second: the live and absorbing transaction gauges.
        let h = s.spawn(move || {
            let (mut live, mut absorbing) = (0f64, 0f64);
            while !done_ref.load(std::sync::atomic::Ordering::Relaxed) {
                let text = gw_ref.metrics();
                live = live.max(sample(&text, LIVE_TX));
                absorbing = absorbing.max(sample(&text, ABSORBING_TX));
                std::thread::sleep(Duration::from_secs(1));
            }
            (live, absorbing)
        });
        let st = run_sipp(
            &gw,
            "uac_basic.xml",
            &[
                "-r".into(),
                rate.to_string(),
                "-m".into(),
                calls.to_string(),
                "-d".into(),
                "0".into(),
                // Up to 5 s of calls in flight: SIPp holds back beyond that,
                // which shows as an achieved rate below the one asked.
                "-l".into(),
                (rate * 5).to_string(),
            ],
            Duration::from_secs(u64::from(secs) + 60),
        );
        let wall = started.elapsed();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let (live, absorbing) = h.join().unwrap();
        (st, live, absorbing, wall)
    });
    std::thread::sleep(Duration::from_secs(1));
    let (cpu1, rss_end, hwm) = support::usage(gw.child.id());
    let text = gw.metrics();
    let load1 = loadavg();
    let sent_503 = sample(&text, "conmutador_sip_503_sent_total");
    let refused = support::by_reason(&text, "conmutador_sip_overload_rejections_total");
    // Once every finished transaction has outlived its 32 s.
    std::thread::sleep(Duration::from_secs(34));
    let (_, rss_after, _) = support::usage(gw.child.id());
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let cpu_per = if st.ok > 0 {
        format!("{:.3}", (cpu1 - cpu0) * 1000.0 / st.ok as f64)
    } else {
        "-".into()
    };
    println!(
        "| asked (calls/s × s) | attempted | achieved (calls/s) | succeeded | failed | 503 sent (reason) | gateway CPU per call (ms) | peak RSS (MiB) | RSS at end (MiB) | RSS 35 s later (MiB) | most live / absorbing transactions |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {rate} × {secs} | {} | {:.0} | {} | {} | {sent_503} ({}) | {cpu_per} | {:.0} | {:.0} | {:.0} | {peak_live} / {peak_absorbing} |",
        st.created,
        st.created as f64 / wall.as_secs_f64().max(1e-9),
        st.ok,
        st.failed,
        support::list(&refused, "none"),
        mib(hwm),
        mib(rss_end),
        mib(rss_after),
    );
    println!(
        "SIPp ran {:.1} s; {} retransmissions by SIPp; load average before {load0}, after {load1}",
        wall.as_secs_f64(),
        st.retransmissions
    );
}
