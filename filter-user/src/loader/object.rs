//! The eBPF object: loaded unarmed, its maps filled from a compiled rule set, its programs
//! verified; not attached.

use std::path::Path;

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, LpmTrie, lpm_trie::Key},
    programs::{SchedClassifier, Xdp},
};
use filter_common::{
    learn,
    names::{map, pin, program},
};

use super::{
    fault::fault_point,
    meta::{meta_entries, write_meta},
    pins::{EGRESS_PROGRAM, PROGRAM},
};
use crate::{compile::Compiled, direct::Direct};

/// The compiled eBPF object gotofw loads (its XDP and TC programs), built by `build.rs` from
/// `filter-ebpf`.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gotofw-ebpf"));

/// Drop-log programs, tail-called by the main ones.
pub(super) const LOG_XDP_PROGRAM: &str = program::LOG_XDP;
pub(super) const LOG_TC_PROGRAM: &str = program::LOG_TC;

/// Loads the programs (the egress one in every mode but ingress-only) with their maps filled
/// from `compiled`, not attached.
pub fn load(compiled: &Compiled, meta: &[u8]) -> anyhow::Result<Ebpf> {
    load_reusing(compiled, meta, None)
}

/// Like [`load`], but with the flow map pinned at `flows` (when given) instead of a new one:
/// a rule-set swap keeps the flows, which the new rules then recheck at their next packet. The
/// drop log pinned next to it (`log` in the same directory), if any, is kept too, so a running
/// `gotofw log` goes on reading.
pub fn load_reusing(
    compiled: &Compiled,
    meta: &[u8],
    flows: Option<&Path>,
) -> anyhow::Result<Ebpf> {
    load_with(
        compiled,
        meta,
        Reuse {
            flows,
            learned: None,
        },
        filters_egress(compiled.config.mode),
    )
}

/// The pinned maps of the filter being replaced that the new rule set takes over.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Reuse<'a> {
    /// The flow map (same mode, same size): the new rules recheck its flows at their next
    /// packet.
    pub flows: Option<&'a Path>,
    /// The learned-address map (same domain sets, same size): what the old rule set learned
    /// holds for the new one, so clients with cached answers are not blocked by a reload.
    pub learned: Option<&'a Path>,
}

/// Whether a rule set of config `mode` filters at the egress (every mode but ingress-only).
pub(super) const fn filters_egress(mode: u32) -> bool {
    mode != filter_common::MODE_INGRESS_ONLY
}

