//! `gotofw explain`: runs the classifier the kernel runs, on the host, for one connection: over
//! the pinned maps of the filter attached to an interface (`explain IFACE ...`), or over a rule
//! set built from the command line (`explain --scenario NAME ...`).

use std::{fmt::Write as _, net::SocketAddr};

use filter_common::{Direction, FragKey, Tables, classify};
use serde::Serialize;

use crate::{
    cli::ExplainArgs,
    compile::{Compiled, Mode},
    config::{self, Overrides},
    error::UsageError,
    frame,
    loader::{self, FilterMode, learned::LearnedSet},
    output::{json, print},
    pinned::PinnedMaps,
    scenario::{Options, Protocol, RawNetworkArgs, Scenario},
    slots::slot_name,
    system,
};

/// Local end used for the explained connection (documentation addresses).
const LOCAL_V4: &str = "192.0.2.1:50000";
const LOCAL_V6: &str = "[2001:db8::1]:50000";

/// The verdict on one packet.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Verdict {
    /// `allow` or `block`.
    pub verdict: &'static str,
    /// The rule or slot that decided.
    pub rule: String,
}

/// The `rule` of an outbound packet that no program judges (ingress-only mode).
pub const UNFILTERED: &str = "unfiltered";

/// `explain --json`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Explanation {
    /// The interface whose attached filter answered (`explain IFACE`); absent with `--scenario`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Scenario evaluated.
    pub scenario: String,
    /// Mode whose reply handling is shown.
    pub mode: FilterMode,
    /// `tcp` or `udp`.
    pub protocol: Protocol,
    /// The remote end.
    pub destination: String,
    /// Outbound verdict, as the rules are written (`allow` in ingress-only mode, which does not
    /// filter outbound traffic).
    pub verdict: &'static str,
    /// The rule that decided the outbound packet ([`UNFILTERED`] in ingress-only mode).
    pub rule: String,
    /// The reply's verdict at the WAN ingress (stateful: by the flow the outbound packet opened;
    /// stateless: by its source port and network).
    pub reply: Verdict,
}

fn parse_destination(text: &str) -> Result<SocketAddr, UsageError> {
    match text.parse::<SocketAddr>() {
        Ok(addr) if addr.port() != 0 => Ok(addr),
        _ => Err(UsageError::BadDestination(text.to_owned())),
    }
}

fn parse_protocol(text: &str) -> Result<Protocol, UsageError> {
    <Protocol as clap::ValueEnum>::from_str(text, false)
        .map_err(|_| UsageError::BadProtocol(text.to_owned()))
}

/// Which rule set answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Source<'a> {
    /// The filter attached to this interface (or pin key).
    Attached(&'a str),
    /// A scenario built from the command line.
    Scenario(Scenario),
}

/// What `explain` was asked: the rule set, the protocol and the remote end.
#[derive(Debug, PartialEq, Eq)]
pub struct Question<'a> {
    /// The rule set.
    pub source: Source<'a>,
    /// The protocol.
    pub protocol: Protocol,
    /// The remote end.
    pub destination: SocketAddr,
}

/// The first option given that builds a rule set of its own (meaningful with `--scenario` only).
fn rule_set_option(networks: &RawNetworkArgs, stateless: bool) -> Option<&'static str> {
    [
        (stateless, "--stateless"),
        (networks.turn_dst.is_some(), "--turn-dst"),
        (networks.https_to.is_some(), "--https-to"),
        (!networks.network.is_empty(), "--network"),
        (networks.replace_networks, "--replace-networks"),
        (!networks.no_allow.is_empty(), "--no-allow"),
        (!networks.dns_server.is_empty(), "--dns-server"),
        (!networks.ntp_server.is_empty(), "--ntp-server"),
    ]
    .into_iter()
    .find_map(|(given, flag)| given.then_some(flag))
}

