//! The queue part: the caller's stay in a queue (hold music,
//! announcements, keys to the ACD), the ACD's commands for this caller, the
//! bridge to the leg that took the call, and what the ACD is told when the
//! call ends. Who is rung and when is the ACD's decision.

use super::legs::{LegKind, TRANSFER_LEG};
use super::{CallCore, End, Env, MediaCmd, Output};
use crate::acd::{AcdCommand, AcdEvent, ExitReason, Party, Removal};
use crate::dialplan::{IvrEvent, QueueExitReason};
use crate::media::{LegId, PlayOpts};
use crate::ops::http::CallState;
use crate::ops::records::QueueEvent;

/// Playback tokens the queue uses; the interpreter's own tokens count up
/// from 1, so the top of the range is free.
pub(super) const MOH_TOKEN: u64 = u64::MAX - 1;
pub(super) const ANNOUNCE_TOKEN: u64 = u64::MAX - 2;

/// A caller's stay in a queue.
pub(super) struct Queued {
    pub name: String,
    pub joined: std::time::Instant,
    /// The caller's number's place in the queues, given back (dropped)
    /// when the caller leaves the line, is bridged or hangs up.
    _place: crate::call::places::Place,
}

#[derive(Default)]
pub(super) struct Waiting {
    pub queued: Option<Queued>,
    /// The leg the caller talks to (an operator's id or the transfer).
    pub bridged: Option<String>,
    /// The priority the plan gave the caller: kept across transfers.
    pub priority: i32,
    /// An operator's transfer under way.
    pub referral: Option<super::refer::Referral>,
    /// The operator a caller was handed back to after a failed transfer,
    /// and when.
    pub given_back: Option<(String, std::time::Instant)>,
}

impl<E: Env> CallCore<E> {
    /// The plan put the caller in a queue: join it and play music.
    /// `front`: back from a failed transfer, ahead of its priority's line.
    pub(super) fn enqueue(&mut self, queue: String, priority: i32, front: bool) -> Result<(), End> {
        if !self.cfg.has_acd {
            // No queue configured at all: the plan's "empty" exit applies.
            return self.ivr_event(IvrEvent::QueueExit {
                reason: QueueExitReason::Empty,
            });
        }
        // One number redialling in a loop gets the plan's "queue full" exit.
        let Some(place) = self.env.take_place(&self.view.caller) else {
            tracing::info!(call = self.id, caller = %self.view.caller, %queue, "number holds too many queue places");
            return self.ivr_event(IvrEvent::QueueExit {
                reason: QueueExitReason::Full,
            });
        };
        // The ACD knows this call once it has joined a queue (the record
        // names the first queue joined).
        if self.record.queue.is_none() {
            self.out.push(Output::AcdAttach {
                call_id: self.trunk.call_id.clone(),
                caller: self.view.caller.clone(),
            });
        }
        self.waiting.queued = Some(Queued {
            name: queue.clone(),
            joined: self.now.at,
            _place: place,
        });
        self.record.queue = Some(queue.clone());
        self.waiting.priority = priority;
        self.set_view_state(CallState::Queued, Some(queue.clone()), None);
        if !self.recording_on_join(&queue) {
            self.play_hold_music();
        }
        let call = self.id;
        self.out.push(Output::Acd(if front {
            AcdEvent::CallerReturned {
                call,
                queue,
                priority,
            }
        } else {
            AcdEvent::CallerJoined {
                call,
                queue,
                priority,
            }
        }));
        Ok(())
    }

    pub(super) fn play_hold_music(&mut self) {
        let Some(leg) = self.trunk.leg else { return };
        let lang = self.ivr.interp.language().to_owned();
        let moh = self
            .ivr
            .prompts
            .get(&format!("{lang}/musica_espera"))
            .unwrap_or_else(|| self.cfg.hold_music.clone());
        self.media(MediaCmd::Play {
            leg,
            prompts: vec![moh],
            opts: PlayOpts {
                barge_in: false,
                looped: true,
                token: MOH_TOKEN,
            },
        });
    }

    /// A command from the ACD for this caller.
    pub(super) fn on_acd(&mut self, cmd: AcdCommand) -> Result<(), End> {
        match cmd {
            AcdCommand::Ring {
                op, queue, timeout, ..
            } => {
                self.ring(&op, &queue, timeout);
                Ok(())
            }
            AcdCommand::CancelRing { op, .. } => {
                let rung = self.legs.legs.iter().any(|l| l.name == op);
                if !rung && self.referral_target_is(&op) {
                    // The ACD says the operator named in a transfer is not free.
                    return self.referral_failed(486, "Busy Here");
                }
                self.cancel_leg(&op);
                self.after_ring_change();
                Ok(())
            }
            AcdCommand::Connect { op, .. } => {
                self.connect(&op);
                Ok(())
            }
            AcdCommand::Announce { position, wait, .. } => {
                self.announce(position, wait);
                Ok(())
            }
            AcdCommand::Exit { reason, .. } => {
                self.leave_queue();
                self.record.overflowed = true;
                let reason = match reason {
                    ExitReason::Full => QueueExitReason::Full,
                    ExitReason::Timeout => QueueExitReason::Timeout,
                    ExitReason::Empty => QueueExitReason::Empty,
                    ExitReason::Key(d) => QueueExitReason::Key(d),
                };
                if let Some(leg) = self.trunk.leg {
                    self.media(MediaCmd::StopPlayback { leg });
                }
                self.consent_cut();
                self.set_view_state(CallState::Ivr, None, None);
                self.ivr_event(IvrEvent::QueueExit { reason })
            }
            AcdCommand::OperatorState { .. } | AcdCommand::Log(_) => Ok(()),
        }
    }

