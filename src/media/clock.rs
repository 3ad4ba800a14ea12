//! The media clock thread: owns every leg, its socket and its RTP state.
//!
//! One loop on epoll waits for two kinds of readiness: a timerfd that fires
//! every 1 ms on an absolute schedule and an eventfd that says commands are
//! queued. Each 1 ms tick serves one of twenty phase slots (every leg sits
//! in one), so each leg sends exactly one frame per 20 ms and one wake-up
//! serves a twentieth of the worker's legs. A late wake-up serves the
//! missed ticks at once (up to 100 ms; beyond that it skips ahead and
//! counts the frames as late) so streams keep their rate.
//!
//! Packets never wake the thread, and how soon a leg's socket is read
//! depends on who is waiting for its packets. A leg that only hears
//! prompts or music (IVR, queue) is read every third round of its slot
//! (60 ms), right after its frame goes out: digits and RTP timeouts do not
//! need sooner, one `recvmmsg` then takes the three packets queued
//! meanwhile, a caller that sends nothing costs 17 empty reads a second
//! rather than 50, and a socket outside any epoll set costs the kernel
//! nothing per packet (a socket in one pays a wait-queue callback on every
//! packet sent and received: 10-25% more CPU in a bare send/receive loop).
//! A bridged leg's packets go on to a person, so its socket is *watched*:
//! it sits in a second, edge-triggered epoll set that is
//! polled without waiting after every wake-up (a packet waits at most
//! 1 ms). Either way each socket's queue is read with one `recvmmsg`
//! (`recv.rs`).
//!
//! Symmetric RTP with a lock (`media.strict_rtp`, the default): a leg
//! sends to the SDP address until it hears from its peer, then to where the
//! peer's packets come from. A packet from the SDP address is the peer at
//! once; any other source (a phone behind NAT) must first send
//! `LATCH_PROBATION` packets in a row, so one stray or scanning packet
//! cannot take the stream, and the SDP address still takes over whenever
//! it is heard. Once the SDP address is the peer, the socket is
//! `connect`ed to it: the kernel drops every other source before it costs
//! us anything (nobody can redirect a call's audio to themselves mid-call,
//! the "RTP bleed" of older switches), and sends skip the per-packet route
//! look-up (13% less CPU for send plus receive in a bare loop of 581
//! streams; in the queue bench the route look-up's ~2.5% of the gateway's
//! profile goes, within that bench's run-to-run noise). A source learnt on
//! probation is held in user space instead (other sources are dropped and
//! counted), so the SDP address can still be heard. Only new SDP (a
//! re-INVITE) unlocks a leg. With the lock off the socket stays unconnected
//! and follows a new source after `RELATCH_AFTER` packets in a row from it,
//! for NATs that rebind mid-call.
//!
//! Lateness is measured against the ideal schedule (start + n × 1 ms): the
//! wake-up lateness of each tick and the lateness of the last frame each tick
//! sent (the worst frame of that tick); the latter goes to
//! `conmutador_media_send_jitter_seconds`, and every frame sent more than
//! 2 ms after its ideal time counts in `conmutador_media_late_frames_total`.
//!
//! Counters are kept in plain integers on this thread and flushed to the
//! metrics registry once a second, so the per-packet path does no registry
//! look-ups. Once a second per leg (legs of a slot take turns) and when a
//! leg is freed, the clock also asks the kernel how many datagrams it
//! dropped at the leg's socket (`ops::kernel`): a full receive buffer is
//! otherwise invisible. Only this module and `engine.rs` use these types.
//!
//! SRTP legs (`srtp.rs`): a received packet is verified and decrypted
//! before anything else looks at it, latching included, so a packet
//! without the key can neither be heard, relayed, count as the peer's
//! first packet nor move the stream; one that fails is dropped and counted
//! by reason. Every packet the leg sends (prompt, music, relayed audio) is
//! protected last, after the header is written and any transcoding. Plain
//! legs have no SRTP state; the packet paths test one `Option` for them.
//!
//! Recording (`record.rs`): a leg with a tap copies each received audio
//! payload (after SRTP) into the recorder's bounded queue, never waiting;
//! this thread does no file I/O.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};

use super::dtmf::{DtmfSource, InbandDetector, Rfc4733Receiver};
use super::engine::{
    ClockStats, HIST_BUCKET, HIST_BUCKETS, LegId, MediaConfig, MediaEvent, PlayOpts, PortPool,
};
use super::g711;
use super::mix::{self, Party};
use super::prompt::{FRAME_SAMPLES, Prompt};
use super::recv::{self, RecvBatch};
use super::srtp::{LegSrtp, Reject, SRTP_DROP_REASONS};
use crate::ops::kernel::DropWatch;
use crate::ops::metrics as m;
use crate::sdp::{Codec, MediaParams, SrtpParams};

pub(crate) enum Command {
    Add {
        leg: LegId,
        socket: UdpSocket,
        port: u16,
    },
    Start {
        leg: LegId,
        params: MediaParams,
        srtp: Option<SrtpParams>,
        events: tokio::sync::mpsc::Sender<MediaEvent>,
    },
    Update {
        leg: LegId,
        params: MediaParams,
        /// `None`: SRTP as it was; `Some(None)`: plain from now on.
        srtp: Option<Option<SrtpParams>>,
    },
    Play {
        leg: LegId,
        prompts: Vec<Arc<Prompt>>,
        opts: PlayOpts,
    },
    StopPlayback {
        leg: LegId,
    },
    /// One half of a bridge: `leg` (owned by the receiving worker) relays to `partner`.
    SetPartner {
        leg: LegId,
        partner: LegId,
    },
    Unbridge {
        leg: LegId,
    },
    /// The other half of an unbridge, sent between workers.
    ClearPartner {
        leg: LegId,
        partner: LegId,
    },
    Release {
        leg: LegId,
    },
    /// Joins `leg` to a supervised bridge's mixer as `party`, or (`None`)
    /// takes it out, back to the plain relay. Supervision hook: the mixing
    /// itself is in `mix.rs`.
    SetMix {
        leg: LegId,
        mix: Option<(Arc<mix::Shared>, Party)>,
    },
    /// Copies the leg's received audio to a recording (`None` stops).
    SetTap {
        leg: LegId,
        tap: Option<Box<super::record::Tap>>,
    },
    /// Blocks the worker (tests of the overload signal).
    #[cfg(test)]
    Stall {
        pause: Duration,
    },
    Shutdown,
}

/// The worker that owns a leg (the low byte of its id).
pub(crate) fn worker_of(leg: LegId) -> usize {
    (leg.0 & 0xff) as usize
}

/// What a relay needs to know about the leg a packet came in on.
#[derive(Clone, Copy)]
struct SrcInfo {
    pt: u8,
    dtmf_pt: Option<u8>,
    codec: Codec,
}

/// A packet for a bridged partner owned by another worker. It is sent at
/// that worker's next tick (at most 1 ms later), so crossing workers costs
/// no extra wake-up.
struct Forward {
    to: LegId,
    src: SrcInfo,
    data: Vec<u8>,
}

/// Bound on packets waiting to cross between workers.
const MAX_FORWARDS: usize = 8192;

