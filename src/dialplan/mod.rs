//! dialplan room (work in progress).
