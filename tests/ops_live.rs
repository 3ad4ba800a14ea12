//! Operations checked against the real `conmutador run` binary on 127.0.0.1
//! while it carries calls (SIPp and the in-test UA): the live `/metrics`
//! passes `promtool check metrics` and matches the catalog, the dashboard
//! and the alert rules; a real Prometheus scrapes it during calls; the admin
//! API answers as `openapi.yaml` says; every call leaves exactly one CDR
//! that `records export` shows (SQLite, and PostgreSQL from
//! `CONMUTADOR_TEST_PG_URL`, whose test fails without it), and a refused
//! non-trunk INVITE leaves none; and `--log-format json` puts the Call-ID on
//! every call line.
//!
//! Every family is present from the first scrape, so every name the
//! dashboard and the alerts read is checked against the live dump
//! (`tests/ops_metrics_live.rs` checks the label values too).
//!
//! All traffic goes to 127.0.0.1 (the non-trunk caller sends from
//! 127.0.0.2); every process started here (gateway, Prometheus, promtool,
//! the exporter) is bounded in time and stopped by its own handle.

mod common;
mod ops_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ua::{Msg, Ua};
use common::{Gw, eventually, repo, sipp};
use conmutador::ops::metrics::{Kind, lookup_series};
use conmutador::ops::promql::{is_prometheus_builtin, metric_names};
use ops_support::{check_response, request_blocking, spec};
use serde_json::Value;

/// Generous: the machine is small and shared.
const SLOW: Duration = Duration::from_secs(60);

// ------------------------------------------------------------------ HTTP

/// Gw::start configures this admin token.
fn bearer() -> Option<&'static str> {
    Some("Bearer test-token")
}

fn gw_http(gw: &Gw) -> SocketAddr {
    gw.http.expect("the gateway prints its HTTP address")
}

// ------------------------------------------------------------------ OpenAPI

// ------------------------------------------------------------------ metrics text

/// (series name, labels, value) of every sample line.
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = line[..name_end].to_owned();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let mut end = inner.len();
            loop {
                // key
                let mut key = String::new();
                while let Some(&(i, c)) = chars.peek() {
                    if c == '}' {
                        end = i;
                        break;
                    }
                    chars.next();
                    if c == '=' {
                        break;
                    }
                    if c != ',' {
                        key.push(c);
                    }
                }
                if key.is_empty() {
                    break;
                }
                // quoted value with escapes
                let mut val = String::new();
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, e)) = chars.next() {
                                val.push(if e == 'n' { '\n' } else { e });
                            }
                        }
                        '"' => break,
                        c => val.push(c),
                    }
                }
                labels.insert(key, val);
            }
            rest = inner.get(end + 1..).unwrap_or("");
        }
        out.push((name, labels, rest.trim().to_owned()));
    }
    out
}

/// `# TYPE name kind` lines.
fn declared_types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect()
}

fn sum_of(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    samples(text)
        .into_iter()
        .filter(|(n, l, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .filter_map(|(_, _, v)| v.parse::<f64>().ok())
        .sum()
}

/// Label names written inside `name{...}` selectors of a PromQL expression.
fn selector_labels(expr: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("conmutador_") {
        let start = i + pos;
        let mut j = start;
        while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
            j += 1;
        }
        let name = &expr[start..j];
        if bytes.get(j) == Some(&b'{') {
            let close = expr[j..].find('}').map_or(expr.len(), |c| j + c);
            let inner = &expr[j + 1..close];
            // Split on commas outside quotes.
            let mut in_q = false;
            let mut cur = String::new();
            let mut parts = Vec::new();
            for c in inner.chars() {
                match c {
                    '"' => {
                        in_q = !in_q;
                        cur.push(c);
                    }
                    ',' if !in_q => parts.push(std::mem::take(&mut cur)),
                    c => cur.push(c),
                }
            }
            parts.push(cur);
            for p in parts {
                let key: String = p
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !key.is_empty() {
                    out.push((name.to_owned(), key));
                }
            }
            i = close;
        } else {
            i = j;
        }
    }
    out
}

// ------------------------------------------------------------------ processes

/// Fails the test when `tool` is missing: a check that cannot run is no pass.
fn require_tool(tool: &str, package: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{tool} is missing: apt-get install -y {package} (scripts/test.sh does)"
    );
}

/// A child we started, killed by its own handle when dropped.
struct Owned(Child);
impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a short command with a wall-clock limit; (success, stdout, stderr).
fn run_bounded(cmd: &mut Command, stdin: Option<&str>, limit: Duration) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("out");
    let err_path = dir.path().join("err");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(std::fs::File::create(&out_path).expect("out file"))
    .stderr(std::fs::File::create(&err_path).expect("err file"));
    let mut child = Owned(cmd.spawn().expect("spawn"));
    if let Some(input) = stdin {
        let mut pipe = child.0.stdin.take().expect("stdin pipe");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.0.try_wait().expect("wait") {
            break Some(st);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    (status.is_some_and(|s| s.success()), out, err)
}

/// A unique Call-ID prefix for this test run (PostgreSQL is shared).
fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("opslive-{tag}-{}-{nanos}", std::process::id())
}

