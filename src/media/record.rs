//! Call recording: two-channel WAV files (caller left, operator right,
//! 8 kHz 16-bit PCM) written by one recorder thread, fed by *taps* on the
//! media clock's receive path.
//!
//! The media clock never touches a file: a leg with a [`Tap`] copies each
//! received audio payload (already SRTP-verified, still G.711) with its
//! arrival instant into a bounded channel, and a frame that does not fit is
//! dropped and counted (`conmutador_recording_frames_dropped_total`), so a
//! slow disk costs the recording some audio and never the call its clock.
//!
//! The recorder thread places each frame on its side's time line by arrival
//! time ([`Aligner`]): a gap in one side's RTP (loss, silence suppression, a
//! phone on hold) becomes silence of the same length rather than pulling
//! that side earlier, so both channels stay in step; jitter below
//! [`JITTER_SAMPLES`] is absorbed by writing packets back to back. Audio is
//! written [`LAG`] behind real time so late packets still find their place.
//!
//! Pause (the operator's feature code) drops both sides' frames until
//! resume: the file holds silence for the paused stretch and nobody on the
//! call hears anything (the call room also keeps the operator's digits from
//! reaching the caller).
//!
//! The same thread deletes recordings older than the retention (at start
//! and every `SWEEP_EVERY`), keeps the bytes-on-disk gauge, and checks the
//! free space every `DISK_CHECK_EVERY`: under the minimum, open recordings
//! are closed and new ones refused (`conmutador_recordings_failed_total`
//! with reason `disk_full`), and calls go on unrecorded. A write error does
//! the same for its own file (`write_error`).
//!
//! The WAV writer is hand-rolled (a 44-byte header and little-endian
//! samples): the only thing a crate would add is a dependency, and the
//! header is rewritten after every flush so a crash leaves a playable file.
//!
//! Beside each `NAME.wav` lies `NAME.json` (call id, queue, start time), what
//! the admin API lists (the newest [`MAX_LIST`]). A new bridge of a call
//! already recorded (a transfer) feeds the open file; a recording that gets
//! no audio for `IDLE_CLOSE` is closed, so a lost stop cannot hold it
//! open. This room never decides *whether* a call is recorded: the call
//! room asks, names the file and says when to stop.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::g711;
use crate::ops::metrics as m;
use crate::sdp::Codec;

/// The reasons of `conmutador_recordings_failed_total`.
pub const RECORDING_FAIL_REASONS: [&str; 3] = ["disk_full", "write_error", "busy"];

/// Samples per second of every recording.
pub const RATE: u32 = 8000;
/// Frames waiting for the recorder at most (about 40 s of one call's audio,
/// or 0.4 s of 100 recorded calls); beyond it frames are dropped.
const QUEUE_FRAMES: usize = 4096;
/// Largest payload kept per frame: 60 ms of G.711.
const MAX_PAYLOAD: usize = 480;
/// Recordings the admin API lists at most (the newest).
pub const MAX_LIST: usize = 10_000;
/// Recordings open at once at most; more are refused (`busy`).
const MAX_OPEN: usize = 2000;
/// A packet starting within this many samples (60 ms) of where its side's
/// audio ends is written right after it: that is jitter, not a gap.
pub const JITTER_SAMPLES: u64 = 480;
/// A side whose audio runs this far (200 ms) ahead of arrival times (a
/// phone clock faster than ours) drops packets until it is back in step.
const MAX_AHEAD: u64 = 1600;
/// Samples buffered per side at most (5 s).
const MAX_BUFFER: usize = 5 * RATE as usize;
/// Audio is written this long behind real time.
pub const LAG: Duration = Duration::from_millis(300);
const FLUSH_EVERY: Duration = Duration::from_millis(100);
const DISK_CHECK_EVERY: Duration = Duration::from_secs(2);
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// A recording that got no audio for this long is closed: its call's end
/// was never reported (the RTP timeout ends a live call sooner).
const IDLE_CLOSE: Duration = Duration::from_secs(120);

/// Which channel a leg's audio goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Left.
    Caller = 0,
    /// Right.
    Operator = 1,
}

/// One received audio payload on its way to the recorder.
pub(crate) struct Frame {
    rec: u64,
    side: Side,
    at: Instant,
    codec: Codec,
    len: u16,
    data: [u8; MAX_PAYLOAD],
}

