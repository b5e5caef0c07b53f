//! The command line, as clap sees it. Each doc comment is the `--help` text.

use clap::{Args, Parser, Subcommand};

use crate::{
    limits,
    loader::options::XdpModeArg,
    scenario::{RawNetworkArgs, Scenario},
};

/// gotofw: the GoTo meeting firewall scenarios, enforced in XDP on a gateway's WAN interface.
///
/// gotofw attaches an XDP program to the WAN interface that admits only the traffic of the chosen
/// GoTo scenario (plus ARP, neighbour discovery, DHCP, DNS, NTP and ICMP errors, each switchable)
/// and counts every packet under the rule that decided it. The filter stays attached, pinned under
/// /sys/fs/bpf/gotofw/<IFACE>/, after the command exits.
#[derive(Debug, Parser)]
#[command(
    name = "gotofw",
    version,
    propagate_version = true,
    after_help = "EXAMPLES:\n  gotofw scenarios\n  gotofw attach eth1 --scenario udp-turn\n  gotofw status eth1 --json\n  gotofw flows eth1\n  gotofw explain --scenario tcp-turn udp 68.64.0.10:3478\n  gotofw detach eth1\n\nEXIT STATUS:\n  0 success, 1 system failure, 2 bad input (nothing was changed)"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the scenarios with their rules, the allowances and the default action.
    #[command(
        after_help = "EXAMPLES:\n  gotofw scenarios\n  gotofw scenarios --json | jq '.scenarios[].name'"
    )]
    Scenarios(ScenariosArgs),
    /// Attach the filter to an interface with a scenario, pin it, and exit.
    ///
    /// All or nothing: the new rule set is loaded, put on the interface and pinned while it still
    /// hands every packet to the filter it replaces (or passes it), then switched on at both hooks
    /// with one write. Whatever fails, or kills gotofw, before that write leaves the interface as
    /// it was; after it, the new filter is in force. The next gotofw command on the interface
    /// settles what a killed one left and says so in a `gotofw: note:` line.
    #[command(
        after_help = "EXAMPLES:\n  gotofw attach eth1 --scenario udp-turn\n  gotofw attach eth1 --scenario udp-turn --turn-dst any --flow-table-size 1048576\n  gotofw attach eth1 --scenario udp-turn --stateless\n  gotofw attach eth1 --scenario tcp-turn --network 2001:db8:77::/48\n  gotofw attach eth1 --scenario tcp-443 --no-allow ntp --dns-server 192.0.2.53\n  gotofw attach eth1 --scenario tcp-443 --https-to domains --dns-server 192.0.2.53\n  gotofw attach eth1 --scenario no-restrictions --replace\n  gotofw attach --config /etc/gotofw/gotofw.toml\n  gotofw attach --config gotofw.toml eth1 --scenario tcp-443 --replace"
    )]
    Attach(AttachArgs),
    /// Show the attached filters: scenario, mode, and packets and bytes per rule.
    ///
    /// Each filter's state says whether it really filters (`filtering`), or is `severed`,
    /// `interface-gone`, `interface-recreated`, `replaced` or `egress-missing`; the exit code is 3
    /// when a filter shown is not filtering (`reload`, `set-scenario` or `attach --replace` attach
    /// it anew).
    #[command(
        after_help = "EXAMPLES:\n  gotofw status\n  gotofw status eth1 --json | jq '.interfaces[0].counters[] | select(.name==\"https\") | .packets'\n  gotofw status eth1 --watch\n  gotofw status eth1 --watch --interval 1 --count 5 > frames.txt"
    )]
    Status(StatusArgs),
    /// List the live flows of stateful filters: addresses, ports, rule, state, age, packets.
    #[command(
        after_help = "EXAMPLES:\n  gotofw flows\n  gotofw flows eth1 --json | jq '.interfaces[0].flows | length'\n  gotofw flows eth1 --all"
    )]
    Flows(FlowsArgs),
    /// List the addresses domain rules learned from DNS answers: the set and pattern that
    /// matched the question, the time to expiry, the TTL the answer gave, and the live flows to
    /// each (a flow outlives the TTL).
    #[command(
        after_help = "EXAMPLES:\n  gotofw learned\n  gotofw learned eth1 --json | jq -r '.interfaces[0].learned[] | select(.set==\"goto\") | .address'\n  gotofw learned eth1 --all"
    )]
    Learned(LearnedArgs),
    /// Follow the drop log: samples of dropped packets (time, direction, addresses and ports,
    /// the rule or slot that dropped them), at most --log-rate per second and CPU. One reader
    /// per filter; it follows the filter across a detach and a new attach.
    #[command(
        after_help = "EXAMPLES:\n  gotofw log eth1\n  gotofw log eth1 --json | jq -r 'select(.direction==\"egress\") | .dst'\n  gotofw log eth1 --count 10 --timeout 30"
    )]
    Log(LogArgs),
    /// Swap the scenario of an attached filter atomically, keeping its other options and the
    /// flows the new scenario still allows.
    #[command(
        after_help = "EXAMPLES:\n  gotofw set-scenario eth1 tcp-443\n  gotofw set-scenario eth1 udp-turn"
    )]
    SetScenario(SetScenarioArgs),
    /// Check a configuration file and print the rule table it makes; changes nothing.
    #[command(
        after_help = "EXAMPLES:\n  gotofw check-config\n  gotofw check-config --config packaging/gotofw.toml\n\nEXIT STATUS:\n  0 the file is usable, 2 it is not (the message names FILE:LINE, the value and the fix)"
    )]
    CheckConfig(CheckConfigArgs),
    /// Serve the counters of the attached filters over HTTP in the Prometheus text format.
    ///
    /// GET /metrics reads the counters at each scrape: packets and bytes per rule (labels
    /// interface, rule, kind, action, direction), the flow table's entries, live flows and size,
    /// and whether each filter is attached. Runs in the foreground until interrupted.
    #[command(
        after_help = "EXAMPLES:\n  gotofw metrics\n  gotofw metrics --listen 127.0.0.1:9469 eth1\n  curl -s http://127.0.0.1:9469/metrics | grep gotofw_rule_packets_total"
    )]
    Metrics(MetricsArgs),
    /// Run as a service: attach what the configuration file says and stay in the foreground.
    ///
    /// Adopts a filter that is already attached with the same settings (counters and flows go
    /// on), serves metrics when [metrics] listen is set, re-reads the file on SIGHUP and swaps
    /// the new rule set in atomically (a file with an error changes nothing), and on SIGTERM or
    /// SIGINT leaves the filters attached ([service] on_stop = "keep", the default) or detaches
    /// them (on_stop = "detach"). Tells systemd when it is ready (Type=notify).
    #[command(
        after_help = "EXAMPLES:\n  gotofw run\n  gotofw run --config /etc/gotofw/gotofw.toml\n  systemctl reload gotofw    # SIGHUP: re-read the file"
    )]
    Run(RunArgs),
    /// Apply the configuration file to the interfaces it names: attach where there is no
    /// filter, swap the rule set atomically where it changed (flows kept), leave the rest.
    #[command(
        after_help = "EXAMPLES:\n  gotofw reload\n  gotofw reload --config /etc/gotofw/gotofw.toml"
    )]
    Reload(ReloadArgs),
    /// Remove the filter from an interface: program, link and pins.
    #[command(after_help = "EXAMPLES:\n  gotofw detach eth1")]
    Detach(DetachArgs),
    /// Show which rule decides a connection to ADDR:PORT, and its reply; or which domain set
    /// matches a name.
    ///
    /// With IFACE: the rules of the filter attached to IFACE (its scenario, options, operator
    /// rules and mode), read from its pinned maps, so the verdict is the one that filter takes
    /// (a domain rule's, by the addresses it learned). With --scenario instead: a rule set built
    /// from the command line, without attaching. With --domain NAME: the domain sets and
    /// patterns that match NAME (the built-in goto and goto-training, or with IFACE its filter's)
    /// and, with IFACE, the addresses learned for them.
    #[command(
        override_usage = "gotofw explain IFACE PROTO ADDR:PORT [--json]\n       gotofw explain --scenario NAME [network options] [--stateless] PROTO ADDR:PORT [--json]\n       gotofw explain --domain NAME [IFACE] [--json]",
        after_help = "EXAMPLES:\n  gotofw explain eth1 udp 68.64.0.10:3478\n  gotofw explain eth1 tcp [2001:db8::1]:443 --json\n  gotofw explain --scenario udp-turn udp 68.64.0.10:3478\n  gotofw explain --scenario udp-turn udp 203.0.113.10:3478 --json\n  gotofw explain --scenario tcp-443 --stateless tcp [2001:db8::1]:443\n  gotofw explain --domain www.goto.com\n  gotofw explain --domain global.gotomeeting.com eth1 --json"
    )]
    Explain(ExplainArgs),
    /// List the DNS domains GoTo needs: use, protocols, and whose networks they point to.
    ///
    /// The essential domains must be reachable for any meeting; with --training, the ones GoTo
    /// Training adds. Keep them all out of TLS interception (deep packet inspection): signaling
    /// always runs over TCP 443, and a re-signed certificate chain or a slow inspecting proxy
    /// breaks or degrades the session. `gotofw pac` turns this list into a proxy.pac.
    #[command(
        after_help = "EXAMPLES:\n  gotofw domains\n  gotofw domains --training\n  gotofw domains --training --format json | jq -r '.domains[].pattern'"
    )]
    Domains(DomainsArgs),
    /// Write a proxy.pac that sends the GoTo domains to a proxy of their own, or DIRECT.
    ///
    /// Host names under the GoTo domains (see `gotofw domains`) go to --proxy HOST:PORT, or
    /// DIRECT with --direct (e.g. to keep them away from a proxy that inspects TLS); every other
    /// host goes to --else. Names match by whole labels and ignore case: *.goto.com covers
    /// goto.com and x.goto.com, not notgoto.com nor goto.com.example.net.
    #[command(
        after_help = "EXAMPLES:\n  gotofw pac --proxy proxy.example:3128 > proxy.pac\n  gotofw pac --proxy 192.0.2.8:3128 --training --output /var/www/proxy.pac\n  gotofw pac --direct --else 'PROXY dpi-proxy.example:8080'"
    )]
    Pac(PacArgs),
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "EXAMPLES:\n  gotofw completions bash > /etc/bash_completion.d/gotofw\n  gotofw completions zsh > \"${fpath[1]}/_gotofw\"\n  gotofw completions fish > ~/.config/fish/completions/gotofw.fish"
    )]
    Completions(CompletionsArgs),
    /// Write the man pages (gotofw.8 and one per command) into DIR; `cargo xtask man` runs it.
    #[command(
        hide = true,
        after_help = "EXAMPLES:\n  gotofw man --out target/man\n  man -l target/man/gotofw-pac.8"
    )]
    Man(ManArgs),
}

