//! G.711 µ-law and A-law (ITU-T G.711), table driven.
//!
//! The reference formulas below follow the segment/quantisation rules of the
//! Recommendation; the tables used on the hot path (decode 256 entries,
//! encode indexed by the top bits of the 16-bit sample, and the direct
//! µ-law↔A-law transcoding tables used by the bridge) are built from them
//! once, and the tests compare tables and formulas over every input.

use std::sync::LazyLock;

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// µ-law compression of one 16-bit linear sample, by the formula.
pub fn ulaw_encode_ref(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    let s = s.min(ULAW_CLIP) + ULAW_BIAS;
    // Segment = position of the highest set bit above bit 7.
    let exponent = (31 - (s as u32).leading_zeros()).saturating_sub(7).min(7) as i32;
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// µ-law expansion of one code, by the formula.
pub fn ulaw_decode_ref(code: u8) -> i16 {
    let c = !code;
    let exponent = i32::from((c >> 4) & 0x07);
    let mantissa = i32::from(c & 0x0f);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    (if c & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// A-law compression of one 16-bit linear sample, by the formula (13-bit
/// magnitude, even bits inverted with 0x55).
pub fn alaw_encode_ref(sample: i16) -> u8 {
    let s = i32::from(sample) >> 3;
    let (sign, magnitude) = if s >= 0 { (0x80, s) } else { (0x00, -s - 1) };
    let code = if magnitude < 32 {
        (magnitude >> 1) as u8
    } else {
        let exponent = (31 - (magnitude as u32).leading_zeros()) as i32 - 4; // 1..=7
        if exponent > 7 {
            0x7f
        } else {
            ((exponent << 4) | ((magnitude >> exponent) & 0x0f)) as u8
        }
    };
    (sign | code) ^ 0x55
}

/// A-law expansion of one code, by the formula.
pub fn alaw_decode_ref(code: u8) -> i16 {
    let c = code ^ 0x55;
    let exponent = i32::from((c >> 4) & 0x07);
    let mantissa = i32::from(c & 0x0f);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if c & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

struct Tables {
    ulaw_dec: [i16; 256],
    alaw_dec: [i16; 256],
    /// Indexed by `sample as u16`: µ-law rounds on the magnitude, so every
    /// bit of a negative sample matters (64 KiB, shared by the whole process).
    ulaw_enc: Box<[u8; 65536]>,
    /// Indexed by `(sample as u16) >> 3` (A-law keeps 13 bits).
    alaw_enc: Box<[u8; 8192]>,
    ulaw_to_alaw: [u8; 256],
    alaw_to_ulaw: [u8; 256],
}

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    let mut ulaw_dec = [0i16; 256];
    let mut alaw_dec = [0i16; 256];
    for c in 0..=255u8 {
        ulaw_dec[usize::from(c)] = ulaw_decode_ref(c);
        alaw_dec[usize::from(c)] = alaw_decode_ref(c);
    }
    let mut ulaw_enc = Box::new([0u8; 65536]);
    for (i, e) in ulaw_enc.iter_mut().enumerate() {
        *e = ulaw_encode_ref(i as u16 as i16);
    }
    let mut alaw_enc = Box::new([0u8; 8192]);
    for (i, e) in alaw_enc.iter_mut().enumerate() {
        *e = alaw_encode_ref(((i as u16) << 3) as i16);
    }
    let mut ulaw_to_alaw = [0u8; 256];
    let mut alaw_to_ulaw = [0u8; 256];
    for c in 0..=255u8 {
        ulaw_to_alaw[usize::from(c)] = alaw_encode_ref(ulaw_dec[usize::from(c)]);
        alaw_to_ulaw[usize::from(c)] = ulaw_encode_ref(alaw_dec[usize::from(c)]);
    }
    Tables {
        ulaw_dec,
        alaw_dec,
        ulaw_enc,
        alaw_enc,
        ulaw_to_alaw,
        alaw_to_ulaw,
    }
});

/// µ-law code of a linear sample.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    TABLES.ulaw_enc[usize::from(sample as u16)]
}

/// Linear sample of a µ-law code.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    TABLES.ulaw_dec[usize::from(code)]
}

