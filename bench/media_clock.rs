//! Media clock load benchmark: N legs each playing a looped prompt to one
//! sink socket on loopback for a fixed time, then a table of packets/s,
//! lateness percentiles and the process's CPU time.
//!
//! Run: `cargo bench --bench media_clock [-- SECONDS LEGS...]`
//! (defaults: 10 s, 1000 2000 5000 legs). Environment: `MEDIA_WORKERS=n`
//! (clock threads, default one per core), `MEDIA_RT=prio` (SCHED_FIFO). Traffic stays on 127.0.0.1; the sink
//! is never read, so the kernel drops what overflows its small buffer.
//!
//! Columns: "wake" is how late each 1 ms tick woke against the ideal
//! schedule; "frame" is how late the last frame of each tick left (the worst
//! frame of that tick, what `conmutador_media_send_jitter_seconds` records);
//! "late" is the share of frames sent more than 2 ms after their ideal time
//! (frames skipped because a worker fell 100 ms behind count as late);
//! CPU is user+system time of the whole process per wall-clock second;
//! RSS/leg is the growth of resident memory divided by legs, measured while
//! playing (kernel socket memory is not included: it is only what is queued,
//! capped per leg by the configured buffers).

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conmutador::media::{MediaConfig, MediaEngine, PlayOpts, Prompt, PromptLibrary};
use conmutador::sdp::{Codec, Direction, MediaParams};

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resident memory of the process, bytes.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn run(legs: usize, secs: u64) -> std::io::Result<String> {
    let lo = 40000u16;
    let hi = lo + (legs as u16) * 2 + 200;
    let cfg = MediaConfig {
        bind_ip: "127.0.0.1".parse().expect("literal address"),
        ports: (lo, hi),
        rtp_timeout: Duration::from_secs(3600),
        ..MediaConfig::default()
    };
    let cfg = MediaConfig {
        workers: env("MEDIA_WORKERS").unwrap_or(cfg.workers),
        realtime_priority: env("MEDIA_RT"),
        ..cfg
    };
    let rss0 = rss_bytes();
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
        engine.start_leg(leg, params, tx.clone());
        engine.play(
            leg,
            vec![prompt.clone()],
            PlayOpts {
                looped: true,
                ..PlayOpts::default()
            },
        );
        ids.push(leg);
    }
    std::thread::sleep(Duration::from_secs(1));
    engine.reset_clock_stats();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let s = engine.clock_stats();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let rss_per_leg = rss_bytes().saturating_sub(rss0) / legs as u64;
    for leg in ids {
        engine.release(leg);
    }
    while rx.try_recv().is_ok() {}
    let due = s.frames_sent + s.frames_skipped;
    let late = if due > 0 {
        100.0 * (s.late_frames + s.frames_skipped) as f64 / due as f64
    } else {
        0.0
    };
    Ok(format!(
        "| {legs:>5} | {:>9.0} | {:>5} / {:>5} / {:>6} | {:>5} / {:>5} / {:>6} | {late:>6.3}% | {:>5.2} s/s | {:>5} B |",
        s.frames_sent as f64 / wall,
        ms(s.wake_p50),
        ms(s.wake_p99),
        ms(s.wake_max),
        ms(s.last_frame_p50),
        ms(s.last_frame_p99),
        ms(s.last_frame_max),
        cpu / wall,
        rss_per_leg,
    ))
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let secs = args.first().and_then(|a| a.parse().ok()).unwrap_or(10);
    let legs: Vec<usize> = if args.len() > 1 {
        args[1..].iter().filter_map(|a| a.parse().ok()).collect()
    } else {
        vec![1000, 2000, 5000]
    };
    let workers = env("MEDIA_WORKERS").unwrap_or(MediaConfig::default().workers);
    let rt: Option<u8> = env("MEDIA_RT");
    println!(
        "media clock: {secs} s per step, {workers} worker(s), realtime {rt:?}, looped prompt, PCMU 20 ms, loopback sink"
    );
    println!(
        "|  legs | packets/s | wake p50 / p99 / max ms | frame p50 / p99 / max ms |   late  |    CPU    | RSS/leg |"
    );
    println!(
        "|------:|----------:|------------------------:|-------------------------:|--------:|----------:|--------:|"
    );
    for n in legs {
        println!("{}", run(n, secs)?);
    }
    Ok(())
}
