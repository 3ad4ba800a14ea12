//! SIP over TLS against the real binary: a throwaway CA and server
//! certificates made at test time (rcgen), an in-process tokio-rustls
//! client for the fine-grained cases (OPTIONS on one connection, a TLS 1.1
//! ClientHello refused, SIGHUP swapping the certificate, operators held to
//! TLS), baresip registering over TLS as an operator and being rung and
//! bridged over that connection, and the transport's outgoing TLS
//! connections against an in-test TLS server (library level: the call room
//! does not yet send static operators or transfers over TLS).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::baresip::{Baresip, BaresipOpts, write_tone_wav};
use common::talk_both_ways;
use common::ua::Ua;
use common::{Gw, eventually};
use conmutador::sip::tls::{TlsContext, TlsFiles};
use conmutador::sip::transport::{Flow, Peer, Sink, TransportOptions, Transports};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A test CA and what it signs, written as PEM files into a folder.
struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

/// A leaf certificate: its PEM files and its DER (to recognise it on the wire).
struct Leaf {
    cert: PathBuf,
    key: PathBuf,
    der: Vec<u8>,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Pki {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let cert = params.self_signed(&key).expect("self-signed CA");
        let ca_pem = cert.pem();
        std::fs::write(dir.join(format!("{name}-ca.pem")), &ca_pem).unwrap();
        Pki {
            dir: dir.to_path_buf(),
            issuer: Issuer::new(params, key),
            ca_pem,
        }
    }

    fn ca(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-ca.pem"))
    }

    /// A server certificate for 127.0.0.1 and localhost, as `file`.pem and
    /// `file`-key.pem.
    fn leaf(&self, file: &str) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
            .expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, file);
        let cert = params.signed_by(&key, &self.issuer).expect("signed leaf");
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}-key.pem")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        Leaf {
            cert: c,
            key: k,
            der: cert.der().to_vec(),
        }
    }
}

fn tls_config(leaf: &Leaf, extra: &str) -> String {
    format!(
        r#"
[tls]
listen = ["127.0.0.1:0"]
cert = "{}"
key = "{}"
{extra}
"#,
        leaf.cert.display(),
        leaf.key.display()
    )
}

/// A gateway serving TLS with a fresh CA's `server` certificate: `before`
/// is TOML ahead of its [tls] table, `tls_extra` goes inside it.
fn tls_gw(tmp: &Path, before: &str, tls_extra: &str) -> (Pki, Leaf, Gw) {
    let pki = Pki::new(tmp, "gw");
    let leaf = pki.leaf("server");
    let gw = Gw::start(&format!("{before}\n{}", tls_config(&leaf, tls_extra)));
    (pki, leaf, gw)
}

/// [`tls_gw`] with the pasaportes queue and operators that must use TLS;
/// `more` is added TOML of the test's own.
fn tls_operators_gw(tmp: &Path, more: &str) -> (Pki, Gw) {
    let plans = common::pasaportes_plan(tmp);
    let before = format!("{}\n{more}", operator_config(&plans));
    let (pki, _, gw) = tls_gw(tmp, &before, "require_for_operators = true");
    (pki, gw)
}

/// A verified client connection and its local address.
async fn client(
    addr: SocketAddr,
    pki: &Pki,
) -> (tokio_rustls::client::TlsStream<TcpStream>, SocketAddr) {
    let s = connect(addr, &pki.ca_pem).await.unwrap();
    let local = s.get_ref().0.local_addr().unwrap();
    (s, local)
}

fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A verified TLS connection to the gateway, as a client that trusts `ca_pem`.
async fn connect(
    addr: SocketAddr,
    ca_pem: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap().to_owned();
    tokio_rustls::TlsConnector::from(client_config(ca_pem))
        .connect(name, tcp)
        .await
}

/// The leaf certificate a connection was shown.
fn presented(s: &tokio_rustls::client::TlsStream<TcpStream>) -> Vec<u8> {
    s.get_ref()
        .1
        .peer_certificates()
        .expect("server sent certificates")[0]
        .to_vec()
}

/// Reads one SIP message (head + Content-Length body) from a stream.
async fn read_message<S: tokio::io::AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).into_owned();
            let cl: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= i + 4 + cl {
                let msg: Vec<u8> = buf.drain(..i + 4 + cl).collect();
                return String::from_utf8_lossy(&msg).into_owned();
            }
        }
        let mut chunk = [0u8; 8192];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(0)) => panic!("connection closed; got {:?}", String::from_utf8_lossy(buf)),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => panic!("read failed: {e}"),
            Err(_) => panic!("no message in time; got {:?}", String::from_utf8_lossy(buf)),
        }
    }
}

