//! acd room (work in progress).
