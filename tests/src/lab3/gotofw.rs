//! gotofw in the lab's terms: the modes it attaches in, whether it has stateful mode, what
//! `explain` says about an endpoint, and the counters of `status --json`.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::Endpoint;
use crate::{Gotofw, Netns};

/// The filtering mode gotofw is attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `--stateless`: XDP admits replies that mirror an allowed rule.
    Stateless,
    /// The default: TC egress records allowed flows, XDP admits their packets.
    Stateful,
}

impl Mode {
    /// `stateless` or `stateful`, as `gotofw status --json` spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Stateless => "stateless",
            Self::Stateful => "stateful",
        }
    }

    /// The arguments of `gotofw attach IFACE` for `scenario` in this mode.
    pub fn attach_args(self, scenario: &str) -> Vec<&str> {
        let mut args = vec!["--scenario", scenario];
        if self == Self::Stateless {
            args.push("--stateless");
        }
        args
    }
}

/// Whether this gotofw attaches in stateful mode: it attaches without
/// `--stateless` to `iface` in `ns` and detaches again. `Err` carries its
/// message when it refuses with exit code 2 (stateful mode not there yet);
/// any other failure panics.
pub fn stateful_support(gotofw: &Gotofw, ns: &Netns, iface: &str) -> Result<(), String> {
    let guard = crate::Attached::new(gotofw.clone(), ns, iface);
    let args = ["attach", iface, "--scenario", "tcp-443"];
    let output = gotofw.run(ns, &args);
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if output.status.success() {
        let detach = guard.detach();
        assert!(
            detach.status.success(),
            "gotofw detach {iface} after a stateful attach: {}",
            String::from_utf8_lossy(&detach.stderr).trim()
        );
        return Ok(());
    }
    assert_eq!(
        output.status.code(),
        Some(crate::EXIT_USAGE),
        "`gotofw {}` failed unexpectedly ({}): {stderr}",
        args.join(" "),
        output.status
    );
    Err(stderr)
}

/// What `gotofw explain --json` says about a connection to an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explained {
    /// The connection's verdict: whether the client gets through.
    pub allow: bool,
    /// The rule that decides the connection's first packet.
    pub rule: String,
    /// Whether its replies pass the WAN ingress in stateless mode, i.e.
    /// whether a packet *from* the endpoint passes, asked for or not.
    pub reply_allow: bool,
    /// The rule that decides its replies at the WAN ingress (stateless mode).
    pub reply_rule: String,
}

/// Runs `gotofw explain --scenario SCENARIO [--stateless] --json PROTO ADDR:PORT`.
/// A gotofw that has no stateful mode has no `explain --stateless` either
/// (it explains stateless mode): when it refuses the flag, this asks again
/// without it.
pub fn explain(
    gotofw: &Gotofw,
    scenario: &str,
    mode: Mode,
    endpoint: Endpoint,
) -> Result<Explained> {
    let dst = endpoint.addr.to_string();
    let mut args = vec![
        "explain",
        "--scenario",
        scenario,
        "--json",
        endpoint.transport.name(),
        &dst,
    ];
    if mode == Mode::Stateless {
        args.insert(1, "--stateless");
    }
    let mut output = gotofw.run_here(&args);
    if mode == Mode::Stateless
        && output.status.code() == Some(crate::EXIT_USAGE)
        && String::from_utf8_lossy(&output.stderr).contains("--stateless")
    {
        args.remove(1);
        output = gotofw.run_here(&args);
    }
    if !output.status.success() {
        bail!(
            "`gotofw {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let json: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("`gotofw {}` printed no JSON", args.join(" ")))?;
    let text = |value: &Value| {
        value
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("`gotofw {}`: unexpected JSON {json}", args.join(" ")))
    };
    let verdict = |value: &Value| match text(value)?.as_str() {
        "allow" => Ok(true),
        "block" => Ok(false),
        other => bail!("`gotofw explain`: unknown verdict {other:?} in {json}"),
    };
    Ok(Explained {
        allow: verdict(&json["verdict"])?,
        rule: text(&json["rule"])?,
        reply_allow: verdict(&json["reply"]["verdict"])?,
        reply_rule: text(&json["reply"]["rule"])?,
    })
}

/// The packets of the counter called `name` for `direction` (`ingress` or
/// `egress`) in a `status --json` document of one interface, 0 when there is
/// no such counter (stateless mode has no egress counters).
pub fn counter_packets(status: &Value, name: &str, direction: &str) -> u64 {
    status["interfaces"][0]["counters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|counter| counter["name"] == name && counter["direction"] == direction)
        .filter_map(|counter| counter["packets"].as_u64())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_attach_with_their_flags() {
        assert_eq!(
            Mode::Stateless.attach_args("udp-turn"),
            ["--scenario", "udp-turn", "--stateless"]
        );
        assert_eq!(
            Mode::Stateful.attach_args("tcp-443"),
            ["--scenario", "tcp-443"]
        );
    }

    #[test]
    fn counters_are_read_per_direction() {
        let status = serde_json::json!({"interfaces": [{"counters": [
            {"name": "https", "direction": "ingress", "packets": 3},
            {"name": "https", "direction": "egress", "packets": 4},
            {"name": "default-block", "direction": "ingress", "packets": 1}
        ]}]});
        assert_eq!(counter_packets(&status, "https", "ingress"), 3);
        assert_eq!(counter_packets(&status, "https", "egress"), 4);
        assert_eq!(counter_packets(&status, "default-block", "egress"), 0);
        assert_eq!(counter_packets(&status, "turn-udp", "ingress"), 0);
    }
}
