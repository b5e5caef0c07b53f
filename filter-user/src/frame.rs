//! Builds frames: for `gotofw explain`, which classifies a packet it makes, and for the tests,
//! which feed the same frames to the kernel program and to the host classifier. Ethernet (with
//! VLAN tags and PPPoE) is built here; a frame of an L3 link (tun, PPP, WireGuard) is the IP
//! packet alone ([`Ipv4::build`], [`Ipv6::build`], [`ip_packet`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use filter_common::{ethertype, ipproto};

use crate::scenario::Protocol;

/// Source MAC of built frames (locally administered).
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC of built frames (locally administered).
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// An Ethernet frame around `payload`, with VLAN tags `(tpid, vid)` outermost first.
pub fn ethernet(tags: &[(u16, u16)], ether: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * tags.len() + payload.len());
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    for (tpid, vid) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    f.extend_from_slice(&ether.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The PPPoE session payload (RFC 2516: version and type 1, code 0, `session`, the length of
/// what follows) carrying PPP protocol `proto` and `payload`; put it behind an Ethernet header
/// with [`ethertype::PPPOE_SESSION`].
pub fn pppoe_session(session: u16, proto: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(2 + payload.len()).expect("a PPPoE payload fits its length field");
    let mut f = vec![0x11, 0x00];
    f.extend_from_slice(&session.to_be_bytes());
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&proto.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A PPPoE discovery payload (code `code`: 0x09 PADI, 0x07 PADO, 0x19 PADR, 0x65 PADS, 0xa7
/// PADT) with `tags` as its TLV bytes; put it behind [`ethertype::PPPOE_DISCOVERY`].
pub fn pppoe_discovery(code: u8, session: u16, tags: &[u8]) -> Vec<u8> {
    let len = u16::try_from(tags.len()).expect("PPPoE tags fit the length field");
    let mut f = vec![0x11, code];
    f.extend_from_slice(&session.to_be_bytes());
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(tags);
    f
}

/// An Ethernet frame carrying the IP packet `ip` in PPPoE session `session` (PPP protocol by
/// the packet's version nibble).
pub fn pppoe_ip(tags: &[(u16, u16)], session: u16, ip: &[u8]) -> Vec<u8> {
    let proto = if ip.first().is_some_and(|b| b >> 4 == 6) {
        filter_common::ppp::IPV6
    } else {
        filter_common::ppp::IPV4
    };
    ethernet(
        tags,
        ethertype::PPPOE_SESSION,
        &pppoe_session(session, proto, ip),
    )
}

/// An IPv4 header's fields.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol number.
    pub proto: u8,
    /// Identification.
    pub id: u16,
    /// Flags (top three bits) and fragment offset in 8-byte units.
    pub flags_frag: u16,
    /// Options, padded by the caller to a multiple of four bytes.
    pub options: Vec<u8>,
}

impl Ipv4 {
    /// A header with no options, not fragmented.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Self {
        Self {
            src,
            dst,
            proto,
            id: 0x1234,
            flags_frag: 0x4000,
            options: Vec::new(),
        }
    }

    /// The packet: header (with checksum) and `payload`.
    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let hlen = 20 + self.options.len();
        let total = hlen + payload.len();
        let mut p = Vec::with_capacity(total);
        p.push(0x40 | (hlen / 4) as u8);
        p.push(0);
        p.extend_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&self.id.to_be_bytes());
        p.extend_from_slice(&self.flags_frag.to_be_bytes());
        p.push(64);
        p.push(self.proto);
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&self.src.octets());
        p.extend_from_slice(&self.dst.octets());
        p.extend_from_slice(&self.options);
        let sum = checksum(&p[..hlen]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }
}

/// An IPv6 header's fields.
#[derive(Clone, Debug)]
pub struct Ipv6 {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Next Header of the fixed header.
    pub next: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Extension headers, already encoded (see [`ipv6_ext`] and [`ipv6_fragment`]).
    pub ext: Vec<u8>,
}

impl Ipv6 {
    /// A header with no extension headers.
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, next: u8) -> Self {
        Self {
            src,
            dst,
            next,
            hop_limit: 64,
            ext: Vec::new(),
        }
    }

    /// The packet: fixed header, extension headers, `payload`.
    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let plen = self.ext.len() + payload.len();
        let mut p = Vec::with_capacity(40 + plen);
        p.extend_from_slice(&[0x60, 0, 0, 0]);
        p.extend_from_slice(&(plen as u16).to_be_bytes());
        p.push(self.next);
        p.push(self.hop_limit);
        p.extend_from_slice(&self.src.octets());
        p.extend_from_slice(&self.dst.octets());
        p.extend_from_slice(&self.ext);
        p.extend_from_slice(payload);
        p
    }
}