/// How the engine handle and the other workers reach one worker.
pub(crate) struct Peer {
    commands: Mutex<mpsc::Sender<Command>>,
    wake: OwnedFd,
    inbox: Mutex<Vec<Forward>>,
    /// Legs the worker owns, published for the engine's placement choice.
    pub(crate) legs: AtomicUsize,
    /// Per mille of frames that went out more than `behind_after` late (or
    /// were skipped), the least of the last [`SUSTAIN`] seconds, published
    /// once a second.
    pub(crate) behind_permille: AtomicU32,
}

impl Peer {
    pub(crate) fn new() -> io::Result<(Peer, mpsc::Receiver<Command>)> {
        let (tx, rx) = mpsc::channel();
        // SAFETY: eventfd has no preconditions; the result is checked.
        let raw = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let wake = unsafe { OwnedFd::from_raw_fd(raw) };
        let peer = Peer {
            commands: Mutex::new(tx),
            wake,
            inbox: Mutex::new(Vec::new()),
            legs: AtomicUsize::new(0),
            behind_permille: AtomicU32::new(0),
        };
        Ok((peer, rx))
    }

    /// Queues a command and nudges the worker to read it.
    pub(crate) fn send(&self, cmd: Command) {
        let sent = self
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(cmd)
            .is_ok();
        if sent {
            // SAFETY: writing 8 bytes to an eventfd we own; failure (counter
            // full) still leaves it readable, which is all we need.
            unsafe { libc::eventfd_write(self.wake.as_raw_fd(), 1) };
        }
    }
}

/// Phase slots per 20 ms frame, one served per tick. Twenty 1 ms slots keep
/// each tick's batch short (measured: the last frame of a tick of 125 legs
/// leaves well under 1 ms after the tick), at 1000 wake-ups/s per worker.
const SLOTS: u64 = 20;
const TICK_NS: u64 = 20_000_000 / SLOTS;
const TICK: Duration = Duration::from_nanos(TICK_NS);
const FRAME_TS: u32 = FRAME_SAMPLES as u32;
/// Larger datagrams are not RTP we want (G.711 at 20 ms is 172 bytes).
const MAX_PACKET: usize = 1500;
/// An unbridged leg's socket is read every this many rounds of its slot.
/// Three rounds (60 ms) queue three packets, well inside the socket's
/// receive buffer (about sixteen).
const SLOT_READ_ROUNDS: u64 = 3;
/// A leg's kernel drop count is read every this many rounds (a second).
const DROP_SAMPLE_ROUNDS: u64 = 50;
/// Fewer frames behind than this in a second do not make a worker behind:
/// one scheduling hiccup on a worker with a handful of legs can delay a few
/// percent of its frames, which says nothing about the machine's load.
/// Fifty is a second of one stream, or one frame of fifty.
const MIN_BEHIND_FRAMES: u64 = 50;
/// A worker is behind only when it was behind in each of this many
/// consecutive seconds: overload lasts, while one stall of the thread (a
/// page fault, a preemption) fills a second, or two when it straddles them.
const SUSTAIN: usize = 3;
/// A frame sent later than this after its ideal time counts as late.
const LATE: Duration = Duration::from_millis(2);
const MAX_CATCH_UP: Duration = Duration::from_millis(100);
/// Consecutive packets from a source other than the SDP address before
/// symmetric RTP takes it as the peer.
const LATCH_PROBATION: u8 = 4;
/// Consecutive packets from a new source before an unlocked leg
/// (`strict_rtp` off) follows it.
const RELATCH_AFTER: u8 = 10;
/// Relay timestamps further than this from our clock start a new mapping.
const RESYNC_SAMPLES: u32 = 8000;
const EDGE: i32 = libc::EPOLLET;
const TOKEN_TIMER: u64 = u64::MAX;
const TOKEN_WAKE: u64 = u64::MAX - 1;
const MAX_EVENTS: usize = 256;

#[derive(Clone, Copy)]
enum Drop {
    Oversize,
    Malformed,
    NotStarted,
    UnknownSource,
    SendError,
    EventsFull,
    ForwardFull,
    Unreachable,
    MixBusy,
}

pub const DROP_REASONS: [&str; 9] = [
    "oversize",
    "malformed",
    "not_started",
    "unknown_source",
    "send_error",
    "events_full",
    "forward_full",
    "unreachable",
    "mix_busy",
];

#[derive(Default)]
struct Counters {
    packets_in: u64,
    bytes_in: u64,
    packets_out: u64,
    bytes_out: u64,
    lost: u64,
    timeouts: u64,
    dtmf_rfc4733: u64,
    dtmf_inband: u64,
    late: u64,
    /// Slot frames due (sent or skipped) and those of them past `behind_after`.
    frames: u64,
    behind: u64,
    relayed: u64,
    /// Datagrams the kernel dropped at leg sockets (full receive buffers).
    kernel_drops: u64,
    dropped: [u64; DROP_REASONS.len()],
    /// SRTP packets refused, by [`Reject`] (the order of SRTP_DROP_REASONS).
    srtp_dropped: [u64; SRTP_DROP_REASONS.len()],
}

impl Counters {
    fn drop(&mut self, why: Drop) {
        self.dropped[why as usize] += 1;
    }

    fn srtp_drop(&mut self, why: Reject) {
        self.srtp_dropped[why as usize] += 1;
    }

    /// Hands the counts to the registry and `stats`; returns the per mille
    /// of frames behind since the last flush.
    fn flush(&mut self, stats: &ClockStats) -> u32 {
        let c = std::mem::take(self);
        let inc = |name: &'static str, labels: &[(&'static str, &'static str)], v: u64| {
            if v > 0 {
                let labels: Vec<metrics::Label> = labels
                    .iter()
                    .map(|&(k, val)| metrics::Label::new(k, val))
                    .collect();
                metrics::counter!(name, labels).increment(v);
            }
        };
        inc(m::RTP_PACKETS_TOTAL, &[("direction", "in")], c.packets_in);
        inc(m::RTP_PACKETS_TOTAL, &[("direction", "out")], c.packets_out);
        inc(m::RTP_BYTES_TOTAL, &[("direction", "in")], c.bytes_in);
        inc(m::RTP_BYTES_TOTAL, &[("direction", "out")], c.bytes_out);
        inc(m::RTP_PACKETS_LOST_TOTAL, &[], c.lost);
        inc(m::RTP_TIMEOUTS_TOTAL, &[], c.timeouts);
        inc(
            m::DTMF_DIGITS_TOTAL,
            &[("method", "rfc4733")],
            c.dtmf_rfc4733,
        );
        inc(m::DTMF_DIGITS_TOTAL, &[("method", "inband")], c.dtmf_inband);
        inc(m::MEDIA_LATE_FRAMES_TOTAL, &[], c.late);
        inc(m::RTP_KERNEL_DROPS_TOTAL, &[], c.kernel_drops);
        for (i, reason) in DROP_REASONS.iter().enumerate() {
            inc(m::RTP_DROPPED_TOTAL, &[("reason", reason)], c.dropped[i]);
        }
        for (i, reason) in SRTP_DROP_REASONS.iter().enumerate() {
            inc(
                m::SRTP_DROPPED_TOTAL,
                &[("reason", reason)],
                c.srtp_dropped[i],
            );
        }
        stats
            .srtp_auth_failed
            .fetch_add(c.srtp_dropped[Reject::Auth as usize], Ordering::Relaxed);
        stats
            .srtp_replayed
            .fetch_add(c.srtp_dropped[Reject::Replay as usize], Ordering::Relaxed);
        stats.packets_in.fetch_add(c.packets_in, Ordering::Relaxed);
        stats.late_frames.fetch_add(c.late, Ordering::Relaxed);
        stats.relayed.fetch_add(c.relayed, Ordering::Relaxed);
        if c.behind < MIN_BEHIND_FRAMES {
            return 0;
        }
        (c.behind * 1000)
            .checked_div(c.frames)
            .unwrap_or(0)
            .min(1000) as u32
    }
}

