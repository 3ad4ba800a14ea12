//! The wallboard in a real browser: Debian's headless `chromium`, driven
//! through `chromedriver` (package `chromium-driver`), opens `/wallboard`
//! of the real gateway with the viewer token and watches it follow the floor
//! live over server-sent events: an operator's phone (baresip) registers and
//! the operator turns `available`, the admin API pauses it, a SIPp caller
//! joins the queue (0 → 1 waiting) and hangs up (back to 0, counted as
//! abandoned today). It fails on any browser console error, and when
//! chromium or chromedriver is missing. Around it, plain HTTP checks that
//! no token or a wrong one gets 401 with nothing of the board, and that the
//! viewer token opens nothing under `/api` (nor the admin token the board).
//!
//! Why `fantoccini` (WebDriver) rather than a DevTools-protocol crate
//! (`chromiumoxide`, `headless_chrome`): WebDriver is a W3C standard spoken by
//! Debian's own `chromedriver`, so the test drives the packaged browser
//! through its packaged driver with no version-matched protocol bindings to
//! keep in step; fantoccini is maintained, async on tokio like the gateway,
//! and builds without TLS (only loopback HTTP here). The console is read
//! through chromedriver's log endpoint (`goog:loggingPrefs`), and the test
//! first proves that channel works by logging an error of its own.
//!
//! Every process started here (gateway, chromedriver and its chromium,
//! baresip, sipp) is stopped by PID; all traffic stays on 127.0.0.1, and
//! chromium is told to resolve no host name but loopback.

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::baresip::{Baresip, BaresipOpts};
use common::{Gw, http_get, http_request};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const ADMIN: &str = "test-token";
const VIEWER: &str = "wall-viewer-token";

fn config(plans: &std::path::Path) -> String {
    format!(
        r#"
[http]
viewer_token = "{VIEWER}"
[sip]
auth_algorithms = ["MD5"]
[dialplans]
dir = "{}"
watch = false
[[queues]]
name = "pasaportes"
strategy = "longest_idle"
ring_timeout = 15
announce_interval = 20
[[operators]]
id = "op1"
display_name = "Ana"
password = "pw"
queues = [{{ name = "pasaportes" }}]
"#,
        plans.display()
    )
}