/// `gotofw scenarios`.
#[derive(Debug, Args)]
pub struct ScenariosArgs {
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `gotofw attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The WAN interface to filter (with --config, default: every interface the file names).
    #[arg(value_name = "IFACE", required_unless_present = "config")]
    pub iface: Option<String>,

    /// The GoTo scenario to enforce: no-restrictions, udp-turn, tcp-turn or tcp-443.
    #[arg(long, value_name = "NAME", value_parser = ScenarioParser,
          required_unless_present = "config")]
    pub scenario: Option<Scenario>,

    /// Take the settings from this configuration file (checked with `gotofw check-config`); the
    /// options given on the command line win over the file's values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub networks: RawNetworkArgs,

    /// Keep no flow table: match outbound packets by the rules as written (TC egress) and
    /// replies by their source port and network (XDP). The default, stateful mode, admits only
    /// packets of flows that allowed outbound packets opened.
    #[arg(long)]
    pub stateless: bool,

    /// Filter inbound traffic only, as --stateless does (XDP), and let every outbound packet
    /// out unfiltered: no egress hook, so what the rules block outbound still leaves.
    #[arg(long, conflicts_with = "egress_hook")]
    pub ingress_only: bool,

    #[command(flatten)]
    pub flows: FlowArgs,

    #[command(flatten)]
    pub domains: DomainArgs,

    /// `--log-rate`: the drop log's samples per second and CPU.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(limits::LOG_RATE.range()),
          help = limits::with_default(
              "Sample at most N dropped packets per second and CPU into the drop log (`gotofw log`); 0 switches the log off.",
              limits::LOG_RATE.default))]
    pub log_rate: Option<u32>,

    /// How to attach: auto (native when the driver can; the default), native, or generic.
    #[arg(long, value_enum, value_name = "MODE")]
    pub xdp_mode: Option<XdpModeArg>,

    /// The egress hook (stateful and stateless mode): auto (tcx where the kernel has it, Linux
    /// 6.6 and later, else clsact; the default), tcx, or clsact. A --replace keeps the hook in
    /// use.
    #[arg(long, value_enum, value_name = "HOOK")]
    pub egress_hook: Option<crate::loader::options::EgressHook>,

    /// Swap the rule set of the filter already attached to IFACE, atomically (counters restart).
    #[arg(long)]
    pub replace: bool,
}

/// Flow table options of `attach` (stateful mode). Unset, they take the configuration file's
/// value, else the default; bounds and defaults are [`limits`]'s.
#[derive(Debug, Default, Args)]
pub struct FlowArgs {
    /// `--flow-table-size`: most flows the table holds.
    #[arg(long = "flow-table-size", value_name = "N",
          conflicts_with_all = ["stateless", "ingress_only"],
          value_parser = clap::value_parser!(u32).range(limits::FLOW_TABLE_SIZE.range()),
          help = limits::with_default(
              "Most flows the table holds; when full, the least recently used go first",
              limits::FLOW_TABLE_SIZE.default))]
    pub table_size: Option<u32>,

    /// `--udp-timeout`: idle seconds before a UDP flow expires.
    #[arg(long, value_name = "SECS", conflicts_with_all = ["stateless", "ingress_only"],
          value_parser = clap::value_parser!(u32).range(limits::UDP_TIMEOUT.range()),
          help = limits::with_default(
              "Idle seconds before a UDP flow expires", limits::UDP_TIMEOUT.default))]
    pub udp_timeout: Option<u32>,

    /// `--tcp-timeout`: idle seconds before an established TCP flow expires.
    #[arg(long, value_name = "SECS", conflicts_with_all = ["stateless", "ingress_only"],
          value_parser = clap::value_parser!(u32).range(limits::TCP_TIMEOUT.range()),
          help = limits::with_default(
              "Idle seconds before an established TCP flow expires (FIN or RST end it sooner)",
              limits::TCP_TIMEOUT.default))]
    pub tcp_timeout: Option<u32>,

    /// `--tcp-transitory-timeout`: idle seconds before a half-open or closing TCP flow expires.
    #[arg(long, value_name = "SECS", conflicts_with_all = ["stateless", "ingress_only"],
          value_parser = clap::value_parser!(u32).range(limits::TCP_TRANSITORY_TIMEOUT.range()),
          help = limits::with_default(
              "Idle seconds before a half-open (SYN sent) or closing (FIN/RST seen) TCP flow expires",
              limits::TCP_TRANSITORY_TIMEOUT.default))]
    pub tcp_transitory_timeout: Option<u32>,
}

/// Learning options of `attach` for domain rules (`--https-to domains`, `--turn-dst domains`,
/// the file's `[[rules]] domains`). Unset, they take the configuration file's value, else the
/// default; bounds and defaults are [`limits`]'s.
#[derive(Debug, Default, Args)]
pub struct DomainArgs {
    /// `--dns-ttl-min`: least seconds a learned address lives.
    #[arg(long, value_name = "SECS",
          value_parser = clap::value_parser!(u32).range(limits::DNS_TTL_MIN.range()),
          help = limits::with_default(
              "Least seconds an address a DNS answer taught stays learned, whatever the record's TTL (domain rules)",
              limits::DNS_TTL_MIN.default))]
    pub dns_ttl_min: Option<u32>,

    /// `--dns-ttl-max`: most seconds a learned address lives.
    #[arg(long, value_name = "SECS",
          value_parser = clap::value_parser!(u32).range(limits::DNS_TTL_MAX.range()),
          help = limits::with_default(
              "Most seconds an address a DNS answer taught stays learned, whatever the record's TTL (domain rules)",
              limits::DNS_TTL_MAX.default))]
    pub dns_ttl_max: Option<u32>,

    /// `--learned-table-size`: most learned addresses held.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(limits::LEARNED_TABLE_SIZE.range()),
          help = limits::with_default(
              "Most addresses learned from DNS answers the kernel holds; when full, the least recently used go first (domain rules)",
              limits::LEARNED_TABLE_SIZE.default))]
    pub learned_table_size: Option<u32>,
}

/// `gotofw status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this interface (default: every interface with a filter).
    #[arg(value_name = "IFACE")]
    pub iface: Option<String>,

