//! One HTTP listener for machines and supervisors: `/metrics` (Prometheus
//! text), `/healthz` and `/readyz` without auth, the admin API under
//! `/api` behind `Authorization: Bearer <token>`, and the wallboard under
//! `/wallboard` behind the separate read-only viewer token (see
//! [`super::wallboard`]); neither token opens the other's routes.
//!
//! This room only translates HTTP to calls on [`AdminBackend`], which the call
//! room implements; it holds no call state itself. The route table built here
//! is what `openapi.yaml` is checked against, so add routes only through
//! [`router_with_routes`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::wallboard::{
    self, Counts, Hub, NewCallerWords, OperatorInput, QueueInput, WallboardInput,
};

/// Admin request bodies are a reason string at most; anything bigger is abuse.
const MAX_BODY_BYTES: usize = 4096;
/// Longest pause reason kept (it ends up in queue events and dashboards).
pub const MAX_REASON_CHARS: usize = 200;
/// A backend that does not answer within this is reported as unavailable
/// instead of holding the connection open forever.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How often histogram data is folded in even when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// Open connections at most (scrapers and a few supervisors need far fewer).
const MAX_CONNECTIONS: usize = 256;
/// A connection with no bytes moving for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Prometheus text exposition format 0.0.4.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

// ---------------------------------------------------------------- readiness

/// What `/readyz` reports. Each flag is flipped by the room that owns it:
/// the SIP shell once it listens, the dialplan loader after a good load, the
/// records writer after a successful write probe; `draining` by `/api/drain`.
#[derive(Debug, Default)]
pub struct Readiness {
    listening: AtomicBool,
    plans_loaded: AtomicBool,
    storage_writable: AtomicBool,
    draining: AtomicBool,
}

/// A snapshot of [`Readiness`], the body of `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessReport {
    pub ready: bool,
    pub listening: bool,
    pub plans_loaded: bool,
    pub storage_writable: bool,
    pub draining: bool,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn set_listening(&self, v: bool) {
        self.listening.store(v, Ordering::Release);
    }
    pub fn set_plans_loaded(&self, v: bool) {
        self.plans_loaded.store(v, Ordering::Release);
    }
    pub fn set_storage_writable(&self, v: bool) {
        self.storage_writable.store(v, Ordering::Release);
    }
    pub fn set_draining(&self, v: bool) {
        self.draining.store(v, Ordering::Release);
    }
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
    /// Ready means: take new calls here. A draining gateway is alive but not
    /// ready, so a load balancer stops sending it calls.
    pub fn report(&self) -> ReadinessReport {
        let listening = self.listening.load(Ordering::Acquire);
        let plans_loaded = self.plans_loaded.load(Ordering::Acquire);
        let storage_writable = self.storage_writable.load(Ordering::Acquire);
        let draining = self.draining.load(Ordering::Acquire);
        ReadinessReport {
            ready: listening && plans_loaded && storage_writable && !draining,
            listening,
            plans_loaded,
            storage_writable,
            draining,
        }
    }
}

// ---------------------------------------------------------------- admin views

/// A caller waiting in a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitingCaller {
    pub call_id: String,
    pub caller: String,
    /// 1 is next to be served.
    pub position: u32,
    pub priority: i32,
    pub waited_seconds: f64,
    /// The last wait announced to this caller, if any.
    pub announced_wait_seconds: Option<f64>,
    /// The operators whose phones ring for this caller right now.
    #[serde(default)]
    pub ringing: Vec<String>,
}

/// Live figures of one queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueStatsView {
    pub operators_logged_in: u32,
    pub operators_available: u32,
    pub answered: u64,
    pub abandoned: u64,
    /// Answered within the threshold ÷ answered; `None` before any answer.
    pub service_level: Option<f64>,
    pub service_level_threshold_seconds: f64,
    pub abandon_rate: Option<f64>,
    pub oldest_wait_seconds: f64,
    pub estimated_wait_seconds: Option<f64>,
    pub average_handle_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueView {
    pub name: String,
    pub waiting: Vec<WaitingCaller>,
    pub stats: QueueStatsView,
}

