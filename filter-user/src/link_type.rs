//! The link type of an interface (`ARPHRD_*`), and how gotofw's classifier parses its frames.
//!
//! Ethernet-like links (NICs, veth, bridges, macvlan, VLAN devices, loopback) carry an Ethernet
//! header; L3 links (tun, WireGuard, PPP, raw-IP modems) carry the IP packet alone. Any other
//! type (IP-in-IP and GRE tunnels, InfiniBand, CAN...) is refused at attach: read with the wrong
//! layout, every packet would be misjudged. The type is asked of the kernel through a socket of
//! this network namespace (`SIOCGIFHWADDR`), which `/sys/class/net` is not under `nsenter --net=`.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use crate::error::UsageError;

/// `SIOCGIFHWADDR`: the hardware address, whose family is the link type.
const SIOCGIFHWADDR: libc::Ioctl = 0x8927;
/// `SIOCGIFINDEX`: the index of a named interface.
const SIOCGIFINDEX: libc::Ioctl = 0x8933;

/// `ARPHRD_RAWIP`: raw-IP modems (qmi_wwan, mhi), not in the libc crate.
const ARPHRD_RAWIP: u16 = 519;

/// How the classifier parses frames of link type `kind` (a [`filter_common::link`] value), or
/// `None` when it does not: Ethernet (NICs, veth, bridges, macvlan, VLANs, tap...) and loopback
/// (its frames carry a zeroed Ethernet header) as Ethernet; tun and WireGuard (`none`), PPP and
/// raw IP from the IP header on.
pub const fn parsed(kind: u16) -> Option<u32> {
    match kind {
        libc::ARPHRD_ETHER | libc::ARPHRD_LOOPBACK => Some(filter_common::link::ETHERNET),
        libc::ARPHRD_NONE | libc::ARPHRD_PPP | ARPHRD_RAWIP => Some(filter_common::link::IP),
        _ => None,
    }
}

/// The name of a classifier link value, as `status` and `explain` show it.
pub const fn link_name(link: u32) -> &'static str {
    if link == filter_common::link::IP {
        "ip"
    } else {
        "ethernet"
    }
}

/// The name `ip link` shows for link type `kind` (`link/NAME`), or its number.
pub fn name(kind: u16) -> String {
    let known = match kind {
        libc::ARPHRD_ETHER => "ether",
        libc::ARPHRD_LOOPBACK => "loopback",
        libc::ARPHRD_NONE => "none",
        libc::ARPHRD_VOID => "void",
        libc::ARPHRD_PPP => "ppp",
        ARPHRD_RAWIP => "rawip",
        libc::ARPHRD_TUNNEL => "ipip",
        libc::ARPHRD_TUNNEL6 => "tunnel6",
        libc::ARPHRD_SIT => "sit",
        libc::ARPHRD_IPGRE => "gre",
        823 => "gre6",
        libc::ARPHRD_INFINIBAND => "infiniband",
        libc::ARPHRD_CAN => "can",
        libc::ARPHRD_SLIP => "slip",
        libc::ARPHRD_CISCO => "cisco",
        libc::ARPHRD_IEEE80211_RADIOTAP => "ieee802.11/radiotap",
        libc::ARPHRD_IEEE802154 => "ieee802.15.4",
        _ => return format!("type {kind}"),
    };
    known.to_owned()
}

/// The link type of interface `iface` of this network namespace, and its index (asked with the
/// same socket, so that a rename in between shows).
fn query(iface: &str) -> io::Result<(u16, u32)> {
    let name = CString::new(iface).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let bytes = name.as_bytes_with_nul();
    if bytes.len() > libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: plain socket(2); the descriptor is checked and then owned.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = src.cast_signed();
    }
    // SAFETY: a valid socket and an ifreq with a NUL-terminated name, as the ioctl reads.
    if unsafe { libc::ioctl(socket.as_raw_fd(), SIOCGIFHWADDR, &raw mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR filled in the hardware address.
    let kind = unsafe { req.ifr_ifru.ifru_hwaddr.sa_family };
    // SAFETY: as above; SIOCGIFINDEX reads the name and fills in the index.
    if unsafe { libc::ioctl(socket.as_raw_fd(), SIOCGIFINDEX, &raw mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFINDEX filled in the index.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };
    Ok((kind, u32::try_from(index).unwrap_or(0)))
}

/// The link type (`ARPHRD_*`) of interface `iface` of this network namespace.
pub fn kind_of(iface: &str) -> io::Result<u16> {
    query(iface).map(|(kind, _)| kind)
}

/// How the classifier parses frames of interface `iface` (index `ifindex`) of this network
/// namespace (a [`filter_common::link`] value); fails when its link type is not one it parses.
pub fn check(iface: &str, ifindex: u32) -> anyhow::Result<u32> {
    let (kind, index) = match query(iface) {
        Ok(found) => found,
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
            return Err(UsageError::UnknownInterface(iface.to_owned()).into());
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("reading the link type of interface {iface}")));
        }
    };
    if index != ifindex {
        anyhow::bail!(
            "interface {iface} changed while gotofw looked at it (index {ifindex}, now {index}): run the command again"
        );
    }
    parsed(kind).ok_or_else(|| {
        UsageError::UnparsedLinkType {
            iface: iface.to_owned(),
            kind: name(kind),
        }
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_and_l3_links_are_parsed_the_rest_named() {
        use filter_common::link::{ETHERNET, IP};
        assert_eq!(parsed(libc::ARPHRD_ETHER), Some(ETHERNET));
        assert_eq!(parsed(libc::ARPHRD_LOOPBACK), Some(ETHERNET));
        for kind in [libc::ARPHRD_NONE, libc::ARPHRD_PPP, ARPHRD_RAWIP] {
            assert_eq!(parsed(kind), Some(IP), "{}", name(kind));
        }
        assert_eq!(
            [ETHERNET, IP].map(link_name),
            ["ethernet", "ip"],
            "the names status shows"
        );
        for (kind, shown) in [
            (libc::ARPHRD_VOID, "void"),
            (libc::ARPHRD_TUNNEL, "ipip"),
            (libc::ARPHRD_IPGRE, "gre"),
            (libc::ARPHRD_INFINIBAND, "infiniband"),
            (4242, "type 4242"),
        ] {
            assert_eq!(parsed(kind), None, "{shown}");
            assert_eq!(name(kind), shown);
        }
    }

    #[test]
    fn loopback_is_asked_of_the_kernel() {
        // Every network namespace has `lo`, index 1.
        let (kind, index) = query("lo").unwrap();
        assert_eq!((kind, index), (libc::ARPHRD_LOOPBACK, 1));
        assert_eq!(check("lo", 1).unwrap(), filter_common::link::ETHERNET);
        let err = query("gfw-nosuch0").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENODEV));
    }
}
