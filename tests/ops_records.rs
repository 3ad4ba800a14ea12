//! Call records and queue events through the real writer into real storage:
//! SQLite in a temp dir, and PostgreSQL from `scripts/start-postgres.sh`
//! (`CONMUTADOR_TEST_PG_URL`; a test fails without it).

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use conmutador::ops::records::{
    self, Cdr, Disposition, ExportFormat, HangupSide, QueueEvent, QueueEventKind, RecordKind,
    RecordSink, RecordsConfig, Store,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 15, 0, 0).unwrap()
}

fn cdr(i: u32) -> Cdr {
    let start = t0() + chrono::Duration::seconds(i64::from(i));
    Cdr {
        call_id: format!("call-{i}@trunk"),
        start,
        answer: Some(start + chrono::Duration::milliseconds(120)),
        end: start + chrono::Duration::seconds(300),
        caller: "+525512345678".into(),
        called: "8009112345".into(),
        plan: Some("mexitel".into()),
        plan_path: vec![
            "inicio".into(),
            "idioma".into(),
            "menu_principal".into(),
            "cola_pasaportes".into(),
        ],
        queue: Some("pasaportes".into()),
        wait_ms: Some(42_000),
        operator: Some("op7".into()),
        talk_ms: Some(180_000),
        disposition: if i % 2 == 0 {
            Disposition::Completed
        } else {
            Disposition::Abandoned
        },
        hangup_side: HangupSide::Caller,
        // Commas, quotes and a formula: what CSV must survive.
        hangup_cause: if i == 1 {
            "=cmd,\"x\"".into()
        } else {
            "BYE".into()
        },
        recording: (i == 2).then(|| "call-2_trunk.wav".into()),
        transferred_by: (i == 3).then(|| "op2".into()),
    }
}

fn events(i: u32) -> Vec<QueueEvent> {
    let t = t0() + chrono::Duration::seconds(i64::from(i));
    let call = format!("call-{i}@trunk");
    vec![
        QueueEvent::enter_queue(t, &call, "pasaportes", "+525512345678", 1),
        QueueEvent::connect(
            t,
            &call,
            "pasaportes",
            "op7",
            15_000 + u64::from(i) * 1000,
            Some(20_000),
            2_500,
        ),
        QueueEvent::complete(
            t,
            &call,
            "pasaportes",
            "op7",
            i % 2 == 0,
            15_000,
            200_000,
            1,
        ),
    ]
}

fn cfg_sqlite(dir: &std::path::Path) -> RecordsConfig {
    RecordsConfig {
        data_dir: dir.join("data"),
        ..RecordsConfig::default()
    }
}

fn export_string(
    cfg: &RecordsConfig,
    kind: RecordKind,
    since: DateTime<Utc>,
    format: ExportFormat,
) -> (u64, String) {
    let mut out = Vec::new();
    let n = records::export(cfg, kind, since, format, &mut out).expect("export");
    (n, String::from_utf8(out).expect("utf8"))
}

