//! The filters gotofw is compared with, configured with the closest equivalent of the
//! benchmark's rule set (see [`crate::gotofw::bench_rules`]), each inside a lab namespace and
//! removed by its guard.
//!
//! - xdp-filter (xdp-tools): deny policy, allow by source port. It cannot express a network
//!   (only single addresses, OR-ed with ports, not AND-ed), so UDP 3478 is allowed from any
//!   address: it does less work than gotofw on that rule.
//! - nftables: a `netdev` ingress chain on the interface, or an `inet` prerouting chain at
//!   priority raw (before conntrack); source ports in a set of `protocol . port`, the TURN
//!   networks in an interval set; policy drop.
//! - iptables (Debian's, the nf_tables variant): the raw table's PREROUTING chain, one rule per
//!   port and per TURN network, then DROP.

use std::{fmt::Write as _, path::PathBuf};

use anyhow::{Context, Result, anyhow};
use aya::programs::Xdp;
use aya_obj::programs::XdpAttachType;
use gotofw_tests::Netns;
use ipnet::IpNet;

use crate::sys::{self, PinFile};

/// Source ports the rule set allows for TCP (https, DNS).
const TCP_PORTS: [u16; 2] = [443, 53];
/// Source ports the rule set allows for UDP from any address (DNS, NTP, DHCP server).
const UDP_PORTS: [u16; 3] = [53, 123, 67];
/// The media range (no-restrictions' UDP rule).
pub const MEDIA: (u16, u16) = (45_000, 49_999);

/// xdp-filter loaded on an interface; unloaded on drop.
pub struct XdpFilter<'a> {
    ns: &'a Netns,
    iface: String,
}

impl<'a> XdpFilter<'a> {
    /// `xdp-filter load -m native -p deny -f tcp,udp IFACE`, then the allowed source ports.
    /// Of the media range only its two ends are added: xdp-filter's port lookup is one array
    /// read whatever the number of ports set, and 5,000 CLI calls would take about 10 s.
    pub fn load(ns: &'a Netns, iface: &str) -> Result<Self> {
        sys::ns_run(
            ns,
            "xdp-filter",
            ["load", "-m", "native", "-p", "deny", "-f", "tcp,udp", iface],
        )?;
        let guard = Self {
            ns,
            iface: iface.to_owned(),
        };
        let port = |port: u16, proto: &str| {
            sys::ns_run(
                ns,
                "xdp-filter",
                ["port", &port.to_string(), "-m", "src", "-p", proto],
            )
            .map(drop)
        };
        for p in TCP_PORTS {
            port(p, "tcp")?;
        }
        for p in UDP_PORTS.into_iter().chain([3478, MEDIA.0, MEDIA.1]) {
            port(p, "udp")?;
        }
        Ok(guard)
    }

    /// The id of the program xdp-filter attached.
    pub fn prog_id(&self) -> Result<u32> {
        gotofw_tests::xdp_prog_id(self.ns, &self.iface)
            .ok_or_else(|| anyhow!("xdp-filter attached no program to {}", self.iface))
    }

    /// Its program, opened by id (pinned for a moment with bpftool, then opened from the pin),
    /// for BPF_PROG_TEST_RUN.
    pub fn program(&self) -> Result<Xdp> {
        let id = self.prog_id()?;
        let pin = PinFile(PathBuf::from(format!(
            "/sys/fs/bpf/gotofw-bench-{}-xdpfilter-{id}",
            std::process::id()
        )));
        let output = std::process::Command::new("bpftool")
            .args(["prog", "pin", "id", &id.to_string()])
            .arg(pin.path())
            .output()
            .context("cannot run bpftool")?;
        sys::check(&output, &format!("bpftool prog pin id {id}"))?;
        let prog = Xdp::from_pin(pin.path(), XdpAttachType::Interface)
            .context("opening xdp-filter's program")?;
        Ok(prog)
    }
}

impl Drop for XdpFilter<'_> {
    fn drop(&mut self) {
        let _ = self.ns.exec("xdp-filter", ["unload", &self.iface]);
        // libxdp's directory on bpffs, empty once nothing is loaded (left alone otherwise).
        let _ = std::fs::remove_dir("/sys/fs/bpf/xdp");
    }
}

