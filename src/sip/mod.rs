//! sip room (work in progress).
