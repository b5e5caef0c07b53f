//! The configuration file, read and checked: every value with its place in hand, so that an
//! error names `FILE:LINE`, the key, the value and the fix.

use std::{
    fs,
    net::SocketAddr,
    ops::Range,
    path::{Path, PathBuf},
};

use ipnet::IpNet;
use toml::Spanned;

use super::{
    raw::{ModeName, OnStop, RawConfig},
    values::{one_line, parse_range, setting_at, type_words},
};
use crate::{
    compile::FlowLimits,
    config::DomainSettings,
    error::UsageError,
    limits::{self, Bound},
    loader::options::{EgressHook, XdpModeArg},
    operator::OperatorRule,
    scenario::{
        Allowance, DomainSet, HttpsDst, MEDIA_PORTS, PortRange, Scenario, TurnDst, dedup_networks,
        default_turn_networks, parse_network,
    },
    system,
};

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
    pub(super) fn over(self, base: FlowLimits) -> FlowLimits {
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
    /// `https_to`: where the https rule sends TCP 443.
    pub https_to: Option<HttpsDst>,
    /// `[domains]`: how domain rules learn.
    pub domains: DomainSettings,
    /// `[domains.sets]`, and the sets of patterns `[[rules]]` name: the operator's domain sets.
    pub domain_sets: Vec<DomainSet>,
}

impl Config {
    /// No file: every setting unset, so that [`resolve`] takes the command line's or the
    /// defaults.
    pub(super) fn defaults() -> Self {
        Self {
            path: PathBuf::new(),
            interfaces: Vec::new(),
            scenario: None,
            mode: None,
            xdp_mode: None,
            egress_hook: None,
            training: false,
            turn_dst: None,
            networks: None,
            extra_networks: Vec::new(),
            media_ports: None,
            disabled: Vec::new(),
            dns_servers: Vec::new(),
            ntp_servers: Vec::new(),
            flows: FlowSettings::default(),
            rules: Vec::new(),
            log_rate: None,
            metrics_listen: None,
            on_stop: OnStop::Keep,
            https_to: None,
            domains: DomainSettings::default(),
            domain_sets: Vec::new(),
        }
    }
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
pub(super) fn read_bounded(path: &Path) -> Result<String, UsageError> {
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
pub(super) struct Locator<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

impl Locator<'_> {
    pub(super) fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].matches('\n').count() + 1
    }

    pub(super) fn error(&self, span: &Range<usize>, message: impl Into<String>) -> UsageError {
        UsageError::Config {
            location: format!("{}:{}", self.path.display(), self.line(span)),
            message: one_line(&message.into()),
        }
    }

    pub(super) fn at_line(&self, line: usize, message: impl Into<String>) -> UsageError {
        UsageError::Config {
            location: format!("{}:{line}", self.path.display()),
            message: one_line(&message.into()),
        }
    }

    pub(super) fn whole(&self, message: impl Into<String>) -> UsageError {
        UsageError::Config {
            location: self.path.display().to_string(),
            message: one_line(&message.into()),
        }
    }

    pub(super) fn check(&self, raw: &RawConfig) -> Result<Config, UsageError> {
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
                "domains" => Ok(TurnDst::Domains),
                other => Err(self.error(
                    &d.span(),
                    format!("[turn] destination = \"{other}\": use \"turn-networks\" (GoTo's TURN networks), \"any\" (any address) or \"domains\" (addresses learned from DNS answers for the GoTo domains)"),
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
        // One switch per allowance, in `Allowance::ALL`'s order (the type keeps the count).
        let switches: [Option<bool>; Allowance::ALL.len()] = [
            a.non_ip,
            a.icmpv6_nd,
            a.icmp_errors,
            a.pppoe_control,
            a.dhcp,
            a.dns,
            a.ntp,
        ];
        let disabled: Vec<Allowance> = Allowance::ALL
            .into_iter()
            .zip(switches)
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
                limits::FLOW_TABLE_SIZE,
                "flows",
            )?,
            udp_timeout: self.bounded(
                f.udp_timeout.as_ref(),
                "[flows] udp_timeout",
                limits::UDP_TIMEOUT,
                "seconds",
            )?,
            tcp_timeout: self.bounded(
                f.tcp_timeout.as_ref(),
                "[flows] tcp_timeout",
                limits::TCP_TIMEOUT,
                "seconds",
            )?,
            tcp_transitory_timeout: self.bounded(
                f.tcp_transitory_timeout.as_ref(),
                "[flows] tcp_transitory_timeout",
                limits::TCP_TRANSITORY_TIMEOUT,
                "seconds",
            )?,
        };
        let log_rate = self.bounded(
            raw.log.rate.as_ref(),
            "[log] rate",
            limits::LOG_RATE,
            "samples per second and CPU (0 switches the drop log off)",
        )?;
        let (rules, rule_sets) = self.rules(&raw.rules)?;
        let domains = self.domains(raw, &rules, rule_sets, turn_dst)?;
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
            https_to: domains.https_to,
            domains: domains.settings,
            domain_sets: domains.sets,
        })
    }

    /// Refuses what the file sets that cannot take effect under its own `scenario`, as the
    /// command line does: the TURN networks outside udp-turn and tcp-turn or with destination =
    /// "any", destination = "any" outside udp-turn, media ports outside no-restrictions. A value
    /// equal to the default changes nothing anywhere, and is accepted.
    pub(super) fn take_effect(
        &self,
        raw: &RawConfig,
        scenario: Scenario,
        networks: Option<&[IpNet]>,
        media_ports: Option<PortRange>,
    ) -> Result<(), UsageError> {
        let turn = &raw.turn;
        let any = turn.destination.as_ref().filter(|d| d.get_ref() == "any");
        let domains_dst = turn
            .destination
            .as_ref()
            .filter(|d| d.get_ref() == "domains");
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
            if domains_dst.is_some() && scenario.uses_turn_networks() {
                return Err(self.error(
                    &list.span(),
                    format!("[turn] {key} has no effect with destination = \"domains\" (the TURN rule then goes to learned addresses only): remove one of them"),
                ));
            }
            if any.is_some() && scenario == Scenario::UdpTurn {
                return Err(self.error(
                    &list.span(),
                    format!("[turn] {key} has no effect with destination = \"any\" (udp-turn then sends UDP 3478 to any address): remove one of them"),
                ));
            }
        }
        let domains = turn
            .destination
            .as_ref()
            .filter(|d| d.get_ref() == "domains");
        if let Some(d) = domains
            && !scenario.uses_turn_networks()
        {
            return Err(self.error(
                &d.span(),
                format!("[turn] destination = \"domains\" applies only to scenarios udp-turn and tcp-turn (their TURN rule), not to {scenario}: remove it, or use https_to = \"domains\""),
            ));
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
    pub(super) fn take_effect_in_any_scenario(
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

    pub(super) fn networks(
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

    pub(super) fn bounded(
        &self,
        value: Option<&Spanned<i64>>,
        key: &str,
        bound: Bound,
        unit: &str,
    ) -> Result<Option<u32>, UsageError> {
        let Some(value) = value else { return Ok(None) };
        let n = *value.get_ref();
        let Bound {
            min: low,
            max: high,
            ..
        } = bound;
        u32::try_from(n)
            .ok()
            .filter(|n| bound.contains(*n))
            .map(Some)
            .ok_or_else(|| {
                self.error(
                    &value.span(),
                    format!("{key} = {n} is out of range: give {low} to {high} {unit}"),
                )
            })
    }
}