/// Where an nftables chain hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NftHook {
    /// `netdev` family, ingress hook of the interface (before the stack allocates anything but
    /// the skb).
    Netdev,
    /// `inet` family, prerouting hook at priority raw (-300), before conntrack.
    Prerouting,
}

/// The name of the benchmark's nftables table.
const NFT_TABLE: &str = "gotofw_bench";

/// The ruleset text for `hook` on `iface` with `nets` as the TURN networks.
pub fn nft_ruleset(hook: NftHook, iface: &str, nets: &[IpNet]) -> String {
    let (family, chain_head) = match hook {
        NftHook::Netdev => (
            "netdev",
            format!("type filter hook ingress device \"{iface}\" priority 0; policy drop;"),
        ),
        NftHook::Prerouting => (
            "inet",
            "type filter hook prerouting priority raw; policy drop;".to_owned(),
        ),
    };
    let ports: Vec<String> = TCP_PORTS
        .iter()
        .map(|p| format!("tcp . {p}"))
        .chain(UDP_PORTS.iter().map(|p| format!("udp . {p}")))
        .collect();
    let mut text = format!(
        "table {family} {NFT_TABLE} {{\n  set ports {{ type inet_proto . inet_service; elements = {{ {} }} }}\n  set turn {{ type ipv4_addr; flags interval;\n",
        ports.join(", ")
    );
    if !nets.is_empty() {
        text.push_str("    elements = {\n");
        for chunk in nets.chunks(8) {
            let list: Vec<String> = chunk.iter().map(ToString::to_string).collect();
            let _ = writeln!(text, "      {},", list.join(", "));
        }
        text.push_str("    }\n");
    }
    let _ = write!(
        text,
        "  }}\n  chain filter {{\n    {chain_head}\n    meta l4proto . th sport @ports accept\n    ip saddr @turn udp sport 3478 accept\n    udp sport {}-{} accept\n  }}\n}}\n",
        MEDIA.0, MEDIA.1
    );
    text
}

/// An nftables table in a namespace; deleted on drop.
pub struct Nft<'a> {
    ns: &'a Netns,
    family: &'static str,
}

impl<'a> Nft<'a> {
    /// Loads [`nft_ruleset`] with `nft -f -` in `ns`.
    pub fn load(ns: &'a Netns, hook: NftHook, iface: &str, nets: &[IpNet]) -> Result<Self> {
        sys::ns_run_stdin(ns, "nft", &["-f", "-"], &nft_ruleset(hook, iface, nets))?;
        Ok(Self {
            ns,
            family: match hook {
                NftHook::Netdev => "netdev",
                NftHook::Prerouting => "inet",
            },
        })
    }
}

impl<'a> Nft<'a> {
    /// The guard of a `gotofw_bench` table of `family` that was loaded otherwise.
    pub const fn existing(ns: &'a Netns, family: &'static str) -> Self {
        Self { ns, family }
    }
}

impl Drop for Nft<'_> {
    fn drop(&mut self) {
        let _ = self
            .ns
            .exec("nft", ["delete", "table", self.family, NFT_TABLE]);
    }
}

/// The name of the benchmark's stateful nftables table ([`NftCt`]).
const NFT_CT_TABLE: &str = "gfb14_ct";

/// The stateful nftables ruleset: an inet prerouting chain after conntrack (priority filter)
/// that accepts what conntrack calls established or related, and DHCP's server replies, and
/// drops the rest: nftables' equivalent of gotofw's stateful ingress (replies of the flows the
/// LAN opened, nothing unsolicited).
pub fn nft_ct_ruleset() -> String {
    format!(
        "table inet {NFT_CT_TABLE} {{\n  chain pre {{\n    type filter hook prerouting priority filter; policy drop;\n    ct state established,related counter accept\n    udp sport 67 udp dport 68 accept\n  }}\n}}\n"
    )
}

/// [`nft_ct_ruleset`] loaded in a namespace (which turns conntrack on there); deleted on drop.
pub struct NftCt<'a> {
    ns: &'a Netns,
}