/// A UA whose Call-ID we choose.
fn ua_with_id(gw: &Gw, call_id: &str) -> Ua {
    let mut ua = Ua::new(gw.udp);
    ua.call_id = call_id.to_owned();
    ua
}

/// The call's entry in GET /api/calls, once it shows a dialplan node.
fn wait_for_node(gw: &Gw, call_id: &str) -> Value {
    wait_for_node_in(gw, call_id, &[])
}

/// The call's entry in GET /api/calls once its node is one of `nodes`
/// (any node when empty).
fn wait_for_node_in(gw: &Gw, call_id: &str, nodes: &[&str]) -> Value {
    let mut found = Value::Null;
    let ok = eventually(SLOW, || {
        let r = request_blocking(gw_http(gw), "GET", "/api/calls", bearer(), "");
        if r.status != 200 {
            return false;
        }
        found = r
            .json()
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| {
                c["call_id"] == call_id
                    && c["node"]
                        .as_str()
                        .is_some_and(|n| nodes.is_empty() || nodes.contains(&n))
            })
            .cloned()
            .unwrap_or(Value::Null);
        !found.is_null()
    });
    assert!(
        ok,
        "call {call_id} never reached a node of {nodes:?} in /api/calls\n{}",
        gw.log_text()
    );
    found
}

fn plan_nodes() -> BTreeSet<String> {
    let plan: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo().join("dialplans/mexitel.toml")).unwrap())
            .expect("plan TOML");
    plan["nodes"]
        .as_table()
        .expect("nodes")
        .keys()
        .cloned()
        .collect()
}

fn sipp_ok(gw: &Gw, scenario: &str, target: SocketAddr, args: &[&str]) {
    let r = sipp(scenario, target, args, Duration::from_secs(120));
    assert!(
        r.ok,
        "sipp {scenario} {args:?} failed\n--- stdout\n{}\n--- stderr\n{}\n--- gateway log\n{}",
        r.stdout,
        r.stderr,
        gw.log_text()
    );
}

// ------------------------------------------------------------------ 1. metrics

#[test]
fn live_metrics_pass_promtool_and_match_catalog_dashboard_and_alerts() {
    let gw = Gw::start("");
    let addr = gw_http(&gw);
    // Healthy traffic that touches every live family: SIPp calls over UDP
    // and TCP, an IVR digit by SIP INFO, a plan reload, and a 503 while
    // draining.
    sipp_ok(
        &gw,
        "uac_basic.xml",
        gw.udp,
        &["-m", "3", "-d", "1000", "-s", "8776394835"],
    );
    sipp_ok(
        &gw,
        "uac_basic.xml",
        gw.tcp,
        &["-t", "t1", "-m", "1", "-d", "500", "-s", "8776394835"],
    );
    let mut ua = ua_with_id(&gw, &unique("metrics"));
    assert_eq!(ua.call("mexitel", "0", true).status(), Some(200));
    wait_for_node(&gw, &ua.call_id.clone());
    let info = ua.send_info_digit("mexitel", '1');
    assert_eq!(info.and_then(|m| m.status()), Some(200));
    assert_eq!(ua.hangup("mexitel").and_then(|m| m.status()), Some(200));
    assert_eq!(
        request_blocking(addr, "POST", "/api/reload", bearer(), "").status,
        200
    );
    assert_eq!(
        request_blocking(addr, "POST", "/api/drain", bearer(), "").status,
        200
    );
    let mut late = Ua::new(gw.udp);
    assert_eq!(late.call("mexitel", "0", true).status(), Some(503));
    // Every call (4 SIPp, 1 UA, 1 refused) has ended and been counted.
    assert!(
        eventually(SLOW, || {
            sum_of(&gw.metrics(), "conmutador_calls_ended_total", &[]) >= 6.0
        }),
        "calls ended: {}",
        gw.metrics()
    );
    let dump = gw.metrics();

    // promtool's linter accepts the exposition.
    require_tool("promtool", "prometheus");
    let (ok, out, err) = run_bounded(
        Command::new("promtool").args(["check", "metrics"]),
        Some(&dump),
        Duration::from_secs(60),
    );
    assert!(ok, "promtool check metrics:\n{out}{err}\n--- dump\n{dump}");

    // Every live series is in the catalog, with its kind and its labels.
    let types = declared_types(&dump);
    let live = samples(&dump);
    let mut live_names = BTreeSet::new();
    for (series, labels, value) in &live {
        let def = lookup_series(series)
            .unwrap_or_else(|| panic!("{series} is exported but not in the catalog"));
        assert!(
            value.parse::<f64>().is_ok(),
            "{series}: value {value:?} is not a number"
        );
        assert_eq!(
            types.get(def.name).map(String::as_str),
            Some(def.kind.prometheus_type()),
            "{series}: # TYPE differs from the catalog"
        );
        for k in labels.keys() {
            let allowed = def.labels.contains(&k.as_str())
                || (def.kind == Kind::Histogram && k == "le" && series.ends_with("_bucket"));
            assert!(
                allowed,
                "{series} carries label {k} which the catalog does not list for {}: {:?}",
                def.name, def.labels
            );
        }
        live_names.insert(def.name.to_owned());
    }

    // The dashboard and the alerts read only cataloged names and labels,
    // and every name they read is in the live dump.
    let mut missing = Vec::new();
    for (what, expr) in common::vocabulary::dashboard_and_alert_exprs() {
        for name in metric_names(&expr) {
            if is_prometheus_builtin(&name) {
                continue;
            }
            let def = lookup_series(&name)
                .unwrap_or_else(|| panic!("{what} reads {name}, which is not in the catalog"));
            // Every family is present from the first scrape, so whatever
            // they read is in the dump.
            if !live_names.contains(def.name) {
                missing.push(format!("{what}: {name}"));
            }
        }
        for (name, label) in selector_labels(&expr) {
            let def = lookup_series(&name).expect("checked above");
            assert!(
                def.labels.contains(&label.as_str())
                    || ["job", "instance", "le"].contains(&label.as_str()),
                "{what} selects {name} by label {label}, which it does not have: {expr}"
            );
        }
    }
    assert!(
        missing.is_empty(),
        "read by the dashboard/alerts but absent from a live dump after calls:\n{}\n--- dump\n{dump}",
        missing.join("\n")
    );
    // The traffic shows up in the values, not just the names.
    assert!(sum_of(&dump, "conmutador_calls_started_total", &[]) >= 6.0);
    assert!(
        sum_of(
            &dump,
            "conmutador_calls_ended_total",
            &[("result", "completed")]
        ) >= 5.0
    );
    assert!(sum_of(&dump, "conmutador_sip_503_sent_total", &[]) >= 1.0);
    assert!(
        sum_of(
            &dump,
            "conmutador_rtp_packets_total",
            &[("direction", "out")]
        ) > 0.0
    );
    assert!(
        sum_of(
            &dump,
            "conmutador_dtmf_digits_total",
            &[("method", "sip_info")]
        ) >= 1.0
    );
    assert!(
        sum_of(
            &dump,
            "conmutador_ivr_node_visits_total",
            &[("plan", "mexitel"), ("node", "bienvenida")]
        ) >= 5.0
    );
    assert!(
        sum_of(
            &dump,
            "conmutador_dialplan_reload_total",
            &[("result", "ok")]
        ) >= 1.0
    );
    let _ = gw.stop();
}