    /// Print JSON (format documented in the README).
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,

    /// Redraw the counters every --interval seconds, with packets and bytes per second since the
    /// previous frame (like top); not on a terminal, print one frame per interval.
    #[arg(long)]
    pub watch: bool,

    /// Seconds between two frames of --watch.
    #[arg(long, value_name = "SECS", default_value_t = 2.0, requires = "watch",
          value_parser = parse_interval)]
    pub interval: f64,

    /// Stop --watch after N frames (default: until interrupted).
    #[arg(long, value_name = "N", requires = "watch",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(secs) if (0.1..=86_400.0).contains(&secs) => Ok(secs),
        _ => Err(format!(
            "'{s}' is not an interval: give seconds from 0.1 to 86400, e.g. 2 or 0.5"
        )),
    }
}

/// `gotofw check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The configuration file to check.
    #[arg(long, value_name = "FILE", default_value = limits::CONFIG_PATH)]
    pub config: std::path::PathBuf,
}

/// `gotofw metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Only this interface (default: every interface of this network namespace with a filter).
    #[arg(value_name = "IFACE")]
    pub iface: Option<String>,

    /// Address and port to serve /metrics on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9469")]
    pub listen: std::net::SocketAddr,
}

/// `gotofw run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file: what to attach where, metrics, and what to do on stop.
    #[arg(long, value_name = "FILE", default_value = limits::CONFIG_PATH)]
    pub config: std::path::PathBuf,
}

