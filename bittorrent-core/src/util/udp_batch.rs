//! Batched UDP system calls (Linux), for the uTP endpoint and the shared port's `udp` thread:
//! [`send_many`] sends a train of datagrams to one address in as few calls as the kernel
//! allows (UDP GSO, `UDP_SEGMENT`: one `sendmsg` for up to [`GSO_MAX_SEGMENTS`] datagrams of
//! one size; else `sendmmsg`; else one `send_to` each), and [`RecvBatch`] reads up to
//! [`RECV_BATCH`] datagrams per `recvmmsg`. Both fall back by themselves where the kernel says
//! no (GSO is remembered as off for the process after its first refusal).
//!
//! On loopback one datagram per system call was most of the uTP sender's CPU
//! (docs/BENCHMARKS.md, issue 25).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, sendmmsg, sendmsg, setsockopt, sockopt::UdpGroSegment, ControlMessage,
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage,
};

/// Datagrams per `recvmmsg`.
pub const RECV_BATCH: usize = 32;
/// Datagrams per `sendmmsg`.
const SEND_BATCH: usize = 64;
/// Segments per GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 on older kernels).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Bytes per GSO send (one IP datagram's payload at most).
const GSO_MAX_BYTES: usize = 65_000;

/// Cleared once the kernel refuses a GSO send (old kernel, no checksum offload on the route).
static GSO: AtomicBool = AtomicBool::new(true);

/// Turn UDP GSO off for this process (a test of the `sendmmsg` path, or a kernel that
/// mangles GSO on some route).
#[cfg_attr(not(test), allow(dead_code))]
pub fn disable_gso() {
    GSO.store(false, Ordering::Relaxed);
}

