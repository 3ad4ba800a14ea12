//! The call core path by path, in virtual time: no sockets, no sleeps.
//! Each test plays the carrier, the operator's phone, the media engine and
//! the ACD by hand and reads what the core asked for.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::acd::{ExitReason, Party, Removal, RingFailure, WaitSpeech};
use crate::dialplan::diag::SourceFile;
use crate::media::DtmfSource;
use crate::ops::records::{Disposition, HangupSide};
use crate::sdp::LocalSdp;
use crate::sip::transport::Flow;
use crate::sip::{RequestBuilder, response_to};

/// Recording: consent, bridge after it, pause codes, the CDR's file.
mod recording_tests;

const PLAN: &str = r#"[plan]
start = "inicio"
languages = ["es-MX"]

[nodes.inicio]
type = "menu"
prompts = ["saludo"]
options = { 1 = "cola", 2 = "transferir", 9 = "adios" }

[nodes.cola]
type = "queue"
queue = "pasaportes"
overflow = "adios"

[nodes.transferir]
type = "transfer"
uri = "sip:destino@127.0.0.9:5099"

[nodes.adios]
type = "hangup"
"#;

fn plan() -> Arc<Plan> {
    let src = SourceFile::new("t.toml", PLAN.to_string());
    let mut d = Vec::new();
    let p = crate::dialplan::parse::parse_plan(src, "t", &mut d).expect("the test plan parses");
    Arc::new(p)
}

fn udp(addr: &str) -> Peer {
    Peer {
        flow: Flow::Udp { socket: 0 },
        addr: addr.parse().unwrap(),
    }
}

const CARRIER: &str = "127.0.0.2:5060";

struct FakeEnv {
    next_leg: Cell<u64>,
    /// Ports the pool still has.
    ports: Cell<u32>,
    places: crate::call::places::CallerPlaces,
    operators: HashMap<String, Reach>,
    /// The recording file a queue call gets, if any.
    record: Option<String>,
}

impl Env for FakeEnv {
    fn allocate(&self, _partner: Option<LegId>) -> Result<(LegId, SocketAddr), PoolExhausted> {
        if self.ports.get() == 0 {
            return Err(PoolExhausted);
        }
        self.ports.set(self.ports.get() - 1);
        let n = self.next_leg.get();
        self.next_leg.set(n + 1);
        Ok((
            LegId(n),
            SocketAddr::from(([127, 0, 0, 1], 20000 + 2 * n as u16)),
        ))
    }
    fn secure(&self, peer: &Peer) -> bool {
        // The tests' "TLS" peers sit on 127.0.0.4.
        peer.addr.ip() == std::net::IpAddr::from([127, 0, 0, 4])
    }
    fn via(&self, peer: &Peer, branch: &str) -> String {
        format!(
            "SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport;x={}",
            peer.addr
        )
    }
    fn contact(&self, _peer: &Peer) -> String {
        "<sip:conmutador@127.0.0.1:5060>".into()
    }
    fn options_response(&self, req: &Message, _peer: &Peer) -> Bytes {
        response_to(req, 200, "OK").build()
    }
    fn operator(&self, op: &str) -> Option<Reach> {
        self.operators.get(op).cloned()
    }
    fn transfer(&self, uri: &str) -> Option<Peer> {
        let host = uri.split('@').nth(1)?;
        host.parse().ok().map(|addr| Peer {
            flow: Flow::Udp { socket: 0 },
            addr,
        })
    }
    fn take_place(&self, caller: &str) -> Option<crate::call::places::Place> {
        self.places.take(caller)
    }
    fn recording(&self, _queue: &str, _call_id: &str) -> Option<String> {
        self.record.clone()
    }
}

struct Opts {
    ring_delay: Duration,
    ports: u32,
    places: usize,
    has_acd: bool,
    offer: Option<Bytes>,
    prompts: PromptLibrary,
    /// Extra INVITE headers (session timers, Allow…).
    headers: Vec<(&'static str, &'static str)>,
    /// Where the carrier is (127.0.0.4 counts as TLS).
    carrier: &'static str,
    srtp: crate::sdp::SrtpMode,
    record: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            ring_delay: Duration::ZERO,
            ports: 10,
            places: 0,
            has_acd: true,
            offer: Some(caller_offer()),
            prompts: PromptLibrary::new(),
            headers: Vec::new(),
            carrier: CARRIER,
            srtp: crate::sdp::SrtpMode::Optional,
            record: None,
        }
    }
}

fn caller_offer() -> Bytes {
    let mut l = LocalSdp::new("127.0.0.2".parse().unwrap(), 40000);
    crate::sdp::offer(&mut l, &[Codec::Pcmu])
}

/// One call under test, with a clock we move by hand.
struct T {
    core: CallCore<FakeEnv>,
    now: Now,
    next_tx: u64,
    caller_cseq: u32,
}

const INVITE_TX: u64 = 1;

impl T {
    fn new(o: Opts) -> T {
        let mut b = RequestBuilder::new(Method::Invite, "sip:5550100@127.0.0.1:5060")
            .header("Via", "SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKcaller1")
            .header(
                "From",
                "\"Ana\" <sip:+525512345678@127.0.0.2>;tag=callertag",
            )
            .header("To", "<sip:5550100@127.0.0.1>")
            .header("Call-ID", "trunk-call-1")
            .header("CSeq", "1 INVITE")
            .header("Contact", "<sip:+525512345678@127.0.0.2:5060>");
        for (k, v) in &o.headers {
            b = b.header(k, *v);
        }
        if let Some(offer) = o.offer {
            b = b.body("application/sdp", offer);
        }
        let invite = Message::parse(b.build()).unwrap();
        let now = Now {
            at: Instant::now(),
            wall: chrono::Utc::now(),
        };
        let operators = ["ana", "beto", "carla"]
            .iter()
            .enumerate()
            .map(|(i, op)| {
                // carla's phone registered over TLS.
                let host = if *op == "carla" {
                    "127.0.0.4"
                } else {
                    "127.0.0.3"
                };
                let addr = format!("{host}:{}", 5070 + i);
                (
                    op.to_string(),
                    Reach {
                        uri: format!("sip:{op}@{addr}"),
                        peer: udp(&addr),
                    },
                )
            })
            .collect();
        let env = FakeEnv {
            next_leg: Cell::new(1),
            ports: Cell::new(o.ports),
            places: crate::call::places::CallerPlaces::new(o.places),
            operators,
            record: o.record,
        };
        let cfg = Arc::new(CallConfig {
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            media_ip: "127.0.0.1".parse().unwrap(),
            ring_delay: o.ring_delay,
            user_agent: "conmutador-test".into(),
            retry_after: 7,
            hold_music: Arc::new(Prompt::hold_music("moh")),
            has_acd: o.has_acd,
            session_min_se: 90,
            session_expires: 1800,
            srtp: o.srtp,
            srtp_operators: o.srtp,
            record_pause_code: "*1".into(),
            record_resume_code: "*2".into(),
            queues: vec!["pasaportes".into(), "visas".into()],
            operators: vec!["ana".into(), "beto".into(), "carla".into()],
        });
        let core = CallCore::new(Setup {
            id: 42,
            env,
            cfg,
            invite,
            invite_tx: TxId::for_test(INVITE_TX),
            peer: udp(o.carrier),
            local_tag: "ourtag".into(),
            plan: plan(),
            called: "5550100".into(),
            prompts: Arc::new(o.prompts),
            now,
        });
        T {
            core,
            now,
            next_tx: 100,
            caller_cseq: 1,
        }
    }

    /// A call answered at once, in the menu.
    fn answered() -> T {
        let mut t = T::new(Opts::default());
        t.input(Input::Start);
        t.ack();
        t
    }

    fn input(&mut self, i: Input) -> Vec<Output> {
        self.core.handle(i, self.now)
    }

    /// Moves the clock and ticks if a deadline passed.
    fn advance(&mut self, d: Duration) -> Vec<Output> {
        self.now.at += d;
        self.now.wall += chrono::Duration::from_std(d).unwrap();
        match self.core.poll_timeout() {
            Some(t) if t <= self.now.at => self.input(Input::Tick),
            _ => Vec::new(),
        }
    }

    fn tx(&mut self) -> TxId {
        self.next_tx += 1;
        TxId::for_test(self.next_tx)
    }

    fn ack(&mut self) -> Vec<Output> {
        let ack = RequestBuilder::new(Method::Ack, "sip:conmutador@127.0.0.1:5060")
            .header("Via", "SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKack")
            .header("From", "<sip:+525512345678@127.0.0.2>;tag=callertag")
            .header("To", "<sip:5550100@127.0.0.1>;tag=ourtag")
            .header("Call-ID", "trunk-call-1")
            .header("CSeq", "1 ACK")
            .build();
        self.input(Input::Ack {
            req: Message::parse(ack).unwrap(),
        })
    }

    /// An in-dialog request from the caller, with the next CSeq.
    fn caller_request(
        &mut self,
        method: Method,
        body: Option<(&str, Bytes)>,
    ) -> (TxId, Vec<Output>) {
        self.caller_cseq += 1;
        let seq = self.caller_cseq;
        self.caller_request_seq(method, seq, body)
    }

    fn caller_request_seq(
        &mut self,
        method: Method,
        seq: u32,
        body: Option<(&str, Bytes)>,
    ) -> (TxId, Vec<Output>) {
        let mut b = RequestBuilder::new(method.clone(), "sip:conmutador@127.0.0.1:5060")
            .header(
                "Via",
                format!("SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKc{seq}"),
            )
            .header("From", "<sip:+525512345678@127.0.0.2>;tag=callertag")
            .header("To", "<sip:5550100@127.0.0.1>;tag=ourtag")
            .header("Call-ID", "trunk-call-1")
            .header("CSeq", format!("{seq} {}", method.as_str()));
        if let Some((ct, body)) = body {
            b = b.body(ct, body);
        }
        let tx = self.tx();
        let outs = self.input(Input::Request {
            req: Message::parse(b.build()).unwrap(),
            tx,
        });
        (tx, outs)
    }

