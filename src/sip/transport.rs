//! SIP transports: UDP sockets and TCP connections, as tokio tasks.
//!
//! This room only moves bytes. It frames TCP streams into messages (with the
//! codec's framer, capped at the configured size), hands every datagram or
//! framed message to a [`Sink`] together with the [`Peer`] it came from, and
//! sends bytes back to a `Peer` over the same flow. It knows nothing of
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::message::{Frame, FrameError, StreamFramer};
use crate::ops::kernel::DropWatch;
use crate::ops::metrics as m;

/// Which flow a message came on, so answers go back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flow {
    Udp { socket: usize },
    Tcp { conn: u64 },
}

/// The far end of a message: the flow plus the address it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub flow: Flow,
    pub addr: SocketAddr,
}

impl Peer {
    pub fn reliable(&self) -> bool {
        matches!(self.flow, Flow::Tcp { .. })
    }
    pub fn transport_name(&self) -> &'static str {
        match self.flow {
            Flow::Udp { .. } => "UDP",
            Flow::Tcp { .. } => "TCP",
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
}

pub struct TransportOptions {
    pub listen: Vec<SocketAddr>,
    pub udp: bool,
    pub tcp: bool,
    pub max_tcp_connections: usize,
    pub max_tcp_message: usize,
    pub tcp_idle_timeout: Duration,
}

impl Transports {
    /// Binds every socket; a port of 0 picks a free one (the same for UDP and
    /// TCP on one address when both are enabled, so tests can use port 0).
    pub async fn bind(opts: &TransportOptions) -> io::Result<(Arc<Transports>, Vec<TcpListener>)> {
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
        let t = Transports {
            udp,
            tcp_local,
            tcp: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            max_tcp: opts.max_tcp_connections,
            max_tcp_message: opts.max_tcp_message,
            tcp_idle: opts.tcp_idle_timeout,
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

    /// The local address a flow is bound to, for Via and Contact.
    pub fn local_addr(&self, flow: Flow) -> Option<SocketAddr> {
        match flow {
            Flow::Udp { socket } => self.udp.get(socket).and_then(|s| s.local_addr().ok()),
            Flow::Tcp { .. } => self.tcp_local.first().copied(),
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
        };
        if !ok {
            metrics::counter!(m::SIP_SEND_FAILURES_TOTAL, "transport" => peer.transport_name())
                .increment(1);
        }
        ok
    }

    /// Starts the receive tasks. They run until the runtime shuts down.
    pub fn start(self: &Arc<Self>, listeners: Vec<TcpListener>, sink: Arc<dyn Sink>) {
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
        for l in listeners {
            let me = self.clone();
            let sink = sink.clone();
            tokio::spawn(async move { me.accept_loop(l, sink).await });
        }
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener, sink: Arc<dyn Sink>) {
        loop {
            let (stream, addr) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if !sink.accepts(addr) {
                drop(stream);
                continue;
            }
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
                me.connection(stream, peer, rx, sink).await;
                let mut table = lock(&me.tcp);
                table.remove(&conn);
                metrics::gauge!(m::SIP_TCP_CONNECTIONS).set(table.len() as f64);
            });
        }
    }

    async fn connection(
        &self,
        stream: TcpStream,
        peer: Peer,
        mut outgoing: mpsc::Receiver<Bytes>,
        sink: Arc<dyn Sink>,
    ) {
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let writer = tokio::spawn(async move {
            while let Some(data) = outgoing.recv().await {
                if wr.write_all(&data).await.is_err() {
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
                    debug!(error = %e, peer = %peer.addr, "tcp read failed");
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
                            metrics::counter!(m::SIP_OVERSIZE_TOTAL, "transport" => "TCP")
                                .increment(1);
                        } else {
                            metrics::counter!(m::SIP_PARSE_ERRORS_TOTAL, "kind" => "framing")
                                .increment(1);
                        }
                        debug!(error = %e, peer = %peer.addr, "closing tcp connection");
                        // The answers to the messages framed before this
                        // one are queued for the writer: let it send them,
                        // then close. Leaving the table drops the only
                        // sender, so the writer ends once its queue is empty.
                        if let Flow::Tcp { conn } = peer.flow {
                            lock(&self.tcp).remove(&conn);
                        }
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
