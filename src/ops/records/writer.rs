//! The batching writer: calls push records into a bounded channel with
//! `try_send` and move on; one dedicated thread (with its own small tokio
//! runtime, so blocking SQLite calls never touch the gateway's workers)
//! writes them in transactions every `flush_interval_ms` or `batch_max`
//! records, whichever comes first.
//!
//! Nothing is lost silently: a full channel, a closed writer or a storage
//! error past the retry buffer all count in `conmutador_records_dropped_total`.
//! [`RecordWriter::close`] writes everything still buffered before returning.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::store::Store;
use super::{Cdr, QueueEvent, Record, RecordsConfig, RecordsError};
use crate::ops::http::Readiness;
use crate::ops::metrics::{RECORDS_DROPPED_TOTAL, RECORDS_WRITTEN_TOTAL};

/// Longest one batch write (with reconnect) may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries of the final flush at shutdown before giving up on the rest.
const CLOSE_ATTEMPTS: u32 = 3;
const CLOSE_RETRY_PAUSE: Duration = Duration::from_millis(200);

enum Msg {
    Record(Record),
    Flush(oneshot::Sender<Result<(), String>>),
    Close,
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
}

/// Totals of one writer's life, returned by [`RecordWriter::close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterReport {
    pub written: u64,
    pub dropped: u64,
}

/// The handle calls keep: cheap to clone, never blocks, never fails loudly.
#[derive(Clone)]
pub struct RecordSink {
    tx: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
}

fn count_drop(counters: &Counters, kind: &'static str, reason: &'static str, n: u64) {
    counters.dropped.fetch_add(n, Ordering::Relaxed);
    metrics::counter!(RECORDS_DROPPED_TOTAL, "kind" => kind, "reason" => reason).increment(n);
}

impl RecordSink {
    /// Queues a record for writing. Returns `false` (and counts it) when the
    /// buffer is full or the writer has stopped; the call goes on either way.
    pub fn record(&self, record: Record) -> bool {
        let kind = record.kind();
        let record = match record {
            Record::Cdr(c) => Record::Cdr(Box::new(c.sanitized())),
            Record::QueueEvent(e) => Record::QueueEvent(Box::new(e.sanitized())),
        };
        match self.tx.try_send(Msg::Record(record)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                count_drop(&self.counters, kind, "buffer_full", 1);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                count_drop(&self.counters, kind, "closed", 1);
                false
            }
        }
    }

    pub fn cdr(&self, cdr: Cdr) -> bool {
        self.record(Record::Cdr(Box::new(cdr)))
    }

    pub fn queue_event(&self, event: QueueEvent) -> bool {
        self.record(Record::QueueEvent(Box::new(event)))
    }

    /// Records dropped through this sink and its clones so far.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// A sink with no storage behind it, for other rooms' tests: what they
    /// record can be read back from the receiver.
    pub fn channel(capacity: usize) -> (RecordSink, RecordReceiver) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            RecordSink {
                tx,
                counters: Arc::default(),
            },
            RecordReceiver { rx },
        )
    }
}

/// The other end of [`RecordSink::channel`].
pub struct RecordReceiver {
    rx: mpsc::Receiver<Msg>,
}

impl RecordReceiver {
    /// The next record already sent, if any.
    pub fn try_recv(&mut self) -> Option<Record> {
        loop {
            match self.rx.try_recv().ok()? {
                Msg::Record(r) => return Some(r),
                Msg::Flush(reply) => {
                    let _ = reply.send(Ok(()));
                }
                Msg::Close => {}
            }
        }
    }
}

/// Owns the writer thread. Dropping it without [`close`](Self::close) leaves
/// the thread running until every sink is dropped, then it flushes and ends.
pub struct RecordWriter {
    tx: mpsc::Sender<Msg>,
    done: oneshot::Receiver<WriterReport>,
    thread: Option<std::thread::JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl RecordWriter {
    /// Writes whatever is pending now and reports whether storage took it.
    pub async fn flush(&self) -> Result<(), RecordsError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Msg::Flush(reply))
            .await
            .map_err(|_| RecordsError::WriterGone)?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(RecordsError::FlushFailed(e)),
            Err(_) => Err(RecordsError::WriterGone),
        }
    }

    /// Stops accepting records, writes everything buffered, joins the thread.
    pub async fn close(mut self) -> WriterReport {
        // If the thread already ended the send fails; the report still comes.
        let _ = self.tx.send(Msg::Close).await;
        let report = (&mut self.done).await.unwrap_or(WriterReport {
            written: self.counters.written.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
        });
        if let Some(t) = self.thread.take() {
            // The thread has sent its report, so this join is immediate.
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        report
    }
}