/// An operator's state as the admin API shows it: the same words as the
/// `state` label of `conmutador_operators` (the ACD's `OperatorState::LABELS`),
/// so an API answer and a dashboard never disagree on what a state is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorState {
    LoggedOut,
    Available,
    Ringing,
    OnCall,
    Wrapup,
    Paused,
    /// Logged in, but its phone does not answer OPTIONS: not offered calls.
    Unreachable,
}

impl OperatorState {
    pub const ALL: [OperatorState; 7] = [
        OperatorState::LoggedOut,
        OperatorState::Available,
        OperatorState::Ringing,
        OperatorState::OnCall,
        OperatorState::Wrapup,
        OperatorState::Paused,
        OperatorState::Unreachable,
    ];

    /// The state named by an ACD label; `None` for a word outside the vocabulary.
    pub fn from_label(label: &str) -> Option<OperatorState> {
        Self::ALL.into_iter().find(|s| s.label() == label)
    }

    /// The word this state is shown as (API and metrics alike).
    pub fn label(self) -> &'static str {
        match self {
            OperatorState::LoggedOut => "logged_out",
            OperatorState::Available => "available",
            OperatorState::Ringing => "ringing",
            OperatorState::OnCall => "on_call",
            OperatorState::Wrapup => "wrapup",
            OperatorState::Paused => "paused",
            OperatorState::Unreachable => "unreachable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorView {
    pub id: String,
    pub state: OperatorState,
    /// Why paused (or logged off), as given by the supervisor or the phone.
    pub reason: Option<String>,
    pub queues: Vec<String>,
    pub call_id: Option<String>,
    pub state_seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Ivr,
    Queued,
    Ringing,
    Bridged,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallView {
    pub call_id: String,
    pub caller: String,
    pub called: String,
    pub state: CallState,
    #[serde(with = "crate::ops::time::rfc3339")]
    pub started_at: DateTime<Utc>,
    pub queue: Option<String>,
    pub operator: Option<String>,
    /// Current dialplan node while in the IVR.
    pub node: Option<String>,
}

/// Outcome of `POST /api/reload`. With errors the old plans stay in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadReport {
    pub ok: bool,
    pub plans: u32,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainStatus {
    pub draining: bool,
    pub active_calls: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedCaller {
    pub queue: String,
    pub call_id: String,
}

/// A source the guard blocked (`GET /api/blocks`): its messages are
/// dropped unanswered until `remaining_seconds` runs out or it is lifted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockView {
    /// The source IPv4 address, or the first address of its IPv6 /64.
    pub source: String,
    /// Why: "flood" (kept exceeding its rates), "auth" (kept failing
    /// digest) or "scan" (kept sending INVITEs refused as not a trunk).
    pub reason: String,
    pub blocked_seconds: f64,
    pub remaining_seconds: f64,
    /// Blocks this source earned lately; each lasts twice the one before.
    pub offences: u32,
    /// Messages dropped since this block began.
    pub dropped: u64,
}

/// Answer of `DELETE /api/blocks/{source}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiftedBlock {
    pub source: String,
}

/// Body of `POST /api/operators/{id}/pause`; the body itself is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    pub reason: Option<String>,
}

/// Error body of every non-2xx admin answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// A call recording on disk, as `/api/recordings` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingView {
    /// The file name, what `/api/recordings/{name}` downloads.
    pub name: String,
    pub call_id: Option<String>,
    pub queue: Option<String>,
    pub bytes: u64,
    #[serde(with = "crate::ops::time::rfc3339_opt")]
    pub started_at: Option<DateTime<Utc>>,
}

/// Why an admin action failed, mapped onto HTTP status codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = match &self {
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        json(
            status,
            &ErrorBody {
                error: self.to_string(),
            },
        )
    }
}