/// The whole life: write through the sink, close, read back, export, rebuild.
async fn round_trip(cfg: RecordsConfig) {
    let cfg = RecordsConfig {
        batch_max: 7,
        flush_interval_ms: 3_600_000,
        buffer: 10_000,
        ..cfg
    };
    let (sink, writer) = records::start(&cfg, None).await.expect("start writer");
    for i in 0..50 {
        assert!(sink.cdr(cdr(i)));
        for ev in events(i) {
            assert!(sink.queue_event(ev));
        }
    }
    assert!(sink.queue_event(QueueEvent::agent(
        t0(),
        QueueEventKind::Pause,
        "op7",
        None,
        Some("comida")
    )));
    let report = writer.close().await;
    assert_eq!(report.written, 50 + 150 + 1, "{report:?}");
    assert_eq!(report.dropped, 0);
    // After close, the sink refuses and counts.
    assert!(!sink.cdr(cdr(99)));
    assert_eq!(sink.dropped(), 1);

    let (n, jsonl) = export_string(&cfg, RecordKind::Cdr, t0(), ExportFormat::Jsonl);
    assert_eq!(n, 50);
    let back: Vec<Cdr> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl line"))
        .collect();
    assert_eq!(
        back,
        (0..50).map(cdr).collect::<Vec<_>>(),
        "CDRs round-trip exactly"
    );

    // `since` filters by start time.
    let (n, _) = export_string(
        &cfg,
        RecordKind::Cdr,
        t0() + chrono::Duration::seconds(40),
        ExportFormat::Jsonl,
    );
    assert_eq!(n, 10);

    let (n, csv) = export_string(&cfg, RecordKind::Cdr, t0(), ExportFormat::Csv);
    assert_eq!(n, 50);
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert!(
        lines[0].starts_with("call_id,start,answer,end,caller"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        "call-0@trunk,2026-11-29T15:00:00.000Z,2026-11-29T15:00:00.120Z,2026-11-29T15:05:00.000Z,+525512345678,8009112345,mexitel,inicio>idioma>menu_principal>cola_pasaportes,pasaportes,42000,op7,180000,completed,caller,BYE,,"
    );
    assert!(
        lines[2].ends_with(",abandoned,caller,\"'=cmd,\"\"x\"\"\",,"),
        "{}",
        lines[2]
    );
    // The recording and the transferring operator close the line.
    assert!(lines[3].ends_with(",call-2_trunk.wav,"), "{}", lines[3]);
    assert!(lines[4].ends_with(",op2"), "{}", lines[4]);

    let (n, csv) = export_string(&cfg, RecordKind::QueueEvents, t0(), ExportFormat::Csv);
    assert_eq!(n, 151);
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(
        lines[1],
        "2026-11-29T15:00:00.000Z,call-0@trunk,pasaportes,NONE,ENTERQUEUE,,+525512345678,1,,,,,"
    );
    assert_eq!(
        lines[2],
        "2026-11-29T15:00:00.000Z,call-0@trunk,pasaportes,op7,CONNECT,15,,2,,,15000,20000,"
    );
    assert!(csv.contains(",NONE,op7,PAUSE,comida,,,,,,,\r\n"), "{csv}");

    let (_, jsonl) = export_string(&cfg, RecordKind::QueueEvents, t0(), ExportFormat::Jsonl);
    let back: Vec<QueueEvent> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    assert_eq!(back[..3], events(0)[..]);

    let stats =
        records::rebuild_queue_stats(&cfg, t0(), |_| Duration::from_secs(20)).expect("rebuild");
    let p = &stats["pasaportes"];
    assert_eq!(p.answered, 50);
    // Waits are 15 s + i s: within 20 s for i = 0..=5.
    assert_eq!(p.answered_within_threshold, 6);
    assert_eq!(p.handle_times.len(), 50);
    assert_eq!(p.prediction_errors_ms.front(), Some(&-5_000));
    assert_eq!(stats.len(), 1);

    // A window after everything: nothing to seed.
    let later = records::rebuild_queue_stats(&cfg, t0() + chrono::Duration::days(1), |_| {
        Duration::from_secs(20)
    })
    .expect("rebuild");
    assert!(later.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_round_trip_export_and_stats() {
    let dir = tempfile::tempdir().expect("tempdir");
    round_trip(cfg_sqlite(dir.path())).await;
    // Reopening migrates nothing new and keeps the data.
    let mut store = Store::open(&cfg_sqlite(dir.path())).await.expect("reopen");
    assert_eq!(
        store.applied_versions().await.expect("versions"),
        vec![1, 2, 3]
    );
    assert_eq!(
        store.cdrs_page(t0(), 0, 1000).await.expect("page").len(),
        50
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_flushes_on_interval_without_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RecordsConfig {
        flush_interval_ms: 50,
        batch_max: 1000,
        ..cfg_sqlite(dir.path())
    };
    let readiness = std::sync::Arc::new(conmutador::ops::http::Readiness::new());
    let (sink, writer) = records::start(&cfg, Some(readiness.clone()))
        .await
        .expect("start");
    assert!(
        readiness.report().storage_writable,
        "opening storage marks it writable"
    );
    sink.cdr(cdr(1));
    // Bounded wait for the timer-driven flush (no close, no explicit flush).
    let mut found = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let c = cfg.clone();
        found = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            records::export(&c, RecordKind::Cdr, t0(), ExportFormat::Jsonl, &mut out)
                .expect("export")
        })
        .await
        .expect("join");
        if found == 1 {
            break;
        }
    }
    assert_eq!(found, 1, "the interval flush wrote the record");
    writer.flush().await.expect("explicit flush");
    assert_eq!(writer.close().await.written, 1);
}

#[test]
fn a_full_buffer_drops_and_counts_instead_of_blocking() {
    let recorder = conmutador::ops::metrics::build_recorder();
    let handle = recorder.handle();
    let (sink, mut rx): (RecordSink, _) = RecordSink::channel(2);
    let accepted: Vec<bool> =
        metrics::with_local_recorder(&recorder, || (0..5).map(|i| sink.cdr(cdr(i))).collect());
    assert_eq!(accepted, [true, true, false, false, false]);
    assert_eq!(sink.dropped(), 3);
    let text = handle.render();
    assert!(
        text.contains(r#"conmutador_records_dropped_total{kind="cdr",reason="buffer_full"} 3"#),
        "{text}"
    );
    assert!(rx.try_recv().is_some() && rx.try_recv().is_some() && rx.try_recv().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_fields_are_capped_before_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = cfg_sqlite(dir.path());
    let (sink, writer) = records::start(&cfg, None).await.expect("start");
    let mut c = cdr(0);
    c.caller = "9".repeat(100_000);
    c.plan_path = vec!["n".into(); 10_000];
    sink.cdr(c);
    writer.close().await;
    let mut store = Store::open(&cfg).await.expect("open");
    let rows = store.cdrs_page(t0(), 0, 10).await.expect("page");
    assert_eq!(rows[0].1.caller.len(), records::MAX_FIELD_CHARS);
    assert_eq!(rows[0].1.plan_path.len(), records::MAX_PLAN_PATH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_of_a_missing_database_is_an_error_not_an_empty_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = cfg_sqlite(dir.path());
    let mut out = Vec::new();
    let err = records::export(&cfg, RecordKind::Cdr, t0(), ExportFormat::Csv, &mut out);
    assert!(err.is_err());
    assert!(
        !cfg.sqlite_path().exists(),
        "export must not create a database"
    );
}

// ------------------------------------------------------------------ PostgreSQL

/// A fresh database per test run on the server from start-postgres.sh, so
/// runs never see each other's rows.
async fn fresh_pg_database(base_url: &str) -> (String, String) {
    let base: tokio_postgres::Config = base_url.parse().expect("CONMUTADOR_TEST_PG_URL parses");
    let (client, conn) = base
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect to test server");
    tokio::spawn(conn);
    let name = format!(
        "conmutador_t_{}_{}",
        std::process::id(),
        rand::random::<u32>()
    );
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let host = match base.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = base.get_ports().first().copied().unwrap_or(5432);
    let user = base.get_user().unwrap_or("postgres");
    let password = base
        .get_password()
        .map(|p| format!(" password={}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    (
        format!("host={host} port={port} user={user}{password} dbname={name}"),
        name,
    )
}

/// The throwaway server's URL; a missing one fails the test (never a skip).
fn pg_url() -> String {
    std::env::var("CONMUTADOR_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("CONMUTADOR_TEST_PG_URL is not set: run `eval \"$(scripts/start-postgres.sh)\"` first (scripts/test.sh does)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_round_trip_export_stats_and_migrations() {
    let base = pg_url();
    let (url, name) = fresh_pg_database(&base).await;
    let cfg = RecordsConfig {
        postgres_url: Some(url.clone()),
        data_dir: "/nonexistent/never-used".into(),
        ..RecordsConfig::default()
    };

    // Two gateways migrating one empty database at once both succeed.
    let (a, b) = tokio::join!(Store::open_postgres(&url), Store::open_postgres(&url));
    let (mut a, mut b) = (a.expect("open a"), b.expect("open b"));
    assert_eq!(a.applied_versions().await.expect("versions"), vec![1, 2, 3]);
    assert_eq!(b.applied_versions().await.expect("versions"), vec![1, 2, 3]);
    assert_eq!(a.backend_name(), "postgres");
    drop((a, b));

    round_trip(cfg.clone()).await;

    // A database as a version-1 build left it (no recording column, its
    // calls without one) is migrated at open and keeps its rows.
    let (client, conn) = url
        .parse::<tokio_postgres::Config>()
        .expect("url")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute(
            "ALTER TABLE cdr DROP COLUMN recording; ALTER TABLE cdr DROP COLUMN transferred_by; DELETE FROM schema_version WHERE version >= 2",
        )
        .await
        .expect("back to version 1");
    let mut store = Store::open_postgres(&url).await.expect("migrates");
    assert_eq!(
        store.applied_versions().await.expect("versions"),
        vec![1, 2, 3]
    );
    let rows = store.cdrs_page(t0(), 0, 1000).await.expect("page");
    assert_eq!(rows.len(), 50);
    assert!(
        rows.iter()
            .all(|(_, c)| c.recording.is_none() && c.transferred_by.is_none())
    );
    drop(store);

    // A database from a newer build is refused.
    client
        .execute(
            "INSERT INTO schema_version (version, applied_ms) VALUES (99, 0)",
            &[],
        )
        .await
        .expect("insert future version");
    assert!(matches!(
        Store::open_postgres(&url).await,
        Err(records::RecordsError::SchemaTooNew { found: 99, .. })
    ));
    drop(client);

    // Clean up the per-run database.
    let (admin, conn) = base
        .parse::<tokio_postgres::Config>()
        .expect("url")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .expect("drop test database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_errors_mark_unready_keep_records_and_count_what_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RecordsConfig {
        flush_interval_ms: 3_600_000,
        ..cfg_sqlite(dir.path())
    };
    let readiness = std::sync::Arc::new(conmutador::ops::http::Readiness::new());
    let (sink, writer) = records::start(&cfg, Some(readiness.clone()))
        .await
        .expect("start");
    // Break storage under the writer's feet.
    let conn = rusqlite::Connection::open(cfg.sqlite_path()).expect("open side connection");
    conn.execute_batch("ALTER TABLE cdr RENAME TO cdr_away")
        .expect("rename");
    sink.cdr(cdr(1));
    assert!(
        writer.flush().await.is_err(),
        "the failed write is reported"
    );
    assert!(
        !readiness.report().storage_writable,
        "and readiness says so"
    );
    // Repair it: the kept record is written on the next flush.
    conn.execute_batch("ALTER TABLE cdr_away RENAME TO cdr")
        .expect("rename back");
    sink.cdr(cdr(2));
    writer.flush().await.expect("flush after repair");
    assert!(readiness.report().storage_writable);
    // Break it again and close: what cannot be written is counted as dropped.
    conn.execute_batch("ALTER TABLE cdr RENAME TO cdr_away")
        .expect("rename");
    sink.cdr(cdr(3));
    let report = writer.close().await;
    assert_eq!((report.written, report.dropped), (2, 1), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writer_reconnects_after_the_server_drops_it() {
    let base = pg_url();
    let (url, name) = fresh_pg_database(&base).await;
    let cfg = RecordsConfig {
        postgres_url: Some(url),
        flush_interval_ms: 3_600_000,
        ..RecordsConfig::default()
    };
    let readiness = std::sync::Arc::new(conmutador::ops::http::Readiness::new());
    let (sink, writer) = records::start(&cfg, Some(readiness.clone()))
        .await
        .expect("start");
    sink.cdr(cdr(1));
    writer.flush().await.expect("first write");

    // The server kills the writer's session (as a restart or failover would).
    let (admin, conn) = base
        .parse::<tokio_postgres::Config>()
        .expect("url")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'conmutador'",
            &[&name],
        )
        .await
        .expect("terminate");
    assert_eq!(killed.len(), 1, "exactly the writer's session");

    sink.cdr(cdr(2));
    // The first attempt may still meet the dead session; a later one reconnects.
    let mut ok = false;
    for _ in 0..5 {
        if writer.flush().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the writer reconnected");
    assert!(readiness.report().storage_writable);
    let report = writer.close().await;
    assert_eq!((report.written, report.dropped), (2, 0));
    let (n, _) = export_string(&cfg, RecordKind::Cdr, t0(), ExportFormat::Jsonl);
    assert_eq!(n, 2);
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .expect("drop test database");
}