    fn digit(&mut self, d: char) -> Vec<Output> {
        let leg = self.core.trunk.leg.expect("the caller has a media leg");
        self.input(Input::Media(MediaEvent::Digit {
            leg,
            digit: d,
            source: DtmfSource::Rfc4733,
        }))
    }

    /// Menu → queue.
    fn queued() -> T {
        let mut t = T::answered();
        t.digit('1');
        t
    }

    fn acd(&mut self, cmd: AcdCommand) -> Vec<Output> {
        self.input(Input::Acd(cmd))
    }

    /// The ACD rings `op`; what the call did about it.
    fn ring_outs(&mut self, op: &str) -> Vec<Output> {
        self.acd(AcdCommand::Ring {
            call: 42,
            op: op.into(),
            queue: "pasaportes".into(),
            timeout: Duration::from_secs(15),
        })
    }

    fn ring(&mut self, op: &str) -> Message {
        let outs = self.ring_outs(op);
        requests(&outs, Method::Invite)
            .pop()
            .expect("an INVITE to the operator")
            .1
    }

    /// The operator answers `invite` with `status` (and SDP for a 2xx).
    fn answer_leg(&mut self, invite: &Message, status: u16) -> Vec<Output> {
        let resp = leg_response(invite, status);
        self.input(Input::Response { resp })
    }

    /// A request from the operator's phone in the leg's dialog.
    fn operator_request(
        &mut self,
        invite: &Message,
        method: Method,
        body: Option<Bytes>,
    ) -> (TxId, Vec<Output>) {
        let mut b = RequestBuilder::new(method.clone(), "sip:conmutador@127.0.0.1:5060")
            .header("Via", "SIP/2.0/UDP 127.0.0.3:5070;branch=z9hG4bKop")
            .header("From", "<sip:ana@127.0.0.3:5070>;tag=optag")
            .header("To", invite.header("From").unwrap())
            .header("Call-ID", invite.call_id().unwrap())
            .header("CSeq", format!("7 {}", method.as_str()));
        if let Some(body) = body {
            b = b.body("application/sdp", body);
        }
        let tx = self.tx();
        let outs = self.input(Input::Request {
            req: Message::parse(b.build()).unwrap(),
            tx,
        });
        (tx, outs)
    }

    /// Queue → ring ana → she answers → the ACD connects.
    fn bridged() -> (T, Message) {
        let mut t = T::queued();
        let invite = t.ring("ana");
        t.answer_leg(&invite, 200);
        t.acd(AcdCommand::Connect {
            call: 42,
            op: "ana".into(),
        });
        (t, invite)
    }

    /// Answers our BYE to the caller (if one is out) and returns the rest.
    fn answer_bye(&mut self, outs: &[Output]) -> Vec<Output> {
        let Some((_, bye)) = requests(outs, Method::Bye)
            .into_iter()
            .find(|(_, m)| m.call_id().ok() == Some("trunk-call-1"))
        else {
            return Vec::new();
        };
        let ok = Message::parse(response_to(&bye, 200, "OK").build()).unwrap();
        self.input(Input::Response { resp: ok })
    }
}

fn leg_response(invite: &Message, status: u16) -> Message {
    let mut b = response_to(invite, status, "X")
        .to_tag("optag")
        .header("Contact", "<sip:ana@127.0.0.3:5070>");
    if (200..300).contains(&status) {
        let mut l = LocalSdp::new("127.0.0.3".parse().unwrap(), 30000);
        let (answer, _) = crate::sdp::answer(invite.body(), &mut l, &[Codec::Pcmu]).unwrap();
        b = b.body("application/sdp", answer);
    }
    Message::parse(b.build()).unwrap()
}

fn requests(outs: &[Output], method: Method) -> Vec<(String, Message)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Request {
                method: m,
                branch,
                bytes,
                ..
            } if *m == method => Some((branch.clone(), Message::parse(bytes.clone()).unwrap())),
            _ => None,
        })
        .collect()
}

fn statuses(outs: &[Output]) -> Vec<u16> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Respond { status, .. } => Some(*status),
            _ => None,
        })
        .collect()
}

fn response_for(outs: &[Output], tx: TxId) -> Option<Message> {
    outs.iter().find_map(|o| match o {
        Output::Respond { tx: t, bytes, .. } if *t == tx => Message::parse(bytes.clone()).ok(),
        _ => None,
    })
}

fn acd_events(outs: &[Output]) -> Vec<AcdEvent> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Acd(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn cdr(outs: &[Output]) -> Option<&Cdr> {
    outs.iter().find_map(|o| match o {
        Output::Cdr(c) => Some(&**c),
        _ => None,
    })
}

fn done(outs: &[Output]) -> bool {
    outs.iter().any(|o| matches!(o, Output::Done))
}

fn views(outs: &[Output]) -> Vec<CallState> {
    outs.iter()
        .filter_map(|o| match o {
            Output::View(v) => Some(v.state),
            _ => None,
        })
        .collect()
}

fn media(outs: &[Output]) -> Vec<&MediaCmd> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Media(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn released(outs: &[Output]) -> Vec<LegId> {
    media(outs)
        .into_iter()
        .filter_map(|m| match m {
            MediaCmd::Release { leg } => Some(*leg),
            _ => None,
        })
        .collect()
}

fn ended(outs: &[Output]) -> Option<(&'static str, &'static str)> {
    outs.iter().find_map(|o| match o {
        Output::Figure(Figure::Ended { result, reason, .. }) => Some((*result, *reason)),
        _ => None,
    })
}

// ---- answering the trunk leg ----

#[test]
fn answers_at_once_with_sdp_then_starts_media_and_the_plan() {
    let mut t = T::new(Opts::default());
    let outs = t.input(Input::Start);
    assert_eq!(statuses(&outs), [200]);
    let ok = response_for(&outs, TxId::for_test(INVITE_TX)).unwrap();
    assert!(ok.header("To").unwrap().contains("tag=ourtag"));
    assert!(ok.header("Contact").is_some());
    assert!(!ok.body().is_empty(), "the 200 carries our SDP answer");
    assert!(outs.iter().any(|o| matches!(o, Output::InviteAnswered)));
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Respond { invite_2xx: Some((c, 1)), .. } if c == "trunk-call-1"
    )));
    let m = media(&outs);
    assert!(matches!(m[0], MediaCmd::Start { .. }), "{m:?}");
    assert!(
        m.iter().any(|c| matches!(c, MediaCmd::Play { .. })),
        "the greeting plays"
    );
    assert_eq!(t.core.view().node.as_deref(), Some("inicio"));
    let token = m
        .iter()
        .find_map(|c| match c {
            MediaCmd::Play { opts, .. } => Some(opts.token),
            _ => None,
        })
        .unwrap();
    let leg = t.core.trunk.leg.unwrap();
    t.input(Input::Media(MediaEvent::PlaybackDone { leg, token }));
    assert!(
        t.core.poll_timeout().is_some(),
        "then the menu waits with a timer"
    );
}

#[test]
fn rings_first_when_configured_and_answers_at_the_deadline() {
    let mut t = T::new(Opts {
        ring_delay: Duration::from_millis(800),
        ..Opts::default()
    });
    let outs = t.input(Input::Start);
    assert_eq!(statuses(&outs), [180]);
    assert_eq!(
        t.core.poll_timeout(),
        Some(t.now.at + Duration::from_millis(800))
    );
    assert!(t.advance(Duration::from_millis(799)).is_empty());
    let outs = t.advance(Duration::from_millis(1));
    assert_eq!(statuses(&outs), [200]);
    assert!(matches!(media(&outs)[0], MediaCmd::Start { .. }));
}

#[test]
fn cancel_while_ringing_is_487_and_an_abandoned_record() {
    let mut t = T::new(Opts {
        ring_delay: Duration::from_secs(2),
        ..Opts::default()
    });
    t.input(Input::Start);
    let outs = t.input(Input::Cancel);
    assert_eq!(statuses(&outs), [487]);
    let c = cdr(&outs).unwrap();
    assert_eq!(c.disposition, Disposition::Abandoned);
    assert_eq!(c.hangup_side, HangupSide::Caller);
    assert_eq!(c.hangup_cause, "cancelled");
    assert!(c.answer.is_none());
    assert_eq!(released(&outs).len(), 1, "the caller's port goes back");
    assert!(done(&outs));
}

#[test]
fn shutdown_while_ringing_is_one_503_and_nothing_else() {
    let mut t = T::new(Opts {
        ring_delay: Duration::from_secs(2),
        ..Opts::default()
    });
    t.input(Input::Start);
    let outs = t.input(Input::Shutdown);
    assert_eq!(statuses(&outs), [503], "no 480 after the 503");
    assert!(done(&outs));
    assert_eq!(ended(&outs), Some(("completed", "shutdown")));
}

#[test]
fn requests_before_the_answer_get_491() {
    let mut t = T::new(Opts {
        ring_delay: Duration::from_secs(2),
        ..Opts::default()
    });
    t.input(Input::Start);
    let (tx, outs) = t.caller_request(Method::Update, None);
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(491));
}

#[test]
fn no_free_rtp_port_is_503_with_retry_after() {
    let mut t = T::new(Opts {
        ports: 0,
        ..Opts::default()
    });
    let outs = t.input(Input::Start);
    let r = response_for(&outs, TxId::for_test(INVITE_TX)).unwrap();
    assert_eq!(r.status(), Some(503));
    assert_eq!(r.header("Retry-After"), Some("7"));
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Figure(Figure::NoRtpPort)))
    );
    assert_eq!(cdr(&outs).unwrap().disposition, Disposition::Failed);
    assert!(done(&outs));
}

#[test]
fn an_offer_without_a_common_codec_is_488() {
    let mut l = LocalSdp::new("127.0.0.2".parse().unwrap(), 40000);
    let g722_only = crate::sdp::offer(&mut l, &[Codec::Pcma]);
    let mut t = T::new(Opts {
        offer: Some(Bytes::from(
            String::from_utf8(g722_only.to_vec())
                .unwrap()
                .replace("RTP/AVP 8", "RTP/AVP 9")
                .replace("a=rtpmap:8 PCMA/8000", "a=rtpmap:9 G722/8000"),
        )),
        ..Opts::default()
    });
    let outs = t.input(Input::Start);
    assert_eq!(statuses(&outs), [488]);
    assert_eq!(released(&outs).len(), 1);
    assert!(done(&outs));
}