/// The admin actions, implemented by the call room. Methods take owned
/// strings so implementations can move them into a message to their task.
pub trait AdminBackend: Send + Sync + 'static {
    fn queues(&self) -> impl Future<Output = Vec<QueueView>> + Send;
    fn operators(&self) -> impl Future<Output = Vec<OperatorView>> + Send;
    fn calls(&self) -> impl Future<Output = Vec<CallView>> + Send;
    fn pause(
        &self,
        operator: String,
        reason: Option<String>,
    ) -> impl Future<Output = Result<OperatorView, AdminError>> + Send;
    fn unpause(
        &self,
        operator: String,
    ) -> impl Future<Output = Result<OperatorView, AdminError>> + Send;
    fn logout(
        &self,
        operator: String,
    ) -> impl Future<Output = Result<OperatorView, AdminError>> + Send;
    /// Logs an operator in again (after a log-out), if it has a phone.
    fn login(
        &self,
        operator: String,
    ) -> impl Future<Output = Result<OperatorView, AdminError>> + Send;
    fn remove_caller(
        &self,
        queue: String,
        call_id: String,
    ) -> impl Future<Output = Result<RemovedCaller, AdminError>> + Send;
    fn reload(&self) -> impl Future<Output = ReloadReport> + Send;
    /// Stop taking new calls and let the current ones finish. Idempotent.
    fn drain(&self) -> impl Future<Output = DrainStatus> + Send;
    /// Sources blocked now. Default: a gateway without a guard blocks none.
    fn blocks(&self) -> impl Future<Output = Vec<BlockView>> + Send {
        async { Vec::new() }
    }
    /// What the wallboard shows, read in one go. The default builds it from
    /// [`Self::queues`] and [`Self::operators`], without what a new caller
    /// would hear and with the views' counters (which may include history);
    /// the gateway's backend overrides it with the ACD's own figures.
    fn wallboard(&self) -> impl Future<Output = WallboardInput> + Send {
        async move {
            let queues = self.queues().await;
            let operators = self.operators().await;
            WallboardInput {
                queues: queues
                    .into_iter()
                    .map(|q| QueueInput {
                        since_start: Counts {
                            answered: q.stats.answered,
                            abandoned: q.stats.abandoned,
                            // The view's service level is this count over
                            // answered + abandoned: give it back.
                            answered_within_threshold: q.stats.service_level.map_or(0, |sl| {
                                (sl * (q.stats.answered + q.stats.abandoned) as f64).round() as u64
                            }),
                        },
                        waiting: q.waiting.len() as u32,
                        oldest_wait_seconds: q.stats.oldest_wait_seconds,
                        new_caller: NewCallerWords::NoEstimate,
                        service_level_threshold_seconds: q.stats.service_level_threshold_seconds,
                        operators_staffed: q.stats.operators_logged_in,
                        operators_available: q.stats.operators_available,
                        name: q.name,
                    })
                    .collect(),
                operators: operators
                    .into_iter()
                    .map(|o| OperatorInput {
                        id: o.id,
                        name: None,
                        state: o.state,
                        reason: o.reason,
                        queues: o.queues,
                        state_seconds: o.state_seconds,
                    })
                    .collect(),
            }
        }
    }
    /// Call recordings on disk. Default: none.
    fn recordings(&self) -> impl Future<Output = Result<Vec<RecordingView>, AdminError>> + Send {
        async { Ok(Vec::new()) }
    }
    /// Where recording `name` is on disk (a name the listing gave).
    fn recording_file(
        &self,
        name: String,
    ) -> impl Future<Output = Result<std::path::PathBuf, AdminError>> + Send {
        async move { Err(AdminError::NotFound(format!("no recording {name:?}"))) }
    }
    /// Lifts the block on `source` (an IP address).
    fn unblock(
        &self,
        source: String,
    ) -> impl Future<Output = Result<LiftedBlock, AdminError>> + Send {
        async move { Err(AdminError::NotFound(format!("{source} is not blocked"))) }
    }
}

// ---------------------------------------------------------------- state & router

