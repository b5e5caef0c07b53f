//! Reading what domain rules learned (issue 13) back from an attached filter's pins: the
//! `learned` map (every address a DNS answer taught, per domain set until when and by which
//! pattern) and the `dns_stats` counters (per CPU, summed). A filter without domain rules has
//! both, empty and zero.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use anyhow::Context as _;
use aya::maps::{HashMap, Map, MapData, MapError, PerCpuArray};
use filter_common::{
    MAX_DOMAIN_SETS,
    learn::{AddrKey, LearnedValue, stat},
    names::pin,
};

use super::read::Attached;

/// The learned-address map of a filter, opened from its pin.
pub struct LearnedMap {
    map: HashMap<MapData, AddrKey, LearnedValue>,
    max_entries: u32,
}

impl LearnedMap {
    /// Opens the `learned` map pinned in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(pin::LEARNED);
        let data =
            MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
        let max_entries = data
            .info()
            .with_context(|| format!("reading the size of {}", path.display()))?
            .max_entries();
        let map = HashMap::try_from(Map::LruHashMap(data))
            .with_context(|| format!("{} is not the learned-address map", path.display()))?;
        Ok(Self { map, max_entries })
    }

    /// Most addresses the map holds (when full, the least recently used go).
    pub const fn max_entries(&self) -> u32 {
        self.max_entries
    }

    /// The entry of `key`, if the map has one.
    pub fn get(&self, key: &AddrKey) -> anyhow::Result<Option<LearnedValue>> {
        match self.map.get(key, 0) {
            Ok(value) => Ok(Some(value)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(e).context("looking an address up in the pinned learned map"),
        }
    }

    /// Every entry (an entry evicted while the walk goes on is simply not listed).
    pub fn entries(&self) -> Vec<(AddrKey, LearnedValue)> {
        self.map.iter().filter_map(Result::ok).collect()
    }
}

/// The address of a learned-map key (IPv4 in its first four bytes).
pub const fn key_addr(key: &AddrKey) -> IpAddr {
    let a = key.addr;
    if key.family == 4 {
        IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from_bits(u128::from_be_bytes(a)))
    }
}

/// The learned-map key of `addr`.
pub fn addr_key(addr: IpAddr) -> AddrKey {
    let mut bytes = [0u8; 16];
    let family = match addr {
        IpAddr::V4(v4) => {
            bytes[..4].copy_from_slice(&v4.octets());
            4
        }
        IpAddr::V6(v6) => {
            bytes = v6.octets();
            6
        }
    };
    AddrKey {
        addr: bytes,
        family,
        _pad: [0; 3],
    }
}

/// One (address, domain set) a DNS answer taught, as `learned` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearnedSet {
    /// The address.
    pub addr: IpAddr,
    /// The domain set (bit of the filter's sets; its name is the record's `domain_sets[set]`).
    pub set: usize,
    /// Index of the pattern the question matched, in the set's patterns.
    pub pattern: u16,
    /// When the address stops holding for the set (CLOCK_MONOTONIC_COARSE, ns).
    pub expires_ns: u64,
    /// When an answer last taught the address (any set).
    pub learned_ns: u64,
    /// The TTL of the record that last taught it, as the answer gave it.
    pub ttl: u32,
}

/// The (address, set) pairs of the learned entries `entries`: one for each set an entry was
/// ever learned for (its expiry is not zero), expired or not.
pub fn learned_sets(entries: &[(AddrKey, LearnedValue)]) -> Vec<LearnedSet> {
    let mut out = Vec::new();
    for (key, value) in entries {
        for set in 0..MAX_DOMAIN_SETS {
            if value.expires_ns[set] == 0 {
                continue;
            }
            out.push(LearnedSet {
                addr: key_addr(key),
                set,
                pattern: value.patterns[set],
                expires_ns: value.expires_ns[set],
                learned_ns: value.learned_ns,
                ttl: value.ttl,
            });
        }
    }
    out.sort_by_key(|s| (s.addr, s.set));
    out
}

/// Entries of `entries` that hold for some set at `now` (the addresses a domain rule admits).
pub fn unexpired(entries: &[(AddrKey, LearnedValue)], now: u64) -> usize {
    entries
        .iter()
        .filter(|(_, v)| filter_common::learn::learned_sets(v, now) != 0)
        .count()
}

/// The DNS statistics of a filter, by [`stat`] slot, summed over CPUs.
pub type DnsStats = [u64; stat::ENTRIES as usize];

/// Reads the `dns_stats` map pinned in `dir`, summed over CPUs.
pub fn read_dns_stats(dir: &Path) -> anyhow::Result<DnsStats> {
    let path = dir.join(pin::DNS_STATS);
    let data = MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
    let map: PerCpuArray<_, u64> = PerCpuArray::try_from(Map::PerCpuArray(data))
        .with_context(|| format!("{} is not the DNS statistics map", path.display()))?;
    let mut out = [0u64; stat::ENTRIES as usize];
    for (slot, sum) in (0..stat::ENTRIES).zip(out.iter_mut()) {
        let values = map
            .get(&slot, 0)
            .with_context(|| format!("reading slot {slot} of {}", path.display()))?;
        *sum = values.iter().copied().fold(0u64, u64::wrapping_add);
    }
    Ok(out)
}

impl Attached {
    /// The filter's learned-address map.
    pub fn learned_map(&self) -> anyhow::Result<LearnedMap> {
        LearnedMap::open(&self.dir)
    }

    /// The filter's DNS statistics, summed over CPUs.
    pub fn dns_stats(&self) -> anyhow::Result<DnsStats> {
        read_dns_stats(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_addresses_convert_both_ways() {
        for text in ["198.51.100.7", "2001:db8::7", "::ffff:192.0.2.1"] {
            let addr: IpAddr = text.parse().unwrap();
            assert_eq!(key_addr(&addr_key(addr)), addr, "{text}");
        }
        assert_eq!(addr_key("192.0.2.1".parse().unwrap()).family, 4);
        assert_eq!(addr_key("2001:db8::1".parse().unwrap()).family, 6);
    }

    /// One pair per set an entry was learned for, expired ones included; sets it was never
    /// learned for (expiry 0) are not listed.
    #[test]
    fn an_entry_gives_one_pair_per_learned_set() {
        let mut value = LearnedValue {
            learned_ns: 5,
            ttl: 30,
            ..LearnedValue::default()
        };
        value.expires_ns[0] = 100;
        value.expires_ns[2] = 10;
        value.patterns[0] = 3;
        value.patterns[2] = 1;
        let entries = [(addr_key("198.51.100.7".parse().unwrap()), value)];
        let sets = learned_sets(&entries);
        assert_eq!(
            sets.iter()
                .map(|s| (s.set, s.pattern, s.expires_ns))
                .collect::<Vec<_>>(),
            [(0, 3, 100), (2, 1, 10)]
        );
        assert_eq!(unexpired(&entries, 50), 1);
        assert_eq!(unexpired(&entries, 100), 0);
    }
}
