//! WAV (RIFF/WAVE) reader for prompts: 8 kHz mono 16-bit PCM, µ-law
//! (format 7) or A-law (format 6), decoded to linear 16-bit samples.
//!
//! The reader walks the RIFF chunks instead of assuming a 44-byte header:
//! sox writes µ-law files with a `fact` chunk (and others add `LIST`), so
//! the `data` chunk can start anywhere. Anything else (stereo, 16 kHz,
//! 24-bit, float) is refused with an error that says what the file is, so
//! a prompt author knows what to convert. Only reads bytes; no file I/O.

use super::g711;

/// Why a WAV file cannot be used as a prompt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("not a RIFF/WAVE file")]
    NotWave,
    #[error("truncated WAV: {0}")]
    Truncated(&'static str),
    #[error("no fmt chunk before the data chunk")]
    NoFormat,
    #[error("no data chunk")]
    NoData,
    #[error(
        "unsupported WAV format: {0} (need 8000 Hz mono 16-bit PCM, µ-law or A-law; \
         e.g. `sox in.wav -r 8000 -c 1 -b 16 out.wav`)"
    )]
    Unsupported(String),
}

const FORMAT_PCM: u16 = 1;
const FORMAT_ALAW: u16 = 6;
const FORMAT_ULAW: u16 = 7;
const FORMAT_EXTENSIBLE: u16 = 0xfffe;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[derive(Debug, Clone, Copy)]
struct Format {
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
}

fn parse_fmt(body: &[u8]) -> Result<Format, WavError> {
    let short = WavError::Truncated("fmt chunk too short");
    let mut tag = u16_at(body, 0).ok_or(short.clone())?;
    let channels = u16_at(body, 2).ok_or(short.clone())?;
    let rate = u32_at(body, 4).ok_or(short.clone())?;
    let bits = u16_at(body, 14).ok_or(short.clone())?;
    if tag == FORMAT_EXTENSIBLE {
        // WAVE_FORMAT_EXTENSIBLE: the real tag is the first two bytes of the
        // sub-format GUID at offset 24.
        tag = u16_at(body, 24).ok_or(short)?;
    }
    Ok(Format {
        tag,
        channels,
        rate,
        bits,
    })
}

