//! The live wallboard: one page (`/wallboard`) for a wall screen or a phone,
//! fed by server-sent events (`/wallboard/events`), and the same figures as
//! JSON (`/wallboard/state`), all behind the read-only viewer token.
//!
//! This room turns what the call room reports ([`WallboardInput`], read
//! through [`AdminBackend::wallboard`]) into what the board shows: it keeps
//! the day book that makes "today" out of the ACD's since-start counters, and
//! one producer that asks the call room once a second while at least one
//! board is open and pushes a frame only when something shown changed. It
//! holds no call state and takes no admin action: the viewer token opens
//! these three routes and nothing else.
//!
//! Times that tick (oldest wait, time in state) are sent as the moment they
//! began (epoch milliseconds, whole seconds) and counted on by the page, so a
//! quiet floor costs no traffic but the keep-alive.
//!
//! The page is one file with its CSS and script inline (no fonts, scripts or
//! styles from elsewhere: it must work on a floor without internet), served
//! with a Content-Security-Policy that allows exactly those two inline blocks
//! by hash and connections back to this server only.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{DateTime, Local, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::http::{AdminBackend, HttpState, OperatorState};

/// How often the producer asks the call room while a board is open.
const TICK: Duration = Duration::from_secs(1);
/// Open event streams at most: each holds a connection, and the listener's
/// 256 must stay free for scrapers and the admin API.
pub const MAX_STREAMS: usize = 32;
/// A comment line this often keeps idle streams (and proxies) open; well
/// under the listener's 60 s idle cut-off.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// A call room that does not answer within this skips a frame.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------- input

/// Answered, abandoned, and answered within the service-level threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub answered: u64,
    pub abandoned: u64,
    pub answered_within_threshold: u64,
}

impl Counts {
    fn minus(self, base: Counts) -> Counts {
        Counts {
            answered: self.answered.saturating_sub(base.answered),
            abandoned: self.abandoned.saturating_sub(base.abandoned),
            answered_within_threshold: self
                .answered_within_threshold
                .saturating_sub(base.answered_within_threshold),
        }
    }
}

/// What a caller joining the queue now would hear (the ACD's own rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NewCallerWords {
    /// An operator is free: rung at once, no figure said.
    AtOnce,
    /// "About N seconds" (10 s steps below 2 min, 15 s steps to 2¾ min).
    Seconds { seconds: u32 },
    /// "About N minutes".
    Minutes { minutes: u32 },
    /// "Between low and high minutes".
    Range { low: u32, high: u32 },
    /// Longer than the queue's `max_wait`: no figure, the plan's overflow.
    Beyond,
    /// Nobody staffed: no estimate.
    NoEstimate,
}

/// One queue as the call room reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueInput {
    pub name: String,
    pub waiting: u32,
    pub oldest_wait_seconds: f64,
    pub new_caller: NewCallerWords,
    pub service_level_threshold_seconds: f64,
    /// Counters since this gateway started (history seeded on start left
    /// out), from which the day book makes "today".
    pub since_start: Counts,
    pub operators_staffed: u32,
    pub operators_available: u32,
}

/// One operator as the call room reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorInput {
    pub id: String,
    pub name: Option<String>,
    pub state: OperatorState,
    pub reason: Option<String>,
    pub queues: Vec<String>,
    pub state_seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WallboardInput {
    pub queues: Vec<QueueInput>,
    pub operators: Vec<OperatorInput>,
}

// ---------------------------------------------------------------- view

/// A queue's figures for today.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TodayFigures {
    pub answered: u64,
    pub abandoned: u64,
    pub answered_within_threshold: u64,
    /// Answered within the threshold ÷ (answered + abandoned); `None` before any.
    pub service_level: Option<f64>,
    /// Abandoned ÷ (answered + abandoned); `None` before any.
    pub abandon_rate: Option<f64>,
}

