//! Test harness: a real SIP phone (baresip 1.0, the Debian package) run
//! headless on 127.0.0.1, as a CALLER (dials, presses RFC 4733 digits, records
//! what it hears) or as an OPERATOR phone (REGISTERs with digest auth,
//! auto-answers, plays a WAV as its microphone, records what it hears).
//!
//! It only starts, drives and kills baresip processes it spawned itself (by
//! PID, on `Drop`); it touches no sound device, no DNS server and no address
//! other than 127.0.0.1. Every process is bounded by baresip's own `-t`.
//!
//! What baresip 1.0 is given (each choice was checked on this machine):
//! - its own config dir (`-f <tempdir>`) with `config` and `accounts`, so the
//!   user's `~/.baresip` is never read;
//! - modules `g711` (PCMU/PCMA), `aufile` (WAV as microphone), `aubridge`
//!   (a player that goes nowhere: 1.0 has no file player), `sndfile` (a filter
//!   that dumps the decoded received audio to `dump-<time>-dec.wav`, which is
//!   how we "record"), `account`, and the apps `menu` (the command set) and
//!   `ctrl_tcp` (netstring-framed JSON commands and events on TCP);
//! - `net_interface 127.0.0.1` (`lo` fails here: "could not get IPv4
//!   address"), `sip_listen 127.0.0.1:<port>` (it also listens on TCP at that
//!   port and on `<port>+1` for TLS), `rtp_ports` from a probed free range,
//!   `dns_server 127.0.0.1:53` so it never reads resolv.conf;
//! - account parameter `answermode=auto` for auto-answer, `regint=0` for a
//!   phone that never registers.
//!
//! Behaviour of 1.0 the tests must respect:
//! - aufile sources must be 8 kHz mono 16-bit PCM WAV (checked in `start`);
//!   when the WAV ends baresip HANGS UP the call. A caller without a
//!   `source_wav` gets generated silence that outlasts `quit_after`.
//! - RFC 4733 digits are only sent while the source runs (the source clock
//!   drives the sender), which the silence source guarantees.
//! - recordings are named by the second the call started: one call at a time
//!   per phone if you want every recording (two calls starting in the same
//!   second share, and overwrite, one file).
//! - ctrl_tcp serves one connection (a second one closes the first); the
//!   harness holds it for the phone's life: talk to baresip through it only.
//! - on `-t` expiry it un-REGISTERs and waits for the answer (up to ~32 s if
//!   the registrar is gone), so `Drop` kills it instead of asking politely.
//!
//! Waits take a limit and poll; `wait_call_*` consume one event each, so a
//! test doing two calls in a row writes the obvious sequence of waits.
//! `BARESIP_KEEP=1` keeps each phone's temp dir (config, log, recordings);
//! a failing test prints the tail of each phone's log.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The binary; override with `BARESIP` (e.g. a locally built one).
fn baresip_bin() -> String {
    std::env::var("BARESIP").unwrap_or_else(|_| "baresip".to_string())
}

const MODULE_PATH: &str = "/usr/lib/baresip/modules";
/// Ports per phone: SIP (UDP+TCP), SIP TLS, ctrl_tcp, spare, then RTP/RTCP pairs.
const PORT_BLOCK: u16 = 12;
const START_ATTEMPTS: usize = 5;
const START_LIMIT: Duration = Duration::from_secs(20);
const COMMAND_LIMIT: Duration = Duration::from_secs(15);
/// Caps on what the reader thread keeps, so a misbehaving baresip cannot grow
/// the test's memory without bound.
const MAX_FRAME: usize = 1 << 20;
const MAX_EVENTS: usize = 10_000;

