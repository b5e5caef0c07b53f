//! Item 5: kernel memory of every map (`bpftool map show`: memlock) and the peak resident size
//! of the gotofw binary.

use std::{path::Path, process::Command};

use anyhow::{Context, Result, anyhow};
use aya::Ebpf;
use filter_user::compile::Mode;
use gotofw_tests::{Netns, veth_pair};
use serde::Serialize;

use crate::{Settings, gotofw, rng, sys};

/// One map as bpftool shows it.
#[derive(Clone, Debug, Serialize)]
pub struct MapMem {
    /// Map name.
    pub name: String,
    /// Map type.
    pub map_type: String,
    /// Entries it can hold.
    pub max_entries: u64,
    /// Kernel memory charged for it, bytes.
    pub memlock: u64,
}

/// The maps of one configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// What was loaded.
    pub name: String,
    /// Its maps.
    pub maps: Vec<MapMem>,
    /// Their sum, bytes.
    pub total: u64,
}

/// All of item 5.
#[derive(Clone, Debug, Serialize)]
pub struct Memory {
    /// Configurations.
    pub configs: Vec<Config>,
    /// Peak RSS of `gotofw attach` (default configuration), KiB.
    pub attach_rss_kib: u64,
    /// Peak RSS of `gotofw status IFACE`, KiB.
    pub status_rss_kib: u64,
}

fn map_mem(json: &serde_json::Value) -> MapMem {
    MapMem {
        name: json["name"].as_str().unwrap_or("?").to_owned(),
        map_type: json["type"].as_str().unwrap_or("?").to_owned(),
        max_entries: json["max_entries"].as_u64().unwrap_or(0),
        memlock: json["bytes_memlock"]
            .as_u64()
            .or_else(|| json["bytes_memlock"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0),
    }
}

fn bpftool_json(args: &[&str]) -> Result<serde_json::Value> {
    let output = Command::new("bpftool")
        .args(args)
        .arg("-j")
        .output()
        .context("cannot run bpftool")?;
    let text = sys::check(&output, &format!("bpftool {}", args.join(" ")))?;
    Ok(serde_json::from_str(&text)?)
}

fn config(name: String, mut maps: Vec<MapMem>) -> Config {
    maps.sort_by(|a, b| a.name.cmp(&b.name));
    Config {
        name,
        total: maps.iter().map(|m| m.memlock).sum(),
        maps,
    }
}

/// The maps of a loaded object, by the ids its XDP program uses (and the maps only the egress
/// program uses, in stateful mode), plus every map the object created.
fn loaded_maps(ebpf: &mut Ebpf) -> Result<Vec<MapMem>> {
    let mut out = Vec::new();
    for (_, map) in ebpf.maps() {
        let info = map_info(map)?;
        let json = bpftool_json(&["map", "show", "id", &info.to_string()])?;
        out.push(map_mem(&json));
    }
    Ok(out)
}

fn map_info(map: &aya::maps::Map) -> Result<u32> {
    use aya::maps::Map;
    let (Map::Array(data)
    | Map::PerCpuArray(data)
    | Map::LpmTrie(data)
    | Map::LruHashMap(data)
    | Map::HashMap(data)
    | Map::RingBuf(data)
    | Map::ProgramArray(data)) = map
    else {
        return Err(anyhow!("unexpected map type in the gotofw object"));
    };
    Ok(data.info()?.id())
}

/// Peak RSS (KiB) of `gotofw ARGS` run in `ns` under `/usr/bin/time -v`.
fn peak_rss(ns: &Netns, bin: &Path, args: &[&str]) -> Result<u64> {
    let bin = bin
        .to_str()
        .ok_or_else(|| anyhow!("gotofw path is not UTF-8"))?;
    let mut line = vec!["-v", bin];
    line.extend_from_slice(args);
    let output = ns.exec("/usr/bin/time", &line)?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    sys::check(
        &output,
        &format!("/usr/bin/time -v gotofw {}", args.join(" ")),
    )?;
    stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes):")
                .and_then(|v| v.trim().parse().ok())
        })
        .ok_or_else(|| anyhow!("/usr/bin/time printed no maximum resident set size"))
}

/// Runs item 5.
pub fn memory(settings: &Settings, gotofw_bin: &Path) -> Result<Memory> {
    let mut configs = Vec::new();
    // The default configuration, attached by the binary.
    let ns = Netns::new("bmem")?;
    let (a, b) = (sys::short_ifname('a'), sys::short_ifname('b'));
    let _pair = veth_pair(&ns, &a, &ns, &b)?;
    let attach_rss = peak_rss(&ns, gotofw_bin, &["attach", &a, "--scenario", "udp-turn"]);
    let detach = || {
        if let Some(bin) = gotofw_bin.to_str() {
            let _ = ns.exec(bin, ["detach", &a]);
        }
    };
    let result = (|| -> Result<(u64, u64, Vec<MapMem>)> {
        let attach_rss = attach_rss?;
        let status_rss = peak_rss(&ns, gotofw_bin, &["status", &a])?;
        let dir = gotofw_tests::pin_dir(&a);
        let mut maps = Vec::new();
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.contains("link") {
                continue;
            }
            let path = path.to_string_lossy().into_owned();
            maps.push(map_mem(&bpftool_json(&["map", "show", "pinned", &path])?));
        }
        Ok((attach_rss, status_rss, maps))
    })();
    detach();
    let (attach_rss_kib, status_rss_kib, maps) = result?;
    configs.push(config(
        "default: `gotofw attach IFACE --scenario udp-turn` (stateful, 262,144 flows)".into(),
        maps,
    ));
    // A large network set, loaded in-process (`--network` 100k times would pass the command
    // line's limits, and the description gotofw stores for `status` holds 16 KiB).
    let n = settings.prefix_sizes.last().copied().unwrap_or(5);
    let mut ebpf = gotofw::load(
        &gotofw::bench_rules(Some(rng::networks(n, 0x6e65_7473 ^ n as u64))),
        &Mode::Stateful(gotofw::limits(262_144)),
    )?;
    configs.push(config(
        format!("{n} TURN prefixes (stateful, 262,144 flows; loaded in-process)"),
        loaded_maps(&mut ebpf)?,
    ));
    drop(ebpf);
    let size = settings.max_flow_table;
    let mut ebpf = gotofw::load(
        &gotofw::bench_rules(None),
        &Mode::Stateful(gotofw::limits(size)),
    )?;
    configs.push(config(
        format!("flow table of {size} entries (the largest `--flow-table-size` takes is 16,777,216; loaded in-process)"),
        loaded_maps(&mut ebpf)?,
    ));
    Ok(Memory {
        configs,
        attach_rss_kib,
        status_rss_kib,
    })
}
