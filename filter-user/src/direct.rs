//! The builder of the IPv4 direct stage (`filter_common::nets`): the nodes and the mask table
//! that decide an address in a few array reads, from the compiled prefixes.
//!
//! Memory: `64 B x (4,096 + nodes below the root) + 8 B x distinct masks`. A prefix of length L
//! longer than /16 adds at most `ceil((L - 16) / 4)` nodes (fewer when prefixes share them), so
//! n prefixes take at most `256 KiB + n x 256 B`, and never more than [`MAX_NODES`] nodes
//! (16 MiB): past them the blocks of the longest prefixes walk the trie (see [`Direct::build`]).

use std::collections::{BTreeMap, HashMap, VecDeque};

use filter_common::nets::{self, NODE_SLOTS, Node, ROOT_BITS, ROOT_NODES, STRIDE};
use ipnet::Ipv4Net;

/// The fewest IPv4 prefixes for which the loader builds the direct stage: below it the LPM
/// trie is shallow enough (measured: see ARCHITECTURE.md) and the stage's 256 KiB root is not
/// worth it, so its map holds one zeroed node and every address walks the trie.
pub const DIRECT_MIN_PREFIXES: usize = 64;

/// Most nodes the stage takes (16 MiB): past them, the longest prefixes' blocks (the levels are
/// built from the root down) walk the trie.
pub const MAX_NODES: usize = 1 << 18;

/// A built direct stage: what the maps `NET_DIRECT_V4` and `NET_MASKS_V4` hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Direct {
    /// The nodes: `0..ROOT_NODES` the root, the others the levels below.
    pub nodes: Vec<Node>,
    /// The distinct masks the leaves index.
    pub masks: Vec<u64>,
}

/// A prefix as the builder works on it: (network address, length, mask).
type Prefix = (u32, u32, u64);

struct Builder {
    nodes: Vec<Node>,
    masks: Vec<u64>,
    index: HashMap<u64, u32>,
}

/// A block still to split: its entry's place (node, slot), the block, the mask of the longest
/// prefix covering it and the prefixes inside it (by ascending length).
struct Job {
    node: usize,
    slot: usize,
    base: u32,
    len: u32,
    inherited: u64,
    prefixes: Vec<Prefix>,
}

impl Builder {
    /// The leaf entry of `mask`.
    fn leaf(&mut self, mask: u64) -> anyhow::Result<u32> {
        if let Some(&i) = self.index.get(&mask) {
            return Ok(nets::leaf(i));
        }
        let i = u32::try_from(self.masks.len())
            .ok()
            .filter(|&i| i < nets::LEAF)
            .ok_or_else(|| anyhow::anyhow!("too many distinct IPv4 rule masks"))?;
        self.masks.push(mask);
        self.index.insert(mask, i);
        Ok(nets::leaf(i))
    }

    /// The `2^width` entries of the block `base`/`len` split into `width`-bit sub-blocks, where
    /// `inherited` is the mask of the longest prefix covering the whole block and `prefixes`
    /// (by ascending length) those inside it and longer than `len`. Sub-blocks holding longer
    /// prefixes get entry 0 and a [`Job`] (for node `node`) in `jobs`.
    fn level(
        &mut self,
        node: usize,
        (base, len, width): (u32, u32, u32),
        inherited: u64,
        prefixes: &[Prefix],
        jobs: &mut VecDeque<Job>,
    ) -> anyhow::Result<Vec<u32>> {
        let slots = 1usize << width;
        let shift = 32 - len - width;
        let mut value = vec![inherited; slots];
        let mut deeper: BTreeMap<usize, Vec<Prefix>> = BTreeMap::new();
        for &(addr, plen, mask) in prefixes {
            let first = ((addr - base) >> shift) as usize;
            if plen <= len + width {
                // Ascending lengths: a longer prefix paints over the shorter ones.
                let count = 1usize << (len + width - plen);
                value[first..first + count].fill(mask);
            } else {
                deeper.entry(first).or_default().push((addr, plen, mask));
            }
        }
        let mut entries = Vec::with_capacity(slots);
        for (slot, &mask) in value.iter().enumerate() {
            if let Some(inside) = deeper.remove(&slot) {
                jobs.push_back(Job {
                    node: node + slot / NODE_SLOTS,
                    slot: slot % NODE_SLOTS,
                    base: base | (u32::try_from(slot)? << shift),
                    len: len + width,
                    inherited: mask,
                    prefixes: inside,
                });
                entries.push(0);
            } else {
                entries.push(self.leaf(mask)?);
            }
        }
        Ok(entries)
    }
}

impl Direct {
    /// The direct stage of `nets` (folded prefixes: each carries the bits of the prefixes
    /// containing it, so an address's mask is its longest match's).
    pub fn build(nets: &BTreeMap<Ipv4Net, u64>) -> anyhow::Result<Self> {
        Self::build_within(nets, MAX_NODES)
    }