// ------------------------------------------------------------------ 2. Prometheus

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

/// The first sample of an instant query, if any.
fn prom_value(prom: SocketAddr, q: &str) -> Option<f64> {
    let r = request_blocking(
        prom,
        "GET",
        &format!("/api/v1/query?query={}", urlencode(q)),
        None,
        "",
    );
    if r.status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&r.body).ok()?;
    v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
}

#[test]
fn real_prometheus_scrapes_the_live_gateway_during_calls() {
    require_tool("prometheus", "prometheus");
    let gw = Gw::start("");
    let server = common::prometheus::Prometheus::start(gw_http(&gw), None);
    let prom = server.addr;
    let prom_log = || server.log();
    assert!(
        eventually(Duration::from_secs(90), || {
            TcpStream::connect(prom).is_ok()
                && prom_value(prom, r#"up{job="conmutador"}"#) == Some(1.0)
        }),
        "Prometheus never scraped the gateway\n{}",
        prom_log()
    );

    // A call held up until Prometheus has seen it active, so the check does
    // not depend on a scrape landing inside a short call.
    let mut ua = ua_with_id(&gw, &unique("prom"));
    assert_eq!(ua.call("mexitel", "0", true).status(), Some(200));
    assert!(
        eventually(SLOW, || {
            prom_value(prom, r#"sum(conmutador_calls_active{job="conmutador"})"#)
                .is_some_and(|v| v >= 1.0)
        }),
        "Prometheus never saw an active call\n{}",
        prom_log()
    );
    sipp_ok(
        &gw,
        "uac_basic.xml",
        gw.udp,
        &["-m", "3", "-d", "1000", "-s", "8776394835"],
    );
    assert_eq!(ua.hangup("mexitel").and_then(|m| m.status()), Some(200));

    // Call, SIP and RTP series reach Prometheus with the calls in them.
    let wanted: &[(&str, f64)] = &[
        ("sum(conmutador_calls_started_total)", 4.0),
        ("sum(conmutador_calls_ended_total)", 4.0),
        (
            r#"sum(conmutador_calls_ended_total{result="completed"})"#,
            4.0,
        ),
        (
            r#"sum(conmutador_sip_messages_total{direction="in", method="INVITE"})"#,
            4.0,
        ),
        (
            r#"sum(conmutador_sip_messages_total{direction="out", status="2xx"})"#,
            4.0,
        ),
        (r#"sum(conmutador_rtp_packets_total{direction="out"})"#, 1.0),
        (r#"sum(conmutador_rtp_bytes_total{direction="out"})"#, 1.0),
        ("sum(conmutador_call_duration_seconds_count)", 4.0),
        (
            r#"sum(conmutador_ivr_node_visits_total{plan="mexitel"})"#,
            4.0,
        ),
    ];
    let mut last = BTreeMap::new();
    let all_there = eventually(SLOW, || {
        wanted.iter().all(|(q, min)| {
            let v = prom_value(prom, q);
            last.insert(*q, v);
            v.is_some_and(|v| v >= *min)
        })
    });
    assert!(
        all_there,
        "Prometheus values below expectation: {last:#?}\n{}",
        prom_log()
    );
    // Rates work on the scraped counters (what the dashboard draws).
    assert!(
        eventually(SLOW, || prom_value(
            prom,
            "sum(increase(conmutador_calls_started_total[5m]))"
        )
        .is_some()),
        "no increase() over calls_started"
    );
    let _ = gw.stop();
}

// ------------------------------------------------------------------ 3. admin API

#[test]
fn admin_api_on_the_live_gateway_matches_openapi() {
    let spec = spec();
    let gw = Gw::start("");
    let addr = gw_http(&gw);

    // Health and readiness without a token.
    let r = request_blocking(addr, "GET", "/healthz", None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    check_response(&spec, "get", "/healthz", &r);
    let r = request_blocking(addr, "GET", "/readyz", None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    check_response(&spec, "get", "/readyz", &r);
    assert_eq!(r.json()["ready"], true);

    // No token, a wrong token, a token with the wrong scheme: 401.
    for auth in [
        None,
        Some("Bearer wrong-token"),
        Some("Bearer test-token-"),
        Some("Basic dGVzdC10b2tlbg=="),
    ] {
        for (method, path, template) in [
            ("GET", "/api/calls", "/api/calls"),
            ("GET", "/api/queues", "/api/queues"),
            ("POST", "/api/drain", "/api/drain"),
            ("POST", "/api/reload", "/api/reload"),
        ] {
            let r = request_blocking(addr, method, path, auth, "");
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}: {}", r.body);
            check_response(&spec, &method.to_lowercase(), template, &r);
        }
    }
    // The refused drain did not drain.
    assert_eq!(
        request_blocking(addr, "GET", "/readyz", None, "").status,
        200
    );

    // A call in progress is listed with its dialplan node, then is gone.
    let call_id = unique("admin");
    let mut ua = ua_with_id(&gw, &call_id);
    assert_eq!(ua.call("mexitel", "0", true).status(), Some(200));
    let entry = wait_for_node(&gw, &call_id);
    let r = request_blocking(addr, "GET", "/api/calls", bearer(), "");
    assert_eq!(r.status, 200);
    check_response(&spec, "get", "/api/calls", &r);
    assert_eq!(entry["state"], "ivr", "{entry}");
    assert_eq!(entry["called"], "mexitel", "{entry}");
    assert!(
        entry["caller"]
            .as_str()
            .is_some_and(|c| c.contains("+5215550001111")),
        "{entry}"
    );
    let node = entry["node"].as_str().expect("node");
    assert!(plan_nodes().contains(node), "{node} is not a mexitel node");
    assert_eq!(ua.hangup("mexitel").and_then(|m| m.status()), Some(200));
    assert!(
        eventually(SLOW, || {
            let r = request_blocking(addr, "GET", "/api/calls", bearer(), "");
            r.status == 200
                && !r
                    .json()
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["call_id"] == call_id.as_str())
        }),
        "call still listed after hang-up"
    );

    // Queues and operators: empty until the ACD is wired, but well-formed.
    for path in ["/api/queues", "/api/operators"] {
        let r = request_blocking(addr, "GET", path, bearer(), "");
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        check_response(&spec, "get", path, &r);
    }
    // Unknown operator: 404 with an error body.
    let r = request_blocking(addr, "POST", "/api/operators/nadie/pause", bearer(), "");
    assert_eq!(r.status, 404, "{}", r.body);
    check_response(&spec, "post", "/api/operators/{id}/pause", &r);

    // Reload answers with the plans in force.
    let r = request_blocking(addr, "POST", "/api/reload", bearer(), "");
    assert_eq!(r.status, 200, "{}", r.body);
    check_response(&spec, "post", "/api/reload", &r);
    let v = r.json();
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["plans"].as_u64().is_some_and(|n| n >= 1), "{v}");
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");

    // Drain: new INVITEs get 503 with Retry-After, readiness drops, health stays.
    let r = request_blocking(addr, "POST", "/api/drain", bearer(), "");
    assert_eq!(r.status, 200, "{}", r.body);
    check_response(&spec, "post", "/api/drain", &r);
    assert_eq!(r.json()["draining"], true);
    let mut late = Ua::new(gw.udp);
    let resp: Msg = late.call("mexitel", "0", true);
    assert_eq!(resp.status(), Some(503), "{}", resp.0);
    let retry = resp.header("Retry-After").expect("Retry-After on the 503");
    assert!(
        retry
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .parse::<u32>()
            .is_ok(),
        "Retry-After {retry:?}"
    );
    let r = request_blocking(addr, "GET", "/readyz", None, "");
    assert_eq!(r.status, 503, "{}", r.body);
    check_response(&spec, "get", "/readyz", &r);
    let v = r.json();
    assert_eq!(v["ready"], false, "{v}");
    assert_eq!(v["draining"], true, "{v}");
    let r = request_blocking(addr, "GET", "/healthz", None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    check_response(&spec, "get", "/healthz", &r);
    // /metrics stays open while draining (Prometheus keeps scraping).
    let r = request_blocking(addr, "GET", "/metrics", None, "");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        r.headers
    );
    let st = gw.stop();
    assert!(st.success(), "gateway exit status {st:?}");
}

/// Copies the shipped dialplans (plans and prompts) to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

#[test]
fn admin_reload_brings_in_a_new_prompt_with_the_plan_that_uses_it() {
    let plans = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo().join("dialplans"), plans.path());
    let dir = toml::Value::from(plans.path().display().to_string());
    // No file watcher: only the admin API may reload here.
    let gw = Gw::start(&format!("[dialplans]\ndir = {dir}\nwatch = false\n"));
    let addr = gw_http(&gw);
    // A new recording and the plan change that plays it, then a reload.
    for lang in std::fs::read_dir(plans.path().join("prompts"))
        .expect("prompts")
        .flatten()
    {
        let old = lang.path().join("bienvenida.wav");
        if old.exists() {
            std::fs::copy(&old, lang.path().join("bienvenida_nueva.wav")).expect("new prompt");
        }
    }
    let plan = plans.path().join("mexitel.toml");
    let text = std::fs::read_to_string(&plan).expect("plan");
    let changed = text.replacen(
        "prompts = [\"bienvenida\"]",
        "prompts = [\"bienvenida_nueva\"]",
        1,
    );
    assert_ne!(changed, text, "the welcome node's prompt line moved");
    std::fs::write(&plan, changed).expect("write plan");
    let r = request_blocking(addr, "POST", "/api/reload", bearer(), "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ok"], true, "{}", r.body);
    // A call now plays the new recording: nothing is reported missing.
    let id = unique("reload");
    let mut ua = ua_with_id(&gw, &id);
    assert_eq!(ua.call("mexitel", "0", true).status(), Some(200));
    wait_for_node(&gw, &id);
    let audio = ua.receive_audio(Duration::from_millis(1500));
    assert_eq!(ua.hangup("mexitel").and_then(|m| m.status()), Some(200));
    assert!(
        eventually(SLOW, || gw.log_text().contains("call ended")),
        "call never ended"
    );
    let log = gw.log_text();
    assert!(
        !log.contains("prompt missing"),
        "the reloaded plan plays a prompt the gateway did not load:\n{log}"
    );
    assert!(
        audio.rms() > 100.0,
        "no audible welcome (rms {})",
        audio.rms()
    );
    let _ = gw.stop();
}

// ------------------------------------------------------------------ 4. CDRs

/// Answers BYEs arriving on the UA's socket with 200 OK until `limit`,
/// so the gateway's hang-up on shutdown completes cleanly.
fn answer_byes(ua: Ua, limit: Duration) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 65_535];
        while Instant::now() < deadline {
            let Ok((n, from)) = ua.sip.recv_from(&mut buf) else {
                continue;
            };
            let m = Msg(String::from_utf8_lossy(&buf[..n]).into_owned());
            if !m.is_request("BYE") {
                continue;
            }
            let mut resp = String::from("SIP/2.0 200 OK\r\n");
            for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
                if let Some(v) = m.header(h) {
                    resp.push_str(&format!("{h}: {v}\r\n"));
                }
            }
            resp.push_str("Content-Length: 0\r\n\r\n");
            let _ = ua.sip.send_to(resp.as_bytes(), from);
            return true;
        }
        false
    })
}

