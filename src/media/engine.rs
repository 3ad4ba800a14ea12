//! The media engine: the shell that owns every leg's RTP socket and the one
//! media clock that paces them. The call layer talks to it through the
//! cloneable [`MediaEngine`] handle (commands) and receives [`MediaEvent`]s on
//! the tokio channel it gives to [`MediaEngine::start_leg`].
//!
//! Shape: a few dedicated OS threads (`workers`, one per core by default; see
//! `clock.rs`), each waiting on epoll for a 1 ms timerfd and its command
//! eventfd only; the sockets of the legs it owns are polled after each
//! wake-up, so traffic never adds wake-ups. Legs are packed, not spread: a
//! worker takes up to [`PACK`] legs before the next one is used (a worker
//! with no legs stops its timer and costs nothing), and a leg that will be
//! bridged is placed beside its partner ([`MediaEngine::allocate_beside`])
//! so the relay stays on one thread. Each leg belongs to one of twenty 1 ms
//! phase slots, so every 20 ms each leg sends its frame at its own phase
//! and a wake-up serves a twentieth of the worker's legs: many streams per
//! wake-up, no timer per call, and the sending work is spread over the
//! period instead of bunched at its start.
//! Received packets are handled at the next poll (within 1 ms: digits,
//! relay to a bridged partner) on the owning thread; when the partner lives
//! on another worker the packet waits in that worker's inbox for its next
//! tick (at most 1 ms more) instead of costing a wake-up.
//!
//! Choices worth knowing:
//! - Comfort: a leg that is neither playing nor bridged sends nothing (no CN
//!   was negotiated, and silence frames would only cost bandwidth). Its RTP
//!   timestamp keeps running with the clock and the next packet carries the
//!   marker bit, so the peer sees a new talkspurt.
//! - `play` replaces whatever the leg was playing; only a playback that runs
//!   to its end reports [`MediaEvent::PlaybackDone`]. A barge-in digit stops
//!   playback and reports only the [`MediaEvent::Digit`].
//! - `bridge` stops playback on both legs. A prompt played on a bridged leg
//!   takes precedence over relayed audio into that leg while it lasts.
//! - Symmetric RTP: the first packet from the peer fixes the destination.
//!   Packets from any other source are dropped, unless one source sends ten
//!   in a row (the peer moved, e.g. NAT rebinding), which re-latches.
//! - RTCP is not used; only the even RTP port is bound.
//! - `realtime_priority` (off by default) puts the clock threads in
//!   SCHED_FIFO, which keeps pacing steady on a busy host; it needs
//!   CAP_SYS_NICE and falls back to normal priority with a warning.
//! - Events go out with `try_send`: the clock thread never blocks on a slow
//!   consumer; an event that finds the channel full is dropped and counted.
//!
//! - SRTP is per leg ([`MediaEngine::start_leg_secure`]): a bridge may join
//!   an SRTP leg to a plain one, each side protected or not as its own
//!   SDP said; relayed audio is decrypted on the way in and encrypted on
//!   the way out (`srtp.rs`, `clock.rs`).
//!
//! Must not touch: SIP, dialplans, queues. Only `sdp::MediaParams` and
//! `sdp::SrtpParams` cross in.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::clock::{self, Command, Peer, worker_of};
use super::dtmf::DtmfSource;
use super::mix;
use super::prompt::{Prompt, PromptLibrary};
use crate::sdp::{MediaParams, SrtpParams};