/// Everything the handlers need; cheap to clone.
pub struct HttpState<B> {
    pub metrics: PrometheusHandle,
    pub readiness: Arc<Readiness>,
    pub backend: Arc<B>,
    /// SHA-256 of the configured token; `None` disables the admin API.
    token_digest: Option<[u8; 32]>,
    /// SHA-256 of the wallboard's viewer token; `None` closes the wallboard.
    viewer_digest: Option<[u8; 32]>,
    wallboard: Arc<Hub>,
}

impl<B> Clone for HttpState<B> {
    fn clone(&self) -> Self {
        Self {
            metrics: self.metrics.clone(),
            readiness: self.readiness.clone(),
            backend: self.backend.clone(),
            token_digest: self.token_digest,
            viewer_digest: self.viewer_digest,
            wallboard: self.wallboard.clone(),
        }
    }
}

impl<B: AdminBackend> HttpState<B> {
    /// An empty `admin_token` disables the admin API (every call gets 401)
    /// rather than opening it to anyone.
    pub fn new(
        metrics: PrometheusHandle,
        readiness: Arc<Readiness>,
        admin_token: &str,
        backend: Arc<B>,
    ) -> Self {
        let token_digest =
            (!admin_token.is_empty()).then(|| Sha256::digest(admin_token.as_bytes()).into());
        Self {
            metrics,
            readiness,
            backend,
            token_digest,
            viewer_digest: None,
            wallboard: Arc::new(Hub::new()),
        }
    }

    /// Opens the wallboard to `viewer_token` (empty: the wallboard stays
    /// closed, every request 401). It opens nothing under `/api`.
    pub fn with_viewer_token(mut self, viewer_token: &str) -> Self {
        self.viewer_digest =
            (!viewer_token.is_empty()).then(|| Sha256::digest(viewer_token.as_bytes()).into());
        self
    }

    /// Whether `given` is the viewer token (constant-time, as the admin one).
    pub(super) fn viewer_authorized(&self, given: Option<&str>) -> bool {
        digest_matches(self.viewer_digest.as_ref(), given)
    }

    pub(super) fn wallboard(&self) -> Arc<Hub> {
        self.wallboard.clone()
    }

    /// Comparing digests keeps the comparison constant-time and hides the
    /// token's length too.
    fn authorized(&self, header: Option<&HeaderValue>) -> bool {
        let given = header.and_then(|h| h.to_str().ok()).and_then(bearer_token);
        digest_matches(self.token_digest.as_ref(), given)
    }
}

/// Comparing digests keeps the comparison constant-time and hides the
/// token's length too; no expected token matches nothing.
fn digest_matches(expected: Option<&[u8; 32]>, given: Option<&str>) -> bool {
    let (Some(expected), Some(given)) = (expected, given) else {
        return false;
    };
    let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    given.ct_eq(expected).into()
}

pub(super) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// One row of the route table, the thing `openapi.yaml` is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteInfo {
    pub method: &'static str,
    /// In axum/OpenAPI template syntax: `/api/operators/{id}/pause`.
    pub path: &'static str,
    pub requires_token: bool,
}

struct Routes<S> {
    router: Router<S>,
    table: Vec<RouteInfo>,
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    fn new() -> Self {
        Self {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    fn add<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        requires_token: bool,
        handler: H,
    ) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let filter =
            MethodFilter::try_from(method.clone()).expect("only standard methods are routed");
        self.router = self.router.route(path, on(filter, handler));
        let method = match method {
            Method::GET => "get",
            Method::POST => "post",
            Method::DELETE => "delete",
            _ => unreachable!("the admin API uses GET, POST and DELETE only"),
        };
        self.table.push(RouteInfo {
            method,
            path,
            requires_token,
        });
        self
    }
}