/// How to start one phone.
#[derive(Clone, Debug)]
pub struct BaresipOpts {
    /// One line of baresip's `accounts` file, e.g.
    /// `<sip:op1@127.0.0.1:5060>;auth_pass=secret;regint=600` (registers) or
    /// `<sip:caller@127.0.0.1>;regint=0` (never registers). Add
    /// `;audio_codecs=pcmu` etc. to restrict codecs.
    pub account: String,
    /// The microphone: 8 kHz mono 16-bit PCM WAV. The call is hung up by
    /// baresip when it ends. `None`: silence lasting longer than `quit_after`.
    pub source_wav: Option<PathBuf>,
    /// Adds `;answermode=auto` to the account (unless it names an answermode).
    pub auto_answer: bool,
    /// baresip's `-t`: it quits by itself after this long (rounded up to s).
    pub quit_after: Duration,
    /// baresip's `-s`: every SIP message it sends/receives goes to `log()`.
    pub sip_trace: bool,
    /// More lines for baresip's `config`, e.g. `sip_cafile\t/path/ca.pem`.
    pub extra_config: String,
}

impl BaresipOpts {
    /// A phone that never registers and dials out; silent microphone.
    pub fn caller() -> BaresipOpts {
        BaresipOpts {
            account: "<sip:caller@127.0.0.1>;regint=0".to_string(),
            source_wav: None,
            auto_answer: false,
            quit_after: Duration::from_secs(60),
            sip_trace: true,
            extra_config: String::new(),
        }
    }

    /// A phone that registers `user`/`password` at `registrar` (digest auth)
    /// and answers every call by itself.
    pub fn operator(user: &str, password: &str, registrar: SocketAddr) -> BaresipOpts {
        BaresipOpts {
            account: format!("<sip:{user}@{registrar}>;auth_pass={password};regint=600"),
            source_wav: None,
            auto_answer: true,
            quit_after: Duration::from_secs(60),
            sip_trace: true,
            extra_config: String::new(),
        }
    }
}

/// One ctrl_tcp event, e.g. kind `CALL_ESTABLISHED`, `CALL_CLOSED`,
/// `CALL_INCOMING`, `REGISTER_OK`, `REGISTER_FAIL`, `CALL_RTPESTAB`.
#[derive(Clone, Debug)]
pub struct Event {
    pub kind: String,
    pub class: String,
    /// Call events: the peer's URI (`peeruri`).
    pub peer_uri: String,
    /// Call events: the SIP Call-ID of the call (checked in the self-test).
    pub id: String,
    /// `param`: e.g. the close reason for `CALL_CLOSED`.
    pub param: String,
    pub at: Instant,
    pub raw: serde_json::Value,
}

#[derive(Default)]
struct CtrlState {
    events: Vec<Event>,
    /// token -> (ok, data)
    responses: HashMap<String, (bool, String)>,
    closed: bool,
}

#[derive(Default)]
struct Ctrl {
    state: Mutex<CtrlState>,
    changed: Condvar,
}

/// A running baresip. Dropping it kills the process (by PID).
pub struct Baresip {
    child: Mutex<Child>,
    dir: tempfile::TempDir,
    log_path: PathBuf,
    /// SIP on UDP and TCP at 127.0.0.1:sip_port.
    pub sip_port: u16,
    /// ctrl_tcp address (held by this harness).
    pub ctrl: SocketAddr,
    /// User part of the account's AOR (`op1` in `sip:op1@...`).
    pub user: String,
    writer: Mutex<TcpStream>,
    shared: Arc<Ctrl>,
    reader: Option<JoinHandle<()>>,
    next_token: AtomicU64,
    /// Per event kind: how many the `wait_*` calls have already consumed.
    cursors: Mutex<HashMap<String, usize>>,
}

enum StartError {
    /// Probably a port somebody else took between our probe and baresip's bind.
    Retry(String),
    Fatal(String),
}

