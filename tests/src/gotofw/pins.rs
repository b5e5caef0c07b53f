//! What a filter holds: its pin directory, the staging leftovers, the objects its pins name
//! and the programs attached to its interface.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{PIN_ROOT, PIN_STAGING};
use crate::Netns;

/// The pin directory of `iface`: `/sys/fs/bpf/gotofw/IFACE` in the host's namespace,
/// `IFACE:NETNS` for an interface in another namespace (lab interface names are unique, so the
/// first entry that names `iface` is its own).
pub fn pin_dir(iface: &str) -> PathBuf {
    let prefix = format!("{iface}:");
    std::fs::read_dir(PIN_ROOT)
        .ok()
        .and_then(|entries| {
            entries.flatten().map(|e| e.path()).find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
            })
        })
        .unwrap_or_else(|| Path::new(PIN_ROOT).join(iface))
}

/// Staging directories gotofw left behind for `iface` (`IFACE@...`); a
/// finished command, successful or not, leaves none.
pub fn staging_leftovers(iface: &str) -> Vec<PathBuf> {
    let (bare, keyed) = (format!("{iface}@"), format!("{iface}:"));
    std::fs::read_dir(PIN_STAGING)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    name.starts_with(&bare) || name.starts_with(&keyed)
                })
                .map(|entry| entry.path())
                .collect()
        })
        .unwrap_or_default()
}

/// A kernel object a pin names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pinned {
    /// A map, by id.
    Map(u32),
    /// A program, by id.
    Program(u32),
    /// A link, by id, and the program it runs.
    Link {
        /// The link's id.
        id: u32,
        /// The id of its program.
        prog: u32,
    },
    /// Neither could be opened (it went while it was looked at).
    Gone,
}

/// The pins of directory `dir` by file name, with the objects they name; empty when `dir` does
/// not exist. Pins whose name ends in `link` (`link`, `tc_link`) are links, those ending in
/// `_prog` (`egress_prog`) programs, the others maps (the kernel answers an info query on any
/// kind of file, so the name is what tells them apart).
pub fn pins(dir: &Path) -> std::collections::BTreeMap<String, Pinned> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return std::collections::BTreeMap::new();
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let object = if name.ends_with("link") {
                aya::programs::links::PinnedLink::from_pin(&path)
                    .ok()
                    .and_then(|link| aya::programs::links::FdLink::from(link).info().ok())
                    .map_or(Pinned::Gone, |info| Pinned::Link {
                        id: info.id(),
                        prog: info.program_id(),
                    })
            } else if name.ends_with("_prog") {
                aya::programs::ProgramInfo::from_pin(&path)
                    .map_or(Pinned::Gone, |prog| Pinned::Program(prog.id()))
            } else {
                aya::maps::MapInfo::from_pin(&path)
                    .map_or(Pinned::Gone, |map| Pinned::Map(map.id()))
            };
            (name, object)
        })
        .collect()
}

/// The tcx egress programs of `iface` in `ns`, by id (empty: none, or no such interface).
pub fn tcx_egress_prog_ids(ns: &Netns, iface: &str) -> Vec<u32> {
    use aya::programs::{SchedClassifier, TcAttachType};
    ns.run(|| SchedClassifier::query_tcx(iface, TcAttachType::Egress))
        .map(|(_, programs)| {
            programs
                .iter()
                .map(aya::programs::ProgramInfo::id)
                .collect()
        })
        .unwrap_or_default()
}

/// The programs of the clsact egress filters of `iface` in `ns` (`tc filter show dev IFACE
/// egress`), by id (empty: none, or no such interface).
pub fn clsact_egress_prog_ids(ns: &Netns, iface: &str) -> Vec<u32> {
    let out = ns
        .exec("tc", ["-j", "filter", "show", "dev", iface, "egress"])
        .map(|out| out.stdout)
        .unwrap_or_default();
    let filters: Value = serde_json::from_slice(&out).unwrap_or_default();
    filters
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|f| f["options"]["prog"]["id"].as_u64())
                .filter_map(|id| u32::try_from(id).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The ids of the maps program `prog` uses (empty when there is no such program).
pub fn prog_map_ids(prog: u32) -> Vec<u32> {
    aya::programs::loaded_programs()
        .flatten()
        .find(|info| info.id() == prog)
        .and_then(|info| info.map_ids().ok().flatten())
        .unwrap_or_default()
}

/// What the filter of one interface holds in bpffs and the kernel. Two equal values are the
/// same pins naming the same maps, links and programs, with the same programs attached: a
/// command that changed nothing leaves it equal (other tests' programs do not enter it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterObjects {
    /// Its pin directory's pins (empty: no directory).
    pub pins: std::collections::BTreeMap<String, Pinned>,
    /// The XDP program attached to the interface.
    pub xdp: Option<u32>,
    /// The tcx egress programs of the interface.
    pub tcx_egress: Vec<u32>,
    /// The programs of its clsact egress filters.
    pub clsact_egress: Vec<u32>,
    /// Its entries in the staging directory.
    pub staging: Vec<PathBuf>,
}

/// [`FilterObjects`] of `iface` in `ns` now.
pub fn filter_objects(ns: &Netns, iface: &str) -> FilterObjects {
    FilterObjects {
        pins: pins(&pin_dir(iface)),
        xdp: crate::xdp_prog_id(ns, iface),
        tcx_egress: tcx_egress_prog_ids(ns, iface),
        clsact_egress: clsact_egress_prog_ids(ns, iface),
        staging: staging_leftovers(iface),
    }
}
