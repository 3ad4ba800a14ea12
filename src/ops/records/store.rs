//! The two storage backends behind one type, with one versioned schema.
//!
//! SQLite calls block: a [`Store`] is only ever used on the records thread
//! (see `writer.rs`) or on a short-lived thread of its own (export, stats
//! rebuild), never on the gateway's runtime. Times are stored as epoch
//! milliseconds in both backends so ranges compare the same way.
//!
//! Migrations are numbered; `schema_version` holds every applied number. A
//! database newer than this build is refused rather than written to.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio_postgres::types::ToSql;

use super::{Cdr, QueueEvent, Record, RecordsConfig, RecordsError};
use crate::ops::time::{from_millis, to_millis};

/// One schema step. `{id}` is replaced by the backend's auto-increment key.
struct Migration {
    version: i64,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: "
CREATE TABLE cdr (
    id {id},
    call_id TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    answer_ms BIGINT,
    end_ms BIGINT NOT NULL,
    caller TEXT NOT NULL,
    called TEXT NOT NULL,
    plan TEXT,
    plan_path TEXT NOT NULL,
    queue TEXT,
    wait_ms BIGINT,
    operator TEXT,
    talk_ms BIGINT,
    disposition TEXT NOT NULL,
    hangup_side TEXT NOT NULL,
    hangup_cause TEXT NOT NULL
);
CREATE INDEX cdr_start ON cdr (start_ms);
CREATE TABLE queue_event (
    id {id},
    time_ms BIGINT NOT NULL,
    call_id TEXT,
    queue TEXT,
    agent TEXT,
    event TEXT NOT NULL,
    data1 TEXT NOT NULL DEFAULT '',
    data2 TEXT NOT NULL DEFAULT '',
    data3 TEXT NOT NULL DEFAULT '',
    data4 TEXT NOT NULL DEFAULT '',
    data5 TEXT NOT NULL DEFAULT '',
    wait_ms BIGINT,
    announced_wait_ms BIGINT,
    talk_ms BIGINT
);
CREATE INDEX queue_event_time ON queue_event (time_ms);
CREATE INDEX queue_event_queue_time ON queue_event (queue, time_ms);
",
    },
    // The call recording's file name (call recording, issue 16).
    Migration {
        version: 2,
        sql: "ALTER TABLE cdr ADD COLUMN recording TEXT;",
    },
    // The operator who transferred the call (REFER), issue 16.
    Migration {
        version: 3,
        sql: "ALTER TABLE cdr ADD COLUMN transferred_by TEXT;",
    },
];

/// The newest schema this build knows.
pub const SCHEMA_VERSION: i64 = 3;

const SQLITE_ID: &str = "INTEGER PRIMARY KEY AUTOINCREMENT";
const PG_ID: &str = "BIGSERIAL PRIMARY KEY";
/// Any fixed number: serializes concurrent migrations of several gateways.
const PG_MIGRATION_LOCK: i64 = 0x636f_6e6d_7574;

const INSERT_CDR_SQLITE: &str = "INSERT INTO cdr (call_id, start_ms, answer_ms, end_ms, caller, called, plan, plan_path, queue, wait_ms, operator, talk_ms, disposition, hangup_side, hangup_cause, recording, transferred_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";
const INSERT_CDR_PG: &str = "INSERT INTO cdr (call_id, start_ms, answer_ms, end_ms, caller, called, plan, plan_path, queue, wait_ms, operator, talk_ms, disposition, hangup_side, hangup_cause, recording, transferred_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";
const INSERT_EVENT_SQLITE: &str = "INSERT INTO queue_event (time_ms, call_id, queue, agent, event, data1, data2, data3, data4, data5, wait_ms, announced_wait_ms, talk_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
const INSERT_EVENT_PG: &str = "INSERT INTO queue_event (time_ms, call_id, queue, agent, event, data1, data2, data3, data4, data5, wait_ms, announced_wait_ms, talk_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
const CDR_COLUMNS: &str = "id, call_id, start_ms, answer_ms, end_ms, caller, called, plan, plan_path, queue, wait_ms, operator, talk_ms, disposition, hangup_side, hangup_cause, recording, transferred_by";
const EVENT_COLUMNS: &str = "id, time_ms, call_id, queue, agent, event, data1, data2, data3, data4, data5, wait_ms, announced_wait_ms, talk_ms";

