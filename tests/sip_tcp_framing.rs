//! A trunk's TCP connection carries many calls: every message that can still
//! be framed gets its answer (200, or 400 when malformed) on the same
//! connection, and only a stream whose framing is lost is closed. Driven
//! by a raw TcpStream writing requests back to back (pipelined, in one
//! write) and by SIPp over TCP (`-t t1`: every call on one connection).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Gw, sipp};

/// Answers read from a TCP stream, cut by Content-Length.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
    closed: bool,
}

impl Reader {
    fn new(stream: TcpStream) -> Reader {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Reader {
            stream,
            buf: Vec::new(),
            closed: false,
        }
    }

    /// The next whole message, or None when `limit` passes or the peer
    /// closed the connection (then `closed` is set).
    fn next(&mut self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                let cl: usize = head
                    .lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        let n = n.trim();
                        (n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l"))
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if self.buf.len() >= i + 4 + cl {
                    let msg: Vec<u8> = self.buf.drain(..i + 4 + cl).collect();
                    return Some(String::from_utf8_lossy(&msg).into_owned());
                }
            }
            if self.closed || Instant::now() >= deadline {
                return None;
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => self.closed = true,
            }
        }
    }

    /// Waits until the peer closes the connection (true) or `limit` passes.
    fn wait_closed(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.closed && Instant::now() < deadline {
            let _ = self.next(deadline.saturating_duration_since(Instant::now()));
        }
        self.closed
    }
}

