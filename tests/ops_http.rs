//! The ops HTTP listener served for real on 127.0.0.1:0 with a test admin
//! backend, checked against `openapi.yaml`: same routes both ways, documented
//! status codes, and bodies that carry the schemas' required fields and types.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use conmutador::ops::http::{
    self, AdminBackend, AdminError, BlockView, CallState, CallView, DrainStatus, HttpState,
    LiftedBlock, OperatorState, OperatorView, QueueStatsView, QueueView, Readiness, RecordingView,
    ReloadReport, RemovedCaller, RouteInfo, WaitingCaller,
};
use serde_json::Value;

mod ops_support;
use ops_support::{Resp, check_response, req, spec};

const TOKEN: &str = "s3cret-token-for-tests";
const VIEWER: &str = "viewer-token-for-tests";

// ------------------------------------------------------------------ test backend

#[derive(Default)]
struct World {
    operators: BTreeMap<String, OperatorView>,
    queues: BTreeMap<String, QueueView>,
    calls: Vec<CallView>,
    reload_ok: bool,
    draining: bool,
}

struct TestBackend(Mutex<World>);

impl TestBackend {
    fn new() -> Self {
        let mut w = World {
            reload_ok: true,
            ..World::default()
        };
        for (id, state) in [
            ("op1", OperatorState::Available),
            ("op2", OperatorState::OnCall),
            ("op3", OperatorState::LoggedOut),
        ] {
            w.operators.insert(
                id.into(),
                OperatorView {
                    id: id.into(),
                    state,
                    reason: None,
                    queues: vec!["pasaportes".into()],
                    call_id: (state == OperatorState::OnCall).then(|| "c2@trunk".into()),
                    state_seconds: 12.5,
                },
            );
        }
        w.queues.insert(
            "pasaportes".into(),
            QueueView {
                name: "pasaportes".into(),
                waiting: vec![WaitingCaller {
                    call_id: "a84b4c76e66710@pc33.atlanta.com".into(),
                    caller: "+525512345678".into(),
                    position: 1,
                    priority: 0,
                    waited_seconds: 33.0,
                    announced_wait_seconds: Some(60.0),
                    ringing: vec!["op7".into()],
                }],
                stats: QueueStatsView {
                    operators_logged_in: 2,
                    operators_available: 1,
                    answered: 10,
                    abandoned: 1,
                    service_level: Some(0.9),
                    service_level_threshold_seconds: 20.0,
                    abandon_rate: Some(1.0 / 11.0),
                    oldest_wait_seconds: 33.0,
                    estimated_wait_seconds: Some(45.0),
                    average_handle_seconds: None,
                },
            },
        );
        w.calls.push(CallView {
            call_id: "c2@trunk".into(),
            caller: "+525500000000".into(),
            called: "8009112345".into(),
            state: CallState::Bridged,
            started_at: Utc.with_ymd_and_hms(2026, 11, 29, 15, 0, 0).unwrap(),
            queue: Some("pasaportes".into()),
            operator: Some("op2".into()),
            node: None,
        });
        Self(Mutex::new(w))
    }

    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.0.lock().expect("test world lock"))
    }

    fn set_operator(
        &self,
        id: String,
        to: OperatorState,
        reason: Option<String>,
    ) -> Result<OperatorView, AdminError> {
        self.with(|w| {
            let op = w
                .operators
                .get_mut(&id)
                .ok_or_else(|| AdminError::NotFound(format!("operator {id}")))?;
            if op.state == OperatorState::LoggedOut {
                return Err(AdminError::Conflict(format!(
                    "operator {id} is not logged in"
                )));
            }
            op.state = to;
            op.reason = reason;
            op.state_seconds = 0.0;
            Ok(op.clone())
        })
    }
}