/// Engine settings (the `[media]` part of the gateway config).
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Address every RTP socket binds to (and that goes into our SDP).
    pub bind_ip: IpAddr,
    /// Inclusive port range; RTP uses the even ports in it. The number of
    /// even ports bounds the number of legs.
    pub ports: (u16, u16),
    /// A started leg that receives nothing for this long reports
    /// [`MediaEvent::RtpTimeout`] (counted from the start, or the last update).
    pub rtp_timeout: Duration,
    /// SO_RCVBUF per leg socket; a cap on queued bytes, not an allocation.
    pub recv_buffer_bytes: usize,
    /// SO_SNDBUF per leg socket.
    pub send_buffer_bytes: usize,
    /// Media clock threads (1..=64); legs are spread over them.
    pub workers: usize,
    /// SCHED_FIFO priority (1..=99) for the clock threads, if permitted.
    pub realtime_priority: Option<u8>,
    /// A frame sent later than this counts towards
    /// [`MediaEngine::behind_share`], the engine's overload signal.
    pub behind_after: Duration,
    /// Lock each leg to the first peer it hears (connect its socket) rather
    /// than follow a source that moves mid-call. See `clock.rs`.
    pub strict_rtp: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports: (20000, 29999),
            rtp_timeout: Duration::from_secs(30),
            // The kernel doubles these and charges each queued packet its
            // buffer overhead (~1 KiB): 8 KiB holds ~16 packets, 320 ms of
            // backlog, far more than a 1 ms clock needs, and caps a leg's
            // kernel memory at 32 KiB even when a peer floods it.
            recv_buffer_bytes: 8 * 1024,
            send_buffer_bytes: 8 * 1024,
            behind_after: Duration::from_millis(20),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            realtime_priority: None,
            strict_rtp: true,
        }
    }
}

/// One RTP endpoint (a call leg) in the engine. The low byte names the
/// clock worker that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

/// How to play a list of prompts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayOpts {
    /// A received digit stops the playback.
    pub barge_in: bool,
    /// Start over after the last prompt, until stopped (music on hold).
    pub looped: bool,
    /// Echoed in [`MediaEvent::PlaybackDone`].
    pub token: u64,
}

/// What the engine tells the call layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Digit {
        leg: LegId,
        digit: char,
        source: DtmfSource,
    },
    /// The prompt list ran to its end (never sent for looped, replaced,
    /// stopped or barged-in playback).
    PlaybackDone { leg: LegId, token: u64 },
    /// No RTP from the peer for `rtp_timeout` (once, until packets resume).
    RtpTimeout { leg: LegId },
    /// The first RTP packet from the peer after start (or after an update
    /// that moved the remote), and where it came from (the address media is
    /// sent to from then on).
    FirstPacket { leg: LegId, from: SocketAddr },
}

/// Every even port of the configured range is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("media port pool exhausted")]
pub struct PoolExhausted;

/// Even ports not in use, reused oldest-freed first so stray packets for an
/// ended call are unlikely to hit the next one.
#[derive(Debug)]
pub(crate) struct PortPool {
    free: VecDeque<u16>,
    in_use: usize,
}

impl PortPool {
    pub(crate) fn new(lo: u16, hi: u16) -> PortPool {
        let start = lo.saturating_add(lo & 1);
        let free = (u32::from(start)..=u32::from(hi))
            .step_by(2)
            .map(|p| p as u16)
            .filter(|&p| p != 0)
            .collect();
        PortPool { free, in_use: 0 }
    }

    fn take(&mut self) -> Option<u16> {
        let p = self.free.pop_front()?;
        self.in_use += 1;
        Some(p)
    }

    /// A port that could not be bound goes to the back of the queue.
    fn put_back_unused(&mut self, port: u16) {
        self.in_use -= 1;
        self.free.push_back(port);
    }

    pub(crate) fn release(&mut self, port: u16) {
        self.in_use = self.in_use.saturating_sub(1);
        self.free.push_back(port);
        metrics::gauge!(crate::ops::metrics::MEDIA_PORTS_IN_USE).set(self.in_use as f64);
    }

    fn capacity(&self) -> usize {
        self.free.len() + self.in_use
    }
}

/// Counters of the media clock, readable by benchmarks and tests (the same
/// figures also go to the metrics registry).
#[derive(Debug, Default)]
pub struct ClockStats {
    pub(crate) ticks: AtomicU64,
    pub(crate) frames_sent: AtomicU64,
    /// Frames never sent because a worker fell more than 100 ms behind.
    pub(crate) frames_skipped: AtomicU64,
    pub(crate) late_frames: AtomicU64,
    pub(crate) packets_in: AtomicU64,
    pub(crate) relayed: AtomicU64,
    /// SRTP packets dropped because their tag did not verify / as replays.
    pub(crate) srtp_auth_failed: AtomicU64,
    pub(crate) srtp_replayed: AtomicU64,
    /// Legs whose socket is in a worker's readiness set (the bridged ones).
    pub(crate) watched: AtomicU64,
    /// Lateness histograms in 10 µs buckets up to 100 ms: wake-up lateness
    /// of each 1 ms tick, and lateness of the last frame sent by each tick.
    pub(crate) hist: Mutex<LatenessHist>,
}

