//! Shared by the benchmarks: start the release gateway from a config file
//! and read its address line, and read a process's CPU and memory from
//! /proc. Only processes the benchmarks start are ever stopped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `conmutador run` with `config` and returns the child with its
/// SIP (UDP) and HTTP addresses from the "listening" line on stdout.
pub fn spawn_gateway(config: &Path) -> (Child, SocketAddr, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conmutador"));
    cmd.arg("--config").arg(config).arg("run");
    spawn(cmd)
}

/// Starts a prepared `conmutador ... run` command (stdout is read here for
/// the "listening" line; stderr is dropped) and returns the child with its
/// SIP (UDP) and HTTP addresses.
pub fn spawn(mut cmd: Command) -> (Child, SocketAddr, SocketAddr) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start conmutador");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = loop {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("listening ") => break l,
            Some(Ok(_)) => continue,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("gateway did not start");
            }
        }
    };
    // Keep draining stdout so the gateway never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let field = |k: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {line:?}"))
    };
    let (udp, http) = (field("sip_udp"), field("http"));
    (child, udp, http)
}

/// (utime + stime) in seconds, VmRSS and VmHWM in bytes, of process `pid`.
pub fn usage(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (cpu / ticks, kb("VmRSS:"), kb("VmHWM:"))
}

/// The kernel's price for `streams` RTP streams both ways at 50 packets/s
/// on loopback, as a bare loop pays it: one thread sends a 172-byte datagram
/// from each of its sockets to a peer socket every 20 ms (1 ms ticks, a
/// twentieth of the sockets per tick) and reads each of its sockets once
/// per 20 ms — one system call per packet, no epoll, no RTP, no audio —
/// while a peer thread does the same towards it. Returns the first thread's
/// CPU in cores over `secs`: nothing that relays or plays RTP over plain
/// sockets can spend less on this kernel, so a gateway's CPU divided by it
/// says how much its own code adds. Loopback only; stops by itself.
pub fn udp_floor(streams: usize, secs: u64) -> f64 {
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};
    fn thread_cpu() -> f64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    }
    let bind = |n: usize| -> Vec<UdpSocket> {
        (0..n)
            .map(|_| {
                let s = UdpSocket::bind("127.0.0.1:0").expect("loopback socket");
                s.set_nonblocking(true).expect("non-blocking");
                s
            })
            .collect()
    };
    let (ours, theirs) = (bind(streams), bind(streams));
    let side = move |me: Vec<UdpSocket>, to: Vec<std::net::SocketAddr>, start: Instant| {
        move || {
            let payload = [0x55u8; 172];
            let mut buf = [0u8; 2048];
            let c0 = thread_cpu();
            for tick in 0..secs * 1000 {
                let due = start + Duration::from_millis(tick);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                for i in ((tick % 20) as usize..me.len()).step_by(20) {
                    let _ = me[i].send_to(&payload, to[i]);
                    let _ = me[i].recv_from(&mut buf);
                }
            }
            thread_cpu() - c0
        }
    };
    let addrs = |v: &[UdpSocket]| -> Vec<std::net::SocketAddr> {
        v.iter().map(|s| s.local_addr().expect("bound")).collect()
    };
    let (our_addrs, their_addrs) = (addrs(&ours), addrs(&theirs));
    let start = Instant::now() + Duration::from_millis(50);
    let peer = std::thread::spawn(side(theirs, our_addrs, start));
    let cpu = side(ours, their_addrs, start)();
    let _ = peer.join();
    cpu / secs as f64
}

/// The non-zero samples of `name`, by the value of its one label, `reason`.
pub fn by_reason(text: &str, name: &str) -> Vec<(String, f64)> {
    let prefix = format!("{name}{{reason=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter_map(|l| {
            let (reason, rest) = l.split_once('"')?;
            let n: f64 = rest.rsplit(' ').next()?.parse().ok()?;
            (n > 0.0).then(|| (reason.to_owned(), n))
        })
        .collect()
}

/// "reason n, reason n", or `empty` for none.
pub fn list(v: &[(String, f64)], empty: &str) -> String {
    if v.is_empty() {
        return empty.to_owned();
    }
    let items: Vec<String> = v.iter().map(|(r, n)| format!("{r} {n}")).collect();
    items.join(", ")
}

/// Cumulative histogram buckets (le, count) of one metric.
pub fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut v: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, count))
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// A percentile from the difference of two cumulative bucket snapshots,
/// reported as the bucket's upper bound (honest: no interpolation).
pub fn percentile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, c)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map(|(_, c)| *c)
                .unwrap_or(0.0);
            (*le, c - b)
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    delta
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map(|(le, _)| *le)
}
