//! The attached filter's record: what gotofw stores next to the maps about it (JSON in the
//! `META` map), written at attach and read back by every command.

use std::path::Path;

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf,
    maps::{Array, MapData},
};
use filter_common::{
    META_CHUNK,
    names::{map, pin},
};
use serde::{Deserialize, Serialize};

use super::options::{EgressHook, XdpModeArg};

/// A rule as stored with the filter and shown by `status` and `scenarios`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleInfo {
    /// Rule name.
    pub name: String,
    /// Where it comes from (stored as `scenario`, `allowance` or `operator`).
    pub kind: crate::rule::RuleKind,
    /// `allow` or `block`.
    pub action: String,
    /// `tcp`, `udp` or `tcp+udp`.
    pub protocol: String,
    /// Remote ports, e.g. `3478` or `45000-49999`.
    pub ports: String,
    /// Local ports the rule is limited to, e.g. `68,546` or `22`; empty for any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub local_ports: String,
    /// `"any"`, a list of CIDRs, or `{"domains": ["goto", ...]}` for a domain destination.
    pub networks: serde_json::Value,
    /// What it is for.
    pub description: String,
}

/// How an attached filter admits inbound traffic, as its record names it (`stateful`,
/// `stateless`, `ingress-only`; [`crate::compile::Mode`] without the flow limits, which the
/// record keeps apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterMode {
    /// Flows opened by outbound packets admit the inbound ones.
    Stateful,
    /// No flows: both directions are matched by the rules (inbound by the mirrored ones).
    Stateless,
    /// Inbound packets only, by the mirrored rules; outbound traffic is not filtered.
    #[serde(rename = "ingress-only")]
    IngressOnly,
}

impl FilterMode {
    /// `stateful`, `stateless` or `ingress-only`, as stored and shown.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Stateful => "stateful",
            Self::Stateless => "stateless",
            Self::IngressOnly => "ingress-only",
        }
    }

    /// The mode with the flow limits a record keeps (`flows`, which stateful mode needs);
    /// `None` for a stateful record without them.
    pub const fn with_flows(
        self,
        flows: Option<crate::compile::FlowLimits>,
    ) -> Option<crate::compile::Mode> {
        use crate::compile::Mode;
        match (self, flows) {
            (Self::Stateful, Some(limits)) => Some(Mode::Stateful(limits)),
            (Self::Stateful, None) => None,
            (Self::Stateless, _) => Some(Mode::Stateless),
            (Self::IngressOnly, _) => Some(Mode::IngressOnly),
        }
    }

    /// The mode a config entry's `mode` (one of the `MODE_*` values the programs read) names;
    /// `None` for a value this gotofw does not know.
    pub const fn from_config(mode: u32) -> Option<Self> {
        match mode {
            filter_common::MODE_STATEFUL => Some(Self::Stateful),
            filter_common::MODE_STATELESS => Some(Self::Stateless),
            filter_common::MODE_INGRESS_ONLY => Some(Self::IngressOnly),
            _ => None,
        }
    }
}

impl std::fmt::Display for FilterMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<&crate::compile::Mode> for FilterMode {
    fn from(mode: &crate::compile::Mode) -> Self {
        match mode {
            crate::compile::Mode::Stateful(_) => Self::Stateful,
            crate::compile::Mode::Stateless => Self::Stateless,
            crate::compile::Mode::IngressOnly => Self::IngressOnly,
        }
    }
}

/// What gotofw stores next to the maps about an attached filter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Format version of this record ([`META_VERSION`]; checked on reading).
    pub version: u32,
    /// Interface name at attach time.
    pub interface: String,
    /// Interface index at attach time.
    pub ifindex: u32,
    /// Network namespace (nsfs inode) of the interface.
    #[serde(default)]
    pub netns: u64,
    /// Scenario name.
    pub scenario: String,
    /// How inbound traffic is admitted.
    pub mode: FilterMode,
    /// Flow table limits (stateful mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flows: Option<crate::compile::FlowLimits>,
    /// The operator's choices the rules were built from (for `set-scenario`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<crate::scenario::Options>,
    /// XDP mode the program runs in (`native` or `generic`; `auto` only before attach).
    pub xdp_mode: XdpModeArg,
    /// The hook the egress program runs in (`tcx` or `clsact`; none in ingress-only mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_hook: Option<EgressHook>,
    /// gotofw added the interface's clsact qdisc for its egress filter (there was none): the
    /// filter's removal removes the qdisc too, unless it holds other filters by then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clsact_qdisc: bool,
    /// Unix time of the attach.
    pub attached_at: u64,
    /// The compiled rules, in match order (rule `i` counts in slot `FIXED_SLOTS + i`).
    pub rules: Vec<RuleInfo>,
    /// Enabled allowances that are not port rules.
    pub allowances: Vec<String>,
    /// The domain sets the rules name, in set order (set `i` is bit `i` of the kernel's
    /// domain entries): what `learned` and `explain` name a learned address's set and pattern
    /// by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domain_sets: Vec<DomainSetInfo>,
}

