//! Links, addresses and routes inside lab namespaces.

use std::{net::IpAddr, process::Command};

use anyhow::{Context, Result, bail};

use crate::{names::MAX_NAME_LEN, netns::Netns};

/// A veth pair whose ends live in two namespaces (or both in one).
///
/// The ends die with their namespaces anyway; `Drop` deletes end A (which
/// removes both) if it still exists, so a pair can also be torn down early.
#[derive(Debug)]
pub struct VethPair {
    a_netns: String,
    a: String,
    b_netns: String,
    b: String,
}

impl VethPair {
    /// The name of end A (in the first namespace).
    pub fn a(&self) -> &str {
        &self.a
    }

    /// The name of end B (in the second namespace).
    pub fn b(&self) -> &str {
        &self.b
    }

    /// The namespaces of ends A and B, by name.
    pub fn netns_names(&self) -> (&str, &str) {
        (&self.a_netns, &self.b_netns)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Ignored on purpose: the link (or its namespace) may be gone already.
        let _ = Command::new("ip")
            .args(["-n", &self.a_netns, "link", "del", &self.a])
            .output();
    }
}

/// Creates a veth pair directly in its namespaces (`ip link add A netns NSA
/// type veth peer name B netns NSB`) and brings both ends up.
pub fn veth_pair(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<VethPair> {
    for name in [a_if, b_if] {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            bail!("interface name {name:?} must be 1 to {MAX_NAME_LEN} bytes");
        }
    }
    let output = Command::new("ip")
        .args(["link", "add", a_if, "netns", a.name(), "type", "veth"])
        .args(["peer", "name", b_if, "netns", b.name()])
        .output()
        .context("cannot run `ip link add` (install iproute2)")?;
    if !output.status.success() {
        bail!(
            "creating veth {}:{a_if} <-> {}:{b_if} failed: {}",
            a.name(),
            b.name(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let pair = VethPair {
        a_netns: a.name().to_owned(),
        a: a_if.to_owned(),
        b_netns: b.name().to_owned(),
        b: b_if.to_owned(),
    };
    link_up(a, a_if)?;
    link_up(b, b_if)?;
    Ok(pair)
}

/// Brings `ifname` up in `ns`.
pub fn link_up(ns: &Netns, ifname: &str) -> Result<()> {
    ns.ip(["link", "set", "dev", ifname, "up"]).map(drop)
}

/// Adds an address such as `198.51.100.1/24` to `ifname` in `ns`. IPv6
/// addresses are added with `nodad`, so they are usable at once rather than
/// tentative for a second or two.
pub fn addr_add(ns: &Netns, ifname: &str, cidr: &str) -> Result<()> {
    let mut args = vec!["addr", "add", cidr, "dev", ifname];
    if cidr.contains(':') {
        args.push("nodad");
    }
    ns.ip(args).map(drop)
}

/// Adds a route to `cidr` (or `default`) via the gateway `via` in `ns`.
pub fn route_add(ns: &Netns, cidr: &str, via: IpAddr) -> Result<()> {
    let via = via.to_string();
    ns.ip(["route", "add", cidr, "via", &via]).map(drop)
}
