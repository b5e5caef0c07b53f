//! The file (or the defaults) and the command line, merged into one checked rule set.

use filter_common::MAX_RULES;
use ipnet::IpNet;

use super::{
    load::{Config, FlowSettings},
    raw::ModeName,
};
use crate::{
    compile::{FlowLimits, Mode},
    error::UsageError,
    limits,
    loader::options::{EgressHook, XdpModeArg},
    scenario::{
        Allowance, DomainOptions, HttpsDst, MEDIA_PORTS, Options, RawNetworkArgs, Scenario,
        TurnDst, dedup_networks, default_turn_networks, parse_network,
    },
};

/// What the command line says (`attach`'s options, or `explain --scenario`'s), to lay over a
/// configuration file or the defaults.
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
    /// `--dns-ttl-min`, `--dns-ttl-max`, `--learned-table-size`.
    pub domains: DomainSettings,
}

/// Learning settings of domain rules, each unset unless given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainSettings {
    /// `[domains] ttl_min`, `--dns-ttl-min`.
    pub ttl_min: Option<u32>,
    /// `[domains] ttl_max`, `--dns-ttl-max`.
    pub ttl_max: Option<u32>,
    /// `[domains] table_size`, `--learned-table-size`.
    pub table_size: Option<u32>,
}

impl DomainSettings {
    /// The first one given, as the command line spells it.
    fn first_flag(&self) -> Option<&'static str> {
        [
            (self.ttl_min, "--dns-ttl-min"),
            (self.ttl_max, "--dns-ttl-max"),
            (self.table_size, "--learned-table-size"),
        ]
        .into_iter()
        .find_map(|(value, flag)| value.map(|_| flag))
    }
}

/// Everything an attach needs, from the file (or the defaults) and the command line; without a
/// file and an interface (`explain --scenario`), `interfaces` is empty.
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

