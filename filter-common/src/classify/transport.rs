//! The transport layer: TCP, UDP (to the rule lookup and, in stateful mode, the flow table),
//! ICMP and ICMPv6 (errors judged by the packet they quote, neighbour discovery).

use super::{
    addrs::Addrs,
    outcome::Decision,
    rules::{Domains, match_rules},
    tables::{FlowHit, Tables},
};
use crate::{
    Config, Direction, FIXED_SLOTS, FlowKey, MODE_STATEFUL, PORT_TABLE_REMOTE, PROTO_IDX_TCP,
    PROTO_IDX_UDP, allow,
    domain::{is_dns_flow, mark},
    ipproto,
    packet::{Header as _, Packet},
    port_index, rule_slot, slot,
};

/// Decides on the transport header at `l4`, which must end by `end` (the end of the IP payload).
#[inline(always)]
#[expect(
    clippy::too_many_arguments,
    reason = "kept flat so the BPF program stays one function"
)]
pub(super) fn transport<P: Packet + ?Sized, T: Tables>(
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
        return match_rules(
            tables,
            cfg,
            mask,
            proto_idx,
            local_port,
            remote,
            Domains::Never,
        )
        .unwrap_or(Decision::DEFAULT_BLOCK);
    }
    let key = addrs.flow_key(seen.direction, seen.proto, remote_port, local_port);
    match seen.direction {
        Direction::Ingress => {
            match tables.flow_ingress(cfg, &key, seen.flags, seen.len) {
                FlowHit::Live(rule) => {
                    return dns_mark(cfg, &key, Decision::pass(rule_slot(rule)), mark::ANSWER);
                }
                FlowHit::Stale => {
                    // Opened under an earlier rule set: judged as its outbound packets would be
                    // now (every rule naming the remote port, for this local port and address).
                    let rule = match_rules(
                        tables,
                        cfg,
                        mask,
                        proto_idx,
                        local_port,
                        remote,
                        Domains::Learned,
                    )
                    .filter(Decision::passes)
                    .map(|d| d.slot - FIXED_SLOTS);
                    if let Some(rule) = rule {
                        tables.flow_rebind(cfg, &key, rule, seen.flags, seen.len);
                        return dns_mark(cfg, &key, Decision::pass(rule_slot(rule)), mark::ANSWER);
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
                Domains::Never,
            )
            .unwrap_or(Decision::DEFAULT_BLOCK)
        }
        Direction::Egress => {
            let Some(decision) = match_rules(
                tables,
                cfg,
                mask,
                proto_idx,
                local_port,
                remote,
                Domains::LearnedOrFlow(&key),
            ) else {
                return Decision::DEFAULT_BLOCK;
            };
            if !decision.passes() {
                return decision;
            }
            tables.flow_egress(
                cfg,
                &key,
                decision.slot - FIXED_SLOTS,
                cfg.generation,
                seen.flags,
                seen.len,
            );
            dns_mark(cfg, &key, decision, mark::QUERY)
        }
    }
}

/// `decision`, a pass of the packet of flow `key`, with the DNS mark `dns` when the flow is a
/// DNS flow (UDP, remote port 53) and the rule set has domain sets.
#[inline(always)]
fn dns_mark(cfg: &Config, key: &FlowKey, decision: Decision, dns: u32) -> Decision {
    if cfg.domain_sets != 0 && is_dns_flow(key) {
        decision.marked(dns)
    } else {
        decision
    }
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
                Domains::Never,
            )
            .is_some_and(|d| d.passes())
    };
    if allowed {
        Decision::pass(slot::ICMP_ERRORS)
    } else {
        Decision::DEFAULT_BLOCK
    }
}