/// Tells `explain IFACE PROTO ADDR:PORT` from `explain --scenario NAME PROTO ADDR:PORT`, and
/// checks the protocol and the destination.
pub fn question(args: &ExplainArgs) -> Result<Question<'_>, UsageError> {
    let (source, proto, dst) = match (args.scenario, args.target.as_slice()) {
        (Some(scenario), [proto, dst]) => (Source::Scenario(scenario), proto, dst),
        (Some(scenario), [iface, _, _]) => {
            return Err(UsageError::ExplainBoth {
                iface: iface.clone(),
                scenario: scenario.name(),
            });
        }
        (None, [iface, proto, dst]) => {
            if let Some(flag) = rule_set_option(&args.networks, args.stateless) {
                return Err(UsageError::ExplainOptionUnused {
                    flag,
                    iface: iface.clone(),
                });
            }
            (Source::Attached(iface.as_str()), proto, dst)
        }
        (_, other) => return Err(UsageError::ExplainWhat(other.join(" "))),
    };
    Ok(Question {
        source,
        protocol: parse_protocol(proto)?,
        destination: parse_destination(dst)?,
    })
}

/// Classifies the connection's first packet (WAN egress) and its reply (WAN ingress) under
/// `tables`, whose rules are named `names` in match order. In stateful mode the outbound packet
/// opens a flow (when allowed) in the tables' flow table, which the reply then belongs to.
pub(crate) fn connection<T: Tables, S: AsRef<str>>(
    tables: &T,
    names: &[S],
    protocol: Protocol,
    dst: SocketAddr,
) -> (Verdict, Verdict) {
    let local: SocketAddr = if dst.is_ipv4() { LOCAL_V4 } else { LOCAL_V6 }
        .parse()
        .expect("valid built-in address");
    let judge = |src, dst, direction| {
        // Framed as the interface's frames are: a filter on an L3 link reads bare IP.
        let bytes = frame::packet_on(tables.config().link, protocol, src, dst);
        let d = classify(
            bytes.as_slice(),
            tables,
            direction,
            &mut std::mem::MaybeUninit::<FragKey>::uninit(),
        )
        .decision;
        Verdict {
            verdict: if d.passes() { "allow" } else { "block" },
            rule: slot_name(names, d.slot),
        }
    };
    let out = judge(local, dst, Direction::Egress);
    let reply = judge(dst, local, Direction::Ingress);
    (out, reply)
}

/// Explains a connection under a rule set built from `options` (`explain --scenario`).
pub fn explain(
    options: &Options,
    mode: Mode,
    protocol: Protocol,
    dst: SocketAddr,
) -> anyhow::Result<Explanation> {
    let rules = options.rules();
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    let compiled = Compiled::for_options(options, &mode)?;
    let (out, reply) = connection(&compiled.tables(), &names, protocol, dst);
    Ok(Explanation {
        interface: None,
        scenario: options.scenario.name().to_owned(),
        mode: FilterMode::from(&mode),
        protocol,
        destination: dst.to_string(),
        verdict: out.verdict,
        rule: out.rule,
        reply,
    })
}

/// Explains a connection under the filter attached to `iface` (an interface name or a
/// `NAME:NETNS` pin key): its pinned port array, configuration (mode included) and prefix
/// tries, and the rule names of its stored record.
pub fn explain_attached(
    iface: &str,
    protocol: Protocol,
    dst: SocketAddr,
) -> anyhow::Result<Explanation> {
    let attached = loader::read_attached(iface).map_err(|e| {
        if matches!(e.downcast_ref(), Some(UsageError::NotAttached(_))) {
            UsageError::NothingToExplain(iface.to_owned()).into()
        } else {
            e
        }
    })?;
    // Its pins are what it would do; whether it does it is for `status` (said here in one note).
    crate::liveness::note_if_broken(&attached);
    let maps = PinnedMaps::open(&attached)?;
    let no_rules = Compiled::default();
    let names: Vec<&str> = attached
        .meta
        .rules
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    let (out, reply) = connection(&maps.tables(no_rules.tables()), &names, protocol, dst);
    maps.check()?;
    let value = maps.config().mode;
    let mode = FilterMode::from_config(value).ok_or_else(|| {
        anyhow::anyhow!(
            "the filter on {} runs in mode {value}, which this gotofw does not know: run the gotofw that attached it, or detach it and attach it again",
            attached.meta.interface
        )
    })?;
    // An ingress-only filter has no egress program: every outbound packet leaves.
    let (verdict, rule) = if mode == FilterMode::IngressOnly {
        ("allow", UNFILTERED.to_owned())
    } else {
        (out.verdict, out.rule)
    };
    Ok(Explanation {
        interface: Some(attached.meta.interface.clone()),
        scenario: attached.meta.scenario.clone(),
        mode,
        protocol,
        destination: dst.to_string(),
        verdict,
        rule,
        reply,
    })
}