/// RFC 4180 rows (quoted fields, doubled quotes, CRLF).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

fn export(config: &Path, since: &str, format: &str) -> String {
    let (ok, out, err) = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_conmutador"))
            .arg("--config")
            .arg(config)
            .args(["records", "export", "--since", since, "--format", format]),
        None,
        Duration::from_secs(60),
    );
    assert!(ok, "records export --format {format} failed: {err}");
    out
}

/// What the test expects of one call's record.
struct Expect {
    call_id: String,
    disposition: &'static str,
    side: &'static str,
    cause: &'static str,
    /// The plan path starts with these nodes (empty: no plan).
    path_prefix: &'static [&'static str],
    answered: bool,
}

fn cdr_scenario(storage: &str) {
    let since = chrono::Utc::now().format("%Y-%m-%d").to_string();
    // Data and config outlive the gateway's own temp dir (removed on stop).
    let keep = tempfile::tempdir().expect("tempdir");
    let data = toml::Value::from(keep.path().join("data").display().to_string());
    let extra = format!(
        "[trunks]\nallow = [\"127.0.0.1/32\"]\n[storage]\ndata_dir = {data}\nflush_interval_ms = 200\n{storage}"
    );
    let gw = Gw::start(&extra);
    let config = keep.path().join("conmutador.toml");
    std::fs::copy(gw.dir.path().join("conmutador.toml"), &config).expect("copy config");
    let base = unique("cdr");
    let mut expect = Vec::new();

    // A caller who skips the welcome (barge-in), picks Spanish, reaches
    // the office-hours branch and hangs up there.
    let id = format!("{base}-a");
    let mut ua = ua_with_id(&gw, &id);
    assert_eq!(ua.call("mexitel", "0", true).status(), Some(200));
    wait_for_node(&gw, &id);
    let info = ua.send_info_digit("mexitel", '1');
    assert_eq!(info.and_then(|m| m.status()), Some(200));
    // Which node follows the branch depends on the day and hour; the
    // barge-in digit may already have answered the language menu.
    let past_branch = ["menu_principal", "fuera_de_horario", "dia_festivo"];
    let mut any = vec!["idioma"];
    any.extend(past_branch);
    let at = wait_for_node_in(&gw, &id, &any);
    if at["node"] == "idioma" {
        let info = ua.send_info_digit("mexitel", '1');
        assert_eq!(info.and_then(|m| m.status()), Some(200));
        wait_for_node_in(&gw, &id, &past_branch);
    }
    assert_eq!(ua.hangup("mexitel").and_then(|m| m.status()), Some(200));
    expect.push(Expect {
        call_id: id,
        disposition: "completed",
        side: "caller",
        cause: "caller_hangup",
        path_prefix: &["bienvenida", "idioma", "espanol", "horario"],
        answered: true,
    });
    // A caller who hangs up during the welcome, on another plan number.
    let id = format!("{base}-b");
    let mut ua = ua_with_id(&gw, &id);
    assert_eq!(ua.call("18776394835", "0", true).status(), Some(200));
    wait_for_node_in(&gw, &id, &["bienvenida"]);
    assert_eq!(ua.hangup("18776394835").and_then(|m| m.status()), Some(200));
    expect.push(Expect {
        call_id: id,
        disposition: "completed",
        side: "caller",
        cause: "caller_hangup",
        path_prefix: &["bienvenida"],
        answered: true,
    });
    // A call from a source that is not a trunk: refused with 403.
    let id = format!("{base}-c");
    let mut stranger = ua_with_id(&gw, &id);
    stranger.sip = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2 (loopback)");
    stranger
        .sip
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    assert_eq!(stranger.call("mexitel", "0", true).status(), Some(403));
    // Never a call: counted, but no CDR (a flood of them would fill the disk).
    let stranger_id = id;
    // A call still up when the gateway stops: the gateway hangs up.
    let id = format!("{base}-d");
    let mut last = ua_with_id(&gw, &id);
    assert_eq!(last.call("mexitel", "0", true).status(), Some(200));
    wait_for_node(&gw, &id);
    let bye = answer_byes(last, Duration::from_secs(30));
    let log_before_stop = gw.log_text();
    let st = gw.stop();
    assert!(st.success(), "exit status {st:?}\n{log_before_stop}");
    assert!(bye.join().expect("BYE thread"), "no BYE on shutdown");
    expect.push(Expect {
        call_id: id,
        disposition: "completed",
        side: "gateway",
        cause: "shutdown",
        path_prefix: &["bienvenida"],
        answered: true,
    });

    // CSV: one row per call, with the header the docs describe.
    let csv = export(&config, &since, "csv");
    let rows = csv_rows(&csv);
    let header = rows.first().expect("CSV header");
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    for e in &expect {
        let mine: Vec<&Vec<String>> = rows
            .iter()
            .skip(1)
            .filter(|r| r.get(col("call_id")) == Some(&e.call_id))
            .collect();
        assert_eq!(mine.len(), 1, "CSV rows for {}:\n{csv}", e.call_id);
        let r = mine[0];
        let f = |name: &str| r[col(name)].as_str();
        assert_eq!(f("disposition"), e.disposition, "{r:?}");
        assert_eq!(f("hangup_side"), e.side, "{r:?}");
        assert_eq!(f("hangup_cause"), e.cause, "{r:?}");
        assert_eq!(!f("answer").is_empty(), e.answered, "{r:?}");
        assert!(!f("start").is_empty() && !f("end").is_empty(), "{r:?}");
        let path: Vec<&str> = f("plan_path")
            .split('>')
            .filter(|s| !s.is_empty())
            .collect();
        if e.path_prefix.is_empty() {
            assert!(path.is_empty() && f("plan").is_empty(), "{r:?}");
        } else {
            assert_eq!(f("plan"), "mexitel", "{r:?}");
            assert!(path.starts_with(e.path_prefix), "{r:?}");
            let nodes = plan_nodes();
            assert!(path.iter().all(|n| nodes.contains(*n)), "{r:?}");
        }
    }

    assert!(
        !csv.contains(&stranger_id),
        "a refused non-trunk INVITE wrote a CDR:\n{csv}"
    );

    // JSON lines: the same records, plan path as a list.
    let jsonl = export(&config, &since, "jsonl");
    let records: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for e in &expect {
        let mine: Vec<&Value> = records
            .iter()
            .filter(|r| r["call_id"] == e.call_id.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "JSONL records for {}:\n{jsonl}", e.call_id);
        let r = mine[0];
        assert_eq!(r["disposition"], e.disposition, "{r}");
        assert_eq!(r["hangup_side"], e.side, "{r}");
        assert_eq!(r["hangup_cause"], e.cause, "{r}");
        assert_eq!(r["answer"].is_string(), e.answered, "{r}");
        assert!(r["called"].as_str().is_some_and(|c| !c.is_empty()), "{r}");
        let path: Vec<&str> = r["plan_path"]
            .as_array()
            .expect("plan_path list")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(path.starts_with(e.path_prefix), "{r}");
        if e.path_prefix.is_empty() {
            assert!(path.is_empty() && r["plan"].is_null(), "{r}");
        } else {
            assert_eq!(r["plan"], "mexitel", "{r}");
        }
    }
}

