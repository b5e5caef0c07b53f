//! The packet classifier: parse a frame, find the rule that decides it, name the counter slot.
//!
//! Rules are compiled to lookups (see DESIGN.md): a port map gives, per (protocol, remote port),
//! the mask of rules naming that port; a longest-prefix-match table per address family gives, per
//! remote address, the mask of rules whose networks contain it; [`Config::any_mask`] holds the
//! rules that take any address. The first set bit of `ports & (nets | any)` is the deciding rule.
//! The cost per packet does not grow with the number of rules or networks, and a packet whose
//! remote port no rule names is decided by one array lookup.
//!
//! Everything here is written for the BPF verifier as much as for the host: no panics, no
//! unbounded loops, every read through [`Packet`].

use core::mem::MaybeUninit;

use crate::{
    ACTION_DROP, ACTION_PASS, Config, Direction, FIXED_SLOTS, FlowKey, FragKey, FragVerdict,
    Ipv4Key, Ipv6Key, MAX_IPV6_EXT_HEADERS, MAX_VLAN_TAGS, MODE_STATEFUL, PORT_TABLE_LOCAL,
    PORT_TABLE_REMOTE, PROTO_IDX_TCP, PROTO_IDX_UDP, allow, ethertype, ipproto,
    packet::{Header as _, Packet},
    port_index, rule_slot, slot,
};

/// The lookups the classifier needs; implemented over BPF maps in the kernel and over in-memory
/// tables on the host.
pub trait Tables {
    /// Rule mask stored at `index` of the port map (see [`port_index`]); zero when none.
    fn port_mask(&self, index: u32) -> u64;
    /// The rule set's configuration. The kernel's tables return the entry the program read
    /// once for the packet.
    fn config(&self) -> &Config;
    /// Mask of the rules whose networks contain this IPv4 address (longest prefix match).
    fn net_mask_v4(&self, addr: Ipv4Key) -> u64;
    /// Mask of the rules whose networks contain this IPv6 address (longest prefix match).
    fn net_mask_v6(&self, addr: Ipv6Key) -> u64;
    /// The verdict remembered for the first fragment of this datagram, if any.
    fn fragment(&self, key: &FragKey) -> Option<FragVerdict>;
    /// Stateful mode, inbound: when the flow `key` is alive and of the current rule-set
    /// generation, refreshes it for this packet (see [`flow_touch`](crate::flow_touch)) and
    /// returns its rule; tells a live flow of another generation apart, untouched.
    fn flow_ingress(&self, cfg: &Config, key: &FlowKey, tcp_flags: u8, len: u64) -> FlowHit;
    /// Stateful mode, inbound, after [`FlowHit::Stale`] and a recheck that the current rules
    /// allow the flow: rebinds the flow `key` to `rule` of the current generation and refreshes
    /// it. (A flow they do not allow is left alone: not admitted, it idles out.)
    fn flow_rebind(&self, cfg: &Config, key: &FlowKey, rule: u32, tcp_flags: u8, len: u64);
    /// Stateful mode, outbound and allowed by `rule` of rule-set `generation`: refreshes (and
    /// rebinds) the flow `key` when it is alive, opens it (see [`flow_new`](crate::flow_new))
    /// otherwise.
    fn flow_egress(
        &self,
        cfg: &Config,
        key: &FlowKey,
        rule: u32,
        generation: u32,
        tcp_flags: u8,
        len: u64,
    );
    /// Stateful mode: the rule of the live flow `key`, without touching it.
    fn flow_peek(&self, cfg: &Config, key: &FlowKey) -> Option<u32>;
}

/// What the flow table says of an inbound packet's flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowHit {
    /// A live flow of the current rule set, refreshed; its rule.
    Live(u32),
    /// A live flow opened under an earlier rule set: to be checked against the current one.
    Stale,
    /// No live flow.
    Miss,
}

/// What to do with a packet, and where to count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// [`ACTION_PASS`] or [`ACTION_DROP`].
    pub action: u32,
    /// Counter slot within the packet's direction: one of [`slot`] or a [`rule_slot`].
    pub slot: u32,
}

