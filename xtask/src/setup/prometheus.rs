//! What the alert test (`tests/tests/alerts.rs`) needs: Debian's Prometheus server, which it
//! runs in a namespace against `gotofw metrics`, and promtool (in the same package), which
//! checks and unit-tests the shipped rules (`packaging/prometheus/`). Installed with apt-get
//! only when a command is missing.
//!
//! Debian's postinst scripts (prometheus, and prometheus-node-exporter, which it recommends)
//! start their daemons through invoke-rc.d, with the SysV script when systemd is not PID 1: a
//! server listening on every address of the root namespace, which the tests do not want (each
//! runs its own, on a temporary directory). So the install runs with a `policy-rc.d` that
//! refuses every start (exit 101), removed afterwards; one already there (Docker images ship
//! one) is left as it is.

use std::{fs, os::unix::fs::PermissionsExt as _, path::Path};

use anyhow::{Context as _, Result};

use super::{Status, packages};
use crate::paths;

/// The commands and their Debian package.
const PACKAGES: [(&str, &str); 2] = [("prometheus", "prometheus"), ("promtool", "prometheus")];

/// Where invoke-rc.d asks whether it may start a service.
const POLICY: &str = "/usr/sbin/policy-rc.d";

/// Checks for prometheus and promtool; installs them when root (starting no daemon), or says
/// how to. One (item, status) per command.
pub fn ensure(root: bool) -> Result<Vec<(String, Status)>> {
    let missing = PACKAGES.iter().any(|(c, _)| paths::find(c).is_none());
    let _no_start = if root && missing {
        NoStart::install(Path::new(POLICY))?
    } else {
        None
    };
    packages::ensure_commands(root, &PACKAGES)
}

/// A `policy-rc.d` that refuses every start, removed when dropped.
struct NoStart(&'static Path);

impl NoStart {
    /// Writes it, unless there is one already (`None`: that one decides).
    fn install(path: &'static Path) -> Result<Option<Self>> {
        if path.exists() {
            return Ok(None);
        }
        fs::write(
            path,
            "#!/bin/sh\n# cargo xtask setup: start no daemon while installing\nexit 101\n",
        )
        .with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", path.display()))?;
        Ok(Some(Self(path)))
    }
}

impl Drop for NoStart {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy refuses every start while it lives, goes when dropped, and one already there
    /// is left alone.
    #[test]
    fn the_policy_refuses_starts_and_goes_when_dropped() {
        let dir = std::env::temp_dir().join(format!("gfpm-policy-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path: &'static Path = Box::leak(dir.join("policy-rc.d").into_boxed_path());
        let guard = NoStart::install(path).unwrap().expect("written");
        let status = std::process::Command::new(path).status().unwrap();
        assert_eq!(status.code(), Some(101));
        assert_eq!(
            fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o755
        );
        drop(guard);
        assert!(!path.exists());
        fs::write(path, "#!/bin/sh\nexit 0\n").unwrap();
        assert!(NoStart::install(path).unwrap().is_none());
        assert_eq!(fs::read_to_string(path).unwrap(), "#!/bin/sh\nexit 0\n");
        fs::remove_dir_all(&dir).unwrap();
    }
}