impl From<Counts> for TodayFigures {
    fn from(c: Counts) -> Self {
        let offered = c.answered + c.abandoned;
        let ratio = |n: u64| (offered > 0).then(|| n as f64 / offered as f64);
        TodayFigures {
            answered: c.answered,
            abandoned: c.abandoned,
            answered_within_threshold: c.answered_within_threshold,
            service_level: ratio(c.answered_within_threshold),
            abandon_rate: ratio(c.abandoned),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueBoard {
    pub name: String,
    pub waiting: u32,
    /// When the longest-waiting caller joined (epoch ms); `None`: nobody waits.
    pub oldest_waiting_since_ms: Option<i64>,
    pub new_caller: NewCallerWords,
    pub service_level_threshold_seconds: f64,
    pub today: TodayFigures,
    pub operators_staffed: u32,
    pub operators_available: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorBoard {
    pub id: String,
    pub name: Option<String>,
    pub state: OperatorState,
    pub reason: Option<String>,
    pub queues: Vec<String>,
    /// When the current state began (epoch ms).
    pub state_since_ms: i64,
}

/// What "today" covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayView {
    /// The gateway's local date, `YYYY-MM-DD`.
    pub date: String,
    /// Counting since (epoch ms): local midnight, or the gateway's start
    /// when it started later that day.
    pub since_ms: i64,
    /// Whether `since_ms` is the midnight rollover (else the start).
    pub since_midnight: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WallboardView {
    pub today: DayView,
    pub queues: Vec<QueueBoard>,
    pub operators: Vec<OperatorBoard>,
}

/// One frame as sent: the view and the server's clock, which the page
/// compares with its own to count the ticking times right.
#[derive(Debug, Clone, Serialize)]
struct Frame<'a> {
    now_ms: i64,
    #[serde(flatten)]
    view: &'a WallboardView,
}

/// `at` minus `secs`, as epoch ms rounded to the second (so the same moment
/// read a tick later gives the same figure and sends no frame).
fn began_ms(at: DateTime<Utc>, secs: f64) -> i64 {
    let ms = at.timestamp_millis() - (secs.max(0.0) * 1000.0).round() as i64;
    (ms as f64 / 1000.0).round() as i64 * 1000
}

// ---------------------------------------------------------------- day book

/// Makes "today" out of since-start counters: at the first look on a new
/// local date (the midnight task looks right after midnight) the counters
/// are written down as the day's baseline; today is counters − baseline.
/// Before the first rollover the baseline is zero: today is since start.
#[derive(Debug, Clone)]
pub struct DayBook {
    date: NaiveDate,
    since: DateTime<Utc>,
    since_midnight: bool,
    baseline: HashMap<String, Counts>,
}

impl DayBook {
    /// A book opened when the gateway started (`started`, local `date`).
    pub fn new(started: DateTime<Utc>, date: NaiveDate) -> Self {
        DayBook {
            date,
            since: started,
            since_midnight: false,
            baseline: HashMap::new(),
        }
    }

    /// Looks at the counters at `now` (local date `date`): rolls the day
    /// over when the date changed, and returns today's counts per queue.
    pub fn observe(
        &mut self,
        date: NaiveDate,
        now: DateTime<Utc>,
        counters: &[(String, Counts)],
    ) -> Vec<Counts> {
        if date != self.date {
            self.date = date;
            self.since = now;
            self.since_midnight = true;
            self.baseline = counters.iter().cloned().collect();
        }
        counters
            .iter()
            .map(|(q, c)| c.minus(self.baseline.get(q).copied().unwrap_or_default()))
            .collect()
    }

    pub fn view(&self) -> DayView {
        DayView {
            date: self.date.to_string(),
            since_ms: self.since.timestamp_millis(),
            since_midnight: self.since_midnight,
        }
    }
}

/// The board for `input` read at `now` (local date `date`).
pub fn compose(
    book: &mut DayBook,
    input: WallboardInput,
    now: DateTime<Utc>,
    date: NaiveDate,
) -> WallboardView {
    let counters: Vec<(String, Counts)> = input
        .queues
        .iter()
        .map(|q| (q.name.clone(), q.since_start))
        .collect();
    let today = book.observe(date, now, &counters);
    let queues = input
        .queues
        .into_iter()
        .zip(today)
        .map(|(q, t)| QueueBoard {
            oldest_waiting_since_ms: (q.waiting > 0).then(|| began_ms(now, q.oldest_wait_seconds)),
            name: q.name,
            waiting: q.waiting,
            new_caller: q.new_caller,
            service_level_threshold_seconds: q.service_level_threshold_seconds,
            today: t.into(),
            operators_staffed: q.operators_staffed,
            operators_available: q.operators_available,
        })
        .collect();
    let operators = input
        .operators
        .into_iter()
        .map(|o| OperatorBoard {
            state_since_ms: began_ms(now, o.state_seconds),
            id: o.id,
            name: o.name,
            state: o.state,
            reason: o.reason,
            queues: o.queues,
        })
        .collect();
    WallboardView {
        today: book.view(),
        queues,
        operators,
    }
}

// ---------------------------------------------------------------- hub

/// The last view pushed and its JSON.
struct Published {
    view: WallboardView,
    json: Arc<str>,
}

struct HubState {
    producing: bool,
    book: DayBook,
}

/// Shared by every handler: the day book, the latest frame, the producer's
/// on/off switch and the stream count.
pub struct Hub {
    frames: watch::Sender<Option<Arc<Published>>>,
    state: Mutex<HubState>,
    streams: AtomicUsize,
    closed: AtomicBool,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        let now = Utc::now();
        Hub {
            frames: watch::Sender::new(None),
            state: Mutex::new(HubState {
                producing: false,
                book: DayBook::new(now, now.with_timezone(&Local).date_naive()),
            }),
            streams: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the call room and composes the board (rolling the day over
    /// when the local date changed). `None` when the call room is stuck.
    async fn read<B: AdminBackend>(&self, backend: &B) -> Option<WallboardView> {
        let input = tokio::time::timeout(BACKEND_TIMEOUT, backend.wallboard())
            .await
            .ok()?;
        let now = Utc::now();
        let date = now.with_timezone(&Local).date_naive();
        Some(compose(&mut self.lock().book, input, now, date))
    }

    /// Ends every open stream (the listener is shutting down).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.frames.send_replace(None);
    }

    fn subscribe<B: AdminBackend>(
        self: &Arc<Self>,
        backend: &Arc<B>,
    ) -> watch::Receiver<Option<Arc<Published>>> {
        let mut st = self.lock();
        if !st.producing {
            st.producing = true;
            // A frame left from an earlier run would show stale figures.
            self.frames.send_replace(None);
            tokio::spawn(produce(self.clone(), backend.clone()));
        }
        self.frames.subscribe()
    }
}

/// Asks the call room once a tick while any stream is open; publishes a
/// frame when what the board shows changed.
async fn produce<B: AdminBackend>(hub: Arc<Hub>, backend: Arc<B>) {
    loop {
        if let Some(view) = hub.read(&*backend).await {
            let changed = hub.frames.borrow().as_ref().is_none_or(|p| p.view != view);
            if changed {
                let frame = Frame {
                    now_ms: Utc::now().timestamp_millis(),
                    view: &view,
                };
                match serde_json::to_string(&frame) {
                    Ok(json) => {
                        let json: Arc<str> = json.into();
                        if !hub.closed.load(Ordering::Acquire) {
                            hub.frames
                                .send_replace(Some(Arc::new(Published { view, json })));
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "wallboard frame did not serialise"),
                }
            }
        }
        tokio::time::sleep(TICK).await;
        let mut st = hub.lock();
        if hub.frames.receiver_count() == 0 || hub.closed.load(Ordering::Acquire) {
            st.producing = false;
            return;
        }
    }
}

/// Re-reads the board right after each local midnight even with no board
/// open, so the day's baseline is written down at midnight, not at the
/// first look the next morning.
pub async fn midnight_rollover<B: AdminBackend>(hub: Arc<Hub>, backend: Arc<B>) {
    loop {
        tokio::time::sleep(next_look(Local::now())).await;
        if hub.closed.load(Ordering::Acquire) {
            return;
        }
        let date = Local::now().date_naive();
        let rolled = hub.lock().book.date == date;
        if !rolled {
            let _ = hub.read(&*backend).await;
        }
    }
}

/// How long to sleep from `now` before looking at the date again: just past
/// the next local midnight, but never more than a minute, so a clock or
/// zone change is noticed soon.
fn next_look<Tz: TimeZone>(now: DateTime<Tz>) -> Duration {
    let next = now
        .date_naive()
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| now.timezone().from_local_datetime(&t).earliest());
    next.and_then(|n| (n - now).to_std().ok())
        .unwrap_or(Duration::from_secs(60))
        .min(Duration::from_secs(60))
        + Duration::from_millis(5)
}

// ---------------------------------------------------------------- page

const PAGE: &str = include_str!("wallboard.html");

/// The page and its Content-Security-Policy, which allows the page's one
/// inline `<style>` and one inline `<script>` by their SHA-256 and nothing
/// from anywhere else.
static PAGE_AND_POLICY: LazyLock<(&'static str, String)> = LazyLock::new(|| {
    let hash = |open: &str, close: &str| -> String {
        let body = PAGE
            .split_once(open)
            .and_then(|(_, rest)| rest.split_once(close))
            .map(|(b, _)| b)
            .expect("the wallboard page has its inline block");
        let digest = Sha256::digest(body.as_bytes());
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    };
    let policy = format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash("<script>", "</script>"),
        hash("<style>", "</style>"),
    );
    (PAGE, policy)
});

/// The headers every wallboard answer carries: the token may sit in the URL,
/// so no referrer and no caching.
fn private(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The viewer token from `Authorization: Bearer` or from `?token=` (a wall
/// screen's URL, and `EventSource`, which cannot set headers).
fn given_token(req: &Request) -> Option<String> {
    if let Some(t) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(super::http::bearer_token)
    {
        return Some(t.to_owned());
    }
    Query::<TokenQuery>::try_from_uri(req.uri())
        .ok()
        .and_then(|q| q.0.token)
}

/// 401 unless the request carries the viewer token.
pub(super) async fn require_viewer<B: AdminBackend>(
    State(state): State<HttpState<B>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    if state.viewer_authorized(given_token(&req).as_deref()) {
        return private(next.run(req).await);
    }
    let mut resp = super::http::unauthorized("missing or wrong viewer token");
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"conmutador\""),
    );
    private(resp)
}

pub(super) async fn get_page() -> Response {
    let (page, policy) = &*PAGE_AND_POLICY;
    let mut resp = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], *page).into_response();
    if let Ok(v) = HeaderValue::from_str(policy) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

pub(super) async fn get_state<B: AdminBackend>(State(s): State<HttpState<B>>) -> Response {
    let hub = s.wallboard();
    match hub.read(&*s.backend).await {
        Some(view) => {
            let frame = Frame {
                now_ms: Utc::now().timestamp_millis(),
                view: &view,
            };
            axum::Json(&frame).into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(super::http::ErrorBody {
                error: "unavailable: the call engine did not answer in time".into(),
            }),
        )
            .into_response(),
    }
}

/// Counts an open stream for its whole life (the gauge and the cap).
struct StreamSlot(Arc<Hub>);

impl StreamSlot {
    fn take(hub: &Arc<Hub>) -> Option<StreamSlot> {
        let prev = hub.streams.fetch_add(1, Ordering::AcqRel);
        if prev >= MAX_STREAMS {
            hub.streams.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        metrics::gauge!(super::metrics::WALLBOARD_STREAMS).set((prev + 1) as f64);
        Some(StreamSlot(hub.clone()))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let left = self.0.streams.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::gauge!(super::metrics::WALLBOARD_STREAMS).set(left as f64);
    }
}

pub(super) async fn get_events<B: AdminBackend>(State(s): State<HttpState<B>>) -> Response {
    let hub = s.wallboard();
    if hub.closed.load(Ordering::Acquire) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let Some(slot) = StreamSlot::take(&hub) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(super::http::ErrorBody {
                error: format!("at most {MAX_STREAMS} wallboards at once"),
            }),
        )
            .into_response();
    };
    let rx = hub.subscribe(&s.backend);
    let stream =
        futures_util::stream::unfold((rx, slot, true), |(mut rx, slot, first)| async move {
            let mut first = first;
            loop {
                if !first && rx.changed().await.is_err() {
                    return None;
                }
                first = false;
                let current = rx.borrow_and_update().clone();
                match current {
                    Some(p) => {
                        let ev = Event::default().data(&*p.json);
                        return Some((Ok::<_, Infallible>(ev), (rx, slot, false)));
                    }
                    None if slot.0.closed.load(Ordering::Acquire) => return None,
                    None => {}
                }
            }
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(name: &str, waiting: u32, oldest: f64, c: Counts) -> QueueInput {
        QueueInput {
            name: name.into(),
            waiting,
            oldest_wait_seconds: oldest,
            new_caller: NewCallerWords::Minutes { minutes: 3 },
            service_level_threshold_seconds: 60.0,
            since_start: c,
            operators_staffed: 1,
            operators_available: 0,
        }
    }

    fn counts(answered: u64, abandoned: u64, within: u64) -> Counts {
        Counts {
            answered,
            abandoned,
            answered_within_threshold: within,
        }
    }

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, h, m, s).unwrap()
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
    }