/// Like [`load_reusing`], with the egress program loaded if `egress` (it passes everything in
/// ingress-only mode, and takes a filter's egress link in a `--replace` to ingress-only).
pub(super) fn load_with(
    compiled: &Compiled,
    meta: &[u8],
    reuse: Reuse<'_>,
    egress: bool,
) -> anyhow::Result<Ebpf> {
    let flows = reuse.flows;
    let v4 = u32::try_from(compiled.nets_v4.len().max(1)).context("too many IPv4 networks")?;
    let v6 = u32::try_from(compiled.nets_v6.len().max(1)).context("too many IPv6 networks")?;
    let domains = u32::try_from(compiled.domains.len().max(1)).context("too many domains")?;
    let servers = u32::try_from(compiled.dns_servers.len().max(1)).context("too many servers")?;
    let direct = Direct::for_rule_set(&compiled.nets_v4)?;
    let (nodes, masks) = direct_entries(direct.as_ref())?;
    let mut loader = EbpfLoader::new();
    loader
        .map_max_entries(map::NETS_V4, v4)
        .map_max_entries(map::NETS_V6, v6)
        .map_max_entries(map::NET_DIRECT_V4, nodes)
        .map_max_entries(map::NET_MASKS_V4, masks)
        .map_max_entries(map::FLOWS, compiled.flow_map_entries)
        .map_max_entries(map::REMOTES, compiled.config.remote_mask + 1)
        .map_max_entries(map::DOMAINS, domains)
        .map_max_entries(map::DNS_SERVERS, servers)
        .map_max_entries(map::LEARNED, learned_entries(compiled))
        // An LRU map's memory is taken at creation: none to spare without domain rules.
        .map_max_entries(
            map::QUERIES,
            if learns(&compiled.config) {
                learn::QUERY_TABLE_ENTRIES
            } else {
                1
            },
        )
        .map_max_entries(map::META, meta_entries(meta.len())?);
    let log = flows
        .and_then(Path::parent)
        .map(|dir| dir.join(pin::LOG))
        .filter(|p| p.exists());
    if let Some(path) = flows {
        loader.map_pin_path(map::FLOWS, path);
        // The remote summary goes with the flows it stamps: a new, empty one would tell the
        // kept flows' replies that they have no flow. (The swap keeps the flows only when it is
        // there.)
        if let Some(remotes) = path.parent().map(|dir| dir.join(pin::REMOTES)) {
            loader.map_pin_path(map::REMOTES, remotes);
        }
    }
    if let Some(path) = &log {
        loader.map_pin_path(map::LOG, path.as_path());
    }
    if let Some(path) = reuse.learned {
        loader.map_pin_path(map::LEARNED, path);
    }
    let mut ebpf = loader
        .load(EBPF_OBJECT)
        .context("loading the gotofw eBPF object (maps)")?;
    fault_point("loaded");
    fill(&mut ebpf, compiled, meta)?;
    if let Some(direct) = &direct {
        fill_direct(&mut ebpf, direct)?;
    }
    fault_point("filled");
    let program: &mut Xdp = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| anyhow!("the eBPF object has no program {PROGRAM}"))?
        .try_into()?;
    program
        .load()
        .context("the kernel refused the gotofw XDP program (verifier)")?;
    if egress {
        let egress: &mut SchedClassifier = ebpf
            .program_mut(EGRESS_PROGRAM)
            .ok_or_else(|| anyhow!("the eBPF object has no program {EGRESS_PROGRAM}"))?
            .try_into()?;
        egress
            .load()
            .context("the kernel refused the gotofw TC egress program (verifier)")?;
    }
    load_drop_log(&mut ebpf, filters_egress(compiled.config.mode))?;
    if learns(&compiled.config) {
        load_dns(&mut ebpf)?;
    }
    fault_point("verified");
    Ok(ebpf)
}

/// Entries of the learned-address map when the rule set learns none (the map must exist; an
/// LRU map's memory is taken at creation).
pub const LEARNED_MAP_MIN_ENTRIES: u32 = 1;

/// Entries of the learned-address map `compiled` loads.
pub(super) fn learned_entries(compiled: &Compiled) -> u32 {
    compiled.learned_map_entries.max(LEARNED_MAP_MIN_ENTRIES)
}

/// Whether a rule set of this config learns from DNS answers: stateful, with domain sets.
pub(super) const fn learns(config: &filter_common::Config) -> bool {
    config.mode == filter_common::MODE_STATEFUL && config.domain_sets != 0
}

/// Loads the DNS programs (learning from answers at XDP, recording queries at TC) and puts
/// them in the tail-call maps.
pub(super) fn load_dns(ebpf: &mut Ebpf) -> anyhow::Result<()> {
    let xdp: &mut Xdp = ebpf
        .program_mut(program::LEARN_XDP)
        .ok_or_else(|| anyhow!("the eBPF object has no program {}", program::LEARN_XDP))?
        .try_into()?;
    xdp.load()
        .context("the kernel refused the DNS learning XDP program (verifier)")?;
    let fd = xdp.fd()?.try_clone()?;
    let mut slots: aya::maps::ProgramArray<_> =
        aya::maps::ProgramArray::try_from(map_mut(ebpf, map::TAIL_XDP)?)?;
    slots
        .set(filter_common::tail::DNS, &fd, 0)
        .context("filling the XDP tail-call map")?;
    let records: &mut Xdp = ebpf
        .program_mut(program::RECORDS_XDP)
        .ok_or_else(|| anyhow!("the eBPF object has no program {}", program::RECORDS_XDP))?
        .try_into()?;
    records
        .load()
        .context("the kernel refused the DNS records XDP program (verifier)")?;
    let fd = records.fd()?.try_clone()?;
    let mut slots: aya::maps::ProgramArray<_> =
        aya::maps::ProgramArray::try_from(map_mut(ebpf, map::TAIL_XDP)?)?;
    slots
        .set(filter_common::tail::DNS_RECORDS, &fd, 0)
        .context("filling the XDP tail-call map")?;
    let tc: &mut SchedClassifier = ebpf
        .program_mut(program::QUERY_TC)
        .ok_or_else(|| anyhow!("the eBPF object has no program {}", program::QUERY_TC))?
        .try_into()?;
    tc.load()
        .context("the kernel refused the DNS query-recording TC program (verifier)")?;
    let fd = tc.fd()?.try_clone()?;
    let mut slots: aya::maps::ProgramArray<_> =
        aya::maps::ProgramArray::try_from(map_mut(ebpf, map::TAIL_TC)?)?;
    slots
        .set(filter_common::tail::DNS, &fd, 0)
        .context("filling the TC tail-call map")?;
    Ok(())
}

