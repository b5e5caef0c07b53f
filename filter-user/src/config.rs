//! The configuration file (`/etc/gotofw/gotofw.toml`, or `--config FILE`): what `attach
//! --config`, `check-config` and `run` read.
//!
//! Three steps. serde reads the TOML into raw tables (unknown keys refused, each value keeping its
//! place in the file); [`load`] checks every value with that place in hand, so an error names
//! `FILE:LINE`, the key, the value and the fix; [`resolve`] merges the checked file with the
//! command line (an option given there wins over the file's key of the same meaning) into the
//! [`Options`], [`Mode`] and interfaces an attach needs.

use std::{
    collections::HashSet,
    fmt::Write as _,
    fs,
    net::SocketAddr,
    ops::Range,
    path::{Path, PathBuf},
};

use filter_common::MAX_RULES;
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::{
    compile::{FlowLimits, Mode},
    error::UsageError,
    loader::options::{EgressHook, XdpModeArg},
    operator::{OperatorRule, Position, RuleDirection},
    scenario::{
        Action, Allowance, MEDIA_PORTS, Options, PortRange, Protocol, RawNetworkArgs, Scenario,
        TurnDst, dedup_networks, default_turn_networks, parse_network,
    },
    slots::FIXED,
    system,
};

/// Where `check-config` and `run` look when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/gotofw/gotofw.toml";

/// Bounds of the flow settings, the same as the command line's.
const TABLE_SIZE: (u32, u32) = (1024, 16_777_216);
const UDP_TIMEOUT: (u32, u32) = (1, 86_400);
const TCP_TIMEOUT: (u32, u32) = (1, 1_209_600);
const TCP_TRANSITORY_TIMEOUT: (u32, u32) = (1, 3_600);

// ---------------------------------------------------------------------------------------------
// The file as serde reads it.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    interfaces: Option<Spanned<Vec<Spanned<String>>>>,
    scenario: Option<Spanned<String>>,
    mode: Option<Spanned<ModeName>>,
    xdp_mode: Option<XdpModeArg>,
    egress_hook: Option<EgressHook>,
    #[serde(default)]
    training: bool,
    #[serde(default)]
    turn: RawTurn,
    #[serde(default)]
    media: RawMedia,
    #[serde(default)]
    allow: RawAllow,
    #[serde(default)]
    flows: RawFlows,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    service: RawService,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    rate: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTurn {
    destination: Option<Spanned<String>>,
    networks: Option<Spanned<Vec<Spanned<String>>>>,
    extra_networks: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMedia {
    ports: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    non_ip: Option<bool>,
    icmpv6_nd: Option<bool>,
    icmp_errors: Option<bool>,
    dhcp: Option<bool>,
    dns: Option<bool>,
    ntp: Option<bool>,
    dns_servers: Option<Spanned<Vec<Spanned<String>>>>,
    ntp_servers: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlows {
    table_size: Option<Spanned<i64>>,
    udp_timeout: Option<Spanned<i64>>,
    tcp_timeout: Option<Spanned<i64>>,
    tcp_transitory_timeout: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    direction: RuleDirection,
    protocol: Spanned<String>,
    ports: Spanned<toml::Value>,
    networks: Spanned<toml::Value>,
    action: Action,
    position: Position,
    description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    on_stop: Option<OnStop>,
}

/// `mode` in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeName {
    /// Flows opened by outbound packets admit the inbound ones.
    Stateful,
    /// No flows: outbound packets are matched by the rules, replies by their source port and
    /// network.
    Stateless,
    /// Inbound packets only, as in stateless mode; outbound traffic is not filtered.
    #[serde(rename = "ingress-only")]
    IngressOnly,
}

impl ModeName {
    /// The name as the file spells it.
    const fn text(self) -> &'static str {
        match self {
            Self::Stateful => "stateful",
            Self::Stateless => "stateless",
            Self::IngressOnly => "ingress-only",
        }
    }
}

/// What `gotofw run` does to its filters when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStop {
    /// Leave them attached and pinned: the gateway stays filtered (the default).
    #[default]
    Keep,
    /// Detach them.
    Detach,
}

// ---------------------------------------------------------------------------------------------
// The file, checked.

/// Flow settings, each unset unless given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowSettings {
    /// `[flows] table_size`, `--flow-table-size`.
    pub table_size: Option<u32>,
    /// `[flows] udp_timeout`, `--udp-timeout`.
    pub udp_timeout: Option<u32>,
    /// `[flows] tcp_timeout`, `--tcp-timeout`.
    pub tcp_timeout: Option<u32>,
    /// `[flows] tcp_transitory_timeout`, `--tcp-transitory-timeout`.
    pub tcp_transitory_timeout: Option<u32>,
}

impl FlowSettings {
    /// `self` where set, else `base`.
    fn over(self, base: FlowLimits) -> FlowLimits {
        FlowLimits {
            table_size: self.table_size.unwrap_or(base.table_size),
            udp_timeout: self.udp_timeout.unwrap_or(base.udp_timeout),
            tcp_established_timeout: self.tcp_timeout.unwrap_or(base.tcp_established_timeout),
            tcp_transitory_timeout: self
                .tcp_transitory_timeout
                .unwrap_or(base.tcp_transitory_timeout),
        }
    }
}

/// A configuration file, every value checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file.
    pub path: PathBuf,
    /// `interfaces`: the WAN interfaces to filter.
    pub interfaces: Vec<String>,
    /// `scenario`.
    pub scenario: Option<Scenario>,
    /// `mode`, and its line.
    pub mode: Option<(ModeName, usize)>,
    /// `xdp_mode`.
    pub xdp_mode: Option<XdpModeArg>,
    /// `egress_hook`.
    pub egress_hook: Option<EgressHook>,
    /// `training`: the GoTo Training add-on (domains only; see the README).
    pub training: bool,
    /// `[turn] destination`.
    pub turn_dst: Option<TurnDst>,
    /// `[turn] networks`: replaces GoTo's TURN networks.
    pub networks: Option<Vec<IpNet>>,
    /// `[turn] extra_networks`: added to them.
    pub extra_networks: Vec<IpNet>,
    /// `[media] ports`.
    pub media_ports: Option<PortRange>,
    /// Allowances switched off in `[allow]`.
    pub disabled: Vec<Allowance>,
    /// `[allow] dns_servers`.
    pub dns_servers: Vec<IpNet>,
    /// `[allow] ntp_servers`.
    pub ntp_servers: Vec<IpNet>,
    /// `[flows]`.
    pub flows: FlowSettings,
    /// `[[rules]]`, each with the line of its name.
    pub rules: Vec<(OperatorRule, usize)>,
    /// `[log] rate`: drop-log samples per second and CPU.
    pub log_rate: Option<u32>,
    /// `[metrics] listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `[service] on_stop`.
    pub on_stop: OnStop,
}

/// The largest configuration file gotofw reads: 32 MiB. The most a filter holds, 64 rules and
/// 262,144 networks, written one per line (IPv6 at full length), takes about 13 MiB.
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// Reads and checks the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, UsageError> {
    let text = read_bounded(path)?;
    parse(path, &text)
}

