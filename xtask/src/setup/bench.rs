//! The Debian packages `cargo xtask bench` (and its smoke test) drive: the filters gotofw is
//! compared with, the traffic tools and the memory probe. Installed only when their command is
//! missing.

use anyhow::{Context, Result, bail};

use super::Status;
use crate::{exec, paths};

/// Each command the benchmarks run, and the Debian package that provides it.
const PACKAGES: [(&str, &str); 7] = [
    ("xdp-filter", "xdp-tools"),
    ("nft", "nftables"),
    ("iptables", "iptables"),
    ("iperf3", "iperf3"),
    ("bpftool", "bpftool"),
    ("taskset", "util-linux"),
    ("time", "time"),
];

/// Checks every command; installs the missing ones' packages with apt-get when root, or says
/// how to otherwise. Returns one (item, status) per command.
pub fn ensure(root: bool) -> Result<Vec<(String, Status)>> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(command, _)| paths::find(command).is_none())
        .map(|&(_, package)| package)
        .collect();
    if !missing.is_empty() {
        if !root {
            let hint = format!("as root run: apt-get install -y {}", missing.join(" "));
            return Ok(report(&missing, &Status::Missing(hint)));
        }
        install(&missing)?;
        for (command, package) in PACKAGES {
            if paths::find(command).is_none() {
                bail!("package {package} is installed but `{command}` is still not found");
            }
        }
    }
    Ok(report(&missing, &Status::Installed(None)))
}

/// One line per command: `Status::Ok` unless its package is in `missing`, in which case
/// `status`.
fn report(missing: &[&str], status: &Status) -> Vec<(String, Status)> {
    PACKAGES
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
    exec::run(exec::command("apt-get").arg("update"))
        .context("`apt-get update` failed; check the network and /etc/apt/sources.list")?;
    exec::run(
        exec::command("apt-get")
            .args(["install", "-y"])
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
        let lines = report(&["iperf3"], &Status::Installed(None));
        assert_eq!(lines.len(), PACKAGES.len());
        assert_eq!(
            lines[3],
            ("iperf3 (iperf3)".to_owned(), Status::Installed(None))
        );
        assert_eq!(
            lines[0],
            ("xdp-filter (xdp-tools)".to_owned(), Status::Ok(None))
        );
    }
}
