//! Errors in what the operator asked for. They exit with code 2 and change nothing; every message
//! names the bad value and what to do instead.

use ipnet::IpNet;

use crate::scenario::Scenario;

/// Exit code for bad input (as clap uses for bad arguments).
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a failure of the system (kernel, bpffs, ...).
pub const EXIT_FAILURE: i32 = 1;

/// A request that cannot be carried out as given.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The scenario name is not one of the four.
    #[error(
        "unknown scenario '{0}': use one of no-restrictions, udp-turn, tcp-turn, tcp-443 (see `gotofw scenarios`)"
    )]
    UnknownScenario(String),

    /// A network is not a CIDR or an address.
    #[error(
        "{flag} '{value}' is not a network: give a CIDR such as 68.64.0.0/19 or 2001:db8::/32, or a single address"
    )]
    BadNetwork {
        /// The option that carried it.
        flag: &'static str,
        /// What was typed.
        value: String,
    },

    /// A CIDR has bits set past its prefix length.
    #[error("{flag} '{value}' has host bits set past the prefix: did you mean {network}?")]
    HostBits {
        /// The option that carried it.
        flag: &'static str,
        /// What was typed.
        value: String,
        /// The network it lies in.
        network: IpNet,
    },

    /// `--network` with a scenario that has no network-restricted rule.
    #[error(
        "--network '{network}' has no effect with scenario {scenario}: only udp-turn and tcp-turn restrict traffic to the TURN networks; drop the option or pick one of those"
    )]
    NetworksUnused {
        /// The scenario chosen.
        scenario: Scenario,
        /// The first network given.
        network: String,
    },

    /// `--turn-dst any` with a scenario other than udp-turn.
    #[error(
        "--turn-dst any applies only to scenario udp-turn (the seed offers the choice there alone), not to {0}; drop the option"
    )]
    TurnDstUnused(Scenario),

    /// `--replace-networks` without a network to replace the list with.
    #[error(
        "--replace-networks leaves the TURN network set empty: add at least one --network CIDR"
    )]
    EmptyNetworks,

    /// The interface does not exist in this network namespace.
    #[error(
        "no interface named '{0}' in this network namespace: check `ip link show` (inside a namespace, run gotofw under `nsenter --net=...`)"
    )]
    UnknownInterface(String),

    /// The interface name cannot be one.
    #[error("'{0}' is not a valid interface name: names are 1-15 characters without '/' or spaces")]
    BadInterfaceName(String),

    /// A gotofw filter is already attached.
    #[error(
        "interface {0} already has a gotofw filter: run `gotofw detach {0}` first, or pass --replace to swap the rule set atomically"
    )]
    AlreadyAttached(String),

    /// Some other XDP program holds the interface.
    #[error(
        "interface {iface} already has an XDP program that gotofw did not attach ({detail}): remove it first (e.g. `ip link set dev {iface} xdp off`)"
    )]
    ForeignXdp {
        /// The interface.
        iface: String,
        /// What the kernel said.
        detail: String,
    },

    /// No gotofw filter on the interface.
    #[error(
        "interface {0} has no gotofw filter: attach one with `gotofw attach {0} --scenario <NAME>`"
    )]
    NotAttached(String),

    /// `log` without an interface where there is no filter.
    #[error(
        "no interface of this network namespace has a gotofw filter, so there is no drop log: attach one with `gotofw attach IFACE --scenario NAME`"
    )]
    NoFilters,

    /// `log` without an interface where there are several filters.
    #[error("several interfaces have a gotofw filter ({0}): name the one whose drop log to follow")]
    WhichInterface(String),

    /// `log` of a filter attached with `--log-rate 0` (or `[log] rate = 0`).
    #[error(
        "the drop log of {0} is off (attached with --log-rate 0 or [log] rate = 0): swap it in with `gotofw attach {0} --scenario <NAME> --replace --log-rate 10`"
    )]
    LogOff(String),

    /// `log` while another `gotofw log` reads the same drop log.
    #[error(
        "the drop log of {iface} is being read by another `gotofw log` ({holder}): each sample goes to one reader only, so stop that one first"
    )]
    LogBusy {
        /// The interface.
        iface: String,
        /// `pid N`, or what is known of the other reader.
        holder: String,
    },

    /// `flows` of a filter without flows (stateless or ingress-only), and its mode.
    #[error(
        "interface {0} has a filter in {1} mode, which keeps no flows: re-attach it in stateful mode (gotofw attach {0} --scenario <NAME> --replace, without --stateless or --ingress-only)"
    )]
    NoFlows(String, String),

    /// Not privileged enough.
    #[error(
        "gotofw needs {0} to load and attach XDP programs: run it as root (or grant the binary cap_bpf,cap_net_admin)"
    )]
    MissingCapability(&'static str),

    /// `--replace` asked of an interface with nothing to replace.
    #[error(
        "--replace: interface {0} has no gotofw filter to replace; drop --replace to attach a new one"
    )]
    NothingToReplace(String),

    /// `--egress-hook` other than the hook a swap keeps.
    #[error(
        "--egress-hook {asked}: the filter of {iface} runs its egress program on {used}, and a swap keeps the hook: detach it, then attach with --egress-hook {asked}"
    )]
    EgressHookInUse {
        /// The interface.
        iface: String,
        /// The hook asked for.
        asked: &'static str,
        /// The hook in use.
        used: &'static str,
    },

    /// A destination that is not ADDR:PORT.
    #[error(
        "'{0}' is not a destination: write ADDR:PORT, e.g. 68.64.0.10:3478 or [2001:db8::1]:443 (port 1-65535)"
    )]
    BadDestination(String),

    /// A proxy address that is not HOST:PORT.
    #[error(
        "{flag} '{value}' is not a proxy address: {reason}; write HOST:PORT such as proxy.example:3128 or [2001:db8::1]:3128"
    )]
    BadProxy {
        /// The option that carried it.
        flag: &'static str,
        /// What was typed.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A PAC fallback that is neither DIRECT nor a proxy.
    #[error(
        "--else '{0}' is not a PAC route: use DIRECT or 'PROXY HOST:PORT', e.g. --else 'PROXY proxy.example:8080'"
    )]
    BadRoute(String),

    /// `gotofw pac` without a route for the GoTo domains.
    #[error(
        "gotofw pac needs a route for the GoTo domains: pass --proxy HOST:PORT (their own proxy) or --direct (no proxy)"
    )]
    NoPacRoute,

    /// A configuration file that cannot be used as written: `location` is `FILE:LINE` (or `FILE`
    /// when no line is to blame), `message` names the key, the value and the fix.
    #[error("{location}: {message}")]
    Config {
        /// Where: `FILE:LINE` or `FILE`.
        location: String,
        /// What is wrong and what to write instead, on one line.
        message: String,
    },

    /// An interface whose frames do not start with an Ethernet header.
    #[error(
        "interface {iface} has link type {kind} (link/{kind} in `ip link show {iface}`), whose frames have no Ethernet header for gotofw's classifier to read, so every packet would pass as non-ip: attach gotofw to an Ethernet interface instead"
    )]
    UnparsedLinkType {
        /// The interface.
        iface: String,
        /// The link type, as `ip link` names it.
        kind: String,
    },

    /// A private mount namespace (`ip netns exec`) and no bpffs on the host to pin in.
    #[error(
        "this command runs in a private mount namespace (as under `ip netns exec`) and the host has no bpffs at /sys/fs/bpf, where a filter's pins outlive the command: mount it on the host (`mount -t bpf bpf /sys/fs/bpf`) and run the command again"
    )]
    NoHostBpffs,

    /// A private mount namespace (`ip netns exec`) from which the host's bpffs cannot be reached.
    #[error(
        "this command runs in a private mount namespace (as under `ip netns exec`) and cannot reach the host's bpffs through /proc/1/root, where a filter's pins outlive the command: run gotofw with `nsenter --net=/run/netns/NAME` instead, which keeps the host's mounts"
    )]
    HostMountsUnreachable,

    /// `gotofw pac` whose two routes are the same.
    #[error(
        "the GoTo domains and every other host would all go '{0}', so the PAC would change nothing: give --else another route than --proxy/--direct, e.g. --direct --else 'PROXY proxy.example:8080'"
    )]
    PacChangesNothing(String),

    /// More rules than a filter holds.
    #[error(
        "the rule set has {0} rules, more than the {max} a filter holds (the scenario and the allowances take up to 5): remove rules, or merge rules that share their action, protocol and ports",
        max = filter_common::MAX_RULES
    )]
    TooManyRules(usize),

    /// More networks, over all rules, than a filter holds.
    #[error(
        "the rules name {0} networks in all, more than the {max} a filter holds: list fewer networks (adjacent ones merge into a shorter prefix)",
        max = filter_common::MAX_NETWORKS
    )]
    TooManyNetworks(usize),
}