/// `explain --domain NAME [IFACE] --json`: the domain sets and patterns that match a name, and
/// (with IFACE) the addresses the filter learned for those sets.
#[derive(Debug, Serialize, PartialEq)]
pub struct DomainExplanation {
    /// The name asked about, lowercased, without a trailing dot.
    pub name: String,
    /// The interface whose filter's sets answered; absent for the built-in sets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The sets that were matched against: the filter's, or the built-in `goto` and
    /// `goto-training`.
    pub sets_checked: Vec<String>,
    /// Each set that matches the name, with its longest pattern that does (the one the kernel
    /// records for the set).
    pub matches: Vec<DomainMatch>,
    /// With IFACE: the addresses the filter learned for the matching sets (expired ones
    /// included, flagged); what a domain rule of those sets admits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learned: Option<Vec<crate::learned_model::LearnedAddress>>,
}

/// A set that matches a name.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct DomainMatch {
    /// The set.
    pub set: String,
    /// Its pattern that matches (the longest).
    pub pattern: String,
}

/// Whether `pattern` (`*.goto.com` or `api.example.org`, as records and `gotofw domains` write
/// them) covers `host` (lowercased, no trailing dot): by whole labels, a wildcard covering its
/// apex too, as the PAC file and the kernel's table do.
pub fn pattern_covers(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(apex) => {
            host == apex
                || (host.len() > apex.len()
                    && host.ends_with(apex)
                    && host.as_bytes()[host.len() - apex.len() - 1] == b'.')
        }
        None => host == pattern.strip_suffix('.').unwrap_or(&pattern),
    }
}

/// The sets of `sets` (name, patterns) that cover `host`, each with its longest pattern that
/// does.
pub fn matching_sets(sets: &[(String, Vec<String>)], host: &str) -> Vec<DomainMatch> {
    sets.iter()
        .filter_map(|(set, patterns)| {
            patterns
                .iter()
                .filter(|p| pattern_covers(p, host))
                .max_by_key(|p| p.len())
                .map(|p| DomainMatch {
                    set: set.clone(),
                    pattern: p.clone(),
                })
        })
        .collect()
}

/// The built-in domain sets: `goto` (Table 1 of GoTo's document) and `goto-training`
/// (Table 2), with the patterns `gotofw domains` lists, as a rule set compiles them.
pub fn builtin_sets() -> Vec<(String, Vec<String>)> {
    use crate::domain_sets::{GOTO, GOTO_TRAINING, builtin};
    [GOTO, GOTO_TRAINING]
        .into_iter()
        .map(|name| {
            let patterns = builtin(name).unwrap_or_default();
            (
                name.to_owned(),
                patterns
                    .iter()
                    .map(crate::domain_sets::Pattern::text)
                    .collect(),
            )
        })
        .collect()
}

/// Checks `name` as a question name: what a DNS question can carry, lowercased, one trailing
/// dot dropped.
fn question_name(name: &str) -> Result<String, UsageError> {
    let host = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if host.is_empty() || crate::domain_sets::wire_name(&host).is_none() {
        return Err(UsageError::BadDomainName(name.to_owned()));
    }
    Ok(host)
}