#[test]
fn an_unreadable_offer_is_400() {
    let mut t = T::new(Opts {
        offer: Some(Bytes::from_static(b"this is not sdp")),
        ..Opts::default()
    });
    let outs = t.input(Input::Start);
    assert_eq!(statuses(&outs), [400]);
    assert!(done(&outs));
}

#[test]
fn a_late_offer_gets_our_offer_and_media_starts_with_the_ack() {
    let mut t = T::new(Opts {
        offer: None,
        ..Opts::default()
    });
    let outs = t.input(Input::Start);
    assert_eq!(statuses(&outs), [200]);
    assert!(
        media(&outs).is_empty(),
        "no media before the answer in the ACK"
    );
    let mut l = LocalSdp::new("127.0.0.2".parse().unwrap(), 40000);
    let ok = response_for(&outs, TxId::for_test(INVITE_TX)).unwrap();
    let (answer, _) = crate::sdp::answer(ok.body(), &mut l, &[Codec::Pcmu]).unwrap();
    let ack = RequestBuilder::new(Method::Ack, "sip:conmutador@127.0.0.1")
        .header("Via", "SIP/2.0/UDP 127.0.0.2;branch=z9hG4bKa")
        .header("From", "<sip:x@127.0.0.2>;tag=callertag")
        .header("To", "<sip:5550100@127.0.0.1>;tag=ourtag")
        .header("Call-ID", "trunk-call-1")
        .header("CSeq", "1 ACK")
        .body("application/sdp", answer)
        .build();
    let outs = t.input(Input::Ack {
        req: Message::parse(ack).unwrap(),
    });
    assert!(matches!(media(&outs)[0], MediaCmd::Start { .. }));
}

#[test]
fn a_late_offer_ack_without_an_answer_fails_the_call() {
    let mut t = T::new(Opts {
        offer: None,
        ..Opts::default()
    });
    t.input(Input::Start);
    let outs = t.ack();
    assert_eq!(requests(&outs, Method::Bye).len(), 1);
    let outs = t.answer_bye(&outs);
    assert_eq!(cdr(&outs).unwrap().disposition, Disposition::Failed);
}

#[test]
fn a_2xx_never_acknowledged_hangs_up() {
    let mut t = T::new(Opts::default());
    t.input(Input::Start);
    let outs = t.input(Input::AckTimeout);
    let bye = &requests(&outs, Method::Bye)[0].1;
    assert_eq!(bye.header("CSeq"), Some("2 BYE"));
    assert_eq!(
        bye.request_uri_str(),
        Some("sip:+525512345678@127.0.0.2:5060")
    );
    let outs = t.answer_bye(&outs);
    assert_eq!(ended(&outs), Some(("failed", "no_ack")));
}

#[test]
fn an_ack_timeout_after_the_ack_changes_nothing() {
    let mut t = T::answered();
    assert!(t.input(Input::AckTimeout).is_empty());
}

// ---- in-dialog requests from the carrier ----

#[test]
fn caller_bye_is_answered_and_recorded_as_the_callers() {
    let mut t = T::answered();
    t.advance(Duration::from_secs(3));
    let (tx, outs) = t.caller_request(Method::Bye, None);
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(200));
    assert!(requests(&outs, Method::Bye).is_empty(), "no BYE back");
    let c = cdr(&outs).unwrap();
    assert_eq!(c.disposition, Disposition::Completed);
    assert_eq!(c.hangup_side, HangupSide::Caller);
    assert_eq!(c.plan_path, ["inicio"]);
    assert!(done(&outs));
}

#[test]
fn a_request_out_of_cseq_order_gets_500() {
    let mut t = T::answered();
    t.caller_request_seq(Method::Info, 5, None);
    let (tx, outs) = t.caller_request_seq(Method::Info, 4, None);
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(500));
    let (tx, outs) = t.caller_request_seq(Method::Info, 5, None);
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(500));
}

#[test]
fn a_reinvite_gets_the_current_sdp_and_updates_media() {
    let mut t = T::answered();
    let (tx, outs) = t.caller_request(Method::Invite, Some(("application/sdp", caller_offer())));
    let r = response_for(&outs, tx).unwrap();
    assert_eq!(r.status(), Some(200));
    assert!(!r.body().is_empty());
    assert!(
        media(&outs)
            .iter()
            .any(|m| matches!(m, MediaCmd::Update { .. }))
    );
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Respond {
            invite_2xx: Some(_),
            ..
        }
    )));
}

#[test]
fn a_reinvite_we_cannot_accept_is_488_and_the_call_goes_on() {
    let mut t = T::answered();
    let (tx, outs) = t.caller_request(
        Method::Invite,
        Some(("application/sdp", Bytes::from_static(b"v=0\r\n"))),
    );
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(488));
    assert!(!done(&outs));
}

#[test]
fn update_without_sdp_is_200_and_with_sdp_is_an_offer() {
    let mut t = T::answered();
    let (tx, outs) = t.caller_request(Method::Update, None);
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(200));
    let (tx, outs) = t.caller_request(Method::Update, Some(("application/sdp", caller_offer())));
    assert!(!response_for(&outs, tx).unwrap().body().is_empty());
    assert!(
        !outs.iter().any(|o| matches!(
            o,
            Output::Respond {
                invite_2xx: Some(_),
                ..
            }
        )),
        "only a 2xx to INVITE is retransmitted"
    );
}

#[test]
fn an_info_digit_drives_the_menu() {
    let mut t = T::answered();
    let (tx, outs) = t.caller_request(
        Method::Info,
        Some((
            "application/dtmf-relay",
            Bytes::from_static(b"Signal=9\r\nDuration=160\r\n"),
        )),
    );
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(200));
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Figure(Figure::InfoDigit)))
    );
    assert_eq!(
        requests(&outs, Method::Bye).len(),
        1,
        "9 is the goodbye node"
    );
    let outs = t.answer_bye(&outs);
    assert_eq!(cdr(&outs).unwrap().plan_path, ["inicio", "adios"]);
}

#[test]
fn an_info_we_cannot_read_is_415() {
    let mut t = T::answered();
    let (tx, outs) = t.caller_request(
        Method::Info,
        Some(("text/plain", Bytes::from_static(b"hola"))),
    );
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(415));
}

#[test]
fn options_and_unknown_methods_in_the_dialog() {
    let mut t = T::answered();
    let (tx, outs) = t.caller_request(Method::Options, None);
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(200));
    let (tx, outs) = t.caller_request(Method::Extension("PUBLISH".into()), None);
    let r = response_for(&outs, tx).unwrap();
    assert_eq!(r.status(), Some(405));
    assert!(r.header("Allow").is_some());
}

// ---- ending ----

#[test]
fn the_plan_hanging_up_waits_for_the_bye_answer_before_it_is_done() {
    let mut t = T::answered();
    let outs = t.digit('9');
    assert_eq!(requests(&outs, Method::Bye).len(), 1);
    assert!(!done(&outs), "waits for the 200 to the BYE");
    let outs = t.answer_bye(&outs);
    assert_eq!(ended(&outs), Some(("completed", "plan_hangup")));
    assert!(done(&outs));
    assert!(t.input(Input::Tick).is_empty(), "nothing after done");
}

#[test]
fn an_unanswered_bye_gives_up_after_four_seconds() {
    let mut t = T::answered();
    t.digit('9');
    assert!(!done(&t.advance(Duration::from_millis(3999))));
    assert!(done(&t.advance(Duration::from_millis(1))));
}

#[test]
fn a_bye_that_cannot_be_sent_or_times_out_finishes_at_once() {
    for lost in [true, false] {
        let mut t = T::answered();
        let outs = t.digit('9');
        let branch = requests(&outs, Method::Bye)[0].0.clone();
        let input = if lost {
            Input::SendFailed { branch }
        } else {
            Input::ClientTimeout { branch }
        };
        assert!(done(&t.input(input)));
    }
}

#[test]
fn a_bye_crossing_ours_gets_200() {
    let mut t = T::answered();
    t.digit('9');
    let (tx, outs) = t.caller_request(Method::Bye, None);
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(200));
}

#[test]
fn rtp_timeout_from_the_caller_hangs_up() {
    let mut t = T::answered();
    let leg = t.core.trunk.leg.unwrap();
    let outs = t.input(Input::Media(MediaEvent::RtpTimeout { leg }));
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Figure(Figure::RtpTimeout)))
    );
    let outs = t.answer_bye(&outs);
    assert_eq!(ended(&outs), Some(("failed", "rtp_timeout")));
}

#[test]
fn shutdown_in_the_ivr_is_a_bye_and_a_completed_record() {
    let mut t = T::answered();
    let outs = t.input(Input::Shutdown);
    let outs = t.answer_bye(&outs);
    assert_eq!(ended(&outs), Some(("completed", "shutdown")));
}

// ---- the queue ----

#[test]
fn joining_a_queue_attaches_first_then_joins_with_hold_music() {
    let t_outs = {
        let mut t = T::answered();
        t.digit('1')
    };
    let attach = t_outs
        .iter()
        .position(|o| matches!(o, Output::AcdAttach { .. }))
        .expect("attached");
    let joined = t_outs
        .iter()
        .position(|o| matches!(o, Output::Acd(AcdEvent::CallerJoined { call: 42, .. })))
        .expect("joined");
    assert!(attach < joined, "the ACD knows the inbox before the caller");
    assert!(views(&t_outs).contains(&CallState::Queued));
    assert!(media(&t_outs).iter().any(|m| matches!(
        m,
        MediaCmd::Play { opts, .. } if opts.looped && opts.token == waiting::MOH_TOKEN
    )));
}

#[test]
fn keys_while_waiting_go_to_the_acd_not_the_plan() {
    let mut t = T::queued();
    let outs = t.digit('5');
    assert_eq!(
        acd_events(&outs),
        [AcdEvent::CallerPressedKey {
            call: 42,
            digit: '5'
        }]
    );
}