    /// Before midnight "today" is since the start; after the rollover only
    /// what the counters gained since then, per queue.
    #[test]
    fn today_counts_from_the_start_then_from_the_midnight_rollover() {
        let mut book = DayBook::new(at(9, 0, 0), day(7));
        let mut input = WallboardInput {
            queues: vec![queue("pasaportes", 0, 0.0, counts(8, 2, 6))],
            operators: vec![],
        };
        let v = compose(&mut book, input.clone(), at(23, 0, 0), day(7));
        let t = v.queues[0].today;
        assert_eq!((t.answered, t.abandoned), (8, 2));
        assert_eq!(t.service_level, Some(0.6));
        assert_eq!(t.abandon_rate, Some(0.2));
        assert!(!v.today.since_midnight);
        assert_eq!(v.today.since_ms, at(9, 0, 0).timestamp_millis());

        // Midnight: the counters so far become the baseline.
        let v = compose(&mut book, input.clone(), at(23, 59, 59), day(8));
        let t = v.queues[0].today;
        assert_eq!((t.answered, t.abandoned, t.service_level), (0, 0, None));
        assert!(v.today.since_midnight);
        assert_eq!(v.today.date, "2026-12-08");

        input.queues[0].since_start = counts(11, 3, 7);
        let t = compose(&mut book, input, at(23, 59, 59), day(8)).queues[0].today;
        assert_eq!(
            (t.answered, t.abandoned, t.answered_within_threshold),
            (3, 1, 1)
        );
        assert_eq!(t.service_level, Some(0.25));
        assert_eq!(t.abandon_rate, Some(0.25));
    }