/// `gotofw flows`.
#[derive(Debug, Args)]
pub struct FlowsArgs {
    /// Only this interface (default: every stateful filter of this network namespace).
    #[arg(value_name = "IFACE")]
    pub iface: Option<String>,

    /// Also list expired flows still in the table.
    #[arg(long)]
    pub all: bool,

    /// Print JSON (format documented in the README).
    #[arg(long)]
    pub json: bool,
}

/// `gotofw learned`.
#[derive(Debug, Args)]
pub struct LearnedArgs {
    /// Only this interface (default: every filter of this network namespace).
    #[arg(value_name = "IFACE")]
    pub iface: Option<String>,

    /// Also list expired addresses still in the table (EXPIRES shows `expired`).
    #[arg(long)]
    pub all: bool,

    /// Print JSON (format documented in the README).
    #[arg(long)]
    pub json: bool,
}

/// `gotofw log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The interface (default: the only one with a filter in this network namespace).
    #[arg(value_name = "IFACE")]
    pub iface: Option<String>,

    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,

    /// Stop after N samples.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Stop after SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
}

/// `gotofw reload`.
#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// The configuration file.
    #[arg(long, value_name = "FILE", default_value = limits::CONFIG_PATH)]
    pub config: std::path::PathBuf,
}

/// `gotofw set-scenario`.
#[derive(Debug, Args)]
pub struct SetScenarioArgs {
    /// The interface whose filter changes.
    #[arg(value_name = "IFACE")]
    pub iface: String,