/// Explains `name` against the built-in sets, or with `iface` against the sets of the filter
/// attached to it and the addresses it learned.
pub fn explain_domain(name: &str, iface: Option<&str>) -> anyhow::Result<DomainExplanation> {
    let host = question_name(name)?;
    let Some(iface) = iface else {
        let sets = builtin_sets();
        return Ok(DomainExplanation {
            matches: matching_sets(&sets, &host),
            name: host,
            interface: None,
            sets_checked: sets.into_iter().map(|(n, _)| n).collect(),
            learned: None,
        });
    };
    let attached = loader::read_attached(iface).map_err(|e| {
        if matches!(e.downcast_ref(), Some(UsageError::NotAttached(_))) {
            UsageError::NothingToExplain(iface.to_owned()).into()
        } else {
            e
        }
    })?;
    crate::liveness::note_if_broken(&attached);
    let sets: Vec<(String, Vec<String>)> = attached
        .meta
        .domain_sets
        .iter()
        .map(|s| (s.name.clone(), s.patterns.clone()))
        .collect();
    let matches = matching_sets(&sets, &host);
    let now = loader::monotonic_coarse_ns();
    let learned = loader::learned::learned_sets(&attached.learned_map()?.entries());
    let wanted: Vec<&LearnedSet> = learned
        .iter()
        .filter(|l| {
            attached
                .meta
                .domain_sets
                .get(l.set)
                .is_some_and(|s| matches.iter().any(|m| m.set == s.name))
        })
        .collect();
    let flows = if wanted.is_empty() {
        std::collections::HashMap::new()
    } else {
        crate::learned_model::live_flows(&attached, now)?
    };
    let wanted: Vec<LearnedSet> = wanted.into_iter().copied().collect();
    Ok(DomainExplanation {
        name: host,
        interface: Some(attached.meta.interface.clone()),
        sets_checked: sets.into_iter().map(|(n, _)| n).collect(),
        matches,
        learned: Some(crate::learned_model::rows(
            &attached.meta,
            &wanted,
            &flows,
            now,
            true,
        )),
    })
}

/// `explain --domain` as text.
pub fn render_domain(e: &DomainExplanation) -> String {
    let mut out = String::new();
    let under = e.interface.as_ref().map_or_else(
        || "the built-in domain sets".to_owned(),
        |i| format!("the domain sets of the filter of {i}"),
    );
    if e.sets_checked.is_empty() {
        let _ = writeln!(
            out,
            "{}: the filter of {} has no domain rules: no name is matched, nothing is learned",
            e.name,
            e.interface.as_deref().unwrap_or("-")
        );
        return out;
    }
    if e.matches.is_empty() {
        let _ = writeln!(
            out,
            "{}: in no set of {under} ({}): its answers teach nothing, and a domain rule admits none of its addresses",
            e.name,
            e.sets_checked.join(", ")
        );
        return out;
    }
    let sets: Vec<String> = e
        .matches
        .iter()
        .map(|m| format!("{} (by {})", m.set, m.pattern))
        .collect();
    let _ = writeln!(out, "{}: in {} of {under}", e.name, sets.join(", "));
    if let Some(learned) = &e.learned {
        let live: Vec<_> = learned.iter().filter(|l| !l.expired).collect();
        if live.is_empty() {
            let _ = writeln!(
                out,
                "  no address learned for {} now: a connection to the port of a domain rule of {} is blocked (not-learned) until an answer teaches one",
                if e.matches.len() == 1 { "it" } else { "them" },
                if e.matches.len() == 1 { "it" } else { "them" },
            );
        } else {
            let _ = writeln!(
                out,
                "  {} addresses learned for {} now:",
                live.len(),
                if e.matches.len() == 1 { "it" } else { "them" }
            );
        }
        for l in learned {
            let _ = writeln!(
                out,
                "  {:<39}  {}  by {}  {}  flows {}",
                l.address,
                l.set,
                l.pattern,
                if l.expired {
                    "expired".to_owned()
                } else {
                    format!("expires in {:.0}s", l.expires_in.ceil())
                },
                l.flows
            );
        }
    }
    out
}