impl Baresip {
    /// Starts baresip and returns once it is ready (ctrl_tcp connected and
    /// "baresip is ready." logged). Panics with the log if it cannot start.
    pub fn start(opts: BaresipOpts) -> Baresip {
        // BARESIP_KEEP=1 keeps config, log and recordings for a post-mortem.
        let dir = tempfile::Builder::new()
            .prefix("baresip-")
            .disable_cleanup(std::env::var_os("BARESIP_KEEP").is_some())
            .tempdir()
            .expect("create a temp dir for baresip");
        let source = match &opts.source_wav {
            Some(p) => {
                let p = std::fs::canonicalize(p)
                    .unwrap_or_else(|e| panic!("source WAV {}: {e}", p.display()));
                let wav =
                    read_wav(&p).unwrap_or_else(|e| panic!("source WAV {}: {e}", p.display()));
                assert!(
                    wav.rate == 8000 && wav.channels == 1,
                    "baresip 1.0 aufile with G.711 needs 8 kHz mono 16-bit PCM; {} is {} Hz, {} channels",
                    p.display(),
                    wav.rate,
                    wav.channels
                );
                p
            }
            None => {
                let p = dir.path().join("silence.wav");
                let secs = opts.quit_after.as_secs() + 30;
                write_wav(&p, 8000, &vec![0i16; (secs * 8000) as usize])
                    .expect("write the silence WAV");
                p
            }
        };
        let mut account = opts.account.trim().to_string();
        assert!(
            !account.contains('\n'),
            "one account line only: {account:?}"
        );
        if opts.auto_answer && !account.contains("answermode=") {
            account.push_str(";answermode=auto");
        }
        let user = aor_user(&account);
        std::fs::write(dir.path().join("accounts"), format!("{account}\n"))
            .expect("write baresip accounts");

        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let base = free_port_block(PORT_BLOCK);
            match Self::try_start(&opts, &dir, &source, base) {
                Ok((child, writer, shared, reader, ctrl)) => {
                    return Baresip {
                        child: Mutex::new(child),
                        log_path: dir.path().join("baresip.log"),
                        dir,
                        sip_port: base,
                        ctrl,
                        user,
                        writer: Mutex::new(writer),
                        shared,
                        reader: Some(reader),
                        next_token: AtomicU64::new(1),
                        cursors: Mutex::new(HashMap::new()),
                    };
                }
                Err(StartError::Retry(log)) => last = log,
                Err(StartError::Fatal(log)) => panic!("baresip did not start:\n{log}"),
            }
        }
        panic!("baresip did not start in {START_ATTEMPTS} attempts; last log:\n{last}");
    }

    #[allow(clippy::type_complexity)]
    fn try_start(
        opts: &BaresipOpts,
        dir: &tempfile::TempDir,
        source: &Path,
        base: u16,
    ) -> Result<(Child, TcpStream, Arc<Ctrl>, JoinHandle<()>, SocketAddr), StartError> {
        let d = dir.path();
        let ctrl: SocketAddr = ([127, 0, 0, 1], base + 2).into();
        let config = format!(
            "poll_method\t\tepoll\n\
             sip_listen\t\t127.0.0.1:{base}\n\
             net_interface\t\t127.0.0.1\n\
             dns_server\t\t127.0.0.1:53\n\
             call_local_timeout\t120\n\
             call_max_calls\t\t4\n\
             audio_path\t\t{dir}\n\
             audio_player\t\taubridge,play\n\
             audio_alert\t\taubridge,alert\n\
             audio_source\t\taufile,{source}\n\
             audio_level\t\tno\n\
             ausrc_format\t\ts16\n\
             auplay_format\t\ts16\n\
             auenc_format\t\ts16\n\
             audec_format\t\ts16\n\
             rtp_ports\t\t{rtp_lo}-{rtp_hi}\n\
             rtcp_mux\t\tno\n\
             jitter_buffer_delay\t5-10\n\
             module_path\t\t{MODULE_PATH}\n\
             module\t\t\tg711.so\n\
             module\t\t\taufile.so\n\
             module\t\t\taubridge.so\n\
             module\t\t\tsndfile.so\n\
             module_tmp\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             module_app\t\tctrl_tcp.so\n\
             ctrl_tcp_listen\t\t{ctrl}\n\
             snd_path\t\t{dir}\n\
             statmode_default\toff\n\
             ringback_disabled\tyes\n\
             menu_bell\t\tno\n\
             {extra}",
            extra = opts.extra_config,
            dir = d.display(),
            source = source.display(),
            rtp_lo = base + 4,
            rtp_hi = base + PORT_BLOCK - 1,
        );
        std::fs::write(d.join("config"), config).expect("write baresip config");
        // Fresh log per attempt, so a retry's reasons are its own.
        let log_path = d.join("baresip.log");
        let log = File::create(&log_path).expect("create baresip log");
        let log2 = log.try_clone().expect("dup baresip log fd");
        let secs = opts.quit_after.as_secs() + u64::from(opts.quit_after.subsec_nanos() > 0);
        let mut cmd = Command::new(baresip_bin());
        cmd.arg("-f")
            .arg(d)
            .arg("-t")
            .arg(secs.max(1).to_string())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .current_dir(d);
        if opts.sip_trace {
            cmd.arg("-s");
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| StartError::Fatal(format!("spawn {}: {e}", baresip_bin())))?;

        let deadline = Instant::now() + START_LIMIT;
        let mut stream = None;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                let msg = format!("exited with {status}:\n{text}");
                // A bind race shows up as an init failure naming the address.
                return Err(if text.contains("in use") || text.contains("init failed") {
                    StartError::Retry(msg)
                } else {
                    StartError::Fatal(msg)
                });
            }
            if stream.is_none() {
                stream = TcpStream::connect_timeout(&ctrl, Duration::from_millis(200)).ok();
            }
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            // baresip carries on without ctrl_tcp if its port was taken; the
            // connection would then reach whoever holds the port.
            if text.contains("ctrl_tcp: failed") || text.contains("module ctrl_tcp.so:") {
                kill(&mut child);
                return Err(StartError::Retry(format!(
                    "ctrl_tcp could not listen:\n{text}"
                )));
            }
            if text.contains("baresip is ready.") && stream.is_some() {
                break;
            }
            if Instant::now() > deadline {
                kill(&mut child);
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(StartError::Retry(format!(
                    "not ready after {START_LIMIT:?} (ctrl connected: {}):\n{text}",
                    stream.is_some()
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let stream = stream.expect("loop exits only once connected");
        let _ = stream.set_nodelay(true);
        let reader_stream = stream.try_clone().expect("clone ctrl stream");
        let shared = Arc::new(Ctrl::default());
        let reader = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("baresip-ctrl".into())
                .spawn(move || read_ctrl(reader_stream, &shared))
                .expect("spawn ctrl reader thread")
        };
        Ok((child, stream, shared, reader, ctrl))
    }

    /// 127.0.0.1:sip_port — where to send SIP to this phone.
    pub fn sip_addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.sip_port).into()
    }

    /// `sip:<user>@127.0.0.1:<sip_port>`: reaches this phone directly (it
    /// accepts requests for its AOR user or its registered contact user).
    pub fn local_uri(&self) -> String {
        format!("sip:{}@127.0.0.1:{}", self.user, self.sip_port)
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().expect("child lock").id()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the process is still alive.
    pub fn is_running(&self) -> bool {
        matches!(self.child.lock().expect("child lock").try_wait(), Ok(None))
    }

    /// Sends one ctrl_tcp command (a `menu` command name such as `dial`,
    /// `hangup`, `accept`, `sndcode`, `reginfo`, `listcalls`) and waits for
    /// its response: `Ok(data)` or `Err(reason)`.
    pub fn command(&self, command: &str, params: &str) -> Result<String, String> {
        let token = format!("t{}", self.next_token.fetch_add(1, Ordering::Relaxed));
        let body =
            serde_json::json!({ "command": command, "params": params, "token": token }).to_string();
        let frame = format!("{}:{},", body.len(), body);
        {
            let mut w = self.writer.lock().expect("ctrl writer lock");
            w.write_all(frame.as_bytes())
                .map_err(|e| format!("ctrl write: {e}"))?;
        }
        let deadline = Instant::now() + COMMAND_LIMIT;
        let mut st = self.shared.state.lock().expect("ctrl state lock");
        loop {
            if let Some((ok, data)) = st.responses.remove(&token) {
                return if ok { Ok(data) } else { Err(data) };
            }
            if st.closed {
                return Err("ctrl connection closed (baresip exited?)".into());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("no response to {command:?} in {COMMAND_LIMIT:?}"));
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .expect("ctrl state lock")
                .0;
        }
    }

    fn must(&self, command: &str, params: &str) {
        if let Err(e) = self.command(command, params) {
            panic!(
                "baresip command {command} {params:?} failed: {e}\n--- log ---\n{}",
                self.log()
            );
        }
    }

    /// Places a call (`dial <uri>`). Use a full SIP URI with an IP literal:
    /// there is no DNS here.
    pub fn dial(&self, uri: &str) {
        self.must("dial", uri);
    }

    /// Hangs up the current call (`hangup`).
    pub fn hangup(&self) {
        self.must("hangup", "");
    }

    /// Answers the ringing call (`accept`), for phones without auto-answer.
    pub fn accept(&self) {
        self.must("accept", "");
    }

    /// Presses `digits` (0-9, *, #, A-D) in the current call as RFC 4733
    /// events (`sndcode`). Returns at once; baresip spaces them out (~200 ms
    /// per digit).
    pub fn send_dtmf(&self, digits: &str) {
        assert!(
            digits
                .chars()
                .all(|c| c.is_ascii_digit() || "*#ABCD".contains(c)),
            "not DTMF: {digits:?}"
        );
        self.must("sndcode", digits);
    }

    /// All ctrl_tcp events so far.
    pub fn events(&self) -> Vec<Event> {
        self.shared
            .state
            .lock()
            .expect("ctrl state lock")
            .events
            .clone()
    }

    fn count_events(&self, kind: &str) -> usize {
        self.shared
            .state
            .lock()
            .expect("ctrl state lock")
            .events
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    }

    /// Successful REGISTERs so far. Counted from the events, the status
    /// lines and the SIP trace, whichever saw most: the first one can happen
    /// before the harness connects ctrl_tcp, and baresip 1.0 reports a
    /// refresh that changed nothing neither as an event nor as a status
    /// line, only in the trace (a 200 answering a REGISTER's CSeq).
    pub fn registrations(&self) -> usize {
        let log = self.log();
        let from_log = log
            .lines()
            .filter(|l| l.contains("} 200 ") && l.contains("binding"))
            .count();
        let mut answered = std::collections::HashSet::new();
        let mut status_200 = false;
        for line in log.lines().map(str::trim) {
            if line.starts_with("SIP/2.0 ") {
                status_200 = line.starts_with("SIP/2.0 200 ");
            } else if line.ends_with(" SIP/2.0") {
                status_200 = false;
            } else if let Some(cseq) = line.strip_prefix("CSeq: ") {
                if status_200 && cseq.ends_with(" REGISTER") {
                    answered.insert(cseq.to_owned());
                }
            }
        }
        self.count_events("REGISTER_OK")
            .max(from_log)
            .max(answered.len())
    }

    /// Failed registrations (final non-2xx other than a digest challenge
    /// baresip could answer).
    pub fn registration_failures(&self) -> usize {
        let log = self.log();
        let from_log = log
            .lines()
            .filter(|l| strip_ansi(l).starts_with("reg: "))
            .count();
        self.count_events("REGISTER_FAIL").max(from_log)
    }

    /// Waits until baresip has registered at least once; `false` at once if a
    /// registration failed first (or baresip exited), or after `limit`.
    pub fn wait_registered(&self, limit: Duration) -> bool {
        self.poll(limit, || {
            if self.registrations() > 0 {
                Some(true)
            } else if self.registration_failures() > 0 {
                Some(false)
            } else {
                None
            }
        })
    }

    /// Waits until a registration has failed (e.g. 403 after a bad password).
    pub fn wait_register_failed(&self, limit: Duration) -> bool {
        self.poll(limit, || (self.registration_failures() > 0).then_some(true))
    }

    /// Waits for the next not-yet-consumed event of `kind` and consumes it.
    pub fn wait_event(&self, kind: &str, limit: Duration) -> Option<Event> {
        self.wait_nth(kind, limit, |events| {
            events.iter().filter(|e| e.kind == kind).cloned().collect()
        })
    }

    /// Calls that came in so far, one event each: the first event of every
    /// incoming call. (With `answermode=auto` baresip 1.0 sends no
    /// `CALL_INCOMING`; the first event is then `CALL_REMOTE_SDP`.)
    pub fn incoming_calls(&self) -> Vec<Event> {
        let st = self.shared.state.lock().expect("ctrl state lock");
        first_per_incoming_call(&st.events)
    }

    /// Waits for the next incoming call (ringing, or being auto-answered).
    pub fn wait_call_incoming(&self, limit: Duration) -> bool {
        self.wait_nth("<incoming>", limit, first_per_incoming_call)
            .is_some()
    }

    /// Consumes the next item of `list(events)` under cursor `key`.
    fn wait_nth(
        &self,
        key: &str,
        limit: Duration,
        list: impl Fn(&[Event]) -> Vec<Event>,
    ) -> Option<Event> {
        let mut found = None;
        self.poll(limit, || {
            let st = self.shared.state.lock().expect("ctrl state lock");
            let mut cursors = self.cursors.lock().expect("cursor lock");
            let seen = cursors.entry(key.to_string()).or_insert(0);
            let ev = list(&st.events).into_iter().nth(*seen)?;
            *seen += 1;
            found = Some(ev);
            Some(true)
        });
        found
    }

    /// Next call that reached the confirmed state (2xx + ACK).
    pub fn wait_call_established(&self, limit: Duration) -> bool {
        self.wait_event("CALL_ESTABLISHED", limit).is_some()
    }

    /// Next call that ended (BYE either way, a failure, or the source WAV ended).
    pub fn wait_call_closed(&self, limit: Duration) -> bool {
        self.wait_event("CALL_CLOSED", limit).is_some()
    }

    /// Polls `check` every 20 ms until it gives an answer, baresip dies (one
    /// last check), or `limit` passes.
    fn poll(&self, limit: Duration, mut check: impl FnMut() -> Option<bool>) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(answer) = check() {
                return answer;
            }
            if !self.is_running() || Instant::now() >= deadline {
                // Events may have arrived just before the exit.
                std::thread::sleep(Duration::from_millis(50));
                return check().unwrap_or(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The files baresip recorded what it heard into, oldest first.
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("dump-") && n.ends_with("-dec.wav"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// What the phone heard, all calls concatenated (8 kHz mono). Works
    /// during a call too (the WAV header is only finished at call end; the
    /// reader takes whatever samples are on disk).
    pub fn recorded_samples(&self) -> Vec<i16> {
        let mut out = Vec::new();
        for p in self.recordings() {
            match read_wav(&p) {
                Ok(w) => out.extend(w.samples),
                // The file can be a few bytes old (header not written yet).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
                Err(e) => panic!("recording {}: {e}", p.display()),
            }
        }
        out
    }

    /// Writes `recorded_samples()` as an 8 kHz mono WAV (to listen to).
    pub fn save_recording(&self, path: &Path) -> io::Result<()> {
        write_wav(path, 8000, &self.recorded_samples())
    }

    /// Everything baresip printed (stdout + stderr; with `sip_trace` also
    /// every SIP message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            kill(&mut child);
        }
        if let Ok(w) = self.writer.lock() {
            let _ = w.shutdown(Shutdown::Both);
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(300)..];
            eprintln!(
                "--- baresip (sip port {}, dir {}) log tail ---\n{}\n--- end baresip log ---",
                self.sip_port,
                self.dir.path().display(),
                tail.join("\n")
            );
        }
    }
}

