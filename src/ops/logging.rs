//! Log output setup: readable text for people, JSON lines for machines.
//!
//! The level filter comes from `RUST_LOG` when set (so an operator can turn a
//! module up without touching the config), else from the config's filter
//! string, else `info`. Span fields (the per-call span carries the Call-ID)
//! are printed on every line in both formats. This file only configures the
//! subscriber; it never decides what gets logged.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::util::SubscriberInitExt;

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

/// The subscriber for a format, writing to `writer`; shared by
/// [`init_logging`] and the tests so they check what production uses.
/// `ansi` colours text output (only wanted on a terminal).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_ansi(ansi && format == LogFormat::Text)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_target(true).finish()),
        // The whole span list, not only the innermost span: the Call-ID sits
        // on the outer call span and must reach lines logged in inner spans.
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(false)
                .with_span_list(true)
                .flatten_event(true)
                .finish(),
        ),
    }
}

/// Installs the global subscriber (and routes `log` records of dependencies
/// such as tokio-postgres into it). Call once from `main`; a second call
/// returns [`LoggingError::AlreadyInstalled`] instead of panicking.
pub fn init_logging(format: LogFormat, filter: Option<&str>) -> Result<(), LoggingError> {
    let filter = build_filter(filter)?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    subscriber(format, filter, std::io::stderr, ansi)
        .try_init()
        .map_err(|_| LoggingError::AlreadyInstalled)
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

    fn capture(format: LogFormat, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = subscriber(format, EnvFilter::new("debug"), move || out.clone(), false);
        tracing::subscriber::with_default(sub, f);
        String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf8")
    }

    fn call_with_inner_span() {
        let span = tracing::info_span!(
            "call",
            call_id = "a84b4c76e66710@pc33",
            caller = "5512345678"
        );
        let _g = span.enter();
        let inner = tracing::debug_span!("transaction", method = "INVITE");
        let _i = inner.enter();
        tracing::info!(node = "menu", "entered node");
    }

    #[test]
    fn json_lines_carry_the_call_id_from_an_outer_span() {
        let text = capture(LogFormat::Json, call_with_inner_span);
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(line["spans"][0]["call_id"], "a84b4c76e66710@pc33", "{text}");
        assert_eq!(line["spans"][1]["method"], "INVITE", "{text}");
        assert_eq!(line["message"], "entered node");
        assert_eq!(line["node"], "menu");
        assert_eq!(line["level"], "INFO");
    }

    #[test]
    fn text_lines_carry_the_call_id_too() {
        let text = capture(LogFormat::Text, call_with_inner_span);
        assert!(text.contains("call_id=\"a84b4c76e66710@pc33\""), "{text}");
        assert!(text.contains("entered node"), "{text}");
    }
}
