use std::{fmt::Write as _, path::Path};

use clap::Parser as _;
use ipnet::IpNet;

use super::{
    load::{Config, FlowSettings, parse},
    raw::OnStop,
    resolve::{Overrides, Resolved, flow_flag, resolve},
};
use crate::{
    cli::{Cli, Command},
    compile::{FlowLimits, Mode},
    error::UsageError,
    limits::{self, Bound},
    loader::options::{EgressHook, XdpModeArg},
    scenario::{Allowance, Networks, Options, PortRange, RawNetworkArgs, Scenario, TurnDst},
};

const EXAMPLE: &str = include_str!("../../../packaging/gotofw.toml");
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
    assert_eq!(config.log_rate, Some(limits::LOG_RATE.default));
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
    let file = parsed("interfaces = [\"wan0\"]\nscenario = \"udp-turn\"\n[allow]\ndns = false\n");
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
    for (
        flag,
        key,
        Bound {
            min: low,
            max: high,
            ..
        },
    ) in [
        ("--flow-table-size", "table_size", limits::FLOW_TABLE_SIZE),
        ("--udp-timeout", "udp_timeout", limits::UDP_TIMEOUT),
        ("--tcp-timeout", "tcp_timeout", limits::TCP_TIMEOUT),
        (
            "--tcp-transitory-timeout",
            "tcp_transitory_timeout",
            limits::TCP_TRANSITORY_TIMEOUT,
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
    let mut want = Options::new(Scenario::UdpTurn);
    want.turn_networks.push("2001:db8::/32".parse().unwrap());
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

/// Without a file, the command line alone: no interface is asked for (`explain --scenario`
/// names none; clap asks `attach` for one), and a missing scenario is said as such, not as an
/// unknown one.
#[test]
fn the_command_line_alone_needs_a_scenario_only() {
    let explain = Overrides {
        scenario: Some(Scenario::UdpTurn),
        stateless: true,
        ..Overrides::default()
    };
    let r = resolve(None, &explain).unwrap();
    assert!(r.interfaces.is_empty());
    assert_eq!(r.mode, Mode::Stateless);
    assert_eq!(r.options, Options::new(Scenario::UdpTurn));
    assert!(r.notes.is_empty());
    let err = resolve(None, &Overrides::default()).unwrap_err();
    assert!(matches!(err, UsageError::NoScenario), "{err}");
    assert!(err.to_string().contains("--scenario"), "{err}");
}

/// A file with domain rules: `https_to`, `[turn] destination`, `[domains]` and its sets, and
/// a rule naming a set and a pattern of its own.
const DOMAINS: &str = r#"interfaces = ["wan0"]
scenario = "udp-turn"
https_to = "domains"
training = true

[turn]
destination = "domains"

[domains]
ttl_min = 30
ttl_max = 600
table_size = 4096

[domains.sets]
office = ["*.Example.com", "api.example.org."]

[[rules]]
name = "vpn"
direction = "outbound"
protocol = "udp"
ports = 51820
domains = ["office", "vpn.example.net"]
action = "allow"
position = "before"
"#;

#[test]
fn domain_rules_of_the_file_become_domain_destinations() {
    let r = resolved(DOMAINS, &Overrides::default());
    let d = &r.options.domains;
    assert_eq!((d.ttl_min, d.ttl_max, d.table_size), (30, 600, 4096));
    assert!(d.training);
    let sets: Vec<(&str, Vec<&str>)> = d
        .sets
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.patterns.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        sets,
        [
            ("office", vec!["*.example.com", "api.example.org"]),
            ("vpn", vec!["vpn.example.net"]),
        ]
    );
    let rules = r.options.rules();
    let nets = |name: &str| {
        rules
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.networks.to_string())
            .unwrap()
    };
    assert_eq!(nets("vpn"), "domains office,vpn");
    assert_eq!(nets("turn-udp"), "domains goto,goto-training");
    assert_eq!(nets("https"), "domains goto,goto-training");
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    let table = super::describe(&parsed(DOMAINS), &r);
    assert!(table.contains("domains office,vpn"), "{table}");
    assert!(
        table.contains("domain set office: *.example.com, api.example.org"),
        "{table}"
    );
    assert!(table.contains("kept 30-600 s"), "{table}");
    // The command line wins over [domains].
    let cli = Overrides {
        domains: super::DomainSettings {
            ttl_min: Some(5),
            ..Default::default()
        },
        ..Overrides::default()
    };
    assert_eq!(resolved(DOMAINS, &cli).options.domains.ttl_min, 5);
    let c = crate::compile::Compiled::for_options(&r.options, &r.mode).unwrap();
    assert_eq!(c.config.domain_sets, 4);
    assert_eq!((c.config.dns_ttl_min, c.config.dns_ttl_max), (30, 600));
    assert_eq!(c.learned_map_entries, 4096);
}

