//! Call recording with real phones: the in-test UA is the caller (sending a
//! 1 kHz tone), a baresip operator auto-answers and plays a 440 Hz tone. The
//! recording is downloaded through the admin API and its channels are
//! checked by Goertzel: the caller's tone on the left, the operator's on the
//! right. Also: the consent prompt before the operator, pause and resume by
//! the operator's DTMF (silence in both channels, no digits heard by the
//! caller), retention, and a full disk or a failing write that stops
//! recording but no call.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::baresip::{Baresip, parse_wav, write_tone_wav};
use common::ua::{Heard, Ua};
use common::{Gw, eventually, http_get, shipped, talk_both_ways};

const TOKEN: &str = "test-token";

/// A plan folder with the shipped prompts and one plan that puts every
/// call in queue `pasaportes` (Spanish).
fn plans(dir: &Path) -> PathBuf {
    common::pasaportes_plan_with(dir, &[], "")
}

fn config(plans: &Path, recordings: &Path, recording: &str) -> String {
    format!(
        r#"
[sip]
auth_algorithms = ["MD5"]
[dialplans]
dir = "{}"
watch = false
[[queues]]
name = "pasaportes"
ring_timeout = 15
announce_interval = 60
[[operators]]
id = "op1"
password = "pw1"
queues = [{{ name = "pasaportes" }}]
[recording]
dir = "{}"
{recording}
[recording.queues]
pasaportes = "all"
"#,
        plans.display(),
        recordings.display()
    )
}

/// A gateway recording every `pasaportes` call into `dir/recordings` (made
/// here) whatever the free space, and operator op1 playing 440 Hz.
fn recording_floor(dir: &Path) -> (PathBuf, Gw, Baresip) {
    let plans = plans(dir);
    let recs = dir.join("recordings");
    std::fs::create_dir_all(&recs).unwrap();
    let gw = Gw::start(&config(&plans, &recs, "min_free_mb = 0"));
    let wav = dir.join("op-440.wav");
    write_tone_wav(&wav, 440.0, 60.0, 8000).unwrap();
    let phone = operator(&gw, &wav);
    (recs, gw, phone)
}

fn operator(gw: &Gw, wav: &Path) -> Baresip {
    common::operator_phone(gw, "op1", "pw1", Some(wav.to_path_buf()), true)
}

/// The file name the gateway gives a Call-ID's recording.
fn file_name(call_id: &str) -> String {
    let s: String = call_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{s}.wav")
}

/// GET with raw bytes back: (status, content type, body).
fn download(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "the WAV is sent with its length: {head}"
    );
    (status, ctype, buf[split + 4..].to_vec())
}

/// Power of `freq` in `x` (Goertzel), normalised by length.
fn goertzel(x: &[i16], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 8000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - c * s1 * s2) / (x.len().max(1) as f64).powi(2)
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// (left, right) of an interleaved stereo file.
fn channels(samples: &[i16]) -> (Vec<i16>, Vec<i16>) {
    let l = samples.chunks_exact(2).map(|p| p[0]).collect();
    let r = samples.chunks_exact(2).map(|p| p[1]).collect();
    (l, r)
}

/// Per 20 ms frame: whether it carries `freq` (loud, and that tone
/// dominates the other one).
fn tone_frames(x: &[i16], freq: f64, other: f64) -> Vec<bool> {
    x.chunks(160)
        .map(|f| rms(f) > 500.0 && goertzel(f, freq) > 10.0 * goertzel(f, other))
        .collect()
}