struct Playback {
    prompts: Vec<Arc<Prompt>>,
    index: usize,
    frame: usize,
    opts: PlayOpts,
}

/// State of a started leg.
struct Active {
    params: MediaParams,
    events: tokio::sync::mpsc::Sender<MediaEvent>,
    /// Where we send: the SDP address until the peer's first packet.
    dest: Option<SocketAddr>,
    /// The socket is connected to `dest` (a locked latch): send without
    /// an address.
    connected: bool,
    ssrc: u32,
    seq: u16,
    /// Timestamp of the next frame slot; runs with the clock whether or not
    /// anything is sent, so silences keep their length on the wire.
    next_ts: u32,
    marker: bool,
    playback: Option<Playback>,
    last_rx: Instant,
    timed_out: bool,
    rx_ssrc: Option<u32>,
    rx_expected: u16,
    rfc4733: Rfc4733Receiver,
    inband: Option<Box<InbandDetector>>,
    /// (partner's SSRC, offset) mapping relayed audio timestamps onto ours.
    relay_audio: Option<(u32, u32)>,
    /// The same for telephone-events arriving on an SSRC of their own.
    relay_event: Option<(u32, u32)>,
    /// Crypto contexts of an SRTP leg; `None` for plain RTP.
    srtp: Option<Box<LegSrtp>>,
}

/// Turns SRTP on, off or re-keys it for a started leg, keeping the
/// `conmutador_srtp_legs` gauge in step.
fn set_srtp(a: &mut Active, srtp: Option<SrtpParams>) {
    match (a.srtp.as_mut(), srtp) {
        (Some(s), Some(p)) => s.rekey(&p),
        (None, Some(p)) => {
            a.srtp = Some(Box::new(LegSrtp::new(&p)));
            metrics::gauge!(m::SRTP_LEGS).increment(1.0);
        }
        (Some(_), None) => {
            a.srtp = None;
            metrics::gauge!(m::SRTP_LEGS).decrement(1.0);
        }
        (None, None) => {}
    }
}

struct Leg {
    id: LegId,
    generation: u32,
    socket: UdpSocket,
    port: u16,
    slot: usize,
    active: Option<Active>,
    latched: Option<SocketAddr>,
    candidate: Option<(SocketAddr, u8)>,
    partner: Option<LegId>,
    /// The supervised bridge's mixer this leg feeds and may hear.
    mix: Option<Box<(Arc<mix::Shared>, Party)>>,
    drops: DropWatch,
    /// In the `sockets` epoll set (read on arrival) rather than read in
    /// its slot.
    watched: bool,
    /// A recording's copy of the received audio (`record.rs`).
    tap: Option<Box<super::record::Tap>>,
}

impl Leg {
    /// Adds what the kernel dropped at this leg's socket since last asked.
    fn sample_drops(&mut self, c: &mut Counters) {
        c.kernel_drops += self.drops.new_drops(self.socket.as_raw_fd());
    }

    /// The epoll and `again` token: slab index and generation, so a stale
    /// readiness report for a reused slot is ignored.
    fn token(&self, idx: usize) -> u64 {
        (u64::from(self.generation) << 32) | idx as u64
    }
}

/// Scratch space and settings the packet paths share.
struct Ctx {
    counters: Counters,
    out: [u8; MAX_PACKET + 64],
    pcm: [i16; MAX_PACKET],
    rtp_timeout: Duration,
    behind_after: Duration,
    strict_rtp: bool,
}

pub(crate) struct Worker {
    id: usize,
    peers: Arc<[Peer]>,
    realtime_priority: Option<u8>,
    epoll: OwnedFd,
    /// The watched (bridged) legs' sockets: polled after each wake-up,
    /// never waited on.
    sockets: OwnedFd,
    timer: OwnedFd,
    commands: mpsc::Receiver<Command>,
    pool: Arc<Mutex<PortPool>>,
    stats: Arc<ClockStats>,
    legs: Vec<Option<Leg>>,
    free: Vec<usize>,
    by_id: HashMap<LegId, usize>,
    slots: Vec<Vec<usize>>,
    next_gen: u32,
    tick: u64,
    base: Instant,
    batch: RecvBatch,
    /// Sockets whose last read filled a whole batch: read again at the next
    /// poll, since edge-triggered readiness will not report them again.
    again: Vec<u64>,
    ctx: Box<Ctx>,
    /// When counters last went to the registry (once a second, by the
    /// clock, so a worker that skips ticks still reports).
    flushed: Instant,
    /// Per mille behind in each of the last SUSTAIN seconds, oldest first.
    recent_behind: [u32; SUSTAIN],
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn epoll_add(epoll: RawFd, fd: RawFd, token: u64, flags: i32) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | flags) as u32,
        u64: token,
    };
    // SAFETY: both descriptors are open; `ev` lives for the call.
    cvt(unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(|_| ())
}

fn read_u64(fd: RawFd) {
    let mut v = 0u64;
    // SAFETY: reading 8 bytes into a u64 from a non-blocking timerfd/eventfd.
    unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
}

fn emit(events: &tokio::sync::mpsc::Sender<MediaEvent>, ev: MediaEvent, c: &mut Counters) {
    if let Err(tokio::sync::mpsc::error::TrySendError::Full(ev)) = events.try_send(ev) {
        tracing::warn!(?ev, "media event channel full, event dropped");
        c.drop(Drop::EventsFull);
    }
}

