//! User space's side of the flow path's fast structures (`filter_common::flow_cache`): the
//! counts the per-CPU flow cache holds for the flow table, and stamping the remote summary for
//! flows written into the table from user space.

use std::collections::HashMap;

use aya::{
    Ebpf,
    maps::{Array, MapData, PerCpuArray},
};
use filter_common::{
    Config, FlowKey, FlowValue,
    flow_cache::{CACHE_ENTRIES, CachedFlow, remote_index, stamp},
    names::map,
};

/// Pending counts by flow: (key, when the flow was opened) -> (packets, bytes).
pub type Pending = HashMap<(FlowKey, u64), (u64, u64)>;

/// The inbound (packets, bytes) the flow cache `cache` (every CPU's entries) holds for each
/// flow and has not added to the flow table yet.
pub fn pending<T: std::borrow::Borrow<MapData>>(cache: &PerCpuArray<T, CachedFlow>) -> Pending {
    let mut out = Pending::new();
    for index in 0..CACHE_ENTRIES {
        // An entry that cannot be read holds nothing we could add.
        let Ok(values) = cache.get(&index, 0) else {
            continue;
        };
        for entry in values.iter().filter(|e| e.packets != 0) {
            let sum = out.entry((entry.key, entry.created_ns)).or_default();
            sum.0 += entry.packets;
            sum.1 += entry.bytes;
        }
    }
    out
}

/// `value`, the table entry of flow `key`, with the cache's pending inbound counts (of the
/// same opening of the flow) added.
pub fn with_pending(key: &FlowKey, mut value: FlowValue, pending: &Pending) -> FlowValue {
    if let Some((packets, bytes)) = pending.get(&(*key, value.created_ns)) {
        value.packets[0] += packets;
        value.bytes[0] += bytes;
    }
    value
}

/// Stamps the remote summary of the loaded object `ebpf` (under config `cfg`) for flow `key`,
/// last seen at `now_ns`: what the programs do whenever they set a flow's last-seen time, for a
/// flow user space writes into the table itself (the benchmarks' pre-filled tables). Without
/// it, the programs would rightly take the flow's remote for one without a flow.
pub fn stamp_remote(
    ebpf: &mut Ebpf,
    cfg: &Config,
    key: &FlowKey,
    now_ns: u64,
) -> anyhow::Result<()> {
    let mut remotes: Array<_, u32> = Array::try_from(
        ebpf.map_mut(map::REMOTES)
            .ok_or_else(|| anyhow::anyhow!("the eBPF object has no map {}", map::REMOTES))?,
    )?;
    remotes.set(remote_index(key, cfg.remote_mask), stamp(now_ns), 0)?;
    Ok(())
}

/// Empties every CPU's flow cache entry of flow `key` in `cache`, pending counts and all: what
/// user space does when it removes the flow from the table, so that no CPU admits the flow's
/// packets from its cache for the rest of the tick.
pub fn forget<T: std::borrow::BorrowMut<MapData>>(
    cache: &mut PerCpuArray<T, CachedFlow>,
    key: &FlowKey,
) -> anyhow::Result<()> {
    let index = filter_common::flow_cache::cache_index(key);
    let values = cache.get(&index, 0)?;
    if values.iter().all(|e| e.key != *key) {
        return Ok(());
    }
    let cleared: Vec<CachedFlow> = values
        .iter()
        .map(|e| {
            if e.key == *key {
                CachedFlow::default()
            } else {
                *e
            }
        })
        .collect();
    let values = aya::maps::PerCpuValues::try_from(cleared)?;
    cache.set(index, values, 0)?;
    Ok(())
}

/// Empties every entry of the flow cache `cache` on every CPU: what user space does when it
/// empties the flow table.
pub fn forget_all<T: std::borrow::BorrowMut<MapData>>(
    cache: &mut PerCpuArray<T, CachedFlow>,
) -> anyhow::Result<()> {
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| e)?;
    for index in 0..CACHE_ENTRIES {
        let empty = aya::maps::PerCpuValues::try_from(vec![CachedFlow::default(); cpus])?;
        cache.set(index, empty, 0)?;
    }
    Ok(())
}