impl AdminBackend for TestBackend {
    async fn queues(&self) -> Vec<QueueView> {
        self.with(|w| w.queues.values().cloned().collect())
    }
    async fn operators(&self) -> Vec<OperatorView> {
        self.with(|w| w.operators.values().cloned().collect())
    }
    async fn calls(&self) -> Vec<CallView> {
        self.with(|w| w.calls.clone())
    }
    async fn pause(
        &self,
        operator: String,
        reason: Option<String>,
    ) -> Result<OperatorView, AdminError> {
        self.set_operator(operator, OperatorState::Paused, reason)
    }
    async fn unpause(&self, operator: String) -> Result<OperatorView, AdminError> {
        self.set_operator(operator, OperatorState::Available, None)
    }
    async fn logout(&self, operator: String) -> Result<OperatorView, AdminError> {
        self.set_operator(
            operator,
            OperatorState::LoggedOut,
            Some("logged out by supervisor".into()),
        )
    }
    async fn login(&self, operator: String) -> Result<OperatorView, AdminError> {
        self.with(|w| {
            let op = w
                .operators
                .get_mut(&operator)
                .ok_or_else(|| AdminError::NotFound(format!("operator {operator}")))?;
            if op.state == OperatorState::LoggedOut {
                op.state = OperatorState::Available;
                op.reason = None;
                op.state_seconds = 0.0;
            }
            Ok(op.clone())
        })
    }
    async fn remove_caller(
        &self,
        queue: String,
        call_id: String,
    ) -> Result<RemovedCaller, AdminError> {
        self.with(|w| {
            let q = w
                .queues
                .get_mut(&queue)
                .ok_or_else(|| AdminError::NotFound(format!("queue {queue}")))?;
            let before = q.waiting.len();
            q.waiting.retain(|c| c.call_id != call_id);
            if q.waiting.len() == before {
                return Err(AdminError::NotFound(format!("caller {call_id} in {queue}")));
            }
            Ok(RemovedCaller { queue, call_id })
        })
    }
    async fn reload(&self) -> ReloadReport {
        self.with(|w| ReloadReport {
            ok: w.reload_ok,
            plans: 2,
            warnings: vec!["dialplans/mexitel.toml:40:5: node `legacy` is unreachable".into()],
            errors: if w.reload_ok {
                vec![]
            } else {
                vec!["dialplans/mexitel.toml:12:9: unknown node `menu2`".into()]
            },
        })
    }
    async fn blocks(&self) -> Vec<BlockView> {
        vec![BlockView {
            source: "192.0.2.66".into(),
            reason: "flood".into(),
            blocked_seconds: 3.5,
            remaining_seconds: 56.5,
            offences: 1,
            dropped: 12_000,
        }]
    }
    async fn recordings(&self) -> Result<Vec<RecordingView>, AdminError> {
        Ok(vec![RecordingView {
            name: "call-1.wav".into(),
            call_id: Some("call-1".into()),
            queue: Some("pasaportes".into()),
            bytes: 44,
            started_at: Some(chrono::Utc::now()),
        }])
    }
    async fn recording_file(&self, name: String) -> Result<std::path::PathBuf, AdminError> {
        match name.as_str() {
            // Any WAV file will do: the handler only streams it.
            "call-1.wav" => Ok(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/dialplans/prompts/en/aviso_grabacion.wav"
            )
            .into()),
            _ => Err(AdminError::NotFound(format!("no recording {name:?}"))),
        }
    }
    async fn unblock(&self, source: String) -> Result<LiftedBlock, AdminError> {
        match source.as_str() {
            "192.0.2.66" => Ok(LiftedBlock { source }),
            _ => Err(AdminError::NotFound(format!("{source} is not blocked"))),
        }
    }
    async fn drain(&self) -> DrainStatus {
        self.with(|w| {
            w.draining = true;
            DrainStatus {
                draining: true,
                active_calls: w.calls.len() as u32,
            }
        })
    }
}

// ------------------------------------------------------------------ harness

struct Server {
    addr: SocketAddr,
    readiness: Arc<Readiness>,
    backend: Arc<TestBackend>,
    routes: Vec<RouteInfo>,
    metrics: metrics_exporter_prometheus::PrometheusRecorder,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(token: &str) -> Server {
    let recorder = conmutador::ops::metrics::build_recorder();
    let readiness = Arc::new(Readiness::new());
    let backend = Arc::new(TestBackend::new());
    let state = HttpState::new(recorder.handle(), readiness.clone(), token, backend.clone())
        .with_viewer_token(VIEWER);
    let (_, routes) = http::router_with_routes(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(http::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        readiness,
        backend,
        routes,
        metrics: recorder,
        _stop: stop,
    }
}

fn bearer() -> Option<&'static str> {
    Some("Bearer s3cret-token-for-tests")
}

// ------------------------------------------------------------------ OpenAPI

fn documented_routes(spec: &Value) -> BTreeSet<(String, String, bool)> {
    let mut out = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let open = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty);
            out.insert((method.clone(), path.clone(), !open));
        }
    }
    out
}