impl Decision {
    const fn drop(slot: u32) -> Self {
        Self {
            action: ACTION_DROP,
            slot,
        }
    }

    const fn pass(slot: u32) -> Self {
        Self {
            action: ACTION_PASS,
            slot,
        }
    }

    const DEFAULT_BLOCK: Self = Self::drop(slot::DEFAULT_BLOCK);
    const MALFORMED: Self = Self::drop(slot::MALFORMED);
    const UNSUPPORTED: Self = Self::drop(slot::UNSUPPORTED);

    /// Whether the packet passes.
    pub const fn passes(&self) -> bool {
        self.action == ACTION_PASS
    }
}

/// The classifier's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict and counter slot.
    pub decision: Decision,
    /// The packet is the first fragment of a datagram: the caller stores
    /// [`Outcome::frag_verdict`] in the fragment map under the key the classifier wrote, so that
    /// later fragments take it.
    pub remember: bool,
    /// With `remember`: the length of the first fragment's fragmentable part, which later
    /// fragments may not overlap.
    pub guard: u16,
}

impl Outcome {
    const fn only(decision: Decision) -> Self {
        Self {
            decision,
            remember: false,
            guard: 0,
        }
    }

    /// What the fragment map keeps for a first fragment.
    pub const fn frag_verdict(&self) -> FragVerdict {
        FragVerdict {
            slot: self.decision.slot,
            action: self.decision.action as u16,
            guard: self.guard,
        }
    }

    /// A first fragment's outcome: its fragmentable part runs from `frag_start` to `end`. No
    /// later fragment may overlap any of it: honest fragmentation never overlaps, and an
    /// overlap could rewrite what the verdict was based on (ports, flags, extension headers, an
    /// ICMP error's quote; RFC 1858, RFC 3128, RFC 5722).
    #[inline(always)]
    fn first_fragment(decision: Decision, frag_start: usize, end: usize) -> Self {
        // `frag_start <= end` and the IP payload is under 64 KiB; no branch here, so the
        // verifier does not track one more value through the extension-header walk.
        Self {
            decision,
            remember: true,
            guard: end.wrapping_sub(frag_start) as u16,
        }
    }
}

/// Index of the lowest set bit of a non-zero mask (64 for zero). Written without `trailing_zeros`
/// so that the BPF backend needs no count-trailing-zeros instruction.
#[inline(always)]
#[expect(clippy::verbose_bit_mask, reason = "no trailing_zeros on BPF")]
pub const fn lowest_bit(mask: u64) -> u32 {
    if mask == 0 {
        return 64;
    }
    let mut x = mask;
    let mut n = 0;
    if x & 0xffff_ffff == 0 {
        n += 32;
        x >>= 32;
    }
    if x & 0xffff == 0 {
        n += 16;
        x >>= 16;
    }
    if x & 0xff == 0 {
        n += 8;
        x >>= 8;
    }
    if x & 0xf == 0 {
        n += 4;
        x >>= 4;
    }
    if x & 0x3 == 0 {
        n += 2;
        x >>= 2;
    }
    if x & 0x1 == 0 {
        n += 1;
    }
    n
}

/// The remote end's address as the lookups want it.
#[derive(Clone, Copy)]
enum Remote {
    V4(Ipv4Key),
    V6(Ipv6Key),
}

/// Source and destination of an IP header.
#[derive(Clone, Copy)]
enum Addrs {
    V4 { src: Ipv4Key, dst: Ipv4Key },
    V6 { src: Ipv6Key, dst: Ipv6Key },
}

impl Addrs {
    /// The flow key of a TCP or UDP packet travelling in `direction` with these ports.
    #[inline(always)]
    fn flow_key(
        &self,
        direction: Direction,
        proto: u8,
        remote_port: u16,
        local_port: u16,
    ) -> FlowKey {
        let (src, dst, family) = match self {
            Self::V4 { src, dst } => (widen(*src), widen(*dst), 4),
            Self::V6 { src, dst } => (*src, *dst, 6),
        };
        let (remote, local) = match direction {
            Direction::Ingress => (src, dst),
            Direction::Egress => (dst, src),
        };
        FlowKey {
            remote,
            local,
            remote_port,
            local_port,
            proto,
            family,
            _pad: [0; 2],
        }
    }

