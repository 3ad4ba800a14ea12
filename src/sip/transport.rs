//! SIP transports: UDP sockets, TCP and TLS connections, as tokio tasks.
//!
//! This room only moves bytes. It frames TCP and TLS streams into messages
//! (one framer, capped at the configured size; the TLS handshake and
//! settings live in `tls.rs`), hands every datagram or
//! framed message to a [`Sink`] together with the [`Peer`] it came from, and
//! sends bytes back to a `Peer` over the same flow. A TLS connection to a
//! peer that has none yet is opened on the first send to it
//! ([`Transports::tls_flow_to`]); what is sent meanwhile waits in the
//! connection's queue. It knows nothing of
//! transactions or calls. Sends never wait: a full socket or a slow TCP
//! peer loses the message (counted), and the transaction layer's
//! retransmissions cover UDP losses. Once a second it asks the kernel how
//! many datagrams it dropped at the UDP sockets (`ops::kernel`), since a
//! full receive buffer is otherwise seen only as a peer's retransmission.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::message::{Frame, FrameError, StreamFramer};
use super::tls::TlsContext;
use crate::ops::kernel::DropWatch;
use crate::ops::metrics as m;

/// Which flow a message came on, so answers go back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flow {
    Udp { socket: usize },
    Tcp { conn: u64 },
    Tls { conn: u64 },
}

/// The far end of a message: the flow plus the address it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub flow: Flow,
    pub addr: SocketAddr,
}

impl Peer {
    pub fn reliable(&self) -> bool {
        matches!(self.flow, Flow::Tcp { .. } | Flow::Tls { .. })
    }
    pub fn is_tls(&self) -> bool {
        matches!(self.flow, Flow::Tls { .. })
    }
    pub fn transport_name(&self) -> &'static str {
        match self.flow {
            Flow::Udp { .. } => "UDP",
            Flow::Tcp { .. } => "TCP",
            Flow::Tls { .. } => "TLS",
        }
    }
}

/// Where received messages go. Called on the receiving task: keep it short.
pub trait Sink: Send + Sync + 'static {
    fn on_message(&self, data: Bytes, peer: Peer);
    /// Whether a TCP connection from `addr` may stay open (a blocked
    /// source's is closed at accept).
    fn accepts(&self, _addr: SocketAddr) -> bool {
        true
    }
    /// A TCP or TLS connection ended: nothing more goes out on `flow`.
    fn on_closed(&self, _flow: Flow) {}
}

/// Capacity of one TCP connection's outgoing queue, in messages.
const TCP_SEND_QUEUE: usize = 256;
/// How long a connection whose framing is lost may take to send the
/// answers already queued before it closes (a peer that stopped reading
/// must not hold it open).
const TCP_FLUSH_LIMIT: Duration = Duration::from_secs(2);
/// Largest UDP datagram we read; bigger ones are truncated by the kernel and
/// then fail Content-Length checks.
const UDP_BUFFER: usize = 65_535;

pub struct Transports {
    udp: Vec<Arc<UdpSocket>>,
    tcp_local: Vec<SocketAddr>,
    tcp: Mutex<HashMap<u64, mpsc::Sender<Bytes>>>,
    next_conn: AtomicU64,
    max_tcp: usize,
    max_tcp_message: usize,
    tcp_idle: Duration,
    tls: Option<Arc<TlsContext>>,
    tls_local: Vec<SocketAddr>,
    tls_conns: Mutex<HashMap<u64, TlsConn>>,
    max_tls: usize,
    /// Where messages from connections we open go; set by [`Transports::start`].
    sink: std::sync::OnceLock<Arc<dyn Sink>>,
}

/// One TLS connection in the table, accepted or opened by us.
struct TlsConn {
    tx: mpsc::Sender<Bytes>,
    remote: SocketAddr,
    /// Our address as Via and Contact give it: the TLS listener's.
    local: Option<SocketAddr>,
}

