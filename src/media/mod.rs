//! Media room: RTP for every call leg. G.711 codecs, WAV prompt loading,
//! DTMF detection (RFC 4733 and in-band Goertzel), SRTP per leg, and the
//! engine that owns the RTP sockets, paces prompts on one media clock and
//! relays bridged legs; call recording (`record`) taps bridged legs.
//!
//! It speaks to the call layer only through [`engine::MediaEngine`] commands
//! and [`engine::MediaEvent`]s; it never touches SIP, dialplans or queues.

mod clock;
pub mod dtmf;
pub mod engine;
pub mod g711;
pub mod mix;
pub mod prompt;
pub mod record;
mod recv;
mod srtp;
pub mod wav;

/// The RTP drop reasons, the vocabulary of `conmutador_rtp_dropped_total`.
pub use clock::DROP_REASONS;
pub use dtmf::DtmfSource;
pub use engine::{
    ClockSnapshot, LegId, MediaConfig, MediaEngine, MediaEvent, PlayOpts, PoolExhausted,
    Supervision,
};
pub use prompt::{Prompt, PromptLibrary};
/// The reasons of `conmutador_recordings_failed_total`.
pub use record::RECORDING_FAIL_REASONS;
/// The SRTP drop reasons, the vocabulary of `conmutador_srtp_dropped_total`.
pub use srtp::SRTP_DROP_REASONS;
#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod mix_engine_tests;