    /// The new scenario: no-restrictions, udp-turn, tcp-turn or tcp-443.
    #[arg(value_name = "NAME", value_parser = ScenarioParser)]
    pub scenario: Scenario,
}

/// `gotofw detach`.
#[derive(Debug, Args)]
pub struct DetachArgs {
    /// The interface to clear.
    #[arg(value_name = "IFACE")]
    pub iface: String,
}

/// `gotofw explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Evaluate this scenario, built from the command line, instead of an attached filter.
    #[arg(long, value_name = "NAME", value_parser = ScenarioParser)]
    pub scenario: Option<Scenario>,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten, next_help_heading = "Rule-set options (with --scenario only)")]
    pub networks: RawNetworkArgs,

    /// Which domain sets (and patterns) match the host name NAME; with IFACE, those of the
    /// filter attached to it, and the addresses it learned for them.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["scenario", "stateless"])]
    pub domain: Option<String>,

    /// IFACE PROTO ADDR:PORT: the interface whose attached filter answers, the protocol (tcp or
    /// udp) and the remote end (IPv6 as [ADDR]:PORT). With --scenario: PROTO ADDR:PORT. With
    /// --domain: at most IFACE.
    #[arg(value_names = ["IFACE|PROTO", "PROTO|ADDR:PORT", "ADDR:PORT"],
          required_unless_present = "domain", num_args = 1..=3)]
    pub target: Vec<String>,

    /// With --scenario: judge the reply as stateless mode does (by its source port and network)
    /// instead of by the flow the outbound packet opened.
    #[arg(long)]
    pub stateless: bool,
}

fn parse_scenario(s: &str) -> Result<Scenario, String> {
    s.parse::<Scenario>().map_err(|e| e.to_string())
}

/// Parses a scenario name with gotofw's own error, and tells clap the names, so that shell
/// completion offers them (and `--help` lists them).
#[derive(Clone, Copy, Debug)]
pub struct ScenarioParser;

