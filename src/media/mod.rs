//! media room (work in progress).