    /// The remote address of a packet travelling in `direction`.
    #[inline(always)]
    fn remote(&self, direction: Direction) -> Remote {
        match (self, direction) {
            (Self::V4 { src, .. }, Direction::Ingress) => Remote::V4(*src),
            (Self::V4 { dst, .. }, Direction::Egress) => Remote::V4(*dst),
            (Self::V6 { src, .. }, Direction::Ingress) => Remote::V6(*src),
            (Self::V6 { dst, .. }, Direction::Egress) => Remote::V6(*dst),
        }
    }
}

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

#[inline(always)]
fn ipv4<P: Packet + ?Sized, T: Tables>(
    pkt: &P,
    tables: &T,
    direction: Direction,
    off: usize,
    frag: &mut MaybeUninit<FragKey>,
) -> Outcome {
    let Some(h) = pkt.header(off, 20) else {
        return Outcome::only(Decision::MALFORMED);
    };
    let vihl = h.u8(0);
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < 20 {
        return Outcome::only(Decision::MALFORMED);
    }
    let (total, id, flags_frag, proto) = (h.be16(2), h.be16(4), h.be16(6), h.u8(9));
    let src = h.array::<4>(12);
    let dst = h.array::<4>(16);
    let total = usize::from(total);
    let end = off + total;
    if total < ihl || end > pkt.len() {
        return Outcome::only(Decision::MALFORMED);
    }
    let frag_offset = usize::from(flags_frag & 0x1fff) * 8;
    let more = flags_frag & 0x2000 != 0;
    if frag_offset != 0 || more {
        frag.write(FragKey {
            src: widen(src),
            dst: widen(dst),
            id: u32::from(id),
            proto,
            family: 4,
            direction: direction as u8,
            _pad: 0,
        });
    }
    if frag_offset != 0 {
        // SAFETY: written just above (frag_offset != 0).
        let key = unsafe { frag.assume_init_ref() };
        return Outcome::only(later_fragment(tables, key, proto, frag_offset));
    }
    let addrs = Addrs::V4 { src, dst };
    let l4 = off + ihl;
    let decision = transport(pkt, tables, direction, proto, l4, end, &addrs, 0, more);
    if more {
        Outcome::first_fragment(decision, l4, end)
    } else {
        Outcome::only(decision)
    }
}

#[inline(always)]
fn widen(addr: Ipv4Key) -> [u8; 16] {
    // Through a u128 (two 8-byte stores) rather than a zeroed array, which the BPF backend
    // turns into a byte-wise memset call (about 5 ns per flow packet).
    u128::from(u32::from_le_bytes(addr)).to_le_bytes()
}

/// A fragment with a non-zero offset: it takes the verdict of its first fragment.
#[inline(always)]
fn later_fragment<T: Tables>(tables: &T, key: &FragKey, proto: u8, offset: usize) -> Decision {
    // A later fragment that overlaps the transport header could rewrite the ports or flags the
    // first fragment was judged on (RFC 1858, RFC 3128).
    let min = match proto {
        ipproto::TCP => 20,
        ipproto::UDP | ipproto::ICMP | ipproto::ICMPV6 => 8,
        _ => 0,
    };
    if offset < min {
        return Decision::MALFORMED;
    }
    match tables.fragment(key) {
        // Starting inside what the first fragment was judged on: an overlap that could rewrite
        // it.
        Some(v) if offset < usize::from(v.guard) => Decision::MALFORMED,
        Some(v) => Decision {
            action: u32::from(v.action),
            slot: v.slot,
        },
        None => Decision::drop(slot::FRAGMENT_UNKNOWN),
    }
}

