//! `gotofw explain`: runs the classifier the kernel runs, on the host, for one connection.

use std::net::SocketAddr;

use filter_common::{Direction, FragKey, classify};
use serde::Serialize;

use crate::{
    cli::ExplainArgs,
    cmd::{json, print},
    compile::{Compiled, FlowLimits, Mode},
    error::UsageError,
    frame,
    scenario::{Options, Protocol},
    slots::slot_name,
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

/// `explain --json`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Explanation {
    /// Scenario evaluated.
    pub scenario: String,
    /// Mode whose reply handling is shown.
    pub mode: &'static str,
    /// `tcp` or `udp`.
    pub protocol: Protocol,
    /// The remote end.
    pub destination: String,
    /// Outbound verdict, as the scenario's rules are written.
    pub verdict: &'static str,
    /// The rule that decided the outbound packet.
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

/// Classifies the connection's first packet and its reply: in stateful mode the outbound packet
/// opens a flow (when allowed) that the reply then belongs to.
pub fn explain(
    options: &Options,
    stateless: bool,
    protocol: Protocol,
    dst: SocketAddr,
) -> anyhow::Result<Explanation> {
    let rules = options.rules();
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    let mode = if stateless {
        Mode::Stateless
    } else {
        Mode::Stateful(FlowLimits::default())
    };
    let compiled = Compiled::with_mode(&rules, options.allowance_bits(), &mode)?;
    let tables = compiled.tables();
    let local: SocketAddr = if dst.is_ipv4() { LOCAL_V4 } else { LOCAL_V6 }
        .parse()
        .expect("valid built-in address");
    let judge = |src, dst, direction| {
        let bytes = frame::packet(protocol, src, dst);
        let d = classify(
            bytes.as_slice(),
            &tables,
            direction,
            &mut std::mem::MaybeUninit::<FragKey>::uninit(),
        )
        .decision;
        Verdict {
            verdict: if d.passes() { "allow" } else { "block" },
            rule: slot_name(&names, d.slot),
        }
    };
    let out = judge(local, dst, Direction::Egress);
    let reply = judge(dst, local, Direction::Ingress);
    Ok(Explanation {
        scenario: options.scenario.name().to_owned(),
        mode: mode.name(),
        protocol,
        destination: dst.to_string(),
        verdict: out.verdict,
        rule: out.rule,
        reply,
    })
}

/// Runs the command.
pub fn run(args: &ExplainArgs) -> anyhow::Result<()> {
    let options = Options::from_raw(&args.networks, args.scenario)?;
    let dst = parse_destination(&args.destination)?;
    let e = explain(&options, args.stateless, args.protocol, dst)?;
    if args.json {
        return Ok(print(&json(&e)?)?);
    }
    let how = if args.stateless {
        "stateless mode: matched by its source port and network"
    } else if e.reply.verdict == "allow" {
        "stateful mode: it belongs to the flow the outbound packet opened"
    } else {
        "stateful mode: no flow admits it"
    };
    print(&format!(
        "{} {} under scenario {}: {}\n  outbound  {:<5}  by {}\n  reply     {:<5}  by {} ({how})\n",
        e.protocol,
        e.destination,
        e.scenario,
        e.verdict,
        e.verdict,
        e.rule,
        e.reply.verdict,
        e.reply.rule,
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Scenario, TurnDst};

    fn verdict(sc: Scenario, proto: Protocol, dst: &str) -> (String, String) {
        let mut out = Vec::new();
        for stateless in [true, false] {
            let e = explain(&Options::new(sc), stateless, proto, dst.parse().unwrap()).unwrap();
            // Both modes admit exactly the replies of allowed connections, under the same rule.
            assert_eq!(e.verdict, e.reply.verdict, "{e:?}");
            assert_eq!(e.rule, e.reply.rule, "{e:?}");
            out.push((e.verdict.to_owned(), e.rule));
        }
        assert_eq!(out[0], out[1]);
        out.pop().unwrap()
    }

    #[test]
    fn the_seed_tables_hold() {
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
        let e = explain(&any, false, Udp, "203.0.113.10:3478".parse().unwrap()).unwrap();
        assert_eq!((e.verdict, e.rule.as_str()), ("allow", "turn-udp"));
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
