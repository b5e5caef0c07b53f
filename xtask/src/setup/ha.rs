//! What the HA lab (`tests/src/halab/`, `tests/tests/ha.rs`, `cargo xtask demo --ha`) needs:
//! Debian's keepalived (VRRP) and conntrackd (connection tracking sync), installed with apt-get
//! only when a command is missing.
//!
//! Their packages enable services: conntrackd's would start in the root network namespace with
//! the packaged `/etc/conntrackd/conntrackd.conf`. The lab runs its own daemons in namespaces
//! and wants none there, so the install runs under a `/usr/sbin/policy-rc.d` that refuses every
//! start (exit 101, as Debian's invoke-rc.d defines), put there for the install only when the
//! machine has none (containers often have one already).

use std::{fs, os::unix::fs::PermissionsExt as _, path::Path};

use anyhow::{Context, Result};

use super::{Status, packages};
use crate::paths;

/// Each command the lab runs, and the Debian package that provides it.
const PACKAGES: [(&str, &str); 2] = [("keepalived", "keepalived"), ("conntrackd", "conntrackd")];
/// Debian's hook that invoke-rc.d asks before starting a service.
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// Removes the policy-rc.d it put there, on every way out of [`ensure`].
struct TemporaryPolicy;

impl Drop for TemporaryPolicy {
    fn drop(&mut self) {
        if let Err(err) = fs::remove_file(POLICY_RC_D) {
            eprintln!(
                "warning: cannot remove the temporary {POLICY_RC_D}: {err}; remove it by hand"
            );
        }
    }
}

/// Checks for keepalived and conntrackd; installs them when root (no service started), or
/// says how to.
pub fn ensure(root: bool) -> Result<Vec<(String, Status)>> {
    let missing = PACKAGES
        .iter()
        .any(|(command, _)| paths::find(command).is_none());
    let _policy = if root && missing && !Path::new(POLICY_RC_D).exists() {
        fs::write(
            POLICY_RC_D,
            "#!/bin/sh\n# cargo xtask setup: start no service while installing\nexit 101\n",
        )
        .with_context(|| format!("cannot write {POLICY_RC_D}"))?;
        fs::set_permissions(POLICY_RC_D, fs::Permissions::from_mode(0o755))?;
        Some(TemporaryPolicy)
    } else {
        None
    };
    packages::ensure_commands(root, &PACKAGES)
}
