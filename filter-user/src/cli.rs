//! The command line, as clap sees it. Each doc comment is the `--help` text.

use clap::{Args, Parser, Subcommand};

use crate::{
    kernel::XdpModeArg,
    scenario::{Protocol, RawNetworkArgs, Scenario},
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
    #[command(
        after_help = "EXAMPLES:\n  gotofw attach eth1 --scenario udp-turn\n  gotofw attach eth1 --scenario udp-turn --turn-dst any --flow-table-size 1048576\n  gotofw attach eth1 --scenario udp-turn --stateless\n  gotofw attach eth1 --scenario tcp-turn --network 2001:db8:77::/48\n  gotofw attach eth1 --scenario tcp-443 --no-allow ntp --dns-server 192.0.2.53\n  gotofw attach eth1 --scenario no-restrictions --replace"
    )]
    Attach(AttachArgs),
    /// Show the attached filters: scenario, mode, and packets and bytes per rule.
    #[command(
        after_help = "EXAMPLES:\n  gotofw status\n  gotofw status eth1 --json | jq '.interfaces[0].counters[] | select(.name==\"https\") | .packets'"
    )]
    Status(StatusArgs),
    /// List the live flows of stateful filters: addresses, ports, rule, state, age, packets.
    #[command(
        after_help = "EXAMPLES:\n  gotofw flows\n  gotofw flows eth1 --json | jq '.interfaces[0].flows | length'\n  gotofw flows eth1 --all"
    )]
    Flows(FlowsArgs),
    /// Remove the filter from an interface: program, link and pins.
    #[command(after_help = "EXAMPLES:\n  gotofw detach eth1")]
    Detach(DetachArgs),
    /// Show which rule decides a connection to ADDR:PORT, and its reply, without attaching.
    #[command(
        after_help = "EXAMPLES:\n  gotofw explain --scenario udp-turn udp 68.64.0.10:3478\n  gotofw explain --scenario udp-turn udp 203.0.113.10:3478 --json\n  gotofw explain --scenario tcp-443 tcp [2001:db8::1]:443"
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
    /// Write the man pages (gotofw.1 and one per command) into DIR; `cargo xtask man` runs it.
    #[command(
        hide = true,
        after_help = "EXAMPLES:\n  gotofw man --out target/man\n  man -l target/man/gotofw-pac.1"
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
    /// The WAN interface to filter.
    #[arg(value_name = "IFACE")]
    pub iface: String,

    /// The GoTo scenario to enforce: no-restrictions, udp-turn, tcp-turn or tcp-443.
    #[arg(long, value_name = "NAME", value_parser = parse_scenario)]
    pub scenario: Scenario,

    #[command(flatten)]
    pub networks: RawNetworkArgs,

    /// Match replies by their source port and network (XDP only, no state, no egress hook). The
    /// default, stateful mode, admits only packets of flows that allowed outbound packets opened.
    #[arg(long)]
    pub stateless: bool,

    #[command(flatten)]
    pub flows: FlowArgs,

    /// How to attach: auto (native when the driver can), native, or generic.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = XdpModeArg::Auto)]
    pub xdp_mode: XdpModeArg,

    /// Swap the rule set of the filter already attached to IFACE, atomically (counters restart).
    #[arg(long)]
    pub replace: bool,
}

/// Flow table options of `attach` (stateful mode).
#[derive(Debug, Args)]
pub struct FlowArgs {
    /// Most flows the table holds; when full, the least recently used go first.
    #[arg(long, value_name = "N", default_value_t = 262_144, conflicts_with = "stateless",
          value_parser = clap::value_parser!(u32).range(1024..=16_777_216))]
    pub flow_table_size: u32,

    /// Idle seconds before a UDP flow expires.
    #[arg(long, value_name = "SECS", default_value_t = 120, conflicts_with = "stateless",
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub udp_timeout: u32,

    /// Idle seconds before an established TCP flow expires (FIN or RST end it sooner).
    #[arg(long, value_name = "SECS", default_value_t = 7_200, conflicts_with = "stateless",
          value_parser = clap::value_parser!(u32).range(1..=1_209_600))]
    pub tcp_timeout: u32,

    /// Idle seconds before a half-open (SYN sent) or closing (FIN/RST seen) TCP flow expires.
    #[arg(long, value_name = "SECS", default_value_t = 30, conflicts_with = "stateless",
          value_parser = clap::value_parser!(u32).range(1..=3_600))]
    pub tcp_transitory_timeout: u32,
}

/// `gotofw status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this interface (default: every interface with a filter).
    #[arg(value_name = "IFACE")]
    pub iface: Option<String>,

    /// Print JSON (format documented in the README).
    #[arg(long)]
    pub json: bool,
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
    /// The scenario to evaluate.
    #[arg(long, value_name = "NAME", value_parser = parse_scenario)]
    pub scenario: Scenario,

    #[command(flatten)]
    pub networks: RawNetworkArgs,

    /// Transport protocol of the connection.
    #[arg(value_enum, value_name = "PROTO")]
    pub protocol: Protocol,

    /// Remote end of the connection, ADDR:PORT (IPv6 as [ADDR]:PORT).
    #[arg(value_name = "ADDR:PORT")]
    pub destination: String,

    /// Judge the reply as stateless mode does (by its source port and network) instead of by
    /// the flow the outbound packet opened.
    #[arg(long)]
    pub stateless: bool,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_scenario(s: &str) -> Result<Scenario, String> {
    s.parse::<Scenario>().map_err(|e| e.to_string())
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
