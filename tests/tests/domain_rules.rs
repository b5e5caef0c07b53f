//! Domain rules from the command line, in the kernel (root only): `attach --https-to domains`
//! makes the https rule (TCP 443) go only to addresses learned from DNS answers for the GoTo
//! domains, so a connection to an address no answer taught is dropped at the egress and
//! counted `not-learned`; the same connection passes once the rule goes to any address again.
//! The DNS lab (a real resolver, answers learned) is `lab_dns`'s.
//!
//! Every lab is a [`WanLab`] named `gfwda...`; every attach has an [`Attached`] guard.

use std::{
    net::{SocketAddr, SocketAddrV4},
    time::Duration,
};

use gotofw_tests::{
    Gotofw, INET_ADDR, OUTSIDE, WanLab, counter_in, expect_success, require_root_or_skip,
    tcp_echo_server, tcp_probe,
};

/// How long a probe waits for its echo (a blocked probe costs all of it).
const PROBE_TIMEOUT: Duration = Duration::from_millis(400);

#[test]
fn https_to_domains_drops_a_syn_to_an_unlearned_address_as_not_learned() {
    if !require_root_or_skip("https_to_domains_drops_a_syn_to_an_unlearned_address_as_not_learned")
    {
        return;
    }
    let net = WanLab::named(["gfwda", "gfwda", "gfwda", "gfwda"]).unwrap();
    let https = SocketAddr::V4(SocketAddrV4::new(OUTSIDE, 443));
    let server = tcp_echo_server(net.inet(), https).unwrap();
    let gotofw = Gotofw::default();
    let resolver = INET_ADDR.to_string();
    let attached = gotofw.attach(
        net.gw(),
        net.wan(),
        &[
            "--scenario",
            "tcp-443",
            "--https-to",
            "domains",
            "--dns-server",
            &resolver,
        ],
    );
    // A rule's `networks` in `status --json`.
    let networks = |status: &serde_json::Value, name: &str| {
        status["interfaces"][0]["counters"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .map_or_else(
                || panic!("no {name} rule in {status}"),
                |c| c["networks"].clone(),
            )
    };
    let status = attached.status_json();
    assert_eq!(
        networks(&status, "https"),
        serde_json::json!({ "domains": ["goto"] }),
        "{status}"
    );
    assert_eq!(status["interfaces"][0]["mode"], "stateful", "{status}");

    assert!(
        !tcp_probe(net.gw(), https, PROBE_TIMEOUT),
        "TCP 443 to {OUTSIDE}, which no DNS answer taught, got through"
    );
    assert_eq!(server.served(), 0, "the server saw the connection");
    let status = attached.status_json();
    let (blocked, _) = counter_in(&status, "not-learned", "egress");
    assert!(
        blocked >= 1,
        "not-learned (egress) did not count the SYN: {status}"
    );
    // (Not also `default-block` == 0: the namespace's own IPv6 and ARP chatter may land there.
    // Without the domain rule the SYN counts in `default-block` and `not-learned` stays 0.)
    assert_eq!(counter_in(&status, "https", "egress").0, 0, "{status}");

    // set-scenario rebuilds the rules from the record's options: the https rule stays a
    // domain rule, and still drops the SYN.
    expect_success(
        &gotofw.run(net.gw(), &["set-scenario", net.wan(), "udp-turn"]),
        "set-scenario udp-turn",
    );
    let status = attached.status_json();
    assert_eq!(status["interfaces"][0]["scenario"], "udp-turn", "{status}");
    assert_eq!(
        networks(&status, "https"),
        serde_json::json!({ "domains": ["goto"] }),
        "{status}"
    );
    assert!(networks(&status, "turn-udp").is_array(), "{status}");
    assert!(!tcp_probe(net.gw(), https, PROBE_TIMEOUT));
    assert!(counter_in(&attached.status_json(), "not-learned", "egress").0 >= 1);
    assert_eq!(server.served(), 0, "the server saw the connection");

    // The same connection under the https rule to any address: the lab lets it through.
    expect_success(
        &gotofw.run(
            net.gw(),
            &["attach", net.wan(), "--scenario", "tcp-443", "--replace"],
        ),
        "attach --replace --scenario tcp-443",
    );
    assert!(
        tcp_probe(net.gw(), https, PROBE_TIMEOUT),
        "TCP 443 to {OUTSIDE} with the https rule to any address was blocked"
    );
    drop(attached);
    drop(server);
}