pub enum Store {
    Sqlite(Connection),
    Postgres {
        client: tokio_postgres::Client,
        url: String,
        /// Set when a write was abandoned midway (timeout): the session may
        /// be stuck in a transaction, so the next use starts a fresh one.
        stale: bool,
    },
}

fn ms_col(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}
fn ms_from(v: Option<i64>) -> Option<u64> {
    v.map(|v| u64::try_from(v).unwrap_or(0))
}

/// A [`CdrRow`] from a result row in `CDR_COLUMNS` order (id first), with
/// either backend's getter: `cdr_row!(r.get)` for rusqlite,
/// `cdr_row!(r.try_get)` for tokio-postgres. One column map for both.
macro_rules! cdr_row {
    ($r:ident . $get:ident) => {
        CdrRow {
            call_id: $r.$get(1)?,
            start_ms: $r.$get(2)?,
            answer_ms: $r.$get(3)?,
            end_ms: $r.$get(4)?,
            caller: $r.$get(5)?,
            called: $r.$get(6)?,
            plan: $r.$get(7)?,
            plan_path: $r.$get(8)?,
            queue: $r.$get(9)?,
            wait_ms: $r.$get(10)?,
            operator: $r.$get(11)?,
            talk_ms: $r.$get(12)?,
            disposition: $r.$get(13)?,
            hangup_side: $r.$get(14)?,
            hangup_cause: $r.$get(15)?,
            recording: $r.$get(16)?,
            transferred_by: $r.$get(17)?,
        }
    };
}

/// An [`EventRow`] from a result row in `EVENT_COLUMNS` order, like
/// `cdr_row!`.
macro_rules! event_row {
    ($r:ident . $get:ident) => {
        EventRow {
            time_ms: $r.$get(1)?,
            call_id: $r.$get(2)?,
            queue: $r.$get(3)?,
            agent: $r.$get(4)?,
            event: $r.$get(5)?,
            data: [
                $r.$get(6)?,
                $r.$get(7)?,
                $r.$get(8)?,
                $r.$get(9)?,
                $r.$get(10)?,
            ],
            wait_ms: $r.$get(11)?,
            announced_wait_ms: $r.$get(12)?,
            talk_ms: $r.$get(13)?,
        }
    };
}

/// Owned column values of a CDR, shared by both backends.
struct CdrRow {
    call_id: String,
    start_ms: i64,
    answer_ms: Option<i64>,
    end_ms: i64,
    caller: String,
    called: String,
    plan: Option<String>,
    plan_path: String,
    queue: Option<String>,
    wait_ms: Option<i64>,
    operator: Option<String>,
    talk_ms: Option<i64>,
    disposition: String,
    hangup_side: String,
    hangup_cause: String,
    recording: Option<String>,
    transferred_by: Option<String>,
}

impl CdrRow {
    fn from_cdr(c: &Cdr) -> Self {
        Self {
            call_id: c.call_id.clone(),
            start_ms: to_millis(&c.start),
            answer_ms: c.answer.as_ref().map(to_millis),
            end_ms: to_millis(&c.end),
            caller: c.caller.clone(),
            called: c.called.clone(),
            plan: c.plan.clone(),
            plan_path: serde_json::to_string(&c.plan_path).expect("a Vec<String> serializes"),
            queue: c.queue.clone(),
            wait_ms: ms_col(c.wait_ms),
            operator: c.operator.clone(),
            talk_ms: ms_col(c.talk_ms),
            disposition: c.disposition.as_str().to_string(),
            hangup_side: c.hangup_side.as_str().to_string(),
            hangup_cause: c.hangup_cause.clone(),
            recording: c.recording.clone(),
            transferred_by: c.transferred_by.clone(),
        }
    }

