//! Walking a plan with no telephony: the engine behind journey tests
//! (`[[test]]` in a plan, run by `check`) and `conmutador simulate`.
//!
//! It plays the part of the call layer for the real interpreter: prompts
//! "play" for as long as their WAV files last, timers fire when the caller
//! waits, and the clock is virtual (no sleeping). Each thing that happens is
//! recorded as a `SimEvent` so simulate can print the journey and a test
//! can compare its end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

use super::interpreter::{CallInfo, End, Interpreter, IvrCommand, IvrEvent, QueueExitReason};
use super::model::{Expect, Plan, Step};

/// Events one simulated journey can take before it is cut short (a plan
/// that re-prompts for ever while the caller does nothing).
const MAX_SIM_EVENTS: usize = 2_000;

/// What happened during a simulated call, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimEvent {
    Visited {
        at: Duration,
        node: String,
    },
    Play {
        at: Duration,
        prompts: Vec<String>,
        barge_in: bool,
    },
    /// A playing prompt was cut by a key press.
    Stopped {
        at: Duration,
    },
    Waited {
        at: Duration,
        waited: Duration,
    },
    Pressed {
        at: Duration,
        digit: char,
    },
    QueueExit {
        at: Duration,
        reason: QueueExitReason,
    },
    End {
        at: Duration,
        end: End,
    },
    /// The presses ran out; the call is still in the IVR.
    Stuck {
        at: Duration,
        node: String,
    },
}

pub struct Sim {
    pub interp: Interpreter,
    start: Instant,
    wall0: DateTime<Utc>,
    elapsed: Duration,
    playing: Option<(u64, Duration)>,
    timers: BTreeMap<u64, Duration>,
    prompt_len: Arc<dyn Fn(&str) -> Duration + Send + Sync>,
    pub events: Vec<SimEvent>,
}

/// The moment journeys without `at` run: a Tuesday at 10:00, inside any
/// sensible office hours and on no holiday.
pub fn default_time() -> NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2026, 3, 10)
        .and_then(|d| d.and_hms_opt(10, 0, 0))
        .expect("a valid constant date")
}