    /// Ticking times are sent as when they began, so the same floor read a
    /// second later is the same view (no frame), and a real change is not.
    #[test]
    fn a_floor_that_only_ages_composes_the_same_view() {
        let mut book = DayBook::new(at(9, 0, 0), day(7));
        let input = |oldest: f64, state_secs: f64| WallboardInput {
            queues: vec![queue("q", 1, oldest, Counts::default())],
            operators: vec![OperatorInput {
                id: "op1".into(),
                name: None,
                state: OperatorState::Paused,
                reason: Some("comida".into()),
                queues: vec!["q".into()],
                state_seconds: state_secs,
            }],
        };
        let a = compose(&mut book, input(10.2, 65.0), at(10, 0, 0), day(7));
        let b = compose(&mut book, input(11.2, 66.0), at(10, 0, 1), day(7));
        assert_eq!(a, b);
        assert_eq!(
            a.queues[0].oldest_waiting_since_ms,
            Some(at(9, 59, 50).timestamp_millis())
        );
        assert_eq!(
            a.operators[0].state_since_ms,
            at(9, 58, 55).timestamp_millis()
        );
        let mut changed = input(11.2, 66.0);
        changed.queues[0].waiting = 2;
        assert_ne!(a, compose(&mut book, changed, at(10, 0, 1), day(7)));
        // Nobody waiting: no oldest wait at all.
        let mut empty = input(0.0, 66.0);
        empty.queues[0].waiting = 0;
        let v = compose(&mut book, empty, at(10, 0, 1), day(7));
        assert_eq!(v.queues[0].oldest_waiting_since_ms, None);
    }