    fn into_cdr(self) -> Result<Cdr, RecordsError> {
        Ok(Cdr {
            call_id: self.call_id,
            start: from_millis(self.start_ms),
            answer: self.answer_ms.map(from_millis),
            end: from_millis(self.end_ms),
            caller: self.caller,
            called: self.called,
            plan: self.plan,
            plan_path: serde_json::from_str(&self.plan_path)
                .map_err(|e| RecordsError::CorruptRow(format!("plan_path: {e}")))?,
            queue: self.queue,
            wait_ms: ms_from(self.wait_ms),
            operator: self.operator,
            talk_ms: ms_from(self.talk_ms),
            disposition: self.disposition.parse()?,
            hangup_side: self.hangup_side.parse()?,
            hangup_cause: self.hangup_cause,
            recording: self.recording,
            transferred_by: self.transferred_by,
        })
    }
}

struct EventRow {
    time_ms: i64,
    call_id: Option<String>,
    queue: Option<String>,
    agent: Option<String>,
    event: String,
    data: [String; 5],
    wait_ms: Option<i64>,
    announced_wait_ms: Option<i64>,
    talk_ms: Option<i64>,
}

impl EventRow {
    fn from_event(e: &QueueEvent) -> Self {
        let mut data: [String; 5] = Default::default();
        for (slot, v) in data.iter_mut().zip(&e.data) {
            slot.clone_from(v);
        }
        Self {
            time_ms: to_millis(&e.time),
            call_id: e.call_id.clone(),
            queue: e.queue.clone(),
            agent: e.agent.clone(),
            event: e.event.as_str().to_string(),
            data,
            wait_ms: ms_col(e.wait_ms),
            announced_wait_ms: ms_col(e.announced_wait_ms),
            talk_ms: ms_col(e.talk_ms),
        }
    }

    fn into_event(self) -> Result<QueueEvent, RecordsError> {
        let mut data: Vec<String> = self.data.into();
        // Trailing empty fields were padding, not data.
        while data.last().is_some_and(String::is_empty) {
            data.pop();
        }
        Ok(QueueEvent {
            time: from_millis(self.time_ms),
            call_id: self.call_id,
            queue: self.queue,
            agent: self.agent,
            event: self.event.parse()?,
            data,
            wait_ms: ms_from(self.wait_ms),
            announced_wait_ms: ms_from(self.announced_wait_ms),
            talk_ms: ms_from(self.talk_ms),
        })
    }
}

/// One record's column values for PostgreSQL.
enum PgRow {
    Cdr(CdrRow),
    Event(EventRow),
}

impl PgRow {
    /// (is a CDR, the insert's parameters in column order).
    fn params(&self) -> (bool, Vec<&(dyn ToSql + Sync)>) {
        match self {
            PgRow::Cdr(r) => (
                true,
                vec![
                    &r.call_id,
                    &r.start_ms,
                    &r.answer_ms,
                    &r.end_ms,
                    &r.caller,
                    &r.called,
                    &r.plan,
                    &r.plan_path,
                    &r.queue,
                    &r.wait_ms,
                    &r.operator,
                    &r.talk_ms,
                    &r.disposition,
                    &r.hangup_side,
                    &r.hangup_cause,
                    &r.recording,
                    &r.transferred_by,
                ],
            ),
            PgRow::Event(r) => {
                let [d1, d2, d3, d4, d5] = &r.data;
                (
                    false,
                    vec![
                        &r.time_ms,
                        &r.call_id,
                        &r.queue,
                        &r.agent,
                        &r.event,
                        d1,
                        d2,
                        d3,
                        d4,
                        d5,
                        &r.wait_ms,
                        &r.announced_wait_ms,
                        &r.talk_ms,
                    ],
                )
            }
        }
    }
}

/// Polls every future together until all succeed or one fails (a small
/// `join_all`, to avoid a dependency for one call site).
async fn all_ok<F, T, E>(futures: Vec<F>) -> Result<(), E>
where
    F: Future<Output = Result<T, E>>,
{
    let mut futures: Vec<Option<std::pin::Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in futures.iter_mut() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(Ok(_)) => *slot = None,
                    std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(Ok(()))
        }
    })
    .await
}

