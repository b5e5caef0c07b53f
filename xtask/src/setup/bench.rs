//! The Debian packages `cargo xtask bench` (and its smoke test) drive: the filters gotofw is
//! compared with, the traffic tools and the memory probe. Installed only when their command is
//! missing.

use anyhow::Result;

use super::Status;

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
    super::packages::ensure_commands(root, &PACKAGES)
}
