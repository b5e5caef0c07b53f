//! Detach: the filter's links, its clsact filter and its pins removed.

use std::{fs, path::Path};

use anyhow::{Context as _, anyhow};
use aya::programs::links::PinnedLink;

use super::{
    egress::{remove_clsact, remove_clsact_qdisc},
    meta::pinned_meta,
    options::EgressHook,
    pins::{LINK_PIN, TC_LINK_PIN, local_interface, pinned_hook, stale_dirs},
    recover::recover,
};
use crate::{
    error::UsageError,
    system::{self, InterfaceLock},
};

/// Removes the filter of `iface` (an interface name, or a `NAME:NETNS` pin key): link first (the
/// interface stops filtering), then the maps. What a killed attach left is settled first, so
/// that its links go too.
pub fn detach(iface: &str) -> anyhow::Result<()> {
    let key = system::key_for(iface)?;
    let dir = system::key_dir(&key)?;
    let nothing = !dir.exists() && stale_dirs(&key).is_empty();
    if !system::bpffs_mounted() || nothing {
        return Err(UsageError::NotAttached(iface.to_owned()).into());
    }
    let _lock = InterfaceLock::acquire(&key)?;
    let staged = !stale_dirs(&key).is_empty();
    recover(&key)?;
    if !dir.exists() {
        // A killed attach that had not armed its rule set: what it staged is gone now.
        if staged {
            return Ok(());
        }
        return Err(UsageError::NotAttached(iface.to_owned()).into());
    }
    // A clsact filter is reached by netlink, in the interface's namespace only: check that
    // before anything goes. A record this gotofw cannot read (another format version) still
    // leaves the interface in the pin key.
    let clsact = match pinned_hook(&dir) {
        Some(EgressHook::Clsact) => Some(
            local_interface(&dir, &key)
                .or_else(|| system::own_interfaces([key.clone()]).pop())
                .ok_or_else(|| {
                    anyhow!(
                        "the egress filter of {iface} is a clsact filter, which only its own network namespace reaches: run `gotofw detach` there (nsenter --net=...)"
                    )
                })?,
        ),
        _ => None,
    };
    remove_pins(&dir, clsact.as_deref())
}

/// Removes the filter pinned in `dir`: its links first (the interface stops filtering), the
/// clsact egress filter of interface `clsact` if given, then the maps.
pub(super) fn remove_pins(dir: &Path, clsact: Option<&str>) -> anyhow::Result<()> {
    for pin in [LINK_PIN, TC_LINK_PIN] {
        let link_path = dir.join(pin);
        if link_path.exists() {
            let link = PinnedLink::from_pin(&link_path)
                .with_context(|| format!("opening the pinned link {}", link_path.display()))?;
            // Dropping the last reference detaches the program from the interface.
            drop(link.unpin().context("unpinning the link")?);
        }
    }
    if let Some(name) = clsact {
        remove_clsact(name);
        if pinned_meta(dir).is_ok_and(|m| m.clsact_qdisc) {
            remove_clsact_qdisc(name);
        }
    }
    fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(())
}