impl Worker {
    pub(crate) fn new(
        id: usize,
        config: MediaConfig,
        commands: mpsc::Receiver<Command>,
        peers: Arc<[Peer]>,
        pool: Arc<Mutex<PortPool>>,
        stats: Arc<ClockStats>,
    ) -> io::Result<Worker> {
        // SAFETY: plain syscalls; results checked and wrapped in OwnedFd at once.
        let epoll = unsafe { OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
        let sockets =
            unsafe { OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
        let timer = unsafe {
            OwnedFd::from_raw_fd(cvt(libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            ))?)
        };
        epoll_add(epoll.as_raw_fd(), timer.as_raw_fd(), TOKEN_TIMER, 0)?;
        epoll_add(epoll.as_raw_fd(), peers[id].wake.as_raw_fd(), TOKEN_WAKE, 0)?;
        Ok(Worker {
            id,
            peers,
            realtime_priority: config.realtime_priority,
            epoll,
            sockets,
            timer,
            commands,
            pool,
            stats,
            legs: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            slots: vec![Vec::new(); SLOTS as usize],
            next_gen: 0,
            tick: 0,
            base: Instant::now(),
            batch: RecvBatch::new(),
            again: Vec::new(),
            ctx: Box::new(Ctx {
                counters: Counters::default(),
                out: [0; MAX_PACKET + 64],
                pcm: [0; MAX_PACKET],
                rtp_timeout: config.rtp_timeout,
                behind_after: config.behind_after,
                strict_rtp: config.strict_rtp,
            }),
            flushed: Instant::now(),
            recent_behind: [0; SUSTAIN],
        })
    }

    /// Starts the tick schedule afresh (only while the worker has no legs,
    /// so no stream's timing is disturbed) or, with `on == false`, stops it:
    /// an idle gateway does not wake up a thousand times a second.
    fn set_timer(&mut self, on: bool) -> io::Result<()> {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid out-pointer. Instant is CLOCK_MONOTONIC on Linux, so
        // reading both back to back ties the two time bases together.
        cvt(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) })?;
        let instant = Instant::now();
        let mut first = now;
        first.tv_nsec += TICK_NS as libc::c_long;
        if first.tv_nsec >= 1_000_000_000 {
            first.tv_nsec -= 1_000_000_000;
            first.tv_sec += 1;
        }
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let spec = if on {
            libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: TICK_NS as libc::c_long,
                },
                it_value: first,
            }
        } else {
            libc::itimerspec {
                it_interval: zero,
                it_value: zero,
            }
        };
        self.base = instant + TICK;
        self.tick = 0;
        // SAFETY: valid timerfd and spec.
        cvt(unsafe {
            libc::timerfd_settime(
                self.timer.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        })
        .map(|_| ())
    }

    pub(crate) fn run(mut self) {
        if let Some(prio) = self.realtime_priority {
            let param = libc::sched_param {
                sched_priority: i32::from(prio),
            };
            // SAFETY: pid 0 is the calling thread; `param` is valid.
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
                tracing::warn!(
                    error = %io::Error::last_os_error(),
                    "media clock keeps normal priority (SCHED_FIFO refused)"
                );
            }
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
        loop {
            // SAFETY: `events` has MAX_EVENTS entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    MAX_EVENTS as libc::c_int,
                    -1,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %e, "media clock epoll failed; media engine stopped");
                break;
            }
            let ready = &events[..n as usize];
            // The clock first: sockets can wait a little, the schedule cannot.
            if ready.iter().any(|e| e.u64 == TOKEN_TIMER) {
                read_u64(self.timer.as_raw_fd());
                self.run_due_ticks();
            }
            if ready.iter().any(|e| e.u64 == TOKEN_WAKE) {
                read_u64(self.peers[self.id].wake.as_raw_fd());
                if !self.drain_commands() {
                    break;
                }
            }
            self.poll_sockets(&mut events);
        }
        let ids: Vec<LegId> = self.by_id.keys().copied().collect();
        for id in ids {
            self.release(id);
        }
        self.flush();
    }

    fn ideal(&self, tick: u64) -> Instant {
        self.base + Duration::from_nanos(tick.saturating_mul(TICK_NS))
    }

    fn run_due_ticks(&mut self) {
        let now = Instant::now();
        loop {
            let ideal = self.ideal(self.tick);
            if ideal > now {
                break;
            }
            let behind = now - ideal;
            if behind > MAX_CATCH_UP {
                let skip = behind.as_nanos() as u64 / TICK_NS;
                let legs = self.by_id.len() as u64;
                let frames = skip * legs / SLOTS;
                self.stats
                    .frames_skipped
                    .fetch_add(frames, Ordering::Relaxed);
                self.ctx.counters.frames += frames;
                self.ctx.counters.behind += frames;
                tracing::warn!(ticks = skip, "media clock fell behind; skipping ahead");
                self.tick += skip;
                continue;
            }
            self.run_tick(ideal);
            self.tick += 1;
        }
        self.deliver_forwards();
        if now.saturating_duration_since(self.flushed) >= Duration::from_secs(1) {
            self.flushed = now;
            self.flush();
        }
    }

    fn flush(&mut self) {
        let behind = self.ctx.counters.flush(&self.stats);
        self.recent_behind.rotate_left(1);
        self.recent_behind[SUSTAIN - 1] = behind;
        let sustained = self.recent_behind.iter().copied().min().unwrap_or(0);
        self.peers[self.id]
            .behind_permille
            .store(sustained, Ordering::Relaxed);
    }

    /// Sends the packets other workers relayed to our legs since the last tick.
    fn deliver_forwards(&mut self) {
        let forwards = std::mem::take(
            &mut *self.peers[self.id]
                .inbox
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for f in forwards {
            let Some(&idx) = self.by_id.get(&f.to) else {
                continue;
            };
            let (Some(leg), Ok(rtp)) = (self.legs[idx].as_mut(), RtpReader::new(&f.data)) else {
                continue;
            };
            relay_into(leg, f.src, &rtp, &mut self.ctx);
        }
    }

    fn run_tick(&mut self, ideal: Instant) {
        let start = Instant::now();
        let slot = (self.tick % SLOTS) as usize;
        let mut last_frame = None;
        let mut sent = 0u64;
        for k in 0..self.slots[slot].len() {
            let idx = self.slots[slot][k];
            let Some(leg) = self.legs[idx].as_mut() else {
                continue;
            };
            if frame_tick(leg, start, &mut self.ctx) {
                let t = Instant::now();
                let late = t.saturating_duration_since(ideal);
                let c = &mut self.ctx.counters;
                if late > LATE {
                    c.late += 1;
                }
                if late > self.ctx.behind_after {
                    c.behind += 1;
                }
                last_frame = Some(t);
                sent += 1;
            }
            // Legs of one slot take turns: each round reads a third of them
            // and samples the kernel's drops of a fiftieth.
            let turn = self.tick / SLOTS + idx as u64;
            if turn % DROP_SAMPLE_ROUNDS == 0 {
                leg.sample_drops(&mut self.ctx.counters);
            }
            if !leg.watched && turn % SLOT_READ_ROUNDS == 0 {
                let token = leg.token(idx);
                self.receive(token);
            }
        }
        let wake_late = start.saturating_duration_since(ideal);
        let frame_late = last_frame.map(|t| t.saturating_duration_since(ideal));
        {
            let mut h = self.stats.hist.lock().unwrap_or_else(|e| e.into_inner());
            let bucket = |d: Duration| {
                ((d.as_nanos() / HIST_BUCKET.as_nanos()) as usize).min(HIST_BUCKETS - 1)
            };
            h.wake[bucket(wake_late)] += 1;
            h.wake_max = h.wake_max.max(wake_late);
            if let Some(d) = frame_late {
                h.last_frame[bucket(d)] += 1;
                h.last_frame_max = h.last_frame_max.max(d);
            }
        }
        if let Some(d) = frame_late {
            metrics::histogram!(m::MEDIA_SEND_JITTER_SECONDS).record(d.as_secs_f64());
        }
        self.stats.ticks.fetch_add(1, Ordering::Relaxed);
        self.stats.frames_sent.fetch_add(sent, Ordering::Relaxed);
        self.ctx.counters.frames += sent;
    }

    /// Returns false on shutdown.
    fn drain_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Ok(cmd) => self.command(cmd),
                Err(mpsc::TryRecvError::Empty) => return true,
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Add { leg, socket, port } => self.add(leg, socket, port),
            Command::Start {
                leg,
                params,
                srtp,
                events,
            } => {
                let Some(l) = self.leg_mut(leg) else { return };
                // A restarted leg starts its crypto afresh too (new SSRC).
                if let Some(old) = l.active.as_mut() {
                    set_srtp(old, None);
                }
                let dest = sdp_dest(params.remote);
                let inband = params
                    .dtmf_pt
                    .is_none()
                    .then(|| Box::new(InbandDetector::new()));
                unlatch(l);
                l.active = Some(Active {
                    params,
                    events,
                    dest,
                    connected: false,
                    ssrc: rand::random(),
                    seq: rand::random(),
                    next_ts: rand::random(),
                    marker: true,
                    playback: None,
                    last_rx: now,
                    timed_out: false,
                    rx_ssrc: None,
                    rx_expected: 0,
                    rfc4733: Rfc4733Receiver::new(),
                    inband,
                    relay_audio: None,
                    relay_event: None,
                    srtp: None,
                });
                if let Some(a) = l.active.as_mut() {
                    set_srtp(a, srtp);
                }
            }
            Command::Update { leg, params, srtp } => {
                let Some(l) = self.leg_mut(leg) else { return };
                let Some(moved) = l.active.as_ref().map(|a| a.params.remote != params.remote)
                else {
                    return;
                };
                if moved {
                    unlatch(l);
                }
                let Some(a) = l.active.as_mut() else { return };
                if moved {
                    a.dest = sdp_dest(params.remote);
                }
                match (params.dtmf_pt.is_none(), a.inband.is_some()) {
                    (true, false) => a.inband = Some(Box::new(InbandDetector::new())),
                    (false, true) => a.inband = None,
                    _ => {}
                }
                a.params = params;
                a.last_rx = now;
                a.timed_out = false;
                a.relay_audio = None;
                a.relay_event = None;
                if let Some(srtp) = srtp {
                    set_srtp(a, srtp);
                }
            }
            Command::Play { leg, prompts, opts } => {
                let Some(a) = self.leg_mut(leg).and_then(|l| l.active.as_mut()) else {
                    return;
                };
                if prompts.is_empty() {
                    a.playback = None;
                    let ev = MediaEvent::PlaybackDone {
                        leg,
                        token: opts.token,
                    };
                    emit(&a.events.clone(), ev, &mut self.ctx.counters);
                    return;
                }
                a.playback = Some(Playback {
                    prompts,
                    index: 0,
                    frame: 0,
                    opts,
                });
                a.marker = true;
            }
            Command::StopPlayback { leg } => {
                if let Some(a) = self.leg_mut(leg).and_then(|l| l.active.as_mut()) {
                    stop_playback(a);
                }
            }
            Command::SetPartner { leg, partner } => {
                let Some(&idx) = self.by_id.get(&leg) else {
                    return;
                };
                // Leaving an old bridge tells the old partner.
                if self.legs[idx].as_ref().and_then(|l| l.partner) != Some(partner) {
                    self.unbridge(idx);
                }
                if let Some(l) = self.legs[idx].as_mut() {
                    l.partner = Some(partner);
                    if let Some(act) = l.active.as_mut() {
                        stop_playback(act);
                        act.relay_audio = None;
                        act.relay_event = None;
                    }
                }
                self.watch(idx, true);
            }
            Command::Unbridge { leg } => {
                if let Some(&i) = self.by_id.get(&leg) {
                    self.unbridge(i);
                }
            }
            Command::ClearPartner { leg, partner } => {
                let Some(&idx) = self.by_id.get(&leg) else {
                    return;
                };
                if self.legs[idx].as_ref().and_then(|l| l.partner) == Some(partner) {
                    self.leave_bridge(idx);
                }
            }
            Command::Release { leg } => self.release(leg),
            Command::SetMix { leg, mix } => {
                let Some(&idx) = self.by_id.get(&leg) else {
                    return;
                };
                let joined = mix.is_some();
                if let Some(l) = self.legs[idx].as_mut() {
                    l.mix = mix.map(Box::new);
                    if let Some(a) = l.active.as_mut() {
                        // The stream switches between relay and mix: a new
                        // talk spurt for the far end's jitter buffer.
                        a.marker = true;
                    }
                }
                // A mixed leg is read on arrival, as a bridged one, so the
                // mix waits for no slot; leaving, a bridged leg stays watched.
                let bridged = self.legs[idx].as_ref().is_some_and(|l| l.partner.is_some());
                self.watch(idx, joined || bridged);
            }
            Command::SetTap { leg, tap } => {
                if let Some(l) = self.leg_mut(leg) {
                    l.tap = tap;
                }
            }
            #[cfg(test)]
            Command::Stall { pause } => std::thread::sleep(pause),
            Command::Shutdown => {}
        }
    }

    fn leg_mut(&mut self, id: LegId) -> Option<&mut Leg> {
        let idx = *self.by_id.get(&id)?;
        self.legs[idx].as_mut()
    }

    fn add(&mut self, id: LegId, socket: UdpSocket, port: u16) {
        let idx = self.free.pop().unwrap_or_else(|| {
            self.legs.push(None);
            self.legs.len() - 1
        });
        self.next_gen = self.next_gen.wrapping_add(1);
        let generation = self.next_gen;
        let slot = (0..self.slots.len())
            .min_by_key(|&s| self.slots[s].len())
            .expect("there are twenty slots");
        self.slots[slot].push(idx);
        self.by_id.insert(id, idx);
        self.peers[self.id]
            .legs
            .store(self.by_id.len(), Ordering::Relaxed);
        if self.by_id.len() == 1
            && let Err(e) = self.set_timer(true)
        {
            tracing::error!(error = %e, "media clock timer failed; legs will not be paced");
        }
        self.legs[idx] = Some(Leg {
            id,
            generation,
            socket,
            port,
            slot,
            active: None,
            latched: None,
            candidate: None,
            drops: DropWatch::default(),
            partner: None,
            mix: None,
            watched: false,
            tap: None,
        });
    }

    /// Moves the leg at `idx` into the watched set (read on arrival) or
    /// back to being read in its slot. If the socket cannot be watched the
    /// leg stays slot-read: its packets are relayed up to 20 ms later, but
    /// none is lost.
    fn watch(&mut self, idx: usize, on: bool) {
        let Some(leg) = self.legs[idx].as_mut() else {
            return;
        };
        if leg.watched == on {
            return;
        }
        let fd = leg.socket.as_raw_fd();
        let done = if on {
            epoll_add(self.sockets.as_raw_fd(), fd, leg.token(idx), EDGE)
        } else {
            // SAFETY: `fd` is open (the leg owns it); DEL takes no event.
            cvt(unsafe {
                libc::epoll_ctl(
                    self.sockets.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    fd,
                    std::ptr::null_mut(),
                )
            })
            .map(|_| ())
        };
        match done {
            Ok(()) => {
                leg.watched = on;
                if on {
                    self.stats.watched.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.stats.watched.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(error = %e, port = leg.port, "RTP socket watch change failed"),
        }
    }

    /// This side of leaving a bridge: the leg forgets its partner, starts a
    /// fresh timestamp line and goes back to being read in its slot.
    /// Returns (the leg, its former partner).
    fn leave_bridge(&mut self, idx: usize) -> Option<(LegId, LegId)> {
        let leg = self.legs[idx].as_mut()?;
        let partner = leg.partner.take()?;
        if let Some(a) = leg.active.as_mut() {
            a.marker = true;
            a.relay_audio = None;
            a.relay_event = None;
        }
        let me = leg.id;
        self.watch(idx, false);
        Some((me, partner))
    }

    /// Ends the bridge of the leg at `idx` on both sides.
    fn unbridge(&mut self, idx: usize) {
        let Some((me, partner)) = self.leave_bridge(idx) else {
            return;
        };
        let clear = Command::ClearPartner {
            leg: partner,
            partner: me,
        };
        if worker_of(partner) == self.id {
            self.command(clear);
        } else if let Some(peer) = self.peers.get(worker_of(partner)) {
            peer.send(clear);
        }
    }

    fn release(&mut self, id: LegId) {
        let Some(&idx) = self.by_id.get(&id) else {
            return;
        };
        self.unbridge(idx);
        self.by_id.remove(&id);
        self.peers[self.id]
            .legs
            .store(self.by_id.len(), Ordering::Relaxed);
        let Some(mut leg) = self.legs[idx].take() else {
            return;
        };
        if let Some(a) = leg.active.as_mut() {
            set_srtp(a, None);
        }
        leg.sample_drops(&mut self.ctx.counters);
        let slot = &mut self.slots[leg.slot];
        if let Some(pos) = slot.iter().position(|&i| i == idx) {
            slot.swap_remove(pos);
        }
        if leg.watched {
            // Closing the socket below takes it out of the epoll set.
            self.stats.watched.fetch_sub(1, Ordering::Relaxed);
        }
        let port = leg.port;
        drop(leg);
        if self.by_id.is_empty() {
            let _ = self.set_timer(false);
            // An idle worker is not behind: its last seconds no longer
            // count, and with them gone the flush publishes zero.
            self.recent_behind = [0; SUSTAIN];
            self.flush();
        }
        self.free.push(idx);
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(port);
    }

    /// Reads every watched socket with packets waiting, and the slot-read
    /// ones whose last read filled a batch. Readiness is edge-triggered
    /// (a level-triggered set would poll each socket twice per packet); a
    /// socket with more than one batch queued is read again at the next
    /// poll, so one flooding peer cannot starve the clock.
    fn poll_sockets(&mut self, events: &mut [libc::epoll_event]) {
        if self.by_id.is_empty() {
            return;
        }
        for token in std::mem::take(&mut self.again) {
            self.receive(token);
        }
        loop {
            // SAFETY: `events` is a valid buffer of its length; timeout 0.
            let n = unsafe {
                libc::epoll_wait(
                    self.sockets.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as libc::c_int,
                    0,
                )
            };
            if n <= 0 {
                return;
            }
            for e in &events[..n as usize] {
                self.receive(e.u64);
            }
            if (n as usize) < events.len() {
                return;
            }
        }
    }

    fn receive(&mut self, token: u64) {
        let idx = (token & 0xffff_ffff) as usize;
        let generation = (token >> 32) as u32;
        let now = Instant::now();
        let Some(leg) = self.legs.get(idx).and_then(Option::as_ref) else {
            return;
        };
        if leg.generation != generation {
            return;
        }
        let got = match self.batch.recv(leg.socket.as_raw_fd()) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "RTP receive error");
                self.again.push(token);
                return;
            }
        };
        if got == recv::BATCH {
            self.again.push(token);
        }
        for i in 0..got {
            let (data, src) = self.batch.get(i);
            let n = data.len();
            let c = &mut self.ctx.counters;
            c.packets_in += 1;
            c.bytes_in += n as u64;
            if n > MAX_PACKET {
                c.drop(Drop::Oversize);
                continue;
            }
            let Some(src) = src else { continue };
            // SRTP: only what verifies goes on, as plain RTP.
            let plain;
            let data = match self.legs[idx]
                .as_mut()
                .and_then(|l| l.active.as_mut())
                .and_then(|a| a.srtp.as_mut())
            {
                None => data,
                Some(s) => match s.unprotect(data) {
                    Ok(p) => {
                        plain = p;
                        &plain[..]
                    }
                    Err(why) => {
                        self.ctx.counters.srtp_drop(why);
                        continue;
                    }
                },
            };
            let Some((partner, src_info)) =
                handle_packet(&mut self.legs, idx, data, src, now, &mut self.ctx)
            else {
                continue;
            };
            let w = worker_of(partner);
            if w == self.id {
                let Some(&pidx) = self.by_id.get(&partner) else {
                    continue;
                };
                if let (Some(pleg), Ok(rtp)) = (self.legs[pidx].as_mut(), RtpReader::new(data)) {
                    relay_into(pleg, src_info, &rtp, &mut self.ctx);
                }
            } else if let Some(peer) = self.peers.get(w) {
                let mut inbox = peer.inbox.lock().unwrap_or_else(|e| e.into_inner());
                if inbox.len() < MAX_FORWARDS {
                    inbox.push(Forward {
                        to: partner,
                        src: src_info,
                        data: data.to_vec(),
                    });
                } else {
                    self.ctx.counters.drop(Drop::ForwardFull);
                }
            }
        }
    }
}

