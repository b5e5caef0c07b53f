//! Is a pinned filter really filtering? Pins outlive what they describe: the interface can be
//! deleted (and re-created with the same name: a NIC re-plug, a PPP re-dial), a link can be
//! severed (`bpftool link detach`), another program can be swapped into it. Every command that
//! reads a filter asks the kernel here, and says what it found.
//!
//! A filter is filtering when its XDP link is attached to the interface's current index, whose
//! link type has the frame layout the pinned programs read, and runs gotofw's program of the
//! pinned rule set, and (when it has an egress hook) so is its tcx
//! link, or gotofw's clsact filter is on the interface and runs the pinned egress program.

use std::{os::fd::AsFd as _, path::Path};

use serde::Serialize;

use crate::{
    bpf_sys, link_type,
    loader::{
        egress::{CLSACT_HANDLE, CLSACT_PRIORITY},
        meta::{FilterMode, Meta},
        pins::{self, EGRESS_PROG_PIN, EGRESS_PROGRAM, LINK_PIN, PROGRAM, TC_LINK_PIN},
        read::Attached,
    },
    netlink, system,
};

/// What a pinned filter is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Every hook runs gotofw's programs of the pinned rule set on the interface.
    Filtering,
    /// The XDP link is severed (`bpftool link detach`, or its interface or namespace went).
    Severed,
    /// No interface of that name in this network namespace.
    InterfaceGone,
    /// An interface of that name is there, but it is a new one (another index).
    InterfaceRecreated,
    /// The interface's link type changed (a raw-IP modem switched to Ethernet framing, a tun
    /// device given another type): its frames no longer have the layout the programs read.
    LinkTypeChanged,
    /// A hook runs a program that is not gotofw's of the pinned rule set.
    Replaced,
    /// The XDP program is in place, the egress one (stateful mode) is not.
    EgressMissing,
}

impl State {
    /// As `status` shows it and `--json` writes it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Filtering => "filtering",
            Self::Severed => "severed",
            Self::InterfaceGone => "interface-gone",
            Self::InterfaceRecreated => "interface-recreated",
            Self::LinkTypeChanged => "link-type-changed",
            Self::Replaced => "replaced",
            Self::EgressMissing => "egress-missing",
        }
    }
}

/// The state of a filter and what was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// The state.
    pub state: State,
    /// One phrase on what was found (empty when filtering).
    pub detail: String,
    /// Whether the interface the filter was attached to is still there.
    pub present: bool,
}

impl Health {
    fn broken(state: State, detail: impl Into<String>, present: bool) -> Self {
        Self {
            state,
            detail: detail.into(),
            present,
        }
    }

    /// Whether the filter filters.
    pub fn filtering(&self) -> bool {
        self.state == State::Filtering
    }

    /// `state` or `state: detail`.
    pub fn text(&self) -> String {
        if self.detail.is_empty() {
            self.state.name().to_owned()
        } else {
            format!("{}: {}", self.state.name(), self.detail)
        }
    }
}

/// Checks the filter pinned in `dir` (pin key `key`), whose record is `meta`.
///
/// A filter of another network namespace is checked through its links, which the kernel shows
/// from anywhere; its interface name means nothing here, and a clsact egress filter is only
/// reached from its own namespace, so that one is not checked from elsewhere.
pub fn check(dir: &Path, key: &str, meta: &Meta) -> Health {
    let local = system::pin_key(&meta.interface) == key;
    if local {
        match system::ifindex(&meta.interface) {
            Err(_) => {
                return Health::broken(
                    State::InterfaceGone,
                    format!("no interface {} here", meta.interface),
                    false,
                );
            }
            Ok(now) if now != meta.ifindex => {
                return Health::broken(
                    State::InterfaceRecreated,
                    format!(
                        "{} is ifindex {now} now, the filter was attached to ifindex {}",
                        meta.interface, meta.ifindex
                    ),
                    false,
                );
            }
            Ok(_) => {
                if let Some(changed) = link_type_changed(dir, &meta.interface) {
                    return changed;
                }
            }
        }
    }
    let ours = OurPrograms::of(dir, key);
    let xdp = match link_target(&dir.join(LINK_PIN)) {
        Ok(target) => target,
        Err(e) => {
            return Health::broken(
                State::Severed,
                format!("the XDP link pin cannot be read: {e}"),
                local,
            );
        }
    };
    if xdp.ifindex != meta.ifindex {
        let detail = if xdp.ifindex == 0 {
            if local {
                "the XDP link was detached".to_owned()
            } else {
                "the XDP link was detached, or its interface or namespace went".to_owned()
            }
        } else {
            format!("the XDP link is on ifindex {}", xdp.ifindex)
        };
        return Health::broken(State::Severed, detail, local);
    }
    if !ours.runs(xdp.prog_id, PROGRAM) {
        return Health::broken(
            State::Replaced,
            format!("the XDP link runs program {}", xdp.prog_id),
            true,
        );
    }
    if let Some(broken) = egress(dir, meta, local, &ours) {
        return broken;
    }
    Health {
        state: State::Filtering,
        detail: String::new(),
        present: true,
    }
}

