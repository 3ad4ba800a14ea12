//! What the kernel knows about our sockets that their own API does not
//! say: how many datagrams it dropped on the way in.
//!
//! Linux counts, per socket, the datagrams it could not queue (receive
//! buffer full, memory pressure) and reports the count through
//! `getsockopt(SO_MEMINFO)`. The SIP transport and the media clock sample
//! it, so a loss inside the host shows in a metric and not only as a SIP
//! retransmission or a gap in someone's audio. Observation only: nothing
//! here changes a socket. libc does not export `SO_MEMINFO`; the value
//! below is the generic one (`asm-generic/socket.h`) that x86, ARM and
//! RISC-V use, and elsewhere the reading is simply not available.

use std::os::fd::RawFd;

/// `SO_MEMINFO` where it has the generic value; `None` elsewhere.
const SO_MEMINFO: Option<libc::c_int> = if cfg!(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv64"
    )
)) {
    Some(55)
} else {
    None
};
/// Index of the drop count in the `SO_MEMINFO` array.
const SK_MEMINFO_DROPS: usize = 8;

/// Datagrams the kernel dropped at this socket since it was opened
/// (wrapping at 2³²), or `None` where the kernel cannot say.
pub fn socket_drops(fd: RawFd) -> Option<u32> {
    let opt = SO_MEMINFO?;
    // Nine values today; the kernel copies what fits and says how much.
    let mut info = [0u32; 16];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes and `len` is a valid
    // in/out length; the kernel writes at most that much.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (r == 0 && len as usize > SK_MEMINFO_DROPS * 4).then(|| info[SK_MEMINFO_DROPS])
}

/// Follows one socket's drop count and returns what is new since the last
/// look, so callers can feed a counter.
#[derive(Debug, Default)]
pub struct DropWatch {
    seen: u32,
}

impl DropWatch {
    pub fn new_drops(&mut self, fd: RawFd) -> u64 {
        let Some(now) = socket_drops(fd) else {
            return 0;
        };
        let new = now.wrapping_sub(self.seen);
        self.seen = now;
        u64::from(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_full_receive_buffer_shows_as_drops() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let s = socket2::SockRef::from(&rx);
        s.set_recv_buffer_size(2048).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut watch = DropWatch::default();
        assert_eq!(watch.new_drops(rx.as_raw_fd()), 0);
        // Far more than a 2 KiB buffer (doubled by the kernel) holds.
        for _ in 0..200 {
            tx.send_to(&[0u8; 200], rx.local_addr().unwrap()).unwrap();
        }
        let dropped = watch.new_drops(rx.as_raw_fd());
        assert!(dropped > 100, "{dropped} drops");
        assert_eq!(watch.new_drops(rx.as_raw_fd()), 0);
    }
}
