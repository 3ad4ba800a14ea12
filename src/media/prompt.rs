//! Prompts decoded once at start-up into 20 ms frames of 160 samples for each
//! codec, shared by every call as `Arc`s: playing a prompt copies no audio.
//!
//! [`PromptLibrary::load_dir`] walks `<dir>/<lang>/<name>.wav` and keys each
//! prompt `"lang/name"`. [`Prompt::tone`] makes a generated prompt (music on
//! hold fallback, beeps) so a caller never hears silence when a file is
//! missing. Reads files only at load time; never touches sockets.

use std::collections::HashMap;
use std::f64::consts::PI;
use std::path::Path;
use std::sync::Arc;

use super::{g711, wav};
use crate::sdp::Codec;

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// One 20 ms G.711 frame.
pub type Frame = [u8; FRAME_SAMPLES];

/// A decoded prompt.
#[derive(Debug)]
pub struct Prompt {
    /// `"lang/name"` for library prompts.
    pub name: String,
    /// Linear samples, padded with silence to a whole number of frames.
    pub pcm: Arc<[i16]>,
    pub pcmu: Arc<[Frame]>,
    pub pcma: Arc<[Frame]>,
}

impl Prompt {
    /// Builds a prompt from linear 8 kHz samples (the last frame is padded with silence).
    pub fn from_pcm(name: impl Into<String>, mut pcm: Vec<i16>) -> Prompt {
        let frames = pcm.len().div_ceil(FRAME_SAMPLES).max(1);
        pcm.resize(frames * FRAME_SAMPLES, 0);
        let mut pcmu = Vec::with_capacity(frames);
        let mut pcma = Vec::with_capacity(frames);
        for chunk in pcm.chunks_exact(FRAME_SAMPLES) {
            let mut u = [0u8; FRAME_SAMPLES];
            let mut a = [0u8; FRAME_SAMPLES];
            for (i, &s) in chunk.iter().enumerate() {
                u[i] = g711::ulaw_encode(s);
                a[i] = g711::alaw_encode(s);
            }
            pcmu.push(u);
            pcma.push(a);
        }
        Prompt {
            name: name.into(),
            pcm: pcm.into(),
            pcmu: pcmu.into(),
            pcma: pcma.into(),
        }
    }

    /// Decodes a WAV file held in memory.
    pub fn from_wav(name: impl Into<String>, bytes: &[u8]) -> Result<Prompt, wav::WavError> {
        Ok(Prompt::from_pcm(name, wav::decode(bytes)?))
    }

    /// A generated prompt: the sum of `freqs` (Hz) at `level_dbfs` (per tone),
    /// switched on for `on_ms` and off for `off_ms`, repeated to fill
    /// `total_ms`. Used for music-on-hold fallback and beeps.
    pub fn tone(
        name: impl Into<String>,
        freqs: &[f64],
        level_dbfs: f64,
        on_ms: u32,
        off_ms: u32,
        total_ms: u32,
    ) -> Prompt {
        let amp = 32767.0 * 10f64.powf(level_dbfs / 20.0);
        let total = (total_ms as usize * 8).max(FRAME_SAMPLES);
        let period = ((on_ms + off_ms) as usize * 8).max(1);
        let on = on_ms as usize * 8;
        let pcm = (0..total)
            .map(|n| {
                if n % period >= on {
                    return 0;
                }
                let t = n as f64 / 8000.0;
                let v: f64 = freqs.iter().map(|f| (2.0 * PI * f * t).sin()).sum();
                (v * amp).clamp(-32768.0, 32767.0) as i16
            })
            .collect();
        Prompt::from_pcm(name, pcm)
    }

    /// A gentle generated hold melody (a slow arpeggio), the fallback when no
    /// music-on-hold file is shipped: callers must never hear silence.
    pub fn hold_music(name: impl Into<String>) -> Prompt {
        // A major arpeggio up and down, 400 ms per note with a short gap.
        let notes = [440.0, 554.37, 659.25, 880.0, 659.25, 554.37];
        let mut pcm = Vec::new();
        for f in notes {
            let note = Prompt::tone("", &[f], -20.0, 360, 40, 400);
            pcm.extend_from_slice(&note.pcm[..400 * 8]);
        }
        Prompt::from_pcm(name, pcm)
    }

    /// Number of 20 ms frames.
    pub fn frames(&self) -> usize {
        self.pcmu.len()
    }

    /// Frame `i` in the given codec.
    pub fn frame(&self, codec: Codec, i: usize) -> Option<&Frame> {
        match codec {
            Codec::Pcmu => self.pcmu.get(i),
            Codec::Pcma => self.pcma.get(i),
        }
    }

    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.frames() as u64 * 20
    }
}

/// Why the prompt directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Wav { path: String, source: wav::WavError },
}

/// Every prompt the gateway can play, keyed `"lang/name"`.
#[derive(Debug, Default)]
pub struct PromptLibrary {
    prompts: HashMap<String, Arc<Prompt>>,
}