fn options(uri: &str, local: SocketAddr, branch: &str, transport: &str) -> String {
    format!(
        "OPTIONS {uri} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=t{branch}\r\n\
         To: <{uri}>\r\n\
         Call-ID: {branch}@tls-test\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_over_tls_are_answered_on_the_same_connection_with_via_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let (pki, leaf, gw) = tls_gw(tmp.path(), "", "");
    let addr = gw.tls.expect("the gateway prints its TLS address");

    let mut s = connect(addr, &pki.ca_pem)
        .await
        .expect("verified handshake");
    assert_eq!(presented(&s), leaf.der);
    let local = s.get_ref().0.local_addr().unwrap();
    let mut buf = Vec::new();
    // A sips: Request-URI, then a sip: one with transport=tls, on one connection.
    for (i, uri) in [
        format!("sips:conmutador@{addr}"),
        format!("sip:conmutador@{addr};transport=tls"),
    ]
    .iter()
    .enumerate()
    {
        s.write_all(options(uri, local, &format!("opt{i}"), "TLS").as_bytes())
            .await
            .unwrap();
        let resp = read_message(&mut s, &mut buf).await;
        assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
        let via = header(&resp, "Via").unwrap();
        assert!(via.starts_with("SIP/2.0/TLS"), "{resp}");
        assert!(via.contains(&format!("branch=z9hG4bKopt{i}")), "{resp}");
    }
    let m = gw.metrics();
    assert_eq!(
        common::metric_sum(&m, "conmutador_sip_tls_connections", &[]),
        1.0,
        "{m}"
    );
    assert!(
        common::metric_sum(
            &m,
            "conmutador_sip_tls_handshakes_total",
            &["direction=\"in\"", "result=\"ok\""]
        ) >= 1.0
    );
    drop(s);
    assert!(eventually(Duration::from_secs(5), || gw
        .metric("conmutador_sip_tls_connections", &[])
        == 0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_streams_have_the_tcp_framing_size_cap_and_connection_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let (pki, _, gw) = tls_gw(
        tmp.path(),
        "[sip]\nmax_tcp_message = 4096",
        "max_connections = 1",
    );
    let addr = gw.tls.unwrap();
    let (mut s, local) = client(addr, &pki).await;

    // Two requests in one write: two answers, in order.
    let uri = format!("sip:{addr};transport=tls");
    let two = options(&uri, local, "a", "TLS") + &options(&uri, local, "b", "TLS");
    s.write_all(two.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    for b in ["a", "b"] {
        let resp = read_message(&mut s, &mut buf).await;
        assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
        assert!(resp.contains(&format!("branch=z9hG4bK{b}")), "{resp}");
    }

    // A second connection is over tls.max_connections: closed at accept,
    // before any handshake.
    let second = connect(addr, &pki.ca_pem).await;
    assert!(second.is_err(), "a second connection is refused");
    assert!(eventually(Duration::from_secs(5), || gw
        .metric("conmutador_sip_tls_refused_total", &[])
        == 1.0));

    // A message announcing more than sip.max_tcp_message closes the stream.
    let big =
        options(&uri, local, "big", "TLS").replace("Content-Length: 0", "Content-Length: 100000");
    s.write_all(big.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the gateway closes an oversize stream");
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_sip_oversize_total",
        &["transport=\"TLS\""]
    ) == 1.0));
    assert!(eventually(Duration::from_secs(5), || gw
        .metric("conmutador_sip_tls_connections", &[])
        == 0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_call_over_tls_gets_its_answers_and_the_gateways_bye_on_that_connection() {
    let tmp = tempfile::tempdir().unwrap();
    // Two seconds without RTP from the caller and the gateway hangs up.
    let (pki, _, gw) = tls_gw(tmp.path(), "[media]\nrtp_timeout = 2", "");
    let addr = gw.tls.unwrap();
    let (mut s, local) = client(addr, &pki).await;
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sdp = format!(
        "v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
        rtp.local_addr().unwrap().port()
    );
    let from = format!("<sip:+5215512345678@{local};transport=tls>;tag=trunk1");
    let invite = format!(
        "INVITE sips:5550000@{addr} SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bKinv1\r\n\
         Max-Forwards: 70\r\n\
         From: {from}\r\n\
         To: <sips:5550000@{addr}>\r\n\
         Call-ID: trunk-call@tls-test\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:trunk@{local};transport=tls>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    s.write_all(invite.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let ok = loop {
        let m = read_message(&mut s, &mut buf).await;
        if m.starts_with("SIP/2.0 1") {
            continue;
        }
        break m;
    };
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let contact = header(&ok, "Contact").unwrap();
    assert!(contact.contains(";transport=tls"), "{ok}");
    let target = contact
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned();
    let to = header(&ok, "To").unwrap().to_owned();
    let ack = format!(
        "ACK {target} SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bKack1\r\n\
         Max-Forwards: 70\r\n\
         From: {from}\r\n\
         To: {to}\r\n\
         Call-ID: trunk-call@tls-test\r\n\
         CSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    );
    s.write_all(ack.as_bytes()).await.unwrap();
    // The caller stays silent: the gateway's BYE comes over this connection.
    let bye = read_message(&mut s, &mut buf).await;
    assert!(bye.starts_with("BYE sip:trunk@"), "{bye}");
    let via = header(&bye, "Via").unwrap();
    assert!(via.starts_with("SIP/2.0/TLS"), "{bye}");
    assert!(via.contains(&format!("{}", addr.port())), "{bye}");
    let answer = format!(
        "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        header(&bye, "From").unwrap(),
        header(&bye, "To").unwrap(),
        header(&bye, "Call-ID").unwrap(),
        header(&bye, "CSeq").unwrap(),
    );
    s.write_all(answer.as_bytes()).await.unwrap();
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_calls_ended_total",
        &["reason=\"rtp_timeout\""]
    ) == 1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_judges_tls_messages_and_closes_a_blocked_source_before_any_handshake() {
    let tmp = tempfile::tempdir().unwrap();
    // 127.0.0.1 (the test) is not a trunk: its INVITEs are a scanner's.
    let (pki, _, gw) = tls_gw(
        tmp.path(),
        "[trunks]\nallow = [\"127.0.0.2/32\"]\n[guard]\nstrangers_block_after = 5",
        "",
    );
    let addr = gw.tls.unwrap();
    let (mut s, local) = client(addr, &pki).await;
    let mut buf = Vec::new();
    // INVITEs refused over TLS (403 on the connection) until the guard
    // blocks the source as a scanner: a handful, bounded.
    let mut refused = 0;
    for i in 0..10 {
        let invite = format!(
            "INVITE sips:100@{addr} SIP/2.0\r\n\
             Via: SIP/2.0/TLS {local};branch=z9hG4bKscan{i}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:scanner@127.0.0.1>;tag=s{i}\r\n\
             To: <sips:100@{addr}>\r\n\
             Call-ID: scan{i}@tls-test\r\n\
             CSeq: 1 INVITE\r\n\
             Content-Length: 0\r\n\r\n"
        );
        s.write_all(invite.as_bytes()).await.unwrap();
        loop {
            let m = read_message(&mut s, &mut buf).await;
            if m.starts_with("SIP/2.0 403") {
                refused += 1;
                break;
            }
            assert!(m.starts_with("SIP/2.0 100"), "{m}");
        }
        if gw.metric("conmutador_guard_blocks_total", &["reason=\"scan\""]) == 1.0 {
            break;
        }
    }
    assert!(
        gw.metric("conmutador_guard_blocks_total", &["reason=\"scan\""]) == 1.0,
        "blocked after {refused} refusals over TLS"
    );
    assert!(refused >= 5, "{refused}");
    let handshakes = gw.metric("conmutador_sip_tls_handshakes_total", &[]);
    // Blocked: a new connection is closed at accept, no handshake is tried.
    assert!(connect(addr, &pki.ca_pem).await.is_err());
    assert_eq!(
        gw.metric("conmutador_sip_tls_handshakes_total", &[]),
        handshakes
    );
    // And what still comes on the open connection is dropped unanswered.
    s.write_all(options(&format!("sips:{addr}"), local, "late", "TLS").as_bytes())
        .await
        .unwrap();
    let mut chunk = [0u8; 512];
    let got = tokio::time::timeout(Duration::from_secs(2), s.read(&mut chunk)).await;
    assert!(got.is_err(), "no answer to a blocked source");
}

/// A ClientHello that offers TLS 1.1 at most (legacy_version 0x0302, no
/// supported_versions extension). It carries the extensions rustls checks
/// before the version (signature algorithms, groups), so the version is
/// the one thing wrong with it and the refusal must say so.
fn tls11_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x02]; // client_version TLS 1.1
    hello.extend_from_slice(&[0x11; 32]); // random
    hello.push(0); // no session id
    // ECDHE-RSA/ECDSA with AES-128-CBC-SHA, as TLS 1.1 clients offer.
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0xc0, 0x09]);
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    let ext: &[u8] = &[
        0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x04, 0x01, // signature_algorithms
        0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17, // supported_groups
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00, // ec_point_formats: uncompressed
    ];
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend_from_slice(ext);
    let mut hs = vec![0x01, 0x00];
    hs.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    hs.extend_from_slice(&hello);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_1_1_only_client_is_refused_and_a_silent_one_times_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (pki, _, gw) = tls_gw(tmp.path(), "", "handshake_timeout = 1");
    let addr = gw.tls.unwrap();

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the gateway closes the connection");
    // One alert record: fatal (2), protocol_version (70); no ServerHello.
    assert!(got.len() >= 7, "an alert, got {got:02x?}");
    assert_eq!(got[0], 0x15, "an alert record, got {got:02x?}");
    assert_eq!(
        &got[5..7],
        &[2, 70],
        "fatal protocol_version, got {got:02x?}"
    );
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_sip_tls_handshakes_total",
        &["direction=\"in\"", "result=\"failed\""]
    ) == 1.0));
    assert_eq!(
        gw.metric(
            "conmutador_sip_tls_handshakes_total",
            &["direction=\"in\"", "result=\"ok\""]
        ),
        0.0
    );
    // A modern client still gets in.
    assert!(connect(addr, &pki.ca_pem).await.is_ok());

    // A client that never finishes its handshake is closed after
    // tls.handshake_timeout (1 s here) and counted.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut nothing = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut nothing)).await;
    assert!(read.is_ok(), "a silent client is closed");
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_sip_tls_handshakes_total",
        &["direction=\"in\"", "result=\"timeout\""]
    ) == 1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_makes_new_handshakes_present_the_new_certificate_and_a_bad_file_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "gw");
    let first = pki.leaf("server");
    let gw = Gw::start(&tls_config(&first, ""));
    let addr = gw.tls.unwrap();
    let before = connect(addr, &pki.ca_pem).await.unwrap();
    assert_eq!(presented(&before), first.der);

    // New files under the configured names, then SIGHUP.
    let second = pki.leaf("renewed");
    std::fs::copy(&second.cert, &first.cert).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    common::unsafe_kill(gw.pid(), "HUP");
    assert!(
        eventually(Duration::from_secs(10), || gw
            .metric("conmutador_sip_tls_reloads_total", &["result=\"ok\""])
            == 1.0),
        "{}",
        gw.log_text()
    );
    let after = connect(addr, &pki.ca_pem).await.unwrap();
    assert_eq!(
        presented(&after),
        second.der,
        "new handshakes: new certificate"
    );

    // A broken certificate file: the reload fails, the last good one stays.
    std::fs::write(&first.cert, "not a certificate").unwrap();
    common::unsafe_kill(gw.pid(), "HUP");
    assert!(eventually(Duration::from_secs(10), || gw.metric(
        "conmutador_sip_tls_reloads_total",
        &["result=\"error\""]
    ) == 1.0));
    assert!(gw.log_text().contains("TLS reload failed"));
    let still = connect(addr, &pki.ca_pem).await.unwrap();
    assert_eq!(presented(&still), second.der);

    // The connection opened before the swaps still carries SIP.
    let mut before = before;
    let local = before.get_ref().0.local_addr().unwrap();
    before
        .write_all(options(&format!("sip:{addr};transport=tls"), local, "old", "TLS").as_bytes())
        .await
        .unwrap();
    let resp = read_message(&mut before, &mut Vec::new()).await;
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
}