impl Store {
    /// PostgreSQL when a URL is configured, else SQLite under the data dir
    /// (created if missing). Migrates to the current schema.
    pub async fn open(cfg: &RecordsConfig) -> Result<Store, RecordsError> {
        match &cfg.postgres_url {
            Some(url) => Self::open_postgres(url).await,
            None => {
                std::fs::create_dir_all(&cfg.data_dir)?;
                Self::open_sqlite(&cfg.sqlite_path())
            }
        }
    }

    pub fn open_sqlite(path: &Path) -> Result<Store, RecordsError> {
        let mut conn = Connection::open(path)?;
        // WAL lets `records export` read while the gateway writes; NORMAL
        // sync loses at most the last transaction on power loss, which the
        // batch window already allows.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate_sqlite(&mut conn)?;
        Ok(Store::Sqlite(conn))
    }

    /// Must run inside a tokio runtime: the connection task is spawned on it.
    pub async fn open_postgres(url: &str) -> Result<Store, RecordsError> {
        let mut client = connect_pg(url).await?;
        migrate_pg(&mut client).await?;
        Ok(Store::Postgres {
            client,
            url: url.to_string(),
            stale: false,
        })
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres { .. } => "postgres",
        }
    }

    /// Every applied migration number, ascending.
    pub async fn applied_versions(&mut self) -> Result<Vec<i64>, RecordsError> {
        match self {
            Store::Sqlite(c) => {
                let mut st = c.prepare("SELECT version FROM schema_version ORDER BY version")?;
                let rows = st.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Store::Postgres { client, .. } => Ok(client
                .query("SELECT version FROM schema_version ORDER BY version", &[])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect()),
        }
    }

    /// Reconnects a PostgreSQL store whose connection dropped (server
    /// restart); a no-op for SQLite.
    pub async fn ensure_connected(&mut self) -> Result<(), RecordsError> {
        if let Store::Postgres { client, url, stale } = self
            && (*stale || client.is_closed())
        {
            *client = connect_pg(url).await?;
            *stale = false;
        }
        Ok(())
    }

    /// Forces a reconnect before the next PostgreSQL use (after a write was
    /// cancelled midway); a no-op for SQLite.
    pub fn mark_stale(&mut self) {
        if let Store::Postgres { stale, .. } = self {
            *stale = true;
        }
    }

    /// Writes all records in one transaction: all or nothing.
    pub async fn write_batch(&mut self, records: &[Record]) -> Result<(), RecordsError> {
        match self {
            Store::Sqlite(conn) => {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                {
                    let mut cdr = tx.prepare_cached(INSERT_CDR_SQLITE)?;
                    let mut ev = tx.prepare_cached(INSERT_EVENT_SQLITE)?;
                    for r in records {
                        match r {
                            Record::Cdr(c) => {
                                let r = CdrRow::from_cdr(c);
                                cdr.execute(params![
                                    r.call_id,
                                    r.start_ms,
                                    r.answer_ms,
                                    r.end_ms,
                                    r.caller,
                                    r.called,
                                    r.plan,
                                    r.plan_path,
                                    r.queue,
                                    r.wait_ms,
                                    r.operator,
                                    r.talk_ms,
                                    r.disposition,
                                    r.hangup_side,
                                    r.hangup_cause,
                                    r.recording,
                                    r.transferred_by
                                ])?;
                            }
                            Record::QueueEvent(e) => {
                                let r = EventRow::from_event(e);
                                let [d1, d2, d3, d4, d5] = &r.data;
                                ev.execute(params![
                                    r.time_ms,
                                    r.call_id,
                                    r.queue,
                                    r.agent,
                                    r.event,
                                    d1,
                                    d2,
                                    d3,
                                    d4,
                                    d5,
                                    r.wait_ms,
                                    r.announced_wait_ms,
                                    r.talk_ms
                                ])?;
                            }
                        }
                    }
                }
                tx.commit()?;
                Ok(())
            }
            Store::Postgres { client, .. } => {
                let tx = client.transaction().await?;
                let (cdr, ev) =
                    tokio::try_join!(tx.prepare(INSERT_CDR_PG), tx.prepare(INSERT_EVENT_PG))?;
                // Owned column values first; the statements borrow them.
                let rows: Vec<PgRow> = records
                    .iter()
                    .map(|r| match r {
                        Record::Cdr(c) => PgRow::Cdr(CdrRow::from_cdr(c)),
                        Record::QueueEvent(e) => PgRow::Event(EventRow::from_event(e)),
                    })
                    .collect();
                let params: Vec<(bool, Vec<&(dyn ToSql + Sync)>)> =
                    rows.iter().map(PgRow::params).collect();
                // All inserts of the batch go out at once (tokio-postgres
                // pipelines requests polled together): a batch costs a few
                // round trips, not one per record, so a busy server or a
                // starved machine does not stretch the group-commit window.
                let inserts = params
                    .iter()
                    .map(|(is_cdr, p)| tx.execute(if *is_cdr { &cdr } else { &ev }, p))
                    .collect();
                all_ok(inserts).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// CDRs that started at or after `since`, with id above `after_id`, in
    /// id order: a page of at most `limit`, so readers stay bounded.
    pub async fn cdrs_page(
        &mut self,
        since: DateTime<Utc>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, Cdr)>, RecordsError> {
        let since = to_millis(&since);
        let limit = i64::from(limit);
        let rows: Vec<(i64, CdrRow)> = match self {
            Store::Sqlite(c) => {
                let sql = format!(
                    "SELECT {CDR_COLUMNS} FROM cdr WHERE start_ms >= ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                );
                let mut st = c.prepare_cached(&sql)?;
                let rows = st.query_map(params![since, after_id, limit], |r| {
                    Ok((r.get(0)?, cdr_row!(r.get)))
                })?;
                rows.collect::<Result<_, _>>()?
            }
            Store::Postgres { client, .. } => {
                let sql = format!(
                    "SELECT {CDR_COLUMNS} FROM cdr WHERE start_ms >= $1 AND id > $2 ORDER BY id LIMIT $3"
                );
                client
                    .query(&sql, &[&since, &after_id, &limit])
                    .await?
                    .into_iter()
                    .map(|r| Ok::<_, tokio_postgres::Error>((r.try_get(0)?, cdr_row!(r.try_get))))
                    .collect::<Result<_, _>>()?
            }
        };
        rows.into_iter()
            .map(|(id, r)| Ok((id, r.into_cdr()?)))
            .collect()
    }

    /// Queue events at or after `since`, paged like [`Store::cdrs_page`].
    pub async fn queue_events_page(
        &mut self,
        since: DateTime<Utc>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, QueueEvent)>, RecordsError> {
        let since = to_millis(&since);
        let limit = i64::from(limit);
        let rows: Vec<(i64, EventRow)> = match self {
            Store::Sqlite(c) => {
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM queue_event WHERE time_ms >= ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                );
                let mut st = c.prepare_cached(&sql)?;
                let rows = st.query_map(params![since, after_id, limit], |r| {
                    Ok((r.get(0)?, event_row!(r.get)))
                })?;
                rows.collect::<Result<_, _>>()?
            }
            Store::Postgres { client, .. } => {
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM queue_event WHERE time_ms >= $1 AND id > $2 ORDER BY id LIMIT $3"
                );
                client
                    .query(&sql, &[&since, &after_id, &limit])
                    .await?
                    .into_iter()
                    .map(|r| Ok::<_, tokio_postgres::Error>((r.try_get(0)?, event_row!(r.try_get))))
                    .collect::<Result<_, _>>()?
            }
        };
        rows.into_iter()
            .map(|(id, r)| Ok((id, r.into_event()?)))
            .collect()
    }
}

async fn connect_pg(url: &str) -> Result<tokio_postgres::Client, RecordsError> {
    let mut config: tokio_postgres::Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(5));
    }
    config.application_name("conmutador");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}