fn stop_playback(a: &mut Active) {
    if a.playback.take().is_some() {
        a.marker = true;
        a.relay_audio = None;
        a.relay_event = None;
    }
}

/// Where to send before the peer is heard: the SDP address, unless it is
/// the unspecified address of a held or late-offer leg.
fn sdp_dest(remote: SocketAddr) -> Option<SocketAddr> {
    (!remote.ip().is_unspecified()).then_some(remote)
}

/// Connects the leg's socket to its learnt peer. False (and a debug line)
/// if the kernel refused; the latch still filters in user space then.
fn lock(socket: &UdpSocket, peer: SocketAddr) -> bool {
    match socket.connect(peer) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, %peer, "could not lock the RTP socket to its peer");
            false
        }
    }
}

/// Forgets the learnt peer and dissolves the socket's connection, so any
/// source may be heard again (a new call on the leg, or new SDP).
fn unlatch(leg: &mut Leg) {
    leg.candidate = None;
    // Harmless on a socket that was never connected (strict_rtp off).
    if leg.latched.take().is_some() {
        let any = libc::sockaddr {
            sa_family: libc::AF_UNSPEC as libc::sa_family_t,
            sa_data: [0; 14],
        };
        // SAFETY: a plain sockaddr of the size given; connecting to
        // AF_UNSPEC is how POSIX dissolves a datagram socket's peer.
        let r = unsafe {
            libc::connect(
                leg.socket.as_raw_fd(),
                &any,
                std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
            )
        };
        if let Err(e) = cvt(r) {
            tracing::debug!(error = %e, leg = leg.id.0, "could not unlock the RTP socket");
        }
    }
    if let Some(a) = leg.active.as_mut() {
        a.connected = false;
    }
}

