//! The rule lookup: the port map's mask of rules naming the remote port, narrowed by the local
//! port and the remote address's networks; the first rule left decides.

use super::{
    addrs::{Remote, widen},
    outcome::Decision,
    tables::Tables,
};
use crate::{Config, FlowKey, PORT_TABLE_LOCAL, domain::rules_of_sets, port_index, rule_slot};

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

/// When domain rules may hold, in a rule lookup. Each caller passes a constant, so the code of
/// the cases it does not need is not in its program (the verifier walks every copy).
#[derive(Clone, Copy)]
pub(super) enum Domains<'a> {
    /// Never: stateless lookups (nothing is learned without stateful mode: the rules fail
    /// closed), the stateful admission by port and network alone, ICMP errors' quotes.
    Never,
    /// For an address learned for one of their sets (a flow rechecked after a swap).
    Learned,
    /// For a learned address, or for the packets of their live flow, this key (outbound, so a
    /// connection outlives the TTL of the answer that let it open).
    LearnedOrFlow(&'a FlowKey),
}

/// The first rule of `mask` (the rules naming the remote port) that holds for this local port
/// and remote address; domain rules as `domains` says. When a domain rule was the only thing
/// that could have allowed the packet, the answer is [`Decision::NOT_LEARNED`].
#[inline(always)]
pub(super) fn match_rules<T: Tables>(
    tables: &T,
    cfg: &Config,
    mut mask: u64,
    proto_idx: u32,
    local_port: u16,
    remote: Remote,
    domains: Domains<'_>,
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
        let candidates = mask & cfg.domain_mask;
        let learned = match domains {
            Domains::Never => 0,
            _ if candidates == 0 => 0,
            Domains::Learned => domain_rules(tables, cfg, candidates, remote, None),
            Domains::LearnedOrFlow(key) => domain_rules(tables, cfg, candidates, remote, Some(key)),
        };
        mask &= nets | cfg.any_mask | learned;
        if mask == 0 {
            return (candidates != 0).then_some(Decision::NOT_LEARNED);
        }
        lowest = mask & mask.wrapping_neg();
    }
    let slot = rule_slot(lowest_bit(lowest));
    Some(if cfg.allow_mask & lowest != 0 {
        Decision::pass(slot)
    } else {
        Decision::drop(slot)
    })
}

/// Of the domain rules `domains`, those that hold for `remote`: the rules of the sets it is
/// learned for, or else the rule of the live flow `flow` when it is one of them.
#[inline(always)]
fn domain_rules<T: Tables>(
    tables: &T,
    cfg: &Config,
    domains: u64,
    remote: Remote,
    flow: Option<&FlowKey>,
) -> u64 {
    let sets = match remote {
        Remote::V4(addr) => tables.learned_sets(4, &widen(addr)),
        Remote::V6(addr) => tables.learned_sets(6, &addr),
    };
    let learned = rules_of_sets(cfg, sets) & domains;
    if learned != 0 {
        return learned;
    }
    match flow.and_then(|key| tables.flow_rule(cfg, key)) {
        Some(rule) if rule < 64 => (1u64 << rule) & domains,
        _ => 0,
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
}