fn operator_config(plans: &Path) -> String {
    format!(
        r#"
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
password = "s3cret"
queues = [{{ name = "pasaportes" }}]
"#,
        plans.display()
    )
}

fn register(uri: &str, via: &str, branch: &str) -> String {
    format!(
        "REGISTER {uri} SIP/2.0\r\n\
         Via: {via};branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:op1@127.0.0.1>;tag=r{branch}\r\n\
         To: <sip:op1@127.0.0.1>\r\n\
         Call-ID: {branch}@tls-test\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:op1@127.0.0.1:5999>\r\n\
         Expires: 60\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_held_to_tls_are_refused_over_udp_and_challenged_over_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let (pki, gw) = tls_operators_gw(tmp.path(), "");
    let addr = gw.tls.unwrap();

    // Over UDP: 403 with a Warning saying why, before any challenge.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = udp.local_addr().unwrap();
    udp.send_to(
        register(
            &format!("sip:{}", gw.udp),
            &format!("SIP/2.0/UDP {local}"),
            "udp1",
        )
        .as_bytes(),
        gw.udp,
    )
    .unwrap();
    let mut b = [0u8; 4096];
    let (n, _) = udp.recv_from(&mut b).expect("an answer over UDP");
    let resp = String::from_utf8_lossy(&b[..n]).into_owned();
    assert!(resp.starts_with("SIP/2.0 403"), "{resp}");
    assert!(
        header(&resp, "Warning").is_some_and(|w| w.contains("TLS")),
        "{resp}"
    );
    assert!(header(&resp, "WWW-Authenticate").is_none(), "{resp}");

    // A feature code (pause, *21) dialled over UDP: the same refusal.
    let invite = format!(
        "INVITE sip:*21@{gw} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bKfeat\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:op1@127.0.0.1>;tag=feat\r\n\
         To: <sip:*21@{gw}>\r\n\
         Call-ID: feat@tls-test\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:op1@{local}>\r\n\
         Content-Length: 0\r\n\r\n",
        gw = gw.udp
    );
    udp.send_to(invite.as_bytes(), gw.udp).unwrap();
    let resp = loop {
        let (n, _) = udp.recv_from(&mut b).expect("an answer to the INVITE");
        let r = String::from_utf8_lossy(&b[..n]).into_owned();
        if !r.starts_with("SIP/2.0 100") {
            break r;
        }
    };
    assert!(resp.starts_with("SIP/2.0 403"), "{resp}");
    assert!(
        header(&resp, "Warning").is_some_and(|w| w.contains("TLS")),
        "{resp}"
    );
    assert!(header(&resp, "Proxy-Authenticate").is_none(), "{resp}");

    // The same REGISTER over TLS gets the digest challenge.
    let (mut s, local) = client(addr, &pki).await;
    s.write_all(
        register(
            &format!("sips:{addr}"),
            &format!("SIP/2.0/TLS {local}"),
            "tls1",
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let resp = read_message(&mut s, &mut Vec::new()).await;
    assert!(resp.starts_with("SIP/2.0 401"), "{resp}");
    assert!(header(&resp, "WWW-Authenticate").is_some(), "{resp}");
}

#[test]
fn baresip_registered_over_tls_is_rung_over_that_connection_and_bridged() {
    let tmp = tempfile::tempdir().unwrap();
    let (pki, gw) = tls_operators_gw(tmp.path(), "");

    let wav = tmp.path().join("op-tone.wav");
    write_tone_wav(&wav, 440.0, 60.0, 8000).unwrap();
    let phone = tls_operator(&gw, &pki, wav);
    assert_eq!(gw.metric("conmutador_sip_tls_connections", &[]), 1.0);
    assert_eq!(gw.metric("conmutador_registrations_active", &[]), 1.0);

    let mut ua = Ua::new(gw.udp);
    let resp = ua.call("100", "0", true);
    assert_eq!(resp.status(), Some(200), "{resp:?}");
    ua.send_pcmu(&[0; 160], true);
    assert!(
        phone.wait_call_established(Duration::from_secs(20)),
        "operator never got the call\n{}",
        gw.log_text()
    );
    talk_both_ways(&mut ua, &phone);

    // The INVITE reached the phone over TLS, with our Via and Contact saying so.
    let log = phone.log();
    let at = log.find("INVITE sip:").expect("baresip traced the INVITE");
    let invite: String = log[at..].chars().take(1500).collect();
    assert!(invite.contains("Via: SIP/2.0/TLS"), "{invite}");
    assert!(invite.contains(";transport=tls>"), "{invite}");
    // Still one TLS connection: the call used the registration's.
    assert_eq!(gw.metric("conmutador_sip_tls_connections", &[]), 1.0);

    // The caller hangs up: BYE reaches the operator over the same connection.
    assert_eq!(ua.hangup("100").and_then(|m| m.status()), Some(200));
    assert!(
        phone.wait_call_closed(Duration::from_secs(10)),
        "operator leg closed"
    );
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_calls_ended_total",
        &["reason=\"caller_hangup\"", "result=\"completed\""]
    ) >= 1.0));
}

