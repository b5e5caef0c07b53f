//! The lab's nftables counters: per server endpoint, what the gateway sent out of its WAN and
//! saw come in through it, and what `inet` received from and sent to the gateway.

use std::{collections::BTreeMap, fs};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{Endpoint, Lab3};
use crate::{Netns, gotofw::GW_ADDR};

/// The nftables table the lab adds in `gw` and `inet`.
const NFT_TABLE: &str = "gotofw_lab";

/// Packets nftables counted for one endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointCounts {
    /// Packets to the server that the gateway's stack sent out of its WAN
    /// interface, after masquerading and before any TC egress filter (`gw`
    /// postrouting).
    pub sent_by_gw: u64,
    /// Packets from the gateway that reached the server (`inet` input).
    pub to_server: u64,
    /// Packets the server sent to the gateway (`inet` output).
    pub from_server: u64,
    /// Packets from the server that reached the gateway's stack through its
    /// WAN interface, i.e. that XDP passed (`gw` prerouting, raw priority).
    pub seen_by_gw: u64,
}

impl EndpointCounts {
    /// The packets counted since `before`.
    #[must_use]
    pub fn since(self, before: Self) -> Self {
        Self {
            sent_by_gw: self.sent_by_gw.saturating_sub(before.sent_by_gw),
            to_server: self.to_server.saturating_sub(before.to_server),
            from_server: self.from_server.saturating_sub(before.from_server),
            seen_by_gw: self.seen_by_gw.saturating_sub(before.seen_by_gw),
        }
    }
}

impl Lab3 {
    /// Runs `nft -f FILE` in `ns` with `rules` written to FILE.
    fn nft_apply(&self, ns: &Netns, file: &str, rules: &str) -> Result<()> {
        let path = self.path(file);
        fs::write(&path, rules)?;
        let nft = self.programs.nft.display().to_string();
        let output = ns.exec(&nft, ["-f", &path.display().to_string()])?;
        if !output.status.success() {
            bail!(
                "nft -f {} in {} failed: {}",
                path.display(),
                ns.name(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// The gateway's masquerade and WAN-ingress counters; `inet`'s counters
    /// of what it received from and sent to the gateway.
    pub(super) fn install_nft(&self) -> Result<()> {
        let wan = self.wan();
        let (mut gw_counters, mut gw_in, mut gw_out) = (Vec::new(), Vec::new(), Vec::new());
        let (mut inet_counters, mut inet_in, mut inet_out) = (Vec::new(), Vec::new(), Vec::new());
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            let (proto, ip, port) = (
                endpoint.transport.name(),
                endpoint.addr.ip(),
                endpoint.addr.port(),
            );
            gw_counters.push(format!(
                "  counter seen_{index} {{ }}\n  counter out_{index} {{ }}"
            ));
            inet_counters.push(format!(
                "  counter to_{index} {{ }}\n  counter from_{index} {{ }}"
            ));
            gw_in.push(format!(
                "    iifname \"{wan}\" ip saddr {ip} {proto} sport {port} counter name \"seen_{index}\""
            ));
            gw_out.push(format!(
                "    oifname \"{wan}\" ip daddr {ip} {proto} dport {port} counter name \"out_{index}\""
            ));
            inet_in.push(format!(
                "    ip saddr {GW_ADDR} ip daddr {ip} {proto} dport {port} counter name \"to_{index}\""
            ));
            inet_out.push(format!(
                "    ip saddr {ip} ip daddr {GW_ADDR} {proto} sport {port} counter name \"from_{index}\""
            ));
        }
        let gw = format!(
            "table ip {NFT_TABLE} {{\n{}\n  chain nat_out {{\n    \
             type nat hook postrouting priority srcnat; policy accept;\n    \
             oifname \"{wan}\" masquerade\n  }}\n  chain wan_in {{\n    \
             type filter hook prerouting priority raw; policy accept;\n{}\n  }}\n  chain wan_out {{\n    \
             type filter hook postrouting priority srcnat + 10; policy accept;\n{}\n  }}\n}}\n",
            gw_counters.join("\n"),
            gw_in.join("\n"),
            gw_out.join("\n"),
        );
        let inet = format!(
            "table ip {NFT_TABLE} {{\n{}\n  chain from_gw {{\n    \
             type filter hook input priority filter; policy accept;\n{}\n  }}\n  chain to_gw {{\n    \
             type filter hook output priority filter; policy accept;\n{}\n  }}\n}}\n",
            inet_counters.join("\n"),
            inet_in.join("\n"),
            inet_out.join("\n"),
        );
        self.nft_apply(&self.gw, "gw.nft", &gw)?;
        self.nft_apply(&self.inet, "inet.nft", &inet)
    }

    /// nftables' packet counts for every endpoint. The gateway is read first,
    /// so a packet counted there has been counted by `inet` too.
    pub fn counts(&self) -> Result<BTreeMap<Endpoint, EndpointCounts>> {
        let gw = self.nft_counters(&self.gw)?;
        let inet = self.nft_counters(&self.inet)?;
        let get = |counters: &BTreeMap<String, u64>, name: String| {
            counters
                .get(&name)
                .copied()
                .with_context(|| format!("no nft counter {name}"))
        };
        self.endpoints
            .iter()
            .enumerate()
            .map(|(index, &endpoint)| {
                Ok((
                    endpoint,
                    EndpointCounts {
                        sent_by_gw: get(&gw, format!("out_{index}"))?,
                        to_server: get(&inet, format!("to_{index}"))?,
                        from_server: get(&inet, format!("from_{index}"))?,
                        seen_by_gw: get(&gw, format!("seen_{index}"))?,
                    },
                ))
            })
            .collect()
    }

    /// The packets of every named counter of the lab's nft table in `ns`.
    fn nft_counters(&self, ns: &Netns) -> Result<BTreeMap<String, u64>> {
        let nft = self.programs.nft.display().to_string();
        let output = ns.exec(&nft, ["-j", "list", "counters", "table", "ip", NFT_TABLE])?;
        if !output.status.success() {
            bail!(
                "nft list counters in {} failed: {}",
                ns.name(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let json: Value = serde_json::from_slice(&output.stdout)
            .context("`nft -j list counters` printed no JSON")?;
        Ok(json["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let counter = &item["counter"];
                Some((
                    counter["name"].as_str()?.to_owned(),
                    counter["packets"].as_u64()?,
                ))
            })
            .collect())
    }
}
