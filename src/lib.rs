//! conmutador: a telephony gateway and SIP call router for a consular call
//! center. The library holds every room; `main.rs` only parses the command line.
//!
//! Data flows one way: `sip`/`media` (wire) → `call` (orchestration) →
//! `dialplan`/`acd` (decisions) → back out as commands. `dialplan` and `acd`
//! never import `sip` or `media`.

pub mod acd;
pub mod call;
pub mod config;
pub mod dialplan;
pub mod media;
pub mod ops;
pub mod sdp;
pub mod sip;