/// Send `datagrams`, in order, to `addr`. Errors end the train (the rest is dropped, as a
/// full socket buffer would); the first error is returned.
pub fn send_many(socket: &UdpSocket, addr: SocketAddr, datagrams: &[Vec<u8>]) -> io::Result<()> {
    let mut rest = datagrams;
    while !rest.is_empty() {
        if rest.len() == 1 {
            socket.send_to(&rest[0], addr)?;
            return Ok(());
        }
        let train = if GSO.load(Ordering::Relaxed) {
            gso_train(rest)
        } else {
            0
        };
        if train >= 2 {
            match send_gso(socket, addr, &rest[..train]) {
                Ok(()) => {
                    rest = &rest[train..];
                    continue;
                }
                Err(e) if gso_refused(e) => {
                    log::debug!("udp: GSO refused ({e}), using sendmmsg");
                    GSO.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Up to the next GSO train (or everything, GSO off).
        let upto = if GSO.load(Ordering::Relaxed) {
            (1..rest.len())
                .find(|&i| gso_train(&rest[i..]) >= 2)
                .unwrap_or(rest.len())
        } else {
            rest.len()
        };
        let n = send_mmsg(socket, addr, &rest[..upto.min(SEND_BATCH)])?;
        rest = &rest[n.max(1)..];
    }
    Ok(())
}

/// How many datagrams from the front make one GSO send: all of the first one's size, the
/// last possibly shorter, within the kernel's limits.
fn gso_train(d: &[Vec<u8>]) -> usize {
    let Some(size) = d.first().map(Vec::len).filter(|&s| s > 0) else {
        return 0;
    };
    let (mut n, mut bytes) = (0, 0);
    for x in d.iter().take(GSO_MAX_SEGMENTS) {
        if x.len() > size || x.is_empty() || bytes + x.len() > GSO_MAX_BYTES {
            break;
        }
        n += 1;
        bytes += x.len();
        if x.len() < size {
            break; // a shorter one ends the train
        }
    }
    n
}

fn gso_refused(e: Errno) -> bool {
    matches!(
        e,
        Errno::EINVAL | Errno::EIO | Errno::ENOPROTOOPT | Errno::EOPNOTSUPP
    )
}

fn send_gso(socket: &UdpSocket, addr: SocketAddr, train: &[Vec<u8>]) -> Result<(), Errno> {
    let segment = u16::try_from(train[0].len()).map_err(|_| Errno::EINVAL)?;
    let iov: Vec<IoSlice<'_>> = train.iter().map(|d| IoSlice::new(d)).collect();
    let to = SockaddrStorage::from(addr);
    let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
    sendmsg(
        socket.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::empty(),
        Some(&to),
    )
    .map(|_| ())
}

/// One `sendmmsg`; how many datagrams left (at least one, or an error).
fn send_mmsg(socket: &UdpSocket, addr: SocketAddr, d: &[Vec<u8>]) -> io::Result<usize> {
    let to = SockaddrStorage::from(addr);
    let slices: Vec<[IoSlice<'_>; 1]> = d.iter().map(|x| [IoSlice::new(x)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = vec![Some(to); d.len()];
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(d.len(), None);
    match sendmmsg(
        socket.as_raw_fd(),
        &mut headers,
        &slices,
        &addrs,
        [],
        MsgFlags::empty(),
    ) {
        Ok(r) => Ok(r.count()),
        Err(Errno::ENOSYS) => {
            socket.send_to(&d[0], addr)?;
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

/// Buffers for [`RecvBatch::recv`]: up to [`RECV_BATCH`] datagrams per call, or, with UDP
/// GRO ([`RecvBatch::with_gro`]), up to [`GRO_BATCH`] messages of up to 64 KiB, each a
/// train of datagrams of one size from one sender that the kernel kept together (what a
/// GSO send on loopback arrives as), split here into its datagrams.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    /// The datagrams of the last read: buffer, start, length, sender.
    got: Vec<(usize, usize, usize, SocketAddr)>,
    gro: bool,
}

/// Messages per `recvmmsg` with GRO (each up to 64 KiB).
pub const GRO_BATCH: usize = 8;
/// A GRO message's buffer: the largest UDP payload.
const GRO_BUFFER: usize = 65_536;

impl RecvBatch {
    /// Buffers of `size` bytes each.
    pub fn new(size: usize) -> RecvBatch {
        RecvBatch {
            bufs: vec![vec![0u8; size]; RECV_BATCH],
            got: Vec::with_capacity(RECV_BATCH),
            gro: false,
        }
    }

    /// Turn UDP GRO on for `socket` (Linux 5.0 and later) and take trains of datagrams per
    /// message; where the kernel refuses, [`RecvBatch::new`] with `size`.
    pub fn with_gro(socket: &UdpSocket, size: usize) -> RecvBatch {
        match setsockopt(socket, UdpGroSegment, &true) {
            Ok(()) => RecvBatch {
                bufs: vec![vec![0u8; GRO_BUFFER]; GRO_BATCH],
                got: Vec::with_capacity(RECV_BATCH),
                gro: true,
            },
            Err(e) => {
                log::debug!("udp: no GRO ({e})");
                RecvBatch::new(size)
            }
        }
    }

    /// Wait (as the socket's read timeout says; not at all unless `wait`) for at least one
    /// datagram and take what else is queued; how many (then [`RecvBatch::get`]). Errors
    /// as `recv_from`'s (`WouldBlock` when nothing came).
    pub fn recv(&mut self, socket: &UdpSocket, wait: bool) -> io::Result<usize> {
        self.got.clear();
        let count = self.bufs.len();
        let cmsg = self.gro.then(|| nix::cmsg_space!(i32));
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(count, cmsg);
        let r = {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> =
                self.bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            let flags = if wait {
                MsgFlags::MSG_WAITFORONE
            } else {
                MsgFlags::MSG_DONTWAIT
            };
            match recvmmsg(
                socket.as_raw_fd(),
                &mut headers,
                slices.iter_mut(),
                flags,
                None,
            ) {
                Ok(results) => {
                    for (i, m) in results.enumerate() {
                        let Some(from) = m.address.as_ref().and_then(to_socket_addr) else {
                            continue;
                        };
                        let segment = m
                            .cmsgs()
                            .ok()
                            .and_then(|mut c| {
                                c.find_map(|c| match c {
                                    ControlMessageOwned::UdpGroSegments(s) => {
                                        usize::try_from(s).ok()
                                    }
                                    _ => None,
                                })
                            })
                            .filter(|&s| s > 0);
                        match segment {
                            Some(seg) => {
                                let mut at = 0;
                                while at < m.bytes {
                                    let n = seg.min(m.bytes - at);
                                    self.got.push((i, at, n, from));
                                    at += n;
                                }
                            }
                            None => self.got.push((i, 0, m.bytes, from)),
                        }
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        match r {
            Ok(()) => {}
            Err(Errno::ENOSYS) if wait && !self.gro => {
                let (n, from) = socket.recv_from(&mut self.bufs[0])?;
                self.got.push((0, 0, n, from));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(self.got.len())
    }

    /// Datagram `i` of the last [`RecvBatch::recv`]: its bytes (a datagram as long as the
    /// buffer was truncated) and sender.
    pub fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        let (b, at, n, from) = self.got[i];
        let buf = &self.bufs[b];
        let end = (at + n).min(buf.len());
        (&buf[at.min(end)..end], from)
    }
}

fn to_socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (a, b)
    }

    fn receive_all(b: &UdpSocket, want: usize) -> Vec<Vec<u8>> {
        let mut batch = RecvBatch::new(4096);
        let mut out = Vec::new();
        while out.len() < want {
            let n = batch.recv(b, true).unwrap();
            assert!(n >= 1);
            for i in 0..n {
                out.push(batch.get(i).0.to_vec());
            }
        }
        out
    }

    /// Trains of equal datagrams with a shorter one and odd sizes between: every datagram
    /// arrives whole, in order, over GSO and over `sendmmsg`.
    #[test]
    fn trains_arrive_whole_and_in_order() {
        let (a, b) = pair();
        let mut sent = Vec::new();
        for i in 0..150u32 {
            let len = match i % 50 {
                49 => 300,
                20 => 7,
                _ => 1_400,
            };
            sent.push((0..len).map(|j| (i * 31 + j) as u8).collect::<Vec<u8>>());
        }
        // Chunks the default receive buffer (208 KiB) holds at once.
        let each = |a: &UdpSocket, b: &UdpSocket| {
            for chunk in sent.chunks(60) {
                send_many(a, b.local_addr().unwrap(), chunk).unwrap();
                assert_eq!(receive_all(b, chunk.len()), chunk);
            }
        };
        each(&a, &b);
        disable_gso();
        each(&a, &b);
    }

    /// With GRO on the receiving socket, a GSO train arrives as one message and is split
    /// back into its datagrams; a lone datagram stays whole.
    #[test]
    fn gro_splits_trains_back_into_datagrams() {
        let (a, b) = pair();
        let mut batch = RecvBatch::with_gro(&b, 4096);
        let sent: Vec<Vec<u8>> = (0..40u32)
            .map(|i| {
                let len = if i == 39 { 99 } else { 1_400 };
                (0..len).map(|j| (i * 7 + j) as u8).collect()
            })
            .collect();
        for chunk in [&sent[..], &sent[5..6]] {
            send_many(&a, b.local_addr().unwrap(), chunk).unwrap();
            let mut got = Vec::new();
            while got.len() < chunk.len() {
                let n = batch.recv(&b, true).unwrap();
                for i in 0..n {
                    let (d, from) = batch.get(i);
                    assert_eq!(from, a.local_addr().unwrap());
                    got.push(d.to_vec());
                }
            }
            assert_eq!(got, chunk);
        }
    }

    #[test]
    fn gso_trains_respect_the_limits() {
        let d = |n: usize, len: usize| vec![vec![0u8; len]; n];
        assert_eq!(gso_train(&d(100, 1_400)), 46); // 65,000 bytes
        assert_eq!(gso_train(&d(100, 100)), GSO_MAX_SEGMENTS);
        let mut v = d(3, 1_400);
        v.push(vec![0u8; 10]);
        v.push(vec![0u8; 1_400]);
        assert_eq!(gso_train(&v), 4, "a shorter datagram ends the train");
        let mut v = d(1, 100);
        v.push(vec![0u8; 200]);
        assert_eq!(gso_train(&v), 1, "never a longer one");
        assert_eq!(gso_train(&[]), 0);
    }

    #[test]
    fn recv_reports_the_sender_and_times_out() {
        let (a, b) = pair();
        a.send_to(b"one", b.local_addr().unwrap()).unwrap();
        a.send_to(b"two", b.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new(64);
        let mut got = Vec::new();
        while got.len() < 2 {
            let n = batch.recv(&b, true).unwrap();
            for i in 0..n {
                let (bytes, from) = batch.get(i);
                assert_eq!(from, a.local_addr().unwrap());
                got.push(bytes.to_vec());
            }
        }
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
        b.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        for wait in [true, false] {
            let e = batch.recv(&b, wait).unwrap_err();
            assert!(matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ));
        }
    }
}