/// The router and its route table.
pub fn router_with_routes<B: AdminBackend>(state: HttpState<B>) -> (Router, Vec<RouteInfo>) {
    let open = Routes::new()
        .add(Method::GET, "/metrics", false, get_metrics::<B>)
        .add(Method::GET, "/healthz", false, get_healthz)
        .add(Method::GET, "/readyz", false, get_readyz::<B>);
    let admin = Routes::new()
        .add(Method::GET, "/api/queues", true, get_queues::<B>)
        .add(Method::GET, "/api/operators", true, get_operators::<B>)
        .add(Method::GET, "/api/calls", true, get_calls::<B>)
        .add(
            Method::POST,
            "/api/operators/{id}/pause",
            true,
            post_pause::<B>,
        )
        .add(
            Method::POST,
            "/api/operators/{id}/unpause",
            true,
            post_unpause::<B>,
        )
        .add(
            Method::POST,
            "/api/operators/{id}/logout",
            true,
            post_logout::<B>,
        )
        .add(
            Method::POST,
            "/api/operators/{id}/login",
            true,
            post_login::<B>,
        )
        .add(
            Method::DELETE,
            "/api/queues/{queue}/callers/{call_id}",
            true,
            delete_caller::<B>,
        )
        .add(Method::POST, "/api/reload", true, post_reload::<B>)
        .add(Method::POST, "/api/drain", true, post_drain::<B>)
        .add(Method::GET, "/api/blocks", true, get_blocks::<B>)
        .add(Method::GET, "/api/recordings", true, get_recordings::<B>)
        .add(
            Method::GET,
            "/api/recordings/{name}",
            true,
            get_recording::<B>,
        )
        .add(
            Method::DELETE,
            "/api/blocks/{source}",
            true,
            delete_block::<B>,
        );
    let viewer = Routes::new()
        .add(Method::GET, "/wallboard", true, wallboard::get_page)
        .add(
            Method::GET,
            "/wallboard/state",
            true,
            wallboard::get_state::<B>,
        )
        .add(
            Method::GET,
            "/wallboard/events",
            true,
            wallboard::get_events::<B>,
        );
    let mut table = open.table;
    table.extend(admin.table);
    table.extend(viewer.table);
    let admin_router = admin.router.route_layer(middleware::from_fn_with_state(
        state.clone(),
        require_token::<B>,
    ));
    let viewer_router = viewer.router.route_layer(middleware::from_fn_with_state(
        state.clone(),
        wallboard::require_viewer::<B>,
    ));
    let router = open
        .router
        .merge(admin_router)
        .merge(viewer_router)
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    (router, table)
}

