//! Operations room: metric catalog, HTTP (metrics, health, admin API, the
//! wallboard), call records and queue events, logging setup.
//!
//! It observes and stores; it never decides anything about a call. Admin
//! actions reach the call room through the [`http::AdminBackend`] trait, and
//! records arrive through a [`records::RecordSink`] that never blocks.
pub mod figures;
pub mod http;
pub mod kernel;
pub mod logging;
pub mod metrics;
pub mod promql;
pub mod records;
pub mod time;
pub mod wallboard;