fn status(msg: &str) -> u16 {
    msg.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn call_id(msg: &str) -> String {
    msg.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            let n = n.trim();
            (n.eq_ignore_ascii_case("call-id") || n.eq_ignore_ascii_case("i"))
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default()
}

/// An OPTIONS with Call-ID `id`, `extra` header lines and `framing`: the
/// Content-Length line(s) and the body, verbatim.
fn options(local: &str, id: &str, extra: &str, framing: &str) -> String {
    format!(
        "OPTIONS sip:probe@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/TCP {local};branch=z9hG4bK{id}\r\n\
From: <sip:probe@{local}>;tag=t{id}\r\nTo: <sip:probe@127.0.0.1>\r\n\
Call-ID: {id}\r\nCSeq: 1 OPTIONS\r\n{extra}{framing}"
    )
}

/// The kinds mixed into the pipeline, with the answer each must get.
fn kinds() -> Vec<(&'static str, &'static str, &'static str, u16)> {
    vec![
        (
            "plain",
            "Max-Forwards: 70\r\n",
            "Content-Length: 0\r\n\r\n",
            200,
        ),
        // 1*DIGIT: leading zeros are valid.
        (
            "zeros",
            "Max-Forwards: 70\r\nContent-Type: text/plain\r\n",
            "Content-Length: 0005\r\n\r\nhello",
            200,
        ),
        (
            "manyzeros",
            "Max-Forwards: 70\r\nContent-Type: text/plain\r\n",
            "Content-Length: 000000000000000000005\r\n\r\nworld",
            200,
        ),
        ("compact", "Max-Forwards: 70\r\n", "l: 00\r\n\r\n", 200),
        // Malformed but framable: answered 400, the stream stays in step.
        (
            "maxfwd",
            "Max-Forwards: 300\r\n",
            "Content-Length: 0\r\n\r\n",
            400,
        ),
        (
            "dupcl",
            "Max-Forwards: 70\r\nContent-Type: text/plain\r\n",
            "Content-Length: 3\r\nl: 003\r\n\r\nabc",
            400,
        ),
        (
            "contact",
            "Max-Forwards: 70\r\nContact: <<<bad\r\n",
            "Content-Length: 0\r\n\r\n",
            400,
        ),
    ]
}

#[test]
fn pipelined_requests_mixed_with_malformed_ones_all_get_answers_on_one_connection() {
    let gw = Gw::start("");
    let stream = TcpStream::connect_timeout(&gw.tcp, Duration::from_secs(5)).unwrap();
    let local = stream.local_addr().unwrap().to_string();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = Reader::new(stream);

    const ROUNDS: usize = 30;
    let mut want: HashMap<String, u16> = HashMap::new();
    let mut burst = String::new();
    for round in 0..ROUNDS {
        for (kind, extra, framing, status) in kinds() {
            let id = format!("{kind}-{round}");
            burst.push_str(&options(&local, &id, extra, framing));
            want.insert(id, status);
        }
    }
    writer.write_all(burst.as_bytes()).unwrap();

    let mut got: HashMap<String, u16> = HashMap::new();
    while got.len() < want.len() {
        let Some(msg) = reader.next(Duration::from_secs(20)) else {
            break;
        };
        got.insert(call_id(&msg), status(&msg));
    }
    assert!(
        !reader.closed,
        "the gateway closed the connection after {} answers\n{}",
        got.len(),
        gw.log_text()
    );
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    assert!(missing.is_empty(), "no answer for {missing:?}");
    for (id, status) in &want {
        assert_eq!(got.get(id), Some(status), "answer to {id}");
    }

    // Still the same connection: one more request, one more answer.
    writer
        .write_all(
            options(
                &local,
                "after",
                "Max-Forwards: 70\r\n",
                "Content-Length: 0\r\n\r\n",
            )
            .as_bytes(),
        )
        .unwrap();
    let last = reader.next(Duration::from_secs(10)).expect("answer after");
    assert_eq!((call_id(&last), status(&last)), ("after".to_owned(), 200));
}

/// What comes before the unframable message is answered; the connection
/// is then closed, and nothing after it is taken.
#[test]
fn a_stream_whose_framing_is_lost_is_closed() {
    let gw = Gw::start("");
    for (name, framing) in [
        ("notanumber", "Content-Length: 12abc\r\n\r\n"),
        ("toolarge", "Content-Length: 999999999\r\n\r\n"),
        (
            "disagree",
            "Content-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
        ),
        ("missing", "\r\n"),
    ] {
        let stream = TcpStream::connect_timeout(&gw.tcp, Duration::from_secs(5)).unwrap();
        let local = stream.local_addr().unwrap().to_string();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = Reader::new(stream);
        let mf = "Max-Forwards: 70\r\n";
        let burst = format!(
            "{}{}{}",
            options(&local, "before", mf, "Content-Length: 0\r\n\r\n"),
            options(&local, name, mf, framing),
            options(&local, "behind", mf, "Content-Length: 0\r\n\r\n"),
        );
        writer.write_all(burst.as_bytes()).unwrap();
        let first = reader.next(Duration::from_secs(10)).expect("answer before");
        assert_eq!(
            (call_id(&first), status(&first)),
            ("before".to_owned(), 200)
        );
        assert!(
            reader.wait_closed(Duration::from_secs(10)),
            "{name}: connection left open"
        );
        assert!(
            reader.next(Duration::ZERO).is_none(),
            "{name}: nothing after"
        );
    }
    // Counted by what went wrong: size, or framing.
    assert_eq!(gw.metric("conmutador_sip_oversize_total", &[]), 1.0);
    assert_eq!(
        gw.metric("conmutador_sip_parse_errors_total", &["kind=\"framing\""]),
        3.0
    );
}

/// SIPp over TCP, every call on one connection, each sending a valid
/// OPTIONS whose Content-Length has leading zeros, a malformed one (400)
/// and a plain one (200).
#[test]
fn sipp_over_tcp_keeps_one_connection_through_leading_zeros_and_malformed_requests() {
    let gw = Gw::start("");
    let r = sipp(
        "tcp_framing.xml",
        gw.tcp,
        &["-t", "t1", "-m", "20", "-l", "5", "-r", "20"],
        Duration::from_secs(60),
    );
    assert!(
        r.ok,
        "sipp over TCP failed\n{}\n{}\n{}",
        r.stdout,
        r.stderr,
        gw.log_text()
    );
}
