//! The direct first stage of the IPv4 network lookup: a multibit trie in an `ARRAY` map, in
//! front of the kernel's LPM trie (`NETS_V4`), so that a source address is decided by a few
//! array reads the verifier inlines instead of a walk of the LPM trie node by node.
//!
//! The map `NET_DIRECT_V4` holds nodes of [`NODE_SLOTS`] `u32` entries. Nodes
//! `0..ROOT_NODES` are the root: together they are indexed by the address's top
//! [`ROOT_BITS`] bits (node = top 12 bits, slot = the next 4). Every further level takes the
//! next [`STRIDE`] bits. An entry is one of ([`step`]):
//! - `0`: not decided here, walk the LPM trie (a map that was not built holds one zeroed node,
//!   and a read beyond the map's end fails: both fall back to the trie, which always holds
//!   every prefix, so the stage can only be absent, never wrong);
//! - [`LEAF`] | i: the address's mask is entry `i` of `NET_MASKS_V4` (the distinct masks; a
//!   mask uses all 64 bits, so it cannot sit in the entry itself);
//! - any other value n: the next level is node n.
//!
//! User space builds the nodes (`filter-user`'s `direct` module); the kernel and the host tests
//! decode them with [`lookup`].

/// Entries per node: one per value of a [`STRIDE`]-bit chunk of the address.
pub const NODE_SLOTS: usize = 1 << STRIDE;

/// Address bits each level below the root consumes.
pub const STRIDE: u32 = 4;

/// Address bits the root consumes.
pub const ROOT_BITS: u32 = 16;

/// Nodes the root takes (`NODE_SLOTS` entries each): `2^ROOT_BITS / NODE_SLOTS`.
pub const ROOT_NODES: u32 = 1 << (ROOT_BITS - STRIDE);

/// Levels below the root: `(32 - ROOT_BITS) / STRIDE`.
pub const LEVELS: u32 = (32 - ROOT_BITS) / STRIDE;

/// The flag of an entry that decides (its other bits index the mask table).
pub const LEAF: u32 = 1 << 31;

/// One node of the direct stage: the entries of the [`NODE_SLOTS`] values of one address chunk.
pub type Node = [u32; NODE_SLOTS];

/// What one entry says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Not decided here: walk the LPM trie.
    Walk,
    /// The address's mask is this entry of the mask table.
    Mask(u32),
    /// The next level is this node.
    Next(u32),
}

/// Decodes one entry.
#[inline(always)]
#[must_use]
pub const fn step(entry: u32) -> Step {
    if entry == 0 {
        Step::Walk
    } else if entry & LEAF != 0 {
        Step::Mask(entry & !LEAF)
    } else {
        Step::Next(entry)
    }
}

/// The entry for a decided address whose mask is entry `index` of the mask table.
#[must_use]
pub const fn leaf(index: u32) -> u32 {
    LEAF | index
}

/// The mask of IPv4 address `addr` (host order) from the direct stage, or `None` when the
/// stage does not decide it (walk the LPM trie). `node(n)` reads node n (`None` beyond the
/// map), `mask(i)` entry i of the mask table.
#[inline(always)]
pub fn lookup<'a>(
    addr: u32,
    node: impl Fn(u32) -> Option<&'a Node>,
    mask: impl Fn(u32) -> Option<u64>,
) -> Option<u64> {
    // The root: node = top 12 bits, slot = the next 4.
    let mut entry = node(addr >> 20)?[((addr >> 16) & 0xf) as usize];
    let mut shift = 32 - ROOT_BITS;
    // Bounded: one level per STRIDE bits below the root.
    for _ in 0..LEVELS {
        match step(entry) {
            Step::Walk => return None,
            Step::Mask(index) => return mask(index),
            Step::Next(next) => {
                shift -= STRIDE;
                entry = node(next)?[((addr >> shift) & 0xf) as usize];
            }
        }
    }
    // The last level's entries all decide (a builder that put a node there is wrong: walk).
    match step(entry) {
        Step::Mask(index) => mask(index),
        Step::Walk | Step::Next(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_round_trips() {
        assert_eq!(step(0), Step::Walk);
        assert_eq!(step(leaf(0)), Step::Mask(0));
        assert_eq!(step(leaf(7)), Step::Mask(7));
        assert_eq!(step(ROOT_NODES), Step::Next(ROOT_NODES));
        assert_eq!(ROOT_NODES as usize * NODE_SLOTS, 1 << ROOT_BITS);
        assert_eq!(ROOT_BITS + LEVELS * STRIDE, 32);
    }

    #[test]
    fn an_unbuilt_stage_walks_the_trie() {
        let zero = [0u32; NODE_SLOTS];
        let one = |n: u32| (n == 0).then_some(&zero);
        assert_eq!(lookup(0x0001_0203, one, |_| Some(5)), None);
        assert_eq!(lookup(0xc633_640a, one, |_| Some(5)), None);
    }

    #[test]
    fn a_two_level_table_decides() {
        // 198.51.0.0/16 -> node 4096 (the root slot of 198.51/16); 198.51.96.0/20 -> mask 1,
        // the rest of the /16 mask 0.
        let top = 0xc633_0000u32;
        let zero = [0u32; NODE_SLOTS];
        let mut root = zero;
        root[((top >> 16) & 0xf) as usize] = ROOT_NODES;
        let mut child = [leaf(0); NODE_SLOTS];
        child[6] = leaf(1);
        // The root's nodes are all zeroed but the one of 198.48/12; node ROOT_NODES is the child.
        let node = |n: u32| match n {
            _ if n == top >> 20 => Some(&root),
            _ if n == ROOT_NODES => Some(&child),
            _ if n < ROOT_NODES => Some(&zero),
            _ => None,
        };
        let masks = [0u64, 0b101];
        let mask = |i: u32| masks.get(i as usize).copied();
        assert_eq!(lookup(0xc633_640a, node, mask), Some(0b101));
        assert_eq!(lookup(0xc633_0101, node, mask), Some(0));
        assert_eq!(lookup(0xc634_0101, node, mask), None);
    }
}
