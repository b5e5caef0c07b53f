//! The little rtnetlink gotofw needs beyond aya: link events (`gotofw run` watches its
//! interfaces come and go) and a dump of an interface's clsact egress filters (is gotofw's
//! still there, and does it run gotofw's program?).
//!
//! A `NETLINK_ROUTE` socket of our own; the messages are parsed by pure functions, which the
//! unit tests below feed crafted bytes.

use std::{
    io, mem,
    os::fd::{AsFd as _, AsRawFd, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
};

/// `RTM_NEWLINK`: an interface appeared or changed.
const RTM_NEWLINK: u16 = 16;
/// `RTM_DELLINK`: an interface went.
const RTM_DELLINK: u16 = 17;
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const IFLA_IFNAME: u16 = 3;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_ID: u16 = 11;
/// Parent of the clsact qdisc's egress filters: `TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS)`.
const CLSACT_EGRESS: u32 = 0xFFFF_FFF3;
/// The multicast group of link events.
const RTMGRP_LINK: u32 = 1;
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const TCMSG_LEN: usize = 20;

/// What happened to an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// It appeared, or changed (state, address, XDP program...).
    New {
        /// Its index.
        ifindex: u32,
        /// Its name.
        name: String,
    },
    /// It went.
    Gone {
        /// Its index.
        ifindex: u32,
        /// Its name.
        name: String,
    },
}

impl LinkEvent {
    /// The interface's name.
    pub fn name(&self) -> &str {
        match self {
            Self::New { name, .. } | Self::Gone { name, .. } => name,
        }
    }
}

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind(fd: BorrowedFd<'_>, groups: u32) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_nl.
    let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
    addr.nl_family = u16::try_from(libc::AF_NETLINK).unwrap_or_default();
    addr.nl_groups = groups;
    // SAFETY: a valid address of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&addr).cast(),
            u32::try_from(size_of::<libc::sockaddr_nl>()).unwrap_or_default(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reads one datagram into `buf`; `Ok(None)` when there is none yet (non-blocking socket).
fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(err);
    }
    Ok(Some(usize::try_from(n).unwrap_or_default()))
}

/// A socket that receives the link events of this network namespace.
#[derive(Debug)]
pub struct LinkMonitor {
    fd: OwnedFd,
}

impl AsRawFd for LinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl LinkMonitor {
    /// Subscribes to link events (`RTMGRP_LINK`).
    pub fn new() -> io::Result<Self> {
        let fd = socket()?;
        bind(fd.as_fd(), RTMGRP_LINK)?;
        Ok(Self { fd })
    }

    /// The events waiting on the socket (none when there are none, without blocking). An
    /// overrun (`ENOBUFS`: events were lost) is an error; the caller then checks everything.
    pub fn drain(&self) -> io::Result<Vec<LinkEvent>> {
        let mut buf = vec![0u8; 32 * 1024];
        let mut out = Vec::new();
        // Bounded: a burst of events is read in at most this many datagrams at a time.
        for _ in 0..256 {
            match recv(self.fd.as_fd(), &mut buf)? {
                None => break,
                Some(n) => out.extend(parse_link_events(&buf[..n])),
            }
        }
        Ok(out)
    }
}

/// The netlink messages in `buf`: `(type, payload)` each; a truncated one ends the list.
fn messages(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        if len < NLMSG_HDRLEN || len > rest.len() {
            break;
        }
        out.push((kind, &rest[NLMSG_HDRLEN..len]));
        rest = rest.get(align(len)..).unwrap_or_default();
    }
    out
}

const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// The attributes (`rtattr`) in `buf`: `(type, payload)` each.
fn attributes(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        // The nested flag and byte-order flag live in the top bits of the type.
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            break;
        }
        out.push((kind, &rest[4..len]));
        rest = rest.get(align(len)..).unwrap_or_default();
    }
    out
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at + 4)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// The link events in one datagram of an `RTMGRP_LINK` socket.
pub fn parse_link_events(buf: &[u8]) -> Vec<LinkEvent> {
    messages(buf)
        .into_iter()
        .filter(|(kind, _)| matches!(*kind, RTM_NEWLINK | RTM_DELLINK))
        .filter_map(|(kind, payload)| {
            let ifindex = u32_at(payload, 4)?;
            let name = attributes(payload.get(IFINFOMSG_LEN..)?)
                .into_iter()
                .find(|(t, _)| *t == IFLA_IFNAME)
                .map(|(_, v)| c_string(v))?;
            Some(if kind == RTM_NEWLINK {
                LinkEvent::New { ifindex, name }
            } else {
                LinkEvent::Gone { ifindex, name }
            })
        })
        .collect()
}

/// One filter of a filter dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcFilter {
    /// Priority.
    pub priority: u16,
    /// Handle.
    pub handle: u32,
    /// Classifier kind (`bpf` for eBPF).
    pub kind: String,
    /// The eBPF program it runs (`bpf` filters).
    pub prog_id: Option<u32>,
}