impl clap::builder::TypedValueParser for ScenarioParser {
    type Value = Scenario;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Scenario, clap::Error> {
        parse_scenario.parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            Scenario::ALL
                .into_iter()
                .map(|s| clap::builder::PossibleValue::new(s.name())),
        ))
    }
}

/// `gotofw domains`.
#[derive(Debug, Args)]
pub struct DomainsArgs {
    /// Also list the domains GoTo Training needs.
    #[arg(long)]
    pub training: bool,

    /// Output format: plain (a table) or json.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Plain)]
    pub format: Format,
}

/// How `gotofw domains` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people.
    Plain,
    /// JSON for scripts.
    Json,
}

/// `gotofw pac`.
#[derive(Debug, Args)]
pub struct PacArgs {
    /// Send the GoTo domains to this proxy.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "direct")]
    pub proxy: Option<String>,

    /// Send the GoTo domains DIRECT, bypassing any proxy.
    #[arg(long)]
    pub direct: bool,

    /// Include the domains GoTo Training needs.
    #[arg(long)]
    pub training: bool,

    /// Where every other host goes: DIRECT or 'PROXY HOST:PORT'.
    #[arg(long = "else", value_name = "ROUTE", default_value = "DIRECT")]
    pub fallback: String,

    /// Write the PAC to FILE (replaced atomically) instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

/// `gotofw completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `gotofw man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write the pages into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: std::path::PathBuf,
}

/// The whole command line as a `clap::Command`, for completions and man pages.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// A command-line error of clap as one line: what is wrong (the kind of error, the argument and
/// the value, values shortened as [`crate::error::shorten_values`] does), clap's tip if it has one, and where
/// to read more: "see `gotofw CMD --help`". `args` is the command line without the program name.
pub fn clap_line(err: &clap::Error, args: &[String]) -> String {
    let rendered = err.render().to_string();
    let mut line = String::new();
    let mut tips = Vec::new();
    for part in rendered.lines().map(str::trim) {
        if part.starts_with("Usage:") || part.starts_with("For more information") {
            break;
        }
        if part.is_empty() {
            continue;
        }
        if let Some(tip) = part.strip_prefix("tip: ") {
            tips.push(tip.to_owned());
            continue;
        }
        let part = part.strip_prefix("error: ").unwrap_or(part);
        if let Some(values) = part
            .strip_prefix("[possible values: ")
            .and_then(|v| v.strip_suffix(']'))
        {
            line.push_str(": use one of ");
            line.push_str(values);
            continue;
        }
        if line.is_empty() {
            line.push_str(part);
        } else if line.ends_with(':') {
            line.push(' ');
            line.push_str(part);
        } else {
            line.push_str(", ");
            line.push_str(part);
        }
    }
    for tip in tips {
        // clap's advice for a value that starts with '-' fits positional arguments only.
        let negative = tip
            .strip_prefix("to pass '-")
            .and_then(|rest| rest.split('\'').next())
            .is_some_and(|n| n.parse::<f64>().is_ok());
        line.push_str(" (");
        line.push_str(if negative {
            "negative numbers are not accepted"
        } else {
            &tip
        });
        line.push(')');
    }
    let names: Vec<String> = command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_owned())
        .collect();
    let sub = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .filter(|a| names.contains(a));
    let help = match sub {
        Some(sub) => format!("gotofw {sub} --help"),
        None => "gotofw --help".to_owned(),
    };
    format!(
        "{}; see `{help}`",
        crate::error::shorten_values(&crate::error::plain_words(&line))
    )
}

impl From<&AttachArgs> for crate::config::Overrides {
    fn from(args: &AttachArgs) -> Self {
        Self {
            interface: args.iface.clone(),
            scenario: args.scenario,
            networks: args.networks.clone(),
            stateless: args.stateless,
            ingress_only: args.ingress_only,
            flows: crate::config::FlowSettings {
                table_size: args.flows.table_size,
                udp_timeout: args.flows.udp_timeout,
                tcp_timeout: args.flows.tcp_timeout,
                tcp_transitory_timeout: args.flows.tcp_transitory_timeout,
            },
            xdp_mode: args.xdp_mode,
            egress_hook: args.egress_hook,
            log_rate: args.log_rate,
            domains: crate::config::DomainSettings {
                ttl_min: args.domains.dns_ttl_min,
                ttl_max: args.domains.dns_ttl_max,
                table_size: args.domains.learned_table_size,
            },
        }
    }
}