/// What a leg's receive path holds to feed one recording.
pub struct Tap {
    rec: u64,
    side: Side,
    tx: SyncSender<Frame>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("rec", &self.rec)
            .field("side", &self.side)
            .finish()
    }
}

impl Tap {
    /// Hands one received audio payload to the recorder; never blocks.
    pub(crate) fn push(&self, at: Instant, codec: Codec, payload: &[u8]) {
        let len = payload.len().min(MAX_PAYLOAD);
        let mut data = [0u8; MAX_PAYLOAD];
        data[..len].copy_from_slice(&payload[..len]);
        let frame = Frame {
            rec: self.rec,
            side: self.side,
            at,
            codec,
            len: len as u16,
            data,
        };
        if self.tx.try_send(frame).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The operator's telephone-events are kept from the caller on a
    /// recorded call: they may be the pause code.
    pub(crate) fn hides_events(&self) -> bool {
        self.side == Side::Operator
    }
}

// ---------------------------------------------------------------- alignment

/// Places both sides' audio on one time line by arrival time and hands out
/// interleaved stereo samples (left = caller). Pure: tests pass instants.
#[derive(Debug)]
pub struct Aligner {
    start: Instant,
    /// Samples per side already handed out.
    flushed: u64,
    sides: [VecDeque<i16>; 2],
}

impl Aligner {
    pub fn new(start: Instant) -> Aligner {
        Aligner {
            start,
            flushed: 0,
            sides: [VecDeque::new(), VecDeque::new()],
        }
    }

    fn pos(&self, at: Instant) -> u64 {
        let us = at.saturating_duration_since(self.start).as_micros() as u64;
        us * u64::from(RATE) / 1_000_000
    }

    /// `pcm` arrived at `at` (its last sample is about then).
    pub fn push(&mut self, side: Side, at: Instant, pcm: &[i16]) {
        let begin = self.pos(at).saturating_sub(pcm.len() as u64);
        let flushed = self.flushed;
        let buf = &mut self.sides[side as usize];
        let end = flushed + buf.len() as u64;
        if begin > end + JITTER_SAMPLES {
            // A real gap: silence of its length keeps this side in step.
            let gap = (begin - end).min(MAX_BUFFER as u64) as usize;
            if buf.len() + gap > MAX_BUFFER {
                return;
            }
            buf.extend(std::iter::repeat_n(0, gap));
        } else if end > begin + MAX_AHEAD {
            return;
        }
        if buf.len() + pcm.len() > MAX_BUFFER {
            return;
        }
        buf.extend(pcm.iter().copied());
    }

    /// Interleaved samples up to `upto` (silence where a side has none).
    pub fn drain(&mut self, upto: Instant, out: &mut Vec<i16>) {
        let p = self.pos(upto);
        self.drain_to(p, out);
    }

    /// Everything buffered, the shorter side padded with silence.
    pub fn drain_all(&mut self, out: &mut Vec<i16>) {
        let longest = self.sides.iter().map(VecDeque::len).max().unwrap_or(0);
        self.drain_to(self.flushed + longest as u64, out);
    }

    fn drain_to(&mut self, upto: u64, out: &mut Vec<i16>) {
        if upto <= self.flushed {
            return;
        }
        let n = (upto - self.flushed) as usize;
        let [l, r] = &mut self.sides;
        out.reserve(2 * n);
        for _ in 0..n {
            out.push(l.pop_front().unwrap_or(0));
            out.push(r.pop_front().unwrap_or(0));
        }
        self.flushed = upto;
    }
}

// ---------------------------------------------------------------- WAV

/// The 44-byte header of a stereo 8 kHz 16-bit PCM WAV with `data` bytes.
pub fn wav_header(data: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    let channels: u16 = 2;
    let block = channels * 2;
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(RATE * u32::from(block)).to_le_bytes());
    h[32..34].copy_from_slice(&block.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

/// A two-channel WAV file being written.
pub struct WavWriter {
    file: File,
    data: u64,
}

impl WavWriter {
    pub fn create(path: &Path) -> io::Result<WavWriter> {
        let mut file = File::create(path)?;
        file.write_all(&wav_header(0))?;
        Ok(WavWriter { file, data: 0 })
    }

    /// Appends interleaved samples and makes the header tell the new length.
    pub fn write(&mut self, interleaved: &[i16]) -> io::Result<()> {
        if interleaved.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(interleaved.len() * 2);
        for s in interleaved {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        self.file.write_all(&bytes)?;
        self.data += bytes.len() as u64;
        let data = u32::try_from(self.data).unwrap_or(u32::MAX);
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&wav_header(data))?;
        self.file.seek(SeekFrom::End(0))?;
        Ok(())
    }

    /// Bytes of the file (header included).
    pub fn len(&self) -> u64 {
        44 + self.data
    }

    pub fn is_empty(&self) -> bool {
        self.data == 0
    }
}

// ---------------------------------------------------------------- recorder

/// The `[recording]` settings the recorder needs.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub dir: PathBuf,
    /// Files older than this are deleted.
    pub retention: Duration,
    /// Below this many free bytes nothing is recorded.
    pub min_free_bytes: u64,
}

/// What the sidecar `NAME.json` says of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingMeta {
    pub call_id: String,
    pub queue: Option<String>,
    #[serde(with = "crate::ops::time::rfc3339")]
    pub started_at: DateTime<Utc>,
}