/// SRTP per leg with real peers: a plain caller over UDP from the trunk,
/// an operator phone registered over TLS that insists on SRTP (baresip
/// `mediaenc=srtp-mand`) and a gateway that requires it of operators. The
/// gateway offers the phone RTP/SAVP with its key (only because its
/// signalling is TLS), the phone answers with its own, and the audio
/// crosses the bridge both ways: decrypted from the phone, encrypted to
/// it; the caller's leg stays plain.
#[test]
fn a_plain_caller_talks_to_an_operator_over_srtp() {
    let tmp = tempfile::tempdir().unwrap();
    let (pki, gw) = tls_operators_gw(tmp.path(), "[media]\nsrtp_operators = \"required\"");
    let wav = tmp.path().join("op-tone.wav");
    write_tone_wav(&wav, 440.0, 60.0, 8000).unwrap();
    let tls = gw.tls.expect("TLS listener");
    let mut opts = BaresipOpts::operator("op1", "s3cret", gw.udp);
    opts.account =
        format!("<sip:op1@{tls};transport=tls>;auth_pass=s3cret;regint=600;mediaenc=srtp-mand");
    opts.extra_config = format!(
        "sip_cafile\t\t{}\nmodule\t\t\tsrtp.so\n",
        pki.ca("gw").display()
    );
    opts.source_wav = Some(wav);
    opts.quit_after = Duration::from_secs(90);
    let phone = Baresip::start(opts);
    assert!(
        phone.wait_registered(Duration::from_secs(20)),
        "op1 did not register over TLS\n{}\n{}",
        phone.log(),
        gw.log_text()
    );

    let mut ua = Ua::new(gw.udp);
    let resp = ua.call("100", "0", true);
    assert_eq!(resp.status(), Some(200), "{resp:?}");
    let answer = resp.body().to_string();
    assert!(
        !answer.contains("a=crypto"),
        "the plain caller gets no keys: {answer}"
    );
    ua.send_pcmu(&[0; 160], true);
    assert!(
        phone.wait_call_established(Duration::from_secs(20)),
        "operator never got the call\n{}",
        gw.log_text()
    );
    let log = phone.log();
    let at = log.find("INVITE sip:").expect("baresip traced the INVITE");
    let invite: String = log[at..].chars().take(2500).collect();
    assert!(
        invite.contains("a=crypto:"),
        "keys offered over TLS: {invite}"
    );
    assert_eq!(
        gw.metric("conmutador_srtp_legs", &[]),
        1.0,
        "one leg encrypted"
    );
    talk_both_ways(&mut ua, &phone);
    assert_eq!(
        gw.metric("conmutador_srtp_dropped_total", &[]),
        0.0,
        "every SRTP packet from the phone verified"
    );
    assert_eq!(ua.hangup("100").and_then(|m| m.status()), Some(200));
    assert!(phone.wait_call_closed(Duration::from_secs(10)));
    assert!(eventually(Duration::from_secs(5), || gw
        .metric("conmutador_srtp_legs", &[])
        == 0.0));
}

