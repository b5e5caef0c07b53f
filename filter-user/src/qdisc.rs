//! The clsact qdisc requests that aya 0.14 does not offer: whether the qdisc of an interface
//! still holds filters, and its removal (rtnetlink, as `tc filter show` and `tc qdisc del`).

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

/// `TC_H_CLSACT` (the same value as `TC_H_INGRESS`): the clsact qdisc's parent.
const TC_H_CLSACT: u32 = 0xffff_fff1;
/// The clsact qdisc's handle, `ffff:`.
const CLSACT_HANDLE: u32 = 0xffff_0000;
/// Parents of the clsact qdisc's two filter lists (`TC_H_MIN_INGRESS`, `TC_H_MIN_EGRESS`).
const CLSACT_INGRESS: u32 = 0xffff_fff2;
const CLSACT_EGRESS: u32 = 0xffff_fff3;
/// `TCA_KIND`.
const TCA_KIND: u16 = 1;
/// Replies read before giving up on a dump (a filter list of any real interface is far shorter).
const MAX_REPLIES: usize = 4096;

/// An rtnetlink socket, closed on drop.
struct Socket(OwnedFd);

impl Socket {
    fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor just created and owned by nobody else.
        let socket = Self(unsafe { OwnedFd::from_raw_fd(fd) });
        let timeout = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: a valid option value of its size; a reply that never comes then fails the
        // request instead of hanging.
        unsafe {
            libc::setsockopt(
                socket.0.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::from_ref(&timeout).cast(),
                u32::try_from(size_of::<libc::timeval>()).unwrap_or(16),
            );
        }
        Ok(socket)
    }

    /// Sends a request of `kind` with `flags` for a `tcmsg` on `ifindex` with `handle` and
    /// `parent`, and TCA_KIND `qdisc_kind` if given; calls `each` with the type of every reply
    /// until the final acknowledgement or NLMSG_DONE. An NLMSG_ERROR with an error fails.
    fn request(
        &self,
        kind: u16,
        flags: u16,
        ifindex: u32,
        (handle, parent): (u32, u32),
        qdisc_kind: Option<&[u8]>,
        mut each: impl FnMut(u16),
    ) -> io::Result<()> {
        let mut msg = Vec::with_capacity(64);
        msg.extend_from_slice(&0u32.to_ne_bytes()); // length, set below
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
        msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
        msg.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel's
        // struct tcmsg: family, two bytes of padding, ifindex, handle, parent, info.
        msg.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        msg.extend_from_slice(&ifindex.to_ne_bytes());
        msg.extend_from_slice(&handle.to_ne_bytes());
        msg.extend_from_slice(&parent.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        if let Some(name) = qdisc_kind {
            let len = u16::try_from(4 + name.len()).map_err(|_| io::Error::other("kind"))?;
            msg.extend_from_slice(&len.to_ne_bytes());
            msg.extend_from_slice(&TCA_KIND.to_ne_bytes());
            msg.extend_from_slice(name);
            msg.resize(msg.len().next_multiple_of(4), 0);
        }
        let total = u32::try_from(msg.len()).map_err(|_| io::Error::other("request"))?;
        msg[..4].copy_from_slice(&total.to_ne_bytes());
        // SAFETY: sends the bytes of `msg` to the kernel (the socket is unbound: its peer).
        let sent = unsafe { libc::send(self.0.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 32 * 1024];
        for _ in 0..MAX_REPLIES {
            // SAFETY: receives into `buf`, at most its length.
            let got =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let got = usize::try_from(got).map_err(|_| io::Error::last_os_error())?;
            let mut at = 0;
            while at + 16 <= got {
                let word = |i: usize| {
                    u32::from_ne_bytes([
                        buf[at + i],
                        buf[at + i + 1],
                        buf[at + i + 2],
                        buf[at + i + 3],
                    ])
                };
                let len = word(0) as usize;
                let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
                if len < 16 || at + len > got {
                    return Err(io::Error::other("a truncated netlink reply"));
                }
                match i32::from(kind) {
                    libc::NLMSG_DONE => return Ok(()),
                    libc::NLMSG_ERROR if len >= 20 => {
                        let errno = i32::from_ne_bytes([
                            buf[at + 16],
                            buf[at + 17],
                            buf[at + 18],
                            buf[at + 19],
                        ]);
                        return if errno == 0 {
                            Ok(())
                        } else {
                            Err(io::Error::from_raw_os_error(-errno))
                        };
                    }
                    _ => each(kind),
                }
                at += len.next_multiple_of(4);
            }
        }
        Err(io::Error::other("netlink sent no end to its replies"))
    }
}

/// How many filters the clsact qdisc of interface `ifindex` holds, ingress and egress.
pub fn clsact_filters(ifindex: u32) -> io::Result<usize> {
    let socket = Socket::open()?;
    let mut count = 0;
    for parent in [CLSACT_INGRESS, CLSACT_EGRESS] {
        socket.request(
            libc::RTM_GETTFILTER,
            libc::NLM_F_DUMP as u16,
            ifindex,
            (0, parent),
            None,
            |kind| count += usize::from(kind == libc::RTM_NEWTFILTER),
        )?;
    }
    Ok(count)
}

/// Removes the clsact qdisc of interface `ifindex` (and with it any filter it still holds).
pub fn delete_clsact(ifindex: u32) -> io::Result<()> {
    let socket = Socket::open()?;
    socket.request(
        libc::RTM_DELQDISC,
        libc::NLM_F_ACK as u16,
        ifindex,
        (CLSACT_HANDLE, TC_H_CLSACT),
        Some(b"clsact\0"),
        drop,
    )
}

/// Removes the clsact qdisc of interface `ifindex` when it holds no filter any more: gotofw
/// added it, and an operator's filter added since keeps it. Whether it was removed.
pub fn remove_clsact_if_empty(ifindex: u32) -> io::Result<bool> {
    if clsact_filters(ifindex)? != 0 {
        return Ok(false);
    }
    delete_clsact(ifindex)?;
    Ok(true)
}