#[test]
fn one_cdr_per_call_exported_from_sqlite() {
    cdr_scenario("");
}

#[test]
fn one_cdr_per_call_exported_from_postgres() {
    let url = std::env::var("CONMUTADOR_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("CONMUTADOR_TEST_PG_URL is not set: eval \"$(scripts/start-postgres.sh)\" (scripts/test.sh does)");
    cdr_scenario(&format!("postgres_url = {}\n", toml::Value::from(url)));
}

// ------------------------------------------------------------------ 5. logs

/// Sends a re-INVITE offering only G.729 (which the gateway does not
/// speak), ACKs the refusal on the same transaction, returns the status.
fn refused_reinvite(ua: &mut Ua) -> Option<u16> {
    ua.cseq += 1;
    let sdp = ua.sdp_offer("18", false);
    let uri = ua.uri("mexitel");
    let invite = ua.request("INVITE", &uri, "", Some(("application/sdp", &sdp)));
    ua.send(&invite);
    let resp = ua.final_response(Duration::from_secs(10))?;
    // ACK of a non-2xx: the INVITE's Via (branch), CSeq number, no body.
    let head = invite.split("\r\n\r\n").next().unwrap_or("");
    let mut ack = String::new();
    for (i, line) in head.lines().enumerate() {
        if i == 0 {
            ack.push_str(&line.replacen("INVITE", "ACK", 1));
        } else if line.starts_with("CSeq:") {
            ack.push_str(&format!("CSeq: {} ACK", ua.cseq));
        } else if line.starts_with("Content-Type:") || line.starts_with("Content-Length:") {
            continue;
        } else {
            ack.push_str(line);
        }
        ack.push_str("\r\n");
    }
    ack.push_str("Content-Length: 0\r\n\r\n");
    ua.send(&ack);
    resp.status()
}