impl<'a> NftCt<'a> {
    /// Loads [`nft_ct_ruleset`] with `nft -f -` in `ns`.
    pub fn load(ns: &'a Netns) -> Result<Self> {
        sys::ns_run_stdin(ns, "nft", &["-f", "-"], &nft_ct_ruleset())?;
        Ok(Self { ns })
    }

    /// Packets the `ct state established,related` rule accepted so far.
    pub fn accepted(&self) -> Result<u64> {
        let text = sys::ns_run(
            self.ns,
            "nft",
            ["list", "chain", "inet", NFT_CT_TABLE, "pre"],
        )?;
        text.lines()
            .find(|line| line.contains("ct state established,related"))
            .and_then(|line| {
                let mut words = line.split_whitespace();
                words.find(|w| *w == "packets")?;
                words.next()?.parse().ok()
            })
            .ok_or_else(|| anyhow!("no counter of the established rule in:\n{text}"))
    }
}

impl Drop for NftCt<'_> {
    fn drop(&mut self) {
        let _ = self
            .ns
            .exec("nft", ["delete", "table", "inet", NFT_CT_TABLE]);
    }
}

/// The `iptables-restore` input: raw PREROUTING, one rule per port and per TURN network (so
/// `nets` makes a linear chain), then DROP.
pub fn iptables_rules(nets: &[IpNet]) -> String {
    let mut text = String::from("*raw\n:PREROUTING ACCEPT [0:0]\n");
    for p in TCP_PORTS {
        let _ = writeln!(text, "-A PREROUTING -p tcp --sport {p} -j ACCEPT");
    }
    for p in UDP_PORTS {
        let _ = writeln!(text, "-A PREROUTING -p udp --sport {p} -j ACCEPT");
    }
    for net in nets {
        let _ = writeln!(text, "-A PREROUTING -s {net} -p udp --sport 3478 -j ACCEPT");
    }
    let _ = writeln!(
        text,
        "-A PREROUTING -p udp --sport {}:{} -j ACCEPT",
        MEDIA.0, MEDIA.1
    );
    text.push_str("-A PREROUTING -j DROP\nCOMMIT\n");
    text
}

/// iptables rules in a namespace's raw table; flushed on drop.
pub struct Iptables<'a> {
    ns: &'a Netns,
}

impl<'a> Iptables<'a> {
    /// Loads [`iptables_rules`] with `iptables-restore` in `ns`.
    pub fn load(ns: &'a Netns, nets: &[IpNet]) -> Result<Self> {
        sys::ns_run_stdin(ns, "iptables-restore", &[], &iptables_rules(nets))?;
        Ok(Self { ns })
    }
}

impl Drop for Iptables<'_> {
    fn drop(&mut self) {
        let _ = self.ns.exec("iptables", ["-t", "raw", "-F", "PREROUTING"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_ruleset_names_sets_and_hook() {
        let nets: Vec<IpNet> = vec!["68.64.0.0/19".parse().unwrap()];
        let text = nft_ruleset(NftHook::Netdev, "r1", &nets);
        assert!(text.contains("table netdev gotofw_bench"), "{text}");
        assert!(text.contains("hook ingress device \"r1\""), "{text}");
        assert!(text.contains("68.64.0.0/19,"), "{text}");
        assert!(text.contains("tcp . 443"), "{text}");
        let text = nft_ruleset(NftHook::Prerouting, "r1", &[]);
        assert!(text.contains("table inet gotofw_bench"), "{text}");
        assert!(!text.contains("elements = {\n"), "{text}");
    }

    #[test]
    fn nft_ct_ruleset_accepts_established_after_conntrack() {
        let text = nft_ct_ruleset();
        assert!(text.contains("table inet gfb14_ct"), "{text}");
        assert!(
            text.contains("hook prerouting priority filter; policy drop;"),
            "{text}"
        );
        assert!(
            text.contains("ct state established,related counter accept"),
            "{text}"
        );
    }

    #[test]
    fn iptables_chain_is_linear_in_networks() {
        let nets: Vec<IpNet> = crate::rng::networks(10, 1);
        let text = iptables_rules(&nets);
        assert_eq!(text.matches("--sport 3478").count(), 10);
        assert!(text.ends_with("-A PREROUTING -j DROP\nCOMMIT\n"));
    }
}
