//! Start-up and shutdown of the whole gateway: loads prompts and plans,
//! binds SIP, RTP and HTTP, wires the endpoint to the router, and on a stop
//! signal drains and hangs up calls before exiting.
//!
//! Everything the process owns is started here so that integration tests
//! and `main` run exactly the same code.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use tracing::{error, info, warn};

use super::admin::Admin;
use super::{Router, Services};
use crate::config::Config;
use crate::dialplan::{self, DialplanStore};
use crate::media::{MediaConfig, MediaEngine, PromptLibrary};
use crate::ops::http::{HttpState, Readiness};
use crate::ops::metrics as m;
use crate::ops::records::RecordWriter;
use crate::sdp::Codec;
use crate::sip::endpoint::{Endpoint, EndpointConfig, EndpointSink};
use crate::sip::guard::Guard;
use crate::sip::tls::TlsContext;
use crate::sip::transaction::Timers;
use crate::sip::transport::{Flow, Peer, Sink, TransportOptions, Transports};

pub struct Gateway {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
    pub http: SocketAddr,
    pub router: Arc<Router>,
    pub endpoint: Arc<Endpoint>,
    pub readiness: Arc<Readiness>,
    writer: Option<RecordWriter>,
    http_stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Loads and validates the plans; the gateway refuses to start on errors,
/// which are logged with file, line and column as `check` prints them.
pub fn open_plans(cfg: &Config) -> anyhow::Result<DialplanStore> {
    let dir = cfg.dialplan_dir();
    match DialplanStore::open(&dir, &cfg.queue_names()) {
        Ok((store, warnings)) => {
            for w in warnings {
                warn!("{w}");
            }
            Ok(store)
        }
        Err(errors) => {
            for e in &errors {
                error!("{e}");
            }
            bail!(
                "{} error(s) in the dialplans under {}",
                errors.len(),
                dir.display()
            )
        }
    }
}

impl Gateway {
    pub async fn start(cfg: Config) -> anyhow::Result<Gateway> {
        let readiness = Arc::new(Readiness::new());
        let metrics = crate::ops::metrics::install();
        let plans = open_plans(&cfg)?;
        // After the recorder: the guard takes its counters' handles once.
        let guard = Arc::new(Guard::new(&cfg.guard, &cfg.trunks.allow));
        readiness.set_plans_loaded(true);
        // Every family has its series from the first scrape, one per
        // configured queue and loaded plan node.
        crate::ops::metrics::set_scope(crate::ops::metrics::Scope {
            queues: cfg.queues.iter().map(|q| q.name.clone()).collect(),
            plans: super::plan_nodes(&plans.current()),
        });
        let (records, writer) = crate::ops::records::start(&cfg.records(), Some(readiness.clone()))
            .await
            .context("opening call-record storage")?;
        let prompt_dir = cfg.dialplan_dir().join("prompts");
        let prompts = Arc::new(
            PromptLibrary::load_dir(&prompt_dir)
                .with_context(|| format!("loading prompts from {}", prompt_dir.display()))?,
        );
        let codecs: Vec<Codec> = cfg
            .media
            .codecs
            .iter()
            .filter_map(|c| match c.to_ascii_uppercase().as_str() {
                "PCMU" => Some(Codec::Pcmu),
                "PCMA" => Some(Codec::Pcma),
                _ => None,
            })
            .collect();
        let media = MediaEngine::start(
            MediaConfig {
                bind_ip: cfg.media.bind,
                ports: (cfg.media.rtp_ports.low, cfg.media.rtp_ports.high),
                rtp_timeout: Duration::from_secs(cfg.media.rtp_timeout),
                realtime_priority: cfg.media.realtime_priority,
                strict_rtp: cfg.media.strict_rtp,
                behind_after: match cfg.sip.overload_media_late_ms {
                    0 => MediaConfig::default().behind_after,
                    ms => Duration::from_millis(ms),
                },
                workers: match cfg.media.workers {
                    0 => MediaConfig::default().workers,
                    n => n,
                },
                ..MediaConfig::default()
            },
            prompts.clone(),
        )
        .context("starting the media engine")?;
        let (acd, operators) = if cfg.queues.is_empty() {
            (None, None)
        } else {
            let mut core = crate::acd::Acd::new(cfg.queues.clone(), cfg.operators.clone())
                .map_err(|e| anyhow::anyhow!("queues/operators: {e}"))?;
            seed_from_history(&mut core, &cfg).await;
            let handle = super::queue::AcdHandle::start(core, records.clone());
            let realm = cfg
                .sip
                .public_host
                .clone()
                .unwrap_or_else(|| "conmutador".into());
            let ops = Arc::new(
                super::queue::Operators::new(
                    &cfg.operators,
                    &realm,
                    &cfg.sip.auth_algorithms,
                    handle.clone(),
                    guard.clone(),
                )
                .with_tls_required(cfg.tls.require_for_operators),
            );
            let sweeper = ops.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    sweeper.sweep();
                }
            });
            (Some(handle), Some(ops))
        };
        let services = Arc::new(Services {
            media,
            prompts: RwLock::new(prompts),
            swap: RwLock::new(()),
            plans,
            call: Arc::new(super::core::CallConfig {
                codecs,
                media_ip: cfg.media.public_ip.unwrap_or(cfg.media.bind),
                ring_delay: Duration::from_millis(cfg.calls.ring_ms),
                user_agent: cfg.sip.user_agent.clone(),
                retry_after: cfg.sip.retry_after,
                hold_music: Arc::new(crate::media::Prompt::hold_music("moh")),
                has_acd: acd.is_some(),
                session_min_se: cfg.calls.session_min_se,
                session_expires: cfg.calls.session_expires,
                srtp: cfg.media.srtp_mode(),
                srtp_operators: cfg.media.srtp_operators_mode(),
                record_pause_code: cfg.recording.pause_code.clone(),
                record_resume_code: cfg.recording.resume_code.clone(),
                queues: cfg.queues.iter().map(|q| q.name.clone()).collect(),
                operators: cfg.operators.iter().map(|o| o.id.clone()).collect(),
            }),
            records,
            acd,
            operators,
            transfer_proxy: cfg.calls.transfer_proxy_uri(),
            guard: guard.clone(),
            places: super::places::CallerPlaces::new(cfg.guard.caller_places),
            recorder: start_recorder(&cfg),
            record_queues: cfg.recording.queues.clone(),
        });
        let router = Router::new(&cfg, services);
        let tls = if cfg.tls.enabled() {
            let ctx = TlsContext::load(
                cfg.tls_files(),
                Duration::from_secs(cfg.tls.handshake_timeout),
            )
            .context("loading the TLS certificate, key and CA files")?;
            Some(Arc::new(ctx))
        } else {
            None
        };
        let (transports, listeners) = Transports::bind(&TransportOptions {
            listen: cfg.sip.listen.clone(),
            udp: cfg.sip.udp,
            tcp: cfg.sip.tcp,
            max_tcp_connections: cfg.sip.max_tcp_connections,
            max_tcp_message: cfg.sip.max_tcp_message,
            tcp_idle_timeout: Duration::from_secs(cfg.sip.tcp_idle_timeout),
            tls,
            tls_listen: cfg.tls.listen.clone(),
            max_tls_connections: cfg.tls.max_connections,
        })
        .await
        .context("binding SIP listeners")?;
        let endpoint = Endpoint::new(
            EndpointConfig {
                timers: Timers {
                    t1: cfg.sip.t1(),
                    t2: cfg.sip.t2(),
                    t4: cfg.sip.t4(),
                },
                max_transactions: cfg.sip.max_transactions,
                user_agent: cfg.sip.user_agent.clone(),
                retry_after: cfg.sip.retry_after,
                public_host: cfg.sip.public_host.clone(),
                guard: Some(guard.clone()),
            },
            transports.clone(),
            router.clone(),
        );
        transports.start(
            listeners,
            Arc::new(GatewaySink {
                endpoint: EndpointSink(Arc::downgrade(&endpoint)),
                operators: router.services.operators.clone(),
            }),
        );
        // Blocks run out by themselves: keep their gauge true.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                guard.publish();
            }
        });
        if let (Some(ops), secs @ 1..) = (
            router.services.operators.clone(),
            cfg.sip.operator_ping_secs,
        ) {
            let ep = endpoint.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(secs));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    ops.ping_all(&ep);
                }
            });
        }
        let probe = router.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(super::load::PROBE_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let due = tick.tick().await.into_std();
                let now = std::time::Instant::now();
                probe.load.probe(due, now);
                metrics::gauge!(m::SIGNALLING_LAG_SECONDS).set(probe.load.lag(now).as_secs_f64());
                metrics::gauge!(m::MEDIA_BEHIND_RATIO).set(probe.services.media.behind_share());
            }
        });
        // Whether each queue is open now, from the plans' office hours.
        let open = router.clone();
        let queue_names: Vec<String> = cfg.queues.iter().map(|q| q.name.clone()).collect();
        let export_open = move || {
            let plans = open.services.plans();
            let now_open = crate::dialplan::open::open_queues(plans.plans(), chrono::Utc::now());
            for q in &queue_names {
                metrics::gauge!(m::QUEUE_OPEN, "queue" => q.clone())
                    .set(f64::from(u8::from(now_open.contains(q))));
            }
        };
        // Right before the first scrape can happen, then every second.
        export_open();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                export_open();
            }
        });
        readiness.set_listening(true);

        let http_listener = tokio::net::TcpListener::bind(cfg.http.listen)
            .await
            .with_context(|| format!("binding HTTP on {}", cfg.http.listen))?;
        let http = http_listener.local_addr()?;
        let backend = Arc::new(Admin {
            router: router.clone(),
            readiness: readiness.clone(),
        });
        let state = HttpState::new(metrics, readiness.clone(), &cfg.http.admin_token, backend)
            .with_viewer_token(&cfg.http.viewer_token);
        let (http_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = crate::ops::http::serve(http_listener, state, shutdown).await {
                error!(error = %e, "HTTP listener failed");
            }
        });
        if cfg.dialplans.watch {
            let r = router.clone();
            tokio::spawn(async move { watch_plans(r).await });
        }
        Ok(Gateway {
            udp: transports.udp_addrs(),
            tcp: transports.tcp_addrs(),
            tls: transports.tls_addrs(),
            http,
            router,
            endpoint,
            readiness,
            writer: Some(writer),
            http_stop: Some(http_stop),
        })
    }

    /// Re-reads the plans; on errors the old plans stay in force. Calls in
    /// progress keep the plan they started with.
    pub fn reload_plans(&self) -> Result<Vec<dialplan::Diagnostic>, Vec<dialplan::Diagnostic>> {
        self.router.services.reload()
    }

    /// Re-reads the TLS certificate, key and CA files; on errors the old
    /// ones stay in force (logged). Open connections keep theirs.
    pub fn reload_tls(&self) -> anyhow::Result<()> {
        match self.endpoint.transports.tls() {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
    }

    /// Stops admitting calls, asks every call to hang up and waits up to
    /// `grace` for them to finish.
    pub async fn shutdown(&mut self, grace: Duration) {
        self.router.drain();
        self.readiness.set_draining(true);
        self.router.hang_up_all();
        let deadline = tokio::time::Instant::now() + grace;
        while self.router.active_calls() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(stop) = self.http_stop.take() {
            let _ = stop.send(());
        }
        // The queue events of the calls just ended (REMOVED, COMPLETE*) are
        // made by the ACD task from events it may not have handled yet; a
        // question answered after them means they are in the writer's
        // channel before it closes.
        if let Some(acd) = &self.router.services.acd {
            let _ = tokio::time::timeout(Duration::from_secs(2), acd.operators()).await;
        }
        // Every buffered record reaches storage before the process exits.
        if let Some(w) = self.writer.take() {
            let report = w.close().await;
            info!(
                written = report.written,
                dropped = report.dropped,
                "call records flushed"
            );
        }
    }
}