#[test]
fn an_announcement_plays_over_the_music_and_the_music_comes_back() {
    let mut prompts = PromptLibrary::new();
    for n in crate::dialplan::say::position("es-MX", 3) {
        prompts.insert(Prompt::tone(
            format!("es-MX/{n}"),
            &[440.0],
            -20.0,
            100,
            0,
            100,
        ));
    }
    let mut t = T::new(Opts {
        prompts,
        ..Opts::default()
    });
    t.input(Input::Start);
    t.ack();
    t.digit('1');
    let outs = t.acd(AcdCommand::Announce {
        call: 42,
        position: 3,
        estimate: None,
        wait: None,
    });
    assert!(media(&outs).iter().any(|m| matches!(
        m,
        MediaCmd::Play { opts, prompts, .. } if opts.token == waiting::ANNOUNCE_TOKEN && !prompts.is_empty()
    )));
    let leg = t.core.trunk.leg.unwrap();
    let outs = t.input(Input::Media(MediaEvent::PlaybackDone {
        leg,
        token: waiting::ANNOUNCE_TOKEN,
    }));
    assert!(media(&outs).iter().any(|m| matches!(
        m,
        MediaCmd::Play { opts, .. } if opts.token == waiting::MOH_TOKEN
    )));
}

#[test]
fn a_wait_announcement_uses_the_words_the_acd_chose() {
    let mut t = T::queued();
    let words = t
        .core
        .ivr
        .interp
        .queue_wait_announcement(2, crate::dialplan::say::WaitWords::Minutes(4));
    assert!(!words.is_empty());
    // Without the recordings nothing plays, and nothing breaks.
    let outs = t.acd(AcdCommand::Announce {
        call: 42,
        position: 2,
        estimate: Some(Duration::from_secs(240)),
        wait: Some(WaitSpeech::Minutes(4)),
    });
    assert!(media(&outs).is_empty());
}

#[test]
fn a_number_holding_all_its_places_takes_the_full_exit() {
    let mut t = T::new(Opts {
        places: 1,
        ..Opts::default()
    });
    let _held = t.core.env.places.take("sip:+525512345678@127.0.0.2");
    t.input(Input::Start);
    t.ack();
    let outs = t.digit('1');
    assert!(acd_events(&outs).is_empty(), "never joined");
    assert_eq!(
        requests(&outs, Method::Bye).len(),
        1,
        "overflow is the goodbye node"
    );
}

#[test]
fn without_queues_the_queue_node_takes_the_empty_exit() {
    let mut t = T::new(Opts {
        has_acd: false,
        ..Opts::default()
    });
    t.input(Input::Start);
    t.ack();
    let outs = t.digit('1');
    assert!(acd_events(&outs).is_empty());
    assert!(!outs.iter().any(|o| matches!(o, Output::AcdAttach { .. })));
    assert_eq!(requests(&outs, Method::Bye).len(), 1);
}

#[test]
fn an_acd_exit_runs_the_overflow_and_records_overflowed() {
    let mut t = T::queued();
    let outs = t.acd(AcdCommand::Exit {
        call: 42,
        reason: ExitReason::Timeout,
    });
    assert!(views(&outs).contains(&CallState::Ivr));
    let outs = t.answer_bye(&outs);
    let c = cdr(&outs).unwrap();
    assert_eq!(c.disposition, Disposition::Overflowed);
    assert_eq!(c.queue.as_deref(), Some("pasaportes"));
    assert!(c.wait_ms.is_some());
}

#[test]
fn hanging_up_while_waiting_is_an_abandonment_the_acd_hears_at_once() {
    let mut t = T::queued();
    t.advance(Duration::from_secs(30));
    let (_, outs) = t.caller_request(Method::Bye, None);
    assert_eq!(acd_events(&outs), [AcdEvent::CallerLeft { call: 42 }]);
    assert!(outs.iter().any(|o| matches!(o, Output::AcdDetach)));
    let c = cdr(&outs).unwrap();
    assert_eq!(c.disposition, Disposition::Abandoned);
    assert_eq!(c.wait_ms, Some(30_000));
}

/// The gateway taking a waiting caller out (admin or shutdown) is its own
/// event and record, never an abandonment.
#[test]
fn a_removal_by_an_admin_or_by_shutdown_is_not_an_abandonment() {
    for (input, by) in [
        (Input::Remove, Removal::Admin),
        (Input::Shutdown, Removal::Shutdown),
    ] {
        let mut t = T::queued();
        let outs = t.input(input);
        assert_eq!(
            acd_events(&outs),
            [AcdEvent::CallerRemoved { call: 42, by }]
        );
        let outs = t.answer_bye(&outs);
        assert_eq!(cdr(&outs).unwrap().disposition, Disposition::Removed);
    }
}

// ---- ringing operators ----

#[test]
fn a_ring_sends_an_invite_routed_to_this_call() {
    let mut t = T::queued();
    let outs = t.ring_outs("ana");
    let route = outs
        .iter()
        .position(|o| matches!(o, Output::RouteDialog { .. }))
        .unwrap();
    let send = outs
        .iter()
        .position(|o| {
            matches!(
                o,
                Output::Request {
                    method: Method::Invite,
                    ..
                }
            )
        })
        .unwrap();
    assert!(route < send, "the route exists before any answer can come");
    let (_, inv) = &requests(&outs, Method::Invite)[0];
    assert_eq!(inv.request_uri_str(), Some("sip:ana@127.0.0.3:5070"));
    assert_eq!(inv.header("X-Conmutador-Queue"), Some("pasaportes"));
    assert!(
        inv.header("From")
            .unwrap()
            .contains("+525512345678 (pasaportes)")
    );
    assert!(!inv.body().is_empty());
    assert!(views(&outs).contains(&CallState::Ringing));
}

#[test]
fn an_operator_without_a_phone_is_reported_unreachable_at_once() {
    let mut t = T::queued();
    let outs = t.ring_outs("nadie");
    assert_eq!(
        acd_events(&outs),
        [AcdEvent::RingFailed {
            call: 42,
            op: "nadie".into(),
            reason: RingFailure::Unreachable
        }]
    );
    assert!(requests(&outs, Method::Invite).is_empty());
}

#[test]
fn no_port_for_the_operator_leg_is_unreachable() {
    let mut t = T::new(Opts {
        ports: 1,
        ..Opts::default()
    });
    t.input(Input::Start);
    t.ack();
    t.digit('1');
    let outs = t.ring_outs("ana");
    assert!(matches!(
        acd_events(&outs)[..],
        [AcdEvent::RingFailed {
            reason: RingFailure::Unreachable,
            ..
        }]
    ));
}

#[test]
fn the_operator_answering_is_acked_and_reported_then_bridged_on_connect() {
    let mut t = T::queued();
    let invite = t.ring("ana");
    let outs = t.answer_leg(&invite, 180);
    assert!(acd_events(&outs).is_empty());
    let outs = t.answer_leg(&invite, 200);
    let ack = outs.iter().find_map(|o| match o {
        Output::Raw { bytes, .. } => Message::parse(bytes.clone()).ok(),
        _ => None,
    });
    let ack = ack.expect("the 2xx is acknowledged");
    assert_eq!(ack.header("CSeq"), Some("1 ACK"));
    assert_eq!(ack.request_uri_str(), Some("sip:ana@127.0.0.3:5070"));
    assert!(ack.header("To").unwrap().contains("tag=optag"));
    assert_eq!(
        acd_events(&outs),
        [AcdEvent::RingAnswered {
            call: 42,
            op: "ana".into()
        }]
    );
    assert!(
        media(&outs)
            .iter()
            .any(|m| matches!(m, MediaCmd::Start { .. }))
    );
    let outs = t.acd(AcdCommand::Connect {
        call: 42,
        op: "ana".into(),
    });
    assert!(
        media(&outs)
            .iter()
            .any(|m| matches!(m, MediaCmd::Bridge { .. }))
    );
    assert_eq!(views(&outs), [CallState::Bridged]);
    assert_eq!(t.core.view().operator.as_deref(), Some("ana"));
}

#[test]
fn a_retransmitted_2xx_is_acked_again_and_reported_once() {
    let mut t = T::queued();
    let invite = t.ring("ana");
    t.answer_leg(&invite, 200);
    let outs = t.answer_leg(&invite, 200);
    assert!(outs.iter().any(|o| matches!(o, Output::Raw { .. })));
    assert!(acd_events(&outs).is_empty());
}

fn failure_reason(status: u16) -> (Vec<AcdEvent>, Vec<Output>) {
    let mut t = T::queued();
    let invite = t.ring("ana");
    let outs = t.answer_leg(&invite, status);
    (acd_events(&outs), outs)
}

#[test]
fn busy_is_acked_on_the_invite_transaction_and_reported_busy() {
    let (ev, outs) = failure_reason(486);
    assert!(matches!(
        ev[..],
        [AcdEvent::RingFailed {
            reason: RingFailure::Busy,
            ..
        }]
    ));
    let ack = outs.iter().find_map(|o| match o {
        Output::AckFailure { bytes, .. } => Message::parse(bytes.clone()).ok(),
        _ => None,
    });
    assert_eq!(ack.unwrap().header("CSeq"), Some("1 ACK"));
    assert_eq!(
        released(&outs).len(),
        1,
        "the operator leg's port goes back"
    );
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::ForgetDialog { .. }))
    );
    assert!(views(&outs).contains(&CallState::Queued), "back to waiting");
}

#[test]
fn declined_and_no_answer_are_told_apart() {
    let (ev, _) = failure_reason(603);
    assert!(matches!(
        ev[..],
        [AcdEvent::RingFailed {
            reason: RingFailure::Declined,
            ..
        }]
    ));
    let (ev, _) = failure_reason(408);
    assert!(matches!(
        ev[..],
        [AcdEvent::RingFailed {
            reason: RingFailure::NoAnswer,
            ..
        }]
    ));
    let (ev, _) = failure_reason(503);
    assert!(matches!(
        ev[..],
        [AcdEvent::RingFailed {
            reason: RingFailure::Unreachable,
            ..
        }]
    ));
}

