//! Shared by the ops integration tests: a minimal HTTP/1.1 client over a
//! raw TCP stream (one request per connection, bounded read, async and
//! blocking), so the tests need no HTTP client crate, and the checker that
//! holds responses against `openapi.yaml`.
#![allow(dead_code)]

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn request_head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    head
}

/// Splits a whole response into status, headers and (de-chunked) body; a
/// response that is not HTTP gives status 0.
pub fn parse_response(buf: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Resp {
        status,
        headers,
        body,
    }
}

/// A minimal HTTP/1.1 client: one request per connection, bounded read.
pub async fn req(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> Resp {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = request_head(addr, method, path, auth, body.unwrap_or(""));
    s.write_all(head.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response within 10 s")
        .expect("read");
    let r = parse_response(&buf);
    assert_ne!(r.status, 0, "an HTTP status line");
    r
}

/// The same request from a plain thread (tests that are not async).
pub fn request_blocking(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> Resp {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(10);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).expect("connect");
    s.set_read_timeout(Some(timeout * 2)).expect("timeout");
    s.write_all(request_head(addr, method, path, auth, body).as_bytes())
        .expect("write request");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    parse_response(&buf)
}

/// Decodes a chunked body; a truncated one yields what arrived.
pub fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest.get(n + 2..).unwrap_or("");
    }
    out
}

// ------------------------------------------------------------------ OpenAPI

pub fn spec() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml");
    serde_norway::from_str(&text).expect("openapi.yaml is YAML")
}

pub fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let ptr = r.strip_prefix('#').expect("local $ref");
            resolve(
                spec,
                spec.pointer(ptr)
                    .unwrap_or_else(|| panic!("dangling $ref {r}")),
            )
        }
        None => v,
    }
}

/// Checks the parts of JSON Schema the spec uses: type, nullable, enum,
/// required, properties, items, additionalProperties: false.
pub fn validate(spec: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(spec, schema);
    if v.is_null() {
        return if schema.get("nullable") == Some(&Value::Bool(true)) {
            Ok(())
        } else {
            Err(format!("{at}: null but not nullable"))
        };
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        return Err(format!("{at}: {v} not in {allowed:?}"));
    }
    let ty = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object");
    let ok = match ty {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        other => {
            return Err(format!(
                "{at}: schema type {other} unsupported by this checker"
            ));
        }
    };
    if !ok {
        return Err(format!("{at}: expected {ty}, got {v}"));
    }
    if let Some(items) = schema.get("items") {
        for (i, item) in v.as_array().into_iter().flatten().enumerate() {
            validate(spec, items, item, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(obj) = v.as_object() {
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = req.as_str().expect("required names are strings");
            if !obj.contains_key(name) {
                return Err(format!("{at}: missing required field {name}"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(spec, s, val, &format!("{at}.{k}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{at}: undocumented field {k}"));
                }
                None => return Err(format!("{at}: field {k} is not in the schema")),
            }
        }
    }
    Ok(())
}

/// Validates a response against the operation's documented response for
/// its status; an undocumented status is a failure.
pub fn check_response(spec: &Value, method: &str, template: &str, r: &Resp) {
    let op = spec["paths"][template][method].clone();
    assert!(op.is_object(), "{method} {template} not in openapi.yaml");
    let documented = op["responses"]
        .get(r.status.to_string())
        .unwrap_or_else(|| {
            panic!(
                "{method} {template} answered {} which openapi.yaml does not document: {}",
                r.status, r.body
            )
        });
    let documented = resolve(spec, documented);
    let ctype = r.header("content-type").unwrap_or("");
    let media = ctype.split(';').next().unwrap_or("").trim();
    let content = documented["content"].get(media).unwrap_or_else(|| {
        panic!(
            "{method} {template} {}: content type {ctype} not documented",
            r.status
        )
    });
    if media == "application/json" {
        if let Err(e) = validate(
            spec,
            &content["schema"],
            &r.json(),
            &format!("{method} {template} {}", r.status),
        ) {
            panic!("{e}\nbody: {}", r.body);
        }
    }
}