/// Loads the drop-log programs and puts them in the tail-call maps.
pub(super) fn load_drop_log(ebpf: &mut Ebpf, egress: bool) -> anyhow::Result<()> {
    let xdp: &mut Xdp = ebpf
        .program_mut(LOG_XDP_PROGRAM)
        .ok_or_else(|| anyhow!("the eBPF object has no program {LOG_XDP_PROGRAM}"))?
        .try_into()?;
    xdp.load()
        .context("the kernel refused the drop-log XDP program (verifier)")?;
    let fd = xdp.fd()?.try_clone()?;
    let mut slots: aya::maps::ProgramArray<_> =
        aya::maps::ProgramArray::try_from(map_mut(ebpf, map::TAIL_XDP)?)?;
    slots
        .set(filter_common::tail::LOG, &fd, 0)
        .context("filling the drop-log map")?;
    if egress {
        let tc: &mut SchedClassifier = ebpf
            .program_mut(LOG_TC_PROGRAM)
            .ok_or_else(|| anyhow!("the eBPF object has no program {LOG_TC_PROGRAM}"))?
            .try_into()?;
        tc.load()
            .context("the kernel refused the drop-log TC program (verifier)")?;
        let fd = tc.fd()?.try_clone()?;
        let mut slots: aya::maps::ProgramArray<_> =
            aya::maps::ProgramArray::try_from(map_mut(ebpf, map::TAIL_TC)?)?;
        slots
            .set(filter_common::tail::LOG, &fd, 0)
            .context("filling the drop-log map")?;
    }
    Ok(())
}

/// The TC egress program of a loaded object (every mode but ingress-only).
pub fn egress_program(ebpf: &mut Ebpf) -> anyhow::Result<&mut SchedClassifier> {
    Ok(ebpf
        .program_mut(EGRESS_PROGRAM)
        .ok_or_else(|| anyhow!("the eBPF object has no program {EGRESS_PROGRAM}"))?
        .try_into()?)
}

pub(super) fn map_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &str,
) -> anyhow::Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name)
        .ok_or_else(|| anyhow!("the eBPF object has no map {name}"))
}

