//! [`PacketSocket`]: raw frames on one interface of a namespace (`AF_PACKET`), to put frames on a
//! link that no socket of the stack would send (PPPoE, broken headers) and to see which frames
//! came through. A capture on an interface with an XDP program sees only what the program
//! passed: generic XDP runs before the packet taps, native XDP before the stack.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::Netns;

/// `ETH_P_ALL` in network byte order, as `socket(2)` and `sockaddr_ll` take it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();
/// Most frames one [`PacketSocket::received`] returns.
const MAX_FRAMES: usize = 10_000;

/// A raw `AF_PACKET` socket bound to one interface of a namespace; closed on `Drop`.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
    iface: String,
}

impl PacketSocket {
    /// Opens a socket bound to `iface` in `ns` for every protocol. It queues the frames the
    /// interface receives (and those it sends, which [`PacketSocket::received`] leaves out) from
    /// now on.
    pub fn bind(ns: &Netns, iface: &str) -> Result<Self> {
        ns.run(|| open(iface))
            .with_context(|| format!("opening a packet socket on {iface} in {}", ns.name()))
    }

    /// Sends `frame` (from its Ethernet header on) out of the interface. Returns false when the
    /// interface's egress path dropped it (a TC program, say: `ENOBUFS`).
    pub fn send(&self, frame: &[u8]) -> Result<bool> {
        // SAFETY: sockaddr_ll is plain old data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ALL_BE;
        addr.sll_ifindex = self.ifindex;
        // SAFETY: the frame and the address are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if usize::try_from(sent).ok() == Some(frame.len()) {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENOBUFS) {
            return Ok(false);
        }
        Err(err).with_context(|| format!("sending a {}-byte frame on {}", frame.len(), self.iface))
    }

    /// The frames the interface received (not those it sent) that are queued now or arrive
    /// within `quiet` of the last one, for at most `limit` in all.
    pub fn received(&self, quiet: Duration, limit: Duration) -> Vec<Vec<u8>> {
        let end = Instant::now() + limit;
        let mut frames = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while frames.len() < MAX_FRAMES {
            let wait = quiet.min(end.saturating_duration_since(Instant::now()));
            if wait.is_zero() {
                break;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&raw mut pfd, 1, ms.max(1)) } <= 0 {
                break;
            }
            // SAFETY: as above, for sockaddr_ll.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: the buffer and the address are valid for the lengths given.
            let len = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut from).cast(),
                    &raw mut from_len,
                )
            };
            let Ok(len) = usize::try_from(len) else {
                continue;
            };
            if from.sll_pkttype != libc::PACKET_OUTGOING {
                frames.push(buf[..len].to_vec());
            }
        }
        frames
    }
}

fn open(iface: &str) -> Result<PacketSocket> {
    let name = CString::new(iface)?;
    // SAFETY: a NUL-terminated name; returns 0 when there is no such interface.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        bail!("no interface {iface}");
    }
    // SAFETY: plain socket(2); the descriptor is checked, then owned.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(ETH_P_ALL_BE),
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error()).context("socket(AF_PACKET)");
    }
    // SAFETY: a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_ll is plain old data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ETH_P_ALL_BE;
    addr.sll_ifindex = i32::try_from(ifindex)?;
    // SAFETY: a valid address of the length given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("bind(AF_PACKET)");
    }
    Ok(PacketSocket {
        fd,
        ifindex: addr.sll_ifindex,
        iface: iface.to_owned(),
    })
}