#[test]
fn an_invite_that_times_out_or_cannot_be_sent_is_unreachable() {
    for lost in [true, false] {
        let mut t = T::queued();
        let outs = t.ring_outs("ana");
        let branch = requests(&outs, Method::Invite)[0].0.clone();
        let input = if lost {
            Input::ClientTimeout { branch }
        } else {
            Input::SendFailed { branch }
        };
        let outs = t.input(input);
        assert!(matches!(
            acd_events(&outs)[..],
            [AcdEvent::RingFailed {
                reason: RingFailure::Unreachable,
                ..
            }]
        ));
        assert_eq!(released(&outs).len(), 1);
    }
}

#[test]
fn the_acd_cancelling_a_ring_sends_cancel_on_the_invite_branch() {
    let mut t = T::queued();
    let outs = t.ring_outs("ana");
    let (branch, invite) = requests(&outs, Method::Invite).pop().unwrap();
    let outs = t.acd(AcdCommand::CancelRing {
        call: 42,
        op: "ana".into(),
    });
    let (cbranch, cancel) = requests(&outs, Method::Cancel).pop().unwrap();
    assert_eq!(cbranch, branch);
    assert_eq!(cancel.header("CSeq"), Some("1 CANCEL"));
    assert_eq!(cancel.request_uri_str(), invite.request_uri_str());
    // The 487 that follows is not a failure of the operator's.
    let outs = t.answer_leg(&invite, 487);
    assert!(acd_events(&outs).is_empty());
    assert!(outs.iter().any(|o| matches!(o, Output::AckFailure { .. })));
}

#[test]
fn a_200_crossing_our_cancel_is_acked_and_hung_up_not_reported() {
    let mut t = T::queued();
    let invite = t.ring("ana");
    t.acd(AcdCommand::CancelRing {
        call: 42,
        op: "ana".into(),
    });
    let outs = t.answer_leg(&invite, 200);
    assert!(outs.iter().any(|o| matches!(o, Output::Raw { .. })), "ACK");
    let bye = &requests(&outs, Method::Bye)[0].1;
    assert_eq!(bye.call_id().ok(), invite.call_id().ok());
    assert_eq!(bye.header("CSeq"), Some("2 BYE"));
    assert!(acd_events(&outs).is_empty());
}

#[test]
fn the_operator_declining_with_bye_before_connect_is_declined() {
    let mut t = T::queued();
    let invite = t.ring("ana");
    t.answer_leg(&invite, 200);
    let (tx, outs) = t.operator_request(&invite, Method::Bye, None);
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(200));
    assert!(matches!(
        acd_events(&outs)[..],
        [AcdEvent::RingFailed {
            reason: RingFailure::Declined,
            ..
        }]
    ));
    assert!(!done(&outs), "the caller keeps waiting");
}

#[test]
fn the_caller_hanging_up_while_the_operator_rings_cancels_the_ring() {
    let mut t = T::queued();
    let invite = t.ring("ana");
    t.answer_leg(&invite, 180);
    let (_, outs) = t.caller_request(Method::Bye, None);
    assert_eq!(acd_events(&outs), [AcdEvent::CallerLeft { call: 42 }]);
    assert_eq!(requests(&outs, Method::Cancel).len(), 1);
    assert_eq!(cdr(&outs).unwrap().disposition, Disposition::Abandoned);
    assert!(done(&outs));
}

#[test]
fn the_caller_hanging_up_after_the_answer_before_the_bridge_is_not_abandoned() {
    let mut t = T::queued();
    let invite = t.ring("ana");
    t.answer_leg(&invite, 200);
    let (_, outs) = t.caller_request(Method::Bye, None);
    assert_eq!(acd_events(&outs), [AcdEvent::CallerLeft { call: 42 }]);
    let bye = &requests(&outs, Method::Bye)[0].1;
    assert_eq!(
        bye.call_id().ok(),
        invite.call_id().ok(),
        "the operator is hung up"
    );
    assert_eq!(cdr(&outs).unwrap().disposition, Disposition::Completed);
}

#[test]
fn reinvite_and_update_from_a_ringing_caller_are_answered() {
    let mut t = T::queued();
    let _invite = t.ring("ana");
    let (tx, outs) = t.caller_request(Method::Invite, Some(("application/sdp", caller_offer())));
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(200));
    let (tx, outs) = t.caller_request(Method::Update, None);
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(200));
}

// ---- bridged ----

#[test]
fn the_caller_hanging_up_a_bridged_call_ends_the_operators_leg() {
    let (mut t, invite) = T::bridged();
    t.advance(Duration::from_secs(60));
    let (_, outs) = t.caller_request(Method::Bye, None);
    assert_eq!(
        acd_events(&outs),
        [AcdEvent::CallEnded {
            call: 42,
            op: "ana".into(),
            by: Party::Caller
        }]
    );
    let bye = &requests(&outs, Method::Bye)[0].1;
    assert_eq!(bye.call_id().ok(), invite.call_id().ok());
    assert_eq!(bye.request_uri_str(), Some("sip:ana@127.0.0.3:5070"));
    let c = cdr(&outs).unwrap();
    assert_eq!(c.disposition, Disposition::Completed);
    assert_eq!(c.operator.as_deref(), Some("ana"));
    assert_eq!(c.talk_ms, Some(60_000));
    assert_eq!(c.hangup_side, HangupSide::Caller);
    assert_eq!(released(&outs).len(), 2, "both ports go back");
}

#[test]
fn the_operator_hanging_up_ends_the_call_on_the_operators_side() {
    let (mut t, invite) = T::bridged();
    let (tx, outs) = t.operator_request(&invite, Method::Bye, None);
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(200));
    assert_eq!(
        acd_events(&outs),
        [AcdEvent::CallEnded {
            call: 42,
            op: "ana".into(),
            by: Party::Operator
        }]
    );
    let outs = t.answer_bye(&outs);
    let c = cdr(&outs).unwrap();
    assert_eq!(c.hangup_side, HangupSide::Operator);
    assert_eq!(ended(&outs), Some(("completed", "operator_hangup")));
}

#[test]
fn byes_from_both_sides_at_once_end_the_call_once() {
    let (mut t, invite) = T::bridged();
    let (_, outs) = t.caller_request(Method::Bye, None);
    assert_eq!(acd_events(&outs).len(), 1);
    // The operator's BYE crossed ours: answered, nothing more to tell.
    let (tx, outs2) = t.operator_request(&invite, Method::Bye, None);
    assert!(
        response_for(&outs2, tx).is_none()
            || response_for(&outs2, tx).unwrap().status() == Some(200)
    );
    assert!(acd_events(&outs2).is_empty());
    assert!(done(&outs) || done(&outs2));
}

#[test]
fn the_operator_holding_and_resuming_is_answered_with_our_sdp() {
    let (mut t, invite) = T::bridged();
    let mut l = LocalSdp::new("127.0.0.3".parse().unwrap(), 30000);
    let offer = crate::sdp::offer(&mut l, &[Codec::Pcmu]);
    let (tx, outs) = t.operator_request(&invite, Method::Invite, Some(offer));
    let r = response_for(&outs, tx).unwrap();
    assert_eq!(r.status(), Some(200));
    assert!(!r.body().is_empty());
    assert!(
        media(&outs)
            .iter()
            .any(|m| matches!(m, MediaCmd::Update { .. }))
    );
    let (tx, outs) = t.operator_request(&invite, Method::Update, None);
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(200));
}

#[test]
fn the_caller_reinviting_during_the_bridge_keeps_the_bridge() {
    let (mut t, _) = T::bridged();
    let (tx, outs) = t.caller_request(Method::Invite, Some(("application/sdp", caller_offer())));
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(200));
    assert!(!done(&outs));
    assert_eq!(t.core.view().state, CallState::Bridged);
}

#[test]
fn the_operators_phone_going_silent_ends_the_call_as_the_operators() {
    let (mut t, _) = T::bridged();
    let op_leg = t.core.legs.connected("ana").unwrap().media;
    let outs = t.input(Input::Media(MediaEvent::RtpTimeout { leg: op_leg }));
    assert!(matches!(
        acd_events(&outs)[..],
        [AcdEvent::CallEnded {
            by: Party::Operator,
            ..
        }]
    ));
}

#[test]
fn digits_during_the_bridge_are_the_operators_business() {
    let (mut t, _) = T::bridged();
    let outs = t.digit('1');
    assert!(acd_events(&outs).is_empty());
    assert!(media(&outs).is_empty());
}

#[test]
fn shutdown_while_bridged_ends_both_legs() {
    let (mut t, invite) = T::bridged();
    let outs = t.input(Input::Shutdown);
    let byes = requests(&outs, Method::Bye);
    assert_eq!(byes.len(), 2, "the caller and the operator");
    assert!(
        byes.iter()
            .any(|(_, m)| m.call_id().ok() == invite.call_id().ok())
    );
    assert!(matches!(
        acd_events(&outs)[..],
        [AcdEvent::CallEnded { .. }]
    ));
}

// ---- transfers ----

#[test]
fn a_transfer_bridges_when_the_target_answers() {
    let mut t = T::answered();
    let outs = t.digit('2');
    let (_, invite) = requests(&outs, Method::Invite).pop().unwrap();
    assert_eq!(invite.request_uri_str(), Some("sip:destino@127.0.0.9:5099"));
    let outs = t.answer_leg(&invite, 200);
    assert!(
        media(&outs)
            .iter()
            .any(|m| matches!(m, MediaCmd::Bridge { .. }))
    );
    assert!(acd_events(&outs).is_empty(), "no ACD in a transfer");
    let (_, outs) = t.caller_request(Method::Bye, None);
    assert_eq!(cdr(&outs).unwrap().disposition, Disposition::Transferred);
}

#[test]
fn a_failing_transfer_target_ends_the_call_as_failed() {
    let mut t = T::answered();
    let outs = t.digit('2');
    let (_, invite) = requests(&outs, Method::Invite).pop().unwrap();
    let outs = t.answer_leg(&invite, 486);
    assert_eq!(requests(&outs, Method::Bye).len(), 1);
    let outs = t.answer_bye(&outs);
    assert_eq!(ended(&outs), Some(("failed", "transfer_failed")));
}

#[test]
fn hanging_up_while_the_transfer_rings_is_abandoned() {
    let mut t = T::answered();
    t.digit('2');
    let (_, outs) = t.caller_request(Method::Bye, None);
    assert_eq!(requests(&outs, Method::Cancel).len(), 1);
    assert_eq!(cdr(&outs).unwrap().disposition, Disposition::Abandoned);
}