/// Opens storage (migrating it) on a new thread and starts writing.
/// Errors opening storage are returned here, at start-up, not later.
pub async fn start(
    cfg: &RecordsConfig,
    readiness: Option<Arc<Readiness>>,
) -> Result<(RecordSink, RecordWriter), RecordsError> {
    let (tx, rx) = mpsc::channel(cfg.buffer.max(1));
    let counters = Arc::new(Counters::default());
    let (opened_tx, opened_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    let cfg = cfg.clone();
    let thread_counters = counters.clone();
    let thread = std::thread::Builder::new()
        .name("conmutador-records".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = opened_tx.send(Err(RecordsError::Io(e)));
                    return;
                }
            };
            rt.block_on(async move {
                let store = match Store::open(&cfg).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                let mut w = Worker {
                    store,
                    cfg,
                    rx,
                    pending: VecDeque::new(),
                    counters: thread_counters,
                    readiness,
                };
                // Readiness first, so whoever awaits start() sees it already set.
                w.set_writable(true);
                let _ = opened_tx.send(Ok(()));
                w.run().await;
                let report = WriterReport {
                    written: w.counters.written.load(Ordering::Relaxed),
                    dropped: w.counters.dropped.load(Ordering::Relaxed),
                };
                let _ = done_tx.send(report);
            });
        })?;
    match opened_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => return Err(RecordsError::WriterGone),
    }
    let sink = RecordSink {
        tx: tx.clone(),
        counters: counters.clone(),
    };
    Ok((
        sink,
        RecordWriter {
            tx,
            done: done_rx,
            thread: Some(thread),
            counters,
        },
    ))
}

struct Worker {
    store: Store,
    cfg: RecordsConfig,
    rx: mpsc::Receiver<Msg>,
    pending: VecDeque<Record>,
    counters: Arc<Counters>,
    readiness: Option<Arc<Readiness>>,
}

impl Worker {
    fn set_writable(&self, ok: bool) {
        if let Some(r) = &self.readiness {
            r.set_storage_writable(ok);
        }
    }

    async fn run(&mut self) {
        let period = Duration::from_millis(self.cfg.flush_interval_ms.max(1));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let batch_max = self.cfg.batch_max.max(1);
        // After a failure, wait for the next tick instead of retrying on
        // every record that arrives.
        let mut failing = false;
        loop {
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(Msg::Record(r)) => {
                        self.pending.push_back(r);
                        if !failing && self.pending.len() >= batch_max {
                            failing = self.flush().await.is_err();
                        }
                    }
                    Some(Msg::Flush(reply)) => {
                        let r = self.flush().await;
                        failing = r.is_err();
                        let _ = reply.send(r.map_err(|e| e.to_string()));
                    }
                    Some(Msg::Close) | None => break,
                },
                _ = tick.tick() => {
                    if !self.pending.is_empty() {
                        failing = self.flush().await.is_err();
                    }
                }
            }
        }
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        // Refuse new records, then take what is already queued.
        self.rx.close();
        while let Some(msg) = self.rx.recv().await {
            match msg {
                Msg::Record(r) => self.pending.push_back(r),
                Msg::Flush(reply) => {
                    let _ = reply.send(Ok(()));
                }
                Msg::Close => {}
            }
        }
        for attempt in 1..=CLOSE_ATTEMPTS {
            if self.flush().await.is_ok() {
                return;
            }
            if attempt < CLOSE_ATTEMPTS {
                tokio::time::sleep(CLOSE_RETRY_PAUSE).await;
            }
        }
        for r in self.pending.drain(..) {
            count_drop(&self.counters, r.kind(), "storage_error", 1);
        }
    }

    /// Writes everything pending, `batch_max` per transaction. On error the
    /// unwritten records stay pending, but never more than `buffer` of them.
    async fn flush(&mut self) -> Result<(), RecordsError> {
        let batch_max = self.cfg.batch_max.max(1);
        while !self.pending.is_empty() {
            let n = self.pending.len().min(batch_max);
            let batch: Vec<Record> = self.pending.range(..n).cloned().collect();
            let attempt = async {
                self.store.ensure_connected().await?;
                self.store.write_batch(&batch).await
            };
            // A server that stops answering (no RST, no FIN) must not wedge
            // the writer forever; SQLite's own busy timeout covers files.
            let result = match tokio::time::timeout(WRITE_TIMEOUT, attempt).await {
                Ok(r) => r,
                Err(_) => {
                    self.store.mark_stale();
                    Err(RecordsError::FlushFailed(format!(
                        "write took over {WRITE_TIMEOUT:?}"
                    )))
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, pending = self.pending.len(), backend = self.store.backend_name(), "records: write failed");
                self.set_writable(false);
                let cap = self.cfg.buffer.max(batch_max);
                while self.pending.len() > cap {
                    if let Some(r) = self.pending.pop_front() {
                        count_drop(&self.counters, r.kind(), "storage_error", 1);
                    }
                }
                return Err(e);
            }
            let mut cdrs = 0;
            for r in self.pending.drain(..n) {
                if matches!(r, Record::Cdr(_)) {
                    cdrs += 1;
                }
            }
            let events = n as u64 - cdrs;
            self.counters.written.fetch_add(n as u64, Ordering::Relaxed);
            if cdrs > 0 {
                metrics::counter!(RECORDS_WRITTEN_TOTAL, "kind" => "cdr").increment(cdrs);
            }
            if events > 0 {
                metrics::counter!(RECORDS_WRITTEN_TOTAL, "kind" => "queue_event").increment(events);
            }
            self.set_writable(true);
        }
        Ok(())
    }
}
