//! call room (work in progress).