pub fn router<B: AdminBackend>(state: HttpState<B>) -> Router {
    router_with_routes(state).0
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
/// Also runs the metrics upkeep so histograms stay bounded between scrapes.
pub async fn serve<B: AdminBackend>(
    listener: tokio::net::TcpListener,
    state: HttpState<B>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = state.wallboard.clone();
    let rollover = tokio::spawn(wallboard::midnight_rollover(
        hub.clone(),
        state.backend.clone(),
    ));
    // Open wallboard streams never end by themselves: closing the hub ends
    // them, so the graceful shutdown does not wait on them.
    let shutdown = async move {
        shutdown.await;
        hub.close();
    };
    let handle = state.metrics.clone();
    let upkeep = tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
    let listener = LimitedListener {
        inner: listener,
        permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
    };
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    upkeep.abort();
    rollover.abort();
    result
}

/// Caps open connections: past the cap, accepting waits (the kernel backlog
/// absorbs the rest) instead of each connection taking more memory.
struct LimitedListener {
    inner: tokio::net::TcpListener,
    permits: Arc<Semaphore>,
}

/// A connection that gives its slot back when it closes, and is closed
/// after [`IDLE_TIMEOUT`] without any bytes moving (so idle sockets cannot
/// hold every slot).
struct LimitedStream {
    stream: tokio::net::TcpStream,
    idle: Pin<Box<tokio::time::Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl LimitedStream {
    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match r {
            Poll::Ready(v) => {
                self.idle
                    .as_mut()
                    .reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
                Poll::Ready(v)
            }
            Poll::Pending if self.idle.as_mut().poll(cx).is_ready() => Poll::Ready(Err(
                std::io::Error::new(std::io::ErrorKind::TimedOut, "idle connection"),
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let idle = Box::pin(tokio::time::sleep(IDLE_TIMEOUT));
                    return (
                        LimitedStream {
                            stream,
                            idle,
                            _permit: permit,
                        },
                        addr,
                    );
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, do not spin.
                    tracing::warn!(error = %e, "ops http: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.stream).poll_read(cx, buf);
        self.progress(cx, r)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.progress(cx, r)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------- handlers

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "admin response did not serialize");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn require_token<B: AdminBackend>(
    State(state): State<HttpState<B>>,
    req: Request,
    next: Next,
) -> Response {
    if state.authorized(req.headers().get(header::AUTHORIZATION)) {
        return next.run(req).await;
    }
    let mut resp = unauthorized("missing or wrong bearer token");
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"conmutador\""),
    );
    resp
}

/// A 401 that says only that the token was wrong or missing.
pub(super) fn unauthorized(error: &str) -> Response {
    json(
        StatusCode::UNAUTHORIZED,
        &ErrorBody {
            error: error.into(),
        },
    )
}

async fn no_route() -> Response {
    json(
        StatusCode::NOT_FOUND,
        &ErrorBody {
            error: "no such route".into(),
        },
    )
}

async fn with_timeout<T>(fut: impl Future<Output = T>) -> Result<T, AdminError> {
    tokio::time::timeout(BACKEND_TIMEOUT, fut)
        .await
        .map_err(|_| AdminError::Unavailable("the call engine did not answer in time".into()))
}

fn respond<T: Serialize>(r: Result<T, AdminError>) -> Response {
    match r {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

async fn get_metrics<B: AdminBackend>(State(state): State<HttpState<B>>) -> Response {
    state.metrics.run_upkeep();
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        // Without the series of queues or plans a reload removed.
        crate::ops::metrics::render(&state.metrics),
    )
        .into_response()
}

async fn get_healthz() -> Response {
    #[derive(Serialize)]
    struct Health {
        status: &'static str,
    }
    json(StatusCode::OK, &Health { status: "ok" })
}

async fn get_readyz<B: AdminBackend>(State(state): State<HttpState<B>>) -> Response {
    let report = state.readiness.report();
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &report)
}

async fn get_queues<B: AdminBackend>(State(s): State<HttpState<B>>) -> Response {
    respond(with_timeout(s.backend.queues()).await)
}

async fn get_operators<B: AdminBackend>(State(s): State<HttpState<B>>) -> Response {
    respond(with_timeout(s.backend.operators()).await)
}

async fn get_calls<B: AdminBackend>(State(s): State<HttpState<B>>) -> Response {
    respond(with_timeout(s.backend.calls()).await)
}

fn parse_pause(body: &[u8]) -> Result<Option<String>, AdminError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let req: PauseRequest =
        serde_json::from_slice(body).map_err(|e| AdminError::BadRequest(format!("body: {e}")))?;
    match req.reason {
        Some(r) if r.chars().count() > MAX_REASON_CHARS => Err(AdminError::BadRequest(format!(
            "reason longer than {MAX_REASON_CHARS} characters"
        ))),
        Some(r) if r.chars().any(char::is_control) => Err(AdminError::BadRequest(
            "reason contains control characters".into(),
        )),
        r => Ok(r.filter(|r| !r.trim().is_empty())),
    }
}

async fn post_pause<B: AdminBackend>(
    State(s): State<HttpState<B>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let reason = match parse_pause(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    respond(
        with_timeout(s.backend.pause(id, reason))
            .await
            .and_then(|r| r),
    )
}

async fn post_unpause<B: AdminBackend>(
    State(s): State<HttpState<B>>,
    Path(id): Path<String>,
) -> Response {
    respond(with_timeout(s.backend.unpause(id)).await.and_then(|r| r))
}

async fn post_logout<B: AdminBackend>(
    State(s): State<HttpState<B>>,
    Path(id): Path<String>,
) -> Response {
    respond(with_timeout(s.backend.logout(id)).await.and_then(|r| r))
}

async fn post_login<B: AdminBackend>(
    State(s): State<HttpState<B>>,
    Path(id): Path<String>,
) -> Response {
    respond(with_timeout(s.backend.login(id)).await.and_then(|r| r))
}

async fn delete_caller<B: AdminBackend>(
    State(s): State<HttpState<B>>,
    Path((queue, call_id)): Path<(String, String)>,
) -> Response {
    respond(
        with_timeout(s.backend.remove_caller(queue, call_id))
            .await
            .and_then(|r| r),
    )
}

async fn get_blocks<B: AdminBackend>(State(s): State<HttpState<B>>) -> Response {
    respond(with_timeout(s.backend.blocks()).await)
}

async fn delete_block<B: AdminBackend>(
    State(s): State<HttpState<B>>,
    Path(source): Path<String>,
) -> Response {
    if source.parse::<std::net::IpAddr>().is_err() {
        return AdminError::BadRequest(format!("{source:?} is not an IP address")).into_response();
    }
    respond(
        with_timeout(s.backend.unblock(source))
            .await
            .and_then(|r| r),
    )
}

async fn get_recordings<B: AdminBackend>(State(s): State<HttpState<B>>) -> Response {
    respond(with_timeout(s.backend.recordings()).await.and_then(|r| r))
}

/// The WAV file, streamed in 64 KiB chunks (a long call's file is large).
async fn get_recording<B: AdminBackend>(
    State(s): State<HttpState<B>>,
    Path(name): Path<String>,
) -> Response {
    let path = match with_timeout(s.backend.recording_file(name.clone()))
        .await
        .and_then(|r| r)
    {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => return AdminError::NotFound(format!("no recording {name:?}")).into_response(),
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let body = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let mut resp = axum::body::Body::from_stream(body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

async fn post_reload<B: AdminBackend>(State(s): State<HttpState<B>>) -> Response {
    match with_timeout(s.backend.reload()).await {
        // The old plans stay in force; 422 tells scripts the new ones were refused.
        Ok(report) if !report.ok => json(StatusCode::UNPROCESSABLE_ENTITY, &report),
        r => respond(r),
    }
}

async fn post_drain<B: AdminBackend>(State(s): State<HttpState<B>>) -> Response {
    // Readiness flips first so load balancers stop sending calls even if the
    // engine is slow to answer.
    s.readiness.set_draining(true);
    respond(with_timeout(s.backend.drain()).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn pause_body_rules() {
        assert_eq!(parse_pause(b""), Ok(None));
        assert_eq!(parse_pause(b"{}"), Ok(None));
        assert_eq!(
            parse_pause(br#"{"reason":"comida"}"#),
            Ok(Some("comida".into()))
        );
        assert!(matches!(
            parse_pause(br#"{"reason":"a\u0007b"}"#),
            Err(AdminError::BadRequest(_))
        ));
        assert!(matches!(
            parse_pause(br#"{"why":"x"}"#),
            Err(AdminError::BadRequest(_))
        ));
        let long = format!(r#"{{"reason":"{}"}}"#, "x".repeat(MAX_REASON_CHARS + 1));
        assert!(matches!(
            parse_pause(long.as_bytes()),
            Err(AdminError::BadRequest(_))
        ));
        assert!(matches!(
            parse_pause(b"not json"),
            Err(AdminError::BadRequest(_))
        ));
    }

    #[test]
    fn readiness_needs_all_three_and_no_drain() {
        let r = Readiness::new();
        assert!(!r.report().ready);
        r.set_listening(true);
        r.set_plans_loaded(true);
        assert!(!r.report().ready);
        r.set_storage_writable(true);
        assert!(r.report().ready);
        r.set_draining(true);
        let rep = r.report();
        assert!(!rep.ready && rep.draining && rep.listening);
    }
}