/// One step of an IPv6 extension-header walk.
enum Ext {
    /// `nh` is not an extension header: the transport header starts here.
    Upper,
    /// An extension header of `len` bytes followed by `next`.
    Skip { next: u8, len: usize },
    /// A fragment header.
    Fragment {
        next: u8,
        offset: usize,
        more: bool,
        id: u32,
    },
    /// The header does not fit before `end`.
    Truncated,
}

/// Whether `nh` names an IPv6 extension header the parser walks.
#[inline(always)]
const fn is_ipv6_ext(nh: u8) -> bool {
    matches!(nh, 0 | 43 | 44 | 51 | 60 | 135 | 139 | 140)
}

#[inline(always)]
fn ipv6_ext<P: Packet + ?Sized>(pkt: &P, nh: u8, cur: usize, end: usize) -> Ext {
    if !is_ipv6_ext(nh) {
        return Ext::Upper;
    }
    // Every extension header is a multiple of eight bytes; the fragment header is exactly eight.
    let Some(h) = pkt.header(cur, 8) else {
        return Ext::Truncated;
    };
    let (next, len_field) = (h.u8(0), h.u8(1));
    let len = match nh {
        44 => 8,
        51 => (usize::from(len_field) + 2) * 4,
        _ => (usize::from(len_field) + 1) * 8,
    };
    if cur + len > end {
        return Ext::Truncated;
    }
    if nh == 44 {
        let offset_flags = h.be16(2);
        let id = h.be32(4);
        return Ext::Fragment {
            next,
            offset: usize::from(offset_flags & 0xfff8),
            more: offset_flags & 1 != 0,
            id,
        };
    }
    Ext::Skip { next, len }
}

#[inline(always)]
fn ipv6<P: Packet + ?Sized, T: Tables>(
    pkt: &P,
    tables: &T,
    direction: Direction,
    off: usize,
    frag: &mut MaybeUninit<FragKey>,
) -> Outcome {
    let Some(h) = pkt.header(off, 40) else {
        return Outcome::only(Decision::MALFORMED);
    };
    let (vtc, payload, mut nh, hop_limit) = (h.u8(0), h.be16(4), h.u8(6), h.u8(7));
    let src = h.array::<16>(8);
    let dst = h.array::<16>(24);
    if vtc >> 4 != 6 {
        return Outcome::only(Decision::MALFORMED);
    }
    if payload == 0 {
        // Jumbogram (hop-by-hop jumbo option) or an empty packet: neither belongs on a WAN.
        return Outcome::only(Decision::UNSUPPORTED);
    }
    let end = off + 40 + usize::from(payload);
    if end > pkt.len() {
        return Outcome::only(Decision::MALFORMED);
    }
    let mut cur = off + 40;
    let mut seen_fragment = false;
    let mut first_fragment = false;
    let mut frag_start = 0;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match ipv6_ext(pkt, nh, cur, end) {
            Ext::Upper => break,
            Ext::Truncated => return Outcome::only(Decision::MALFORMED),
            Ext::Skip { next, len } => {
                nh = next;
                cur += len;
            }
            Ext::Fragment {
                next,
                offset,
                more,
                id,
            } => {
                if seen_fragment {
                    return Outcome::only(Decision::MALFORMED);
                }
                seen_fragment = true;
                nh = next;
                cur += 8;
                frag_start = cur;
                if offset != 0 || more {
                    frag.write(FragKey {
                        src,
                        dst,
                        id,
                        proto: next,
                        family: 6,
                        direction: direction as u8,
                        _pad: 0,
                    });
                }
                if offset != 0 {
                    // SAFETY: written just above (offset != 0).
                    let key = unsafe { frag.assume_init_ref() };
                    return Outcome::only(later_fragment(tables, key, next, offset));
                }
                first_fragment = more;
            }
        }
    }
    if is_ipv6_ext(nh) {
        return Outcome::only(Decision::UNSUPPORTED);
    }
    let addrs = Addrs::V6 { src, dst };
    let decision = transport(
        pkt,
        tables,
        direction,
        nh,
        cur,
        end,
        &addrs,
        hop_limit,
        first_fragment,
    );
    if first_fragment {
        Outcome::first_fragment(decision, frag_start, end)
    } else {
        Outcome::only(decision)
    }
}