/// The one recording of the call, downloaded through the admin API.
fn fetch_recording(gw: &Gw, call_id: &str) -> Vec<i16> {
    let http = gw.http.expect("http");
    let name = file_name(call_id);
    let (status, body) = http_get(http, "/api/recordings", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).expect("JSON list");
    let entry = list
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name.as_str()))
        .unwrap_or_else(|| panic!("{name} not listed: {body}"));
    assert_eq!(entry["call_id"], call_id);
    assert_eq!(entry["queue"], "pasaportes");
    assert!(entry["bytes"].as_u64().unwrap_or(0) > 44, "{entry}");
    assert!(entry["started_at"].is_string(), "{entry}");

    // Never without the admin token.
    let path = format!("/api/recordings/{name}");
    for token in [None, Some("wrong-token")] {
        let (status, _, body) = download(http, &path, token);
        assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
        assert!(!body.starts_with(b"RIFF"));
    }
    assert_eq!(http_get(http, "/api/recordings", None).0, 401);
    // A name that would leave the directory is refused outright.
    assert_eq!(
        download(http, "/api/recordings/..%2Fgateway.log", Some(TOKEN)).0,
        400
    );

    let (status, ctype, bytes) = download(http, &path, Some(TOKEN));
    assert_eq!(status, 200);
    assert_eq!(ctype, "audio/wav");
    assert_eq!(Some(bytes.len() as u64), entry["bytes"].as_u64());
    let wav = parse_wav(&bytes).expect("a WAV file");
    assert_eq!((wav.channels, wav.rate), (2, 8000));
    wav.samples
}

/// The CDR's `recording` column for `call_id`.
fn cdr_recording(gw: &Gw, call_id: &str) -> Option<String> {
    let db = gw.dir.path().join("data/records.sqlite3");
    let conn = rusqlite::Connection::open(db).ok()?;
    conn.query_row(
        "SELECT recording FROM cdr WHERE call_id = ?1",
        [call_id],
        |r| r.get::<_, Option<String>>(0),
    )
    .ok()
    .flatten()
}

/// Calls "100", hears the consent prompt through, and waits until the
/// operator is bridged and the recording has started.
fn recorded_call(gw: &Gw, phone: &Baresip) -> Ua {
    let ua = bridged_after_consent(gw, phone, Ua::new(gw.udp));
    assert!(
        eventually(Duration::from_secs(10), || gw
            .metric("conmutador_recordings_started_total", &[])
            >= 1.0),
        "recording started\n{}",
        gw.log_text()
    );
    ua
}

/// `ua` calls "100", hears the consent prompt through, and the operator
/// answers.
fn bridged_after_consent(gw: &Gw, phone: &Baresip, mut ua: Ua) -> Ua {
    assert_eq!(ua.call("100", "0", true).status(), Some(200));
    ua.send_pcmu(&[0; 160], true);
    let mut h = Heard::default();
    assert!(
        ua.wait_heard(
            &mut h,
            &shipped("es-MX", "aviso_grabacion"),
            Duration::from_secs(20)
        ),
        "the caller hears the recording notice before an operator\n{}",
        gw.log_text()
    );
    assert!(
        phone.wait_call_established(Duration::from_secs(20)),
        "operator never got the call\n{}",
        gw.log_text()
    );
    ua
}

fn hang_up(gw: &Gw, ua: &mut Ua, phone: &Baresip) {
    assert_eq!(ua.hangup("100").and_then(|m| m.status()), Some(200));
    assert!(phone.wait_call_closed(Duration::from_secs(10)));
    assert!(
        eventually(Duration::from_secs(10), || gw
            .metric("conmutador_recordings_completed_total", &[])
            >= 1.0),
        "recording completed\n{}",
        gw.metrics()
    );
}

