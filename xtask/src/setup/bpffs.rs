//! The bpf file system at `/sys/fs/bpf`, where gotofw pins its maps and links.

use std::fs;

use anyhow::{Context, Result};

use super::Status;
use crate::exec;

const MOUNT_POINT: &str = "/sys/fs/bpf";

/// Checks that bpffs is mounted, mounting it when we are root.
pub fn ensure(root: bool) -> Result<Status> {
    let mounts = fs::read_to_string("/proc/mounts").context("reading /proc/mounts failed")?;
    if is_mounted(&mounts) {
        return Ok(Status::Ok(None));
    }
    if !root {
        return Ok(Status::Missing(format!(
            "as root run: mount -t bpf bpf {MOUNT_POINT}"
        )));
    }
    exec::run(exec::command("mount").args(["-t", "bpf", "bpf", MOUNT_POINT]))
        .with_context(|| format!("mounting bpffs at {MOUNT_POINT} failed; is the kernel built with CONFIG_BPF_SYSCALL?"))?;
    Ok(Status::Installed(Some("mounted".to_owned())))
}

/// Whether `/proc/mounts` content has a `bpf` file system at the mount point.
fn is_mounted(mounts: &str) -> bool {
    mounts.lines().any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        fields.next() == Some(MOUNT_POINT) && fields.next() == Some("bpf")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_bpffs() {
        let mounts = "sysfs /sys sysfs rw 0 0\nbpf /sys/fs/bpf bpf rw,relatime,mode=700 0 0\n";
        assert!(is_mounted(mounts));
    }

    #[test]
    fn other_file_systems_do_not_count() {
        assert!(!is_mounted("sysfs /sys sysfs rw 0 0\n"));
        assert!(!is_mounted("none /sys/fs/bpf tmpfs rw 0 0\n"));
    }
}