    /// The midnight look lands just past local midnight, in the zone's own
    /// terms, and is never put off for more than a minute.
    #[test]
    fn the_midnight_look_lands_just_past_local_midnight() {
        let tz = chrono_tz::America::Mexico_City;
        let late = tz.with_ymd_and_hms(2026, 12, 7, 23, 59, 30).unwrap();
        assert_eq!(next_look(late), Duration::from_millis(30_005));
        let morning = tz.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap();
        assert_eq!(next_look(morning), Duration::from_millis(60_005));
        // 23:59:30 UTC is not midnight in Mexico City: no early rollover.
        let utc_late = Utc.with_ymd_and_hms(2026, 12, 7, 23, 59, 30).unwrap();
        assert_eq!(
            next_look(utc_late.with_timezone(&tz)),
            Duration::from_millis(60_005)
        );
    }

    /// The policy pins the page's own inline blocks and nothing else.
    #[test]
    fn the_page_policy_allows_its_inline_blocks_only() {
        let (page, policy) = &*PAGE_AND_POLICY;
        assert!(policy.starts_with("default-src 'none'; script-src 'sha256-"));
        assert!(policy.contains("connect-src 'self'"));
        for external in ["http://", "https://", "//fonts", "@import", "src=\""] {
            assert!(!page.contains(external), "the page loads {external}");
        }
    }

    #[test]
    fn new_caller_words_serialise_with_their_kind() {
        let j = serde_json::to_value(NewCallerWords::Range { low: 18, high: 28 }).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"kind": "range", "low": 18, "high": 28})
        );
        let j = serde_json::to_value(NewCallerWords::AtOnce).unwrap();
        assert_eq!(j, serde_json::json!({"kind": "at_once"}));
    }
}