#[test]
fn json_logs_put_the_call_id_on_every_line_of_a_call() {
    // Same config Gw::start writes, then the CLI flag on top.
    let probe = Gw::start("");
    let text = std::fs::read_to_string(probe.dir.path().join("conmutador.toml")).expect("config");
    let _ = probe.stop();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg: toml::Table = toml::from_str(&text).expect("config TOML");
    cfg["storage"]["data_dir"] = toml::Value::from(dir.path().join("data").display().to_string());
    let path = dir.path().join("conmutador.toml");
    std::fs::write(&path, toml::to_string(&cfg).expect("TOML")).expect("write config");
    let gw = Gw::start_with_file(&path, dir, &["--log-format", "json"]);

    let ids = [unique("log-a"), unique("log-b")];
    for id in &ids {
        let mut ua = ua_with_id(&gw, id);
        assert_eq!(ua.call("mexitel", "0", true).status(), Some(200));
        wait_for_node(&gw, id);
        // Something the call's task logs mid-call: a re-INVITE it refuses.
        assert_eq!(refused_reinvite(&mut ua), Some(488));
        assert_eq!(ua.hangup("mexitel").and_then(|m| m.status()), Some(200));
    }
    // Read before stopping: the log lives in the gateway's temp dir. Each
    // call's last line is "call ended", written as the call finishes.
    let mut log = String::new();
    let ended = eventually(SLOW, || {
        log = gw.log_text();
        ids.iter().all(|id| {
            log.lines()
                .any(|l| l.contains(id.as_str()) && l.contains("\"call ended\""))
        })
    });
    assert!(ended, "no call-ended line for every call:\n{log}");
    let _ = gw.stop();

    let mut per_call: BTreeMap<String, usize> = BTreeMap::new();
    let mut lines = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        lines += 1;
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["level"].is_string(), "{line}");
        assert!(v["target"].is_string(), "{line}");
        let spans = v["spans"].as_array().cloned().unwrap_or_default();
        let span_call_id = spans
            .iter()
            .find(|s| s["name"] == "call")
            .map(|s| s["call_id"].clone());
        if let Some(cid) = &span_call_id {
            // Inside a call span: the Call-ID is there.
            let cid = cid
                .as_str()
                .unwrap_or_else(|| panic!("call span without call_id: {line}"));
            assert!(!cid.is_empty(), "{line}");
            *per_call.entry(cid.to_owned()).or_default() += 1;
        }
        // A line that names one of our calls names it as a field, never
        // only inside free text.
        for id in &ids {
            if line.contains(id.as_str()) {
                let structured = span_call_id.as_ref().is_some_and(|c| c == id.as_str())
                    || v["call_id"] == id.as_str();
                assert!(structured, "Call-ID {id} only in free text: {line}");
            }
        }
    }
    assert!(lines >= 5, "too few log lines:\n{log}");
    for id in &ids {
        let n = per_call.get(id).copied().unwrap_or(0);
        assert!(n >= 2, "only {n} lines in the call span of {id}:\n{log}");
    }
    // The mid-call line is among them, inside the call span.
    for id in &ids {
        let refused = log.lines().any(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or(Value::Null);
            v["message"] == "re-INVITE offer refused"
                && v["spans"][0]["name"] == "call"
                && v["spans"][0]["call_id"] == id.as_str()
        });
        assert!(refused, "no re-INVITE line in the span of {id}:\n{log}");
    }
}