/// An IPv6 extension header with `next` after it, `8 * (units + 1)` bytes long (hop-by-hop,
/// routing, destination options).
pub fn ipv6_ext(next: u8, units: u8) -> Vec<u8> {
    let mut h = vec![0u8; 8 * (usize::from(units) + 1)];
    h[0] = next;
    h[1] = units;
    if h.len() > 2 {
        // PadN option filling the rest, so option parsers see a valid header.
        h[2] = 1;
        h[3] = (h.len() - 4) as u8;
    }
    h
}

/// An IPv6 fragment header: `offset` in bytes (a multiple of 8), `more` fragments flag.
pub fn ipv6_fragment(next: u8, offset: u16, more: bool, id: u32) -> Vec<u8> {
    let mut h = vec![next, 0];
    h.extend_from_slice(&((offset & 0xfff8) | u16::from(more)).to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h
}

/// A TCP header (20 bytes, SYN) followed by `payload`.
pub fn tcp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(20 + payload.len());
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&1u32.to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes());
    h.push(5 << 4);
    h.push(0x02);
    h.extend_from_slice(&65_535u16.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    h.extend_from_slice(payload);
    h
}

/// A UDP header followed by `payload`, with a consistent length.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(8 + payload.len());
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(payload);
    h
}

/// An ICMP or ICMPv6 message: type, code, four bytes of rest-of-header, then `body`.
pub fn icmp(kind: u8, code: u8, body: &[u8]) -> Vec<u8> {
    let mut h = vec![kind, code, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(body);
    h
}

/// A complete Ethernet frame carrying a small TCP or UDP packet from `src` to `dst`.
pub fn packet(proto: Protocol, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    packet_on(filter_common::link::ETHERNET, proto, src, dst)
}

/// A complete frame of a link of type `link` (a [`filter_common::link`] value) carrying a small
/// TCP or UDP packet from `src` to `dst`: behind an Ethernet header, or the IP packet alone.
pub fn packet_on(link: u32, proto: Protocol, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let l4 = match proto {
        Protocol::Tcp => tcp(src.port(), dst.port(), &[]),
        Protocol::Udp => udp(src.port(), dst.port(), b"gotofw"),
    };
    if link == filter_common::link::IP {
        ip_packet(src.ip(), dst.ip(), proto.number(), &l4)
    } else {
        ip_frame(src.ip(), dst.ip(), proto.number(), &l4)
    }
}

/// An Ethernet frame carrying `l4` from `src` to `dst` with protocol `proto` (IPv4 or IPv6 by
/// address).
///
/// # Panics
/// When `src` and `dst` are of different families.
pub fn ip_frame(src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let ether = if src.is_ipv4() {
        ethertype::IPV4
    } else {
        ethertype::IPV6
    };
    ethernet(&[], ether, &ip_packet(src, dst, proto, l4))
}

/// The IP packet carrying `l4` from `src` to `dst` with protocol `proto`: a whole frame of an L3
/// link.
///
/// # Panics
/// When `src` and `dst` are of different families.
pub fn ip_packet(src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8]) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ipv4::new(s, d, proto).build(l4),
        (IpAddr::V6(s), IpAddr::V6(d)) => Ipv6::new(s, d, proto).build(l4),
        _ => panic!("source {src} and destination {dst} are of different address families"),
    }
}

/// The protocol number of ICMP for the family of `addr`.
pub fn icmp_proto(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        ipproto::ICMP
    } else {
        ipproto::ICMPV6
    }
}

/// The Internet checksum.
fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let p = Ipv4::new(Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(68, 64, 0, 1), 17).build(&[]);
        assert_eq!(checksum(&p[..20]), 0);
    }

    #[test]
    fn frames_have_the_expected_layout() {
        let f = packet(
            Protocol::Udp,
            "192.0.2.1:50000".parse().unwrap(),
            "68.64.0.1:3478".parse().unwrap(),
        );
        assert_eq!(f.len(), 14 + 20 + 8 + 6);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 3478);
        let ppp = pppoe_ip(&[], 7, &f[14..]);
        assert_eq!(&ppp[12..14], &[0x88, 0x64]);
        assert_eq!(&ppp[14..22], &[0x11, 0, 0, 7, 0, 36, 0x00, 0x21]);
        assert_eq!(&ppp[22..], &f[14..]);
        let tagged = ethernet(&[(0x88a8, 10), (0x8100, 20)], 0x0800, &[]);
        assert_eq!(&tagged[12..14], &[0x88, 0xa8]);
        assert_eq!(&tagged[20..22], &[0x08, 0x00]);
    }
}