/// SIGKILL by PID (std's `Child::kill`) and reap.
fn kill(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

fn first_per_incoming_call(events: &[Event]) -> Vec<Event> {
    let mut ids: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for e in events {
        let incoming = e.raw.get("direction").and_then(|d| d.as_str()) == Some("incoming");
        if incoming && !e.id.is_empty() && !ids.contains(&e.id.as_str()) {
            ids.push(&e.id);
            out.push(e.clone());
        }
    }
    out
}

fn aor_user(account: &str) -> String {
    let uri = account
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(uri, _)| uri)
        .unwrap_or(account);
    let rest = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))
        .unwrap_or(uri);
    match rest.split_once('@') {
        Some((userinfo, _)) => userinfo.split(':').next().unwrap_or("").to_string(),
        None => String::new(),
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... final byte in @..~
            for c2 in chars.by_ref() {
                if ('@'..='~').contains(&c2) && c2 != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads netstring-framed JSON from ctrl_tcp until EOF.
fn read_ctrl(mut stream: TcpStream, shared: &Ctrl) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    'outer: loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match next_netstring(&buf) {
                Ok(Some((payload, used))) => {
                    handle_ctrl_message(payload, shared);
                    buf.drain(..used);
                }
                Ok(None) => break,
                Err(()) => break 'outer,
            }
        }
        if buf.len() > MAX_FRAME + 16 {
            break;
        }
    }
    let mut st = shared.state.lock().expect("ctrl state lock");
    st.closed = true;
    shared.changed.notify_all();
}

