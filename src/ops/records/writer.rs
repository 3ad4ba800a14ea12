//! The batching writer: calls push records into a bounded channel with
//! `try_send` and move on; one dedicated thread (with its own small tokio
//! runtime, so blocking SQLite calls never touch the gateway's workers)
//! writes them by group commit.
//!
//! Group commit: the first record that arrives into an empty buffer starts a
//! window of `flush_interval_ms` (20 ms by default); when it closes, every
//! record received meanwhile (and whatever else already waits in the
//! channel) is written in one transaction (`batch_max` records at most per
//! transaction). An idle gateway never wakes the thread. What a crash of the
//! process (SIGKILL, OOM kill, panic abort) can lose is therefore the records
//! of the last window plus the commit in progress: about 20 ms of traffic.
//! A committed transaction survives the death of the process: SQLite runs in
//! WAL mode with `synchronous = NORMAL`, so a commit has been written to the
//! WAL file (the kernel's page cache) before it returns, and the next opener
//! replays it; only a power loss or kernel crash can undo the last commits,
//! which `synchronous = NORMAL` trades for not calling `fsync` per commit.
//! PostgreSQL makes its own commit durable before answering.
//! SIGTERM loses nothing: [`RecordWriter::close`] writes everything still
//! buffered before the process exits.
//!
//! Nothing is lost silently: a full channel, a closed writer or a storage
//! error past the retry buffer all count in `conmutador_records_dropped_total`.

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
/// After a failed write, how long the kept records wait before the next
/// attempt (instead of one attempt per arriving record).
const RETRY_PAUSE: Duration = Duration::from_secs(1);

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
                    failing: false,
                    closing: false,
                    waiting_flush: Vec::new(),
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
    /// The last write failed: retry on a pause, not on every arrival.
    failing: bool,
    /// A `Close` was taken from the channel during a group commit.
    closing: bool,
    /// Flush requests taken from the channel during a group commit.
    waiting_flush: Vec<oneshot::Sender<Result<(), String>>>,
}

impl Worker {
    fn set_writable(&self, ok: bool) {
        if let Some(r) = &self.readiness {
            r.set_storage_writable(ok);
        }
    }

    async fn run(&mut self) {
        let window = Duration::from_millis(self.cfg.flush_interval_ms.max(1));
        let batch_max = self.cfg.batch_max.max(1);
        // When the records now pending must be committed: set by the first
        // record that arrives into an empty buffer, so an idle gateway never
        // wakes this thread and a busy one commits once per window.
        let mut due: Option<tokio::time::Instant> = None;
        loop {
            let deadline = async {
                match due {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(Msg::Record(r)) => {
                        self.pending.push_back(r);
                        due.get_or_insert_with(|| tokio::time::Instant::now() + window);
                        if self.pending.len() >= batch_max && !self.failing {
                            due = self.commit(window).await;
                        }
                    }
                    Some(Msg::Flush(reply)) => {
                        let r = self.flush().await;
                        due = self.next_due(window);
                        let _ = reply.send(r.map_err(|e| e.to_string()));
                    }
                    Some(Msg::Close) | None => break,
                },
                _ = deadline => due = self.commit(window).await,
            }
            if self.closing {
                break;
            }
        }
        self.shutdown().await;
    }

    /// One group commit: everything already queued in the channel joins the
    /// records pending, and all of it is written. Returns the next deadline.
    async fn commit(&mut self, window: Duration) -> Option<tokio::time::Instant> {
        // Records that arrived while the previous batch was being written
        // ride along with this one instead of waiting a window more.
        let mut stop = false;
        while self.pending.len() < self.cfg.buffer.max(1) {
            match self.rx.try_recv() {
                Ok(Msg::Record(r)) => self.pending.push_back(r),
                Ok(Msg::Flush(reply)) => {
                    // Answered after this commit, which includes its records.
                    self.waiting_flush.push(reply);
                }
                Ok(Msg::Close) => {
                    stop = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let r = self.flush().await;
        for reply in self.waiting_flush.drain(..) {
            let _ = reply.send(r.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
        if stop {
            self.closing = true;
        }
        self.next_due(window)
    }

    /// After a write: nothing pending, no deadline; records kept by a
    /// failed write are retried after [`RETRY_PAUSE`], not on every arrival.
    fn next_due(&self, window: Duration) -> Option<tokio::time::Instant> {
        if self.pending.is_empty() {
            None
        } else if self.failing {
            Some(tokio::time::Instant::now() + RETRY_PAUSE.max(window))
        } else {
            Some(tokio::time::Instant::now() + window)
        }
    }

    async fn shutdown(&mut self) {
        // Refuse new records, then take what is already queued.
        self.rx.close();
        while let Some(msg) = self.rx.recv().await {
            match msg {
                Msg::Record(r) => self.pending.push_back(r),
                Msg::Flush(reply) => self.waiting_flush.push(reply),
                Msg::Close => {}
            }
        }
        let mut result = Ok(());
        for attempt in 1..=CLOSE_ATTEMPTS {
            result = self.flush().await.map_err(|e| e.to_string());
            if result.is_ok() {
                break;
            }
            if attempt < CLOSE_ATTEMPTS {
                tokio::time::sleep(CLOSE_RETRY_PAUSE).await;
            }
        }
        for reply in self.waiting_flush.drain(..) {
            let _ = reply.send(result.clone());
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
                self.failing = true;
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
            self.failing = false;
        }
        Ok(())
    }
}