#[tokio::test]
async fn openapi_and_the_route_table_agree_both_ways() {
    let s = start(TOKEN).await;
    let served: BTreeSet<(String, String, bool)> = s
        .routes
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string(), r.requires_token))
        .collect();
    let spec = spec();
    let documented = documented_routes(&spec);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in openapi.yaml (or auth differs): {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in openapi.yaml but not served (or auth differs): {unserved:?}"
    );
    assert_eq!(served.len(), 20);
    // Every documented route really answers (not the fallback, not 405).
    for r in &s.routes {
        let path = r
            .path
            .replace("{id}", "op1")
            .replace("{queue}", "pasaportes")
            .replace("{call_id}", "nobody")
            .replace("{name}", "nobody.wav");
        let resp = req(s.addr, &r.method.to_uppercase(), &path, bearer(), None).await;
        assert_ne!(resp.status, 405, "{} {}", r.method, r.path);
        assert_ne!(
            resp.body, r#"{"error":"no such route"}"#,
            "{} {}",
            r.method, r.path
        );
    }
}

#[tokio::test]
async fn every_response_matches_its_documented_schema() {
    let s = start(TOKEN).await;
    let spec = spec();
    let ok_calls: &[(&str, &str, &str, Option<&str>)] = &[
        ("get", "/metrics", "/metrics", None),
        ("get", "/healthz", "/healthz", None),
        ("get", "/readyz", "/readyz", None),
        ("get", "/api/queues", "/api/queues", None),
        ("get", "/api/operators", "/api/operators", None),
        ("get", "/api/calls", "/api/calls", None),
        (
            "post",
            "/api/operators/{id}/pause",
            "/api/operators/op1/pause",
            Some(r#"{"reason":"comida"}"#),
        ),
        (
            "post",
            "/api/operators/{id}/unpause",
            "/api/operators/op1/unpause",
            None,
        ),
        (
            "post",
            "/api/operators/{id}/logout",
            "/api/operators/op1/logout",
            None,
        ),
        (
            "post",
            "/api/operators/{id}/login",
            "/api/operators/op1/login",
            None,
        ),
        (
            "delete",
            "/api/queues/{queue}/callers/{call_id}",
            "/api/queues/pasaportes/callers/a84b4c76e66710%40pc33.atlanta.com",
            None,
        ),
        ("post", "/api/reload", "/api/reload", None),
        ("post", "/api/drain", "/api/drain", None),
        ("get", "/api/blocks", "/api/blocks", None),
        (
            "delete",
            "/api/blocks/{source}",
            "/api/blocks/192.0.2.66",
            None,
        ),
        ("get", "/api/recordings", "/api/recordings", None),
        (
            "get",
            "/api/recordings/{name}",
            "/api/recordings/call-1.wav",
            None,
        ),
        ("get", "/wallboard", "/wallboard", None),
        ("get", "/wallboard/state", "/wallboard/state", None),
        ("get", "/wallboard/events", "/wallboard/events", None),
    ];
    let mut seen = BTreeSet::new();
    let viewer = format!("Bearer {VIEWER}");
    for (method, template, path, body) in ok_calls {
        let r = if *template == "/wallboard/events" {
            first_event(s.addr, &format!("{path}?token={VIEWER}")).await
        } else if template.starts_with("/wallboard") {
            req(s.addr, "GET", path, Some(&viewer), None).await
        } else {
            req(s.addr, &method.to_uppercase(), path, bearer(), *body).await
        };
        check_response(&spec, method, template, &r);
        seen.insert((method.to_string(), template.to_string()));
        if *template != "/readyz" {
            assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
        }
    }
    let all: BTreeSet<_> = s
        .routes
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(seen, all, "every route exercised");

    // Error answers are documented too and carry the Error schema.
    let errors: &[(&str, &str, &str, Option<&str>, u16)] = &[
        (
            "post",
            "/api/operators/{id}/pause",
            "/api/operators/nobody/pause",
            None,
            404,
        ),
        (
            "post",
            "/api/operators/{id}/pause",
            "/api/operators/op3/pause",
            None,
            409,
        ),
        (
            "post",
            "/api/operators/{id}/pause",
            "/api/operators/op2/pause",
            Some("{not json"),
            400,
        ),
        (
            "post",
            "/api/operators/{id}/unpause",
            "/api/operators/nobody/unpause",
            None,
            404,
        ),
        (
            "post",
            "/api/operators/{id}/logout",
            "/api/operators/op3/logout",
            None,
            409,
        ),
        (
            "post",
            "/api/operators/{id}/login",
            "/api/operators/nobody/login",
            None,
            404,
        ),
        (
            "delete",
            "/api/queues/{queue}/callers/{call_id}",
            "/api/queues/pasaportes/callers/gone",
            None,
            404,
        ),
        (
            "delete",
            "/api/queues/{queue}/callers/{call_id}",
            "/api/queues/nope/callers/x",
            None,
            404,
        ),
        (
            "delete",
            "/api/blocks/{source}",
            "/api/blocks/192.0.2.67",
            None,
            404,
        ),
        (
            "delete",
            "/api/blocks/{source}",
            "/api/blocks/not-an-address",
            None,
            400,
        ),
        (
            "get",
            "/api/recordings/{name}",
            "/api/recordings/gone.wav",
            None,
            404,
        ),
        ("get", "/api/queues", "/api/queues", None, 401),
    ];
    for (method, template, path, body, want) in errors {
        let auth = if *want == 401 { None } else { bearer() };
        let r = req(s.addr, &method.to_uppercase(), path, auth, *body).await;
        assert_eq!(r.status, *want, "{method} {path}: {}", r.body);
        check_response(&spec, method, template, &r);
    }

    // A refused reload is a documented 422 with the report.
    s.backend.with(|w| w.reload_ok = false);
    let r = req(s.addr, "POST", "/api/reload", bearer(), None).await;
    assert_eq!(r.status, 422);
    check_response(&spec, "post", "/api/reload", &r);
    assert_eq!(
        r.json()["errors"][0],
        "dialplans/mexitel.toml:12:9: unknown node `menu2`"
    );
}

#[tokio::test]
async fn admin_routes_demand_the_exact_token() {
    let s = start(TOKEN).await;
    for r in s.routes.iter().filter(|r| r.requires_token) {
        let path = r
            .path
            .replace("{id}", "op1")
            .replace("{queue}", "pasaportes")
            .replace("{call_id}", "x");
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic czNjcmV0"),
            Some("Bearer s3cret-token-for-test"),
            Some("s3cret-token-for-tests"),
        ] {
            let resp = req(s.addr, &r.method.to_uppercase(), &path, auth, None).await;
            assert_eq!(resp.status, 401, "{} {path} with {auth:?}", r.method);
            assert_eq!(
                resp.header("www-authenticate"),
                Some("Bearer realm=\"conmutador\"")
            );
        }
    }
    // Nothing changed in the backend.
    assert!(
        s.backend
            .with(|w| !w.draining && w.operators["op1"].state == OperatorState::Available)
    );
    assert_eq!(
        req(
            s.addr,
            "GET",
            "/api/queues",
            Some("bearer s3cret-token-for-tests"),
            None
        )
        .await
        .status,
        200
    );

    // No token configured: the admin API is closed, even to an empty bearer.
    let closed = start("").await;
    assert_eq!(
        req(closed.addr, "GET", "/api/queues", Some("Bearer "), None)
            .await
            .status,
        401
    );
    assert_eq!(
        req(closed.addr, "GET", "/api/queues", Some("Bearer x"), None)
            .await
            .status,
        401
    );
    assert_eq!(
        req(closed.addr, "GET", "/healthz", None, None).await.status,
        200
    );
}