/// The text of the file at `path`: a regular file (or a pipe) of at most [`MAX_FILE_BYTES`],
/// read with that bound whatever the file claims, in UTF-8.
fn read_bounded(path: &Path) -> Result<String, UsageError> {
    use std::{io::Read as _, os::unix::fs::FileTypeExt as _};
    let refuse = |message: String| UsageError::Config {
        location: path.display().to_string(),
        message,
    };
    let cannot = |e: std::io::Error| {
        // The system's words, without Rust's "(os error 2)".
        let e = e.to_string();
        let why = e.split(" (os error").next().unwrap_or(&e).to_lowercase();
        refuse(format!(
            "cannot read the configuration file ({why}): write one (packaging/gotofw.toml is a commented example) or point --config at it"
        ))
    };
    let too_big = || {
        refuse(format!(
            "the file is larger than the {} MiB a configuration file may have (the 262,144 networks a filter holds take about 13 MiB): check that --config names the configuration file",
            MAX_FILE_BYTES >> 20
        ))
    };
    let file = fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    let kind = meta.file_type();
    let what = if kind.is_dir() {
        Some("a directory")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        None
    };
    if let Some(what) = what {
        return Err(refuse(format!(
            "is {what}, not a configuration file: point --config at a TOML file of at most {} MiB (packaging/gotofw.toml is a commented example)",
            MAX_FILE_BYTES >> 20
        )));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|e| {
        refuse(format!(
            "the file is not UTF-8 text (a bad byte at offset {}): save it as UTF-8",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Checks `text`, the contents of the configuration file `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, UsageError> {
    let at = Locator { path, text };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let mut message = one_line(e.message());
        match e.span() {
            Some(span) => {
                message = type_words(&message, &setting_at(text, span.start));
                // toml names the fault, not the key: take it from the file.
                let key = text.get(span.clone()).map(str::trim).unwrap_or_default();
                if message.starts_with("duplicate key") && !key.is_empty() {
                    message = format!(
                        "duplicate key `{key}`: a key may appear once in its table; keep one of them"
                    );
                }
                at.error(&span, message)
            }
            None => at.whole(message),
        }
    })?;
    at.check(&raw)
}

/// Turns byte offsets of the file into `FILE:LINE` errors.
struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].matches('\n').count() + 1
    }

    fn error(&self, span: &Range<usize>, message: impl Into<String>) -> UsageError {
        UsageError::Config {
            location: format!("{}:{}", self.path.display(), self.line(span)),
            message: one_line(&message.into()),
        }
    }

    fn whole(&self, message: impl Into<String>) -> UsageError {
        UsageError::Config {
            location: self.path.display().to_string(),
            message: one_line(&message.into()),
        }
    }

    fn check(&self, raw: &RawConfig) -> Result<Config, UsageError> {
        let mut interfaces = Vec::new();
        if let Some(list) = &raw.interfaces {
            if list.get_ref().is_empty() {
                return Err(self.error(
                    &list.span(),
                    "interfaces = [] names no interface: list the WAN interface(s), e.g. interfaces = [\"eth1\"]",
                ));
            }
            for name in list.get_ref() {
                system::check_interface_name(name.get_ref())
                    .map_err(|e| self.error(&name.span(), format!("interfaces: {e}")))?;
                if interfaces.contains(name.get_ref()) {
                    return Err(self.error(
                        &name.span(),
                        format!("interfaces: '{}' is listed twice", name.get_ref()),
                    ));
                }
                interfaces.push(name.get_ref().clone());
            }
        }
        let scenario = raw
            .scenario
            .as_ref()
            .map(|s| {
                s.get_ref().parse::<Scenario>().map_err(|e| {
                    self.error(&s.span(), format!("scenario = \"{}\": {e}", s.get_ref()))
                })
            })
            .transpose()?;
        let turn_dst = raw
            .turn
            .destination
            .as_ref()
            .map(|d| match d.get_ref().as_str() {
                "turn-networks" => Ok(TurnDst::TurnNetworks),
                "any" => Ok(TurnDst::Any),
                other => Err(self.error(
                    &d.span(),
                    format!("[turn] destination = \"{other}\": use \"turn-networks\" (GoTo's TURN networks) or \"any\" (any address)"),
                )),
            })
            .transpose()?;
        let networks = match &raw.turn.networks {
            Some(list) if list.get_ref().is_empty() => {
                return Err(self.error(
                    &list.span(),
                    "[turn] networks = [] leaves the TURN network set empty: list at least one CIDR, or remove the key to keep GoTo's five networks",
                ));
            }
            Some(list) => Some(self.networks(list.get_ref(), "[turn] networks")?),
            None => None,
        };
        let extra_networks = match &raw.turn.extra_networks {
            Some(list) => self.networks(list.get_ref(), "[turn] extra_networks")?,
            None => Vec::new(),
        };
        let media_ports = raw
            .media
            .ports
            .as_ref()
            .map(|p| {
                parse_range(p.get_ref()).ok_or_else(|| {
                    self.error(
                        &p.span(),
                        format!("[media] ports = \"{}\" is not a port range: write FIRST-LAST with ports 1-65535, e.g. \"45000-49999\"", p.get_ref()),
                    )
                })
            })
            .transpose()?;
        let a = &raw.allow;
        let disabled: Vec<Allowance> = Allowance::ALL
            .into_iter()
            .zip([a.non_ip, a.icmpv6_nd, a.icmp_errors, a.dhcp, a.dns, a.ntp])
            .filter(|(_, on)| *on == Some(false))
            .map(|(allowance, _)| allowance)
            .collect();
        let dns_servers = match &a.dns_servers {
            Some(list) => self.networks(list.get_ref(), "[allow] dns_servers")?,
            None => Vec::new(),
        };
        let ntp_servers = match &a.ntp_servers {
            Some(list) => self.networks(list.get_ref(), "[allow] ntp_servers")?,
            None => Vec::new(),
        };
        let f = &raw.flows;
        let flows = FlowSettings {
            table_size: self.bounded(
                f.table_size.as_ref(),
                "[flows] table_size",
                TABLE_SIZE,
                "flows",
            )?,
            udp_timeout: self.bounded(
                f.udp_timeout.as_ref(),
                "[flows] udp_timeout",
                UDP_TIMEOUT,
                "seconds",
            )?,
            tcp_timeout: self.bounded(
                f.tcp_timeout.as_ref(),
                "[flows] tcp_timeout",
                TCP_TIMEOUT,
                "seconds",
            )?,
            tcp_transitory_timeout: self.bounded(
                f.tcp_transitory_timeout.as_ref(),
                "[flows] tcp_transitory_timeout",
                TCP_TRANSITORY_TIMEOUT,
                "seconds",
            )?,
        };
        let log_rate = self.bounded(
            raw.log.rate.as_ref(),
            "[log] rate",
            (0, filter_common::MAX_LOG_RATE),
            "samples per second and CPU (0 switches the drop log off)",
        )?;
        let rules = self.rules(&raw.rules)?;
        let metrics_listen = raw
            .metrics
            .listen
            .as_ref()
            .map(|l| {
                l.get_ref()
                    .parse::<SocketAddr>()
                    .ok()
                    .filter(|a| a.port() != 0)
                    .ok_or_else(|| {
                        self.error(
                            &l.span(),
                            format!("[metrics] listen = \"{}\" is not ADDR:PORT: write e.g. \"127.0.0.1:9469\" or \"[::1]:9469\"", l.get_ref()),
                        )
                    })
            })
            .transpose()?;
        if let Some(scenario) = scenario {
            self.take_effect(raw, scenario, networks.as_deref(), media_ports)?;
        }
        self.take_effect_in_any_scenario(raw, &disabled, &flows)?;
        Ok(Config {
            path: self.path.to_owned(),
            interfaces,
            scenario,
            mode: raw
                .mode
                .as_ref()
                .map(|m| (*m.get_ref(), self.line(&m.span()))),
            xdp_mode: raw.xdp_mode,
            egress_hook: raw.egress_hook,
            training: raw.training,
            turn_dst,
            networks,
            extra_networks,
            media_ports,
            disabled,
            dns_servers,
            ntp_servers,
            flows,
            rules,
            log_rate,
            metrics_listen,
            on_stop: raw.service.on_stop.unwrap_or_default(),
        })
    }

    /// Refuses what the file sets that cannot take effect under its own `scenario`, as the
    /// command line does: the TURN networks outside udp-turn and tcp-turn or with destination =
    /// "any", destination = "any" outside udp-turn, media ports outside no-restrictions. A value
    /// equal to the default changes nothing anywhere, and is accepted.
    fn take_effect(
        &self,
        raw: &RawConfig,
        scenario: Scenario,
        networks: Option<&[IpNet]>,
        media_ports: Option<PortRange>,
    ) -> Result<(), UsageError> {
        let turn = &raw.turn;
        let any = turn.destination.as_ref().filter(|d| d.get_ref() == "any");
        // `networks` restating GoTo's five changes nothing, as `extra_networks = []` does not.
        let default_networks = networks == Some(default_turn_networks().as_slice());
        for (list, key) in [
            (&turn.networks, "networks"),
            (&turn.extra_networks, "extra_networks"),
        ] {
            let Some(list) = list.as_ref().filter(|l| !l.get_ref().is_empty()) else {
                continue;
            };
            if key == "networks" && default_networks {
                continue;
            }
            if !scenario.uses_turn_networks() {
                return Err(self.error(
                    &list.span(),
                    format!("[turn] {key} has no effect with scenario = \"{scenario}\" (only udp-turn and tcp-turn use the TURN networks): remove it, or choose one of those"),
                ));
            }
            if any.is_some() && scenario == Scenario::UdpTurn {
                return Err(self.error(
                    &list.span(),
                    format!("[turn] {key} has no effect with destination = \"any\" (udp-turn then sends UDP 3478 to any address): remove one of them"),
                ));
            }
        }
        if let Some(d) = any
            && scenario != Scenario::UdpTurn
        {
            return Err(self.error(
                &d.span(),
                format!("[turn] destination = \"any\" applies only to scenario udp-turn (GoTo's document offers the choice there alone), not to {scenario}: remove it"),
            ));
        }
        if let Some(p) = &raw.media.ports
            && media_ports != Some(MEDIA_PORTS)
            && scenario != Scenario::NoRestrictions
        {
            return Err(self.error(
                &p.span(),
                format!("[media] ports = \"{}\" applies only to scenario no-restrictions, not to {scenario}: remove it", p.get_ref()),
            ));
        }
        Ok(())
    }

    /// Refuses what cannot take effect whatever the scenario: servers of an allowance the file
    /// switches off, flow settings (other than the defaults) in stateless mode.
    fn take_effect_in_any_scenario(
        &self,
        raw: &RawConfig,
        disabled: &[Allowance],
        flows: &FlowSettings,
    ) -> Result<(), UsageError> {
        for (allowance, list, key) in [
            (Allowance::Dns, &raw.allow.dns_servers, "dns_servers"),
            (Allowance::Ntp, &raw.allow.ntp_servers, "ntp_servers"),
        ] {
            if let Some(list) = list.as_ref().filter(|l| !l.get_ref().is_empty())
                && disabled.contains(&allowance)
            {
                return Err(self.error(
                    &list.span(),
                    format!("[allow] {key} has no effect: {allowance} = false switches the {allowance} allowance off; remove one of them"),
                ));
            }
        }
        let mode = raw.mode.as_ref().map(|m| *m.get_ref());
        if let (Some(ModeName::IngressOnly), Some(m), Some(_)) =
            (mode, raw.mode.as_ref(), raw.egress_hook)
        {
            return Err(self.error(
                &m.span(),
                "egress_hook has no effect with mode = \"ingress-only\" (it has no egress hook): remove egress_hook, or set mode = \"stateless\" (which filters at the egress too)".to_owned(),
            ));
        }
        if let Some(name @ (ModeName::Stateless | ModeName::IngressOnly)) = mode
            && flows.over(FlowLimits::default()) != FlowLimits::default()
        {
            let (f, d) = (&raw.flows, FlowLimits::default());
            let first = [
                (&f.table_size, flows.table_size, d.table_size, "table_size"),
                (
                    &f.udp_timeout,
                    flows.udp_timeout,
                    d.udp_timeout,
                    "udp_timeout",
                ),
                (
                    &f.tcp_timeout,
                    flows.tcp_timeout,
                    d.tcp_established_timeout,
                    "tcp_timeout",
                ),
                (
                    &f.tcp_transitory_timeout,
                    flows.tcp_transitory_timeout,
                    d.tcp_transitory_timeout,
                    "tcp_transitory_timeout",
                ),
            ]
            .into_iter()
            .find_map(|(v, set, default, key)| {
                v.as_ref()
                    .filter(|_| set != Some(default))
                    .map(|v| (v.span(), key))
            });
            if let Some((span, key)) = first {
                return Err(self.error(
                    &span,
                    format!("[flows] {key} applies to stateful mode only, and the file says mode = \"{}\": remove it, or set mode = \"stateful\"", name.text()),
                ));
            }
        }
        Ok(())
    }

    fn networks(
        &self,
        list: &[Spanned<String>],
        key: &'static str,
    ) -> Result<Vec<IpNet>, UsageError> {
        let mut out = Vec::new();
        for item in list {
            out.push(
                parse_network(item.get_ref(), key)
                    .map_err(|e| self.error(&item.span(), e.to_string()))?,
            );
        }
        Ok(dedup_networks(out))
    }

    fn bounded(
        &self,
        value: Option<&Spanned<i64>>,
        key: &str,
        (low, high): (u32, u32),
        unit: &str,
    ) -> Result<Option<u32>, UsageError> {
        let Some(value) = value else { return Ok(None) };
        let n = *value.get_ref();
        u32::try_from(n)
            .ok()
            .filter(|n| (low..=high).contains(n))
            .map(Some)
            .ok_or_else(|| {
                self.error(
                    &value.span(),
                    format!("{key} = {n} is out of range: give {low} to {high} {unit}"),
                )
            })
    }

    fn rules(&self, raw: &[Spanned<RawRule>]) -> Result<Vec<(OperatorRule, usize)>, UsageError> {
        let reserved = reserved_names();
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for spanned in raw {
            let r = spanned.get_ref();
            let name = r.name.get_ref();
            let valid = (1..=40).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !valid {
                return Err(self.error(
                    &r.name.span(),
                    format!("[[rules]] name = \"{name}\": use 1-40 letters, digits, '-', '_' or '.', e.g. \"office-vpn\""),
                ));
            }
            if reserved.contains(name.as_str()) {
                return Err(self.error(
                    &r.name.span(),
                    format!("[[rules]] name = \"{name}\" is a built-in rule or counter of gotofw: choose another name"),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(self.error(
                    &r.name.span(),
                    format!("[[rules]] name = \"{name}\" is used twice: every rule needs a name of its own (counters are per name)"),
                ));
            }
            let protocols = match r.protocol.get_ref().as_str() {
                "tcp" => vec![Protocol::Tcp],
                "udp" => vec![Protocol::Udp],
                "tcp+udp" | "udp+tcp" => vec![Protocol::Tcp, Protocol::Udp],
                other => {
                    return Err(self.error(
                        &r.protocol.span(),
                        format!("[[rules]] '{name}': protocol = \"{other}\": use \"tcp\", \"udp\" or \"tcp+udp\" (rules match TCP and UDP ports)"),
                    ));
                }
            };
            let ports = parse_ports(r.ports.get_ref()).map_err(|why| {
                self.error(
                    &r.ports.span(),
                    format!("[[rules]] '{name}': ports {why}: give a port (1-65535), a range such as \"60000-60100\", or a list such as [22, \"60000-60100\"]"),
                )
            })?;
            let networks = match r.networks.get_ref() {
                toml::Value::String(s) if s == "any" => None,
                toml::Value::Array(items) if !items.is_empty() => {
                    let mut nets = Vec::new();
                    for item in items {
                        let toml::Value::String(text) = item else {
                            return Err(self.error(
                                &r.networks.span(),
                                format!("[[rules]] '{name}': networks holds {}, not a CIDR string: write e.g. [\"198.51.100.0/24\"]", shown(item)),
                            ));
                        };
                        nets.push(parse_network(text, "networks").map_err(|e| {
                            self.error(&r.networks.span(), format!("[[rules]] '{name}': {e}"))
                        })?);
                    }
                    Some(dedup_networks(nets))
                }
                toml::Value::Array(_) => {
                    return Err(self.error(
                        &r.networks.span(),
                        format!("[[rules]] '{name}': networks = [] names no address, so the rule could never match: list at least one CIDR, or write \"any\""),
                    ));
                }
                other => {
                    return Err(self.error(
                        &r.networks.span(),
                        format!("[[rules]] '{name}': networks = {} is neither \"any\" nor a list of CIDRs: write \"any\" or e.g. [\"198.51.100.0/24\", \"2001:db8::/32\"]", shown(other)),
                    ));
                }
            };
            out.push((
                OperatorRule {
                    name: name.clone(),
                    direction: r.direction,
                    protocols,
                    ports,
                    networks,
                    action: r.action,
                    position: r.position,
                    description: r.description.clone().unwrap_or_default(),
                },
                self.line(&r.name.span()),
            ));
        }
        Ok(out)
    }
}

/// Names an operator rule cannot take: every scenario rule, allowance and fixed counter.
fn reserved_names() -> HashSet<String> {
    let mut names: HashSet<String> = Scenario::ALL
        .into_iter()
        .flat_map(|sc| Options::new(sc).rules())
        .map(|r| r.name)
        .collect();
    names.extend(Allowance::ALL.iter().map(|a| a.name().to_owned()));
    names.extend(FIXED.iter().map(|f| f.name.to_owned()));
    names
}

/// `FIRST-LAST` or `PORT`, ports 1-65535, first not above last.
fn parse_range(text: &str) -> Option<PortRange> {
    let port = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p != 0);
    let range = match text.split_once('-') {
        Some((a, b)) => PortRange {
            first: port(a)?,
            last: port(b)?,
        },
        None => PortRange::one(port(text)?),
    };
    (range.first <= range.last).then_some(range)
}

/// A rule's `ports`: a number, a string of ports and ranges separated by commas, or a list of
/// numbers and such strings. The error says what is wrong.
fn parse_ports(value: &toml::Value) -> Result<Vec<PortRange>, String> {
    let one = |v: &toml::Value| -> Result<Vec<PortRange>, String> {
        match v {
            toml::Value::Integer(n) => u16::try_from(*n)
                .ok()
                .filter(|p| *p != 0)
                .map(|p| vec![PortRange::one(p)])
                .ok_or_else(|| format!("holds {n}, which is not a port")),
            toml::Value::String(s) => s
                .split(',')
                .map(|part| {
                    parse_range(part).ok_or_else(|| {
                        format!("holds \"{}\", which is not a port or range", part.trim())
                    })
                })
                .collect(),
            other => Err(format!("holds {}, which is not a port", shown(other))),
        }
    };
    let ports = match value {
        toml::Value::Array(items) if items.is_empty() => return Err("is empty".to_owned()),
        toml::Value::Array(items) => {
            let mut all = Vec::new();
            for item in items {
                all.extend(one(item)?);
            }
            all
        }
        other => one(other)?,
    };
    Ok(ports)
}

/// A value as the file would write it (a list or table by its kind).
fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("\"{s}\""),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(x) => x.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) => "a list".to_owned(),
        toml::Value::Table(_) => "a table".to_owned(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The setting (`key = value`) on the line of byte `offset` of `text`, as written; empty when
/// that line is not one.
fn setting_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[start..end].trim();
    let line = line.split(" #").next().unwrap_or(line).trim();
    if line.contains('=') && !line.starts_with('[') {
        line.to_owned()
    } else {
        String::new()
    }
}

/// serde's words for a value of the wrong type (`invalid type: floating point `1.5`, expected
/// i64`, which names Rust's types) in an operator's (`udp_timeout = 1.5: give a whole number,
/// not a decimal number`), for `setting`, the line as written.
fn type_words(message: &str, setting: &str) -> String {
    let lead = if setting.is_empty() {
        String::new()
    } else {
        format!("{setting}: ")
    };
    if message == "wanted string or table" {
        return format!("{lead}give one of the names this key takes, in quotes");
    }
    let Some((found, expected)) = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.rsplit_once(", expected "))
    else {
        return message.to_owned();
    };
    let value = found
        .split_once(['`', '"'])
        .map(|(_, v)| v.trim_end_matches(['`', '"']));
    let kind = if found.contains(" as i128") || found.contains(" as u128") {
        "a number too large for any setting"
    } else if found.starts_with("floating point") {
        "a decimal number"
    } else if found.starts_with("integer") {
        "a number"
    } else if found.starts_with("string") {
        "a string"
    } else if found.starts_with("boolean") {
        "true or false"
    } else if found.starts_with("sequence") {
        "a list"
    } else if found.starts_with("map") {
        "a table"
    } else {
        found
    };
    let wanted = match expected {
        "i64" | "i32" | "u64" | "u32" | "u16" | "u8" | "usize" => "a whole number",
        "a sequence" => "a list in brackets, e.g. [\"...\"]",
        "a boolean" => "true or false",
        "a string" => "a quoted string",
        "a map" => "a table",
        other if other.starts_with("struct ") => "a table",
        other => other,
    };
    let shown = match (setting.is_empty(), value) {
        (true, Some(v)) if found.starts_with("string") => format!("\"{v}\": "),
        (true, Some(v)) => format!("{v}: "),
        _ => lead,
    };
    format!("{shown}give {wanted}, not {kind}")
}

// ---------------------------------------------------------------------------------------------
// File and command line, merged.

/// What the command line of `attach` says, to lay over a configuration file.
#[derive(Debug, Default)]
pub struct Overrides {
    /// The interface named on the command line.
    pub interface: Option<String>,
    /// `--scenario`.
    pub scenario: Option<Scenario>,
    /// `--turn-dst`, `--network`, `--replace-networks`, `--no-allow`, `--dns-server`,
    /// `--ntp-server`.
    pub networks: RawNetworkArgs,
    /// `--stateless`.
    pub stateless: bool,
    /// `--ingress-only`.
    pub ingress_only: bool,
    /// The flow table options.
    pub flows: FlowSettings,
    /// `--xdp-mode`.
    pub xdp_mode: Option<XdpModeArg>,
    /// `--egress-hook`.
    pub egress_hook: Option<EgressHook>,
    /// `--log-rate`.
    pub log_rate: Option<u32>,
}

/// Everything an attach needs, from the file and the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The interfaces to attach to.
    pub interfaces: Vec<String>,
    /// The rule set's choices, operator rules included.
    pub options: Options,
    /// Stateful (with its limits) or stateless.
    pub mode: Mode,
    /// How to attach.
    pub xdp_mode: XdpModeArg,
    /// Settings of the file that do not apply to what was chosen, one line each.
    pub notes: Vec<String>,
}

/// Merges the command line `cli` over the file `config` (when there is one).
pub fn resolve(config: Option<&Config>, cli: &Overrides) -> Result<Resolved, UsageError> {
    let Some(config) = config else {
        return resolve_command_line(cli);
    };
    let file = || config.path.display().to_string();
    let scenario = cli.scenario.or(config.scenario).ok_or_else(|| UsageError::Config {
        location: file(),
        message: "no scenario: add scenario = \"udp-turn\" (or no-restrictions, tcp-turn, tcp-443; see `gotofw scenarios`), or pass --scenario".to_owned(),
    })?;
    let interfaces = match &cli.interface {
        Some(iface) => vec![iface.clone()],
        None if config.interfaces.is_empty() => {
            return Err(UsageError::Config {
                location: file(),
                message: "no interface: add interfaces = [\"eth1\"] (the WAN interface), or name it on the command line".to_owned(),
            });
        }
        None => config.interfaces.clone(),
    };
    let mut notes = Vec::new();

    // The command line's network options, checked as `attach` alone checks them.
    let raw = &cli.networks;
    let mut cli_networks = Vec::new();
    for text in &raw.network {
        cli_networks.push(parse_network(text, "--network")?);
    }
    if !scenario.uses_turn_networks() && !cli_networks.is_empty() {
        return Err(UsageError::NetworksUnused {
            scenario: scenario.name(),
            network: raw.network[0].clone(),
        });
    }
    if raw.turn_dst == Some(TurnDst::Any) && scenario != Scenario::UdpTurn {
        return Err(UsageError::TurnDstUnused(scenario.name()));
    }
    if raw.replace_networks && cli_networks.is_empty() {
        return Err(UsageError::EmptyNetworks);
    }
    let turn_networks = if raw.replace_networks {
        cli_networks
    } else {
        let mut all = config
            .networks
            .clone()
            .unwrap_or_else(default_turn_networks);
        if cli_networks.is_empty() {
            all.extend(config.extra_networks.iter().copied());
        } else {
            all.extend(cli_networks);
        }
        dedup_networks(all)
    };
    if !scenario.uses_turn_networks()
        && (config.networks.is_some() || !config.extra_networks.is_empty())
    {
        notes.push(format!(
            "[turn] networks and extra_networks do not apply to scenario {scenario} (only udp-turn and tcp-turn use the TURN networks): ignored"
        ));
    }
    let mut turn_dst = raw.turn_dst.or(config.turn_dst).unwrap_or_default();
    if turn_dst == TurnDst::Any && scenario != Scenario::UdpTurn {
        notes.push(format!(
            "[turn] destination = \"any\" applies only to udp-turn, not to {scenario}: ignored"
        ));
        turn_dst = TurnDst::TurnNetworks;
    }
    if turn_dst == TurnDst::Any && scenario == Scenario::UdpTurn {
        // The command line's networks are refused, as without a file; the file's are noted.
        if let Some(first) = raw.network.first() {
            return Err(UsageError::NetworksUnusedWithAnyDst(first.clone()));
        }
        if config.networks.is_some() || !config.extra_networks.is_empty() {
            notes.push(
                "[turn] networks and extra_networks have no effect with --turn-dst any (UDP 3478 to any address): ignored".to_owned(),
            );
        }
    }
    let media_ports = config.media_ports.unwrap_or(MEDIA_PORTS);
    if media_ports != MEDIA_PORTS && scenario != Scenario::NoRestrictions {
        notes.push(format!(
            "[media] ports applies only to no-restrictions, not to {scenario}: ignored"
        ));
    }
    let mut disabled: Vec<Allowance> = config
        .disabled
        .iter()
        .chain(&raw.no_allow)
        .copied()
        .collect();
    disabled.sort_by_key(|a| Allowance::ALL.iter().position(|b| b == a));
    disabled.dedup();
    let servers = |cli: &[String], file: &[IpNet], flag| -> Result<Vec<IpNet>, UsageError> {
        if cli.is_empty() {
            return Ok(file.to_vec());
        }
        let parsed: Result<Vec<IpNet>, UsageError> =
            cli.iter().map(|t| parse_network(t, flag)).collect();
        Ok(dedup_networks(parsed?))
    };
    let dns_servers = servers(&raw.dns_server, &config.dns_servers, "--dns-server")?;
    let ntp_servers = servers(&raw.ntp_server, &config.ntp_servers, "--ntp-server")?;
    // Servers on the command line for an allowance switched off are refused (by --no-allow or
    // by the file); the file's own servers, switched off by --no-allow, are noted.
    crate::scenario::servers_take_effect(raw, &disabled, |a| {
        if raw.no_allow.contains(&a) {
            format!("--no-allow {a}")
        } else {
            format!("{a} = false in {}", file())
        }
    })?;
    for (allowance, list, key) in [
        (Allowance::Dns, &dns_servers, "dns_servers"),
        (Allowance::Ntp, &ntp_servers, "ntp_servers"),
    ] {
        if disabled.contains(&allowance) && !list.is_empty() {
            notes.push(format!(
                "[allow] {key} has no effect: the {allowance} allowance is switched off"
            ));
        }
    }

    // The command line's mode wins; the file's applies without one.
    let cli_mode = if cli.ingress_only {
        Some(ModeName::IngressOnly)
    } else if cli.stateless {
        Some(ModeName::Stateless)
    } else {
        None
    };
    let chosen = cli_mode.or(config.mode.map(|(m, _)| m));
    let file_says = |line: usize, flag: &str, name: ModeName, fix: &str| UsageError::Config {
        location: format!("{}:{line}", file()),
        message: format!(
            "{flag} does not apply to {} mode, which the file sets with mode = \"{}\": drop {flag}, or set {fix}",
            name.text(),
            name.text()
        ),
    };
    let mode = if let Some(name @ (ModeName::Stateless | ModeName::IngressOnly)) = chosen {
        if let (None, Some((_, line))) = (cli_mode, config.mode)
            && let Some(flag) = flow_flag(&cli.flows)
        {
            return Err(file_says(line, flag, name, "mode = \"stateful\""));
        }
        if config.flows.over(FlowLimits::default()) != FlowLimits::default() {
            notes.push(format!(
                "[flows] applies to stateful mode only: ignored in {} mode",
                name.text()
            ));
        }
        if name == ModeName::IngressOnly {
            if let (None, Some((_, line)), Some(_)) = (cli_mode, config.mode, cli.egress_hook) {
                return Err(file_says(
                    line,
                    "--egress-hook",
                    name,
                    "mode = \"stateless\" (which filters at the egress too)",
                ));
            }
            if config.egress_hook.is_some() {
                notes.push(
                    "egress_hook applies to stateful and stateless mode only: ignored in ingress-only mode (no egress hook)".to_owned(),
                );
            }
            Mode::IngressOnly
        } else {
            Mode::Stateless
        }
    } else {
        Mode::Stateful(cli.flows.over(config.flows.over(FlowLimits::default())))
    };

    let options = Options {
        scenario,
        turn_dst,
        turn_networks,
        disabled,
        dns_servers,
        ntp_servers,
        media_ports,
        operator_rules: config.rules.iter().map(|(r, _)| r.clone()).collect(),
        log_rate: cli
            .log_rate
            .or(config.log_rate)
            .unwrap_or(crate::scenario::DEFAULT_LOG_RATE),
        egress_hook: cli.egress_hook.or(config.egress_hook).unwrap_or_default(),
    };
    let rules = options.rules();
    let total = rules.len();
    if total > MAX_RULES {
        let (rule, line) = config
            .rules
            .last()
            .expect("only operator rules can overflow");
        let own = total - config.rules.len();
        return Err(UsageError::Config {
            location: format!("{}:{line}", file()),
            message: format!(
                "[[rules]] '{}' makes {total} rules, more than the {MAX_RULES} the engine takes ({scenario} and the allowances take {own}): remove rules, or merge their ports and networks",
                rule.name
            ),
        });
    }
    crate::compile::check_capacity(&rules).map_err(|e| UsageError::Config {
        location: file(),
        message: e.to_string(),
    })?;
    if config.training {
        notes.push(training_note().to_owned());
    }
    Ok(Resolved {
        interfaces,
        options,
        mode,
        xdp_mode: cli.xdp_mode.or(config.xdp_mode).unwrap_or_default(),
        notes,
    })
}

/// What `training = true` does, and does not do.
pub const fn training_note() -> &'static str {
    "training = true: the GoTo Training domains are for `gotofw domains --training` and `gotofw pac --training`; GoTo's table 2 gives them no port (only TCP), and the https rule (TCP 443) already admits them, so the packet filter is the same"
}

/// The first flow option given on the command line, as typed.
fn flow_flag(flows: &FlowSettings) -> Option<&'static str> {
    [
        (flows.table_size, "--flow-table-size"),
        (flows.udp_timeout, "--udp-timeout"),
        (flows.tcp_timeout, "--tcp-timeout"),
        (flows.tcp_transitory_timeout, "--tcp-transitory-timeout"),
    ]
    .into_iter()
    .find_map(|(value, flag)| value.map(|_| flag))
}

/// `attach IFACE --scenario NAME ...` without a file, exactly as before there were files.
fn resolve_command_line(cli: &Overrides) -> Result<Resolved, UsageError> {
    // clap requires both without --config; say so anyway rather than panic.
    let scenario = cli
        .scenario
        .ok_or_else(|| UsageError::UnknownScenario(String::new()))?;
    let iface = cli
        .interface
        .clone()
        .ok_or_else(|| UsageError::BadInterfaceName(String::new()))?;
    let mut options = Options::from_raw(&cli.networks, scenario)?;
    options.log_rate = cli.log_rate.unwrap_or(crate::scenario::DEFAULT_LOG_RATE);
    options.egress_hook = cli.egress_hook.unwrap_or_default();
    crate::compile::check_capacity(&options.rules())?;
    let mode = if cli.ingress_only {
        Mode::IngressOnly
    } else if cli.stateless {
        Mode::Stateless
    } else {
        Mode::Stateful(cli.flows.over(FlowLimits::default()))
    };
    Ok(Resolved {
        interfaces: vec![iface],
        options,
        mode,
        xdp_mode: cli.xdp_mode.unwrap_or_default(),
        notes: Vec::new(),
    })
}

/// The rule table `check-config` prints: every rule in match order, then the fixed allowances.
pub fn describe(config: &Config, resolved: &Resolved) -> String {
    let mut out = String::new();
    let o = &resolved.options;
    let _ = writeln!(out, "{}: ok", config.path.display());
    let _ = writeln!(out, "  interfaces: {}", resolved.interfaces.join(", "));
    let mode = match resolved.mode {
        Mode::Stateful(l) => format!(
            "stateful mode (flow table {}; idle timeouts: udp {} s, tcp {} s, half-open/closing tcp {} s)",
            l.table_size, l.udp_timeout, l.tcp_established_timeout, l.tcp_transitory_timeout
        ),
        Mode::Stateless => "stateless mode".to_owned(),
        Mode::IngressOnly => "ingress-only mode (outbound traffic not filtered)".to_owned(),
    };
    let _ = writeln!(
        out,
        "  scenario {}, {mode}, xdp {}",
        o.scenario,
        resolved.xdp_mode.name()
    );
    let _ = writeln!(out, "  rules, first match first:");
    let mut rows = vec![
        [
            "#", "RULE", "KIND", "ACTION", "CONN", "PROTO", "PORTS", "LOCAL", "NETWORKS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let inbound: HashSet<&str> = o
        .operator_rules
        .iter()
        .filter(|r| r.direction == RuleDirection::Inbound)
        .map(|r| r.name.as_str())
        .collect();
    for (i, rule) in o.rules().iter().enumerate() {
        let kind = serde_json::to_value(rule.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let (conn, ports) = if inbound.contains(rule.name.as_str()) {
            ("inbound", "any".to_owned())
        } else {
            ("outbound", rule.ports_text())
        };
        let local: Vec<String> = rule.local_ports.iter().map(ToString::to_string).collect();
        let networks = match &rule.networks {
            crate::scenario::Networks::Any => "any".to_owned(),
            crate::scenario::Networks::List(nets) => nets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        };
        rows.push(vec![
            (i + 1).to_string(),
            rule.name.clone(),
            kind,
            rule.action.to_string(),
            conn.to_owned(),
            rule.protocols_text(),
            ports,
            if local.is_empty() {
                "-".to_owned()
            } else {
                local.join(",")
            },
            networks,
        ]);
    }
    for line in crate::output::table(&rows).lines() {
        let _ = writeln!(out, "  {line}");
    }
    let fixed: Vec<&str> = Allowance::ALL
        .iter()
        .filter(|a| a.switch_bit().is_some() && !o.disabled.contains(a))
        .map(|a| a.name())
        .collect();
    let _ = writeln!(
        out,
        "  fixed allowances: {}",
        if fixed.is_empty() {
            "none".to_owned()
        } else {
            fixed.join(", ")
        }
    );
    let _ = writeln!(out, "  then: block");
    let _ = writeln!(
        out,
        "  gotofw run: metrics {}; on stop, {}",
        config
            .metrics_listen
            .map_or_else(|| "off".to_owned(), |a| format!("on http://{a}/metrics")),
        match config.on_stop {
            OnStop::Keep => "keep the filters attached",
            OnStop::Detach => "detach the filters",
        }
    );
    for note in &resolved.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{
        cli::{Cli, Command},
        scenario::Networks,
    };

    const EXAMPLE: &str = include_str!("../../packaging/gotofw.toml");
    const MINIMAL: &str = "interfaces = [\"wan0\"]\nscenario = \"tcp-turn\"\n";

    fn parsed(text: &str) -> Config {
        parse(Path::new("test.toml"), text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn resolved(text: &str, cli: &Overrides) -> Resolved {
        resolve(Some(&parsed(text)), cli).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The error for `text`, after checking it is one line that starts `test.toml:LINE: `.
    fn error(text: &str, line: usize) -> String {
        let err = parse(Path::new("test.toml"), text)
            .and_then(|c| resolve(Some(&c), &Overrides::default()))
            .map(|_| ())
            .expect_err(text)
            .to_string();
        assert!(!err.contains('\n'), "{err}");
        let prefix = format!("test.toml:{line}: ");
        assert!(err.starts_with(&prefix), "expected {prefix:?}: {err}");
        err
    }

    /// The example with every commented-out `key = value` line and `[[rules]]` header switched
    /// on.
    fn uncommented(text: &str) -> String {
        text.lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest == "[[rules]]"
                        || rest.split_once(" = ").is_some_and(|(key, _)| {
                            key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                        }) =>
                {
                    rest
                }
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_shipped_example_parses_with_the_defaults() {
        let config = parsed(EXAMPLE);
        assert_eq!(config.interfaces, ["eth1"]);
        assert_eq!(config.on_stop, OnStop::Keep);
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9469".parse().unwrap())
        );
        assert!(config.rules.is_empty());
        assert_eq!(config.log_rate, Some(crate::scenario::DEFAULT_LOG_RATE));
        let r = resolve(Some(&config), &Overrides::default()).unwrap();
        assert_eq!(r.options, Options::new(Scenario::UdpTurn));
        assert_eq!(r.mode, Mode::Stateful(FlowLimits::default()));
        assert_eq!(r.xdp_mode, XdpModeArg::Auto);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn every_commented_out_key_of_the_example_is_valid() {
        let text = uncommented(EXAMPLE);
        assert!(text.matches("\n[[rules]]").count() == 2, "{text}");
        let r = resolved(&text, &Overrides::default());
        let names: Vec<String> = r.options.rules().into_iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "no-turn-lab",
                "turn-udp",
                "https",
                "dhcp",
                "dns",
                "ntp",
                "office-vpn"
            ]
        );
        let dns = &r.options.rules()[4];
        assert_eq!(
            dns.networks,
            Networks::List(vec![
                "192.0.2.53/32".parse().unwrap(),
                "2001:db8::53/128".parse().unwrap()
            ])
        );
    }

    #[test]
    fn errors_name_the_line_the_key_and_the_value() {
        let cases: &[(&str, usize, &[&str])] = &[
            ("scenario = \"udp_turn\"", 1, &["udp_turn", "tcp-443"]),
            ("mode = \"statefull\"", 1, &["statefull", "stateless"]),
            ("\n\nxdp_mode = \"xdp\"", 3, &["xdp", "generic"]),
            ("trainig = true", 1, &["trainig", "training"]),
            (
                "[turn]\ndestination = \"all\"",
                2,
                &["all", "turn-networks"],
            ),
            (
                "[turn]\nnetworks = [\"68.64.0.0/19\",\n  \"68.64.0.1/19\"]",
                3,
                &["68.64.0.1/19", "68.64.0.0/19"],
            ),
            ("[turn]\nnetworks = []", 2, &["networks", "empty"]),
            (
                "[turn]\nextra_networks = [\"turn\"]",
                2,
                &["'turn'", "CIDR"],
            ),
            ("[media]\nports = \"50000-45000\"", 2, &["50000-45000"]),
            ("[allow]\ndns = \"no\"", 2, &["\"no\"", "true or false"]),
            (
                "[allow]\nntp_servers = [\"192.0.2.300\"]",
                2,
                &["192.0.2.300"],
            ),
            (
                "[flows]\ntable_size = 100",
                2,
                &["table_size = 100", "1024"],
            ),
            (
                "[flows]\ntcp_timeout = -5",
                2,
                &["tcp_timeout = -5", "1209600"],
            ),
            ("[flows]\nudp_timout = 5", 2, &["udp_timout", "udp_timeout"]),
            (
                "[metrics]\nlisten = \"9469\"",
                2,
                &["9469", "127.0.0.1:9469"],
            ),
            (
                "[service]\non_stop = \"forget\"",
                2,
                &["forget", "keep", "detach"],
            ),
            ("interfaces = [\"eth0\", \"eth/1\"]", 1, &["eth/1"]),
            ("interfaces = []", 1, &["interfaces"]),
            ("scenario = ", 1, &[]),
        ];
        for (text, line, needles) in cases {
            let err = error(text, *line);
            for needle in *needles {
                assert!(err.contains(needle), "{text:?}: {needle:?} not in {err}");
            }
        }
    }

    #[test]
    fn rule_errors_name_the_rule() {
        let rule = |body: &str| format!("{MINIMAL}\n[[rules]]\n{body}");
        let base = "name = \"vpn\"\ndirection = \"outbound\"\nprotocol = \"udp\"\nports = 51820\nnetworks = \"any\"\naction = \"allow\"\nposition = \"after\"\n";
        let cases: &[(&str, &str, &str)] = &[
            ("name = \"vpn\"", "name = \"https\"", "built-in"),
            ("name = \"vpn\"", "name = \"a b\"", "\"a b\""),
            ("protocol = \"udp\"", "protocol = \"icmp\"", "icmp"),
            ("ports = 51820", "ports = 70000", "70000"),
            ("ports = 51820", "ports = \"22,x\"", "\"x\""),
            ("ports = 51820", "ports = []", "empty"),
            (
                "networks = \"any\"",
                "networks = \"everywhere\"",
                "everywhere",
            ),
            (
                "networks = \"any\"",
                "networks = [\"198.51.100.1/24\"]",
                "198.51.100.0/24",
            ),
            ("action = \"allow\"", "action = \"permit\"", "permit"),
            ("position = \"after\"", "position = \"first\"", "first"),
            ("position = \"after\"\n", "", "position"),
            ("direction = \"outbound\"", "direction = \"out\"", "inbound"),
        ];
        for (from, to, needle) in cases {
            let text = rule(&base.replacen(from, to, 1));
            let line = text
                .lines()
                .position(|l| !to.is_empty() && l == to.trim_end())
                .map_or(4, |i| i + 1);
            let err = error(&text, line);
            assert!(err.contains(needle), "{to:?}: {needle:?} not in {err}");
        }
        let twice = format!("{}\n[[rules]]\n{base}", rule(base));
        assert!(error(&twice, 14).contains("twice"));
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let text = format!(
            "{MINIMAL}mode = \"stateful\"\nxdp_mode = \"native\"\n[turn]\nextra_networks = [\"2001:db8:77::/48\"]\n[allow]\ndns = false\nntp_servers = [\"192.0.2.123\"]\n[flows]\nudp_timeout = 60\ntcp_timeout = 600\n[log]\nrate = 3\n"
        );
        let r = resolved(&text, &Overrides::default());
        assert_eq!(r.interfaces, ["wan0"]);
        assert_eq!(r.options.turn_networks.len(), 6);
        assert_eq!(r.options.disabled, [Allowance::Dns]);
        assert_eq!(r.options.log_rate, 3);
        assert_eq!(r.xdp_mode, XdpModeArg::Native);
        let Mode::Stateful(limits) = r.mode else {
            panic!("{:?}", r.mode)
        };
        assert_eq!(
            (limits.udp_timeout, limits.tcp_established_timeout),
            (60, 600)
        );

        let cli = Overrides {
            interface: Some("eth7".into()),
            scenario: Some(Scenario::UdpTurn),
            networks: RawNetworkArgs {
                network: vec!["198.51.100.0/24".into()],
                no_allow: vec![Allowance::Ntp],
                ..RawNetworkArgs::default()
            },
            flows: FlowSettings {
                udp_timeout: Some(30),
                ..FlowSettings::default()
            },
            xdp_mode: Some(XdpModeArg::Generic),
            log_rate: Some(0),
            ..Overrides::default()
        };
        let r = resolved(&text, &cli);
        assert_eq!(r.interfaces, ["eth7"]);
        assert_eq!(r.options.log_rate, 0);
        assert_eq!(r.options.scenario, Scenario::UdpTurn);
        assert_eq!(r.options.turn_dst, TurnDst::TurnNetworks);
        // The file's ntp_servers, switched off by --no-allow ntp, are noted.
        assert!(
            r.notes.iter().any(|n| n.contains("ntp_servers")),
            "{:?}",
            r.notes
        );
        // --network replaces extra_networks.
        assert_eq!(r.options.turn_networks.len(), 6);
        assert!(
            r.options
                .turn_networks
                .contains(&"198.51.100.0/24".parse().unwrap())
        );
        assert_eq!(r.options.disabled, [Allowance::Dns, Allowance::Ntp]);
        assert_eq!(r.xdp_mode, XdpModeArg::Generic);
        let Mode::Stateful(limits) = r.mode else {
            panic!("{:?}", r.mode)
        };
        assert_eq!(
            (limits.udp_timeout, limits.tcp_established_timeout),
            (30, 600)
        );

        let cli = Overrides {
            stateless: true,
            networks: RawNetworkArgs {
                network: vec!["198.51.100.0/24".into()],
                replace_networks: true,
                ..RawNetworkArgs::default()
            },
            ..Overrides::default()
        };
        let r = resolved(&text, &cli);
        assert_eq!(r.mode, Mode::Stateless);
        assert_eq!(
            r.options.turn_networks,
            ["198.51.100.0/24".parse::<IpNet>().unwrap()]
        );
        assert!(
            r.notes.iter().any(|n| n.contains("[flows]")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn command_line_values_are_checked_as_without_a_file() {
        let config = parsed("interfaces = [\"wan0\"]\nscenario = \"tcp-443\"\n");
        let with = |networks: RawNetworkArgs| {
            resolve(
                Some(&config),
                &Overrides {
                    networks,
                    ..Overrides::default()
                },
            )
            .unwrap_err()
        };
        assert!(matches!(
            with(RawNetworkArgs {
                network: vec!["198.51.100.0/24".into()],
                ..Default::default()
            }),
            UsageError::NetworksUnused { .. }
        ));
        assert!(matches!(
            with(RawNetworkArgs {
                turn_dst: Some(TurnDst::Any),
                ..Default::default()
            }),
            UsageError::TurnDstUnused(_)
        ));
        let stateless =
            parsed("interfaces = [\"wan0\"]\nscenario = \"tcp-443\"\n\nmode = \"stateless\"\n");
        let err = resolve(
            Some(&stateless),
            &Overrides {
                flows: FlowSettings {
                    table_size: Some(2048),
                    ..FlowSettings::default()
                },
                ..Overrides::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("test.toml:4: --flow-table-size"), "{err}");
    }

    #[test]
    fn a_file_without_scenario_or_interface_says_what_to_add() {
        let err = resolve(
            Some(&parsed("interfaces = [\"wan0\"]")),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("test.toml: no scenario: add scenario = "),
            "{err}"
        );
        let err = resolve(
            Some(&parsed("scenario = \"tcp-443\"")),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no interface"), "{err}");
        let cli = Overrides {
            interface: Some("wan0".into()),
            ..Overrides::default()
        };
        assert!(resolve(Some(&parsed("scenario = \"tcp-443\"")), &cli).is_ok());
    }

    #[test]
    fn wrong_types_are_named_in_operator_words() {
        for (body, line, needles) in [
            (
                "[flows]\nudp_timeout = 1.5\n",
                2,
                &["udp_timeout = 1.5", "whole number", "decimal"][..],
            ),
            (
                "[flows]\nudp_timeout = 99999999999999999999\n",
                2,
                &["99999999999999999999", "too large"],
            ),
            (
                "interfaces = \"eth9\"\n",
                1,
                &["interfaces = \"eth9\"", "list"],
            ),
            ("[allow]\ndns = 1\n", 2, &["dns = 1", "true or false"]),
            (
                "[log]\nrate = \"fast\"\n",
                2,
                &["rate = \"fast\"", "whole number"],
            ),
        ] {
            let err = error(body, line);
            for needle in needles {
                assert!(err.contains(needle), "{body:?}: {needle:?} not in {err}");
            }
            for rust in ["i64", "i128", "sequence", "floating point", "invalid type"] {
                assert!(!err.contains(rust), "{body:?}: {rust:?} in {err}");
            }
        }
    }

    #[test]
    fn settings_without_effect_in_the_file_are_refused_at_their_line() {
        let head = "interfaces = [\"wan0\"]\n";
        let cases: &[(&str, usize, &[&str])] = &[
            (
                "scenario = \"tcp-443\"\n[turn]\nextra_networks = [\"2001:db8::/32\"]\n",
                4,
                &["extra_networks", "tcp-443"],
            ),
            (
                "scenario = \"no-restrictions\"\n[turn]\nnetworks = [\"198.51.100.0/24\"]\n",
                4,
                &["networks", "no-restrictions"],
            ),
            (
                "scenario = \"tcp-turn\"\n[turn]\ndestination = \"any\"\n",
                4,
                &["destination = \"any\"", "tcp-turn", "GoTo's document"],
            ),
            (
                "scenario = \"udp-turn\"\n[turn]\ndestination = \"any\"\nextra_networks = [\"10.0.0.0/8\"]\n",
                5,
                &["extra_networks", "destination = \"any\""],
            ),
            (
                "scenario = \"udp-turn\"\n[media]\nports = \"40000-40100\"\n",
                4,
                &["\"40000-40100\"", "no-restrictions"],
            ),
            (
                "scenario = \"udp-turn\"\n[allow]\ndns = false\ndns_servers = [\"192.0.2.53\"]\n",
                5,
                &["dns_servers", "dns = false"],
            ),
            (
                "scenario = \"udp-turn\"\n[allow]\nntp = false\nntp_servers = [\"192.0.2.123\"]\n",
                5,
                &["ntp_servers", "ntp = false"],
            ),
            (
                "scenario = \"udp-turn\"\nmode = \"stateless\"\n[flows]\ntable_size = 262144\nudp_timeout = 60\n",
                6,
                &["udp_timeout", "stateless"],
            ),
        ];
        for (body, line, needles) in cases {
            let err = error(&format!("{head}{body}"), *line);
            for needle in *needles {
                assert!(err.contains(needle), "{body:?}: {needle:?} not in {err}");
            }
        }
        // Defaults restated change nothing anywhere, and are accepted.
        resolved(
            "interfaces = [\"wan0\"]\nscenario = \"tcp-443\"\nmode = \"stateless\"\n[turn]\ndestination = \"turn-networks\"\nnetworks = [\"68.64.0.0/19\", \"173.199.0.0/18\", \"78.108.124.0/23\", \"202.173.24.0/21\", \"23.239.224.0/19\"]\nextra_networks = []\n[media]\nports = \"45000-49999\"\n[flows]\nudp_timeout = 120\n[allow]\ndns = false\ndns_servers = []\n",
            &Overrides::default(),
        );
    }

    #[test]
    fn command_line_options_without_effect_are_refused_over_a_file() {
        let file =
            parsed("interfaces = [\"wan0\"]\nscenario = \"udp-turn\"\n[allow]\ndns = false\n");
        let with = |networks: RawNetworkArgs| {
            resolve(
                Some(&file),
                &Overrides {
                    networks,
                    ..Overrides::default()
                },
            )
            .map_err(|e| e.to_string())
        };
        let err = with(RawNetworkArgs {
            dns_server: vec!["192.0.2.53".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.contains("--dns-server '192.0.2.53'") && err.contains("dns = false in test.toml"),
            "{err}"
        );
        let err = with(RawNetworkArgs {
            turn_dst: Some(TurnDst::Any),
            network: vec!["10.0.0.0/8".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.contains("--network '10.0.0.0/8'") && err.contains("--turn-dst any"),
            "{err}"
        );
        let err = with(RawNetworkArgs {
            no_allow: vec![Allowance::Ntp],
            ntp_server: vec!["192.0.2.123".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.contains("--ntp-server") && err.contains("--no-allow ntp"),
            "{err}"
        );
    }

    #[test]
    fn file_settings_a_command_line_option_overrides_are_noted() {
        let r = resolved(
            "interfaces = [\"wan0\"]\ntraining = true\n[turn]\ndestination = \"any\"\nextra_networks = [\"2001:db8::/32\"]\n[media]\nports = \"40000-40100\"\n",
            &Overrides {
                scenario: Some(Scenario::Tcp443),
                ..Overrides::default()
            },
        );
        assert_eq!(r.options.rules().len(), 4);
        assert_eq!(r.options.turn_dst, TurnDst::TurnNetworks);
        for needle in ["[turn] networks", "destination", "[media]", "training"] {
            assert!(
                r.notes.iter().any(|n| n.contains(needle)),
                "{needle}: {:?}",
                r.notes
            );
        }
        let r = resolved(
            "interfaces = [\"wan0\"]\nscenario = \"no-restrictions\"\n[media]\nports = \"40000-40100\"\n",
            &Overrides::default(),
        );
        assert_eq!(
            r.options.rules()[0].remote_ports,
            [PortRange {
                first: 40_000,
                last: 40_100
            }]
        );
    }

    #[test]
    fn the_engine_limit_of_64_rules_names_the_rule_past_it() {
        let mut text = MINIMAL.to_owned();
        // tcp-turn and its allowances take 5; 59 more fit.
        for i in 0..60 {
            let _ = write!(
                text,
                "\n[[rules]]\nname = \"r{i}\"\ndirection = \"outbound\"\nprotocol = \"tcp\"\nports = {}\nnetworks = \"any\"\naction = \"allow\"\nposition = \"after\"\n",
                1000 + i
            );
        }
        let line = text.lines().position(|l| l == "name = \"r59\"").unwrap() + 1;
        let err = error(&text, line);
        assert!(
            err.contains("'r59' makes 65 rules") && err.contains("64"),
            "{err}"
        );
        let cut = text.rfind("\n[[rules]]").unwrap();
        assert_eq!(
            resolved(&text[..cut], &Overrides::default())
                .options
                .rules()
                .len(),
            64
        );
    }

    /// `gotofw attach wan0 --scenario tcp-443 FLAG VALUE`, parsed.
    fn attach_with(flag: &str, value: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from([
            "gotofw",
            "attach",
            "wan0",
            "--scenario",
            "tcp-443",
            flag,
            value,
        ])
    }

    #[test]
    fn flow_bounds_are_the_command_lines() {
        for (flag, key, (low, high)) in [
            ("--flow-table-size", "table_size", TABLE_SIZE),
            ("--udp-timeout", "udp_timeout", UDP_TIMEOUT),
            ("--tcp-timeout", "tcp_timeout", TCP_TIMEOUT),
            (
                "--tcp-transitory-timeout",
                "tcp_transitory_timeout",
                TCP_TRANSITORY_TIMEOUT,
            ),
        ] {
            for (value, ok) in [
                (low - 1, false),
                (low, true),
                (high, true),
                (high + 1, false),
            ] {
                let value = value.to_string();
                let cli = attach_with(flag, &value);
                assert_eq!(cli.is_ok(), ok, "{flag} {value}");
                if let Ok(Cli {
                    command: Command::Attach(args),
                    ..
                }) = cli
                {
                    let o = Overrides::from(&args);
                    assert!(flow_flag(&o.flows) == Some(flag));
                }
                let file = parse(Path::new("t"), &format!("[flows]\n{key} = {value}\n"));
                assert_eq!(file.is_ok(), ok, "{key} = {value}");
            }
        }
    }

    #[test]
    fn log_rate_without_a_file_is_the_command_lines() {
        for (given, want) in [(Some(0), 0), (Some(2), 2), (None, 10)] {
            let cli = Overrides {
                interface: Some("wan0".into()),
                scenario: Some(Scenario::Tcp443),
                log_rate: given,
                ..Overrides::default()
            };
            assert_eq!(
                resolve(None, &cli).unwrap().options.log_rate,
                want,
                "{given:?}"
            );
        }
    }

    #[test]
    fn the_log_rate_bounds_are_the_command_lines() {
        for (value, ok) in [(-1, false), (0, true), (10_000, true), (10_001, false)] {
            let cli = attach_with("--log-rate", &value.to_string());
            assert_eq!(cli.is_ok(), ok, "--log-rate {value}");
            let file = parse(Path::new("t"), &format!("[log]\nrate = {value}\n"));
            assert_eq!(file.is_ok(), ok, "[log] rate = {value}");
            if let Err(e) = file {
                assert!(
                    e.to_string().contains(&format!("[log] rate = {value}")),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn attach_without_a_file_works_as_before() {
        let cli = Cli::try_parse_from([
            "gotofw",
            "attach",
            "wan0",
            "--scenario",
            "udp-turn",
            "--network",
            "2001:db8::/32",
            "--udp-timeout",
            "60",
        ])
        .unwrap();
        let Command::Attach(args) = cli.command else {
            panic!()
        };
        let r = resolve(None, &Overrides::from(&args)).unwrap();
        let mut want = Options::from_raw(&args.networks, Scenario::UdpTurn).unwrap();
        want.media_ports = MEDIA_PORTS;
        assert_eq!(r.options, want);
        assert_eq!(r.interfaces, ["wan0"]);
        assert_eq!(
            r.mode,
            Mode::Stateful(FlowLimits {
                udp_timeout: 60,
                ..FlowLimits::default()
            })
        );
        assert!(Cli::try_parse_from(["gotofw", "attach", "wan0"]).is_err());
        assert!(Cli::try_parse_from(["gotofw", "attach", "--scenario", "tcp-443"]).is_err());
        assert!(Cli::try_parse_from(["gotofw", "attach", "--config", "f.toml"]).is_ok());
    }

    /// `--ingress-only` and `mode = "ingress-only"` pick ingress-only mode; what cannot take
    /// effect there (the flow options, an egress hook) is refused on the command line and in
    /// the file alike; the command line's mode wins over the file's.
    #[test]
    fn ingress_only_from_the_command_line_and_the_file() {
        let parse = |extra: &[&str]| {
            let mut line = vec!["gotofw", "attach", "wan0", "--scenario", "udp-turn"];
            line.extend(extra);
            Cli::try_parse_from(line)
        };
        let Command::Attach(args) = parse(&["--ingress-only"]).unwrap().command else {
            panic!()
        };
        let r = resolve(None, &Overrides::from(&args)).unwrap();
        assert_eq!(r.mode, Mode::IngressOnly);
        assert!(parse(&["--ingress-only", "--stateless"]).is_ok());
        for refused in [
            &["--ingress-only", "--egress-hook", "tcx"][..],
            &["--ingress-only", "--flow-table-size", "2048"],
            &["--ingress-only", "--udp-timeout", "60"],
        ] {
            assert!(parse(refused).is_err(), "{refused:?}");
        }

        let head = "interfaces = [\"wan0\"]\nscenario = \"tcp-443\"\nmode = \"ingress-only\"\n";
        let err = error(&format!("{head}egress_hook = \"tcx\"\n"), 3);
        assert!(err.contains("egress_hook has no effect"), "{err}");
        let err = error(&format!("{head}\n[flows]\nudp_timeout = 30\n"), 6);
        assert!(
            err.contains("[flows] udp_timeout applies to stateful mode only")
                && err.contains("ingress-only"),
            "{err}"
        );
        let text = head;
        let r = resolved(text, &Overrides::default());
        assert_eq!(r.mode, Mode::IngressOnly);
        let cli = Overrides {
            egress_hook: Some(EgressHook::Clsact),
            ..Overrides::default()
        };
        let err = resolve(Some(&parsed(text)), &cli).unwrap_err().to_string();
        assert!(
            err.starts_with("test.toml:3: --egress-hook does not apply to ingress-only mode"),
            "{err}"
        );
        let cli = Overrides {
            stateless: true,
            ..Overrides::default()
        };
        assert_eq!(resolved(text, &cli).mode, Mode::Stateless);
    }
}
