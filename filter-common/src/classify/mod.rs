//! The packet classifier: parse a frame, find the rule that decides it, name the counter slot.
//!
//! Rules are compiled to lookups (README, "How it decides"; ARCHITECTURE.md, "The path of a
//! packet"): a port map gives, per (protocol, remote port), the mask of rules naming that port; a
//! longest-prefix-match table per address family gives, per remote address, the mask of rules
//! whose networks contain it; [`Config::any_mask`](crate::Config::any_mask) holds the rules that
//! take any address. The first set bit of `ports & (nets | any)` is the deciding rule. The cost
//! per packet does not grow with the number of rules or networks, and a packet whose remote port
//! no rule names is decided by one array lookup.
//!
//! Everything here is written for the BPF verifier as much as for the host: no panics, no
//! unbounded loops, every read through [`Packet`].
//!
//! One layer a file, each using only those below it (none uses this one): [`classify`] and the
//! link layer ([`link_payload`]: Ethernet, VLAN tags, PPPoE, or none on an L3 link) here; `ip` (IPv4, IPv6, fragments); `transport` (TCP, UDP,
//! ICMP); `rules` (the rule lookup); `addrs` (addresses and the keys made of them); [`Tables`]
//! and [`FlowHit`] (what the classifier asks of the maps) in `tables`; [`Decision`] and
//! [`Outcome`] (what it answers) in `outcome`.

mod addrs;
mod ip;
mod outcome;
mod rules;
mod tables;
mod transport;

use core::mem::MaybeUninit;

use self::ip::{ipv4, ipv6};
pub use self::{
    outcome::{Decision, Outcome},
    rules::lowest_bit,
    tables::{FlowHit, Tables},
};
use crate::{
    Direction, FragKey, MAX_VLAN_TAGS, allow, ethertype,
    packet::{Header as _, Packet},
    ppp, slot,
};

/// Classifies one frame travelling in `direction`. When the frame is an IP fragment, `frag` is
/// written with its datagram's key; it is initialised whenever [`Outcome::remember`] is set.
#[inline(always)]
pub fn classify<P: Packet + ?Sized, T: Tables>(
    pkt: &P,
    tables: &T,
    direction: Direction,
    frag: &mut MaybeUninit<FragKey>,
) -> Outcome {
    let cfg = tables.config();
    let decision = match link_payload(pkt, cfg.link) {
        Payload::Ipv4 { off, end } => return ipv4(pkt, tables, direction, off, end, frag),
        Payload::Ipv6 { off, end } => return ipv6(pkt, tables, direction, off, end, frag),
        Payload::NonIp => allowance(cfg.allowances, allow::NON_IP, slot::NON_IP),
        Payload::Control => allowance(cfg.allowances, allow::PPPOE_CONTROL, slot::PPPOE_CONTROL),
        Payload::Unsupported => Decision::UNSUPPORTED,
        Payload::Malformed => Decision::MALFORMED,
    };
    Outcome::only(decision)
}

/// Passes in `slot` when allowance `bit` is on in `allowances`, else the default block.
#[inline(always)]
const fn allowance(allowances: u32, bit: u32, slot: u32) -> Decision {
    if allowances & bit != 0 {
        Decision::pass(slot)
    } else {
        Decision::DEFAULT_BLOCK
    }
}

/// What the link layer of a frame carries, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// An IPv4 packet starting at `off`, which must end by `end`.
    Ipv4 { off: usize, end: usize },
    /// An IPv6 packet starting at `off`, which must end by `end`.
    Ipv6 { off: usize, end: usize },
    /// Something that is not IP (ARP, LLDP, a PPP network protocol other than IP): allowance
    /// `non-ip`.
    NonIp,
    /// PPPoE discovery, or a PPP control protocol in a PPPoE session: allowance
    /// `pppoe-control`.
    Control,
    /// Well formed but beyond what the parser walks (a third VLAN tag, a compressed PPP
    /// protocol field).
    Unsupported,
    /// Cut short or inconsistent (a PPPoE length that lies, a link-less frame that is not IP).
    Malformed,
}