/// `len:payload,` -> (payload, bytes used); `Ok(None)` when incomplete.
fn next_netstring(buf: &[u8]) -> Result<Option<(&[u8], usize)>, ()> {
    let Some(colon) = buf.iter().position(|&b| b == b':') else {
        return if buf.len() > 10 || !buf.iter().all(u8::is_ascii_digit) {
            Err(())
        } else {
            Ok(None)
        };
    };
    let len: usize = std::str::from_utf8(&buf[..colon])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(())?;
    if len > MAX_FRAME {
        return Err(());
    }
    let end = colon + 1 + len;
    if buf.len() < end + 1 {
        return Ok(None);
    }
    if buf[end] != b',' {
        return Err(());
    }
    Ok(Some((&buf[colon + 1..end], end + 1)))
}

fn handle_ctrl_message(payload: &[u8], shared: &Ctrl) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let mut st = shared.state.lock().expect("ctrl state lock");
    if v.get("response").and_then(|x| x.as_bool()) == Some(true) {
        let ok = v.get("ok").and_then(|x| x.as_bool()).unwrap_or(false);
        if st.responses.len() < MAX_EVENTS {
            st.responses.insert(s("token"), (ok, s("data")));
        }
    } else if v.get("event").and_then(|x| x.as_bool()) == Some(true) && st.events.len() < MAX_EVENTS
    {
        st.events.push(Event {
            kind: s("type"),
            class: s("class"),
            peer_uri: s("peeruri"),
            id: s("id"),
            param: s("param"),
            at: Instant::now(),
            raw: v.clone(),
        });
    }
    shared.changed.notify_all();
}