pub struct TransportOptions {
    pub listen: Vec<SocketAddr>,
    pub udp: bool,
    pub tcp: bool,
    pub max_tcp_connections: usize,
    pub max_tcp_message: usize,
    pub tcp_idle_timeout: Duration,
    /// TLS settings; None: no TLS at all. Framing and idle limits are TCP's.
    pub tls: Option<Arc<TlsContext>>,
    pub tls_listen: Vec<SocketAddr>,
    pub max_tls_connections: usize,
}

/// The stream listeners [`Transports::bind`] opened, for [`Transports::start`].
pub struct Listeners {
    tcp: Vec<TcpListener>,
    tls: Vec<TcpListener>,
}

impl Transports {
    /// Binds every socket; a port of 0 picks a free one (the same for UDP and
    /// TCP on one address when both are enabled, so tests can use port 0).
    pub async fn bind(opts: &TransportOptions) -> io::Result<(Arc<Transports>, Listeners)> {
        let mut udp = Vec::new();
        let mut listeners = Vec::new();
        let mut tcp_local = Vec::new();
        for addr in &opts.listen {
            let (u, t) = bind_pair(*addr, opts.udp, opts.tcp).await?;
            if let Some(u) = u {
                udp.push(Arc::new(u));
            }
            if let Some(t) = t {
                tcp_local.push(t.local_addr()?);
                listeners.push(t);
            }
        }
        let mut tls_listeners = Vec::new();
        let mut tls_local = Vec::new();
        if opts.tls.is_some() {
            for addr in &opts.tls_listen {
                let l = TcpListener::bind(addr).await?;
                tls_local.push(l.local_addr()?);
                tls_listeners.push(l);
            }
        }
        let t = Transports {
            udp,
            tcp_local,
            tcp: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            max_tcp: opts.max_tcp_connections,
            max_tcp_message: opts.max_tcp_message,
            tcp_idle: opts.tcp_idle_timeout,
            tls: opts.tls.clone(),
            tls_local,
            tls_conns: Mutex::new(HashMap::new()),
            max_tls: opts.max_tls_connections,
            sink: std::sync::OnceLock::new(),
        };
        let listeners = Listeners {
            tcp: listeners,
            tls: tls_listeners,
        };
        Ok((Arc::new(t), listeners))
    }

