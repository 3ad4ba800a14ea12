//! `conmutador records export --since … --format csv|jsonl`, as a library
//! function for `main.rs`.
//!
//! Storage is read in pages on a short-lived thread with its own runtime
//! (so this works from plain `main` and from inside tokio alike) and handed
//! to the caller's thread over a small channel: memory stays bounded however
//! many records there are, and the writer `out` never has to be `Send`.

use std::io::Write;
use std::sync::mpsc::sync_channel;

use chrono::{DateTime, Utc};

use super::store::Store;
use super::{Cdr, QueueEvent, RecordsConfig, RecordsError};
use crate::ops::time::to_rfc3339;

const PAGE: u32 = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

/// Which table to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKind {
    Cdr,
    QueueEvents,
}

pub(crate) enum Page {
    Cdrs(Vec<Cdr>),
    Events(Vec<QueueEvent>),
}

/// Streams every stored record of `kind` from `since` on to `each`, page by
/// page; `each` returning an error stops the reading.
pub(crate) fn for_each_page(
    cfg: &RecordsConfig,
    kind: RecordKind,
    since: DateTime<Utc>,
    mut each: impl FnMut(Page) -> Result<(), RecordsError>,
) -> Result<(), RecordsError> {
    if cfg.postgres_url.is_none() && !cfg.sqlite_path().exists() {
        return Err(RecordsError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no records database at {}", cfg.sqlite_path().display()),
        )));
    }
    let (tx, rx) = sync_channel::<Page>(2);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || -> Result<(), RecordsError> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let mut store = Store::open(cfg).await?;
                let mut after = 0;
                loop {
                    let page = match kind {
                        RecordKind::Cdr => {
                            let rows = store.cdrs_page(since, after, PAGE).await?;
                            after = rows.last().map_or(after, |(id, _)| *id);
                            Page::Cdrs(rows.into_iter().map(|(_, c)| c).collect())
                        }
                        RecordKind::QueueEvents => {
                            let rows = store.queue_events_page(since, after, PAGE).await?;
                            after = rows.last().map_or(after, |(id, _)| *id);
                            Page::Events(rows.into_iter().map(|(_, e)| e).collect())
                        }
                    };
                    let len = match &page {
                        Page::Cdrs(v) => v.len(),
                        Page::Events(v) => v.len(),
                    };
                    if len == 0 || tx.send(page).is_err() {
                        return Ok(());
                    }
                    if len < PAGE as usize {
                        return Ok(());
                    }
                }
            })
        });
        let mut consumer_result = Ok(());
        for page in rx.iter() {
            if let Err(e) = each(page) {
                consumer_result = Err(e);
                break;
            }
        }
        // Dropping the receiver (by leaving the loop) ends the reader too.
        drop(rx);
        let reader_result = reader
            .join()
            .unwrap_or_else(|_| Err(RecordsError::WriterGone));
        consumer_result.and(reader_result)
    })
}

/// Writes stored records of `kind` from `since` on to `out`; returns how many.
pub fn export(
    cfg: &RecordsConfig,
    kind: RecordKind,
    since: DateTime<Utc>,
    format: ExportFormat,
    out: &mut impl Write,
) -> Result<u64, RecordsError> {
    let mut count = 0u64;
    if format == ExportFormat::Csv {
        let header: &[&str] = match kind {
            RecordKind::Cdr => &CDR_HEADER,
            RecordKind::QueueEvents => &EVENT_HEADER,
        };
        write!(out, "{}\r\n", header.join(","))?;
    }
    for_each_page(cfg, kind, since, |page| {
        match (page, format) {
            (Page::Cdrs(v), ExportFormat::Jsonl) => {
                for c in &v {
                    json_line(out, c)?;
                }
                count += v.len() as u64;
            }
            (Page::Events(v), ExportFormat::Jsonl) => {
                for e in &v {
                    json_line(out, e)?;
                }
                count += v.len() as u64;
            }
            (Page::Cdrs(v), ExportFormat::Csv) => {
                for c in &v {
                    csv_line(out, &cdr_fields(c))?;
                }
                count += v.len() as u64;
            }
            (Page::Events(v), ExportFormat::Csv) => {
                for e in &v {
                    csv_line(out, &event_fields(e))?;
                }
                count += v.len() as u64;
            }
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(count)
}

fn json_line<T: serde::Serialize>(out: &mut impl Write, v: &T) -> Result<(), RecordsError> {
    serde_json::to_writer(&mut *out, v).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

pub const CDR_HEADER: [&str; 17] = [
    "call_id",
    "start",
    "answer",
    "end",
    "caller",
    "called",
    "plan",
    "plan_path",
    "queue",
    "wait_ms",
    "operator",
    "talk_ms",
    "disposition",
    "hangup_side",
    "hangup_cause",
    "recording",
    "transferred_by",
];

pub const EVENT_HEADER: [&str; 13] = [
    "time",
    "call_id",
    "queue",
    "agent",
    "event",
    "data1",
    "data2",
    "data3",
    "data4",
    "data5",
    "wait_ms",
    "announced_wait_ms",
    "talk_ms",
];

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_default()
}

fn cdr_fields(c: &Cdr) -> Vec<String> {
    vec![
        c.call_id.clone(),
        to_rfc3339(&c.start),
        c.answer.as_ref().map(to_rfc3339).unwrap_or_default(),
        to_rfc3339(&c.end),
        c.caller.clone(),
        c.called.clone(),
        opt(&c.plan),
        c.plan_path.join(">"),
        opt(&c.queue),
        opt(&c.wait_ms),
        opt(&c.operator),
        opt(&c.talk_ms),
        c.disposition.as_str().into(),
        c.hangup_side.as_str().into(),
        c.hangup_cause.clone(),
        opt(&c.recording),
        opt(&c.transferred_by),
    ]
}

fn event_fields(e: &QueueEvent) -> Vec<String> {
    // Asterisk writes NONE where an event has no call, queue or agent.
    let none = |v: &Option<String>| v.clone().unwrap_or_else(|| "NONE".into());
    let mut f = vec![
        to_rfc3339(&e.time),
        none(&e.call_id),
        none(&e.queue),
        none(&e.agent),
        e.event.as_str().into(),
    ];
    f.extend((0..5).map(|i| e.data.get(i).cloned().unwrap_or_default()));
    f.extend([opt(&e.wait_ms), opt(&e.announced_wait_ms), opt(&e.talk_ms)]);
    f
}

/// One CSV field per RFC 4180, defused against spreadsheet formula
/// injection: caller IDs come from the network and these files get opened
/// in spreadsheets. Plain numbers like `+5255…` are left alone.
pub fn csv_field(s: &str) -> String {
    let risky = match s.chars().next() {
        Some('=' | '@' | '\t' | '\r') => true,
        Some('+' | '-') => !s[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '.'),
        _ => false,
    };
    let s = if risky {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv_line(out: &mut impl Write, fields: &[String]) -> Result<(), RecordsError> {
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    out.write_all(line.join(",").as_bytes())?;
    out.write_all(b"\r\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting_and_formula_defusing() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("+525512345678"), "+525512345678");
        assert_eq!(csv_field("-12"), "-12");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("+cmd|x"), "'+cmd|x");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field(""), "");
    }
}
