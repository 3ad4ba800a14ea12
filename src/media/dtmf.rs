//! DTMF detection, both ways a caller's key press reaches us over RTP:
//!
//! - [`Rfc4733Receiver`]: telephone-event packets. One key press is one event,
//!   identified by its RTP timestamp; its start, continuation and the three
//!   retransmitted end packets all carry that timestamp, so the digit is
//!   reported once, on the first packet that arrives (whichever survived loss).
//!   The caller feeds every telephone-event payload of a leg here whatever its
//!   SSRC (SIPp sends digits on a different SSRC than its audio).
//! - [`InbandDetector`]: Goertzel filters over 8 kHz linear audio in blocks of
//!   102 samples (12.75 ms; the bin width then equals the spacing of DTMF
//!   tones). A block is a hit when both tones are above the level threshold,
//!   the twist is within limits, each tone stands clear of the other tones in
//!   its group, the column tone has no strong second harmonic, and the two
//!   tones carry most of the block's energy (speech and music fail these). A
//!   digit is reported when two consecutive blocks agree (a 40 ms tone always
//!   spans two whole blocks) and can repeat only after two blocks without it.
//!
//! Pure state machines: no sockets, no clocks.

/// How a digit reached us (also the `method` label of the DTMF metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfSource {
    Rfc4733,
    Inband,
}

impl DtmfSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfSource::Rfc4733 => "rfc4733",
            DtmfSource::Inband => "inband",
        }
    }
}

/// The key of an RFC 4733 event code (0–9, *, #, A–D); other events (flash,
/// modem tones) are not key presses.
pub fn event_digit(event: u8) -> Option<char> {
    const KEYS: &[u8; 16] = b"0123456789*#ABCD";
    KEYS.get(usize::from(event)).map(|&b| char::from(b))
}

/// The RFC 4733 event code of a key.
pub fn digit_event(digit: char) -> Option<u8> {
    const KEYS: &str = "0123456789*#ABCD";
    KEYS.find(digit.to_ascii_uppercase()).map(|i| i as u8)
}

/// Remembers the last few events so retransmissions and reordering around a
/// digit never report it twice.
#[derive(Debug, Default, Clone)]
pub struct Rfc4733Receiver {
    recent: [Option<(u32, u8)>; 8],
    next: usize,
}

impl Rfc4733Receiver {
    pub fn new() -> Rfc4733Receiver {
        Rfc4733Receiver::default()
    }

    /// Feeds one telephone-event payload with the RTP timestamp of its packet.
    /// Returns the key the first time its event is seen.
    pub fn push(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let &[event, _flags, _, _] = payload.get(..4)? else {
            return None;
        };
        let digit = event_digit(event)?;
        let key = (timestamp, event);
        if self.recent.contains(&Some(key)) {
            return None;
        }
        self.recent[self.next] = Some(key);
        self.next = (self.next + 1) % self.recent.len();
        Some(digit)
    }
}

/// Builds a telephone-event payload (tests, and the bridge when it must
/// generate events).
pub fn event_payload(event: u8, end: bool, volume: u8, duration: u16) -> [u8; 4] {
    let d = duration.to_be_bytes();
    [event, (u8::from(end) << 7) | (volume & 0x3f), d[0], d[1]]
}

const BLOCK: usize = 102;
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Per-tone level threshold: -40 dBFS amplitude, as block energy (N·A²/2)
/// with samples scaled to ±1.
const MIN_TONE_ENERGY: f32 = BLOCK as f32 * 0.01 * 0.01 / 2.0;
/// Normal twist (column weaker than row) up to 8 dB.
const NORMAL_TWIST: f32 = 6.31;
/// Reverse twist (column stronger) up to 4 dB.
const REVERSE_TWIST: f32 = 2.51;
/// Each detected tone must be 8 dB above the others of its group.
const RELATIVE_PEAK: f32 = 6.31;
/// Column second harmonic must be 10 dB below the tone. (Row harmonics fall
/// within a bin of the column tones, so they cannot be checked this way.)
const HARMONIC_RATIO: f32 = 0.1;
/// Share of the block energy the two tones must carry.
const TONE_TO_TOTAL: f32 = 0.7;