/// SDES keys never travel in the clear: a SIPp carrier offering SRTP only
/// over UDP gets 488 with a Warning naming the rule, and no call.
#[test]
fn an_srtp_only_offer_over_udp_is_refused_488_saying_why() {
    let gw = Gw::start("");
    let r = common::sipp(
        "uac_srtp_cleartext.xml",
        gw.udp,
        &["-m", "1"],
        Duration::from_secs(30),
    );
    assert!(r.ok, "{}\n{}\n{}", r.stdout, r.stderr, gw.log_text());
    assert_eq!(gw.metric("conmutador_calls_active", &[]), 0.0);
}

/// baresip over TLS as the operator, registered and held to TLS.
fn tls_operator(gw: &Gw, pki: &Pki, wav: PathBuf) -> Baresip {
    let tls = gw.tls.expect("TLS listener");
    let mut opts = BaresipOpts::operator("op1", "s3cret", gw.udp);
    opts.account = format!("<sip:op1@{tls};transport=tls>;auth_pass=s3cret;regint=600");
    opts.extra_config = format!("sip_cafile\t\t{}\n", pki.ca("gw").display());
    opts.source_wav = Some(wav);
    opts.quit_after = Duration::from_secs(90);
    let phone = Baresip::start(opts);
    assert!(
        phone.wait_registered(Duration::from_secs(20)),
        "op1 did not register over TLS\n{}\n{}",
        phone.log(),
        gw.log_text()
    );
    phone
}