/// A block of `n` consecutive ports, free on 127.0.0.1 for UDP and TCP a
/// moment ago, starting at an even port in 10000..20000: below Linux's
/// ephemeral range (so no OS-picked port lands in it later), below the
/// gateway's default RTP range (20000-29999) and the per-process RTP windows
/// the gateway tests use (30000 and up).
pub fn free_port_block(n: u16) -> u16 {
    static SALT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ SALT.fetch_add(0x9e37_79b9, Ordering::Relaxed);
    for _ in 0..500 {
        // xorshift: cheap spread over the window without a rand dependency.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let base = 10_000 + ((x % ((10_000 - u64::from(n)) / 2)) * 2) as u16;
        let mut held = Vec::new();
        let ok = (base..base + n).all(|p| {
            let a: SocketAddr = ([127, 0, 0, 1], p).into();
            match (UdpSocket::bind(a), TcpListener::bind(a)) {
                (Ok(u), Ok(t)) => {
                    held.push((u, t));
                    true
                }
                _ => false,
            }
        });
        if ok {
            return base;
        }
    }
    panic!("no free block of {n} ports on 127.0.0.1 in 10000..20000");
}

/// Root mean square of 16-bit samples (0.0 for none). Silence is ~0; a
/// full-scale sine is ~23170; a -6 dBFS sine ~11600.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Rough frequency of a pure tone from its zero crossings (Hz), e.g. to tell
/// a 440 Hz leg from a 1000 Hz one. Ignores near-silent samples.
pub fn tone_frequency(samples: &[i16], rate: u32) -> f64 {
    let mut crossings = 0usize;
    let mut last = 0i16;
    for &s in samples {
        if s.unsigned_abs() < 200 {
            continue;
        }
        if last != 0 && (last < 0) != (s < 0) {
            crossings += 1;
        }
        last = s;
    }
    if samples.is_empty() {
        return 0.0;
    }
    crossings as f64 / 2.0 / (samples.len() as f64 / f64::from(rate))
}

