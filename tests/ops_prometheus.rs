//! A real Prometheus server (Debian's `prometheus`) on loopback scrapes the
//! ops listener, evaluates the shipped alert rules against it, and answers
//! queries for the queue and call series. The integrator's end-to-end test
//! does the same against the running gateway during calls; this one pins the
//! exposition format, the histogram buckets and the rules to what a real
//! Prometheus accepts.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conmutador::ops::http::{
    self, AdminBackend, AdminError, CallView, DrainStatus, HttpState, OperatorView, QueueView,
    Readiness, ReloadReport, RemovedCaller,
};
use conmutador::ops::metrics as m;
use serde_json::Value;

mod ops_support;
#[allow(dead_code)] // this test queries over its own async client
#[path = "common/prometheus.rs"]
mod prometheus;
use ops_support::req;
use prometheus::Prometheus;

struct NoCalls;

impl AdminBackend for NoCalls {
    async fn queues(&self) -> Vec<QueueView> {
        Vec::new()
    }
    async fn operators(&self) -> Vec<OperatorView> {
        Vec::new()
    }
    async fn calls(&self) -> Vec<CallView> {
        Vec::new()
    }
    async fn pause(&self, operator: String, _: Option<String>) -> Result<OperatorView, AdminError> {
        Err(AdminError::NotFound(operator))
    }
    async fn unpause(&self, operator: String) -> Result<OperatorView, AdminError> {
        Err(AdminError::NotFound(operator))
    }
    async fn logout(&self, operator: String) -> Result<OperatorView, AdminError> {
        Err(AdminError::NotFound(operator))
    }
    async fn login(&self, operator: String) -> Result<OperatorView, AdminError> {
        Err(AdminError::NotFound(operator))
    }
    async fn remove_caller(&self, _: String, call_id: String) -> Result<RemovedCaller, AdminError> {
        Err(AdminError::NotFound(call_id))
    }
    async fn reload(&self) -> ReloadReport {
        ReloadReport {
            ok: true,
            plans: 0,
            warnings: vec![],
            errors: vec![],
        }
    }
    async fn drain(&self) -> DrainStatus {
        DrainStatus {
            draining: true,
            active_calls: 0,
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn query(prom: SocketAddr, q: &str) -> Vec<Value> {
    let r = req(
        prom,
        "GET",
        &format!("/api/v1/query?query={}", urlencode(q)),
        None,
        None,
    )
    .await;
    let v = r.json();
    assert_eq!(v["status"], "success", "{q}: {}", r.body);
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_scrapes_the_ops_listener_and_runs_the_alert_rules() {
    assert!(
        Command::new("prometheus").arg("--version").output().is_ok(),
        "prometheus is missing: apt-get install -y prometheus (scripts/test.sh does)"
    );

    // The ops listener with a few call and queue series.
    let recorder = m::build_recorder();
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!(m::CALLS_STARTED_TOTAL).increment(3);
        metrics::gauge!(m::CALLS_ACTIVE, "state" => "bridged").set(2.0);
        metrics::gauge!(m::QUEUE_CALLERS_WAITING, "queue" => "pasaportes").set(4.0);
        metrics::gauge!(m::QUEUE_OLDEST_WAIT_SECONDS, "queue" => "pasaportes").set(75.0);
        metrics::gauge!(m::QUEUE_SERVICE_LEVEL_RATIO, "queue" => "pasaportes").set(0.85);
        metrics::gauge!(m::QUEUE_ABANDON_RATIO, "queue" => "pasaportes").set(0.05);
        metrics::gauge!(m::OPERATORS, "queue" => "pasaportes", "state" => "available").set(2.0);
        for w in [12.0, 25.0, 40.0] {
            metrics::histogram!(m::QUEUE_WAIT_ANSWERED_SECONDS, "queue" => "pasaportes").record(w);
        }
        metrics::histogram!(m::QUEUE_WAIT_PREDICTION_ERROR_SECONDS, "queue" => "pasaportes")
            .record(-12.0);
        metrics::counter!(m::QUEUE_CALLERS_TOTAL, "queue" => "pasaportes", "outcome" => "answered")
            .increment(3);
    });
    let state = HttpState::new(
        recorder.handle(),
        Arc::new(Readiness::new()),
        "t",
        Arc::new(NoCalls),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let gateway = listener.local_addr().expect("addr");
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(http::serve(listener, state, async move {
        let _ = stopped.await;
    }));

    // Prometheus scraping it every second and evaluating the shipped rules.
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/prometheus/alerts.yml");
    // Every rule of the shipped file, however many it has.
    let shipped = std::fs::read_to_string(&rules)
        .expect("rules file")
        .matches("- alert:")
        .count();
    assert!(shipped >= 8, "{shipped}");
    let server = Prometheus::start(gateway, Some(&rules));
    let prom = server.addr;

    // Bounded wait for the first scrape and the first rule evaluation.
    let deadline = Instant::now() + Duration::from_secs(60);
    let waiting = loop {
        assert!(
            Instant::now() < deadline,
            "no scrape within 60 s; prometheus log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        if tokio::net::TcpStream::connect(prom).await.is_err() {
            continue;
        }
        let r = query(
            prom,
            r#"conmutador_queue_callers_waiting{job="conmutador", queue="pasaportes"}"#,
        )
        .await;
        if let Some(v) = r.first() {
            break v["value"][1].as_str().unwrap_or_default().to_string();
        }
    };
    assert_eq!(waiting, "4");

    let up = query(prom, r#"up{job="conmutador"}"#).await;
    assert_eq!(up[0]["value"][1], "1");
    let p50 = query(
        prom,
        "histogram_quantile(0.5, conmutador_queue_wait_answered_seconds_bucket)",
    )
    .await;
    let p50: f64 = p50[0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("p50 value");
    assert!(
        (20.0..=30.0).contains(&p50),
        "p50 of 12/25/40 s lands in the 20-30 s bucket: {p50}"
    );
    let err = query(
        prom,
        r#"conmutador_queue_wait_prediction_error_seconds_bucket{le="-10"}"#,
    )
    .await;
    assert_eq!(
        err[0]["value"][1], "1",
        "negative buckets survive the scrape"
    );
    let calls = query(prom, "sum(conmutador_calls_started_total)").await;
    assert_eq!(calls[0]["value"][1], "3");

    // Every series name the server stored is one the catalog knows.
    let names = req(prom, "GET", "/api/v1/label/__name__/values", None, None)
        .await
        .json();
    let ours: Vec<&str> = names["data"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(Value::as_str)
        .filter(|n| n.starts_with("conmutador_"))
        .collect();
    assert!(ours.len() >= 10, "{ours:?}");
    for n in &ours {
        assert!(
            m::lookup_series(n).is_some(),
            "{n} scraped but not in the catalog"
        );
    }

    // The alert rules evaluate without errors against live series.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rules = req(prom, "GET", "/api/v1/rules", None, None).await.json();
        let all: Vec<Value> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        assert_eq!(all.len(), shipped, "{rules}");
        let evaluated = all.iter().all(|r| {
            r["lastEvaluation"]
                .as_str()
                .is_some_and(|t| !t.starts_with("0001"))
        });
        if evaluated {
            for r in &all {
                assert_eq!(
                    r["health"], "ok",
                    "rule {} failed: {}",
                    r["name"], r["lastError"]
                );
            }
            // Healthy gateway, service level above target: nothing fires.
            let firing: Vec<&Value> = all.iter().filter(|r| r["state"] == "firing").collect();
            assert!(firing.is_empty(), "{firing:?}");
            break;
        }
        assert!(Instant::now() < deadline, "rules never evaluated: {rules}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