    /// Local addresses of the UDP sockets, in configuration order.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp_local.clone()
    }

    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.tls_local.clone()
    }

    /// The TLS settings, for a reload.
    pub fn tls(&self) -> Option<&Arc<TlsContext>> {
        self.tls.as_ref()
    }

    /// The local address a flow is bound to, for Via and Contact.
    pub fn local_addr(&self, flow: Flow) -> Option<SocketAddr> {
        match flow {
            Flow::Udp { socket } => self.udp.get(socket).and_then(|s| s.local_addr().ok()),
            Flow::Tcp { .. } => self.tcp_local.first().copied(),
            Flow::Tls { conn } => lock(&self.tls_conns)
                .get(&conn)
                .and_then(|c| c.local)
                .or_else(|| self.tls_local.first().copied()),
        }
    }

    /// Where to send a new request for `uri` (a static operator, a transfer
    /// target): over TLS for `sips:` or `;transport=tls` (port 5061 by
    /// default, reusing an open connection to that address), else UDP
    /// (5060). IP literals only: there is no DNS here.
    pub fn peer_for_uri(self: &Arc<Self>, uri: &str) -> Option<Peer> {
        let parsed = super::Uri::parse(uri).ok()?;
        let sip = parsed.as_sip()?;
        let ip: std::net::IpAddr = match &sip.host {
            super::Host::V4(a) => (*a).into(),
            super::Host::V6(a) => (*a).into(),
            super::Host::Domain(d) => d.parse().ok()?,
        };
        let tls = sip.secure
            || sip
                .transport()
                .is_some_and(|t| t.eq_ignore_ascii_case("tls"));
        if tls {
            let addr = SocketAddr::new(ip, sip.port.unwrap_or(5061));
            let name = super::tls::server_name(&sip.host.to_string())?;
            let flow = self.tls_flow_to(addr, name)?;
            return Some(Peer { flow, addr });
        }
        let addr = SocketAddr::new(ip, sip.port.unwrap_or(5060));
        let flow = self.udp_flow_for(addr)?;
        Some(Peer { flow, addr })
    }

    /// A TLS flow to `addr`: an open connection to it, or a new one that
    /// connects, verifies the peer's certificate for `name` against the CA
    /// file and then sends what was queued meanwhile. None without a CA
    /// file, before [`Transports::start`], or with the table full. A
    /// connection that fails is dropped with its queue (the transaction
    /// layer's timers report the loss).
    pub fn tls_flow_to(
        self: &Arc<Self>,
        addr: SocketAddr,
        name: ServerName<'static>,
    ) -> Option<Flow> {
        let tls = self.tls.clone()?;
        if !tls.can_connect() {
            warn!(%addr, "no tls.ca configured: cannot open a TLS connection");
            return None;
        }
        let sink = self.sink.get()?.clone();
        let local = self
            .tls_local
            .iter()
            .find(|l| l.is_ipv4() == addr.is_ipv4())
            .copied();
        let (tx, rx) = mpsc::channel(TCP_SEND_QUEUE);
        let conn = {
            let mut table = lock(&self.tls_conns);
            if let Some((id, _)) = table.iter().find(|(_, c)| c.remote == addr) {
                return Some(Flow::Tls { conn: *id });
            }
            if table.len() >= self.max_tls {
                warn!(%addr, "TLS connection table full: not connecting");
                return None;
            }
            let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
            table.insert(
                conn,
                TlsConn {
                    tx,
                    remote: addr,
                    local,
                },
            );
            metrics::gauge!(m::SIP_TLS_CONNECTIONS).set(table.len() as f64);
            conn
        };
        let me = self.clone();
        tokio::spawn(async move {
            let peer = Peer {
                flow: Flow::Tls { conn },
                addr,
            };
            if let Some(stream) = tls.connect(addr, name).await {
                let (rd, wr) = tokio::io::split(stream);
                me.connection(rd, wr, peer, rx, sink.clone()).await;
            }
            me.forget(peer.flow);
            sink.on_closed(peer.flow);
        });
        Some(Flow::Tls { conn })
    }

    /// Takes a connection out of the table: nothing more is sent on it.
    fn forget(&self, flow: Flow) {
        match flow {
            Flow::Tcp { conn } => {
                let mut table = lock(&self.tcp);
                table.remove(&conn);
                metrics::gauge!(m::SIP_TCP_CONNECTIONS).set(table.len() as f64);
            }
            Flow::Tls { conn } => {
                let mut table = lock(&self.tls_conns);
                table.remove(&conn);
                metrics::gauge!(m::SIP_TLS_CONNECTIONS).set(table.len() as f64);
            }
            Flow::Udp { .. } => {}
        }
    }

    /// A UDP flow for sending a new request to `addr` (same address family).
    pub fn udp_flow_for(&self, addr: SocketAddr) -> Option<Flow> {
        self.udp
            .iter()
            .position(|s| {
                s.local_addr()
                    .map(|l| l.is_ipv4() == addr.is_ipv4())
                    .unwrap_or(false)
            })
            .map(|socket| Flow::Udp { socket })
    }

    /// Sends without waiting. Returns false when the message was dropped.
    pub fn send(&self, peer: &Peer, data: Bytes) -> bool {
        let ok = match peer.flow {
            Flow::Udp { socket } => match self.udp.get(socket) {
                Some(s) => match s.try_send_to(&data, peer.addr) {
                    Ok(_) => true,
                    Err(e) => {
                        debug!(error = %e, to = %peer.addr, "udp send failed");
                        false
                    }
                },
                None => false,
            },
            Flow::Tcp { conn } => {
                let tx = lock(&self.tcp).get(&conn).cloned();
                match tx {
                    Some(tx) => tx.try_send(data).is_ok(),
                    None => false,
                }
            }
            Flow::Tls { conn } => {
                let tx = lock(&self.tls_conns).get(&conn).map(|c| c.tx.clone());
                match tx {
                    Some(tx) => tx.try_send(data).is_ok(),
                    None => false,
                }
            }
        };
        if !ok {
            metrics::counter!(m::SIP_SEND_FAILURES_TOTAL, "transport" => peer.transport_name())
                .increment(1);
        }
        ok
    }

    /// Starts the receive tasks. They run until the runtime shuts down.
    pub fn start(self: &Arc<Self>, listeners: Listeners, sink: Arc<dyn Sink>) {
        let _ = self.sink.set(sink.clone());
        for (i, sock) in self.udp.iter().enumerate() {
            let sock = sock.clone();
            let sink = sink.clone();
            tokio::spawn(async move { udp_loop(i, sock, sink).await });
        }
        let udp = self.udp.clone();
        tokio::spawn(async move {
            let mut watches: Vec<DropWatch> = udp.iter().map(|_| DropWatch::default()).collect();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let new: u64 = udp
                    .iter()
                    .zip(&mut watches)
                    .map(|(s, w)| w.new_drops(s.as_raw_fd()))
                    .sum();
                metrics::counter!(m::SIP_UDP_KERNEL_DROPS_TOTAL).increment(new);
            }
        });
        for l in listeners.tcp {
            let me = self.clone();
            let sink = sink.clone();
            tokio::spawn(async move { me.accept_loop(l, sink).await });
        }
        for l in listeners.tls {
            let me = self.clone();
            let sink = sink.clone();
            tokio::spawn(async move { me.tls_accept_loop(l, sink).await });
        }
    }

    /// Accepts TLS connections: the guard and the connection cap are asked
    /// before the handshake, so a blocked source or a flood of connections
    /// costs no cryptography.
    async fn tls_accept_loop(self: Arc<Self>, listener: TcpListener, sink: Arc<dyn Sink>) {
        let Some(tls) = self.tls.clone() else { return };
        let local = listener.local_addr().ok();
        loop {
            let (stream, addr) = admitted(&listener, &sink, "tls").await;
            let (tx, rx) = mpsc::channel(TCP_SEND_QUEUE);
            let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
            {
                let mut table = lock(&self.tls_conns);
                if table.len() >= self.max_tls {
                    metrics::counter!(m::SIP_TLS_REFUSED_TOTAL).increment(1);
                    drop(stream);
                    continue;
                }
                table.insert(
                    conn,
                    TlsConn {
                        tx,
                        remote: addr,
                        local,
                    },
                );
                metrics::gauge!(m::SIP_TLS_CONNECTIONS).set(table.len() as f64);
            }
            let me = self.clone();
            let sink = sink.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let peer = Peer {
                    flow: Flow::Tls { conn },
                    addr,
                };
                let _ = stream.set_nodelay(true);
                if let Some(stream) = tls.accept(stream, addr).await {
                    let (rd, wr) = tokio::io::split(stream);
                    me.connection(rd, wr, peer, rx, sink.clone()).await;
                }
                me.forget(peer.flow);
                sink.on_closed(peer.flow);
            });
        }
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener, sink: Arc<dyn Sink>) {
        loop {
            let (stream, addr) = admitted(&listener, &sink, "tcp").await;
            let (tx, rx) = mpsc::channel(TCP_SEND_QUEUE);
            let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
            {
                let mut table = lock(&self.tcp);
                if table.len() >= self.max_tcp {
                    metrics::counter!(m::SIP_TCP_REFUSED_TOTAL).increment(1);
                    drop(stream);
                    continue;
                }
                table.insert(conn, tx);
                metrics::gauge!(m::SIP_TCP_CONNECTIONS).set(table.len() as f64);
            }
            let me = self.clone();
            let sink = sink.clone();
            tokio::spawn(async move {
                let peer = Peer {
                    flow: Flow::Tcp { conn },
                    addr,
                };
                let _ = stream.set_nodelay(true);
                let (rd, wr) = stream.into_split();
                me.connection(rd, wr, peer, rx, sink.clone()).await;
                me.forget(peer.flow);
                sink.on_closed(peer.flow);
            });
        }
    }

    /// Serves one TCP or TLS connection: a writer task drains its queue,
    /// this loop frames what arrives.
    async fn connection<R, W>(
        &self,
        mut rd: R,
        mut wr: W,
        peer: Peer,
        mut outgoing: mpsc::Receiver<Bytes>,
        sink: Arc<dyn Sink>,
    ) where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let writer = tokio::spawn(async move {
            while let Some(data) = outgoing.recv().await {
                // TLS buffers records until flushed; TCP's flush is free.
                if wr.write_all(&data).await.is_err() || wr.flush().await.is_err() {
                    break;
                }
            }
        });
        let mut framer = StreamFramer::new(self.max_tcp_message);
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            buf.clear();
            let read = tokio::time::timeout(self.tcp_idle, rd.read_buf(&mut buf)).await;
            match read {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    debug!(error = %e, peer = %peer.addr, transport = peer.transport_name(), "stream read failed");
                    break;
                }
            }
            framer.push(&buf);
            loop {
                match framer.next() {
                    Ok(Some(Frame::Message(msg))) => sink.on_message(msg, peer),
                    Ok(Some(Frame::KeepAlive)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        // A stream that lost its framing cannot be resynchronised.
                        // Everything that still frames went to the sink above
                        // (and got its 400 there), so only this closes.
                        if e == FrameError::TooLarge {
                            metrics::counter!(m::SIP_OVERSIZE_TOTAL, "transport" => peer.transport_name())
                                .increment(1);
                        } else {
                            metrics::counter!(m::SIP_PARSE_ERRORS_TOTAL, "kind" => "framing")
                                .increment(1);
                        }
                        debug!(error = %e, peer = %peer.addr, transport = peer.transport_name(), "closing connection");
                        // The answers to the messages framed before this
                        // one are queued for the writer: let it send them,
                        // then close. Leaving the table drops the only
                        // sender, so the writer ends once its queue is empty.
                        self.forget(peer.flow);
                        drop(rd);
                        let mut writer = writer;
                        if tokio::time::timeout(TCP_FLUSH_LIMIT, &mut writer)
                            .await
                            .is_err()
                        {
                            debug!(peer = %peer.addr, "tcp answers not flushed in time");
                            writer.abort();
                        }
                        return;
                    }
                }
            }
        }
        writer.abort();
    }
}