#[test]
fn a_sipp_trunk_caller_reaches_a_tls_operator_whose_hang_up_comes_back_over_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let (pki, gw) = tls_operators_gw(tmp.path(), "");
    // baresip hangs up when its microphone WAV ends: 3 s after answering.
    let wav = tmp.path().join("short.wav");
    write_tone_wav(&wav, 440.0, 3.0, 8000).unwrap();
    let phone = tls_operator(&gw, &pki, wav);

    // SIPp over UDP from the trunk waits in the queue, is bridged, and
    // gets the gateway's BYE once the operator's BYE arrived over TLS.
    let r = common::sipp(
        "uac_wait_bye.xml",
        gw.udp,
        &["-m", "1", "-s", "100"],
        Duration::from_secs(60),
    );
    assert!(
        r.ok,
        "SIPp caller failed\n{}\n{}\n{}",
        r.stdout,
        r.stderr,
        gw.log_text()
    );
    assert!(phone.wait_call_established(Duration::from_secs(5)));
    assert!(phone.wait_call_closed(Duration::from_secs(5)));
    assert!(eventually(Duration::from_secs(5), || gw.metric(
        "conmutador_calls_ended_total",
        &["reason=\"operator_hangup\""]
    ) == 1.0));
    // The phone's BYE came over TLS (Via TLS) on the one connection.
    let log = phone.log();
    let at = log.rfind("BYE sip:").expect("baresip traced its BYE");
    let bye: String = log[at..].chars().take(1000).collect();
    assert!(bye.contains("SIP/2.0/TLS"), "{bye}");
    assert_eq!(gw.metric("conmutador_sip_tls_connections", &[]), 1.0);

    // The phone goes away (killed: no un-REGISTER): its connection closes
    // and the operator is logged out at once, not at the binding's expiry.
    assert_eq!(gw.metric("conmutador_registrations_active", &[]), 1.0);
    drop(phone);
    assert!(
        eventually(Duration::from_secs(5), || gw
            .metric("conmutador_registrations_active", &[])
            == 0.0),
        "{}",
        gw.log_text()
    );
    assert_eq!(gw.metric("conmutador_sip_tls_connections", &[]), 0.0);
    assert!(
        gw.log_text()
            .contains("connection of a registered phone closed")
    );
}

/// A sink that keeps what the transports deliver, and which flows closed.
#[derive(Default)]
struct Collect(Mutex<Vec<(Bytes, Peer)>>, Mutex<Vec<Flow>>);

impl Sink for Collect {
    fn on_message(&self, data: Bytes, peer: Peer) {
        self.0.lock().unwrap().push((data, peer));
    }
    fn on_closed(&self, flow: Flow) {
        self.1.lock().unwrap().push(flow);
    }
}

/// A TLS server socket on 127.0.0.1 presenting `leaf`.
async fn tls_listener(leaf: &Leaf) -> (tokio::net::TcpListener, tokio_rustls::TlsAcceptor) {
    let chain = CertificateDer::pem_file_iter(&leaf.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&leaf.key).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (l, acceptor)
}

/// An in-test TLS server with `leaf`: accepts one connection, reads one SIP
/// message and answers with a fixed response.
async fn one_shot_server(
    leaf: &Leaf,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<Option<(String, SocketAddr)>>,
) {
    let (l, acceptor) = tls_listener(leaf).await;
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, from) = l.accept().await.ok()?;
        let mut s = acceptor.accept(tcp).await.ok()?;
        let msg = read_message(&mut s, &mut Vec::new()).await;
        s.write_all(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS x;branch=z9hG4bKout\r\nCall-ID: out\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        )
        .await
        .ok()?;
        s.flush().await.ok()?;
        Some((msg, from))
    });
    (addr, task)
}