/// Decodes a whole WAV file into 8 kHz mono linear samples.
pub fn decode(file: &[u8]) -> Result<Vec<i16>, WavError> {
    if file.len() < 12 || &file[0..4] != b"RIFF" || &file[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let mut at = 12;
    let mut format: Option<Format> = None;
    while at + 8 <= file.len() {
        let id = &file[at..at + 4];
        let size = u32_at(file, at + 4).ok_or(WavError::Truncated("chunk header"))? as usize;
        let start = at + 8;
        // Writers that stream (sox to a pipe, some recorders) leave the data
        // size at 0 or 0xffffffff; take the rest of the file then.
        let end = start.saturating_add(size).min(file.len());
        let body = &file[start..end];
        match id {
            b"fmt " => format = Some(parse_fmt(body)?),
            b"data" => {
                let f = format.ok_or(WavError::NoFormat)?;
                let body = if size == 0 || size == u32::MAX as usize {
                    &file[start..]
                } else {
                    body
                };
                return decode_data(f, body);
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = start.saturating_add(size).saturating_add(size & 1);
    }
    if format.is_none() {
        Err(WavError::NoFormat)
    } else {
        Err(WavError::NoData)
    }
}

fn decode_data(f: Format, data: &[u8]) -> Result<Vec<i16>, WavError> {
    if f.channels != 1 || f.rate != 8000 {
        return Err(WavError::Unsupported(format!(
            "{} channel(s) at {} Hz",
            f.channels, f.rate
        )));
    }
    match (f.tag, f.bits) {
        (FORMAT_PCM, 16) => Ok(data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect()),
        (FORMAT_ULAW, 8) => Ok(data.iter().map(|&c| g711::ulaw_decode(c)).collect()),
        (FORMAT_ALAW, 8) => Ok(data.iter().map(|&c| g711::alaw_decode(c)).collect()),
        (tag, bits) => Err(WavError::Unsupported(format!(
            "format tag {tag} with {bits} bits per sample"
        ))),
    }
}

/// Writes 8 kHz mono 16-bit PCM as a canonical WAV (tests, generated prompts).
pub fn encode_pcm16(samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&FORMAT_PCM.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A µ-law WAV laid out the way sox writes it: 18-byte fmt chunk, a
    /// `fact` chunk, then data at byte 58.
    fn sox_ulaw(codes: &[u8], tag: u16) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&0u32.to_le_bytes()); // fixed below
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&18u32.to_le_bytes());
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&8000u32.to_le_bytes());
        out.extend_from_slice(&8000u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&8u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // cbSize
        out.extend_from_slice(b"fact");
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&(codes.len() as u32).to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(codes.len() as u32).to_le_bytes());
        out.extend_from_slice(codes);
        if codes.len() % 2 == 1 {
            out.push(0);
        }
        let riff = (out.len() - 8) as u32;
        out[4..8].copy_from_slice(&riff.to_le_bytes());
        out
    }

    #[test]
    fn pcm16_round_trip() {
        let samples: Vec<i16> = (0..800).map(|i| ((i * 37) % 2000 - 1000) as i16).collect();
        assert_eq!(decode(&encode_pcm16(&samples)).unwrap(), samples);
    }

    #[test]
    fn ulaw_with_data_after_byte_44() {
        let codes = [0x00u8, 0x80, 0xff, 0x7f, 0x12];
        let file = sox_ulaw(&codes, FORMAT_ULAW);
        let data_at = file.windows(4).position(|w| w == b"data").unwrap() + 8;
        assert!(data_at > 44, "data at {data_at}");
        let pcm = decode(&file).unwrap();
        let want: Vec<i16> = codes.iter().map(|&c| g711::ulaw_decode(c)).collect();
        assert_eq!(pcm, want);
    }

    #[test]
    fn alaw_and_unknown_chunks() {
        let codes = [0xd5u8, 0x55, 0xaa];
        let mut file = sox_ulaw(&codes, FORMAT_ALAW);
        // Insert a LIST chunk with odd length before fmt to exercise padding.
        let list = [b"LIST".as_slice(), &3u32.to_le_bytes(), b"abc\0"].concat();
        file.splice(12..12, list);
        let pcm = decode(&file).unwrap();
        assert_eq!(pcm, vec![8, -8, 32256]);
    }

    #[test]
    fn clear_errors() {
        assert_eq!(decode(b"RIFX....WAVE").unwrap_err(), WavError::NotWave);
        assert_eq!(decode(b"").unwrap_err(), WavError::NotWave);
        let mut stereo = encode_pcm16(&[0; 10]);
        stereo[22] = 2;
        let err = decode(&stereo).unwrap_err();
        assert!(
            matches!(err, WavError::Unsupported(ref m) if m.contains("2 channel")),
            "{err}"
        );
        let mut wide = encode_pcm16(&[0; 10]);
        wide[24..28].copy_from_slice(&16000u32.to_le_bytes());
        assert!(matches!(decode(&wide), Err(WavError::Unsupported(_))));
        let mut float = encode_pcm16(&[0; 10]);
        float[20] = 3;
        assert!(matches!(decode(&float), Err(WavError::Unsupported(m)) if m.contains("tag 3")));
        // Header only, no data chunk.
        let full = encode_pcm16(&[]);
        assert_eq!(decode(&full[..36]).unwrap_err(), WavError::NoData);
        // Data before fmt.
        let bad = [b"RIFF".as_slice(), &[0; 4], b"WAVEdata", &[0; 4]].concat();
        assert_eq!(decode(&bad).unwrap_err(), WavError::NoFormat);
        // Truncated fmt chunk.
        let bad = [
            b"RIFF".as_slice(),
            &[0; 4],
            b"WAVEfmt ",
            &4u32.to_le_bytes(),
            &[1, 0, 1, 0],
        ]
        .concat();
        assert!(matches!(decode(&bad), Err(WavError::Truncated(_))));
    }

    #[test]
    fn data_size_larger_than_file_is_clamped() {
        let mut file = encode_pcm16(&[1, 2, 3, 4]);
        file[40..44].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(decode(&file).unwrap(), vec![1, 2, 3, 4]);
    }
}