/// One recording on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingInfo {
    /// The file name (`NAME.wav`).
    pub name: String,
    pub bytes: u64,
    /// From the sidecar; `None` when it is missing or unreadable.
    pub meta: Option<RecordingMeta>,
}

enum Control {
    Open {
        rec: u64,
        name: String,
        meta: RecordingMeta,
        start: Instant,
    },
    Pause(String),
    Resume(String),
    Close(String),
}

/// The handle the call room uses; the thread behind it writes the files.
pub struct Recorder {
    dir: PathBuf,
    control: Mutex<Sender<Control>>,
    data: SyncSender<Frame>,
    next: AtomicU64,
    disk_ok: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("dir", &self.dir).finish()
    }
}

/// The file name of a call's recording: the Call-ID with anything but
/// letters, digits, `.`, `_` and `-` turned into `_` (capped), and `.wav`.
pub fn file_name(call_id: &str) -> String {
    let mut s: String = call_id
        .chars()
        .take(120)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    s.push_str(".wav");
    s
}

/// Whether `name` is a recording's file name as [`file_name`] makes them
/// (so it can never leave the recording directory).
pub fn valid_name(name: &str) -> bool {
    name.len() <= 130
        && name.ends_with(".wav")
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a plain struct
    // statvfs fills in; the result is checked before `st` is read.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

fn fail(reason: &'static str) {
    metrics::counter!(m::RECORDINGS_FAILED_TOTAL, "reason" => reason).increment(1);
}

impl Recorder {
    /// Creates the directory and starts the recorder thread.
    pub fn start(cfg: RecorderConfig) -> io::Result<Arc<Recorder>> {
        std::fs::create_dir_all(&cfg.dir)?;
        let (ctl_tx, ctl_rx) = mpsc::channel();
        let (data_tx, data_rx) = mpsc::sync_channel(QUEUE_FRAMES);
        let disk_ok = Arc::new(AtomicBool::new(
            free_bytes(&cfg.dir).is_some_and(|f| f >= cfg.min_free_bytes),
        ));
        let dropped = Arc::new(AtomicU64::new(0));
        let rec = Arc::new(Recorder {
            dir: cfg.dir.clone(),
            control: Mutex::new(ctl_tx),
            data: data_tx,
            next: AtomicU64::new(1),
            disk_ok: disk_ok.clone(),
            dropped: dropped.clone(),
        });
        let mut thread = Thread {
            cfg,
            ctl: ctl_rx,
            data: data_rx,
            disk_ok,
            dropped,
            open: HashMap::new(),
            by_id: HashMap::new(),
            bytes: 0,
            scratch: Vec::new(),
            pcm: Vec::new(),
        };
        std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || thread.run())?;
        Ok(rec)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether there is room to record (checked every 2 s by the thread).
    pub fn disk_ok(&self) -> bool {
        self.disk_ok.load(Ordering::Relaxed)
    }

    /// Whether a new recording may start (counted as `disk_full` if not).
    pub fn admit(&self) -> bool {
        let ok = self.disk_ok();
        if !ok {
            fail("disk_full");
        }
        ok
    }

    /// Opens recording `name` (see [`file_name`]); the two taps go on the
    /// caller's and the operator's legs. `None` (counted) when the disk is
    /// full.
    pub fn begin(&self, name: &str, meta: RecordingMeta) -> Option<(Tap, Tap)> {
        if !self.disk_ok() {
            fail("disk_full");
            return None;
        }
        let rec = self.next.fetch_add(1, Ordering::Relaxed);
        self.send(Control::Open {
            rec,
            name: name.to_owned(),
            meta,
            start: Instant::now(),
        });
        let tap = |side| Tap {
            rec,
            side,
            tx: self.data.clone(),
            dropped: self.dropped.clone(),
        };
        Some((tap(Side::Caller), tap(Side::Operator)))
    }

    pub fn pause(&self, name: &str) {
        self.send(Control::Pause(name.to_owned()));
    }

    pub fn resume(&self, name: &str) {
        self.send(Control::Resume(name.to_owned()));
    }

    /// The call is over: write what is left and close the file.
    pub fn close(&self, name: &str) {
        self.send(Control::Close(name.to_owned()));
    }

    fn send(&self, c: Control) {
        let _ = self
            .control
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(c);
    }

    /// The path of recording `name`, if the name is valid and the file exists.
    pub fn path_of(&self, name: &str) -> Option<PathBuf> {
        if !valid_name(name) {
            return None;
        }
        let p = self.dir.join(name);
        p.is_file().then_some(p)
    }

    /// The newest [`MAX_LIST`] recordings on disk, oldest first (reads the
    /// directory: call it off the async runtime).
    pub fn list(&self) -> io::Result<Vec<RecordingInfo>> {
        let mut files = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !valid_name(&name) {
                continue;
            }
            let md = e.metadata().ok();
            let bytes = md.as_ref().map_or(0, |m| m.len());
            let modified = md.and_then(|m| m.modified().ok());
            files.push((modified, name, bytes));
        }
        files.sort();
        let skip = files.len().saturating_sub(MAX_LIST);
        Ok(files
            .into_iter()
            .skip(skip)
            .map(|(_, name, bytes)| {
                let side = self
                    .dir
                    .join(name.trim_end_matches(".wav").to_owned() + ".json");
                let meta = std::fs::read(&side)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                RecordingInfo { name, bytes, meta }
            })
            .collect())
    }
}