async fn client_transports(ca: &Path) -> (Arc<Transports>, Arc<Collect>) {
    let tls = TlsContext::load(
        TlsFiles {
            cert: None,
            key: None,
            ca: Some(ca.to_path_buf()),
        },
        Duration::from_secs(5),
    )
    .expect("CA file loads");
    let (t, listeners) = Transports::bind(&TransportOptions {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        udp: true,
        tcp: false,
        max_tcp_connections: 8,
        max_tcp_message: 65536,
        tcp_idle_timeout: Duration::from_secs(30),
        tls: Some(Arc::new(tls)),
        tls_listen: Vec::new(),
        max_tls_connections: 8,
    })
    .await
    .unwrap();
    let sink = Arc::new(Collect::default());
    t.start(listeners, sink.clone());
    (t, sink)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_tls_verifies_the_peer_and_carries_both_ways_on_one_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "carrier");
    let leaf = pki.leaf("carrier");
    let (server, task) = one_shot_server(&leaf).await;
    let (t, sink) = client_transports(&pki.ca("carrier")).await;

    let uri = format!("sips:op@{server}");
    let peer = t.peer_for_uri(&uri).expect("a TLS flow");
    assert!(matches!(peer.flow, Flow::Tls { .. }), "{peer:?}");
    assert!(peer.is_tls() && peer.reliable());
    // A second request to the same place reuses the connection.
    let again = t
        .peer_for_uri(&format!("sip:op@{server};transport=tls"))
        .unwrap();
    assert_eq!(again.flow, peer.flow);
    // Queued before the handshake is done, sent once it is.
    let msg = options(&uri, "127.0.0.1:5061".parse().unwrap(), "out", "TLS");
    assert!(t.send(&peer, Bytes::from(msg.clone())));
    let (got, _) = tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("server done")
        .unwrap()
        .expect("the server accepted our handshake and read a message");
    assert_eq!(got, msg);
    // The server's answer came back on that flow.
    assert!(eventually_async(|| !sink.0.lock().unwrap().is_empty()).await);
    let seen = sink.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].1.flow, peer.flow);
    assert!(seen[0].0.starts_with(b"SIP/2.0 200 OK"));
    // The server hung up: the flow is reported closed (so a phone bound
    // to it can be logged out) and a new send opens a new connection.
    assert!(eventually_async(|| sink.1.lock().unwrap().contains(&peer.flow)).await);
    let reopened = t.peer_for_uri(&uri).unwrap();
    assert_ne!(reopened.flow, peer.flow);
    // Plain sip: URIs still go over UDP.
    let udp = t.peer_for_uri(&format!("sip:op@{server}")).unwrap();
    assert!(matches!(udp.flow, Flow::Udp { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_tls_refuses_a_peer_the_ca_does_not_vouch_for() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = Pki::new(tmp.path(), "ours");
    let stranger = Pki::new(tmp.path(), "stranger");
    let leaf = stranger.leaf("impostor");
    let (server, task) = one_shot_server(&leaf).await;
    let (t, sink) = client_transports(&ours.ca("ours")).await;

    let peer = t.peer_for_uri(&format!("sips:op@{server}")).unwrap();
    let _ = t.send(
        &peer,
        Bytes::from_static(b"OPTIONS sips:op SIP/2.0\r\n\r\n"),
    );
    let got = tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("server done")
        .unwrap();
    assert!(got.is_none(), "no SIP crossed an unverified connection");
    assert!(sink.0.lock().unwrap().is_empty());
    // The failed connection left the table: the next send is refused.
    assert!(eventually_async(|| !t.send(&peer, Bytes::from_static(b"x"))).await);
    assert_eq!(*sink.1.lock().unwrap(), vec![peer.flow]);
}

async fn eventually_async(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

/// A transfer to a carrier that wants TLS: `calls.transfer_proxy` is a
/// `sips:` URI, the gateway opens a TLS connection to it, verified against
/// `tls.ca`, and sends the plan's transfer INVITE over it (Via TLS). The
/// carrier here is a TLS server of the test's that answers 486; the
/// gateway acknowledges on the same connection and ends the call as a
/// failed transfer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_goes_to_a_sips_proxy_over_a_verified_tls_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "carrier");
    let leaf = pki.leaf("carrier");
    let (l, acceptor) = tls_listener(&leaf).await;
    let proxy = l.local_addr().unwrap();
    let carrier = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.ok()?;
        let mut s = acceptor.accept(tcp).await.ok()?;
        let mut buf = Vec::new();
        let invite = read_message(&mut s, &mut buf).await;
        let mut busy = String::from("SIP/2.0 486 Busy Here\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            let v = header(&invite, name)?;
            let v = if name == "To" {
                format!("{v};tag=carrier")
            } else {
                v.to_owned()
            };
            busy.push_str(&format!("{name}: {v}\r\n"));
        }
        busy.push_str("Content-Length: 0\r\n\r\n");
        s.write_all(busy.as_bytes()).await.ok()?;
        s.flush().await.ok()?;
        let ack = read_message(&mut s, &mut buf).await;
        Some((invite, ack))
    });

    let plans = common::plan_dir_with_prompts(tmp.path());
    std::fs::write(
        plans.join("pasar.toml"),
        r#"
[plan]
name = "pasar"
start = "pasar"
languages = ["es-MX"]
numbers = ["100"]
default = true

[nodes.pasar]
type = "transfer"
uri = "sip:consulado@192.0.2.1"
"#,
    )
    .unwrap();
    let ca = pki.ca("carrier");
    let gw = tokio::task::spawn_blocking(move || {
        Gw::start(&format!(
            "[dialplans]\ndir = \"{}\"\n[calls]\ntransfer_proxy = \"sips:{proxy}\"\n[tls]\nca = \"{}\"\n",
            plans.display(),
            ca.display()
        ))
    })
    .await
    .unwrap();
    let udp = gw.udp;
    let ua = tokio::task::spawn_blocking(move || {
        let mut ua = Ua::new(udp);
        let resp = ua.call("100", "0", true);
        (ua, resp)
    });
    let (invite, ack) = tokio::time::timeout(Duration::from_secs(20), carrier)
        .await
        .expect("the carrier got the transfer")
        .unwrap()
        .expect("a verified TLS connection carried the INVITE and its ACK");
    assert!(
        invite.starts_with("INVITE sip:consulado@192.0.2.1 SIP/2.0"),
        "{invite}"
    );
    assert!(
        header(&invite, "Via").unwrap().starts_with("SIP/2.0/TLS"),
        "{invite}"
    );
    assert!(ack.starts_with("ACK sip:consulado@192.0.2.1"), "{ack}");
    let (_ua, _resp) = ua.await.unwrap();
    let gw = std::sync::Arc::new(gw);
    let g = gw.clone();
    let ended = tokio::task::spawn_blocking(move || {
        eventually(Duration::from_secs(10), || {
            g.metric(
                "conmutador_calls_ended_total",
                &["reason=\"transfer_failed\""],
            ) == 1.0
        })
    })
    .await
    .unwrap();
    assert!(ended, "{}", gw.log_text());
    assert_eq!(
        gw.metric(
            "conmutador_sip_tls_handshakes_total",
            &["direction=\"out\"", "result=\"ok\""]
        ),
        1.0
    );
}