/// The interface `explain --domain NAME` asks, if any; what else it was given is refused.
fn domain_question(args: &ExplainArgs) -> Result<Option<&str>, UsageError> {
    if let Some(flag) = rule_set_option(&args.networks, args.stateless) {
        return Err(UsageError::ExplainDomainOption(flag));
    }
    match args.target.as_slice() {
        [] => Ok(None),
        [iface] => Ok(Some(iface.as_str())),
        more => Err(UsageError::ExplainDomainWhat(more.join(" "))),
    }
}

/// Runs the command.
pub fn run(args: &ExplainArgs) -> anyhow::Result<()> {
    if let Some(name) = &args.domain {
        let iface = domain_question(args)?;
        if iface.is_some() {
            system::require_capabilities()?;
        }
        let e = explain_domain(name, iface)?;
        if args.json {
            return Ok(print(&json(&e)?)?);
        }
        return Ok(print(&render_domain(&e))?);
    }
    let q = question(args)?;
    let e = match q.source {
        Source::Scenario(scenario) => {
            let cli = Overrides {
                scenario: Some(scenario),
                networks: args.networks.clone(),
                stateless: args.stateless,
                ..Overrides::default()
            };
            let resolved = config::resolve(None, &cli)?;
            explain(&resolved.options, resolved.mode, q.protocol, q.destination)?
        }
        Source::Attached(iface) => {
            system::require_capabilities()?;
            explain_attached(iface, q.protocol, q.destination)?
        }
    };
    if args.json {
        return Ok(print(&json(&e)?)?);
    }
    let how = if e.mode == FilterMode::Stateless {
        "stateless mode: matched by its source port and network"
    } else if e.mode == FilterMode::IngressOnly {
        "ingress-only mode: matched by its source port and network; outbound is not filtered"
    } else if e.reply.verdict == "allow" {
        "stateful mode: it belongs to the flow the outbound packet opened"
    } else {
        "stateful mode: no flow admits it"
    };
    let under = match &e.interface {
        Some(iface) => format!(
            "through the filter of {iface} (scenario {}, {} mode)",
            e.scenario, e.mode
        ),
        None => format!("under scenario {}", e.scenario),
    };
    // The connection works when its first packet leaves and its reply comes back.
    let connection = if e.verdict == "block" {
        e.verdict
    } else {
        e.reply.verdict
    };
    print(&format!(
        "{} {} {under}: {connection}\n  outbound  {:<5}  by {}\n  reply     {:<5}  by {} ({how})\n",
        e.protocol, e.destination, e.verdict, e.rule, e.reply.verdict, e.reply.rule,
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        compile::FlowLimits,
        scenario::{Scenario, TurnDst},
    };

    fn verdict(sc: Scenario, proto: Protocol, dst: &str) -> (String, String) {
        let mut out = Vec::new();
        for mode in [Mode::Stateless, Mode::Stateful(FlowLimits::default())] {
            let e = explain(&Options::new(sc), mode, proto, dst.parse().unwrap()).unwrap();
            // Both modes admit exactly the replies of allowed connections, under the same rule.
            assert_eq!(e.verdict, e.reply.verdict, "{e:?}");
            assert_eq!(e.rule, e.reply.rule, "{e:?}");
            out.push((e.verdict.to_owned(), e.rule));
        }
        assert_eq!(out[0], out[1]);
        out.pop().unwrap()
    }

    #[test]
    fn the_tables_of_gotos_document_hold() {
        use Protocol::{Tcp, Udp};
        use Scenario::*;
        let allow = |r: &str| ("allow".to_owned(), r.to_owned());
        let block = ("block".to_owned(), "default-block".to_owned());
        assert_eq!(
            verdict(NoRestrictions, Udp, "203.0.113.10:45000"),
            allow("media-udp")
        );
        assert_eq!(
            verdict(NoRestrictions, Udp, "203.0.113.10:49999"),
            allow("media-udp")
        );
        assert_eq!(verdict(NoRestrictions, Udp, "203.0.113.10:50000"), block);
        assert_eq!(verdict(NoRestrictions, Udp, "203.0.113.10:44999"), block);
        assert_eq!(
            verdict(NoRestrictions, Tcp, "[2001:db8::5]:443"),
            allow("https")
        );
        assert_eq!(verdict(UdpTurn, Udp, "68.64.0.0:3478"), allow("turn-udp"));
        assert_eq!(
            verdict(UdpTurn, Udp, "68.64.31.255:3478"),
            allow("turn-udp")
        );
        assert_eq!(verdict(UdpTurn, Udp, "68.64.32.0:3478"), block);
        assert_eq!(verdict(UdpTurn, Tcp, "68.64.0.10:3478"), block);
        assert_eq!(verdict(UdpTurn, Udp, "68.64.0.10:45000"), block);
        assert_eq!(
            verdict(TcpTurn, Tcp, "23.239.255.254:3478"),
            allow("turn-tcp")
        );
        assert_eq!(verdict(TcpTurn, Udp, "23.239.255.254:3478"), block);
        assert_eq!(verdict(Tcp443, Tcp, "198.51.100.1:443"), allow("https"));
        assert_eq!(verdict(Tcp443, Tcp, "68.64.0.10:3478"), block);
        assert_eq!(verdict(Tcp443, Udp, "198.51.100.1:443"), block);
        let mut any = Options::new(UdpTurn);
        any.turn_dst = TurnDst::Any;
        let stateful = Mode::Stateful(FlowLimits::default());
        let e = explain(&any, stateful, Udp, "203.0.113.10:3478".parse().unwrap()).unwrap();
        assert_eq!((e.verdict, e.rule.as_str()), ("allow", "turn-udp"));
    }

    fn args(line: &str) -> ExplainArgs {
        use clap::Parser as _;
        let words = ["gotofw", "explain"]
            .into_iter()
            .chain(line.split_whitespace());
        match crate::cli::Cli::try_parse_from(words).unwrap().command {
            crate::cli::Command::Explain(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_two_forms_are_told_apart() {
        let a = args("eth1 udp 68.64.0.10:3478 --json");
        let q = question(&a).unwrap();
        assert_eq!(q.source, Source::Attached("eth1"));
        assert_eq!(q.protocol, Protocol::Udp);
        assert_eq!(q.destination, "68.64.0.10:3478".parse().unwrap());
        let a = args("--scenario tcp-443 tcp [2001:db8::1]:443");
        let q = question(&a).unwrap();
        assert_eq!(q.source, Source::Scenario(Scenario::Tcp443));
        assert_eq!(q.protocol, Protocol::Tcp);
        // An interface may be called tcp: the count of values decides, not their spelling.
        let a = args("tcp udp 68.64.0.10:3478");
        assert_eq!(question(&a).unwrap().source, Source::Attached("tcp"));
    }

    #[test]
    fn a_question_without_one_rule_set_is_refused() {
        for (line, want) in [
            ("udp 68.64.0.10:3478", "IFACE PROTO ADDR:PORT"),
            ("eth1 udp", "`gotofw explain eth1 udp`"),
            (
                "--scenario udp-turn eth1 udp 68.64.0.10:3478",
                "drop --scenario",
            ),
            ("eth1 udp 68.64.0.10:3478 --stateless", "drop --stateless"),
            (
                "eth1 udp 68.64.0.10:3478 --network 198.51.100.0/24",
                "drop --network",
            ),
            ("eth1 udp 68.64.0.10:3478 --no-allow dns", "drop --no-allow"),
            ("eth1 udp 68.64.0.10:3478 --turn-dst any", "drop --turn-dst"),
            ("eth1 icmp 68.64.0.10:3478", "'icmp'"),
            ("eth1 udp 68.64.0.10", "'68.64.0.10'"),
            ("--scenario udp-turn sctp 68.64.0.10:1", "'sctp'"),
        ] {
            let a = args(line);
            let err = question(&a).unwrap_err().to_string();
            assert!(err.contains(want), "{line}: {err}");
            assert!(!err.contains('\n'), "{line}: {err}");
        }
    }

    /// The built-in sets cover a name as `gotofw domains` (and the PAC file) do: each set with
    /// its longest pattern; lookalikes are in none.
    #[test]
    fn a_name_is_matched_against_the_built_in_sets() {
        let sets = builtin_sets();
        assert_eq!(
            sets.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["goto", "goto-training"]
        );
        let all: Vec<(String, Vec<String>)> = sets.clone();
        for d in crate::domains::ALL {
            for host in [
                d.name.to_owned(),
                format!("x.{}", d.name),
                format!("not{}", d.name),
                format!("{}.example.net", d.name),
            ] {
                let matched = matching_sets(&all, &host);
                let want = crate::domains::ALL.iter().any(|o| o.matches(&host));
                assert_eq!(!matched.is_empty(), want, "{host}: {matched:?}");
                for m in &matched {
                    assert!(pattern_covers(&m.pattern, &host), "{host}: {m:?}");
                }
            }
        }
        let e = explain_domain("WWW.GoTo.com.", None).unwrap();
        assert_eq!(e.name, "www.goto.com");
        assert_eq!(
            e.matches,
            [DomainMatch {
                set: "goto".into(),
                pattern: "*.goto.com".into()
            }]
        );
        assert!(e.learned.is_none());
        let text = render_domain(&e);
        assert_eq!(
            text,
            "www.goto.com: in goto (by *.goto.com) of the built-in domain sets\n"
        );
        let e = explain_domain("goto.com.example.net", None).unwrap();
        assert!(e.matches.is_empty(), "{e:?}");
        assert!(render_domain(&e).contains("in no set"), "{e:?}");
        // Longest pattern of a set wins; an exact pattern covers itself only.
        let mine = vec![(
            "mine".to_owned(),
            vec![
                "*.example.com".to_owned(),
                "*.eu.example.com".to_owned(),
                "api.example.org".to_owned(),
            ],
        )];
        assert_eq!(
            matching_sets(&mine, "a.eu.example.com")[0].pattern,
            "*.eu.example.com"
        );
        assert_eq!(
            matching_sets(&mine, "api.example.org")[0].pattern,
            "api.example.org"
        );
        assert!(matching_sets(&mine, "x.api.example.org").is_empty());
        assert!(matching_sets(&mine, "notexample.com").is_empty());
    }

    #[test]
    fn explain_domain_refuses_what_it_cannot_answer() {
        for bad in ["a..b", "", "a b.com", &"a".repeat(64)] {
            let err = explain_domain(bad, None).unwrap_err().to_string();
            assert!(err.contains(&format!("'{bad}'")), "{err}");
        }
        for (line, want) in [
            ("--domain www.goto.com eth1 tcp", "at most IFACE"),
            (
                "--domain www.goto.com --network 198.51.100.0/24",
                "drop --network",
            ),
        ] {
            let err = domain_question(&args(line)).unwrap_err().to_string();
            assert!(err.contains(want), "{line}: {err}");
            assert!(!err.contains('\n'), "{line}: {err}");
        }
        assert_eq!(
            domain_question(&args("--domain www.goto.com eth1")).unwrap(),
            Some("eth1")
        );
        assert_eq!(
            domain_question(&args("--domain www.goto.com")).unwrap(),
            None
        );
        let both = [
            "gotofw",
            "explain",
            "--domain",
            "x.goto.com",
            "--scenario",
            "tcp-443",
        ];
        assert!(<crate::cli::Cli as clap::Parser>::try_parse_from(both).is_err());
    }

    #[test]
    fn destinations_are_checked() {
        assert!(parse_destination("68.64.0.10:3478").is_ok());
        assert!(parse_destination("[2001:db8::1]:443").is_ok());
        for bad in ["68.64.0.10", "68.64.0.10:0", "68.64.0.10:65536", "host:443"] {
            let err = parse_destination(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
