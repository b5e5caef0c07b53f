//! The rule lookup: the port map's mask of rules naming the remote port, narrowed by the local
//! port and the remote address's networks; the first rule left decides.

use super::{addrs::Remote, outcome::Decision, tables::Tables};
use crate::{ACTION_DROP, ACTION_PASS, Config, PORT_TABLE_LOCAL, port_index, rule_slot};

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

/// The first rule of `mask` (the rules naming the remote port) that holds for this local port
/// and remote address.
#[inline(always)]
pub(super) fn match_rules<T: Tables>(
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