#[derive(Debug)]
pub(crate) struct LatenessHist {
    pub(crate) wake: Vec<u64>,
    pub(crate) last_frame: Vec<u64>,
    pub(crate) wake_max: Duration,
    pub(crate) last_frame_max: Duration,
}

pub(crate) const HIST_BUCKET: Duration = Duration::from_micros(10);
pub(crate) const HIST_BUCKETS: usize = 10_000;

impl Default for LatenessHist {
    fn default() -> Self {
        LatenessHist {
            wake: vec![0; HIST_BUCKETS],
            last_frame: vec![0; HIST_BUCKETS],
            wake_max: Duration::ZERO,
            last_frame_max: Duration::ZERO,
        }
    }
}

/// A copy of [`ClockStats`] at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClockSnapshot {
    pub ticks: u64,
    pub frames_sent: u64,
    pub frames_skipped: u64,
    pub late_frames: u64,
    pub packets_in: u64,
    pub relayed: u64,
    /// SRTP packets dropped: tag did not verify, replayed.
    pub srtp_auth_failed: u64,
    pub srtp_replayed: u64,
    /// Legs read as soon as a packet arrives (bridged); the rest are read
    /// once per 20 ms in their frame slot.
    pub watched_legs: u64,
    pub wake_p50: Duration,
    pub wake_p99: Duration,
    pub wake_max: Duration,
    pub last_frame_p50: Duration,
    pub last_frame_p99: Duration,
    pub last_frame_max: Duration,
}

fn percentile(buckets: &[u64], q: f64) -> Duration {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return Duration::ZERO;
    }
    let want = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, &n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= want {
            return HIST_BUCKET * (i as u32 + 1);
        }
    }
    HIST_BUCKET * buckets.len() as u32
}

impl ClockStats {
    fn snapshot(&self) -> ClockSnapshot {
        let h = self.hist.lock().unwrap_or_else(|e| e.into_inner());
        ClockSnapshot {
            ticks: self.ticks.load(Ordering::Relaxed),
            frames_sent: self.frames_sent.load(Ordering::Relaxed),
            frames_skipped: self.frames_skipped.load(Ordering::Relaxed),
            late_frames: self.late_frames.load(Ordering::Relaxed),
            packets_in: self.packets_in.load(Ordering::Relaxed),
            relayed: self.relayed.load(Ordering::Relaxed),
            srtp_auth_failed: self.srtp_auth_failed.load(Ordering::Relaxed),
            srtp_replayed: self.srtp_replayed.load(Ordering::Relaxed),
            watched_legs: self.watched.load(Ordering::Relaxed),
            wake_p50: percentile(&h.wake, 0.5),
            wake_p99: percentile(&h.wake, 0.99),
            wake_max: h.wake_max,
            last_frame_p50: percentile(&h.last_frame, 0.5),
            last_frame_p99: percentile(&h.last_frame, 0.99),
            last_frame_max: h.last_frame_max,
        }
    }

    fn reset(&self) {
        for a in [
            &self.ticks,
            &self.frames_sent,
            &self.frames_skipped,
            &self.late_frames,
            &self.packets_in,
            &self.relayed,
            &self.srtp_auth_failed,
            &self.srtp_replayed,
        ] {
            a.store(0, Ordering::Relaxed);
        }
        *self.hist.lock().unwrap_or_else(|e| e.into_inner()) = LatenessHist::default();
    }
}

struct Inner {
    config: MediaConfig,
    prompts: Arc<PromptLibrary>,
    peers: Arc<[Peer]>,
    pool: Arc<Mutex<PortPool>>,
    next_leg: AtomicU64,
    stats: Arc<ClockStats>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Legs one media worker takes before the next one is used. At 1000 legs a
/// 1 ms tick sends 50 frames, a fraction of a millisecond of work, and one
/// thread serves what would otherwise wake two.
pub const PACK: usize = 1000;

/// Where a new leg goes given each worker's legs: `prefer` (a bridge
/// partner's worker) unless it carries twice its share, else the first
/// worker below [`PACK`], else the least loaded.
pub(crate) fn place(loads: &[usize], prefer: Option<usize>) -> usize {
    if let Some(w) = prefer.filter(|&w| loads.get(w).is_some_and(|&l| l < 2 * PACK)) {
        return w;
    }
    loads.iter().position(|&l| l < PACK).unwrap_or_else(|| {
        (0..loads.len())
            .min_by_key(|&w| loads[w])
            .unwrap_or_default()
    })
}

impl Drop for Inner {
    fn drop(&mut self) {
        for p in self.peers.iter() {
            p.send(Command::Shutdown);
        }
        for t in self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = t.join();
        }
    }
}