/// A domain set as the filter's record keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSetInfo {
    /// Its name (`goto`, `goto-training`, or the operator's).
    pub name: String,
    /// Its patterns as operators write them (`*.goto.com`, `api.example.org`); a learned
    /// address's pattern index for this set points into this list.
    pub patterns: Vec<String>,
}

/// Rewrites the stored record (after attach, when the mode in use is known).
pub(super) fn store_meta(ebpf: &mut Ebpf, meta: &Meta) -> anyhow::Result<()> {
    write_meta(ebpf, &serde_json::to_vec(meta)?)
}

/// Room the record may gain between the load and [`store_meta`] (the XDP mode in use, the
/// egress hook): the map is sized when the object loads, from the record as planned.
pub(super) const META_SLACK: usize = 1024;

/// Entries of the `META` map for a record of `len` bytes, with [`META_SLACK`] to spare.
pub(super) fn meta_entries(len: usize) -> anyhow::Result<u32> {
    u32::try_from((len + META_SLACK).div_ceil(META_CHUNK))
        .context("the rule set's description is too large to store")
}

/// Stores the JSON record `bytes` in the `META` map, [`META_CHUNK`] bytes an entry, the rest of
/// the map zeroed (a record ends at its first zero byte, or at the end of the map: JSON text
/// holds no zero byte).
pub(super) fn write_meta(ebpf: &mut Ebpf, bytes: &[u8]) -> anyhow::Result<()> {
    let map = ebpf
        .map_mut(map::META)
        .ok_or_else(|| anyhow!("the eBPF object has no map {}", map::META))?;
    write_meta_to(Array::try_from(map)?, bytes)
}

/// [`write_meta`] into an opened `META` map.
pub(super) fn write_meta_to<T: std::borrow::BorrowMut<MapData>>(
    mut map: Array<T, [u8; META_CHUNK]>,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let entries = map.len();
    let room = usize::try_from(entries)? * META_CHUNK;
    if bytes.len() > room {
        return Err(anyhow!(
            "the rule set's description takes {} bytes, more than the {room} its map was sized for",
            bytes.len()
        ));
    }
    let mut parts = bytes.chunks(META_CHUNK);
    for index in 0..entries {
        let mut value = [0u8; META_CHUNK];
        if let Some(part) = parts.next() {
            value[..part.len()].copy_from_slice(part);
        }
        map.set(index, value, 0)
            .context("storing the rule set's description")?;
    }
    Ok(())
}

/// Rewrites the record stored with the filter pinned in `dir`.
pub(super) fn store_pinned_meta(dir: &Path, meta: &Meta) -> anyhow::Result<()> {
    let data = MapData::from_pin(dir.join(pin::META))
        .with_context(|| format!("opening {}/meta", dir.display()))?;
    write_meta_to(
        Array::try_from(aya::maps::Map::Array(data))?,
        &serde_json::to_vec(meta)?,
    )
}

/// The record stored with the filter pinned (or staged) in `dir`, read entry by entry up to its
/// end; a record of another format version than [`META_VERSION`] is refused.
pub(super) fn pinned_meta(dir: &Path) -> anyhow::Result<Meta> {
    let meta_data = MapData::from_pin(dir.join(pin::META))
        .with_context(|| format!("opening {}/meta", dir.display()))?;
    let meta_map: Array<_, [u8; META_CHUNK]> = Array::try_from(aya::maps::Map::Array(meta_data))?;
    let mut bytes = Vec::new();
    for index in 0..meta_map.len() {
        let chunk = meta_map.get(&index, 0)?;
        match chunk.iter().position(|b| *b == 0) {
            Some(end) => {
                bytes.extend_from_slice(&chunk[..end]);
                break;
            }
            None => bytes.extend_from_slice(&chunk),
        }
    }
    parse_meta(&bytes)
        .with_context(|| format!("reading the filter description in {}/meta", dir.display()))
}

/// Format version of the stored record ([`Meta::version`]) and of the pinned maps it describes.
/// Version 2: the config map's value carries the link type (72 bytes, was 64). Version 3: the
/// config map's value carries the domain rules (160 bytes), and there are DNS maps.
pub const META_VERSION: u32 = 3;

