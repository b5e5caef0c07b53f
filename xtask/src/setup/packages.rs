//! The Debian packages the namespace lab tests and the demo use, installed
//! only when their command is missing.

use anyhow::{Context, Result, bail};

use super::Status;
use crate::{exec, paths};

/// Each command the tests run, and the Debian package that provides it. The
/// three-namespace lab (`tests/src/lab3/`) runs GoTo-like servers and
/// clients: coturn's TURN server and clients, nginx with a certificate that
/// openssl makes, curl, and nftables for the gateway's masquerade. The domain
/// lab (`tests/src/dlab/`) adds dnsmasq as the internet's DNS server and runs its
/// resolving client with python3.
const PACKAGES: [(&str, &str); 15] = [
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("bpftool", "bpftool"),
    ("tcpdump", "tcpdump"),
    ("socat", "socat"),
    ("ethtool", "ethtool"),
    ("nft", "nftables"),
    ("turnserver", "coturn"),
    ("turnutils_uclient", "coturn"),
    ("turnutils_stunclient", "coturn"),
    ("nginx", "nginx-light"),
    ("openssl", "openssl"),
    ("curl", "curl"),
    ("dnsmasq", "dnsmasq-base"),
    ("python3", "python3"),
];

/// Checks every command the tests need; installs the missing ones' packages
/// with apt-get when root, or says how to otherwise. Returns one (item,
/// status) per command.
pub fn ensure(root: bool) -> Result<Vec<(String, Status)>> {
    ensure_commands(root, &PACKAGES)
}

/// [`ensure`] for any list of (command, Debian package).
pub fn ensure_commands(root: bool, packages: &[(&str, &str)]) -> Result<Vec<(String, Status)>> {
    let mut missing: Vec<&str> = Vec::new();
    for &(command, package) in packages {
        if paths::find(command).is_none() && !missing.contains(&package) {
            missing.push(package);
        }
    }
    if !missing.is_empty() {
        if !root {
            let hint = format!("as root run: apt-get install -y {}", missing.join(" "));
            return Ok(report(packages, &missing, &Status::Missing(hint)));
        }
        install(&missing)?;
    }
    for &(command, package) in packages {
        if paths::find(command).is_none() {
            bail!("package {package} is installed but `{command}` is still not found");
        }
    }
    Ok(report(packages, &missing, &Status::Installed(None)))
}

/// One line per command: `Status::Ok` unless its package is in `missing`,
/// in which case `status`.
fn report(packages: &[(&str, &str)], missing: &[&str], status: &Status) -> Vec<(String, Status)> {
    packages
        .iter()
        .map(|(command, package)| {
            let item = format!("{command} ({package})");
            let status = if missing.contains(package) {
                status.clone()
            } else {
                Status::Ok(None)
            };
            (item, status)
        })
        .collect()
}

fn install(packages: &[&str]) -> Result<()> {
    let list = packages.join(" ");
    if paths::find("apt-get").is_none() {
        bail!("apt-get not found: install these packages with your package manager: {list}");
    }
    exec::run(exec::command("apt-get").args(["update", "-o", "DPkg::Lock::Timeout=300"]))
        .context("`apt-get update` failed; check the network and /etc/apt/sources.list")?;
    // Other apt runs (unattended upgrades, a second set-up) hold dpkg's lock
    // for a while: wait for it rather than fail.
    exec::run(
        exec::command("apt-get")
            .args(["install", "-y", "-o", "DPkg::Lock::Timeout=300"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("installing {list} failed; try `apt-get install -y {list}` by hand"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_marks_only_missing_packages() {
        let lines = report(&PACKAGES, &["socat"], &Status::Installed(None));
        assert_eq!(lines.len(), PACKAGES.len());
        assert_eq!(
            lines[4],
            ("socat (socat)".to_owned(), Status::Installed(None))
        );
        assert_eq!(lines[0], ("ip (iproute2)".to_owned(), Status::Ok(None)));
    }

    #[test]
    fn a_package_with_several_commands_is_reported_for_each() {
        let lines = report(&PACKAGES, &["coturn"], &Status::Installed(None));
        let installed: Vec<&str> = lines
            .iter()
            .filter(|(_, status)| *status == Status::Installed(None))
            .map(|(item, _)| item.as_str())
            .collect();
        assert_eq!(
            installed,
            [
                "turnserver (coturn)",
                "turnutils_uclient (coturn)",
                "turnutils_stunclient (coturn)"
            ]
        );
    }
}