impl Inner {
    /// Routes a command to the worker owning `leg`.
    fn send(&self, leg: LegId, cmd: Command) {
        if let Some(p) = self.peers.get(worker_of(leg)) {
            p.send(cmd);
        }
    }
}

/// Handle to the media engine; cheap to clone, usable from any thread or task.
#[derive(Clone)]
/// A supervised bridge (see [`MediaEngine::supervise`]).
pub struct Supervision {
    shared: Arc<mix::Shared>,
    legs: [LegId; 3],
}

impl Supervision {
    pub fn mode(&self) -> mix::Mode {
        self.shared.mode()
    }

    /// Switches mode at once (the clock threads read it on their next packet).
    pub fn set_mode(&self, mode: mix::Mode) {
        self.shared.set_mode(mode);
    }

    /// The supervisor's leg.
    pub fn supervisor(&self) -> LegId {
        self.legs[2]
    }
}

impl std::fmt::Debug for Supervision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervision")
            .field("mode", &self.mode())
            .field("legs", &self.legs)
            .finish()
    }
}

pub struct MediaEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl MediaEngine {
    /// Starts the media clock threads.
    pub fn start(config: MediaConfig, prompts: Arc<PromptLibrary>) -> io::Result<MediaEngine> {
        let n = config.workers.clamp(1, 64);
        let mut peers = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for _ in 0..n {
            let (peer, rx) = Peer::new()?;
            peers.push(peer);
            receivers.push(rx);
        }
        let peers: Arc<[Peer]> = peers.into();
        let pool = Arc::new(Mutex::new(PortPool::new(config.ports.0, config.ports.1)));
        let stats = Arc::new(ClockStats::default());
        let mut workers = Vec::with_capacity(n);
        for (id, rx) in receivers.into_iter().enumerate() {
            workers.push(clock::Worker::new(
                id,
                config.clone(),
                rx,
                peers.clone(),
                pool.clone(),
                stats.clone(),
            )?);
        }
        let inner = Arc::new(Inner {
            config,
            prompts,
            peers,
            pool,
            next_leg: AtomicU64::new(0),
            stats,
            threads: Mutex::new(Vec::new()),
        });
        for (id, worker) in workers.into_iter().enumerate() {
            let t = std::thread::Builder::new()
                .name(format!("media-clock-{id}"))
                .spawn(move || worker.run())?;
            inner
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(t);
        }
        Ok(MediaEngine { inner })
    }

    /// The prompts loaded at start-up.
    pub fn prompts(&self) -> &Arc<PromptLibrary> {
        &self.inner.prompts
    }

    pub fn config(&self) -> &MediaConfig {
        &self.inner.config
    }

    /// Takes an even port, binds its socket and hands it to the clock. The
    /// returned address is what goes into our SDP.
    pub fn allocate(&self) -> Result<(LegId, SocketAddr), PoolExhausted> {
        self.allocate_on(self.pick_worker(None))
    }

    /// Like [`MediaEngine::allocate`], for a leg that will be bridged to
    /// `partner`: on the partner's worker (unless that one carries twice its
    /// share), so relayed packets never wait for another thread's tick.
    pub fn allocate_beside(&self, partner: LegId) -> Result<(LegId, SocketAddr), PoolExhausted> {
        self.allocate_on(self.pick_worker(Some(worker_of(partner))))
    }

    /// [`place`] over the leg counts the workers publish: one thread serves
    /// a light load (fewer wake-ups, no relay across threads), all of them
    /// a heavy one.
    fn pick_worker(&self, prefer: Option<usize>) -> usize {
        let loads: Vec<usize> = self
            .inner
            .peers
            .iter()
            .map(|p| p.legs.load(Ordering::Relaxed))
            .collect();
        place(&loads, prefer)
    }