/// Parses a stored record, after checking its format version.
pub(super) fn parse_meta(bytes: &[u8]) -> anyhow::Result<Meta> {
    #[derive(Deserialize)]
    struct Head {
        version: u32,
    }
    let head: Head = serde_json::from_slice(bytes)?;
    if head.version != META_VERSION {
        return Err(anyhow!(
            "its record has format version {}, and this gotofw reads version {META_VERSION}: run the gotofw that attached the filter, or detach it and attach it again with this one",
            head.version
        ));
    }
    Ok(serde_json::from_slice(bytes)?)
}

impl From<&crate::scenario::Rule> for RuleInfo {
    fn from(rule: &crate::scenario::Rule) -> Self {
        Self {
            name: rule.name.clone(),
            kind: rule.kind,
            action: rule.action.to_string(),
            protocol: rule.protocols_text(),
            ports: rule.ports_text(),
            local_ports: rule
                .local_ports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            networks: serde_json::to_value(&rule.networks).unwrap_or_default(),
            description: rule.description.clone(),
        }
    }
}

impl RuleInfo {
    /// Networks as operators read them: `any`, one or two CIDRs, or a count.
    pub fn networks_text(&self) -> String {
        networks_text(&self.networks)
    }
}

/// Stored networks (`"any"`, a list of CIDRs, or `{"domains": [SET, ...]}`) as operators read
/// them: `any`, the CIDRs, a count, or `domains goto,office`.
pub fn networks_text(networks: &serde_json::Value) -> String {
    {
        match networks {
            serde_json::Value::Array(list) if list.len() <= 2 => list
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(","),
            serde_json::Value::Array(list) => format!("{} networks", list.len()),
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(map) if map.contains_key("domains") => {
                let sets: Vec<&str> = map["domains"]
                    .as_array()
                    .map(|l| l.iter().filter_map(|v| v.as_str()).collect())
                    .unwrap_or_default();
                format!("domains {}", sets.join(","))
            }
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod meta_tests {
    use super::*;

    /// A record reads back as stored; one of another format version is refused, naming both.
    #[test]
    fn records_of_another_version_are_refused() {
        let meta = Meta {
            version: META_VERSION,
            interface: "wan0".into(),
            ifindex: 7,
            netns: 1,
            scenario: "udp-turn".into(),
            mode: FilterMode::Stateless,
            flows: None,
            options: None,
            xdp_mode: XdpModeArg::Generic,
            egress_hook: None,
            clsact_qdisc: false,
            attached_at: 0,
            rules: Vec::new(),
            allowances: Vec::new(),
            domain_sets: Vec::new(),
        };
        let bytes = serde_json::to_vec(&meta).unwrap();
        assert_eq!(parse_meta(&bytes).unwrap(), meta);
        let other = serde_json::to_vec(&Meta {
            version: META_VERSION + 1,
            ..meta
        })
        .unwrap();
        let err = parse_meta(&other).unwrap_err().to_string();
        assert!(
            err.contains(&format!("format version {}", META_VERSION + 1))
                && err.contains(&format!("reads version {META_VERSION}")),
            "{err}"
        );
        assert!(parse_meta(b"{\"interface\": \"wan0\"}").is_err());
    }

    /// Rule kinds are stored as the words records have always held (`scenario`, `allowance`,
    /// `operator`): a stored rule reads back as the same kind and writes back as the same bytes.
    #[test]
    fn rule_kinds_keep_their_stored_names() {
        use crate::rule::RuleKind;
        for (kind, word) in [
            (RuleKind::Scenario, "scenario"),
            (RuleKind::Allowance, "allowance"),
            (RuleKind::Operator, "operator"),
        ] {
            let stored = format!(
                r#"{{"name":"r","kind":"{word}","action":"allow","protocol":"udp","ports":"3478","networks":"any","description":"d"}}"#
            );
            let rule: RuleInfo = serde_json::from_str(&stored).unwrap();
            assert_eq!(rule.kind, kind);
            assert_eq!(rule.kind.to_string(), word);
            assert_eq!(serde_json::to_string(&rule).unwrap(), stored);
        }
        assert!(
            serde_json::from_str::<RuleInfo>(
                r#"{"name":"r","kind":"other","action":"allow","protocol":"udp","ports":"3478","networks":"any","description":"d"}"#
            )
            .is_err()
        );
    }

    /// The map holds the record with room to spare, in whole entries.
    #[test]
    fn the_map_is_sized_from_the_record() {
        assert_eq!(meta_entries(0).unwrap(), 1);
        assert_eq!(meta_entries(META_CHUNK - META_SLACK).unwrap(), 1);
        assert_eq!(meta_entries(META_CHUNK - META_SLACK + 1).unwrap(), 2);
        let big = 9_000_000;
        let entries = usize::try_from(meta_entries(big).unwrap()).unwrap();
        assert!(entries * META_CHUNK >= big + META_SLACK);
        assert!((entries - 1) * META_CHUNK < big + META_SLACK);
    }
}
