//! Operations room: metric catalog, HTTP (metrics, health, admin API), call records.
pub mod metrics;