#[test]
fn bad_domain_settings_name_their_line_and_the_fix() {
    let rule = |dest: &str| {
        format!(
            "{MINIMAL}\n[[rules]]\nname = \"vpn\"\ndirection = \"outbound\"\nprotocol = \"udp\"\nports = 51820\n{dest}\naction = \"allow\"\nposition = \"after\"\n"
        )
    };
    let cases: Vec<(String, usize, &[&str])> = vec![
        ("https_to = \"dns\"".into(), 1, &["\"dns\"", "\"domains\""]),
        ("[domains]\nttl_min = 3601".into(), 2, &["ttl_min = 3601", "3600"]),
        ("[domains]\nttl_max = 0".into(), 2, &["ttl_max = 0", "604800"]),
        ("[domains]\ntable_size = 100".into(), 2, &["table_size = 100", "1024"]),
        (
            "[domains]\nttl_min = 600\nttl_max = 60".into(),
            2,
            &["ttl_min = 600", "ttl_max = 60"],
        ),
        ("[domains]\nttl = 5".into(), 2, &["ttl", "ttl_min"]),
        (
            "[domains.sets]\nOffice = [\"*.example.com\"]".into(),
            2,
            &["'Office'", "lowercase"],
        ),
        (
            "[domains.sets]\ngoto = [\"*.example.com\"]".into(),
            2,
            &["'goto'", "built-in"],
        ),
        ("[domains.sets]\noffice = []".into(), 2, &["office = []"]),
        (
            "[domains.sets]\noffice = [\"*.ex*ample.com\"]".into(),
            2,
            &["'*.ex*ample.com'", "*.example.com"],
        ),
        (
            format!("[domains.sets]\noffice = [\"*.{}.example.com\"]", "a".repeat(50)),
            2,
            &["45 or 48 to 57", "this one is 50"],
        ),
        (
            "[domains.sets]\noffice = [\"a..example.com\"]".into(),
            2,
            &["'a..example.com'", "labels of 1 to 63"],
        ),
        (
            rule("networks = \"any\"\ndomains = [\"goto\"]"),
            10,
            &["'vpn'", "networks and domains"],
        ),
        (rule("domains = []"), 9, &["'vpn'", "domains = []"]),
        (rule("domains = [\"office\"]"), 5, &["'office'", "[domains.sets]"]),
        (rule("domains = [\"Office\"]"), 9, &["\"Office\"", "set name"]),
        (
            rule("domains = [\"goto\"]").replace("outbound", "inbound"),
            9,
            &["outbound rules only"],
        ),
        (
            rule("domains = [\"goto\"]").replace("\n\n[[rules]]", "\nmode = \"stateless\"\n\n[[rules]]"),
            6,
            &["'vpn'", "mode = \"stateless\"", "stateful"],
        ),
        (
            "mode = \"ingress-only\"\nhttps_to = \"domains\"".into(),
            2,
            &["https_to = \"domains\"", "ingress-only"],
        ),
        (rule(""), 5, &["no destination", "domains ="]),
        (
            "scenario = \"tcp-443\"\n[turn]\ndestination = \"domains\"".into(),
            3,
            &["udp-turn and tcp-turn", "https_to"],
        ),
        (
            "scenario = \"tcp-turn\"\n[turn]\ndestination = \"domains\"\nextra_networks = [\"192.0.2.0/24\"]".into(),
            4,
            &["extra_networks", "destination = \"domains\""],
        ),
    ];
    for (text, line, needles) in &cases {
        // Lines count in the case's own text; what it lacks goes in front.
        let (text, line) = if text.starts_with("interfaces") {
            (text.clone(), *line)
        } else if text.starts_with("scenario") {
            (format!("interfaces = [\"wan0\"]\n{text}"), line + 1)
        } else {
            (
                format!("interfaces = [\"wan0\"]\nscenario = \"tcp-443\"\n{text}"),
                line + 2,
            )
        };
        let err = error(&text, line);
        for needle in *needles {
            assert!(err.contains(needle), "{text:?}: {needle:?} not in {err}");
        }
    }
}

