//! config room (work in progress).