#[derive(Debug, Clone, Copy)]
struct Goertzel {
    coeff: f32,
    s1: f32,
    s2: f32,
}

impl Goertzel {
    fn new(freq: f32) -> Goertzel {
        Goertzel {
            coeff: 2.0 * (2.0 * std::f32::consts::PI * freq / 8000.0).cos(),
            s1: 0.0,
            s2: 0.0,
        }
    }

    #[inline]
    fn step(&mut self, x: f32) {
        let s = x + self.coeff * self.s1 - self.s2;
        self.s2 = self.s1;
        self.s1 = s;
    }

    /// Energy of a sine at this frequency in the block, then reset.
    fn take_energy(&mut self) -> f32 {
        let p = self.s1 * self.s1 + self.s2 * self.s2 - self.coeff * self.s1 * self.s2;
        self.s1 = 0.0;
        self.s2 = 0.0;
        2.0 * p / BLOCK as f32
    }
}

/// In-band DTMF detector for one leg's received audio.
#[derive(Debug, Clone)]
pub struct InbandDetector {
    /// 4 rows, 4 columns, 4 column second harmonics.
    filters: [Goertzel; 12],
    energy: f32,
    count: usize,
    previous: Option<char>,
    current: Option<char>,
}

impl Default for InbandDetector {
    fn default() -> Self {
        InbandDetector::new()
    }
}

impl InbandDetector {
    pub fn new() -> InbandDetector {
        let mut freqs = [0f32; 12];
        freqs[..4].copy_from_slice(&ROWS);
        freqs[4..8].copy_from_slice(&COLS);
        for (i, c) in COLS.iter().enumerate() {
            freqs[8 + i] = 2.0 * c;
        }
        InbandDetector {
            filters: freqs.map(Goertzel::new),
            energy: 0.0,
            count: 0,
            previous: None,
            current: None,
        }
    }

    /// Feeds linear samples; calls `on_digit` for every new key press.
    pub fn push(&mut self, samples: &[i16], mut on_digit: impl FnMut(char)) {
        for &s in samples {
            let x = f32::from(s) / 32768.0;
            self.energy += x * x;
            for f in &mut self.filters {
                f.step(x);
            }
            self.count += 1;
            if self.count == BLOCK {
                let hit = self.analyse_block();
                if hit == self.previous && hit != self.current {
                    self.current = hit;
                    if let Some(d) = hit {
                        on_digit(d);
                    }
                }
                self.previous = hit;
            }
        }
    }