struct Rec {
    wav: WavWriter,
    aligner: Aligner,
    paused: bool,
    last_frame: Instant,
}

struct Thread {
    cfg: RecorderConfig,
    ctl: Receiver<Control>,
    data: Receiver<Frame>,
    disk_ok: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    open: HashMap<String, Rec>,
    by_id: HashMap<u64, String>,
    /// Bytes of recordings on disk (last sweep plus what was written since).
    bytes: u64,
    scratch: Vec<i16>,
    pcm: Vec<i16>,
}

impl Thread {
    fn run(&mut self) {
        self.sweep();
        let mut flushed = Instant::now();
        let mut checked = Instant::now();
        let mut swept = Instant::now();
        loop {
            if !self.drain_control() {
                break;
            }
            match self.data.recv_timeout(FLUSH_EVERY / 2) {
                Ok(f) => {
                    self.frame(f);
                    for _ in 0..512 {
                        match self.data.try_recv() {
                            Ok(f) => self.frame(f),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            if now.duration_since(flushed) >= FLUSH_EVERY {
                flushed = now;
                self.flush(now.checked_sub(LAG).unwrap_or(now));
                let d = self.dropped.swap(0, Ordering::Relaxed);
                if d > 0 {
                    metrics::counter!(m::RECORDING_FRAMES_DROPPED_TOTAL).increment(d);
                }
                metrics::gauge!(m::RECORDING_BYTES).set(self.bytes as f64);
            }
            if now.duration_since(checked) >= DISK_CHECK_EVERY {
                checked = now;
                self.check_disk();
            }
            if now.duration_since(swept) >= SWEEP_EVERY {
                swept = now;
                self.sweep();
            }
        }
        let names: Vec<String> = self.open.keys().cloned().collect();
        for n in names {
            self.close(&n, None);
        }
    }

    /// Handles queued control messages; false once the handle is gone.
    fn drain_control(&mut self) -> bool {
        loop {
            match self.ctl.try_recv() {
                Ok(c) => self.control(c),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::Open {
                rec,
                name,
                meta,
                start,
            } => {
                if self.open.len() >= MAX_OPEN {
                    fail("busy");
                    return;
                }
                if self.open.contains_key(&name) {
                    // A new bridge of the same call (a transfer): the file
                    // already open goes on, fed by the new taps.
                    self.by_id.insert(rec, name);
                    return;
                }
                let path = self.cfg.dir.join(&name);
                let side = self
                    .cfg
                    .dir
                    .join(name.trim_end_matches(".wav").to_owned() + ".json");
                let opened = serde_json::to_vec(&meta)
                    .map_err(io::Error::other)
                    .and_then(|j| std::fs::write(&side, j))
                    .and_then(|()| WavWriter::create(&path));
                match opened {
                    Ok(wav) => {
                        metrics::counter!(m::RECORDINGS_STARTED_TOTAL).increment(1);
                        self.bytes += wav.len();
                        self.by_id.insert(rec, name.clone());
                        self.open.insert(
                            name,
                            Rec {
                                wav,
                                aligner: Aligner::new(start),
                                paused: false,
                                last_frame: start,
                            },
                        );
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, file = %path.display(), "recording not started");
                        fail("write_error");
                    }
                }
            }
            Control::Pause(name) => {
                if let Some(r) = self.open.get_mut(&name)
                    && !r.paused
                {
                    r.paused = true;
                    metrics::counter!(m::RECORDINGS_PAUSED_TOTAL).increment(1);
                }
            }
            Control::Resume(name) => {
                if let Some(r) = self.open.get_mut(&name) {
                    r.paused = false;
                }
            }
            Control::Close(name) => self.close(&name, None),
        }
    }

    fn frame(&mut self, f: Frame) {
        if !self.by_id.contains_key(&f.rec) {
            // Its Open may still be queued (it was sent before the tap).
            self.drain_control();
        }
        let Some(name) = self.by_id.get(&f.rec) else {
            return;
        };
        let Some(r) = self.open.get_mut(name) else {
            return;
        };
        r.last_frame = r.last_frame.max(f.at);
        if r.paused {
            return;
        }
        let decode = match f.codec {
            Codec::Pcmu => g711::ulaw_decode,
            Codec::Pcma => g711::alaw_decode,
        };
        self.pcm.clear();
        self.pcm
            .extend(f.data[..usize::from(f.len)].iter().map(|&b| decode(b)));
        r.aligner.push(f.side, f.at, &self.pcm);
    }

    fn flush(&mut self, upto: Instant) {
        let mut failed = Vec::new();
        for (name, r) in &mut self.open {
            self.scratch.clear();
            r.aligner.drain(upto, &mut self.scratch);
            let before = r.wav.len();
            if let Err(e) = r.wav.write(&self.scratch) {
                tracing::warn!(error = %e, file = %name, "recording write failed; recording stops");
                failed.push(name.clone());
            }
            self.bytes += r.wav.len() - before;
        }
        for n in failed {
            self.close(&n, Some("write_error"));
        }
        let idle: Vec<String> = self
            .open
            .iter()
            .filter(|(_, r)| upto.saturating_duration_since(r.last_frame) > IDLE_CLOSE)
            .map(|(n, _)| n.clone())
            .collect();
        for n in idle {
            tracing::warn!(file = %n, "recording got no audio for 2 minutes; closed");
            self.close(&n, None);
        }
    }

    /// Closes `name`: the rest of its audio is written unless it failed.
    fn close(&mut self, name: &str, failure: Option<&'static str>) {
        let Some(mut r) = self.open.remove(name) else {
            return;
        };
        self.by_id.retain(|_, n| n != name);
        let mut result = Ok(());
        if failure.is_none() {
            self.scratch.clear();
            r.aligner.drain_all(&mut self.scratch);
            let before = r.wav.len();
            result = r.wav.write(&self.scratch);
            self.bytes += r.wav.len() - before;
        }
        match (failure, result) {
            (Some(reason), _) => fail(reason),
            (None, Err(e)) => {
                tracing::warn!(error = %e, file = %name, "recording's last write failed");
                fail("write_error");
            }
            (None, Ok(())) => metrics::counter!(m::RECORDINGS_COMPLETED_TOTAL).increment(1),
        }
    }

    fn check_disk(&mut self) {
        let ok = free_bytes(&self.cfg.dir).is_some_and(|f| f >= self.cfg.min_free_bytes);
        let was = self.disk_ok.swap(ok, Ordering::Relaxed);
        if was && !ok {
            tracing::warn!(dir = %self.cfg.dir.display(), "disk nearly full: recording stops");
        }
        if !ok {
            let names: Vec<String> = self.open.keys().cloned().collect();
            for n in names {
                self.close(&n, Some("disk_full"));
            }
        }
    }

    /// Deletes recordings past the retention and recounts the bytes.
    fn sweep(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.cfg.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut total = 0;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let wav = valid_name(&name);
            let sidecar = name.ends_with(".json");
            if !(wav || sidecar) {
                continue;
            }
            let Ok(md) = e.metadata() else { continue };
            let stem = name.trim_end_matches(".wav").trim_end_matches(".json");
            let open = self.open.contains_key(&format!("{stem}.wav"));
            let old = md
                .modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > self.cfg.retention);
            if old && !open {
                match std::fs::remove_file(e.path()) {
                    Ok(()) if wav => {
                        metrics::counter!(m::RECORDINGS_DELETED_TOTAL).increment(1);
                    }
                    Ok(()) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, file = %name, "old recording not deleted");
                        total += md.len();
                    }
                }
            } else if wav {
                total += md.len();
            }
        }
        self.bytes = total;
        metrics::gauge!(m::RECORDING_BYTES).set(total as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn sides_go_left_and_right() {
        let t0 = Instant::now();
        let mut a = Aligner::new(t0);
        a.push(Side::Caller, ms(t0, 20), &[100; 160]);
        a.push(Side::Operator, ms(t0, 20), &[-7; 160]);
        let mut out = Vec::new();
        a.drain(ms(t0, 20), &mut out);
        assert_eq!(out.len(), 320);
        assert!(out.chunks(2).all(|p| p == [100, -7]));
    }

    #[test]
    fn a_gap_is_silence_not_a_shift() {
        let t0 = Instant::now();
        let mut a = Aligner::new(t0);
        // The caller talks throughout; the operator's RTP stops for 200 ms.
        for k in 1..=20u64 {
            a.push(Side::Caller, ms(t0, 20 * k), &[1; 160]);
            if !(6..=15).contains(&k) {
                a.push(Side::Operator, ms(t0, 20 * k), &[2; 160]);
            }
        }
        let mut out = Vec::new();
        a.drain(ms(t0, 400), &mut out);
        let right: Vec<i16> = out.chunks(2).map(|p| p[1]).collect();
        let left: Vec<i16> = out.chunks(2).map(|p| p[0]).collect();
        assert_eq!(right.len(), 3200);
        assert!(left.iter().all(|&s| s == 1));
        // Packet 16 (300..320 ms) lands at sample 2400, not at 800.
        assert!(right[..800].iter().all(|&s| s == 2));
        assert!(right[800..2400].iter().all(|&s| s == 0));
        assert!(right[2400..].iter().all(|&s| s == 2));
    }

    #[test]
    fn jitter_is_absorbed_and_a_silent_side_is_padded() {
        let t0 = Instant::now();
        let mut a = Aligner::new(t0);
        // Arrivals wobble by up to 30 ms around the 20 ms grid.
        let wobble = [0, 30, 5, 25, 0, 10];
        for (k, w) in wobble.iter().enumerate() {
            let at = ms(t0, 20 * (k as u64 + 1) + w);
            a.push(Side::Caller, at, &[k as i16 + 1; 160]);
        }
        let mut out = Vec::new();
        a.drain_all(&mut out);
        let left: Vec<i16> = out.chunks(2).map(|p| p[0]).collect();
        // Back to back, in order, nothing inserted.
        assert_eq!(left.len(), 6 * 160);
        for k in 0..6 {
            assert!(
                left[k * 160..(k + 1) * 160]
                    .iter()
                    .all(|&s| s == k as i16 + 1)
            );
        }
        assert!(out.chunks(2).all(|p| p[1] == 0));
    }

    #[test]
    fn a_side_running_ahead_is_held_back_and_buffers_are_bounded() {
        let t0 = Instant::now();
        let mut a = Aligner::new(t0);
        // A burst of 100 packets at one instant: only ~200 ms is kept.
        for _ in 0..100 {
            a.push(Side::Caller, ms(t0, 20), &[3; 160]);
        }
        assert!(a.sides[0].len() <= (MAX_AHEAD as usize + 2 * 160));
        // A huge jump forward pads at most the buffer bound.
        a.push(Side::Operator, ms(t0, 3_600_000), &[4; 160]);
        assert!(a.sides[1].len() <= MAX_BUFFER);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (tx, rx) = mpsc::sync_channel(2);
        let dropped = Arc::new(AtomicU64::new(0));
        let tap = Tap {
            rec: 1,
            side: Side::Operator,
            tx,
            dropped: dropped.clone(),
        };
        let t0 = Instant::now();
        for _ in 0..5 {
            tap.push(t0, Codec::Pcmu, &[0xff; 160]);
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 3);
        let f = rx.recv().unwrap();
        assert_eq!(
            (f.rec, f.side, usize::from(f.len)),
            (1, Side::Operator, 160)
        );
        // An oversized payload is cut to the frame's room, not refused.
        tap.push(t0, Codec::Pcma, &[0xd5; 2000]);
        let _ = rx.recv().unwrap();
        let f = rx.recv().unwrap();
        assert_eq!(usize::from(f.len), MAX_PAYLOAD);
        assert!(tap.hides_events());
    }

    #[test]
    fn header_is_a_stereo_8k_pcm_wav() {
        let h = wav_header(32000);
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(h[4..8].try_into().unwrap()), 32036);
        assert_eq!(u16::from_le_bytes(h[22..24].try_into().unwrap()), 2);
        assert_eq!(u32::from_le_bytes(h[24..28].try_into().unwrap()), 8000);
        assert_eq!(u32::from_le_bytes(h[28..32].try_into().unwrap()), 32000);
        assert_eq!(u16::from_le_bytes(h[34..36].try_into().unwrap()), 16);
        assert_eq!(u32::from_le_bytes(h[40..44].try_into().unwrap()), 32000);
    }

    #[test]
    fn writer_keeps_the_header_true_after_each_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.wav");
        let mut w = WavWriter::create(&p).unwrap();
        w.write(&[1, -1, 2, -2]).unwrap();
        w.write(&[3, -3]).unwrap();
        let b = std::fs::read(&p).unwrap();
        assert_eq!(b.len(), 44 + 12);
        assert_eq!(u32::from_le_bytes(b[40..44].try_into().unwrap()), 12);
        let s: Vec<i16> = b[44..]
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(s, vec![1, -1, 2, -2, 3, -3]);
    }