pub(super) fn fill(ebpf: &mut Ebpf, compiled: &Compiled, meta: &[u8]) -> anyhow::Result<()> {
    let mut ports: Array<_, u64> = Array::try_from(map_mut(ebpf, map::PORTS)?)?;
    for (index, mask) in &compiled.ports {
        ports.set(*index, mask, 0).context("filling the port map")?;
    }
    let mut config: Array<_, filter_common::Config> = Array::try_from(map_mut(ebpf, map::CONFIG)?)?;
    config
        .set(0, compiled.config, 0)
        .context("filling the config map")?;
    let mut v4: LpmTrie<_, [u8; 4], u64> = LpmTrie::try_from(map_mut(ebpf, map::NETS_V4)?)?;
    for (net, mask) in &compiled.nets_v4 {
        v4.insert(
            &Key::new(u32::from(net.prefix_len()), net.network().octets()),
            mask,
            0,
        )
        .with_context(|| format!("adding {net} to the IPv4 network map"))?;
    }
    let mut v6: LpmTrie<_, [u8; 16], u64> = LpmTrie::try_from(map_mut(ebpf, map::NETS_V6)?)?;
    for (net, mask) in &compiled.nets_v6 {
        v6.insert(
            &Key::new(u32::from(net.prefix_len()), net.network().octets()),
            mask,
            0,
        )
        .with_context(|| format!("adding {net} to the IPv6 network map"))?;
    }
    let mut domains: LpmTrie<_, learn::DomainKey, learn::DomainEntry> =
        LpmTrie::try_from(map_mut(ebpf, map::DOMAINS)?)?;
    for (pattern, entry) in &compiled.domains {
        let mut data = [0u8; filter_common::dns::MAX_NAME + 1];
        let len = pattern.len().min(data.len());
        data[..len].copy_from_slice(&pattern[..len]);
        let bits = u32::try_from(len * 8).context("a domain pattern too long")?;
        domains
            .insert(&Key::new(bits, data), entry, 0)
            .context("adding a domain pattern to the domain map")?;
    }
    let mut servers: aya::maps::HashMap<_, learn::AddrKey, u32> =
        aya::maps::HashMap::try_from(map_mut(ebpf, map::DNS_SERVERS)?)?;
    for server in &compiled.dns_servers {
        servers
            .insert(server, 1, 0)
            .context("adding a DNS server to the server map")?;
    }
    write_meta(ebpf, meta)
}

/// Entries of the direct stage's maps (nodes, masks): one each (a zeroed node: every address
/// walks the trie) when it is not built.
fn direct_entries(direct: Option<&Direct>) -> anyhow::Result<(u32, u32)> {
    let Some(d) = direct else {
        return Ok((1, 1));
    };
    let nodes = u32::try_from(d.nodes.len()).context("too many IPv4 networks")?;
    let masks = u32::try_from(d.masks.len().max(1)).context("too many IPv4 rule masks")?;
    Ok((nodes, masks))
}

/// Fills the direct stage's maps (`filter_common::nets`).
fn fill_direct(ebpf: &mut Ebpf, direct: &Direct) -> anyhow::Result<()> {
    let mut nodes: Array<_, filter_common::nets::Node> =
        Array::try_from(map_mut(ebpf, map::NET_DIRECT_V4)?)?;
    for (i, node) in (0u32..).zip(&direct.nodes) {
        nodes
            .set(i, node, 0)
            .context("filling the IPv4 direct-stage map")?;
    }
    let mut masks: Array<_, u64> = Array::try_from(map_mut(ebpf, map::NET_MASKS_V4)?)?;
    for (i, mask) in (0u32..).zip(&direct.masks) {
        masks
            .set(i, mask, 0)
            .context("filling the IPv4 direct-stage mask map")?;
    }
    Ok(())
}

/// The XDP program of a loaded object.
pub fn program(ebpf: &mut Ebpf) -> anyhow::Result<&mut Xdp> {
    Ok(ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| anyhow!("the eBPF object has no program {PROGRAM}"))?
        .try_into()?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use filter_common::names::{map, pin, program};

    /// The built object's maps and programs are exactly the names `filter-common` shares with
    /// the loader (the kernel spells them again as its statics' and functions' names), and every
    /// map the loader pins is pinned under its own name in lower case.
    #[test]
    fn the_object_has_exactly_the_shared_names() {
        let object = aya_obj::Object::parse(super::EBPF_OBJECT).expect("parsing the eBPF object");
        // Global data (`.rodata`, `.bss`) shows up as maps named after its section.
        let maps: BTreeSet<&str> = object
            .maps
            .keys()
            .map(String::as_str)
            .filter(|name| !name.starts_with('.'))
            .collect();
        assert_eq!(maps, BTreeSet::from(map::ALL));
        let programs: BTreeSet<&str> = object.programs.keys().map(String::as_str).collect();
        assert_eq!(programs, BTreeSet::from(program::ALL));
        for (name, file) in pin::MAPS {
            assert!(map::ALL.contains(&name), "{name}");
            assert_eq!(file, name.to_lowercase(), "{name}");
        }
    }
}