/// What the transports report: messages go to the endpoint; a closed TCP
/// or TLS connection goes to the operator registry, which logs out the
/// phones registered over it (nothing reaches them through it any more,
/// and the gateway never opens a connection to a phone by itself).
struct GatewaySink {
    endpoint: EndpointSink,
    operators: Option<Arc<super::queue::Operators>>,
}

impl Sink for GatewaySink {
    fn on_message(&self, data: bytes::Bytes, peer: Peer) {
        self.endpoint.on_message(data, peer);
    }

    fn accepts(&self, addr: SocketAddr) -> bool {
        self.endpoint.accepts(addr)
    }

    fn on_closed(&self, flow: Flow) {
        if let Some(ops) = &self.operators {
            ops.flow_closed(flow);
        }
    }
}

/// `conmutador run`: starts the gateway and serves until SIGINT/SIGTERM.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let mut gw = Gateway::start(cfg).await?;
    let udp: Vec<String> = gw.udp.iter().map(ToString::to_string).collect();
    let tcp: Vec<String> = gw.tcp.iter().map(ToString::to_string).collect();
    let tls: Vec<String> = gw.tls.iter().map(ToString::to_string).collect();
    let http = gw.http.to_string();
    // One machine-readable line, so scripts and tests can find ports picked by the OS.
    println!(
        "listening sip_udp={} sip_tcp={} sip_tls={} http={}",
        udp.join(","),
        tcp.join(","),
        tls.join(","),
        http
    );
    info!(udp = ?udp, tcp = ?tcp, tls = ?tls, http = %http, "conmutador ready");
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => {
                let _ = gw.reload_plans();
                let _ = gw.reload_tls();
            }
        }
    }
    info!("stopping: hanging up calls");
    gw.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

