//! Reading every datagram queued on one leg's socket in one system call.
//!
//! The media clock polls its legs' sockets once per tick, so a socket holds
//! one packet, now and then a few. `recv_from` in a loop costs one extra
//! call per socket that only says EAGAIN; `recvmmsg(2)` returns what is
//! queued (up to [`BATCH`]) and stops. Neither std nor socket2 wraps
//! recvmmsg, so this is the thin unsafe layer for it; it touches nothing
//! but the descriptor it is given and its own buffers.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams read per call at most (level-triggered polling leaves the rest
/// for the next tick, so one flooding peer cannot starve the clock).
pub(crate) const BATCH: usize = 16;
/// Bytes kept of each datagram; longer ones arrive cut to this length,
/// which is still above any RTP packet the clock accepts.
const SLOT: usize = 2048;

/// Buffers for one batch, reused for every call.
pub(crate) struct RecvBatch {
    bufs: Box<[[u8; SLOT]; BATCH]>,
    addrs: Box<[libc::sockaddr_storage; BATCH]>,
    lens: [usize; BATCH],
    froms: [Option<SocketAddr>; BATCH],
}

impl RecvBatch {
    pub(crate) fn new() -> RecvBatch {
        RecvBatch {
            bufs: Box::new([[0; SLOT]; BATCH]),
            // SAFETY: sockaddr_storage is plain old data; all zeroes is valid.
            addrs: Box::new(unsafe { std::mem::zeroed() }),
            lens: [0; BATCH],
            froms: [None; BATCH],
        }
    }

    /// Reads what is queued on `fd` without blocking: the number of
    /// datagrams now in the batch (0 when nothing was waiting).
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // SAFETY: zeroed iovec/mmsghdr are valid; every pointer set below
        // points into `self`, which outlives the call.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: SLOT,
            };
            let h = &mut msgs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: `msgs` holds BATCH initialised headers whose buffers are
        // SLOT bytes each; MSG_DONTWAIT never blocks the clock.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        for (i, m) in msgs.iter().enumerate().take(n) {
            self.lens[i] = m.msg_len as usize;
            self.froms[i] = to_socket_addr(&self.addrs[i]);
        }
        Ok(n)
    }

    /// Datagram `i` of the last batch and where it came from.
    pub(crate) fn get(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        (&self.bufs[i][..self.lens[i]], self.froms[i])
    }
}

fn to_socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn reads_every_queued_datagram_with_its_source_then_nothing() {
        for local in ["127.0.0.1:0", "[::1]:0"] {
            let rx = UdpSocket::bind(local).unwrap();
            let tx = UdpSocket::bind(local).unwrap();
            let to = rx.local_addr().unwrap();
            for k in 0..3u8 {
                tx.send_to(&[k; 5], to).unwrap();
            }
            tx.send_to(&[9; 3000], to).unwrap();
            // Loopback delivery is synchronous; allow a moment anyway.
            std::thread::sleep(std::time::Duration::from_millis(20));
            let mut b = RecvBatch::new();
            assert_eq!(b.recv(rx.as_raw_fd()).unwrap(), 4);
            for k in 0..3u8 {
                let (data, from) = b.get(usize::from(k));
                assert_eq!(data, &[k; 5]);
                assert_eq!(from, Some(tx.local_addr().unwrap()));
            }
            // The oversize one arrives cut to the slot, still above any RTP.
            assert_eq!(b.get(3).0.len(), SLOT);
            assert_eq!(b.recv(rx.as_raw_fd()).unwrap(), 0);
        }
    }

    #[test]
    fn stops_at_the_batch_size() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..BATCH + 3 {
            tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut b = RecvBatch::new();
        assert_eq!(b.recv(rx.as_raw_fd()).unwrap(), BATCH);
        assert_eq!(b.recv(rx.as_raw_fd()).unwrap(), 3);
    }
}
