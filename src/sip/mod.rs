//! sip room (work in progress).

pub mod transaction;
