//! The classifier's tables over an attached filter's pinned maps: `gotofw explain IFACE` runs the
//! classifier on the host over the very port array, configuration and prefix tries the kernel
//! program reads (the kernel does the longest-prefix match) and the addresses its domain rules
//! learned, with a flow table of its own.

use std::cell::RefCell;

use anyhow::{Context as _, anyhow, bail};
use aya::maps::{Array, LpmTrie, Map, MapData, MapError, lpm_trie::Key};
use filter_common::{
    ARMED, Config, FlowHit, FlowKey, FragKey, FragVerdict, Ipv4Key, Ipv6Key, PORT_MAP_ENTRIES,
    Tables,
    learn::{self, AddrKey},
    names::pin,
};

use crate::{
    compile::SoftTables,
    loader::{learned::LearnedMap, read::Attached},
};

/// The lookup maps of an attached filter, opened from its pins, and its configuration.
pub struct PinnedMaps {
    ports: Array<MapData, u64>,
    nets_v4: LpmTrie<MapData, Ipv4Key, u64>,
    nets_v6: LpmTrie<MapData, Ipv6Key, u64>,
    learned: LearnedMap,
    /// When the explained connection happens (CLOCK_MONOTONIC_COARSE, ns): a learned address
    /// holds for the sets it has not expired for by then.
    now: u64,
    config: Config,
    /// The first lookup that failed (other than "no such prefix"): a classification that met one
    /// is not the filter's and is refused.
    failure: RefCell<Option<String>>,
}

impl PinnedMaps {
    /// Opens the maps of `attached`; refuses a rule set that is not armed (its programs do not
    /// apply it).
    pub fn open(attached: &Attached) -> anyhow::Result<Self> {
        let dir = &attached.dir;
        let open = |name: &str| {
            MapData::from_pin(dir.join(name))
                .with_context(|| format!("opening {}/{name}", dir.display()))
        };
        let ports = Array::try_from(Map::Array(open(pin::PORTS)?)).context("the ports map")?;
        let nets_v4 = LpmTrie::try_from(Map::LpmTrie(open(pin::NETS_V4)?)).context("nets_v4")?;
        let nets_v6 = LpmTrie::try_from(Map::LpmTrie(open(pin::NETS_V6)?)).context("nets_v6")?;
        let learned = attached.learned_map()?;
        let config = attached.config()?;
        if config.armed != ARMED {
            bail!(
                "the rule set pinned in {} is not armed, so it is not the one the interface applies: run `gotofw status {}` to settle it, then explain again",
                dir.display(),
                attached.meta.interface
            );
        }
        Ok(Self {
            ports,
            nets_v4,
            nets_v6,
            learned,
            now: crate::loader::monotonic_coarse_ns(),
            config,
            failure: RefCell::new(None),
        })
    }

    /// The pinned configuration.
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Tables over these maps, with `flows` (an empty flow table of the caller's) for stateful
    /// mode.
    pub const fn tables<'a>(&'a self, flows: SoftTables<'a>) -> PinnedTables<'a> {
        PinnedTables { maps: self, flows }
    }

    /// An error when a lookup failed since the maps were opened.
    pub fn check(&self) -> anyhow::Result<()> {
        match self.failure.borrow().as_ref() {
            Some(what) => Err(anyhow!("{what}")),
            None => Ok(()),
        }
    }

    fn failed(&self, what: String) {
        self.failure.borrow_mut().get_or_insert(what);
    }

    fn lpm<K: aya::Pod>(
        &self,
        trie: &LpmTrie<MapData, K, u64>,
        key: K,
        bits: u32,
        map: &str,
    ) -> u64 {
        match trie.get(&Key::new(bits, key), 0) {
            Ok(mask) => mask,
            Err(MapError::KeyNotFound) => 0,
            Err(e) => {
                self.failed(format!(
                    "looking an address up in the pinned {map} map: {e}"
                ));
                0
            }
        }
    }
}

/// [`PinnedMaps`] as the classifier's tables: ports, configuration and networks from the pins;
/// flows and fragments from a host table (the explained connection's own, not the live ones).
pub struct PinnedTables<'a> {
    maps: &'a PinnedMaps,
    flows: SoftTables<'a>,
}

impl Tables for PinnedTables<'_> {
    fn port_mask(&self, index: u32) -> u64 {
        if index >= PORT_MAP_ENTRIES {
            return 0;
        }
        match self.maps.ports.get(&index, 0) {
            Ok(mask) => mask,
            Err(e) => {
                self.maps.failed(format!(
                    "reading entry {index} of the pinned ports map: {e}"
                ));
                0
            }
        }
    }

    fn config(&self) -> &Config {
        &self.maps.config
    }

    fn net_mask_v4(&self, addr: Ipv4Key) -> u64 {
        self.maps.lpm(&self.maps.nets_v4, addr, 32, "nets_v4")
    }

    fn net_mask_v6(&self, addr: Ipv6Key) -> u64 {
        self.maps.lpm(&self.maps.nets_v6, addr, 128, "nets_v6")
    }

    fn fragment(&self, key: &FragKey) -> Option<FragVerdict> {
        self.flows.fragment(key)
    }

    fn flow_ingress(&self, cfg: &Config, key: &FlowKey, tcp_flags: u8, len: u64) -> FlowHit {
        self.flows.flow_ingress(cfg, key, tcp_flags, len)
    }

    fn flow_rebind(&self, cfg: &Config, key: &FlowKey, rule: u32, tcp_flags: u8, len: u64) {
        self.flows.flow_rebind(cfg, key, rule, tcp_flags, len);
    }

    fn flow_egress(
        &self,
        cfg: &Config,
        key: &FlowKey,
        rule: u32,
        generation: u32,
        tcp_flags: u8,
        len: u64,
    ) {
        self.flows
            .flow_egress(cfg, key, rule, generation, tcp_flags, len);
    }

    fn flow_peek(&self, cfg: &Config, key: &FlowKey) -> Option<u32> {
        self.flows.flow_peek(cfg, key)
    }

    fn flow_rule(&self, cfg: &Config, key: &FlowKey) -> Option<u32> {
        self.flows.flow_rule(cfg, key)
    }

    /// The pinned learned map's answer, as the kernel's: the sets the address holds for now.
    fn learned_sets(&self, family: u8, addr: &[u8; 16]) -> u32 {
        let key = AddrKey {
            addr: *addr,
            family,
            _pad: [0; 3],
        };
        match self.maps.learned.get(&key) {
            Ok(Some(value)) => learn::learned_sets(&value, self.maps.now),
            Ok(None) => 0,
            Err(e) => {
                self.maps.failed(format!("{e:#}"));
                0
            }
        }
    }
}