async fn udp_loop(index: usize, sock: Arc<UdpSocket>, sink: Arc<dyn Sink>) {
    let mut buf = BytesMut::with_capacity(UDP_BUFFER);
    loop {
        buf.clear();
        match sock.recv_buf_from(&mut buf).await {
            Ok((n, addr)) => {
                if n == 0 {
                    continue;
                }
                // Each message gets a copy of its own size and the 64 KiB
                // buffer is reused. Splitting the datagram off the buffer
                // instead made every message hold a whole 64 KiB block
                // while anything kept it (a call's inbox, a queued task):
                // at a few thousand calls/s that was most of the memory.
                let data = Bytes::copy_from_slice(&buf[..n]);
                sink.on_message(
                    data,
                    Peer {
                        flow: Flow::Udp { socket: index },
                        addr,
                    },
                );
            }
            Err(e) => {
                // ICMP errors surface here on some systems; they are not fatal.
                debug!(error = %e, "udp receive error");
            }
        }
    }
}

/// Binds UDP and TCP on one address. With port 0, retries until both get the
/// same free port.
async fn bind_pair(
    addr: SocketAddr,
    udp: bool,
    tcp: bool,
) -> io::Result<(Option<UdpSocket>, Option<TcpListener>)> {
    for _ in 0..32 {
        let u = if udp { Some(bind_udp(addr)?) } else { None };
        let port = match &u {
            Some(u) => u.local_addr()?.port(),
            None => addr.port(),
        };
        if !tcp {
            return Ok((u, None));
        }
        let mut taddr = addr;
        taddr.set_port(port);
        match TcpListener::bind(taddr).await {
            Ok(t) => return Ok((u, Some(t))),
            Err(e) if addr.port() == 0 && e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free port for both UDP and TCP",
    ))
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // Bursts of INVITEs must not be lost in the kernel before we read them.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the transport down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The next connection the guard lets in (TCP or TLS, before any
/// handshake); accept errors (EMFILE and friends) back off instead of
/// spinning.
async fn admitted(
    listener: &TcpListener,
    sink: &Arc<dyn Sink>,
    what: &'static str,
) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) if sink.accepts(addr) => return (stream, addr),
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, transport = what, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