/// What came back on a TLS connection after one message.
#[derive(Debug, PartialEq)]
enum Heard {
    Final(u16),
    Closed,
    Nothing,
}

/// Reads until a final response (1xx skipped), the connection closing, or
/// a quiet second.
async fn first_final<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Heard {
    let mut buf = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        let finals = text
            .split("SIP/2.0 ")
            .skip(1)
            .filter_map(|r| r.get(..3)?.parse::<u16>().ok())
            .find(|c| *c >= 200);
        if let Some(code) = finals {
            return Heard::Final(code);
        }
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Heard::Closed,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return Heard::Nothing,
        }
    }
}

/// The RFC 4475 torture messages over TLS, each on a connection of its
/// own, against the live gateway: every valid request gets a final answer
/// that is not 400, no invalid message is accepted (an error status,
/// silence for an unanswerable one, or the connection closed when a stream
/// cannot frame it, as over TCP), the responses among them get no answer,
/// and the gateway still answers OPTIONS afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4475_torture_messages_over_tls_are_answered_as_the_codec_says() {
    use conmutador::sip::message::{Frame, Message, StreamFramer};
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "gw");
    let leaf = pki.leaf("server");
    let gw = Gw::start(&tls_config(&leaf, "max_connections = 64"));
    let addr = gw.tls.unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rfc4475");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "dat"))
        .collect();
    names.sort();
    assert!(names.len() >= 45, "the whole corpus: {}", names.len());
    let mut seen = Vec::new();
    for path in &names {
        let raw = std::fs::read(path).unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut framer = StreamFramer::new(StreamFramer::DEFAULT_MAX_MESSAGE);
        framer.push(&raw);
        let frames = matches!(framer.next(), Ok(Some(Frame::Message(_))));
        let parsed = Message::parse(bytes::Bytes::from(raw.clone()));
        let valid = parsed.as_ref().is_ok_and(|m| m.validate().is_ok());
        let is_response = parsed.as_ref().is_ok_and(|m| !m.is_request());
        let mut s = connect(addr, &pki.ca_pem).await.unwrap();
        s.write_all(&raw).await.unwrap();
        s.flush().await.unwrap();
        let heard = first_final(&mut s).await;
        match heard {
            _ if is_response => assert!(
                !matches!(heard, Heard::Final(_)),
                "{name}: a response is never answered: {heard:?}"
            ),
            Heard::Final(c) if valid => assert_ne!(c, 400, "{name} is valid"),
            // Refused: 400, or the precise error (505 for a version we do
            // not speak), never accepted.
            Heard::Final(c) => assert!(c >= 400, "{name} is invalid, got {c}"),
            Heard::Closed | Heard::Nothing if valid && frames => {
                panic!("{name}: a valid request went unanswered ({heard:?})")
            }
            _ => {}
        }
        seen.push((name, heard));
    }
    // Some invalid ones were answered 400 over TLS, as over UDP.
    assert!(
        seen.iter().filter(|(_, h)| *h == Heard::Final(400)).count() >= 10,
        "{seen:?}"
    );
    let (mut s, local) = client(addr, &pki).await;
    let uri = format!("sip:{addr};transport=tls");
    s.write_all(options(&uri, local, "after", "TLS").as_bytes())
        .await
        .unwrap();
    assert_eq!(
        first_final(&mut s).await,
        Heard::Final(200),
        "alive after the corpus"
    );
}