/// The per-packet header fields that are not the leg's own (SSRC, sequence).
struct Hdr {
    pt: u8,
    ts: u32,
    marker: bool,
}

/// Sends `payload` from this leg with its SSRC and next sequence number.
/// Returns whether a packet went out.
fn send_rtp(
    socket: &UdpSocket,
    a: &mut Active,
    Hdr { pt, ts, marker }: Hdr,
    payload: &[u8],
    transcode: Option<(Codec, Codec)>,
    ctx: &mut Ctx,
) -> bool {
    let Some(dest) = a.dest else { return false };
    let built = RtpPacketBuilder::new()
        .payload_type(pt)
        .ssrc(a.ssrc)
        .sequence(Seq::from(a.seq))
        .timestamp(ts)
        .marked(marker)
        .payload(payload)
        .build_into(&mut ctx.out);
    let Ok(len) = built else {
        ctx.counters.drop(Drop::Oversize);
        return false;
    };
    if let Some((from, to)) = transcode {
        let body = &mut ctx.out[len - payload.len()..len];
        match (from, to) {
            (Codec::Pcmu, Codec::Pcma) => g711::ulaw_to_alaw_in_place(body),
            (Codec::Pcma, Codec::Pcmu) => g711::alaw_to_ulaw_in_place(body),
            _ => {}
        }
    }
    a.seq = a.seq.wrapping_add(1);
    let protected;
    let wire = match a.srtp.as_mut() {
        None => &ctx.out[..len],
        Some(s) => match s.protect(&ctx.out[..len]) {
            Some(p) => {
                protected = p;
                &protected[..]
            }
            None => {
                ctx.counters.drop(Drop::SendError);
                return false;
            }
        },
    };
    let sent = if a.connected {
        socket.send(wire)
    } else {
        socket.send_to(wire, dest)
    };
    match sent {
        Ok(_) => {
            ctx.counters.packets_out += 1;
            ctx.counters.bytes_out += wire.len() as u64;
            true
        }
        // The peer's port sent back "unreachable" (a locked socket hears
        // of it): it has gone, typically its call ended a moment ago.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            ctx.counters.drop(Drop::Unreachable);
            false
        }
        Err(e) => {
            tracing::trace!(error = %e, %dest, "RTP send failed");
            ctx.counters.drop(Drop::SendError);
            false
        }
    }
}