/// Walks the link layer of a frame on a link of type `link` (a [`link`](crate::link) value):
/// on Ethernet the header, up to [`MAX_VLAN_TAGS`] VLAN tags and a PPPoE header; on an L3 link
/// nothing, the IP version telling IPv4 from IPv6. The one walk of the link layer, for the
/// classifier and for the kernel's short parses (the drop log's, the parse-only floor's).
#[inline(always)]
pub fn link_payload<P: Packet + ?Sized>(pkt: &P, link: u32) -> Payload {
    if link == crate::link::IP {
        return match pkt.header(0, 1) {
            Some(h) if h.u8(0) >> 4 == 4 => Payload::Ipv4 {
                off: 0,
                end: pkt.len(),
            },
            Some(h) if h.u8(0) >> 4 == 6 => Payload::Ipv6 {
                off: 0,
                end: pkt.len(),
            },
            _ => Payload::Malformed,
        };
    }
    let Some((ether, off)) = ether_payload(pkt) else {
        return Payload::Malformed;
    };
    match ether {
        ethertype::IPV4 => Payload::Ipv4 {
            off,
            end: pkt.len(),
        },
        ethertype::IPV6 => Payload::Ipv6 {
            off,
            end: pkt.len(),
        },
        ethertype::PPPOE_SESSION => pppoe_session(pkt, off),
        ethertype::PPPOE_DISCOVERY => match pppoe_header(pkt, off) {
            Some(_) => Payload::Control,
            None => Payload::Malformed,
        },
        ethertype::VLAN | ethertype::QINQ => Payload::Unsupported,
        _ => Payload::NonIp,
    }
}

/// Length of the PPPoE header (RFC 2516: version and type, code, session id, length).
const PPPOE_HEADER: usize = 6;

/// Checks the PPPoE header at `off` (version 1, type 1; its length field within the frame) and
/// returns its code and where its payload ends; `None` when it is cut or inconsistent.
#[inline(always)]
fn pppoe_header<P: Packet + ?Sized>(pkt: &P, off: usize) -> Option<(u8, usize)> {
    let h = pkt.header(off, PPPOE_HEADER)?;
    let end = off + PPPOE_HEADER + usize::from(h.be16(4));
    if h.u8(0) != 0x11 || end > pkt.len() {
        return None;
    }
    Some((h.u8(1), end))
}

/// A PPPoE session frame's payload at `off`: the PPP packet after the session header.
#[inline(always)]
fn pppoe_session<P: Packet + ?Sized>(pkt: &P, off: usize) -> Payload {
    let Some((code, end)) = pppoe_header(pkt, off) else {
        return Payload::Malformed;
    };
    let at = off + PPPOE_HEADER;
    // Session data has code 0 and at least the two bytes of the PPP protocol field.
    let Some(p) = pkt.header(at, 2) else {
        return Payload::Malformed;
    };
    if code != 0 || end < at + 2 {
        return Payload::Malformed;
    }
    let proto = p.be16(0);
    let (off, end) = (at + 2, end);
    if proto == ppp::IPV4 {
        Payload::Ipv4 { off, end }
    } else if proto == ppp::IPV6 {
        Payload::Ipv6 { off, end }
    } else if proto & 0x0100 != 0 {
        // The first octet of a two-byte protocol is even: this is a compressed (one-byte)
        // protocol field, which RFC 2516 asks peers not to use.
        Payload::Unsupported
    } else if proto & 1 == 0 {
        // The last octet of a protocol number is odd (RFC 1661).
        Payload::Malformed
    } else if proto >= ppp::CONTROL_FROM {
        Payload::Control
    } else {
        Payload::NonIp
    }
}