    /// [`MediaEngine::allocate`] on worker `worker` (below `workers`).
    pub(crate) fn allocate_on(&self, worker: usize) -> Result<(LegId, SocketAddr), PoolExhausted> {
        debug_assert!(worker < self.inner.peers.len());
        let cfg = &self.inner.config;
        let attempts = self
            .inner
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .capacity();
        for _ in 0..attempts {
            let port = self
                .inner
                .pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .ok_or(PoolExhausted)?;
            match bind(cfg, port) {
                Ok(socket) => {
                    let local = SocketAddr::new(cfg.bind_ip, port);
                    let n = self.inner.next_leg.fetch_add(1, Ordering::Relaxed);
                    let leg = LegId(((n + 1) << 8) | worker as u64);
                    let in_use = {
                        let pool = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner());
                        pool.in_use
                    };
                    metrics::gauge!(crate::ops::metrics::MEDIA_PORTS_IN_USE).set(in_use as f64);
                    self.inner.send(leg, Command::Add { leg, socket, port });
                    return Ok((leg, local));
                }
                Err(e) => {
                    tracing::debug!(port, error = %e, "RTP port busy, trying the next one");
                    self.inner
                        .pool
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .put_back_unused(port);
                }
            }
        }
        Err(PoolExhausted)
    }

    /// Starts media on an allocated leg once its SDP is negotiated.
    pub fn start_leg(
        &self,
        leg: LegId,
        params: MediaParams,
        events: tokio::sync::mpsc::Sender<MediaEvent>,
    ) {
        self.start_leg_secure(leg, params, None, events);
    }

    /// [`MediaEngine::start_leg`] with the SRTP keys the SDP negotiation
    /// gave (`sdp::answer_secure` / `sdp::accept_answer_secure`); `None` is
    /// plain RTP. Keys and parameters arrive in one command, so no packet
    /// ever leaves the leg unprotected.
    pub fn start_leg_secure(
        &self,
        leg: LegId,
        params: MediaParams,
        srtp: Option<SrtpParams>,
        events: tokio::sync::mpsc::Sender<MediaEvent>,
    ) {
        self.inner.send(
            leg,
            Command::Start {
                leg,
                params,
                srtp,
                events,
            },
        );
    }

    /// New negotiated parameters (re-INVITE, hold/resume). A new remote
    /// address re-arms symmetric RTP latching. SRTP stays as it was.
    pub fn update(&self, leg: LegId, params: MediaParams) {
        self.inner.send(
            leg,
            Command::Update {
                leg,
                params,
                srtp: None,
            },
        );
    }

    /// [`MediaEngine::update`] with the SRTP outcome of the new negotiation:
    /// unchanged keys keep their crypto context (the packet index runs on),
    /// changed ones start a new one, `None` turns SRTP off.
    pub fn update_secure(&self, leg: LegId, params: MediaParams, srtp: Option<SrtpParams>) {
        self.inner.send(
            leg,
            Command::Update {
                leg,
                params,
                srtp: Some(srtp),
            },
        );
    }

    /// Plays `prompts` in order, replacing whatever the leg was playing.
    /// Ignored on a leg that was not started (there is no codec yet).
    pub fn play(&self, leg: LegId, prompts: Vec<Arc<Prompt>>, opts: PlayOpts) {
        self.inner.send(leg, Command::Play { leg, prompts, opts });
    }

    pub fn stop_playback(&self, leg: LegId) {
        self.inner.send(leg, Command::StopPlayback { leg });
    }

    /// Relays RTP between two started legs (stops their playback).
    pub fn bridge(&self, a: LegId, b: LegId) {
        if a == b {
            return;
        }
        self.inner
            .send(a, Command::SetPartner { leg: a, partner: b });
        self.inner
            .send(b, Command::SetPartner { leg: b, partner: a });
    }

    /// Ends the bridge `leg` is in, if any.
    pub fn unbridge(&self, leg: LegId) {
        self.inner.send(leg, Command::Unbridge { leg });
    }

    /// Supervision hook: joins `supervisor` (a started leg) to the bridge of
    /// `caller` and `operator` in `mode`. The caller and operator keep
    /// their 1:1 relay wherever [`mix::route`] says so; the legs that hear
    /// more than one party get a mix on their frame tick. Change the mode
    /// with [`Supervision::set_mode`]; [`MediaEngine::end_supervision`]
    /// restores the plain bridge.
    pub fn supervise(
        &self,
        caller: LegId,
        operator: LegId,
        supervisor: LegId,
        mode: mix::Mode,
    ) -> Supervision {
        let shared = Arc::new(mix::Shared::new(mode, std::time::Instant::now()));
        for (leg, party) in [
            (caller, mix::Party::Caller),
            (operator, mix::Party::Operator),
            (supervisor, mix::Party::Supervisor),
        ] {
            let mix = Some((shared.clone(), party));
            self.inner.send(leg, Command::SetMix { leg, mix });
        }
        Supervision {
            shared,
            legs: [caller, operator, supervisor],
        }
    }

    /// Takes the supervisor out: caller and operator are a plain bridge again.
    pub fn end_supervision(&self, s: Supervision) {
        for leg in s.legs {
            self.inner.send(leg, Command::SetMix { leg, mix: None });
        }
    }

    /// Copies `leg`'s received audio into a recording (`None` stops); on
    /// the operator's side its telephone-events stop reaching the caller.
    pub fn tap(&self, leg: LegId, tap: Option<super::record::Tap>) {
        self.inner.send(
            leg,
            Command::SetTap {
                leg,
                tap: tap.map(Box::new),
            },
        );
    }

    /// Closes the leg's socket and returns its port to the pool.
    pub fn release(&self, leg: LegId) {
        self.inner.send(leg, Command::Release { leg });
    }

    /// The share of frames (0..=1) sent more than `behind_after` late, or
    /// never sent because the clock skipped ahead: per worker the least
    /// share of its last three seconds (so only lasting lateness counts),
    /// and the worst worker's. Zero on a healthy gateway; it rises when the
    /// machine cannot keep up with the streams it has.
    pub fn behind_share(&self) -> f64 {
        let worst = self
            .inner
            .peers
            .iter()
            .map(|p| p.behind_permille.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        f64::from(worst) / 1000.0
    }

    /// Blocks the worker that owns `leg` for `pause`, as an overloaded
    /// machine would.
    #[cfg(test)]
    pub(crate) fn stall(&self, leg: LegId, pause: Duration) {
        self.inner.send(leg, Command::Stall { pause });
    }

    /// Clock counters and lateness percentiles since start (or the last reset).
    pub fn clock_stats(&self) -> ClockSnapshot {
        self.inner.stats.snapshot()
    }

    pub fn reset_clock_stats(&self) {
        self.inner.stats.reset();
    }

    /// Ports taken right now.
    pub fn ports_in_use(&self) -> usize {
        self.inner
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_use
    }
}

