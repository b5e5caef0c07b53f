//! Errors in what the operator asked for. They exit with code 2; every message names the bad value
//! and what to do instead. Most are found while checking, before anything changes. A few only the
//! attach itself meets (another program's XDP program or egress hook on the interface, a filter
//! attached meanwhile): that interface is left as it was, but a command that changes several
//! interfaces in turn has changed those before it. `reload` keeps their new rule sets (its line for
//! each says so); `attach` detaches again the filters it attached, and rule sets it swapped with
//! `--replace` stay swapped.

use std::fmt::Write as _;

use ipnet::IpNet;

/// Exit code for bad input (as clap uses for bad arguments).
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a failure of the system (kernel, bpffs, ...).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code of `status` when a filter it shows is not filtering (severed, interface gone, ...).
pub const EXIT_NOT_FILTERING: i32 = 3;

/// A filter that `status` shows is pinned but not filtering (exit code 3); the message names
/// the filters and how to repair them.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFiltering(pub String);

/// A request that cannot be carried out as given.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The scenario name is not one of the four.
    #[error(
        "unknown scenario '{0}': use one of no-restrictions, udp-turn, tcp-turn, tcp-443 (see `gotofw scenarios`)"
    )]
    UnknownScenario(String),

    /// A rule set asked for without a scenario: none on the command line and no file.
    #[error(
        "no scenario: pass --scenario NAME (no-restrictions, udp-turn, tcp-turn or tcp-443; see `gotofw scenarios`), or --config FILE with scenario = \"NAME\""
    )]
    NoScenario,

    /// An attach without an interface: none on the command line and no file.
    #[error(
        "no interface: name the WAN interface (`gotofw attach IFACE --scenario NAME`), or pass --config FILE with interfaces = [\"IFACE\"]"
    )]
    NoInterface,

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
        /// The scenario chosen (its name).
        scenario: &'static str,
        /// The first network given.
        network: String,
    },

    /// `--turn-dst any` with a scenario other than udp-turn.
    #[error(
        "--turn-dst any applies only to scenario udp-turn (GoTo's document offers the choice there alone), not to {0}; drop the option"
    )]
    TurnDstUnused(&'static str),

    /// `--turn-dst domains` with a scenario without a TURN rule.
    #[error(
        "--turn-dst domains applies only to scenarios udp-turn and tcp-turn (their TURN rule), not to {0}: drop the option, or use --https-to domains for TCP 443"
    )]
    TurnDstDomainsUnused(&'static str),

    /// `--network` with `--turn-dst domains`.
    #[error(
        "--network '{0}' has no effect with --turn-dst domains: the TURN rule then goes to learned addresses only, not to the TURN networks; drop --network, or --turn-dst domains"
    )]
    NetworksUnusedWithDomainsDst(String),

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

    /// `explain` given a protocol it does not know.
    #[error("'{0}' is not a protocol explain knows: use tcp or udp")]
    BadProtocol(String),

    /// `explain` without a rule set to ask: neither an interface nor `--scenario`.
    #[error(
        "`gotofw explain {0}`: give IFACE PROTO ADDR:PORT to ask the filter attached to IFACE, or --scenario NAME PROTO ADDR:PORT to ask a scenario without attaching"
    )]
    ExplainWhat(String),

    /// `explain` given both an interface and `--scenario`.
    #[error(
        "`gotofw explain {iface}` and --scenario {scenario} are two rule sets: drop --scenario to ask the filter attached to {iface}, or drop {iface} to ask the scenario"
    )]
    ExplainBoth {
        /// The interface.
        iface: String,
        /// The scenario (its name).
        scenario: &'static str,
    },

    /// `explain IFACE` with an option that builds a rule set of its own.
    #[error(
        "{flag} applies to `explain --scenario`: the filter attached to {iface} is explained with the options it was attached with (`gotofw status {iface}` lists its rules); drop {flag}"
    )]
    ExplainOptionUnused {
        /// The option.
        flag: &'static str,
        /// The interface.
        iface: String,
    },

    /// `explain --domain` of something a DNS question cannot carry.
    #[error(
        "'{0}' is not a host name a DNS question can carry: give labels of 1 to 63 letters, digits or '-', 255 bytes in all, e.g. --domain www.goto.com"
    )]
    BadDomainName(String),

    /// `explain --domain NAME` given more than an interface.
    #[error(
        "`gotofw explain --domain NAME {0}`: give at most IFACE (`gotofw explain --domain NAME IFACE` asks the filter attached to IFACE; without it, the built-in sets answer)"
    )]
    ExplainDomainWhat(String),

    /// `explain --domain` with an option that builds a rule set.
    #[error(
        "{0} builds a rule set, and `explain --domain` answers from the built-in domain sets or an attached filter's: drop {0}"
    )]
    ExplainDomainOption(&'static str),

    /// `explain IFACE` where IFACE has no filter.
    #[error(
        "interface {0} has no gotofw filter to explain: attach one (gotofw attach {0} --scenario NAME), or ask a scenario without attaching (gotofw explain --scenario NAME PROTO ADDR:PORT)"
    )]
    NothingToExplain(String),

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

    /// An interface of a link type whose frames the classifier cannot read.
    #[error(
        "interface {iface} has link type {kind} (link/{kind} in `ip link show {iface}`), whose frames gotofw's classifier cannot read (it reads Ethernet, PPPoE, and the bare IP of tun, WireGuard, PPP and raw-IP links): attach gotofw to the interface that carries the traffic as Ethernet or bare IP instead"
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

    /// `--network` with `--turn-dst any`: udp-turn's only network-restricted rule then holds for
    /// any address.
    #[error(
        "--network '{0}' has no effect with --turn-dst any: udp-turn then sends UDP 3478 to any address, and none of its rules uses the TURN networks; drop --network, or --turn-dst any"
    )]
    NetworksUnusedWithAnyDst(String),

    /// Servers given for an allowance that is switched off.
    #[error(
        "{flag} '{value}' has no effect: the {allowance} allowance is switched off ({off}); drop one of them"
    )]
    ServersUnused {
        /// The option that carried them.
        flag: &'static str,
        /// The first one given.
        value: String,
        /// The allowance they are for (its name).
        allowance: &'static str,
        /// What switched it off.
        off: String,
    },

    /// An IPv4-mapped IPv6 network (`::ffff:0:0/96` or inside it): IPv4 packets carry IPv4
    /// addresses, so it never matches one.
    #[error(
        "{flag} '{value}' is an IPv4-mapped IPv6 network, which never matches: IPv4 packets carry IPv4 addresses; write {v4}"
    )]
    MappedNetwork {
        /// The option that carried it.
        flag: &'static str,
        /// What was typed.
        value: String,
        /// The IPv4 network meant.
        v4: ipnet::Ipv4Net,
    },

    /// An IPv4 address with a leading zero in a part, which some tools read as octal.
    #[error(
        "{flag} '{value}' has leading zeros, which are ambiguous (some tools read 010 as octal 8): write {plain}"
    )]
    LeadingZeros {
        /// The option that carried it.
        flag: &'static str,
        /// What was typed.
        value: String,
        /// The same without leading zeros.
        plain: String,
    },

    /// A domain rule in a mode without flows: stateless and ingress-only mode record no DNS
    /// query, so nothing could be learned and the rule would never match.
    #[error(
        "{what} needs stateful mode, not {mode}: domain rules learn addresses from DNS answers to queries the egress program saw leave, which only stateful mode tracks; drop {what}, or use stateful mode (the default)"
    )]
    DomainRulesNeedStateful {
        /// The rule, or the option, that asked for it.
        what: String,
        /// The mode chosen.
        mode: &'static str,
    },

    /// A DNS server given as a network with domain rules.
    #[error(
        "--dns-server '{0}' is a network, and with domain rules the kernel learns only from the resolvers' addresses: give each resolver as one address (a /32 or /128)"
    )]
    DnsServerNetwork(IpNet),

    /// A rule names a domain set nothing defines.
    #[error(
        "rule '{rule}' names the domain set '{set}', which is not defined: use goto, goto-training, or define it under [domains.sets]"
    )]
    UnknownDomainSet {
        /// The rule.
        rule: String,
        /// The set.
        set: String,
    },

    /// A pattern of a domain set that cannot be matched.
    #[error("domain set '{set}': {why}")]
    BadDomainPattern {
        /// The set.
        set: String,
        /// What is wrong, and the fix.
        why: String,
    },

    /// More DNS servers than a map can be sized for.
    #[error("too many --dns-server addresses: give fewer")]
    TooManyDnsServers,

    /// More domain sets than a filter holds.
    #[error(
        "the rules name {0} domain sets, more than the {max} a filter holds: merge sets, or name fewer",
        max = filter_common::MAX_DOMAIN_SETS
    )]
    TooManyDomainSets(usize),

    /// A domain option without a domain rule to apply to.
    #[error(
        "{0} has no effect: no rule has a domain destination; add --https-to domains (or --turn-dst domains), or drop {0}"
    )]
    DomainOptionUnused(&'static str),

    /// `--dns-ttl-min` above `--dns-ttl-max`.
    #[error(
        "the DNS TTL minimum, {min} s, is above the maximum, {max} s: give a minimum at most the maximum"
    )]
    TtlRange {
        /// The minimum.
        min: u32,
        /// The maximum.
        max: u32,
    },

    /// `pac --output` somewhere a file cannot be written as asked.
    #[error("--output '{path}': {reason}")]
    BadOutput {
        /// What was typed.
        path: String,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// Values longer than this many characters are shortened in messages.
const LONG_VALUE: usize = 64;
/// How many characters of a shortened value a message shows.
const SHOWN: usize = 40;
/// Words (runs without spaces, outside quotes) longer than this are shortened too.
const LONG_WORD: usize = 100;

/// `text`, with every quoted value (`'...'`, `"..."`, `` `...` ``) longer than 64 characters cut
/// to its first 40 and its length, and any other word longer than 100 characters likewise: an
/// error line names what was typed without echoing a 5,000-character input whole.
pub fn shorten_values(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let is_quote = |c: char| matches!(c, '\'' | '"' | '`');
    let mut out = String::with_capacity(text.len().min(1024));
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // An opening quote follows no letter or digit (not the ' of "GoTo's"); its closing quote
        // is the next one of its kind that no letter or digit follows.
        if is_quote(c) && (i == 0 || !chars[i - 1].is_alphanumeric()) {
            let close = (i + 1..chars.len()).find(|&j| {
                chars[j] == c && chars.get(j + 1).is_none_or(|next| !next.is_alphanumeric())
            });
            if let Some(end) = close {
                let inner = &chars[i + 1..end];
                if inner.len() > LONG_VALUE {
                    out.push(c);
                    out.extend(&inner[..SHOWN]);
                    out.push_str("...");
                    out.push(c);
                    let _ = write!(out, " ({} characters)", inner.len());
                } else {
                    out.extend(&chars[i..=end]);
                }
                i = end + 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out.split(' ')
        .map(|word| {
            let n = word.chars().count();
            if n > LONG_WORD {
                format!(
                    "{}... ({n} characters)",
                    word.chars().take(SHOWN).collect::<String>()
                )
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words of Rust's number parsers and ranges (`invalid digit found in string`,
/// `0 is not in 1024..=16777216`) in an operator's.
pub(crate) fn plain_words(line: &str) -> String {
    let mut out = line
        .replace("invalid digit found in string", "not a whole number")
        .replace(
            "number too large to fit in target type",
            "too large a number",
        )
        .replace(
            "number too small to fit in target type",
            "too small a number",
        )
        .replace(
            "cannot parse integer from empty string",
            "empty, not a number",
        )
        .replace("invalid float literal", "not a number");
    // `N is not in LOW..=HIGH` (or `LOW..HIGH`, whose high end is u64::MAX: no bound to speak of).
    if let Some(at) = out.find(" is not in ") {
        let rest = &out[at + " is not in ".len()..];
        let end = rest.find([';', ' ']).unwrap_or(rest.len());
        let range = &rest[..end];
        let words = match range.split_once("..=") {
            Some((low, high)) => Some(format!(" is out of range: give {low} to {high}")),
            None => range
                .split_once("..")
                .map(|(low, _)| format!(" is out of range: give {low} or more")),
        };
        if let Some(words) = words {
            out.replace_range(at..at + " is not in ".len() + end, &words);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_shortened_and_short_ones_kept() {
        let long = "a".repeat(5000);
        let line = shorten_values(&format!(
            "--network '{long}' is not a network; unknown field `{long}`; \"{long}\" and {long}"
        ));
        assert!(line.len() < 400, "{line}");
        assert_eq!(line.matches("(5000 characters)").count(), 4, "{line}");
        assert!(line.starts_with(&format!("--network '{}...' (5000 characters)", &long[..40])));
        let kept =
            "GoTo's document: '192.0.2.1' or `gotofw attach eth1 --scenario <NAME> --replace`";
        assert_eq!(shorten_values(kept), kept);
    }

    #[test]
    fn rust_number_words_become_operator_words() {
        assert_eq!(
            plain_words(
                "invalid value '0' for '--flow-table-size <N>': 0 is not in 1024..=16777216"
            ),
            "invalid value '0' for '--flow-table-size <N>': 0 is out of range: give 1024 to 16777216"
        );
        assert_eq!(
            plain_words("invalid value '0' for '--count <N>': 0 is not in 1..18446744073709551615"),
            "invalid value '0' for '--count <N>': 0 is out of range: give 1 or more"
        );
        assert!(plain_words("x: invalid digit found in string").ends_with("not a whole number"));
    }
}