    #[test]
    fn the_listing_reads_sidecars_and_skips_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::start(RecorderConfig {
            dir: dir.path().to_path_buf(),
            retention: Duration::MAX,
            min_free_bytes: 0,
        })
        .unwrap();
        let meta = RecordingMeta {
            call_id: "a@b".into(),
            queue: Some("visas".into()),
            // Millisecond precision, as the sidecar keeps it.
            started_at: crate::ops::time::from_millis(1_765_000_000_000),
        };
        std::fs::write(dir.path().join("a_b.wav"), wav_header(0)).unwrap();
        std::fs::write(
            dir.path().join("a_b.json"),
            serde_json::to_vec(&meta).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("lost.wav"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let mut got = rec.list().unwrap();
        got.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!((got[0].name.as_str(), got[0].bytes), ("a_b.wav", 44));
        assert_eq!(got[0].meta.as_ref(), Some(&meta));
        assert_eq!(
            (got[1].name.as_str(), got[1].meta.as_ref()),
            ("lost.wav", None)
        );
        assert_eq!(rec.path_of("a_b.wav"), Some(dir.path().join("a_b.wav")));
        assert_eq!(rec.path_of("../a_b.wav"), None);
        assert_eq!(rec.path_of("gone.wav"), None);
    }

    #[test]
    fn names_stay_inside_the_directory() {
        assert_eq!(file_name("abc@1.2.3.4"), "abc_1.2.3.4.wav");
        assert_eq!(file_name("../../etc/passwd"), "_.._.._etc_passwd.wav");
        assert_eq!(file_name(""), "_.wav");
        assert!(valid_name(&file_name("a/b c@d")));
        for bad in [
            "../x.wav", "x.json", ".wav", "a/b.wav", "a\\b.wav", "x.wav\0",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