#[test]
fn recorded_call_has_the_caller_left_and_the_operator_right() {
    let tmp = tempfile::tempdir().unwrap();
    let (recs, gw, phone) = recording_floor(tmp.path());

    let mut ua = recorded_call(&gw, &phone);
    ua.send_tones(&[1000.0], Duration::from_secs(3), 0.5);
    hang_up(&gw, &mut ua, &phone);

    let samples = fetch_recording(&gw, &ua.call_id);
    let (left, right) = channels(&samples);
    // Whole channels: each holds its own side's tone, not the other's.
    let (l1k, l440) = (goertzel(&left, 1000.0), goertzel(&left, 440.0));
    let (r1k, r440) = (goertzel(&right, 1000.0), goertzel(&right, 440.0));
    assert!(
        l1k > 100.0 * l440,
        "left: 1 kHz {l1k:.1} vs 440 Hz {l440:.1}"
    );
    assert!(
        r440 > 100.0 * r1k,
        "right: 440 Hz {r440:.1} vs 1 kHz {r1k:.1}"
    );
    // The caller's 3 s of tone are 3 s in the file (not squeezed or
    // stretched), within what a loaded machine's pacing does to it.
    let caller = tone_frames(&left, 1000.0, 440.0);
    let secs = caller.iter().filter(|&&t| t).count() as f64 * 0.02;
    assert!((2.4..=3.6).contains(&secs), "caller's tone lasts {secs} s");
    // The operator talked the whole time: the right channel carries the
    // 440 Hz throughout the caller's tone.
    let op = tone_frames(&right, 440.0, 1000.0);
    let both = caller.iter().zip(&op).filter(|(c, o)| **c && **o).count();
    assert!(
        both as f64 >= 0.9 * caller.iter().filter(|&&t| t).count() as f64,
        "both sides at once in {both} frames"
    );

    // The CDR names the file.
    let name = file_name(&ua.call_id);
    assert!(
        eventually(Duration::from_secs(5), || cdr_recording(&gw, &ua.call_id)
            .as_deref()
            == Some(name.as_str())),
        "CDR names {name}"
    );
    assert!(recs.join(&name).is_file());
}

#[test]
fn pause_code_writes_silence_on_both_channels_and_the_caller_hears_no_digits() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, gw, phone) = recording_floor(tmp.path());
    let mut ua = recorded_call(&gw, &phone);

    // Everything the caller receives from here on, by payload type.
    let listener = {
        let rtp = ua.rtp.try_clone().unwrap();
        rtp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        std::thread::spawn(move || {
            let mut pts = std::collections::BTreeMap::<u8, usize>::new();
            let mut buf = [0u8; 2048];
            let deadline = std::time::Instant::now() + Duration::from_secs(12);
            while std::time::Instant::now() < deadline {
                if let Ok((n, _)) = rtp.recv_from(&mut buf)
                    && n > 12
                {
                    *pts.entry(buf[1] & 0x7f).or_default() += 1;
                }
            }
            pts
        })
    };

    ua.send_tones(&[1000.0], Duration::from_millis(1500), 0.5);
    phone.send_dtmf("*1");
    assert!(
        eventually(Duration::from_secs(5), || gw
            .metric("conmutador_recordings_paused_total", &[])
            >= 1.0),
        "the pause code paused the recording\n{}",
        gw.log_text()
    );
    ua.send_tones(&[1000.0], Duration::from_secs(2), 0.5);
    phone.send_dtmf("*2");
    assert!(
        eventually(Duration::from_secs(5), || gw
            .log_text()
            .contains("recording resumed by the operator")),
        "the resume code resumed it"
    );
    ua.send_tones(&[1000.0], Duration::from_millis(1500), 0.5);
    let pts = listener.join().unwrap();
    hang_up(&gw, &mut ua, &phone);

    // Only audio reached the caller: none of the operator's telephone-events.
    assert!(pts.get(&0).copied().unwrap_or(0) > 100, "{pts:?}");
    assert_eq!(pts.len(), 1, "caller got non-audio packets: {pts:?}");

    let samples = fetch_recording(&gw, &ua.call_id);
    let (left, right) = channels(&samples);
    let quiet: Vec<bool> = left
        .chunks(160)
        .zip(right.chunks(160))
        .map(|(l, r)| rms(l) < 30.0 && rms(r) < 30.0)
        .collect();
    // The longest stretch of silence on both channels at once.
    let (mut best, mut start, mut run) = ((0, 0), 0, 0);
    for (i, &q) in quiet.iter().enumerate() {
        if q {
            if run == 0 {
                start = i;
            }
            run += 1;
            if run > best.1 {
                best = (start, run);
            }
        } else {
            run = 0;
        }
    }
    let (at, len) = best;
    assert!(
        len as f64 * 0.02 >= 1.8,
        "a pause of at least the 2 s the caller talked through it, got {} s",
        len as f64 * 0.02
    );
    // Both sides were recorded before and after the pause.
    let caller = tone_frames(&left, 1000.0, 440.0);
    let op = tone_frames(&right, 440.0, 1000.0);
    let before = caller[..at].iter().filter(|&&t| t).count();
    let after = caller[at + len..].iter().filter(|&&t| t).count();
    assert!(
        before >= 50 && after >= 40,
        "caller {before} / {after} frames"
    );
    assert!(op[..at].iter().any(|&t| t) && op[at + len..].iter().any(|&t| t));
}