impl PromptLibrary {
    /// An empty library.
    pub fn new() -> PromptLibrary {
        PromptLibrary::default()
    }

    /// Loads `<dir>/<lang>/<name>.wav` for every language directory. Fails on
    /// the first unreadable or unsupported file, naming it.
    pub fn load_dir(dir: &Path) -> Result<PromptLibrary, PromptError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| PromptError::Io { path, source }
        };
        let mut lib = PromptLibrary::new();
        let mut langs: Vec<_> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .collect::<Result<_, _>>()
            .map_err(io(dir))?;
        langs.sort_by_key(|e| e.file_name());
        for lang in langs {
            let lang_path = lang.path();
            if !lang_path.is_dir() {
                continue;
            }
            let Some(lang_name) = lang_path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let lang_name = lang_name.to_owned();
            for file in std::fs::read_dir(&lang_path).map_err(io(&lang_path))? {
                let path = file.map_err(io(&lang_path))?.path();
                let is_wav = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
                let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                if !is_wav || !path.is_file() {
                    continue;
                }
                let key = format!("{lang_name}/{stem}");
                let bytes = std::fs::read(&path).map_err(io(&path))?;
                let prompt =
                    Prompt::from_wav(key.clone(), &bytes).map_err(|source| PromptError::Wav {
                        path: path.display().to_string(),
                        source,
                    })?;
                lib.prompts.insert(key, Arc::new(prompt));
            }
        }
        Ok(lib)
    }

    /// Adds (or replaces) a prompt under its own name.
    pub fn insert(&mut self, prompt: Prompt) {
        self.prompts.insert(prompt.name.clone(), Arc::new(prompt));
    }

    /// The prompt keyed `"lang/name"`.
    pub fn get(&self, key: &str) -> Option<Arc<Prompt>> {
        self.prompts.get(key).cloned()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.prompts.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    /// All keys, sorted (for `conmutador check` and logs).
    pub fn keys(&self) -> Vec<&str> {
        let mut k: Vec<&str> = self.prompts.keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_padded_and_encoded_per_codec() {
        let pcm: Vec<i16> = (0..400).map(|i| (i * 50) as i16).collect();
        let p = Prompt::from_pcm("t", pcm.clone());
        assert_eq!(p.frames(), 3);
        assert_eq!(p.pcm.len(), 480);
        assert_eq!(&p.pcm[..400], &pcm[..]);
        assert_eq!(p.pcmu[1][0], g711::ulaw_encode(pcm[160]));
        assert_eq!(p.pcma[2][79], g711::alaw_encode(pcm[399]));
        assert_eq!(p.pcmu[2][159], g711::ulaw_encode(0));
        assert_eq!(p.frame(Codec::Pcma, 0), Some(&p.pcma[0]));
        assert_eq!(p.frame(Codec::Pcmu, 3), None);
        assert_eq!(p.duration_ms(), 60);
        // An empty prompt still has one (silent) frame so playback terminates normally.
        assert_eq!(Prompt::from_pcm("e", vec![]).frames(), 1);
    }

    #[test]
    fn tone_has_cadence_and_level() {
        let p = Prompt::tone("beep", &[1000.0], -6.0, 100, 100, 1000);
        assert_eq!(p.frames(), 50);
        let peak_on = p.pcm[..800].iter().map(|s| s.unsigned_abs()).max().unwrap();
        let peak_off = p.pcm[800..1600]
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap();
        assert!((16000..=16500).contains(&peak_on), "{peak_on}");
        assert_eq!(peak_off, 0);
        let moh = Prompt::hold_music("moh");
        assert_eq!(moh.frames(), 120);
        assert!(moh.pcm.iter().any(|&s| s.abs() > 1000));
    }

    #[test]
    fn load_dir_keys_by_language_and_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("es-MX")).unwrap();
        std::fs::create_dir(dir.path().join("en")).unwrap();
        let wav = wav::encode_pcm16(&[100; 320]);
        std::fs::write(dir.path().join("es-MX/bienvenida.wav"), &wav).unwrap();
        std::fs::write(dir.path().join("en/welcome.WAV"), &wav).unwrap();
        std::fs::write(dir.path().join("en/notes.txt"), b"not audio").unwrap();
        std::fs::write(dir.path().join("stray.wav"), &wav).unwrap();
        let lib = PromptLibrary::load_dir(dir.path()).unwrap();
        assert_eq!(lib.keys(), vec!["en/welcome", "es-MX/bienvenida"]);
        let p = lib.get("es-MX/bienvenida").unwrap();
        assert_eq!(p.frames(), 2);
        assert_eq!(p.name, "es-MX/bienvenida");
        assert!(lib.get("es-MX/nada").is_none());

        std::fs::write(dir.path().join("en/broken.wav"), b"RIFF1234WAVEjunk").unwrap();
        let err = PromptLibrary::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("broken.wav"), "{err}");
        assert!(PromptLibrary::load_dir(&dir.path().join("missing")).is_err());
    }
}