/// One 20 ms step of a leg: timestamps advance, RTP timeout is checked and
/// the due prompt frame is sent. Returns whether a frame went out.
fn frame_tick(leg: &mut Leg, now: Instant, ctx: &mut Ctx) -> bool {
    let Some(a) = leg.active.as_mut() else {
        return false;
    };
    let ts = a.next_ts;
    a.next_ts = ts.wrapping_add(FRAME_TS);
    if a.params.direction.receives()
        && !a.timed_out
        && now.saturating_duration_since(a.last_rx) >= ctx.rtp_timeout
    {
        a.timed_out = true;
        ctx.counters.timeouts += 1;
        let ev = MediaEvent::RtpTimeout { leg: leg.id };
        emit(&a.events, ev, &mut ctx.counters);
    }
    let Some(pb) = a.playback.as_mut() else {
        return match leg.mix.as_deref() {
            Some((mx, party)) => mix_tick(&leg.socket, a, mx, *party, ts, now, ctx),
            None => false,
        };
    };
    let prompt = pb.prompts[pb.index].clone();
    let mut sent = false;
    if let Some(frame) = prompt.frame(a.params.codec, pb.frame) {
        pb.frame += 1;
        if a.params.direction.sends() {
            let marker = std::mem::take(&mut a.marker);
            let pt = a.params.pt;
            sent = send_rtp(&leg.socket, a, Hdr { pt, ts, marker }, frame, None, ctx);
        }
    } else {
        pb.frame = usize::MAX;
    }
    let Some(pb) = a.playback.as_mut() else {
        return sent;
    };
    if pb.frame >= prompt.frames() {
        pb.frame = 0;
        pb.index += 1;
        a.marker = true;
        if pb.index >= pb.prompts.len() {
            if pb.opts.looped {
                pb.index = 0;
            } else {
                let token = pb.opts.token;
                a.playback = None;
                a.relay_audio = None;
                a.relay_event = None;
                let ev = MediaEvent::PlaybackDone { leg: leg.id, token };
                emit(&a.events, ev, &mut ctx.counters);
            }
        }
    }
    sent
}

/// Digits, latching and loss accounting for one received packet. Returns
/// the bridged partner to relay it to, if any.
fn handle_packet(
    legs: &mut [Option<Leg>],
    idx: usize,
    data: &[u8],
    src: SocketAddr,
    now: Instant,
    ctx: &mut Ctx,
) -> Option<(LegId, SrcInfo)> {
    let Ok(rtp) = RtpReader::new(data) else {
        ctx.counters.drop(Drop::Malformed);
        return None;
    };
    let leg = legs[idx].as_mut()?;
    let Some(a) = leg.active.as_mut() else {
        ctx.counters.drop(Drop::NotStarted);
        return None;
    };
    if leg.latched == Some(src) {
        leg.candidate = None;
    } else {
        // The SDP address is the peer the moment it is heard, even over a
        // source learnt on probation before it spoke. Once locked, other
        // sources reach here only if they were queued before the socket
        // was connected, or if the peer was learnt on probation (held here,
        // not in the kernel).
        let needed = match leg.latched {
            _ if src == a.params.remote => Some(1),
            None => Some(LATCH_PROBATION),
            Some(_) if ctx.strict_rtp => None,
            Some(_) => Some(RELATCH_AFTER),
        };
        let count = match leg.candidate {
            Some((c, n)) if c == src => n.saturating_add(1),
            _ => 1,
        };
        if needed.is_none_or(|n| count < n) {
            leg.candidate = Some((src, count));
            ctx.counters.drop(Drop::UnknownSource);
            return None;
        }
        let first = leg.latched.is_none();
        leg.latched = Some(src);
        leg.candidate = None;
        a.dest = Some(src);
        // Locked in the kernel only to the SDP address: a source learnt on
        // probation stays filtered here, where the SDP address can still
        // be heard and take over.
        a.connected = ctx.strict_rtp && src == a.params.remote && lock(&leg.socket, src);
        if first {
            let ev = MediaEvent::FirstPacket {
                leg: leg.id,
                from: src,
            };
            emit(&a.events, ev, &mut ctx.counters);
        } else {
            tracing::debug!(leg = leg.id.0, %src, "RTP source moved; following it");
        }
    }
    a.last_rx = now;
    a.timed_out = false;

    let pt = rtp.payload_type();
    let payload = rtp.payload();
    let mut digits: [Option<(char, DtmfSource)>; 2] = [None; 2];
    if Some(pt) == a.params.dtmf_pt {
        if let Some(d) = a.rfc4733.push(rtp.timestamp(), payload) {
            digits[0] = Some((d, DtmfSource::Rfc4733));
        }
    } else if pt == a.params.pt {
        if let Some(tap) = &leg.tap {
            tap.push(now, a.params.codec, payload);
        }
        let seq = u16::from(rtp.sequence_number());
        match a.rx_ssrc {
            Some(s) if s == rtp.ssrc() => {
                let gap = seq.wrapping_sub(a.rx_expected);
                // Ahead by less than 1000: the packets in between are lost.
                // Anything else is reordering, duplication or a restart.
                if gap < 1000 {
                    ctx.counters.lost += u64::from(gap);
                    a.rx_expected = seq.wrapping_add(1);
                } else if gap < 0x8000 {
                    a.rx_expected = seq.wrapping_add(1);
                }
            }
            _ => {
                a.rx_ssrc = Some(rtp.ssrc());
                a.rx_expected = seq.wrapping_add(1);
            }
        }
        if let Some((mx, party)) = leg.mix.as_deref() {
            let n = decode_into(a.params.codec, payload, &mut ctx.pcm);
            if !mx.try_push(*party, &ctx.pcm[..n], now) {
                ctx.counters.drop(Drop::MixBusy);
            }
        }
        // Bridged audio reaches the other party as it is, tones included,
        // and nobody acts on digits during a bridge: no detector then.
        if let Some(det) = a.inband.as_mut().filter(|_| leg.partner.is_none()) {
            let n = payload.len().min(ctx.pcm.len());
            let decode = match a.params.codec {
                Codec::Pcmu => g711::ulaw_decode,
                Codec::Pcma => g711::alaw_decode,
            };
            for (o, &b) in ctx.pcm[..n].iter_mut().zip(payload) {
                *o = decode(b);
            }
            let mut k = 0;
            det.push(&ctx.pcm[..n], |d| {
                if k < digits.len() {
                    digits[k] = Some((d, DtmfSource::Inband));
                    k += 1;
                }
            });
        }
    }
    for (digit, source) in digits.into_iter().flatten() {
        match source {
            DtmfSource::Rfc4733 => ctx.counters.dtmf_rfc4733 += 1,
            DtmfSource::Inband => ctx.counters.dtmf_inband += 1,
        }
        if a.playback.as_ref().is_some_and(|p| p.opts.barge_in) {
            stop_playback(a);
        }
        let ev = MediaEvent::Digit {
            leg: leg.id,
            digit,
            source,
        };
        emit(&a.events, ev, &mut ctx.counters);
    }
    // On a recorded call the operator's digits may be the pause code:
    // they reach the call (above), not the caller.
    if Some(pt) == a.params.dtmf_pt && leg.tap.as_ref().is_some_and(|t| t.hides_events()) {
        return None;
    }
    let src = SrcInfo {
        pt: a.params.pt,
        dtmf_pt: a.params.dtmf_pt,
        codec: a.params.codec,
    };
    leg.partner.map(|p| (p, src))
}

