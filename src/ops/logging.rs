//! Log output setup: readable text for people, JSON lines for machines.
//!
//! The level filter comes from `RUST_LOG` when set (so an operator can turn a
//! module up without touching the config), else from the config's filter
//! string, else `info`. Span fields (the per-call span carries the Call-ID)
//! are printed on every line in both formats. This file only configures the
//! subscriber; it never decides what gets logged.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// `--log-format text|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("bad log filter {filter:?}: {source}")]
    Filter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global log subscriber is already installed")]
    AlreadyInstalled,
}

/// The filter that would be used: `RUST_LOG`, else `config`, else `info`.
pub fn build_filter(config: Option<&str>) -> Result<EnvFilter, LoggingError> {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let spec = env.as_deref().or(config).unwrap_or("info");
    EnvFilter::builder()
        .parse(spec)
        .map_err(|source| LoggingError::Filter {
            filter: spec.to_string(),
            source,
        })
}

/// Installs the global subscriber. Call once from `main`; a second call
/// returns [`LoggingError::AlreadyInstalled`] instead of panicking.
pub fn init_logging(format: LogFormat, filter: Option<&str>) -> Result<(), LoggingError> {
    let filter = build_filter(filter)?;
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE);
    let result = match format {
        LogFormat::Text => builder.with_target(true).try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init(),
    };
    result.map_err(|_| LoggingError::AlreadyInstalled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .expect("test buffer lock")
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn bad_filter_is_an_error_not_a_panic() {
        // Only meaningful when RUST_LOG is not set in the test environment.
        if std::env::var_os("RUST_LOG").is_none() {
            assert!(matches!(
                build_filter(Some("sip=notalevel")),
                Err(LoggingError::Filter { .. })
            ));
            assert!(build_filter(Some("info,conmutador::sip=debug")).is_ok());
        }
    }

    #[test]
    fn json_lines_carry_the_call_span() {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .json()
            .with_current_span(true)
            .flatten_event(true)
            .finish();
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!(
                "call",
                call_id = "a84b4c76e66710@pc33",
                caller = "5512345678"
            );
            let _g = span.enter();
            tracing::info!(node = "menu", "entered node");
        });
        let text = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf8");
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(line["span"]["call_id"], "a84b4c76e66710@pc33");
        assert_eq!(line["message"], "entered node");
        assert_eq!(line["node"], "menu");
    }
}