#[tokio::test]
async fn probes_metrics_and_admin_actions_do_what_they_say() {
    let s = start(TOKEN).await;
    let h = req(s.addr, "GET", "/healthz", None, None).await;
    assert_eq!(
        (h.status, h.json()),
        (200, serde_json::json!({"status": "ok"}))
    );

    let r = req(s.addr, "GET", "/readyz", None, None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["listening"], false);
    s.readiness.set_listening(true);
    s.readiness.set_plans_loaded(true);
    s.readiness.set_storage_writable(true);
    assert_eq!(req(s.addr, "GET", "/readyz", None, None).await.status, 200);

    metrics::with_local_recorder(&s.metrics, || {
        metrics::histogram!(conmutador::ops::metrics::CALL_DURATION_SECONDS).record(95.0);
        metrics::gauge!(conmutador::ops::metrics::QUEUE_CALLERS_WAITING, "queue" => "pasaportes")
            .set(4.0);
    });
    let m = req(s.addr, "GET", "/metrics", None, None).await;
    assert_eq!(m.status, 200);
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        m.body
            .contains("# TYPE conmutador_call_duration_seconds histogram"),
        "{}",
        m.body
    );
    assert!(
        m.body
            .contains("conmutador_call_duration_seconds_bucket{le=\"120\"} 1"),
        "{}",
        m.body
    );
    assert!(
        m.body
            .contains("conmutador_queue_callers_waiting{queue=\"pasaportes\"} 4"),
        "{}",
        m.body
    );

    let p = req(
        s.addr,
        "POST",
        "/api/operators/op1/pause",
        bearer(),
        Some(r#"{"reason":"comida"}"#),
    )
    .await;
    assert_eq!(p.json()["state"], "paused");
    assert_eq!(
        s.backend.with(|w| w.operators["op1"].reason.clone()),
        Some("comida".into())
    );
    let u = req(s.addr, "POST", "/api/operators/op1/unpause", bearer(), None).await;
    assert_eq!(
        (u.json()["state"].clone(), u.json()["reason"].clone()),
        ("available".into(), Value::Null)
    );
    let too_long = format!(
        r#"{{"reason":"{}"}}"#,
        "x".repeat(http::MAX_REASON_CHARS + 1)
    );
    assert_eq!(
        req(
            s.addr,
            "POST",
            "/api/operators/op1/pause",
            bearer(),
            Some(&too_long)
        )
        .await
        .status,
        400
    );

    // Percent-encoded Call-IDs reach the backend decoded.
    let d = req(
        s.addr,
        "DELETE",
        "/api/queues/pasaportes/callers/a84b4c76e66710%40pc33.atlanta.com",
        bearer(),
        None,
    )
    .await;
    assert_eq!(d.json()["call_id"], "a84b4c76e66710@pc33.atlanta.com");
    assert!(
        s.backend
            .with(|w| w.queues["pasaportes"].waiting.is_empty())
    );

    let dr = req(s.addr, "POST", "/api/drain", bearer(), None).await;
    assert_eq!(
        dr.json(),
        serde_json::json!({"draining": true, "active_calls": 1})
    );
    let r = req(s.addr, "GET", "/readyz", None, None).await;
    assert_eq!(
        (r.status, r.json()["draining"].clone()),
        (503, Value::Bool(true))
    );
    assert_eq!(
        req(s.addr, "GET", "/healthz", None, None).await.status,
        200,
        "draining is still alive"
    );
}