#[test]
fn old_recordings_are_deleted_and_a_full_disk_stops_recording_not_calls() {
    let tmp = tempfile::tempdir().unwrap();
    let plans = plans(tmp.path());
    let recs = tmp.path().join("recordings");
    std::fs::create_dir_all(&recs).unwrap();
    let header = [0u8; 44];
    let old = SystemTime::now() - Duration::from_secs(40 * 86_400);
    for f in ["old-call.wav", "old-call.json"] {
        std::fs::write(recs.join(f), header).unwrap();
        std::fs::File::options()
            .write(true)
            .open(recs.join(f))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    std::fs::write(recs.join("recent-call.wav"), header).unwrap();

    // Retention 30 days; a minimum free space no disk has: always "full".
    let gw = Gw::start(&config(
        &plans,
        &recs,
        "retention_days = 30\nmin_free_mb = 1000000000000",
    ));
    assert!(
        eventually(Duration::from_secs(10), || !recs
            .join("old-call.wav")
            .exists()),
        "the recording past retention is deleted"
    );
    assert!(!recs.join("old-call.json").exists());
    assert!(recs.join("recent-call.wav").exists());
    assert!(eventually(Duration::from_secs(5), || gw
        .metric("conmutador_recordings_deleted_total", &[])
        == 1.0));
    assert!(eventually(Duration::from_secs(5), || gw
        .metric("conmutador_recording_bytes", &[])
        == 44.0));

    // The call goes through at once (no consent: it cannot be recorded)
    // and both sides hear each other.
    let wav = tmp.path().join("op-440.wav");
    write_tone_wav(&wav, 440.0, 60.0, 8000).unwrap();
    let phone = operator(&gw, &wav);
    let mut ua = Ua::new(gw.udp);
    assert_eq!(ua.call("100", "0", true).status(), Some(200));
    ua.send_pcmu(&[0; 160], true);
    assert!(
        phone.wait_call_established(Duration::from_secs(20)),
        "operator never got the call\n{}",
        gw.log_text()
    );
    talk_both_ways(&mut ua, &phone);
    assert_eq!(ua.hangup("100").and_then(|m| m.status()), Some(200));
    assert!(phone.wait_call_closed(Duration::from_secs(10)));
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_calls_ended_total",
        &["reason=\"caller_hangup\"", "result=\"completed\""]
    ) >= 1.0));
    assert!(
        gw.metric(
            "conmutador_recordings_failed_total",
            &["reason=\"disk_full\""]
        ) >= 1.0
    );
    assert_eq!(gw.metric("conmutador_recordings_started_total", &[]), 0.0);
    let files: Vec<_> = std::fs::read_dir(&recs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec!["recent-call.wav".to_string()]);
    assert_eq!(cdr_recording(&gw, &ua.call_id), None);
}

#[test]
fn a_recording_that_cannot_be_written_is_counted_and_the_call_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (recs, gw, phone) = recording_floor(tmp.path());

    // The call's file is a link to /dev/full: every write fails (ENOSPC).
    let ua = Ua::new(gw.udp);
    std::os::unix::fs::symlink("/dev/full", recs.join(file_name(&ua.call_id))).unwrap();
    let mut ua = bridged_after_consent(&gw, &phone, ua);
    assert!(
        eventually(Duration::from_secs(5), || gw.metric(
            "conmutador_recordings_failed_total",
            &["reason=\"write_error\""]
        ) >= 1.0),
        "{}",
        gw.metrics()
    );
    talk_both_ways(&mut ua, &phone);
    assert_eq!(ua.hangup("100").and_then(|m| m.status()), Some(200));
    assert!(phone.wait_call_closed(Duration::from_secs(10)));
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_calls_ended_total",
        &["reason=\"caller_hangup\"", "result=\"completed\""]
    ) >= 1.0));
    assert_eq!(gw.metric("conmutador_recordings_completed_total", &[]), 0.0);
}
