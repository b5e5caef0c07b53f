//! The pin directory of a filter: its file names, the staging directories an attach builds in,
//! and the move of a staged directory into place.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use aya::maps::{Array, MapData};
use filter_common::names::{pin, program};

use super::{meta::pinned_meta, options::EgressHook};
use crate::system;

/// Name of the XDP program in the object.
pub(crate) const PROGRAM: &str = program::INGRESS;
/// Name of the TC egress program in the object (every mode but ingress-only).
pub(crate) const EGRESS_PROGRAM: &str = program::EGRESS;
/// File name of the XDP link pin.
pub(crate) const LINK_PIN: &str = pin::LINK;
/// File name of the tcx egress link pin (tcx).
pub(crate) const TC_LINK_PIN: &str = pin::TC_LINK;
/// File name of the egress program's pin (clsact: a netlink filter has no link to pin, and the
/// program is what a roll-back puts back).
pub(crate) const EGRESS_PROG_PIN: &str = pin::EGRESS_PROG;

/// Staging pin directories of pin key `key` (`KEY@...`).
pub(crate) fn stale_dirs(key: &str) -> Vec<PathBuf> {
    let Ok(staging) = crate::hostfs::places().map(crate::hostfs::Places::pin_staging) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(staging) else {
        return Vec::new();
    };
    let prefix = format!("{key}@");
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .map(|entry| entry.path())
        .collect()
}

/// The rule set's configuration pinned in `dir`.
pub(crate) fn pinned_config(dir: &Path) -> anyhow::Result<filter_common::Config> {
    let data = MapData::from_pin(dir.join(pin::CONFIG))
        .with_context(|| format!("opening {}/config", dir.display()))?;
    let map: Array<_, filter_common::Config> = Array::try_from(aya::maps::Map::Array(data))?;
    Ok(map.get(&0, 0)?)
}

/// Moves the staged pin directory `staged` into place at `final_dir`, and the pins there into
/// staging; returns where those are now. One atomic exchange where bpffs can (Linux 5.15 and
/// later), so there is no moment without a directory for the live links; else two renames, and
/// a command that runs after a kill between them finds the armed rule set in staging, no pin
/// directory, and moves it into place ([`recover`]).
pub(super) fn swap_into_place(staged: &Path, final_dir: &Path) -> io::Result<PathBuf> {
    match exchange(staged, final_dir) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let name = staged.file_name().unwrap_or_default().to_string_lossy();
            let aside = staged.with_file_name(format!("{name}-old"));
            fs::rename(final_dir, &aside)?;
            if let Err(e) = fs::rename(staged, final_dir) {
                let _ = fs::rename(&aside, final_dir);
                return Err(e);
            }
            Ok(aside)
        }
        Err(e) => Err(e),
        Ok(()) => Ok(staged.to_owned()),
    }
}

/// Swaps the directories `a` and `b` atomically (`renameat2` with `RENAME_EXCHANGE`, which bpffs
/// supports since Linux 5.15).
pub(super) fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: two valid NUL-terminated paths; nothing else is passed.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The egress hook of the filter pinned in `dir`, by its pins.
pub(super) fn pinned_hook(dir: &Path) -> Option<EgressHook> {
    if dir.join(TC_LINK_PIN).exists() {
        Some(EgressHook::Tcx)
    } else if dir.join(EGRESS_PROG_PIN).exists() {
        Some(EgressHook::Clsact)
    } else {
        None
    }
}

/// The interface of the filter pinned (or staged) in `dir` for pin key `key`, when it is in this
/// network namespace: netlink reaches only those.
pub(super) fn local_interface(dir: &Path, key: &str) -> Option<String> {
    let meta = pinned_meta(dir).ok()?;
    (system::pin_key(&meta.interface) == key).then_some(meta.interface)
}
