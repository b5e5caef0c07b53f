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
//! link header ([`ether_payload`]) here; `ip` (IPv4, IPv6, fragments); `transport` (TCP, UDP,
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
    slot,
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
    let Some((ether, off)) = ether_payload(pkt) else {
        return Outcome::only(Decision::MALFORMED);
    };
    match ether {
        ethertype::IPV4 => ipv4(pkt, tables, direction, off, frag),
        ethertype::IPV6 => ipv6(pkt, tables, direction, off, frag),
        ethertype::VLAN | ethertype::QINQ | ethertype::PPPOE_SESSION => {
            Outcome::only(Decision::UNSUPPORTED)
        }
        _ => {
            let decision = if tables.config().allowances & allow::NON_IP != 0 {
                Decision::pass(slot::NON_IP)
            } else {
                Decision::DEFAULT_BLOCK
            };
            Outcome::only(decision)
        }
    }
}

/// The EtherType of the frame's payload past its VLAN tags (up to [`MAX_VLAN_TAGS`]; a frame
/// with more still names a tag here), and the offset the payload starts at; `None` when the
/// Ethernet header or a tag is cut. The one walk of the link header, for the classifier and for
/// the kernel's short parses (the drop log's, the parse-only floor's).
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
}