/// The filters in one datagram of a filter dump, and whether the dump is over (`NLMSG_DONE`),
/// or the error the kernel answered with.
fn parse_filters(buf: &[u8]) -> io::Result<(Vec<TcFilter>, bool)> {
    let mut out = Vec::new();
    for (kind, payload) in messages(buf) {
        match kind {
            NLMSG_DONE => return Ok((out, true)),
            NLMSG_ERROR => {
                let errno = u32_at(payload, 0).map_or(0, u32::cast_signed);
                if errno == 0 {
                    return Ok((out, true));
                }
                return Err(io::Error::from_raw_os_error(-errno));
            }
            RTM_NEWTFILTER => {
                let (Some(handle), Some(info)) = (u32_at(payload, 8), u32_at(payload, 16)) else {
                    continue;
                };
                let attrs = attributes(payload.get(TCMSG_LEN..).unwrap_or_default());
                let kind = attrs
                    .iter()
                    .find(|(t, _)| *t == TCA_KIND)
                    .map(|(_, v)| c_string(v))
                    .unwrap_or_default();
                let prog_id = attrs
                    .iter()
                    .find(|(t, _)| *t == TCA_OPTIONS)
                    .and_then(|(_, v)| {
                        attributes(v)
                            .into_iter()
                            .find(|(t, _)| *t == TCA_BPF_ID)
                            .and_then(|(_, id)| u32_at(id, 0))
                    });
                out.push(TcFilter {
                    priority: u16::try_from(info >> 16).unwrap_or_default(),
                    handle,
                    kind,
                    prog_id,
                });
            }
            _ => {}
        }
    }
    Ok((out, false))
}

/// The clsact egress filters of interface `ifindex` in this network namespace (none when it
/// has no clsact qdisc).
pub fn clsact_egress_filters(ifindex: u32) -> io::Result<Vec<TcFilter>> {
    let fd = socket()?;
    bind(fd.as_fd(), 0)?;
    let mut request = [0u8; NLMSG_HDRLEN + TCMSG_LEN];
    let len = u32::try_from(request.len()).unwrap_or_default();
    request[0..4].copy_from_slice(&len.to_ne_bytes());
    request[4..6].copy_from_slice(&RTM_GETTFILTER.to_ne_bytes());
    let flags = u16::try_from(libc::NLM_F_REQUEST | libc::NLM_F_DUMP).unwrap_or_default();
    request[6..8].copy_from_slice(&flags.to_ne_bytes());
    request[8..12].copy_from_slice(&1u32.to_ne_bytes());
    let tcm = &mut request[NLMSG_HDRLEN..];
    tcm[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    tcm[12..16].copy_from_slice(&CLSACT_EGRESS.to_ne_bytes());
    // SAFETY: `request` is valid for reads of its length.
    let sent = unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 32 * 1024];
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        let Some(n) = recv(fd.as_fd(), &mut buf)? else {
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        };
        match parse_filters(&buf[..n]) {
            Ok((filters, done)) => {
                out.extend(filters);
                if done {
                    return Ok(out);
                }
            }
            // No clsact qdisc: no filter.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "the kernel did not finish the filter dump within 2 s",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = u16::try_from(4 + value.len()).unwrap();
        let mut out = [len.to_ne_bytes(), kind.to_ne_bytes()].concat();
        out.extend_from_slice(value);
        out.resize(align(out.len()), 0);
        out
    }

    fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(NLMSG_HDRLEN + payload.len()).unwrap();
        let mut out = len.to_ne_bytes().to_vec();
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&[0; 10]);
        out.extend_from_slice(payload);
        out.resize(align(out.len()), 0);
        out
    }

    fn link(kind: u16, ifindex: u32, name: &str) -> Vec<u8> {
        let mut payload = vec![0u8; IFINFOMSG_LEN];
        payload[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        payload.extend(attr(4, &1500u32.to_ne_bytes()));
        payload.extend(attr(IFLA_IFNAME, format!("{name}\0").as_bytes()));
        message(kind, &payload)
    }

    #[test]
    fn link_events_carry_index_and_name() {
        let mut buf = link(RTM_NEWLINK, 7, "wan0");
        buf.extend(link(RTM_DELLINK, 8, "ppp0"));
        buf.extend(message(NLMSG_DONE, &[0; 4]));
        assert_eq!(
            parse_link_events(&buf),
            vec![
                LinkEvent::New {
                    ifindex: 7,
                    name: "wan0".into()
                },
                LinkEvent::Gone {
                    ifindex: 8,
                    name: "ppp0".into()
                },
            ]
        );
    }

    #[test]
    fn truncated_messages_are_not_read_past() {
        let buf = link(RTM_NEWLINK, 7, "wan0");
        for cut in 0..buf.len() {
            // Never panics; a cut message yields nothing or the whole event.
            let events = parse_link_events(&buf[..cut]);
            assert!(events.len() <= 1);
        }
        let mut bad = buf.clone();
        bad[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse_link_events(&bad).is_empty());
    }

    #[test]
    fn filter_dumps_give_priority_handle_and_program() {
        let mut payload = vec![0u8; TCMSG_LEN];
        payload[8..12].copy_from_slice(&0xf0u32.to_ne_bytes());
        payload[16..20].copy_from_slice(&((0xc0f0u32 << 16) | 0x0300).to_ne_bytes());
        payload.extend(attr(TCA_KIND, b"bpf\0"));
        payload.extend(attr(
            TCA_OPTIONS | 0x8000,
            &[
                attr(7, b"gotofw_egress\0"),
                attr(TCA_BPF_ID, &42u32.to_ne_bytes()),
            ]
            .concat(),
        ));
        let mut buf = message(RTM_NEWTFILTER, &payload);
        buf.extend(message(NLMSG_DONE, &[0; 4]));
        let (filters, done) = parse_filters(&buf).unwrap();
        assert!(done);
        assert_eq!(
            filters,
            vec![TcFilter {
                priority: 0xc0f0,
                handle: 0xf0,
                kind: "bpf".into(),
                prog_id: Some(42),
            }]
        );
        let error = message(NLMSG_ERROR, &(-libc::ENODEV).to_ne_bytes());
        assert_eq!(
            parse_filters(&error).unwrap_err().raw_os_error(),
            Some(libc::ENODEV)
        );
    }
}
