//! Crash recovery: settling what an attach killed midway left in staging (roll forward if its
//! rule set was armed, back if not), and letting go of what only a switch needed.

use std::{fs, os::fd::AsFd as _, path::Path};

use anyhow::{Context as _, anyhow};
use aya::{
    maps::MapData,
    programs::{
        SchedClassifier,
        links::{FdLink, PinnedLink},
    },
};
use filter_common::names::pin;

use super::{
    egress::{clsact_link, remove_clsact, remove_clsact_qdisc},
    meta::pinned_meta,
    object::filters_egress,
    options::EgressHook,
    pins::{
        EGRESS_PROG_PIN, EGRESS_PROGRAM, LINK_PIN, PROGRAM, TC_LINK_PIN, local_interface,
        pinned_config, pinned_hook, stale_dirs, swap_into_place,
    },
};
use crate::{
    bpf_sys,
    system::{self, InterfaceLock},
};

/// Whether generation `a` came after `b` (generations wrap).
pub(super) const fn newer(a: u32, b: u32) -> bool {
    let ahead = a.wrapping_sub(b);
    ahead != 0 && ahead < u32::MAX / 2
}

/// Settles what an attach killed midway left in staging for pin key `key`; the caller holds
/// the interface lock, so no attach is running.
///
/// An attach arms its rule set with one write, after everything is staged and before its pins
/// move into place. A staged rule set that is armed (and newer than the pinned one) is in force:
/// its pins move into place (roll forward). One that is not armed was never in force: the links
/// get back the programs of the pinned rule set, and the staged pins go, which detaches links
/// pinned only there (roll back). Either way the interface goes on doing what it did; only the
/// pins catch up. Then the pinned filter lets go of what only the switch needed.
pub(super) fn recover(key: &str) -> anyhow::Result<()> {
    let final_dir = system::key_dir(key)?;
    for dir in stale_dirs(key) {
        let staged = pinned_config(&dir).ok();
        let pinned = if final_dir.exists() {
            Some(pinned_config(&final_dir)?)
        } else {
            None
        };
        let in_force = staged.is_some_and(|s| {
            s.armed == filter_common::ARMED
                && pinned.is_none_or(|p| newer(s.generation, p.generation))
        });
        // Our own staging (an attach that failed and undoes itself) needs no telling.
        let killed = !is_own(&dir);
        let note = |what: &str| {
            if killed {
                eprintln!("gotofw: note: {key}: a gotofw attach was killed midway; {what}");
            }
        };
        let out_of_force = match (in_force, pinned.is_some()) {
            (true, true) => {
                note("its rule set was armed and is in force: moved its pins into place");
                swap_into_place(&dir, &final_dir)
                    .with_context(|| format!("moving {} into place", dir.display()))?
            }
            (true, false) => {
                note("its rule set was armed and is in force: moved its pins into place");
                fs::rename(&dir, &final_dir)
                    .with_context(|| format!("moving {} into place", dir.display()))?;
                continue;
            }
            (false, true) => {
                note(if staged.is_some_and(|s| s.armed == filter_common::ARMED) {
                    "removed the pins of the rule set it replaced"
                } else {
                    "its rule set was never armed: removed it, the filter in force is unchanged"
                });
                restore_links(&final_dir, key)?;
                remove_stray_clsact(&dir, &final_dir, key);
                dir
            }
            (false, false) => {
                note("its rule set was never armed: removed it, the interface is unfiltered");
                remove_stray_clsact(&dir, &final_dir, key);
                dir
            }
        };
        // The rule set that is not in force; its links, if pinned only here, go with it.
        fs::remove_dir_all(&out_of_force)
            .with_context(|| format!("removing {}", out_of_force.display()))?;
    }
    if final_dir.exists() {
        settle(&final_dir, key)?;
    }
    Ok(())
}

/// Removes a clsact egress filter that the attach whose pins are in `staged` may have attached,
/// unless the filter pinned in `final_dir` uses it. (No committed gotofw filter of this pin key
/// uses it then, so a filter at gotofw's priority and handle can only be that attach's.)
pub(super) fn remove_stray_clsact(staged: &Path, final_dir: &Path, key: &str) {
    if pinned_hook(final_dir) == Some(EgressHook::Clsact) {
        return;
    }
    if let Some(iface) = local_interface(staged, key).or_else(|| local_interface(final_dir, key)) {
        remove_clsact(&iface);
        if pinned_meta(staged).is_ok_and(|m| m.clsact_qdisc) {
            remove_clsact_qdisc(&iface);
        }
    }
}

/// Whether the staging directory `dir` is this process's (`KEY@new-PID...`).
pub(super) fn is_own(dir: &Path) -> bool {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let ours = format!("new-{}", std::process::id());
    name.split_once('@')
        .is_some_and(|(_, rest)| rest.strip_suffix("-old").unwrap_or(rest) == ours)
}