/// Polls the dialplan folder and reloads when a file changed. Polling (every
/// two seconds) rather than inotify keeps it working on every filesystem,
/// including bind mounts in containers.
async fn watch_plans(router: Arc<Router>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        if router.services.plans.changed_on_disk() {
            let _ = router.services.reload();
        }
    }
}

/// How far back stored queue events seed the estimator and statistics.
const HISTORY_WINDOW: chrono::Duration = chrono::Duration::days(7);

/// Rebuilds each queue's statistics from stored queue events, so a restart
/// keeps what the queues learnt. A storage error only costs the history.
async fn seed_from_history(core: &mut crate::acd::Acd, cfg: &Config) {
    let records = cfg.records();
    let thresholds: Vec<(String, Duration)> = cfg
        .queues
        .iter()
        .map(|q| (q.name.clone(), q.service_level_threshold))
        .collect();
    let since = chrono::Utc::now() - HISTORY_WINDOW;
    let rebuilt = tokio::task::spawn_blocking(move || {
        crate::ops::records::rebuild_queue_stats(&records, since, |name| {
            thresholds
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| *t)
                .unwrap_or(Duration::from_secs(60))
        })
    })
    .await;
    let seeds = match rebuilt {
        Ok(Ok(seeds)) => seeds,
        Ok(Err(e)) => {
            warn!(error = %e, "queue history not read; statistics start empty");
            return;
        }
        Err(_) => return,
    };
    for (name, s) in seeds {
        let history = crate::acd::QueueHistory {
            answered: s.answered,
            abandoned: s.abandoned,
            answered_within_threshold: s.answered_within_threshold,
            handle_times: s.handle_times.into_iter().collect(),
            answered_waits: s.answered_waits.into_iter().collect(),
            abandon_waits: s.abandon_waits.into_iter().collect(),
            prediction_errors: s
                .prediction_errors_ms
                .iter()
                .map(|ms| *ms as f64 / 1000.0)
                .collect(),
        };
        info!(queue = %name, answered = history.answered, abandoned = history.abandoned, "queue history restored");
        core.seed(&name, &history);
    }
}

/// The recorder (and its retention sweep) runs whenever its directory can
/// be made; without it calls are simply not recorded.
fn start_recorder(cfg: &Config) -> Option<Arc<crate::media::record::Recorder>> {
    let rc = crate::media::record::RecorderConfig {
        dir: cfg.recording_dir(),
        retention: if cfg.recording.retention_days == 0 {
            Duration::MAX
        } else {
            Duration::from_secs(u64::from(cfg.recording.retention_days) * 86_400)
        },
        min_free_bytes: cfg.recording.min_free_mb.saturating_mul(1 << 20),
    };
    match crate::media::record::Recorder::start(rc) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, dir = %cfg.recording_dir().display(), "recording is off: its directory cannot be made");
            None
        }
    }
}