/// Decides on the transport header at `l4`, which must end by `end` (the end of the IP payload).
#[inline(always)]
#[expect(
    clippy::too_many_arguments,
    reason = "kept flat so the BPF program stays one function"
)]
fn transport<P: Packet + ?Sized, T: Tables>(
    pkt: &P,
    tables: &T,
    direction: Direction,
    proto: u8,
    l4: usize,
    end: usize,
    addrs: &Addrs,
    hop_limit: u8,
    first_fragment: bool,
) -> Decision {
    let v6 = matches!(addrs, Addrs::V6 { .. });
    match proto {
        ipproto::TCP => {
            let Some(h) = pkt.header(l4, 20) else {
                return Decision::MALFORMED;
            };
            let (sport, dport, flags) = (h.be16(0), h.be16(2), h.u8(13));
            let doff = usize::from(h.u8(12) >> 4) * 4;
            if doff < 20 || l4 + doff > end {
                return Decision::MALFORMED;
            }
            let seen = Seen {
                direction,
                proto,
                sport,
                dport,
                flags,
                len: pkt.len() as u64,
            };
            ports(tables, &seen, addrs)
        }
        ipproto::UDP => {
            let Some(h) = pkt.header(l4, 8) else {
                return Decision::MALFORMED;
            };
            let (sport, dport, ulen) = (h.be16(0), h.be16(2), h.be16(4));
            // A first fragment carries the length of the whole datagram, which has to reach
            // past this fragment; an unfragmented one must fit in its packet.
            let udp_end = l4 + usize::from(ulen);
            let inconsistent = if first_fragment {
                udp_end <= end
            } else {
                udp_end > end
            };
            if ulen < 8 || inconsistent {
                return Decision::MALFORMED;
            }
            let seen = Seen {
                direction,
                proto,
                sport,
                dport,
                flags: 0,
                len: pkt.len() as u64,
            };
            ports(tables, &seen, addrs)
        }
        ipproto::ICMP if !v6 => {
            let Some(h) = pkt.header(l4, 8) else {
                return Decision::MALFORMED;
            };
            if l4 + 8 > end {
                return Decision::MALFORMED;
            }
            match h.u8(0) {
                // Destination unreachable (PMTU discovery), time exceeded, parameter problem.
                3 | 11 | 12 => icmp_error(pkt, tables, direction, l4 + 8, end, false),
                _ => Decision::DEFAULT_BLOCK,
            }
        }
        ipproto::ICMPV6 if v6 => {
            let Some(h) = pkt.header(l4, 8) else {
                return Decision::MALFORMED;
            };
            if l4 + 8 > end {
                return Decision::MALFORMED;
            }
            match h.u8(0) {
                // Destination unreachable, packet too big, time exceeded, parameter problem.
                1..=4 => icmp_error(pkt, tables, direction, l4 + 8, end, true),
                // Router solicitation/advertisement, neighbour solicitation/advertisement,
                // redirect. RFC 4861 makes receivers discard them unless the hop limit is 255,
                // which proves they were not forwarded.
                133..=137 => {
                    if hop_limit == 255 && tables.config().allowances & allow::ICMPV6_ND != 0 {
                        Decision::pass(slot::ICMPV6_ND)
                    } else {
                        Decision::DEFAULT_BLOCK
                    }
                }
                _ => Decision::DEFAULT_BLOCK,
            }
        }
        _ => Decision::DEFAULT_BLOCK,
    }
}

/// A TCP or UDP packet as the port stage sees it.
struct Seen {
    direction: Direction,
    proto: u8,
    sport: u16,
    dport: u16,
    flags: u8,
    len: u64,
}

impl Seen {
    /// (remote port, local port).
    #[inline(always)]
    const fn ports(&self) -> (u16, u16) {
        match self.direction {
            Direction::Ingress => (self.sport, self.dport),
            Direction::Egress => (self.dport, self.sport),
        }
    }

