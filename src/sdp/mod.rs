//! sdp room (work in progress).