/// A decoded 16-bit PCM WAV.
#[derive(Clone, Debug)]
pub struct Wav {
    pub rate: u32,
    pub channels: u16,
    pub samples: Vec<i16>,
}

/// Reads a 16-bit PCM WAV. Tolerates a data chunk whose size was never
/// filled in (0, 0xFFFFFFFF or beyond the end: a file still being written or
/// whose writer was killed) by taking the rest of the file.
pub fn read_wav(path: &Path) -> io::Result<Wav> {
    let bytes = std::fs::read(path)?;
    parse_wav(&bytes)
}

pub fn parse_wav(bytes: &[u8]) -> io::Result<Wav> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let eof = |m: &str| io::Error::new(io::ErrorKind::UnexpectedEof, m.to_string());
    if bytes.len() < 12 {
        return Err(eof("shorter than a RIFF header"));
    }
    if &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("not RIFF/WAVE"));
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut pos = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32_at(pos + 4) as usize;
        let body = pos + 8;
        if id == b"fmt " {
            if body + 16 > bytes.len() {
                return Err(eof("truncated fmt chunk"));
            }
            fmt = Some((
                u16_at(body),
                u16_at(body + 2),
                u32_at(body + 4),
                u16_at(body + 14),
            ));
        } else if id == b"data" {
            let (format, channels, rate, bits) = fmt.ok_or_else(|| bad("data before fmt"))?;
            // 1 = PCM, 0xFFFE = extensible (libsndfile may use it; PCM subtype assumed).
            if !(format == 1 || format == 0xFFFE) || bits != 16 {
                return Err(bad(&format!(
                    "not 16-bit PCM (format {format}, {bits} bits)"
                )));
            }
            let avail = bytes.len() - body;
            let len = if size == 0 || size > avail {
                avail
            } else {
                size
            };
            let samples = bytes[body..body + (len & !1)]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return Ok(Wav {
                rate,
                channels,
                samples,
            });
        }
        pos = body + size + (size & 1);
    }
    Err(eof("no data chunk"))
}