    #[inline(always)]
    const fn proto_idx(&self) -> u32 {
        if self.proto == ipproto::TCP {
            PROTO_IDX_TCP
        } else {
            PROTO_IDX_UDP
        }
    }
}

/// TCP or UDP: the rule that decides, or the default block. In stateful mode an inbound packet
/// passes when it belongs to a live flow; an allowed outbound one opens or refreshes its flow.
#[inline(always)]
fn ports<T: Tables>(tables: &T, seen: &Seen, addrs: &Addrs) -> Decision {
    let (remote_port, local_port) = seen.ports();
    let proto_idx = seen.proto_idx();
    // Cheapest first: a remote port no rule names can be neither allowed nor part of a flow
    // (flows are opened only towards ports a rule names).
    let mask = tables.port_mask(port_index(PORT_TABLE_REMOTE, proto_idx, remote_port));
    if mask == 0 {
        return Decision::DEFAULT_BLOCK;
    }
    let cfg = tables.config();
    let remote = addrs.remote(seen.direction);
    if cfg.mode != MODE_STATEFUL {
        return match_rules(tables, cfg, mask, proto_idx, local_port, remote)
            .unwrap_or(Decision::DEFAULT_BLOCK);
    }
    let key = addrs.flow_key(seen.direction, seen.proto, remote_port, local_port);
    match seen.direction {
        Direction::Ingress => {
            match tables.flow_ingress(cfg, &key, seen.flags, seen.len) {
                FlowHit::Live(rule) => return Decision::pass(rule_slot(rule)),
                FlowHit::Stale => {
                    // Opened under an earlier rule set: judged as its outbound packets would be
                    // now (every rule naming the remote port, for this local port and address).
                    let rule = match_rules(tables, cfg, mask, proto_idx, local_port, remote)
                        .filter(Decision::passes)
                        .map(|d| d.slot - FIXED_SLOTS);
                    if let Some(rule) = rule {
                        tables.flow_rebind(cfg, &key, rule, seen.flags, seen.len);
                        return Decision::pass(rule_slot(rule));
                    }
                }
                FlowHit::Miss => {}
            }
            match_rules(
                tables,
                cfg,
                mask & cfg.ingress_mask,
                proto_idx,
                local_port,
                remote,
            )
            .unwrap_or(Decision::DEFAULT_BLOCK)
        }
        Direction::Egress => {
            let Some(decision) = match_rules(tables, cfg, mask, proto_idx, local_port, remote)
            else {
                return Decision::DEFAULT_BLOCK;
            };
            if decision.passes() {
                tables.flow_egress(
                    cfg,
                    &key,
                    decision.slot - FIXED_SLOTS,
                    cfg.generation,
                    seen.flags,
                    seen.len,
                );
            }
            decision
        }
    }
}

/// The first rule of `mask` (the rules naming the remote port) that holds for this local port
/// and remote address.
#[inline(always)]
fn match_rules<T: Tables>(
    tables: &T,
    cfg: &Config,
    mut mask: u64,
    proto_idx: u32,
    local_port: u16,
    remote: Remote,
) -> Option<Decision> {
    if mask & cfg.local_port_mask != 0 {
        let local = tables.port_mask(port_index(PORT_TABLE_LOCAL, proto_idx, local_port));
        mask &= !cfg.local_port_mask | local;
    }
    if mask == 0 {
        return None;
    }
    let mut lowest = mask & mask.wrapping_neg();
    // When the first candidate holds for any address, no network can change the answer: skip
    // the longest-prefix match (the common case: TCP 443).
    if lowest & cfg.any_mask == 0 {
        let nets = match remote {
            Remote::V4(addr) => tables.net_mask_v4(addr),
            Remote::V6(addr) => tables.net_mask_v6(addr),
        };
        mask &= nets | cfg.any_mask;
        if mask == 0 {
            return None;
        }
        lowest = mask & mask.wrapping_neg();
    }
    Some(Decision {
        action: if cfg.allow_mask & lowest != 0 {
            ACTION_PASS
        } else {
            ACTION_DROP
        },
        slot: rule_slot(lowest_bit(lowest)),
    })
}