// ------------------------------------------------------------------ docker config

#[test]
fn docker_config_is_what_the_image_and_prometheus_expect() {
    let text =
        std::fs::read_to_string(repo().join("docker/conmutador.toml")).expect("docker config");
    let cfg = conmutador::config::Config::parse_text(&text, Path::new("/etc/conmutador"))
        .expect("docker/conmutador.toml is a valid config");
    let dockerfile = std::fs::read_to_string(repo().join("docker/Dockerfile")).expect("Dockerfile");
    let compose: Value = serde_norway::from_str(
        &std::fs::read_to_string(repo().join("docker/compose.yaml")).expect("compose"),
    )
    .expect("compose YAML");
    let prom: Value = serde_norway::from_str(
        &std::fs::read_to_string(repo().join("docker/prometheus/prometheus.yml"))
            .expect("prometheus.yml"),
    )
    .expect("prometheus YAML");

    // Listens on every interface of the container, on the exposed ports.
    assert!(cfg.http.listen.ip().is_unspecified(), "{}", cfg.http.listen);
    let http_port = cfg.http.listen.port();
    assert!(dockerfile.contains(&format!(" {http_port}/tcp")));
    let target = prom["scrape_configs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["job_name"] == "conmutador")
        .and_then(|j| j["static_configs"][0]["targets"][0].as_str())
        .expect("scrape target")
        .to_owned();
    assert_eq!(target, format!("gateway:{http_port}"));
    for a in &cfg.sip.listen {
        assert!(a.ip().is_unspecified(), "sip.listen {a}");
        assert!(dockerfile.contains(&format!(" {}/udp", a.port())));
        assert!(dockerfile.contains(&format!(" {}/tcp", a.port())));
    }
    assert!(cfg.media.bind.is_unspecified(), "{}", cfg.media.bind);
    let public = cfg
        .media
        .public_ip
        .expect("media.public_ip: SDP must not advertise 0.0.0.0");
    assert!(!public.is_unspecified());
    let rtp = format!(
        "{}-{}/udp",
        cfg.media.rtp_ports.low, cfg.media.rtp_ports.high
    );
    assert!(
        dockerfile.contains(&rtp),
        "Dockerfile does not expose {rtp}"
    );
    let ports: Vec<&str> = compose["services"]["gateway"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for p in [
        format!("{http_port}:{http_port}/tcp"),
        format!(
            "{0}-{1}:{0}-{1}/udp",
            cfg.media.rtp_ports.low, cfg.media.rtp_ports.high
        ),
    ] {
        assert!(ports.contains(&p.as_str()), "compose does not publish {p}");
    }
    // Paths inside the image: the plans the Dockerfile copies, data in the volume.
    assert!(dockerfile.contains("/usr/share/conmutador/dialplans"));
    assert_eq!(
        cfg.dialplan_dir(),
        PathBuf::from("/usr/share/conmutador/dialplans")
    );
    assert!(
        cfg.records().data_dir.starts_with("/var/lib/conmutador"),
        "{}",
        cfg.records().data_dir.display()
    );
    // The container runs the real CLI with this config.
    assert!(
        dockerfile.contains(r#"CMD ["run", "--config", "/etc/conmutador/conmutador.toml"]"#),
        "Dockerfile CMD"
    );
    let volumes: Vec<&str> = compose["services"]["gateway"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        volumes
            .iter()
            .any(|v| v.ends_with("./conmutador.toml}:/etc/conmutador/conmutador.toml:ro")),
        "compose mounts docker/conmutador.toml by default: {volumes:?}"
    );
    // The listener faces the network: the image's config keeps the admin
    // API closed (401 for all) until an operator mounts a config with a token.
    assert!(
        cfg.http.admin_token.is_empty(),
        "docker/conmutador.toml must not ship a usable admin token"
    );
}
