//! Mixing for supervised bridges (listen, whisper, barge).
//!
//! A plain bridge relays each packet 1:1 to the other leg (`clock.rs`). When
//! a supervisor joins, some destinations must hear two parties at once: the
//! supervisor always hears caller + operator; in whisper the operator hears
//! caller + supervisor; in barge everybody hears the other two. [`route`]
//! says, per mode and destination, whether the destination still gets the
//! plain 1:1 relay (no mixing, no added latency) or a mix, and of whom.
//!
//! A [`Mixer`] belongs to one supervised bridge. The clock thread pushes the
//! decoded 8 kHz PCM of each contributing leg as its packets arrive
//! ([`Mixer::push`]) and takes the mix for a destination on that
//! destination's 20 ms frame tick ([`Mixer::take`]). Each (destination,
//! source) pair holds at most one frame: a newer frame replaces an unsent
//! one, and a frame older than one frame time is never sent, so mixing adds
//! at most one packet (20 ms) of latency. Nothing here blocks or allocates
//! after construction: the clock thread calls it.
//!
//! This room does not touch sockets, SIP or queues: who may supervise and
//! the feature codes live in `call::supervise`. Hand-rolled because the work
//! is a saturating add over 160 samples; no crate is worth a dependency.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::prompt::FRAME_SAMPLES;

/// One frame of 8 kHz PCM (20 ms).
pub type Frame = [i16; FRAME_SAMPLES];

/// The time one frame covers; the most a frame may wait in a mixer.
pub const FRAME_TIME: Duration = Duration::from_millis(20);

/// What a supervisor does on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Mode {
    /// The supervisor hears caller and operator; nobody hears the supervisor.
    Listen,
    /// As listen, and the operator also hears the supervisor.
    Whisper,
    /// Three-way: everybody hears the other two.
    Barge,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Listen, Mode::Whisper, Mode::Barge];

    /// The metric label and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Listen => "listen",
            Mode::Whisper => "whisper",
            Mode::Barge => "barge",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A leg of a supervised bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    Caller = 0,
    Operator = 1,
    Supervisor = 2,
}

const PARTIES: usize = 3;

/// How audio reaches one destination leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The packets of one party, relayed 1:1 as a plain bridge does.
    Relay(Party),
    /// The mix of these parties, emitted on the destination's frame tick.
    Mix(&'static [Party]),
    /// Nothing (a supervisor leg with no session).
    Nothing,
}

/// What `dest` hears under `mode`; `None` is a plain bridge (no supervisor).
pub fn route(mode: Option<Mode>, dest: Party) -> Route {
    use Party::*;
    match (mode, dest) {
        (None, Caller) => Route::Relay(Operator),
        (None, Operator) => Route::Relay(Caller),
        (None, Supervisor) => Route::Nothing,
        (Some(_), Supervisor) => Route::Mix(&[Caller, Operator]),
        (Some(Mode::Listen | Mode::Whisper), Caller) => Route::Relay(Operator),
        (Some(Mode::Listen), Operator) => Route::Relay(Caller),
        (Some(Mode::Whisper | Mode::Barge), Operator) => Route::Mix(&[Caller, Supervisor]),
        (Some(Mode::Barge), Caller) => Route::Mix(&[Operator, Supervisor]),
    }
}

/// Adds `add` into `acc` sample by sample, clipping at the i16 range rather
/// than wrapping (a wrapped sum is a loud click).
pub fn mix_into(acc: &mut [i16], add: &[i16]) {
    for (a, &b) in acc.iter_mut().zip(add) {
        *a = a.saturating_add(b);
    }
}

#[derive(Clone, Copy)]
struct Slot {
    frame: Frame,
    at: Instant,
    full: bool,
}

/// The mixer of one supervised bridge.
pub struct Mixer {
    mode: Mode,
    /// `slots[dest][source]`: the frame of `source` waiting for `dest`'s tick.
    slots: Box<[[Slot; PARTIES]; PARTIES]>,
    /// Frames replaced before they were sent or found stale at the tick.
    pub dropped: u64,
}