/// Decodes G.711 `payload` into `pcm`; returns the samples written.
fn decode_into(codec: Codec, payload: &[u8], pcm: &mut [i16]) -> usize {
    let decode = match codec {
        Codec::Pcmu => g711::ulaw_decode,
        Codec::Pcma => g711::alaw_decode,
    };
    let n = payload.len().min(pcm.len());
    for (o, &b) in pcm[..n].iter_mut().zip(payload) {
        *o = decode(b);
    }
    n
}

/// A mixed leg's frame tick: sends the mix waiting for it, if any, as the
/// frame of timestamp `ts` of its own stream.
fn mix_tick(
    socket: &UdpSocket,
    a: &mut Active,
    mx: &mix::Shared,
    party: Party,
    ts: u32,
    now: Instant,
    ctx: &mut Ctx,
) -> bool {
    if !a.params.direction.sends() || !mx.mixes_for(party) {
        return false;
    }
    let mut pcm = [0i16; FRAME_SAMPLES];
    if !mx.try_take(party, now, &mut pcm) {
        return false;
    }
    let encode = match a.params.codec {
        Codec::Pcmu => g711::ulaw_encode,
        Codec::Pcma => g711::alaw_encode,
    };
    let mut payload = [0u8; FRAME_SAMPLES];
    for (o, &x) in payload.iter_mut().zip(&pcm) {
        *o = encode(x);
    }
    let marker = std::mem::take(&mut a.marker);
    let pt = a.params.pt;
    // Relayed packets after the mix map their timestamps afresh.
    a.relay_audio = None;
    send_rtp(socket, a, Hdr { pt, ts, marker }, &payload, None, ctx)
}

/// Sends one packet received on the partner (described by `sa`) out of
/// `dst_leg`, as part of its own stream (its SSRC, sequence and timestamp line).
fn relay_into(dst_leg: &mut Leg, sa: SrcInfo, rtp: &RtpReader<'_>, ctx: &mut Ctx) {
    if let Some((mx, party)) = dst_leg.mix.as_deref()
        && mx.mixes_for(*party)
    {
        // This leg hears a mix, sent on its frame tick instead.
        return;
    }
    let Some(da) = dst_leg.active.as_mut() else {
        return;
    };
    if da.playback.is_some() || !da.params.direction.sends() || da.dest.is_none() {
        return;
    }
    let pt = rtp.payload_type();
    let (in_ts, in_ssrc) = (rtp.timestamp(), rtp.ssrc());
    let mut marker = rtp.mark();
    let (out_pt, transcode, offset) = if pt == sa.pt {
        let offset = match da.relay_audio {
            Some((s, off))
                if s == in_ssrc
                    && in_ts
                        .wrapping_add(off)
                        .wrapping_sub(da.next_ts)
                        .wrapping_add(RESYNC_SAMPLES)
                        < 2 * RESYNC_SAMPLES =>
            {
                off
            }
            _ => {
                let off = da.next_ts.wrapping_sub(in_ts);
                da.relay_audio = Some((in_ssrc, off));
                marker = true;
                off
            }
        };
        let transcode = (sa.codec != da.params.codec).then_some((sa.codec, da.params.codec));
        (da.params.pt, transcode, offset)
    } else if Some(pt) == sa.dtmf_pt {
        let Some(out_pt) = da.params.dtmf_pt else {
            return;
        };
        let offset = match (da.relay_audio, da.relay_event) {
            (Some((s, off)), _) | (_, Some((s, off))) if s == in_ssrc => off,
            _ => {
                let off = da.next_ts.wrapping_sub(in_ts);
                da.relay_event = Some((in_ssrc, off));
                off
            }
        };
        (out_pt, None, offset)
    } else {
        return;
    };
    let ts = in_ts.wrapping_add(offset);
    let hdr = Hdr {
        pt: out_pt,
        ts,
        marker,
    };
    if send_rtp(&dst_leg.socket, da, hdr, rtp.payload(), transcode, ctx) {
        ctx.counters.relayed += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_leg_state_is_small() {
        // The slab entry (with the started state inline) plus the boxed
        // in-band detector a leg without telephone-event carries.
        let slab = std::mem::size_of::<Option<Leg>>();
        let detector = std::mem::size_of::<InbandDetector>();
        assert!(
            slab + detector < 1024,
            "slab {slab} B + detector {detector} B"
        );
    }

    #[test]
    fn leg_ids_name_their_worker() {
        assert_eq!(worker_of(LegId((7 << 8) | 1)), 1);
        assert_eq!(worker_of(LegId(1 << 8)), 0);
    }
}