const SCHEMA_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)";

fn check_not_newer(current: i64) -> Result<(), RecordsError> {
    if current > SCHEMA_VERSION {
        return Err(RecordsError::SchemaTooNew {
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    Ok(())
}

fn migrate_sqlite(conn: &mut Connection) -> Result<(), RecordsError> {
    // IMMEDIATE takes the write lock up front, so two processes opening the
    // same file cannot both apply a migration.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA_VERSION_TABLE)?;
    let current: i64 = tx
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .optional()?
        .flatten()
        .unwrap_or(0);
    check_not_newer(current)?;
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.execute_batch(&m.sql.replace("{id}", SQLITE_ID))?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_ms) VALUES (?1, ?2)",
            params![m.version, to_millis(&Utc::now())],
        )?;
        tracing::info!(version = m.version, "records: sqlite schema migrated");
    }
    tx.commit()?;
    Ok(())
}

async fn migrate_pg(client: &mut tokio_postgres::Client) -> Result<(), RecordsError> {
    let tx = client.transaction().await?;
    // Several gateways may start at once against one database.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PG_MIGRATION_LOCK])
        .await?;
    tx.batch_execute(SCHEMA_VERSION_TABLE).await?;
    let current: Option<i64> = tx
        .query_one("SELECT MAX(version) FROM schema_version", &[])
        .await?
        .get(0);
    let current = current.unwrap_or(0);
    check_not_newer(current)?;
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(&m.sql.replace("{id}", PG_ID)).await?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_ms) VALUES ($1, $2)",
            &[&m.version, &to_millis(&Utc::now())],
        )
        .await?;
        tracing::info!(version = m.version, "records: postgres schema migrated");
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_up_to_the_current_version() {
        assert!(
            MIGRATIONS
                .windows(2)
                .all(|w| w[0].version + 1 == w[1].version)
        );
        assert_eq!(MIGRATIONS.first().map(|m| m.version), Some(1));
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }

    /// A database made by a build that knew only version 1 (with a call
    /// in it) gains the recording and transfer columns and keeps its rows.
    #[tokio::test]
    async fn a_version_1_database_is_migrated_to_the_recording_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.sqlite3");
        {
            let conn = Connection::open(&path).expect("create");
            conn.execute_batch(SCHEMA_VERSION_TABLE)
                .expect("version table");
            conn.execute_batch(&MIGRATIONS[0].sql.replace("{id}", SQLITE_ID))
                .expect("v1 schema");
            conn.execute("INSERT INTO schema_version VALUES (1, 0)", [])
                .expect("v1 applied");
            conn.execute(
                "INSERT INTO cdr (call_id, start_ms, end_ms, caller, called, plan_path, disposition, hangup_side, hangup_cause) VALUES ('old', 0, 1, 'a', 'b', '[]', 'completed', 'caller', 'BYE')",
                [],
            )
            .expect("an old call");
        }
        let mut store = Store::open_sqlite(&path).expect("migrates");
        assert_eq!(store.applied_versions().await.unwrap(), vec![1, 2, 3]);
        let mut cdr = store.cdrs_page(from_millis(0), 0, 10).await.unwrap()[0]
            .1
            .clone();
        assert_eq!(
            (cdr.call_id.as_str(), cdr.recording.as_deref()),
            ("old", None)
        );
        cdr.call_id = "new".into();
        cdr.recording = Some("new.wav".into());
        cdr.transferred_by = Some("op1".into());
        store
            .write_batch(&[Record::Cdr(Box::new(cdr))])
            .await
            .expect("write with the new column");
        let rows = store.cdrs_page(from_millis(0), 0, 10).await.unwrap();
        assert_eq!(rows[1].1.recording.as_deref(), Some("new.wav"));
        assert_eq!(rows[1].1.transferred_by.as_deref(), Some("op1"));
    }

    #[test]
    fn sqlite_refuses_a_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.sqlite3");
        drop(Store::open_sqlite(&path).expect("fresh open"));
        let conn = Connection::open(&path).expect("reopen");
        conn.execute(
            "INSERT INTO schema_version (version, applied_ms) VALUES (?1, 0)",
            [SCHEMA_VERSION + 1],
        )
        .expect("insert future version");
        drop(conn);
        match Store::open_sqlite(&path) {
            Err(RecordsError::SchemaTooNew { found, known }) => {
                assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION))
            }
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("opened a database from the future"),
        }
    }
}