#[test]
fn domain_rules_outside_stateful_mode_are_refused_on_every_path() {
    let https = RawNetworkArgs {
        https_to: Some(crate::scenario::HttpsDst::Domains),
        ..RawNetworkArgs::default()
    };
    for (stateless, ingress_only, mode) in
        [(true, false, "stateless"), (false, true, "ingress-only")]
    {
        let cli = Overrides {
            interface: Some("wan0".into()),
            scenario: Some(Scenario::Tcp443),
            networks: https.clone(),
            stateless,
            ingress_only,
            ..Overrides::default()
        };
        let err = resolve(None, &cli).unwrap_err().to_string();
        assert!(
            err.contains("--https-to domains needs stateful mode") && err.contains(mode),
            "{err}"
        );
        // Over a file with domain rules too, at the rule's line.
        let err = resolve(Some(&parsed(DOMAINS)), &cli)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("test.toml:") && err.contains(mode), "{err}");
    }
    let cli = |networks: RawNetworkArgs, scenario| Overrides {
        interface: Some("wan0".into()),
        scenario: Some(scenario),
        networks,
        ..Overrides::default()
    };
    let turn = RawNetworkArgs {
        turn_dst: Some(TurnDst::Domains),
        ..RawNetworkArgs::default()
    };
    let err = resolve(None, &cli(turn.clone(), Scenario::Tcp443))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--turn-dst domains") && err.contains("tcp-443"),
        "{err}"
    );
    let r = resolve(None, &cli(turn.clone(), Scenario::TcpTurn)).unwrap();
    assert_eq!(r.options.rules()[0].networks.to_string(), "domains goto");
    let with_network = RawNetworkArgs {
        network: vec!["192.0.2.0/24".into()],
        ..turn
    };
    let err = resolve(None, &cli(with_network, Scenario::UdpTurn))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'192.0.2.0/24'") && err.contains("--turn-dst domains"),
        "{err}"
    );
    let wide = RawNetworkArgs {
        dns_server: vec!["192.0.2.0/24".into()],
        ..https.clone()
    };
    let err = resolve(None, &cli(wide, Scenario::Tcp443))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'192.0.2.0/24'") && err.contains("/32 or /128"),
        "{err}"
    );
    // Learning options without a domain rule do nothing, and are refused.
    let mut lone = cli(RawNetworkArgs::default(), Scenario::Tcp443);
    lone.domains.table_size = Some(4096);
    let err = resolve(None, &lone).unwrap_err().to_string();
    assert!(err.contains("--learned-table-size has no effect"), "{err}");
    let mut inverted = cli(https, Scenario::Tcp443);
    inverted.domains.ttl_min = Some(100);
    inverted.domains.ttl_max = Some(50);
    let err = resolve(None, &inverted).unwrap_err().to_string();
    assert!(err.contains("100 s") && err.contains("50 s"), "{err}");
}

#[test]
fn domain_bounds_are_the_command_lines() {
    for (
        flag,
        key,
        Bound {
            min: low,
            max: high,
            ..
        },
    ) in [
        ("--dns-ttl-min", "ttl_min", limits::DNS_TTL_MIN),
        ("--dns-ttl-max", "ttl_max", limits::DNS_TTL_MAX),
        (
            "--learned-table-size",
            "table_size",
            limits::LEARNED_TABLE_SIZE,
        ),
    ] {
        let below = i64::from(low) - 1;
        for (value, ok) in [
            (below, false),
            (i64::from(low), true),
            (i64::from(high), true),
            (i64::from(high) + 1, false),
        ] {
            let value = value.to_string();
            assert_eq!(attach_with(flag, &value).is_ok(), ok, "{flag} {value}");
            let file = parse(Path::new("t"), &format!("[domains]\n{key} = {value}\n"));
            assert_eq!(file.is_ok(), ok, "[domains] {key} = {value}");
        }
    }
}
