//! The recording part: whether this call is recorded (asked once, when the
//! caller first joins a queue), the consent prompt the caller hears before
//! any operator, the recording's start at the bridge and its end with the
//! call, and the operator's in-call pause and resume codes.
//!
//! A call is recorded only if the caller heard the whole consent prompt:
//! the bridge to the operator waits for its end. The operator's digits
//! (RFC 4733 from the operator's leg, or SIP INFO) are matched against the
//! codes here; the media room keeps them from reaching the caller. Where
//! the audio goes and how it is written is the media room's business.

use std::time::{Duration, Instant};

use super::{CallCore, Env, MediaCmd};
use crate::media::{LegId, PlayOpts};

/// Playback token of the consent prompt.
pub(super) const CONSENT_TOKEN: u64 = u64::MAX - 3;
/// The consent prompt's name in each language's prompt folder.
pub const CONSENT_PROMPT: &str = "aviso_grabacion";
/// Digits further apart than this start a new code.
const DIGIT_GAP: Duration = Duration::from_secs(3);

#[derive(Default)]
pub(super) struct Recording {
    /// Asked whether to record (once per call).
    decided: bool,
    /// The file this call is recorded to, once the recording started.
    pub file: Option<String>,
    /// The file the decision named, until the recording starts.
    planned: Option<String>,
    /// The consent prompt is playing.
    consent_playing: bool,
    /// The caller heard the consent prompt to its end.
    consent_heard: bool,
    /// The bridge waiting for the consent prompt to end.
    pending_bridge: Option<(LegId, LegId)>,
    paused: bool,
    digits: String,
    last_digit: Option<Instant>,
}

impl<E: Env> CallCore<E> {
    /// The caller joined `queue`: decide once whether the call is
    /// recorded; if so, play the consent prompt (true) instead of music.
    pub(super) fn recording_on_join(&mut self, queue: &str) -> bool {
        if !self.recording.decided {
            self.recording.decided = true;
            self.recording.planned = self.env.recording(queue, &self.trunk.call_id);
        }
        if self.recording.planned.is_none() || self.recording.consent_heard {
            return false;
        }
        let lang = self.ivr.interp.language().to_owned();
        let (Some(leg), Some(prompt)) = (
            self.trunk.leg,
            self.ivr.prompts.get(&format!("{lang}/{CONSENT_PROMPT}")),
        ) else {
            tracing::warn!(call = self.id, %lang, "no consent prompt: the call is not recorded");
            self.recording.planned = None;
            return false;
        };
        self.recording.consent_playing = true;
        self.media(MediaCmd::Play {
            leg,
            prompts: vec![prompt],
            opts: PlayOpts {
                barge_in: false,
                looped: false,
                token: CONSENT_TOKEN,
            },
        });
        true
    }

    /// Whether an announcement must wait: the consent prompt is playing.
    pub(super) fn consent_playing(&self) -> bool {
        self.recording.consent_playing
    }

    /// Something else now plays to the caller (or nothing): the consent
    /// prompt was cut, so it does not count as heard.
    pub(super) fn consent_cut(&mut self) {
        self.recording.consent_playing = false;
    }

    /// The consent prompt ran to its end.
    pub(super) fn consent_done(&mut self) {
        self.recording.consent_playing = false;
        self.recording.consent_heard = true;
        if let Some((a, b)) = self.recording.pending_bridge.take() {
            self.media(MediaCmd::Bridge { a, b });
            self.start_recording(a, b);
        } else if self.waiting.queued.is_some() && self.waiting.bridged.is_none() {
            self.play_hold_music();
        }
    }

    /// The caller (`a`) is to be bridged to an operator (`b`): now, or
    /// after the consent prompt.
    pub(super) fn bridge_operator(&mut self, a: LegId, b: LegId) {
        if self.recording.consent_playing && self.recording.planned.is_some() {
            self.recording.pending_bridge = Some((a, b));
            return;
        }
        self.media(MediaCmd::Bridge { a, b });
        self.start_recording(a, b);
    }

    /// Starts recording the bridge; on a new bridge of a recorded call (a
    /// transfer to another operator) the same file goes on with the new
    /// operator on the right.
    fn start_recording(&mut self, caller: LegId, operator: LegId) {
        if !self.recording.consent_heard {
            return;
        }
        let Some(file) = self
            .recording
            .file
            .clone()
            .or_else(|| self.recording.planned.take())
        else {
            return;
        };
        self.recording.file = Some(file.clone());
        self.media(MediaCmd::RecordStart {
            file,
            call_id: self.trunk.call_id.clone(),
            queue: self.record.queue.clone(),
            caller,
            operator,
        });
    }

    /// A digit the operator dialled during the call.
    pub(super) fn operator_digit(&mut self, digit: char) {
        let Some(file) = self.recording.file.clone() else {
            return;
        };
        let now = self.now.at;
        if self
            .recording
            .last_digit
            .is_some_and(|t| now.saturating_duration_since(t) > DIGIT_GAP)
        {
            self.recording.digits.clear();
        }
        self.recording.last_digit = Some(now);
        self.recording.digits.push(digit);
        if self.recording.digits.len() > 16 {
            self.recording.digits.drain(..8);
        }
        let (pause, resume) = (&self.cfg.record_pause_code, &self.cfg.record_resume_code);
        if self.recording.digits.ends_with(pause.as_str()) {
            self.recording.digits.clear();
            if !self.recording.paused {
                self.recording.paused = true;
                tracing::info!(call = self.id, "recording paused by the operator");
                self.media(MediaCmd::RecordPause { file });
            }
        } else if self.recording.digits.ends_with(resume.as_str()) {
            self.recording.digits.clear();
            if self.recording.paused {
                self.recording.paused = false;
                tracing::info!(call = self.id, "recording resumed by the operator");
                self.media(MediaCmd::RecordResume { file });
            }
        }
    }

    /// The call is over: the recording closes (the CDR names it).
    pub(super) fn stop_recording(&mut self) -> Option<String> {
        let file = self.recording.file.clone()?;
        self.media(MediaCmd::RecordStop { file: file.clone() });
        Some(file)
    }
}