/// The IVR's counts leave the core as figures, for the shell's metrics.
#[test]
fn ivr_counts_come_out_as_figures() {
    let ivr = |outs: &[Output]| -> Vec<(IvrCount, String, u64)> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Figure(Figure::Ivr {
                    plan,
                    count,
                    node,
                    n,
                }) => {
                    assert_eq!(plan, "t");
                    Some((*count, node.clone(), *n))
                }
                _ => None,
            })
            .collect()
    };
    let mut t = T::answered();
    let outs = t.digit('7');
    assert_eq!(ivr(&outs), [(IvrCount::Invalid, "inicio".to_owned(), 1)]);
    let outs = t.digit('9');
    assert_eq!(ivr(&outs), [(IvrCount::Visit, "adios".to_owned(), 1)]);
}

// ---- session timers (RFC 4028) ----

fn timed(headers: Vec<(&'static str, &'static str)>) -> (T, Vec<Output>) {
    let mut t = T::new(Opts {
        headers,
        ..Opts::default()
    });
    let outs = t.input(Input::Start);
    t.ack();
    (t, outs)
}

fn header_of(outs: &[Output], tx: TxId, name: &str) -> Option<String> {
    response_for(outs, tx).and_then(|m| m.header(name).map(str::to_owned))
}

#[test]
fn a_session_interval_below_our_min_se_is_422_with_our_min_se() {
    let (_, outs) = timed(vec![("Session-Expires", "60"), ("Supported", "timer")]);
    let r = response_for(&outs, TxId::for_test(INVITE_TX)).unwrap();
    assert_eq!(r.status(), Some(422));
    assert_eq!(r.header("Min-SE"), Some("90"));
    assert!(done(&outs));
}

#[test]
fn a_carrier_that_refreshes_gets_require_timer_and_a_bye_when_it_stops() {
    let (mut t, outs) = timed(vec![
        ("Session-Expires", "120;refresher=uac"),
        ("Supported", "timer"),
    ]);
    let invite = TxId::for_test(INVITE_TX);
    assert_eq!(
        header_of(&outs, invite, "Session-Expires").as_deref(),
        Some("120;refresher=uac")
    );
    assert_eq!(
        header_of(&outs, invite, "Require").as_deref(),
        Some("timer")
    );
    // 120 s less min(32, 40): a BYE at 88 s without a refresh.
    assert!(requests(&t.advance(Duration::from_secs(87)), Method::Bye).is_empty());
    let outs = t.advance(Duration::from_secs(1));
    assert_eq!(requests(&outs, Method::Bye).len(), 1);
    let outs = t.answer_bye(&outs);
    assert_eq!(ended(&outs), Some(("failed", "session_expired")));
}

#[test]
fn a_carrier_refresh_by_reinvite_or_update_keeps_the_call_up() {
    let (mut t, _) = timed(vec![
        ("Session-Expires", "120;refresher=uac"),
        ("Supported", "timer"),
    ]);
    t.advance(Duration::from_secs(60));
    let (tx, outs) = t.caller_request(Method::Invite, Some(("application/sdp", caller_offer())));
    assert_eq!(
        header_of(&outs, tx, "Session-Expires").as_deref(),
        Some("120;refresher=uac")
    );
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Figure(Figure::SessionRefreshed { by_us: false })))
    );
    t.advance(Duration::from_secs(60));
    let (tx, outs) = t.caller_request(Method::Update, None);
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(200));
    assert!(header_of(&outs, tx, "Session-Expires").is_some());
    assert!(requests(&t.advance(Duration::from_secs(87)), Method::Bye).is_empty());
    assert_eq!(
        requests(&t.advance(Duration::from_secs(1)), Method::Bye).len(),
        1
    );
}

#[test]
fn a_refresh_asking_too_little_is_422_and_changes_nothing() {
    let (mut t, _) = timed(vec![
        ("Session-Expires", "120;refresher=uac"),
        ("Supported", "timer"),
    ]);
    let (tx, outs) = t.caller_request(Method::Update, None);
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(200));
    let mut b = RequestBuilder::new(Method::Update, "sip:conmutador@127.0.0.1:5060")
        .header("Via", "SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKsmall")
        .header("From", "<sip:+525512345678@127.0.0.2>;tag=callertag")
        .header("To", "<sip:5550100@127.0.0.1>;tag=ourtag")
        .header("Call-ID", "trunk-call-1")
        .header("CSeq", "50 UPDATE");
    b = b.header("Session-Expires", "30");
    let tx = t.tx();
    let outs = t.input(Input::Request {
        req: Message::parse(b.build()).unwrap(),
        tx,
    });
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(422));
    assert_eq!(header_of(&outs, tx, "Min-SE").as_deref(), Some("90"));
}

#[test]
fn a_carrier_without_timer_support_makes_us_the_refresher_by_reinvite() {
    // A proxy put the header there; the carrier cannot refresh.
    let (mut t, outs) = timed(vec![("Session-Expires", "120")]);
    let invite = TxId::for_test(INVITE_TX);
    assert_eq!(
        header_of(&outs, invite, "Session-Expires").as_deref(),
        Some("120;refresher=uas")
    );
    assert_eq!(header_of(&outs, invite, "Require"), None);
    assert!(t.advance(Duration::from_secs(59)).is_empty());
    let outs = t.advance(Duration::from_secs(1));
    let (_, reinvite) = requests(&outs, Method::Invite).pop().expect("our refresh");
    assert_eq!(
        reinvite.header("Session-Expires"),
        Some("120;refresher=uac")
    );
    assert_eq!(reinvite.header("CSeq"), Some("2 INVITE"));
    assert!(!reinvite.body().is_empty(), "re-INVITE carries our SDP");
    let ok = Message::parse(
        response_to(&reinvite, 200, "OK")
            .header("Session-Expires", "120;refresher=uac")
            .body("application/sdp", caller_offer())
            .build(),
    )
    .unwrap();
    let outs = t.input(Input::Response { resp: ok });
    let ack = outs
        .iter()
        .find_map(|o| match o {
            Output::Raw { bytes, .. } => Message::parse(bytes.clone()).ok(),
            _ => None,
        })
        .expect("the 2xx to our re-INVITE is acknowledged");
    assert_eq!(ack.header("CSeq"), Some("2 ACK"));
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Figure(Figure::SessionRefreshed { by_us: true })))
    );
    // And again half an interval later.
    assert!(t.advance(Duration::from_secs(59)).is_empty());
    let outs = t.advance(Duration::from_secs(1));
    assert_eq!(
        requests(&outs, Method::Invite)[0].1.header("CSeq"),
        Some("3 INVITE")
    );
}

#[test]
fn we_refresh_by_update_when_the_carrier_allows_it() {
    let (mut t, _) = timed(vec![
        ("Session-Expires", "100;refresher=uas"),
        ("Supported", "timer"),
        ("Allow", "INVITE, ACK, BYE, CANCEL, UPDATE"),
    ]);
    let outs = t.advance(Duration::from_secs(50));
    let (_, update) = requests(&outs, Method::Update)
        .pop()
        .expect("an UPDATE refresh");
    assert!(update.body().is_empty());
    // A 405 turns us to re-INVITE at once.
    let no = Message::parse(response_to(&update, 405, "Method Not Allowed").build()).unwrap();
    let outs = t.input(Input::Response { resp: no });
    assert_eq!(requests(&outs, Method::Invite).len(), 1);
}

#[test]
fn a_refresh_answered_422_is_sent_again_with_the_larger_interval() {
    let (mut t, _) = timed(vec![("Session-Expires", "100")]);
    let outs = t.advance(Duration::from_secs(50));
    let (_, reinvite) = requests(&outs, Method::Invite).pop().unwrap();
    let too_small = Message::parse(
        response_to(&reinvite, 422, "Session Interval Too Small")
            .header("Min-SE", "300")
            .build(),
    )
    .unwrap();
    let outs = t.input(Input::Response { resp: too_small });
    let (_, again) = requests(&outs, Method::Invite).pop().expect("sent again");
    assert_eq!(again.header("Session-Expires"), Some("300;refresher=uac"));
}

#[test]
fn a_refresh_that_times_out_or_gets_481_ends_the_session() {
    for lost in [true, false] {
        let (mut t, _) = timed(vec![("Session-Expires", "100")]);
        let outs = t.advance(Duration::from_secs(50));
        let (branch, reinvite) = requests(&outs, Method::Invite).pop().unwrap();
        let input = if lost {
            Input::ClientTimeout { branch }
        } else {
            Input::Response {
                resp: Message::parse(response_to(&reinvite, 481, "Gone").build()).unwrap(),
            }
        };
        let outs = t.input(input);
        let outs = t.answer_bye(&outs);
        assert_eq!(ended(&outs), Some(("failed", "session_expired")));
    }
}

#[test]
fn a_long_interval_is_lowered_to_ours_and_no_header_means_no_timer() {
    let (_, outs) = timed(vec![
        ("Session-Expires", "7200;refresher=uac"),
        ("Supported", "timer"),
    ]);
    assert_eq!(
        header_of(&outs, TxId::for_test(INVITE_TX), "Session-Expires").as_deref(),
        Some("1800;refresher=uac")
    );
    let (t, outs) = timed(vec![]);
    assert_eq!(
        header_of(&outs, TxId::for_test(INVITE_TX), "Session-Expires"),
        None
    );
    assert!(t.core.trunk.timer.is_none());
}

#[test]
fn shutdown_while_an_operator_rings_cancels_the_ring_and_removes_the_caller() {
    let mut t = T::queued();
    let invite = t.ring("ana");
    t.answer_leg(&invite, 180);
    let outs = t.input(Input::Shutdown);
    assert_eq!(requests(&outs, Method::Cancel).len(), 1);
    assert_eq!(
        acd_events(&outs),
        [AcdEvent::CallerRemoved {
            call: 42,
            by: Removal::Shutdown
        }]
    );
    // The 487 to the CANCEL, while our BYE to the caller is out, is only
    // acknowledged.
    let outs = t.answer_leg(&invite, 487);
    assert!(outs.iter().any(|o| matches!(o, Output::AckFailure { .. })));
    assert!(acd_events(&outs).is_empty());
}