impl Mixer {
    pub fn new(mode: Mode, now: Instant) -> Mixer {
        let empty = Slot {
            frame: [0; FRAME_SAMPLES],
            at: now,
            full: false,
        };
        Mixer {
            mode,
            slots: Box::new([[empty; PARTIES]; PARTIES]),
            dropped: 0,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Changes mode; frames already waiting for a destination that no
    /// longer hears their source are discarded (a whisper switched to
    /// listen must not leak one more frame of the supervisor to the operator).
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        for dest in [Party::Caller, Party::Operator, Party::Supervisor] {
            let hears = match route(Some(mode), dest) {
                Route::Mix(src) => src,
                _ => &[][..],
            };
            for (s, slot) in self.slots[dest as usize].iter_mut().enumerate() {
                if !hears.iter().any(|&p| p as usize == s) {
                    slot.full = false;
                }
            }
        }
    }

    /// Whether `dest` gets a mix (rather than the plain relay) now.
    pub fn mixes_for(&self, dest: Party) -> bool {
        matches!(route(Some(self.mode), dest), Route::Mix(_))
    }

    /// A frame of `source` (up to 160 samples, shorter is padded with
    /// silence) arrived at `now`: it waits for each destination that mixes it.
    pub fn push(&mut self, source: Party, pcm: &[i16], now: Instant) {
        for dest in [Party::Caller, Party::Operator, Party::Supervisor] {
            let Route::Mix(src) = route(Some(self.mode), dest) else {
                continue;
            };
            if !src.contains(&source) {
                continue;
            }
            let slot = &mut self.slots[dest as usize][source as usize];
            if slot.full {
                self.dropped += 1;
            }
            let n = pcm.len().min(FRAME_SAMPLES);
            slot.frame[..n].copy_from_slice(&pcm[..n]);
            slot.frame[n..].fill(0);
            slot.at = now;
            slot.full = true;
        }
    }

    /// The mix for `dest` at its frame tick: every waiting frame of the
    /// parties it hears, summed with saturation, each sent once. `None` when
    /// nothing is waiting (the tick sends nothing, as a silent peer would).
    pub fn take(&mut self, dest: Party, now: Instant, out: &mut Frame) -> bool {
        let Route::Mix(src) = route(Some(self.mode), dest) else {
            return false;
        };
        out.fill(0);
        let mut any = false;
        for &s in src {
            let slot = &mut self.slots[dest as usize][s as usize];
            if !slot.full {
                continue;
            }
            slot.full = false;
            if now.saturating_duration_since(slot.at) > FRAME_TIME {
                // Older than a frame (the destination's tick was skipped):
                // sending it would add latency beyond one packet.
                self.dropped += 1;
                continue;
            }
            mix_into(out, &slot.frame);
            any = true;
        }
        any
    }
}

/// A mixer shared by the (up to three) clock threads owning the legs of a
/// supervised bridge, and the engine handle that changes its mode. The
/// clock threads only ever `try_lock` it: a frame that meets the lock held
/// by another thread (a few microseconds) is dropped, never waited for.
pub struct Shared {
    /// The mode, readable without the lock (routing of relayed packets).
    mode: AtomicU8,
    mixer: Mutex<Mixer>,
}

impl Shared {
    pub fn new(mode: Mode, now: Instant) -> Shared {
        Shared {
            mode: AtomicU8::new(mode as u8),
            mixer: Mutex::new(Mixer::new(mode, now)),
        }
    }

    pub fn mode(&self) -> Mode {
        match self.mode.load(Ordering::Acquire) {
            0 => Mode::Listen,
            1 => Mode::Whisper,
            _ => Mode::Barge,
        }
    }

    /// Off the clock threads only (it may wait for the lock).
    pub fn set_mode(&self, mode: Mode) {
        let mut m = self.mixer.lock().unwrap_or_else(|e| e.into_inner());
        m.set_mode(mode);
        self.mode.store(mode as u8, Ordering::Release);
    }

    /// Whether `dest` gets the mix instead of the plain relay.
    pub fn mixes_for(&self, dest: Party) -> bool {
        matches!(route(Some(self.mode()), dest), Route::Mix(_))
    }

    /// [`Mixer::push`] without waiting; false when the lock was busy.
    pub fn try_push(&self, source: Party, pcm: &[i16], now: Instant) -> bool {
        match self.mixer.try_lock() {
            Ok(mut m) => {
                m.push(source, pcm, now);
                true
            }
            Err(_) => false,
        }
    }