/// A local time in the plan's zone as UTC (the earliest reading when the
/// clock is turned back, the first valid minute when it jumps forward).
pub fn local_to_utc(plan: &Plan, local: NaiveDateTime) -> DateTime<Utc> {
    let mut t = local;
    for _ in 0..180 {
        if let Some(x) = plan.timezone.from_local_datetime(&t).earliest() {
            return x.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(1);
    }
    Utc.from_utc_datetime(&local)
}

impl Sim {
    pub fn new(
        plan: Arc<Plan>,
        info: CallInfo,
        wall: DateTime<Utc>,
        prompt_len: Arc<dyn Fn(&str) -> Duration + Send + Sync>,
    ) -> Sim {
        Sim {
            interp: Interpreter::new(plan, info),
            start: Instant::now(),
            wall0: wall,
            elapsed: Duration::ZERO,
            playing: None,
            timers: BTreeMap::new(),
            prompt_len,
            events: Vec::new(),
        }
    }

    fn now(&self) -> (Instant, DateTime<Utc>) {
        let wall = self.wall0 + chrono::Duration::from_std(self.elapsed).unwrap_or_default();
        (self.start + self.elapsed, wall)
    }

    fn apply(&mut self, cmds: Vec<IvrCommand>) {
        let at = self.elapsed;
        for c in cmds {
            match c {
                IvrCommand::Visited { node } => self.events.push(SimEvent::Visited { at, node }),
                IvrCommand::Play {
                    prompts,
                    barge_in,
                    token,
                } => {
                    let len = prompts
                        .iter()
                        .map(|p| (self.prompt_len)(p))
                        .sum::<Duration>();
                    self.playing = Some((token, at + len));
                    self.events.push(SimEvent::Play {
                        at,
                        prompts,
                        barge_in,
                    });
                }
                IvrCommand::StopPlayback => {
                    self.playing = None;
                    self.events.push(SimEvent::Stopped { at });
                }
                IvrCommand::SetTimer { token, after } => {
                    self.timers.insert(token, at + after);
                }
                IvrCommand::CancelTimer { token } => {
                    self.timers.remove(&token);
                }
                IvrCommand::Enqueue { queue, priority } => {
                    self.playing = None;
                    self.timers.clear();
                    self.events.push(SimEvent::End {
                        at,
                        end: End::Queued { queue, priority },
                    })
                }
                IvrCommand::Transfer { uri } => self.events.push(SimEvent::End {
                    at,
                    end: End::Transfer { uri },
                }),
                IvrCommand::Hangup => self.events.push(SimEvent::End {
                    at,
                    end: End::Hangup,
                }),
            }
        }
    }

    fn send(&mut self, ev: IvrEvent) {
        let (now, wall) = self.now();
        let cmds = self.interp.handle(ev, now, wall);
        self.apply(cmds);
    }

    fn over_budget(&self) -> bool {
        self.events.len() > MAX_SIM_EVENTS
    }

    /// Lets the current prompts play to the end, node after node, until the
    /// interpreter waits for a key or the call leaves the IVR.
    fn settle(&mut self) {
        while let Some((token, until)) = self.playing.take() {
            if self.over_budget() {
                return;
            }
            self.elapsed = self.elapsed.max(until);
            self.send(IvrEvent::PlaybackDone { token });
        }
    }

    pub fn start(&mut self) {
        let (now, wall) = self.now();
        let cmds = self.interp.start(now, wall);
        self.apply(cmds);
    }

    pub fn step(&mut self, step: &Step) {
        if self.interp.is_finished() || self.over_budget() {
            return;
        }
        match step {
            Step::Press(d) => {
                self.settle();
                self.press(*d);
            }
            Step::Barge(d) => self.press(*d),
            Step::Wait => {
                self.settle();
                if let Some((&token, &due)) = self.timers.iter().min_by_key(|(_, due)| **due) {
                    self.timers.remove(&token);
                    let waited = due.saturating_sub(self.elapsed);
                    self.elapsed = self.elapsed.max(due);
                    self.events.push(SimEvent::Waited {
                        at: self.elapsed,
                        waited,
                    });
                    self.send(IvrEvent::Timer { token });
                }
            }
            Step::QueueExit(reason) => {
                self.settle();
                self.events.push(SimEvent::QueueExit {
                    at: self.elapsed,
                    reason: *reason,
                });
                self.send(IvrEvent::QueueExit { reason: *reason });
            }
        }
    }

    fn press(&mut self, d: char) {
        if self.interp.is_finished() {
            // The call ended while the last prompts played.
            return;
        }
        // A caller takes a moment to press: half a second after the prompt
        // (or after the previous key).
        self.elapsed += Duration::from_millis(500);
        // Timers due before the press fire first, as they would in a call.
        while let Some((&token, &due)) = self.timers.iter().min_by_key(|(_, due)| **due) {
            if due > self.elapsed || self.over_budget() {
                break;
            }
            self.timers.remove(&token);
            self.send(IvrEvent::Timer { token });
        }
        self.events.push(SimEvent::Pressed {
            at: self.elapsed,
            digit: d,
        });
        self.send(IvrEvent::Digit(d));
    }

    /// Runs all steps, then lets the last prompts finish.
    pub fn run(&mut self, steps: &[Step]) {
        self.start();
        for s in steps {
            self.step(s);
        }
        self.settle();
        if self.interp.end().is_none() && !self.interp.is_finished() {
            self.events.push(SimEvent::Stuck {
                at: self.elapsed,
                node: self.interp.current_node().to_string(),
            });
        }
    }

    /// The journey's end in the words of a `[[test]]`'s `expect`.
    pub fn outcome(&self) -> Expect {
        match self.interp.end() {
            Some(End::Queued { queue, .. }) => Expect::Queue(queue.clone()),
            Some(End::Transfer { uri }) => Expect::Transfer(uri.clone()),
            Some(End::Hangup) => Expect::Hangup,
            None if self.interp.is_finished() => Expect::Hangup,
            None => Expect::Node(self.interp.current_node().to_string()),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

/// Length of a prompt from its WAV header (data bytes over byte rate);
/// zero when the file is missing or unreadable.
pub fn wav_duration(path: &std::path::Path) -> Duration {
    let Ok(bytes) = std::fs::read(path) else {
        return Duration::ZERO;
    };
    parse_wav_duration(&bytes).unwrap_or(Duration::ZERO)
}

fn parse_wav_duration(b: &[u8]) -> Option<Duration> {
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return None;
    }
    let mut i = 12;
    let mut byte_rate = None;
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let len = u32::from_le_bytes(b[i + 4..i + 8].try_into().ok()?) as usize;
        let body = i + 8;
        if id == b"fmt " && body + 12 <= b.len() {
            byte_rate = Some(u32::from_le_bytes(b[body + 8..body + 12].try_into().ok()?));
        }
        if id == b"data" {
            let rate = byte_rate.filter(|r| *r > 0)? as f64;
            let len = len.min(b.len().saturating_sub(body));
            return Some(Duration::from_secs_f64(len as f64 / rate));
        }
        i = body.checked_add(len + (len & 1))?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_header_gives_duration() {
        let mut w = Vec::new();
        w.extend_from_slice(b"RIFF");
        w.extend_from_slice(&(36u32 + 16000).to_le_bytes());
        w.extend_from_slice(b"WAVEfmt ");
        w.extend_from_slice(&16u32.to_le_bytes());
        w.extend_from_slice(&1u16.to_le_bytes());
        w.extend_from_slice(&1u16.to_le_bytes());
        w.extend_from_slice(&8000u32.to_le_bytes());
        w.extend_from_slice(&16000u32.to_le_bytes());
        w.extend_from_slice(&2u16.to_le_bytes());
        w.extend_from_slice(&16u16.to_le_bytes());
        w.extend_from_slice(b"data");
        w.extend_from_slice(&16000u32.to_le_bytes());
        w.extend(std::iter::repeat_n(0u8, 16000));
        assert_eq!(parse_wav_duration(&w), Some(Duration::from_secs(1)));
        assert_eq!(parse_wav_duration(b"nonsense"), None);
    }
}
