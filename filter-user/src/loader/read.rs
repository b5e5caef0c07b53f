//! Reading an attached filter back from its pins: the record, the counters, the flows.

use std::{fs, io, path::PathBuf};

use anyhow::Context as _;
use aya::maps::{MapData, PerCpuArray};
use filter_common::{COUNTER_ENTRIES, Counter, Direction, counter_index, names::pin};

use super::{
    meta::{Meta, pinned_meta},
    pins::pinned_config,
    recover::recover_if_idle,
};
use crate::{error::UsageError, system};

/// Pin keys of every gotofw filter on this bpffs, any namespace.
/// What attaches killed midway left is settled first (see [`recover`]).
pub fn attached_keys() -> anyhow::Result<Vec<String>> {
    let places = crate::hostfs::places()?;
    let mut staged: Vec<String> = fs::read_dir(places.pin_staging())
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.split_once('@').map(|(key, _)| key.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    staged.sort();
    staged.dedup();
    for key in staged {
        recover_if_idle(&key)?;
    }
    let mut keys = Vec::new();
    let root = places.pin_root();
    match fs::read_dir(&root) {
        Ok(entries) => {
            for entry in entries {
                keys.push(entry?.file_name().to_string_lossy().into_owned());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    }
    Ok(keys)
}

/// An attached filter, read back from its pins.
#[derive(Debug)]
pub struct Attached {
    /// Pin directory.
    pub dir: PathBuf,
    /// The stored record.
    pub meta: Meta,
    /// Per-CPU sums by counter index.
    pub counters: Vec<Counter>,
}

/// Reads the filter of `iface` (an interface name, or a `NAME:NETNS` pin key) from its pins.
/// What an attach killed midway left is settled first (see [`recover`]).
pub fn read_attached(iface: &str) -> anyhow::Result<Attached> {
    let key = system::key_for(iface)?;
    recover_if_idle(&key)?;
    let dir = system::key_dir(&key)?;
    if !dir.exists() {
        return Err(UsageError::NotAttached(iface.to_owned()).into());
    }
    read_pins(dir)
}

/// Reads the filter pinned in `dir`.
pub(super) fn read_pins(dir: PathBuf) -> anyhow::Result<Attached> {
    let meta = pinned_meta(&dir)?;
    let counter_data = MapData::from_pin(dir.join(pin::COUNTERS))
        .with_context(|| format!("opening {}/counters", dir.display()))?;
    let counter_map: PerCpuArray<_, Counter> =
        PerCpuArray::try_from(aya::maps::Map::PerCpuArray(counter_data))?;
    let mut counters = Vec::with_capacity(COUNTER_ENTRIES as usize);
    for index in 0..COUNTER_ENTRIES {
        let values = counter_map.get(&index, 0)?;
        let sum = values.iter().fold(Counter::default(), |acc, c| Counter {
            packets: acc.packets + c.packets,
            bytes: acc.bytes + c.bytes,
        });
        counters.push(sum);
    }
    Ok(Attached {
        dir,
        meta,
        counters,
    })
}

/// A flow read back from the flow map.
#[derive(Clone, Copy, Debug)]
pub struct FlowEntry {
    /// The key.
    pub key: filter_common::FlowKey,
    /// The value.
    pub value: filter_common::FlowValue,
    /// Whether it is still alive (not idle past its timeout).
    pub alive: bool,
    /// Whether it was last judged by the current rule set (otherwise its next packet is
    /// rechecked, and `value.rule` names a rule of an earlier one).
    pub current: bool,
}

/// CLOCK_MONOTONIC_COARSE, the clock the kernel stamps flows with, in nanoseconds.
pub fn monotonic_coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

impl Attached {
    /// Drop-log samples the kernel could not write into the ring buffer (full), summed over
    /// CPUs since the rule set was loaded; `None` for a filter attached by a gotofw from before
    /// the count (no `log_bucket` pin), which cannot say.
    pub fn log_samples_lost(&self) -> anyhow::Result<Option<u64>> {
        let path = self.dir.join(pin::LOG_BUCKET);
        if !path.exists() {
            return Ok(None);
        }
        let data =
            MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
        let map: PerCpuArray<_, filter_common::LogBucket> =
            PerCpuArray::try_from(aya::maps::Map::PerCpuArray(data))
                .with_context(|| format!("{} is not the drop log's bucket map", path.display()))?;
        let values = map
            .get(&0, 0)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Some(
            values.iter().fold(0u64, |sum, b| sum.wrapping_add(b.lost)),
        ))
    }

    /// The rule set's configuration, read back from the config map.
    pub fn config(&self) -> anyhow::Result<filter_common::Config> {
        pinned_config(&self.dir)
    }

    /// Every entry of the flow map, with its liveness at `now` (see [`monotonic_coarse_ns`]).
    pub fn flows(&self, now: u64) -> anyhow::Result<Vec<FlowEntry>> {
        let cfg = self.config()?;
        let data = MapData::from_pin(self.dir.join(pin::FLOWS))
            .with_context(|| format!("opening {}/flows", self.dir.display()))?;
        let map: aya::maps::HashMap<_, filter_common::FlowKey, filter_common::FlowValue> =
            aya::maps::HashMap::try_from(aya::maps::Map::LruHashMap(data))?;
        // The inbound packets the flow cache admitted and has not counted in the table yet (a
        // filter attached before the cache existed has none).
        let pending = MapData::from_pin(self.dir.join(pin::FLOW_CACHE))
            .ok()
            .and_then(|data| PerCpuArray::try_from(aya::maps::Map::PerCpuArray(data)).ok())
            .map(|cache| super::flow_cache::pending(&cache))
            .unwrap_or_default();
        let mut out = Vec::new();
        for entry in &map {
            // An entry evicted between two steps of the walk is simply not listed.
            let Ok((key, value)) = entry else { continue };
            let value = super::flow_cache::with_pending(&key, value, &pending);
            out.push(FlowEntry {
                key,
                value,
                alive: filter_common::flow_alive(&cfg, &value, now),
                current: value.generation == cfg.generation,
            });
        }
        Ok(out)
    }

    /// The counter of `slot` in `direction`.
    pub fn counter(&self, direction: Direction, slot: u32) -> Counter {
        self.counters
            .get(counter_index(direction, slot) as usize)
            .copied()
            .unwrap_or_default()
    }
}