    /// Position and wait, in the caller's language, over the hold music.
    fn announce(&mut self, position: usize, wait: Option<crate::acd::WaitSpeech>) {
        // The consent prompt is not cut short: this announcement is skipped
        // (the next periodic one tells the same).
        if self.waiting.queued.is_none() || self.waiting.bridged.is_some() || self.consent_playing()
        {
            return;
        }
        let prompts = match wait {
            Some(w) => {
                use crate::acd::WaitSpeech as W;
                use crate::dialplan::say::WaitWords;
                let words = match w {
                    W::Seconds(x) => WaitWords::Seconds(x),
                    W::Minutes(m) => WaitWords::Minutes(m),
                    W::Range { low, high } => WaitWords::Range { low, high },
                    W::Beyond => WaitWords::Beyond,
                };
                self.ivr
                    .interp
                    .queue_wait_announcement(position as u64, words)
            }
            None => {
                let lang = self.ivr.interp.language().to_owned();
                crate::dialplan::say::position(&lang, position as u64)
                    .into_iter()
                    .map(|n| format!("{lang}/{n}"))
                    .collect()
            }
        };
        let lib = &self.ivr.prompts;
        let found: Vec<_> = prompts.iter().filter_map(|k| lib.get(k)).collect();
        if let Some(leg) = self.trunk.leg
            && !found.is_empty()
        {
            self.media(MediaCmd::Play {
                leg,
                prompts: found,
                opts: PlayOpts {
                    barge_in: false,
                    looped: false,
                    token: ANNOUNCE_TOKEN,
                },
            });
        }
    }

    fn leave_queue(&mut self) {
        if let Some(q) = self.waiting.queued.take() {
            self.record.wait = Some(self.now.at.saturating_duration_since(q.joined));
        }
    }

    /// The leg `name` is bridged to the caller.
    pub(super) fn bridged(&mut self, name: &str, kind: LegKind, media: LegId) {
        self.leave_queue();
        if let Some(leg) = self.trunk.leg {
            // The bridge also stops whatever either side was hearing; an
            // operator's waits for the end of the recording consent.
            if kind == LegKind::Operator {
                self.bridge_operator(leg, media);
            } else {
                self.consent_cut();
                self.media(MediaCmd::Bridge { a: leg, b: media });
            }
        }
        self.waiting.bridged = Some(name.to_owned());
        if self.referral_target_is(name) {
            // An operator's transfer reached its target: the ACD ended the
            // first operator's part itself when an operator answered.
            self.referral_done(kind != LegKind::Operator);
            if kind == LegKind::Operator {
                self.record.operator = Some(name.to_owned());
            }
        } else if kind == LegKind::Operator {
            self.record.operator = Some(name.to_owned());
        } else if let Some(queue) = self.record.queue.clone() {
            // A caller who had been in a queue was handed on: the queue log
            // says so, as Asterisk's TRANSFER does.
            let uri = self.legs.transfer_uri().unwrap_or_default().to_owned();
            let wait = self.record.wait.map_or(0, |d| d.as_millis() as u64);
            let talk = self.record.talk.map_or(0, |d| d.as_millis() as u64);
            let ev = QueueEvent::transfer(
                self.now.wall,
                &self.trunk.call_id,
                &queue,
                self.record.operator.as_deref(),
                &uri,
                self.record.plan(),
                wait,
                talk,
            );
            self.out.push(Output::QueueEvent(Box::new(ev)));
        }
        tracing::info!(call = self.id, leg = name, "caller connected");
        let queue = self.record.queue.clone();
        self.set_view_state(CallState::Bridged, queue, Some(name.to_owned()));
    }

    /// The call ends: tell the ACD what happened to this caller and end
    /// every outgoing leg.
    pub(super) fn end_queue_part(&mut self, end: End) {
        if let Some(r) = self.waiting.referral.take() {
            // The call ends while an operator's transfer is under way: that
            // operator's part ends with it (and a ring by name is dropped).
            self.out.push(Output::Acd(AcdEvent::CallEnded {
                call: self.id,
                op: r.by,
                by: self.record.talk_ended_by.unwrap_or(Party::Caller),
            }));
        } else if let Some(op) = self.waiting.bridged.clone().filter(|op| op != TRANSFER_LEG) {
            let talk = self
                .legs
                .connected(&op)
                .and_then(|l| l.connected_at)
                .map(|t| self.now.at.saturating_duration_since(t));
            self.record.talk = talk;
            let by = self.record.talk_ended_by.unwrap_or(Party::Caller);
            self.out.push(Output::Acd(AcdEvent::CallEnded {
                call: self.id,
                op,
                by,
            }));
        } else if self.waiting.queued.is_some() {
            self.leave_queue();
            // Only the caller can abandon; the gateway taking them out is
            // its own event, kept out of the abandonment figures.
            let ev = match end {
                End::Removed => AcdEvent::CallerRemoved {
                    call: self.id,
                    by: Removal::Admin,
                },
                End::Shutdown => AcdEvent::CallerRemoved {
                    call: self.id,
                    by: Removal::Shutdown,
                },
                _ => AcdEvent::CallerLeft { call: self.id },
            };
            self.out.push(Output::Acd(ev));
        }
        self.end_legs();
        if self.record.queue.is_some() {
            self.out.push(Output::AcdDetach);
        }
    }
}