/// Merges the command line `cli` over the file `config`, or over the defaults when there is no
/// file: the one path from what the operator typed to a checked rule set, for `attach`,
/// `explain --scenario`, `check-config`, `reload` and `run`. Without a file, nothing is noted
/// and nothing is located: the errors are the command line's own.
pub fn resolve(config: Option<&Config>, cli: &Overrides) -> Result<Resolved, UsageError> {
    let defaults;
    let (config, file) = if let Some(config) = config {
        (config, Some(config.path.display().to_string()))
    } else {
        defaults = Config::defaults();
        (&defaults, None)
    };
    let located = |location: &str, message: String| UsageError::Config {
        location: location.to_owned(),
        message,
    };
    let scenario = match (cli.scenario.or(config.scenario), &file) {
        (Some(scenario), _) => scenario,
        (None, Some(file)) => return Err(located(file, "no scenario: add scenario = \"udp-turn\" (or no-restrictions, tcp-turn, tcp-443; see `gotofw scenarios`), or pass --scenario".to_owned())),
        (None, None) => return Err(UsageError::NoScenario),
    };
    let interfaces = match (&cli.interface, &file) {
        (Some(iface), _) => vec![iface.clone()],
        (None, Some(file)) if config.interfaces.is_empty() => {
            return Err(located(file, "no interface: add interfaces = [\"eth1\"] (the WAN interface), or name it on the command line".to_owned()));
        }
        (None, _) => config.interfaces.clone(),
    };
    let mut notes = Vec::new();

    // The command line's network options: what cannot take effect is refused, whatever the file
    // says; what the file sets that the command line's choices override is noted.
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
    if raw.turn_dst == Some(TurnDst::Domains) && !scenario.uses_turn_networks() {
        return Err(UsageError::TurnDstDomainsUnused(scenario.name()));
    }
    if raw.turn_dst == Some(TurnDst::Domains)
        && let Some(first) = raw.network.first()
    {
        return Err(UsageError::NetworksUnusedWithDomainsDst(first.clone()));
    }
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
    if turn_dst == TurnDst::Domains && !scenario.uses_turn_networks() {
        notes.push(format!(
            "[turn] destination = \"domains\" applies only to udp-turn and tcp-turn, not to {scenario}: ignored"
        ));
        turn_dst = TurnDst::TurnNetworks;
    }
    if turn_dst == TurnDst::Domains
        && raw.turn_dst.is_none()
        && (config.networks.is_some() || !config.extra_networks.is_empty())
    {
        notes.push(
            "[turn] networks and extra_networks have no effect with destination = \"domains\" (TURN to learned addresses only): ignored".to_owned(),
        );
    }
    if turn_dst == TurnDst::Any && scenario == Scenario::UdpTurn {
        // The command line's networks are refused; the file's are noted.
        if let Some(first) = raw.network.first() {
            return Err(UsageError::NetworksUnusedWithAnyDst(first.clone()));
        }
        if config.networks.is_some() || !config.extra_networks.is_empty() {
            notes.push(
                "[turn] networks and extra_networks have no effect with --turn-dst any (UDP 3478 to any address): ignored".to_owned(),
            );
        }
    }
    let mut disabled: Vec<Allowance> = config
        .disabled
        .iter()
        .chain(&raw.no_allow)
        .copied()
        .collect();
    disabled.sort_by_key(|a| Allowance::ALL.iter().position(|b| b == a));
    disabled.dedup();
    // Servers on the command line for an allowance switched off are refused (by --no-allow or
    // by the file); the file's own servers, switched off by --no-allow, are noted.
    servers_take_effect(raw, &disabled, |a| match &file {
        Some(file) if !raw.no_allow.contains(&a) => format!("{a} = false in {file}"),
        _ => format!("--no-allow {a}"),
    })?;
    if raw.replace_networks && cli_networks.is_empty() {
        return Err(UsageError::EmptyNetworks);
    }
    let turn_networks = if raw.replace_networks {
        dedup_networks(cli_networks)
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
    let media_ports = config.media_ports.unwrap_or(MEDIA_PORTS);
    if media_ports != MEDIA_PORTS && scenario != Scenario::NoRestrictions {
        notes.push(format!(
            "[media] ports applies only to no-restrictions, not to {scenario}: ignored"
        ));
    }
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

    let mode = resolve_mode(config, cli, &mut notes)?;
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
            .unwrap_or(limits::LOG_RATE.default),
        egress_hook: cli.egress_hook.or(config.egress_hook).unwrap_or_default(),
        https_to: raw.https_to.or(config.https_to).unwrap_or_default(),
        domains: DomainOptions {
            ttl_min: cli
                .domains
                .ttl_min
                .or(config.domains.ttl_min)
                .unwrap_or(limits::DNS_TTL_MIN.default),
            ttl_max: cli
                .domains
                .ttl_max
                .or(config.domains.ttl_max)
                .unwrap_or(limits::DNS_TTL_MAX.default),
            table_size: cli
                .domains
                .table_size
                .or(config.domains.table_size)
                .unwrap_or(limits::LEARNED_TABLE_SIZE.default),
            training: config.training,
            sets: config.domain_sets.clone(),
        },
    };
    let rules = options.rules();
    resolve_domains(
        config,
        cli,
        file.as_deref(),
        &options,
        &rules,
        &mode,
        &mut notes,
    )?;
    let total = rules.len();
    if total > MAX_RULES
        && let (Some(file), Some((rule, line))) = (&file, config.rules.last())
    {
        // Only operator rules can overflow: name the one past the limit.
        let own = total - config.rules.len();
        return Err(UsageError::Config {
            location: format!("{file}:{line}"),
            message: format!(
                "[[rules]] '{}' makes {total} rules, more than the {MAX_RULES} the engine takes ({scenario} and the allowances take {own}): remove rules, or merge their ports and networks",
                rule.name
            ),
        });
    }
    crate::compile::check_capacity(&rules).map_err(|e| match &file {
        Some(file) => located(file, e.to_string()),
        None => e,
    })?;
    if config.training && !rules.iter().any(|r| r.networks.domain_sets().is_some()) {
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

/// Checks the domain rules of `rules` (what `options` made) for `mode` and the learning
/// settings: a domain rule outside stateful mode, a resolver given as a network, a minimum TTL
/// above the maximum, and a learning option given with no domain rule are refused; the file's
/// learning settings without a domain rule are noted.
fn resolve_domains(
    config: &Config,
    cli: &Overrides,
    file: Option<&str>,
    options: &Options,
    rules: &[crate::scenario::Rule],
    mode: &Mode,
    notes: &mut Vec<String>,
) -> Result<(), UsageError> {
    let located = |e: UsageError| match file {
        Some(file) => UsageError::Config {
            location: file.to_owned(),
            message: e.to_string(),
        },
        None => e,
    };
    let Some(rule) = rules.iter().find(|r| r.networks.domain_sets().is_some()) else {
        if let Some(flag) = cli.domains.first_flag() {
            return Err(UsageError::DomainOptionUnused(flag));
        }
        if config.domains != DomainSettings::default() || !config.domain_sets.is_empty() {
            notes.push(
                "[domains] applies to domain rules only, and no rule has a domain destination: ignored".to_owned(),
            );
        }
        return Ok(());
    };
    let raw = &cli.networks;
    let what = if rule.name == "https" && raw.https_to == Some(HttpsDst::Domains) {
        "--https-to domains".to_owned()
    } else if rule.name.starts_with("turn-") && raw.turn_dst == Some(TurnDst::Domains) {
        "--turn-dst domains".to_owned()
    } else {
        format!("rule '{}' ({})", rule.name, rule.networks)
    };
    // An operator rule's line, for what is wrong with it.
    let rule_line = |name: &str| {
        config
            .rules
            .iter()
            .find(|(r, _)| r.name == name)
            .map(|(_, line)| *line)
    };
    let at_line = |line: usize, e: UsageError| match file {
        Some(file) => UsageError::Config {
            location: format!("{file}:{line}"),
            message: e.to_string(),
        },
        None => e,
    };
    if !matches!(mode, Mode::Stateful(_)) {
        let e = UsageError::DomainRulesNeedStateful {
            what,
            mode: mode.name(),
        };
        // A mode the file chose is the file's line to change; else the rule's line.
        return Err(match (config.mode, rule_line(&rule.name)) {
            (Some((_, line)), _) if !cli.stateless && !cli.ingress_only => at_line(line, e),
            (_, Some(line)) => at_line(line, e),
            _ => located(e),
        });
    }
    let mut named: Vec<&str> = Vec::new();
    for r in rules {
        for set in r.networks.domain_sets().unwrap_or_default() {
            if !named.contains(&set.as_str()) {
                named.push(set);
            }
            if named.len() > filter_common::MAX_DOMAIN_SETS {
                let e = UsageError::TooManyDomainSets(named.len());
                return Err(match rule_line(&r.name) {
                    Some(line) => at_line(line, e),
                    None => located(e),
                });
            }
        }
    }
    for set in &options.domains.sets {
        if !named.contains(&set.name.as_str()) {
            notes.push(format!(
                "[domains.sets] {}: no rule names it: ignored",
                set.name
            ));
        }
    }
    let d = &options.domains;
    if d.ttl_min > d.ttl_max {
        return Err(located(UsageError::TtlRange {
            min: d.ttl_min,
            max: d.ttl_max,
        }));
    }
    crate::compile::check_domain_rules(rules, mode, &options.dns_servers).map_err(located)
}

/// The mode: the command line's wins, the file's applies without one, stateful by default (with
/// the flow limits of the command line over the file's over the defaults). A command-line
/// option the file's mode takes no effect in is refused at the file's `mode` line.
pub(super) fn resolve_mode(
    config: &Config,
    cli: &Overrides,
    notes: &mut Vec<String>,
) -> Result<Mode, UsageError> {
    let cli_mode = if cli.ingress_only {
        Some(ModeName::IngressOnly)
    } else if cli.stateless {
        Some(ModeName::Stateless)
    } else {
        None
    };
    let chosen = cli_mode.or(config.mode.map(|(m, _)| m));
    let file_says = |line: usize, flag: &str, name: ModeName, fix: &str| UsageError::Config {
        location: format!("{}:{line}", config.path.display()),
        message: format!(
            "{flag} does not apply to {} mode, which the file sets with mode = \"{}\": drop {flag}, or set {fix}",
            name.text(),
            name.text()
        ),
    };
    let Some(name @ (ModeName::Stateless | ModeName::IngressOnly)) = chosen else {
        return Ok(Mode::Stateful(
            cli.flows.over(config.flows.over(FlowLimits::default())),
        ));
    };
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
    if name == ModeName::Stateless {
        return Ok(Mode::Stateless);
    }
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
    Ok(Mode::IngressOnly)
}

/// Refuses `--dns-server` and `--ntp-server` of `raw` for an allowance in `disabled`; `off`
/// says what switched it off.
pub(super) fn servers_take_effect(
    raw: &RawNetworkArgs,
    disabled: &[Allowance],
    off: impl Fn(Allowance) -> String,
) -> Result<(), UsageError> {
    for (allowance, servers, flag) in [
        (Allowance::Dns, &raw.dns_server, "--dns-server"),
        (Allowance::Ntp, &raw.ntp_server, "--ntp-server"),
    ] {
        if let Some(first) = servers.first()
            && disabled.contains(&allowance)
        {
            return Err(UsageError::ServersUnused {
                flag,
                value: first.clone(),
                allowance: allowance.name(),
                off: off(allowance),
            });
        }
    }
    Ok(())
}

/// What `training = true` does, and does not do.
pub const fn training_note() -> &'static str {
    "training = true: the GoTo Training domains are for `gotofw domains --training` and `gotofw pac --training`; GoTo's table 2 gives them no port (only TCP), and the https rule (TCP 443) already admits them, so the packet filter is the same"
}

/// The first flow option given on the command line, as typed.
pub(super) fn flow_flag(flows: &FlowSettings) -> Option<&'static str> {
    [
        (flows.table_size, "--flow-table-size"),
        (flows.udp_timeout, "--udp-timeout"),
        (flows.tcp_timeout, "--tcp-timeout"),
        (flows.tcp_transitory_timeout, "--tcp-transitory-timeout"),
    ]
    .into_iter()
    .find_map(|(value, flag)| value.map(|_| flag))
}
