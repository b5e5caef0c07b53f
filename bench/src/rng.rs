//! A small deterministic random generator (splitmix64), and random network sets.

use std::{collections::HashSet, net::Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};

/// splitmix64: fast, and the same sequence on every run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub const fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Whether the /20 block `block` (the address's top 20 bits) may hold benchmark networks: not
/// 0/8, 10/8, 127/8, 224/3, nor the blocks of the TURN networks or of the addresses the
/// benchmark frames come from (198.51.100.0/24, 203.0.113.0/24, 192.0.2.0/24) or 198.18.0.0/15.
fn usable(block: u32) -> bool {
    let first = block << 12;
    let octet = first >> 24;
    if matches!(octet, 0 | 10 | 127) || octet >= 224 {
        return false;
    }
    let reserved: [(u32, u32); 9] = [
        (0x4440_0000, 19), // 68.64.0.0/19
        (0xadc7_0000, 18), // 173.199.0.0/18
        (0x4e6c_7c00, 23), // 78.108.124.0/23
        (0xcaad_1800, 21), // 202.173.24.0/21
        (0x17ef_e000, 19), // 23.239.224.0/19
        (0xc633_6400, 24), // 198.51.100.0/24
        (0xcb00_7100, 24), // 203.0.113.0/24
        (0xc000_0200, 24), // 192.0.2.0/24
        (0xc612_0000, 15), // 198.18.0.0/15
    ];
    reserved.iter().all(|&(net, len)| {
        // Overlap of [first, first + 4096) with the reserved network.
        let size = 1u32 << (32 - len);
        first + 4095 < net || first > net + (size - 1)
    })
}

/// `count` random, non-overlapping IPv4 networks: each in its own /20 block, of a random length
/// from /20 to /28, none overlapping the TURN networks or the benchmark's own addresses.
pub fn networks(count: usize, seed: u64) -> Vec<IpNet> {
    let mut rng = Rng::new(seed);
    let mut blocks = HashSet::with_capacity(count);
    let mut out = Vec::with_capacity(count);
    // Bounded: 2^20 blocks, most usable; the loop ends long before this bound.
    for _ in 0..count.saturating_mul(20).max(1000) {
        if out.len() == count {
            break;
        }
        let r = rng.next();
        let block = (r as u32) >> 12;
        if !usable(block) || !blocks.insert(block) {
            continue;
        }
        let len = 20 + ((r >> 32) % 9) as u8;
        let offset = ((r >> 40) as u32 & 0xfff) & !((1u32 << (32 - u32::from(len))) - 1);
        let addr = Ipv4Addr::from((block << 12) | offset);
        out.push(IpNet::V4(
            Ipv4Net::new(addr, len).expect("length 20-28 is valid"),
        ));
    }
    out
}

/// An address inside `net` (its first host).
pub fn inside(net: &IpNet) -> Ipv4Addr {
    match net {
        IpNet::V4(n) => Ipv4Addr::from(u32::from(n.network()) + 1),
        IpNet::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_do_not_overlap_and_avoid_the_frames() {
        let nets = networks(5000, 7);
        assert_eq!(nets.len(), 5000);
        let mut sorted: Vec<Ipv4Net> = nets
            .iter()
            .map(|n| match n {
                IpNet::V4(n) => *n,
                IpNet::V6(_) => unreachable!(),
            })
            .collect();
        sorted.sort();
        for pair in sorted.windows(2) {
            assert!(
                u32::from(pair[0].broadcast()) < u32::from(pair[1].network()),
                "{} overlaps {}",
                pair[0],
                pair[1]
            );
        }
        for addr in [
            crate::frames::OUTSIDE,
            crate::frames::TURN,
            Ipv4Addr::new(198, 18, 0, 1),
        ] {
            assert!(
                !nets.iter().any(|n| n.contains(&IpAddr::V4(addr))),
                "{addr}"
            );
        }
    }

    use std::net::IpAddr;
}