/// An ICMP error whose quoted packet starts at `quoted`: it passes when the allowance is on and
/// the quoted packet, seen in the opposite direction, is one a rule allows.
#[inline(always)]
fn icmp_error<P: Packet + ?Sized, T: Tables>(
    pkt: &P,
    tables: &T,
    direction: Direction,
    quoted: usize,
    end: usize,
    v6: bool,
) -> Decision {
    if tables.config().allowances & allow::ICMP_ERRORS == 0 {
        return Decision::DEFAULT_BLOCK;
    }
    // The quoted packet travelled the other way: for an error arriving from the WAN it is one we
    // sent, so its destination is the remote end.
    let (remote_is_dst, quoted_direction) = match direction {
        Direction::Ingress => (true, Direction::Egress),
        Direction::Egress => (false, Direction::Ingress),
    };
    let (proto, l4, addrs) = if v6 {
        let Some(h) = pkt.header(quoted, 40) else {
            return Decision::MALFORMED;
        };
        if h.u8(0) >> 4 != 6 {
            return Decision::MALFORMED;
        }
        // Quoted packets are judged by the transport header right after the fixed header; one
        // with extension headers (rare on a reply path) is not matched.
        (
            h.u8(6),
            quoted + 40,
            Addrs::V6 {
                src: h.array::<16>(8),
                dst: h.array::<16>(24),
            },
        )
    } else {
        let Some(h) = pkt.header(quoted, 20) else {
            return Decision::MALFORMED;
        };
        let ihl = usize::from(h.u8(0) & 0x0f) * 4;
        if h.u8(0) >> 4 != 4 || ihl < 20 {
            return Decision::MALFORMED;
        }
        if h.be16(6) & 0x1fff != 0 {
            return Decision::DEFAULT_BLOCK;
        }
        let src = h.array::<4>(12);
        let dst = h.array::<4>(16);
        (h.u8(9), quoted + ihl, Addrs::V4 { src, dst })
    };
    let proto_idx = match proto {
        ipproto::TCP => PROTO_IDX_TCP,
        ipproto::UDP => PROTO_IDX_UDP,
        _ => return Decision::DEFAULT_BLOCK,
    };
    // An error quotes at least the first eight bytes of the transport header: the ports.
    let Some(ports) = pkt.header(l4, 4) else {
        return Decision::MALFORMED;
    };
    let (sport, dport) = (ports.be16(0), ports.be16(2));
    if l4 + 4 > end {
        return Decision::MALFORMED;
    }
    let (remote_port, local_port) = if remote_is_dst {
        (dport, sport)
    } else {
        (sport, dport)
    };
    let cfg = tables.config();
    let mask = tables.port_mask(port_index(PORT_TABLE_REMOTE, proto_idx, remote_port));
    let allowed = if cfg.mode == MODE_STATEFUL {
        // The quoted packet must belong to a live flow.
        let key = addrs.flow_key(quoted_direction, proto, remote_port, local_port);
        mask != 0 && tables.flow_peek(cfg, &key).is_some()
    } else {
        mask != 0
            && match_rules(
                tables,
                cfg,
                mask,
                proto_idx,
                local_port,
                addrs.remote(quoted_direction),
            )
            .is_some_and(|d| d.passes())
    };
    if allowed {
        Decision::pass(slot::ICMP_ERRORS)
    } else {
        Decision::DEFAULT_BLOCK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_bit_matches_trailing_zeros() {
        for i in 0..64 {
            let m = 1u64 << i;
            assert_eq!(lowest_bit(m), m.trailing_zeros());
            assert_eq!(lowest_bit(m | (1 << 63)), i);
            assert_eq!(lowest_bit(u64::MAX << i), i);
        }
        assert_eq!(lowest_bit(0), 64);
    }

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