/// Whether the interface `iface` (the one the filter pinned in `dir` was attached to) now has a
/// link type whose frames have another layout than the one the pinned programs read. A link
/// type that cannot be read now (the interface going meanwhile) is left to the other checks.
fn link_type_changed(dir: &Path, iface: &str) -> Option<Health> {
    let kind = link_type::kind_of(iface).ok()?;
    let pinned = pins::pinned_config(dir).ok()?.link;
    let reads = link_type::link_name(pinned);
    let detail = match link_type::parsed(kind) {
        Some(now) if now == pinned => return None,
        Some(now) => format!(
            "{iface} has link type {} now, whose frames are {}; the filter reads {reads} frames",
            link_type::name(kind),
            link_type::link_name(now)
        ),
        None => format!(
            "{iface} has link type {} now, which gotofw cannot read; the filter reads {reads} frames",
            link_type::name(kind)
        ),
    };
    Some(Health::broken(State::LinkTypeChanged, detail, true))
}

/// What is wrong at the egress hook, if anything.
fn egress(dir: &Path, meta: &Meta, local: bool, ours: &OurPrograms) -> Option<Health> {
    let tcx = dir.join(TC_LINK_PIN);
    let clsact = dir.join(EGRESS_PROG_PIN);
    if tcx.exists() {
        return match link_target(&tcx) {
            Ok(t) if t.ifindex == meta.ifindex && ours.runs(t.prog_id, EGRESS_PROGRAM) => None,
            Ok(t) if t.ifindex == meta.ifindex => Some(Health::broken(
                State::Replaced,
                format!("the tcx egress link runs program {}", t.prog_id),
                true,
            )),
            Ok(_) => Some(Health::broken(
                State::EgressMissing,
                "the tcx egress link was detached",
                true,
            )),
            Err(e) => Some(Health::broken(
                State::EgressMissing,
                format!("the tcx egress link pin cannot be read: {e}"),
                true,
            )),
        };
    }
    if clsact.exists() {
        if !local {
            return None;
        }
        let pinned = aya::programs::ProgramInfo::from_pin(&clsact).map(|p| p.id());
        let filters = netlink::clsact_egress_filters(meta.ifindex);
        let ours_there = filters.as_ref().ok().and_then(|list| {
            list.iter()
                .find(|f| {
                    f.priority == CLSACT_PRIORITY
                        && f.handle == u32::from(CLSACT_HANDLE)
                        && f.kind == "bpf"
                })
                .map(|f| f.prog_id)
        });
        return match (ours_there, pinned) {
            (Some(Some(id)), Ok(pinned)) if id == pinned || ours.runs(id, EGRESS_PROGRAM) => None,
            (Some(id), _) => Some(Health::broken(
                State::Replaced,
                format!(
                    "gotofw's clsact egress filter runs program {}",
                    id.map_or_else(|| "?".to_owned(), |id| id.to_string())
                ),
                true,
            )),
            (None, _) => Some(Health::broken(
                State::EgressMissing,
                match filters {
                    Ok(_) => "gotofw's clsact egress filter is gone".to_owned(),
                    Err(e) => format!("the clsact egress filters cannot be read: {e}"),
                },
                true,
            )),
        };
    }
    (meta.mode == FilterMode::Stateful).then(|| {
        Health::broken(
            State::EgressMissing,
            "a stateful filter without an egress hook",
            true,
        )
    })
}

/// Whether a link pinned in `dir` (the XDP link, or the tcx egress link) is severed: on no
/// interface any more. Two bpf(2) calls a link, no record read: cheap enough for `gotofw run` to
/// ask every few seconds, since severing a link (`bpftool link detach`) sends no link event.
pub fn severed(dir: &Path) -> bool {
    [LINK_PIN, TC_LINK_PIN].into_iter().any(|pin| {
        let path = dir.join(pin);
        path.exists() && link_target(&path).is_ok_and(|target| target.ifindex == 0)
    })
}

fn link_target(pin: &Path) -> std::io::Result<bpf_sys::LinkTarget> {
    let fd = bpf_sys::obj_get(pin)?;
    bpf_sys::link_info(fd.as_fd())
}

/// The programs of a pinned rule set, known by the configuration map they read: the pinned
/// one's, or one an attach at work has staged (it swaps its programs in before its pins move).
struct OurPrograms {
    config_maps: Vec<u32>,
}

impl OurPrograms {
    fn of(dir: &Path, key: &str) -> Self {
        let mut dirs = vec![dir.to_owned()];
        dirs.extend(pins::stale_dirs(key));
        let config_maps = dirs
            .iter()
            .filter_map(|d| {
                aya::maps::MapData::from_pin(d.join(filter_common::names::pin::CONFIG)).ok()
            })
            .filter_map(|m| m.info().ok().map(|i| i.id()))
            .collect();
        Self { config_maps }
    }

    /// Whether program `id` is gotofw's `name` of one of these rule sets.
    fn runs(&self, id: u32, name: &str) -> bool {
        aya::programs::loaded_programs()
            .flatten()
            .find(|p| p.id() == id)
            .is_some_and(|p| {
                p.name_as_str() == Some(name)
                    && p.map_ids()
                        .ok()
                        .flatten()
                        .is_some_and(|ids| ids.iter().any(|m| self.config_maps.contains(m)))
            })
    }
}

/// Checks the filter `attached` read back from its pins.
pub fn of(attached: &Attached) -> Health {
    let key = attached
        .dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    check(&attached.dir, &key, &attached.meta)
}

/// Says on standard error, in one `gotofw: note:` line, that the filter `attached` (read by a
/// command that shows what it holds: `flows`, `log`) is not filtering, if so.
pub fn note_if_broken(attached: &Attached) {
    let health = of(attached);
    if !health.filtering() {
        eprintln!(
            "gotofw: note: {} is not filtering ({}): what follows is what its pins hold; `gotofw status {}` tells more, `gotofw reload` or `gotofw attach ... --replace` attaches it anew",
            attached.meta.interface,
            health.text(),
            attached.meta.interface
        );
    }
}