    /// [`Mixer::take`] without waiting; false when nothing (or the lock was busy).
    pub fn try_take(&self, dest: Party, now: Instant, out: &mut Frame) -> bool {
        match self.mixer.try_lock() {
            Ok(mut m) => m.take(dest, now, out),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16) -> Frame {
        [v; FRAME_SAMPLES]
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let mut acc = [30_000i16, -30_000, 100, i16::MAX];
        mix_into(&mut acc, &[10_000, -10_000, -50, 1]);
        assert_eq!(acc, [i16::MAX, i16::MIN, 50, i16::MAX]);
    }

    #[test]
    fn supervisor_hears_both_sides_in_every_mode() {
        let t = Instant::now();
        for mode in Mode::ALL {
            let mut m = Mixer::new(mode, t);
            m.push(Party::Caller, &frame(1000), t);
            m.push(Party::Operator, &frame(20), t);
            let mut out = frame(0);
            assert!(m.take(Party::Supervisor, t, &mut out));
            assert_eq!(out, frame(1020), "{mode:?}");
        }
    }

    #[test]
    fn who_hears_the_supervisor() {
        let t = Instant::now();
        let mut out = frame(0);
        // Listen: caller and operator stay on the plain relay.
        let mut m = Mixer::new(Mode::Listen, t);
        m.push(Party::Supervisor, &frame(7), t);
        assert!(!m.take(Party::Operator, t, &mut out));
        assert!(!m.take(Party::Caller, t, &mut out));
        assert_eq!(
            route(Some(Mode::Listen), Party::Operator),
            Route::Relay(Party::Caller)
        );
        assert_eq!(
            route(Some(Mode::Listen), Party::Caller),
            Route::Relay(Party::Operator)
        );
        // Whisper: the operator hears caller + supervisor, the caller does not.
        m.set_mode(Mode::Whisper);
        m.push(Party::Supervisor, &frame(7), t);
        m.push(Party::Caller, &frame(100), t);
        assert!(m.take(Party::Operator, t, &mut out));
        assert_eq!(out, frame(107));
        assert_eq!(
            route(Some(Mode::Whisper), Party::Caller),
            Route::Relay(Party::Operator)
        );
        // Barge: the caller hears operator + supervisor.
        m.set_mode(Mode::Barge);
        m.push(Party::Supervisor, &frame(7), t);
        m.push(Party::Operator, &frame(-50), t);
        assert!(m.take(Party::Caller, t, &mut out));
        assert_eq!(out, frame(-43));
    }

    #[test]
    fn leaving_whisper_drops_the_supervisor_frame_waiting_for_the_operator() {
        let t = Instant::now();
        let mut m = Mixer::new(Mode::Whisper, t);
        m.push(Party::Supervisor, &frame(7), t);
        // Back to listen and straight to whisper again, before the
        // operator's tick: the frame spoken in whisper must not reach it.
        m.set_mode(Mode::Listen);
        m.set_mode(Mode::Whisper);
        let mut out = frame(0);
        assert!(!m.take(Party::Operator, t, &mut out));
    }

    #[test]
    fn latency_is_at_most_one_frame() {
        let t0 = Instant::now();
        let mut m = Mixer::new(Mode::Listen, t0);
        let mut out = frame(0);
        // A frame pushed just after a tick goes out at the next one, 20 ms on.
        m.push(Party::Caller, &frame(5), t0);
        assert!(m.take(Party::Supervisor, t0 + FRAME_TIME, &mut out));
        assert_eq!(out, frame(5));
        // Sent once only.
        assert!(!m.take(Party::Supervisor, t0 + FRAME_TIME, &mut out));
        // Two frames before one tick: the newer replaces the older (no queue
        // grows, so no latency builds up), and the replacement is counted.
        m.push(Party::Caller, &frame(1), t0);
        m.push(Party::Caller, &frame(2), t0 + Duration::from_millis(5));
        assert!(m.take(Party::Supervisor, t0 + Duration::from_millis(10), &mut out));
        assert_eq!(out, frame(2));
        assert_eq!(m.dropped, 1);
        // A frame the tick finds older than one frame time is not sent.
        m.push(Party::Operator, &frame(9), t0);
        let late = t0 + FRAME_TIME + Duration::from_millis(1);
        assert!(!m.take(Party::Supervisor, late, &mut out));
        assert_eq!(m.dropped, 2);
    }

    #[test]
    fn short_frames_are_padded_with_silence() {
        let t = Instant::now();
        let mut m = Mixer::new(Mode::Listen, t);
        m.push(Party::Caller, &frame(3), t);
        let mut out = frame(0);
        m.take(Party::Supervisor, t, &mut out);
        m.push(Party::Caller, &[4; 80], t);
        m.take(Party::Supervisor, t, &mut out);
        assert_eq!(out[..80], [4; 80]);
        assert_eq!(out[80..], [0; 80]);
    }

    #[test]
    fn without_a_supervisor_the_bridge_is_plain() {
        assert_eq!(route(None, Party::Caller), Route::Relay(Party::Operator));
        assert_eq!(route(None, Party::Operator), Route::Relay(Party::Caller));
        assert_eq!(route(None, Party::Supervisor), Route::Nothing);
    }

    #[test]
    fn modes_round_trip_their_names() {
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.as_str()), Some(m));
        }
        assert_eq!(Mode::parse("spy"), None);
    }
}