/// Writes a 16-bit PCM mono WAV.
pub fn write_wav(path: &Path, rate: u32, samples: &[i16]) -> io::Result<()> {
    let data_len = u32::try_from(samples.len() * 2)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "WAV too long"))?;
    let mut w = BufWriter::new(File::create(path)?);
    w.write_all(b"RIFF")?;
    w.write_all(&(36 + data_len).to_le_bytes())?;
    w.write_all(b"WAVEfmt ")?;
    w.write_all(&16u32.to_le_bytes())?;
    w.write_all(&1u16.to_le_bytes())?; // PCM
    w.write_all(&1u16.to_le_bytes())?; // mono
    w.write_all(&rate.to_le_bytes())?;
    w.write_all(&(rate * 2).to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&16u16.to_le_bytes())?;
    w.write_all(b"data")?;
    w.write_all(&data_len.to_le_bytes())?;
    for s in samples {
        w.write_all(&s.to_le_bytes())?;
    }
    w.flush()
}

/// Writes an 8 kHz mono sine of `freq` Hz, `secs` long, at `amplitude`
/// (peak, e.g. 8000): a microphone for a phone that must be told apart.
pub fn write_tone_wav(path: &Path, freq: f64, secs: f64, amplitude: i16) -> io::Result<()> {
    let n = (secs * 8000.0) as usize;
    let samples: Vec<i16> = (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            (f64::from(amplitude) * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect();
    write_wav(path, 8000, &samples)
}