/// The EtherType of the frame's payload past its VLAN tags (up to [`MAX_VLAN_TAGS`]; a frame
/// with more still names a tag here), and the offset the payload starts at; `None` when the
/// Ethernet header or a tag is cut.
#[inline(always)]
pub fn ether_payload<P: Packet + ?Sized>(pkt: &P) -> Option<(u16, usize)> {
    let eth = pkt.header(0, 14)?;
    let mut ether = eth.be16(12);
    let mut off = 14;
    for _ in 0..MAX_VLAN_TAGS {
        if ether != ethertype::VLAN && ether != ethertype::QINQ {
            break;
        }
        let tag = pkt.header(off, 4)?;
        ether = tag.be16(2);
        off += 4;
    }
    Some((ether, off))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet header with `tags` (each a TPID) in front of `ether`, then `payload`; the
    /// buffer and the frame's length in it.
    fn frame(tags: &[u16], ether: u16, payload: &[u8]) -> ([u8; 64], usize) {
        let mut f = [0u8; 64];
        let mut at = 12;
        for (i, tpid) in tags.iter().enumerate() {
            f[at..at + 2].copy_from_slice(&tpid.to_be_bytes());
            f[at + 2..at + 4].copy_from_slice(&(100 + i as u16).to_be_bytes());
            at += 4;
        }
        f[at..at + 2].copy_from_slice(&ether.to_be_bytes());
        at += 2;
        f[at..at + payload.len()].copy_from_slice(payload);
        (f, at + payload.len())
    }

    /// [`ether_payload`] of the first `len` bytes of `f`.
    fn walk((f, len): &([u8; 64], usize)) -> Option<(u16, usize)> {
        ether_payload(&f[..*len])
    }

    #[test]
    fn ether_payload_walks_up_to_two_vlan_tags() {
        let ip = [0x45u8; 20];
        let untagged = frame(&[], ethertype::IPV4, &ip);
        assert_eq!(walk(&untagged), Some((ethertype::IPV4, 14)));
        let one = frame(&[ethertype::VLAN], ethertype::IPV6, &ip);
        assert_eq!(walk(&one), Some((ethertype::IPV6, 18)));
        let two = frame(&[ethertype::QINQ, ethertype::VLAN], ethertype::IPV4, &ip);
        assert_eq!(walk(&two), Some((ethertype::IPV4, 22)));
        // A third tag is not walked: the payload still names a tag (unsupported).
        let three = frame(
            &[ethertype::QINQ, ethertype::VLAN, ethertype::VLAN],
            ethertype::IPV4,
            &ip,
        );
        assert_eq!(walk(&three), Some((ethertype::VLAN, 22)));
        // Not a tag: not walked, whatever follows.
        let arp = frame(&[], 0x0806, &ip);
        assert_eq!(walk(&arp), Some((0x0806, 14)));
    }

    #[test]
    fn ether_payload_refuses_a_cut_header_or_tag() {
        let (two, len) = frame(&[ethertype::QINQ, ethertype::VLAN], ethertype::IPV4, &[]);
        assert_eq!(len, 22);
        assert_eq!(ether_payload(&two[..len]), Some((ethertype::IPV4, 22)));
        // Cut in the Ethernet header, in the first tag, right after it (the second is
        // missing), in the second.
        for cut in [0, 13, 17, 18, 19, 21] {
            assert_eq!(ether_payload(&two[..cut]), None, "cut at {cut}");
        }
    }

    /// A PPPoE session frame (behind one VLAN tag) whose PPPoE length field says `len` and whose
    /// PPP protocol is `proto`, with `body` after it; the buffer and the frame's length.
    fn pppoe(code: u8, len: u16, proto: u16, body: &[u8]) -> ([u8; 64], usize) {
        let mut p = [0u8; 40];
        p[..4].copy_from_slice(&[0x11, code, 0x12, 0x34]);
        p[4..6].copy_from_slice(&len.to_be_bytes());
        p[6..8].copy_from_slice(&proto.to_be_bytes());
        p[8..8 + body.len()].copy_from_slice(body);
        frame(
            &[ethertype::VLAN],
            ethertype::PPPOE_SESSION,
            &p[..8 + body.len()],
        )
    }

    fn payload((f, len): &([u8; 64], usize)) -> Payload {
        link_payload(&f[..*len], crate::link::ETHERNET)
    }

    #[test]
    fn pppoe_sessions_carry_ip_and_control_and_must_not_lie() {
        let ip = [0x45u8; 20];
        // The PPPoE header at 18 (14 + the tag), the protocol at 24: IP at 26, ending with the
        // PPPoE payload (length 22: the protocol and 20 bytes).
        assert_eq!(
            payload(&pppoe(0, 22, ppp::IPV4, &ip)),
            Payload::Ipv4 { off: 26, end: 46 }
        );
        assert_eq!(
            payload(&pppoe(0, 22, ppp::IPV6, &ip)),
            Payload::Ipv6 { off: 26, end: 46 }
        );
        // A length shorter than the frame: the packet must end by the PPPoE payload's end
        // (what follows is padding).
        assert_eq!(
            payload(&pppoe(0, 12, ppp::IPV4, &ip)),
            Payload::Ipv4 { off: 26, end: 36 }
        );
        for proto in [ppp::LCP, ppp::IPCP, ppp::IPV6CP, 0xc023, 0xc223] {
            assert_eq!(
                payload(&pppoe(0, 2, proto, &[])),
                Payload::Control,
                "{proto:#x}"
            );
        }
        // A network protocol other than IP (here MPLS): not IP.
        assert_eq!(payload(&pppoe(0, 2, 0x0281, &[])), Payload::NonIp);
        // A compressed protocol field (IPv4's 0x21 alone, then the IP header's first byte).
        assert_eq!(
            payload(&pppoe(0, 21, 0x2145, &ip[1..])),
            Payload::Unsupported
        );
        // Not a protocol number (its last octet is even).
        assert_eq!(payload(&pppoe(0, 2, 0x0020, &[])), Payload::Malformed);
        // A length past the frame's end, no room for the protocol, a discovery code in a
        // session, another version or type: malformed.
        assert_eq!(payload(&pppoe(0, 23, ppp::IPV4, &ip)), Payload::Malformed);
        assert_eq!(payload(&pppoe(0, 1, ppp::IPV4, &ip)), Payload::Malformed);
        assert_eq!(
            payload(&pppoe(0x65, 22, ppp::IPV4, &ip)),
            Payload::Malformed
        );
        let (mut f, len) = pppoe(0, 22, ppp::IPV4, &ip);
        f[18] = 0x21;
        assert_eq!(payload(&(f, len)), Payload::Malformed);
        // Cut in the PPPoE header or in the protocol field.
        let (f, _) = pppoe(0, 22, ppp::IPV4, &ip);
        for cut in [18, 23, 24, 25] {
            assert_eq!(payload(&(f, cut)), Payload::Malformed, "cut at {cut}");
        }
    }

    #[test]
    fn pppoe_discovery_is_control_when_its_header_holds() {
        let padi = |len: u16, body: &[u8]| {
            let mut p = [0u8; 16];
            p[..4].copy_from_slice(&[0x11, 0x09, 0, 0]);
            p[4..6].copy_from_slice(&len.to_be_bytes());
            p[6..6 + body.len()].copy_from_slice(body);
            frame(&[], ethertype::PPPOE_DISCOVERY, &p[..6 + body.len()])
        };
        let tags = [0x01, 0x01, 0, 0];
        assert_eq!(payload(&padi(4, &tags)), Payload::Control);
        assert_eq!(payload(&padi(0, &[])), Payload::Control);
        assert_eq!(payload(&padi(5, &tags)), Payload::Malformed);
        let (f, len) = padi(4, &tags);
        assert_eq!(payload(&(f, len - 5)), Payload::Malformed);
    }

    #[test]
    fn an_l3_link_reads_the_ip_version_and_nothing_else() {
        let l3 = |bytes: &[u8]| link_payload(bytes, crate::link::IP);
        assert_eq!(l3(&[0x45; 20]), Payload::Ipv4 { off: 0, end: 20 });
        assert_eq!(l3(&[0x60; 40]), Payload::Ipv6 { off: 0, end: 40 });
        assert_eq!(l3(&[0x45]), Payload::Ipv4 { off: 0, end: 1 });
        for bad in [&[][..], &[0x00; 20], &[0x50; 20], &[0xff; 20]] {
            assert_eq!(l3(bad), Payload::Malformed, "{bad:?}");
        }
        // An Ethernet frame on an L3 link is not IP: malformed, never passed as non-ip.
        let (f, len) = frame(&[], ethertype::IPV4, &[0x45; 20]);
        assert_eq!(l3(&f[..len]), Payload::Malformed);
    }
}