    /// Like [`Direct::build`], with at most `max_nodes` nodes (never fewer than the root's).
    pub fn build_within(nets: &BTreeMap<Ipv4Net, u64>, max_nodes: usize) -> anyhow::Result<Self> {
        let mut prefixes: Vec<Prefix> = nets
            .iter()
            .map(|(net, &mask)| {
                let net = net.trunc();
                (u32::from(net.network()), u32::from(net.prefix_len()), mask)
            })
            .collect();
        prefixes.sort_by_key(|&(_, len, _)| len);
        let mut b = Builder {
            nodes: vec![[0; NODE_SLOTS]; ROOT_NODES as usize],
            masks: Vec::new(),
            index: HashMap::new(),
        };
        let mut jobs = VecDeque::new();
        let root = b.level(0, (0, 0, ROOT_BITS), 0, &prefixes, &mut jobs)?;
        for (node, chunk) in b.nodes.iter_mut().zip(root.chunks_exact(NODE_SLOTS)) {
            node.copy_from_slice(chunk);
        }
        // Level by level (the queue is first in, first out), within the node budget: past it,
        // the blocks left keep entry 0 and walk the trie.
        while let Some(job) = jobs.pop_front() {
            if b.nodes.len() >= max_nodes {
                break;
            }
            let node = b.nodes.len();
            b.nodes.push([0; NODE_SLOTS]);
            let entries = b.level(
                node,
                (job.base, job.len, STRIDE),
                job.inherited,
                &job.prefixes,
                &mut jobs,
            )?;
            b.nodes[node].copy_from_slice(&entries);
            b.nodes[job.node][job.slot] = u32::try_from(node)?;
        }
        Ok(Self {
            nodes: b.nodes,
            masks: b.masks,
        })
    }

    /// The direct stage the loader fills for `nets`: none below [`DIRECT_MIN_PREFIXES`].
    pub fn for_rule_set(nets: &BTreeMap<Ipv4Net, u64>) -> anyhow::Result<Option<Self>> {
        if nets.len() < DIRECT_MIN_PREFIXES {
            return Ok(None);
        }
        Self::build(nets).map(Some)
    }

    /// The mask of `addr` as the kernel finds it: the direct stage, then `trie` (the LPM
    /// trie's lookup) where the stage does not decide.
    pub fn lookup(&self, addr: [u8; 4], trie: impl FnOnce() -> u64) -> u64 {
        nets::lookup(
            u32::from_be_bytes(addr),
            |n| self.nodes.get(n as usize),
            |i| self.masks.get(i as usize).copied(),
        )
        .unwrap_or_else(trie)
    }

    /// Bytes the two maps take: 64 per node, 8 per mask.
    pub fn bytes(&self) -> usize {
        self.nodes.len() * size_of::<Node>() + self.masks.len() * size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(nets: &[(&str, u64)]) -> BTreeMap<Ipv4Net, u64> {
        nets.iter()
            .map(|(n, m)| (n.parse().expect("a network"), *m))
            .collect()
    }

    #[test]
    fn nested_prefixes_take_the_longest_match() {
        let nets = set(&[
            ("198.51.0.0/16", 0b100),
            ("198.51.100.0/24", 0b101),
            ("198.51.100.128/25", 0b111),
            ("203.0.113.7/32", 0b1000),
        ]);
        let d = Direct::build(&nets).expect("built");
        let no_walk = || panic!("the stage decides every address once built");
        assert_eq!(d.lookup([198, 51, 100, 200], no_walk), 0b111);
        assert_eq!(d.lookup([198, 51, 100, 1], no_walk), 0b101);
        assert_eq!(d.lookup([198, 51, 7, 1], no_walk), 0b100);
        assert_eq!(d.lookup([203, 0, 113, 7], no_walk), 0b1000);
        assert_eq!(d.lookup([203, 0, 113, 8], no_walk), 0);
        assert_eq!(d.lookup([192, 0, 2, 1], no_walk), 0);
        // Root + /16 -> /20 -> /24 (198.51.100) + /24 -> /28 (the /25) ; 203.0/16 down to /32.
        assert_eq!(d.nodes.len(), ROOT_NODES as usize + 3 + 4);
    }

    #[test]
    fn a_default_route_covers_everything() {
        let d = Direct::build(&set(&[("0.0.0.0/0", 1), ("10.0.0.0/8", 3)])).expect("built");
        assert_eq!(d.nodes.len(), ROOT_NODES as usize);
        assert_eq!(d.lookup([1, 2, 3, 4], || 9), 1);
        assert_eq!(d.lookup([10, 255, 3, 4], || 9), 3);
    }

    #[test]
    fn small_sets_are_left_to_the_trie() {
        let nets = set(&[("198.51.100.0/24", 1)]);
        assert_eq!(Direct::for_rule_set(&nets).expect("no error"), None);
    }
}