#[tokio::test]
async fn oversize_bodies_and_unknown_routes_are_refused() {
    let s = start(TOKEN).await;
    let huge = format!(r#"{{"reason":"{}"}}"#, "x".repeat(64 * 1024));
    let r = req(
        s.addr,
        "POST",
        "/api/operators/op1/pause",
        bearer(),
        Some(&huge),
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(
        s.backend.with(|w| w.operators["op1"].state),
        OperatorState::Available
    );
    let r = req(s.addr, "GET", "/api/nothing", bearer(), None).await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (404, "no such route".into())
    );
    assert_eq!(
        req(s.addr, "DELETE", "/healthz", None, None).await.status,
        405
    );
}

// ------------------------------------------------------------------ wallboard

/// Opens an event stream and reads up to its first event; the response's
/// body is that event's `data:` line (the stream itself stays open until
/// the returned connection is dropped).
async fn open_stream(addr: SocketAddr, path: &str) -> (Resp, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    s.write_all(head.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            let n = s.read(&mut chunk).await.expect("read");
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
            if !text.contains(" 200 ") || body.contains("\n\n") {
                break;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("the first event within 10 s");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut r = ops_support::parse_response(text.as_bytes());
    if r.status == 200 {
        r.body = r
            .body
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .map(|d| d.trim().to_owned())
            .unwrap_or_default();
    }
    (r, s)
}

async fn first_event(addr: SocketAddr, path: &str) -> Resp {
    open_stream(addr, path).await.0
}

/// The viewer token opens the wallboard's three routes and nothing else;
/// the page pins its inline code by hash; the stream starts with a frame
/// of the backend's queues, is capped, and ends when the listener shuts
/// down.
#[tokio::test]
async fn the_wallboard_opens_to_the_viewer_token_only_and_streams_frames() {
    let s = start(TOKEN).await;
    let viewer = format!("Bearer {VIEWER}");
    for route in s.routes.iter().filter(|r| r.path.starts_with("/api")) {
        let path = route
            .path
            .replace("{id}", "op1")
            .replace("{queue}", "pasaportes")
            .replace("{call_id}", "x")
            .replace("{source}", "192.0.2.66");
        let m = route.method.to_uppercase();
        let r = req(s.addr, &m, &path, Some(&viewer), None).await;
        assert_eq!(r.status, 401, "viewer token on {m} {path}: {}", r.body);
        let r = req(s.addr, &m, &format!("{path}?token={VIEWER}"), None, None).await;
        assert_eq!(r.status, 401, "viewer token in the URL of {m} {path}");
    }
    for path in ["/wallboard", "/wallboard/state"] {
        for auth in [None, Some("Bearer wrong"), bearer()] {
            let r = req(s.addr, "GET", path, auth, None).await;
            assert_eq!(r.status, 401, "{path} with {auth:?}");
            assert!(!r.body.contains("pasaportes") && !r.body.contains("<html"));
        }
        let r = req(s.addr, "GET", &format!("{path}?token={VIEWER}"), None, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    }
    let page = req(s.addr, "GET", "/wallboard", Some(&viewer), None).await;
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("script-src 'sha256-") && csp.contains("default-src 'none'"),
        "{csp}"
    );

    let (first, stream) = open_stream(s.addr, &format!("/wallboard/events?token={VIEWER}")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let frame: Value = serde_json::from_str(&first.body).expect("a frame is JSON");
    let queue = &frame["queues"][0];
    assert_eq!(
        (&queue["name"], &queue["waiting"]),
        (&"pasaportes".into(), &1.into()),
        "{frame}"
    );
    assert!(
        frame["now_ms"].is_i64() && frame["today"]["since_ms"].is_i64(),
        "{frame}"
    );
    let schema = serde_json::json!({"$ref": "#/components/schemas/WallboardFrame"});
    if let Err(e) = ops_support::validate(&spec(), &schema, &frame, "event frame") {
        panic!("{e}\n{frame}");
    }
    drop(stream);

    // Capped: past MAX_STREAMS open streams the next one is refused, and a
    // slot comes back once a board goes away (the server notices at its
    // next write, the keep-alive at the latest).
    let events = format!("/wallboard/events?token={VIEWER}");
    let mut open = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while open.len() < conmutador::ops::wallboard::MAX_STREAMS {
        let (r, conn) = open_stream(s.addr, &events).await;
        if r.status == 200 {
            open.push(conn);
        } else {
            // The stream dropped above may still hold its slot a moment.
            assert_eq!(r.status, 503, "{}", r.body);
            assert!(
                std::time::Instant::now() < deadline,
                "a slot never came back"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    let (r, _) = open_stream(s.addr, &events).await;
    assert_eq!(r.status, 503, "{}", r.body);

    // Shutting the listener down ends open streams instead of waiting on them.
    let Server { _stop, .. } = s;
    drop(_stop);
    for mut conn in open {
        use tokio::io::AsyncReadExt;
        let mut rest = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            conn.read_to_end(&mut rest),
        )
        .await
        .expect("streams end at shutdown")
        .expect("read");
    }
}