fn bind(cfg: &MediaConfig, port: u16) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr = SocketAddr::new(cfg.bind_ip, port);
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.set_recv_buffer_size(cfg.recv_buffer_bytes)?;
    socket.set_send_buffer_size(cfg.send_buffer_bytes)?;
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    debug_assert!(socket.as_raw_fd() >= 0);
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_uses_even_ports_only() {
        let mut p = PortPool::new(10001, 10010);
        assert_eq!(p.capacity(), 5);
        let got: Vec<u16> = std::iter::from_fn(|| p.take()).collect();
        assert_eq!(got, vec![10002, 10004, 10006, 10008, 10010]);
        assert_eq!(p.take(), None);
        p.release(10004);
        p.release(10008);
        // Oldest freed first.
        assert_eq!(p.take(), Some(10004));
        assert_eq!(p.take(), Some(10008));
        assert_eq!(p.in_use, 5);
        assert_eq!(PortPool::new(0, 4).capacity(), 2);
    }

    #[test]
    fn percentiles_from_buckets() {
        let mut b = vec![0u64; 100];
        b[0] = 50;
        b[9] = 49;
        b[99] = 1;
        assert_eq!(percentile(&b, 0.5), Duration::from_micros(10));
        assert_eq!(percentile(&b, 0.99), Duration::from_micros(100));
        assert_eq!(percentile(&b, 1.0), Duration::from_micros(1000));
        assert_eq!(percentile(&[0; 4], 0.5), Duration::ZERO);
    }
}
