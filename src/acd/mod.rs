//! The automatic call distributor: queues, operators, strategies, wait
//! estimates and announcements, as a core without I/O.
//!
//! The call layer drives [`Acd`] from a task: it feeds [`AcdEvent`]s with the
//! current `Instant`, sleeps until [`Acd::poll_timeout`], calls
//! [`Acd::handle_timeout`], and turns every [`AcdCommand`] into SIP, media or
//! records work. This room never imports `sip`, `media` or `call`, never reads
//! a clock, never touches a socket and never touches the metrics recorder:
//! the shell takes the core's figures ([`Acd::take_figures`], plain data in
//! `figures.rs`) and turns them into metrics.

pub mod config;
mod engine;
pub mod estimator;
pub mod figures;
mod snapshot;
mod state;
pub mod types;

#[cfg(test)]
mod tests;

pub use config::{
    ConfigError, EmptyWhen, Membership, OperatorConfig, PenaltyStep, QueueConfig, Shift, Strategy,
};
pub use engine::{AUTOPAUSE_REASON, Acd, QueueHistory, spoken_minutes};
pub use figures::{AcdFigures, Outcome, QueueCounts, QueueFigures, QueueGauges, QueueSamples};
pub use snapshot::{
    CallerSnapshot, NewCallerWait, OperatorSnapshot, QueueSnapshot, QueueStatsSnapshot,
    SinceStartCounts,
};
pub use types::{
    AcdCommand, AcdEvent, CallId, ExitReason, OperatorState, Party, QueueEvent, QueueEventKind,
    Removal, RingFailure, WaitSpeech,
};