/// A program from a Debian package, or a failure naming the package.
fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is missing: apt-get install {package} (scripts/test.sh does)"
    );
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// chromedriver on a loopback port, in a process group of its own (the
/// group's id is its PID) so that on drop the chromium it started goes too,
/// even when a failing test never closed the session.
struct Driver {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Driver {
    fn start(dir: &std::path::Path) -> Driver {
        let port = free_tcp_port();
        let log = dir.join("chromedriver.log");
        let child = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let d = Driver { child, port, log };
        let up = common::eventually(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "chromedriver did not listen\n{}", d.log_text());
        d
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The negative PID names the group: chromedriver and the browser
        // processes it started, nothing else.
        common::unsafe_kill(self.child.id(), "KILL");
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// chromedriver's console log (`POST /session/{id}/se/log`); reading it
/// empties it.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// The console entries since the last read, as (level, message).
async fn console(c: &Client) -> Vec<(String, String)> {
    let v = c.issue_cmd(BrowserLog).await.expect("read the browser log");
    v.as_array()
        .unwrap_or_else(|| panic!("the browser log is a list: {v}"))
        .iter()
        .map(|e| {
            (
                e["level"].as_str().unwrap_or_default().to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn no_console_errors(c: &Client, when: &str) {
    let errors: Vec<_> = console(c)
        .await
        .into_iter()
        .filter(|(level, _)| level == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors {when}: {errors:?}");
}

/// The text of the first element matching `css`, `None` if there is none.
async fn text(c: &Client, css: &str) -> Option<String> {
    let e = c.find(Locator::Css(css)).await.ok()?;
    e.text().await.ok()
}

async fn attr(c: &Client, css: &str, name: &str) -> Option<String> {
    let e = c.find(Locator::Css(css)).await.ok()?;
    e.attr(name).await.ok().flatten()
}

/// Polls the page until `f` holds (the page is pushed to, never reloaded).
async fn until<F, Fut>(limit: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if f().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the wallboard never showed {what}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

const WAITING: &str = r#"[data-queue="pasaportes"] [data-field="waiting"]"#;
const OP1: &str = r#"[data-operator="op1"]"#;

async fn op1_state(c: &Client) -> Option<String> {
    attr(c, OP1, "data-state").await
}

/// The figures as JSON, through the viewer token.
fn state(gw: &Gw) -> Value {
    let (status, body) = http_get(
        gw.http.unwrap(),
        &format!("/wallboard/state?token={VIEWER}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("the state is JSON")
}

fn tokens_keep_their_doors(gw: &Gw) {
    let http = gw.http.unwrap();
    // No token, a wrong one, the admin one: 401 and nothing of the board.
    for path in [
        "/wallboard".to_string(),
        "/wallboard?token=wrong".into(),
        format!("/wallboard?token={ADMIN}"),
        "/wallboard/state".into(),
        "/wallboard/state?token=wrong".into(),
        "/wallboard/events".into(),
        "/wallboard/events?token=wrong".into(),
    ] {
        let (status, body) = http_get(http, &path, None);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(
            !body.contains("pasaportes") && !body.contains("<html") && !body.contains("op1"),
            "{path} leaked: {body}"
        );
    }
    let (status, body) = http_get(http, "/wallboard", Some(ADMIN));
    assert_eq!(status, 401, "the admin token opens no wallboard: {body}");
    // The viewer token opens nothing under /api, as a header or in the URL.
    for (method, path) in [
        ("GET", "/api/queues"),
        ("GET", "/api/operators"),
        ("GET", "/api/calls"),
        ("POST", "/api/operators/op1/pause"),
        ("POST", "/api/drain"),
    ] {
        let (status, body) = http_request(http, method, path, Some(VIEWER), None);
        assert_eq!(status, 401, "viewer token on {method} {path}: {body}");
        let with_query = format!("{path}?token={VIEWER}");
        let (status, body) = http_request(http, method, &with_query, None, None);
        assert_eq!(status, 401, "viewer token on {method} {with_query}: {body}");
    }
    // The right token, as a header too.
    let (status, body) = http_get(http, "/wallboard", Some(VIEWER));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<html"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallboard_follows_the_floor_live_in_a_headless_browser() {
    require("chromium", "chromium");
    require("chromedriver", "chromium-driver");
    require("sipp", "sip-tester");
    require("baresip", "baresip");
    let tmp = tempfile::tempdir().unwrap();
    let plans = common::pasaportes_plan(tmp.path());
    let gw = Gw::start(&config(&plans));
    tokens_keep_their_doors(&gw);
    let before = state(&gw);
    assert_eq!(before["queues"][0]["name"], "pasaportes", "{before}");
    assert_eq!(before["queues"][0]["waiting"], 0, "{before}");

    let driver = Driver::start(tmp.path());
    let profile = tmp.path().join("chromium-profile");
    let caps = json!({
        "browserName": "chrome",
        "goog:loggingPrefs": {"browser": "ALL"},
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--disable-domain-reliability",
                "--disable-client-side-phishing-detection", "--window-size=1280,900",
                // Only loopback: no name resolves but the local ones.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let caps = caps.as_object().unwrap().clone().into_iter().collect();
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap_or_else(|e| panic!("chromedriver session: {e}\n{}", driver.log_text()));

    let http = gw.http.unwrap();
    c.goto(&format!("http://{http}/wallboard?token={VIEWER}"))
        .await
        .expect("open the wallboard");
    until(
        Duration::from_secs(20),
        "the queue with 0 waiting",
        || async { text(&c, WAITING).await.as_deref() == Some("0") },
    )
    .await;
    until(Duration::from_secs(5), "op1 logged out", || async {
        op1_state(&c).await.as_deref() == Some("logged_out")
    })
    .await;
    assert_eq!(
        text(&c, "#link").await.as_deref(),
        Some("live"),
        "the stream is open"
    );
    // One page open: one stream counted.
    assert_eq!(gw.metric("conmutador_wallboard_streams", &[]), 1.0);
    let who = text(&c, &format!("{OP1} .who")).await;
    assert_eq!(who.as_deref(), Some("Ana"), "the display name is shown");
    // A queue with nobody staffed tells a new caller no figure.
    let told = text(&c, r#"[data-queue="pasaportes"] [data-field="new_caller"]"#).await;
    assert_eq!(told.as_deref(), Some("no estimate"));

    // The operator's phone registers: logged_out → available.
    let mut opts = BaresipOpts::operator("op1", "pw", gw.udp);
    opts.quit_after = Duration::from_secs(120);
    let phone = Baresip::start(opts);
    assert!(
        phone.wait_registered(Duration::from_secs(15)),
        "op1 did not register\n{}",
        phone.log()
    );
    until(Duration::from_secs(10), "op1 available", || async {
        op1_state(&c).await.as_deref() == Some("available")
    })
    .await;
    let told = text(&c, r#"[data-queue="pasaportes"] [data-field="new_caller"]"#).await;
    assert_eq!(told.as_deref(), Some("answered at once"));

    // Paused through the admin API (the admin token, not the viewer's).
    let (status, body) = http_request(
        http,
        "POST",
        "/api/operators/op1/pause",
        Some(ADMIN),
        Some(r#"{"reason":"comida"}"#),
    );
    assert_eq!(status, 200, "{body}");
    until(Duration::from_secs(10), "op1 paused", || async {
        op1_state(&c).await.as_deref() == Some("paused")
    })
    .await;
    let what = text(&c, &format!("{OP1} .what")).await.unwrap_or_default();
    assert!(what.contains("comida"), "the pause reason is shown: {what}");
    // Time in state ticks on the page: m:ss.
    let for_ = text(&c, &format!("{OP1} .for")).await.unwrap_or_default();
    assert!(
        for_.len() >= 4 && for_.contains(':'),
        "time in state as m:ss: {for_:?}"
    );

    // A SIPp caller joins (op1 is paused: nobody rings) and hangs up.
    let udp = gw.udp;
    let caller = std::thread::spawn(move || {
        common::sipp(
            "uac_basic.xml",
            udp,
            &["-s", "100", "-m", "1", "-d", "12000"],
            Duration::from_secs(40),
        )
    });
    until(Duration::from_secs(15), "1 caller waiting", || async {
        text(&c, WAITING).await.as_deref() == Some("1")
    })
    .await;
    let oldest = text(&c, r#"[data-queue="pasaportes"] [data-field="oldest"]"#).await;
    assert!(
        oldest.as_deref().is_some_and(|t| t.contains(':')),
        "the oldest wait is counted: {oldest:?}"
    );
    let run = tokio::task::spawn_blocking(move || caller.join().expect("sipp thread"))
        .await
        .unwrap();
    assert!(run.ok, "sipp:\n{}\n{}", run.stdout, run.stderr);
    until(
        Duration::from_secs(10),
        "0 callers waiting again",
        || async { text(&c, WAITING).await.as_deref() == Some("0") },
    )
    .await;
    // The caller hung up while waiting: today's abandon rate is 100 %.
    until(Duration::from_secs(5), "today's abandon rate", || async {
        text(
            &c,
            r#"[data-queue="pasaportes"] [data-field="abandon_rate"]"#,
        )
        .await
        .as_deref()
            == Some("100 %")
    })
    .await;
    let after = state(&gw);
    let today = &after["queues"][0]["today"];
    assert_eq!(
        (&today["abandoned"], &today["answered"]),
        (&json!(1), &json!(0)),
        "{after}"
    );

    no_console_errors(&c, "while following the floor").await;
    // The console check can fail: an error of our own is seen.
    c.execute("console.error('wallboard-probe')", vec![])
        .await
        .expect("run a script");
    let seen = console(&c).await;
    assert!(
        seen.iter()
            .any(|(l, m)| l == "SEVERE" && m.contains("wallboard-probe")),
        "the console channel does not report errors: {seen:?}"
    );
    c.close().await.expect("close the browser session");
    drop(driver);
    drop(phone);
    gw.stop();
}