    fn analyse_block(&mut self) -> Option<char> {
        let mut e = [0f32; 12];
        for (i, f) in self.filters.iter_mut().enumerate() {
            e[i] = f.take_energy();
        }
        let total = std::mem::take(&mut self.energy);
        self.count = 0;
        let peak = |group: &[f32]| {
            let (i, &max) = group
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .expect("a tone group is never empty");
            let clear = group
                .iter()
                .enumerate()
                .all(|(j, &v)| j == i || v * RELATIVE_PEAK < max);
            (i, max, clear)
        };
        let (r, er, row_clear) = peak(&e[..4]);
        let (c, ec, col_clear) = peak(&e[4..8]);
        if er < MIN_TONE_ENERGY || ec < MIN_TONE_ENERGY || !row_clear || !col_clear {
            return None;
        }
        if ec < er && er > ec * NORMAL_TWIST {
            return None;
        }
        if ec >= er && ec > er * REVERSE_TWIST {
            return None;
        }
        if e[8 + c] > ec * HARMONIC_RATIO {
            return None;
        }
        if er + ec < total * TONE_TO_TOTAL {
            return None;
        }
        Some(KEYPAD[r][c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn freqs(d: char) -> (f64, f64) {
        for (r, row) in KEYPAD.iter().enumerate() {
            for (c, &k) in row.iter().enumerate() {
                if k == d {
                    return (f64::from(ROWS[r]), f64::from(COLS[c]));
                }
            }
        }
        panic!("not a key: {d}");
    }

    fn amp(dbfs: f64) -> f64 {
        32767.0 * 10f64.powf(dbfs / 20.0)
    }

    /// A key press: `ms` of tone at `low_db`/`high_db` dBFS per tone.
    fn tone(d: char, ms: usize, low_db: f64, high_db: f64, phase: f64) -> Vec<f64> {
        let (fl, fh) = freqs(d);
        (0..ms * 8)
            .map(|n| {
                let t = n as f64 / 8000.0;
                amp(low_db) * (2.0 * PI * fl * t + phase).sin()
                    + amp(high_db) * (2.0 * PI * fh * t + 2.0 * phase).sin()
            })
            .collect()
    }

    fn silence(ms: usize) -> Vec<f64> {
        vec![0.0; ms * 8]
    }

    struct Noise(u64);
    impl Noise {
        /// Roughly uniform white noise at `dbfs` RMS.
        fn add(&mut self, x: &mut [f64], dbfs: f64) {
            let rms = amp(dbfs);
            for v in x {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                let u = (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
                *v += u * rms * 3f64.sqrt();
            }
        }
    }

    fn to_pcm(x: &[f64]) -> Vec<i16> {
        x.iter()
            .map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    /// Runs the detector over `x` in 160-sample frames, as the engine does.
    fn detect(x: &[f64]) -> String {
        let mut det = InbandDetector::new();
        let mut out = String::new();
        for frame in to_pcm(x).chunks(160) {
            det.push(frame, |d| out.push(d));
        }
        out
    }

    #[test]
    fn every_key_at_several_levels() {
        for d in "0123456789*#ABCD".chars() {
            for db in [-3.0, -10.0, -20.0, -30.0] {
                let mut x = silence(30);
                x.extend(tone(d, 60, db - 3.0, db - 3.0, 0.3));
                x.extend(silence(60));
                assert_eq!(detect(&x), d.to_string(), "key {d} at {db} dBFS");
            }
        }
    }

    #[test]
    fn too_quiet_is_ignored() {
        let mut x = tone('5', 100, -48.0, -48.0, 0.0);
        x.extend(silence(40));
        assert_eq!(detect(&x), "");
    }

    #[test]
    fn twist_limits() {
        // Normal twist (high group weaker) up to 8 dB passes, 12 dB does not.
        assert_eq!(detect(&tone('1', 80, -10.0, -16.0, 0.0)), "1");
        assert_eq!(detect(&tone('1', 80, -10.0, -22.0, 0.0)), "");
        // Reverse twist (high group stronger) up to 4 dB passes, 8 dB does not.
        assert_eq!(detect(&tone('9', 80, -14.0, -11.0, 0.0)), "9");
        assert_eq!(detect(&tone('9', 80, -18.0, -10.0, 0.0)), "");
    }

    #[test]
    fn tones_in_noise() {
        let mut noise = Noise(0x9e3779b97f4a7c15);
        let mut x = silence(40);
        for d in "147*0#".chars() {
            x.extend(tone(d, 60, -15.0, -17.0, 1.0));
            x.extend(silence(60));
        }
        noise.add(&mut x, -35.0);
        assert_eq!(detect(&x), "147*0#");
    }

    #[test]
    fn noise_and_silence_alone_give_nothing() {
        let mut noise = Noise(42);
        for db in [-50.0, -30.0, -10.0] {
            let mut x = silence(3000);
            noise.add(&mut x, db);
            assert_eq!(detect(&x), "", "noise at {db}");
        }
        assert_eq!(detect(&silence(1000)), "");
    }

    #[test]
    fn speech_like_and_music_do_not_trigger() {
        // Voiced speech: a harmonic series with a gliding pitch.
        let mut x = Vec::new();
        let mut phase = 0.0f64;
        for n in 0..8000 * 3 {
            let t = n as f64 / 8000.0;
            let f0 = 110.0 + 60.0 * (2.0 * PI * 0.7 * t).sin();
            phase += 2.0 * PI * f0 / 8000.0;
            let v: f64 = (1..=25)
                .map(|k| amp(-12.0) / k as f64 * (k as f64 * phase).sin())
                .sum();
            x.push(v);
        }
        assert_eq!(detect(&x), "");
        // A musical note with its harmonics sitting on DTMF frequencies: the
        // column second harmonic gives it away.
        let (fl, fh) = freqs('1');
        let chord: Vec<f64> = (0..8000)
            .map(|n| {
                let t = n as f64 / 8000.0;
                amp(-10.0) * (2.0 * PI * fl * t).sin()
                    + amp(-10.0) * (2.0 * PI * fh * t).sin()
                    + amp(-14.0) * (2.0 * PI * 2.0 * fh * t).sin()
            })
            .collect();
        assert_eq!(detect(&chord), "");
        // The shipped hold-music fallback.
        let moh = crate::media::prompt::Prompt::hold_music("moh");
        let x: Vec<f64> = moh.pcm.iter().map(|&s| f64::from(s)).collect();
        assert_eq!(detect(&x), "");
    }

    #[test]
    fn duration_and_repeat_rules() {
        // 40 ms tones are detected whatever their alignment to blocks.
        for offset in [0, 13, 51, 77, 101] {
            let mut x = silence(0);
            x.extend(vec![0.0; offset]);
            x.extend(tone('6', 40, -10.0, -10.0, 0.0));
            x.extend(silence(50));
            assert_eq!(detect(&x), "6", "offset {offset}");
        }
        // 20 ms blips are not key presses.
        for offset in [0, 40, 90] {
            let mut x = vec![0.0; offset];
            x.extend(tone('6', 20, -10.0, -10.0, 0.0));
            x.extend(silence(50));
            assert_eq!(detect(&x), "", "offset {offset}");
        }
        // The same key twice with a 40 ms gap: two presses.
        let mut x = tone('3', 60, -10.0, -10.0, 0.0);
        x.extend(silence(40));
        x.extend(tone('3', 60, -10.0, -10.0, 0.0));
        assert_eq!(detect(&x), "33");
        // A long press is one press, even with a short dropout inside.
        let mut x = tone('3', 500, -10.0, -10.0, 0.0);
        x.extend(silence(5));
        x.extend(tone('3', 300, -10.0, -10.0, 0.0));
        assert_eq!(detect(&x), "3");
        // Key change without a gap still reports both.
        let mut x = tone('1', 60, -10.0, -10.0, 0.0);
        x.extend(tone('2', 60, -10.0, -10.0, 0.0));
        assert_eq!(detect(&x), "12");
    }

    #[test]
    fn rfc4733_reports_once_per_event() {
        let mut rx = Rfc4733Receiver::new();
        let mut got = String::new();
        let mut feed = |rx: &mut Rfc4733Receiver, ts, p: [u8; 4]| {
            if let Some(d) = rx.push(ts, &p) {
                got.push(d);
            }
        };
        // '5': start, continuations, three end packets.
        for dur in [160u16, 320, 480, 640] {
            feed(&mut rx, 1000, event_payload(5, false, 10, dur));
        }
        for _ in 0..3 {
            feed(&mut rx, 1000, event_payload(5, true, 10, 800));
        }
        // '#': start and continuation lost, only one end packet arrives.
        feed(&mut rx, 3000, event_payload(11, true, 10, 800));
        // '5' again, a new press (new timestamp).
        feed(&mut rx, 5000, event_payload(5, false, 10, 160));
        feed(&mut rx, 5000, event_payload(5, true, 10, 480));
        // A late retransmission of the first press is still absorbed.
        feed(&mut rx, 1000, event_payload(5, true, 10, 800));
        // Flash (16) and short payloads are not digits.
        feed(&mut rx, 7000, event_payload(16, false, 10, 160));
        assert_eq!(rx.push(9000, &[1, 2]), None);
        assert_eq!(got, "5#5");
        assert_eq!(event_digit(10), Some('*'));
        assert_eq!(digit_event('d'), Some(15));
        assert_eq!(digit_event('x'), None);
    }
}