#[test]
fn an_update_from_a_ringing_operators_phone_is_answered() {
    let mut t = T::queued();
    let invite = t.ring("ana");
    t.answer_leg(&invite, 180);
    let (tx, outs) = t.operator_request(&invite, Method::Update, None);
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(200));
    assert!(acd_events(&outs).is_empty());
}

// ---- SRTP per leg ----

fn srtp_offer(required: bool) -> Bytes {
    let mut l = LocalSdp::new("127.0.0.4".parse().unwrap(), 40000);
    let mode = if required {
        crate::sdp::SrtpMode::Required
    } else {
        crate::sdp::SrtpMode::Optional
    };
    crate::sdp::offer_secure(
        &mut l,
        &[Codec::Pcmu],
        crate::sdp::SecureOpts {
            srtp: mode,
            signalling_secure: true,
        },
    )
    .unwrap()
}

#[test]
fn an_srtp_only_offer_without_tls_is_488_saying_why() {
    let mut t = T::new(Opts {
        offer: Some(srtp_offer(true)),
        ..Opts::default()
    });
    let outs = t.input(Input::Start);
    let r = response_for(&outs, TxId::for_test(INVITE_TX)).unwrap();
    assert_eq!(r.status(), Some(488));
    assert!(
        r.header("Warning").unwrap().contains("TLS"),
        "{:?}",
        r.header("Warning")
    );
    assert!(done(&outs));
}

#[test]
fn an_srtp_offer_over_tls_is_answered_with_our_key_and_media_starts_keyed() {
    let mut t = T::new(Opts {
        offer: Some(srtp_offer(true)),
        carrier: "127.0.0.4:5061",
        ..Opts::default()
    });
    let outs = t.input(Input::Start);
    let ok = response_for(&outs, TxId::for_test(INVITE_TX)).unwrap();
    assert_eq!(ok.status(), Some(200));
    let body = String::from_utf8_lossy(ok.body()).to_string();
    assert!(
        body.contains("RTP/SAVP") && body.contains("a=crypto:"),
        "{body}"
    );
    assert!(
        media(&outs)
            .iter()
            .any(|m| matches!(m, MediaCmd::Start { srtp: Some(_), .. }))
    );
}

#[test]
fn a_plain_carrier_and_an_operator_on_tls_get_srtp_only_on_the_operators_leg() {
    let mut t = T::queued();
    let outs = t.ring_outs("carla");
    let (_, invite) = requests(&outs, Method::Invite).pop().unwrap();
    let body = String::from_utf8_lossy(invite.body()).to_string();
    assert!(
        body.contains("a=crypto:"),
        "best-effort SRTP offer to a TLS phone: {body}"
    );
    // The phone answers with its key: the operator's leg starts keyed.
    let mut l = LocalSdp::new("127.0.0.4".parse().unwrap(), 30000);
    let (answer, _, keys) = crate::sdp::answer_secure(
        invite.body(),
        &mut l,
        &[Codec::Pcmu],
        crate::sdp::SecureOpts {
            srtp: crate::sdp::SrtpMode::Optional,
            signalling_secure: true,
        },
    )
    .unwrap();
    assert!(keys.is_some());
    let resp = Message::parse(
        response_to(&invite, 200, "OK")
            .to_tag("optag")
            .header("Contact", "<sip:carla@127.0.0.4:5072;transport=tls>")
            .body("application/sdp", answer)
            .build(),
    )
    .unwrap();
    let outs = t.input(Input::Response { resp });
    assert!(
        media(&outs)
            .iter()
            .any(|m| matches!(m, MediaCmd::Start { srtp: Some(_), .. }))
    );
    // The caller's leg, plain UDP, stayed plain.
    let (_, plain) = {
        let mut t2 = T::queued();
        let outs = t2.ring_outs("ana");
        requests(&outs, Method::Invite).pop().unwrap()
    };
    assert!(!String::from_utf8_lossy(plain.body()).contains("a=crypto"));
}

#[test]
fn with_srtp_required_a_plain_offer_is_refused_and_a_plain_phone_is_not_rung() {
    let mut t = T::new(Opts {
        srtp: crate::sdp::SrtpMode::Required,
        ..Opts::default()
    });
    let outs = t.input(Input::Start);
    assert_eq!(statuses(&outs), [488]);
    let mut t = T::new(Opts {
        srtp: crate::sdp::SrtpMode::Required,
        offer: Some(srtp_offer(true)),
        carrier: "127.0.0.4:5061",
        ..Opts::default()
    });
    t.input(Input::Start);
    t.ack();
    t.digit('1');
    let outs = t.ring_outs("ana");
    assert!(requests(&outs, Method::Invite).is_empty());
    assert!(matches!(
        acd_events(&outs)[..],
        [AcdEvent::RingFailed {
            reason: RingFailure::Unreachable,
            ..
        }]
    ));
    assert_eq!(released(&outs).len(), 1, "the unused port goes back");
}

#[test]
fn an_invite_whose_body_is_not_sdp_is_415_with_accept() {
    let mut b = RequestBuilder::new(Method::Invite, "sip:5550100@127.0.0.1:5060")
        .header("Via", "SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKx")
        .header("From", "<sip:+525512345678@127.0.0.2>;tag=callertag")
        .header("To", "<sip:5550100@127.0.0.1>")
        .header("Call-ID", "trunk-call-1")
        .header("CSeq", "1 INVITE");
    b = b.body(
        "application/unknownformat",
        Bytes::from_static(b"<audio> <pcmu/> </audio>"),
    );
    let mut t = T::new(Opts::default());
    t.core.trunk.invite = Message::parse(b.build()).unwrap();
    let outs = t.input(Input::Start);
    let r = response_for(&outs, TxId::for_test(INVITE_TX)).unwrap();
    assert_eq!(r.status(), Some(415));
    assert_eq!(r.header("Accept"), Some("application/sdp"));
    assert!(done(&outs));
}

// ---- transfers by the operator (REFER) ----

impl T {
    /// Ana's phone sends a REFER to `target` in her leg.
    fn refer(&mut self, invite: &Message, target: &str) -> (TxId, Vec<Output>) {
        let b = RequestBuilder::new(Method::Refer, "sip:conmutador@127.0.0.1:5060")
            .header("Via", "SIP/2.0/UDP 127.0.0.3:5070;branch=z9hG4bKref")
            .header("From", "<sip:ana@127.0.0.3:5070>;tag=optag")
            .header("To", invite.header("From").unwrap())
            .header("Call-ID", invite.call_id().unwrap())
            .header("CSeq", "8 REFER")
            .header("Refer-To", format!("<{target}>"))
            .header("Referred-By", "<sip:ana@127.0.0.3:5070>");
        let tx = self.tx();
        let outs = self.input(Input::Request {
            req: Message::parse(b.build()).unwrap(),
            tx,
        });
        (tx, outs)
    }
}

/// The sipfrag status lines of the NOTIFYs in `outs` to the leg of `invite`,
/// with whether each ends the subscription.
fn notifies(outs: &[Output], invite: &Message) -> Vec<(String, bool)> {
    requests(outs, Method::Notify)
        .into_iter()
        .filter(|(_, m)| m.call_id().ok() == invite.call_id().ok())
        .map(|(_, m)| {
            assert_eq!(m.header("Event"), Some("refer;id=8"));
            assert!(
                m.content_type()
                    .is_some_and(|c| c.starts_with("message/sipfrag"))
            );
            let frag = String::from_utf8_lossy(m.body()).trim().to_owned();
            let last = m
                .header("Subscription-State")
                .is_some_and(|s| s.starts_with("terminated"));
            (frag, last)
        })
        .collect()
}

fn byes_to(outs: &[Output], invite: &Message) -> usize {
    requests(outs, Method::Bye)
        .iter()
        .filter(|(_, m)| m.call_id().ok() == invite.call_id().ok())
        .count()
}

fn transfer_logs(outs: &[Output]) -> Vec<(Option<String>, Vec<String>)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::QueueEvent(e) if e.event == crate::ops::records::QueueEventKind::Transfer => {
                Some((e.agent.clone(), e.data.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_refer_to_a_queue_requeues_the_caller_with_its_priority_and_releases_the_operator() {
    let (mut t, invite) = T::bridged();
    let (tx, outs) = t.refer(&invite, "sip:visas@127.0.0.1");
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(202));
    assert_eq!(
        notifies(&outs, &invite),
        vec![
            ("SIP/2.0 100 Trying".into(), false),
            ("SIP/2.0 200 OK".into(), true)
        ]
    );
    assert!(
        media(&outs)
            .iter()
            .any(|m| matches!(m, MediaCmd::Unbridge { .. }))
    );
    assert_eq!(byes_to(&outs, &invite), 1, "ana's leg is hung up");
    let evs = acd_events(&outs);
    assert!(
        matches!(&evs[..], [AcdEvent::Transferred { call: 42 }, AcdEvent::CallerJoined { queue, priority: 0, .. }] if queue == "visas"),
        "{evs:?}"
    );
    let logs = transfer_logs(&outs);
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].0.as_deref(), Some("ana"));
    assert_eq!(logs[0].1[0], "queue:visas");
    assert_eq!(views(&outs).last(), Some(&CallState::Queued));
    // Beto takes it in the new queue; the record names him.
    let invite_b = t.ring("beto");
    t.answer_leg(&invite_b, 200);
    t.acd(AcdCommand::Connect {
        call: 42,
        op: "beto".into(),
    });
    let (_, outs) = t.caller_request(Method::Bye, None);
    let c = cdr(&outs).unwrap();
    assert_eq!(c.operator.as_deref(), Some("beto"));
    assert_eq!(c.queue.as_deref(), Some("visas"), "the queue that served");
}