/// A-law code of a linear sample.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    TABLES.alaw_enc[usize::from(sample as u16 >> 3)]
}

/// Linear sample of an A-law code.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    TABLES.alaw_dec[usize::from(code)]
}

/// Rewrites µ-law bytes as A-law in place (bridge transcoding).
pub fn ulaw_to_alaw_in_place(buf: &mut [u8]) {
    let t = &TABLES.ulaw_to_alaw;
    for b in buf {
        *b = t[usize::from(*b)];
    }
}

/// Rewrites A-law bytes as µ-law in place (bridge transcoding).
pub fn alaw_to_ulaw_in_place(buf: &mut [u8]) {
    let t = &TABLES.alaw_to_ulaw;
    for b in buf {
        *b = t[usize::from(*b)];
    }
}

/// The µ-law code for silence.
pub const ULAW_SILENCE: u8 = 0xff;
/// The A-law code for silence (the smallest positive step).
pub const ALAW_SILENCE: u8 = 0xd5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_formulas_for_every_sample() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(s), ulaw_encode_ref(s), "ulaw {s}");
            assert_eq!(alaw_encode(s), alaw_encode_ref(s), "alaw {s}");
        }
        for c in 0..=255u8 {
            assert_eq!(ulaw_decode(c), ulaw_decode_ref(c));
            assert_eq!(alaw_decode(c), alaw_decode_ref(c));
        }
    }

    #[test]
    fn known_values_from_the_recommendation() {
        // Zero and the extremes.
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_decode(0xff), 0);
        assert_eq!(ulaw_decode(0x7f), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(alaw_decode(0xd5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xaa), 32256);
        assert_eq!(alaw_decode(0x2a), -32256);
        assert_eq!(alaw_encode(i16::MAX), 0xaa);
        assert_eq!(alaw_encode(i16::MIN), 0x2a);
    }

    #[test]
    fn every_code_round_trips() {
        for c in 0..=255u8 {
            // µ-law has two zeros (0x7f, 0xff); both decode to 0.
            let v = ulaw_decode(c);
            assert_eq!(ulaw_decode(ulaw_encode(v)), v, "ulaw code {c:#x}");
            if c != 0x7f {
                assert_eq!(ulaw_encode(v), c, "ulaw code {c:#x}");
            }
            assert_eq!(alaw_encode(alaw_decode(c)), c, "alaw code {c:#x}");
        }
    }

    #[test]
    fn quantisation_error_is_bounded_by_the_step_size() {
        for s in i16::MIN..=i16::MAX {
            let s32 = i32::from(s);
            // Step grows with the segment: half a step is at most 1/32 of the value + a bias.
            let bound = s32.abs() / 16 + 16;
            let ue = (i32::from(ulaw_decode(ulaw_encode(s))) - s32).abs();
            let ae = (i32::from(alaw_decode(alaw_encode(s))) - s32).abs();
            if s32.abs() <= ULAW_CLIP {
                assert!(ue <= bound, "ulaw {s}: err {ue}");
            }
            assert!(ae <= bound.max(32), "alaw {s}: err {ae}");
            // Encoding is monotonic in the decoded domain.
            if s > i16::MIN {
                assert!(ulaw_decode(ulaw_encode(s)) >= ulaw_decode(ulaw_encode(s - 1)));
                assert!(alaw_decode(alaw_encode(s)) >= alaw_decode(alaw_encode(s - 1)));
            }
        }
    }

    #[test]
    fn transcoding_tables_agree_with_decode_encode() {
        for c in 0..=255u8 {
            let mut b = [c];
            ulaw_to_alaw_in_place(&mut b);
            assert_eq!(b[0], alaw_encode(ulaw_decode(c)));
            let mut b = [c];
            alaw_to_ulaw_in_place(&mut b);
            assert_eq!(b[0], ulaw_encode(alaw_decode(c)));
        }
        assert_eq!(ulaw_decode(ULAW_SILENCE), 0);
        assert!(alaw_decode(ALAW_SILENCE).abs() <= 8);
    }
}
