//! The IVR part: the plan's interpreter, its timers and the prompts it
//! plays. Interpreter commands become media outputs here; a queue or a
//! transfer is handed to the queue part and the outgoing legs.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use super::{CallCore, End, Env, Figure, MediaCmd, Output};
use crate::dialplan::{CallInfo, Interpreter, IvrCommand, IvrEvent, Plan};
use crate::media::{PlayOpts, Prompt, PromptLibrary};

pub(super) struct Ivr {
    pub interp: Interpreter,
    pub prompts: Arc<PromptLibrary>,
    timers: BTreeSet<(Instant, u64)>,
    timer_tokens: HashMap<u64, Instant>,
    pub started: bool,
}

impl Ivr {
    pub fn new(
        plan: Arc<Plan>,
        caller: String,
        called: String,
        prompts: Arc<PromptLibrary>,
    ) -> Ivr {
        Ivr {
            interp: Interpreter::new(plan, CallInfo { caller, called }),
            prompts,
            timers: BTreeSet::new(),
            timer_tokens: HashMap::new(),
            started: false,
        }
    }

    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Takes the timers due at `now`, earliest first.
    pub fn due_timers(&mut self, now: Instant) -> Vec<u64> {
        let mut due = Vec::new();
        while let Some(&(at, token)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, token));
            self.timer_tokens.remove(&token);
            due.push(token);
        }
        due
    }

    fn set_timer(&mut self, token: u64, at: Instant) {
        self.cancel_timer(token);
        self.timers.insert((at, token));
        self.timer_tokens.insert(token, at);
    }

    fn cancel_timer(&mut self, token: u64) {
        if let Some(old) = self.timer_tokens.remove(&token) {
            self.timers.remove(&(old, token));
        }
    }

    /// The prompts named, as loaded; missing ones are logged and skipped.
    pub fn resolve(&self, names: &[String]) -> Vec<Arc<Prompt>> {
        names
            .iter()
            .filter_map(|k| {
                let p = self.prompts.get(k);
                if p.is_none() {
                    tracing::warn!(prompt = %k, "prompt missing");
                }
                p
            })
            .collect()
    }
}

impl<E: Env> CallCore<E> {
    /// Starts the plan once media flows.
    pub(super) fn start_ivr(&mut self) -> Result<(), End> {
        if self.ivr.started {
            return Ok(());
        }
        self.ivr.started = true;
        let cmds = self.ivr.interp.start(self.now.at, self.now.wall);
        self.apply(cmds)
    }

    /// Hands what the interpreter counted to the shell, as figures.
    fn ivr_figures(&mut self) {
        let counted = self.ivr.interp.take_figures();
        for (count, node, n) in counted {
            let plan = self.ivr.interp.plan().name.clone();
            self.out.push(Output::Figure(Figure::Ivr {
                plan,
                count,
                node,
                n,
            }));
        }
    }

    /// An operator sent the caller to `node` of its plan.
    pub(super) fn ivr_jump(&mut self, node: &str) -> Result<(), End> {
        let cmds = self.ivr.interp.jump(node, self.now.at, self.now.wall);
        self.apply(cmds)
    }

    pub(super) fn ivr_event(&mut self, ev: IvrEvent) -> Result<(), End> {
        let cmds = self.ivr.interp.handle(ev, self.now.at, self.now.wall);
        self.apply(cmds)
    }

    fn apply(&mut self, cmds: Vec<IvrCommand>) -> Result<(), End> {
        self.ivr_figures();
        for cmd in cmds {
            match cmd {
                IvrCommand::Play {
                    prompts,
                    barge_in,
                    token,
                } => {
                    let found = self.ivr.resolve(&prompts);
                    if let Some(leg) = self.trunk.leg {
                        self.media(MediaCmd::Play {
                            leg,
                            prompts: found,
                            opts: PlayOpts {
                                barge_in,
                                looped: false,
                                token,
                            },
                        });
                    }
                }
                IvrCommand::StopPlayback => {
                    if let Some(leg) = self.trunk.leg {
                        self.media(MediaCmd::StopPlayback { leg });
                    }
                }
                IvrCommand::SetTimer { token, after } => {
                    self.ivr.set_timer(token, self.now.at + after);
                }
                IvrCommand::CancelTimer { token } => self.ivr.cancel_timer(token),
                IvrCommand::Visited { node } => {
                    self.record.visited(&node);
                    self.view.node = Some(node);
                    self.out.push(super::Output::View(self.view.clone()));
                }
                IvrCommand::Hangup => return Err(End::PlanHungUp),
                IvrCommand::Enqueue { queue, priority } => self.enqueue(queue, priority, false)?,
                IvrCommand::Transfer { uri } => self.transfer(&uri)?,
            }
        }
        Ok(())
    }
}
