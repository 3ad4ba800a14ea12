//! sip room (work in progress).

pub mod dialog;
pub mod digest;
pub mod registrar;
pub mod transaction;