/// [`recover`], unless another command holds the interface lock (it is the one at work, and
/// recovers itself if it fails), or there is nothing to recover. Read-only commands call it
/// before they read the pins, so that what they show is what the interface does.
///
/// Only for filters of this network namespace: what a killed attach left in another one is for
/// a command there (a clsact filter is reached by netlink from its own namespace only).
pub(super) fn recover_if_idle(key: &str) -> anyhow::Result<()> {
    let name = key.split(':').next().unwrap_or(key);
    if system::pin_key(name) != key || stale_dirs(key).is_empty() {
        return Ok(());
    }
    match InterfaceLock::try_acquire(key)? {
        Some(_lock) => recover(key),
        None => Ok(()),
    }
}

/// Puts back into the links pinned in `dir` the programs of the rule set pinned there, where an
/// attach that did not arm its own left those in them (the programs are found by their config
/// map; a program the link still runs is left alone).
pub(super) fn restore_links(dir: &Path, key: &str) -> anyhow::Result<()> {
    if dir.join(EGRESS_PROG_PIN).exists() {
        // A clsact filter has no link to ask what it runs: put the program back in any case.
        let iface = local_interface(dir, key).ok_or_else(|| {
            anyhow!(
                "the egress filter of {key} is a clsact filter of another network namespace: run gotofw there"
            )
        })?;
        let mut program = SchedClassifier::from_pin(dir.join(EGRESS_PROG_PIN))
            .context("opening the pinned egress program")?;
        let id = program
            .attach_to_link(clsact_link(&iface)?)
            .context("putting the egress program back into the clsact filter")?;
        std::mem::forget(program.take_link(id)?);
    }
    let config_id = MapData::from_pin(dir.join(pin::CONFIG))
        .with_context(|| format!("opening {}/config", dir.display()))?
        .info()?
        .id();
    for (pin, name) in [(LINK_PIN, PROGRAM), (TC_LINK_PIN, EGRESS_PROGRAM)] {
        let path = dir.join(pin);
        let Some(running) = link_program(&path) else {
            continue;
        };
        let uses_config = |p: &aya::programs::ProgramInfo| {
            p.map_ids()
                .ok()
                .flatten()
                .is_some_and(|ids| ids.contains(&config_id))
        };
        if uses_config(&running) {
            continue;
        }
        let program = aya::programs::loaded_programs()
            .flatten()
            .find(|p| p.name_as_str() == Some(name) && uses_config(p))
            .ok_or_else(|| {
                anyhow!(
                    "{} runs program {} and the program of the rule set pinned in {} is gone: detach and attach again",
                    path.display(),
                    running.id(),
                    dir.display()
                )
            })?;
        let link =
            bpf_sys::obj_get(&path).with_context(|| format!("opening {}", path.display()))?;
        bpf_sys::link_update(link.as_fd(), program.fd()?.as_fd()).with_context(|| {
            format!(
                "putting program {} back into {}",
                program.id(),
                path.display()
            )
        })?;
    }
    Ok(())
}

/// The program the link pinned at `path` runs, if there is such a link.
pub(super) fn link_program(path: &Path) -> Option<aya::programs::ProgramInfo> {
    let link = PinnedLink::from_pin(path).ok()?;
    let id = FdLink::from(link).info().ok()?.program_id();
    aya::programs::loaded_programs()
        .flatten()
        .find(|p| p.id() == id)
}

/// Lets go of what only the switch to the rule set pinned in `dir` needed (each step changes
/// nothing a packet sees, and may be repeated): the programs it replaced, kept in the tail-call
/// tables for as long as it was not armed; and in ingress-only mode the egress link, which a
/// filter's replacement keeps passing everything until then (with the clsact qdisc, if gotofw
/// added it).
pub(super) fn settle(dir: &Path, key: &str) -> anyhow::Result<()> {
    for table in [pin::TAIL_XDP, pin::TAIL_TC] {
        let Ok(data) = MapData::from_pin(dir.join(table)) else {
            continue;
        };
        let mut slots = aya::maps::ProgramArray::try_from(aya::maps::Map::ProgramArray(data))?;
        // An empty slot (the usual case) is no error to speak of.
        let _ = slots.clear_index(&filter_common::tail::PREVIOUS);
    }
    if !filters_egress(pinned_config(dir)?.mode) {
        let tc_link = dir.join(TC_LINK_PIN);
        if tc_link.exists() {
            fs::remove_file(&tc_link).with_context(|| format!("removing {}", tc_link.display()))?;
        }
        let egress = dir.join(EGRESS_PROG_PIN);
        if egress.exists()
            && let Some(iface) = local_interface(dir, key)
        {
            remove_clsact(&iface);
            if pinned_meta(dir).is_ok_and(|m| m.clsact_qdisc) {
                remove_clsact_qdisc(&iface);
            }
            fs::remove_file(&egress).with_context(|| format!("removing {}", egress.display()))?;
        }
    }
    Ok(())
}