#[test]
fn a_refer_to_an_operator_rings_by_name_and_bridges_on_the_answer() {
    let (mut t, invite) = T::bridged();
    let (tx, outs) = t.refer(&invite, "sip:beto@127.0.0.1:5060");
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(202));
    assert_eq!(
        notifies(&outs, &invite),
        vec![("SIP/2.0 100 Trying".into(), false)]
    );
    assert!(
        matches!(&acd_events(&outs)[..], [AcdEvent::DirectRing { op, queue, .. }] if op == "beto" && queue == "pasaportes")
    );
    assert_eq!(byes_to(&outs, &invite), 0, "ana stays until beto answers");
    let invite_b = t.ring("beto");
    let outs = t.answer_leg(&invite_b, 200);
    assert!(matches!(&acd_events(&outs)[..], [AcdEvent::RingAnswered { op, .. }] if op == "beto"));
    // TRANSFER before the ACD's CONNECT for beto.
    assert_eq!(transfer_logs(&outs)[0].1[0], "operator:beto");
    let outs = t.acd(AcdCommand::Connect {
        call: 42,
        op: "beto".into(),
    });
    assert!(
        media(&outs)
            .iter()
            .any(|m| matches!(m, MediaCmd::Bridge { .. }))
    );
    assert_eq!(
        notifies(&outs, &invite),
        vec![("SIP/2.0 200 OK".into(), true)]
    );
    assert_eq!(byes_to(&outs, &invite), 1);
    assert!(
        acd_events(&outs).is_empty(),
        "the ACD ended ana's part itself"
    );
    assert!(transfer_logs(&outs).is_empty(), "written once");
    let (_, outs) = t.caller_request(Method::Bye, None);
    assert!(matches!(&acd_events(&outs)[..], [AcdEvent::CallEnded { op, .. }] if op == "beto"));
    assert_eq!(cdr(&outs).unwrap().operator.as_deref(), Some("beto"));
}

#[test]
fn a_busy_or_silent_target_hands_the_caller_back_to_the_operator() {
    // The ACD says beto is not free.
    let (mut t, invite) = T::bridged();
    t.refer(&invite, "sip:beto@127.0.0.1");
    let outs = t.acd(AcdCommand::CancelRing {
        call: 42,
        op: "beto".into(),
    });
    assert_eq!(
        notifies(&outs, &invite),
        vec![("SIP/2.0 486 Busy Here".into(), true)]
    );
    assert!(
        media(&outs)
            .iter()
            .any(|m| matches!(m, MediaCmd::Bridge { .. }))
    );
    assert_eq!(byes_to(&outs, &invite), 0);
    assert_eq!(t.core.view().state, CallState::Bridged);
    // Again, and beto never answers: the ring limit brings the caller back.
    t.refer(&invite, "sip:beto@127.0.0.1");
    let invite_b = t.ring("beto");
    let outs = t.advance(super::refer::REFER_RING_LIMIT + Duration::from_secs(1));
    assert_eq!(requests(&outs, Method::Cancel).len(), 1);
    assert!(matches!(&acd_events(&outs)[..], [AcdEvent::RingFailed { op, .. }] if op == "beto"));
    assert_eq!(
        notifies(&outs, &invite),
        vec![("SIP/2.0 408 Request Timeout".into(), true)]
    );
    assert!(
        media(&outs)
            .iter()
            .any(|m| matches!(m, MediaCmd::Bridge { .. }))
    );
    // The 487 to the CANCEL changes nothing more.
    let outs = t.answer_leg(&invite_b, 487);
    assert!(acd_events(&outs).is_empty(), "{outs:?}");
    assert!(notifies(&outs, &invite).is_empty());
}

#[test]
fn a_target_failing_after_the_operator_left_puts_the_caller_at_the_front_of_its_queue() {
    let (mut t, invite) = T::bridged();
    t.refer(&invite, "sip:beto@127.0.0.1");
    // Ana hangs up at once, as a phone does after a blind transfer.
    let (tx, outs) = t.operator_request(&invite, Method::Bye, None);
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(200));
    assert!(
        !done(&outs) && requests(&outs, Method::Bye).is_empty(),
        "the caller stays"
    );
    let invite_b = t.ring("beto");
    let outs = t.answer_leg(&invite_b, 486);
    let evs = acd_events(&outs);
    assert!(
        matches!(&evs[..], [AcdEvent::RingFailed { .. }, AcdEvent::CallEnded { op, .. }, AcdEvent::CallerReturned { queue, .. }] if op == "ana" && queue == "pasaportes"),
        "{evs:?}"
    );
    assert_eq!(views(&outs).last(), Some(&CallState::Queued));
}

#[test]
fn a_refer_to_a_plan_node_or_a_plan_number_goes_there() {
    let (mut t, invite) = T::bridged();
    let (_, outs) = t.refer(&invite, "sip:inicio@127.0.0.1");
    assert!(matches!(
        &acd_events(&outs)[..],
        [AcdEvent::Transferred { .. }]
    ));
    assert_eq!(views(&outs).last(), Some(&CallState::Ivr));
    assert_eq!(t.core.ivr.interp.current_node(), "inicio");
    // The menu works again: its key for the queue joins it.
    let outs = t.digit('1');
    assert!(matches!(
        &acd_events(&outs)[..],
        [AcdEvent::CallerJoined { .. }]
    ));

    // The plan's transfer number: called, bridged, then the REFER is done.
    let (mut t, invite) = T::bridged();
    let (tx, outs) = t.refer(&invite, "sip:destino@127.0.0.9:5099");
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(202));
    let (_, dest) = requests(&outs, Method::Invite)
        .pop()
        .expect("INVITE to the number");
    assert_eq!(dest.request_uri_str(), Some("sip:destino@127.0.0.9:5099"));
    let outs = t.answer_leg(&dest, 200);
    assert_eq!(
        notifies(&outs, &invite),
        vec![("SIP/2.0 200 OK".into(), true)]
    );
    assert!(matches!(
        &acd_events(&outs)[..],
        [AcdEvent::Transferred { .. }]
    ));
    assert_eq!(transfer_logs(&outs).len(), 1, "one TRANSFER line, not two");
}

#[test]
fn refers_that_cannot_be_carried_out_are_refused_and_the_call_goes_on() {
    let (mut t, invite) = T::bridged();
    for (target, status) in [
        ("sip:+15551234567@198.51.100.7", 403),
        ("sip:nadie@127.0.0.1", 403),
        (
            "sip:beto@127.0.0.1?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2",
            501,
        ),
    ] {
        let (tx, outs) = t.refer(&invite, target);
        assert_eq!(
            response_for(&outs, tx).unwrap().status(),
            Some(status),
            "{target}"
        );
        assert!(media(&outs).is_empty() && acd_events(&outs).is_empty());
    }
    // While one runs, a second gets 491.
    t.refer(&invite, "sip:beto@127.0.0.1");
    let (tx, outs) = t.refer(&invite, "sip:visas@127.0.0.1");
    assert_eq!(response_for(&outs, tx).unwrap().status(), Some(491));
}

#[test]
fn a_caller_hanging_up_during_a_transfer_ends_the_operators_part_and_the_ring() {
    let (mut t, invite) = T::bridged();
    t.refer(&invite, "sip:beto@127.0.0.1");
    t.ring("beto");
    let (_, outs) = t.caller_request(Method::Bye, None);
    assert!(
        matches!(&acd_events(&outs)[..], [AcdEvent::CallEnded { op, .. }] if op == "ana"),
        "{:?}",
        acd_events(&outs)
    );
    assert_eq!(
        requests(&outs, Method::Cancel).len(),
        1,
        "beto's ring stops"
    );
    assert_eq!(byes_to(&outs, &invite), 1, "ana's leg ends");
}

#[test]
fn an_operator_hanging_up_right_after_a_failed_transfer_leaves_the_caller_waiting_first() {
    // Phones such as baresip 1.0 end the call when the transfer fails.
    let (mut t, invite) = T::bridged();
    t.refer(&invite, "sip:beto@127.0.0.1");
    t.acd(AcdCommand::CancelRing {
        call: 42,
        op: "beto".into(),
    });
    t.advance(Duration::from_secs(1));
    let (_, outs) = t.operator_request(&invite, Method::Bye, None);
    assert!(!done(&outs) && byes_to(&outs, &invite) == 0);
    assert!(
        requests(&outs, Method::Bye).is_empty(),
        "the caller is not hung up"
    );
    let evs = acd_events(&outs);
    assert!(
        matches!(&evs[..], [AcdEvent::CallEnded { op, .. }, AcdEvent::CallerReturned { .. }] if op == "ana"),
        "{evs:?}"
    );
    // Later than that, hanging up is an ordinary end of the call.
    let (mut t, invite) = T::bridged();
    t.refer(&invite, "sip:beto@127.0.0.1");
    t.acd(AcdCommand::CancelRing {
        call: 42,
        op: "beto".into(),
    });
    t.advance(super::refer::GIVE_BACK_GRACE + Duration::from_secs(1));
    let (_, outs) = t.operator_request(&invite, Method::Bye, None);
    assert_eq!(
        requests(&outs, Method::Bye).len(),
        1,
        "the caller's leg ends"
    );
}

#[test]
fn an_operator_holding_the_caller_plays_them_music_until_it_resumes() {
    let (mut t, invite) = T::bridged();
    let trunk = t.core.trunk.leg.unwrap();
    let sdp = |dir: &str| {
        Bytes::from(format!(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\n\
             m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={dir}\r\n"
        ))
    };
    let moh = |outs: &[Output]| {
        media(outs).iter().any(|m| {
            matches!(m, MediaCmd::Play { leg, opts, .. } if *leg == trunk && opts.token == waiting::MOH_TOKEN)
        })
    };
    let (_, outs) = t.operator_request(&invite, Method::Invite, Some(sdp("sendonly")));
    assert_eq!(statuses(&outs), vec![200]);
    assert!(moh(&outs), "the held caller hears music: {outs:?}");
    // A refresh of the same hold changes nothing.
    let (_, outs) = t.operator_request(&invite, Method::Invite, Some(sdp("inactive")));
    assert!(!moh(&outs));
    let (_, outs) = t.operator_request(&invite, Method::Invite, Some(sdp("sendrecv")));
    assert!(
        media(&outs)
            .iter()
            .any(|m| matches!(m, MediaCmd::StopPlayback { leg } if *leg == trunk)),
        "resumed: the music stops, the bridge relays again"
    );
    assert_eq!(t.core.view().state, CallState::Bridged);
}
